use std::str::FromStr;

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::audit::{ChainBreak, RowPlace};
use cmat_engine::billing::{BillLine, LineSource};
use cmat_engine::snapshot::{
    BillingCode, ChangeMark, Company, Contract, ContractCharge, ContractService,
    ContractServiceUnit, PullMarks, Service, Snapshot,
};

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn line(org: &str, date: &str, item: &str, quantity: &str, row: u64) -> BillLine {
    BillLine {
        source: LineSource { file: "bill.csv".into(), row },
        billing_date: day(date),
        service_name: "Microsoft NCE".into(),
        broker_name: "Microsoft".into(),
        organization_name: org.into(),
        customer_number: format!("C-{org}"),
        product_name: format!("Product {item}"),
        item_code: item.into(),
        quantity: dec(quantity),
        unit_cost_price: dec("10.5000"),
        unit_sales_price: dec("12.00"),
        total_cost: dec("10.5000") * dec(quantity),
        total_sales: dec("12.00") * dec(quantity),
        currency_code: "EUR".into(),
        product_id: format!("P-{item}"),
        subscription_id: format!("sub-{org}"),
        subscription_name: "Subscription".into(),
        autotask_company_id: Some(29683501),
        ..Default::default()
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join(".cmat/state.db"), Access::Write).expect("open")
}

fn import(store: &mut Store, name: &str, lines: &[BillLine]) -> ImportSummary {
    let mut import = store.begin_import(name).expect("begin");
    for line in lines {
        import.add_line(line).expect("add");
    }
    import.finish().expect("finish")
}

fn key(org: &str, date: &str) -> BillKey {
    BillKey { organization_name: org.into(), billing_date: day(date) }
}

#[test]
fn open_creates_migrates_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    let store = Store::open(&dir.path().join(".cmat/state.db"), Access::Read).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

fn page_size(store: &Store) -> u32 {
    store.conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_new_database_has_16k_pages_and_an_older_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(page_size(&open(&dir)), 16384);

    // A database an older cmat created with SQLite's default pages.
    let old = dir.path().join("old.db");
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
        .unwrap();
    drop(conn);
    let mut store = Store::open(&old, Access::Write).unwrap();
    assert_eq!(page_size(&store), 4096);
    import(&mut store, "bill.csv", &[line("Contoso Ltd", "2026-10-01", "A", "3", 2)]);
    assert_eq!(store.bill_lines().unwrap().len(), 1);
}

#[cfg(unix)]
#[test]
fn state_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&dir);
    let mode =
        |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(".cmat"), 0o700);
    assert_eq!(mode(".cmat/state.db"), 0o600);
    assert_eq!(mode(".cmat/lock"), 0o600);
}

#[test]
fn a_second_writer_is_told_the_workspace_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir);
    let err = match Store::open(&dir.path().join(".cmat/state.db"), Access::Write) {
        Err(err) => err,
        Ok(_) => panic!("second writer got the lock"),
    };
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "workspace is busy: another cmat (pid {}, `",
            std::process::id()
        )),
        "{text}"
    );
    // Readers are never blocked.
    Store::open(&dir.path().join(".cmat/state.db"), Access::Read).unwrap();
    drop(_first);
    Store::open(&dir.path().join(".cmat/state.db"), Access::Write).unwrap();
}

/// Opens a database migrated to `version` only, as an older cmat left it.
fn open_at_version(path: &std::path::Path, version: usize) -> Store {
    let mut store =
        Store { conn: Connection::open(path).unwrap(), path: path.to_path_buf(), _lock: None };
    store.configure().unwrap();
    store.migrate(&MIGRATIONS[..version]).unwrap();
    store
}

