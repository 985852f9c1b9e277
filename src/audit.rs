//! The audit trail as CSV: one row per field written, in SPEC.md's column order, safe to open
//! in a spreadsheet.

use std::io::Write;

use cmat_engine::spreadsheet::spreadsheet_safe;

use crate::store::{AuditOutcome, AuditRow};

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

pub fn write_csv(rows: &[AuditRow], out: impl Write) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS)?;
    for row in rows {
        let cells = [
            row.run_id.clone(),
            row.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            row.action.clone(),
            row.entity.clone(),
            row.autotask_id.map(|id| id.to_string()).unwrap_or_default(),
            row.key.clone(),
            row.field.clone(),
            row.old_value.clone().unwrap_or_default(),
            row.new_value.clone().unwrap_or_default(),
            row.rule.clone(),
            outcome_name(row.outcome).to_string(),
            row.http_status.map(|status| status.to_string()).unwrap_or_default(),
            row.message.clone(),
        ];
        writer.write_record(cells.iter().map(|cell| spreadsheet_safe(cell)))?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_out_in_spec_column_order() {
        let row = AuditRow {
            run_id: "r1".into(),
            at: "2026-11-24T06:00:00Z".parse().expect("time"),
            action: "create".into(),
            entity: "ContractCharges".into(),
            autotask_id: Some(7),
            key: "subscription:S/charge:2026-11-01".into(),
            field: "unitPrice".into(),
            old_value: None,
            new_value: Some("-5.0000".into()),
            rule: "mappings/microsoft.cmat:50".into(),
            outcome: AuditOutcome::Applied,
            http_status: Some(200),
            message: "=HYPERLINK()".into(),
        };
        let mut out = Vec::new();
        write_csv(&[row], &mut out).expect("csv");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "run_id,at,action,entity,autotask_id,key,field,old_value,new_value,rule,outcome,http_status,message\n\
             r1,2026-11-24T06:00:00Z,create,ContractCharges,7,subscription:S/charge:2026-11-01,unitPrice,,'-5.0000,mappings/microsoft.cmat:50,applied,200,'=HYPERLINK()\n"
        );
    }
}
