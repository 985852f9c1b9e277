//! The rules name picklist entries by label (`"Recurring Service"`, `monthly`); Autotask wants
//! the tenant's numbers, which differ from tenant to tenant and from what the labels suggest
//! (live recurring contracts show `contractPeriodType` 2 for Monthly and 5 for Yearly). This
//! stage looks each label up in the picklists `pull autotask` read from
//! `entityInformation/fields`, between the rules and the diff, so that a label the tenant
//! lacks is an error naming the rule before a plan is made, never an HTTP 500 at apply.
//! Pure: rules and snapshot in, numbers or located errors out.

use std::fmt;

use crate::rules::{PeriodType, PicklistChoice, RuleOrigin, RuleSet, Ruled};
use crate::snapshot::{PicklistEntry, Picklists};

/// The picklist fields cmat sends or checks, by entity: read from
/// `{Entity}/entityInformation/fields` on every pull (one request each), so that labels in the
/// rules resolve to this tenant's numbers (this module).
pub const PICKLIST_FIELDS: [(&str, &[&str]); 4] = [
    (
        "Contracts",
        &[
            "contractType",
            "status",
            "contractPeriodType",
            "serviceLevelAgreementID",
            "contractCategory",
        ],
    ),
    ("Services", &["periodType"]),
    ("ContractCharges", &["chargeType"]),
    ("BillingCodes", &["useType"]),
];

/// The numbers cmat sends, resolved against one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantValues {
    /// The tenant's number for the contract type the rules name.
    pub contract_type: i64,
    /// The tenant's number for the status the rules give new contracts.
    pub contract_status: i64,
    /// None when the tenant's Contracts have no `contractPeriodType` field (then it is not sent).
    pub contract_period_type: Option<i64>,
    /// None when the rules create no Services.
    pub service_period_type: Option<i64>,
    /// The tenant's number for the consumption charges' type.
    pub charge_type: i64,
}

/// A rule naming a picklist entry the tenant does not have (or has inactive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PicklistError {
    /// The rule that names the entry, so the user knows which line to change.
    pub origin: RuleOrigin,
    /// What the tenant lacks.
    pub message: String,
    /// What to do: the tenant's active entries, or how to read them.
    pub hint: String,
}

impl fmt::Display for PicklistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}\n  hint: {}", self.origin, self.message, self.hint)
    }
}

/// Labels match ignoring case, spaces and punctuation: `semi_annual` is "Semi-Annual".
pub fn normalize(label: &str) -> String {
    label.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// A plural is the same label (`"Recurring Services"` is `recurring_service`).
fn same_label(tenant: &str, wanted: &str) -> bool {
    tenant == wanted
        || tenant.strip_suffix('s') == Some(wanted)
        || wanted.strip_suffix('s') == Some(tenant)
}

/// Other names tenants give the periods the rules name (the labels are editable per tenant
/// and differ between Autotask versions).
fn synonyms(label: &str) -> &'static [&'static str] {
    match normalize(label).as_str() {
        "yearly" => &["Annual", "Annually"],
        "semiannual" => &["Semi-Annually", "Half-Yearly"],
        _ => &[],
    }
}

/// One picklist field the rules use.
struct Field<'a> {
    entity: &'static str,
    field: &'static str,
    picklists: &'a Picklists,
}

impl Field<'_> {
    fn name(&self) -> String {
        Picklists::key(self.entity, self.field)
    }

    fn entries(&self) -> Option<&[PicklistEntry]> {
        self.picklists.get(self.entity, self.field)
    }

    fn listing(entries: &[PicklistEntry]) -> String {
        let active: Vec<String> = entries
            .iter()
            .filter(|entry| entry.is_active)
            .map(|entry| format!("{} = {}", entry.label, entry.value))
            .collect();
        if active.is_empty() {
            "no active values".into()
        } else {
            active.join(", ")
        }
    }

    /// The tenant's number for `choice`, or the error that names the rule.
    fn resolve(&self, choice: &PicklistChoice, origin: &RuleOrigin) -> Result<i64, PicklistError> {
        let error =
            |message: String, hint: String| PicklistError { origin: origin.clone(), message, hint };
        let Some(entries) = self.entries() else {
            return match choice {
                // A number the user chose stands when the tenant's list is not known.
                PicklistChoice::Value(value) if self.picklists.is_empty() => Ok(*value),
                _ if self.picklists.is_empty() => Err(error(
                    format!("{choice} cannot be looked up in {}: the snapshot holds no picklists from Autotask", self.name()),
                    "run `cmat pull autotask` (it reads each field's picklist from entityInformation/fields)".into(),
                )),
                _ => Err(error(
                    format!("Autotask sent no picklist for {}", self.name()),
                    "check the API user's access to the entity with `cmat doctor`".into(),
                )),
            };
        };
        let found = match choice {
            PicklistChoice::Label(label) => {
                let wanted = std::iter::once(label.as_str()).chain(synonyms(label).iter().copied());
                wanted.map(normalize).find_map(|wanted| {
                    entries.iter().find(|entry| same_label(&normalize(&entry.label), &wanted))
                })
            }
            PicklistChoice::Value(value) => entries.iter().find(|entry| entry.value == *value),
        };
        match found {
            Some(entry) if entry.is_active => Ok(entry.value),
            Some(entry) => Err(error(
                format!(
                    "{choice} is inactive in the tenant's {} ({} = {})",
                    self.name(),
                    entry.label,
                    entry.value
                ),
                format!("activate it in Autotask, or choose one of: {}", Self::listing(entries)),
            )),
            None => Err(error(
                format!("the tenant's {} has no {choice}", self.name()),
                format!("choose one of: {}", Self::listing(entries)),
            )),
        }
    }
}

