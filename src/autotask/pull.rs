//! `pull autotask`: reads the Autotask side cmat cares about into a [`Snapshot`].
//!
//! Every entity is read with `POST {Entity}/query` in pages of 500 (no per-record reads),
//! each page converted as it arrives. Independent entities are read in parallel by at most
//! [`PullOptions::workers`] threads; the client's per-endpoint cap still holds. Contract
//! service units are one row per service and month of the contract (12 per service for a
//! year's contract, most of them in the future), so with [`PullOptions::units_window`] only
//! the periods overlapping the current bills' Billing Dates are read (`endDate gte from and
//! startDate lte to`): the engine reads units only on a current bill's Billing Date.
//!
//! A second pull reads only what changed where Autotask allows it. An entity whose records
//! carry a change stamp ([`CHANGE_FIELDS`]) is read as the records stamped since the newest
//! stamp the last pull saw, less [`OVERLAP_MINUTES`] for writes committed late, merged into
//! the stored records by id, and checked with `query/count`: a record deleted in Autotask
//! leaves the counts different, and then the entity is read in full. It is read in full as
//! well when the change filter is refused, when its last full read is [`FULL_READ_DAYS`] old
//! (a stamp Autotask forgot to move is corrected within that time), when a full read costs
//! no more requests than changes and a count would, and on `--full`. Contract services and
//! their unit periods carry no stamp: a plain pull reads them in full.
//!
//! `sync` narrows them further with a [`Focus`]: the subscriptions whose bills changed since
//! the last successful sync (new, restated or gone; per-subscription digests stored by that
//! sync, `store::subscription_digests`). Every other entity is read first (in parallel, as
//! above); the Contracts just read name the contracts of those subscriptions (by the
//! "Subscription ID" UDF); then only those contracts' contract services and unit periods are
//! read (`contractID in [...]`, 500 ids a query, the units keeping the window filter) and
//! replace those contracts' stored records entirely, so a deleted one disappears. The records
//! of every other contract are trusted from the snapshot: cmat wrote them, and apply re-read
//! them after writing. A focused read is refused, and the entity read in full, on `--full`,
//! without a stored full read ([`PullMarks::full_reads`]), when that full read is
//! [`FULL_READ_DAYS`] old (so a hand edit elsewhere is found within a week), when the units
//! window moved, and when a full read costs no more requests. The caller decides when there
//! is no focus at all (`sync`, by [`Focus::since_last_sync`]: the rules changed, no digests
//! stored yet, writes of unknown outcome).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::client::{AutotaskClient, AutotaskError};
use super::parallel;
use super::query::{chunked_in, Condition, Filter, FilterValue, Item, MAX_PAGE};
use super::read::{
    absorb, add_records, read_tenant_lists, refused, units_filter, ChildrenRead, PullError,
    DEFAULT_SUBSCRIPTION_UDF,
};
use super::records::{timestamp_from_text, timestamp_to_api};
use crate::store::{Store, StoreError};
use cmat_engine::snapshot::{ChangeMark, FullRead, PullMarks, Snapshot, UnitsWindow};
use cmat_engine::table::Table;

/// The entities without a change stamp, read for the contracts of a [`Focus`] only; they are
/// read after the others, since the Contracts read name those contracts. A pull reads every
/// [`Table`], in [`Table::ALL`]'s order.
pub const FOCUSED: [Table; 2] = [Table::ContractServices, Table::ContractServiceUnits];

/// The subscriptions whose contract services and unit periods a pull must read (`sync`: those
/// whose bills changed since the last successful sync); the rest are trusted from the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Focus {
    pub subscriptions: BTreeSet<String>,
}

