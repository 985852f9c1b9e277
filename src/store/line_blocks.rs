//! How bill lines are kept: one bill's lines encoded one after another in blocks (a BLOB of up
//! to [`BLOCK_BYTES`]), not one SQLite row of 19 columns per line.
//!
//! Why: an import of a million lines spent most of its time in SQLite's B-tree inserts and in
//! binding 19 text columns a line (BENCHMARKS.md, issue 15); the review spent most of its time
//! reading them back. Every reader wants a bill's lines in order, never one line by a column,
//! so a block is written and read in one step. A block starts with its format byte; a text
//! equal to the same field of the line before it in the block is stored as a 0 (a bill's lines
//! repeat their service, customer number, subscription, currency…), so a block is about half
//! the size of the text it holds.
//!
//! A line (after the block's format byte, or standing alone in the import's pipeline):
//!
//! | field | encoding |
//! |---|---|
//! | source row | varint |
//! | 12 texts (see [`StoredLine`]) | varint `len + 1` then UTF-8 bytes; `0` = the previous line's |
//! | 5 amounts | one byte (scale, sign in bit 7), then the mantissa's magnitude as a varint |
//! | AutotaskCompanyID | `0` none, `1` then the zigzag varint |
//!
//! Amounts keep their exact scale ("25.00" stays "25.00"), as the TEXT columns did.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use cmat_engine::billing::BillLine;

/// The format byte every block starts with.
pub(super) const FORMAT: u8 = 1;
/// A bill's block is written once it holds this many bytes.
pub(super) const BLOCK_BYTES: usize = 64 * 1024;
const TEXTS: usize = 12;

/// A stored line, borrowed from its block. Its organization, Billing Date and file are its
/// bill's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredLine<'a> {
    pub source_row: u64,
    pub service_name: &'a str,
    pub broker_name: &'a str,
    pub customer_number: &'a str,
    pub product_name: &'a str,
    pub item_code: &'a str,
    pub currency_code: &'a str,
    pub product_id: &'a str,
    pub subscription_id: &'a str,
    pub subscription_name: &'a str,
    pub payment_frequency: &'a str,
    pub organization_currency_code: &'a str,
    pub organization_groups: &'a str,
    pub quantity: Decimal,
    pub unit_cost_price: Decimal,
    pub unit_sales_price: Decimal,
    pub total_cost: Decimal,
    pub total_sales: Decimal,
    pub autotask_company_id: Option<i64>,
}

