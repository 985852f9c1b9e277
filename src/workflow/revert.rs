//! `cmat revert RUN_ID`: the writes every run made, read back from the journal (what was sent,
//! with the ids Autotask answered) and the audit trail (what each field held before), for the
//! engine's pure [`cmat_engine::revert::revert_plan`].

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::store::{AuditFilter, Store, StoreError};
use cmat_engine::revert::{RunWrite, Written};
use cmat_engine::snapshot::Snapshot;
use cmat_engine::write::{Action, ContractEdits, Edit, Entity, NaturalKey, NewCharge};

/// A journaled write cmat cannot read back (a hand-edited database, a newer cmat's write).
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("journal of run {run_id}, change {change_ref} ({entity} {key}): {message}")]
    Unreadable { run_id: String, change_ref: String, entity: String, key: String, message: String },
}

/// Old values from the audit trail, by (run, key, entity, field); and each run's rule prefix.
struct Trail {
    old: BTreeMap<(String, String, String, String), String>,
    reverting: BTreeMap<String, String>,
}

fn trail(store: &Store) -> Result<Trail, StoreError> {
    let mut trail = Trail { old: BTreeMap::new(), reverting: BTreeMap::new() };
    for row in store.audit_rows(&AuditFilter::default())? {
        if let Some(reverted) = row.rule.strip_prefix("revert:") {
            trail.reverting.insert(row.run_id.clone(), reverted.to_string());
        }
        if let Some(old) = row.old_value {
            trail.old.insert((row.run_id, row.key, row.entity, row.field), old);
        }
    }
    Ok(trail)
}

/// Every write Autotask took, oldest first, as the engine's revert reads them.
pub fn run_writes(store: &Store, snapshot: &Snapshot) -> Result<Vec<RunWrite>, ReadBackError> {
    let trail = trail(store)?;
    let mut writes = Vec::new();
    for (intent, autotask_id) in store.journal_done()? {
        let unreadable = |message: String| ReadBackError::Unreadable {
            run_id: intent.run_id.clone(),
            change_ref: intent.change_ref.clone(),
            entity: intent.entity.clone(),
            key: intent.key.clone(),
            message,
        };
        let key: NaturalKey = intent.key.parse().map_err(unreadable)?;
        let body: Value = serde_json::from_str(&intent.request_body)
            .map_err(|err| unreadable(format!("request body is not JSON: {err}")))?;
        let old = |field: &str| {
            trail
                .old
                .get(&(
                    intent.run_id.clone(),
                    intent.key.clone(),
                    intent.entity.clone(),
                    field.to_string(),
                ))
                .filter(|text| text.as_str() != "(none)")
                .cloned()
        };
        let kind = (intent.action.as_str(), intent.entity.as_str());
        let written = written(kind, &body, autotask_id, &old, snapshot).map_err(unreadable)?;
        writes.push(RunWrite {
            reverting: trail.reverting.get(&intent.run_id).cloned(),
            run_id: intent.run_id.clone(),
            key,
            written,
        });
    }
    Ok(writes)
}

/// One journaled write: its request body, the id Autotask answered, and the fields' old values.
fn written(
    (action, entity): (&str, &str),
    body: &Value,
    autotask_id: Option<i64>,
    old: &dyn Fn(&str) -> Option<String>,
    snapshot: &Snapshot,
) -> Result<Written, String> {
    let action = Action::from_name(action).ok_or_else(|| format!("unknown action {action}"))?;
    let entity = Entity::from_name(entity).ok_or_else(|| format!("unknown entity {entity}"))?;
    let write = Journaled { body, autotask_id, old };
    let field = Body(body);
    Ok(match (action, entity) {
        (Action::Adjust, Entity::ContractServiceAdjustments) => write.adjusted()?,
        (Action::Create, Entity::ContractCharges) => {
            Written::ChargeCreated { contract: field.int("contractID")?, id: write.id()? }
        }
        (Action::Update, Entity::ContractCharges) => write.charge_updated(snapshot)?,
        (Action::Delete, Entity::ContractCharges) => {
            Written::ChargeDeleted { contract: field.int("contractID")?, charge: deleted(old)? }
        }
        (Action::Create, Entity::Contracts) => Written::ContractCreated { id: write.id()? },
        (Action::Update, Entity::Contracts) => {
            Written::ContractUpdated { id: write.id()?, edits: contract_edits(body, old)? }
        }
        (Action::Create, Entity::Services) => Written::ServiceCreated { id: write.id()? },
        (action, entity) => {
            return Err(format!(
                "{} {} is not a write cmat makes",
                action.as_str(),
                entity.as_str()
            ))
        }
    })
}

/// A journaled write being read back: what [`written`]'s kinds of write are read from.
struct Journaled<'a> {
    body: &'a Value,
    autotask_id: Option<i64>,
    old: &'a dyn Fn(&str) -> Option<String>,
}