#[test]
fn migrates_from_an_empty_file_and_from_each_earlier_version() {
    for version in 0..=MIGRATIONS.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"").unwrap();
        let mut old = open_at_version(&path, version);
        assert_eq!(old.schema_version().unwrap(), version as u32);
        // From 0009 on, the bills tables are today's (later migrations add other tables).
        if version >= 9 {
            import(&mut old, "old.csv", &[line("Contoso Ltd", "2026-10-01", "A", "3", 2)]);
            old.set_meta("k", "v").unwrap();
        } else if version >= 1 {
            // With the columns of 0001 (and 0005's key) only: today's import writes columns
            // and tables later migrations add (0006's totals, 0009's organization groups).
            let bill = if version >= 5 {
                "INSERT INTO bills (id, organization_key, organization_name, billing_date,
                                    content_sha256, revision, line_count, imported_at, source_file)
                 VALUES (1, 'number:C-1', 'Contoso Ltd', '2026-10-01', 'sha256:x', 1, 1,
                         '2026-10-02T00:00:00Z', 'old.csv');"
            } else {
                "INSERT INTO bills (id, organization_name, billing_date, content_sha256,
                                    revision, line_count, imported_at, source_file)
                 VALUES (1, 'Contoso Ltd', '2026-10-01', 'sha256:x', 1, 1,
                         '2026-10-02T00:00:00Z', 'old.csv');"
            };
            old.conn.execute_batch(bill).unwrap();
            old.conn
                .execute_batch(
                    "
                     INSERT INTO bill_lines (bill_id, source_row, service_name, broker_name,
                         customer_number, product_name, item_code, quantity, unit_cost_price,
                         unit_sales_price, total_cost, total_sales, currency_code, product_id,
                         subscription_id, subscription_name, autotask_company_id)
                     VALUES (1, 2, 'Microsoft NCE', 'Microsoft', 'C-1', 'Product A', 'A', '3',
                             '10.5', '12', '31.5', '36', 'EUR', 'P-A', 'sub-1', 'S', 29683501);",
                )
                .unwrap();
            old.set_meta("k", "v").unwrap();
        }
        drop(old);
        let store = Store::open(&path, Access::Write).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION, "from {version}");
        if version >= 1 {
            assert_eq!(store.bill_lines().unwrap().len(), 1);
            assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v"));
        }
        if (1..9).contains(&version) {
            // Migration 0010 moved the row of `bill_lines` into a block, exactly, and gave the
            // bill the totals a bill imported before 0006 lacked.
            let line = &store.bill_lines().unwrap()[0];
            assert_eq!(
                (
                    line.source.to_string(),
                    line.quantity.to_string(),
                    line.unit_cost_price.to_string(),
                    line.total_cost.to_string(),
                    line.autotask_company_id,
                    line.subscription_id.as_str(),
                ),
                (
                    "old.csv:2".to_string(),
                    "3".into(),
                    "10.5".into(),
                    "31.5".into(),
                    Some(29683501),
                    "sub-1"
                ),
                "from {version}"
            );
            let history = store.bill_history(&[]).unwrap();
            assert_eq!(history.by_date[&day("2026-10-01")], (dec("36"), dec("31.5")));
            assert_eq!(store.bills().unwrap()[0].subscriptions, 1);
        }
        // Every table of the latest schema is usable.
        store.load_snapshot().unwrap();
        store.audit_rows(&AuditFilter::default()).unwrap();
        store.journal_unresolved().unwrap();
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path, Access::Write).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(conn);
    let err = Store::open(&path, Access::Read).err().expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
}

#[test]
fn import_new_unchanged_and_restated() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let october = vec![
        line("Contoso Ltd", "2026-10-01", "A", "25", 2),
        line("Contoso Ltd", "2026-10-01", "B", "10", 3),
        line("Fabrikam Inc", "2026-10-01", "A", "5", 4),
    ];
    let summary = import(&mut store, "oct.csv", &october);
    assert_eq!(summary.lines, 3);
    assert_eq!(
        summary.new_bills,
        vec![key("Contoso Ltd", "2026-10-01"), key("Fabrikam Inc", "2026-10-01")]
    );
    let digest = store.inputs_digest().unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");

    // Same content, other order and rows, trailing zeros: unchanged, nothing written.
    let mut again = october.clone();
    again.reverse();
    again[0].quantity = dec("5.00");
    again[0].source.row = 99;
    let summary = import(&mut store, "oct-again.csv", &again);
    assert!(summary.new_bills.is_empty() && summary.restated_bills.is_empty());
    assert_eq!(summary.unchanged_bills.len(), 2);
    assert_eq!(store.inputs_digest().unwrap(), digest);
    assert_eq!(store.bills().unwrap()[0].source_file, "oct.csv");

    // Fabrikam restated: its lines replaced, revision 2; Contoso untouched.
    let restated = vec![
        line("Fabrikam Inc", "2026-10-01", "A", "6", 2),
        line("Fabrikam Inc", "2026-10-01", "C", "1.5", 3),
    ];
    let summary = import(&mut store, "oct-restated.csv", &restated);
    assert_eq!(summary.restated_bills, vec![key("Fabrikam Inc", "2026-10-01")]);
    assert_ne!(store.inputs_digest().unwrap(), digest);
    let bills = store.bills().unwrap();
    assert_eq!(
        bills
            .iter()
            .map(|b| (b.key.organization_name.as_str(), b.revision, b.lines))
            .collect::<Vec<_>>(),
        vec![("Contoso Ltd", 1, 2), ("Fabrikam Inc", 2, 2)]
    );
    let lines = store.bill_lines().unwrap();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2], {
        let mut l = restated[0].clone();
        l.source.file = "oct-restated.csv".into();
        l
    });
    assert_eq!(lines[3].quantity.to_string(), "1.5");
    assert_eq!(lines[0], {
        let mut l = october[0].clone();
        l.source.file = "oct.csv".into();
        l
    });
}