impl<'a> StoredLine<'a> {
    pub fn of(line: &'a BillLine) -> StoredLine<'a> {
        StoredLine {
            source_row: line.source.row,
            service_name: &line.service_name,
            broker_name: &line.broker_name,
            customer_number: &line.customer_number,
            product_name: &line.product_name,
            item_code: &line.item_code,
            currency_code: &line.currency_code,
            product_id: &line.product_id,
            subscription_id: &line.subscription_id,
            subscription_name: &line.subscription_name,
            payment_frequency: &line.payment_frequency,
            organization_currency_code: &line.organization_currency_code,
            organization_groups: &line.organization_groups,
            quantity: line.quantity,
            unit_cost_price: line.unit_cost_price,
            unit_sales_price: line.unit_sales_price,
            total_cost: line.total_cost,
            total_sales: line.total_sales,
            autotask_company_id: line.autotask_company_id,
        }
    }

    /// The line as the engine takes it, with its bill's organization, date and file.
    pub fn into_bill_line(
        self,
        organization_name: &str,
        billing_date: chrono::NaiveDate,
        file: &str,
    ) -> BillLine {
        BillLine {
            source: cmat_engine::billing::LineSource {
                file: file.to_string(),
                row: self.source_row,
            },
            billing_date,
            service_name: self.service_name.to_string(),
            broker_name: self.broker_name.to_string(),
            organization_name: organization_name.to_string(),
            customer_number: self.customer_number.to_string(),
            product_name: self.product_name.to_string(),
            item_code: self.item_code.to_string(),
            quantity: self.quantity,
            unit_cost_price: self.unit_cost_price,
            unit_sales_price: self.unit_sales_price,
            total_cost: self.total_cost,
            total_sales: self.total_sales,
            currency_code: self.currency_code.to_string(),
            product_id: self.product_id.to_string(),
            subscription_id: self.subscription_id.to_string(),
            subscription_name: self.subscription_name.to_string(),
            autotask_company_id: self.autotask_company_id,
            payment_frequency: self.payment_frequency.to_string(),
            organization_currency_code: self.organization_currency_code.to_string(),
            organization_groups: self.organization_groups.to_string(),
        }
    }

    /// The texts in the order they are stored (and hashed: the first nine, then the three that
    /// later migrations added).
    pub(super) fn texts(&self) -> [&'a str; TEXTS] {
        [
            self.service_name,
            self.broker_name,
            self.customer_number,
            self.product_name,
            self.item_code,
            self.currency_code,
            self.product_id,
            self.subscription_id,
            self.subscription_name,
            self.payment_frequency,
            self.organization_currency_code,
            self.organization_groups,
        ]
    }

    pub(super) fn amounts(&self) -> [Decimal; 5] {
        [
            self.quantity,
            self.unit_cost_price,
            self.unit_sales_price,
            self.total_cost,
            self.total_sales,
        ]
    }
}

/// A line with its texts as bytes: what the import's store thread hashes and writes into its
/// block without checking a dozen texts as UTF-8 again (the parsing thread did).
#[derive(Debug, Clone, Copy)]
pub(super) struct RawLine<'a> {
    pub(super) source_row: u64,
    /// In the order of [`StoredLine::texts`].
    pub(super) texts: [&'a [u8]; TEXTS],
    pub(super) amounts: [Decimal; 5],
    pub(super) autotask_company_id: Option<i64>,
    /// The amounts and the company id as encoded, copied into the block as they are.
    tail: &'a [u8],
}

impl<'a> RawLine<'a> {
    pub(super) fn customer_number(&self) -> &'a [u8] {
        self.texts[2]
    }
    pub(super) fn service_name(&self) -> &'a [u8] {
        self.texts[0]
    }
    pub(super) fn subscription_id(&self) -> &'a [u8] {
        self.texts[7]
    }
    pub(super) fn subscription_name(&self) -> &'a [u8] {
        self.texts[8]
    }
    pub(super) fn total_cost(&self) -> Decimal {
        self.amounts[3]
    }
    pub(super) fn total_sales(&self) -> Decimal {
        self.amounts[4]
    }
}

/// Bytes that do not decode as lines: the database was damaged or written by something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a block of stored bill lines is unreadable ({0}); restore the database from a backup or import the bills again into a new workspace")]
pub struct CorruptBlock(pub &'static str);

/// Where the texts of the line before are in a block being written (offsets into it).
#[derive(Debug, Clone, Default)]
pub(super) struct BlockWriter {
    previous: Option<[(u32, u32); TEXTS]>,
}

impl BlockWriter {
    /// Appends `line` to `block` (starting the block's format byte when it is empty).
    pub(super) fn push(&mut self, block: &mut Vec<u8>, line: &StoredLine<'_>) {
        self.push_texts(block, line.source_row, line.texts().map(str::as_bytes));
        put_amounts_and_company(block, line.amounts(), line.autotask_company_id);
    }

    /// [`push`](Self::push) for a line as the import's store thread has it.
    pub(super) fn push_raw(&mut self, block: &mut Vec<u8>, line: &RawLine<'_>) {
        self.push_texts(block, line.source_row, line.texts);
        block.extend_from_slice(line.tail);
    }

    fn push_texts(&mut self, block: &mut Vec<u8>, source_row: u64, texts: [&[u8]; TEXTS]) {
        if block.is_empty() {
            block.push(FORMAT);
            self.previous = None;
        }
        put_varint(block, u128::from(source_row));
        let mut places = [(0u32, 0u32); TEXTS];
        for (index, text) in texts.into_iter().enumerate() {
            let same = self.previous.is_some_and(|previous| {
                let (start, end) = previous[index];
                block.get(start as usize..end as usize) == Some(text)
            });
            if same {
                block.push(0);
                places[index] = self.previous.map(|p| p[index]).unwrap_or_default();
            } else {
                put_varint(block, text.len() as u128 + 1);
                let start = block.len();
                block.extend_from_slice(text);
                places[index] = (start as u32, block.len() as u32);
            }
        }
        self.previous = Some(places);
    }
}

/// `line` standing alone (every text written out), after its organization and Billing Date:
/// the form the import's parsing thread hands to the store's ([`decode_for_import`]).
pub(super) fn encode_for_import(line: &BillLine, out: &mut Vec<u8>) {
    put_varint(out, line.organization_name.len() as u128);
    out.extend_from_slice(line.organization_name.as_bytes());
    out.extend_from_slice(&line.billing_date.num_days_from_ce().to_le_bytes());
    let line = StoredLine::of(line);
    put_varint(out, u128::from(line.source_row));
    for text in line.texts() {
        put_varint(out, text.len() as u128 + 1);
        out.extend_from_slice(text.as_bytes());
    }
    put_amounts_and_company(out, line.amounts(), line.autotask_company_id);
}

/// A line encoded by [`encode_for_import`], which must be all of `bytes`: its organization,
/// Billing Date and the rest.
pub(super) fn decode_for_import(
    bytes: &[u8],
) -> Result<(&str, NaiveDate, RawLine<'_>), CorruptBlock> {
    let mut reader = Reader { bytes, previous: None };
    let length = usize::try_from(reader.varint()?).map_err(|_| CorruptBlock("length"))?;
    let organization =
        std::str::from_utf8(reader.take(length)?).map_err(|_| CorruptBlock("text not UTF-8"))?;
    let days = reader.take(4)?;
    let days = i32::from_le_bytes([days[0], days[1], days[2], days[3]]);
    let date = NaiveDate::from_num_days_from_ce_opt(days).ok_or(CorruptBlock("date"))?;
    let line = reader.raw_line()?;
    if !reader.bytes.is_empty() {
        return Err(CorruptBlock("bytes after a line"));
    }
    Ok((organization, date, line))
}

fn put_amounts_and_company(out: &mut Vec<u8>, amounts: [Decimal; 5], company: Option<i64>) {
    for amount in amounts {
        let sign = if amount.is_sign_negative() { 0x80 } else { 0 };
        out.push(amount.scale() as u8 | sign);
        put_varint(out, amount.mantissa().unsigned_abs());
    }
    match company {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_varint(out, u128::from(((id << 1) ^ (id >> 63)) as u64));
        }
    }
}

