//! `cmat adopt` through the binary against `cmat-sim`'s adopt tenant (`fixtures/adopt/`): an
//! MSP billing 12 subscriptions from contracts made by hand. The proposal puts each of the 10
//! hand-made contracts first for its subscription, marks the per-customer one, never proposes
//! a name alone; the accepted rows are written as 10 UDF updates, audited with their rows; the
//! next plan creates only the 2 unmatched subscriptions' contracts; bad files are refused with
//! the row named and nothing written.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{fixture, stable_snapshots, SimWorkspace};

const BILL: &str = "adopt/bill-2026-11-01.csv";

fn subscription(n: u32) -> String {
    format!("ad0b7e00-0000-4000-8000-{n:012}")
}

/// The subscription each hand-made contract bills (fixtures/adopt/autotask-seed.json).
const RIGHT: [(u32, i64); 10] = [
    (1, 7001),
    (2, 7002),
    (3, 7003),
    (4, 7004),
    (5, 7005),
    (6, 7006),
    (7, 7008),
    (8, 7010),
    (9, 7009),
    (10, 7011),
];

/// The adopt tenant, its bill imported and Autotask pulled.
fn tenant() -> SimWorkspace {
    let seed = cmat_sim::Seed::from_file(fixture("adopt/autotask-seed.json")).expect("seed");
    let sw = SimWorkspace::start_seeded(seed, Default::default());
    let bill = std::fs::read_to_string(fixture(BILL)).expect("bill");
    sw.ws.write("bill.csv", &bill);
    sw.ok(&["import", "bill.csv"]);
    sw.pull();
    sw
}

/// The file's rows as header → cell maps, with the line each is on.
fn rows(text: &str) -> Vec<(u64, std::collections::BTreeMap<String, String>)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|record| {
            let record = record.expect("row");
            let line = record.position().expect("position").line();
            (line, headers.iter().zip(record.iter()).map(|(h, c)| (h.into(), c.into())).collect())
        })
        .collect()
}

