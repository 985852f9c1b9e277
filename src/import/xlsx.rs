//! The `.xlsx` reader (crate calamine): the General Billing Report as Cloudmore delivers it.
//!
//! The first sheet whose header row (within its first [`HEADER_SEARCH_ROWS`] rows) names the
//! report's required columns is read; rows are streamed cell by cell
//! (`worksheet_cells_reader`: the sheet's XML is never held whole; the workbook's shared-string
//! table is, as calamine needs it), so memory stays flat in the number of rows.
//!
//! Cells keep their types: a date cell is a date (no locale guessing), a number cell is a
//! number. Excel stores numbers as IEEE doubles; calamine hands them over as `f64`, and cmat
//! takes the *shortest text that reads back as the same double* (Rust's `{}` for `f64`: never an
//! exponent) as an exact `Decimal`. That is the number Excel itself displays at full precision
//! ("20.6" for the double nearest 20.6), never a rounding to some number of places. A text cell
//! holding a number is read as CSV text is (`.` decimals).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx, XlsxCellReader};
use chrono::{NaiveDate, Timelike};
use rust_decimal::Decimal;

use super::row::{known_columns, Cell, DecimalSeparator, HeaderError, Layout};
use super::{ImportError, ImportOptions, Sink};
use crate::store::{ImportSummary, Store};

/// How far down a sheet the header row may be (a title row or two above it are skipped).
pub const HEADER_SEARCH_ROWS: u32 = 20;

pub(super) fn import(
    store: &mut Store,
    path: &Path,
    display_name: &str,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let file = || display_name.to_string();
    let bad = |message: String| ImportError::Workbook { file: file(), message };
    let mut workbook: Xlsx<BufReader<File>> =
        calamine::open_workbook(path).map_err(|err: calamine::XlsxError| bad(err.to_string()))?;
    let sheets = workbook.sheet_names();
    for sheet in &sheets {
        let mut cells =
            workbook.worksheet_cells_reader(sheet).map_err(|err| bad(err.to_string()))?;
        let place = Place { sheet, file: display_name, options };
        match place.read(&mut cells, &mut *store)? {
            State::Reading { sink, .. } => return sink.finish(),
            // The sheet did not hold the report: the store was not taken.
            State::Searching | State::NotThisSheet => continue,
        }
    }
    Err(ImportError::NoReportSheet { file: file(), sheets })
}

/// The sheet being read, and what its rows' errors and lines name.
struct Place<'a> {
    sheet: &'a str,
    file: &'a str,
    options: &'a ImportOptions,
}

impl Place<'_> {
    /// Streams the sheet's cells, row by row, through [`State::row`]: the header is looked
    /// for in the first [`HEADER_SEARCH_ROWS`] rows, then the rows after it are stored.
    fn read<'s, RS: std::io::Read + std::io::Seek>(
        &self,
        cells: &mut XlsxCellReader<'_, RS>,
        store: &'s mut Store,
    ) -> Result<State<'s>, ImportError> {
        let mut row_cells: Vec<Cell<'static>> = Vec::new();
        let mut current: Option<u32> = None;
        let mut state = State::Searching;
        let mut store_slot = Some(store);
        loop {
            let next = cells.next_cell().map_err(|err| ImportError::Workbook {
                file: self.file.to_string(),
                message: format!("sheet {:?}: {err}", self.sheet),
            })?;
            let position = next.as_ref().map(|c| c.get_position());
            // A row is complete when the next cell is on another row (or there is none).
            if current.is_some() && position.map(|p| p.0) != current {
                let row = current.unwrap_or(0);
                state = state.row(&mut store_slot, &row_cells, row + 1, self)?;
                if let State::NotThisSheet = state {
                    return Ok(state);
                }
                row_cells.clear();
            }
            let Some(cell) = next else { return Ok(state) };
            let (row, column) = cell.get_position();
            if let State::Searching = state {
                if row >= HEADER_SEARCH_ROWS {
                    return Ok(State::NotThisSheet);
                }
            }
            current = Some(row);
            let column = column as usize;
            if row_cells.len() <= column {
                row_cells.resize(column + 1, Cell::Empty);
            }
            row_cells[column] = convert(cell.get_value());
        }
    }
}

// One value per sheet being read, moved from row to row: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum State<'s> {
    Searching,
    NotThisSheet,
    Reading { layout: Layout, sink: Sink<'s> },
}

