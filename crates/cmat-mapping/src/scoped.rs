//! `for …` rules: a scope and the settings that hold within it (the price book).
//!
//! ```text
//! for organization "Contoso Ltd", product "Microsoft 365 E*" {
//!     unit_price = sales_price - 10%
//!     margin_floor = 8%
//! }
//! ```
//!
//! Checked here: the scope's terms (known keywords, each dimension once, services that have a
//! `service` rule), the settings (known, typed, not repeated), and rules with the same scope
//! that set the same thing (a duplicate or an ambiguity: never a silent choice).

use std::collections::BTreeMap;

use cmat_engine::rules::scoped::Dimension;
use cmat_engine::rules::{AddOn, Ruled, ScopeTerm, ScopedRule, ScopedSettings, Specificity, Tiers};

use super::ast::{Block, Statement};
use super::compile::{Compiler, ParsedFile};
use super::diagnostic::{Diagnostic, ErrorKind, Location};

/// What a `for` rule may set.
pub const SCOPED_KEYS: &[&str] = &[
    "company",
    "unit_price",
    "unit_cost",
    "price_point",
    "max_price",
    "scale",
    "rounding",
    "margin_floor",
    "margin_policy",
    "contract_name",
    "contract_category",
    "line_of_business",
    "service_level_agreement",
    "service",
    "service_per_term",
    "skip",
    "skip_zero_amount",
    "included_units",
    "minimum_units",
    "consumption_split",
    "decrease",
    "term_months",
    "charge_name",
    "removed_product",
    "billed_charge_mismatch",
    "priority",
    "tiers",
    "add_on_service",
    "add_on_price",
    "add_on_cost",
];

/// `tier "10-49" = 21.00` inside a `for` rule.
fn is_tier(statement: &Statement) -> bool {
    matches!(statement, Statement::KeyedRule(rule) if rule.keyword.node == "tier")
}

/// `"10-49"` → (10, Some(49)); `"50+"` → (50, None).
fn band_of(text: &str) -> Option<(u32, Option<u32>)> {
    let text = text.trim();
    if let Some(first) = text.strip_suffix('+') {
        return Some((first.trim().parse().ok()?, None));
    }
    let (first, last) = text.split_once('-')?;
    let (first, last) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (first <= last).then_some((first, Some(last)))
}

/// Every scope that picks one value of each term: `customer_number "A", "B", term "Annual"`
/// is `customer_number "A", term "Annual"` and `customer_number "B", term "Annual"`.
fn combinations(choices: &[Vec<ScopeTerm>]) -> Vec<Vec<ScopeTerm>> {
    choices.iter().fold(vec![Vec::new()], |scopes, terms| {
        scopes
            .iter()
            .flat_map(|scope| {
                terms.iter().map(move |term| {
                    let mut scope = scope.clone();
                    scope.push(term.clone());
                    scope
                })
            })
            .collect()
    })
}

/// A rule's scope as compared between rules: its terms' keywords and values, in order.
fn comparable_scope(rule: &ScopedRule) -> Vec<(String, String)> {
    let mut comparable: Vec<(String, String)> = rule
        .scope
        .iter()
        .map(|term| (term.keyword().to_string(), term.comparable_value()))
        .collect();
    comparable.sort();
    comparable
}

/// What is wrong with a tier line's band, given where the bands before it ended (`expected`
/// is the first count not yet priced; `None` after an open band).
fn band_mistake(
    key: &str,
    band: Option<(u32, Option<u32>)>,
    expected: Option<u32>,
) -> Option<String> {
    match (band, expected) {
        (None, _) => Some(format!("`{key}` is not a band: write `\"1-9\"` or, last, `\"50+\"`")),
        (_, None) => Some("the open band (`\"N+\"`) must be the last".to_string()),
        (Some((first, _)), Some(wanted)) if first != wanted => Some(format!(
            "this band starts at {first}, the bands before end at {}: bands start at 1 and follow each other",
            wanted - 1
        )),
        _ => None,
    }
}

/// Scope keywords a subscription has one value of: two rules naming one of them with
/// different values never cover products of one subscription.
const ONE_PER_SUBSCRIPTION: [&str; 7] =
    ["subscription", "organization", "customer_number", "currency", "term", "service", "broker"];