/// [`resolve_values`], and the SLA and category ids the rules name checked against the
/// tenant's lists: every error a plan must not be made with.
pub fn resolve(rules: &RuleSet, picklists: &Picklists) -> Result<TenantValues, Vec<PicklistError>> {
    match (resolve_values(rules, picklists), check_chosen_ids(rules, picklists)) {
        (Ok(values), Ok(())) => Ok(values),
        (values, ids) => Err(values
            .err()
            .unwrap_or_default()
            .into_iter()
            .chain(ids.err().unwrap_or_default())
            .collect()),
    }
}

/// The SLA is an id the user chose; when the tenant lists it, it must be active.
pub fn check_sla(rules: &RuleSet, picklists: &Picklists) -> Result<(), PicklistError> {
    check_id(picklists, "serviceLevelAgreementID", &rules.settings.service_level_agreement)
}

/// Every SLA and contract category id the rules name, the `for` rules' included: an id the
/// tenant lists must be active there.
pub fn check_chosen_ids(rules: &RuleSet, picklists: &Picklists) -> Result<(), Vec<PicklistError>> {
    let mut chosen: Vec<(&str, &Ruled<i64>)> =
        vec![("serviceLevelAgreementID", &rules.settings.service_level_agreement)];
    chosen.extend(rules.contract.category.iter().map(|rule| ("contractCategory", rule)));
    for rule in &rules.scoped {
        chosen.extend(
            rule.set.service_level_agreement.iter().map(|sla| ("serviceLevelAgreementID", sla)),
        );
        chosen.extend(rule.set.contract_category.iter().map(|c| ("contractCategory", c)));
    }
    let errors: Vec<PicklistError> = chosen
        .into_iter()
        .filter_map(|(field, rule)| check_id(picklists, field, rule).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_id(
    picklists: &Picklists,
    field: &'static str,
    rule: &Ruled<i64>,
) -> Result<(), PicklistError> {
    let target = Field { entity: "Contracts", field, picklists };
    match target.entries() {
        Some(_) => target.resolve(&PicklistChoice::Value(rule.value), &rule.origin).map(|_| ()),
        None => Ok(()),
    }
}

/// The numbers of the labels (or chosen numbers) the rules send; all errors at once.
pub fn resolve_values(
    rules: &RuleSet,
    picklists: &Picklists,
) -> Result<TenantValues, Vec<PicklistError>> {
    let field = |entity, field| Field { entity, field, picklists };
    let chosen =
        |target: Field<'_>, rule: &Ruled<PicklistChoice>| target.resolve(&rule.value, &rule.origin);
    let mut errors = Vec::new();
    let settings = &rules.settings;
    let contract_type =
        kept(&mut errors, chosen(field("Contracts", "contractType"), &settings.contract_type));
    let contract_status =
        kept(&mut errors, chosen(field("Contracts", "status"), &settings.contract_status));
    let charge_type = kept(
        &mut errors,
        chosen(field("ContractCharges", "chargeType"), &rules.consumption.charge_type),
    );
    let service_period_type = kept(&mut errors, service_period_type(rules, picklists));
    let contract_period_type = kept(&mut errors, contract_period_type(rules, picklists));
    match (contract_type, contract_status, contract_period_type, service_period_type, charge_type) {
        (
            Some(contract_type),
            Some(contract_status),
            Some(contract_period_type),
            Some(service_period_type),
            Some(charge_type),
        ) if errors.is_empty() => Ok(TenantValues {
            contract_type,
            contract_status,
            contract_period_type,
            service_period_type,
            charge_type,
        }),
        _ => Err(errors),
    }
}

/// The value of a result, its error kept with the others so that all are told at once.
fn kept<T>(errors: &mut Vec<PicklistError>, result: Result<T, PicklistError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            errors.push(err);
            None
        }
    }
}

/// The number of a period type's label in a field's picklist.
fn period(target: Field<'_>, rule: &Ruled<PeriodType>) -> Result<i64, PicklistError> {
    target.resolve(&PicklistChoice::Label(rule.value.label().into()), &rule.origin)
}

