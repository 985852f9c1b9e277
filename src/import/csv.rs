//! The CSV reader: the export as Cloudmore writes it (UTF-8, a BOM accepted, `,`-separated,
//! `.` decimals) and as Excel re-saves it in a European locale (`;`-separated with decimal
//! commas, often Windows-1252). The dialect is decided once, from the start of the file:
//!
//! - encoding: UTF-16 is refused; a UTF-8 BOM, or a start that is valid UTF-8, means UTF-8;
//!   anything else is read as Windows-1252 (Excel's "CSV" on Western-European Windows; every
//!   byte is a character, so it cannot fail). A UTF-8 file with a bad byte later on still has
//!   that row reported.
//! - separator: the header split by `,`, by `;` and by tab; the one naming more of the report's
//!   columns wins; a tie is refused ([`ImportError::Dialect`]), as is a tab-separated file.
//! - decimals: `,`-separated ⇒ `.`; `;`-separated ⇒ `,` (SPEC.md: "`;` separator ⇒ decimal
//!   comma"); a `.` in a number of a `;` file is an error naming the row, never a guess.
//!
//! The file is streamed: one reused record, each line handed to the store as it is read.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use super::records::Records;
use super::row::{known_columns, normalize, Cell, DecimalSeparator, HeaderError, Layout};
use super::{ImportError, ImportOptions, Sink};
use crate::store::{encode_line, ImportSummary, Store};
use cmat_engine::billing::BillLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Windows1252,
}

#[derive(Debug, Clone, Copy)]
struct Dialect {
    separator: u8,
    encoding: Encoding,
}

pub(super) fn import(
    store: &mut Store,
    input: impl Read + Send,
    display_name: &str,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let file = || display_name.to_string();
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let start = input.fill_buf().map_err(|source| ImportError::Open { file: file(), source })?;
    if start.starts_with(b"\xff\xfe") || start.starts_with(b"\xfe\xff") {
        return Err(ImportError::Utf16 { file: file() });
    }
    let dialect = sniff(start, display_name)?;
    let mut records = Records::new(input, dialect.separator);
    let read_error = |row: u64| {
        move |source: std::io::Error| ImportError::Read { file: file(), row, source: source.into() }
    };
    let header = match records.next_record().map_err(read_error(1))? {
        Some(header) if !header.is_blank() => header,
        _ => return Err(ImportError::Empty { file: file() }),
    };
    let header_row = header.row;
    let mut names = Vec::with_capacity(header.len());
    for field in header.iter() {
        match decode(field, dialect.encoding) {
            Ok(name) => names.push(name.into_owned()),
            Err(_) => {
                return Err(ImportError::HeaderNotUtf8 { file: file(), row: header_row });
            }
        }
    }
    let decimals = match dialect.separator {
        b';' => DecimalSeparator::Comma,
        _ => DecimalSeparator::Point,
    };
    let layout = Layout::from_names(&names, decimals).map_err(|err| match err {
        HeaderError::Duplicate(column) => {
            ImportError::DuplicateColumn { file: file(), row: header_row, column }
        }
        HeaderError::Missing(columns) => {
            let hint = (names.len() == 1)
                .then(|| {
                    ['\t', '|'].into_iter().find(|d| names[0].contains(*d)).map(|d| {
                        format!(
                            "; the header is a single column: is the file separated by {d:?} instead of commas?"
                        )
                    })
                })
                .flatten();
            ImportError::MissingColumns { file: file(), columns, hint }
        }
    })?;
    super::check_link_column(&names, options, display_name)?;

    let mut sink = Sink::begin(store, display_name, None)?;
    // Two stages on two threads: this one parses and hashes, the caller's stores (SQLite's
    // connection stays on its thread). The channel is bounded, so memory stays flat.
    let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let mut batch = Batch::default();
            let parsed = parse_rows(
                &mut records,
                &layout,
                dialect,
                header_row,
                display_name,
                &mut batch,
                |batch| {
                    // The next batch's bytes in one allocation, about the size of this one's.
                    let next = Batch {
                        lines: Vec::with_capacity(batch.lines.len() + batch.lines.len() / 8),
                        rows: Vec::with_capacity(BATCH_LINES),
                    };
                    // A closed channel: the store gave up; stop reading.
                    batches.send(std::mem::replace(batch, next)).is_ok()
                },
            );
            if !batch.rows.is_empty() {
                let _ = batches.send(batch);
            }
            parsed.map_err(|(row, source)| ImportError::Read { file: file(), row, source })
        });
        for batch in received {
            let mut start = 0;
            for row in batch.rows {
                match row {
                    Parsed::Line { end } => {
                        sink.accept(&batch.lines[start..end])?;
                        start = end;
                    }
                    Parsed::Bad { row, reason } => sink.reject(row, reason),
                }
            }
        }
        match parser.join() {
            Ok(parsed) => parsed?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        sink.finish()
    })
}

