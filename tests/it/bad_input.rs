//! The bad-input corpus (`tests/bad_input/`), run through the real binary: every malformed
//! CSV, mapping file, `cmat.toml` and saved plan gets a clear error naming the file and the
//! line (or row), exit status 1, and leaves nothing half-written: the state database holds the
//! same rows and the workspace's files the same bytes as before. Adding a case is adding a file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::{Run, TestWorkspace};
use cmat_sim::{Seed, SimHandle, SimOptions, Simulator};

const RULES: &str = include_str!("../../mappings/microsoft.cmat");
const GOOD_BILL: &str = include_str!("../../fixtures/bill-2026-10-01.csv");

const CREDENTIALS: [(&str, &str); 3] = [
    ("CMAT_AUTOTASK_USERNAME", "demo@example.com"),
    ("CMAT_AUTOTASK_SECRET", "demo-secret"),
    ("CMAT_AUTOTASK_INTEGRATION_CODE", "DEMOCODE"),
];

/// Exit status and both streams, for snapshots.
fn transcript(run: &Run) -> String {
    format!("status: {}\n--- stdout\n{}--- stderr\n{}", run.status, run.stdout, run.stderr)
}

/// Every row of every table of `.cmat/state.db`, as text: equal before and after means the
/// failed command wrote nothing.
fn state_rows(ws: &TestWorkspace) -> String {
    let path = ws.path().join(".cmat/state.db");
    let connection = rusqlite::Connection::open(&path).expect("open state.db");
    let mut tables = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let names: Vec<String> =
        tables.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    let mut out = String::new();
    for name in names {
        let mut rows = connection.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let width = rows.column_count();
        let mut lines: Vec<String> = rows
            .query_map([], |row| {
                let cells: Vec<String> =
                    (0..width).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
                Ok(cells.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        lines.sort();
        out.push_str(&format!("[{name}] {} rows\n{}\n", lines.len(), lines.join("\n")));
    }
    out
}

/// Every file of the workspace outside `.cmat/`, by relative path.
fn workspace_files(ws: &TestWorkspace) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if relative == ".cmat" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(ws.path(), ws.path(), &mut out);
    out
}

/// What must not change when a command fails: the database rows, what `cmat status` says,
/// and the files.
#[derive(Debug, PartialEq)]
struct Untouched {
    rows: String,
    status: String,
    files: BTreeMap<String, Vec<u8>>,
}

impl Untouched {
    fn take(ws: &TestWorkspace) -> Self {
        let status = ws.cmat(&["status"]);
        assert_eq!(status.status, 0, "{}", status.stderr);
        Untouched { rows: state_rows(ws), status: status.stdout, files: workspace_files(ws) }
    }

    fn assert_same(&self, ws: &TestWorkspace, case: &str) {
        let now = Untouched::take(ws);
        assert_eq!(self.rows, now.rows, "{case}: the state database changed");
        assert_eq!(self.status, now.status, "{case}: `cmat status` changed");
        assert_eq!(
            self.files.keys().collect::<Vec<_>>(),
            now.files.keys().collect::<Vec<_>>(),
            "{case}: files were added or removed"
        );
        for (name, bytes) in &self.files {
            assert!(now.files[name] == *bytes, "{case}: {name} was rewritten");
        }
    }
}

/// A workspace with the default rules and the October bill imported.
fn loaded_workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write("mappings/microsoft.cmat", RULES);
    ws.write("bill-2026-10-01.csv", GOOD_BILL);
    let run = ws.cmat(&["import", "bill-2026-10-01.csv"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    ws
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// CSV: `cmat import FILE` rejects the whole file, naming file and row.

#[test]
fn malformed_reports_are_rejected_whole() {
    insta::glob!("bad_input/csv/*", |path| {
        let ws = loaded_workspace();
        let name = file_name(path);
        std::fs::copy(path, ws.path().join(&name)).unwrap();
        let before = Untouched::take(&ws);
        let run = ws.cmat(&["import", &name]);
        assert_eq!(run.status, 1, "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
        assert!(run.stderr.starts_with(&format!("error: {name}")), "{name}: {}", run.stderr);
        insta::assert_snapshot!("csv", transcript(&run));
        before.assert_same(&ws, &name);
    });
}

/// A row of the October bill with one cell replaced.
fn bill_with_cell(column: &str, value: &str) -> String {
    let mut lines = GOOD_BILL.lines();
    let header = lines.next().unwrap();
    let index = header.split(',').position(|c| c == column).unwrap();
    let row: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .enumerate()
        .map(|(i, cell)| if i == index { value.to_string() } else { cell.to_string() })
        .collect();
    format!("{header}\n{}\n", row.join(","))
}

#[test]
fn a_one_megabyte_number_is_rejected_with_a_short_message() {
    let ws = loaded_workspace();
    ws.write("huge.csv", &bill_with_cell("Quantity", &"9".repeat(1 << 20)));
    let before = Untouched::take(&ws);
    let run = ws.cmat(&["import", "huge.csv"]);
    assert_eq!(run.status, 1);
    insta::assert_snapshot!(transcript(&run));
    before.assert_same(&ws, "huge.csv");
}

#[test]
fn a_one_megabyte_note_is_just_data() {
    let ws = TestWorkspace::new();
    ws.write("long-note.csv", &bill_with_cell("Note", &"n".repeat(1 << 20)));
    let run = ws.cmat(&["import", "long-note.csv"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "long-note.csv: 1 line, 1 new bill, 0 restated, 0 unchanged\n");
}

/// Formula text in a cell is an organization's name like any other: imported as written
/// (what keeps it from running in a spreadsheet is the audit CSV's escaping, tests/security.rs).
#[test]
fn formula_text_in_a_name_is_just_data() {
    let ws = loaded_workspace();
    ws.write("formula.csv", &bill_with_cell("Organization Name", "=cmd|' /C calc'!A0"));
    let run = ws.cmat(&["import", "formula.csv"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let store =
        cmat::store::Store::open(&ws.path().join(".cmat/state.db"), cmat::store::Access::Read)
            .unwrap();
    assert!(store
        .bill_lines()
        .unwrap()
        .iter()
        .any(|line| line.organization_name == "=cmd|' /C calc'!A0"));
}

/// A header and no rows is an empty report, not a broken one: nothing to import.
#[test]
fn a_header_only_report_imports_nothing() {
    let ws = loaded_workspace();
    ws.write("header-only.csv", GOOD_BILL.lines().next().unwrap());
    let before = Untouched::take(&ws);
    let run = ws.cmat(&["import", "header-only.csv"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    header-only.csv: 0 lines, 0 new bills, 0 restated, 0 unchanged
    --- stderr
    ");
    before.assert_same(&ws, "header-only.csv");
}

// ---------------------------------------------------------------------------------------------
// Mapping files: `cmat check` names FILE:LINE:COL; `plan` refuses to plan from them; neither
// rewrites a mapping file.

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn malformed_mappings_are_located_and_left_alone() {
    insta::glob!("bad_input/mappings/*", |case| {
        let name = file_name(case);
        let ws = loaded_workspace();
        std::fs::remove_dir_all(ws.path().join("mappings")).unwrap();
        copy_dir(case, &ws.path().join("mappings"));
        let before = Untouched::take(&ws);

        let check = ws.cmat(&["check"]);
        assert_eq!(check.status, 1, "{name}: {}", check.stderr);
        let first = check.stderr.lines().next().unwrap_or_default().to_string();
        assert!(
            first.starts_with("mappings/")
                && first.contains(".cmat:")
                && first.contains(": error: "),
            "{name}: {first}"
        );
        insta::assert_snapshot!("mapping", transcript(&check));

        let plan = ws.cmat(&["plan"]);
        assert_eq!(plan.status, 1, "{name}: {}", plan.stderr);
        assert!(plan.stderr.contains(&first), "{name}: {}", plan.stderr);
        assert!(plan.stdout.is_empty(), "{name}: {}", plan.stdout);
        before.assert_same(&ws, &name);
    });
}

// ---------------------------------------------------------------------------------------------
// cmat.toml: refused before any request, with file, line and column.

#[test]
fn malformed_configuration_is_refused_before_any_request() {
    insta::glob!("bad_input/config/*", |path| {
        let name = file_name(path);
        let ws = loaded_workspace();
        std::fs::copy(path, ws.path().join("cmat.toml")).unwrap();
        let before = Untouched::take(&ws);
        let run = ws.cmat_with_env(&["pull", "autotask"], &CREDENTIALS);
        assert_eq!(run.status, 1, "{}", run.stderr);
        assert!(run.stderr.starts_with("error: [WS]/cmat.toml:"), "{}", run.stderr);
        insta::assert_snapshot!("config", transcript(&run));
        before.assert_same(&ws, &name);
    });
}

// ---------------------------------------------------------------------------------------------
// Saved plans: `cmat apply plan.json` refuses a malformed plan and writes nothing to Autotask.

fn pulled_workspace(sim: &SimHandle) -> TestWorkspace {
    let ws = loaded_workspace();
    ws.write("cmat.toml", &format!("[autotask]\nbase_url = \"{}\"\n", sim.base_url()));
    let run = ws.cmat_with_env(&["pull", "autotask"], &CREDENTIALS);
    assert_eq!(run.status, 0, "{}", run.stderr);
    ws
}

#[test]
fn malformed_plans_are_refused_and_nothing_is_written() {
    let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
    let ws = pulled_workspace(&sim);
    let sim_state = sim.state_json();
    insta::glob!("bad_input/plans/*", |path| {
        let name = file_name(path);
        std::fs::copy(path, ws.path().join("plan.json")).unwrap();
        let before = Untouched::take(&ws);
        let run = ws.cmat_with_env(&["apply", "plan.json", "--auto-approve"], &CREDENTIALS);
        assert_eq!(run.status, 1, "{}", run.stderr);
        assert!(run.stderr.starts_with("error: plan.json: "), "{}", run.stderr);
        insta::assert_snapshot!("plan", transcript(&run));
        before.assert_same(&ws, &name);
    });
    assert_eq!(sim.counters().writes, 0, "a malformed plan sent a write");
    assert_eq!(sim.state_json(), sim_state);
}
