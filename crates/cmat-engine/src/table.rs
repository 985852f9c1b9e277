//! The snapshot's record tables, listed once. Pull, scope, refresh and the store go through
//! [`Table`] rather than naming `Snapshot`'s maps one by one, and every `match` on it is
//! exhaustive: a new entity is a variant here, and the compiler names each place that must say
//! what it does with it (its conversion, its SQL, its part of a plan's scope).

use std::collections::BTreeMap;

use crate::snapshot::Snapshot;

/// One of the [`Snapshot`]'s record tables, by the Autotask entity whose records it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `snapshot.companies`.
    Companies,
    /// `snapshot.contracts`.
    Contracts,
    /// `snapshot.services`.
    Services,
    /// `snapshot.contract_services`.
    ContractServices,
    /// `snapshot.contract_service_units`.
    ContractServiceUnits,
    /// `snapshot.charges`.
    ContractCharges,
    /// `snapshot.billing_codes`.
    BillingCodes,
}

/// Binds `$map` to `$table`'s map of a snapshot, borrowed as the bracket says (`[&snapshot]`,
/// `[&mut snapshot]`), and runs `$body` with it; each arm is typed by its own record type. The
/// one place a [`Table`] meets its field of [`Snapshot`]. With two brackets and two names, the
/// same table of two snapshots.
macro_rules! with_map {
    ([$($a:tt)+] [$($b:tt)+] $table:expr, |$x:ident, $y:ident| $body:expr) => {
        match $table {
            $crate::table::Table::Companies => { let ($x, $y) = ($($a)+.companies, $($b)+.companies); $body }
            $crate::table::Table::Contracts => { let ($x, $y) = ($($a)+.contracts, $($b)+.contracts); $body }
            $crate::table::Table::Services => { let ($x, $y) = ($($a)+.services, $($b)+.services); $body }
            $crate::table::Table::ContractServices => {
                let ($x, $y) = ($($a)+.contract_services, $($b)+.contract_services);
                $body
            }
            $crate::table::Table::ContractServiceUnits => {
                let ($x, $y) = ($($a)+.contract_service_units, $($b)+.contract_service_units);
                $body
            }
            $crate::table::Table::ContractCharges => { let ($x, $y) = ($($a)+.charges, $($b)+.charges); $body }
            $crate::table::Table::BillingCodes => {
                let ($x, $y) = ($($a)+.billing_codes, $($b)+.billing_codes);
                $body
            }
        }
    };
    ([$($borrow:tt)+] $table:expr, |$map:ident| $body:expr) => {
        match $table {
            $crate::table::Table::Companies => { let $map = $($borrow)+.companies; $body }
            $crate::table::Table::Contracts => { let $map = $($borrow)+.contracts; $body }
            $crate::table::Table::Services => { let $map = $($borrow)+.services; $body }
            $crate::table::Table::ContractServices => { let $map = $($borrow)+.contract_services; $body }
            $crate::table::Table::ContractServiceUnits => { let $map = $($borrow)+.contract_service_units; $body }
            $crate::table::Table::ContractCharges => { let $map = $($borrow)+.charges; $body }
            $crate::table::Table::BillingCodes => { let $map = $($borrow)+.billing_codes; $body }
        }
    };
}
pub(crate) use with_map;

impl Table {
    /// Every table, in the order a pull reads and reports them.
    pub const ALL: [Table; 7] = [
        Table::Companies,
        Table::Contracts,
        Table::Services,
        Table::ContractServices,
        Table::ContractServiceUnits,
        Table::ContractCharges,
        Table::BillingCodes,
    ];

    /// The Autotask entity's name: its REST path, the pull marks' key and the prefix of an
    /// incomplete record's key (`Entity/id`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Companies => "Companies",
            Table::Contracts => "Contracts",
            Table::Services => "Services",
            Table::ContractServices => "ContractServices",
            Table::ContractServiceUnits => "ContractServiceUnits",
            Table::ContractCharges => "ContractCharges",
            Table::BillingCodes => "BillingCodes",
        }
    }

    /// A record of this table as a stale plan's message names it ("contract 12 changed").
    pub fn label(self) -> &'static str {
        match self {
            Table::Companies => "company",
            Table::Contracts => "contract",
            Table::Services => "service",
            Table::ContractServices => "contract service",
            Table::ContractServiceUnits => "contract service units",
            Table::ContractCharges => "charge",
            Table::BillingCodes => "billing code",
        }
    }

    /// The table of an Autotask entity name, as [`Table::name`] spells it.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|table| table.name() == name)
    }

    /// How many records `snapshot` holds in this table.
    pub fn len(self, snapshot: &Snapshot) -> usize {
        with_map!([&snapshot] self, |map| map.len())
    }

    /// The ids of this table's records in `snapshot`.
    pub fn ids(self, snapshot: &Snapshot) -> Vec<i64> {
        with_map!([&snapshot] self, |map| map.keys().copied().collect())
    }

    /// The contract of each record of this table that belongs to one (contract services, unit
    /// periods, charges); none for the others.
    pub fn contract_ids(self, snapshot: &Snapshot) -> Vec<i64> {
        match self {
            Table::ContractServices => {
                snapshot.contract_services.values().map(|r| r.contract_id).collect()
            }
            Table::ContractServiceUnits => {
                snapshot.contract_service_units.values().map(|r| r.contract_id).collect()
            }
            Table::ContractCharges => snapshot.charges.values().map(|r| r.contract_id).collect(),
            Table::Companies | Table::Contracts | Table::Services | Table::BillingCodes => {
                Vec::new()
            }
        }
    }

    /// A snapshot holding a copy of this table of `snapshot` and its incomplete records only.
    pub fn copy(self, snapshot: &Snapshot) -> Snapshot {
        let mut part = Snapshot::default();
        with_map!([&mut part] [&snapshot] self, |to, from| *to = from.clone());
        let prefix = format!("{}/", self.name());
        part.incomplete = (snapshot.incomplete.iter())
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        part
    }

    /// Removes the record `id` of this table from `snapshot`, if there.
    pub fn remove(self, snapshot: &mut Snapshot, id: i64) {
        with_map!([&mut snapshot] self, |map| {
            map.remove(&id);
        })
    }

    /// Moves this table's records of `part` into `snapshot` (by id, over what is there).
    pub fn move_into(self, snapshot: &mut Snapshot, part: &mut Snapshot) {
        with_map!([&mut snapshot] [&mut part] self, |to, from| to.append(from))
    }
}

