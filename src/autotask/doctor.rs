//! `cmat doctor`: a read-only preflight against the tenant, run before the first apply.
//!
//! [`gather`] asks Autotask what cmat depends on (queries, counts and field metadata only:
//! never a write), and [`evaluate`] turns those facts and the rules into one [`Check`] per
//! concern, each either fine or a problem with how to fix it. Kept apart so the judgement is
//! a pure function, tested without a server.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde_json::Value;

use super::adapter::SENT_ON_CREATE;
use super::client::{AutotaskClient, AutotaskError, Threshold};
use super::discover::{discover_ids_for, BillingCodeChoice, Discovery};
use super::query::{Condition, Filter};
use super::read::{read_picklists, PullError};
use super::records::NULLABLE_NEEDED;
use cmat_engine::picklists::{check_chosen_ids, resolve_values};
use cmat_engine::rules::{RuleSet, Ruled};
use cmat_engine::snapshot::IncompleteRecord;
use cmat_engine::snapshot::Picklists;
use cmat_engine::table::Table;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    /// Worth knowing, but cmat can run.
    Note(String),
    Problem {
        message: String,
        fix: String,
    },
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), outcome: Outcome::Ok(detail.into()) }
    }
    fn note(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), outcome: Outcome::Note(detail.into()) }
    }
    fn problem(
        name: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            outcome: Outcome::Problem { message: message.into(), fix: fix.into() },
        }
    }
    pub fn is_problem(&self) -> bool {
        matches!(self.outcome, Outcome::Problem { .. })
    }
}

/// A billing code as doctor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingCodeFacts {
    pub id: i64,
    pub name: String,
    pub use_type: Option<i64>,
    pub is_active: bool,
    /// None when the API user reads no cost.
    pub unit_cost_visible: bool,
}

/// What Autotask said, for [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub base_url: String,
    pub username: String,
    pub threshold: Threshold,
    pub discovery: Discovery,
    /// The billing codes the rules name, by id (absent: no such code).
    pub billing_codes: BTreeMap<i64, BillingCodeFacts>,
    pub picklists: Picklists,
    /// Entities cmat reads and whether a count query on them was answered (with its error).
    pub queryable: Vec<(&'static str, Result<u64, String>)>,
    /// Services whose cost was read: how many, and how many showed one.
    pub services_sampled: usize,
    pub services_with_cost: usize,
    /// Records with a nullable field cmat needs null, found by `notExist` queries.
    pub incomplete: Vec<IncompleteRecord>,
    /// What the tenant requires on the entities cmat creates (None: the metadata was refused).
    pub required: Vec<Required>,
    /// The tenant's lines of business and the API user's, when Autotask tells them.
    pub lines_of_business: Option<LinesOfBusiness>,
}

/// The fields (`isRequired`, writable) and UDFs the tenant requires on one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    pub entity: &'static str,
    pub fields: Vec<String>,
    pub udfs: Vec<String>,
}

/// Lines of business (organizational level associations): how many the tenant has, and how
/// many of them the API user is associated with (None when its resource was not found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinesOfBusiness {
    pub tenant: u64,
    pub api_user: Option<u64>,
}

/// Asks Autotask everything doctor needs; only reads. An error here means Autotask could not
/// be reached or refused the credentials: the caller reports it as the first check.
pub fn gather(
    client: &AutotaskClient,
    rules: &RuleSet,
    username: &str,
) -> Result<Facts, PullError> {
    let discovery = discover_ids_for(client, &rules.settings.subscription_udf.value)?;
    // The client read the budget before its first request; no need to ask again.
    let threshold = match client.hourly_usage() {
        Some(threshold) => threshold,
        None => client.threshold()?,
    };
    let picklists = read_picklists(client)?;
    let billing_codes = billing_code_facts(client, rules)?;
    let queryable = Table::ALL
        .into_iter()
        .map(Table::name)
        .map(|entity| {
            (entity, client.query_count(entity, &Filter::all()).map_err(|err| err.to_string()))
        })
        .collect();
    let services = first_services_page(client)?;
    let services_with_cost =
        services.iter().filter(|s| field_of(s, "unitCost").is_some_and(|c| !c.is_null())).count();
    let incomplete = incomplete_records(client)?;
    let required = required_fields(client)?;
    Ok(Facts {
        base_url: client.base_url(),
        username: username.to_string(),
        threshold,
        discovery,
        billing_codes,
        picklists,
        queryable,
        services_sampled: services.len(),
        services_with_cost,
        incomplete,
        required,
        lines_of_business: lines_of_business(client, username),
    })
}

