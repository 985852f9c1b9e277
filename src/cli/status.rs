use super::Exit;
use std::collections::BTreeMap;
use std::fmt::Write;

use super::monitor::OutputFormat;
use super::{CommandResult, Context};
use crate::store::{meta_keys, Access, BillInfo, OrganizationInfo, SnapshotCounts, Store};

pub fn run(context: &Context, format: OutputFormat) -> CommandResult {
    let path = context.workspace.state_db();
    if format == OutputFormat::Json {
        if !path.exists() {
            print!("{}", super::monitor::status_json_empty());
        } else {
            print!("{}", super::monitor::status_json(&Store::open(&path, Access::Read)?)?);
        }
        return Ok(Exit::Success);
    }
    if !path.exists() {
        println!(
            "Nothing loaded yet ({} does not exist): run `cmat import FILE.csv` or `cmat pull`.",
            path.display()
        );
        return Ok(Exit::Success);
    }
    let store = Store::open(&path, Access::Read)?;
    print!("{}", render(&store)?);
    Ok(Exit::Success)
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `cmat status`: the bills, the organizations, the snapshot and the last sync, one section
/// each.
fn render(store: &Store) -> Result<String, crate::store::StoreError> {
    let mut out = String::new();
    render_bills(&mut out, &store.bills()?);
    render_organizations(&mut out, &store.organizations()?);
    render_snapshot(&mut out, &store.snapshot_counts()?);
    let last_sync = store.get_meta(meta_keys::LAST_SYNC_AT)?;
    let _ = writeln!(out, "Last sync: {}", last_sync.as_deref().unwrap_or("never"));
    Ok(out)
}

/// The bills by Billing Date, one line an organization's bill.
fn render_bills(out: &mut String, bills: &[BillInfo]) {
    let total_lines: u64 = bills.iter().map(|b| b.lines).sum();
    let mut by_date: BTreeMap<_, Vec<&BillInfo>> = BTreeMap::new();
    for bill in bills {
        by_date.entry(bill.key.billing_date).or_default().push(bill);
    }
    let _ = writeln!(out, "Bills: {} ({} lines)", bills.len(), total_lines);
    let width = bills.iter().map(|b| b.key.organization_name.chars().count()).max().unwrap_or(0);
    for (date, bills) in &by_date {
        let lines: u64 = bills.iter().map(|b| b.lines).sum();
        let _ = writeln!(
            out,
            "  {date}: {} {}, {lines} lines",
            bills.len(),
            if bills.len() == 1 { "organization" } else { "organizations" }
        );
        for bill in bills {
            let _ = write!(
                out,
                "    {:<width$}  {:>6} {:<5}  {:>3} {:<13}",
                bill.key.organization_name,
                bill.lines,
                plural(bill.lines, "line", "lines"),
                bill.subscriptions,
                plural(bill.subscriptions, "subscription", "subscriptions"),
            );
            if bill.revision > 1 {
                let _ = write!(out, "  revision {} (restated)", bill.revision);
            }
            let _ = writeln!(out, "  from {}", bill.source_file);
        }
    }
}

/// The organizations and the Autotask companies their bills link them to.
fn render_organizations(out: &mut String, organizations: &[OrganizationInfo]) {
    let subscriptions: u64 = organizations.iter().map(|o| o.subscriptions).sum();
    let unlinked = organizations.iter().filter(|o| o.autotask_company_ids.is_empty()).count();
    let _ = writeln!(
        out,
        "Organizations: {} ({unlinked} without AutotaskCompanyID), subscriptions: {subscriptions}",
        organizations.len()
    );
    let width = organizations.iter().map(|o| o.name.chars().count()).max().unwrap_or(0);
    for organization in organizations {
        let link = match organization.autotask_company_ids.as_slice() {
            [] => "no AutotaskCompanyID".to_string(),
            ids => format!(
                "AutotaskCompanyID {}",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let _ = writeln!(out, "  {:<width$}  {link}", organization.name);
    }
}

/// When the Autotask snapshot was pulled, and what it holds.
fn render_snapshot(out: &mut String, counts: &SnapshotCounts) {
    match counts.refreshed_at {
        None => {
            let _ = writeln!(out, "Autotask snapshot: never pulled (run `cmat pull autotask`)");
        }
        Some(at) => {
            let _ = writeln!(
                out,
                "Autotask snapshot: refreshed {}\n  {} companies, {} contracts, {} services, {} contract services, {} unit periods, {} charges, {} billing codes",
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                counts.companies,
                counts.contracts,
                counts.services,
                counts.contract_services,
                counts.contract_service_units,
                counts.charges,
                counts.billing_codes
            );
        }
    }
}
