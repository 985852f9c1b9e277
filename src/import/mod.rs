//! `cmat import`: Cloudmore's General Billing Report into the state database (SPEC.md, "Input").
//!
//! - `.xlsx` (how Cloudmore delivers it): [`xlsx`], typed cells, the first sheet with the
//!   report's header.
//! - CSV in the dialects people have: [`csv`] (UTF-8 with or without a BOM, `;` with decimal
//!   commas, Windows-1252), refusing an ambiguous one with what it found and how to export
//!   instead.
//! - Columns are matched by name (trimmed, case-insensitive) in any order; extra columns are
//!   ignored; each row becomes a [`BillLine`](cmat_engine::billing::BillLine) in [`row`].
//!
//! Rows are streamed: each line goes to the store's [`Import`] as it is read, so memory stays
//! flat whatever the size. Every malformed row is reported as `FILE:ROW: reason` (for a
//! workbook `FILE:SHEET:ROW`; ROW is the line in the file or the sheet's row, the header being
//! 1 in a plain export) and a file with any of them imports nothing: the store's transaction is
//! rolled back.
//!
//! [`Import`]: crate::store::Import

mod csv;
mod records;
mod row;
mod xlsx;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::store::{Import, ImportSummary, Store, StoreError};
use cmat_engine::billing::BillLine;

pub use row::parse_exact_decimal;
pub use xlsx::HEADER_SEARCH_ROWS;

/// How many bad rows an error lists before "… and N more".
pub const MAX_LISTED_ROWS: usize = 50;

/// What the workspace's rules require of a report.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The column the rules link companies by (`company column "…"`): the import is refused
    /// when the file lacks it.
    pub link_column: Option<String>,
}

/// One malformed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line in the file where the row starts (the header is 1), or the sheet's row.
    pub row: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read")]
    Open { file: String, source: std::io::Error },
    #[error("{file}:{row}: cannot read")]
    Read { file: String, row: u64, source: ::csv::Error },
    #[error(
        "{file}: the file is empty; expected a Cloudmore General Billing Report with a header row"
    )]
    Empty { file: String },
    #[error("{file}: the file is UTF-16; export the report as UTF-8")]
    Utf16 { file: String },
    #[error("{file}:{row}: the header is not valid UTF-8; export the report as UTF-8")]
    HeaderNotUtf8 { file: String, row: u64 },
    #[error("{file}: {found}; import the report as Cloudmore sends it (.xlsx), or save it from Excel as \"CSV UTF-8 (Comma delimited)\"")]
    Dialect { file: String, found: String },
    #[error("{file}: cannot read the workbook: {message}")]
    Workbook { file: String, message: String },
    #[error(
        "{file}: no sheet has the General Billing Report's header row (sheets: {})",
        quoted_list(sheets)
    )]
    NoReportSheet { file: String, sheets: Vec<String> },
    #[error("{file}: missing {} {}{}", plural(columns.len(), "column", "columns"), quoted_list(columns), hint.as_deref().unwrap_or(""))]
    MissingColumns {
        file: String,
        columns: Vec<&'static str>,
        /// Why the columns may be missing (a wrong delimiter), starting with "; ".
        hint: Option<String>,
    },
    #[error("{file}: the rules link organizations to companies by the column \"{column}\" (`company column` in the mappings), and this export has no such column; export the General Billing Report again with \"Include organization custom properties\" ticked, nothing imported")]
    MissingLinkColumn { file: String, column: String },
    #[error("{file}:{row}: column \"{column}\" appears twice in the header")]
    DuplicateColumn { file: String, row: u64, column: &'static str },
    #[error("{}", bad_rows_message(file, sheet.as_deref(), rows, *omitted))]
    BadRows {
        file: String,
        /// The workbook sheet the rows are on.
        sheet: Option<String>,
        /// The first [`MAX_LISTED_ROWS`] bad rows, in file order.
        rows: Vec<RowError>,
        /// How many more bad rows were found but not listed.
        omitted: u64,
    },
    #[error("{file}: cannot store the import")]
    Store { file: String, source: StoreError },
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items.iter().map(|c| format!("\"{}\"", c.as_ref())).collect::<Vec<_>>().join(", ")
}

fn bad_rows_message(file: &str, sheet: Option<&str>, rows: &[RowError], omitted: u64) -> String {
    let total = rows.len() as u64 + omitted;
    let mut text = format!(
        "{file}: {total} malformed {}, nothing imported",
        plural(total as usize, "row", "rows")
    );
    let place = match sheet {
        Some(sheet) => format!("{file}:{sheet}"),
        None => file.to_string(),
    };
    for row in rows {
        text.push_str(&format!("\n{place}:{}: {}", row.row, row.reason));
    }
    if omitted > 0 {
        text.push_str(&format!("\n… and {omitted} more"));
    }
    text
}

