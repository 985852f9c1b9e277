//! `cmat import` and `cmat status` run as a user runs them.

mod common;

use cmat::store::{Access, Store};
use common::{Run, TestWorkspace};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A workspace holding the named fixtures at its top, under their base names.
fn workspace_with(names: &[&str]) -> TestWorkspace {
    let ws = TestWorkspace::new();
    for name in names {
        let base = name.rsplit('/').next().unwrap();
        std::fs::write(ws.path().join(base), fixture(name)).unwrap();
    }
    ws
}

/// Exit status and both streams, for snapshots.
fn transcript(run: &Run) -> String {
    format!("status: {}\n--- stdout\n{}--- stderr\n{}", run.status, run.stdout, run.stderr)
}

/// What the database holds, as a comparable value.
fn contents(ws: &TestWorkspace) -> (String, usize, usize) {
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    (
        store.inputs_digest().unwrap(),
        store.bills().unwrap().len(),
        store.bill_lines().unwrap().len(),
    )
}

#[test]
fn import_october_then_november() {
    let ws = workspace_with(&["bill-2026-10-01.csv", "bill-2026-11-01.csv"]);
    let run = ws.cmat(&["import", "bill-2026-10-01.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bill-2026-10-01.csv: 57 lines, 5 new bills, 0 restated, 0 unchanged
    --- stderr
    ");
    let run = ws.cmat(&["import", "bill-2026-11-01.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bill-2026-11-01.csv: 63 lines, 5 new bills, 0 restated, 0 unchanged
    --- stderr
    ");
    assert_eq!(contents(&ws).1, 10);
}

#[test]
fn importing_the_same_bill_twice_changes_nothing() {
    let ws = workspace_with(&["bill-2026-10-01.csv"]);
    assert_eq!(ws.cmat(&["import", "bill-2026-10-01.csv"]).status, 0);
    let before = contents(&ws);
    let run = ws.cmat(&["import", "bill-2026-10-01.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bill-2026-10-01.csv: 57 lines, 0 new bills, 0 restated, 5 unchanged
    --- stderr
    ");
    assert_eq!(contents(&ws), before);
}

#[test]
fn a_later_export_restates_the_bill() {
    let ws = workspace_with(&["bill-2026-11-01.csv", "bill-2026-11-01-restated.csv"]);
    assert_eq!(ws.cmat(&["import", "bill-2026-11-01.csv"]).status, 0);
    let before = contents(&ws);
    let run = ws.cmat(&["import", "bill-2026-11-01-restated.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bill-2026-11-01-restated.csv: 63 lines, 0 new bills, 1 restated, 4 unchanged
      restated: Fabrikam Inc 2026-11-01
    --- stderr
    ");
    let after = contents(&ws);
    assert_ne!(after.0, before.0, "the inputs digest follows the restatement");
    assert_eq!((after.1, after.2), (before.1, before.2));
}

#[test]
fn status_shows_what_is_loaded() {
    let ws = workspace_with(&[
        "bill-2026-10-01.csv",
        "bill-2026-11-01.csv",
        "bill-2026-11-01-restated.csv",
    ]);
    let run = ws.cmat(&["status"]);
    insta::assert_snapshot!("status_empty", transcript(&run));
    let run = ws.cmat(&[
        "import",
        "bill-2026-10-01.csv",
        "bill-2026-11-01.csv",
        "bill-2026-11-01-restated.csv",
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let run = ws.cmat(&["status"]);
    insta::assert_snapshot!("status_loaded", transcript(&run));
}

#[test]
fn a_bom_is_accepted() {
    let ws = TestWorkspace::new();
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend(fixture("bill-2026-10-01.csv"));
    std::fs::write(ws.path().join("bom.csv"), bytes).unwrap();
    let run = ws.cmat(&["import", "bom.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bom.csv: 57 lines, 5 new bills, 0 restated, 0 unchanged
    --- stderr
    ");
}

/// Each malformed fixture is refused with every bad row named, and the database is untouched.
#[test]
fn malformed_files_are_rejected_whole() {
    for name in [
        "bad-decimal.csv",
        "bad-date.csv",
        "missing-column.csv",
        "missing-cell.csv",
        "bad-company-id.csv",
        "ragged.csv",
        "invalid-utf8.csv",
        "semicolon.csv",
        "empty.csv",
        "several-faults.csv",
    ] {
        let ws = workspace_with(&["bill-2026-10-01.csv", &format!("bad/{name}")]);
        assert_eq!(ws.cmat(&["import", "bill-2026-10-01.csv"]).status, 0);
        let before = contents(&ws);
        let run = ws.cmat(&["import", name]);
        assert_eq!(run.status, 1, "{name}");
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
        insta::assert_snapshot!(format!("rejected_{name}"), run.stderr);
        assert_eq!(contents(&ws), before, "{name} changed the database");
    }
}

#[test]
fn a_file_that_does_not_exist_is_named() {
    let ws = TestWorkspace::new();
    let run = ws.cmat(&["import", "nowhere.csv"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.starts_with("error: nowhere.csv: cannot read\n  caused by: "),
        "{}",
        run.stderr
    );
}

#[test]
fn import_needs_a_file() {
    let ws = TestWorkspace::new();
    let run = ws.cmat(&["import"]);
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("FILE.csv"), "{}", run.stderr);
}

#[test]
fn a_busy_workspace_is_refused() {
    let ws = workspace_with(&["bill-2026-10-01.csv"]);
    let holder = Store::open(&ws.path().join(".cmat/state.db"), Access::Write).unwrap();
    let run = ws.cmat(&["import", "bill-2026-10-01.csv"]);
    // The holder is this test process: its pid, its command line and start time vary.
    let pid = std::process::id().to_string();
    assert!(run.stderr.contains(&format!("another cmat (pid {pid}, `")), "{}", run.stderr);
    let (start, end) = (run.stderr.find("cmat (").unwrap() + 6, run.stderr.find(") is").unwrap());
    let stderr = format!("{}[HOLDER]{}", &run.stderr[..start], &run.stderr[end..]);
    insta::assert_snapshot!(format!("status: {}\n{stderr}", run.status), @r"
    status: 1
    error: workspace is busy: another cmat ([HOLDER]) is writing to [WS]/.cmat/state.db; nothing was done. Run again when it has finished
    ");
    drop(holder);
    assert_eq!(ws.cmat(&["import", "bill-2026-10-01.csv"]).status, 0);
}
