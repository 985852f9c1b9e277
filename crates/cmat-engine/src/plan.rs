//! The plan: the diff's changes with stable refs, the digests of what it was computed from,
//! and its three renderings (text for people, JSON for scripts and `apply`, CSV per field).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use std::collections::BTreeSet;

use crate::desired::Warning;
use crate::diff::{Change, Diff};
use crate::snapshot::Snapshot;
use crate::write::{
    Action, Adjustment, ChargeEdits, ContractEdits, Edit, Entity, Id, NaturalKey, NewCharge,
    NewContract, NewService, Ref, UdfEdit, Write,
};

/// The saved plan's format (SPEC): a plan of another version is refused, never guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// Why a saved plan cannot be trusted: `apply` and `approve` refuse it and write nothing.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The cause (serde's message, with line and column) is rendered as the error's cause.
    #[error("{path}: not a cmat plan")]
    Parse {
        /// The plan file, as the user named it.
        path: String,
        /// Where and why the JSON did not read.
        source: serde_json::Error,
    },
    /// A plan written by another cmat: its meaning may differ.
    #[error("{path}: plan format version {found} is not supported (this cmat reads version {FORMAT_VERSION})")]
    Version {
        /// The plan file.
        path: String,
        /// The `format_version` it declares (0 when it declares none).
        found: u32,
    },
    /// A change that is not a write cmat makes, or does not agree with itself.
    #[error("{path}: change {reference}: {message}")]
    Invalid {
        /// The plan file.
        path: String,
        /// The change's ref (`cN`), so the user finds it.
        reference: String,
        /// What is wrong, naming the field (`fields.unitPrice: …`).
        message: String,
    },
}

/// What a plan was computed from, so `apply` can tell a stale plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// The Autotask snapshot ([`snapshot_digest`]).
    pub snapshot: String,
    /// The bills in the store (changes when a bill is added or restated).
    pub inputs: String,
    /// The mapping files ([`mappings_digest`]).
    pub mappings: String,
}

/// The plan's counts, for its last line and for scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records to create.
    pub create: u64,
    /// Records to update.
    pub update: u64,
    /// Contract service adjustments.
    pub adjust: u64,
    /// Records to delete.
    pub delete: u64,
    /// Records that already match the bills.
    pub unchanged: u64,
    /// Warnings the plan carries.
    pub warnings: u64,
}

impl Summary {
    /// Counts one change under its action.
    fn count(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Adjust => self.adjust += 1,
            Action::Delete => self.delete += 1,
        }
    }
}

/// A change's parent as the saved plan spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanParent {
    /// A record Autotask holds.
    Existing {
        /// Its entity (always "Contracts" today).
        entity: String,
        /// Its Autotask id.
        id: i64,
    },
    /// A record an earlier change of the same plan creates.
    Planned {
        /// That change's ref (`cN`).
        #[serde(rename = "ref")]
        reference: String,
    },
}

/// One change of a plan: a typed write, the natural key it is found by, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanChange {
    /// `cN`: how later changes, the journal and the user name this change.
    pub reference: String,
    /// How the record is found again without its id (after a crash, in a later plan).
    pub key: NaturalKey,
    /// What is written.
    pub write: Write<Ref>,
    /// The mapping rule that decided it.
    pub rule: String,
    /// Why, in words a person checks against the bill.
    pub reason: String,
    /// Grouping for the text plan; not part of the JSON contract.
    pub company_id: i64,
    /// The contract the text plan shows the change under; not part of the JSON contract.
    pub contract_label: String,
}

/// Something the plan could not decide or thinks a person should see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWarning {
    /// The stable code scripts and the report match on.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// Where it comes from (a bill line, a record).
    pub source: String,
}

/// The changes that bring Autotask in line with the bills, and what they were computed from;
/// saved as SPEC's plan JSON and applied from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// [`FORMAT_VERSION`] for a plan made now; what a saved plan declared when read.
    pub format_version: u32,
    /// When the plan was computed.
    pub created_at: DateTime<Utc>,
    /// What it was computed from.
    pub digests: Digests,
    /// Its counts.
    pub summary: Summary,
    /// The writes, in the order apply makes them.
    pub changes: Vec<PlanChange>,
    /// What a person should see before approving.
    pub warnings: Vec<PlanWarning>,
    /// Who made the plan, when known (`CMAT_USER`): what `require_distinct_approver` compares
    /// an approver with. Optional in the JSON, so older plans still read.
    pub created_by: Option<String>,
    /// A person's approval (`cmat approve`), bound to [`Plan::digest`].
    pub approval: Option<Approval>,
}

/// Who approved a saved plan, when, and the digest of the plan they saw. `seal` binds the
/// three, so a changed name or time voids the approval as a changed plan does. It is a
/// checksum, not a signature: someone able to edit the file can recompute it; the audit trail
/// (chained) records the approver and the digest of what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The [`Plan::digest`] of the plan they saw.
    pub digest: String,
    /// The checksum of the three: an edited name or time voids the approval.
    pub seal: String,
}

impl Approval {
    fn new(by: &str, at: DateTime<Utc>, digest: String) -> Approval {
        let seal = Approval::seal_of(by, &at, &digest);
        Approval { by: by.to_string(), at, digest, seal }
    }

    fn seal_of(by: &str, at: &DateTime<Utc>, digest: &str) -> String {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        sha256_hex(format!("{}\n{by}\n{}\n{at}\n{digest}", by.len(), at.len()).as_bytes())
    }
}

/// Whether a saved plan file carries an approval that still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStatus {
    /// No approval in the file.
    Unapproved,
    /// An approval that holds for the plan as it is.
    Approved(Approval),
    /// Approved once, but the file changed since: the reason says how.
    Void(String),
}

/// The digest cmat records everywhere (plans, approvals, the audit trail): "sha256:" and hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    prefixed_hex(Sha256::digest(bytes))
}

/// "sha256:" and the digest in lower-case hex.
fn prefixed_hex(digest: impl AsRef<[u8]>) -> String {
    let mut out = String::from("sha256:");
    for byte in digest.as_ref() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The snapshot as it serializes with `refreshed_at` left out (null), borrowed: the JSON goes
/// straight into the hash, with no copy of the snapshot and no buffer (a large tenant's is tens
/// of megabytes). Same fields in the same order as [`Snapshot`], so the digest is the one plans
/// saved before this view recorded.
#[derive(Serialize)]
struct DigestedRecords<'a> {
    companies: &'a BTreeMap<i64, crate::snapshot::Company>,
    contracts: &'a BTreeMap<i64, crate::snapshot::Contract>,
    services: &'a BTreeMap<i64, crate::snapshot::Service>,
    contract_services: &'a BTreeMap<i64, crate::snapshot::ContractService>,
    contract_service_units: &'a BTreeMap<i64, crate::snapshot::ContractServiceUnit>,
    charges: &'a BTreeMap<i64, crate::snapshot::ContractCharge>,
    billing_codes: &'a BTreeMap<i64, crate::snapshot::BillingCode>,
    picklists: &'a crate::snapshot::Picklists,
    currencies: &'a BTreeMap<i64, crate::snapshot::Currency>,
    refreshed_at: Option<DateTime<Utc>>,
    incomplete: &'a BTreeMap<String, crate::snapshot::IncompleteRecord>,
}

/// Digest of everything the plan read from Autotask (ordered maps: stable bytes).
pub fn snapshot_digest(snapshot: &Snapshot) -> String {
    // Every field named: one added to `Snapshot` does not compile here until the digest
    // takes it.
    let Snapshot {
        companies,
        contracts,
        services,
        contract_services,
        contract_service_units,
        charges,
        billing_codes,
        picklists,
        currencies,
        refreshed_at: _,
        incomplete,
    } = snapshot;
    let records = DigestedRecords {
        companies,
        contracts,
        services,
        contract_services,
        contract_service_units,
        charges,
        billing_codes,
        picklists,
        currencies,
        refreshed_at: None,
        incomplete,
    };
    // `Sha256` is an `io::Write` that hashes what is written. Plain records into a hash: no
    // I/O that could fail, integer keys serde_json writes as strings.
    let mut hasher = Sha256::new();
    let _ =
        serde_json::to_writer(std::io::BufWriter::with_capacity(64 * 1024, &mut hasher), &records);
    prefixed_hex(hasher.finalize())
}