/// Imports one report file (`.xlsx` or CSV, told by its content) in one transaction.
/// `display_name` names the file in messages and in each line's source ("bill.csv:17").
pub fn import_file(
    store: &mut Store,
    path: &Path,
    display_name: &str,
) -> Result<ImportSummary, ImportError> {
    import_file_with(store, path, display_name, &ImportOptions::default())
}

/// [`import_file`] holding the file to what the rules need ([`ImportOptions`]).
pub fn import_file_with(
    store: &mut Store,
    path: &Path,
    display_name: &str,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let open = |source| ImportError::Open { file: display_name.to_string(), source };
    let mut file = File::open(path).map_err(open)?;
    let mut magic = [0u8; 4];
    let read = file.read(&mut magic).map_err(open)?;
    // A zip archive: an .xlsx workbook (an .xls or .ods would fail calamine's xlsx reader with
    // its own message).
    if read == 4 && magic == *b"PK\x03\x04" {
        drop(file);
        return xlsx::import(store, path, display_name, options);
    }
    // An OLE2 compound file: the Excel 97–2003 .xls format.
    if read == 4 && magic == [0xd0, 0xcf, 0x11, 0xe0] {
        return Err(ImportError::Workbook {
            file: display_name.to_string(),
            message: "this is the old Excel .xls format; save it as .xlsx (Excel Workbook) or export the report from Cloudmore again".into(),
        });
    }
    let file = File::open(path).map_err(open)?;
    csv::import(store, file, display_name, options)
}

/// A CSV export from any reader (tests, the benchmark).
pub fn import_reader(
    store: &mut Store,
    input: impl Read + Send,
    display_name: &str,
) -> Result<ImportSummary, ImportError> {
    csv::import(store, input, display_name, &ImportOptions::default())
}

/// Refuses a header without the column the rules link companies by.
fn check_link_column(
    names: &[String],
    options: &ImportOptions,
    file: &str,
) -> Result<(), ImportError> {
    let Some(column) = &options.link_column else { return Ok(()) };
    let wanted = row::normalize(column);
    if names.iter().any(|n| row::normalize(n) == wanted) {
        return Ok(());
    }
    Err(ImportError::MissingLinkColumn { file: file.to_string(), column: column.clone() })
}

/// Where rows go: the store's import while every row is good; once one is bad, only the list of
/// bad rows grows (nothing will be imported).
struct Sink<'s> {
    import: Import<'s>,
    file: String,
    sheet: Option<String>,
    listed: Vec<RowError>,
    omitted: u64,
}

impl<'s> Sink<'s> {
    fn begin(store: &'s mut Store, file: &str, sheet: Option<String>) -> Result<Self, ImportError> {
        let import = store
            .begin_import(file)
            .map_err(|source| ImportError::Store { file: file.to_string(), source })?;
        Ok(Sink { import, file: file.to_string(), sheet, listed: Vec::new(), omitted: 0 })
    }

    fn reject(&mut self, row: u64, reason: String) {
        if self.listed.len() < MAX_LISTED_ROWS {
            self.listed.push(RowError { row, reason });
        } else {
            self.omitted += 1;
        }
    }

    /// A good row: stored while no row was bad (once one is, nothing will be imported: the
    /// rows are still checked, no longer stored).
    fn accept(&mut self, encoded: &[u8]) -> Result<(), ImportError> {
        if !self.listed.is_empty() {
            return Ok(());
        }
        self.import
            .add_encoded_line(encoded)
            .map_err(|source| ImportError::Store { file: self.file.clone(), source })
    }

