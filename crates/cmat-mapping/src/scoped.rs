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
use cmat_engine::rules::{ScopeTerm, ScopedRule, ScopedSettings, Specificity};

use super::ast::{Block, Statement};
use super::compile::{Compiler, ParsedFile};
use super::diagnostic::{ErrorKind, Location};

/// What a `for` rule may set.
pub const SCOPED_KEYS: &[&str] = &[
    "company",
    "unit_price",
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
];

/// Scope keywords a subscription has one value of: two rules naming one of them with
/// different values never cover products of one subscription.
const ONE_PER_SUBSCRIPTION: [&str; 6] =
    ["subscription", "organization", "customer_number", "currency", "term", "service"];

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
            let (settings, _) = self.read_block(file, block, SCOPED_KEYS, |_| false);
            let Some(rule) = self.scoped_rule(file, block) else { continue };
            // A contract's term is its subscription's: a product's scope cannot set it (the
            // contract would take whichever product its current bill lists first).
            if let (Some(_), Some(setting)) = (&rule.set.term_months, settings.get("term_months")) {
                if let Some(term) = rule.scope.iter().find(|term| {
                    matches!(
                        term.dimension(),
                        Dimension::Product | Dimension::ProductName | Dimension::MeterCategory
                    )
                }) {
                    self.report(
                        file,
                        setting.key.span,
                        ErrorKind::ContractWideSetting {
                            setting: "term_months",
                            dimension: term.dimension().describe(),
                        },
                    );
                    continue;
                }
            }
            if let (Some(service), Some(setting)) = (&rule.set.service, settings.get("service")) {
                let location = file.location(setting.key.span);
                for (other, first) in &by_service {
                    if let Some(conflict) = shared_service_conflict(other, &rule, service.value) {
                        self.report(
                            file,
                            setting.key.span,
                            ErrorKind::SharedServiceConflict {
                                service: service.value,
                                setting: conflict,
                                first: first.clone(),
                            },
                        );
                    }
                }
                by_service.push((rule.clone(), location));
            }
            let mut comparable: Vec<(String, String)> = rule
                .scope
                .iter()
                .map(|term| (term.keyword().to_string(), term.comparable_value()))
                .collect();
            comparable.sort();
            let earlier = seen.entry(comparable).or_default();
            for (key, setting) in &settings {
                let location = file.location(setting.key.span);
                match earlier.get(key) {
                    Some(first) => self.report(
                        file,
                        setting.key.span,
                        ErrorKind::AmbiguousRules {
                            setting: key.to_string(),
                            detail: "two rules with one scope are equally specific",
                            first: first.clone(),
                        },
                    ),
                    None => {
                        earlier.insert(key, location);
                    }
                }
            }
            rules.push(rule);
        }
        rules
    }

    fn scoped_rule(&mut self, file: &'a ParsedFile, block: &'a Block) -> Option<ScopedRule> {
        let mut scope = Vec::new();
        let mut dimensions: BTreeMap<_, Location> = BTreeMap::new();
        let mut valid = true;
        for item in &block.scope {
            let location = file.location(item.span);
            if !self.non_empty(file, &item.value.node, item.value.span, "a scope's value") {
                valid = false;
                continue;
            }
            let Some(term) =
                ScopeTerm::from_keyword(&item.keyword.node, item.value.node.trim().to_string())
            else {
                self.report(
                    file,
                    item.keyword.span,
                    ErrorKind::UnknownScope { found: item.keyword.node.clone() },
                );
                valid = false;
                continue;
            };
            // An organization has several groups (`;`-separated): a scope may name several,
            // all of which the organization must be in. Any other dimension has one value.
            let several_allowed = matches!(term, ScopeTerm::OrganizationGroup(_));
            if let Some(first) = dimensions.get(&term.dimension()).filter(|_| !several_allowed) {
                let first = first.clone();
                self.report(
                    file,
                    item.span,
                    ErrorKind::RepeatedDimension { dimension: term.dimension().describe(), first },
                );
                valid = false;
                continue;
            }
            if let ScopeTerm::Service(name) = &term {
                if !self.services.contains_key(name) {
                    let known = self.services.keys().cloned().collect();
                    self.report(
                        file,
                        item.value.span,
                        ErrorKind::UnknownService { name: name.clone(), valid: known },
                    );
                    valid = false;
                    continue;
                }
            }
            dimensions.insert(term.dimension(), location.clone());
            self.scope_terms.push((term.clone(), location));
            scope.push(term);
        }
        let set = self.scoped_settings(file, block)?;
        if set == ScopedSettings::default() {
            if block.statements.is_empty() {
                self.report(file, block.name.span, ErrorKind::EmptyScopedRule);
            }
            return None;
        }
        valid.then(|| ScopedRule {
            specificity: Specificity::of(&scope),
            scope,
            set,
            origin: file.origin(block.name.span),
        })
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
            match setting.key.node.as_str() {
                "company" => set.company = self.id_setting(file, setting),
                "unit_price" => set.unit_price = self.price_source(file, setting),
                "scale" => set.scale = self.whole_number(file, setting, 0, 28),
                "rounding" => {
                    set.rounding = self.choice_setting(
                        file,
                        setting,
                        &[
                            ("half_up", cmat_engine::rules::Rounding::HalfUp),
                            ("half_even", cmat_engine::rules::Rounding::HalfEven),
                            ("down", cmat_engine::rules::Rounding::Down),
                            ("up", cmat_engine::rules::Rounding::Up),
                        ],
                    )
                }
                "margin_floor" => set.margin_floor = self.percent_setting(file, setting),
                "margin_policy" => set.margin_policy = self.margin_policy_setting(file, setting),
                "contract_name" => set.contract_name = self.template_setting(file, setting, false),
                "contract_category" => set.contract_category = self.id_setting(file, setting),
                "line_of_business" => set.line_of_business = self.id_setting(file, setting),
                "service_level_agreement" => {
                    set.service_level_agreement = self.id_setting(file, setting)
                }
                "service" => set.service = self.id_setting(file, setting),
                "service_per_term" => set.service_per_term = self.bool_setting(file, setting),
                "skip" => set.skip = self.bool_setting(file, setting),
                "skip_zero_amount" => set.skip_zero_amount = self.bool_setting(file, setting),
                "included_units" => {
                    set.included_units = self.whole_number(file, setting, 0, 1_000_000)
                }
                "minimum_units" => {
                    set.minimum_units = self.whole_number(file, setting, 0, 1_000_000)
                }
                "consumption_split" => set.consumption_split = self.split_setting(file, setting),
                "decrease" => set.decrease = self.decrease_setting(file, setting),
                "term_months" => set.term_months = self.term_months_setting(file, setting),
                "charge_name" => set.charge_name = self.template_setting(file, setting, false),
                "removed_product" => {
                    set.removed_product = self.removed_product_setting(file, setting)
                }
                "billed_charge_mismatch" => {
                    set.billed_charge_mismatch = self.billed_charge_mismatch_setting(file, setting)
                }
                _ => {}
            }
            valid &= self.diagnostics.len() == before;
        }
        valid.then_some(set)
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
            rule.set.margin_floor.as_ref().map(|floor| floor.value.to_string()),
            Some("0.08".into())
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
            check("for item_code \"A\" {\n    margin_floor = 10\n}\n").expect_err("not a percent");
        assert!(
            errors.contains("`margin_floor` expects a percentage (`10%`), found a number"),
            "{errors}"
        );
        let errors = check("for item_code \"A\" {\n    unit_price = sales_price - 10\n}\n")
            .expect_err("discount");
        assert!(errors.contains("the discount `10` is not a percent"), "{errors}");
        let errors = check("for item_code \"A\" {\n    decrease = later\n}\n").expect_err("timing");
        assert!(errors.contains("`later` is not a valid value for `decrease`"), "{errors}");
        let errors =
            check("for item_code \"A\" {\n    colour = 1\n}\n").expect_err("unknown setting");
        assert!(errors.contains("unknown setting `colour` in `for`"), "{errors}");
        let errors = check("for item_code \"A\" {\n}\n").expect_err("empty");
        assert!(errors.contains("this rule sets nothing"), "{errors}");
    }
}
