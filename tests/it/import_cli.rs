//! `cmat import` and `cmat status` run as a user runs them.

use crate::harness;

use crate::harness::{Run, SimWorkspace, TestWorkspace};
use cmat::store::{Access, Store};

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
        // `;`-separated with `.` decimals: SPEC's `;` dialect has decimal commas.
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

// ---------------------------------------------------------------------------------------------
// The report as users really have it (issue #16): the .xlsx Cloudmore sends, CSV re-saved by
// Excel in a European locale, an export without the link column, NCE credits.

/// The columns holding numbers, and the one holding the date, in the fixtures' header.
const NUMBER_COLUMNS: [&str; 8] = [
    "Quantity",
    "Unit Cost Price",
    "Unit Sales Price",
    "Total Cost",
    "Total Sales",
    "Margin Amount",
    "Margin Percentage",
    "AutotaskCompanyID",
];

fn records(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let bytes = fixture(name);
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    let header = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

fn write_csv(header: &[String], rows: &[Vec<String>], separator: u8) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().delimiter(separator).from_writer(Vec::new());
    writer.write_record(header).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

/// `;`-separated with decimal commas, as Excel saves "CSV" in a German or Swedish locale.
fn semicolon_version(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, mut rows) = records(name);
    for row in &mut rows {
        for (cell, column) in row.iter_mut().zip(&header) {
            if NUMBER_COLUMNS.contains(&column.as_str()) {
                *cell = cell.replace('.', ",");
            }
        }
    }
    (header, rows)
}

/// The issue #16 fixtures are derived from `bill-2026-11-01.csv`; this test holds the committed
/// CSV files equal to what the derivation gives. With `CMAT_REGENERATE_FIXTURES=1` it writes
/// them (and the workbook) instead, for when the source bill changes.
#[test]
fn derived_fixtures_match_their_source_bill() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut derived: Vec<(&str, Vec<u8>)> = Vec::new();
    let (header, rows) = semicolon_version("bill-2026-11-01.csv");
    derived.push(("bill-2026-11-01-semicolon.csv", write_csv(&header, &rows, b';')));

    // Windows-1252: a small bill of an organization with a non-ASCII name.
    let mut small: Vec<Vec<String>> = rows.iter().take(3).cloned().collect();
    let organization = header.iter().position(|c| c == "Organization Name").unwrap();
    for row in &mut small {
        row[organization] = "Müller & Söhne GmbH".into();
    }
    let text = String::from_utf8(write_csv(&header, &small, b';')).unwrap();
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    derived.push(("bill-2026-11-01-windows-1252.csv", bytes.into_owned()));

    // Without "Include organization custom properties".
    let (header, rows) = records("bill-2026-11-01.csv");
    let link = header.iter().position(|c| c == "AutotaskCompanyID").unwrap();
    let strip = |row: &Vec<String>| {
        row.iter().enumerate().filter(|(i, _)| *i != link).map(|(_, c)| c.clone()).collect()
    };
    let without: Vec<Vec<String>> = rows.iter().map(strip).collect();
    derived.push(("bill-without-link-column.csv", write_csv(&strip(&header), &without, b',')));

    if std::env::var_os("CMAT_REGENERATE_FIXTURES").is_some() {
        for (name, bytes) in &derived {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        write_xlsx(&header, &rows, &dir.join("bill-2026-11-01.xlsx"));
        return;
    }
    for (name, bytes) in &derived {
        let committed = std::fs::read(dir.join(name)).unwrap();
        assert!(committed == *bytes, "fixtures/{name} differs from its derivation (regenerate with CMAT_REGENERATE_FIXTURES=1)");
    }
}

/// The bill as Cloudmore's workbook holds it: a first sheet without the report, then the
/// report with typed cells (dates as dates, amounts as numbers).
fn write_xlsx(header: &[String], rows: &[Vec<String>], path: &std::path::Path) {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut workbook = Workbook::new();
    let about = workbook.add_worksheet();
    about.set_name("About").unwrap();
    about.write_string(0, 0, "General Billing Report").unwrap();
    about.write_string(1, 0, "Generated by Cloudmore").unwrap();
    let sheet = workbook.add_worksheet();
    sheet.set_name("General Billing Report").unwrap();
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    for (col, name) in header.iter().enumerate() {
        sheet.write_string(0, col as u16, name).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (col, (cell, name)) in row.iter().zip(header).enumerate() {
            let col = col as u16;
            if cell.is_empty() {
                continue;
            }
            if name == "Billing Date" {
                let (y, rest) = cell.split_once('-').unwrap();
                let (m, d) = rest.split_once('-').unwrap();
                let date = ExcelDateTime::from_ymd(
                    y.parse().unwrap(),
                    m.parse().unwrap(),
                    d.parse().unwrap(),
                )
                .unwrap();
                sheet.write_datetime_with_format(r, col, &date, &date_format).unwrap();
            } else if NUMBER_COLUMNS.contains(&name.as_str()) {
                sheet.write_number(r, col, cell.parse::<f64>().unwrap()).unwrap();
            } else {
                sheet.write_string(r, col, cell).unwrap();
            }
        }
    }
    workbook.save(path).unwrap();
}

