//! Syntax trees of all mapping files → one checked [`RuleSet`]. Every mistake is collected
//! (not only the first) and every compiled rule carries the [`RuleOrigin`] it came from.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::ast::{Block, CompanyColumn, File, KeyedRule, Setting, Span, Statement, Value};
use super::diagnostic::{Diagnostic, ErrorKind, Location};
use cmat_engine::rules::{
    BilledChargeMismatch, BillingKind, CancelledSubscription, CompanyLinks, ConsumptionRule,
    ConsumptionSplit, ContractRule, ContractStart, CostSource, DecreaseTiming, HandEdit,
    MarginFloor, MarginPolicy, PeriodType, PicklistChoice, Policies, PricePoint, PriceRule,
    PriceSource, ProductKey, ProductRule, RemovedProduct, Renewal, Rounding, RuleOrigin, RuleSet,
    Ruled, ScopeTerm, ServiceCreateRule, Settings, Template, TemplateField, TemplatePart,
};

/// One mapping file, read and parsed.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// Relative to the workspace, forward slashes: `mappings/microsoft.cmat`.
    pub name: String,
    /// The file's text: diagnostics quote its lines.
    pub text: String,
    /// Its syntax tree.
    pub ast: File,
}

impl ParsedFile {
    pub(crate) fn location(&self, span: Span) -> Location {
        Location::of_span(&self.name, &self.text, span)
    }

    pub(crate) fn origin(&self, span: Span) -> RuleOrigin {
        RuleOrigin { file: self.name.clone(), line: self.location(span).line }
    }
}

/// The blocks a file may have at its top level, in the order `cmat init` writes them.
const TOP_BLOCKS: &[&str] = &["settings", "contract", "product", "prices", "consumption", "policy"];

const SETTINGS_KEYS: &[&str] = &[
    "service_billing_code",
    "product_billing_code",
    "service_level_agreement",
    "subscription_udf",
    "contract_type",
    "contract_status",
    "timezone",
];
const CONTRACT_KEYS: &[&str] = &[
    "licence_name",
    "consumption_name",
    "start",
    "term_months",
    "renewal",
    "category",
    "period",
    "line_of_business",
];
const PRODUCT_KEYS: &[&str] = &["match"];
const CREATE_KEYS: &[&str] = &["name", "period", "per_term"];
const PRICES_KEYS: &[&str] = &[
    "unit_price",
    "unit_cost",
    "scale",
    "rounding",
    "margin_floor",
    "margin_policy",
    "price_point",
    "max_price",
];
const CONSUMPTION_KEYS: &[&str] = &["charge_name", "correction_name", "charge_type", "split"];
const POLICY_KEYS: &[&str] = &[
    "removed_product",
    "cancelled_subscription",
    "hand_edit",
    "billed_charge_mismatch",
    "decrease",
    "skip_zero_amount",
];

/// The forms a `unit_price` takes, for the hint after an unknown one.
const PRICE_FORMS: [&str; 6] = [
    "sales_price",
    "cost + PERCENT%",
    "cost + AMOUNT",
    "sales_price - PERCENT%",
    "sales_price + PERCENT%",
    "PRICE",
];

const TOP_LEVEL_RULES: &str = "rules at the top level: `service \"SERVICE NAME\" = licence`, `company \"ORGANIZATION\" = ID`, `company column \"COLUMN\"`";

/// Compiles all files together (sorted by name by the caller). `partial` says that some
/// files did not parse: then "missing" errors are left out, since the missing part may well
/// be in the file that failed.
pub fn compile(files: &[ParsedFile], partial: bool) -> Result<Compiled, Vec<Diagnostic>> {
    let mut compiler = Compiler::default();
    for file in files {
        compiler.top_level(file);
    }
    let rules = compiler.finish(files, partial);
    match rules {
        Some(rules) if compiler.diagnostics.is_empty() && !partial => {
            Ok(Compiled { rules, scope_terms: compiler.scope_terms, warnings: compiler.warnings })
        }
        _ => Err(compiler.diagnostics),
    }
}

/// A checked rule set, with where each scope term was written (for `cmat check`'s warnings
/// about scopes no imported bill has).
pub struct Compiled {
    /// The rules the engine runs on.
    pub rules: RuleSet,
    /// Every scope term with where it was written.
    pub scope_terms: Vec<(ScopeTerm, Location)>,
    /// What the files say that checks but is likely a mistake (a rule whose dates never meet).
    pub warnings: Vec<Diagnostic>,
}

/// How many rules (settings, service and company rules) the files hold: for `cmat check`.
pub fn count_rules(files: &[ParsedFile]) -> usize {
    fn count(statements: &[Statement]) -> usize {
        statements
            .iter()
            .map(|statement| match statement {
                Statement::Block(block) => count(&block.statements),
                _ => 1,
            })
            .sum()
    }
    files.iter().map(|file| count(&file.ast.statements)).sum()
}

/// A `create` block: how Services are made, and whether one per term.
type CreateBlock = (ServiceCreateRule, Option<Ruled<bool>>);

/// The settings of one block by name, after unknown and duplicate ones were reported.
type SettingsByKey<'a> = BTreeMap<&'a str, &'a Setting>;