/// The ref (`cN`, numbered from 1 in the diff's order) of each record the diff creates, by
/// its natural key: what later changes name it by.
fn planned_refs(changes: &[Change]) -> BTreeMap<NaturalKey, String> {
    changes
        .iter()
        .enumerate()
        .filter(|(_, change)| change.write.action() == Action::Create)
        .map(|(index, change)| (change.key.clone(), format!("c{}", index + 1)))
        .collect()
}

impl PlanChange {
    /// The diff's change as the plan's `number`th, its planned records named by their refs.
    fn numbered(number: usize, change: Change, refs: &BTreeMap<NaturalKey, String>) -> PlanChange {
        let Change { key, write, rule, reason, company_id, contract_label } = change;
        let write = write
            .map_refs(|planned| {
                Ok::<_, std::convert::Infallible>(Ref(refs
                    .get(planned)
                    .cloned()
                    .unwrap_or_else(|| planned.to_string())))
            })
            .unwrap_or_else(|never| match never {});
        PlanChange {
            reference: format!("c{number}"),
            key,
            write,
            rule: rule.to_string(),
            reason,
            company_id,
            contract_label,
        }
    }
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
    prefixed_hex(hasher.finalize())
}

impl Plan {
    /// Numbers the changes (c1, c2, …) in the diff's order and turns planned-record keys into refs.
    pub fn new(diff: Diff, digests: Digests, created_at: DateTime<Utc>) -> Plan {
        let refs = planned_refs(&diff.changes);
        let mut summary = Summary {
            unchanged: diff.unchanged,
            warnings: diff.warnings.len() as u64,
            ..Summary::default()
        };
        for change in &diff.changes {
            summary.count(change.write.action());
        }
        let changes = diff
            .changes
            .into_iter()
            .enumerate()
            .map(|(index, change)| PlanChange::numbered(index + 1, change, &refs))
            .collect();
        Plan {
            format_version: FORMAT_VERSION,
            created_at,
            digests,
            summary,
            changes,
            warnings: diff.warnings.iter().map(plan_warning).collect(),
            created_by: None,
            approval: None,
        }
    }

    /// The plan's own digest: SHA-256 of its JSON without the approval, the bytes
    /// `cmat plan --out` writes. An approval records it; any change to the plan changes it.
    pub fn digest(&self) -> String {
        let mut raw = self.to_raw();
        raw.approval = None;
        let mut text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        text.push('\n');
        sha256_hex(text.as_bytes())
    }

    /// Records `by`'s approval at `at`, bound to the plan as it is now.
    pub fn approve(&mut self, by: &str, at: DateTime<Utc>) {
        self.approval = Some(Approval::new(by, at, self.digest()));
    }

    /// Whether the approval in a plan read from `text` still holds: the digest must be the
    /// plan's, and the file must be byte for byte what `approve` wrote (an edit that leaves the
    /// parsed plan equal, such as spacing, still voids it: one changed byte is a changed plan).
    pub fn approval_status(&self, text: &str) -> ApprovalStatus {
        let Some(approval) = &self.approval else {
            return ApprovalStatus::Unapproved;
        };
        if approval.digest != self.digest() {
            return ApprovalStatus::Void(format!(
                "the plan's digest is {}, not the approved {}: the plan changed after it was approved",
                self.digest(),
                approval.digest
            ));
        }
        if approval.seal != Approval::seal_of(&approval.by, &approval.at, &approval.digest) {
            return ApprovalStatus::Void(
                "the approval's seal does not match its name, time and digest: it was edited"
                    .to_string(),
            );
        }
        if self.to_json() != text {
            return ApprovalStatus::Void(
                "the file is not byte for byte the approved plan: it was edited after approval"
                    .to_string(),
            );
        }
        ApprovalStatus::Approved(approval.clone())
    }

