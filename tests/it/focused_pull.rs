//! Issue 15: a steady day's `sync` reads contract services and unit periods only for the
//! contracts whose subscriptions changed since the last successful sync. The plan it makes must
//! be exactly what a full read gives for every contract it touches, whatever changed on the
//! bills and whatever was edited by hand in Autotask, inside or outside that scope.
//!
//! A property test against `cmat-sim`: random small tenants (two pages of contract services, so
//! a focused read is cheaper than a full one), random churn, a subscription gone or new, random
//! hand edits of contract-service prices. `PROPTEST_CASES` raises the case count.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use crate::harness::SimWorkspace;
use cmat::autotask::{AutotaskClient, ClientOptions};
use cmat::store::{Access, Store};
use cmat::workspace::{AutotaskConfig, AutotaskCredentials, Secret};
use cmat_engine::billing::BillLine;
use cmat_engine::plan::{compute, PlanChange, PlanInputs, PlanParent};
use cmat_engine::snapshot::Snapshot;
use cmat_sim::{Seed, SimOptions};
use cmat_testkit::tenant::{
    bill_lines, companies, play, sim_seed_json, write_bill_csv, TenantSize,
};

fn size(organizations: usize) -> TenantSize {
    // 4 × 5 contract services per organization: from 26 organizations on, more than one page.
    TenantSize {
        organizations,
        licence_subscriptions: 4,
        products_per_subscription: 5,
        azure_lines: 1,
    }
}

fn default_rules() -> cmat_engine::rules::RuleSet {
    let text = cmat_mapping::default_rules(29682801, 29682802, 1);
    cmat_mapping::compile_sources(&[("mappings/microsoft.cmat".into(), text)])
        .expect("default rules")
        .rules
}

/// Autotask after `day0` was applied, as the simulator's seed, and the snapshot it holds.
fn converged(size: TenantSize, day0: &[BillLine]) -> (Seed, Snapshot) {
    let rules = default_rules();
    let mut snapshot = companies(size);
    let inputs = PlanInputs {
        rules: &rules,
        lines: day0,
        snapshot: &snapshot,
        mapping_sources: &[],
        inputs_digest: String::new(),
    };
    let plan = compute(&inputs, chrono::Utc::now()).expect("the reference tenant has every label");
    play(&plan, &mut snapshot);
    let seed = Seed::from_json(&sim_seed_json(&snapshot, 100_000).to_string()).expect("seed");
    (seed, snapshot)
}

fn client(sw: &SimWorkspace) -> AutotaskClient {
    let credentials = sw.sim.credentials();
    AutotaskClient::connect(
        &AutotaskConfig { base_url: Some(sw.sim.base_url()), ..AutotaskConfig::default() },
        AutotaskCredentials {
            username: credentials.username,
            secret: Secret::new(credentials.secret),
            integration_code: Secret::new(credentials.integration_code),
        },
        ClientOptions::default(),
    )
    .expect("connects to the simulator")
}

/// The plan of the workspace's bills against its stored snapshot, computed in-process.
fn plan_of(sw: &SimWorkspace) -> Vec<PlanChange> {
    let store = Store::open(&sw.ws.path().join(".cmat/state.db"), Access::Read).expect("store");
    let rules = cmat_mapping::load_rules(sw.ws.path()).expect("rules");
    let lines = store.bill_lines().expect("bills");
    let snapshot = store.load_snapshot().expect("snapshot");
    let inputs = PlanInputs {
        rules: &rules,
        lines: &lines,
        snapshot: &snapshot,
        mapping_sources: &[],
        inputs_digest: String::new(),
    };
    compute(&inputs, chrono::Utc::now()).expect("plan").changes
}