/// The two billing codes the rules name, as Autotask holds them (absent ones are missing).
fn billing_code_facts(
    client: &AutotaskClient,
    rules: &RuleSet,
) -> Result<BTreeMap<i64, BillingCodeFacts>, PullError> {
    let wanted =
        vec![rules.settings.service_billing_code.value, rules.settings.product_billing_code.value];
    let filter = Filter::new(Condition::is_in("id", wanted)).map_err(|source| {
        AutotaskError::Filter { request: "POST BillingCodes/query".into(), source }
    })?;
    let mut billing_codes = BTreeMap::new();
    for code in client.query("BillingCodes", &filter)? {
        let field = |name: &str| field_of(&code, name);
        let Some(id) = field("id").and_then(Value::as_i64) else { continue };
        billing_codes.insert(
            id,
            BillingCodeFacts {
                id,
                name: field("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                use_type: field("useType").and_then(Value::as_i64),
                is_active: field("isActive").and_then(Value::as_bool).unwrap_or(true),
                unit_cost_visible: field("unitCost").is_some_and(|cost| !cost.is_null()),
            },
        );
    }
    Ok(billing_codes)
}

/// Costs: the first page of Services tells whether this API user reads any cost at all.
fn first_services_page(client: &AutotaskClient) -> Result<Vec<Value>, PullError> {
    let mut services = Vec::new();
    client.query_each_page("Services", &Filter::all(), &mut |page| {
        services = page;
        ControlFlow::Break(())
    })?;
    Ok(services)
}

/// The fields (and Contracts UDFs) the tenant requires on each entity cmat creates.
fn required_fields(client: &AutotaskClient) -> Result<Vec<Required>, PullError> {
    let mut required = Vec::new();
    for (entity, _) in SENT_ON_CREATE {
        let fields = client.get_fields(entity)?;
        let udfs = if entity == "Contracts" { client.get_udfs(entity)? } else { Vec::new() };
        let names = |list: Vec<super::FieldInfo>| -> Vec<String> {
            list.into_iter().filter(|f| f.is_required && !f.is_read_only).map(|f| f.name).collect()
        };
        required.push(Required { entity, fields: names(fields), udfs: names(udfs) });
    }
    Ok(required)
}

/// The records a pull would keep out: each nullable field cmat needs, queried `notExist`.
fn incomplete_records(client: &AutotaskClient) -> Result<Vec<IncompleteRecord>, PullError> {
    let mut found = Vec::new();
    for (entity, field) in NULLABLE_NEEDED {
        let filter = Filter::new(Condition::not_exist(field)).map_err(|source| {
            AutotaskError::Filter { request: format!("POST {entity}/query"), source }
        })?;
        for record in client.query(entity, &filter)? {
            let Some(id) = field_of(&record, "id").and_then(Value::as_i64) else { continue };
            let contract_id = field_of(&record, "contractID").and_then(Value::as_i64);
            found.push(IncompleteRecord {
                entity: entity.to_string(),
                id,
                field: field.to_string(),
                contract_id,
            });
        }
    }
    Ok(found)
}

/// How many lines of business the tenant has and how many the API user belongs to; None
/// when the tenant has none or Autotask does not answer (an older API, no permission).
fn lines_of_business(client: &AutotaskClient, username: &str) -> Option<LinesOfBusiness> {
    let tenant = client.query_count("OrganizationalLevelAssociations", &Filter::all()).ok()?;
    if tenant == 0 {
        return None;
    }
    let by_name = Filter::new(Condition::eq("userName", username)).ok()?;
    let resource = client
        .query("Resources", &by_name)
        .ok()?
        .first()
        .and_then(|r| field_of(r, "id").and_then(Value::as_i64));
    let api_user = resource.and_then(|id| {
        let filter = Filter::new(Condition::eq("resourceID", id)).ok()?;
        client.query_count("OrganizationalResources", &filter).ok()
    });
    Some(LinesOfBusiness { tenant, api_user })
}

fn field_of<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    record.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// How much of the hour's budget the last sync used, if a sync recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSync {
    pub requests: u64,
}

