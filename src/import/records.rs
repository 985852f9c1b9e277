//! CSV records from a stream, read the way the csv crate reads them (RFC 4180 quoting, `""`
//! inside quotes, lines ending at `\n`, empty lines skipped) but a line at a time: a line whose
//! quoted cells close on it and hold no `""` is split where it lies in the read buffer, by
//! memchr, with no state machine and no copy. Any other record (a line break or `""` inside
//! quotes, text after a closing quote, a line cut by the end of the buffer) goes through
//! `csv_core`, the csv crate's own parser. Nearly every line of a billing report is the first
//! kind (Azure product names are quoted for their commas), and the general parser was a quarter
//! of the import's parsing thread.
//!
//! Lines end at `\n` only, so that a row's position is the line it starts on in CRLF files too;
//! the `\r` left at the end of a line's last cell is whitespace, trimmed like any other. Each
//! record knows the line of the file it starts on, counted exactly: blank lines and line breaks
//! inside quoted cells included. Records may have any number of cells: the caller checks them
//! against the header, so that every ragged row is listed, not just the first.

use std::io::{BufRead, BufReader, Read};

/// A UTF-8 byte-order mark, dropped before the header as the csv crate does.
const BOM: &[u8] = b"\xef\xbb\xbf";

pub(super) struct Records<R> {
    input: BufReader<R>,
    separator: u8,
    /// Lines of the file consumed so far.
    lines: u64,
    /// Bytes of `input`'s buffer the record handed out last still borrows.
    pending: usize,
    started: bool,
    /// The parser for quoted records and lines cut by the end of the buffer.
    core: csv_core::Reader,
    /// The cells of a record read by `core`, one after another.
    cells: Vec<u8>,
    /// Where each cell of the last record starts and ends in its bytes.
    starts: Vec<usize>,
    ends: Vec<usize>,
}

/// A record that is valid UTF-8: its cells as text.
#[derive(Debug, Clone, Copy)]
pub(super) struct TextRecord<'a> {
    text: &'a str,
    record: Record<'a>,
}

impl<'a> TextRecord<'a> {
    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.text.get(self.record.range(index)?)
    }
}

/// One record: its cells, borrowed from the reader until the next one is read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record<'a> {
    /// The line of the file the record starts on (the first line is 1).
    pub row: u64,
    /// The cells' bytes: a line as it is in the file, or the unquoted cells back to back.
    bytes: &'a [u8],
    /// Where each cell starts and ends in `bytes`.
    starts: &'a [usize],
    ends: &'a [usize],
    /// Whether the cells lie back to back (read by `csv_core`): a character may then straddle
    /// two of them; on a line, separators and quotes (ASCII) stand between them.
    back_to_back: bool,
}

