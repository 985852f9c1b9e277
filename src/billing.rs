//! Cloudmore billing data as cmat understands it, whatever it came from (CSV export or API).
//! These are the source side's domain types: `import`/`cloudmore` produce them, the store
//! keeps them, the engine reads them.

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Where a line came from, for warnings and errors: "bill.csv:17" or "cloudmore:org/…".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LineSource {
    pub file: String,
    /// 1-based row in the file, counting the header as row 1.
    pub row: u64,
}

impl std::fmt::Display for LineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.row)
    }
}

/// One row of the Cloudmore General Billing Report. Money and quantities are exact decimals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BillLine {
    pub source: LineSource,
    pub billing_date: NaiveDate,
    pub service_name: String,
    pub broker_name: String,
    pub organization_name: String,
    pub customer_number: String,
    pub product_name: String,
    pub item_code: String,
    pub quantity: Decimal,
    pub unit_cost_price: Decimal,
    pub unit_sales_price: Decimal,
    pub total_cost: Decimal,
    pub total_sales: Decimal,
    pub currency_code: String,
    pub product_id: String,
    pub subscription_id: String,
    pub subscription_name: String,
    /// The organization's "AutotaskCompanyID" custom property, when the export carries it.
    pub autotask_company_id: Option<i64>,
    /// "Payment Frequency" (e.g. "Monthly", "Annual"): the subscription's term; "" when the
    /// source did not carry it.
    pub payment_frequency: String,
    /// "Organization Currency Code": the currency the organization is invoiced in; "" when the
    /// source did not carry it.
    pub organization_currency_code: String,
}

/// A bill is every line of one organization on one Billing Date; a later export of the same
/// key replaces it (a restatement).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillKey {
    pub organization_name: String,
    pub billing_date: NaiveDate,
}

/// Who a bill belongs to, as the store keys it: the Customer Number when the line carries one
/// (names change, and two organizations may share one), else the organization's name.
pub fn organization_key(line: &BillLine) -> String {
    let number = line.customer_number.trim();
    if number.is_empty() {
        format!("name:{}", line.organization_name)
    } else {
        format!("number:{number}")
    }
}

/// The Cloudmore organization custom property that links an organization to its Autotask
/// company; the General Billing Report export appends it as a column of this name.
pub const AUTOTASK_COMPANY_COLUMN: &str = "AutotaskCompanyID";