/// The checks, in the order a person fixes them.
pub fn evaluate(rules: &RuleSet, facts: &Facts, last_sync: Option<LastSync>) -> Vec<Check> {
    let mut checks = vec![
        Check::ok(
            "credentials and zone",
            format!("{} answers for {}", facts.base_url, facts.username),
        ),
        Check::ok("API version", "REST v1.0 answers (ThresholdInformation)"),
        subscription_udf_check(rules, facts),
    ];
    checks.extend(billing_code_checks(rules, facts));
    checks.push(sla_check(rules, facts));
    checks.extend(chosen_ids_check(rules, facts));
    checks.push(picklist_values_check(rules, facts));
    checks.push(cost_visibility_check(facts));
    checks.push(budget_check(&facts.threshold, last_sync));
    checks.extend(facts.queryable.iter().map(|(entity, answer)| read_check(entity, answer)));
    checks.push(incomplete_check(&facts.incomplete));
    for required in &facts.required {
        checks.push(required_check(rules, required));
    }
    if let Some(check) = lines_of_business_check(facts.lines_of_business) {
        checks.push(check);
    }
    checks
}

/// The Contracts UDF that finds cmat's contracts again.
fn subscription_udf_check(rules: &RuleSet, facts: &Facts) -> Check {
    let udf = &rules.settings.subscription_udf.value;
    if facts.discovery.has_subscription_udf {
        Check::ok(format!("Contracts field \"{udf}\""), "present")
    } else {
        Check::problem(
            format!("Contracts field \"{udf}\""),
            format!("Contracts have no user-defined field \"{udf}\": cmat could not find its contracts again and would create duplicates"),
            format!("in Autotask, Admin > Features & Settings > Contracts > Contract User-Defined Fields, add a text field named \"{udf}\" (or set `subscription_udf` in the rules to the field you use)"),
        )
    }
}

/// One billing code setting of the rules, and what the tenant offers in its place.
struct CodeSetting<'a> {
    setting: &'static str,
    rule: &'a Ruled<i64>,
    wanted_type: Option<i64>,
    wanted_label: &'static str,
    listed: &'a [BillingCodeChoice],
}

/// The service and product billing codes: each exists, is active and has the use type wanted.
fn billing_code_checks(rules: &RuleSet, facts: &Facts) -> Vec<Check> {
    let settings = [
        CodeSetting {
            setting: "service_billing_code",
            rule: &rules.settings.service_billing_code,
            wanted_type: facts.discovery.recurring_use_type,
            wanted_label: "Recurring Contract Service",
            listed: &facts.discovery.service_billing_codes,
        },
        CodeSetting {
            setting: "product_billing_code",
            rule: &rules.settings.product_billing_code,
            wanted_type: facts.discovery.material_use_type,
            wanted_label: "Material Cost Code",
            listed: &facts.discovery.product_billing_codes,
        },
    ];
    settings.iter().map(|code| billing_code_check(facts, code)).collect()
}

fn billing_code_check(facts: &Facts, wanted: &CodeSetting<'_>) -> Check {
    let CodeSetting { setting, rule, wanted_type, wanted_label, listed } = wanted;
    let name = format!("billing code {} ({setting})", rule.value);
    let candidates = if listed.is_empty() {
        format!("the tenant has no active {wanted_label} code: create one in Admin > Features & Settings > Finance, Accounting & Invoicing > Billing Codes")
    } else {
        let shown: Vec<String> = listed.iter().map(|c| format!("{} {}", c.id, c.name)).collect();
        format!("set `{setting}` at {} to one of: {}", rule.origin, shown.join(", "))
    };
    match facts.billing_codes.get(&rule.value) {
        None => Check::problem(name, "no such billing code in Autotask", candidates),
        Some(code) if !code.is_active => Check::problem(
            name,
            format!("\"{}\" is inactive: Autotask refuses it on new records", code.name),
            format!("activate it in Autotask, or {candidates}"),
        ),
        Some(code) if wanted_type.is_some() && code.use_type != *wanted_type => Check::problem(
            name,
            format!(
                "\"{}\" is a {} code, not {wanted_label}",
                code.name,
                use_type_label(facts, code.use_type)
            ),
            candidates,
        ),
        Some(code) => Check::ok(name, format!("\"{}\", active, {wanted_label}", code.name)),
    }
}