impl<R: Read> Records<R> {
    pub fn new(input: BufReader<R>, separator: u8) -> Self {
        let core = csv_core::ReaderBuilder::new()
            .delimiter(separator)
            .terminator(csv_core::Terminator::Any(b'\n'))
            .build();
        Records {
            input,
            separator,
            lines: 0,
            pending: 0,
            started: false,
            core,
            cells: vec![0; 4096],
            starts: Vec::new(),
            ends: vec![0; 64],
        }
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> std::io::Result<Option<Record<'_>>> {
        self.input.consume(std::mem::take(&mut self.pending));
        if !self.started {
            self.started = true;
            if self.input.fill_buf()?.starts_with(BOM) {
                self.input.consume(BOM.len());
            }
        }
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            let Some(end) = memchr::memchr(b'\n', buffer) else { break };
            let line = &buffer[..end];
            if line.is_empty() {
                self.lines += 1;
                self.input.consume(1);
                continue;
            }
            if !split_line(line, self.separator, &mut self.starts, &mut self.ends) {
                break;
            }
            self.lines += 1;
            self.pending = end + 1;
            let buffer = self.input.buffer();
            return Ok(Some(Record {
                row: self.lines,
                bytes: &buffer[..end],
                starts: &self.starts,
                ends: &self.ends,
                back_to_back: false,
            }));
        }
        self.read_with_core()
    }

    /// A record through `csv_core`, from the start of a non-empty line.
    fn read_with_core(&mut self) -> std::io::Result<Option<Record<'_>>> {
        let row = self.lines + 1;
        let (mut written, mut ended) = (0, 0);
        self.ends.resize(self.ends.capacity().max(64), 0);
        loop {
            let input = self.input.fill_buf()?;
            let lines_before = self.core.line();
            let (result, read, wrote, ends) =
                self.core.read_record(input, &mut self.cells[written..], &mut self.ends[ended..]);
            self.lines += self.core.line() - lines_before;
            self.input.consume(read);
            written += wrote;
            ended += ends;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    let grown = self.cells.len() * 2;
                    self.cells.resize(grown, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let grown = self.ends.len() * 2;
                    self.ends.resize(grown, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    // The file's last record may end without a line break (none at the end of
                    // the file, or a quote never closed): it still took its line.
                    self.lines = self.lines.max(row);
                    self.ends.truncate(ended);
                    self.starts.clear();
                    self.starts.push(0);
                    self.starts.extend_from_slice(&self.ends[..ended.saturating_sub(1)]);
                    return Ok(Some(Record {
                        row,
                        bytes: &self.cells[..written],
                        starts: &self.starts,
                        ends: &self.ends,
                        back_to_back: true,
                    }));
                }
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

/// Splits `line` into cells where it lies; false when it needs the general parser (a quote
/// not closed on the line, a `""` inside quotes, or text after a closing quote).
fn split_line(line: &[u8], separator: u8, starts: &mut Vec<usize>, ends: &mut Vec<usize>) -> bool {
    starts.clear();
    ends.clear();
    let mut at = 0;
    loop {
        // Only a quote that opens a cell quotes it; one inside an unquoted cell is text.
        if line.get(at) == Some(&b'"') {
            let open = at + 1;
            let Some(length) = memchr::memchr(b'"', &line[open..]) else { return false };
            let close = open + length;
            starts.push(open);
            ends.push(close);
            match line.get(close + 1) {
                None => return true,
                Some(byte) if *byte == separator => at = close + 2,
                Some(_) => return false,
            }
        } else {
            starts.push(at);
            match memchr::memchr(separator, &line[at..]) {
                Some(length) => {
                    ends.push(at + length);
                    at += length + 1;
                }
                None => {
                    ends.push(line.len());
                    return true;
                }
            }
        }
    }
}

impl<'a> Record<'a> {
    /// How many cells the record has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Cell `index`, if the record has that many.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.bytes.get(self.range(index)?)
    }

    fn range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        Some(*self.starts.get(index)?..*self.ends.get(index)?)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// The record's bytes (its cells back to back when it was unquoted): the evidence of the
    /// file's encoding.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The record as text, when it is valid UTF-8 whole and cell by cell.
    pub fn utf8(&self) -> Option<TextRecord<'a>> {
        let text = std::str::from_utf8(self.bytes).ok()?;
        if self.back_to_back && !self.ends.iter().all(|end| text.is_char_boundary(*end)) {
            return None;
        }
        Some(TextRecord { text, record: *self })
    }

    /// A line with nothing but whitespace (a blank CRLF line reads as one cell holding "\r").
    pub fn is_blank(&self) -> bool {
        match self.len() {
            0 => true,
            1 => self.get(0).is_some_and(|cell| cell.iter().all(u8::is_ascii_whitespace)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every record with its starting line, as `Records` reads `input`.
    fn read(input: &[u8], capacity: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut records = Records::new(BufReader::with_capacity(capacity, input), b',');
        let mut out = Vec::new();
        while let Some(record) = records.next_record().unwrap() {
            out.push((record.row, record.iter().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    /// The csv crate's reading of `input`, configured as the import configured it.
    fn csv_crate(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        reader
            .byte_records()
            .map(|record| record.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    #[test]
    fn plain_quoted_and_cut_lines() {
        let input = b"\xef\xbb\xbfa,b\n\n\"x\ny\",\"q\"\"q\"\r\n,\n";
        let want: Vec<(u64, Vec<Vec<u8>>)> = vec![
            (1, vec![b"a".to_vec(), b"b".to_vec()]),
            (3, vec![b"x\ny".to_vec(), b"q\"q\r".to_vec()]),
            (5, vec![vec![], vec![]]),
        ];
        // A buffer of 4 bytes cuts every line.
        for capacity in [4, 8 * 1024] {
            assert_eq!(read(input, capacity), want, "capacity {capacity}");
        }
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end() {
        assert_eq!(
            read(b"a\n\"b\nc\n", 1024),
            vec![(1, vec![b"a".to_vec()]), (2, vec![b"b\nc\n".to_vec()])]
        );
    }

    #[test]
    fn texts_are_cells() {
        let mut records = Records::new(BufReader::new(&b"\"\xc3\xa9\",\xc3\xa9\n"[..]), b',');
        let record = records.next_record().unwrap().unwrap().utf8().unwrap();
        assert_eq!([record.get(0), record.get(1), record.get(2)], [Some("é"), Some("é"), None]);
    }

    proptest! {
        /// Cell for cell what the csv crate reads, whatever the buffer size and with or without
        /// a line break at the end; and each record's line is the line it starts on.
        #[test]
        fn reads_as_the_csv_crate_does(
            cells in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "", "\"", ",", "\n", "\r", "\"q\"", "\"a,b\"", "\"\"", "é", " ",
                ]),
                0..40,
            ),
            capacity in 1usize..64,
            final_newline in any::<bool>(),
        ) {
            let mut input = cells.concat().into_bytes();
            if final_newline {
                input.push(b'\n');
            }
            let ours = read(&input, capacity);
            // Lines cut by a small buffer go through `csv_core`, whole ones do not: both agree.
            prop_assert_eq!(&ours, &read(&input, 1 << 16));
            let fields: Vec<Vec<Vec<u8>>> = ours.iter().map(|(_, cells)| cells.clone()).collect();
            prop_assert_eq!(&fields, &csv_crate(&input));
            for (row, _) in &ours {
                let starts = input.split(|b| *b == b'\n').nth(*row as usize - 1);
                prop_assert!(starts.is_some_and(|line| !line.is_empty()), "row {}", row);
            }
        }
    }
}
