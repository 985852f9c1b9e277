//! Cloudmore: the only code that speaks HTTP to Cloudmore, and what it does with the answers.
//!
//! - [`client`]: OAuth2 password grant at `POST {base}/connect/token` (client
//!   `ro.customer.client`, the client secret as Basic auth; the token in memory only, renewed
//!   once on a 401), then ONE asynchronous report for the whole reseller and period, as
//!   Cloudmore's billing-integration guide recommends:
//!   `POST /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync` starts
//!   a task (its id in the body's `taskId` or the `Location` header), and
//!   `GET …/MonthlyBillingPerOrganizationAsync/{taskId}` is polled with back-off while it is
//!   `Processing`, until it is `Successful` or `Failed`, for at most `report_wait_seconds`.
//! - [`report`]: the finished answer (the report, or the task wrapping it in `result`) read by
//!   one walker: organizations → services → items → products, each line taking what its
//!   ancestors say; anything unreadable is an error naming its JSON path.
//! - [`lines`]: report lines to [`BillLine`](cmat_engine::billing::BillLine)s, the
//!   organizations' AutotaskCompanyID links (from `GET …/organizations`, or the detail
//!   `GET …/organizations/{id}` when the list lacks them), and the store, all or nothing.
//!
//! The finished answer is kept as it came (`.cmat/cloudmore/PERIOD.json`, secrets scrubbed)
//! before it is read, so an answer cmat cannot read can be attached to a bug report. Where
//! Cloudmore's public documentation is silent (the report request's body, every field's exact
//! name), cmat sends `{"startDate","endDate"}` (ISO dates, inclusive) and reads the General
//! Billing Report's column names: `fixtures/cloudmore/README.md` says which are documented.

pub mod client;
pub mod lines;
pub mod report;

use std::path::Path;

use chrono::NaiveDate;
use cmat_engine::billing::BillLine;
use serde_json::Value;

use crate::store::{ImportSummary, Store, StoreError};
pub use client::{ClientOptions, CloudmoreClient, DEFAULT_REPORT_WAIT};
pub use lines::{bill_line, company_link, Organization};

#[derive(Debug, thiserror::Error)]
pub enum CloudmoreError {
    #[error("cmat.toml: [cloudmore] {0} is not set")]
    MissingSetting(&'static str),
    #[error("[cloudmore] base_url: {0}")]
    BadUrl(String),
    #[error("{request}: cannot reach Cloudmore")]
    Transport { request: String, source: reqwest::Error },
    #[error("{request}: Cloudmore answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status { request: String, status: u16, body: String },
    #[error("{request}: unexpected answer: {message}")]
    Answer { request: String, message: String },
    #[error("{request}: the billing report task failed{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    TaskFailed { request: String, message: String },
    #[error("{request}: the billing report task did not complete within {seconds} s ([cloudmore] report_wait_seconds in cmat.toml)")]
    TaskTimeout { request: String, seconds: u64 },
    #[error("{source_name}: {message}")]
    BadLines { source_name: String, message: String },
    #[error("cannot keep Cloudmore's answer in {path}")]
    Keep { path: String, source: std::io::Error },
    #[error("cannot store the Cloudmore billing")]
    Store(#[from] StoreError),
}

/// A billing period to request, by Billing Date, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start.format("%Y-%m-%d"), self.end.format("%Y-%m-%d"))
    }
}

/// What a pull did: the import, and what it could not link.
#[derive(Debug, Default)]
pub struct PullOutcome {
    pub summary: ImportSummary,
    /// One line per organization whose link is unusable (its lines imported unlinked).
    pub warnings: Vec<String>,
    /// The requests a pull sent besides the token: for `-v` and the tests.
    pub requests: u32,
}

impl CloudmoreClient {
    /// Pulls the reseller's report for `period` into the store, as one import (all or nothing).
    /// `source_name` names it in the store and in messages; the finished answer is written to
    /// `keep` (when given) before it is read.
    pub fn pull_into(
        &mut self,
        store: &mut Store,
        period: Period,
        source_name: &str,
        keep: Option<&Path>,
    ) -> Result<PullOutcome, CloudmoreError> {
        // The task runs at Cloudmore while the organizations are read.
        let task = self.start_report(period)?;
        let mut organizations = self.organizations()?;
        let answer = self.poll(&task)?;
        if let Some(path) = keep {
            keep_answer(path, &answer, &self.secrets())?;
        }
        let report_request =
            format!("GET {}", self.reseller_path(&format!("{}/{task}", client::REPORT_PATH)));
        let parsed = read_lines(&answer, &organizations, period, source_name, &report_request)?;
        self.complete_custom_properties(&mut organizations, &parsed)?;
        let (summary, warnings) = lines::store_lines(store, source_name, parsed, &organizations)?;
        Ok(PullOutcome { summary, warnings, requests: self.requests })
    }

    /// Custom properties from the detail, only for organizations on the report whose list entry
    /// lacks them: one request each, at most once.
    fn complete_custom_properties(
        &mut self,
        organizations: &mut [Organization],
        parsed: &[(BillLine, Option<usize>)],
    ) -> Result<(), CloudmoreError> {
        let mut wanted: Vec<usize> = parsed.iter().filter_map(|(_, o)| *o).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for index in wanted {
            let Some(organization) = organizations.get(index) else { continue };
            if organization.custom_properties.is_none() {
                let detail = self.organization(&organization.id.clone())?;
                if let Some(organization) = organizations.get_mut(index) {
                    organization.custom_properties =
                        Some(detail.custom_properties.unwrap_or(Value::Null));
                }
            }
        }
        Ok(())
    }
}

/// The finished report's lines as bill lines, each with its organization's index: all of
/// them, or every malformed one's reason (the first [`crate::import::MAX_LISTED_ROWS`]).
fn read_lines(
    answer: &str,
    organizations: &[Organization],
    period: Period,
    source_name: &str,
    report_request: &str,
) -> Result<Vec<(BillLine, Option<usize>)>, CloudmoreError> {
    let unreadable = |message: String| CloudmoreError::BadLines {
        source_name: source_name.to_string(),
        message,
    };
    let lines = report::read_report(answer).map_err(|err| {
        unreadable(format!("{report_request}: cannot read the report {err}, nothing imported"))
    })?;
    let file = format!("cloudmore:{period}");
    lines::bill_lines(&lines, organizations, &file).map_err(|mut problems| {
        let count = problems.len();
        problems.truncate(crate::import::MAX_LISTED_ROWS);
        unreadable(format!(
            "{count} malformed {} in {report_request}, nothing imported\n{}",
            if count == 1 { "line" } else { "lines" },
            problems.join("\n")
        ))
    })
}

/// Writes Cloudmore's finished answer to `path` (through a temporary file: never half a file;
/// readable by its owner only),
/// with any secret the client holds replaced, should Cloudmore ever echo one.
fn keep_answer(path: &Path, answer: &str, secrets: &[String]) -> Result<(), CloudmoreError> {
    let failed =
        |source: std::io::Error| CloudmoreError::Keep { path: path.display().to_string(), source };
    let mut text = answer.to_string();
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    // Bills are private like the state database: the folder 0700, the file 0600.
    let mut folder = std::fs::DirBuilder::new();
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        folder.mode(0o700);
        file.mode(0o600);
    }
    if let Some(parent) = path.parent() {
        folder.recursive(true).create(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("json.partial");
    let mut writer = file.open(&temporary).map_err(failed)?;
    std::io::Write::write_all(&mut writer, text.as_bytes()).map_err(failed)?;
    drop(writer);
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests;