#[test]
fn money_keeps_its_scale_and_never_passes_through_floats() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let mut l = line("Contoso Ltd", "2026-10-01", "A", "0.1", 2);
    l.total_sales = dec("0.3000000000000000000000000001");
    l.unit_cost_price = dec("-12.3400");
    import(&mut store, "x.csv", std::slice::from_ref(&l));
    let back = &store.bill_lines().unwrap()[0];
    assert_eq!(back.total_sales.to_string(), "0.3000000000000000000000000001");
    assert_eq!(back.unit_cost_price.to_string(), "-12.3400");
    assert_eq!(back.quantity.to_string(), "0.1");
}

#[test]
fn dropping_an_import_rolls_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    import(&mut store, "a.csv", &[line("Contoso Ltd", "2026-10-01", "A", "1", 2)]);
    let digest = store.inputs_digest().unwrap();
    {
        let mut import = store.begin_import("b.csv").unwrap();
        import.add_line(&line("Contoso Ltd", "2026-10-01", "A", "2", 2)).unwrap();
        import.add_line(&line("Northwind Traders", "2026-10-01", "A", "2", 3)).unwrap();
    }
    assert_eq!(store.inputs_digest().unwrap(), digest);
    assert_eq!(store.bills().unwrap().len(), 1);
    // And the store is usable afterwards.
    let summary = import(&mut store, "c.csv", &[line("Contoso Ltd", "2026-10-01", "A", "2", 2)]);
    assert_eq!(summary.restated_bills.len(), 1);
}

#[test]
fn organizations_report_their_links() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let mut unlinked = line("Woodgrove Bank", "2026-10-01", "A", "1", 3);
    unlinked.autotask_company_id = None;
    import(&mut store, "a.csv", &[line("Contoso Ltd", "2026-10-01", "A", "1", 2), unlinked]);
    let orgs = store.organizations().unwrap();
    assert_eq!(orgs[0].name, "Contoso Ltd");
    assert_eq!(orgs[0].autotask_company_ids, vec![29683501]);
    assert_eq!(orgs[1].autotask_company_ids, Vec::<i64>::new());
}