impl<'s> State<'s> {
    /// Takes one complete row (`row` counted from 1, as Excel shows it).
    fn row(
        self,
        store: &mut Option<&'s mut Store>,
        cells: &[Cell<'static>],
        row: u32,
        place: &Place<'_>,
    ) -> Result<State<'s>, ImportError> {
        let blank = cells.iter().all(|c| match c {
            Cell::Empty => true,
            Cell::Text(t) => t.trim().is_empty(),
            _ => false,
        });
        match self {
            State::Searching if blank => Ok(State::Searching),
            State::Searching => State::header(store, cells, row, place),
            State::NotThisSheet => Ok(State::NotThisSheet),
            State::Reading { layout, mut sink } => {
                if !blank {
                    let source = format!("{}:{}", place.file, place.sheet);
                    let line = layout.parse(cells, &source, u64::from(row));
                    sink.take(u64::from(row), line)?;
                }
                Ok(State::Reading { layout, sink })
            }
        }
    }

    /// A non-blank row while searching: the header when it names at least three of the
    /// report's columns (then the store is taken and reading starts), otherwise a title row.
    fn header(
        store: &mut Option<&'s mut Store>,
        cells: &[Cell<'static>],
        row: u32,
        place: &Place<'_>,
    ) -> Result<State<'s>, ImportError> {
        let (file, sheet) = (place.file, place.sheet);
        let names: Vec<String> = cells
            .iter()
            .map(|c| match c {
                Cell::Text(t) => t.to_string(),
                _ => String::new(),
            })
            .collect();
        if known_columns(&names) < 3 {
            return Ok(State::Searching);
        }
        let layout =
            Layout::from_names(&names, DecimalSeparator::Point).map_err(|err| match err {
                HeaderError::Duplicate(column) => ImportError::DuplicateColumn {
                    file: format!("{file}:{sheet}"),
                    row: u64::from(row),
                    column,
                },
                HeaderError::Missing(columns) => ImportError::MissingColumns {
                    file: format!("{file}:{sheet}"),
                    columns,
                    hint: None,
                },
            })?;
        super::check_link_column(&names, place.options, file)?;
        let store = store.take().ok_or_else(|| ImportError::Workbook {
            file: file.to_string(),
            message: "a second header row".into(),
        })?;
        let sink = Sink::begin(store, file, Some(sheet.to_string()))?;
        Ok(State::Reading { layout, sink })
    }
}

/// A workbook cell as the row reader takes it.
fn convert(value: &DataRef<'_>) -> Cell<'static> {
    match value {
        DataRef::Empty => Cell::Empty,
        DataRef::String(text) => Cell::Text(text.clone().into()),
        DataRef::SharedString(text) => Cell::Text(text.to_string().into()),
        DataRef::Int(value) => Cell::Number(Decimal::from(*value)),
        DataRef::Float(value) => float(*value),
        DataRef::DateTime(value) => {
            if !value.is_datetime() {
                return Cell::Bad("is a duration, expected a date or a number".into());
            }
            match value.as_datetime() {
                Some(at) if at.time().num_seconds_from_midnight() == 0 && at.nanosecond() == 0 => {
                    Cell::Date(at.date())
                }
                Some(at) => Cell::Bad(format!("is a date with a time ({at}), expected a date")),
                None => Cell::Bad("is a date Excel cannot show".into()),
            }
        }
        DataRef::DateTimeIso(text) => {
            match text.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) {
                Some(date)
                    if text.len() == 10
                        || text[10..]
                            .trim_start_matches('T')
                            .trim_matches(['0', ':', '.'])
                            .is_empty() =>
                {
                    Cell::Date(date)
                }
                _ => Cell::Bad(format!("is the date-time {text:?}, expected a date")),
            }
        }
        DataRef::DurationIso(text) => Cell::Bad(format!("is the duration {text:?}")),
        DataRef::Bool(value) => Cell::Bad(format!(
            "is {}, expected text or a number",
            if *value { "TRUE" } else { "FALSE" }
        )),
        DataRef::Error(error) => Cell::Bad(format!("is the Excel error {error}")),
    }
}

/// A number cell: the shortest text that reads back as the same double, as an exact Decimal
/// (see the module's comment); one Decimal cannot hold is an error, never a rounding.
pub(super) fn float(value: f64) -> Cell<'static> {
    if !value.is_finite() {
        return Cell::Bad(format!("is {value}, not a number"));
    }
    let text = format!("{value}");
    match super::row::parse_exact_decimal("the number", &text) {
        Ok(decimal) => Cell::Number(decimal),
        Err(_) => Cell::Bad(format!("{text} has more digits than cmat can keep exactly")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_their_shortest_text() {
        let n = |f: f64| match float(f) {
            Cell::Number(d) => d.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(n(20.6), "20.6");
        assert_eq!(n(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(n(576.8), "576.8");
        assert_eq!(n(-3.0), "-3");
        assert_eq!(n(29683501.0), "29683501");
        assert_eq!(n(0.0001), "0.0001");
        assert!(matches!(float(1e40), Cell::Bad(_)));
        assert!(matches!(float(f64::NAN), Cell::Bad(_)));
    }
}
