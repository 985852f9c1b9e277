//! Issue 29 through the binary against the simulator: the audit trail's hash chain
//! (`audit --verify`, of the database and of an exported copy), four-eyes approval (`approve`,
//! `[apply] require_approval`), and the operations commands (`completions`, `status` and
//! `doctor` as JSON, `--version`).

use crate::harness::{SimWorkspace, TestWorkspace};
use serde_json::Value;

const OCTOBER: &str = "bill-2026-10-01.csv";

/// A simulator and workspace with the October bill imported and Autotask pulled.
fn october() -> SimWorkspace {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    sw
}

/// Runs SQL on the workspace's database as someone with a SQLite shell would: the triggers
/// that refuse updates and deletes dropped first.
fn tamper(sw: &SimWorkspace, sql: &str) {
    let conn = rusqlite::Connection::open(sw.ws.path().join(".cmat/state.db")).expect("open db");
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
    ))
    .expect("tamper");
}

/// The database's bytes after every connection closed (no WAL left beside it).
fn database(sw: &SimWorkspace) -> Vec<u8> {
    let path = sw.ws.path().join(".cmat/state.db");
    assert!(!path.with_extension("db-wal").exists(), "the WAL is checkpointed on close");
    std::fs::read(path).expect("read db")
}

#[test]
fn an_applied_trail_verifies_and_an_edited_removed_or_swapped_row_is_named() {
    let sw = october();
    sw.ok(&["apply", "--auto-approve"]);
    let run = sw.ok(&["audit", "--verify"]);
    assert!(run.stdout.starts_with("audit trail intact: "), "{}", run.stdout);
    let rows: usize = sw.ok(&["audit"]).stdout.lines().count() - 1;
    assert!(rows > 5, "{rows}");
    let original = database(&sw);

    for (sql, named) in [
        ("UPDATE audit SET new_value = '999' WHERE id = 4", "audit row 4 ("),
        ("DELETE FROM audit WHERE id = 4", "audit row(s) 4 to 4 were removed"),
        (
            "UPDATE audit SET id = -1 WHERE id = 4; UPDATE audit SET id = 4 WHERE id = 5;
             UPDATE audit SET id = 5 WHERE id = -1;",
            "audit row 4 (",
        ),
        (
            &format!("DELETE FROM audit WHERE id = {rows}"),
            &format!("but its recorded end is audit row {rows}"),
        ),
    ] {
        std::fs::write(sw.ws.path().join(".cmat/state.db"), &original).expect("restore");
        tamper(&sw, sql);
        let run = sw.cmat(&["audit", "--verify"]);
        assert_eq!(run.status, 1, "{sql}: {}", run.stdout);
        assert!(run.stderr.contains("the audit trail in "), "{}", run.stderr);
        assert!(run.stderr.contains(named), "{sql}: {}", run.stderr);
    }
    std::fs::write(sw.ws.path().join(".cmat/state.db"), &original).expect("restore");
    sw.ok(&["audit", "--verify"]);
}