/// A billing code use type by its tenant label.
fn use_type_label(facts: &Facts, use_type: Option<i64>) -> String {
    let labels = facts.picklists.get("BillingCodes", "useType").unwrap_or(&[]);
    match use_type {
        Some(value) => labels
            .iter()
            .find(|entry| entry.value == value)
            .map(|entry| format!("\"{}\"", entry.label))
            .unwrap_or_else(|| format!("use type {value}")),
        None => "no use type".into(),
    }
}

/// The contracts' service level agreement: in the tenant's list and active.
fn sla_check(rules: &RuleSet, facts: &Facts) -> Check {
    let sla = &rules.settings.service_level_agreement;
    let sla_entries = facts.picklists.get("Contracts", "serviceLevelAgreementID").unwrap_or(&[]);
    let active_slas: Vec<String> =
        facts.discovery.slas.iter().map(|v| format!("{} {}", v.value, v.label)).collect();
    let sla_fix = format!(
        "set `service_level_agreement` at {} to an active one: {}",
        sla.origin,
        if active_slas.is_empty() {
            "(none is active)".to_string()
        } else {
            active_slas.join(", ")
        }
    );
    let sla_name = format!("service level agreement {}", sla.value);
    match sla_entries.iter().find(|entry| entry.value == sla.value) {
        None => Check::problem(
            sla_name,
            "not in the tenant's Contracts.serviceLevelAgreementID list",
            sla_fix,
        ),
        Some(entry) if !entry.is_active => {
            Check::problem(sla_name, format!("\"{}\" is inactive", entry.label), sla_fix)
        }
        Some(entry) => Check::ok(sla_name, format!("\"{}\", active", entry.label)),
    }
}

/// Categories and SLAs set by `for` rules (or the contract block's category), when any is.
fn chosen_ids_check(rules: &RuleSet, facts: &Facts) -> Option<Check> {
    let names_more_ids = rules.contract.category.is_some()
        || rules.scoped.iter().any(|rule| {
            rule.set.service_level_agreement.is_some() || rule.set.contract_category.is_some()
        });
    if !names_more_ids {
        return None;
    }
    let name = "contract categories and SLAs of the rules";
    Some(match check_chosen_ids(rules, &facts.picklists) {
        Ok(()) => Check::ok(name, "each in the tenant's list, active"),
        Err(errors) => {
            let message: Vec<String> =
                errors.iter().map(|e| format!("{}: {}", e.origin, e.message)).collect();
            let fix: Vec<String> = errors.iter().map(|e| e.hint.clone()).collect();
            Check::problem(name, message.join("; "), fix.join("; "))
        }
    })
}

/// The picklist values cmat writes (the SLA has its own line).
fn picklist_values_check(rules: &RuleSet, facts: &Facts) -> Check {
    match resolve_values(rules, &facts.picklists) {
        Ok(values) => Check::ok(
            "picklist values",
            format!(
                "contractType {}, status {}, contractPeriodType {}, Services periodType {}, chargeType {}",
                values.contract_type,
                values.contract_status,
                values.contract_period_type.map_or("(not on this tenant)".into(), |v| v.to_string()),
                values.service_period_type.map_or("(no Services created)".into(), |v| v.to_string()),
                values.charge_type
            ),
        ),
        Err(errors) => {
            let message: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.origin, e.message)).collect();
            let fix: Vec<String> = errors.iter().map(|e| e.hint.clone()).collect();
            Check::problem("picklist values", message.join("; "), fix.join("; "))
        }
    }
}

