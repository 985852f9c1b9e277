//! Cloudmore billing data as cmat understands it, whatever it came from (CSV export or API).
//! These are the source side's domain types: `import`/`cloudmore` produce them, the store
//! keeps them, the engine reads them.

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Where a line came from, for warnings and errors: "bill.csv:17" or "cloudmore:org/…".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LineSource {
    /// The file imported (or `cloudmore:…` for the API), as the user named it.
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
    /// Where the line came from, so every warning and error can point at it.
    pub source: LineSource,
    /// "Billing Date": the bill's day, which dates unit changes and charges.
    pub billing_date: NaiveDate,
    /// "Service Name" (Microsoft CSP, Azure Plan, …): decides licence or consumption billing.
    pub service_name: String,
    /// "Broker Name": the distributor, which `for broker` rules match.
    pub broker_name: String,
    /// "Organization Name": the customer, linked to an Autotask company by the rules.
    pub organization_name: String,
    /// "Customer Number": a steadier key for the customer than its name.
    pub customer_number: String,
    /// "Product Name": shown in plans, and the meter category of consumption lines.
    pub product_name: String,
    /// "Item Code": the product's sku, which finds its Autotask Service.
    pub item_code: String,
    /// "Quantity": licences (a licence product) or usage (consumption).
    pub quantity: Decimal,
    /// "Unit Cost Price": what the reseller pays a unit.
    pub unit_cost_price: Decimal,
    /// "Unit Sales Price": Cloudmore's sales price a unit, the base of most price rules.
    pub unit_sales_price: Decimal,
    /// "Total Cost": the line's cost, summed into consumption charges.
    pub total_cost: Decimal,
    /// "Total Sales": the line's sales amount, summed into consumption charges.
    pub total_sales: Decimal,
    /// "Currency Code": the currency the line's amounts are in.
    pub currency_code: String,
    /// "Product ID": Cloudmore's product id, which `for product_id` rules match.
    pub product_id: String,
    /// "Subscription ID": the subscription the line bills, one Autotask contract each.
    pub subscription_id: String,
    /// "Subscription Name": for name templates (`{subscription_name}`).
    pub subscription_name: String,
    /// The organization's "AutotaskCompanyID" custom property, when the export carries it.
    pub autotask_company_id: Option<i64>,
    /// "Payment Frequency" (e.g. "Monthly", "Annual"): the subscription's term; "" when the
    /// source did not carry it.
    pub payment_frequency: String,
    /// "Organization Currency Code": the currency the organization is invoiced in; "" when the
    /// source did not carry it.
    pub organization_currency_code: String,
    /// "Organization Groups", `;`-separated as the export writes them; "" when absent.
    pub organization_groups: String,
}

/// A bill is every line of one organization on one Billing Date; a later export of the same
/// key replaces it (a restatement).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillKey {
    /// The organization the bill is for, by name, as shown to people.
    pub organization_name: String,
    /// The bill's Billing Date.
    pub billing_date: NaiveDate,
}

/// Who a bill belongs to, as the store keys it: the Customer Number when the line carries one
/// (names change, and two organizations may share one), else the organization's name.
pub fn organization_key(line: &BillLine) -> String {
    organization_key_of(&line.organization_name, &line.customer_number)
}

/// [`organization_key`] of an organization's name and a line's Customer Number.
pub fn organization_key_of(organization_name: &str, customer_number: &str) -> String {
    let number = customer_number.trim();
    if number.is_empty() {
        format!("name:{organization_name}")
    } else {
        format!("number:{number}")
    }
}

/// The Cloudmore organization custom property that links an organization to its Autotask
/// company; the General Billing Report export appends it as a column of this name.
pub const AUTOTASK_COMPANY_COLUMN: &str = "AutotaskCompanyID";