/// The setting two rules putting products on Service `service` set differently, when their
/// products can share a subscription (known from the rules alone: both set it, to different
/// values).
fn shared_service_conflict(
    first: &ScopedRule,
    second: &ScopedRule,
    service: i64,
) -> Option<&'static str> {
    if first.set.service.as_ref().map(|s| s.value) != Some(service) {
        return None;
    }
    let exclusive = first.scope.iter().any(|a| {
        ONE_PER_SUBSCRIPTION.contains(&a.keyword())
            && second
                .scope
                .iter()
                .any(|b| a.keyword() == b.keyword() && a.comparable_value() != b.comparable_value())
    });
    if exclusive {
        return None;
    }
    fn differ<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
        matches!((a, b), (Some(a), Some(b)) if a != b)
    }
    let (a, b) = (&first.set, &second.set);
    if differ(a.unit_price.as_ref().map(|r| r.value), b.unit_price.as_ref().map(|r| r.value)) {
        Some("unit_price")
    } else if differ(a.unit_cost.as_ref().map(|r| r.value), b.unit_cost.as_ref().map(|r| r.value)) {
        Some("unit_cost")
    } else if differ(
        a.price_point.as_ref().map(|r| r.value),
        b.price_point.as_ref().map(|r| r.value),
    ) {
        Some("price_point")
    } else if differ(a.max_price.as_ref().map(|r| r.value), b.max_price.as_ref().map(|r| r.value)) {
        Some("max_price")
    } else if differ(a.decrease.as_ref().map(|r| r.value), b.decrease.as_ref().map(|r| r.value)) {
        Some("decrease")
    } else {
        None
    }
}

impl<'a> Compiler<'a> {
    /// Compiles every `for` rule collected from the files, in file order.
    pub(crate) fn scoped_rules(&mut self) -> Vec<ScopedRule> {
        let blocks = std::mem::take(&mut self.scoped_blocks);
        let mut rules = Vec::new();
        // Scope (as compared) → the settings rules with it set, and where.
        let mut seen: BTreeMap<Vec<(String, String)>, BTreeMap<&'a str, Location>> =
            BTreeMap::new();
        // Rules naming a Service, with where: two that can put products of one subscription on
        // one Service must agree on what one contract service holds.
        let mut by_service: Vec<(ScopedRule, Location)> = Vec::new();
        for (file, block) in blocks {
            let (settings, _) = self.read_block(file, block, SCOPED_KEYS, is_tier);
            // A rule naming several values of one term is one rule per value: report a
            // setting it repeats once, however many of its copies meet an earlier rule.
            let mut reported = std::collections::BTreeSet::new();
            let mut reported_service = std::collections::BTreeSet::new();
            for rule in self.scoped_rule(file, block) {
                if self.contract_wide_term(file, &settings, &rule, &mut reported) {
                    continue;
                }
                let conflicts = &mut reported_service;
                self.shared_service(file, &settings, &rule, &mut by_service, conflicts);
                let earlier = seen.entry(comparable_scope(&rule)).or_default();
                self.same_scope_settings(file, &settings, earlier, &mut reported);
                rules.push(rule);
            }
        }
        rules
    }

    /// Refuses a setting an earlier rule with the same scope already sets (neither is more
    /// specific, so neither could win); records the settings seen first.
    fn same_scope_settings(
        &mut self,
        file: &'a ParsedFile,
        settings: &BTreeMap<&'a str, &'a crate::ast::Setting>,
        earlier: &mut BTreeMap<&'a str, Location>,
        reported: &mut std::collections::BTreeSet<&'a str>,
    ) {
        for (key, setting) in settings {
            let location = file.location(setting.key.span);
            match earlier.get(key) {
                Some(first) if reported.insert(*key) => self.report(
                    file,
                    setting.key.span,
                    ErrorKind::AmbiguousRules {
                        setting: key.to_string(),
                        detail: "two rules with one scope are equally specific",
                        first: first.clone(),
                    },
                ),
                Some(_) => {}
                None => {
                    earlier.insert(key, location);
                }
            }
        }
    }