/// The lines of one block, in order.
pub(super) fn lines(block: &[u8]) -> Result<Lines<'_>, CorruptBlock> {
    match block.split_first() {
        Some((&FORMAT, rest)) => Ok(Lines { reader: Reader { bytes: rest, previous: None } }),
        Some(_) => Err(CorruptBlock("unknown format")),
        None => Err(CorruptBlock("empty block")),
    }
}

pub(super) struct Lines<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<StoredLine<'a>, CorruptBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.bytes.is_empty() {
            return None;
        }
        let line = self.reader.line();
        if line.is_err() {
            // Nothing after a bad line can be trusted.
            self.reader.bytes = &[];
        }
        Some(line)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    previous: Option<[&'a [u8]; TEXTS]>,
}

impl<'a> Reader<'a> {
    fn line(&mut self) -> Result<StoredLine<'a>, CorruptBlock> {
        let raw = self.raw_line()?;
        let mut texts = [""; TEXTS];
        for (text, bytes) in texts.iter_mut().zip(raw.texts) {
            *text = std::str::from_utf8(bytes).map_err(|_| CorruptBlock("text not UTF-8"))?;
        }
        let [service_name, broker_name, customer_number, product_name, item_code, currency_code, product_id, subscription_id, subscription_name, payment_frequency, organization_currency_code, organization_groups] =
            texts;
        let [quantity, unit_cost_price, unit_sales_price, total_cost, total_sales] = raw.amounts;
        Ok(StoredLine {
            source_row: raw.source_row,
            service_name,
            broker_name,
            customer_number,
            product_name,
            item_code,
            currency_code,
            product_id,
            subscription_id,
            subscription_name,
            payment_frequency,
            organization_currency_code,
            organization_groups,
            quantity,
            unit_cost_price,
            unit_sales_price,
            total_cost,
            total_sales,
            autotask_company_id: raw.autotask_company_id,
        })
    }

    fn raw_line(&mut self) -> Result<RawLine<'a>, CorruptBlock> {
        let source_row = u64::try_from(self.varint()?).map_err(|_| CorruptBlock("row"))?;
        let mut texts: [&[u8]; TEXTS] = [&[]; TEXTS];
        for (index, text) in texts.iter_mut().enumerate() {
            *text = match self.varint()? {
                0 => match self.previous {
                    Some(previous) => previous[index],
                    None => return Err(CorruptBlock("a repeated text on a block's first line")),
                },
                length => {
                    let length = usize::try_from(length - 1).map_err(|_| CorruptBlock("length"))?;
                    self.take(length)?
                }
            };
        }
        self.previous = Some(texts);
        let tail_start = self.bytes;
        let mut amounts = [Decimal::ZERO; 5];
        for amount in &mut amounts {
            let flags = self.byte()?;
            let magnitude = self.varint()?;
            let scale = u32::from(flags & 0x7f);
            // A Decimal's mantissa is 96 bits, its scale at most 28.
            if magnitude >> 96 != 0 || scale > 28 {
                return Err(CorruptBlock("amount"));
            }
            *amount = Decimal::from_parts(
                magnitude as u32,
                (magnitude >> 32) as u32,
                (magnitude >> 64) as u32,
                flags & 0x80 != 0,
                scale,
            );
        }
        let autotask_company_id = match self.byte()? {
            0 => None,
            1 => {
                let zigzag = u64::try_from(self.varint()?).map_err(|_| CorruptBlock("company"))?;
                Some(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
            }
            _ => return Err(CorruptBlock("company")),
        };
        let tail = &tail_start[..tail_start.len() - self.bytes.len()];
        Ok(RawLine { source_row, texts, amounts, autotask_company_id, tail })
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], CorruptBlock> {
        if self.bytes.len() < length {
            return Err(CorruptBlock("cut short"));
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, CorruptBlock> {
        let (&byte, rest) = self.bytes.split_first().ok_or(CorruptBlock("cut short"))?;
        self.bytes = rest;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u128, CorruptBlock> {
        // Most values are one byte (lengths, markers) and nearly all fit 64 bits.
        let first = self.byte()?;
        if first & 0x80 == 0 {
            return Ok(u128::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        for shift in (7..63).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(u128::from(value));
            }
        }
        let mut value = u128::from(value);
        for shift in (63..128).step_by(7) {
            let byte = self.byte()?;
            value |= u128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CorruptBlock("varint too long"))
    }
}

/// A bill's blocks in order ([`visit_bill`]).
pub(super) const SELECT_BLOCKS: &str =
    "SELECT lines FROM bill_line_blocks WHERE bill_id = ?1 ORDER BY id";

/// Calls `visit` with each line of the bill `bill_id`, in order; `blocks` is [`SELECT_BLOCKS`]
/// prepared. The lines are borrowed from SQLite's row: nothing is copied.
pub(super) fn visit_bill(
    blocks: &mut rusqlite::Statement<'_>,
    bill_id: i64,
    mut visit: impl FnMut(&StoredLine<'_>),
) -> rusqlite::Result<()> {
    let unreadable = |e: CorruptBlock| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    };
    let mut rows = blocks.query([bill_id])?;
    while let Some(row) = rows.next()? {
        let block = row.get_ref(0)?.as_blob()?;
        for line in lines(block).map_err(unreadable)? {
            visit(&line.map_err(unreadable)?);
        }
    }
    Ok(())
}

/// Migration 0010's step after its SQL: every line of `bill_lines` (the table of migrations
/// 0001 to 0009) into its bill's blocks, in order; a bill imported before migration 0006 gets
/// its `bill_totals` (the review then reads no line for the trends); the old table goes.
pub(super) fn move_lines_into_blocks(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT bill_id, source_row, service_name, broker_name, customer_number, product_name,
                item_code, quantity, unit_cost_price, unit_sales_price, total_cost, total_sales,
                currency_code, product_id, subscription_id, subscription_name,
                autotask_company_id, payment_frequency, organization_currency_code,
                organization_groups,
                NOT EXISTS (SELECT 1 FROM bill_totals t WHERE t.bill_id = l.bill_id)
         FROM bill_lines l ORDER BY bill_id, id",
    )?;
    let mut insert = conn
        .prepare("INSERT INTO bill_line_blocks (bill_id, line_count, lines) VALUES (?1, ?2, ?3)")?;
    let mut rows = read.query([])?;
    let mut moving: Option<MovingBill> = None;
    let mut writer = BlockWriter::default();
    while let Some(row) = rows.next()? {
        let bill_id: i64 = row.get(0)?;
        let line = old_line(row)?;
        let needs_totals: bool = row.get(20)?;
        if moving.as_ref().map(|m| m.bill_id) != Some(bill_id) {
            if let Some(done) = moving.take() {
                done.finish(conn, &mut insert)?;
            }
            moving = Some(MovingBill::new(bill_id, needs_totals));
        }
        let Some(bill) = moving.as_mut() else { continue };
        bill.push(&mut writer, &line, &mut insert)?;
    }
    if let Some(done) = moving {
        done.finish(conn, &mut insert)?;
    }
    drop(rows);
    drop(read);
    conn.execute_batch("DROP TABLE bill_lines;")
}

/// One row of the old `bill_lines` table (columns 1 to 19 of the migration's query), borrowed.
fn old_line<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<StoredLine<'r>> {
    use super::sql::get_decimal;
    let text = |index: usize| -> rusqlite::Result<&str> {
        row.get_ref(index)?.as_str().map_err(rusqlite::Error::from)
    };
    Ok(StoredLine {
        source_row: row.get::<_, i64>(1)?.max(0) as u64,
        service_name: text(2)?,
        broker_name: text(3)?,
        customer_number: text(4)?,
        product_name: text(5)?,
        item_code: text(6)?,
        quantity: get_decimal(row, 7)?,
        unit_cost_price: get_decimal(row, 8)?,
        unit_sales_price: get_decimal(row, 9)?,
        total_cost: get_decimal(row, 10)?,
        total_sales: get_decimal(row, 11)?,
        currency_code: text(12)?,
        product_id: text(13)?,
        subscription_id: text(14)?,
        subscription_name: text(15)?,
        autotask_company_id: row.get(16)?,
        payment_frequency: text(17)?,
        organization_currency_code: text(18)?,
        organization_groups: text(19)?,
    })
}