/// Whether the API user reads costs (a note either way: cmat runs without).
fn cost_visibility_check(facts: &Facts) -> Check {
    let codes_show_cost = facts.billing_codes.values().any(|code| code.unit_cost_visible);
    if codes_show_cost || facts.services_with_cost > 0 {
        Check::ok("cost visibility", "the API user reads costs")
    } else if facts.services_sampled == 0 && facts.billing_codes.is_empty() {
        Check::note("cost visibility", "no record to tell from yet")
    } else {
        Check::note(
            "cost visibility",
            "the API user reads no cost: cmat keeps prices in step but never compares or writes a cost alone (give its security level permission to see costs to have them kept too)",
        )
    }
}

/// The hour's request budget: a problem past half of it.
fn budget_check(threshold: &Threshold, last_sync: Option<LastSync>) -> Check {
    let used = format!(
        "{} of {} requests used in the current {}-minute window{}",
        threshold.used,
        threshold.limit,
        threshold.timeframe_minutes,
        last_sync.map_or(String::new(), |sync| format!("; the last sync sent {}", sync.requests))
    );
    if threshold.limit > 0 && threshold.used * 2 >= threshold.limit {
        Check::problem(
            "hourly request budget",
            format!("{used}: past half of it, cmat waits for the hour to roll"),
            "run when the tenant's other integrations are quieter, or ask which one uses the budget (Admin > API usage)",
        )
    } else {
        Check::ok("hourly request budget", used)
    }
}

/// One entity the API user must be able to read.
fn read_check(entity: &str, answer: &Result<u64, String>) -> Check {
    let name = format!("read {entity}");
    match answer {
        Ok(count) => Check::ok(name, format!("{count} record(s)")),
        Err(err) => Check::problem(
            name,
            err.clone(),
            "give the API user's security level read access to it (Admin > Resources > Security Levels)",
        ),
    }
}

/// Incomplete records are a note: cmat runs, and writes nothing for their contracts.
fn incomplete_check(records: &[IncompleteRecord]) -> Check {
    let name = "incomplete records";
    if records.is_empty() {
        return Check::ok(
            name,
            "no record with a null price, contract service or billing code name or use type",
        );
    }
    let shown: Vec<String> = records
        .iter()
        .take(20)
        .map(|r| {
            let contract = r.contract_id.map(|c| format!(", contract {c}")).unwrap_or_default();
            format!("{} {} (`{}` null{contract})", r.entity, r.id, r.field)
        })
        .collect();
    let more = records.len().saturating_sub(shown.len());
    Check::note(
        name,
        format!(
            "{} record(s) with a field cmat needs null, kept out of every pull; nothing is written for their contracts until they are completed in Autotask: {}{}",
            records.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ),
    )
}

/// The required fields and UDFs of an entity cmat creates, against what it sends.
fn required_check(rules: &RuleSet, required: &Required) -> Check {
    let name = format!("required fields on {}", required.entity);
    let sent = sent_on_create(rules, required.entity);
    let mut gaps: Vec<String> = (required.fields.iter())
        .filter(|field| !sent.iter().any(|s| s.eq_ignore_ascii_case(field)))
        .map(|field| format!("`{field}`"))
        .collect();
    let udf = rules.settings.subscription_udf.value.trim();
    gaps.extend(
        (required.udfs.iter())
            .filter(|name| !name.trim().eq_ignore_ascii_case(udf))
            .map(|name| format!("user-defined field \"{name}\"")),
    );
    if gaps.is_empty() {
        return Check::ok(name, "cmat sends every field the tenant requires");
    }
    let lob = gaps.iter().any(|g| g.eq_ignore_ascii_case("`organizationalLevelAssociationID`"));
    Check::problem(
        name,
        format!(
            "the tenant requires {} on new {}, which cmat does not send: Autotask would refuse every one cmat creates",
            gaps.join(", "),
            required.entity
        ),
        if lob {
            "set the line of business by a rule (`line_of_business = <organizationalLevelAssociationID>` in the contract block or a `for` rule), and make the other fields optional in Autotask (Admin > Features & Settings > field settings)".to_string()
        } else {
            "make them optional in Autotask (Admin > Features & Settings, the entity's field and user-defined field settings): cmat has no value to send for them".to_string()
        },
    )
}

