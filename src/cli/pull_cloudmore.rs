use super::Exit;

use chrono::{Datelike, NaiveDate, Utc};

use super::{CommandError, CommandResult, Context};
use crate::cloudmore::Period;
use crate::store::{Access, Store};
use crate::workspace::{CloudmoreCredentials, Config};

/// Loads the reseller's billing report from the Cloudmore API, as one import.
///
/// Cloudmore generates the report on demand with today's prices, so re-requesting a month that
/// is already invoiced would turn a price-list edit into back-dated changes. By default only the
/// current month (UTC) is requested; `--since YYYY-MM` asks for every month from that one on
/// (a deliberate restatement, e.g. after Cloudmore corrected a bill).
pub fn run(context: &Context, since: Option<&str>) -> CommandResult {
    let config = context.workspace.config()?;
    let mut store = Store::open(&context.workspace.state_db(), Access::Write)?;
    let since = since.map(parse_month).transpose()?;
    pull_into_since(context, &mut store, &config, since)?;
    Ok(Exit::Success)
}

/// `YYYY-MM` → the first day of that month.
pub fn parse_month(text: &str) -> Result<NaiveDate, CommandError> {
    let text = text.trim();
    let parsed = text
        .split_once('-')
        .filter(|(y, m)| y.len() == 4 && m.len() == 2)
        .and_then(|(y, m)| NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1));
    parsed.ok_or_else(|| {
        format!("--since {text:?}: expected a month as YYYY-MM (e.g. 2026-10)").into()
    })
}

/// The period a pull requests: from the first day of `since` (default: the current month) to
/// the last day of the current month.
pub fn period(today: NaiveDate, since: Option<NaiveDate>) -> Result<Period, CommandError> {
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let next = if today.month() == 12 {
        NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    };
    let end = next.and_then(|n| n.pred_opt()).unwrap_or(today);
    let start = since.unwrap_or(first);
    if start > first {
        return Err(format!(
            "--since {}: a month after the current one ({}) has no bill yet",
            start.format("%Y-%m"),
            first.format("%Y-%m")
        )
        .into());
    }
    Ok(Period { start, end })
}

/// Shared by `pull cloudmore` and `sync` (which requests the current month only).
pub fn pull_into(
    context: &Context,
    store: &mut Store,
    config: &Config,
) -> Result<(), CommandError> {
    pull_into_since(context, store, config, None)
}

fn pull_into_since(
    context: &Context,
    store: &mut Store,
    config: &Config,
    since: Option<NaiveDate>,
) -> Result<(), CommandError> {
    let period = period(Utc::now().date_naive(), since)?;
    let credentials = CloudmoreCredentials::from_env()?;
    // Cloudmore's answer as it came, for a bug report when cmat cannot read it.
    let keep = context.workspace.state_dir().join("cloudmore").join(format!("{period}.json"));
    let (source_name, outcome) = crate::workflow::pull::pull_cloudmore(
        store,
        &config.cloudmore,
        credentials,
        period,
        &keep,
    )?;
    for warning in &outcome.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", super::import::render_summary(&source_name, &outcome.summary));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_default_period_is_the_current_month_and_since_reaches_back() {
        let p = period(day("2026-11-29"), None).unwrap();
        assert_eq!(p.to_string(), "2026-11-01..2026-11-30");
        let p = period(day("2026-12-03"), Some(parse_month("2026-10").unwrap())).unwrap();
        assert_eq!(p.to_string(), "2026-10-01..2026-12-31");
        assert!(period(day("2026-11-29"), Some(day("2026-12-01"))).is_err());
        for bad in ["2026-13", "26-10", "2026/10", "2026-1", ""] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }
}