impl Focus {
    /// The subscriptions whose digest differs between the last sync's and the current bills':
    /// new, changed or gone.
    pub fn between(synced: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Focus {
        let changed = |(id, digest): (&String, &String), other: &BTreeMap<String, String>| {
            (other.get(id) != Some(digest)).then(|| id.clone())
        };
        let subscriptions = current
            .iter()
            .filter_map(|entry| changed(entry, synced))
            .chain(synced.iter().filter_map(|entry| changed(entry, current)))
            .collect();
        Focus { subscriptions }
    }

    /// The focus of a `sync` whose current bills have these per-subscription digests
    /// (`store::subscription_digests`): the subscriptions changed since the last successful
    /// sync. None (read in full) when no sync stored its digests yet, when the rules changed
    /// since (every subscription may plan differently), or when writes of unknown outcome
    /// wait to be settled (they may have landed anywhere).
    pub fn since_last_sync(
        store: &Store,
        mappings_digest: &str,
        current: &BTreeMap<String, String>,
    ) -> Result<Option<Focus>, StoreError> {
        let rules_kept = store
            .get_meta(crate::store::meta_keys::LAST_SYNC_MAPPINGS_DIGEST)?
            .is_some_and(|digest| digest == mappings_digest);
        if !rules_kept || !store.journal_unresolved()?.is_empty() {
            return Ok(None);
        }
        let synced = store.synced_subscriptions()?;
        Ok((!synced.is_empty()).then(|| Focus::between(&synced, current)))
    }
}

/// Picklists read by a pull are trusted this long by the next ones (`cmat doctor` and
/// `--full` always read them).
pub const PICKLIST_HOURS: i64 = 24;

/// The fields in which Autotask stamps any change of a record, by entity; the first one a
/// full read finds filled is used.
pub const CHANGE_FIELDS: [&str; 3] =
    ["lastModifiedDateTime", "lastModifiedDate", "lastTrackedModifiedDateTime"];

/// Stamps of a status change (a charge being invoiced), read beside a change field in case
/// Autotask moves only this one.
const STATUS_FIELDS: [&str; 1] = ["statusLastModifiedDate"];

/// Changes are read from this many minutes before the newest stamp seen.
pub const OVERLAP_MINUTES: i64 = 15;

/// An entity read by changes is read in full again after this many days.
pub const FULL_READ_DAYS: i64 = 7;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The Contracts UDF holding the subscription id (the mapping settings' `subscription_udf`).
    pub subscription_udf: String,
    /// Entities read at once (each by one thread, page after page).
    pub workers: usize,
    /// Read only the unit periods overlapping this window; None reads every period.
    pub units_window: Option<UnitsWindow>,
    /// Read every entity in full, whatever the last pull left.
    pub full: bool,
    /// Read contract services and unit periods only for these subscriptions' contracts (when
    /// the stored full read allows); None reads them as a plain pull does.
    pub focus: Option<Focus>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            subscription_udf: DEFAULT_SUBSCRIPTION_UDF.to_string(),
            workers: 3,
            units_window: None,
            full: false,
            focus: None,
        }
    }
}

/// Progress as it happens, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullProgress {
    /// A page of `records` records of `entity` arrived.
    Page { entity: &'static str, records: usize },
    /// All of `entity` is read.
    Done { entity: &'static str, records: usize },
}

/// How one entity was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityRead {
    /// Every record, for the reason given.
    Full(FullReason),
    /// Only the `changed` records stamped since `since`, merged into the stored ones.
    Changes { changed: usize, since: DateTime<Utc> },
    /// Only the `read` records of the `contracts` contracts of a [`Focus`], replacing theirs
    /// in the stored ones.
    Focused { contracts: usize, read: usize },
}

/// Why an entity was read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// `--full`.
    Requested,
    /// No usable mark: a first pull, records without a change stamp, a window, or a
    /// different conversion than the stored records had.
    NoMark,
    /// A full read costs no more requests than changes and a count (or than a focused read).
    Small,
    /// The last full read is [`FULL_READ_DAYS`] old.
    Due,
    /// After merging the changes the snapshot held a different number of records than
    /// Autotask (something was deleted).
    CountDiffers { autotask: u64, snapshot: usize },
    /// Autotask refused the change filter or the count (its message): an API without the
    /// stamp field, or without `query/count`.
    Refused(String),
}