/// Whether a line is Microsoft NCE billing (the data Microsoft publishes between the 6th and
/// the 8th of the month): a service named "… NCE …", or Cloudmore's "Microsoft 365 CSP
/// Direct" (where NCE subscriptions live).
pub fn is_nce(line: &BillLine) -> bool {
    let service = line.service_name.to_ascii_lowercase();
    service.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| word == "nce")
        || service == "microsoft 365 csp direct"
}

/// The data-readiness check `sync` runs: an organization's latest bill dated before the 8th
/// of its month, without NCE lines although its bill of the month before had some, is most
/// likely a pull made before Microsoft's NCE data landed (Cloudmore: "between the 6th and
/// 8th"). One warning per such bill, naming it; an empty list when every bill looks complete.
pub fn nce_readiness(lines: &[BillLine]) -> Vec<String> {
    use chrono::Datelike;
    use std::collections::BTreeMap;
    // Per organization: per Billing Date, (organization name, NCE line count).
    let mut bills: BTreeMap<String, BTreeMap<NaiveDate, (&str, usize)>> = BTreeMap::new();
    for line in lines {
        let entry = bills
            .entry(organization_key(line))
            .or_default()
            .entry(line.billing_date)
            .or_insert((line.organization_name.as_str(), 0));
        entry.1 += usize::from(is_nce(line));
    }
    let mut warnings = Vec::new();
    for dates in bills.values() {
        let Some((&latest, &(name, nce))) = dates.iter().next_back() else { continue };
        if latest.day() >= 8 || nce > 0 {
            continue;
        }
        let month_before = latest.with_day(1).and_then(|d| d.pred_opt());
        let earlier: usize = dates
            .iter()
            .filter(|(date, _)| {
                month_before.is_some_and(|m| date.year() == m.year() && date.month() == m.month())
            })
            .map(|(_, (_, n))| n)
            .sum();
        if earlier > 0 {
            warnings.push(format!(
                "organization \"{name}\": the {latest} bill has no Microsoft NCE lines, though the bill of {} had {earlier}; Microsoft's NCE billing lands between the 6th and the 8th, so this bill is most likely incomplete (pull again after the 8th)",
                month_before.map(|m| m.format("%Y-%m").to_string()).unwrap_or_default()
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(org: &str, date: &str, service: &str) -> BillLine {
        BillLine {
            billing_date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            organization_name: org.into(),
            customer_number: format!("C-{org}"),
            service_name: service.into(),
            ..BillLine::default()
        }
    }

    #[test]
    fn a_bill_before_the_8th_without_last_months_nce_lines_is_reported() {
        let lines = [
            line("Contoso", "2026-11-01", "Microsoft NCE"),
            line("Contoso", "2026-12-01", "Microsoft Azure"),
            line("Fabrikam", "2026-11-01", "Microsoft 365 CSP Direct"),
            line("Fabrikam", "2026-12-01", "Microsoft 365 CSP Direct"),
            line("Northwind", "2026-11-01", "Microsoft Azure"),
            line("Northwind", "2026-12-01", "Microsoft Azure"),
            line("Tailspin", "2026-11-01", "Microsoft NCE"),
            line("Tailspin", "2026-12-09", "Microsoft Azure"),
        ];
        insta::assert_snapshot!(nce_readiness(&lines).join("\n"), @r#"organization "Contoso": the 2026-12-01 bill has no Microsoft NCE lines, though the bill of 2026-11 had 1; Microsoft's NCE billing lands between the 6th and the 8th, so this bill is most likely incomplete (pull again after the 8th)"#);
    }

    #[test]
    fn nce_services() {
        assert!(is_nce(&line("o", "2026-11-01", "Microsoft NCE")));
        assert!(is_nce(&line("o", "2026-11-01", "Microsoft 365 CSP Direct")));
        assert!(!is_nce(&line("o", "2026-11-01", "Microsoft Azure")));
        assert!(!is_nce(&line("o", "2026-11-01", "Finance Tools")));
    }
}
