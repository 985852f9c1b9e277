//! `cmat adopt`: for a tenant that already bills its subscriptions from contracts cmat did not
//! create, which existing contract is each subscription's, with the evidence, for a person to
//! accept; and the accepted links as plan changes (the "Subscription ID" UDF set on the chosen
//! contracts). Pure: the desired state and the snapshot in, a proposal or changes out.
//!
//! The rule SPEC holds us to: never a link on a name alone. A candidate must bill at least one
//! of the subscription's products (a contract service on the Service a rule names for it, or
//! the Service whose sku is its Item Code); the contract's name is shown, never weighed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::desired::{DesiredContract, DesiredState};
use crate::diff::{scaled, Change, Diff};
use crate::rules::{BillingKind, RuleOrigin};
use crate::snapshot::{units_in_force, Contract, ContractServiceUnit, Snapshot};
use crate::spreadsheet::spreadsheet_safe;
use crate::write::{ContractEdits, Edit, NaturalKey, UdfEdit, Write};

/// How well a candidate's contract services match the subscription's bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Some of the products on the contract, or all of them with other units.
    Partial,
    /// Every product of the current bill on the contract, each with the bill's units.
    Strong,
}

impl Confidence {
    /// The word the adoption file writes in its `confidence` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Strong => "strong",
            Confidence::Partial => "partial",
        }
    }
}

/// One product of the subscription's current bill, as the candidate contract bills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductEvidence {
    /// The product's key (its Item Code), as the bill names it.
    pub product_key: String,
    /// The Service the product is billed on; None: no Service has its sku and no rule names one.
    pub service_id: Option<i64>,
    /// Whether the contract has a contract service on that Service.
    pub on_contract: bool,
    /// Units in force on the bill's Billing Date in Autotask, and on the bill.
    pub units_autotask: i64,
    /// The units the bill says.
    pub units_bill: i64,
    /// The contract's adjusted price (None: unknown), and the bill's price.
    pub price_autotask: Option<Decimal>,
    /// The price the rules give the product on this bill.
    pub price_bill: Decimal,
    /// The rules' scale, so the two prices are compared as Autotask stores them.
    pub scale: u32,
}

/// An existing contract that could be a subscription's, with the evidence a person needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The contract's Autotask id, the one an accepted row names.
    pub contract_id: i64,
    /// Its name: shown to the person, never weighed.
    pub contract_name: String,
    /// Its start, so a person sees which term it is.
    pub start_date: NaiveDate,
    /// Its end.
    pub end_date: NaiveDate,
    /// How well its contract services match the bill.
    pub confidence: Confidence,
    /// Each product of the current bill as the contract bills it.
    pub products: Vec<ProductEvidence>,
}

impl Candidate {
    fn matched(&self) -> usize {
        self.products.iter().filter(|p| p.on_contract).count()
    }

    fn units_equal(&self) -> usize {
        self.products.iter().filter(|p| p.on_contract && p.units_autotask == p.units_bill).count()
    }

    fn prices_equal(&self) -> usize {
        self.products
            .iter()
            .filter(|p| p.on_contract && p.price_autotask == Some(scaled(p.price_bill, p.scale)))
            .count()
    }
}

/// What the file says about a subscription as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One strong candidate, strong for no other subscription.
    OneStrong,
    /// Candidates, but not one clear one: a person decides.
    Ambiguous,
    /// No contract bills its products: the next plan creates its contract.
    NoCandidate,
}

/// What adopt proposes for one subscription on the bills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionProposal {
    /// The Cloudmore subscription, the value the contract's UDF gets.
    pub subscription_id: String,
    /// Its organization, as the bill names it.
    pub organization_name: String,
    /// The Autotask company the rules link the organization to.
    pub company_id: i64,
    /// The Billing Date of its current bill, the day units are compared on.
    pub billing_date: NaiveDate,
    /// Azure consumption: billed by charges, which carry no product to match, so never
    /// proposed (see `no_candidate_note`).
    pub consumption: bool,
    /// Best first.
    pub candidates: Vec<Candidate>,
    /// What the file says of the subscription as a whole.
    pub verdict: Verdict,
}

/// A contract whose services bill the products of several subscriptions (one contract per
/// customer): it cannot be one subscription's contract, so nothing is proposed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedContract {
    /// The contract's Autotask id.
    pub contract_id: i64,
    /// Its company.
    pub company_id: i64,
    /// Its name, for the person reading the file.
    pub contract_name: String,
    /// The organization of the subscriptions it covers.
    pub organization_name: String,
    /// The subscriptions whose products it bills.
    pub covers: Vec<String>,
}

/// What `cmat adopt` proposes, written to the adoption file for a person to accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    /// One entry per subscription on the bills.
    pub subscriptions: Vec<SubscriptionProposal>,
    /// Contracts left alone because they bill several subscriptions.
    pub shared: Vec<SharedContract>,
}

impl Proposal {
    /// How many subscriptions got a verdict, for the summary line.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.subscriptions.iter().filter(|s| s.verdict == verdict).count()
    }
}

