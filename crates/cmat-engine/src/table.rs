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
