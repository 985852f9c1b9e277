//! The plan: the diff's changes with stable refs, the digests of what it was computed from,
//! and its three renderings (text for people, JSON for scripts and `apply`, CSV per field).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::desired::Warning;
use crate::diff::{Action, Change, Diff, Entity, Parent};
use crate::snapshot::Snapshot;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The cause (serde's message, with line and column) is rendered as the error's cause.
    #[error("{path}: not a cmat plan")]
    Parse { path: String, source: serde_json::Error },
    #[error("{path}: plan format version {found} is not supported (this cmat reads version {FORMAT_VERSION})")]
    Version { path: String, found: u32 },
    #[error("{path}: change {reference}: {message}")]
    Invalid { path: String, reference: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub snapshot: String,
    pub inputs: String,
    pub mappings: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: u64,
    pub update: u64,
    pub adjust: u64,
    pub delete: u64,
    pub unchanged: u64,
    pub warnings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanParent {
    Existing {
        entity: String,
        id: i64,
    },
    Planned {
        #[serde(rename = "ref")]
        reference: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChange {
    #[serde(rename = "ref")]
    pub reference: String,
    pub action: Action,
    pub entity: String,
    pub id: Option<i64>,
    pub parent: Option<PlanParent>,
    pub key: String,
    pub fields: Map<String, Value>,
    pub before: Option<Map<String, Value>>,
    pub rule: String,
    pub reason: String,
    /// Grouping for the text plan; not part of the JSON contract.
    #[serde(skip)]
    pub company_id: i64,
    #[serde(skip)]
    pub contract_label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWarning {
    pub code: String,
    pub message: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub created_at: DateTime<Utc>,
    pub digests: Digests,
    pub summary: Summary,
    pub changes: Vec<PlanChange>,
    pub warnings: Vec<PlanWarning>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Digest of everything the plan read from Autotask (ordered maps: stable bytes).
pub fn snapshot_digest(snapshot: &Snapshot) -> String {
    let mut records = snapshot.clone();
    records.refreshed_at = None;
    sha256_hex(&serde_json::to_vec(&records).unwrap_or_default())
}

/// Digest of the mapping files, by relative name and text.
pub fn mappings_digest(sources: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in sources {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let mut out = String::from("sha256:");
    for byte in hasher.finalize() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

impl Plan {
    /// Numbers the changes (c1, c2, …) in the diff's order and turns planned-record keys into refs.
    pub fn new(diff: Diff, digests: Digests, created_at: DateTime<Utc>) -> Plan {
        let refs: BTreeMap<String, String> = diff
            .changes
            .iter()
            .enumerate()
            .filter(|(_, change)| change.action == Action::Create)
            .map(|(index, change)| (change.key.clone(), format!("c{}", index + 1)))
            .collect();
        let resolve = |value: Value| -> Value {
            match value {
                Value::Object(map) if map.len() == 1 && map.contains_key("ref") => {
                    let key = map.get("ref").and_then(Value::as_str).unwrap_or_default();
                    serde_json::json!({ "ref": refs.get(key).cloned().unwrap_or_else(|| key.to_string()) })
                }
                other => other,
            }
        };
        let mut summary = Summary {
            unchanged: diff.unchanged,
            warnings: diff.warnings.len() as u64,
            ..Summary::default()
        };
        let changes = diff
            .changes
            .into_iter()
            .enumerate()
            .map(|(index, change)| {
                match change.action {
                    Action::Create => summary.create += 1,
                    Action::Update => summary.update += 1,
                    Action::Adjust => summary.adjust += 1,
                    Action::Delete => summary.delete += 1,
                }
                let Change {
                    action,
                    entity,
                    id,
                    parent,
                    key,
                    fields,
                    before,
                    rule,
                    reason,
                    company_id,
                    contract_label,
                } = change;
                PlanChange {
                    reference: format!("c{}", index + 1),
                    action,
                    entity: entity.as_str().to_string(),
                    id,
                    parent: parent.map(|parent| match parent {
                        Parent::Existing { entity, id } => {
                            PlanParent::Existing { entity: entity.as_str().to_string(), id }
                        }
                        Parent::Planned { key } => PlanParent::Planned {
                            reference: refs.get(&key).cloned().unwrap_or(key),
                        },
                    }),
                    key,
                    fields: fields
                        .into_iter()
                        .map(|(name, value)| (name, resolve(value)))
                        .collect(),
                    before: before.map(|before| before.into_iter().collect()),
                    rule: rule.to_string(),
                    reason,
                    company_id,
                    contract_label,
                }
            })
            .collect();
        Plan {
            format_version: FORMAT_VERSION,
            created_at,
            digests,
            summary,
            changes,
            warnings: diff.warnings.iter().map(plan_warning).collect(),
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a saved plan and checks that it is internally consistent before anyone trusts it.
    pub fn from_json(path: &str, text: &str) -> Result<Plan, PlanError> {
        let version: Value = serde_json::from_str(text)
            .map_err(|source| PlanError::Parse { path: path.to_string(), source })?;
        let found = version.get("format_version").and_then(Value::as_u64).unwrap_or(0) as u32;
        if found != FORMAT_VERSION {
            return Err(PlanError::Version { path: path.to_string(), found });
        }
        // Read again from the text, not the value: serde's errors then carry line and column.
        let mut plan: Plan = serde_json::from_str(text)
            .map_err(|source| PlanError::Parse { path: path.to_string(), source })?;
        let mut known_refs = std::collections::BTreeSet::new();
        for change in &mut plan.changes {
            let invalid = |message: String| PlanError::Invalid {
                path: path.to_string(),
                reference: change.reference.clone(),
                message,
            };
            if Entity::from_name(&change.entity).is_none() {
                return Err(invalid(format!("unknown entity {}", change.entity)));
            }
            if let Some(PlanParent::Planned { reference }) = &change.parent {
                if !known_refs.contains(reference) {
                    return Err(invalid(format!(
                        "parent {reference} is not created earlier in the plan"
                    )));
                }
            }
            if matches!(change.action, Action::Update | Action::Delete) && change.id.is_none() {
                return Err(invalid("an update or delete needs an id".to_string()));
            }
            known_refs.insert(change.reference.clone());
        }
        Ok(plan)
    }

    /// A saved plan carries no grouping for the text view: find each change's company and
    /// contract again from its own fields, its parent, or the snapshot.
    pub fn restore_grouping(&mut self, snapshot: &Snapshot) {
        let mut planned: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for change in &mut self.changes {
            let subscription = change
                .key
                .split('/')
                .next()
                .unwrap_or_default()
                .trim_start_matches("subscription:");
            let (company, label) = if let Some(company) =
                change.fields.get("companyID").and_then(Value::as_i64)
            {
                let name =
                    change.fields.get("contractName").and_then(Value::as_str).unwrap_or_default();
                (company, format!("{name} [{subscription}]"))
            } else {
                match &change.parent {
                    Some(PlanParent::Existing { id, .. }) => match snapshot.contracts.get(id) {
                        Some(contract) => (
                            contract.company_id,
                            format!("{} [{subscription}] #{id}", contract.contract_name),
                        ),
                        None => (0, format!("contract #{id}")),
                    },
                    Some(PlanParent::Planned { reference }) => {
                        planned.get(reference).cloned().unwrap_or_default()
                    }
                    None => match change.id.and_then(|id| snapshot.contracts.get(&id)) {
                        Some(contract) => (
                            contract.company_id,
                            format!("{} [{subscription}] #{}", contract.contract_name, contract.id),
                        ),
                        None => (0, String::new()),
                    },
                }
            };
            change.company_id = company;
            change.contract_label = label.clone();
            if change.entity == "Contracts" {
                planned.insert(change.reference.clone(), (company, label));
            }
        }
    }

    /// One row per changed field: ref, action, entity, id, key, field, old, new, rule, reason.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record([
            "ref",
            "action",
            "entity",
            "id",
            "key",
            "field",
            "old_value",
            "new_value",
            "rule",
            "reason",
        ]);
        for change in &self.changes {
            for (field, value) in &change.fields {
                let old = change
                    .before
                    .as_ref()
                    .and_then(|before| before.get(field))
                    .map(plain)
                    .unwrap_or_default();
                let _ = writer.write_record([
                    change.reference.as_str(),
                    action_name(change.action),
                    change.entity.as_str(),
                    &change.id.map(|id| id.to_string()).unwrap_or_default(),
                    change.key.as_str(),
                    field.as_str(),
                    &crate::spreadsheet::spreadsheet_safe(&old),
                    &crate::spreadsheet::spreadsheet_safe(&plain(value)),
                    change.rule.as_str(),
                    &crate::spreadsheet::spreadsheet_safe(&change.reason),
                ]);
            }
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// The plan for people: grouped by company and contract; `+` create, `~` update/adjust with
    /// old → new; changes that remove units set apart; totals last.
    pub fn to_text(&self, company_names: &BTreeMap<i64, String>, colour: bool) -> String {
        let paint = |code: &str, text: &str| {
            if colour {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let mut out = String::new();
        let destructive = |change: &PlanChange| {
            change.action == Action::Delete
                || change.fields.get("unitChange").and_then(Value::as_i64).is_some_and(|n| n < 0)
        };
        // A correcting charge restates a period already invoiced: a person should see it apart.
        let restates_invoiced = |change: &PlanChange| change.key.contains("/correction:");
        let mut groups: BTreeMap<(String, String), Vec<&PlanChange>> = BTreeMap::new();
        let mut removals = Vec::new();
        let mut restatements = Vec::new();
        for change in &self.changes {
            if destructive(change) {
                removals.push(change);
                continue;
            }
            if restates_invoiced(change) {
                restatements.push(change);
                continue;
            }
            let company = if change.entity == "Services" {
                "Autotask Services (shared by all contracts)".to_string()
            } else {
                company_label(change.company_id, company_names)
            };
            groups.entry((company, change.contract_label.clone())).or_default().push(change);
        }
        let mut last_company = None;
        for ((company, contract), changes) in &groups {
            if last_company != Some(company) {
                let _ = writeln!(out, "\n{}", paint("1", company));
                last_company = Some(company);
            }
            if !contract.is_empty() {
                let _ = writeln!(out, "  {contract}");
            }
            for change in changes {
                write_change(&mut out, change, &paint);
            }
        }
        for (title, code, set) in [
            ("Restatements of periods already invoiced:", "1;35", &restatements),
            ("Changes that remove licences or records:", "1;31", &removals),
        ] {
            if set.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{}", paint(code, title));
            for change in set.iter() {
                let _ = writeln!(
                    out,
                    "  {} / {}",
                    company_label(change.company_id, company_names),
                    change.contract_label
                );
                write_change(&mut out, change, &paint);
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\n{}", paint("1;33", "Warnings:"));
            for warning in &self.warnings {
                let _ =
                    writeln!(out, "  ! {}: {} ({})", warning.code, warning.message, warning.source);
            }
        }
        let summary = &self.summary;
        if self.changes.is_empty() {
            let _ = writeln!(
                out,
                "\nNo changes. Autotask matches the bills ({} record(s) unchanged, {} warning(s)).",
                summary.unchanged, summary.warnings
            );
        } else {
            let _ = writeln!(
                out,
                "\nPlan: {} to create, {} to update, {} to adjust, {} to delete; {} unchanged; {} warning(s).",
                summary.create, summary.update, summary.adjust, summary.delete, summary.unchanged, summary.warnings
            );
        }
        out.trim_start_matches('\n').to_string()
    }
}

fn company_label(company_id: i64, company_names: &BTreeMap<i64, String>) -> String {
    match company_names.get(&company_id) {
        Some(name) => format!("{name} (company {company_id})"),
        None => format!("company {company_id}"),
    }
}

fn write_change(out: &mut String, change: &PlanChange, paint: &dyn Fn(&str, &str) -> String) {
    let (symbol, code) = match change.action {
        Action::Create => ("+", "32"),
        Action::Update | Action::Adjust => ("~", "33"),
        Action::Delete => ("-", "31"),
    };
    let target = match change.id {
        Some(id) => format!("{} #{id}", change.entity),
        None => change.entity.clone(),
    };
    let item = change.key.rsplit('/').next().filter(|_| change.key.contains('/')).unwrap_or("");
    let _ = writeln!(
        out,
        "    {} {} {target}{}{}: {}  [{}]",
        paint(code, symbol),
        action_name(change.action),
        if item.is_empty() { "" } else { " " },
        item,
        change.reason,
        change.rule
    );
    for (field, value) in &change.fields {
        match change.before.as_ref().and_then(|before| before.get(field)) {
            Some(old) if change.action == Action::Update => {
                let _ = writeln!(out, "        {field}: {} → {}", plain(old), plain(value));
            }
            _ => {
                let _ = writeln!(out, "        {field} = {}", plain(value));
            }
        }
    }
}

pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Adjust => "adjust",
        Action::Delete => "delete",
    }
}

/// A JSON value as a person reads it: strings without quotes, refs as "(new cN)".
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "(none)".to_string(),
        Value::Object(map) if map.contains_key("ref") => {
            format!("(new {})", map.get("ref").and_then(Value::as_str).unwrap_or("?"))
        }
        other => other.to_string(),
    }
}

fn plan_warning(warning: &Warning) -> PlanWarning {
    PlanWarning {
        code: warning.code.as_str().to_string(),
        message: warning.message.clone(),
        source: warning.source.clone(),
    }
}

/// Everything a plan is computed from. Pure: no network, no clock (the caller passes the time).
pub struct PlanInputs<'a> {
    pub rules: &'a crate::rules::RuleSet,
    pub lines: &'a [crate::billing::BillLine],
    pub snapshot: &'a Snapshot,
    pub mapping_sources: &'a [(String, String)],
    pub inputs_digest: String,
}

/// The plan of these inputs, or every rule naming a picklist entry the tenant lacks.
pub fn compute(
    inputs: &PlanInputs<'_>,
    created_at: DateTime<Utc>,
) -> Result<Plan, Vec<crate::picklists::PicklistError>> {
    let values = crate::picklists::resolve(inputs.rules, &inputs.snapshot.picklists)?;
    let desired = crate::desired::desired_state(inputs.rules, inputs.lines);
    let diff = crate::diff::diff(inputs.rules, &values, &desired, inputs.snapshot);
    Ok(Plan::new(diff, digests(inputs), created_at))
}

/// What a plan computed from these inputs would record as its digests.
pub fn digests(inputs: &PlanInputs<'_>) -> Digests {
    Digests {
        snapshot: snapshot_digest(inputs.snapshot),
        inputs: inputs.inputs_digest.clone(),
        mappings: mappings_digest(inputs.mapping_sources),
    }
}