/// A change without its number (which depends on the changes before it), parents by key.
fn comparable(changes: &[PlanChange], subscriptions: &BTreeSet<String>) -> Vec<String> {
    let key_of: BTreeMap<&str, String> =
        changes.iter().map(|c| (c.reference.as_str(), c.key.to_string())).collect();
    let touched = |key: &str| {
        let rest = key.strip_prefix("subscription:").unwrap_or("");
        let subscription = rest.split('/').next().unwrap_or("");
        subscriptions.contains(subscription)
    };
    let mut out: Vec<String> = changes
        .iter()
        .filter(|c| touched(&c.key.to_string()))
        .map(|c| {
            let parent = match c.parent() {
                Some(PlanParent::Planned { reference }) => {
                    format!("planned {}", key_of.get(reference.as_str()).map_or("?", |k| k))
                }
                other => format!("{other:?}"),
            };
            format!(
                "{:?} {} {:?} {} parent={parent} fields={:?} before={:?} reason={}",
                c.action(),
                c.entity().as_str(),
                c.id(),
                c.key,
                c.fields(),
                c.before(),
                c.reason
            )
        })
        .collect();
    out.sort();
    out
}

/// The subscriptions whose lines differ between two days (new, changed or gone), by content.
fn changed_subscriptions(before: &[BillLine], after: &[BillLine]) -> BTreeSet<String> {
    let by_subscription = |lines: &[BillLine]| {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in lines {
            let mut line = line.clone();
            line.source = Default::default();
            map.entry(line.subscription_id.clone()).or_default().push(format!("{line:?}"));
        }
        map.values_mut().for_each(|lines| lines.sort());
        map
    };
    let (before, after) = (by_subscription(before), by_subscription(after));
    before.keys().chain(after.keys()).filter(|s| before.get(*s) != after.get(*s)).cloned().collect()
}

/// `cmat ARGS…`, asserting exit 0 or 2 (changes planned or written); its standard output.
fn run(sw: &SimWorkspace, args: &[&str]) -> String {
    let run = sw.cmat(args);
    assert!(matches!(run.status, 0 | 2), "cmat {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

fn set_quantity(line: &mut BillLine, quantity: i64) {
    line.quantity = Decimal::from(quantity);
    line.total_cost = (line.quantity * line.unit_cost_price).round_dp(4);
    line.total_sales = (line.quantity * line.unit_sales_price).round_dp(4);
}

#[derive(Debug, Clone)]
struct Case {
    organizations: usize,
    /// Licence lines (by index) whose count moves, and by how much.
    churn: Vec<(usize, i64)>,
    /// A licence subscription (by index) gone from today's bill.
    gone: Option<usize>,
    /// A licence line (by index) copied under a subscription Autotask has never seen.
    new: Option<usize>,
    /// Hand edits in Autotask: on a contract service (by index) of a subscription the day
    /// touches or not; its price, or its units from the day after the Billing Date.
    edits: Vec<Edit>,
}

#[derive(Debug, Clone)]
struct Edit {
    inside: bool,
    units: bool,
    index: usize,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        26usize..=30,
        prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![-3i64..=-1, 1i64..=3]),
            1..8,
        ),
        prop::option::of(any::<prop::sample::Index>()),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec((any::<bool>(), any::<bool>(), any::<prop::sample::Index>()), 0..6),
    )
        .prop_map(|(organizations, churn, gone, new, edits)| {
            // Indices resolved against the sizes below (at least 26 × 4 × 5 licence lines).
            let lines = organizations * 20;
            Case {
                organizations,
                churn: churn.into_iter().map(|(i, d)| (i.index(lines), d)).collect(),
                gone: gone.map(|i| i.index(organizations * 4)),
                new: new.map(|i| i.index(lines)),
                edits: edits
                    .into_iter()
                    .map(|(inside, units, i)| Edit { inside, units, index: i.index(lines) })
                    .collect(),
            }
        })
}

