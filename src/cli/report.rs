//! `cmat report`: reads what the review needs from the store and writes it; the review
//! itself is built and rendered by `crate::report`. Also what `sync --report/--notify` run
//! after a sync.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use clap::{Args, ValueEnum};

use super::{session, CommandError, CommandResult, Context, Exit};
use crate::report::{render, render_to, Format, Period, Review};
use crate::store::{Access, AuditFilter, AuditOutcome, Store};
use crate::webhook::{post, redact_url};

#[derive(Debug, Args)]
#[command(
    after_help = "The review lists the exceptions first (money left out of Autotask, lines under cost, \
subscriptions that stopped appearing, drift and duplicates found in Autotask, failed writes, corrected \
charges), then per company, subscription and product: units, prices, revenue, cost, margin and the \
change against the previous period, Azure consumption over every imported period, and the bills' \
totals beside what Autotask holds for the period.\n\n\
The HTML page is one self-contained file: it loads nothing from the network and prints cleanly. \
Reads only the state database (run `cmat pull autotask` first for current Autotask figures).\n\n\
Exit codes: 0 the review was written, 1 error."
)]
pub struct ReportArgs {
    /// The month to review (default: the month of the latest Billing Date imported)
    #[arg(long, value_name = "YYYY-MM")]
    pub period: Option<String>,
    /// html: one self-contained page; csv: one row per company, subscription and product;
    /// json: the same data, amounts as decimal strings
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write to this file instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Csv,
    Json,
}

impl From<ReportFormat> for Format {
    fn from(format: ReportFormat) -> Format {
        match format {
            ReportFormat::Html => Format::Html,
            ReportFormat::Csv => Format::Csv,
            ReportFormat::Json => Format::Json,
        }
    }
}

pub fn run(context: &Context, args: ReportArgs) -> CommandResult {
    let period = match &args.period {
        Some(text) => Some(Period::parse(text).ok_or_else(|| -> CommandError {
            format!("--period {text:?}: not a month (hint: write it as YYYY-MM, e.g. 2026-11)")
                .into()
        })?),
        None => None,
    };
    let store = session::open_store(context, Access::Read)?;
    let review = review(context, &store, period)?;
    match &args.out {
        Some(path) => {
            write_file_with(path, |out| render_to(&review, args.format.into(), &now_label(), out))?;
            eprintln!(
                "Billing review of {} written to {} ({} exception(s)).",
                review.period,
                path.display(),
                review.exceptions.len()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match render_to(&review, args.format.into(), &now_label(), &mut stdout) {
                // `cmat report | head` closes the pipe early: that is not an error.
                Err(crate::report::RenderError::Io(err))
                    if err.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    Ok(Exit::Success)
}

fn now_label() -> String {
    Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn write_file(path: &Path, text: &str) -> Result<(), CommandError> {
    write_file_with(path, |out| Ok(out.write_all(text.as_bytes())?))
}

/// Writes beside `path` and renames into place: a failed or interrupted render never leaves
/// half a review where the last whole one was.
fn write_file_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), crate::report::RenderError>,
) -> Result<(), CommandError> {
    let fail = |err: &dyn std::fmt::Display| -> CommandError {
        format!("{}: cannot write the review: {err}", path.display()).into()
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written =
        std::fs::File::create(&partial).map_err(crate::report::RenderError::Io).and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            out.into_inner().map_err(|err| err.into_error())?.sync_all()?;
            Ok(())
        });
    if let Err(err) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(fail(&err));
    }
    std::fs::rename(&partial, path).map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        fail(&err)
    })
}

/// The review of `period` (default: the latest Billing Date's month) from the workspace.
pub fn review(
    context: &Context,
    store: &Store,
    period: Option<Period>,
) -> Result<Review, CommandError> {
    let (rules, _sources) = session::load_rules(context)?;
    Ok(crate::report::load::review(store, &rules, period)?)
}

// ---------------------------------------------------------------------------------------------
// After a sync: `--report FILE` and `--notify URL`.

/// What `sync` was asked to do once it has run.
pub struct AfterSync<'a> {
    pub report: Option<&'a Path>,
    pub notify: Option<&'a str>,
    pub started: DateTime<Utc>,
}

/// Refuses a webhook URL before the sync starts (`https`, or `http` to loopback only).
pub fn check_webhook(url: &str) -> Result<(), CommandError> {
    // The URL carries the webhook's token: the message names its host only.
    crate::workspace::check_url(url).map_err(|message| {
        format!("--notify {}: {}", redact_url(url), message.replace(&format!("{url}: "), "")).into()
    })
}

