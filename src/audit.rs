//! The audit trail as CSV: one row per field written, in SPEC.md's column order, safe to open
//! in a spreadsheet; and its hash chain (issue 29), which makes an edited, removed or reordered
//! row evident in the database and in any exported copy.
//!
//! Each row's `digest` is SHA-256 over the digest of the row before (`prev_digest`, empty for
//! the workspace's first row) and the row's 13 cells exactly as the CSV writes them, so a copy
//! verifies from its own bytes: nothing is unescaped or re-parsed. `at` is hashed to the second,
//! as exported.

use std::io::Write;

use cmat_engine::spreadsheet::spreadsheet_safe;
use sha2::{Digest, Sha256};

use crate::store::{AuditOutcome, AuditRow, ChainedAuditRow};

pub const COLUMNS: [&str; 13] = [
    "run_id",
    "at",
    "action",
    "entity",
    "autotask_id",
    "key",
    "field",
    "old_value",
    "new_value",
    "rule",
    "outcome",
    "http_status",
    "message",
];

pub fn outcome_name(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Applied => "applied",
        AuditOutcome::Failed => "failed",
        AuditOutcome::Skipped => "skipped",
    }
}

/// The chain's two columns, after SPEC.md's thirteen.
pub const CHAIN_COLUMNS: [&str; 2] = ["prev_digest", "digest"];

/// A row's 13 cells as the CSV carries them (formula-escaped): what the chain hashes.
pub fn cells(row: &AuditRow) -> [String; 13] {
    [
        safe(&row.run_id),
        row.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        safe(&row.action),
        safe(&row.entity),
        row.autotask_id.map(|id| safe(&id.to_string())).unwrap_or_default(),
        safe(&row.key),
        safe(&row.field),
        row.old_value.as_deref().map(safe).unwrap_or_default(),
        row.new_value.as_deref().map(safe).unwrap_or_default(),
        safe(&row.rule),
        outcome_name(row.outcome).to_string(),
        row.http_status.map(|status| status.to_string()).unwrap_or_default(),
        safe(&row.message),
    ]
}

/// `spreadsheet_safe` of one cell (a timestamp, an outcome word or a status code never
/// needs it).
fn safe(cell: &str) -> String {
    spreadsheet_safe(cell)
}

/// The digest of a row whose cells are `cells`, following the row whose digest is `prev`.
/// Every part is length-prefixed, so no two different rows hash the same bytes.
pub fn link_digest<S: AsRef<str>>(prev: &str, cells: &[S]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    for part in std::iter::once(prev).chain(cells.iter().map(AsRef::as_ref)) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hasher.finalize() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// The trail as CSV: SPEC.md's columns, then the chain's.
pub fn write_csv(rows: &[ChainedAuditRow], out: impl Write) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS.iter().chain(CHAIN_COLUMNS.iter()))?;
    for chained in rows {
        let cells = cells(&chained.row);
        let chain = [chained.prev_digest.as_str(), chained.digest.as_str()];
        writer.write_record(cells.iter().map(String::as_str).chain(chain))?;
    }
    writer.flush()?;
    Ok(())
}

/// Where a row sits: its id in the database, or its line in an exported copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPlace {
    Row(i64),
    Line(u64),
}

impl std::fmt::Display for RowPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowPlace::Row(id) => write!(f, "audit row {id}"),
            RowPlace::Line(line) => write!(f, "line {line}"),
        }
    }
}

/// The first place the chain does not hold, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("{place} ({what}) was changed: its cells no longer give its digest")]
    Changed { place: RowPlace, what: String },
    #[error("audit row(s) {first} to {last} were removed: the trail goes from {} to row {} ({what})", .after.map_or("its start".to_string(), |id| format!("row {id}")), .last + 1)]
    Removed { first: i64, last: i64, after: Option<i64>, what: String },
    #[error("{place} ({what}) does not follow {}: rows were reordered, or a row before it was removed or rewritten", .before.map_or("the start of the trail".to_string(), |before| before.to_string()))]
    Unlinked { place: RowPlace, before: Option<RowPlace>, what: String },
    #[error("the trail ends at {} but its recorded end is audit row {recorded}: the rows after it were removed", .last.map_or("its start".to_string(), |last| last.to_string()))]
    Truncated { last: Option<RowPlace>, recorded: i64 },
}