fn sample_snapshot() -> Snapshot {
    let mut s = Snapshot {
        refreshed_at: Some(Utc.with_ymd_and_hms(2026, 11, 24, 6, 0, 0).unwrap()),
        ..Snapshot::default()
    };
    s.companies.insert(
        29683501,
        Company {
            id: 29683501,
            company_name: "Contoso Ltd".into(),
            is_active: true,
            currency_id: None,
        },
    );
    s.contracts.insert(
        4410,
        Contract {
            id: 4410,
            company_id: 29683501,
            contract_name: "Microsoft 365 - Contoso Ltd".into(),
            contract_type: 7,
            status: 1,
            start_date: day("2026-10-01"),
            end_date: day("2027-09-30"),
            service_level_agreement_id: Some(3),
            contract_category: None,
            subscription_id: Some("6f1c".into()),
        },
    );
    s.services.insert(
        812,
        Service {
            id: 812,
            name: "Microsoft 365 Business Premium".into(),
            sku: Some("CFQ7TTC0LCHC".into()),
            billing_code_id: 29682801,
            period_type: 3,
            unit_price: dec("20.6000"),
            unit_cost: None,
            is_active: true,
        },
    );
    s.contract_services.insert(
        9001,
        ContractService {
            id: 9001,
            contract_id: 4410,
            service_id: 812,
            adjusted_price: Some(dec("20.60")),
            unit_cost: Some(dec("17.51")),
            foreign_currency: false,
            invoice_description: None,
        },
    );
    s.contract_service_units.insert(
        77,
        ContractServiceUnit {
            id: 77,
            contract_id: 4410,
            contract_service_id: 9001,
            service_id: 812,
            start_date: day("2026-10-01"),
            end_date: day("2026-10-31"),
            units: 25,
            price: Some(dec("20.60")),
            cost: None,
        },
    );
    s.charges.insert(
        5,
        ContractCharge {
            id: 5,
            contract_id: 4410,
            name: "Azure 2026-10".into(),
            description: Some("consumption".into()),
            date_purchased: day("2026-10-01"),
            charge_type: 1,
            unit_quantity: dec("1"),
            unit_price: dec("1234.5600"),
            unit_cost: Some(dec("1000.0001")),
            billing_code_id: Some(29682802),
            is_billed: false,
        },
    );
    s.billing_codes.insert(
        29682801,
        BillingCode { id: 29682801, name: "Recurring".into(), use_type: 2, is_active: true },
    );
    s.picklists = cmat_testkit::tenant::reference_picklists();
    // A hidden cost stays unknown through the store, never 0.
    s.charges.get_mut(&5).expect("charge").unit_cost = None;
    s
}

#[test]
fn snapshot_round_trips_merges_and_removes_charges() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    assert_eq!(store.load_snapshot().unwrap(), Snapshot::default());
    let snapshot = sample_snapshot();
    store.replace_snapshot(&snapshot).unwrap();
    assert_eq!(store.load_snapshot().unwrap(), snapshot);

    let mut update = Snapshot::default();
    let mut charge = snapshot.charges[&5].clone();
    charge.is_billed = true;
    update.charges.insert(5, charge.clone());
    let mut other = charge.clone();
    other.id = 6;
    update.charges.insert(6, other);
    update.refreshed_at = Some(Utc::now());
    store.merge_snapshot(&update).unwrap();
    let merged = store.load_snapshot().unwrap();
    assert_eq!(merged.refreshed_at, snapshot.refreshed_at);
    assert_eq!(merged.charges.len(), 2);
    assert!(merged.charges[&5].is_billed);
    assert_eq!(merged.companies, snapshot.companies);

    store.remove_charges(&[6, 404]).unwrap();
    assert_eq!(store.load_snapshot().unwrap().charges.keys().collect::<Vec<_>>(), vec![&5]);

    store.replace_snapshot(&Snapshot::default()).unwrap();
    assert_eq!(store.load_snapshot().unwrap(), Snapshot::default());
    assert_eq!(store.snapshot_counts().unwrap(), SnapshotCounts::default());
}

#[test]
fn pull_marks_are_stored_with_their_snapshot_and_kept_by_a_scope_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    assert_eq!(store.pull_marks().unwrap(), PullMarks::default());
    let at = Utc::now();
    let mark = ChangeMark {
        fields: vec!["lastModifiedDateTime".into()],
        newest: at,
        full_read_at: at,
        conversion: "udf=Subscription ID".into(),
    };
    let marks = PullMarks {
        entities: [("Contracts".to_string(), mark)].into(),
        picklists_read_at: None,
        ..PullMarks::default()
    };
    store.replace_pulled_snapshot(&sample_snapshot(), &marks).unwrap();
    assert_eq!(store.pull_marks().unwrap(), marks);
    // apply replaces the records it re-read; the marks still describe the last pull.
    store.replace_snapshot(&Snapshot::default()).unwrap();
    assert_eq!(store.pull_marks().unwrap(), marks);
    // Marks this build cannot read only cost a full pull.
    store.set_meta(meta_keys::PULL_MARKS, "{not json").unwrap();
    assert_eq!(store.pull_marks().unwrap(), PullMarks::default());
}

fn intent(change_ref: &str) -> JournalIntent {
    JournalIntent {
        run_id: "run-1".into(),
        change_ref: change_ref.into(),
        action: "create".into(),
        entity: "Contracts".into(),
        key: format!("subscription:{change_ref}"),
        request_body: "{}".into(),
    }
}

