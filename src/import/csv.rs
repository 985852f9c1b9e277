//! The CSV reader: the export as Cloudmore writes it (UTF-8, a BOM accepted, `,`-separated,
//! `.` decimals) and as Excel re-saves it in a European locale (`;`-separated with decimal
//! commas, often Windows-1252). The separator is decided from the header; the encoding from
//! the file's own bytes, as they stream past ([`Evidence`]):
//!
//! - encoding: UTF-16 is refused; a UTF-8 BOM means UTF-8. Otherwise the file is undecided while
//!   its rows are ASCII (the same in both encodings). The first row that is not decides: valid
//!   UTF-8 multi-byte characters make it UTF-8, a byte that is not UTF-8 makes it Windows-1252
//!   (Excel's "CSV" on Western-European Windows). From then on, a row of the other encoding is
//!   an error naming it (a row pasted from another file): mixed encodings are refused, never
//!   decoded into mojibake, and it does not matter how far into the file the first accent is.
//! - separator: the header split by `,`, by `;` and by tab; the one naming more of the report's
//!   columns wins; a tie is refused ([`ImportError::Dialect`]), as is a tab-separated file.
//! - decimals: `,`-separated ⇒ `.`; `;`-separated ⇒ `,` (SPEC.md: "`;` separator ⇒ decimal
//!   comma"); a `.` in a number of a `;` file is an error naming the row, never a guess.
//!
//! The file is streamed: one reused record, each line handed to the store as it is read.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use super::records::{Record, Records, TextRecord};
use super::row::{known_columns, normalize, Cell, DecimalSeparator, HeaderError, Layout};
use super::{ImportError, ImportOptions, Sink};
use crate::store::{encode_line, ImportSummary, Store};
use cmat_engine::billing::BillLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Every byte so far is ASCII.
    Undecided,
    Utf8,
    Windows1252,
}

/// The file's encoding as its rows have shown it so far, and the row that showed it.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    encoding: Encoding,
    /// The first row with a non-ASCII byte (0 for a BOM).
    row: u64,
}

impl Evidence {
    /// Updates the evidence with one record's bytes: `Err` (a bad row's reason) when the record
    /// contradicts the encoding the file has shown.
    fn observe(&mut self, bytes: &[u8], row: u64) -> Result<(), String> {
        match self.encoding {
            Encoding::Undecided | Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(_) => {
                    if self.encoding == Encoding::Undecided && !bytes.is_ascii() {
                        *self = Evidence { encoding: Encoding::Utf8, row };
                    }
                    Ok(())
                }
                Err(err) => {
                    let before = &bytes[..err.valid_up_to()];
                    if self.encoding == Encoding::Undecided && before.is_ascii() {
                        *self = Evidence { encoding: Encoding::Windows1252, row };
                        return Ok(());
                    }
                    let byte = bytes.get(err.valid_up_to()).copied().unwrap_or(0);
                    let since = if self.encoding == Encoding::Utf8 { self.row } else { row };
                    Err(format!(
                        "byte 0x{byte:02X} is not UTF-8, but the file is UTF-8 ({}): mixed encodings, \
                         e.g. a row pasted from a Windows-1252 file; save the file again as \"CSV UTF-8\"",
                        if since == 0 || since == row {
                            "it has UTF-8 characters".to_string()
                        } else {
                            format!("row {since} has UTF-8 characters")
                        }
                    ))
                }
            },
            // A row whose every non-ASCII byte forms a UTF-8 character is not Windows-1252 text.
            Encoding::Windows1252 if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() => {
                Err(format!(
                    "the row is UTF-8, but the file is Windows-1252 (as row {} shows): mixed encodings; \
                     save the file again as \"CSV UTF-8\"",
                    self.row
                ))
            }
            Encoding::Windows1252 => Ok(()),
        }
    }
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
    let mut evidence = Evidence { encoding: dialect.encoding, row: 0 };
    let mut records = Records::new(input, dialect.separator);
    let header = match records.next_record() {
        Ok(Some(header)) if !header.is_blank() => header,
        Ok(_) => return Err(ImportError::Empty { file: file() }),
        Err(source) => {
            return Err(ImportError::Read { file: file(), row: 1, source: source.into() })
        }
    };
    let header_row = header.row;
    let names = header_names(&header, &mut evidence)
        .ok_or_else(|| ImportError::HeaderNotUtf8 { file: file(), row: header_row })?;
    let layout = layout_of(&names, dialect.separator, display_name, header_row)?;
    super::check_link_column(&names, options, display_name)?;

    let sink = Sink::begin(store, display_name, None)?;
    let start = Start { layout, evidence, header_row };
    import_rows(sink, records, start, display_name)
}