#[test]
fn an_exported_copy_carries_the_chain_and_verifies_on_its_own() {
    let sw = october();
    sw.ok(&["apply", "--auto-approve"]);
    sw.ok(&["audit", "--out", "audit.csv"]);
    let run = sw.ok(&["audit", "--verify", "--file", "audit.csv"]);
    let head = sw.ok(&["audit", "--verify"]).stdout;
    // The copy ends where the trail does: the same last digest.
    let digest = |text: &str| text.rsplit(' ').next().unwrap_or_default().trim().to_string();
    assert_eq!(digest(&run.stdout), digest(&head));

    // One changed cell (the third row's new value) is named by its line.
    let text = sw.ws.read("audit.csv");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let cells: Vec<&str> = lines[3].split(',').collect();
    let mut changed: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
    changed[8] = format!("{}1", changed[8]);
    lines[3] = changed.join(",");
    sw.ws.write("edited.csv", &(lines.join("\n") + "\n"));
    let run = sw.cmat(&["audit", "--verify", "--file", "edited.csv"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert!(run.stderr.contains("line 4 ("), "{}", run.stderr);

    // A row removed from the copy: the row after it no longer follows.
    lines = text.lines().map(String::from).collect();
    lines.remove(3);
    sw.ws.write("removed.csv", &(lines.join("\n") + "\n"));
    let run = sw.cmat(&["audit", "--verify", "--file", "removed.csv"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert!(run.stderr.contains("line 4 (") && run.stderr.contains("does not follow line 3"));

    // A file that is not an audit export at all.
    sw.ws.write("other.csv", "a,b\n1,2\n");
    let run = sw.cmat(&["audit", "--verify", "--file", "other.csv"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("other.csv: not an audit trail with its chain"), "{}", run.stderr);
}

/// October imported and pulled, with `[apply] require_approval` (and distinct approvers).
fn october_under_approval() -> SimWorkspace {
    let sw = october();
    let config = sw.ws.read("cmat.toml");
    sw.ws.write(
        "cmat.toml",
        &format!("{config}\n[apply]\nrequire_approval = true\nrequire_distinct_approver = true\n"),
    );
    sw
}

/// `plan --out plan.json` made by `author`.
fn plan_by(sw: &SimWorkspace, author: &str) {
    let env = sw.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("CMAT_USER", author));
    let run = sw.ws.cmat_with_env(&["plan", "--out", "plan.json"], &env);
    assert_eq!(run.status, 0, "{}", run.stderr);
}

#[test]
fn an_unapproved_plan_writes_nothing_and_an_approved_one_applies() {
    let sw = october_under_approval();
    // Planning now, without a plan file: refused.
    let run = sw.cmat(&["apply", "--auto-approve"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("require_approval = true"), "{}", run.stderr);
    plan_by(&sw, "alice");
    let run = sw.cmat(&["apply", "plan.json", "--auto-approve"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("plan.json: the plan is not approved"), "{}", run.stderr);
    // The author cannot approve her own plan.
    let run = sw.cmat(&["approve", "plan.json", "--by", "Alice"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("Alice made this plan"), "{}", run.stderr);
    assert_eq!(sw.writes(), 0, "nothing was written");

    let run = sw.ok(&["approve", "plan.json", "--by", "Bob"]);
    assert!(run.stdout.contains("approved by Bob"), "{}", run.stdout);
    let plan: Value = serde_json::from_str(&sw.ws.read("plan.json")).expect("JSON");
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["created_by"], "alice");
    assert_eq!(plan["approval"]["by"], "Bob");
    assert!(plan["approval"]["digest"].as_str().expect("digest").starts_with("sha256:"));
    let approved = sw.ws.read("plan.json");

    // One changed byte voids the approval: a unit count, and a space.
    for (from, to) in [("\"unitChange\": ", "\"unitChange\": 1"), ("{\n", "{ \n")] {
        assert!(approved.contains(from), "{from}");
        sw.ws.write("plan.json", &approved.replacen(from, to, 1));
        let run = sw.cmat(&["apply", "plan.json", "--auto-approve"]);
        assert_eq!(run.status, 1, "{from:?}: {}", run.stdout);
        assert!(run.stderr.contains("approval is void"), "{from:?}: {}", run.stderr);
        assert_eq!(sw.writes(), 0, "nothing was written");
    }

    sw.ws.write("plan.json", &approved);
    let run = sw.ok(&["apply", "plan.json", "--auto-approve"]);
    assert!(run.stdout.contains("Approved by Bob"), "{}", run.stdout);
    assert!(sw.writes() > 0);
    // The approver is in the audit trail, beside the run's writes, and the trail holds.
    let audit = sw.ok(&["audit"]).stdout;
    let mut reader = csv::Reader::from_reader(audit.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let approval = rows.iter().find(|r| &r[2] == "approve").expect("an approval row");
    assert_eq!(
        (&approval[3], &approval[6], &approval[7], &approval[8]),
        ("Plan", "approved_by", "alice", "Bob")
    );
    assert_eq!(&approval[5], plan["approval"]["digest"].as_str().expect("digest"));
    assert!(rows.iter().all(|r| r[0] == approval[0]), "one run");
    sw.ok(&["audit", "--verify"]);
    // And in the review of the period.
    let review: Value =
        serde_json::from_str(&sw.ok(&["report", "--format", "json"]).stdout).expect("JSON");
    let notes = review["notes"].as_array().expect("notes");
    let note = format!(
        "run {}: its plan {} was approved by Bob (approved at ",
        &approval[0], &approval[5]
    );
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.starts_with(&note) && n.ends_with("plan made by alice)"))),
        "{notes:?}"
    );
}

#[test]
fn sync_under_require_approval_saves_its_plan_and_writes_nothing() {
    let sw = october_under_approval();
    let run = sw.cmat(&["sync", "--auto-approve"]);
    assert_eq!(run.status, 2, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sw.writes(), 0, "nothing was written");
    assert!(run.stdout.contains("require_approval = true: nothing was written"), "{}", run.stdout);
    let path = run
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("cmat approve "))
        .and_then(|rest| rest.strip_suffix(" --by NAME"))
        .expect("how to approve")
        .replace("[WS]", &sw.ws.path().display().to_string());
    // Without CMAT_USER the plan names no author, so a distinct approver cannot be checked.
    let run = sw.cmat(&["approve", &path, "--by", "Bob"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("does not name its author"), "{}", run.stderr);
    let config = sw.ws.read("cmat.toml").replace("require_distinct_approver = true", "");
    sw.ws.write("cmat.toml", &config);
    sw.ok(&["approve", &path, "--by", "Bob"]);
    sw.ok(&["apply", &path, "--auto-approve"]);
    assert!(sw.writes() > 0);
    // The next sync finds nothing left to write, so it needs no approval.
    let run = sw.cmat(&["sync", "--auto-approve"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn completions_come_from_clap_for_each_shell() {
    let ws = TestWorkspace::new();
    for (shell, marker) in [
        ("bash", "_cmat()"),
        ("zsh", "#compdef cmat"),
        ("fish", "complete -c cmat"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = ws.cmat(&["completions", shell]);
        assert_eq!(run.status, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}");
        // Every command is offered, the new ones too.
        for command in ["approve", "audit", "completions", "sync"] {
            assert!(run.stdout.contains(command), "{shell}: {command}");
        }
    }
    assert_eq!(ws.cmat(&["completions", "tcsh"]).status, 2);
}

#[test]
fn version_names_the_commit() {
    let run = TestWorkspace::new().cmat(&["--version"]);
    assert_eq!(run.status, 0);
    let version = run.stdout.trim();
    let commit = version
        .strip_prefix(concat!("cmat ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
}

#[test]
fn status_as_json_for_monitoring() {
    let ws = TestWorkspace::new();
    let run = ws.cmat(&["status", "--format", "json"]);
    assert_eq!(run.status, 0);
    let empty: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(empty["loaded"], false);

    let sw = october();
    sw.ok(&["apply", "--auto-approve"]);
    let status: Value =
        serde_json::from_str(&sw.ok(&["status", "--format", "json"]).stdout).expect("JSON");
    assert_eq!(status["loaded"], true);
    assert!(!status["bills"].as_array().expect("bills").is_empty());
    assert_eq!(status["bills"][0]["billing_date"], "2026-10-01");
    assert!(status["snapshot"]["contracts"].as_u64().expect("contracts") > 0);
    assert_eq!(status["audit"]["intact"], true);
    assert!(status["audit"]["rows"].as_u64().expect("rows") > 0);
    tamper(&sw, "UPDATE audit SET message = 'x' WHERE id = 1");
    let status: Value =
        serde_json::from_str(&sw.ok(&["status", "--format", "json"]).stdout).expect("JSON");
    assert_eq!(status["audit"]["intact"], false);
}

#[test]
fn doctor_as_json_for_monitoring() {
    let sw = october();
    let run = sw.cmat(&["doctor", "--format", "json"]);
    let doctor: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doctor["ok"], run.status == 0, "{}", run.stdout);
    let checks = doctor["checks"].as_array().expect("checks");
    assert!(!checks.is_empty());
    for check in checks {
        let status = check["status"].as_str().expect("status");
        assert!(["ok", "note", "problem"].contains(&status), "{check}");
        assert_eq!(check.get("fix").is_some(), status == "problem", "{check}");
    }
    // Without credentials: one problem, exit 1, still JSON.
    let run = sw.ws.cmat(&["doctor", "--format", "json"]);
    assert_eq!(run.status, 1);
    let doctor: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!((doctor["ok"].as_bool(), doctor["problems"].as_u64()), (Some(false), Some(1)));
}