/// The contracts that could bill a subscription today: its company's, of the rules' contract
/// type (Recurring Service), not ended before the bill, without a "Subscription ID".
fn eligible(contract: &Contract, company_id: i64, contract_type: i64, on: NaiveDate) -> bool {
    contract.company_id == company_id
        && contract.contract_type == contract_type
        && contract.end_date >= on
        && contract.subscription_id.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// Lookups over the snapshot the proposal needs, built once.
struct Index<'a> {
    services_by_sku: BTreeMap<&'a str, i64>,
    /// Contract → Service → (adjusted price) of its contract services.
    on_contract: BTreeMap<i64, BTreeMap<i64, Option<Decimal>>>,
    units: BTreeMap<(i64, i64), Vec<&'a ContractServiceUnit>>,
    linked: BTreeSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut services_by_sku: BTreeMap<&str, (bool, i64)> = BTreeMap::new();
        for service in snapshot.services.values() {
            let Some(sku) = service.sku.as_deref().filter(|s| !s.is_empty()) else { continue };
            let candidate = (service.is_active, -service.id);
            let best = services_by_sku.entry(sku).or_insert(candidate);
            // As the diff does: an active Service first, then the oldest.
            *best = (*best).max(candidate);
        }
        let mut on_contract: BTreeMap<i64, BTreeMap<i64, Option<Decimal>>> = BTreeMap::new();
        for cs in snapshot.contract_services.values() {
            on_contract.entry(cs.contract_id).or_default().insert(cs.service_id, cs.adjusted_price);
        }
        let mut units: BTreeMap<(i64, i64), Vec<_>> = BTreeMap::new();
        for unit in snapshot.contract_service_units.values() {
            units.entry((unit.contract_id, unit.service_id)).or_default().push(unit);
        }
        for periods in units.values_mut() {
            periods.sort_by_key(|unit| (unit.start_date, unit.id));
        }
        let linked = snapshot
            .contracts
            .values()
            .filter_map(|c| c.subscription_id.as_deref().filter(|s| !s.trim().is_empty()))
            .collect();
        Index {
            services_by_sku: services_by_sku.into_iter().map(|(sku, (_, id))| (sku, -id)).collect(),
            on_contract,
            units,
            linked,
        }
    }

    /// The Services a subscription's current products are billed on, by product key.
    fn product_services(&self, contract: &DesiredContract) -> BTreeMap<String, Option<i64>> {
        contract
            .services
            .values()
            .filter(|service| service.on_current_bill)
            .map(|service| {
                let id = service
                    .service_id
                    .or_else(|| self.services_by_sku.get(service.product_key.as_str()).copied());
                (service.product_key.clone(), id)
            })
            .collect()
    }
}

/// The proposal for every subscription on the bills that no contract carries yet.
pub fn propose(desired: &DesiredState, snapshot: &Snapshot, contract_type: i64) -> Proposal {
    let index = Index::new(snapshot);
    let unlinked: Vec<&DesiredContract> = desired
        .contracts
        .values()
        .filter(|c| !index.linked.contains(c.subscription_id.as_str()))
        .collect();
    let services_of: BTreeMap<&str, BTreeSet<i64>> = unlinked
        .iter()
        .map(|c| {
            let ids = index.product_services(c).into_values().flatten().collect();
            (c.subscription_id.as_str(), ids)
        })
        .collect();
    let shared = shared_contracts(&unlinked, &services_of, &index, snapshot, contract_type);
    let shared_ids: BTreeSet<i64> = shared.iter().map(|s| s.contract_id).collect();
    let mut subscriptions: Vec<SubscriptionProposal> = unlinked
        .iter()
        .map(|desired| {
            let candidates: Vec<Candidate> = snapshot
                .contracts
                .values()
                .filter(|c| !shared_ids.contains(&c.id))
                .filter(|c| {
                    eligible(c, desired.company_id, contract_type, desired.last_billing_date)
                })
                .filter_map(|c| candidate(desired, c, &index))
                .collect();
            SubscriptionProposal {
                subscription_id: desired.subscription_id.clone(),
                organization_name: desired.organization_name.clone(),
                company_id: desired.company_id,
                billing_date: desired.last_billing_date,
                consumption: desired.kind == BillingKind::Consumption,
                candidates: ranked(candidates),
                verdict: Verdict::NoCandidate,
            }
        })
        .collect();
    judge(&mut subscriptions);
    Proposal { subscriptions, shared }
}

/// Best first: confidence, then products on the contract, units equal, prices equal, the
/// oldest contract.
fn ranked(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        (b.confidence, b.matched(), b.units_equal(), b.prices_equal(), a.contract_id).cmp(&(
            a.confidence,
            a.matched(),
            a.units_equal(),
            a.prices_equal(),
            b.contract_id,
        ))
    });
    candidates
}

/// One strong candidate that is strong for no other subscription is clear; anything else
/// with candidates is for a person to decide.
fn judge(subscriptions: &mut [SubscriptionProposal]) {
    let mut strong_for: BTreeMap<i64, usize> = BTreeMap::new();
    for proposal in subscriptions.iter() {
        for candidate in &proposal.candidates {
            if candidate.confidence == Confidence::Strong {
                *strong_for.entry(candidate.contract_id).or_default() += 1;
            }
        }
    }
    for proposal in subscriptions.iter_mut() {
        let strong: Vec<&Candidate> =
            proposal.candidates.iter().filter(|c| c.confidence == Confidence::Strong).collect();
        proposal.verdict = match strong.as_slice() {
            [only] if strong_for.get(&only.contract_id) == Some(&1) => Verdict::OneStrong,
            _ if proposal.candidates.is_empty() => Verdict::NoCandidate,
            _ => Verdict::Ambiguous,
        };
    }
}