/// What the header decided: how to read the rows, and where they start.
struct Start {
    layout: Layout,
    evidence: Evidence,
    header_row: u64,
}

/// The header's layout; the decimal separator follows the field separator (SPEC.md: "`;`
/// separator ⇒ decimal comma").
fn layout_of(
    names: &[String],
    separator: u8,
    display_name: &str,
    header_row: u64,
) -> Result<Layout, ImportError> {
    let file = || display_name.to_string();
    let decimals = match separator {
        b';' => DecimalSeparator::Comma,
        _ => DecimalSeparator::Point,
    };
    Layout::from_names(names, decimals).map_err(|err| match err {
        HeaderError::Duplicate(column) => {
            ImportError::DuplicateColumn { file: file(), row: header_row, column }
        }
        HeaderError::Missing(columns) => {
            ImportError::MissingColumns { file: file(), columns, hint: single_column_hint(names) }
        }
    })
}

/// A hint for a header read as one column: the file is likely separated by something the
/// sniffer does not accept (a tab, a pipe).
fn single_column_hint(names: &[String]) -> Option<String> {
    let [only] = names else { return None };
    ['\t', '|'].into_iter().find(|d| only.contains(*d)).map(|d| {
        format!(
            "; the header is a single column: is the file separated by {d:?} instead of commas?"
        )
    })
}

/// Parses the rows and stores them: two stages on two threads, this one parsing and hashing,
/// the caller's storing (SQLite's connection stays on its thread). The channel is bounded, so
/// memory stays flat.
fn import_rows<R: Read + Send>(
    mut sink: Sink<'_>,
    mut records: Records<R>,
    start: Start,
    display_name: &str,
) -> Result<ImportSummary, ImportError> {
    let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let mut batch = Batch::default();
            let parsed = parse_rows(&mut records, &start, display_name, &mut batch, |batch| {
                // The next batch's bytes in one allocation, about the size of this one's.
                let next = Batch {
                    lines: Vec::with_capacity(batch.lines.len() + batch.lines.len() / 8),
                    rows: Vec::with_capacity(BATCH_LINES),
                };
                // A closed channel: the store gave up; stop reading.
                batches.send(std::mem::replace(batch, next)).is_ok()
            });
            if !batch.rows.is_empty() {
                let _ = batches.send(batch);
            }
            parsed.map_err(|(row, source)| ImportError::Read {
                file: display_name.to_string(),
                row,
                source,
            })
        });
        for batch in received {
            store_batch(&mut sink, batch)?;
        }
        match parser.join() {
            Ok(parsed) => parsed?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        sink.finish()
    })
}

/// Hands one batch's lines and refusals to the store, in the file's order.
fn store_batch(sink: &mut Sink<'_>, batch: Batch) -> Result<(), ImportError> {
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
    Ok(())
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
    start: &Start,
    display_name: &str,
    batch: &mut Batch,
    mut emit: impl FnMut(&mut Batch) -> bool,
) -> Result<(), (u64, csv::Error)> {
    let layout = &start.layout;
    let mut evidence = start.evidence;
    let mut line = BillLine::default();
    let reads: Vec<bool> = (0..layout.width).map(|index| layout.reads(index)).collect();
    let mut last_row = start.header_row;
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
        let reader = RowReader { layout, reads: &reads, display_name };
        match reader.parse(&record, &mut evidence, &mut line) {
            Ok(()) => {
                encode_line(&line, &mut batch.lines);
                batch.rows.push(Parsed::Line { end: batch.lines.len() });
            }
            Err(reason) => batch.rows.push(Parsed::Bad { row, reason }),
        }
    }
}