/// Runs one case; returns whether the day's pull was focused.
fn check(case: &Case) -> bool {
    let size = size(case.organizations);
    let day0 = bill_lines(size, 0, 0);
    let (seed, snapshot) = converged(size, &day0);
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());

    // Yesterday's sync: a full read, nothing to write, the per-subscription digests stored.
    let write = |name: &str, lines: &[BillLine]| {
        let file = std::fs::File::create(sw.ws.path().join(name)).unwrap();
        write_bill_csv(std::io::BufWriter::new(file), lines).unwrap();
    };
    write("day-0.csv", &day0);
    sw.ok(&["sync", "--auto-approve", "--import", "day-0.csv"]);

    // Today's bill: the same Billing Date restated with the case's churn.
    let licence: Vec<usize> =
        (0..day0.len()).filter(|i| day0[*i].subscription_id.contains("-lic-")).collect();
    let mut day1 = day0.clone();
    for (index, delta) in &case.churn {
        let line = &mut day1[licence[index % licence.len()]];
        let quantity = (line.quantity + Decimal::from(*delta)).max(Decimal::ONE);
        set_quantity(line, quantity.trunc().to_string().parse().unwrap_or(1));
    }
    if let Some(index) = case.new {
        let mut line = day1[licence[index % licence.len()]].clone();
        line.subscription_id = format!("{}-new", line.subscription_id);
        line.source.row = day1.len() as u64 + 2;
        day1.push(line);
    }
    if let Some(index) = case.gone {
        let subscriptions: Vec<String> = licence
            .iter()
            .map(|i| day0[*i].subscription_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let gone = &subscriptions[index % subscriptions.len()];
        day1.retain(|line| &line.subscription_id != gone);
    }
    let touched = changed_subscriptions(&day0, &day1);
    if touched.is_empty() {
        // Every move was clamped away: the bills are unchanged and sync leaves Autotask alone.
        return true;
    }

    // Hand edits in Autotask since yesterday, on contract services inside and outside the scope.
    let autotask = client(&sw);
    let touched_contracts: BTreeSet<i64> = snapshot
        .contracts
        .values()
        .filter(|c| c.subscription_id.as_ref().is_some_and(|s| touched.contains(s)))
        .map(|c| c.id)
        .collect();
    let (inside, outside): (Vec<_>, Vec<_>) = snapshot
        .contract_services
        .values()
        .partition(|cs| touched_contracts.contains(&cs.contract_id));
    let mut edited_outside = BTreeSet::new();
    for edit in &case.edits {
        let pool = if edit.inside && !inside.is_empty() { &inside } else { &outside };
        let cs = pool[edit.index % pool.len()];
        if !touched_contracts.contains(&cs.contract_id) {
            let contract = &snapshot.contracts[&cs.contract_id];
            edited_outside.extend(contract.subscription_id.clone());
        }
        if edit.units {
            // The day after the Billing Date: the next adjustment cmat plans moves a day on.
            let body = json!({"contractID": cs.contract_id, "serviceID": cs.service_id,
                "effectiveDate": "2026-11-02T00:00:00Z", "unitChange": 1});
            let path = format!("Contracts/{}/ServiceAdjustments", cs.contract_id);
            // A second edit of one service on one day is refused, as Autotask does.
            let _ = autotask.create(&path, &body);
        } else {
            let price = cs.adjusted_price.unwrap_or_default() + Decimal::new(1234, 2);
            autotask
                .update(
                    &format!("Contracts/{}/Services", cs.contract_id),
                    &json!({"id": cs.id, "adjustedPrice": price.to_string()}),
                )
                .expect("a hand edit");
        }
    }

    write("day-1.csv", &day1);
    let day = run(&sw, &["sync", "--dry-run", "--import", "day-1.csv"]);
    let focused = day.contains("whose bills changed");
    let by_focus = plan_of(&sw);
    sw.ok(&["pull", "autotask", "--full"]);
    let by_full_read = plan_of(&sw);
    assert_eq!(
        comparable(&by_focus, &touched),
        comparable(&by_full_read, &touched),
        "the focused pull planned differently from a full read for the touched subscriptions \
         {touched:?}; case {case:?}\n{day}"
    );
    if std::env::var_os("FOCUSED_PULL_DEBUG").is_some() {
        eprintln!(
            "touched {}, edited outside {}: focus {} / full {} changes on those",
            touched.len(),
            edited_outside.len(),
            comparable(&by_focus, &edited_outside).len(),
            comparable(&by_full_read, &edited_outside).len()
        );
    }
    focused
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_focused_sync_plans_what_a_full_read_would_for_every_contract_it_touches(case in cases()) {
        prop_assert!(check(&case), "the day's pull was not focused: {case:?}");
    }
}