/// Lines handed from the parsing thread to the storing one at a time.
const BATCH_LINES: usize = 1024;
/// Batches parsed ahead of the store at most.
const PIPELINE_DEPTH: usize = 8;

/// Rows parsed and encoded ([`encode_line`]) on the parsing thread: the store's thread
/// receives the lines' bytes, one buffer a batch, not a dozen `String`s a line, and hashes
/// them (the two threads then take about as long as each other).
#[derive(Default)]
struct Batch {
    /// The good rows' lines, one after another.
    lines: Vec<u8>,
    rows: Vec<Parsed>,
}

/// One data row: a line (where its bytes end in the batch) or a refusal.
enum Parsed {
    Line { end: usize },
    Bad { row: u64, reason: String },
}

/// Reads the records after the header into `batch`, handing it to `emit` whenever it holds
/// [`BATCH_LINES`] rows, until `emit` returns false; an unreadable file is `(row, error)`.
fn parse_rows<R: Read>(
    records: &mut Records<R>,
    layout: &Layout,
    dialect: Dialect,
    header_row: u64,
    display_name: &str,
    batch: &mut Batch,
    mut emit: impl FnMut(&mut Batch) -> bool,
) -> Result<(), (u64, csv::Error)> {
    let mut line = BillLine::default();
    let reads: Vec<bool> = (0..layout.width).map(|index| layout.reads(index)).collect();
    let mut last_row = header_row;
    loop {
        if batch.rows.len() >= BATCH_LINES && !emit(batch) {
            return Ok(());
        }
        let record = match records.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(()),
            Err(source) => return Err((last_row + 1, source.into())),
        };
        let row = record.row;
        last_row = row;
        if record.is_blank() {
            continue;
        }
        if record.len() != layout.width {
            let reason = format!(
                "the row has {} {}, the header has {}",
                record.len(),
                super::plural(record.len(), "field", "fields"),
                layout.width
            );
            batch.rows.push(Parsed::Bad { row, reason });
            continue;
        }
        // A UTF-8 record is checked once, whole, and its cells are lent as they are; a record
        // that is not valid UTF-8 is decoded cell by cell (the columns read only), so that the
        // cell at fault is named.
        let text = match dialect.encoding {
            Encoding::Utf8 => record.utf8(),
            Encoding::Windows1252 => None,
        };
        let parsed = match text {
            Some(text) => layout.parse_into(
                |index| {
                    text.get(index).map_or(Cell::Empty, |field| Cell::Text(Cow::Borrowed(field)))
                },
                display_name,
                row,
                &mut line,
            ),
            None => {
                let cells: Vec<Cell<'_>> = (0..record.len())
                    .map(|index| match record.get(index) {
                        Some(field) if reads.get(index) == Some(&true) => {
                            match decode(field, dialect.encoding) {
                                Ok(text) => Cell::Text(text),
                                Err(reason) => Cell::Bad(reason),
                            }
                        }
                        _ => Cell::Empty,
                    })
                    .collect();
                layout.parse_into(
                    |index| cells.get(index).map_or(Cell::Empty, Cell::view),
                    display_name,
                    row,
                    &mut line,
                )
            }
        };
        match parsed {
            Ok(()) => {
                encode_line(&line, &mut batch.lines);
                batch.rows.push(Parsed::Line { end: batch.lines.len() });
            }
            Err(reason) => batch.rows.push(Parsed::Bad { row, reason }),
        }
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> Result<Cow<'_, str>, String> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|err| {
            format!("is not valid UTF-8 (byte {} of the cell)", err.valid_up_to() + 1)
        }),
        Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0),
    }
}