/// What reading one data row needs from the header.
struct RowReader<'a> {
    layout: &'a Layout,
    /// Per column, whether the layout reads it (only those are decoded).
    reads: &'a [bool],
    display_name: &'a str,
}

impl RowReader<'_> {
    /// Parses one non-blank record into `line`; `Err` is the reason the row is refused.
    fn parse(
        &self,
        record: &Record<'_>,
        evidence: &mut Evidence,
        line: &mut BillLine,
    ) -> Result<(), String> {
        let (layout, row) = (self.layout, record.row);
        if record.len() != layout.width {
            return Err(format!(
                "the row has {} {}, the header has {}",
                record.len(),
                super::plural(record.len(), "field", "fields"),
                layout.width
            ));
        }
        match record_text(record, evidence)? {
            Some(text) => layout.parse_into(
                |index| {
                    text.get(index).map_or(Cell::Empty, |field| Cell::Text(Cow::Borrowed(field)))
                },
                self.display_name,
                row,
                line,
            ),
            None => {
                let cells = self.decoded_cells(record, evidence.encoding);
                layout.parse_into(
                    |index| cells.get(index).map_or(Cell::Empty, Cell::view),
                    self.display_name,
                    row,
                    line,
                )
            }
        }
    }

    /// The record's cells decoded one by one (a Windows-1252 row, or a UTF-8 one cut inside a
    /// character), the columns the layout does not read left empty.
    fn decoded_cells<'r>(&self, record: &Record<'r>, encoding: Encoding) -> Vec<Cell<'r>> {
        (0..record.len())
            .map(|index| match record.get(index) {
                Some(field) if self.reads.get(index) == Some(&true) => {
                    match decode(field, encoding) {
                        Ok(text) => Cell::Text(text),
                        Err(reason) => Cell::Bad(reason),
                    }
                }
                _ => Cell::Empty,
            })
            .collect()
    }
}

/// The header's names, its bytes the first evidence of the encoding; `None` when they are not
/// UTF-8 though the file says it is (a BOM).
fn header_names(header: &Record<'_>, evidence: &mut Evidence) -> Option<Vec<String>> {
    evidence.observe(header.bytes(), header.row).ok()?;
    header.iter().map(|field| decode(field, evidence.encoding).ok().map(Cow::into_owned)).collect()
}

/// The record as text when it is UTF-8 (or ASCII), `None` when its cells are to be decoded as
/// Windows-1252; the evidence updated on the way, checked no more than the old single-encoding
/// reader checked it (one UTF-8 validation a record, plus an ASCII scan while undecided).
fn record_text<'a>(
    record: &Record<'a>,
    evidence: &mut Evidence,
) -> Result<Option<TextRecord<'a>>, String> {
    let row = record.row;
    match evidence.encoding {
        Encoding::Utf8 => match record.utf8() {
            Some(text) => Ok(Some(text)),
            // Valid whole but cut inside a character by a cell boundary: decoded cell by cell.
            None => evidence.observe(record.bytes(), row).map(|()| None),
        },
        Encoding::Undecided => match record.utf8() {
            Some(text) => {
                if !record.bytes().is_ascii() {
                    *evidence = Evidence { encoding: Encoding::Utf8, row };
                }
                Ok(Some(text))
            }
            None => {
                evidence.observe(record.bytes(), row)?;
                Ok((evidence.encoding != Encoding::Windows1252).then(|| record.utf8()).flatten())
            }
        },
        Encoding::Windows1252 if record.bytes().is_ascii() => Ok(record.utf8()),
        Encoding::Windows1252 => evidence.observe(record.bytes(), row).map(|()| None),
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> Result<Cow<'_, str>, String> {
    match encoding {
        Encoding::Undecided | Encoding::Utf8 => {
            std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|err| {
                format!("is not valid UTF-8 (byte {} of the cell)", err.valid_up_to() + 1)
            })
        }
        Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0),
    }
}