/// The evidence of one contract for one subscription; None when it bills none of its products
/// (a name alone is never evidence).
fn candidate(
    desired: &DesiredContract,
    contract: &Contract,
    index: &Index<'_>,
) -> Option<Candidate> {
    let services = index.on_contract.get(&contract.id);
    let date = desired.last_billing_date;
    let products: Vec<ProductEvidence> = desired
        .services
        .values()
        .filter(|service| service.on_current_bill)
        .map(|service| {
            let service_id = service
                .service_id
                .or_else(|| index.services_by_sku.get(service.product_key.as_str()).copied());
            let held =
                service_id.and_then(|id| services.and_then(|s| s.get(&id)).map(|p| (id, *p)));
            let units_autotask = held
                .map(|(id, _)| {
                    let periods = index.units.get(&(contract.id, id)).map(Vec::as_slice);
                    units_in_force(periods.unwrap_or(&[]), date)
                })
                .unwrap_or(0);
            ProductEvidence {
                product_key: service.product_key.clone(),
                service_id,
                on_contract: held.is_some(),
                units_autotask,
                units_bill: service.units,
                price_autotask: held.and_then(|(_, price)| price),
                price_bill: service.unit_price,
                scale: service.scale,
            }
        })
        .collect();
    if !products.iter().any(|p| p.on_contract) {
        return None;
    }
    let strong = products.iter().all(|p| p.on_contract && p.units_autotask == p.units_bill);
    Some(Candidate {
        contract_id: contract.id,
        contract_name: contract.contract_name.clone(),
        start_date: contract.start_date,
        end_date: contract.end_date,
        confidence: if strong { Confidence::Strong } else { Confidence::Partial },
        products,
    })
}

/// Contracts whose services bill products of two or more subscriptions, where no one of them
/// has every product the contract bills: a per-customer contract.
fn shared_contracts(
    unlinked: &[&DesiredContract],
    services_of: &BTreeMap<&str, BTreeSet<i64>>,
    index: &Index<'_>,
    snapshot: &Snapshot,
    contract_type: i64,
) -> Vec<SharedContract> {
    let empty = BTreeSet::new();
    let services =
        |d: &DesiredContract| services_of.get(d.subscription_id.as_str()).unwrap_or(&empty);
    let mut shared = Vec::new();
    for contract in snapshot.contracts.values() {
        let Some(on_contract) = index.on_contract.get(&contract.id) else { continue };
        let covering: Vec<&DesiredContract> = unlinked
            .iter()
            .copied()
            .filter(|d| eligible(contract, d.company_id, contract_type, d.last_billing_date))
            .filter(|d| services(d).iter().any(|s| on_contract.contains_key(s)))
            .collect();
        if covering.len() < 2 {
            continue;
        }
        // The contract's services that bill some covering subscription's products.
        let billed: BTreeSet<i64> = covering
            .iter()
            .flat_map(|d| services(d).iter().copied())
            .filter(|s| on_contract.contains_key(s))
            .collect();
        let one_explains_all = covering.iter().any(|d| billed.is_subset(services(d)));
        if one_explains_all {
            continue;
        }
        shared.push(SharedContract {
            contract_id: contract.id,
            company_id: contract.company_id,
            contract_name: contract.contract_name.clone(),
            organization_name: covering[0].organization_name.clone(),
            covers: covering.iter().map(|d| d.subscription_id.clone()).collect(),
        });
    }
    shared
}

/// The file's columns, in order. `accept` first: the one a person fills in.
pub const COLUMNS: [&str; 16] = [
    "accept",
    "kind",
    "subscription_id",
    "organization",
    "company_id",
    "contract_id",
    "contract_name",
    "contract_start",
    "contract_end",
    "rank",
    "confidence",
    "products",
    "units",
    "prices",
    "covers",
    "note",
];