/// What a pull did, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Records held afterwards per entity, in [`Table::ALL`] order.
    pub counts: Vec<(&'static str, usize)>,
    /// How each entity was read, in [`Table::ALL`] order.
    pub reads: Vec<(&'static str, EntityRead)>,
    /// HTTP requests this pull sent (the client's counter difference).
    pub requests: u64,
    pub elapsed: Duration,
    /// Whose contract services and unit periods this pull read from Autotask.
    pub children_read: ChildrenRead,
    /// Records kept out because a field cmat needs was null (the snapshot's `incomplete`).
    pub incomplete: Vec<cmat_engine::snapshot::IncompleteRecord>,
}

/// A pull's result: the new snapshot and the marks the next pull starts from.
#[derive(Debug)]
pub struct Pulled {
    pub snapshot: Snapshot,
    pub marks: PullMarks,
    pub report: PullReport,
}

/// What the last pull left: its snapshot (as since updated by apply) and its marks.
pub struct Previous<'a> {
    pub snapshot: &'a Snapshot,
    pub marks: &'a PullMarks,
}

/// Reads every entity, in full or by changes since `previous`. Nothing is stored here.
pub fn pull_snapshot(
    client: &AutotaskClient,
    options: &PullOptions,
    previous: Option<Previous<'_>>,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<Pulled, PullError> {
    let started = Instant::now();
    let requests_before = client.requests_sent();
    let mut reading =
        Reading { client, options, previous, now: Utc::now(), progress, focus_contracts: None };
    let parts = reading.every_table()?;
    let Assembled { mut snapshot, mut marks, counts, reads } = Assembled::of(parts)?;
    reading.tenant_lists(&mut snapshot, &mut marks)?;
    snapshot.refreshed_at = Some(reading.now);
    let focused = reads.iter().any(|(_, read)| matches!(read, EntityRead::Focused { .. }));
    let children_read = match reading.focus_contracts {
        Some(contracts) if focused => ChildrenRead::OfContracts(contracts),
        _ => ChildrenRead::All,
    };
    let report = PullReport {
        counts,
        reads,
        requests: client.requests_sent().saturating_sub(requests_before),
        elapsed: started.elapsed(),
        children_read,
        incomplete: snapshot.incomplete.values().cloned().collect(),
    };
    Ok(Pulled { snapshot, marks, report })
}

/// The contracts of the focused subscriptions, as the Contracts just read name them.
fn contracts_of(focus: &Focus, contracts: &Snapshot) -> BTreeSet<i64> {
    (contracts.contracts.values())
        .filter(|c| c.subscription_id.as_ref().is_some_and(|s| focus.subscriptions.contains(s)))
        .map(|c| c.id)
        .collect()
}