/// The file with `accept` set to yes on the given lines.
fn accept(text: &str, lines: &[u64]) -> String {
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        if lines.contains(&(index as u64 + 1)) {
            out.push_str("yes");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The line of the first candidate row of a subscription.
fn first_candidate(text: &str, subscription: &str) -> (u64, String) {
    rows(text)
        .into_iter()
        .find(|(_, row)| row["kind"] == "candidate" && row["subscription_id"] == subscription)
        .map(|(line, row)| (line, row["contract_id"].clone()))
        .expect("a candidate")
}

fn linked_contracts(sw: &SimWorkspace) -> Vec<(i64, String)> {
    let mut linked: Vec<(i64, String)> = sw
        .sim
        .records("Contracts")
        .iter()
        .filter_map(|c| {
            let udf =
                c["userDefinedFields"].as_array()?.iter().find_map(|u| u["value"].as_str())?;
            Some((c["id"].as_i64()?, udf.to_string()))
        })
        .collect();
    linked.sort();
    linked
}

#[test]
fn adopting_hand_made_contracts_links_ten_and_the_plan_creates_only_the_two_unmatched() {
    let sw = tenant();
    let run = sw.ok(&["adopt"]);
    let _filters = stable_snapshots();
    insta::assert_snapshot!("adopt_summary", run.stdout);
    let file = sw.ws.read("adopt.csv");
    insta::assert_snapshot!("adopt_file", file);

    // The right contract first for each of the 10; the per-customer one marked; the
    // name-only (#7013) and the ended (#7014) contracts proposed for nothing.
    let all = rows(&file);
    let mut accepted = Vec::new();
    for (n, contract) in RIGHT {
        let (line, first) = first_candidate(&file, &subscription(n));
        assert_eq!(first, contract.to_string(), "subscription {n}");
        accepted.push(line);
    }
    for n in [11, 12] {
        let kinds: Vec<&str> = all
            .iter()
            .filter(|(_, row)| row["subscription_id"] == subscription(n))
            .map(|(_, row)| row["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["no_candidate"], "subscription {n}");
    }
    let shared: Vec<_> = all.iter().filter(|(_, row)| row["kind"] == "shared_contract").collect();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].1["contract_id"], "7012");
    assert_eq!(shared[0].1["covers"], format!("{} {}", subscription(11), subscription(12)));
    for contract in ["7013", "7014"] {
        assert!(all.iter().all(|(_, row)| row["contract_id"] != contract), "{contract} proposed");
    }
    assert_eq!(sw.writes(), 0, "adopt alone writes nothing");

    // Accepting the 10 first rows and applying writes exactly 10 UDFs, audited by row.
    sw.ws.write("adopt.csv", &accept(&file, &accepted));
    let again = sw.cmat(&["adopt"]);
    assert_eq!(again.status, 1, "a reviewed file is never overwritten: {}", again.stdout);
    assert!(again.stderr.contains("holds 10 accepted row(s); not overwritten"), "{}", again.stderr);
    let bill = sw.cmat(&["adopt", "--out", "bill.csv"]);
    assert!(bill.stderr.contains("is not a `cmat adopt` proposal"), "{}", bill.stderr);
    let run = sw.ok(&["adopt", "--apply", "adopt.csv", "--auto-approve"]);
    assert!(run.stdout.contains("Plan: 0 to create, 10 to update"), "{}", run.stdout);
    assert_eq!(sw.writes(), 10);
    let expected: Vec<(i64, String)> =
        RIGHT.iter().map(|(n, contract)| (*contract, subscription(*n))).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(linked_contracts(&sw), expected);
    let audit = sw.ok(&["audit"]).stdout;
    for line in &accepted {
        assert!(audit.contains(&format!(",adopt.csv:{line},applied,")), "row {line}: {audit}");
    }

    // A second apply of the same file writes nothing.
    let run = sw.ok(&["adopt", "--apply", "adopt.csv", "--auto-approve"]);
    assert!(run.stdout.contains("Nothing to write"), "{}", run.stdout);
    assert_eq!(sw.writes(), 10);

    // The normal flow takes over: 2 contracts created (the unmatched), the adopted ones adjusted.
    sw.ok(&["plan", "--out", "plan.json"]);
    let plan: Value = serde_json::from_str(&sw.ws.read("plan.json")).expect("plan");
    let changes = plan["changes"].as_array().expect("changes");
    let created: Vec<&str> = changes
        .iter()
        .filter(|c| c["action"] == "create" && c["entity"] == "Contracts")
        .map(|c| c["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        created,
        [
            format!("subscription:{}", subscription(11)),
            format!("subscription:{}", subscription(12))
        ]
    );
    // Fabrikam's Visio: 2 → 3 units on the adopted contract; Northwind's missing product added.
    assert!(changes.iter().any(|c| c["parent"] == json!({"entity": "Contracts", "id": 7005})
        && c["fields"]["unitChange"] == 1));
    assert!(changes.iter().any(|c| c["parent"] == json!({"entity": "Contracts", "id": 7009})
        && c["key"].as_str().is_some_and(|k| k.ends_with("/item:CFQ7TTC0LGZT"))));
    sw.ok(&["apply", "plan.json", "--auto-approve"]);
    // No duplicate: each of the 12 subscriptions on exactly one contract (the contracts left
    // without a "Subscription ID", #7007 and #7012 to #7014, are the MSP's own to end).
    let linked = linked_contracts(&sw);
    let subscriptions: std::collections::BTreeSet<&str> =
        linked.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!((linked.len(), subscriptions.len()), (12, 12), "{linked:?}");
    assert_eq!(sw.plan_detailed().status, 0, "converged");

    // The review lists the month's adopted contracts.
    sw.ok(&["report", "--format", "json", "--out", "review.json"]);
    let review: Value = serde_json::from_str(&sw.ws.read("review.json")).expect("review");
    let adopted = review["exceptions"]
        .as_array()
        .expect("exceptions")
        .iter()
        .filter(|e| e["kind"] == "adopted_contract")
        .count();
    assert_eq!(adopted, 10);
}

/// `adopt --apply` of `text` (as adopt.csv): refused, naming `row`, nothing written.
fn refused(sw: &SimWorkspace, text: &str, expected: &str) -> String {
    sw.ws.write("bad.csv", text);
    let before = sw.writes();
    let run = sw.cmat(&["adopt", "--apply", "bad.csv", "--auto-approve"]);
    assert_eq!(run.status, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(expected), "expected {expected:?} in:\n{}", run.stderr);
    assert_eq!(sw.writes(), before, "nothing written");
    run.stderr
}

#[test]
fn bad_adoption_files_are_refused_with_the_row_named() {
    let sw = tenant();
    sw.ok(&["adopt"]);
    let file = sw.ws.read("adopt.csv");
    let (first, _) = first_candidate(&file, &subscription(1));
    let (second, _) = first_candidate(&file, &subscription(2));
    let lines: Vec<&str> = file.lines().collect();

    // Two accepted rows for one subscription.
    let duplicate = format!(
        "{}\nyes{}\nyes{}\n",
        lines[0],
        lines[first as usize - 1],
        lines[first as usize - 1]
    );
    let stderr = refused(&sw, &duplicate, "bad.csv:3: subscription");
    insta::assert_snapshot!("adopt_refused_duplicate", stderr);
    // Two for one contract.
    let same_contract = lines[second as usize - 1].replace(",7002,", ",7001,");
    refused(
        &sw,
        &format!("{}\nyes{}\nyes{}\n", lines[0], lines[first as usize - 1], same_contract),
        "bad.csv:3: contract 7001 is accepted on line 2 as well",
    );
    // An unknown contract, an unknown subscription, another company's contract.
    let row = lines[first as usize - 1];
    refused(
        &sw,
        &format!("{}\nyes{}\n", lines[0], row.replace(",7001,", ",424242,")),
        "bad.csv:2: contract \"424242\" is not in Autotask",
    );
    refused(
        &sw,
        &format!("{}\nyes{}\n", lines[0], row.replace(&subscription(1), "no-such-subscription")),
        "bad.csv:2: subscription \"no-such-subscription\" is not on the imported bills",
    );
    refused(
        &sw,
        &format!("{}\nyes{}\n", lines[0], row.replace(",7001,", ",7004,")),
        "bad.csv:2: contract 7004 belongs to company 29683502",
    );
    // A shared contract's row, and an accept cell that is not a yes.
    let shared = lines.iter().find(|l| l.contains(",shared_contract,")).expect("shared row");
    refused(
        &sw,
        &format!("{}\nyes{shared}\n", lines[0]),
        "bad.csv:2: a shared_contract row cannot be accepted",
    );
    refused(&sw, &format!("{}\nok{row}\n", lines[0]), "bad.csv:2: accept is \"ok\"");

    // A changed tenant: someone set contract 7001's "Subscription ID" by hand since the file
    // was made (no pull in between): found by the re-read, refused.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let credentials = sw.sim.credentials();
    let response = client
        .patch(format!("{}v1.0/Contracts", sw.sim.base_url()))
        .header("ApiIntegrationCode", credentials.integration_code)
        .header("UserName", credentials.username)
        .header("Secret", credentials.secret)
        .json(&json!({"id": 7001, "userDefinedFields": [{"name": "Subscription ID", "value": "set-by-hand"}]}))
        .send()
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    refused(
        &sw,
        &format!("{}\nyes{row}\n", lines[0]),
        "bad.csv:2: contract 7001 meanwhile carries \"Subscription ID\" set-by-hand",
    );
}

#[test]
fn the_adopt_demo_onboards_the_tenant_and_converges() {
    let ws = crate::harness::TestWorkspace::new();
    let dir = ws.path().join("demo");
    let dir = dir.to_str().expect("utf-8 path");
    let run = ws.cmat(&["demo", "--adopt", "--dir", dir]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("7 with one strong candidate"), "{}", run.stdout);
    assert!(run.stdout.contains("Plan: 0 to create, 10 to update"), "{}", run.stdout);
    assert!(run.stdout.contains("No changes. Autotask matches the bills"), "{}", run.stdout);
}