/// Walks a trail row by row, in order, checking each row's digest and its link to the row
/// before. Holds only the last row, so a trail of any length is checked in one pass.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    /// The `prev_digest` the next row must carry; `None` accepts any (a copy may start
    /// mid-trail: an export with `--run` or `--since`).
    expected_prev: Option<String>,
    last: Option<RowPlace>,
    rows: u64,
}

impl ChainCheck {
    /// For the whole trail: its first row follows nothing.
    pub fn from_start() -> ChainCheck {
        ChainCheck { expected_prev: Some(String::new()), last: None, rows: 0 }
    }

    /// For a copy, which may begin anywhere in the trail.
    pub fn from_anywhere() -> ChainCheck {
        ChainCheck { expected_prev: None, last: None, rows: 0 }
    }

    /// Checks the next row; its cells are as the CSV carries them.
    pub fn push<S: AsRef<str>>(
        &mut self,
        place: RowPlace,
        cells: &[S],
        prev: &str,
        digest: &str,
    ) -> Result<(), ChainBreak> {
        let what = describe(cells);
        if link_digest(prev, cells) != digest {
            return Err(ChainBreak::Changed { place, what });
        }
        if let Some(expected) = &self.expected_prev {
            if prev != expected {
                return Err(unlinked(self.last, place, what));
            }
        }
        self.expected_prev = Some(digest.to_string());
        self.last = Some(place);
        self.rows += 1;
        Ok(())
    }

    /// Rows checked so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The last row checked.
    pub fn last(&self) -> Option<RowPlace> {
        self.last
    }

    /// The digest of the last row checked: the trail's head, worth keeping elsewhere.
    pub fn head(&self) -> Option<&str> {
        self.expected_prev.as_deref().filter(|head| !head.is_empty())
    }
}

/// A row that does not follow the one before: a gap in the database's ids says rows were
/// removed; anything else is a reordering (or a row before it rewritten with a new digest).
fn unlinked(last: Option<RowPlace>, place: RowPlace, what: String) -> ChainBreak {
    match (last, place) {
        (Some(RowPlace::Row(before)), RowPlace::Row(id)) if id > before + 1 => {
            ChainBreak::Removed { first: before + 1, last: id - 1, after: Some(before), what }
        }
        (None, RowPlace::Row(id)) if id > 1 => {
            ChainBreak::Removed { first: 1, last: id - 1, after: None, what }
        }
        _ => ChainBreak::Unlinked { place, before: last, what },
    }
}

/// "run r1, Contracts subscription:S contractName": enough to find the row.
fn describe<S: AsRef<str>>(cells: &[S]) -> String {
    let cell = |index: usize| cells.get(index).map_or("", AsRef::as_ref);
    format!("run {}, {} {} {}", cell(0), cell(3), cell(5), cell(6))
}

/// Checks an exported copy of the trail: its header, then every row in file order.
pub fn verify_csv(input: impl std::io::Read) -> Result<Result<ChainCheck, ChainBreak>, CopyError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let header = reader.headers().map_err(CopyError::Csv)?;
    let expected: Vec<&str> = COLUMNS.iter().chain(CHAIN_COLUMNS.iter()).copied().collect();
    if header.iter().collect::<Vec<_>>() != expected {
        return Err(CopyError::Header { expected: expected.join(",") });
    }
    let mut check = ChainCheck::from_anywhere();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(CopyError::Csv)? {
        let line = record.position().map_or(0, csv::Position::line);
        let cells: Vec<&str> = record.iter().take(COLUMNS.len()).collect();
        let (prev, digest) = (record.get(13).unwrap_or(""), record.get(14).unwrap_or(""));
        if let Err(broken) = check.push(RowPlace::Line(line), &cells, prev, digest) {
            return Ok(Err(broken));
        }
    }
    Ok(Ok(check))
}