#[test]
fn journal_keeps_unresolved_entries_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let a = store.journal_intent(&intent("c1")).unwrap();
    let b = store.journal_intent(&intent("c2")).unwrap();
    let c = store.journal_intent(&intent("c3")).unwrap();
    store.journal_outcome(a, &JournalOutcome::Done { autotask_id: Some(1) }).unwrap();
    store.journal_outcome(c, &JournalOutcome::Unknown { message: "timeout".into() }).unwrap();
    let open_entries = store.journal_unresolved().unwrap();
    assert_eq!(open_entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b, c]);
    assert_eq!(open_entries[0].intent, intent("c2"));
    assert_eq!(open_entries[0].outcome, JournalOutcome::Pending);
    assert_eq!(open_entries[1].outcome, JournalOutcome::Unknown { message: "timeout".into() });
    assert!(store.journal_outcome(999, &JournalOutcome::Pending).is_err());
}

fn audit(run: &str, at: chrono::DateTime<Utc>, field: &str) -> AuditRow {
    AuditRow {
        run_id: run.into(),
        at,
        action: "update".into(),
        entity: "ContractServices".into(),
        autotask_id: Some(9001),
        key: "subscription:6f1c/item:A".into(),
        field: field.into(),
        old_value: Some("=1+1".into()),
        new_value: None,
        rule: "mappings/microsoft.cmat:20".into(),
        outcome: AuditOutcome::Applied,
        http_status: Some(200),
        message: String::new(),
    }
}

#[test]
fn audit_is_append_only_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    // 23:30 at UTC-1 is the next day in UTC: `since` compares the UTC date.
    let late = Utc.with_ymd_and_hms(2026, 11, 2, 0, 30, 0).unwrap()
        + chrono::Duration::nanoseconds(123_456_789);
    let rows = vec![
        audit("r1", Utc.with_ymd_and_hms(2026, 11, 1, 23, 59, 59).unwrap(), "unitPrice"),
        audit("r2", late, "units"),
        audit("r1", Utc.with_ymd_and_hms(2026, 11, 3, 8, 0, 0).unwrap(), "unitCost"),
    ];
    store.append_audit(&rows).unwrap();
    assert_eq!(store.audit_rows(&AuditFilter::default()).unwrap(), rows);
    let r1 = store.audit_rows(&AuditFilter { run_id: Some("r1".into()), since: None }).unwrap();
    assert_eq!(r1, vec![rows[0].clone(), rows[2].clone()]);
    let since =
        store.audit_rows(&AuditFilter { run_id: None, since: Some(day("2026-11-02")) }).unwrap();
    assert_eq!(since, rows[1..].to_vec());

    for sql in ["UPDATE audit SET message = 'x'", "DELETE FROM audit"] {
        let err = store.conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(store.audit_rows(&AuditFilter::default()).unwrap().len(), 3);
}

#[test]
fn meta_values_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    assert_eq!(store.get_meta(meta_keys::LAST_SYNC_AT).unwrap(), None);
    store.set_meta(meta_keys::LAST_SYNC_AT, "a").unwrap();
    store.set_meta(meta_keys::LAST_SYNC_AT, "b").unwrap();
    assert_eq!(store.get_meta(meta_keys::LAST_SYNC_AT).unwrap().as_deref(), Some("b"));
}

/// Migration 0005: a line's Payment Frequency and Organization Currency Code are kept; a line
/// without them hashes as before the migration (no bill turns into a restatement by upgrading).
#[test]
fn payment_frequency_and_organization_currency_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let plain = line("Contoso", "2026-10-01", "A", "2", 2);
    let mut import = store.begin_import("a.csv").unwrap();
    import.add_line(&plain).unwrap();
    import.finish().unwrap();
    let before = store.inputs_digest().unwrap();
    let mut with_terms = line("Contoso", "2026-10-01", "A", "2", 2);
    with_terms.payment_frequency = "Annual".into();
    with_terms.organization_currency_code = "SEK".into();
    let mut import = store.begin_import("b.csv").unwrap();
    import.add_line(&with_terms).unwrap();
    let summary = import.finish().unwrap();
    assert_eq!(summary.restated_bills.len(), 1, "new terms are a change");
    let lines = store.bill_lines().unwrap();
    assert_eq!(lines[0].payment_frequency, "Annual");
    assert_eq!(lines[0].organization_currency_code, "SEK");
    assert_ne!(store.inputs_digest().unwrap(), before);
}

