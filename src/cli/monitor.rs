//! `--format json` of `status` and `doctor`, for monitoring (issue 29): serializable views
//! over what the text forms show, so a script reads fields instead of parsing sentences.

use clap::ValueEnum;
use serde::Serialize;

use crate::autotask::doctor::{Check, Outcome};
use crate::store::{meta_keys, BillInfo, OrganizationInfo, SnapshotCounts, Store, StoreError};

/// How `status` and `doctor` print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Serialize)]
struct DoctorView<'a> {
    /// True when cmat can run against the tenant (no problem found).
    ok: bool,
    problems: usize,
    checks: Vec<CheckView<'a>>,
}

#[derive(Serialize)]
struct CheckView<'a> {
    name: &'a str,
    /// `ok`, `note` or `problem`.
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'a str>,
}

/// `doctor --format json`: every check with its status, and whether cmat can run.
pub fn doctor_json(checks: &[Check]) -> String {
    let views: Vec<CheckView<'_>> = checks
        .iter()
        .map(|check| {
            let (status, message, fix) = match &check.outcome {
                Outcome::Ok(detail) => ("ok", detail.as_str(), None),
                Outcome::Note(detail) => ("note", detail.as_str(), None),
                Outcome::Problem { message, fix } => {
                    ("problem", message.as_str(), Some(fix.as_str()))
                }
            };
            CheckView { name: &check.name, status, message, fix }
        })
        .collect();
    let problems = checks.iter().filter(|check| check.is_problem()).count();
    to_json(&DoctorView { ok: problems == 0, problems, checks: views })
}

#[derive(Serialize)]
struct StatusView {
    /// False when the workspace has no state database yet (nothing below is then present).
    loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    bills: Vec<BillView>,
    organizations: Vec<OrganizationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotView>,
    /// RFC 3339 UTC of the last successful sync, null when never.
    last_sync_at: Option<String>,
    /// Autotask requests the last sync sent.
    last_sync_requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<AuditView>,
}

#[derive(Serialize)]
struct BillView {
    organization: String,
    billing_date: chrono::NaiveDate,
    revision: i64,
    lines: u64,
    subscriptions: u64,
    source_file: String,
    imported_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct OrganizationView {
    name: String,
    autotask_company_ids: Vec<i64>,
    subscriptions: u64,
}

#[derive(Serialize)]
struct SnapshotView {
    refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    companies: u64,
    contracts: u64,
    services: u64,
    contract_services: u64,
    contract_service_units: u64,
    charges: u64,
    billing_codes: u64,
}

#[derive(Serialize)]
struct AuditView {
    rows: u64,
    /// The hash chain holds (`cmat audit --verify` says where it does not).
    intact: bool,
    last_digest: Option<String>,
}

/// `status --format json` of a workspace without a state database.
pub fn status_json_empty() -> String {
    to_json(&StatusView {
        loaded: false,
        schema_version: None,
        bills: Vec::new(),
        organizations: Vec::new(),
        snapshot: None,
        last_sync_at: None,
        last_sync_requests: None,
        audit: None,
    })
}

/// `status --format json`: what the text form shows, and whether the audit trail is intact.
pub fn status_json(store: &Store) -> Result<String, StoreError> {
    let bills = store.bills()?.into_iter().map(BillView::from).collect();
    let organizations = store.organizations()?.into_iter().map(OrganizationView::from).collect();
    let counts = store.snapshot_counts()?;
    let verdict = store.verify_audit_chain()?;
    Ok(to_json(&StatusView {
        loaded: true,
        schema_version: Some(store.schema_version()?),
        bills,
        organizations,
        snapshot: Some(SnapshotView::from(counts)),
        last_sync_at: store.get_meta(meta_keys::LAST_SYNC_AT)?,
        last_sync_requests: store
            .get_meta(meta_keys::LAST_SYNC_REQUESTS)?
            .and_then(|text| text.parse().ok()),
        audit: Some(AuditView {
            rows: verdict.rows,
            intact: verdict.broken.is_none(),
            last_digest: verdict.head,
        }),
    }))
}

impl From<BillInfo> for BillView {
    fn from(bill: BillInfo) -> Self {
        BillView {
            organization: bill.key.organization_name,
            billing_date: bill.key.billing_date,
            revision: bill.revision,
            lines: bill.lines,
            subscriptions: bill.subscriptions,
            source_file: bill.source_file,
            imported_at: bill.imported_at,
        }
    }
}

impl From<OrganizationInfo> for OrganizationView {
    fn from(o: OrganizationInfo) -> Self {
        OrganizationView {
            name: o.name,
            autotask_company_ids: o.autotask_company_ids,
            subscriptions: o.subscriptions,
        }
    }
}

impl From<SnapshotCounts> for SnapshotView {
    fn from(counts: SnapshotCounts) -> Self {
        SnapshotView {
            refreshed_at: counts.refreshed_at,
            companies: counts.companies,
            contracts: counts.contracts,
            services: counts.services,
            contract_services: counts.contract_services,
            contract_service_units: counts.contract_service_units,
            charges: counts.charges,
            billing_codes: counts.billing_codes,
        }
    }
}

fn to_json(view: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(view).unwrap_or_default();
    text.push('\n');
    text
}