/// The committed CSV fixtures are what `regenerate_fixtures` writes.
#[test]
fn the_dialect_fixtures_are_the_november_bill() {
    let (header, rows) = semicolon_version("bill-2026-11-01.csv");
    assert_eq!(write_csv(&header, &rows, b';'), fixture("bill-2026-11-01-semicolon.csv"));
}

/// The default rules, in the workspace the fixtures were copied to.
fn init(ws: &TestWorkspace) {
    let run = ws.cmat(&[
        "init",
        ".",
        "--service-billing-code",
        "29682801",
        "--product-billing-code",
        "29682802",
        "--sla",
        "1",
    ]);
    assert_eq!(run.status, 0, "{}", transcript(&run));
}

/// A workspace against a fresh simulator with `file` imported and Autotask pulled (a plan is
/// made against what Autotask holds, its picklists included).
fn imported_and_pulled(file: &str) -> SimWorkspace {
    let sw = SimWorkspace::start();
    let base = file.rsplit('/').next().unwrap();
    std::fs::write(sw.ws.path().join(base), fixture(file)).unwrap();
    let run = sw.cmat(&["import", base]);
    assert_eq!(run.status, 0, "{}", transcript(&run));
    sw.pull();
    sw
}

fn digest_and_plan(file: &str) -> (String, String) {
    let sw = imported_and_pulled(file);
    (contents(&sw.ws).0, sw.ok(&["plan", "--format", "json"]).stdout)
}

/// The same bill from the workbook, from Cloudmore's CSV and from a `;`/decimal-comma re-save
/// gives the same inputs digest and the same plan.
#[test]
fn the_same_bill_from_xlsx_and_csv_gives_the_same_digest_and_plan() {
    let mut results = Vec::new();
    for file in ["bill-2026-11-01.csv", "bill-2026-11-01.xlsx", "bill-2026-11-01-semicolon.csv"] {
        results.push((file, digest_and_plan(file)));
    }
    let (_, (digest, plan)) = &results[0];
    assert!(plan.contains("\"changes\""), "{plan}");
    for (file, (other_digest, other_plan)) in &results[1..] {
        assert_eq!(other_digest, digest, "{file}");
        // The plan's inputs digest is the same; so is every change.
        let same = |plan: &str, name: &str| strip_times(&plan.replace(name, "BILL"));
        assert_eq!(same(other_plan, file), same(plan, results[0].0), "{file}");
    }
}