/// Issue #16: a bill is keyed on the Customer Number when the lines carry one: a renamed
/// organization's bill is restated, not doubled, and two organizations of one name stay apart.
#[test]
fn bills_are_keyed_on_the_customer_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let mut first = line("Contoso", "2026-10-01", "A", "2", 2);
    first.customer_number = "CM-1".into();
    let mut namesake = line("Contoso", "2026-10-01", "B", "1", 3);
    namesake.customer_number = "CM-2".into();
    let summary = import(&mut store, "a.csv", &[first.clone(), namesake]);
    assert_eq!(summary.new_bills.len(), 2, "two organizations of one name");

    let mut renamed = first.clone();
    renamed.organization_name = "Contoso Group".into();
    let summary = import(&mut store, "b.csv", &[renamed]);
    assert_eq!((summary.new_bills.len(), summary.unchanged_bills.len()), (0, 1));
    let names: Vec<String> =
        store.bills().unwrap().into_iter().map(|b| b.key.organization_name).collect();
    assert_eq!(names, ["Contoso", "Contoso Group"]);
    assert_eq!(store.bill_lines().unwrap().len(), 2, "nothing counted twice");
}

/// Migration 0005 keys older bills by their lines' Customer Number; when a rename had doubled
/// a bill (two names, one number, one date), the later import is kept with its lines.
#[test]
fn migration_0005_keys_older_bills_and_undoubles_renames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    let old = open_at_version(&path, 3);
    old.conn
        .execute_batch(
            "INSERT INTO bills (id, organization_name, billing_date, content_sha256, revision,
                                line_count, imported_at, source_file)
             VALUES (1, 'Contoso Ltd', '2026-10-01', 'sha256:a', 1, 1, '2026-10-02T00:00:00Z', 'a.csv'),
                    (2, 'Contoso Group', '2026-10-01', 'sha256:b', 1, 1, '2026-10-03T00:00:00Z', 'b.csv'),
                    (3, 'Fabrikam', '2026-10-01', 'sha256:c', 1, 1, '2026-10-02T00:00:00Z', 'a.csv');
             INSERT INTO bill_lines (bill_id, source_row, service_name, broker_name,
                 customer_number, product_name, item_code, quantity, unit_cost_price,
                 unit_sales_price, total_cost, total_sales, currency_code, product_id,
                 subscription_id, subscription_name, autotask_company_id)
             VALUES (1, 2, 'S', 'B', 'CM-1', 'P', 'A', '3', '1', '1', '3', '3', 'EUR', 'P', 's1', 'S', 1),
                    (2, 2, 'S', 'B', 'CM-1', 'P', 'A', '4', '1', '1', '4', '4', 'EUR', 'P', 's1', 'S', 1),
                    (3, 2, 'S', 'B', '', 'P', 'A', '5', '1', '1', '5', '5', 'EUR', 'P', 's2', 'S', 2);",
        )
        .unwrap();
    drop(old);
    let store = Store::open(&path, Access::Write).unwrap();
    let bills: Vec<(String, u64)> =
        store.bills().unwrap().into_iter().map(|b| (b.key.organization_name, b.lines)).collect();
    assert_eq!(bills, [("Contoso Group".to_string(), 1), ("Fabrikam".to_string(), 1)]);
    let quantities: Vec<String> =
        store.bill_lines().unwrap().iter().map(|l| l.quantity.to_string()).collect();
    assert_eq!(quantities, ["4", "5"]);
}