/// Every table's part of a pull put together, in [`Table::ALL`]'s order.
struct Assembled {
    snapshot: Snapshot,
    marks: PullMarks,
    counts: Vec<(&'static str, usize)>,
    reads: Vec<(&'static str, EntityRead)>,
}

impl Assembled {
    fn of(mut parts: BTreeMap<Table, EntityPart>) -> Result<Assembled, PullError> {
        let mut all = Assembled {
            snapshot: Snapshot::default(),
            marks: PullMarks::default(),
            counts: Vec::with_capacity(Table::ALL.len()),
            reads: Vec::with_capacity(Table::ALL.len()),
        };
        for table in Table::ALL {
            let entity = table.name();
            let Some(part) = parts.remove(&table) else {
                return Err(AutotaskError::Config(format!("{entity} was not read")).into());
            };
            all.counts.push((entity, table.len(&part.records)));
            all.reads.push((entity, part.read));
            if let Some(mark) = part.mark {
                all.marks.entities.insert(entity.to_string(), mark);
            }
            if let Some(full_read) = part.full_read {
                all.marks.full_reads.insert(entity.to_string(), full_read);
            }
            // Moved, not copied: a large tenant's snapshot is hundreds of thousands of records.
            absorb(&mut all.snapshot, part.records);
        }
        Ok(all)
    }
}

/// Reads the snapshot (by changes where the stored marks allow) and replaces the stored one
/// and its marks in one transaction; a failed read or write leaves both as they were.
pub fn pull_into_store(
    client: &AutotaskClient,
    store: &mut Store,
    options: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<PullReport, PullError> {
    let marks = if options.full { PullMarks::default() } else { store.pull_marks()? };
    // The stored records are needed only to merge changes into.
    let stored = if marks.entities.is_empty() { None } else { Some(store.load_snapshot()?) };
    let previous = stored.as_ref().map(|snapshot| Previous { snapshot, marks: &marks });
    let pulled = pull_snapshot(client, options, previous, progress)?;
    store.replace_pulled_snapshot(&pulled.snapshot, &pulled.marks)?;
    Ok(pulled.report)
}

/// One entity's records, how they were read and the mark for the next pull.
struct EntityPart {
    /// A snapshot holding only this entity's table.
    records: Snapshot,
    read: EntityRead,
    mark: Option<ChangeMark>,
    /// For an entity of [`FOCUSED`]: its last full read.
    full_read: Option<FullRead>,
}

/// Everything the per-entity reads share.
struct Reading<'a> {
    client: &'a AutotaskClient,
    options: &'a PullOptions,
    previous: Option<Previous<'a>>,
    now: DateTime<Utc>,
    progress: &'a (dyn Fn(PullProgress) + Sync),
    /// The contracts a [`Focus`] names, once the Contracts are read.
    focus_contracts: Option<BTreeSet<i64>>,
}

/// Whether changes merged into the stored records are the whole truth.
enum ChangesRead {
    Merged(Box<EntityPart>),
    ReadInFull(FullReason),
}

impl Reading<'_> {
    /// Reads every table; with a focus, its tables after the others, for the contracts the
    /// Contracts just read name.
    fn every_table(&mut self) -> Result<BTreeMap<Table, EntityPart>, PullError> {
        let focus = self.options.focus.as_ref();
        let (first, second): (Vec<Table>, Vec<Table>) =
            (Table::ALL.into_iter()).partition(|table| focus.is_none() || !FOCUSED.contains(table));
        let mut parts = self.parts(&first)?;
        if let Some(focus) = focus {
            let contracts = parts.get(&Table::Contracts).map(|part| &part.records);
            self.focus_contracts =
                Some(contracts.map(|c| contracts_of(focus, c)).unwrap_or_default());
            parts.extend(self.parts(&second)?);
        }
        Ok(parts)
    }

    /// The tenant's picklists and currencies: the previous pull's while [`PICKLIST_HOURS`]
    /// old at most, else read now.
    fn tenant_lists(
        &self,
        snapshot: &mut Snapshot,
        marks: &mut PullMarks,
    ) -> Result<(), PullError> {
        let previous = self.previous.as_ref().and_then(|previous| {
            let read_at = previous.marks.picklists_read_at?;
            let fresh = self.now - read_at < chrono::Duration::hours(PICKLIST_HOURS);
            (fresh && !previous.snapshot.picklists.is_empty())
                .then_some((read_at, previous.snapshot))
        });
        match previous {
            Some((read_at, previous)) => {
                snapshot.picklists = previous.picklists.clone();
                snapshot.currencies = previous.currencies.clone();
                marks.picklists_read_at = Some(read_at);
            }
            None => {
                read_tenant_lists(self.client, snapshot)?;
                marks.picklists_read_at = Some(self.now);
            }
        }
        Ok(())
    }

    /// Reads `tables`, by at most [`PullOptions::workers`] threads; the first failure in
    /// table order (stable across runs).
    fn parts(&self, tables: &[Table]) -> Result<BTreeMap<Table, EntityPart>, PullError> {
        let parts =
            parallel::run_in_order(tables, self.options.workers, |&table| self.entity(table))?;
        Ok(tables.iter().copied().zip(parts).collect())
    }

    fn entity(&self, table: Table) -> Result<EntityPart, PullError> {
        let (filter, stampable) = match table {
            // A window read cannot be continued by changes: the window moves with the bills.
            Table::ContractServiceUnits => {
                (units_filter(self.options.units_window), self.options.units_window.is_none())
            }
            _ => (Filter::all(), true),
        };
        let focused = FOCUSED.contains(&table);
        let reason = match (focused, &self.focus_contracts) {
            (true, Some(contracts)) => match self.usable_full_read(table, contracts) {
                Ok((full_read, stored)) => {
                    return self.focused(table, &filter, contracts, full_read, stored)
                }
                Err(reason) => reason,
            },
            _ => match self.usable_mark(table, stampable) {
                Err(reason) => reason,
                Ok((mark, stored)) => match self.changes(table, &filter, mark, stored)? {
                    ChangesRead::Merged(part) => return self.done(table, *part),
                    ChangesRead::ReadInFull(reason) => reason,
                },
            },
        };
        let mut records = Snapshot::default();
        let mut stamps = Stamps::default();
        self.read_pages(table, &filter, &mut records, &mut stamps)?;
        let mark = if stampable { stamps.mark(self.now, self.conversion(table)) } else { None };
        let full_read =
            focused.then(|| FullRead { at: self.now, conversion: self.conversion(table) });
        self.done(table, EntityPart { records, read: EntityRead::Full(reason), mark, full_read })
    }

    /// The stored full read and records of `entity` (one of [`FOCUSED`]) when reading only
    /// the `contracts`' records is allowed and cheaper than a full read.
    fn usable_full_read(
        &self,
        table: Table,
        contracts: &BTreeSet<i64>,
    ) -> Result<(&FullRead, &Snapshot), FullReason> {
        if self.options.full {
            return Err(FullReason::Requested);
        }
        let previous = self.previous.as_ref().ok_or(FullReason::NoMark)?;
        let full_read = previous
            .marks
            .full_reads
            .get(table.name())
            .filter(|read| read.conversion == self.conversion(table))
            .ok_or(FullReason::NoMark)?;
        if self.now - full_read.at >= chrono::Duration::days(FULL_READ_DAYS) {
            return Err(FullReason::Due);
        }
        // Each `in` query costs at least one page; a full read is trusted more at equal cost.
        let stored = table.len(previous.snapshot);
        let of_focus = table
            .contract_ids(previous.snapshot)
            .iter()
            .filter(|id| contracts.contains(id))
            .count();
        let focused =
            contracts.len().div_ceil(super::query::MAX_IN_VALUES).max(of_focus.div_ceil(MAX_PAGE));
        if !contracts.is_empty() && focused >= stored.div_ceil(MAX_PAGE).max(1) {
            return Err(FullReason::Small);
        }
        Ok((full_read, previous.snapshot))
    }

    /// Reads the records of `contracts` (500 ids a query, inside `filter`) and puts them in
    /// place of those contracts' stored records; the other contracts' records are kept.
    fn focused(
        &self,
        table: Table,
        filter: &Filter,
        contracts: &BTreeSet<i64>,
        full_read: &FullRead,
        stored: &Snapshot,
    ) -> Result<EntityPart, PullError> {
        let mut records = table.copy(stored);
        records.contract_services.retain(|_, r| !contracts.contains(&r.contract_id));
        records.contract_service_units.retain(|_, r| !contracts.contains(&r.contract_id));
        records.incomplete.retain(|_, r| r.contract_id.is_none_or(|id| !contracts.contains(&id)));
        let filters = chunked_in(
            Some(filter),
            "contractID",
            contracts.iter().map(|id| FilterValue::Int(*id)),
        )
        .map_err(|source| AutotaskError::Filter {
            request: format!("POST {}/query", table.name()),
            source,
        })?;
        let mut read = 0;
        let mut stamps = Stamps::default();
        for filter in &filters {
            read += self.read_pages(table, filter, &mut records, &mut stamps)?;
        }
        let read = EntityRead::Focused { contracts: contracts.len(), read };
        let full_read = Some(full_read.clone());
        self.done(table, EntityPart { records, read, mark: None, full_read })
    }

    fn done(&self, table: Table, part: EntityPart) -> Result<EntityPart, PullError> {
        (self.progress)(PullProgress::Done {
            entity: table.name(),
            records: table.len(&part.records),
        });
        Ok(part)
    }

    /// The stored mark and records of `entity` when reading changes is allowed and cheaper.
    fn usable_mark(
        &self,
        table: Table,
        stampable: bool,
    ) -> Result<(&ChangeMark, &Snapshot), FullReason> {
        if self.options.full {
            return Err(FullReason::Requested);
        }
        let previous = self.previous.as_ref().ok_or(FullReason::NoMark)?;
        let mark = previous
            .marks
            .entities
            .get(table.name())
            .filter(|mark| stampable && mark.conversion == self.conversion(table))
            .ok_or(FullReason::NoMark)?;
        if self.now - mark.full_read_at >= chrono::Duration::days(FULL_READ_DAYS) {
            return Err(FullReason::Due);
        }
        // Changes cost at least two requests (a page and the count).
        if table.len(previous.snapshot).div_ceil(MAX_PAGE) <= 2 {
            return Err(FullReason::Small);
        }
        Ok((mark, previous.snapshot))
    }

    /// Reads the records stamped since the mark into a copy of the stored ones, then checks
    /// the total against Autotask's count.
    fn changes(
        &self,
        table: Table,
        filter: &Filter,
        mark: &ChangeMark,
        stored: &Snapshot,
    ) -> Result<ChangesRead, PullError> {
        let since = mark.newest - chrono::Duration::minutes(OVERLAP_MINUTES);
        let mut fields = mark.fields.clone();
        let (changed, records, stamps) = loop {
            let stamped = fields
                .iter()
                .map(|field| Item::from(Condition::gte(field.as_str(), timestamp_to_api(since))));
            let changes = match filter.clone().and(Item::or(stamped)) {
                Ok(changes) => changes,
                Err(err) => {
                    return Ok(ChangesRead::ReadInFull(FullReason::Refused(err.to_string())))
                }
            };
            let mut records = table.copy(stored);
            let mut stamps = Stamps::default();
            match self.read_pages(table, &changes, &mut records, &mut stamps) {
                Ok(changed) => break (changed, records, stamps),
                // A status stamp this Autotask cannot filter on: the change field alone.
                Err(PullError::Api(err)) if refused(&err) && fields.len() > 1 => fields.truncate(1),
                Err(PullError::Api(err)) if refused(&err) => {
                    return Ok(ChangesRead::ReadInFull(FullReason::Refused(err.to_string())))
                }
                Err(err) => return Err(err),
            }
        };
        let autotask = match self.client.query_count(table.name(), filter) {
            Ok(count) => count,
            Err(err) if refused(&err) => {
                return Ok(ChangesRead::ReadInFull(FullReason::Refused(err.to_string())))
            }
            Err(err) => return Err(err.into()),
        };
        let snapshot = table.len(&records);
        if autotask != snapshot as u64 {
            return Ok(ChangesRead::ReadInFull(FullReason::CountDiffers { autotask, snapshot }));
        }
        let newest = stamps.newest(&fields, self.now).map_or(mark.newest, |n| n.max(mark.newest));
        let mark = ChangeMark { fields, newest, ..mark.clone() };
        let read = EntityRead::Changes { changed, since };
        let part = EntityPart { records, read, mark: Some(mark), full_read: None };
        Ok(ChangesRead::Merged(Box::new(part)))
    }

    /// Reads every page of `filter` into `records` (by id), noting stamps; the number read.
    fn read_pages(
        &self,
        table: Table,
        filter: &Filter,
        records: &mut Snapshot,
        stamps: &mut Stamps,
    ) -> Result<usize, PullError> {
        let udf = &self.options.subscription_udf;
        let mut read = 0;
        let mut failure = None;
        self.client.query_each_page(table.name(), filter, &mut |page| {
            read += page.len();
            (self.progress)(PullProgress::Page { entity: table.name(), records: page.len() });
            stamps.observe(&page);
            match add_records(records, table, &page, udf) {
                Ok(()) => ControlFlow::Continue(()),
                Err(err) => {
                    failure = Some(err);
                    ControlFlow::Break(())
                }
            }
        })?;
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(read),
        }
    }