/// The separator, from the first buffer of the file (which holds the header); the encoding
/// only when a BOM says it (otherwise the rows decide it, [`Evidence`]).
fn sniff(start: &[u8], file: &str) -> Result<Dialect, ImportError> {
    let (bom, body) = match start.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => (true, rest),
        None => (false, start),
    };
    let encoding = if bom { Encoding::Utf8 } else { Encoding::Undecided };
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
        assert_eq!((d.separator, d.encoding), (b',', Encoding::Undecided));
        let d = sniff(header.replace(',', ";").as_bytes(), "f").unwrap();
        assert_eq!(d.separator, b';');
        let bom = [b"\xef\xbb\xbf".as_slice(), header.as_bytes()].concat();
        assert_eq!(sniff(&bom, "f").unwrap().encoding, Encoding::Utf8);
        let tie = "Billing Date;Service Name,Organization Name;Product Name,Quantity";
        assert!(matches!(sniff(tie.as_bytes(), "f"), Err(ImportError::Dialect { .. })));
        let tabs = header.replace(',', "\t");
        assert!(matches!(sniff(tabs.as_bytes(), "f"), Err(ImportError::Dialect { .. })));
        // "a,b" quoted inside a ';' header does not count as ',' columns.
        let quoted = "\"Note, extra\";Billing Date;Service Name";
        assert_eq!(sniff(quoted.as_bytes(), "f").unwrap().separator, b';');
    }

    proptest::proptest! {
        /// Wherever the first accent falls, a UTF-8 file reads as UTF-8 and its Windows-1252
        /// twin as Windows-1252, every row accepted; a row of the other encoding after the first
        /// accent is refused, and it is the one named.
        #[test]
        fn the_encoding_is_the_files_own_wherever_its_first_accent_falls(
            rows in 2usize..40,
            first in 0usize..40,
            other in 0usize..40,
        ) {
            let first = first % rows;
            let other = first + 1 + other % (rows - first).max(1);
            let text = |index: usize, accent: bool| {
                format!("2026-11-01,{},{}\n", index, if accent { "Société" } else { "Societe" })
            };
            let utf8: Vec<Vec<u8>> = (0..rows).map(|i| text(i, i >= first).into_bytes()).collect();
            let windows: Vec<Vec<u8>> = (0..rows)
                .map(|i| encoding_rs::WINDOWS_1252.encode(&text(i, i >= first)).0.into_owned())
                .collect();
            for (rows_bytes, expected) in [(&utf8, Encoding::Utf8), (&windows, Encoding::Windows1252)] {
                let mut evidence = Evidence { encoding: Encoding::Undecided, row: 0 };
                for (index, bytes) in rows_bytes.iter().enumerate() {
                    proptest::prop_assert!(evidence.observe(bytes, index as u64 + 1).is_ok());
                }
                proptest::prop_assert_eq!(evidence.encoding, expected);
                proptest::prop_assert_eq!(evidence.row, first as u64 + 1);
            }
            // A row of the other encoding pasted in after the first accent.
            for (rows_bytes, pasted) in [(&utf8, &windows), (&windows, &utf8)] {
                let mut evidence = Evidence { encoding: Encoding::Undecided, row: 0 };
                let mut refused = Vec::new();
                for index in 0..rows {
                    let bytes = if index == other { &pasted[index] } else { &rows_bytes[index] };
                    if evidence.observe(bytes, index as u64 + 1).is_err() {
                        refused.push(index);
                    }
                }
                let expected: Vec<usize> = if other < rows { vec![other] } else { vec![] };
                proptest::prop_assert_eq!(refused, expected);
            }
        }
    }
}