/// Migration 0006: import keeps each bill's exact totals per service and subscription, and
/// the review's history reads them, restatements included. (A bill imported before them gets
/// them from migration 0010: `migrates_from_an_empty_file_and_from_each_earlier_version`.)
#[test]
fn bill_totals_give_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    let mut azure = line("Fabrikam", "2026-10-01", "M1", "1.5", 2);
    azure.service_name = "Azure Plan".into();
    let mut meter = line("Fabrikam", "2026-10-01", "M2", "0.3333", 3);
    meter.service_name = "Azure Plan".into();
    import(&mut store, "oct.csv", &[line("Contoso", "2026-10-01", "A", "3", 2), azure, meter]);
    import(&mut store, "nov.csv", &[line("Contoso", "2026-11-01", "A", "4", 2)]);
    // A restatement replaces the bill's totals with its lines.
    import(&mut store, "nov-restated.csv", &[line("Contoso", "2026-11-01", "A", "5", 2)]);
    let services = vec!["Azure Plan".to_string()];
    let from_totals = store.bill_history(&services).expect("history");
    assert_eq!(from_totals.by_date[&day("2026-10-01")], (dec("57.9996"), dec("50.74965")));
    assert_eq!(from_totals.by_date[&day("2026-11-01")], (dec("60.00"), dec("52.5000")));
    let fabrikam = &from_totals.subscriptions[&(day("2026-10-01"), "sub-Fabrikam".to_string())];
    assert_eq!((fabrikam.2, fabrikam.3), (dec("21.9996"), dec("19.24965")));
    assert_eq!(from_totals.subscriptions.len(), 1);
}

/// Migration 0010's blocks: bills larger than a block, their lines interleaved in the file,
/// come back whole and in order, and a restatement of such a bill replaces every block.
#[test]
fn bills_of_many_blocks_come_back_in_order_and_restate_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    // About 200 bytes a line: 1,500 lines are several blocks of 64 KiB.
    let long = "a meter name long enough to fill blocks quickly ".repeat(3);
    let lines = |quantity: &str| -> Vec<BillLine> {
        (0..3000u64)
            .map(|n| {
                let org = if n % 2 == 0 { "Contoso" } else { "Fabrikam" };
                let mut l = line(org, "2026-10-01", &format!("M{n}"), quantity, n + 2);
                l.product_name = format!("{long}{n}");
                l
            })
            .collect()
    };
    let first = lines("1");
    import(&mut store, "a.csv", &first);
    let blocks: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM bill_line_blocks", [], |row| row.get(0))
        .expect("count");
    assert!(blocks > 4, "{blocks} blocks");
    let by_org = |lines: &[BillLine]| -> Vec<(String, u64, String)> {
        let mut out: Vec<_> = lines
            .iter()
            .map(|l| (l.organization_name.clone(), l.source.row, l.quantity.to_string()))
            .collect();
        // What bill_lines() promises: by date, organization, then source order.
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    };
    let back = store.bill_lines().expect("lines");
    assert_eq!(
        back.iter()
            .map(|l| (l.organization_name.clone(), l.source.row, l.quantity.to_string()))
            .collect::<Vec<_>>(),
        by_org(&first)
    );
    assert_eq!(back[0].product_name, first[0].product_name);

    let restated = lines("2");
    let summary = import(&mut store, "b.csv", &restated);
    assert_eq!(summary.restated_bills.len(), 2);
    let back = store.bill_lines().expect("lines");
    assert_eq!(
        back.iter()
            .map(|l| (l.organization_name.clone(), l.source.row, l.quantity.to_string()))
            .collect::<Vec<_>>(),
        by_org(&restated)
    );
    assert_eq!(store.bill_lines_count().expect("count"), 3000);
    // The same file again: unchanged, and nothing staged is left behind.
    let summary = import(&mut store, "b.csv", &restated);
    assert_eq!(summary.unchanged_bills.len(), 2);
    assert_eq!(store.bill_lines().expect("lines").len(), 3000);
}

/// A bill's content hash is what every stored bill and synced digest was computed with: a
/// change to how lines are hashed must come with a migration, so the value is pinned (it is
/// the value cmat has written since migration 0009's columns).
#[test]
fn content_hashes_are_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    let mut grouped = line("Contoso", "2026-10-01", "B", "2.50", 3);
    grouped.payment_frequency = "Monthly".into();
    grouped.organization_groups = "Gold".into();
    grouped.autotask_company_id = None;
    import(&mut store, "bill.csv", &[line("Contoso", "2026-10-01", "A", "25", 2), grouped]);
    let hashes: Vec<String> =
        store.bills().expect("bills").into_iter().map(|bill| bill.content_sha256).collect();
    assert_eq!(hashes, ["sha256:10c63f76f56db20c2541fdcb094ca6dd923355cd7e4dbe0815a2417b145a1f97"]);
}