    /// What else than the records decides how they convert.
    fn conversion(&self, table: Table) -> String {
        match table {
            Table::Contracts => format!("udf={}", self.options.subscription_udf),
            Table::ContractServiceUnits => match self.options.units_window {
                Some(window) => format!("window={}..{}", window.from, window.to),
                None => "window=all".to_string(),
            },
            Table::Companies
            | Table::Services
            | Table::ContractServices
            | Table::ContractCharges
            | Table::BillingCodes => String::new(),
        }
    }
}

/// The newest value of each stamp field seen in a read.
#[derive(Default)]
struct Stamps {
    newest: BTreeMap<&'static str, DateTime<Utc>>,
}

impl Stamps {
    fn observe(&mut self, page: &[Value]) {
        for map in page.iter().filter_map(Value::as_object) {
            for field in CHANGE_FIELDS.into_iter().chain(STATUS_FIELDS) {
                let Some(at) =
                    field_of(map, field).and_then(Value::as_str).and_then(timestamp_from_text)
                else {
                    continue;
                };
                let newest = self.newest.entry(field).or_insert(at);
                *newest = (*newest).max(at);
            }
        }
    }

    /// The newest stamp of `fields`, but never after `now`: a stamp from a clock running
    /// ahead would otherwise hide the changes made until that clock's time.
    fn newest(&self, fields: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        fields
            .iter()
            .filter_map(|field| {
                self.newest.iter().find(|(name, _)| name.eq_ignore_ascii_case(field))
            })
            .map(|(_, at)| *at)
            .max()
            .map(|newest| newest.min(now))
    }