/// A plan's creation time differs from run to run.
fn strip_times(plan: &str) -> String {
    plan.lines()
        .filter(|l| !l.contains("\"created_at\"") && !l.contains("\"generated_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_workbook_imports_with_typed_cells() {
    let ws = workspace_with(&["bill-2026-11-01.xlsx"]);
    let run = ws.cmat(&["import", "bill-2026-11-01.xlsx"]);
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    bill-2026-11-01.xlsx: 63 lines, 5 new bills, 0 restated, 0 unchanged
    --- stderr
    ");
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    let lines = store.bill_lines().unwrap();
    assert_eq!(lines[0].billing_date.to_string(), "2026-11-01");
    assert_eq!(lines[0].payment_frequency, "Monthly");
    assert_eq!(lines[0].organization_currency_code, "EUR");
}

#[test]
fn a_bad_workbook_row_names_the_sheet_and_row() {
    let (header, mut rows) = records("bill-2026-11-01.csv");
    rows.truncate(3);
    rows[1][7] = "many".into(); // Quantity as text
    let ws = TestWorkspace::new();
    write_xlsx_with_text_quantity(&header, &rows, &ws.path().join("bad.xlsx"));
    let run = ws.cmat(&["import", "bad.xlsx"]);
    insta::assert_snapshot!(transcript(&run), @r#"
    status: 1
    --- stdout
    --- stderr
    error: bad.xlsx: 1 malformed row, nothing imported
    bad.xlsx:General Billing Report:3: Quantity "many" is not a decimal number
    "#);
}

fn write_xlsx_with_text_quantity(header: &[String], rows: &[Vec<String>], path: &std::path::Path) {
    // Like write_xlsx, but a Quantity that does not parse is written as text.
    let fixed: Vec<Vec<String>> = rows.to_vec();
    use rust_xlsxwriter::Workbook;
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("General Billing Report").unwrap();
    for (col, name) in header.iter().enumerate() {
        sheet.write_string(0, col as u16, name).unwrap();
    }
    for (r, row) in fixed.iter().enumerate() {
        for (col, (cell, name)) in row.iter().zip(header).enumerate() {
            match cell.parse::<f64>() {
                Ok(n) if NUMBER_COLUMNS.contains(&name.as_str()) => {
                    sheet.write_number(r as u32 + 1, col as u16, n).unwrap()
                }
                _ => sheet.write_string(r as u32 + 1, col as u16, cell).unwrap(),
            };
        }
    }
    workbook.save(path).unwrap();
}

/// A byte that is not UTF-8 at the start of the file: Excel's "CSV" on Western-European
/// Windows, read as Windows-1252 (it was refused before issue #16).
#[test]
fn a_file_that_is_not_utf8_is_read_as_windows_1252() {
    let ws = workspace_with(&["bad/invalid-utf8.csv"]);
    let run = ws.cmat(&["import", "invalid-utf8.csv"]);
    assert_eq!(run.status, 0, "{}", transcript(&run));
}

#[test]
fn a_windows_1252_csv_is_read() {
    let ws = workspace_with(&["bill-2026-11-01-windows-1252.csv"]);
    let run = ws.cmat(&["import", "bill-2026-11-01-windows-1252.csv"]);
    assert_eq!(run.status, 0, "{}", transcript(&run));
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    assert_eq!(store.bills().unwrap()[0].key.organization_name, "Müller & Söhne GmbH");
    assert_eq!(store.bill_lines().unwrap()[0].unit_cost_price.to_string(), "18.5400");
}

#[test]
fn ambiguous_dates_and_dialects_are_refused_naming_what_was_found() {
    let ws = TestWorkspace::new();
    let (header, mut rows) = records("bill-2026-11-01.csv");
    rows.truncate(2);
    rows[0][0] = "25/11/2026".into(); // unambiguous: read
    rows[1][0] = "01/11/2026".into(); // 1 November or 11 January: refused
    ws.write("dates.csv", std::str::from_utf8(&write_csv(&header, &rows, b',')).unwrap());
    // As many of the report's columns split by ',' as by ';'.
    ws.write("tie.csv", "Billing Date;Service Name,Organization Name;Product Name,Quantity\n");
    let dates = ws.cmat(&["import", "dates.csv"]);
    let tie = ws.cmat(&["import", "tie.csv"]);
    insta::assert_snapshot!(format!("{}\n{}", transcript(&dates), transcript(&tie)), @r#"
    status: 1
    --- stdout
    --- stderr
    error: dates.csv: 1 malformed row, nothing imported
    dates.csv:3: Billing Date "01/11/2026" is ambiguous: day and month could be either way round (export the report as .xlsx, or with ISO dates YYYY-MM-DD)

    status: 1
    --- stdout
    --- stderr
    error: tie.csv: cannot tell the separator: the header names 1 of the report's columns split by ',' and as many split by ';'; import the report as Cloudmore sends it (.xlsx), or save it from Excel as "CSV UTF-8 (Comma delimited)"
    "#);
}

#[test]
fn an_export_without_the_link_column_is_refused_when_the_rules_use_it() {
    let ws = workspace_with(&["bill-without-link-column.csv"]);
    init(&ws);
    let run = ws.cmat(&["import", "bill-without-link-column.csv"]);
    insta::assert_snapshot!(transcript(&run), @r#"
    status: 1
    --- stdout
    --- stderr
    error: bill-without-link-column.csv: the rules link organizations to companies by the column "AutotaskCompanyID" (`company column` in the mappings), and this export has no such column; export the General Billing Report again with "Include organization custom properties" ticked, nothing imported
    "#);
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    assert!(store.bills().unwrap().is_empty());
    // Without rules that use the column, the same file is just data.
    let bare = workspace_with(&["bill-without-link-column.csv"]);
    assert_eq!(bare.cmat(&["import", "bill-without-link-column.csv"]).status, 0);
}

#[test]
fn nce_credits_net_within_their_product_and_manual_lines_are_shown_not_billed() {
    let sw = imported_and_pulled("bill-2026-11-01-nce-credits.csv");
    let plan = sw.cmat(&["plan"]);
    let warnings: Vec<&str> = plan
        .stdout
        .lines()
        .chain(plan.stderr.lines())
        .filter(|l| l.contains("net to") || l.contains("manual billing"))
        .collect();
    insta::assert_snapshot!(warnings.join("\n"));
    // 25 licences less an NCE reduction of 5: 20 units, the credit netted in its product.
    assert!(
        plan.stdout.contains("CFQ7TTC0LCHC (Microsoft 365 Business Premium): 20 units"),
        "{}",
        plan.stdout
    );
}

/// Bills are keyed on the Customer Number: an organization renamed in Cloudmore between two
/// exports keeps its bill (no double count), under its new name.
#[test]
fn a_renamed_organization_keeps_its_bill() {
    let ws = workspace_with(&["bill-2026-10-01.csv"]);
    let renamed = String::from_utf8(fixture("bill-2026-10-01.csv"))
        .unwrap()
        .replace("Contoso Ltd", "Contoso Group");
    ws.write("renamed.csv", &renamed);
    assert_eq!(ws.cmat(&["import", "bill-2026-10-01.csv"]).status, 0);
    let before = contents(&ws);
    let run = ws.cmat(&["import", "renamed.csv"]);
    // Restated (its subscriptions' names carry the organization's name), not a second bill.
    insta::assert_snapshot!(transcript(&run), @r"
    status: 0
    --- stdout
    renamed.csv: 57 lines, 0 new bills, 1 restated, 4 unchanged
      restated: Contoso Group 2026-10-01
    --- stderr
    ");
    let after = contents(&ws);
    assert_eq!((after.1, after.2), (before.1, before.2), "no bill and no line added");
    let status = ws.cmat(&["status"]);
    assert!(
        status.stdout.contains("Contoso Group") && !status.stdout.contains("Contoso Ltd"),
        "{}",
        status.stdout
    );
}

/// `sync` names a bill dated before the 8th that lacks the NCE lines the month before had
/// (Microsoft's NCE data lands between the 6th and the 8th).
#[test]
fn sync_warns_about_a_bill_before_the_nce_data_landed() {
    let tenant = harness::SimWorkspace::start();
    tenant.import("bill-2026-11-01.csv");
    let (header, rows) = records("bill-2026-11-01.csv");
    let december: Vec<Vec<String>> = rows
        .into_iter()
        .filter(|row| row[1] != "Microsoft NCE")
        .map(|mut row| {
            row[0] = "2026-12-01".into();
            row
        })
        .collect();
    let text = String::from_utf8(write_csv(&header, &december, b',')).unwrap();
    tenant.ws.write("bill-2026-12-01.csv", &text);
    let run = tenant.cmat(&["sync", "--dry-run", "--import", "bill-2026-12-01.csv"]);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("NCE")).collect();
    insta::assert_snapshot!(warnings.join("\n"), @r#"
    warning: organization "Contoso Ltd": the 2026-12-01 bill has no Microsoft NCE lines, though the bill of 2026-11 had 2; Microsoft's NCE billing lands between the 6th and the 8th, so this bill is most likely incomplete (pull again after the 8th)
    warning: organization "Fabrikam Inc": the 2026-12-01 bill has no Microsoft NCE lines, though the bill of 2026-11 had 2; Microsoft's NCE billing lands between the 6th and the 8th, so this bill is most likely incomplete (pull again after the 8th)
    warning: organization "Northwind Traders": the 2026-12-01 bill has no Microsoft NCE lines, though the bill of 2026-11 had 2; Microsoft's NCE billing lands between the 6th and the 8th, so this bill is most likely incomplete (pull again after the 8th)
    "#);

    // With `[sync] wait_for_nce_data`, nothing reaches Autotask until the bill is whole.
    let config = tenant.ws.read("cmat.toml");
    tenant.ws.write("cmat.toml", &format!("{config}\n[sync]\nwait_for_nce_data = true\n"));
    let requests = tenant.sim.request_log().len();
    let run = tenant.cmat(&["sync", "--auto-approve"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Waiting for Cloudmore's NCE data"), "{}", run.stdout);
    assert_eq!(tenant.sim.request_log().len(), requests, "Autotask was not contacted");
    assert_eq!(tenant.writes(), 0);
}

/// The November bill with `rows` of padding (copies of its first line under other
/// subscriptions) before an organization whose name has accents: its bytes, in UTF-8.
fn bill_with_late_accents(padding: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, rows) = records("bill-2026-11-01.csv");
    let subscription = header.iter().position(|h| h == "Subscription ID").unwrap();
    let organization = header.iter().position(|h| h == "Organization Name").unwrap();
    let number = header.iter().position(|h| h == "Customer Number").unwrap();
    let mut out = Vec::new();
    for index in 0..padding {
        let mut row = rows[0].clone();
        row[subscription] = format!("00000000-0000-4000-8000-{index:012}");
        out.push(row);
    }
    let mut accented = rows[1].clone();
    accented[organization] = "Société Générale Müller".into();
    accented[number] = "CM-999".into();
    out.push(accented);
    out.extend(rows[2..].iter().cloned());
    (header, out)
}

#[test]
fn a_windows_1252_csv_whose_first_accent_is_past_300_kb_imports_as_its_utf8_twin() {
    let (header, rows) = bill_with_late_accents(1000);
    let utf8 = write_csv(&header, &rows, b',');
    let accent = utf8.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    assert!(accent > 300 * 1024, "the first accent is past the first read buffer: {accent}");
    let (windows_1252, _, lossy) =
        encoding_rs::WINDOWS_1252.encode(std::str::from_utf8(&utf8).unwrap());
    assert!(!lossy && std::str::from_utf8(&windows_1252).is_err());

    let a = TestWorkspace::new();
    std::fs::write(a.path().join("bill.csv"), &utf8).unwrap();
    let b = TestWorkspace::new();
    std::fs::write(b.path().join("bill.csv"), &windows_1252).unwrap();
    for ws in [&a, &b] {
        let run = ws.cmat(&["import", "bill.csv"]);
        assert_eq!(run.status, 0, "{}", transcript(&run));
    }
    assert_eq!(contents(&a), contents(&b));
    let store = Store::open(&b.path().join(".cmat/state.db"), Access::Read).unwrap();
    let names: Vec<String> =
        store.bills().unwrap().into_iter().map(|b| b.key.organization_name).collect();
    assert!(names.iter().any(|name| name == "Société Générale Müller"), "{names:?}");
}

#[test]
fn a_utf8_csv_with_a_windows_1252_row_is_refused_naming_the_row_and_stores_nothing() {
    let (header, rows) = bill_with_late_accents(3);
    let mut bytes = write_csv(&header, &rows, b',');
    // Row 9 (the header is row 1) pasted from a Windows-1252 file: "Zürich" as 1252 bytes.
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let name = lines[8].iter().position(|b| *b == b',').unwrap();
    lines[8].splice(name..name, b" Z\xfcrich".iter().copied());
    bytes = lines.join(&b'\n');
    let ws = TestWorkspace::new();
    std::fs::write(ws.path().join("mixed.csv"), &bytes).unwrap();
    let run = ws.cmat(&["import", "mixed.csv"]);
    insta::assert_snapshot!(transcript(&run), @r#"
    status: 1
    --- stdout
    --- stderr
    error: mixed.csv: 1 malformed row, nothing imported
    mixed.csv:9: byte 0xFC is not UTF-8, but the file is UTF-8 (row 5 has UTF-8 characters): mixed encodings, e.g. a row pasted from a Windows-1252 file; save the file again as "CSV UTF-8"
    "#);
    assert!(!ws.path().join(".cmat/state.db").exists() || contents(&ws).1 == 0);

    // The other way round: a Windows-1252 file with a row in UTF-8.
    let utf8 = write_csv(&header, &rows, b',');
    let (windows_1252, _, _) =
        encoding_rs::WINDOWS_1252.encode(std::str::from_utf8(&utf8).unwrap());
    let mut lines: Vec<Vec<u8>> = windows_1252.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    lines[8].splice(name..name, " Zürich".bytes());
    std::fs::write(ws.path().join("mixed-1252.csv"), lines.join(&b'\n')).unwrap();
    let run = ws.cmat(&["import", "mixed-1252.csv"]);
    insta::assert_snapshot!(transcript(&run), @r#"
    status: 1
    --- stdout
    --- stderr
    error: mixed-1252.csv: 1 malformed row, nothing imported
    mixed-1252.csv:9: the row is UTF-8, but the file is Windows-1252 (as row 5 shows): mixed encodings; save the file again as "CSV UTF-8"
    "#);
    assert!(!ws.path().join(".cmat/state.db").exists() || contents(&ws).1 == 0);
}