    /// Whether applying the plan would write anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The saved plan, SPEC's `format_version` 1.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_raw()).unwrap_or_default();
        text.push('\n');
        text
    }

    fn to_raw(&self) -> RawPlan {
        RawPlan {
            format_version: self.format_version,
            created_at: self.created_at,
            digests: self.digests.clone(),
            summary: self.summary.clone(),
            changes: self.changes.iter().map(PlanChange::to_raw).collect(),
            warnings: self.warnings.clone(),
            created_by: self.created_by.clone(),
            approval: self.approval.clone(),
        }
    }

    /// Reads a saved plan and checks that it is internally consistent before anyone trusts it:
    /// every change must be a write cmat makes, with typed values, each error naming its change.
    pub fn from_json(path: &str, text: &str) -> Result<Plan, PlanError> {
        let raw = RawPlan::parse(path, text)?;
        let invalid = |change: &RawChange, message: String| PlanError::Invalid {
            path: path.to_string(),
            reference: change.reference.clone(),
            message,
        };
        // The plan's shape first (entities, parents, ids), then each change's values.
        raw.check_shape().map_err(|(change, message)| invalid(change, message))?;
        let mut created = BTreeSet::new();
        let mut changes = Vec::with_capacity(raw.changes.len());
        for change in &raw.changes {
            let typed = PlanChange::from_raw(change, &created)
                .map_err(|message| invalid(change, message))?;
            if typed.write.action() == Action::Create {
                created.insert(change.reference.clone());
            }
            changes.push(typed);
        }
        Ok(Plan {
            format_version: raw.format_version,
            created_at: raw.created_at,
            digests: raw.digests,
            summary: raw.summary,
            changes,
            warnings: raw.warnings,
            created_by: raw.created_by,
            approval: raw.approval,
        })
    }

    /// A saved plan carries no grouping for the text view: find each change's company and
    /// contract again from its write, its parent, or the snapshot.
    pub fn restore_grouping(&mut self, snapshot: &Snapshot) {
        let mut planned: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for change in &mut self.changes {
            let subscription = change.key.subscription().unwrap_or_default();
            let held = |id: i64| snapshot.contracts.get(&id);
            let (company, label) = match (&change.write, change.write.parent()) {
                (Write::CreateContract(contract), _) => {
                    (contract.company_id, format!("{} [{subscription}]", contract.name))
                }
                (_, Some(Id::Existing(id))) => match held(*id) {
                    Some(contract) => (
                        contract.company_id,
                        format!("{} [{subscription}] #{id}", contract.contract_name),
                    ),
                    None => (0, format!("contract #{id}")),
                },
                (_, Some(Id::Planned(Ref(reference)))) => {
                    planned.get(reference).cloned().unwrap_or_default()
                }
                (write, None) => match write.id().and_then(held) {
                    Some(contract) => (
                        contract.company_id,
                        format!("{} [{subscription}] #{}", contract.contract_name, contract.id),
                    ),
                    None => (0, String::new()),
                },
            };
            change.company_id = company;
            change.contract_label = label.clone();
            if change.write.entity() == Entity::Contracts {
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
            let key = change.key.to_string();
            for (field, old, new) in &change.field_rows() {
                let old = old.as_ref().map(plain).unwrap_or_default();
                let new = new.as_ref().map(plain).unwrap_or_default();
                let _ = writer.write_record([
                    change.reference.as_str(),
                    change.action().as_str(),
                    change.entity().as_str(),
                    &change.id().map(|id| id.to_string()).unwrap_or_default(),
                    key.as_str(),
                    field.as_str(),
                    &crate::spreadsheet::spreadsheet_safe(&old),
                    &crate::spreadsheet::spreadsheet_safe(&new),
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
        let sections = TextSections::of(&self.changes, company_names);
        let mut out = String::new();
        sections.write_groups(&mut out, &paint);
        sections.write_set_apart(&mut out, company_names, &paint);
        self.write_warnings(&mut out, &paint);
        self.write_totals(&mut out);
        out.trim_start_matches('\n').to_string()
    }

    /// The text plan's warnings, one a line.
    fn write_warnings(&self, out: &mut String, paint: &dyn Fn(&str, &str) -> String) {
        if self.warnings.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{}", paint("1;33", "Warnings:"));
        for warning in &self.warnings {
            let _ = writeln!(out, "  ! {}: {} ({})", warning.code, warning.message, warning.source);
        }
    }

    /// The text plan's last line: the counts, or that nothing is to change.
    fn write_totals(&self, out: &mut String) {
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
    }
}

/// The text plan's sections: changes grouped by company and contract, and two kinds set apart
/// for a person to see.
struct TextSections<'a> {
    groups: BTreeMap<(String, String), Vec<&'a PlanChange>>,
    /// Correcting charges: they restate a period already invoiced.
    restatements: Vec<&'a PlanChange>,
    /// Deletes, and adjustments that take units away.
    removals: Vec<&'a PlanChange>,
}

impl<'a> TextSections<'a> {
    fn of(changes: &'a [PlanChange], company_names: &BTreeMap<i64, String>) -> Self {
        let mut sections = TextSections {
            groups: BTreeMap::new(),
            restatements: Vec::new(),
            removals: Vec::new(),
        };
        for change in changes {
            if change.removes_records() {
                sections.removals.push(change);
            } else if change.restates_invoiced() {
                sections.restatements.push(change);
            } else {
                let company = if change.entity() == Entity::Services {
                    "Autotask Services (shared by all contracts)".to_string()
                } else {
                    company_label(change.company_id, company_names)
                };
                let group = (company, change.contract_label.clone());
                sections.groups.entry(group).or_default().push(change);
            }
        }
        sections
    }

    /// Each company's name once, then its contracts and their changes.
    fn write_groups(&self, out: &mut String, paint: &dyn Fn(&str, &str) -> String) {
        let mut last_company = None;
        for ((company, contract), changes) in &self.groups {
            if last_company != Some(company) {
                let _ = writeln!(out, "\n{}", paint("1", company));
                last_company = Some(company);
            }
            if !contract.is_empty() {
                let _ = writeln!(out, "  {contract}");
            }
            for change in changes {
                write_change(out, change, paint);
            }
        }
    }

    /// The restatements, then the removals, each under its title and each change with its
    /// company and contract.
    fn write_set_apart(
        &self,
        out: &mut String,
        company_names: &BTreeMap<i64, String>,
        paint: &dyn Fn(&str, &str) -> String,
    ) {
        for (title, code, set) in [
            ("Restatements of periods already invoiced:", "1;35", &self.restatements),
            ("Changes that remove licences or records:", "1;31", &self.removals),
        ] {
            if set.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{}", paint(code, title));
            for change in set.iter() {
                let company = company_label(change.company_id, company_names);
                let _ = writeln!(out, "  {company} / {}", change.contract_label);
                write_change(out, change, paint);
            }
        }
    }
}

impl PlanChange {
    /// A delete, or an adjustment that takes units away: the text plan sets these apart.
    fn removes_records(&self) -> bool {
        self.action() == Action::Delete
            || matches!(&self.write, Write::AdjustContractService(a) if a.unit_change < 0)
    }

    /// A correcting charge restates a period already invoiced: a person should see it apart.
    fn restates_invoiced(&self) -> bool {
        matches!(&self.key, NaturalKey::Charge { correction: Some(_), .. })
    }
}

fn company_label(company_id: i64, company_names: &BTreeMap<i64, String>) -> String {
    match company_names.get(&company_id) {
        Some(name) => format!("{name} (company {company_id})"),
        None => format!("company {company_id}"),
    }
}

fn write_change(out: &mut String, change: &PlanChange, paint: &dyn Fn(&str, &str) -> String) {
    let (symbol, code) = match change.action() {
        Action::Create => ("+", "32"),
        Action::Update | Action::Adjust => ("~", "33"),
        Action::Delete => ("-", "31"),
    };
    let target = match change.id() {
        Some(id) => format!("{} #{id}", change.entity().as_str()),
        None => change.entity().as_str().to_string(),
    };
    let item = change.key.item_label();
    let _ = writeln!(
        out,
        "    {} {} {target}{}{}: {}  [{}]",
        paint(code, symbol),
        change.action().as_str(),
        if item.is_empty() { "" } else { " " },
        item,
        change.reason,
        change.rule
    );
    for (field, old, new) in &change.field_rows() {
        match (old, new) {
            (Some(old), Some(new)) if change.action() == Action::Update => {
                let _ = writeln!(out, "        {field}: {} → {}", plain(old), plain(new));
            }
            (_, Some(new)) => {
                let _ = writeln!(out, "        {field} = {}", plain(new));
            }
            (Some(old), None) => {
                let _ = writeln!(out, "        {field} was {}", plain(old));
            }
            (None, None) => {}
        }
    }
}

/// An action's name as the plan and the audit trail spell it.
pub fn action_name(action: Action) -> &'static str {
    action.as_str()
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

impl Plan {
    /// Prices under a margin floor whose policy is `refuse`: `apply` writes nothing while any
    /// is left.
    pub fn margin_refusals(&self) -> Vec<&PlanWarning> {
        let code = crate::desired::WarningCode::MarginFloorRefused.as_str();
        self.warnings.iter().filter(|warning| warning.code == code).collect()
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
    /// The compiled mapping rules.
    pub rules: &'a crate::rules::RuleSet,
    /// The bill lines to reconcile.
    pub lines: &'a [crate::billing::BillLine],
    /// What Autotask holds.
    pub snapshot: &'a Snapshot,
    /// The mapping files by name and text, for their digest.
    pub mapping_sources: &'a [(String, String)],
    /// The digest of the bills read, recorded in the plan.
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

/// The saved plan as SPEC spells it; only [`Plan::to_json`] and [`Plan::from_json`] see it.
#[derive(Debug, Serialize, Deserialize)]
struct RawPlan {
    format_version: u32,
    created_at: DateTime<Utc>,
    digests: Digests,
    summary: Summary,
    changes: Vec<RawChange>,
    warnings: Vec<PlanWarning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<Approval>,
}

impl RawPlan {
    /// The saved plan's JSON, once its `format_version` is one this cmat reads.
    fn parse(path: &str, text: &str) -> Result<RawPlan, PlanError> {
        let version: Value = serde_json::from_str(text)
            .map_err(|source| PlanError::Parse { path: path.to_string(), source })?;
        let found = version.get("format_version").and_then(Value::as_u64).unwrap_or(0) as u32;
        if found != FORMAT_VERSION {
            return Err(PlanError::Version { path: path.to_string(), found });
        }
        // Read again from the text, not the value: serde's errors then carry line and column.
        serde_json::from_str(text)
            .map_err(|source| PlanError::Parse { path: path.to_string(), source })
    }

    /// Every change names an entity cmat knows, a parent created earlier in the plan, and the
    /// id an update or delete needs; the first that does not, and why.
    fn check_shape(&self) -> Result<(), (&RawChange, String)> {
        let mut known_refs = BTreeSet::new();
        for change in &self.changes {
            if Entity::from_name(&change.entity).is_none() {
                return Err((change, format!("unknown entity {}", change.entity)));
            }
            if let Some(PlanParent::Planned { reference }) = &change.parent {
                if !known_refs.contains(reference) {
                    let message = format!("parent {reference} is not created earlier in the plan");
                    return Err((change, message));
                }
            }
            if matches!(change.action, Action::Update | Action::Delete) && change.id.is_none() {
                return Err((change, "an update or delete needs an id".to_string()));
            }
            known_refs.insert(change.reference.clone());
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RawChange {
    #[serde(rename = "ref")]
    reference: String,
    action: Action,
    entity: String,
    id: Option<i64>,
    parent: Option<PlanParent>,
    key: String,
    fields: Map<String, Value>,
    before: Option<Map<String, Value>>,
    rule: String,
    reason: String,
}

/// One value of a field cmat writes, before it is spelled for the saved plan (decimals as
/// strings) or for Autotask (decimals as numbers).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A string field.
    Text(String),
    /// An integer: an id or a picklist value.
    Int(i64),
    /// An amount, exact.
    Decimal(rust_decimal::Decimal),
    /// A flag.
    Bool(bool),
    /// A calendar date, spelled YYYY-MM-DD.
    Date(chrono::NaiveDate),
    /// A user-defined field: Autotask takes UDFs as `[{"name": …, "value": …}]`; the value is
    /// None in a `before` where the record held none.
    Udf {
        /// The UDF's name ("Subscription ID" by default).
        name: String,
        /// Its value; None is JSON null.
        value: Option<String>,
    },
    /// A record created earlier in the same plan, by its ref: only a saved plan has these (the
    /// adapter's writes carry ids).
    Planned(String),
}

impl FieldValue {
    /// As the saved plan (and the audit trail) spell it.
    pub fn to_plan(&self) -> Value {
        match self {
            FieldValue::Text(value) => text(value.as_str()),
            FieldValue::Int(value) => Value::from(*value),
            FieldValue::Decimal(value) => decimal(*value),
            FieldValue::Bool(value) => Value::Bool(*value),
            FieldValue::Date(value) => date(*value),
            FieldValue::Udf { name, value } => {
                serde_json::json!([{ "name": name, "value": value }])
            }
            FieldValue::Planned(reference) => serde_json::json!({ "ref": reference }),
        }
    }
}

/// How a write names a planned record in a field: a plan by its ref, the adapter (once it was
/// created) by its id. Lets one field map serve `Write<Ref>` and `Write<i64>`.
pub trait RecordField {
    /// The field's value for the planned record.
    fn field_value(&self) -> FieldValue;
}

impl RecordField for i64 {
    fn field_value(&self) -> FieldValue {
        FieldValue::Int(*self)
    }
}

impl RecordField for Ref {
    fn field_value(&self) -> FieldValue {
        FieldValue::Planned(self.0.clone())
    }
}

/// Each kind of written value as a [`FieldValue`], named as the [`Fields`] method that reads it
/// back: a field map names the kind once and gets both. None leaves the field out.
mod put {
    use super::{FieldValue, RecordField};
    use crate::write::{Edit, Id, UdfEdit};
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    pub(super) fn text(value: &str) -> Option<FieldValue> {
        Some(FieldValue::Text(value.to_string()))
    }

    pub(super) fn int(value: &i64) -> Option<FieldValue> {
        Some(FieldValue::Int(*value))
    }

    pub(super) fn optional_int(value: &Option<i64>) -> Option<FieldValue> {
        value.map(FieldValue::Int)
    }

    pub(super) fn decimal(value: &Decimal) -> Option<FieldValue> {
        Some(FieldValue::Decimal(*value))
    }

    pub(super) fn optional_decimal(value: &Option<Decimal>) -> Option<FieldValue> {
        value.map(FieldValue::Decimal)
    }

    pub(super) fn boolean(value: &bool) -> Option<FieldValue> {
        Some(FieldValue::Bool(*value))
    }

    pub(super) fn date(value: &NaiveDate) -> Option<FieldValue> {
        Some(FieldValue::Date(*value))
    }

    /// A count the saved plan spells as text (an adjustment's units before).
    pub(super) fn count(value: &i64) -> Option<FieldValue> {
        Some(FieldValue::Text(value.to_string()))
    }

    /// A record a write points at: an id, or a planned record as its [`RecordField`] says.
    pub(super) fn record<P: RecordField>(id: &Id<P>) -> Option<FieldValue> {
        Some(match id {
            Id::Existing(id) => FieldValue::Int(*id),
            Id::Planned(planned) => planned.field_value(),
        })
    }

    /// A new contract's subscription UDF, from its name and value.
    pub(super) fn udf((name, value): (&String, &String)) -> Option<FieldValue> {
        Some(FieldValue::Udf { name: name.clone(), value: Some(value.clone()) })
    }

    /// An edit as (old, new); an old value of None is a field that held nothing.
    pub(super) fn edit<T>(
        edit: &Option<Edit<T>>,
        put: impl Fn(&T) -> Option<FieldValue>,
    ) -> Option<(Option<FieldValue>, FieldValue)> {
        let edit = edit.as_ref()?;
        Some((edit.old.as_ref().and_then(&put), put(&edit.new)?))
    }

    /// A UDF edit as (old, new): both name the UDF, the old value may be None.
    pub(super) fn udf_edit(udf: &Option<UdfEdit>) -> Option<(Option<FieldValue>, FieldValue)> {
        let udf = udf.as_ref()?;
        let value = |value: Option<&String>| FieldValue::Udf {
            name: udf.name.clone(),
            value: value.cloned(),
        };
        Some((Some(value(udf.edit.old.as_ref())), value(Some(&udf.edit.new))))
    }
}

/// Each written entity's Autotask fields, stated once: the Rust field, its kind (a [`put`]
/// function and a [`Fields`] method of that name) and its Autotask name. The plan's `fields`
/// and `before`, the Autotask request (the adapter's `request`) and the read-back of a saved
/// plan (`from_raw`) all go through these maps, so a new field is one line here.
///
/// Three shapes: a record written whole (`Entity { … }`; `a & b` joins two Rust fields into
/// one Autotask field, the subscription UDF), a record under a parent the caller supplies with
/// a `before` of its own (`Entity<P> given parent { … } before { … }`), and the edits of an
/// update (`edits Entity { … }`, each Rust field an `Option<Edit<_>>`).
macro_rules! field_map {
    ($entity:ident { $($($field:ident)&+: $kind:ident $name:literal),* $(,)? }) => {
        impl $entity {
            /// Autotask's name and value of each field written; an absent optional field is
            /// left out.
            pub fn field_values(&self) -> Vec<(&'static str, FieldValue)> {
                field_map!(@values self, $($($field)&+: $kind $name),*)
            }

            /// The record as a saved plan's `fields` (or a delete's `before`) spell it.
            fn read_fields(fields: &mut Fields<'_>) -> Result<Self, String> {
                $(let field_map!(@pattern $($field)&+) = fields.$kind($name)?;)*
                Ok($entity { $($($field,)+)* })
            }
        }
    };
    ($entity:ident<$planned:ident> given $given:ident {
        $($field:ident: $kind:ident $name:literal),* $(,)?
    } before {
        $($old:ident: $old_kind:ident $old_name:literal),* $(,)?
    }) => {
        impl<$planned: RecordField> $entity<$planned> {
            /// Autotask's name and value of each field written.
            pub fn field_values(&self) -> Vec<(&'static str, FieldValue)> {
                field_map!(@values self, $($field: $kind $name),*)
            }

            /// What Autotask held before, as the plan's `before` names it; an unknown value is
            /// left out.
            pub fn before_values(&self) -> Vec<(&'static str, FieldValue)> {
                field_map!(@values self, $($old: $old_kind $old_name),*)
            }
        }

        impl $entity<Ref> {
            /// The record from a saved plan's `fields` and `before`; its parent is checked
            /// after the fields, before `before`.
            fn read_fields(
                $given: Result<Id<Ref>, String>,
                fields: &mut Fields<'_>,
                before: &mut Fields<'_>,
            ) -> Result<Self, String> {
                $(let $field = fields.$kind($name)?;)*
                let $given = $given?;
                $(let $old = before.$old_kind($old_name)?;)*
                Ok($entity { $given, $($field,)* $($old,)* })
            }
        }
    };
    (edits $entity:ident { $($field:ident: $kind:ident $name:literal),* $(,)? }) => {
        impl $entity {
            /// Each changed field: Autotask's name, what it held (None: nothing) and the new
            /// value.
            pub fn edit_values(&self) -> Vec<(&'static str, Option<FieldValue>, FieldValue)> {
                [$(($name, field_map!(@edit $kind, &self.$field))),*]
                    .into_iter()
                    .filter_map(|(name, edit)| edit.map(|(old, new)| (name, old, new)))
                    .collect()
            }

            /// The edits of a saved update: a field in `fields` is changed, and `before` must
            /// say what it held.
            fn read_edits<'a>(
                fields: &mut Fields<'a>,
                before: &mut Fields<'a>,
            ) -> Result<Self, String> {
                Ok($entity { $($field: field_map!(@read_edit fields, before, $kind, $name),)* })
            }
        }
    };
    (@values $self:ident, $($($field:ident)&+: $kind:ident $name:literal),*) => {
        [$(($name, put::$kind(field_map!(@get $self, $($field)&+)))),*]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect()
    };
    (@get $self:ident, $field:ident) => { &$self.$field };
    (@get $self:ident, $first:ident & $second:ident) => { (&$self.$first, &$self.$second) };
    (@pattern $field:ident) => { $field };
    (@pattern $first:ident & $second:ident) => { ($first, $second) };
    (@edit udf, $value:expr) => { put::udf_edit($value) };
    (@edit $kind:ident, $value:expr) => { put::edit($value, |value| put::$kind(value)) };
    (@read_edit $fields:ident, $before:ident, udf, $name:literal) => {
        read_udf_edit($fields, $before, $name)?
    };
    (@read_edit $fields:ident, $before:ident, $kind:ident, $name:literal) => {
        read_edit($fields, $before, $name, Fields::$kind)?
    };
}

field_map!(NewService {
    name: text "name",
    sku: text "sku",
    billing_code_id: int "billingCodeID",
    period_type: optional_int "periodType",
    unit_price: decimal "unitPrice",
    unit_cost: decimal "unitCost",
    is_active: boolean "isActive",
});

field_map!(NewContract {
    // First: a saved plan's errors name the UDF before the other fields.
    subscription_udf & subscription: udf "userDefinedFields",
    company_id: int "companyID",
    name: text "contractName",
    contract_type: int "contractType",
    status: int "status",
    period_type: optional_int "contractPeriodType",
    start_date: date "startDate",
    end_date: date "endDate",
    service_level_agreement_id: int "serviceLevelAgreementID",
    time_reporting_requires_start_and_stop_times: int "timeReportingRequiresStartAndStopTimes",
    category: optional_int "contractCategory",
    line_of_business: optional_int "organizationalLevelAssociationID",
});

field_map!(edits ContractEdits {
    name: text "contractName",
    end_date: date "endDate",
    service_level_agreement_id: int "serviceLevelAgreementID",
    category: int "contractCategory",
    subscription: udf "userDefinedFields",
});

field_map!(Adjustment<P> given contract {
    service: record "serviceID",
    effective_date: date "effectiveDate",
    unit_change: int "unitChange",
    adjusted_unit_price: decimal "adjustedUnitPrice",
    adjusted_unit_cost: decimal "adjustedUnitCost",
} before {
    units_before: count "units",
    price_before: optional_decimal "adjustedUnitPrice",
    cost_before: optional_decimal "adjustedUnitCost",
});

field_map!(NewCharge {
    name: text "name",
    description: text "description",
    date_purchased: date "datePurchased",
    charge_type: int "chargeType",
    unit_quantity: decimal "unitQuantity",
    unit_price: decimal "unitPrice",
    unit_cost: optional_decimal "unitCost",
    billing_code_id: int "billingCodeID",
    is_billable_to_company: boolean "isBillableToCompany",
});

field_map!(edits ChargeEdits {
    unit_price: decimal "unitPrice",
    unit_cost: decimal "unitCost",
});

impl<P: RecordField> Write<P> {
    /// What the write sends, by Autotask name: a create's record, an update's new values, an
    /// adjustment's; a delete sends no field.
    pub fn field_values(&self) -> Vec<(&'static str, FieldValue)> {
        let new = |edits: Vec<(&'static str, Option<FieldValue>, FieldValue)>| {
            edits.into_iter().map(|(name, _, new)| (name, new)).collect()
        };
        match self {
            Write::CreateService(service) => service.field_values(),
            Write::CreateContract(contract) => contract.field_values(),
            Write::UpdateContract { edits, .. } => new(edits.edit_values()),
            Write::AdjustContractService(adjustment) => adjustment.field_values(),
            Write::CreateCharge { charge, .. } => charge.field_values(),
            Write::UpdateCharge { edits, .. } => new(edits.edit_values()),
            Write::DeleteCharge { .. } => Vec::new(),
        }
    }

    /// What Autotask held before the write (the plan's `before`): None for a create; a value
    /// of None is a field that held nothing. A delete's is the record it removes.
    pub fn before_values(&self) -> Option<Vec<(&'static str, Option<FieldValue>)>> {
        let old = |edits: Vec<(&'static str, Option<FieldValue>, FieldValue)>| {
            edits.into_iter().map(|(name, old, _)| (name, old)).collect()
        };
        let held = |values: Vec<(&'static str, FieldValue)>| {
            values.into_iter().map(|(name, value)| (name, Some(value))).collect()
        };
        Some(match self {
            Write::CreateService(_) | Write::CreateContract(_) | Write::CreateCharge { .. } => {
                return None
            }
            Write::UpdateContract { edits, .. } => old(edits.edit_values()),
            Write::AdjustContractService(adjustment) => held(adjustment.before_values()),
            Write::UpdateCharge { edits, .. } => old(edits.edit_values()),
            Write::DeleteCharge { charge, .. } => held(charge.field_values()),
        })
    }
}

fn text(value: impl Into<String>) -> Value {
    Value::String(value.into())
}

/// Decimals are JSON strings with their scale ("5.0000"), never floats.
fn decimal(value: rust_decimal::Decimal) -> Value {
    Value::String(value.to_string())
}

fn date(value: chrono::NaiveDate) -> Value {
    Value::String(value.to_string())
}

impl PlanChange {
    /// Each field with what Autotask held and what the change writes: a delete's fields are
    /// its `before`, written as nothing. The CSV, the text plan and the audit trail use it.
    pub fn field_rows(&self) -> Vec<(String, Option<Value>, Option<Value>)> {
        let before = self.before();
        let old = |field: &str| before.as_ref().and_then(|before| before.get(field)).cloned();
        if self.action() == Action::Delete {
            return before
                .iter()
                .flatten()
                .map(|(field, value)| (field.clone(), Some(value.clone()), None))
                .collect();
        }
        self.fields()
            .into_iter()
            .map(|(field, value)| (field.clone(), old(&field), Some(value)))
            .collect()
    }

    /// What the change does (create, update, adjust, delete).
    pub fn action(&self) -> Action {
        self.write.action()
    }

    /// The Autotask entity the change writes.
    pub fn entity(&self) -> Entity {
        self.write.entity()
    }

    /// The existing record the change updates or deletes.
    pub fn id(&self) -> Option<i64> {
        self.write.id()
    }

    /// The fields as the saved plan (and the audit trail) name them: Autotask's camelCase
    /// names, decimals as strings, a planned record as `{"ref": "cN"}`.
    pub fn fields(&self) -> Map<String, Value> {
        let values = self.write.field_values().into_iter();
        values.map(|(name, value)| (name.to_string(), value.to_plan())).collect()
    }

    /// What Autotask held before the change, for updates, adjustments and deletes.
    pub fn before(&self) -> Option<Map<String, Value>> {
        let values = self.write.before_values()?.into_iter();
        let plan =
            |value: Option<FieldValue>| value.as_ref().map_or(Value::Null, FieldValue::to_plan);
        Some(values.map(|(name, value)| (name.to_string(), plan(value))).collect())
    }

    /// The parent as the saved plan spells it.
    pub fn parent(&self) -> Option<PlanParent> {
        self.write.parent().map(|parent| match parent {
            Id::Existing(id) => {
                PlanParent::Existing { entity: Entity::Contracts.as_str().to_string(), id: *id }
            }
            Id::Planned(Ref(reference)) => PlanParent::Planned { reference: reference.clone() },
        })
    }

    fn to_raw(&self) -> RawChange {
        RawChange {
            reference: self.reference.clone(),
            action: self.action(),
            entity: self.entity().as_str().to_string(),
            id: self.id(),
            parent: self.parent(),
            key: self.key.to_string(),
            fields: self.fields(),
            before: self.before(),
            rule: self.rule.clone(),
            reason: self.reason.clone(),
        }
    }

    /// The typed change of a saved one; `created` holds the refs of earlier creates.
    fn from_raw(raw: &RawChange, created: &BTreeSet<String>) -> Result<PlanChange, String> {
        let key: NaturalKey = raw.key.parse()?;
        let entity = Entity::from_name(&raw.entity)
            .ok_or_else(|| format!("unknown entity {}", raw.entity))?;
        let parent = raw.parent.as_ref().map(|parent| parent.contract(created)).transpose()?;
        let mut fields = Fields::new("fields", &raw.fields, created);
        let empty = Map::new();
        let mut before = Fields::new("before", raw.before.as_ref().unwrap_or(&empty), created);
        let write = write_of(raw, entity, parent, &mut fields, &mut before)?;
        fields.finish()?;
        before.finish()?;
        if raw.before.is_some()
            != matches!(raw.action, Action::Update | Action::Adjust | Action::Delete)
        {
            return Err(format!(
                "before is only for updates, adjustments and deletes, not {}",
                raw.action.as_str()
            ));
        }
        if write.id().is_none() && raw.id.is_some() {
            return Err(format!("{} {} takes no id", raw.action.as_str(), raw.entity));
        }
        check_key(&key, &write)?;
        Ok(PlanChange {
            reference: raw.reference.clone(),
            key,
            write,
            rule: raw.rule.clone(),
            reason: raw.reason.clone(),
            company_id: 0,
            contract_label: String::new(),
        })
    }
}

impl PlanParent {
    /// The contract a saved change hangs under: one Autotask holds, or one created earlier.
    fn contract(&self, created: &BTreeSet<String>) -> Result<Id<Ref>, String> {
        match self {
            PlanParent::Existing { entity, id } if entity == "Contracts" => Ok(Id::Existing(*id)),
            PlanParent::Existing { entity, .. } => {
                Err(format!("parent entity {entity} is not Contracts"))
            }
            PlanParent::Planned { reference } => Ok(Id::Planned(planned(created, reference)?)),
        }
    }
}

/// A planned record's ref, which must be created earlier in the plan.
fn planned(created: &BTreeSet<String>, reference: &str) -> Result<Ref, String> {
    if created.contains(reference) {
        Ok(Ref(reference.to_string()))
    } else {
        Err(format!("{reference} is not created earlier in the plan"))
    }
}

/// The write a saved change's action, entity, parent, fields and before describe.
fn write_of<'a>(
    raw: &RawChange,
    entity: Entity,
    parent: Option<Id<Ref>>,
    fields: &mut Fields<'a>,
    before: &mut Fields<'a>,
) -> Result<Write<Ref>, String> {
    let id = raw.id.unwrap_or_default();
    Ok(match (raw.action, entity) {
        (Action::Create, Entity::Services) => {
            no_parent(raw, parent)?;
            Write::CreateService(NewService::read_fields(fields)?)
        }
        (Action::Create, Entity::Contracts) => {
            no_parent(raw, parent)?;
            Write::CreateContract(NewContract::read_fields(fields)?)
        }
        (Action::Update, Entity::Contracts) => {
            no_parent(raw, parent)?;
            let edits = ContractEdits::read_edits(fields, before)?;
            changes_a_field(entity, edits == ContractEdits::default())?;
            Write::UpdateContract { id, edits }
        }
        (Action::Adjust, Entity::ContractServiceAdjustments) => {
            let contract = needs_parent(raw, parent);
            Write::AdjustContractService(Adjustment::read_fields(contract, fields, before)?)
        }
        (Action::Create, Entity::ContractCharges) => Write::CreateCharge {
            contract: needs_parent(raw, parent)?,
            charge: NewCharge::read_fields(fields)?,
        },
        (Action::Delete, Entity::ContractCharges) => Write::DeleteCharge {
            id: raw.id.ok_or("a delete of ContractCharges needs the charge's id")?,
            contract: needs_parent(raw, parent)?,
            charge: NewCharge::read_fields(before)?,
        },
        (Action::Update, Entity::ContractCharges) => {
            let edits = ChargeEdits::read_edits(fields, before)?;
            changes_a_field(entity, edits == ChargeEdits::default())?;
            Write::UpdateCharge { id, contract: needs_parent(raw, parent)?, edits }
        }
        (action, entity) => {
            return Err(format!("cmat plans no {} of {}", action.as_str(), entity.as_str()))
        }
    })
}

/// A saved change of a record without a parent must name none.
fn no_parent(raw: &RawChange, parent: Option<Id<Ref>>) -> Result<(), String> {
    match parent {
        None => Ok(()),
        Some(_) => Err(format!("{} {} has no parent", raw.action.as_str(), raw.entity)),
    }
}

/// A saved change of a contract's child must name its contract.
fn needs_parent(raw: &RawChange, parent: Option<Id<Ref>>) -> Result<Id<Ref>, String> {
    parent.ok_or_else(|| format!("{} {} needs a parent contract", raw.action.as_str(), raw.entity))
}

/// An update that changes nothing is not one cmat plans.
fn changes_a_field(entity: Entity, unchanged: bool) -> Result<(), String> {
    if unchanged {
        Err(format!("an update of {} changes no field cmat writes", entity.as_str()))
    } else {
        Ok(())
    }
}

/// An edit read back: present in `fields`, the field changed, and `before` must say what it
/// held (null: nothing); absent, it did not change.
fn read_edit<'a, T>(
    fields: &mut Fields<'a>,
    before: &mut Fields<'a>,
    name: &str,
    read: fn(&mut Fields<'a>, &str) -> Result<T, String>,
) -> Result<Option<Edit<T>>, String> {
    if !fields.map.contains_key(name) {
        return Ok(None);
    }
    let old = before.nullable(read, name)?;
    let new = read(fields, name)?;
    Ok(Some(Edit { old, new }))
}

/// A UDF edit read back, as [`read_edit`] reads other fields.
fn read_udf_edit<'a>(
    fields: &mut Fields<'a>,
    before: &mut Fields<'a>,
    name: &str,
) -> Result<Option<UdfEdit>, String> {
    match fields.take(name) {
        None => Ok(None),
        Some(new) => udf_edit((before.required(name)?, new)).map(Some),
    }
}

/// The key must be the kind of record the write makes, and agree with what it writes.
fn check_key(key: &NaturalKey, write: &Write<Ref>) -> Result<(), String> {
    let agrees = match (key, write) {
        (NaturalKey::Service { sku }, Write::CreateService(service)) => *sku == service.sku,
        (NaturalKey::Subscription(subscription), Write::CreateContract(contract)) => {
            *subscription == contract.subscription
        }
        (NaturalKey::Subscription(_), Write::UpdateContract { .. }) => true,
        (NaturalKey::Product { .. }, Write::AdjustContractService(_)) => true,
        (
            NaturalKey::Charge { date, correction, .. },
            Write::CreateCharge { charge, .. } | Write::DeleteCharge { charge, .. },
        ) => {
            *date == charge.date_purchased
                && correction.as_ref().is_none_or(|name| *name == charge.name)
        }
        (NaturalKey::Charge { correction: None, .. }, Write::UpdateCharge { .. }) => true,
        _ => false,
    };
    if agrees {
        Ok(())
    } else {
        Err(format!("key {key} does not match what the change writes"))
    }
}

/// A UDF update: `[{"name": UDF, "value": …}]` in `fields` and in `before` (whose value may be
/// null), for the same UDF.
fn udf_edit((old, new): (Value, Value)) -> Result<UdfEdit, String> {
    fn one(value: &Value) -> Result<(String, Option<String>), String> {
        let shape = || "not [{\"name\": …, \"value\": …}]".to_string();
        let udf = match value.as_array().map(Vec::as_slice) {
            Some([Value::Object(udf)]) if udf.len() == 2 => udf,
            _ => return Err(shape()),
        };
        let name = udf.get("name").and_then(Value::as_str).ok_or_else(shape)?;
        match udf.get("value") {
            Some(Value::Null) => Ok((name.to_string(), None)),
            Some(Value::String(value)) => Ok((name.to_string(), Some(value.clone()))),
            _ => Err(shape()),
        }
    }
    let (old_name, old) =
        one(&old).map_err(|message| format!("before.userDefinedFields: {message}"))?;
    let (name, new) =
        one(&new).map_err(|message| format!("fields.userDefinedFields: {message}"))?;
    let new = new.ok_or_else(|| "fields.userDefinedFields: the new value is null".to_string())?;
    if old_name != name {
        return Err(format!("before.userDefinedFields names {old_name:?}, fields {name:?}"));
    }
    Ok(UdfEdit { name, edit: Edit { old, new } })
}

fn as_int(value: &Value) -> Result<i64, String> {
    value.as_i64().ok_or_else(|| format!("{value} is not an integer"))
}

fn as_text(value: &Value) -> Result<String, String> {
    value.as_str().map(str::to_string).ok_or_else(|| format!("{value} is not a string"))
}

fn as_date(value: &Value) -> Result<chrono::NaiveDate, String> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("{value} is not a date (YYYY-MM-DD)"))
}

/// A decimal amount: a JSON string such as "20.6000", never a float.
fn as_decimal(value: &Value) -> Result<rust_decimal::Decimal, String> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("{value} is not a decimal amount (a string such as \"20.6000\")"))
}