/// The proposal as the CSV a person reviews: one row per subscription and candidate (best
/// first), one per subscription without any, one per shared contract; every text cell
/// formula-safe.
pub fn to_csv(proposal: &Proposal) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(COLUMNS);
    for subscription in &proposal.subscriptions {
        if subscription.candidates.is_empty() {
            let _ = writer.write_record(row(
                subscription,
                None,
                0,
                &no_candidate_note(proposal, subscription),
            ));
        }
        for (rank, candidate) in subscription.candidates.iter().enumerate() {
            let note = candidate_note(subscription, candidate, rank);
            let _ = writer.write_record(row(subscription, Some(candidate), rank + 1, &note));
        }
    }
    for shared in &proposal.shared {
        let note = format!(
            "this contract bills the products of {} subscriptions; cmat keeps one subscription per contract, so nothing is proposed for it",
            shared.covers.len()
        );
        let cells = [
            "",
            "shared_contract",
            "",
            &shared.organization_name,
            &shared.company_id.to_string(),
            &shared.contract_id.to_string(),
            &shared.contract_name,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &shared.covers.join(" "),
            &note,
        ];
        let _ = writer.write_record(cells.iter().map(|cell| spreadsheet_safe(cell)));
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Without a candidate the next plan creates the subscription's contract; a shared contract
/// billing its products would then bill them twice, so the note says which.
fn no_candidate_note(proposal: &Proposal, subscription: &SubscriptionProposal) -> String {
    let shared: Vec<String> = proposal
        .shared
        .iter()
        .filter(|shared| shared.covers.contains(&subscription.subscription_id))
        .map(|shared| format!("#{}", shared.contract_id))
        .collect();
    if subscription.consumption {
        // A hand-made contract bills Azure by charges cmat cannot tell from its own (a charge
        // is found by contract, date and name): adopting one would charge the period twice.
        "Azure consumption: cmat adopts licence contracts only; the next plan creates its contract, so end any contract that charges it by hand".to_string()
    } else if shared.is_empty() {
        "no existing contract bills its products: the next plan creates its contract".to_string()
    } else {
        format!(
            "only the shared contract {} bills its products: the next plan creates its own contract; take these products off {} by hand, or the customer is billed twice",
            shared.join(", "),
            shared.join(", ")
        )
    }
}

fn candidate_note(
    subscription: &SubscriptionProposal,
    candidate: &Candidate,
    rank: usize,
) -> String {
    match (subscription.verdict, rank) {
        (Verdict::OneStrong, 0) => "the one strong candidate".to_string(),
        (Verdict::Ambiguous, 0) if candidate.confidence == Confidence::Strong => {
            "ambiguous: another contract, or another subscription, matches as well; check before accepting".to_string()
        }
        (Verdict::Ambiguous, 0) => "ambiguous: no contract bills every product with the bill's units".to_string(),
        _ => String::new(),
    }
}

fn row(
    subscription: &SubscriptionProposal,
    candidate: Option<&Candidate>,
    rank: usize,
    note: &str,
) -> Vec<String> {
    let (kind, contract) = match candidate {
        Some(c) => ("candidate", Some(c)),
        None => ("no_candidate", None),
    };
    let text = |f: &dyn Fn(&Candidate) -> String| contract.map(f).unwrap_or_default();
    let cells = [
        String::new(),
        kind.to_string(),
        subscription.subscription_id.clone(),
        subscription.organization_name.clone(),
        subscription.company_id.to_string(),
        text(&|c| c.contract_id.to_string()),
        text(&|c| c.contract_name.clone()),
        text(&|c| c.start_date.to_string()),
        text(&|c| c.end_date.to_string()),
        if rank == 0 { String::new() } else { rank.to_string() },
        text(&|c| c.confidence.as_str().to_string()),
        text(&products_cell),
        text(&units_cell),
        text(&prices_cell),
        String::new(),
        note.to_string(),
    ];
    cells.iter().map(|cell| spreadsheet_safe(cell)).collect()
}

fn products_cell(candidate: &Candidate) -> String {
    let on: Vec<&str> = candidate
        .products
        .iter()
        .filter(|p| p.on_contract)
        .map(|p| p.product_key.as_str())
        .collect();
    let off: Vec<&str> = candidate
        .products
        .iter()
        .filter(|p| !p.on_contract)
        .map(|p| p.product_key.as_str())
        .collect();
    let mut cell = format!("{} of {}: {}", on.len(), candidate.products.len(), on.join(", "));
    if !off.is_empty() {
        cell.push_str(&format!("; not on the contract: {}", off.join(", ")));
    }
    cell
}

fn units_cell(candidate: &Candidate) -> String {
    let cells: Vec<String> = candidate
        .products
        .iter()
        .filter(|p| p.on_contract)
        .map(|p| {
            let verdict = if p.units_autotask == p.units_bill { "equal" } else { "differ" };
            format!(
                "{}: {} in Autotask, {} billed ({verdict})",
                p.product_key, p.units_autotask, p.units_bill
            )
        })
        .collect();
    cells.join("; ")
}

fn prices_cell(candidate: &Candidate) -> String {
    let cells: Vec<String> = candidate
        .products
        .iter()
        .filter(|p| p.on_contract)
        .map(|p| {
            let bill = scaled(p.price_bill, p.scale);
            match p.price_autotask.map(|price| scaled(price, p.scale)) {
                Some(price) => {
                    let verdict = if price == bill { "equal" } else { "differ" };
                    format!("{}: {price} in Autotask, {bill} billed ({verdict})", p.product_key)
                }
                None => format!("{}: unknown in Autotask, {bill} billed", p.product_key),
            }
        })
        .collect();
    cells.join("; ")
}

/// A row of the file a person accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRow {
    /// The line of the file the row starts on (the header is line 1).
    pub line: u64,
    /// The row's kind: only a `candidate` row may be accepted.
    pub kind: String,
    /// The subscription to link, as written in the file.
    pub subscription_id: String,
    /// The contract to link it to, as written (checked to be a number later).
    pub contract_id: String,
}

/// Why the file, or one of its rows, is refused: `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The adoption file, as the user named it.
    pub file: String,
    /// The line of the row (1: the header).
    pub line: u64,
    /// What is wrong with it, and what to do.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A cell as the person left it: trimmed, and without the `'` cmat put before a cell a
