//! Text cells that leave cmat as CSV (plans, the audit trail) are opened in spreadsheets.

/// A cell a spreadsheet would run as a formula gets a leading `'` (OWASP's CSV-injection advice).
pub fn spreadsheet_safe(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        for cell in ["=SUM(A1)", "+1", "-1", "@cmd", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        assert_eq!(spreadsheet_safe("12.50"), "12.50");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