/// Five rows over two appends: the second append chains on from the first.
fn chained_store(dir: &tempfile::TempDir) -> Store {
    let mut store = open(dir);
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap();
    let fields = ["units", "unitPrice", "unitCost", "contractName", "endDate"];
    let rows: Vec<AuditRow> = fields.iter().map(|field| audit("r1", at, field)).collect();
    store.append_audit(&rows[..2]).unwrap();
    store.append_audit(&rows[2..]).unwrap();
    store
}

/// The trail as the tests tamper with it: with the triggers out of the way, as someone with
/// the database file and a SQLite shell would.
fn tamper(store: &Store, sql: &str) {
    store
        .conn
        .execute_batch(&format!(
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; {sql}"
        ))
        .unwrap();
}

#[test]
fn an_untouched_audit_trail_verifies_and_its_rows_link_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = chained_store(&dir);
    let chain = store.audit_chain(&AuditFilter::default()).unwrap();
    assert_eq!(chain[0].prev_digest, "");
    for pair in chain.windows(2) {
        assert_eq!(pair[1].prev_digest, pair[0].digest);
    }
    let verdict = store.verify_audit_chain().unwrap();
    assert_eq!(verdict.broken, None);
    assert_eq!(verdict.rows, 5);
    assert_eq!(verdict.head.as_deref(), Some(chain[4].digest.as_str()));
}

#[test]
fn an_edited_audit_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = chained_store(&dir);
    tamper(&store, "UPDATE audit SET new_value = '99' WHERE id = 3");
    let broken = store.verify_audit_chain().unwrap().broken.expect("broken");
    assert!(matches!(broken, ChainBreak::Changed { place: RowPlace::Row(3), .. }), "{broken}");
    assert!(broken.to_string().starts_with("audit row 3 (run r1, ContractServices"), "{broken}");
}

#[test]
fn a_removed_audit_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = chained_store(&dir);
    tamper(&store, "DELETE FROM audit WHERE id = 2");
    let broken = store.verify_audit_chain().unwrap().broken.expect("broken");
    assert_eq!(
        broken.to_string(),
        "audit row(s) 2 to 2 were removed: the trail goes from row 1 to row 3 \
         (run r1, ContractServices subscription:6f1c/item:A unitCost)"
    );
    // The first row, and the last one (the recorded end no longer matches).
    for (sql, expected) in [
        ("DELETE FROM audit WHERE id = 1", "audit row(s) 1 to 1 were removed"),
        (
            "DELETE FROM audit WHERE id = 5",
            "the trail ends at audit row 4 but its recorded end is audit row 5",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = chained_store(&dir);
        tamper(&store, sql);
        let broken = store.verify_audit_chain().unwrap().broken.expect("broken");
        assert!(broken.to_string().starts_with(expected), "{sql}: {broken}");
    }
}

#[test]
fn swapped_audit_rows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = chained_store(&dir);
    // Rows 2 and 4 change places, digests and all.
    tamper(
        &store,
        "UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 4;
         UPDATE audit SET id = 4 WHERE id = -2;",
    );
    let broken = store.verify_audit_chain().unwrap().broken.expect("broken");
    assert!(matches!(broken, ChainBreak::Unlinked { place: RowPlace::Row(2), .. }), "{broken}");
}

#[test]
fn migration_0011_chains_the_rows_an_older_cmat_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let old = open_at_version(&path, MIGRATIONS.len() - 1);
    for (id, field) in [(1, "units"), (2, "unitPrice"), (3, "=1+1")] {
        old.conn
            .execute(
                "INSERT INTO audit (id, run_id, at, action, entity, autotask_id, key, field,
                                    old_value, new_value, rule, outcome, http_status, message)
                 VALUES (?1, 'r0', '2026-10-01T06:00:00.5Z', 'adjust', 'ContractServiceAdjustments',
                         NULL, 'subscription:S/item:A', ?2, NULL, '3', 'm.cmat:1', 'applied', 200, '')",
                rusqlite::params![id, field],
            )
            .unwrap();
    }
    drop(old);
    let mut store = Store::open(&path, Access::Write).unwrap();
    let verdict = store.verify_audit_chain().unwrap();
    assert_eq!((verdict.rows, verdict.broken), (3, None));
    // New rows chain on; the trail is append-only again.
    store.append_audit(&[audit("r1", Utc::now(), "units")]).unwrap();
    assert_eq!(store.verify_audit_chain().unwrap().rows, 4);
    let err = store.conn.execute("UPDATE audit SET message = 'x'", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}