/// The period type of the Services cmat creates; none when no rule creates Services (then
/// there is no period to send).
fn service_period_type(
    rules: &RuleSet,
    picklists: &Picklists,
) -> Result<Option<i64>, PicklistError> {
    match &rules.products.create {
        Some(create) => period(
            Field { entity: "Services", field: "periodType", picklists },
            &create.period_type,
        )
        .map(Some),
        None => Ok(None),
    }
}

/// The contracts' period type; none for an Autotask without the field (older API versions),
/// which gets contracts without it.
fn contract_period_type(
    rules: &RuleSet,
    picklists: &Picklists,
) -> Result<Option<i64>, PicklistError> {
    let target = Field { entity: "Contracts", field: "contractPeriodType", picklists };
    if target.entries().is_none() && !picklists.is_empty() {
        Ok(None)
    } else {
        period(target, &rules.contract.period).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::default_rules;

    fn entry(value: i64, label: &str, is_active: bool) -> PicklistEntry {
        PicklistEntry { value, label: label.into(), is_active }
    }

    /// A tenant's lists as live tenants show them: Monthly = 2, Yearly = 5.
    fn live_tenant() -> Picklists {
        let periods =
            vec![entry(2, "Monthly", true), entry(3, "Quarterly", true), entry(5, "Yearly", true)];
        let mut picklists = Picklists::default();
        for (key, values) in [
            (
                "Contracts.contractType",
                vec![entry(1, "Time & Materials", true), entry(7, "Recurring Service", true)],
            ),
            ("Contracts.status", vec![entry(0, "Inactive", true), entry(1, "Active", true)]),
            ("Contracts.contractPeriodType", periods.clone()),
            (
                "Contracts.serviceLevelAgreementID",
                vec![entry(1, "Standard", true), entry(2, "Old", false)],
            ),
            ("Services.periodType", periods),
            (
                "ContractCharges.chargeType",
                vec![entry(1, "Operational", true), entry(2, "Capitalized", true)],
            ),
        ] {
            picklists.fields.insert(key.into(), values);
        }
        picklists
    }

    #[test]
    fn labels_resolve_to_the_tenants_numbers() {
        let values = resolve(&default_rules(), &live_tenant()).expect("resolves");
        assert_eq!(
            values,
            TenantValues {
                contract_type: 7,
                contract_status: 1,
                contract_period_type: Some(2),
                service_period_type: Some(2),
                charge_type: 1,
            }
        );
    }

    #[test]
    fn a_label_the_tenant_lacks_names_the_rule_and_lists_what_it_has() {
        let mut rules = default_rules();
        rules.products.create.as_mut().expect("create").period_type.value = PeriodType::SemiAnnual;
        rules.settings.service_level_agreement.value = 2;
        let errors = resolve(&rules, &live_tenant()).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert_eq!(
            shown[0],
            "mappings/test.cmat:1: error: the tenant's Services.periodType has no \"Semi-Annual\"\n  hint: choose one of: Monthly = 2, Quarterly = 3, Yearly = 5"
        );
        assert!(
            shown[1].contains(
                "2 is inactive in the tenant's Contracts.serviceLevelAgreementID (Old = 2)"
            ),
            "{}",
            shown[1]
        );
    }

    #[test]
    fn without_picklists_labels_need_a_pull_and_numbers_stand() {
        let errors = resolve(&default_rules(), &Picklists::default()).unwrap_err();
        assert!(errors.iter().all(|e| e.hint.contains("cmat pull autotask")), "{errors:?}");
        let mut rules = default_rules();
        rules.settings.contract_type.value = PicklistChoice::Value(7);
        assert!(resolve(&rules, &Picklists::default())
            .unwrap_err()
            .iter()
            .all(|e| !e.message.contains("contractType")));
    }

    #[test]
    fn a_tenant_without_contract_period_types_gets_contracts_without_one() {
        let mut tenant = live_tenant();
        tenant.fields.remove("Contracts.contractPeriodType");
        assert_eq!(
            resolve(&default_rules(), &tenant).expect("resolves").contract_period_type,
            None
        );
    }

    #[test]
    fn plurals_and_other_names_of_a_period_match() {
        let mut tenant = live_tenant();
        tenant.fields.insert(
            "Services.periodType".into(),
            vec![entry(2, "Monthly", true), entry(6, "Annually", true)],
        );
        tenant
            .fields
            .insert("Contracts.contractType".into(), vec![entry(7, "Recurring Services", true)]);
        let mut rules = default_rules();
        rules.products.create.as_mut().expect("create").period_type.value = PeriodType::Yearly;
        let values = resolve(&rules, &tenant).expect("resolves");
        assert_eq!((values.service_period_type, values.contract_type), (Some(6), 7));
    }

    #[test]
    fn labels_ignore_case_and_punctuation() {
        assert_eq!(normalize("Semi-Annual"), normalize("semi_annual"));
        assert_eq!(normalize("Recurring Service"), normalize("recurring_service"));
    }
}