/// Writes the review of the period the run touched and posts the summary; neither ever
/// changes the sync's outcome: a problem is said on standard error.
pub fn after_sync(context: &Context, after: &AfterSync<'_>, outcome: &CommandResult) {
    if after.report.is_none() && after.notify.is_none() {
        return;
    }
    let summary = match RunSummary::read(context, after.started) {
        Ok(summary) => Some(summary),
        Err(err) => {
            eprintln!("warning: cannot read what the sync did for the review: {err}");
            None
        }
    };
    let review = summary.as_ref().and_then(|s| match &s.review {
        Ok(review) => Some(review),
        Err(why) => {
            if after.report.is_some() {
                eprintln!("warning: no billing review written: {why}");
            }
            None
        }
    });
    if let (Some(path), Some(review)) = (after.report, review) {
        match render(review, Format::Html, &now_label())
            .map_err(CommandError::from)
            .and_then(|text| write_file(path, &text))
        {
            Ok(()) => {
                println!("Billing review of {} written to {}.", review.period, path.display())
            }
            Err(err) => eprintln!("warning: {}", super::render_error(err.as_ref())),
        }
    }
    if let Some(url) = after.notify {
        // A sync that failed before its database could be read still says so.
        let empty = RunSummary { applied: 0, failed: 0, review: Err(String::new()) };
        let text = summary.as_ref().unwrap_or(&empty).message(outcome, review);
        match text {
            None => println!("Nothing to notify: no change written and no failure."),
            Some(text) => match post(url, &text) {
                Ok(()) => println!("Summary posted to the webhook."),
                Err(err) => eprintln!(
                    "warning: the summary could not be posted to the webhook ({err}); the sync itself is not affected"
                ),
            },
        }
    }
}

/// What a sync did, read back from the audit trail: its writes by outcome.
struct RunSummary {
    applied: usize,
    failed: usize,
    review: Result<Review, String>,
}

impl RunSummary {
    fn read(context: &Context, started: DateTime<Utc>) -> Result<RunSummary, CommandError> {
        let store = session::open_store(context, Access::Read)?;
        let filter = AuditFilter { run_id: None, since: Some(started.date_naive()) };
        let mut applied = std::collections::BTreeSet::new();
        let mut failed = std::collections::BTreeSet::new();
        for row in store.audit_rows(&filter)? {
            if row.at < started {
                continue;
            }
            let change = (row.run_id, row.action, row.entity, row.key);
            match row.outcome {
                AuditOutcome::Applied => applied.insert(change),
                AuditOutcome::Failed | AuditOutcome::Skipped => failed.insert(change),
            };
        }
        // The period the run touched: the latest Billing Date among the bills it imported,
        // else the latest one.
        let touched = store
            .bill_revisions()?
            .iter()
            .filter(|b| b.imported_at >= started)
            .map(|b| Period::of(b.billing_date))
            .max();
        let review = review(context, &store, touched).map_err(|err| {
            super::render_error(err.as_ref()).trim_start_matches("error: ").to_string()
        });
        Ok(RunSummary {
            applied: applied.len(),
            failed: failed.difference(&applied).count(),
            review,
        })
    }

    /// The webhook's text, or None on a day with nothing to say (no write, no failure).
    fn message(&self, outcome: &CommandResult, review: Option<&Review>) -> Option<String> {
        let error = outcome.as_ref().err();
        if self.applied == 0 && self.failed == 0 && error.is_none() {
            return None;
        }
        let mut text = String::from("cmat sync");
        if let Some(review) = review {
            text.push_str(&format!(" ({})", review.period));
        }
        text.push_str(&format!(
            ": {} change(s) written to Autotask, {} failed",
            self.applied, self.failed
        ));
        if let Some(review) = review {
            let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
            for exception in &review.exceptions {
                *kinds.entry(exception.kind.as_str()).or_default() += 1;
            }
            if kinds.is_empty() {
                text.push_str("; no warnings");
            } else {
                let listed: Vec<String> =
                    kinds.iter().map(|(k, n)| format!("{n} {}", k.replace('_', " "))).collect();
                text.push_str(&format!(
                    "; {} warning(s): {}",
                    review.exceptions.len(),
                    listed.join(", ")
                ));
            }
            if let Some(difference) = review.totals.difference {
                text.push_str(&format!(
                    ". Bills to Autotask {}, Autotask holds {} (difference {})",
                    review.totals.to_autotask.round_dp(2),
                    (review.totals.to_autotask + difference).round_dp(2),
                    difference.round_dp(2)
                ));
            }
        }
        text.push('.');
        if let Some(error) = error {
            let first = error.to_string();
            let first = first.lines().next().unwrap_or_default();
            text.push_str(&format!(" The sync FAILED: {}", strip_links(first)));
        }
        Some(text)
    }
}

/// Removes anything that looks like a link: the summary is link-free.
fn strip_links(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains("://") { "[link removed]" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}