impl Journaled<'_> {
    /// The id Autotask answered, else the one the body names.
    fn id(&self) -> Result<i64, String> {
        (self.autotask_id.or(Body(self.body).int("id").ok()))
            .ok_or_else(|| "no Autotask id was recorded".to_string())
    }

    /// An amount's old value, as the audit trail kept it.
    fn decimal_old(&self, name: &str) -> Result<Option<Decimal>, String> {
        (self.old)(name).map(|text| decimal(&text, name)).transpose()
    }

    /// A units adjustment, with the prices it replaced.
    fn adjusted(&self) -> Result<Written, String> {
        let field = Body(self.body);
        Ok(Written::Adjusted {
            contract: field.int("contractID")?,
            service: field.int("serviceID")?,
            effective_date: field.date("effectiveDate")?,
            unit_change: field.int("unitChange")?,
            adjusted_unit_price: field.decimal("adjustedUnitPrice")?,
            adjusted_unit_cost: field.decimal("adjustedUnitCost")?,
            price_before: self.decimal_old("adjustedUnitPrice")?,
            cost_before: self.decimal_old("adjustedUnitCost")?,
        })
    }

    /// A charge update: the body carries only `id` and what changed; the charge's contract is
    /// in the snapshot (a charge gone since is noted as such by the engine, by its id).
    fn charge_updated(&self, snapshot: &Snapshot) -> Result<Written, String> {
        let field = Body(self.body);
        let edit = |name: &str| -> Result<Option<Edit<Decimal>>, String> {
            match self.body.get(name) {
                None => Ok(None),
                Some(_) => {
                    Ok(Some(Edit { old: self.decimal_old(name)?, new: field.decimal(name)? }))
                }
            }
        };
        let charge = self.id()?;
        let contract = field
            .int("contractID")
            .ok()
            .or_else(|| snapshot.charges.get(&charge).map(|c| c.contract_id))
            .unwrap_or_default();
        Ok(Written::ChargeUpdated {
            contract,
            id: charge,
            unit_price: edit("unitPrice")?,
            unit_cost: edit("unitCost")?,
        })
    }
}

/// The fields a contract update changed, each with what it held before (as the audit kept it).
fn contract_edits(
    body: &Value,
    old: &dyn Fn(&str) -> Option<String>,
) -> Result<ContractEdits, String> {
    let field = Body(body);
    let present = |name: &str| body.get(name).is_some();
    let mut edits = ContractEdits::default();
    if present("contractName") {
        edits.name = Some(Edit { old: old("contractName"), new: field.text("contractName")? });
    }
    if present("endDate") {
        let before = old("endDate").map(|text| date(&text, "endDate")).transpose()?;
        edits.end_date = Some(Edit { old: before, new: field.date("endDate")? });
    }
    let int_old = |name: &str| {
        old(name).map(|text| text.parse::<i64>().map_err(|_| format!("old {name}: {text:?}")))
    };
    if present("serviceLevelAgreementID") {
        edits.service_level_agreement_id = Some(Edit {
            old: int_old("serviceLevelAgreementID").transpose()?,
            new: field.int("serviceLevelAgreementID")?,
        });
    }
    if present("contractCategory") {
        edits.category = Some(Edit {
            old: int_old("contractCategory").transpose()?,
            new: field.int("contractCategory")?,
        });
    }
    if let Some(udf) = body.get("userDefinedFields").and_then(|udfs| udfs.get(0)) {
        // Only adopt sets it (the "Subscription ID"); the revert leaves it and says so.
        let text = |name: &str| udf.get(name).and_then(Value::as_str).unwrap_or_default();
        edits.subscription = Some(cmat_engine::write::UdfEdit {
            name: text("name").to_string(),
            edit: Edit { old: None, new: text("value").to_string() },
        });
    }
    Ok(edits)
}

/// A deleted charge, from the audit trail's old values of its delete.
fn deleted(old: &dyn Fn(&str) -> Option<String>) -> Result<NewCharge, String> {
    let need = |name: &str| old(name).ok_or_else(|| format!("the audit trail has no {name}"));
    let int = |name: &str| {
        need(name)?.parse::<i64>().map_err(|_| format!("{name} is not a whole number"))
    };
    Ok(NewCharge {
        name: need("name")?,
        description: old("description").unwrap_or_default(),
        date_purchased: date(&need("datePurchased")?, "datePurchased")?,
        charge_type: int("chargeType")?,
        unit_quantity: decimal(&need("unitQuantity")?, "unitQuantity")?,
        unit_price: decimal(&need("unitPrice")?, "unitPrice")?,
        unit_cost: old("unitCost").map(|text| decimal(&text, "unitCost")).transpose()?,
        billing_code_id: int("billingCodeID")?,
        is_billable_to_company: need("isBillableToCompany")? == "true",
    })
}

fn decimal(text: &str, name: &str) -> Result<Decimal, String> {
    Decimal::from_str(text).map_err(|_| format!("{name}: {text:?} is not an amount"))
}

fn date(text: &str, name: &str) -> Result<chrono::NaiveDate, String> {
    text.get(..10)
        .and_then(|day| day.parse().ok())
        .ok_or_else(|| format!("{name}: {text:?} is not a date"))
}

/// A request body's fields, typed.
struct Body<'a>(&'a Value);

impl Body<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.0
            .get(name)
            .filter(|value| !value.is_null())
            .ok_or_else(|| format!("{name} is missing"))
    }

    fn int(&self, name: &str) -> Result<i64, String> {
        self.get(name)?.as_i64().ok_or_else(|| format!("{name} is not a whole number"))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.get(name)?.as_str().map(str::to_string).ok_or_else(|| format!("{name} is not text"))
    }

    fn date(&self, name: &str) -> Result<chrono::NaiveDate, String> {
        date(&self.text(name)?, name)
    }

    /// Amounts go out as JSON numbers whose text is the decimal's (`adapter::api_number`).
    fn decimal(&self, name: &str) -> Result<Decimal, String> {
        match self.get(name)? {
            Value::Number(number) => decimal(&number.to_string(), name),
            Value::String(text) => decimal(text, name),
            _ => Err(format!("{name} is not an amount")),
        }
    }
}