/// A restricted API user sees only its lines of business' contracts: the others look absent,
/// and cmat would plan a duplicate of each.
fn lines_of_business_check(lines: Option<LinesOfBusiness>) -> Option<Check> {
    let lines = lines?;
    let name = "lines of business";
    Some(match lines.api_user {
        Some(n) if n > 0 && n < lines.tenant => Check::problem(
            name,
            format!(
                "the API user is associated with {n} of the tenant's {} lines of business: if its security level restricts it to them, contracts of the others look absent to cmat, which would plan duplicates of them",
                lines.tenant
            ),
            "associate the API user with every line of business (Admin > Resources > the API user > Lines of Business), or give its security level access to all of them",
        ),
        Some(_) => Check::ok(name, format!("the tenant has {} lines of business; the API user is not restricted to some of them", lines.tenant)),
        None => Check::note(name, format!("the tenant has {} lines of business; the API user's could not be read: make sure it sees every one, or contracts outside them look absent and cmat would plan duplicates", lines.tenant)),
    })
}

/// The fields cmat sends when it creates a record of `entity`, with those the rules set only
/// when they name a value.
fn sent_on_create(rules: &RuleSet, entity: &str) -> Vec<&'static str> {
    let mut sent: Vec<&'static str> = SENT_ON_CREATE
        .iter()
        .find(|(name, _)| *name == entity)
        .map(|(_, fields)| fields.to_vec())
        .unwrap_or_default();
    if entity == "Contracts" && rules.contract.category.is_some() {
        sent.push("contractCategory");
    }
    // A line of business by `for` rules alone leaves other contracts without one: only the
    // contract block's default counts as always sent.
    if entity == "Contracts" && rules.contract.line_of_business.is_some() {
        sent.push("organizationalLevelAssociationID");
    }
    sent
}