/// spreadsheet would have run as a formula.
fn cell_text(cell: &str) -> &str {
    let cell = cell.trim();
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// The accepted rows of an adoption file; every malformed row is an error naming its line.
pub fn read_accepted(file: &str, text: &str) -> Result<Vec<AcceptedRow>, Vec<RowError>> {
    let error = |line: u64, message: String| RowError { file: file.to_string(), line, message };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers =
        reader.headers().map_err(|err| vec![error(1, format!("not a CSV file: {err}"))])?.clone();
    let column = |name: &str| headers.iter().position(|h| cell_text(h).eq_ignore_ascii_case(name));
    let (Some(accept), Some(kind), Some(subscription), Some(contract)) =
        (column("accept"), column("kind"), column("subscription_id"), column("contract_id"))
    else {
        return Err(vec![error(
            1,
            "not a `cmat adopt` file: the header needs accept, kind, subscription_id and contract_id".into(),
        )]);
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map(|p| p.line()).unwrap_or(0);
                errors.push(error(line, format!("not readable as CSV: {err}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |index: usize| cell_text(record.get(index).unwrap_or_default()).to_string();
        match get(accept).to_ascii_lowercase().as_str() {
            "" | "no" | "n" | "false" | "0" => {}
            "yes" | "y" | "x" | "true" | "1" | "accept" => rows.push(AcceptedRow {
                line,
                kind: get(kind),
                subscription_id: get(subscription),
                contract_id: get(contract),
            }),
            other => errors.push(error(
                line,
                format!("accept is {other:?}: write yes (or leave it empty) to accept a row"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// An accepted link: the row that asked for it, and the contract's UDF before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The file's line that asked for it, named as the change's rule in the audit trail.
    pub line: u64,
    /// The subscription the contract's UDF gets.
    pub subscription_id: String,
    /// The contract's Autotask id.
    pub contract_id: i64,
    /// Its company, for the plan's grouping.
    pub company_id: i64,
    /// Its name, for the plan's contract label.
    pub contract_name: String,
    /// The contract already carries this subscription: nothing to write (a second apply).
    pub already_linked: bool,
}

/// Checks the accepted rows against the bills and what Autotask holds; every refusal names its
/// row, and any refusal refuses the whole file.
pub fn check_links(
    file: &str,
    rows: &[AcceptedRow],
    desired: &DesiredState,
    snapshot: &Snapshot,
) -> Result<Vec<Link>, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut links = Vec::new();
    let mut by_subscription: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_contract: BTreeMap<&str, u64> = BTreeMap::new();
    for row in rows {
        let mut refuse = |message: String| {
            errors.push(RowError { file: file.to_string(), line: row.line, message })
        };
        if let Some(first) = by_subscription.insert(&row.subscription_id, row.line) {
            refuse(format!("subscription {} is accepted on line {first} as well: accept one contract per subscription", row.subscription_id));
            continue;
        }
        if let Some(first) = by_contract.insert(&row.contract_id, row.line) {
            refuse(format!("contract {} is accepted on line {first} as well: a contract bills one subscription", row.contract_id));
            continue;
        }
        match check_row(row, desired, snapshot) {
            Ok(link) => links.push(link),
            Err(message) => refuse(message),
        }
    }
    if errors.is_empty() {
        Ok(links)
    } else {
        Err(errors)
    }
}

/// One accepted row checked: a candidate row, a subscription on the bills, a contract of its
/// company that carries no other subscription; the message says what is wrong.
fn check_row(
    row: &AcceptedRow,
    desired: &DesiredState,
    snapshot: &Snapshot,
) -> Result<Link, String> {
    if row.kind != "candidate" {
        return Err(format!(
            "a {} row cannot be accepted: only a candidate row links a subscription to a contract",
            if row.kind.is_empty() { "kind-less" } else { row.kind.as_str() }
        ));
    }
    let subscription = desired.contracts.get(&row.subscription_id).ok_or_else(|| {
        format!("subscription {:?} is not on the imported bills", row.subscription_id)
    })?;
    let contract = row
        .contract_id
        .parse::<i64>()
        .ok()
        .and_then(|id| snapshot.contracts.get(&id))
        .ok_or_else(|| format!("contract {:?} is not in Autotask", row.contract_id))?;
    if contract.company_id != subscription.company_id {
        return Err(format!(
            "contract {} belongs to company {}, not to {}'s company {}",
            contract.id,
            contract.company_id,
            subscription.organization_name,
            subscription.company_id
        ));
    }
    let already_linked = check_subscription_udf(row, contract, snapshot)?;
    Ok(Link {
        line: row.line,
        subscription_id: row.subscription_id.clone(),
        contract_id: contract.id,
        company_id: contract.company_id,
        contract_name: contract.contract_name.clone(),
        already_linked,
    })
}

/// Whether the contract already carries the row's subscription (nothing to write); an error
/// when Autotask changed since the file was made: the contract carries another subscription,
/// or another contract carries this one.
fn check_subscription_udf(
    row: &AcceptedRow,
    contract: &Contract,
    snapshot: &Snapshot,
) -> Result<bool, String> {
    let held = contract.subscription_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(held) = held.filter(|held| *held != row.subscription_id) {
        return Err(format!(
            "contract {} meanwhile carries \"Subscription ID\" {held}: run `cmat adopt` again",
            contract.id
        ));
    }
    if let Some(other) = snapshot.contracts.values().find(|c| {
        c.id != contract.id
            && c.subscription_id.as_deref().map(str::trim) == Some(row.subscription_id.as_str())
    }) {
        return Err(format!(
            "subscription {} is already on contract {}: run `cmat adopt` again",
            row.subscription_id, other.id
        ));
    }
    Ok(held.is_some())
}

/// The links still to write as plan changes: the UDF set on each contract, the row that asked
/// for it as the change's rule (`adopt.csv:7`), so the audit trail names it.
pub fn link_changes(file: &str, links: &[Link], udf: &str, snapshot: &Snapshot) -> Diff {
    let changes = links
        .iter()
        .filter(|link| !link.already_linked)
        .map(|link| {
            let old =
                snapshot.contracts.get(&link.contract_id).and_then(|c| c.subscription_id.clone());
            Change {
                key: NaturalKey::Subscription(link.subscription_id.clone()),
                write: Write::UpdateContract {
                    id: link.contract_id,
                    edits: ContractEdits {
                        subscription: Some(UdfEdit {
                            name: udf.to_string(),
                            edit: Edit { old, new: link.subscription_id.clone() },
                        }),
                        ..ContractEdits::default()
                    },
                },
                rule: RuleOrigin { file: file.to_string(), line: link.line as u32 },
                reason: format!(
                    "adopt: contract #{} bills subscription {} (accepted)",
                    link.contract_id, link.subscription_id
                ),
                company_id: link.company_id,
                contract_label: format!(
                    "{} [{}] #{}",
                    link.contract_name, link.subscription_id, link.contract_id
                ),
            }
        })
        .collect();
    Diff {
        changes,
        unchanged: links.iter().filter(|l| l.already_linked).count() as u64,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::desired_state;
    use crate::snapshot::{ContractService, Service};
    use crate::testing::{default_rules, line, play};
    use proptest::prelude::*;

    /// A contract of [`tenant`]: id, company, name, end date, its (sku, units).
    type ContractSpec<'a> = (i64, i64, &'a str, &'a str, &'a [(&'a str, i64)]);
    /// A generated contract: id, its (product index, units), whether named like the organization.
    type RandomContract = (i64, Vec<(usize, i64)>, bool);
    /// A generated contract with its skus: id, (sku, units), name.
    type NamedContract<'a> = (i64, Vec<(&'a str, i64)>, &'a str);

    const RECURRING: i64 = 7;
    const COMPANY: i64 = 100;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    /// A snapshot with Services `A`…`E` (ids 1…5) and the given contracts: (id, company, name,
    /// end date, [(sku, units)]), every contract service priced 10.
    fn tenant(contracts: &[ContractSpec<'_>]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (index, sku) in ["A", "B", "C", "D", "E"].iter().enumerate() {
            let id = index as i64 + 1;
            snapshot.services.insert(
                id,
                Service {
                    id,
                    name: format!("Service {sku}"),
                    sku: Some(sku.to_string()),
                    billing_code_id: 1,
                    period_type: 2,
                    unit_price: Decimal::TEN,
                    unit_cost: None,
                    is_active: true,
                },
            );
        }
        let mut next = 1000;
        for (id, company, name, end, services) in contracts {
            snapshot.contracts.insert(
                *id,
                Contract {
                    id: *id,
                    company_id: *company,
                    contract_name: name.to_string(),
                    contract_type: RECURRING,
                    status: 1,
                    start_date: day("2026-01-01"),
                    end_date: day(end),
                    service_level_agreement_id: Some(1),
                    contract_category: None,
                    subscription_id: None,
                },
            );
            for (sku, units) in services.iter() {
                let service_id = snapshot
                    .services
                    .values()
                    .find(|s| s.sku.as_deref() == Some(*sku))
                    .map(|s| s.id)
                    .expect("sku");
                next += 1;
                snapshot.contract_services.insert(
                    next,
                    ContractService {
                        id: next,
                        contract_id: *id,
                        service_id,
                        adjusted_price: Some(Decimal::new(100_000, 4)),
                        unit_cost: None,
                        foreign_currency: false,
                        invoice_description: None,
                    },
                );
                snapshot.contract_service_units.insert(
                    next,
                    ContractServiceUnit {
                        id: next,
                        contract_id: *id,
                        contract_service_id: next,
                        service_id,
                        start_date: day("2026-11-01"),
                        end_date: day("2026-11-30"),
                        units: *units,
                        price: None,
                        cost: None,
                    },
                );
            }
        }
        snapshot
    }

    /// One bill of organization `Org` (company 100): (subscription, [(item, quantity)]).
    fn bills(subscriptions: &[(&str, &[(&str, &str)])]) -> DesiredState {
        let lines: Vec<_> = subscriptions
            .iter()
            .flat_map(|(subscription, items)| {
                items.iter().map(move |(item, quantity)| {
                    line("2026-11-01", "Org", "Microsoft CSP", subscription, item, quantity, "10")
                })
            })
            .collect();
        desired_state(&default_rules(), &lines)
    }

    fn of<'a>(proposal: &'a Proposal, subscription: &str) -> &'a SubscriptionProposal {
        proposal
            .subscriptions
            .iter()
            .find(|s| s.subscription_id == subscription)
            .expect("subscription in the proposal")
    }

    fn ids(proposal: &SubscriptionProposal) -> Vec<i64> {
        proposal.candidates.iter().map(|c| c.contract_id).collect()
    }

    #[test]
    fn the_contract_with_the_products_and_units_comes_first_and_a_name_alone_never() {
        let desired = bills(&[("S1", &[("A", "10"), ("B", "2")])]);
        let snapshot = tenant(&[
            (1, COMPANY, "Microsoft 365 - Org", "2026-12-31", &[]),
            (2, COMPANY, "Office", "2026-12-31", &[("A", 8), ("B", 2)]),
            (3, COMPANY, "Hand-made", "2026-12-31", &[("A", 10), ("B", 2)]),
            (4, COMPANY, "Only A", "2026-12-31", &[("A", 10)]),
        ]);
        let proposal = propose(&desired, &snapshot, RECURRING);
        let s1 = of(&proposal, "S1");
        assert_eq!(ids(s1), [3, 2, 4], "strong, then the most products on the contract");
        assert_eq!(s1.candidates[0].confidence, Confidence::Strong);
        assert_eq!(s1.candidates[1].confidence, Confidence::Partial);
        assert_eq!(s1.verdict, Verdict::OneStrong);
    }

    #[test]
    fn ended_linked_foreign_and_other_type_contracts_are_not_candidates() {
        let desired = bills(&[("S1", &[("A", "10")])]);
        let mut snapshot = tenant(&[
            (1, COMPANY, "Ended", "2026-10-31", &[("A", 10)]),
            (2, 999, "Another company's", "2026-12-31", &[("A", 10)]),
            (3, COMPANY, "Linked", "2026-12-31", &[("A", 10)]),
            (4, COMPANY, "Block hours", "2026-12-31", &[("A", 10)]),
            (5, COMPANY, "Empty UDF", "2026-12-31", &[("A", 10)]),
        ]);
        snapshot.contracts.get_mut(&3).expect("3").subscription_id = Some("OTHER".into());
        snapshot.contracts.get_mut(&4).expect("4").contract_type = 1;
        snapshot.contracts.get_mut(&5).expect("5").subscription_id = Some(" ".into());
        let proposal = propose(&desired, &snapshot, RECURRING);
        assert_eq!(ids(of(&proposal, "S1")), [5]);
    }

    #[test]
    fn a_contract_billing_several_subscriptions_is_marked_and_never_proposed() {
        let desired = bills(&[("S1", &[("A", "5")]), ("S2", &[("B", "3")]), ("S3", &[("C", "1")])]);
        let snapshot =
            tenant(&[(1, COMPANY, "Everything for Org", "2026-12-31", &[("A", 5), ("B", 3)])]);
        let proposal = propose(&desired, &snapshot, RECURRING);
        assert_eq!(proposal.shared.len(), 1);
        assert_eq!(proposal.shared[0].contract_id, 1);
        assert_eq!(proposal.shared[0].covers, ["S1", "S2"]);
        for subscription in ["S1", "S2", "S3"] {
            assert_eq!(of(&proposal, subscription).verdict, Verdict::NoCandidate);
        }
        let csv = to_csv(&proposal);
        assert!(csv.contains(",shared_contract,,Org,100,1,Everything for Org,"), "{csv}");
        assert!(csv.contains("S1 S2"), "{csv}");
    }

    #[test]
    fn two_strong_contracts_or_one_contract_strong_for_two_subscriptions_are_ambiguous() {
        let desired = bills(&[("S1", &[("A", "5")])]);
        let snapshot = tenant(&[
            (1, COMPANY, "One", "2026-12-31", &[("A", 5)]),
            (2, COMPANY, "Copy", "2026-12-31", &[("A", 5)]),
        ]);
        assert_eq!(of(&propose(&desired, &snapshot, RECURRING), "S1").verdict, Verdict::Ambiguous);
        // Two subscriptions of the same product and count: one contract cannot be both's.
        let desired = bills(&[("S1", &[("A", "5")]), ("S2", &[("A", "5")])]);
        let snapshot = tenant(&[(1, COMPANY, "One", "2026-12-31", &[("A", 5)])]);
        let proposal = propose(&desired, &snapshot, RECURRING);
        assert_eq!(of(&proposal, "S1").verdict, Verdict::Ambiguous);
        assert_eq!(of(&proposal, "S2").verdict, Verdict::Ambiguous);
        assert!(proposal.shared.is_empty(), "one subscription's products explain it");
    }

    #[test]
    fn an_azure_subscription_is_never_proposed_and_its_row_says_why() {
        let lines = [line("2026-11-01", "Org", "Azure Plan", "AZ", "DZH318Z0BQ4L", "1.5", "100")];
        let desired = desired_state(&default_rules(), &lines);
        let snapshot = tenant(&[(1, COMPANY, "Azure for Org", "2026-12-31", &[("A", 1)])]);
        let proposal = propose(&desired, &snapshot, RECURRING);
        let azure = of(&proposal, "AZ");
        assert!(azure.consumption && azure.candidates.is_empty());
        assert!(to_csv(&proposal).contains(",no_candidate,AZ,Org,100,,,,,,,,,,,\"Azure consumption: cmat adopts licence contracts only;"));
    }

    fn row(line: u64, kind: &str, subscription: &str, contract: &str) -> AcceptedRow {
        AcceptedRow {
            line,
            kind: kind.into(),
            subscription_id: subscription.into(),
            contract_id: contract.into(),
        }
    }

    fn refusals(result: Result<Vec<Link>, Vec<RowError>>) -> Vec<String> {
        result.expect_err("refused").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn bad_rows_are_refused_naming_their_line() {
        let desired = bills(&[("S1", &[("A", "5")]), ("S2", &[("B", "3")]), ("S3", &[("C", "1")])]);
        let mut snapshot = tenant(&[
            (1, COMPANY, "One", "2026-12-31", &[("A", 5)]),
            (2, COMPANY, "Two", "2026-12-31", &[("B", 3)]),
            (3, 999, "Elsewhere", "2026-12-31", &[("B", 3)]),
            (4, COMPANY, "Taken", "2026-12-31", &[("B", 3)]),
        ]);
        snapshot.contracts.get_mut(&4).expect("4").subscription_id = Some("S9".into());
        let check = |rows: &[AcceptedRow]| check_links("adopt.csv", rows, &desired, &snapshot);
        assert_eq!(
            refusals(check(&[row(2, "candidate", "S1", "1"), row(5, "candidate", "S1", "2")])),
            ["adopt.csv:5: subscription S1 is accepted on line 2 as well: accept one contract per subscription"]
        );
        assert_eq!(
            refusals(check(&[row(2, "candidate", "S1", "1"), row(3, "candidate", "S2", "1")])),
            ["adopt.csv:3: contract 1 is accepted on line 2 as well: a contract bills one subscription"]
        );
        assert_eq!(
            refusals(check(&[
                row(2, "candidate", "S7", "1"),
                row(3, "candidate", "S2", "77"),
                row(4, "candidate", "S1", "3"),
                row(6, "candidate", "S3", "4"),
                row(7, "shared_contract", "", "2"),
            ])),
            [
                "adopt.csv:2: subscription \"S7\" is not on the imported bills",
                "adopt.csv:3: contract \"77\" is not in Autotask",
                "adopt.csv:4: contract 3 belongs to company 999, not to Org's company 100",
                "adopt.csv:6: contract 4 meanwhile carries \"Subscription ID\" S9: run `cmat adopt` again",
                "adopt.csv:7: a shared_contract row cannot be accepted: only a candidate row links a subscription to a contract",
            ]
        );
    }

    #[test]
    fn accepted_links_become_udf_updates_and_a_second_run_writes_nothing() {
        let desired = bills(&[("S1", &[("A", "5")]), ("S2", &[("B", "3")])]);
        let mut snapshot = tenant(&[
            (1, COMPANY, "One", "2026-12-31", &[("A", 5)]),
            (2, COMPANY, "Two", "2026-12-31", &[("B", 3)]),
        ]);
        let rows = [row(2, "candidate", "S1", "1"), row(4, "candidate", "S2", "2")];
        let links = check_links("adopt.csv", &rows, &desired, &snapshot).expect("links");
        let diff = link_changes("adopt.csv", &links, "Subscription ID", &snapshot);
        let digests = crate::plan::Digests {
            snapshot: String::new(),
            inputs: String::new(),
            mappings: String::new(),
        };
        let plan = crate::plan::Plan::new(diff, digests, chrono::DateTime::UNIX_EPOCH);
        let rules: Vec<&str> = plan.changes.iter().map(|c| c.rule.as_str()).collect();
        assert_eq!(rules, ["adopt.csv:2", "adopt.csv:4"]);
        // The saved form reads back as the same writes.
        let again = crate::plan::Plan::from_json("adopt.json", &plan.to_json()).expect("reads");
        assert_eq!(
            again.changes.iter().map(|c| &c.write).collect::<Vec<_>>(),
            plan.changes.iter().map(|c| &c.write).collect::<Vec<_>>()
        );
        play(&plan, &mut snapshot);
        assert_eq!(snapshot.contracts[&1].subscription_id.as_deref(), Some("S1"));
        let links = check_links("adopt.csv", &rows, &desired, &snapshot).expect("links");
        assert!(links.iter().all(|link| link.already_linked));
        assert!(link_changes("adopt.csv", &links, "Subscription ID", &snapshot).changes.is_empty());
        assert!(propose(&desired, &snapshot, RECURRING).subscriptions.is_empty());
    }

    #[test]
    fn the_file_reads_back_its_accepted_rows_and_names_a_bad_cell() {
        let desired = bills(&[("S1", &[("A", "5")]), ("=S2", &[("B", "3")])]);
        let snapshot = tenant(&[
            (1, COMPANY, "=HYPERLINK(\"x\")", "2026-12-31", &[("A", 5)]),
            (2, COMPANY, "Two", "2026-12-31", &[("B", 3)]),
        ]);
        let csv = to_csv(&propose(&desired, &snapshot, RECURRING));
        assert!(csv.contains("'=HYPERLINK"), "formula-safe: {csv}");
        assert!(csv.starts_with("accept,kind,subscription_id,"), "{csv}");
        assert!(read_accepted("adopt.csv", &csv).expect("reads").is_empty());
        let accepted = csv.replace("\n,candidate,", "\nyes,candidate,");
        let rows = read_accepted("adopt.csv", &accepted).expect("reads");
        let pairs: Vec<(u64, &str, &str)> = rows
            .iter()
            .map(|r| (r.line, r.subscription_id.as_str(), r.contract_id.as_str()))
            .collect();
        assert_eq!(pairs, [(2, "=S2", "2"), (3, "S1", "1")], "{accepted}");
        let bad = csv.replacen("\n,candidate,", "\nmaybe,candidate,", 1);
        assert_eq!(
            read_accepted("adopt.csv", &bad).expect_err("refused")[0].to_string(),
            "adopt.csv:2: accept is \"maybe\": write yes (or leave it empty) to accept a row"
        );
        assert_eq!(
            read_accepted("notes.csv", "a,b\n1,2\n").expect_err("refused")[0].to_string(),
            "notes.csv:1: not a `cmat adopt` file: the header needs accept, kind, subscription_id and contract_id"
        );
    }

    /// Contracts of random products and units, named like the organization or not.
    fn contracts() -> impl Strategy<Value = Vec<RandomContract>> {
        proptest::collection::vec(
            (proptest::collection::vec((0usize..5, 1i64..4), 0..3), any::<bool>()),
            0..6,
        )
        .prop_map(|contracts| {
            contracts
                .into_iter()
                .enumerate()
                .map(|(index, (services, named))| (index as i64 + 1, services, named))
                .collect()
        })
    }

    proptest! {
        /// Whatever the tenant: a candidate bills one of the subscription's products at least
        /// (never a name alone), strong means every product with the bill's units, and a shared
        /// contract is nobody's candidate.
        #[test]
        fn candidates_always_rest_on_products(
            subscriptions in proptest::collection::vec(proptest::collection::btree_map(0usize..5, 1i64..4, 1..3), 1..4),
            contracts in contracts(),
        ) {
            const SKUS: [&str; 5] = ["A", "B", "C", "D", "E"];
            let owned: Vec<(String, Vec<(&str, String)>)> = subscriptions
                .iter()
                .enumerate()
                .map(|(index, items)| {
                    (format!("S{index}"), items.iter().map(|(sku, n)| (SKUS[*sku], n.to_string())).collect())
                })
                .collect();
            let borrowed: Vec<Vec<(&str, &str)>> =
                owned.iter().map(|(_, items)| items.iter().map(|(s, n)| (*s, n.as_str())).collect()).collect();
            let bill: Vec<(&str, &[(&str, &str)])> =
                owned.iter().zip(&borrowed).map(|((s, _), items)| (s.as_str(), items.as_slice())).collect();
            let desired = bills(&bill);
            let specs: Vec<NamedContract<'_>> = contracts
                .iter()
                .map(|(id, services, named)| {
                    let mut seen = BTreeSet::new();
                    let services = services.iter().filter(|(s, _)| seen.insert(*s)).map(|(s, n)| (SKUS[*s], *n)).collect();
                    (*id, services, if *named { "Microsoft 365 - Org" } else { "Contract" })
                })
                .collect();
            let table: Vec<ContractSpec<'_>> = specs
                .iter()
                .map(|(id, services, name)| (*id, COMPANY, *name, "2026-12-31", services.as_slice()))
                .collect();
            let snapshot = tenant(&table);
            let proposal = propose(&desired, &snapshot, RECURRING);
            let shared: BTreeSet<i64> = proposal.shared.iter().map(|s| s.contract_id).collect();
            for subscription in &proposal.subscriptions {
                let items = &desired.contracts[&subscription.subscription_id].services;
                for candidate in &subscription.candidates {
                    prop_assert!(!shared.contains(&candidate.contract_id));
                    let on: Vec<&str> = specs.iter().find(|s| s.0 == candidate.contract_id).map(|s| s.1.iter().map(|(k, _)| *k).collect()).unwrap_or_default();
                    prop_assert!(items.keys().any(|item| on.contains(&item.as_str())), "a name alone: {candidate:?}");
                    if candidate.confidence == Confidence::Strong {
                        prop_assert!(candidate.products.iter().all(|p| p.on_contract && p.units_autotask == p.units_bill));
                    }
                }
                prop_assert_eq!(subscription.verdict == Verdict::NoCandidate, subscription.candidates.is_empty());
            }
        }
    }
}