/// Moves every record of `part` into `snapshot` (by id, over what is there), its incomplete
/// records too: what a pull's or a re-read's parts become one snapshot by.
pub fn absorb(snapshot: &mut Snapshot, mut part: Snapshot) {
    for table in Table::ALL {
        table.move_into(snapshot, &mut part);
    }
    snapshot.incomplete.append(&mut part.incomplete);
}

/// The records of `map` that `keep` accepts, copied: how a scope cuts a table.
pub fn kept<T: Clone>(map: &BTreeMap<i64, T>, keep: impl Fn(&T) -> bool) -> BTreeMap<i64, T> {
    map.iter()
        .filter(|(_, record)| keep(record))
        .map(|(id, record)| (*id, record.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        BillingCode, Company, Contract, ContractCharge, ContractService, ContractServiceUnit,
        IncompleteRecord, Service,
    };
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    /// One record in each table, the table's position in [`Table::ALL`] + 1 as its id, the
    /// records under a contract under contract 2; and one incomplete charge.
    fn one_of_each() -> Snapshot {
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        let mut s = Snapshot::default();
        let company =
            Company { id: 1, company_name: "C".into(), is_active: true, currency_id: None };
        s.companies.insert(1, company);
        let contract = Contract {
            id: 2,
            company_id: 1,
            contract_name: "K".into(),
            contract_type: 7,
            status: 1,
            start_date: day,
            end_date: day,
            service_level_agreement_id: None,
            contract_category: None,
            subscription_id: Some("S".into()),
        };
        s.contracts.insert(2, contract);
        let service = Service {
            id: 3,
            name: "V".into(),
            sku: Some("A".into()),
            billing_code_id: 7,
            period_type: 1,
            unit_price: Decimal::ONE,
            unit_cost: None,
            is_active: true,
        };
        s.services.insert(3, service);
        let contract_service = ContractService {
            id: 4,
            contract_id: 2,
            service_id: 3,
            adjusted_price: None,
            unit_cost: None,
            foreign_currency: false,
            invoice_description: None,
        };
        s.contract_services.insert(4, contract_service);
        let units = ContractServiceUnit {
            id: 5,
            contract_id: 2,
            contract_service_id: 4,
            service_id: 3,
            start_date: day,
            end_date: day,
            units: 1,
            price: None,
            cost: None,
        };
        s.contract_service_units.insert(5, units);
        let charge = ContractCharge {
            id: 6,
            contract_id: 2,
            name: "G".into(),
            description: None,
            date_purchased: day,
            charge_type: 1,
            unit_quantity: Decimal::ONE,
            unit_price: Decimal::ONE,
            unit_cost: None,
            billing_code_id: Some(7),
            is_billed: false,
        };
        s.charges.insert(6, charge);
        let code = BillingCode { id: 7, name: "B".into(), use_type: 1, is_active: true };
        s.billing_codes.insert(7, code);
        let incomplete = IncompleteRecord {
            entity: "ContractCharges".into(),
            id: 60,
            field: "unitPrice".into(),
            contract_id: Some(2),
        };
        s.incomplete.insert("ContractCharges/60".into(), incomplete);
        s
    }

    /// Each table is its own field of the snapshot (a mix-up in `with_map` shows here): a
    /// copy holds that table alone, and absorbing every copy rebuilds the snapshot.
    #[test]
    fn each_table_is_its_own_field_and_the_copies_rebuild_the_snapshot() {
        let whole = one_of_each();
        let mut rebuilt = Snapshot::default();
        for (position, table) in Table::ALL.into_iter().enumerate() {
            assert_eq!(Table::from_name(table.name()), Some(table));
            let part = table.copy(&whole);
            let filled: Vec<Table> = Table::ALL.into_iter().filter(|t| t.len(&part) > 0).collect();
            assert_eq!(filled, [table], "{table:?}");
            assert_eq!(table.ids(&part), [position as i64 + 1], "{table:?}");
            let incomplete = usize::from(table == Table::ContractCharges);
            assert_eq!(part.incomplete.len(), incomplete, "{table:?}");
            absorb(&mut rebuilt, part);
        }
        assert_eq!(rebuilt, whole);
        for (position, table) in Table::ALL.into_iter().enumerate() {
            table.remove(&mut rebuilt, position as i64 + 1);
            assert_eq!(table.len(&rebuilt), 0, "{table:?}");
        }
        assert_eq!(Table::from_name("Tickets"), None);
    }

    #[test]
    fn the_records_under_a_contract_name_it() {
        let whole = one_of_each();
        let under: Vec<Table> =
            Table::ALL.into_iter().filter(|t| t.contract_ids(&whole) == [2]).collect();
        assert_eq!(
            under,
            [Table::ContractServices, Table::ContractServiceUnits, Table::ContractCharges]
        );
        assert!(Table::ALL
            .into_iter()
            .all(|t| under.contains(&t) || t.contract_ids(&whole).is_empty()));
    }
}