#[derive(Default)]
pub(crate) struct Compiler<'a> {
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Warnings: they do not fail `cmat check`.
    pub(crate) warnings: Vec<Diagnostic>,
    /// `for` rules, compiled once the services are known.
    pub(crate) scoped_blocks: Vec<(&'a ParsedFile, &'a Block)>,
    pub(crate) scope_terms: Vec<(ScopeTerm, Location)>,
    blocks: BTreeMap<&'static str, (&'a ParsedFile, &'a Block)>,
    pub(crate) services: BTreeMap<String, (Ruled<BillingKind>, Location)>,
    companies: BTreeMap<String, (Ruled<i64>, Location)>,
    company_column: Option<(Ruled<String>, Location)>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn report(&mut self, file: &ParsedFile, span: Span, kind: ErrorKind) {
        self.diagnostics.push(Diagnostic::at(kind, file.location(span)));
    }

    fn top_level(&mut self, file: &'a ParsedFile) {
        for statement in &file.ast.statements {
            match statement {
                Statement::Setting(setting) => self.report(
                    file,
                    setting.key.span,
                    ErrorKind::SettingOutsideBlock { key: setting.key.node.clone() },
                ),
                Statement::CompanyColumn(link) => self.company_column_rule(file, link),
                Statement::KeyedRule(rule) => self.top_level_rule(file, rule),
                Statement::Block(block) if !block.scope.is_empty() => {
                    self.scoped_blocks.push((file, block));
                }
                Statement::Block(block) => self.top_block(file, block),
            }
        }
    }

    /// `company column "…"`: once, and only naming the column the billing report has.
    fn company_column_rule(&mut self, file: &ParsedFile, link: &CompanyColumn) {
        let location = file.location(link.span);
        if let Some((_, first)) = &self.company_column {
            let first = first.clone();
            self.report(
                file,
                link.span,
                ErrorKind::Duplicate { what: "`company column` rule".to_string(), first },
            );
        } else if link.column.node != cmat_engine::billing::AUTOTASK_COMPANY_COLUMN {
            // The billing report carries the link in one custom-property column;
            // a rule naming another would silently link nothing.
            self.report(
                file,
                link.column.span,
                ErrorKind::UnknownValue {
                    setting: "company column".to_string(),
                    found: link.column.node.clone(),
                    valid: vec![cmat_engine::billing::AUTOTASK_COMPANY_COLUMN],
                },
            );
        } else if self.non_empty(file, &link.column.node, link.column.span, "the column name") {
            self.company_column = Some((
                Ruled { value: link.column.node.clone(), origin: file.origin(link.span) },
                location,
            ));
        }
    }

    /// A top-level block: kept for [`Compiler::finish`] if its name is known and not taken.
    fn top_block(&mut self, file: &'a ParsedFile, block: &'a Block) {
        match TOP_BLOCKS.iter().find(|name| **name == block.name.node) {
            Some(name) => {
                if let Some((first_file, first_block)) = self.blocks.get(name) {
                    let first = first_file.location(first_block.name.span);
                    self.report(
                        file,
                        block.name.span,
                        ErrorKind::Duplicate { what: format!("`{name}` block"), first },
                    );
                } else {
                    self.blocks.insert(name, (file, block));
                }
            }
            None => self.report(
                file,
                block.name.span,
                ErrorKind::UnknownBlock { name: block.name.node.clone(), valid: TOP_BLOCKS },
            ),
        }
    }

    /// `service "…" = kind` and `company "…" = id`.
    fn top_level_rule(&mut self, file: &ParsedFile, rule: &KeyedRule) {
        match rule.keyword.node.as_str() {
            "service" => self.service_rule(file, rule),
            "company" => self.company_rule(file, rule),
            other => self.report(
                file,
                rule.keyword.span,
                ErrorKind::UnknownRule {
                    keyword: other.to_string(),
                    place: "at the top level".to_string(),
                    valid: TOP_LEVEL_RULES,
                },
            ),
        }
    }

    /// `service "…" = licence`: how one Cloudmore service is billed; once per service.
    fn service_rule(&mut self, file: &ParsedFile, rule: &KeyedRule) {
        if !self.non_empty(file, &rule.key.node, rule.key.span, "the service name") {
            return;
        }
        let kind = self.choice(
            file,
            "service kind",
            &rule.value.node,
            rule.value.span,
            &[("licence", BillingKind::Licence), ("consumption", BillingKind::Consumption)],
        );
        if let Some((_, first)) = self.services.get(&rule.key.node) {
            let first = first.clone();
            self.report(
                file,
                rule.span,
                ErrorKind::Duplicate {
                    what: format!("rule for service \"{}\"", rule.key.node),
                    first,
                },
            );
        } else if let Some(value) = kind {
            let ruled = Ruled { value, origin: file.origin(rule.span) };
            self.services.insert(rule.key.node.clone(), (ruled, file.location(rule.span)));
        }
    }

    /// `company "…" = id`: the Autotask company of one organization; once per organization.
    fn company_rule(&mut self, file: &ParsedFile, rule: &KeyedRule) {
        if !self.non_empty(file, &rule.key.node, rule.key.span, "the organization name") {
            return;
        }
        let id = self.positive_id(file, "company", &rule.value.node, rule.value.span);
        if let Some((_, first)) = self.companies.get(&rule.key.node) {
            let first = first.clone();
            self.report(
                file,
                rule.span,
                ErrorKind::Duplicate {
                    what: format!("company link for organization \"{}\"", rule.key.node),
                    first,
                },
            );
        } else if let Some(value) = id {
            let ruled = Ruled { value, origin: file.origin(rule.span) };
            self.companies.insert(rule.key.node.clone(), (ruled, file.location(rule.span)));
        }
    }

    pub(crate) fn non_empty(
        &mut self,
        file: &ParsedFile,
        text: &str,
        span: Span,
        what: &str,
    ) -> bool {
        if text.trim().is_empty() {
            self.report(file, span, ErrorKind::EmptyText { what: what.to_string() });
            return false;
        }
        true
    }

    /// Reports unknown and duplicate settings and statements a block cannot hold; returns
    /// its settings by key, and the keyed rules and nested blocks `accept` lets through.
    pub(crate) fn read_block(
        &mut self,
        file: &'a ParsedFile,
        block: &'a Block,
        valid: &'static [&'static str],
        accept: impl Fn(&Statement) -> bool,
    ) -> (SettingsByKey<'a>, Vec<&'a Statement>) {
        let mut settings: SettingsByKey<'a> = BTreeMap::new();
        let mut accepted = Vec::new();
        let block_name = block.name.node.as_str();
        for statement in &block.statements {
            if accept(statement) {
                accepted.push(statement);
                continue;
            }
            match statement {
                Statement::Setting(setting) => {
                    self.block_setting(file, block_name, valid, setting, &mut settings);
                }
                other => self.misplaced(file, block_name, other),
            }
        }
        (settings, accepted)
    }

    /// Keeps one setting of a block, or reports it as unknown there or given twice.
    fn block_setting(
        &mut self,
        file: &ParsedFile,
        block_name: &str,
        valid: &'static [&'static str],
        setting: &'a Setting,
        settings: &mut SettingsByKey<'a>,
    ) {
        let key = setting.key.node.as_str();
        if !valid.contains(&key) {
            self.report(
                file,
                setting.key.span,
                ErrorKind::UnknownSetting {
                    block: block_name.to_string(),
                    key: key.to_string(),
                    valid,
                },
            );
        } else if let Some(first) = settings.get(key) {
            let first = file.location(first.key.span);
            self.report(
                file,
                setting.key.span,
                ErrorKind::Duplicate { what: format!("setting `{key}` in `{block_name}`"), first },
            );
        } else {
            settings.insert(key, setting);
        }
    }

    /// Reports a statement `block_name` cannot hold, with what it may hold instead.
    fn misplaced(&mut self, file: &ParsedFile, block_name: &str, statement: &Statement) {
        match statement {
            // A block holds settings: `block_setting` checks them.
            Statement::Setting(_) => {}
            Statement::Block(nested)
                if TOP_BLOCKS.contains(&nested.name.node.as_str()) || !nested.scope.is_empty() =>
            {
                self.report(
                    file,
                    nested.name.span,
                    ErrorKind::NestedBlock {
                        name: nested.name.node.clone(),
                        parent: block_name.to_string(),
                    },
                )
            }
            Statement::Block(nested) => self.report(
                file,
                nested.name.span,
                ErrorKind::UnknownBlock {
                    name: nested.name.node.clone(),
                    valid: if block_name == "product" { &["create"] } else { &[] },
                },
            ),
            Statement::KeyedRule(rule) => self.report(
                file,
                rule.keyword.span,
                ErrorKind::UnknownRule {
                    keyword: rule.keyword.node.clone(),
                    place: format!("inside `{block_name}`"),
                    valid: if block_name == "product" {
                        "inside `product`: `service \"ITEM CODE\" = SERVICE ID`"
                    } else {
                        TOP_LEVEL_RULES
                    },
                },
            ),
            Statement::CompanyColumn(link) => {
                self.report(file, link.span, ErrorKind::MisplacedCompanyColumn)
            }
        }
    }

    /// The setting `key`, or a "missing setting" error at the block's name.
    fn required(
        &mut self,
        file: &ParsedFile,
        block: &Block,
        settings: &SettingsByKey<'a>,
        key: &str,
    ) -> Option<&'a Setting> {
        let setting = settings.get(key).copied();
        if setting.is_none() {
            self.report(
                file,
                block.name.span,
                ErrorKind::MissingSetting { block: block.name.node.clone(), key: key.to_string() },
            );
        }
        setting
    }

    pub(crate) fn positive_id(
        &mut self,
        file: &ParsedFile,
        setting: &str,
        value: &Value,
        span: Span,
    ) -> Option<i64> {
        match value {
            Value::Number(number) => {
                let id = (number.scale() == 0 && *number > Decimal::ZERO)
                    .then(|| i64::try_from(*number).ok())
                    .flatten();
                if id.is_none() {
                    self.report(
                        file,
                        span,
                        ErrorKind::NotPositiveId {
                            setting: setting.to_string(),
                            found: number.to_string(),
                        },
                    );
                }
                id
            }
            other => {
                self.type_mismatch(
                    file,
                    setting,
                    "a positive whole number (an Autotask id)",
                    other,
                    span,
                );
                None
            }
        }
    }

    pub(crate) fn type_mismatch(
        &mut self,
        file: &ParsedFile,
        setting: &str,
        expected: &'static str,
        found: &Value,
        span: Span,
    ) {
        self.report(
            file,
            span,
            ErrorKind::TypeMismatch {
                setting: setting.to_string(),
                expected,
                found: found.describe(),
            },
        );
    }

    pub(crate) fn whole_number(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
        min: u32,
        max: u32,
    ) -> Option<Ruled<u32>> {
        let key = setting.key.node.as_str();
        let Value::Number(number) = &setting.value.node else {
            self.type_mismatch(
                file,
                key,
                "a whole number",
                &setting.value.node,
                setting.value.span,
            );
            return None;
        };
        let value = (number.scale() == 0)
            .then(|| u32::try_from(*number).ok())
            .flatten()
            .filter(|value| (min..=max).contains(value));
        if value.is_none() {
            self.report(
                file,
                setting.value.span,
                ErrorKind::OutOfRange {
                    setting: key.to_string(),
                    min,
                    max,
                    found: number.to_string(),
                },
            );
        }
        Some(Ruled { value: value?, origin: file.origin(setting.span) })
    }

    pub(crate) fn id_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<i64>> {
        let value =
            self.positive_id(file, &setting.key.node, &setting.value.node, setting.value.span)?;
        Some(Ruled { value, origin: file.origin(setting.span) })
    }

    pub(crate) fn text_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<String>> {
        let Value::Text(text) = &setting.value.node else {
            self.type_mismatch(
                file,
                &setting.key.node,
                "a string",
                &setting.value.node,
                setting.value.span,
            );
            return None;
        };
        let what = format!("`{}`", setting.key.node);
        if !self.non_empty(file, text, setting.value.span, &what) {
            return None;
        }
        Some(Ruled { value: text.clone(), origin: file.origin(setting.span) })
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        file: &ParsedFile,
        setting: &str,
        value: &Value,
        span: Span,
        options: &[(&'static str, T)],
    ) -> Option<T> {
        let Value::Name(name) = value else {
            self.type_mismatch(file, setting, "a name", value, span);
            return None;
        };
        let found = options.iter().find(|(option, _)| option == name).map(|(_, value)| *value);
        if found.is_none() {
            self.report(
                file,
                span,
                ErrorKind::UnknownValue {
                    setting: setting.to_string(),
                    found: name.clone(),
                    valid: options.iter().map(|(option, _)| *option).collect(),
                },
            );
        }
        found
    }

    pub(crate) fn choice_setting<T: Copy>(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
        options: &[(&'static str, T)],
    ) -> Option<Ruled<T>> {
        let value =
            self.choice(file, &setting.key.node, &setting.value.node, setting.value.span, options)?;
        Some(Ruled { value, origin: file.origin(setting.span) })
    }

    /// `monthly`, `quarterly`, `semi_annual` or `yearly`: matched by label against the
    /// tenant's picklist when a plan is made.
    fn period_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<PeriodType>> {
        self.choice_setting(
            file,
            setting,
            &[
                ("monthly", PeriodType::Monthly),
                ("quarterly", PeriodType::Quarterly),
                ("semi_annual", PeriodType::SemiAnnual),
                ("yearly", PeriodType::Yearly),
            ],
        )
    }

    /// A picklist entry by label (`"Recurring Service"` or `recurring_service`) or by the
    /// number the user picked from the tenant's list (`7`).
    fn picklist_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<PicklistChoice>> {
        let span = setting.value.span;
        let value = match &setting.value.node {
            Value::Number(_) => PicklistChoice::Value(self.positive_id(
                file,
                &setting.key.node,
                &setting.value.node,
                span,
            )?),
            Value::Text(text) => {
                let what = format!("`{}`", setting.key.node);
                if !self.non_empty(file, text, span, &what) {
                    return None;
                }
                PicklistChoice::Label(text.clone())
            }
            Value::Name(name) => PicklistChoice::Label(name.clone()),
            other => {
                self.type_mismatch(
                    file,
                    &setting.key.node,
                    "a picklist label (\"Recurring Service\") or the number chosen from it",
                    other,
                    span,
                );
                return None;
            }
        };
        Some(Ruled { value, origin: file.origin(setting.span) })
    }

    pub(crate) fn template_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
        corrected_date_allowed: bool,
    ) -> Option<Template> {
        let text = self.text_setting(file, setting)?;
        let raw_start = setting.value.span.start + 1;
        let raw =
            file.text.get(raw_start..setting.value.span.end.saturating_sub(1)).unwrap_or_default();
        let offsets = unescaped_offsets(raw);
        let source_span = |start: usize, end: usize| {
            let at = |index: usize| raw_start + offsets.get(index).copied().unwrap_or(raw.len());
            Span::new(at(start), at(end))
        };
        match parse_template(&text.value) {
            Ok(parts) => {
                let valid =
                    self.template_fields_known(file, &parts, source_span, corrected_date_allowed);
                valid.then(|| Template { parts: template_parts(parts), origin: text.origin })
            }
            Err((kind, start, end)) => {
                self.report(file, source_span(start, end), kind);
                None
            }
        }
    }

    /// Reports every `{field}` of a template that does not exist, or (`{corrected_date}`)
    /// that does not belong in this setting; true when there was none.
    fn template_fields_known(
        &mut self,
        file: &ParsedFile,
        parts: &[(TemplatePiece, usize, usize)],
        source_span: impl Fn(usize, usize) -> Span,
        corrected_date_allowed: bool,
    ) -> bool {
        let mut valid = true;
        for (part, start, end) in parts {
            let TemplatePiece::Field(name) = part else { continue };
            let span = source_span(*start, *end);
            match TemplateField::from_name(name) {
                None => {
                    valid = false;
                    self.report(
                        file,
                        span,
                        ErrorKind::UnknownTemplateField { field: name.clone() },
                    );
                }
                Some(TemplateField::CorrectedDate) if !corrected_date_allowed => {
                    valid = false;
                    self.report(
                        file,
                        span,
                        ErrorKind::TemplateFieldNotHere { field: name.clone() },
                    );
                }
                Some(_) => {}
            }
        }
        valid
    }

    /// Compiles the collected blocks; `None` when anything is missing or wrong.
    fn finish(&mut self, files: &'a [ParsedFile], partial: bool) -> Option<RuleSet> {
        let missing_block = |compiler: &mut Self, name: &'static str| {
            let block = compiler.blocks.get(name).copied();
            if block.is_none() && !partial {
                if let Some(first_file) = files.first() {
                    compiler.diagnostics.push(Diagnostic::in_file(
                        ErrorKind::MissingBlock { block: name.to_string() },
                        &first_file.name,
                    ));
                }
            }
            block
        };
        let settings =
            missing_block(self, "settings").and_then(|(file, block)| self.settings(file, block));
        let contract =
            missing_block(self, "contract").and_then(|(file, block)| self.contract(file, block));
        let products =
            missing_block(self, "product").and_then(|(file, block)| self.product(file, block));
        let prices =
            missing_block(self, "prices").and_then(|(file, block)| self.prices(file, block));
        let consumption = missing_block(self, "consumption")
            .and_then(|(file, block)| self.consumption(file, block));
        let policies =
            missing_block(self, "policy").and_then(|(file, block)| self.policy(file, block));
        let scoped = self.scoped_rules();
        Some(RuleSet {
            settings: settings?,
            services: std::mem::take(&mut self.services)
                .into_iter()
                .map(|(name, (rule, _))| (name, rule))
                .collect(),
            companies: CompanyLinks {
                column: self.company_column.take().map(|(rule, _)| rule),
                explicit: std::mem::take(&mut self.companies)
                    .into_iter()
                    .map(|(name, (rule, _))| (name, rule))
                    .collect(),
            },
            contract: contract?,
            products: products?,
            prices: prices?,
            consumption: consumption?,
            policies: policies?,
            scoped,
        })
    }

    fn settings(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<Settings> {
        let (settings, _) = self.read_block(file, block, SETTINGS_KEYS, |_| false);
        let id = |compiler: &mut Self, key: &str| {
            compiler
                .required(file, block, &settings, key)
                .and_then(|setting| compiler.id_setting(file, setting))
        };
        let service_billing_code = id(self, "service_billing_code");
        let product_billing_code = id(self, "product_billing_code");
        let service_level_agreement = id(self, "service_level_agreement");
        let subscription_udf = self
            .required(file, block, &settings, "subscription_udf")
            .and_then(|setting| self.text_setting(file, setting));
        let picklist = |compiler: &mut Self, key: &str| {
            compiler
                .required(file, block, &settings, key)
                .and_then(|setting| compiler.picklist_setting(file, setting))
        };
        let contract_type = picklist(self, "contract_type");
        let contract_status = picklist(self, "contract_status");
        let timezone = self
            .required(file, block, &settings, "timezone")
            .and_then(|setting| self.text_setting(file, setting).map(|text| (setting, text)))
            .and_then(|(setting, timezone)| {
                if timezone.value == "UTC" {
                    return Some(timezone);
                }
                self.report(
                    file,
                    setting.value.span,
                    ErrorKind::UnsupportedTimezone { found: timezone.value },
                );
                None
            });
        Some(Settings {
            service_billing_code: service_billing_code?,
            product_billing_code: product_billing_code?,
            service_level_agreement: service_level_agreement?,
            subscription_udf: subscription_udf?,
            contract_type: contract_type?,
            contract_status: contract_status?,
            timezone: timezone?,
        })
    }

    fn contract(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<ContractRule> {
        let (settings, _) = self.read_block(file, block, CONTRACT_KEYS, |_| false);
        let licence_name = self
            .required(file, block, &settings, "licence_name")
            .and_then(|setting| self.template_setting(file, setting, false));
        let consumption_name = self
            .required(file, block, &settings, "consumption_name")
            .and_then(|setting| self.template_setting(file, setting, false));
        let start = self
            .required(file, block, &settings, "start")
            .and_then(|setting| self.contract_start_setting(file, setting));
        let term_months = self
            .required(file, block, &settings, "term_months")
            .and_then(|setting| self.term_months_setting(file, setting));
        let renewal = self.required(file, block, &settings, "renewal").and_then(|setting| {
            self.choice_setting(
                file,
                setting,
                &[("extend", Renewal::Extend), ("keep", Renewal::Keep)],
            )
        });
        let category = self.optional(&settings, "category", |c, s| c.id_setting(file, s))?;
        let line_of_business =
            self.optional(&settings, "line_of_business", |c, s| c.id_setting(file, s))?;
        let period = match settings.get("period") {
            Some(setting) => self.period_setting(file, setting),
            None => {
                Some(Ruled { value: PeriodType::Monthly, origin: file.origin(block.name.span) })
            }
        };
        Some(ContractRule {
            name: BTreeMap::from([
                (BillingKind::Licence, licence_name?),
                (BillingKind::Consumption, consumption_name?),
            ]),
            start: start?,
            term_months: term_months?,
            renewal: renewal?,
            category,
            line_of_business,
            period: period?,
        })
    }

    /// A setting a block may leave out: `Some(None)` when it is absent, `None` when it is
    /// written wrong (the error is reported and the block is given up).
    fn optional<T>(
        &mut self,
        settings: &SettingsByKey<'a>,
        key: &str,
        read: impl FnOnce(&mut Self, &'a Setting) -> Option<T>,
    ) -> Option<Option<T>> {
        match settings.get(key) {
            Some(setting) => read(self, setting).map(Some),
            None => Some(None),
        }
    }

    /// `start`: a contract starts on its first billing date, or on the first of that month.
    fn contract_start_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<ContractStart>> {
        self.choice_setting(
            file,
            setting,
            &[
                ("first_billing_date", ContractStart::FirstBillingDate),
                ("first_billing_month", ContractStart::FirstBillingMonth),
            ],
        )
    }

    fn product(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<ProductRule> {
        let (settings, others) =
            self.read_block(file, block, PRODUCT_KEYS, |statement| match statement {
                Statement::KeyedRule(rule) => rule.keyword.node == "service",
                Statement::Block(nested) => nested.name.node == "create",
                _ => false,
            });
        let match_by = self.required(file, block, &settings, "match").and_then(|setting| {
            self.choice_setting(
                file,
                setting,
                &[("item_code", ProductKey::ItemCode), ("product_id", ProductKey::ProductId)],
            )
        });
        let mut explicit = BTreeMap::new();
        let mut create = None;
        let mut valid = true;
        for statement in others {
            match statement {
                Statement::KeyedRule(rule) => valid &= self.product_link(file, rule, &mut explicit),
                Statement::Block(nested) => valid &= self.create_once(file, nested, &mut create),
                _ => {}
            }
        }
        let (create, per_term) = match create {
            Some((rule, _)) => {
                let (rule, per_term) = rule?;
                (Some(rule), per_term)
            }
            None => (None, None),
        };
        valid.then_some(())?;
        Some(ProductRule {
            match_by: match_by?,
            explicit: explicit.into_iter().map(|(key, (rule, _))| (key, rule)).collect(),
            create,
            per_term,
        })
    }

    /// `service "ITEM CODE" = ID` inside `product`: one product's Service, once per product;
    /// false when the rule is wrong.
    fn product_link(
        &mut self,
        file: &ParsedFile,
        rule: &KeyedRule,
        explicit: &mut BTreeMap<String, (Ruled<i64>, Location)>,
    ) -> bool {
        if !self.non_empty(file, &rule.key.node, rule.key.span, "the product key") {
            return false;
        }
        let id = self.positive_id(file, "service", &rule.value.node, rule.value.span);
        if let Some((_, first)) = explicit.get(&rule.key.node) {
            let first = first.clone();
            self.report(
                file,
                rule.span,
                ErrorKind::Duplicate {
                    what: format!("service link for product \"{}\"", rule.key.node),
                    first,
                },
            );
            false
        } else if let Some(value) = id {
            let origin = file.origin(rule.span);
            explicit
                .insert(rule.key.node.clone(), (Ruled { value, origin }, file.location(rule.span)));
            true
        } else {
            false
        }
    }

    /// The one `create` block of `product`, compiled into `create`; false when it is wrong or
    /// a second one.
    fn create_once(
        &mut self,
        file: &'a ParsedFile,
        nested: &'a Block,
        create: &mut Option<(Option<CreateBlock>, Location)>,
    ) -> bool {
        if let Some((_, first)) = create {
            let first = first.clone();
            self.report(
                file,
                nested.name.span,
                ErrorKind::Duplicate { what: "`create` block in `product`".to_string(), first },
            );
            return false;
        }
        let rule = self.create(file, nested);
        let valid = rule.is_some();
        *create = Some((rule, file.location(nested.name.span)));
        valid
    }

    /// The `create` block, and its `per_term` setting.
    fn create(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<CreateBlock> {
        let (settings, _) = self.read_block(file, block, CREATE_KEYS, |_| false);
        let per_term = self.optional(&settings, "per_term", |c, s| c.bool_setting(file, s))?;
        let name = self
            .required(file, block, &settings, "name")
            .and_then(|setting| self.template_setting(file, setting, false));
        let period_type = self
            .required(file, block, &settings, "period")
            .and_then(|setting| self.period_setting(file, setting));
        Some((
            ServiceCreateRule {
                name: name?,
                period_type: period_type?,
                origin: file.origin(block.name.span),
            },
            per_term,
        ))
    }

    fn prices(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<PriceRule> {
        let (settings, _) = self.read_block(file, block, PRICES_KEYS, |_| false);
        let unit_price = self
            .required(file, block, &settings, "unit_price")
            .and_then(|setting| self.price_source(file, setting));
        let unit_cost = self
            .required(file, block, &settings, "unit_cost")
            .and_then(|setting| self.cost_source(file, setting));
        // rust_decimal keeps at most 28 decimal places.
        let scale = self
            .required(file, block, &settings, "scale")
            .and_then(|setting| self.whole_number(file, setting, 0, 28));
        let rounding = self
            .required(file, block, &settings, "rounding")
            .and_then(|setting| self.rounding_setting(file, setting));
        let margin_floor =
            self.optional(&settings, "margin_floor", |c, s| c.margin_floor_setting(file, s))?;
        let price_point =
            self.optional(&settings, "price_point", |c, s| c.price_point_setting(file, s))?;
        let max_price =
            self.optional(&settings, "max_price", |c, s| c.max_price_setting(file, s))?;
        let margin_policy = match settings.get("margin_policy") {
            Some(setting) => self.margin_policy_setting(file, setting),
            None => Some(Ruled { value: MarginPolicy::Warn, origin: file.origin(block.name.span) }),
        };
        Some(PriceRule {
            unit_price: unit_price?,
            unit_cost: unit_cost?,
            scale: scale?,
            rounding: rounding?,
            margin_floor,
            price_point,
            max_price,
            margin_policy: margin_policy?,
            margin_policy_written: settings.contains_key("margin_policy"),
        })
    }

    /// `rounding`: how a computed price is rounded to `scale`; shared with `for` rules.
    pub(crate) fn rounding_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<Rounding>> {
        self.choice_setting(
            file,
            setting,
            &[
                ("half_up", Rounding::HalfUp),
                ("half_even", Rounding::HalfEven),
                ("down", Rounding::Down),
                ("up", Rounding::Up),
            ],
        )
    }

    /// `sales_price`, `cost + 15%` (kept as the fraction 0.15), `cost + 1.50` (an amount per
    /// unit), `sales_price - 10%`, `sales_price + 5%` or a fixed price.
    pub(crate) fn price_source(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<PriceSource>> {
        let span = setting.value.span;
        let value = match &setting.value.node {
            Value::CostPlus { markup, percent_sign } => {
                self.cost_plus_price(file, span, *markup, *percent_sign)
            }
            Value::SalesLess { discount, percent_sign } => self
                .percent_of_sales(file, setting, *discount, *percent_sign)
                .map(PriceSource::SalesLessDiscount),
            Value::SalesPlus { uplift, percent_sign } => self
                .percent_of_sales(file, setting, *uplift, *percent_sign)
                .map(PriceSource::SalesPlusUplift),
            Value::Number(price) if price.is_sign_negative() => {
                self.report(file, span, ErrorKind::NegativePrice { found: price.to_string() });
                None
            }
            Value::Number(price) => Some(PriceSource::Fixed(*price)),
            Value::Name(name) if name == "sales_price" => Some(PriceSource::SalesPrice),
            Value::Name(name) => {
                let (setting, found) = (setting.key.node.clone(), name.clone());
                let valid = PRICE_FORMS.to_vec();
                self.report(file, span, ErrorKind::UnknownValue { setting, found, valid });
                None
            }
            other => {
                self.type_mismatch(
                    file,
                    &setting.key.node,
                    "`sales_price`, `cost + PERCENT%`, `cost + AMOUNT`, `sales_price - PERCENT%`, `sales_price + PERCENT%` or a fixed price",
                    other,
                    span,
                );
                None
            }
        };
        Some(Ruled { value: value?, origin: file.origin(setting.span) })
    }

    /// `cost + 15%` (kept as the fraction 0.15) or `cost + 1.50` per unit; never a loss.
    fn cost_plus_price(
        &mut self,
        file: &ParsedFile,
        span: Span,
        markup: Decimal,
        percent_sign: bool,
    ) -> Option<PriceSource> {
        if markup.is_sign_negative() && !markup.is_zero() {
            self.report(file, span, ErrorKind::NegativeMarkup { found: markup.to_string() });
            None
        } else if percent_sign {
            Some(PriceSource::CostPlusMarkup(markup / Decimal::ONE_HUNDRED))
        } else {
            Some(PriceSource::CostPlusAmount(markup))
        }
    }

    /// The percentage of `sales_price - 10%` or `sales_price + 5%`, as a fraction: a
    /// percentage between 0 and 100, never an amount.
    fn percent_of_sales(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
        percent: Decimal,
        percent_sign: bool,
    ) -> Option<Decimal> {
        let span = setting.value.span;
        if !percent_sign {
            self.report(file, span, ErrorKind::DiscountNotPercent { found: percent.to_string() });
            None
        } else if percent.is_sign_negative() || percent > Decimal::ONE_HUNDRED {
            let found = percent.to_string();
            let setting = setting.key.node.clone();
            self.report(file, span, ErrorKind::PercentOutOfRange { setting, found });
            None
        } else {
            Some(percent / Decimal::ONE_HUNDRED)
        }
    }

    /// `unit_cost`: `cost_price` (the bill's), or the MSP's own cost: `cost - 3%` (a rebate),
    /// `cost + 2%`, `cost - 0.50` per unit.
    pub(crate) fn cost_source(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<CostSource>> {
        let span = setting.value.span;
        let (sign, number, percent_sign) = match &setting.value.node {
            Value::Name(name) if name == "cost_price" || name == "cost" => {
                let origin = file.origin(setting.span);
                return Some(Ruled { value: CostSource::CostPrice, origin });
            }
            Value::CostPlus { markup, percent_sign } => (Decimal::ONE, *markup, *percent_sign),
            Value::CostLess { rebate, percent_sign } => (-Decimal::ONE, *rebate, *percent_sign),
            other => {
                self.type_mismatch(
                    file,
                    &setting.key.node,
                    "`cost_price`, `cost - PERCENT%`, `cost + PERCENT%` or `cost - AMOUNT`",
                    other,
                    span,
                );
                return None;
            }
        };
        if number.is_sign_negative() || (percent_sign && number > Decimal::ONE_HUNDRED) {
            let found = format!("{number}{}", if percent_sign { "%" } else { "" });
            let setting = setting.key.node.clone();
            self.report(file, span, ErrorKind::PercentOutOfRange { setting, found });
            return None;
        }
        let value = if percent_sign {
            CostSource::CostPercent(sign * number / Decimal::ONE_HUNDRED)
        } else {
            CostSource::CostAmount(sign * number)
        };
        Some(Ruled { value, origin: file.origin(setting.span) })
    }

    /// `margin_floor = 10%` (of the price) or `margin_floor = 1.00` (an amount per unit).
    pub(crate) fn margin_floor_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<MarginFloor>> {
        let span = setting.value.span;
        if let Value::Number(amount) = &setting.value.node {
            if amount.is_sign_negative() {
                let (setting, found) = (setting.key.node.clone(), amount.to_string());
                self.report(file, span, ErrorKind::NegativeAmount { setting, found });
                return None;
            }
            let origin = file.origin(setting.span);
            return Some(Ruled { value: MarginFloor::Amount(*amount), origin });
        }
        if !matches!(setting.value.node, Value::Percent(_)) {
            let expected = "a percentage (`10%`) or an amount per unit (`1.00`)";
            self.type_mismatch(file, &setting.key.node, expected, &setting.value.node, span);
            return None;
        }
        self.percent_setting(file, setting)
            .map(|floor| Ruled { value: MarginFloor::Percent(floor.value), origin: floor.origin })
    }

    /// `price_point = .99` (or `0.95`: a fraction under 1) or `price_point = whole`.
    pub(crate) fn price_point_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<PricePoint>> {
        let span = setting.value.span;
        let value = match &setting.value.node {
            Value::Name(name) if name == "whole" => PricePoint::Whole,
            Value::Number(ending) if !ending.is_sign_negative() && *ending < Decimal::ONE => {
                PricePoint::Ending(*ending)
            }
            Value::Number(ending) => {
                self.report(
                    file,
                    span,
                    ErrorKind::PricePointOutOfRange { found: ending.to_string() },
                );
                return None;
            }
            other => {
                let expected = "`whole` or the cents a price ends in (`.99`)";
                self.type_mismatch(file, &setting.key.node, expected, other, span);
                return None;
            }
        };
        Some(Ruled { value, origin: file.origin(setting.span) })
    }

    /// `max_price = 25.00`: a price, not negative.
    pub(crate) fn max_price_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<Decimal>> {
        let span = setting.value.span;
        match &setting.value.node {
            Value::Number(cap) if cap.is_sign_negative() => {
                let (setting, found) = (setting.key.node.clone(), cap.to_string());
                self.report(file, span, ErrorKind::NegativeAmount { setting, found });
                None
            }
            Value::Number(cap) => Some(Ruled { value: *cap, origin: file.origin(setting.span) }),
            other => {
                self.type_mismatch(file, &setting.key.node, "a price (`25.00`)", other, span);
                None
            }
        }
    }

    /// `10%`, kept as a fraction (0.10); from 0 to 100.
    pub(crate) fn percent_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<Decimal>> {
        let span = setting.value.span;
        let Value::Percent(percent) = &setting.value.node else {
            self.type_mismatch(
                file,
                &setting.key.node,
                "a percentage (`10%`)",
                &setting.value.node,
                span,
            );
            return None;
        };
        if percent.is_sign_negative() || *percent > Decimal::ONE_HUNDRED {
            self.report(
                file,
                span,
                ErrorKind::PercentOutOfRange {
                    setting: setting.key.node.clone(),
                    found: percent.to_string(),
                },
            );
            return None;
        }
        Some(Ruled { value: *percent / Decimal::ONE_HUNDRED, origin: file.origin(setting.span) })
    }

    pub(crate) fn bool_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<bool>> {
        self.choice_setting(file, setting, &[("true", true), ("false", false)])
    }

    pub(crate) fn margin_policy_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<MarginPolicy>> {
        self.choice_setting(
            file,
            setting,
            &[("warn", MarginPolicy::Warn), ("refuse", MarginPolicy::Refuse)],
        )
    }

    pub(crate) fn split_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<ConsumptionSplit>> {
        self.choice_setting(
            file,
            setting,
            &[
                ("subscription", ConsumptionSplit::Subscription),
                ("meter_category", ConsumptionSplit::MeterCategory),
            ],
        )
    }

    /// `term_months`: whole months, 1 to 1200 (also in a `for` rule).
    pub(crate) fn term_months_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<u32>> {
        self.whole_number(file, setting, 1, 1200)
    }

    /// `removed_product` (also in a `for` rule).
    pub(crate) fn removed_product_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<RemovedProduct>> {
        self.choice_setting(
            file,
            setting,
            &[("zero_units", RemovedProduct::ZeroUnits), ("report", RemovedProduct::Report)],
        )
    }

    /// `billed_charge_mismatch` (also in a `for` rule).
    pub(crate) fn billed_charge_mismatch_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<BilledChargeMismatch>> {
        self.choice_setting(
            file,
            setting,
            &[("correct", BilledChargeMismatch::Correct), ("report", BilledChargeMismatch::Report)],
        )
    }

    pub(crate) fn decrease_setting(
        &mut self,
        file: &ParsedFile,
        setting: &Setting,
    ) -> Option<Ruled<DecreaseTiming>> {
        self.choice_setting(
            file,
            setting,
            &[
                ("billing_date", DecreaseTiming::BillingDate),
                ("next_period", DecreaseTiming::NextPeriod),
                ("term_end", DecreaseTiming::TermEnd),
            ],
        )
    }

    fn consumption(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<ConsumptionRule> {
        let (settings, _) = self.read_block(file, block, CONSUMPTION_KEYS, |_| false);
        let charge_name = self
            .required(file, block, &settings, "charge_name")
            .and_then(|setting| self.template_setting(file, setting, false));
        let correction_name = self
            .required(file, block, &settings, "correction_name")
            .and_then(|setting| self.template_setting(file, setting, true));
        let charge_type = self
            .required(file, block, &settings, "charge_type")
            .and_then(|setting| self.picklist_setting(file, setting));
        let split = match settings.get("split") {
            Some(setting) => self.split_setting(file, setting),
            None => Some(Ruled {
                value: ConsumptionSplit::Subscription,
                origin: file.origin(block.name.span),
            }),
        };
        Some(ConsumptionRule {
            charge_name: charge_name?,
            correction_name: correction_name?,
            charge_type: charge_type?,
            split: split?,
        })
    }

    fn policy(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<Policies> {
        let (settings, _) = self.read_block(file, block, POLICY_KEYS, |_| false);
        let removed_product = self
            .required(file, block, &settings, "removed_product")
            .and_then(|setting| self.removed_product_setting(file, setting));
        let cancelled_subscription =
            self.required(file, block, &settings, "cancelled_subscription").and_then(|setting| {
                self.choice_setting(
                    file,
                    setting,
                    &[
                        ("report", CancelledSubscription::Report),
                        ("end_contract", CancelledSubscription::EndContract),
                    ],
                )
            });
        let hand_edit = self.required(file, block, &settings, "hand_edit").and_then(|setting| {
            self.choice_setting(
                file,
                setting,
                &[("overwrite", HandEdit::Overwrite), ("report", HandEdit::Report)],
            )
        });
        let billed_charge_mismatch = self
            .required(file, block, &settings, "billed_charge_mismatch")
            .and_then(|setting| self.billed_charge_mismatch_setting(file, setting));
        let decrease = match settings.get("decrease") {
            Some(setting) => self.decrease_setting(file, setting),
            None => Some(Ruled {
                value: DecreaseTiming::BillingDate,
                origin: file.origin(block.name.span),
            }),
        };
        let skip_zero_amount = match settings.get("skip_zero_amount") {
            Some(setting) => Some(self.bool_setting(file, setting)?),
            None => None,
        };
        Some(Policies {
            decrease: decrease?,
            skip_zero_amount,
            removed_product: removed_product?,
            cancelled_subscription: cancelled_subscription?,
            hand_edit: hand_edit?,
            billed_charge_mismatch: billed_charge_mismatch?,
        })
    }
}

/// A piece of a template before its field names are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePiece {
    Text(String),
    Field(String),
}

/// A template piece with its byte range in the unescaped text.
type LocatedPiece = (TemplatePiece, usize, usize);
/// A template mistake with its byte range in the unescaped text.
type LocatedTemplateError = (ErrorKind, usize, usize);

/// The checked pieces of a template as the engine's parts (every field name is known).
fn template_parts(parts: Vec<(TemplatePiece, usize, usize)>) -> Vec<TemplatePart> {
    parts
        .into_iter()
        .map(|(part, _, _)| match part {
            TemplatePiece::Text(text) => TemplatePart::Text(text),
            TemplatePiece::Field(name) => TemplateField::from_name(&name)
                .map(TemplatePart::Field)
                .unwrap_or(TemplatePart::Text(name)),
        })
        .collect()
}

/// Splits `"Azure {period} {{literal}}"` into text and `{field}` pieces, each with its byte
/// range in the (unescaped) text; `{{` and `}}` are literal braces.
fn parse_template(text: &str) -> Result<Vec<LocatedPiece>, LocatedTemplateError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut literal_start = 0;
    let mut characters = text.char_indices().peekable();
    while let Some((at, character)) = characters.next() {
        match character {
            '{' if characters.peek().map(|(_, next)| *next) == Some('{') => {
                characters.next();
                literal.push('{');
            }
            '}' if characters.peek().map(|(_, next)| *next) == Some('}') => {
                characters.next();
                literal.push('}');
            }
            '{' => {
                let Some(length) = text[at..].find('}') else {
                    return Err((ErrorKind::UnclosedTemplateField, at, at + 1));
                };
                if !literal.is_empty() {
                    pieces.push((
                        TemplatePiece::Text(std::mem::take(&mut literal)),
                        literal_start,
                        at,
                    ));
                }
                let end = at + length + 1;
                pieces.push((TemplatePiece::Field(text[at + 1..at + length].to_string()), at, end));
                while characters.peek().is_some_and(|(next_at, _)| *next_at < end) {
                    characters.next();
                }
                literal_start = end;
            }
            '}' => return Err((ErrorKind::LoneClosingBrace, at, at + 1)),
            other => literal.push(other),
        }
    }
    if !literal.is_empty() {
        pieces.push((TemplatePiece::Text(literal), literal_start, text.len()));
    }
    Ok(pieces)
}

/// For each byte of the unescaped string, where it starts in the raw (escaped) one, so that
/// errors inside templates point at the right column even after a `\"`.
fn unescaped_offsets(raw: &str) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(raw.len() + 1);
    let mut characters = raw.char_indices();
    while let Some((at, character)) = characters.next() {
        let unescaped = if character == '\\' {
            characters.next().map(|(_, escaped)| escaped).unwrap_or('\\')
        } else {
            character
        };
        offsets.extend(std::iter::repeat_n(at, unescaped.len_utf8()));
    }
    offsets.push(raw.len());
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_fields() {
        let pieces = parse_template("A {organization} {{x}}").expect("parses");
        assert_eq!(
            pieces,
            vec![
                (TemplatePiece::Text("A ".into()), 0, 2),
                (TemplatePiece::Field("organization".into()), 2, 16),
                (TemplatePiece::Text(" {x}".into()), 16, 22),
            ]
        );
        assert_eq!(
            parse_template("a {b").map_err(|error| error.0),
            Err(ErrorKind::UnclosedTemplateField)
        );
        assert_eq!(
            parse_template("a } b").map_err(|error| error.0),
            Err(ErrorKind::LoneClosingBrace)
        );
    }

    #[test]
    fn escaped_offsets_point_into_the_raw_text() {
        assert_eq!(unescaped_offsets("a\\\"b"), vec![0, 1, 3, 4]);
    }
}

#[cfg(test)]
mod rule_set_tests {
    use crate::{compile_sources, default_rules};
    use cmat_engine::rules::{BillingKind, PriceSource, RuleOrigin, TemplateField, TemplatePart};

    #[test]
    fn every_rule_names_its_file_and_line() {
        let checked =
            compile_sources(&[("mappings/microsoft.cmat".into(), default_rules(1, 2, 3))])
                .expect("compiles");
        let rules = checked.rules;
        let at = |line| RuleOrigin { file: "mappings/microsoft.cmat".into(), line };
        assert_eq!(rules.settings.service_billing_code.origin, at(5));
        assert_eq!(rules.services["Azure Plan"].origin, at(18));
        assert_eq!(rules.services["Azure Plan"].value, BillingKind::Consumption);
        assert_eq!(rules.companies.column.as_ref().map(|rule| rule.origin.clone()), Some(at(21)));
        assert_eq!(rules.contract.name[&BillingKind::Licence].origin, at(25));
        assert_eq!(
            rules.contract.name[&BillingKind::Licence].parts,
            vec![
                TemplatePart::Text("Microsoft 365 - ".into()),
                TemplatePart::Field(TemplateField::Organization)
            ]
        );
        assert_eq!(rules.prices.unit_price.value, PriceSource::SalesPrice);
        assert_eq!(checked.files, 1);
        assert_eq!(checked.rule_count, 33);
    }

    #[test]
    fn markup_is_kept_as_a_fraction() {
        let text =
            default_rules(1, 2, 3).replace("unit_price = sales_price", "unit_price = cost + 12.5%");
        let rules = compile_sources(&[("mappings/m.cmat".into(), text)]).expect("compiles").rules;
        assert_eq!(
            rules.prices.unit_price.value,
            PriceSource::CostPlusMarkup(rust_decimal::Decimal::new(125, 3))
        );
    }

    #[test]
    fn rules_may_be_split_across_files() {
        let text = default_rules(1, 2, 3);
        let (head, tail) = text.split_at(text.find("contract {").expect("a contract block"));
        let checked = compile_sources(&[
            ("mappings/a.cmat".into(), head.to_string()),
            ("mappings/b.cmat".into(), tail.to_string()),
        ])
        .expect("compiles");
        assert_eq!(checked.rules.contract.term_months.origin.file, "mappings/b.cmat");
        assert_eq!(checked.rules.contract.term_months.origin.line, 5);
    }
}