    /// The mark of a full read: its first change field found filled, with the status
    /// fields found; none when the records carry no change stamp.
    fn mark(&self, now: DateTime<Utc>, conversion: String) -> Option<ChangeMark> {
        let change = CHANGE_FIELDS.into_iter().find(|field| self.newest.contains_key(field))?;
        let fields: Vec<String> = std::iter::once(change)
            .chain(STATUS_FIELDS.into_iter().filter(|field| self.newest.contains_key(field)))
            .map(String::from)
            .collect();
        let newest = self.newest(&fields, now)?;
        Some(ChangeMark { fields, newest, full_read_at: now, conversion })
    }
}

/// A field of a record: by its exact name first, then ignoring ASCII case.
fn field_of<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.get(field)
        .or_else(|| map.iter().find(|(key, _)| key.eq_ignore_ascii_case(field)).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        timestamp_from_text(text).expect("timestamp")
    }

    #[test]
    fn a_mark_takes_the_first_change_field_found_and_the_status_fields_beside_it() {
        let now = at("2026-11-24T12:00:00Z");
        let mut stamps = Stamps::default();
        stamps.observe(&[
            json!({"id": 1, "LastModifiedDateTime": "2026-11-20T08:00:00Z", "lastModifiedDate": null}),
            json!({"id": 2, "lastModifiedDateTime": "2026-11-21T08:00:00.5Z",
                   "statusLastModifiedDate": "2026-11-22T08:00:00Z"}),
            json!({"id": 3, "lastModifiedDateTime": "not a time"}),
        ]);
        let mark = stamps.mark(now, "c".into()).expect("a mark");
        assert_eq!(mark.fields, ["lastModifiedDateTime", "statusLastModifiedDate"]);
        assert_eq!(mark.newest, at("2026-11-22T08:00:00Z"));
        assert_eq!((mark.full_read_at, mark.conversion.as_str()), (now, "c"));
    }

    #[test]
    fn the_focus_is_every_subscription_new_changed_or_gone_since_the_last_sync() {
        let digests = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let synced = digests(&[("kept", "1"), ("moved", "2"), ("gone", "3")]);
        let current = digests(&[("kept", "1"), ("moved", "9"), ("new", "4")]);
        let focus = Focus::between(&synced, &current);
        let expected: BTreeSet<String> =
            ["moved", "gone", "new"].into_iter().map(String::from).collect();
        assert_eq!(focus.subscriptions, expected);
        assert!(Focus::between(&current, &current).subscriptions.is_empty());
    }

    #[test]
    fn no_change_field_means_no_mark_and_a_stamp_ahead_of_now_is_held_to_now() {
        let now = at("2026-11-24T12:00:00Z");
        let mut stamps = Stamps::default();
        stamps.observe(&[json!({"id": 1, "statusLastModifiedDate": "2026-11-22T08:00:00Z"})]);
        assert_eq!(stamps.mark(now, String::new()), None, "a status stamp alone misses edits");
        stamps.observe(&[json!({"id": 2, "lastModifiedDate": "2031-01-01T00:00:00Z"})]);
        assert_eq!(stamps.mark(now, String::new()).expect("a mark").newest, now);
    }
}