/// The weekly full read and `--full-pull` still read every contract service.
#[test]
fn a_sync_reads_in_full_without_digests_or_when_asked() {
    let size = size(26);
    let day0 = bill_lines(size, 0, 0);
    let (seed, _) = converged(size, &day0);
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    let file = std::fs::File::create(sw.ws.path().join("day-0.csv")).unwrap();
    write_bill_csv(std::io::BufWriter::new(file), &day0).unwrap();
    let first = sw.ok(&["sync", "--auto-approve", "--import", "day-0.csv"]).stdout;
    assert!(!first.contains("whose bills changed"), "no digests yet: a full read\n{first}");

    let day1 = bill_lines(size, 1, 50);
    let file = std::fs::File::create(sw.ws.path().join("day-1.csv")).unwrap();
    write_bill_csv(std::io::BufWriter::new(file), &day1).unwrap();
    let asked = run(&sw, &["sync", "--dry-run", "--full-pull", "--import", "day-1.csv"]);
    assert!(!asked.contains("whose bills changed"), "--full-pull reads in full\n{asked}");
    let focused = run(&sw, &["sync", "--auto-approve"]);
    assert!(focused.contains("whose bills changed"), "{focused}");
    // The plain pull keeps reading everything.
    let pull = sw.ok(&["pull", "autotask"]).stdout;
    assert!(!pull.contains("whose bills changed"), "{pull}");
    assert_eq!(sw.plan_detailed().status, 0, "converged");
}

/// Within `sync`, apply trusts what the pull has just read: no query between the pull and the
/// first write, and after writing it reads back only the contracts written (by id, one query
/// per entity on a small tenant), never their companies' other contracts. Still converges.
#[test]
fn a_sync_writes_without_reading_again_what_its_pull_just_read() {
    let size = size(26);
    let day0 = bill_lines(size, 0, 0);
    let (seed, _) = converged(size, &day0);
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    let write = |name: &str, lines: &[BillLine]| {
        let file = std::fs::File::create(sw.ws.path().join(name)).unwrap();
        write_bill_csv(std::io::BufWriter::new(file), lines).unwrap();
    };
    write("day-0.csv", &day0);
    sw.ok(&["sync", "--auto-approve", "--import", "day-0.csv"]);
    write("day-1.csv", &bill_lines(size, 1, 50));

    let logged_before = sw.sim.request_log().len();
    let day = run(&sw, &["sync", "--auto-approve", "--import", "day-1.csv"]);
    assert!(day.contains("whose bills changed"), "a focused pull\n{day}");
    let pull_requests: usize = day
        .lines()
        .find_map(|l| l.strip_prefix("Requests: ")?.split(' ').next()?.parse().ok())
        .expect("the pull's request count");
    let log = sw.sim.request_log().split_off(logged_before);
    let is_write = |r: &cmat_sim::LoggedRequest| {
        matches!(r.method.as_str(), "POST" | "PATCH" | "DELETE") && !r.route.contains("/query")
    };
    let first_write = log.iter().position(is_write).expect("the day writes");
    assert_eq!(first_write, pull_requests, "nothing read between the pull and the writes");
    let mut queries_after: BTreeMap<&str, usize> = BTreeMap::new();
    for request in log[first_write..].iter().filter(|r| r.route.contains("/query")) {
        *queries_after.entry(request.route.as_str()).or_default() += 1;
    }
    let expected = [
        "POST ContractCharges/query",
        "POST ContractServiceUnits/query",
        "POST ContractServices/query",
        "POST Contracts/query",
    ];
    assert!(
        queries_after.iter().all(|(route, n)| *n == 1 && expected.contains(route)),
        "the refresh reads the written contracts by id, one query per entity: {queries_after:?}"
    );
    assert_eq!(sw.plan_detailed().status, 0, "converged");
}