/// The report as a person reads it: one line per check, a fix under each problem.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for check in checks {
        let (tag, detail, fix) = match &check.outcome {
            Outcome::Ok(detail) => ("ok     ", detail.as_str(), None),
            Outcome::Note(detail) => ("note   ", detail.as_str(), None),
            Outcome::Problem { message, fix } => ("PROBLEM", message.as_str(), Some(fix)),
        };
        out.push_str(&format!("{tag}  {:<width$}  {detail}\n", check.name));
        if let Some(fix) = fix {
            out.push_str(&format!("{:<9}{:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let problems = checks.iter().filter(|c| c.is_problem()).count();
    out.push_str(&match problems {
        0 => "\ncmat can run against this tenant (nothing was written).\n".to_string(),
        1 => "\n1 problem to fix before cmat can run (nothing was written).\n".to_string(),
        n => format!("\n{n} problems to fix before cmat can run (nothing was written).\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autotask::discover::BillingCodeChoice;
    use crate::autotask::PicklistValue;
    use cmat_engine::testing::default_rules;

    fn good_facts(rules: &RuleSet) -> Facts {
        let code = |id: i64, name: &str, use_type: i64| BillingCodeFacts {
            id,
            name: name.into(),
            use_type: Some(use_type),
            is_active: true,
            unit_cost_visible: true,
        };
        let service_code = rules.settings.service_billing_code.value;
        let product_code = rules.settings.product_billing_code.value;
        Facts {
            base_url: "https://webservices5.autotask.net/atservicesrest/".into(),
            username: "api@example.com".into(),
            threshold: Threshold { limit: 10_000, timeframe_minutes: 60, used: 120 },
            discovery: Discovery {
                recurring_use_type: Some(5),
                material_use_type: Some(4),
                service_billing_codes: vec![BillingCodeChoice {
                    id: service_code,
                    name: "Recurring".into(),
                }],
                product_billing_codes: vec![BillingCodeChoice {
                    id: product_code,
                    name: "Azure".into(),
                }],
                slas: vec![PicklistValue {
                    value: "1".into(),
                    label: "Standard".into(),
                    is_active: true,
                }],
                has_subscription_udf: true,
                subscription_udf: "Subscription ID".into(),
            },
            billing_codes: [code(service_code, "Recurring", 5), code(product_code, "Azure", 4)]
                .into_iter()
                .map(|c| (c.id, c))
                .collect(),
            picklists: cmat_testkit::tenant::reference_picklists(),
            queryable: vec![("Contracts", Ok(3)), ("Services", Ok(2))],
            services_sampled: 2,
            services_with_cost: 2,
            incomplete: Vec::new(),
            required: vec![Required {
                entity: "Contracts",
                fields: vec!["companyID".into(), "contractName".into(), "startDate".into()],
                udfs: vec!["Subscription ID".into()],
            }],
            lines_of_business: None,
        }
    }

    fn problems(checks: &[Check]) -> Vec<&str> {
        checks.iter().filter(|c| c.is_problem()).map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn a_good_tenant_passes() {
        let rules = default_rules();
        let checks = evaluate(&rules, &good_facts(&rules), Some(LastSync { requests: 42 }));
        assert_eq!(problems(&checks), Vec::<&str>::new(), "{}", render(&checks));
        assert!(render(&checks).contains("the last sync sent 42"));
    }

    #[test]
    fn missing_udf_inactive_or_wrong_codes_and_an_inactive_sla_are_problems_with_fixes() {
        let rules = default_rules();
        let mut facts = good_facts(&rules);
        facts.discovery.has_subscription_udf = false;
        let service_code = rules.settings.service_billing_code.value;
        let product_code = rules.settings.product_billing_code.value;
        facts.billing_codes.get_mut(&service_code).unwrap().is_active = false;
        facts.billing_codes.get_mut(&product_code).unwrap().use_type = Some(5);
        for entry in facts.picklists.fields.get_mut("Contracts.serviceLevelAgreementID").unwrap() {
            entry.is_active = false;
        }
        facts.queryable.push(("ContractCharges", Err("403 Forbidden".into())));
        let checks = evaluate(&rules, &facts, None);
        assert_eq!(
            problems(&checks),
            vec![
                "Contracts field \"Subscription ID\"",
                "billing code 29682801 (service_billing_code)",
                "billing code 29682802 (product_billing_code)",
                "service level agreement 1",
                "read ContractCharges",
            ],
            "{}",
            render(&checks)
        );
        assert!(checks
            .iter()
            .filter(|c| c.is_problem())
            .all(|c| matches!(&c.outcome, Outcome::Problem { fix, .. } if !fix.is_empty())));
    }

    #[test]
    fn required_fields_cmat_does_not_send_and_a_restricted_user_are_problems() {
        let rules = default_rules();
        let mut facts = good_facts(&rules);
        facts.required[0].fields.push("organizationalLevelAssociationID".into());
        facts.required[0].udfs.push("Customer Ref".into());
        facts.lines_of_business = Some(LinesOfBusiness { tenant: 3, api_user: Some(1) });
        facts.incomplete.push(IncompleteRecord {
            entity: "ContractCharges".into(),
            id: 77,
            field: "unitPrice".into(),
            contract_id: Some(4410),
        });
        let checks = evaluate(&rules, &facts, None);
        assert_eq!(
            problems(&checks),
            vec!["required fields on Contracts", "lines of business"],
            "{}",
            render(&checks)
        );
        let text = render(&checks);
        assert!(
            text.contains(
                "`organizationalLevelAssociationID`, user-defined field \"Customer Ref\""
            ),
            "{text}"
        );
        assert!(text.contains("line_of_business"), "{text}");
        assert!(text.contains("ContractCharges 77 (`unitPrice` null, contract 4410)"), "{text}");
        facts.lines_of_business = Some(LinesOfBusiness { tenant: 3, api_user: Some(3) });
        let checks = evaluate(&rules, &facts, None);
        assert_eq!(problems(&checks), vec!["required fields on Contracts"]);
    }

    #[test]
    fn hidden_costs_are_a_note_not_a_problem() {
        let rules = default_rules();
        let mut facts = good_facts(&rules);
        facts.services_with_cost = 0;
        for code in facts.billing_codes.values_mut() {
            code.unit_cost_visible = false;
        }
        let checks = evaluate(&rules, &facts, None);
        let cost = checks.iter().find(|c| c.name == "cost visibility").unwrap();
        assert!(
            matches!(&cost.outcome, Outcome::Note(text) if text.contains("reads no cost")),
            "{cost:?}"
        );
        assert!(problems(&checks).is_empty());
    }
}