/// A copy that is not an audit CSV with its chain at all.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("not an audit trail with its chain: the header must be {expected}")]
    Header { expected: String },
    #[error(transparent)]
    Csv(csv::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(field: &str, message: &str) -> AuditRow {
        AuditRow {
            run_id: "r1".into(),
            at: "2026-11-24T06:00:00Z".parse().expect("time"),
            action: "create".into(),
            entity: "ContractCharges".into(),
            autotask_id: Some(7),
            key: "subscription:S/charge:2026-11-01".into(),
            field: field.into(),
            old_value: None,
            new_value: Some("-5.0000".into()),
            rule: "mappings/microsoft.cmat:50".into(),
            outcome: AuditOutcome::Applied,
            http_status: Some(200),
            message: message.into(),
        }
    }

    /// Rows chained as the store chains them.
    fn chain(rows: Vec<AuditRow>) -> Vec<ChainedAuditRow> {
        let mut prev = String::new();
        let mut id = 0;
        rows.into_iter()
            .map(|row| {
                let digest = link_digest(&prev, &cells(&row));
                id += 1;
                let prev_digest = std::mem::replace(&mut prev, digest.clone());
                ChainedAuditRow { id, row, prev_digest, digest }
            })
            .collect()
    }

    fn csv_of(rows: &[ChainedAuditRow]) -> String {
        let mut out = Vec::new();
        write_csv(rows, &mut out).expect("csv");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn rows_come_out_in_spec_column_order_then_the_chain() {
        let chained = chain(vec![row("unitPrice", "=HYPERLINK()")]);
        let digest = &chained[0].digest;
        assert_eq!(
            csv_of(&chained),
            format!(
                "run_id,at,action,entity,autotask_id,key,field,old_value,new_value,rule,outcome,http_status,message,prev_digest,digest\n\
                 r1,2026-11-24T06:00:00Z,create,ContractCharges,7,subscription:S/charge:2026-11-01,unitPrice,,'-5.0000,mappings/microsoft.cmat:50,applied,200,'=HYPERLINK(),,{digest}\n"
            )
        );
    }

    fn any_row() -> impl Strategy<Value = AuditRow> {
        (
            "[a-zA-Z=+@, \"\n'-]{0,12}",
            "[a-zA-Z=+@, \"\n'-]{0,12}",
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(field, message, id)| AuditRow { autotask_id: id, ..row(&field, &message) })
    }

    proptest! {
        /// An exported copy verifies from its own bytes; changing, removing or swapping any
        /// one row of it is found, at that row's line (or the line after a removed one).
        #[test]
        fn a_copy_verifies_and_one_tampered_row_is_named(
            rows in proptest::collection::vec(any_row(), 2..12),
            pick in any::<proptest::sample::Index>(),
            tampering in 0..3u8,
        ) {
            let chained = chain(rows);
            let intact = verify_csv(csv_of(&chained).as_bytes()).expect("header");
            let check = intact.map_err(|broken| TestCaseError::fail(broken.to_string()))?;
            prop_assert_eq!(check.rows(), chained.len() as u64);
            prop_assert_eq!(check.head(), chained.last().map(|c| c.digest.as_str()));

            let at = pick.index(chained.len() - 1);
            // Removing the last row of a copy leaves a shorter valid copy: the database's
            // recorded end catches that one, a copy cannot.
            prop_assume!(!(tampering == 1 && at + 1 == chained.len() - 1));
            let mut copy = chained.clone();
            match tampering {
                0 => copy[at].row.new_value = Some("tampered".into()),
                1 => { copy.remove(at + 1); }
                _ => copy.swap(at, at + 1),
            }
            let verdict = verify_csv(csv_of(&copy).as_bytes()).expect("header");
            let broken = verdict.expect_err("tampering found");
            // The row found is the tampered one, or the one after a removed row; a copy may
            // begin mid-trail, so rows swapped at its start are found at its second row. Its
            // line is where that record starts (a cell may hold line breaks).
            let index = match tampering { 1 => at + 1, 2 if at == 0 => 1, _ => at };
            let text = csv_of(&copy);
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let record = reader.records().nth(index).expect("row").expect("record");
            let line = record.position().expect("position").line();
            match broken {
                ChainBreak::Changed { place, .. } | ChainBreak::Unlinked { place, .. } => {
                    prop_assert_eq!(place, RowPlace::Line(line))
                }
                other => prop_assert!(false, "{}", other),
            }
        }
    }
}