    /// A good row as a line, or [`reject`](Self::reject)ed, as the row parsed.
    fn take(&mut self, row: u64, line: Result<BillLine, String>) -> Result<(), ImportError> {
        match line {
            Ok(line) if self.listed.is_empty() => self
                .import
                .add_line(&line)
                .map_err(|source| ImportError::Store { file: self.file.clone(), source }),
            Ok(_) => Ok(()),
            Err(reason) => {
                self.reject(row, reason);
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<ImportSummary, ImportError> {
        if !self.listed.is_empty() {
            drop(self.import);
            return Err(ImportError::BadRows {
                file: self.file,
                sheet: self.sheet,
                rows: self.listed,
                omitted: self.omitted,
            });
        }
        let file = self.file;
        self.import.finish().map_err(|source| ImportError::Store { file, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Access;

    const HEADER: &str = "Billing Date,Service Name,Broker Name,Organization Name,Customer Number,Product Name,Item Code,Quantity,Unit Cost Price,Unit Sales Price,Total Cost,Total Sales,Currency Code,Product ID,Subscription ID,Subscription Name,AutotaskCompanyID";

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("state.db"), Access::Write).expect("open")
    }

    fn run(input: &str) -> Result<ImportSummary, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        import_reader(&mut store, input.as_bytes(), "bill.csv")
    }

    #[test]
    fn columns_in_any_order_with_extras_and_odd_case() {
        let input = "note, subscription id ,TOTAL SALES,Total Cost,Unit Sales Price,Unit Cost Price,Quantity,Product Name,Organization Name,Service Name,Billing  Date,Currency Code,Extra\n\
                     x,sub-1,20.00,15.00,10.00,7.50,2,M365,Contoso Ltd,Microsoft NCE,2026-10-01,EUR,y\n";
        let summary = run(input).unwrap();
        assert_eq!(summary.lines, 1);
        assert_eq!(summary.new_bills.len(), 1);
    }

    #[test]
    fn every_bad_row_is_listed_and_capped() {
        let mut input = format!("{HEADER}\n");
        for _ in 0..60 {
            input.push_str("2026-10-01,S,B,O,C,P,I,1x,1,1,1,1,EUR,P,S,N,\n");
        }
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, omitted, .. } = &err else { panic!("{err}") };
        assert_eq!(rows.len(), MAX_LISTED_ROWS);
        assert_eq!(*omitted, 10);
        assert_eq!(rows[0].row, 2);
        let text = err.to_string();
        assert!(text.starts_with("bill.csv: 60 malformed rows, nothing imported\nbill.csv:2: Quantity \"1x\" is not a decimal number\n"), "{text}");
        assert!(text.ends_with("\n… and 10 more"), "{text}");
    }

    #[test]
    fn quoted_multiline_cells_keep_the_starting_line() {
        let input = format!(
            "{HEADER}\n2026-10-01,S,B,O,C,\"P\nline two\",I,1,1,1,1,1,EUR,P,S,N,\n2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,N,\n"
        );
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
        assert_eq!(rows[0].row, 4);
    }

    #[test]
    fn rows_are_file_lines_with_crlf_and_blank_lines() {
        let input = format!(
            "{HEADER}\r\n2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,\r\n\r\n2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,\"N\",\r\n"
        );
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
        assert_eq!(
            rows,
            &[RowError { row: 4, reason: "Quantity \"x\" is not a decimal number".into() }]
        );
        let ok = format!("{HEADER}\r\n2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,29683501\r\n\r\n");
        assert_eq!(run(&ok).unwrap().lines, 1);
    }

    /// The csv crate skips empty lines without counting them into the next record's position:
    /// a bad row after a blank line was reported one line early.
    #[test]
    fn rows_are_file_lines_after_empty_lines_and_without_a_final_newline() {
        let good = "2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,";
        let bad = "2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,N,";
        for (input, row) in [
            (format!("\n\n{HEADER}\n{good}\n\n\n{bad}\n"), 7),
            (format!("{HEADER}\n{good}\n\n{bad}"), 4),
            (format!("{HEADER}\n\"{good}\n\n\"\n\n{bad}\n\n"), 6),
            // A quote never closed runs to the end of the file: the row is where it starts.
            (format!("{HEADER}\n{good}\n{bad}\n\"{good}\n{good}\n"), 4),
        ] {
            let err = run(&input).unwrap_err();
            let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
            assert_eq!(rows.last().unwrap().row, row, "{input:?}: {err}");
        }
    }

    #[test]
    fn empty_and_header_only_files() {
        assert!(matches!(run(""), Err(ImportError::Empty { .. })));
        assert!(matches!(run("\n\n"), Err(ImportError::Empty { .. })));
        let summary = run(&format!("{HEADER}\n")).unwrap();
        assert_eq!(summary, ImportSummary::default());
    }

    #[test]
    fn a_semicolon_file_with_decimal_commas_is_read() {
        let row = "2026-10-01;S;B;O;C;P;I;2,5;1,25;1;3,125;2,5;EUR;P;S;N;29683501";
        let summary = run(&format!("{}\n{row}\n", HEADER.replace(',', ";"))).unwrap();
        assert_eq!(summary.lines, 1);
    }

    #[test]
    fn a_manual_line_without_subscription_is_imported() {
        let summary =
            run(&format!("{HEADER}\n2026-10-01,S,B,O,C,Discount,,1,0,-10,0,-10,EUR,,,,29683501\n"))
                .unwrap();
        assert_eq!(summary.lines, 1);
    }

    #[test]
    fn an_old_xls_workbook_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bill.xls");
        std::fs::write(&path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1").unwrap();
        let mut store = store(&dir);
        let err = import_file(&mut store, &path, "bill.xls").unwrap_err();
        assert!(err.to_string().contains("old Excel .xls format"), "{err}");
    }

    #[test]
    fn utf16_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        let err = import_reader(&mut store, &b"\xff\xfeB\x00"[..], "bill.csv").unwrap_err();
        assert!(matches!(err, ImportError::Utf16 { .. }), "{err}");
    }

    proptest::proptest! {
        /// No input makes the reader panic, and a rejected file leaves the store empty.
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = store(&dir);
            let mut input = format!("{HEADER}\n").into_bytes();
            input.extend_from_slice(&body);
            if import_reader(&mut store, &input[..], "bill.csv").is_err() {
                proptest::prop_assert!(store.bills().unwrap().is_empty());
            }
        }
    }
}