/// The dialect, from the first buffer of the file (which holds the header).
fn sniff(start: &[u8], file: &str) -> Result<Dialect, ImportError> {
    let (bom, body) = match start.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => (true, rest),
        None => (false, start),
    };
    let encoding = match std::str::from_utf8(body) {
        Ok(_) => Encoding::Utf8,
        // Cut inside a character at the end of the buffer: still UTF-8.
        Err(err) if err.error_len().is_none() => Encoding::Utf8,
        Err(_) if bom => Encoding::Utf8,
        Err(_) => Encoding::Windows1252,
    };
    let header = first_line(body);
    let score = |separator: u8| {
        let names: Vec<String> = split_outside_quotes(header, separator)
            .into_iter()
            .map(|cell| normalize(&String::from_utf8_lossy(cell).replace('"', "")))
            .collect();
        known_columns(&names)
    };
    let (comma, semicolon, tab) = (score(b','), score(b';'), score(b'\t'));
    let separator = if tab > comma && tab > semicolon {
        return Err(ImportError::Dialect {
            file: file.to_string(),
            found: "the file is tab-separated".into(),
        });
    } else if comma == semicolon && comma > 0 {
        return Err(ImportError::Dialect {
            file: file.to_string(),
            found: format!(
                "cannot tell the separator: the header names {comma} of the report's columns split by ',' and as many split by ';'"
            ),
        });
    } else if semicolon > comma {
        b';'
    } else {
        b','
    };
    Ok(Dialect { separator, encoding })
}

/// The first non-blank line of the buffer (the header), without its line break.
fn first_line(body: &[u8]) -> &[u8] {
    let mut rest = body;
    loop {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        if !line.iter().all(u8::is_ascii_whitespace) || end == rest.len() {
            return line;
        }
        rest = &rest[end + 1..];
    }
}

fn split_outside_quotes(line: &[u8], separator: u8) -> Vec<&[u8]> {
    let mut cells = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, byte) in line.iter().enumerate() {
        if *byte == b'"' {
            quoted = !quoted;
        } else if *byte == separator && !quoted {
            cells.push(&line[start..i]);
            start = i + 1;
        }
    }
    cells.push(&line[start..]);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects() {
        let header = "Billing Date,Service Name,Organization Name,Product Name,Quantity";
        let d = sniff(header.as_bytes(), "f").unwrap();
        assert_eq!((d.separator, d.encoding), (b',', Encoding::Utf8));
        let d = sniff(header.replace(',', ";").as_bytes(), "f").unwrap();
        assert_eq!(d.separator, b';');
        let mut latin = header.replace(',', ";").into_bytes();
        latin.extend_from_slice(b"\n2026-10-01;S;M\xfcller GmbH;P;1\n");
        assert_eq!(sniff(&latin, "f").unwrap().encoding, Encoding::Windows1252);
        // A UTF-8 character cut at the end of the buffer is still UTF-8.
        assert_eq!(
            sniff("Billing Date,Müller".as_bytes()[..20].as_ref(), "f").unwrap().encoding,
            Encoding::Utf8
        );
        let tie = "Billing Date;Service Name,Organization Name;Product Name,Quantity";
        assert!(matches!(sniff(tie.as_bytes(), "f"), Err(ImportError::Dialect { .. })));
        let tabs = header.replace(',', "\t");
        assert!(matches!(sniff(tabs.as_bytes(), "f"), Err(ImportError::Dialect { .. })));
        // "a,b" quoted inside a ';' header does not count as ',' columns.
        let quoted = "\"Note, extra\";Billing Date;Service Name";
        assert_eq!(sniff(quoted.as_bytes(), "f").unwrap().separator, b';');
    }
}