/// The bill being moved by [`move_lines_into_blocks`]: its open block, the lines in it, its
/// totals when it has none stored.
struct MovingBill {
    bill_id: i64,
    block: Vec<u8>,
    lines: i64,
    totals: Option<super::bills::BillTotals>,
}

impl MovingBill {
    fn new(bill_id: i64, needs_totals: bool) -> MovingBill {
        let totals = needs_totals.then(super::bills::BillTotals::default);
        MovingBill { bill_id, block: Vec::new(), lines: 0, totals }
    }

    /// Adds a line to the open block, writing the block once it is full.
    fn push(
        &mut self,
        writer: &mut BlockWriter,
        line: &StoredLine<'_>,
        insert: &mut rusqlite::Statement<'_>,
    ) -> rusqlite::Result<()> {
        if let Some(totals) = &mut self.totals {
            totals.add(line);
        }
        writer.push(&mut self.block, line);
        self.lines += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.write_block(insert)?;
        }
        Ok(())
    }

    fn write_block(&mut self, insert: &mut rusqlite::Statement<'_>) -> rusqlite::Result<()> {
        if self.lines > 0 {
            let block = std::mem::take(&mut self.block);
            insert.execute(rusqlite::params![self.bill_id, self.lines, block])?;
            self.lines = 0;
        }
        Ok(())
    }

    /// The bill's last block, and its totals when it had none.
    fn finish(
        mut self,
        conn: &rusqlite::Connection,
        insert: &mut rusqlite::Statement<'_>,
    ) -> rusqlite::Result<()> {
        self.write_block(insert)?;
        if let Some(totals) = &self.totals {
            totals.replace(conn, self.bill_id)?;
        }
        Ok(())
    }
}