    /// A contract's term is its subscription's: a product's scope cannot set it (the contract
    /// would take whichever product its current bill lists first). Reported once per rule;
    /// true when the rule is refused.
    fn contract_wide_term(
        &mut self,
        file: &'a ParsedFile,
        settings: &BTreeMap<&'a str, &'a crate::ast::Setting>,
        rule: &ScopedRule,
        reported: &mut std::collections::BTreeSet<&'a str>,
    ) -> bool {
        let (Some(_), Some(setting)) = (&rule.set.term_months, settings.get("term_months")) else {
            return false;
        };
        let Some(term) = rule.scope.iter().find(|term| {
            matches!(
                term.dimension(),
                Dimension::Product | Dimension::ProductName | Dimension::MeterCategory
            )
        }) else {
            return false;
        };
        if reported.insert("term_months (contract-wide)") {
            let kind = ErrorKind::ContractWideSetting {
                setting: "term_months",
                dimension: term.dimension().describe(),
            };
            self.report(file, setting.key.span, kind);
        }
        true
    }

    /// Two rules that can put products of one subscription on one Service must agree on what
    /// its one contract service holds: refused at the later rule's `service` line (once for a
    /// rule's several copies).
    fn shared_service(
        &mut self,
        file: &'a ParsedFile,
        settings: &BTreeMap<&'a str, &'a crate::ast::Setting>,
        rule: &ScopedRule,
        by_service: &mut Vec<(ScopedRule, Location)>,
        reported: &mut std::collections::BTreeSet<&'static str>,
    ) {
        let (Some(service), Some(setting)) = (&rule.set.service, settings.get("service")) else {
            return;
        };
        let location = file.location(setting.key.span);
        for (other, first) in by_service.iter() {
            if let Some(conflict) = shared_service_conflict(other, rule, service.value) {
                if reported.insert(conflict) {
                    let kind = ErrorKind::SharedServiceConflict {
                        service: service.value,
                        setting: conflict,
                        first: first.clone(),
                    };
                    self.report(file, setting.key.span, kind);
                }
            }
        }
        by_service.push((rule.clone(), location));
    }