/// The fields of one saved change, read once each; what is left over is an error. A field
/// map's kinds are its methods (`text`, `int`, …), each named as the [`put`] function that
/// writes that kind.
struct Fields<'a> {
    what: &'static str,
    map: &'a Map<String, Value>,
    read: BTreeSet<&'a str>,
    /// The refs of the records created earlier in the plan: what a `{"ref"}` may name.
    created: &'a BTreeSet<String>,
}

impl<'a> Fields<'a> {
    fn new(what: &'static str, map: &'a Map<String, Value>, created: &'a BTreeSet<String>) -> Self {
        Fields { what, map, read: BTreeSet::new(), created }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let (key, value) = self.map.get_key_value(name)?;
        self.read.insert(key.as_str());
        Some(value.clone())
    }

    fn required(&mut self, name: &str) -> Result<Value, String> {
        self.take(name).ok_or_else(|| format!("{}.{name} is missing", self.what))
    }

    fn read<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, String> {
        let value = self.required(name)?;
        read(&value).map_err(|message| format!("{}.{name}: {message}", self.what))
    }

    fn optional<T>(
        &mut self,
        read: fn(&mut Self, &str) -> Result<T, String>,
        name: &str,
    ) -> Result<Option<T>, String> {
        if self.map.contains_key(name) {
            read(self, name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A field that must be there, and may be null (a `before` where nothing was held).
    fn nullable<T>(
        &mut self,
        read: fn(&mut Self, &str) -> Result<T, String>,
        name: &str,
    ) -> Result<Option<T>, String> {
        if self.map.get(name) == Some(&Value::Null) {
            self.take(name);
            Ok(None)
        } else {
            read(self, name).map(Some)
        }
    }

    fn int(&mut self, name: &str) -> Result<i64, String> {
        self.read(name, as_int)
    }

    fn optional_int(&mut self, name: &str) -> Result<Option<i64>, String> {
        self.optional(Fields::int, name)
    }

    fn text(&mut self, name: &str) -> Result<String, String> {
        self.read(name, as_text)
    }

    fn date(&mut self, name: &str) -> Result<chrono::NaiveDate, String> {
        self.read(name, as_date)
    }

    fn decimal(&mut self, name: &str) -> Result<rust_decimal::Decimal, String> {
        self.read(name, as_decimal)
    }

    fn optional_decimal(&mut self, name: &str) -> Result<Option<rust_decimal::Decimal>, String> {
        self.optional(Fields::decimal, name)
    }

    fn boolean(&mut self, name: &str) -> Result<bool, String> {
        self.read(name, |value| {
            value.as_bool().ok_or_else(|| format!("{value} is not true or false"))
        })
    }

    /// A count spelled as text ("3"), as a `before` holds an adjustment's units.
    fn count(&mut self, name: &str) -> Result<i64, String> {
        self.read(name, |value| {
            let count = as_text(value)?;
            count.parse().map_err(|_| format!("{count:?} is not a count"))
        })
    }

    /// A record: an id, or `{"ref": …}` naming a record created earlier in the plan.
    fn record(&mut self, name: &str) -> Result<Id<Ref>, String> {
        let created = self.created;
        self.read(name, |value| match value {
            Value::Object(map) if map.len() == 1 => match map.get("ref") {
                Some(Value::String(reference)) => planned(created, reference).map(Id::Planned),
                _ => Err("not an id or {\"ref\"}".into()),
            },
            value => as_int(value).map(Id::Existing),
        })
    }

    /// `[{"name": UDF, "value": SUBSCRIPTION}]`: the one UDF cmat writes.
    fn udf(&mut self, name: &str) -> Result<(String, String), String> {
        self.read(name, |value| {
            let udf = match value.as_array().map(Vec::as_slice) {
                Some([Value::Object(udf)]) if udf.len() == 2 => udf,
                _ => return Err("not [{\"name\": …, \"value\": …}]".to_string()),
            };
            match (
                udf.get("name").and_then(Value::as_str),
                udf.get("value").and_then(Value::as_str),
            ) {
                (Some(name), Some(value)) => Ok((name.to_string(), value.to_string())),
                _ => Err("not [{\"name\": …, \"value\": …}]".to_string()),
            }
        })
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|key| !self.read.contains(key.as_str())) {
            Some(unknown) => {
                Err(format!("{}.{unknown} is not a field cmat writes here", self.what))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::BillLine;
    use crate::snapshot::Company;
    use crate::testing::{default_rules, line};
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn engine_plan(lines: &[BillLine], snapshot: &Snapshot) -> Plan {
        let rules = default_rules();
        let values = crate::picklists::resolve(&rules, &crate::testing::reference_picklists())
            .expect("the reference tenant has every default label");
        let desired = crate::desired::desired_state(&rules, lines);
        let digests = Digests {
            snapshot: "sha256:aa".into(),
            inputs: "sha256:bb".into(),
            mappings: "sha256:cc".into(),
        };
        Plan::new(
            crate::diff::diff(&rules, &values, &desired, snapshot),
            digests,
            DateTime::UNIX_EPOCH,
        )
    }

    /// A saved plan has no grouping for the text view: compare without it.
    fn ungrouped(mut plan: Plan) -> Plan {
        for change in &mut plan.changes {
            change.company_id = 0;
            change.contract_label = String::new();
        }
        plan
    }

    fn bill_line() -> impl Strategy<Value = BillLine> {
        (0..2usize, 0..4usize, 0..3usize, 0..4usize, 0..3usize, -3..40i64, 1..500_000i64).prop_map(
            |(org, service, sub, item, month, quantity, cents)| {
                let service =
                    ["Microsoft CSP", "Microsoft NCE", "Azure Plan", "Microsoft Azure"][service];
                let organization = ["Contoso", "Fabrikam"][org];
                let kind = if service.contains("Azure") { "az" } else { "lic" };
                line(
                    &format!("2026-{:02}-01", 9 + month),
                    organization,
                    service,
                    &format!("{organization}-{kind}-{sub}"),
                    &format!("I{item}"),
                    &quantity.to_string(),
                    &Decimal::new(cents, 3).to_string(),
                )
            },
        )
    }

    fn amount() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0..10u32).prop_map(|(units, scale)| Decimal::new(units, scale))
    }

    fn day() -> impl Strategy<Value = NaiveDate> {
        (0..4000i64).prop_map(|days| {
            NaiveDate::from_ymd_opt(2020, 1, 1).expect("date") + chrono::Duration::days(days)
        })
    }

    fn edit<T: std::fmt::Debug + Clone, S: Strategy<Value = T>>(
        value: impl Fn() -> S,
    ) -> impl Strategy<Value = Option<Edit<T>>> {
        proptest::option::of((proptest::option::of(value()), value()))
            .prop_map(|edit| edit.map(|(old, new)| Edit { old, new }))
    }

    /// Text a user's data may hold: quotes, slashes, formulas, non-ASCII.
    fn words() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 =+\"'/é→-]{1,12}"
    }

    fn id_of(planned: Option<String>, existing: i64) -> Id<Ref> {
        match planned {
            Some(reference) => Id::Planned(Ref(reference)),
            None => Id::Existing(existing),
        }
    }

    /// One typed change of any kind, with refs to creates among the earlier `c1..cN`.
    fn change(
        index: usize,
        services: Vec<String>,
        contracts: Vec<String>,
    ) -> impl Strategy<Value = PlanChange> {
        let pick = |refs: Vec<String>| {
            proptest::option::of(proptest::sample::select(if refs.is_empty() {
                vec![String::new()]
            } else {
                refs
            }))
            .prop_map(|reference| reference.filter(|r| !r.is_empty()))
        };
        let existing = 1..i64::MAX;
        let write = prop_oneof![
            (
                words(),
                words(),
                any::<i64>(),
                proptest::option::of(any::<i64>()),
                amount(),
                amount(),
                any::<bool>()
            )
                .prop_map(
                    |(
                        name,
                        sku,
                        billing_code_id,
                        period_type,
                        unit_price,
                        unit_cost,
                        is_active,
                    )| {
                        (
                            NaturalKey::Service { sku: sku.clone() },
                            Write::CreateService(NewService {
                                name,
                                sku,
                                billing_code_id,
                                period_type,
                                unit_price,
                                unit_cost,
                                is_active,
                            }),
                        )
                    }
                ),
            (
                (
                    any::<i64>(),
                    words(),
                    any::<i64>(),
                    any::<i64>(),
                    proptest::option::of(any::<i64>()),
                    proptest::option::of(any::<i64>())
                ),
                (
                    day(),
                    day(),
                    any::<i64>(),
                    any::<i64>(),
                    proptest::option::of(any::<i64>()),
                    words(),
                    words()
                ),
            )
                .prop_map(
                    |(
                        (company_id, name, contract_type, status, period_type, line_of_business),
                        (start_date, end_date, sla, time, category, udf, subscription),
                    )| {
                        (
                            NaturalKey::Subscription(subscription.clone()),
                            Write::CreateContract(NewContract {
                                company_id,
                                name,
                                contract_type,
                                status,
                                period_type,
                                start_date,
                                end_date,
                                service_level_agreement_id: sla,
                                time_reporting_requires_start_and_stop_times: time,
                                category,
                                line_of_business,
                                subscription_udf: udf,
                                subscription,
                            }),
                        )
                    }
                ),
            (
                existing.clone(),
                words(),
                edit(words),
                edit(day),
                edit(any::<i64>),
                edit(any::<i64>),
                edit(words)
            )
                .prop_filter("changes a field", |(_, _, a, b, c, d, e)| a.is_some()
                    || b.is_some()
                    || c.is_some()
                    || d.is_some()
                    || e.is_some())
                .prop_map(|(id, subscription, name, end_date, sla, category, udf)| {
                    (
                        NaturalKey::Subscription(subscription),
                        Write::UpdateContract {
                            id,
                            edits: ContractEdits {
                                name,
                                end_date,
                                service_level_agreement_id: sla,
                                category,
                                subscription: udf
                                    .map(|edit| UdfEdit { name: "Subscription ID".into(), edit }),
                            },
                        },
                    )
                })
                .boxed(),
            (
                pick(contracts.clone()),
                existing.clone(),
                pick(services),
                existing.clone(),
                (
                    words(),
                    words(),
                    day(),
                    any::<i64>(),
                    any::<i64>(),
                    amount(),
                    amount(),
                    proptest::option::of(amount()),
                    proptest::option::of(amount())
                )
            )
                .prop_map(
                    |(
                        contract,
                        contract_id,
                        service,
                        service_id,
                        (
                            subscription,
                            item,
                            effective_date,
                            unit_change,
                            units_before,
                            price,
                            cost,
                            price_before,
                            cost_before,
                        ),
                    )| {
                        (
                            NaturalKey::Product { subscription, item },
                            Write::AdjustContractService(Adjustment {
                                contract: id_of(contract, contract_id),
                                service: id_of(service, service_id),
                                effective_date,
                                unit_change,
                                units_before,
                                adjusted_unit_price: price,
                                adjusted_unit_cost: cost,
                                price_before,
                                cost_before,
                            }),
                        )
                    }
                ),
            (
                pick(contracts),
                existing.clone(),
                words(),
                (any::<bool>(), proptest::option::of(any::<i64>())),
                (
                    words(),
                    words(),
                    day(),
                    any::<i64>(),
                    amount(),
                    amount(),
                    proptest::option::of(amount()),
                    any::<i64>(),
                    any::<bool>()
                )
            )
                .prop_map(
                    |(
                        contract,
                        contract_id,
                        subscription,
                        (correction, deleted),
                        (
                            name,
                            description,
                            date_purchased,
                            charge_type,
                            unit_quantity,
                            unit_price,
                            unit_cost,
                            billing_code_id,
                            billable,
                        ),
                    )| {
                        (
                            NaturalKey::Charge {
                                subscription,
                                date: date_purchased,
                                group: None,
                                correction: correction.then(|| name.clone()),
                            },
                            {
                                let contract = id_of(contract, contract_id);
                                let charge = NewCharge {
                                    name,
                                    description,
                                    date_purchased,
                                    charge_type,
                                    unit_quantity,
                                    unit_price,
                                    unit_cost,
                                    billing_code_id,
                                    is_billable_to_company: billable,
                                };
                                // An existing charge deleted (`cmat revert`), or one created.
                                match deleted {
                                    Some(id) => Write::DeleteCharge { id, contract, charge },
                                    None => Write::CreateCharge { contract, charge },
                                }
                            },
                        )
                    }
                ),
            (existing.clone(), existing, words(), day(), edit(amount), edit(amount))
                .prop_filter("changes a field", |(_, _, _, _, price, cost)| price.is_some()
                    || cost.is_some())
                .prop_map(|(id, contract_id, subscription, date, unit_price, unit_cost)| {
                    (
                        NaturalKey::Charge { subscription, date, group: None, correction: None },
                        Write::UpdateCharge {
                            id,
                            contract: Id::Existing(contract_id),
                            edits: ChargeEdits { unit_price, unit_cost },
                        },
                    )
                }),
        ];
        (write, words(), words()).prop_map(move |((key, write), rule, reason)| PlanChange {
            reference: format!("c{index}"),
            key,
            write,
            rule,
            reason,
            company_id: 0,
            contract_label: String::new(),
        })
    }

    /// Plans of up to 6 changes, each free to point at the creates before it.
    fn typed_plan() -> impl Strategy<Value = Plan> {
        let mut plan = Just(Vec::<PlanChange>::new()).boxed();
        for index in 1..=6 {
            plan = plan
                .prop_flat_map(move |changes: Vec<PlanChange>| {
                    let refs = |entity| {
                        changes
                            .iter()
                            .filter(|c| c.action() == Action::Create && c.entity() == entity)
                            .map(|c| c.reference.clone())
                            .collect::<Vec<_>>()
                    };
                    let next = change(index, refs(Entity::Services), refs(Entity::Contracts));
                    (Just(changes), proptest::option::of(next))
                })
                .prop_map(|(mut changes, next)| {
                    changes.extend(next);
                    changes
                })
                .boxed();
        }
        // Changes left out leave gaps in the numbering: refs only need to point back.
        plan.prop_map(|changes| Plan {
            format_version: FORMAT_VERSION,
            created_at: DateTime::UNIX_EPOCH,
            digests: Digests {
                snapshot: "sha256:aa".into(),
                inputs: "sha256:bb".into(),
                mappings: "sha256:cc".into(),
            },
            summary: Summary::default(),
            changes,
            warnings: Vec::new(),
            created_by: None,
            approval: None,
        })
    }

    proptest! {
        /// An approved plan holds its approval as saved; changing any one byte of the file
        /// leaves it unreadable, unapproved or void, never approved.
        #[test]
        fn one_changed_byte_voids_an_approval(
            plan in typed_plan(),
            author in proptest::option::of("[a-z]{1,8}"),
            position in any::<proptest::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let mut plan = plan;
            plan.created_by = author;
            plan.approve("Bo Approver", DateTime::UNIX_EPOCH);
            let json = plan.to_json();
            let read = Plan::from_json("plan.json", &json)
                .map_err(|error| TestCaseError::fail(format!("{error}\n{json}")))?;
            prop_assert_eq!(read.approval_status(&json), ApprovalStatus::Approved(
                plan.approval.clone().expect("approved")));
            let mut bytes = json.clone().into_bytes();
            let at = position.index(bytes.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
            if let Ok(changed) = Plan::from_json("plan.json", &text) {
                prop_assert!(
                    !matches!(changed.approval_status(&text), ApprovalStatus::Approved(_)),
                    "still approved after byte {} became {:?}", at, replacement as char
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// typed → JSON → typed is the identity, for every kind of write and value.
        #[test]
        fn a_typed_plan_reads_back_from_its_json(plan in typed_plan()) {
            let json = plan.to_json();
            let again = Plan::from_json("plan.json", &json)
                .map_err(|error| TestCaseError::fail(format!("{error}\n{json}")))?;
            prop_assert_eq!(again, plan);
        }

        /// The snapshot's digest is the SHA-256 of its JSON with `refreshed_at` null, as
        /// plans saved before recorded it (when it was computed from a copy).
        #[test]
        fn the_snapshot_digest_is_of_its_json_without_the_refresh_time(
            lines in proptest::collection::vec(bill_line(), 1..20),
        ) {
            let mut snapshot = Snapshot {
                picklists: crate::testing::reference_picklists(),
                refreshed_at: Some(DateTime::UNIX_EPOCH),
                ..Snapshot::default()
            };
            for (id, name) in [(100, "Contoso"), (101, "Fabrikam")] {
                snapshot.companies.insert(id, Company { id, company_name: name.into(), is_active: true, currency_id: None });
            }
            crate::testing::play(&engine_plan(&lines, &snapshot), &mut snapshot);
            prop_assert!(!snapshot.contracts.is_empty());
            let mut copy = snapshot.clone();
            copy.refreshed_at = None;
            let expected = sha256_hex(&serde_json::to_vec(&copy).expect("JSON"));
            prop_assert_eq!(snapshot_digest(&snapshot), expected);
        }

        /// JSON → typed → JSON is the identity, byte for byte, for the plans the engine makes
        /// (onboarding, and a later month against what the first plan wrote).
        #[test]
        fn an_engine_plan_is_saved_and_read_byte_for_byte(
            first in proptest::collection::vec(bill_line(), 1..20),
            later in proptest::collection::vec(bill_line(), 0..20),
        ) {
            let mut snapshot = Snapshot::default();
            for (id, name) in [(100, "Contoso"), (101, "Fabrikam")] {
                snapshot.companies.insert(id, Company { id, company_name: name.into(), is_active: true, currency_id: None });
            }
            let onboarding = engine_plan(&first, &snapshot);
            crate::testing::play(&onboarding, &mut snapshot);
            let mut all = first.clone();
            all.extend(later);
            let monthly = engine_plan(&all, &snapshot);
            for plan in [onboarding, monthly] {
                let json = plan.to_json();
                let typed = Plan::from_json("plan.json", &json)
                    .map_err(|error| TestCaseError::fail(format!("{error}\n{json}")))?;
                prop_assert_eq!(&typed.to_json(), &json);
                prop_assert_eq!(typed, ungrouped(plan));
            }
        }
    }
}