#[inline]
fn put_varint(out: &mut Vec<u8>, value: u128) {
    // Most values (lengths) are one byte, and nearly all (rows, amounts' mantissas) fit 64
    // bits, where a shift is one instruction. Bytes are gathered and appended at once: one
    // capacity check, not one a byte.
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    let mut bytes = [0u8; 19];
    let mut length = 0;
    match u64::try_from(value) {
        Ok(mut value) => {
            while value >= 0x80 {
                bytes[length] = (value as u8 & 0x7f) | 0x80;
                length += 1;
                value >>= 7;
            }
            bytes[length] = value as u8;
        }
        Err(_) => {
            let mut value = value;
            while value >= 0x80 {
                bytes[length] = (value as u8 & 0x7f) | 0x80;
                length += 1;
                value >>= 7;
            }
            bytes[length] = value as u8;
        }
    }
    out.extend_from_slice(&bytes[..=length]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn line(row: u64, subscription: &str, quantity: &str, company: Option<i64>) -> BillLine {
        BillLine {
            source: cmat_engine::billing::LineSource { file: "f.csv".into(), row },
            service_name: "Microsoft NCE".into(),
            broker_name: "Microsoft".into(),
            customer_number: "C-1".into(),
            product_name: "Microsoft 365 E3 – ünïcode".into(),
            item_code: "E3".into(),
            currency_code: "EUR".into(),
            subscription_id: subscription.into(),
            quantity: Decimal::from_str(quantity).unwrap(),
            unit_cost_price: Decimal::from_str("-0.00").unwrap(),
            unit_sales_price: Decimal::from_str("79228162514264337593543950335").unwrap(),
            total_cost: Decimal::from_str("-0.0000000000000000000000000001").unwrap(),
            total_sales: Decimal::from_str("25.00").unwrap(),
            autotask_company_id: company,
            organization_groups: "A; B".into(),
            ..BillLine::default()
        }
    }

    fn exact(line: &StoredLine<'_>) -> Vec<String> {
        // Scale and sign included: "-0.00" and "25.00" come back as written.
        line.amounts().iter().map(|a| format!("{a}|{}", a.is_sign_negative())).collect()
    }

    #[test]
    fn a_block_gives_back_every_line_exactly_in_order() {
        let bill = [
            line(2, "sub-1", "25.00", Some(29683501)),
            line(3, "sub-1", "1", None),
            line(4, "sub-2", "-3", Some(-7)),
            line(u64::MAX, "", "0", Some(i64::MIN)),
        ];
        let mut block = Vec::new();
        let mut writer = BlockWriter::default();
        for line in &bill {
            writer.push(&mut block, &StoredLine::of(line));
        }
        let back: Vec<StoredLine<'_>> = lines(&block).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), bill.len());
        for (stored, original) in back.iter().zip(&bill) {
            assert_eq!(*stored, StoredLine::of(original));
            assert_eq!(exact(stored), exact(&StoredLine::of(original)));
        }
        // Repeated texts are stored once: the block is smaller than the lines standing alone.
        let mut alone = Vec::new();
        for line in &bill {
            encode_for_import(line, &mut alone);
        }
        assert!(block.len() < alone.len() * 2 / 3, "{} vs {}", block.len(), alone.len());
    }

    #[test]
    fn a_line_handed_to_the_store_round_trips() {
        let original = BillLine {
            organization_name: "Contoso <Ltd>".into(),
            billing_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            ..line(17, "sub-9", "4.5", Some(1))
        };
        let mut bytes = Vec::new();
        encode_for_import(&original, &mut bytes);
        let (organization, date, raw) = decode_for_import(&bytes).unwrap();
        assert_eq!((organization, date), ("Contoso <Ltd>", original.billing_date));
        // Into a block as the store writes it (twice: the second repeats every text), and back.
        let mut block = Vec::new();
        let mut writer = BlockWriter::default();
        writer.push_raw(&mut block, &raw);
        writer.push_raw(&mut block, &raw);
        let back: Vec<StoredLine<'_>> = lines(&block).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, [StoredLine::of(&original), StoredLine::of(&original)]);
        assert_eq!(back[1].into_bill_line(organization, date, "f.csv"), original);
        bytes.push(0);
        assert_eq!(decode_for_import(&bytes).err(), Some(CorruptBlock("bytes after a line")));
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let mut block = Vec::new();
        BlockWriter::default().push(&mut block, &StoredLine::of(&line(2, "s", "1", Some(5))));
        assert_eq!(lines(&[]).err(), Some(CorruptBlock("empty block")));
        assert_eq!(lines(&[9, 1]).err(), Some(CorruptBlock("unknown format")));
        // The format byte alone is an empty block; any cut inside the line is an error.
        assert_eq!(lines(&block[..1]).unwrap().count(), 0);
        for cut in 2..block.len() {
            let results: Vec<_> = lines(&block[..cut]).unwrap().collect();
            assert!(results.iter().any(Result::is_err), "cut at {cut}");
        }
        // A first line that claims to repeat the line before it.
        assert_eq!(
            lines(&[FORMAT, 2, 0]).unwrap().next(),
            Some(Err(CorruptBlock("a repeated text on a block's first line")))
        );
        // Every single-byte change decodes or fails, never panics.
        for at in 1..block.len() {
            for value in [0u8, 0x7f, 0x80, 0xff] {
                let mut damaged = block.clone();
                damaged[at] = value;
                let _ = lines(&damaged).unwrap().count();
            }
        }
    }
}