    /// A rule's seat-count tiers: its `tier "BAND" = PRICE` lines (bands from 1, one after
    /// the other, the last open: `"50+"`) and `tiers = volume | graduated`. `Some(None)` when
    /// it states none; `None` when they are wrong (reported).
    fn tiers(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<Option<Ruled<Tiers>>> {
        let lines: Vec<&crate::ast::KeyedRule> = block
            .statements
            .iter()
            .filter_map(|statement| match statement {
                Statement::KeyedRule(rule) if rule.keyword.node == "tier" => Some(rule),
                _ => None,
            })
            .collect();
        let mode = block.statements.iter().find_map(|statement| match statement {
            Statement::Setting(setting) if setting.key.node == "tiers" => Some(setting),
            _ => None,
        });
        let graduated = match mode {
            Some(setting) => {
                let choices = [("volume", false), ("graduated", true)];
                self.choice_setting(file, setting, &choices)?.value
            }
            None => false,
        };
        let Some(first_line) = lines.first() else {
            if let Some(setting) = mode {
                self.report(
                    file,
                    setting.key.span,
                    ErrorKind::TierBands {
                        detail: "`tiers` needs `tier \"1-9\" = PRICE` lines".into(),
                    },
                );
                return None;
            }
            return Some(None);
        };
        let bands = self.tier_bands(file, &lines)?;
        let origin = file.origin(first_line.span);
        Some(Some(Ruled { value: Tiers { bands, graduated }, origin }))
    }

    /// The bands of a rule's `tier` lines (at least one) with their prices: from 1, each after
    /// the one before, the last open. `None` at the first mistake (reported).
    fn tier_bands(
        &mut self,
        file: &'a ParsedFile,
        lines: &[&crate::ast::KeyedRule],
    ) -> Option<Vec<(u32, cmat_engine::rules::PriceSource)>> {
        let mut bands = Vec::new();
        let mut expected = Some(1);
        for line in lines {
            let band = band_of(&line.key.node);
            if let Some(detail) = band_mistake(&line.key.node, band, expected) {
                self.report(file, line.key.span, ErrorKind::TierBands { detail });
                return None;
            }
            let (first, last) = band?;
            let setting = crate::ast::Setting {
                key: line.keyword.clone(),
                value: line.value.clone(),
                span: line.span,
            };
            bands.push((first, self.price_source(file, &setting)?.value));
            expected = last.map(|last| last + 1);
        }
        if expected.is_some() {
            let detail = "the last band must be open (`\"50+\"`), or counts above it have no price"
                .to_string();
            let span = lines.last().map(|line| line.key.span).unwrap_or_default();
            self.report(file, span, ErrorKind::TierBands { detail });
            return None;
        }
        Some(bands)
    }

    /// A per-seat add-on: `add_on_service = ID` and `add_on_price = PRICE` together, and
    /// optionally `add_on_cost = COST` (0). `Some(None)` when the rule states none; `None` when
    /// it is wrong (reported).
    fn add_on(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<Option<Ruled<AddOn>>> {
        let setting = |name: &str| {
            block.statements.iter().find_map(|statement| match statement {
                Statement::Setting(setting) if setting.key.node == name => Some(setting),
                _ => None,
            })
        };
        let (service, price, cost) =
            (setting("add_on_service"), setting("add_on_price"), setting("add_on_cost"));
        let Some(service) = service else {
            if let Some(other) = price.or(cost) {
                self.report(
                    file,
                    other.key.span,
                    ErrorKind::AddOnIncomplete { missing: "add_on_service" },
                );
                return None;
            }
            return Some(None);
        };
        let Some(price) = price else {
            self.report(
                file,
                service.key.span,
                ErrorKind::AddOnIncomplete { missing: "add_on_price" },
            );
            return None;
        };
        let id = self.id_setting(file, service);
        let price = self.max_price_setting(file, price);
        let cost = match cost {
            Some(cost) => Some(self.max_price_setting(file, cost)?.value),
            None => Some(rust_decimal::Decimal::ZERO),
        };
        let value = AddOn { service: id?.value, price: price?.value, cost: cost? };
        Some(Some(Ruled { value, origin: file.origin(service.span) }))
    }

    /// One scope term's value checked: not empty, a date for `from`/`until`, a known keyword,
    /// a service with a `service` rule. `None` once reported.
    fn scope_value(
        &mut self,
        file: &'a ParsedFile,
        keyword: &crate::ast::Spanned<String>,
        value: &crate::ast::Spanned<String>,
    ) -> Option<ScopeTerm> {
        if !self.non_empty(file, &value.node, value.span, "a scope's value") {
            return None;
        }
        let dated = matches!(keyword.node.as_str(), "from" | "until");
        // `YYYY-MM-DD` exactly: chrono alone also reads `2026-12-1`.
        let date = value.node.trim();
        if dated && (date.len() != 10 || date.parse::<chrono::NaiveDate>().is_err()) {
            let (keyword, found) = (keyword.node.clone(), value.node.clone());
            self.report(file, value.span, ErrorKind::InvalidDate { keyword, found });
            return None;
        }
        let Some(term) = ScopeTerm::from_keyword(&keyword.node, value.node.trim().to_string())
        else {
            self.report(
                file,
                keyword.span,
                ErrorKind::UnknownScope { found: keyword.node.clone() },
            );
            return None;
        };
        if let ScopeTerm::Service(name) = &term {
            if !self.services.contains_key(name) {
                let known = self.services.keys().cloned().collect();
                let kind = ErrorKind::UnknownService { name: name.clone(), valid: known };
                self.report(file, value.span, kind);
                return None;
            }
        }
        Some(term)
    }

    /// The rule of a `for` block: one per combination of the values its terms list (none when
    /// it has errors, reported).
    fn scoped_rule(&mut self, file: &'a ParsedFile, block: &'a Block) -> Vec<ScopedRule> {
        let (choices, valid) = self.scope_choices(file, block);
        let first_scope: Vec<ScopeTerm> = choices.iter().map(|terms| terms[0].clone()).collect();
        self.dates_never_meet(file, block, &first_scope);
        let priority = self.priority(file, block);
        let Some(set) = self.rule_settings(file, block) else { return Vec::new() };
        let (Some(priority), true) = (priority, valid) else { return Vec::new() };
        let origin = file.origin(block.name.span);
        combinations(&choices)
            .into_iter()
            .map(|scope| ScopedRule {
                specificity: Specificity::of(&scope).with_priority(priority),
                scope,
                set: set.clone(),
                origin: origin.clone(),
            })
            .collect()
    }

    /// The values each scope term of a `for` block lists (checked, and recorded for `cmat
    /// check`'s warnings), and false when any term was wrong (reported).
    fn scope_choices(
        &mut self,
        file: &'a ParsedFile,
        block: &'a Block,
    ) -> (Vec<Vec<ScopeTerm>>, bool) {
        let mut choices: Vec<Vec<ScopeTerm>> = Vec::new();
        let mut dimensions: BTreeMap<_, Location> = BTreeMap::new();
        let mut valid = true;
        for item in &block.scope {
            let location = file.location(item.span);
            let terms: Vec<Option<ScopeTerm>> = std::iter::once(&item.value)
                .chain(&item.more)
                .map(|value| self.scope_value(file, &item.keyword, value))
                .collect();
            let Some(terms) = terms.into_iter().collect::<Option<Vec<ScopeTerm>>>() else {
                valid = false;
                continue;
            };
            let dimension = terms[0].dimension();
            // An organization has several groups (`;`-separated): a scope may name several,
            // all of which the organization must be in. Any other dimension has one value.
            let several_allowed = matches!(terms[0], ScopeTerm::OrganizationGroup(_));
            if let Some(first) = dimensions.get(&dimension).filter(|_| !several_allowed) {
                let first = first.clone();
                let kind = ErrorKind::RepeatedDimension { dimension: dimension.describe(), first };
                self.report(file, item.span, kind);
                valid = false;
                continue;
            }
            dimensions.insert(dimension, location.clone());
            self.scope_terms.extend(terms.iter().map(|term| (term.clone(), location.clone())));
            choices.push(terms);
        }
        (choices, valid)
    }

    /// What a `for` block sets, its tiers and add-on included; `None` when it is wrong or sets
    /// nothing (reported, but for a rule whose only mistakes were reported already).
    fn rule_settings(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<ScopedSettings> {
        let tiers = self.tiers(file, block);
        let add_on = self.add_on(file, block);
        let mut set = self.scoped_settings(file, block)?;
        let tiers = tiers?;
        if tiers.is_some() && set.unit_price.is_some() {
            self.report(file, block.name.span, ErrorKind::TiersAndPrice);
            return None;
        }
        set.tiers = tiers;
        set.add_on = add_on?;
        if set == ScopedSettings::default() {
            if block.statements.is_empty() {
                self.report(file, block.name.span, ErrorKind::EmptyScopedRule);
            }
            return None;
        }
        Some(set)
    }

    /// A warning for a rule whose `from` is after its `until`: it checks, and never applies.
    fn dates_never_meet(&mut self, file: &ParsedFile, block: &Block, scope: &[ScopeTerm]) {
        let date =
            |wanted: fn(&ScopeTerm) -> Option<chrono::NaiveDate>| scope.iter().find_map(wanted);
        let from = date(|term| match term {
            ScopeTerm::From(date) => Some(*date),
            _ => None,
        });
        let until = date(|term| match term {
            ScopeTerm::Until(date) => Some(*date),
            _ => None,
        });
        if let (Some(from), Some(until)) = (from, until) {
            if from > until {
                let kind =
                    ErrorKind::DatesNeverApply { from: from.to_string(), until: until.to_string() };
                let location = file.location(block.name.span);
                self.warnings.push(Diagnostic::warning_at(kind, location));
            }
        }
    }

    /// `priority = N` (0–1000): decides between matching rules only when their scopes are
    /// equally specific; 0 when the rule has none. `None` when it is invalid (reported).
    fn priority(&mut self, file: &ParsedFile, block: &Block) -> Option<i32> {
        let setting = block.statements.iter().find_map(|statement| match statement {
            Statement::Setting(setting) if setting.key.node == "priority" => Some(setting),
            _ => None,
        });
        match setting {
            Some(setting) => self.whole_number(file, setting, 0, 1000).map(|n| n.value as i32),
            None => Some(0),
        }
    }

    fn scoped_settings(
        &mut self,
        file: &'a ParsedFile,
        block: &'a Block,
    ) -> Option<ScopedSettings> {
        // Errors in the block's statements (unknown or repeated settings, nested blocks) are
        // reported once, by `scoped_rules`; here each known setting is typed.
        let mut set = ScopedSettings::default();
        let mut valid = true;
        for statement in &block.statements {
            let Statement::Setting(setting) = statement else { continue };
            let before = self.diagnostics.len();
            if !self.scoped_price_setting(file, setting, &mut set)
                && !self.scoped_placement_setting(file, setting, &mut set)
            {
                self.scoped_charge_setting(file, setting, &mut set);
            }
            valid &= self.diagnostics.len() == before;
        }
        valid.then_some(set)
    }

    /// A `for` rule's price and cost settings; false when `setting` is none of them.
    fn scoped_price_setting(
        &mut self,
        file: &ParsedFile,
        setting: &crate::ast::Setting,
        set: &mut ScopedSettings,
    ) -> bool {
        match setting.key.node.as_str() {
            "unit_price" => set.unit_price = self.price_source(file, setting),
            "unit_cost" => set.unit_cost = self.cost_source(file, setting),
            "price_point" => set.price_point = self.price_point_setting(file, setting),
            "max_price" => set.max_price = self.max_price_setting(file, setting),
            "scale" => set.scale = self.whole_number(file, setting, 0, 28),
            "rounding" => set.rounding = self.rounding_setting(file, setting),
            "margin_floor" => set.margin_floor = self.margin_floor_setting(file, setting),
            "margin_policy" => set.margin_policy = self.margin_policy_setting(file, setting),
            _ => return false,
        }
        true
    }

    /// A `for` rule's settings of where its lines go (company, contract, Service); false when
    /// `setting` is none of them.
    fn scoped_placement_setting(
        &mut self,
        file: &ParsedFile,
        setting: &crate::ast::Setting,
        set: &mut ScopedSettings,
    ) -> bool {
        match setting.key.node.as_str() {
            "company" => set.company = self.id_setting(file, setting),
            "contract_name" => set.contract_name = self.template_setting(file, setting, false),
            "contract_category" => set.contract_category = self.id_setting(file, setting),
            "line_of_business" => set.line_of_business = self.id_setting(file, setting),
            "service_level_agreement" => {
                set.service_level_agreement = self.id_setting(file, setting)
            }
            "service" => set.service = self.id_setting(file, setting),
            "service_per_term" => set.service_per_term = self.bool_setting(file, setting),
            "term_months" => set.term_months = self.term_months_setting(file, setting),
            _ => return false,
        }
        true
    }

    /// A `for` rule's settings of what its lines bill and how changes are treated.
    fn scoped_charge_setting(
        &mut self,
        file: &ParsedFile,
        setting: &crate::ast::Setting,
        set: &mut ScopedSettings,
    ) {
        match setting.key.node.as_str() {
            "skip" => set.skip = self.bool_setting(file, setting),
            "skip_zero_amount" => set.skip_zero_amount = self.bool_setting(file, setting),
            "included_units" => set.included_units = self.whole_number(file, setting, 0, 1_000_000),
            "minimum_units" => set.minimum_units = self.whole_number(file, setting, 0, 1_000_000),
            "consumption_split" => set.consumption_split = self.split_setting(file, setting),
            "decrease" => set.decrease = self.decrease_setting(file, setting),
            "charge_name" => set.charge_name = self.template_setting(file, setting, false),
            "removed_product" => set.removed_product = self.removed_product_setting(file, setting),
            "billed_charge_mismatch" => {
                set.billed_charge_mismatch = self.billed_charge_mismatch_setting(file, setting)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compile_sources;

    fn check(extra: &str) -> Result<cmat_engine::rules::RuleSet, String> {
        let text = format!("{}\n{extra}", crate::default_rules(29682801, 29682802, 1));
        compile_sources(&[("mappings/m.cmat".to_string(), text)])
            .map(|checked| checked.rules)
            .map_err(|diagnostics| diagnostics.to_string())
    }

    #[test]
    fn a_scoped_rule_compiles_with_its_scope_and_line() {
        let rules = check(
            "for organization \"Contoso Ltd\", product \"Microsoft 365 E*\" {\n    unit_price = sales_price - 10%\n    margin_floor = 8%\n    margin_policy = refuse\n}\n",
        )
        .expect("checks");
        let rule = &rules.scoped[0];
        assert_eq!(
            rule.scope_label(),
            "for organization \"Contoso Ltd\", product \"Microsoft 365 E*\""
        );
        assert_eq!(
            rule.set.unit_price.as_ref().map(|price| price.value),
            Some(cmat_engine::rules::PriceSource::SalesLessDiscount("0.1".parse().expect("0.1")))
        );
        assert_eq!(
            rule.set.margin_floor.as_ref().map(|floor| floor.value),
            Some(cmat_engine::rules::MarginFloor::Percent("0.08".parse().expect("0.08")))
        );
        assert!(rule.origin.line > 1);
    }

    #[test]
    fn several_organization_groups_make_one_scope_all_of_them_required() {
        let rules =
            check("for organization_group \"A\", organization_group \"B\" {\n    skip = true\n}\n")
                .expect("several groups in one scope");
        let rule = &rules.scoped[0];
        assert_eq!(rule.scope.len(), 2);
        let facts = |groups: &'static str| cmat_engine::rules::LineFacts {
            service: "",
            broker: "",
            organization: "",
            customer_number: "",
            organization_groups: groups,
            item_code: "",
            product_id: "",
            product_name: "",
            meter_category: "",
            subscription: "",
            term: "",
            currency: "",
            billing_date: chrono::NaiveDate::MIN,
        };
        assert!(rule.matches(&facts("A; B")));
        assert!(rule.matches(&facts("B;Managed;A")));
        assert!(!rule.matches(&facts("A")));
    }

    #[test]
    fn term_months_and_policies_are_settable_per_scope() {
        let rules = check(
            "for term \"Annual\" {\n    term_months = 36\n    removed_product = report\n    billed_charge_mismatch = report\n    charge_name = \"Azure {period} (annual)\"\n}\n",
        )
        .expect("checks");
        let set = &rules.scoped[0].set;
        assert_eq!(set.term_months.as_ref().map(|t| t.value), Some(36));
        assert_eq!(
            set.removed_product.as_ref().map(|r| r.value),
            Some(cmat_engine::rules::RemovedProduct::Report)
        );
        assert_eq!(
            set.billed_charge_mismatch.as_ref().map(|r| r.value),
            Some(cmat_engine::rules::BilledChargeMismatch::Report)
        );
        assert!(set.charge_name.is_some());
        let errors =
            check("for term \"Annual\" {\n    term_months = 0\n}\n").expect_err("0 months");
        assert!(errors.contains("term_months"), "{errors}");
    }

    #[test]
    fn dates_priorities_brokers_and_value_lists_compile() {
        let text = "for customer_number \"A\", \"B\", broker \"Ingram\", from \"2026-12-01\" {\n    unit_cost = cost - 3%\n    priority = 5\n}\n";
        let checked = compile_sources(&[(
            "mappings/m.cmat".to_string(),
            format!("{}\n{text}", crate::default_rules(29682801, 29682802, 1)),
        )])
        .expect("checks");
        let rules = &checked.rules.scoped;
        assert_eq!(rules.len(), 2, "one rule per customer number");
        assert_eq!(
            rules[1].scope_label(),
            "for customer_number \"B\", broker \"Ingram\", from \"2026-12-01\""
        );
        assert_eq!(rules[0].specificity.priority, 5);
        assert_eq!(rules[0].specificity.from, "2026-12-01".parse().ok());
        assert_eq!(rules[0].dates_label().as_deref(), Some("from 2026-12-01"));
        assert!(checked.warnings.is_empty());
        // Dates that never meet check, with a warning on the rule.
        let never = compile_sources(&[(
            "mappings/m.cmat".to_string(),
            format!(
                "{}\nfor from \"2027-01-01\", until \"2026-12-31\" {{\n    skip = true\n}}\n",
                crate::default_rules(29682801, 29682802, 1)
            ),
        )])
        .expect("a warning, not an error");
        assert_eq!(never.warnings.len(), 1);
        assert!(never.warnings[0].to_string().contains("never applies"), "{}", never.warnings[0]);
        let errors = check("for from \"2026-13-01\" {\n    skip = true\n}\n").expect_err("date");
        assert!(
            errors.contains("`from` expects a date written `YYYY-MM-DD`, found \"2026-13-01\""),
            "{errors}"
        );
        let errors =
            check("for customer_number \"A\", \"A\" {\n    skip = true\n}\n").expect_err("twice");
        assert!(errors.contains("`skip` is set twice for the same scope"), "{errors}");
        let errors = check("for item_code \"A\" {\n    skip = true\n    priority = -1\n}\n")
            .expect_err("priority");
        assert!(errors.contains("`priority` must be a whole number from 0 to 1000"), "{errors}");
    }

    #[test]
    fn products_on_one_service_at_prices_the_rules_set_apart_are_refused_where_written() {
        let errors = check(
            "for item_code \"A\" {\n    service = 5\n    unit_price = 10\n}\nfor item_code \"B\" {\n    service = 5\n    unit_price = 12\n}\n",
        )
        .expect_err("one Service, two prices");
        assert!(errors.contains("put on Service 5 can share a subscription"), "{errors}");
        assert!(errors.contains("unit_price"), "{errors}");
        // Rules for two organizations never meet in one subscription; one price is fine.
        check(
            "for organization \"X\", item_code \"A\" {\n    service = 5\n    unit_price = 10\n}\nfor organization \"Y\", item_code \"B\" {\n    service = 5\n    unit_price = 12\n}\n",
        )
        .expect("apart");
        check(
            "for item_code \"A\" {\n    service = 5\n    unit_price = 10\n}\nfor item_code \"B\" {\n    service = 5\n    unit_price = 10\n}\n",
        )
        .expect("one price");
    }

    /// A margin warning cites the policy's own line, or says no rule sets it: never the
    /// `prices` block's line as if a policy were written there.
    #[test]
    fn a_margin_warning_cites_a_real_policy_line_or_none() {
        let warning = |extra: &str| {
            let rules = check(extra).expect("checks");
            let line = cmat_engine::billing::BillLine {
                billing_date: "2026-10-01".parse().expect("date"),
                service_name: "Microsoft NCE".into(),
                organization_name: "Contoso".into(),
                item_code: "A".into(),
                subscription_id: "S1".into(),
                quantity: 1.into(),
                unit_cost_price: 10.into(),
                unit_sales_price: 10.into(),
                autotask_company_id: Some(1),
                ..Default::default()
            };
            let desired = cmat_engine::desired::desired_state(&rules, &[line]);
            desired.warnings.iter().map(|w| w.message.clone()).collect::<Vec<_>>().join("\n")
        };
        let by_default = warning("for item_code \"A\" {\n    margin_floor = 20%\n}\n");
        assert!(
            by_default.contains("margin_policy warn by default: no rule sets it"),
            "{by_default}"
        );
        let written = warning(
            "for item_code \"A\" {\n    margin_floor = 20%\n    margin_policy = refuse\n}\n",
        );
        let floor_rule = crate::default_rules(29682801, 29682802, 1).lines().count() + 4;
        assert!(
            written.contains(&format!("margin_policy at mappings/m.cmat:{floor_rule}")),
            "{written}"
        );
    }

    #[test]
    fn misuse_is_located() {
        let errors =
            check("for organisation \"X\" {\n    skip = true\n}\n").expect_err("unknown scope");
        assert!(errors.contains("error: unknown scope `organisation`"), "{errors}");
        let errors =
            check("for service \"Acronis\" {\n    skip = true\n}\n").expect_err("unknown service");
        assert!(
            errors.contains("service \"Acronis\" is not billed by any `service` rule"),
            "{errors}"
        );
        let errors = check("for organization \"A\", customer_number \"C\" {\n    skip = true\n}\n")
            .expect_err("one dimension twice");
        assert!(
            errors.contains("names the organization (name or Customer Number) twice"),
            "{errors}"
        );
        let errors = check(
            "for item_code \"A\" {\n    unit_price = cost + 5%\n}\nfor item_code \"A\" {\n    unit_price = cost + 6%\n}\n",
        )
        .expect_err("ambiguous");
        assert!(errors.contains("`unit_price` is set twice for the same scope"), "{errors}");
        let errors =
            check("for item_code \"A\" {\n    margin_floor = \"10\"\n}\n").expect_err("a string");
        assert!(
            errors.contains("`margin_floor` expects a percentage (`10%`) or an amount per unit (`1.00`), found a string"),
            "{errors}"
        );
        let errors = check("for item_code \"A\" {\n    unit_price = sales_price - 10\n}\n")
            .expect_err("discount");
        assert!(errors.contains("the discount or uplift `10` is not a percent"), "{errors}");
        let errors = check("for item_code \"A\" {\n    decrease = later\n}\n").expect_err("timing");
        assert!(errors.contains("`later` is not a valid value for `decrease`"), "{errors}");
        let errors =
            check("for item_code \"A\" {\n    colour = 1\n}\n").expect_err("unknown setting");
        assert!(errors.contains("unknown setting `colour` in `for`"), "{errors}");
        let errors = check("for item_code \"A\" {\n}\n").expect_err("empty");
        assert!(errors.contains("this rule sets nothing"), "{errors}");
    }
}
