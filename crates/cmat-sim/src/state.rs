//! The simulated tenant's records and the business rules of writing them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Months, NaiveDate, NaiveDateTime, Timelike};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::schema::{
    coerce, date_of, decimal_json, decimal_of, entities, format_date, format_timestamp, int_of,
    EntityDef, FieldDef, Kind, CHARGE_STATUS_POSTED, CONTRACT_TYPE_RECURRING_SERVICE,
    USE_TYPE_MATERIAL_COST_CODE, USE_TYPE_RECURRING_CONTRACT_SERVICE,
};
use crate::seed::Seed;
use crate::ApiError;

/// At most this many monthly periods are derived per contract service.
const MAX_PERIODS: u32 = 240;

#[derive(Debug, Clone)]
struct Record {
    fields: Map<String, Value>,
    /// UDF name → value (Contracts only).
    udfs: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone)]
struct Adjustment {
    id: i64,
    contract_service_id: i64,
    date: NaiveDate,
    unit_change: i64,
    fields: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct State {
    pub defs: Vec<EntityDef>,
    pub contract_udfs: Vec<String>,
    records: BTreeMap<&'static str, BTreeMap<i64, Record>>,
    adjustments: Vec<Adjustment>,
    next_id: BTreeMap<&'static str, i64>,
    unit_ids: BTreeMap<(i64, NaiveDate), i64>,
    next_unit_id: i64,
    last_stamp: NaiveDateTime,
    /// Every entity's rows as last computed; any write clears it (see [`State::stamp`]), so
    /// that paging through 500 000 derived unit periods does not derive them on every page.
    rows_cache: BTreeMap<&'static str, Arc<Vec<Value>>>,
    /// The API user may not see costs: every cost reads as null and cost writes are ignored
    /// (API-NOTES, "Permissions and currencies").
    hide_costs: bool,
    /// Contracts UDFs the tenant requires.
    pub required_udfs: Vec<String>,
    /// The API user's name: its Resources record's lines of business restrict what it reads.
    api_user: String,
}

/// The fields an API user without cost permission reads as null and cannot write.
const COST_FIELDS: [&str; 4] = ["unitCost", "extendedCost", "cost", "adjustedUnitCost"];

fn e500(message: impl Into<String>) -> ApiError {
    ApiError::new(500, message)
}

fn first_ids(entity: &str) -> i64 {
    match entity {
        "Companies" => 29_683_600,
        "Contracts" => 29_684_001,
        "Services" => 29_685_001,
        "ContractServices" => 29_686_001,
        "ContractServiceAdjustments" => 29_687_001,
        "ContractCharges" => 29_688_001,
        _ => 29_689_001,
    }
}

/// What a write body said, fields by canonical name.
/// A `ContractServiceAdjustments` create that passed Autotask's checks: what committing it
/// needs.
struct CheckedAdjustment {
    contract_id: i64,
    date: NaiveDate,
    unit_change: i64,
    price: Option<Decimal>,
    cost: Option<Decimal>,
    /// The contract service it adjusts; `None`: one is created for `service_id`.
    contract_service: Option<i64>,
    service_id: i64,
}

struct Input {
    id: Option<i64>,
    fields: BTreeMap<&'static str, Value>,
    udfs: Option<Vec<(String, Option<String>)>>,
}

impl State {
    pub fn new(seed: &Seed) -> Result<State, ApiError> {
        let mut defs = entities(&seed.slas);
        for (entity, fields) in &seed.required_fields {
            let def = defs
                .iter_mut()
                .find(|d| d.name.eq_ignore_ascii_case(entity))
                .ok_or_else(|| e500(format!("requiredFields: no entity {entity}")))?;
            for name in fields {
                let field =
                    def.fields.iter_mut().find(|f| f.name.eq_ignore_ascii_case(name)).ok_or_else(
                        || e500(format!("requiredFields: {entity} has no field {name}")),
                    )?;
                field.required = true;
            }
        }
        let mut state = State {
            defs,
            contract_udfs: seed.contract_udfs.clone(),
            records: BTreeMap::new(),
            adjustments: Vec::new(),
            next_id: BTreeMap::new(),
            unit_ids: BTreeMap::new(),
            next_unit_id: 29_690_001,
            last_stamp: NaiveDateTime::MIN,
            rows_cache: BTreeMap::new(),
            hide_costs: seed.hide_costs,
            required_udfs: seed.required_contract_udfs.clone(),
            api_user: seed.credentials.username.clone(),
        };
        let names: Vec<&'static str> = state.defs.iter().map(|d| d.name).collect();
        for name in &names {
            state.records.insert(name, BTreeMap::new());
            state.next_id.insert(name, first_ids(name));
        }
        let now = state.stamp();
        // Seed in dependency order; the seed is trusted for business rules but typed like input.
        for entity in crate::seed::SEEDABLE {
            let Some(list) = seed.records.get(entity) else {
                continue;
            };
            for (index, raw) in list.iter().enumerate() {
                state.seed_record(entity, raw, now).map_err(|e| {
                    e500(format!("seed {entity}[{index}]: {}", e.errors.join("; ")))
                })?;
            }
        }
        Ok(state)
    }

    /// A strictly increasing "now", so that `gt lastModifiedDateTime` never misses a write.
    fn stamp(&mut self) -> NaiveDateTime {
        // Every write takes a stamp: what was read before it may have changed.
        self.rows_cache.clear();
        let mut now = chrono::Utc::now().naive_utc();
        now = now
            .with_nanosecond((now.and_utc().timestamp_subsec_millis()) * 1_000_000)
            .unwrap_or(now);
        if now <= self.last_stamp {
            now = self.last_stamp + chrono::Duration::milliseconds(1);
        }
        self.last_stamp = now;
        now
    }

    pub fn def(&self, entity: &str) -> Option<&EntityDef> {
        self.defs.iter().find(|d| d.name.eq_ignore_ascii_case(entity))
    }

    fn def_owned(&self, entity: &str) -> Result<EntityDef, ApiError> {
        self.def(entity)
            .cloned()
            .ok_or_else(|| ApiError::new(404, format!("Unknown entity {entity}")))
    }

    fn udf_names(&self, def: &EntityDef) -> &[String] {
        if def.has_udfs {
            &self.contract_udfs
        } else {
            &[]
        }
    }

    fn seed_record(
        &mut self,
        entity: &str,
        raw: &Value,
        now: NaiveDateTime,
    ) -> Result<(), ApiError> {
        let def = self.def_owned(entity)?;
        if entity == "ContractServiceAdjustments" {
            let contract_id = raw
                .get("contractID")
                .and_then(int_of)
                .ok_or_else(|| e500("contractID is required"))?;
            self.create_adjustment(Some(contract_id), raw)?;
            return Ok(());
        }
        let input = self.parse_input(&def, raw)?;
        let id = input.id.ok_or_else(|| e500("seeded records need an id"))?;
        let mut record = self.new_record(&def, input.fields);
        record.fields.insert("id".into(), Value::from(id));
        if let Some(udfs) = input.udfs {
            self.apply_udfs(&mut record, udfs)?;
        }
        self.apply_defaults(&def, &mut record, now);
        self.validate(&def, &record)?;
        if self.exists(def.name, id) {
            return Err(e500(format!("duplicate id {id}")));
        }
        // A seed exported from a tenant keeps its stamps (the pull's change reads rely on them).
        let stamps = seeded_stamps(&record);
        self.compute(&def, &mut record, now, true);
        record.fields.extend(stamps);
        let next = self.next_id.get(def.name).copied().unwrap_or(1);
        self.next_id.insert(def.name, next.max(id + 1));
        self.records.entry(def.name).or_default().insert(id, record);
        Ok(())
    }

    /// A record of `def` with every field null but the ones given, and its UDFs unset.
    fn new_record(&self, def: &EntityDef, fields: BTreeMap<&'static str, Value>) -> Record {
        let mut record = Record { fields: Map::new(), udfs: BTreeMap::new() };
        for field in &def.fields {
            record.fields.insert(field.name.to_string(), Value::Null);
        }
        for (name, value) in fields {
            record.fields.insert(name.to_string(), value);
        }
        for name in self.udf_names(def).to_vec() {
            record.udfs.insert(name, None);
        }
        record
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    fn record_json(def: &EntityDef, record: &Record, hide_costs: bool) -> Value {
        let mut fields = record.fields.clone();
        for field in def.fields.iter().filter(|field| field.write_only) {
            fields.remove(field.name);
        }
        if hide_costs {
            for name in COST_FIELDS {
                if let Some(value) = fields.get_mut(name) {
                    *value = Value::Null;
                }
            }
        }
        if def.has_udfs && record.udfs.values().any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
        {
            let udfs: Vec<Value> = record
                .udfs
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            fields.insert("userDefinedFields".into(), Value::Array(udfs));
        }
        Value::Object(fields)
    }

    /// Every record of an entity, ordered by id, as the API returns them.
    pub fn rows(&mut self, entity: &str) -> Vec<Value> {
        (*self.rows_shared(entity)).clone()
    }

    /// [`State::rows`], shared until the next write.
    pub fn rows_shared(&mut self, entity: &str) -> Arc<Vec<Value>> {
        let Some(def) = self.def(entity).cloned() else {
            return Arc::new(Vec::new());
        };
        if let Some(rows) = self.rows_cache.get(def.name) {
            return rows.clone();
        }
        let rows = Arc::new(self.compute_rows(&def));
        self.rows_cache.insert(def.name, rows.clone());
        rows
    }

    fn compute_rows(&mut self, def: &EntityDef) -> Vec<Value> {
        match def.name {
            "ContractServiceUnits" => self.unit_rows(),
            "ContractServiceAdjustments" => {
                self.adjustments.iter().map(|a| Value::Object(a.fields.clone())).collect()
            }
            "Contracts" => self.contract_rows(def),
            "ContractServices" => self.contract_service_rows(def),
            name => self
                .records
                .get(name)
                .map(|m| m.values().map(|r| Self::record_json(def, r, self.hide_costs)).collect())
                .unwrap_or_default(),
        }
    }

    /// The contracts the API user may read: those of its lines of business, when it has any.
    fn contract_rows(&self, def: &EntityDef) -> Vec<Value> {
        let visible = self.api_user_lines();
        self.records
            .get("Contracts")
            .map(|m| {
                m.values()
                    .filter(|r| {
                        let line = r
                            .fields
                            .get("organizationalLevelAssociationID")
                            .and_then(Value::as_i64);
                        match (&visible, line) {
                            (Some(lines), Some(line)) => lines.contains(&line),
                            _ => true,
                        }
                    })
                    .map(|r| Self::record_json(def, r, self.hide_costs))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Contract services, their internal-currency prices at their contract's exchange rate.
    fn contract_service_rows(&self, def: &EntityDef) -> Vec<Value> {
        let rows: Vec<(i64, Value)> = self
            .records
            .get("ContractServices")
            .map(|m| {
                m.values()
                    .map(|r| {
                        let contract = r.fields.get("contractID").and_then(Value::as_i64);
                        (contract.unwrap_or(0), Self::record_json(def, r, self.hide_costs))
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.into_iter()
            .map(|(contract, row)| in_currencies(row, self.exchange_rate(contract)))
            .collect()
    }

    /// The lines of business the API user is restricted to (its OrganizationalResources), when
    /// its Resources record has any: it reads only their contracts (API-NOTES, "Permissions
    /// and currencies"). None: it sees every contract.
    fn api_user_lines(&self) -> Option<Vec<i64>> {
        let resource = self.records.get("Resources")?.values().find(|r| {
            r.fields
                .get("userName")
                .and_then(Value::as_str)
                .is_some_and(|name| name.eq_ignore_ascii_case(&self.api_user))
        })?;
        let id = resource.fields.get("id").and_then(Value::as_i64)?;
        let lines: Vec<i64> = (self.records.get("OrganizationalResources")?.values())
            .filter(|r| r.fields.get("resourceID").and_then(Value::as_i64) == Some(id))
            .filter_map(|r| {
                r.fields.get("organizationalLevelAssociationID").and_then(Value::as_i64)
            })
            .collect();
        (!lines.is_empty()).then_some(lines)
    }

    /// The exchange rate of the currency a contract's company bills in (multi-currency): the
    /// tenant's internal amount is the customer's amount times it; 1 without the module.
    fn exchange_rate(&self, contract_id: i64) -> Decimal {
        let company = self.field_i64("Contracts", contract_id, "companyID");
        let currency = company.and_then(|c| self.field_i64("Companies", c, "currencyID"));
        currency
            .and_then(|id| self.records.get("Currencies")?.get(&id))
            .filter(|c| c.fields.get("isInternalCurrency").and_then(Value::as_bool) != Some(true))
            .and_then(|c| c.fields.get("exchangeRate").and_then(decimal_of))
            .filter(|rate| *rate > Decimal::ZERO)
            .unwrap_or(Decimal::ONE)
    }

    pub fn get(&mut self, entity: &str, id: i64) -> Option<Value> {
        self.rows(entity).into_iter().find(|r| r.get("id").and_then(Value::as_i64) == Some(id))
    }

    fn field_i64(&self, entity: &str, id: i64, field: &str) -> Option<i64> {
        self.records.get(entity)?.get(&id)?.fields.get(field).and_then(Value::as_i64)
    }

    fn exists(&self, entity: &str, id: i64) -> bool {
        self.records.get(entity).is_some_and(|m| m.contains_key(&id))
    }

    /// Sets a nullable field of a record to null (see `SimHandle::blank_field`).
    pub fn blank_field(&mut self, entity: &str, id: i64, field: &str) -> bool {
        let Some(def) = self.def(entity).cloned() else {
            return false;
        };
        let Some(field) = def.field(field).filter(|f| !f.required) else {
            return false;
        };
        let now = self.stamp();
        let Some(record) = self.records.get_mut(def.name).and_then(|m| m.get_mut(&id)) else {
            return false;
        };
        record.fields.insert(field.name.into(), Value::Null);
        if def.field("lastModifiedDateTime").is_some() {
            record
                .fields
                .insert("lastModifiedDateTime".into(), Value::String(format_timestamp(now)));
        }
        true
    }

    /// Marks a charge billed, as invoicing would. False if there is no such charge.
    pub fn set_billed(&mut self, charge_id: i64) -> bool {
        let now = self.stamp();
        let Some(record) =
            self.records.get_mut("ContractCharges").and_then(|m| m.get_mut(&charge_id))
        else {
            return false;
        };
        record.fields.insert("isBilled".into(), Value::Bool(true));
        record.fields.insert("status".into(), Value::from(CHARGE_STATUS_POSTED));
        record.fields.insert("statusLastModifiedDate".into(), Value::String(format_timestamp(now)));
        record.fields.insert("lastModifiedDateTime".into(), Value::String(format_timestamp(now)));
        true
    }

    pub fn snapshot(&mut self) -> Value {
        let names: Vec<&'static str> = self.defs.iter().map(|d| d.name).collect();
        let mut out = Map::new();
        for name in names {
            out.insert(name.to_string(), Value::Array(self.rows(name)));
        }
        Value::Object(out)
    }

    // -----------------------------------------------------------------------------------------
    // Input

    /// What a user who may not see costs writes to them is ignored, without an error.
    fn ignore_hidden_costs(&self, input: &mut Input) {
        if self.hide_costs {
            input.fields.retain(|name, _| !COST_FIELDS.contains(name));
        }
    }

    fn parse_input(&self, def: &EntityDef, body: &Value) -> Result<Input, ApiError> {
        let object =
            body.as_object().ok_or_else(|| e500("The request body must be a JSON object."))?;
        let mut input = Input { id: None, fields: BTreeMap::new(), udfs: None };
        let mut errors = Vec::new();
        for (key, value) in object {
            if key.eq_ignore_ascii_case("userDefinedFields") {
                if let Some(udfs) = parse_udfs(value, &mut errors) {
                    input.udfs = Some(udfs);
                }
                continue;
            }
            let Some(field) = def.field(key) else {
                continue;
            };
            if field.name == "id" {
                if !value.is_null() {
                    match int_of(value) {
                        Some(id) => input.id = Some(id),
                        None => errors.push(format!("Value '{value}' is not valid for field id.")),
                    }
                }
                continue;
            }
            match coerce(field, value) {
                Ok(v) => {
                    input.fields.insert(field.name, v);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(ApiError { status: 500, errors })
        }
    }

    fn apply_udfs(
        &self,
        record: &mut Record,
        udfs: Vec<(String, Option<String>)>,
    ) -> Result<(), ApiError> {
        for (name, value) in udfs {
            let canonical = self
                .contract_udfs
                .iter()
                .find(|n| n.eq_ignore_ascii_case(&name))
                .filter(|_| !record.udfs.is_empty() || !self.contract_udfs.is_empty());
            match canonical {
                Some(c) if record.udfs.contains_key(c) => {
                    record.udfs.insert(c.clone(), value);
                }
                _ => return Err(e500(format!("User-defined field '{name}' does not exist."))),
            }
        }
        Ok(())
    }

    fn apply_defaults(&self, def: &EntityDef, record: &mut Record, _now: NaiveDateTime) {
        let f = &mut record.fields;
        let set_if_null = |f: &mut Map<String, Value>, k: &str, v: Value| {
            if f.get(k).is_none_or(Value::is_null) {
                f.insert(k.into(), v);
            }
        };
        match def.name {
            "Companies" | "Services" | "BillingCodes" => {
                set_if_null(f, "isActive", Value::Bool(true))
            }
            "Contracts" => {
                set_if_null(f, "isCompliant", Value::Bool(true));
                set_if_null(f, "isDefaultContract", Value::Bool(false));
            }
            "ContractCharges" => {
                set_if_null(f, "isBilled", Value::Bool(false));
                set_if_null(f, "status", Value::from(1));
                set_if_null(f, "isBillableToCompany", Value::Bool(true));
            }
            _ => {}
        }
    }

    /// Computed and bookkeeping fields after a write.
    fn compute(&self, def: &EntityDef, record: &mut Record, now: NaiveDateTime, created: bool) {
        let stamp = Value::String(format_timestamp(now));
        let f = &mut record.fields;
        if created
            && def.field("createDate").is_some()
            && f.get("createDate").is_none_or(Value::is_null)
        {
            f.insert("createDate".into(), stamp.clone());
        }
        for name in ["lastModifiedDateTime", "lastModifiedDate", "lastTrackedModifiedDateTime"] {
            if def.field(name).is_some() {
                f.insert(name.into(), stamp.clone());
            }
        }
        match def.name {
            "ContractCharges" => {
                let dec = |k: &str| f.get(k).and_then(decimal_of);
                let quantity = dec("unitQuantity").unwrap_or(Decimal::ZERO);
                let price = dec("unitPrice").unwrap_or(Decimal::ZERO);
                let cost = dec("unitCost").unwrap_or(Decimal::ZERO);
                f.insert("billableAmount".into(), decimal_json((quantity * price).round_dp(4)));
                f.insert("extendedCost".into(), decimal_json((quantity * cost).round_dp(4)));
                f.insert(
                    "internalCurrencyBillableAmount".into(),
                    decimal_json((quantity * price).round_dp(4)),
                );
                f.insert("internalCurrencyUnitPrice".into(), decimal_json(price));
                if created {
                    f.insert("statusLastModifiedDate".into(), stamp);
                }
            }
            "ContractServices" => {
                // One currency: the internal-currency prices are the prices themselves.
                let catalogue = f.get("unitPrice").cloned().unwrap_or(Value::Null);
                let adjusted = f.get("adjustedPrice").filter(|v| !v.is_null()).cloned();
                f.insert("internalCurrencyUnitPrice".into(), catalogue.clone());
                f.insert("internalCurrencyAdjustedPrice".into(), adjusted.unwrap_or(catalogue));
            }
            _ => {}
        }
    }

    /// Field-level checks of a whole record: required, lengths, picklists, references.
    fn validate(&self, def: &EntityDef, record: &Record) -> Result<(), ApiError> {
        let mut errors = if def.has_udfs { self.missing_udfs(record) } else { Vec::new() };
        for field in &def.fields {
            let value = record.fields.get(field.name).unwrap_or(&Value::Null);
            if field.required
                && (value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()))
            {
                errors.push(format!("{} is required.", field.name));
                continue;
            }
            if value.is_null() {
                continue;
            }
            self.check_value(field, value, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError { status: 500, errors })
        }
    }

    /// The tenant's required UDFs the record leaves blank, as Autotask words them.
    fn missing_udfs(&self, record: &Record) -> Vec<String> {
        let mut errors = Vec::new();
        for name in &self.required_udfs {
            let given = record.udfs.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && v.as_deref().is_some_and(|v| !v.trim().is_empty())
            });
            if !given {
                errors.push(format!("User-defined field '{name}' is required."));
            }
        }
        errors
    }

    /// A field's value checked against its length, its picklist's active values and the
    /// record it refers to.
    fn check_value(&self, field: &FieldDef, value: &Value, errors: &mut Vec<String>) {
        if let (Some(max), Some(text)) = (field.length, value.as_str()) {
            if field.kind == Kind::Str && text.chars().count() > max {
                errors.push(format!(
                    "String value exceeds maximum length: {} holds at most {max} characters.",
                    field.name
                ));
            }
        }
        if let Some(list) = &field.picklist {
            if !field.read_only {
                let text = crate::schema::value_text(value);
                if !list.iter().any(|p| p.value == text && p.is_active) {
                    errors.push(format!(
                        "Value {text} is not a valid value for picklist {}.",
                        field.name
                    ));
                }
            }
        }
        if let (Some(target), Some(id)) = (field.reference, value.as_i64()) {
            if self.records.contains_key(target)
                && target != "ContractServiceUnits"
                && !self.exists(target, id)
            {
                errors.push(format!(
                    "Reference value on field {} of type {target} does not exist: {id}.",
                    field.name
                ));
            }
        }
    }

    /// The entity's business rules on a record about to be stored.
    fn rules(
        &self,
        def: &EntityDef,
        record: &Record,
        existing: Option<&Record>,
    ) -> Result<(), ApiError> {
        match def.name {
            "Contracts" => self.contract_rules(record, existing),
            "Services" => self.service_rules(record),
            "ContractServices" => self.contract_service_rules(record, existing),
            "ContractCharges" => self.charge_rules(record, existing),
            _ => Ok(()),
        }
    }

    /// A contract ends on or after its start, and an update keeps its service adjustments
    /// (units exist from their dates) inside the new dates.
    fn contract_rules(&self, record: &Record, existing: Option<&Record>) -> Result<(), ApiError> {
        let f = &record.fields;
        let start = f.get("startDate").and_then(date_of);
        let end = f.get("endDate").and_then(date_of);
        if let (Some(start), Some(end)) = (start, end) {
            if end < start {
                return Err(e500("The contract's endDate must not be before its startDate."));
            }
        }
        if existing.is_none() {
            return Ok(());
        }
        let id = f.get("id").and_then(Value::as_i64).unwrap_or(0);
        for a in self
            .adjustments
            .iter()
            .filter(|a| a.fields.get("contractID").and_then(Value::as_i64) == Some(id))
        {
            if start.is_some_and(|s| a.date < s) || end.is_some_and(|e| a.date > e) {
                return Err(e500(format!(
                    "The contract has a service adjustment effective {}, outside the new dates.",
                    a.date
                )));
            }
        }
        Ok(())
    }

    /// A Service bills to an active Recurring Contract Service code.
    fn service_rules(&self, record: &Record) -> Result<(), ApiError> {
        let code = record.fields.get("billingCodeID").and_then(Value::as_i64).unwrap_or(0);
        let use_type = self.field_i64("BillingCodes", code, "useType");
        let active = self
            .records
            .get("BillingCodes")
            .and_then(|m| m.get(&code))
            .and_then(|r| r.fields.get("isActive"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if use_type != Some(USE_TYPE_RECURRING_CONTRACT_SERVICE) || !active {
            return Err(e500(format!(
                "billingCodeID {code} must be an active billing code of use type Recurring Contract Service."
            )));
        }
        Ok(())
    }

    /// A contract service sits on a Recurring Service contract, once per service.
    fn contract_service_rules(
        &self,
        record: &Record,
        existing: Option<&Record>,
    ) -> Result<(), ApiError> {
        let int = |k: &str| record.fields.get(k).and_then(Value::as_i64);
        let contract = int("contractID").unwrap_or(0);
        if self.field_i64("Contracts", contract, "contractType")
            != Some(CONTRACT_TYPE_RECURRING_SERVICE)
        {
            return Err(e500(format!(
                "Contract {contract} is not a Recurring Service contract; services can only be added to those."
            )));
        }
        if existing.is_none() {
            let service = int("serviceID").unwrap_or(0);
            if self.contract_service_of(contract, service).is_some() {
                return Err(e500(format!("Service {service} is already on contract {contract}.")));
            }
        }
        Ok(())
    }

    /// A billed charge never changes; a charge names a product or an active Material Cost
    /// Code.
    fn charge_rules(&self, record: &Record, existing: Option<&Record>) -> Result<(), ApiError> {
        if existing.is_some_and(|e| e.fields.get("isBilled").and_then(Value::as_bool) == Some(true))
        {
            return Err(e500("A billed charge cannot be changed."));
        }
        let int = |k: &str| record.fields.get(k).and_then(Value::as_i64);
        match (int("billingCodeID"), int("productID")) {
            (None, None) => Err(e500("billingCodeID or productID is required.")),
            (Some(code), _) => {
                let rec = self.records.get("BillingCodes").and_then(|m| m.get(&code));
                let ok = rec.is_some_and(|r| {
                    r.fields.get("useType").and_then(Value::as_i64)
                        == Some(USE_TYPE_MATERIAL_COST_CODE)
                        && r.fields.get("isActive").and_then(Value::as_bool) == Some(true)
                });
                if ok {
                    Ok(())
                } else {
                    Err(e500(format!(
                        "billingCodeID {code} must be an active billing code of use type Material Cost Code."
                    )))
                }
            }
            _ => Ok(()),
        }
    }

    fn contract_service_of(&self, contract: i64, service: i64) -> Option<i64> {
        self.records.get("ContractServices")?.values().find_map(|r| {
            (r.fields.get("contractID").and_then(Value::as_i64) == Some(contract)
                && r.fields.get("serviceID").and_then(Value::as_i64) == Some(service))
            .then(|| r.fields.get("id").and_then(Value::as_i64))
            .flatten()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Writing

    /// `POST {Entity}` or `POST Contracts/{parent}/{Child}`. Returns the response body.
    pub fn create(
        &mut self,
        entity: &str,
        parent: Option<i64>,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let def = self.def_owned(entity)?;
        if def.name == "ContractServiceAdjustments" {
            // Live tenants answer an adjustment with its id, like any create (API-NOTES).
            let id = self.create_adjustment(parent, body)?;
            return Ok(json!({"itemId": id}));
        }
        if !def.can_create {
            return Err(ApiError::new(405, format!("{} cannot be created.", def.name)));
        }
        let mut input = self.parse_input(&def, body)?;
        self.ignore_hidden_costs(&mut input);
        refuse_read_only(&def, &input)?;
        let mut record = self.new_record(&def, input.fields);
        if let Some(parent) = parent {
            under_parent(&mut record, parent)?;
        }
        if let Some(udfs) = input.udfs {
            self.written_udfs(&def, &mut record, udfs)?;
        }
        if def.name == "ContractServices" {
            self.price_from_service(&mut record);
        }
        let now = self.stamp();
        self.apply_defaults(&def, &mut record, now);
        self.validate(&def, &record)?;
        self.rules(&def, &record, None)?;
        let id = self.next_id.get(def.name).copied().unwrap_or(1);
        self.next_id.insert(def.name, id + 1);
        record.fields.insert("id".into(), Value::from(id));
        self.compute(&def, &mut record, now, true);
        self.records.entry(def.name).or_default().insert(id, record);
        Ok(json!({"itemId": id}))
    }

    /// The UDFs a create or an update writes: refused on an entity that has none.
    fn written_udfs(
        &self,
        def: &EntityDef,
        record: &mut Record,
        udfs: Vec<(String, Option<String>)>,
    ) -> Result<(), ApiError> {
        if !def.has_udfs && !udfs.is_empty() {
            return Err(e500(format!("{} has no user-defined fields.", def.name)));
        }
        self.apply_udfs(record, udfs)
    }

    /// A new contract service: the catalogue price is the Service's; the cost defaults to the
    /// Service's.
    fn price_from_service(&self, record: &mut Record) {
        let service = record.fields.get("serviceID").and_then(Value::as_i64).unwrap_or(0);
        if let Some(s) = self.records.get("Services").and_then(|m| m.get(&service)) {
            let catalogue = s.fields.get("unitPrice").cloned().unwrap_or(Value::Null);
            record.fields.insert("unitPrice".into(), catalogue);
            if record.fields.get("unitCost").is_none_or(Value::is_null) {
                let cost = s.fields.get("unitCost").cloned().unwrap_or(Value::Null);
                record.fields.insert("unitCost".into(), cost);
            }
        }
    }

    /// `PATCH`/`PUT` on the collection (or child collection) with `id` in the body.
    pub fn update(
        &mut self,
        entity: &str,
        parent: Option<i64>,
        body: &Value,
        put: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def_owned(entity)?;
        if !def.can_update {
            return Err(ApiError::new(405, format!("{} cannot be updated.", def.name)));
        }
        let mut input = self.parse_input(&def, body)?;
        self.ignore_hidden_costs(&mut input);
        let id = input.id.ok_or_else(|| e500("id is required to update an entity."))?;
        let existing = self
            .records
            .get(def.name)
            .and_then(|m| m.get(&id))
            .cloned()
            .ok_or_else(|| e500(format!("{} with id {id} was not found.", def.name)))?;
        if let Some(parent) = parent {
            if existing.fields.get("contractID").and_then(Value::as_i64) != Some(parent) {
                return Err(e500(format!(
                    "{} {id} does not belong to contract {parent}.",
                    def.name
                )));
            }
        }
        refuse_unchangeable(&def, &input, &existing)?;
        let mut record = updated(&def, &input, &existing, put)?;
        if let Some(udfs) = input.udfs {
            self.written_udfs(&def, &mut record, udfs)?;
        }
        self.rules(&def, &record, Some(&existing))?;
        self.validate(&def, &record)?;
        let now = self.stamp();
        self.compute(&def, &mut record, now, false);
        self.records.entry(def.name).or_default().insert(id, record);
        Ok(json!({"itemId": id}))
    }

    /// `DELETE Contracts/{parent}/Charges/{id}`.
    pub fn delete(
        &mut self,
        entity: &str,
        parent: Option<i64>,
        id: i64,
    ) -> Result<Value, ApiError> {
        let def = self.def_owned(entity)?;
        if !def.can_delete {
            return Err(ApiError::new(405, format!("{} cannot be deleted.", def.name)));
        }
        let existing = self.records.get(def.name).and_then(|m| m.get(&id)).ok_or_else(|| {
            ApiError::new(404, format!("{} with id {id} was not found.", def.name))
        })?;
        if parent.is_some() && existing.fields.get("contractID").and_then(Value::as_i64) != parent {
            return Err(ApiError::new(404, format!("{} with id {id} was not found.", def.name)));
        }
        if existing.fields.get("isBilled").and_then(Value::as_bool) == Some(true) {
            return Err(e500("A billed charge cannot be deleted."));
        }
        self.rows_cache.clear();
        self.records.entry(def.name).or_default().remove(&id);
        Ok(json!({"itemId": id}))
    }

    /// `POST ContractServiceAdjustments`: checked as Autotask checks it (the contract, the
    /// date within it, the contract service, no duplicate date, units never below 0), then the
    /// contract service created or repriced and the adjustment recorded.
    fn create_adjustment(&mut self, parent: Option<i64>, body: &Value) -> Result<i64, ApiError> {
        let def = self.def_owned("ContractServiceAdjustments")?;
        let input = self.parse_input(&def, body)?;
        let checked = self.check_adjustment(parent, &input)?;
        // Commit.
        let _ = self.stamp();
        let cs = match checked.contract_service {
            Some(cs) => cs,
            None => self.create_adjusted_service(
                checked.contract_id,
                checked.service_id,
                checked.price,
                checked.cost,
            )?,
        };
        self.reprice_contract_service(cs, checked.price, checked.cost);
        let id = self.next_id.get("ContractServiceAdjustments").copied().unwrap_or(1);
        self.next_id.insert("ContractServiceAdjustments", id + 1);
        let mut fields = Map::new();
        for field in &def.fields {
            fields.insert(
                field.name.to_string(),
                input.fields.get(field.name).cloned().unwrap_or(Value::Null),
            );
        }
        fields.insert("id".into(), Value::from(id));
        fields.insert("contractID".into(), Value::from(checked.contract_id));
        fields.insert("contractServiceID".into(), Value::from(cs));
        fields.insert("serviceID".into(), Value::from(checked.service_id));
        fields.insert("effectiveDate".into(), Value::String(format_date(checked.date)));
        let (date, unit_change) = (checked.date, checked.unit_change);
        self.adjustments.push(Adjustment {
            id,
            contract_service_id: cs,
            date,
            unit_change,
            fields,
        });
        Ok(id)
    }

    /// An adjustment's body checked, in Autotask's order, before anything is written.
    fn check_adjustment(
        &self,
        parent: Option<i64>,
        input: &Input,
    ) -> Result<CheckedAdjustment, ApiError> {
        let get = |k: &str| input.fields.get(k).filter(|v| !v.is_null());
        let contract_id = self.adjustment_contract(parent, get("contractID"))?;
        let date = get("effectiveDate")
            .and_then(date_of)
            .ok_or_else(|| e500("effectiveDate is required."))?;
        let unit_change = get("unitChange")
            .and_then(Value::as_i64)
            .ok_or_else(|| e500("unitChange is required."))?;
        self.check_within_contract(contract_id, date)?;
        let price = get("adjustedUnitPrice").and_then(decimal_of);
        // A user who may not see costs has its cost writes ignored.
        let cost = get("adjustedUnitCost").and_then(decimal_of).filter(|_| !self.hide_costs);
        let (contract_service, service_id) = self.adjustment_target(
            contract_id,
            get("contractServiceID").and_then(Value::as_i64),
            get("serviceID").and_then(Value::as_i64),
        )?;
        self.check_adjustment_fits(contract_service, date, unit_change)?;
        Ok(CheckedAdjustment {
            contract_id,
            date,
            unit_change,
            price,
            cost,
            contract_service,
            service_id,
        })
    }

    /// The adjustment's contract (the parent's, or the body's `contractID`): it exists and is a
    /// Recurring Service contract.
    fn adjustment_contract(
        &self,
        parent: Option<i64>,
        given: Option<&Value>,
    ) -> Result<i64, ApiError> {
        let contract_id = match (parent, given.and_then(Value::as_i64)) {
            (Some(p), Some(c)) if p != c => {
                return Err(e500(format!("contractID {c} does not match the parent contract {p}.")))
            }
            (Some(p), _) => p,
            (None, Some(c)) => c,
            (None, None) => return Err(e500("contractID is required.")),
        };
        let contract = self
            .records
            .get("Contracts")
            .and_then(|m| m.get(&contract_id))
            .ok_or_else(|| e500(format!("Reference value on field contractID of type Contracts does not exist: {contract_id}.")))?;
        if contract.fields.get("contractType").and_then(Value::as_i64)
            != Some(CONTRACT_TYPE_RECURRING_SERVICE)
        {
            return Err(e500(format!(
                "Contract {contract_id} is not a Recurring Service contract."
            )));
        }
        Ok(contract_id)
    }

    /// The effective date lies within the contract's start and end dates.
    fn check_within_contract(&self, contract_id: i64, date: NaiveDate) -> Result<(), ApiError> {
        let contract = self.records.get("Contracts").and_then(|m| m.get(&contract_id));
        let field = |name: &str| contract.and_then(|c| c.fields.get(name)).and_then(date_of);
        let (start, end) = (field("startDate"), field("endDate"));
        if start.is_some_and(|s| date < s) || end.is_some_and(|e| date > e) {
            // The live wording (API-NOTES).
            return Err(e500(format!(
                "effectiveDate must be between the start date and end date of the Contract ({date} is outside {} to {}).",
                start.map(|d| d.to_string()).unwrap_or_default(),
                end.map(|d| d.to_string()).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Which contract service: by contractServiceID (on this contract, for the service if
    /// given), else by serviceID (None: created on commit). With the service's id.
    fn adjustment_target(
        &self,
        contract_id: i64,
        contract_service: Option<i64>,
        service: Option<i64>,
    ) -> Result<(Option<i64>, i64), ApiError> {
        match (contract_service, service) {
            (Some(cs), service) => {
                let rec = self
                    .records
                    .get("ContractServices")
                    .and_then(|m| m.get(&cs))
                    .filter(|r| {
                        r.fields.get("contractID").and_then(Value::as_i64) == Some(contract_id)
                    })
                    .ok_or_else(|| {
                        e500(format!("Contract service {cs} is not on contract {contract_id}."))
                    })?;
                let sid = rec.fields.get("serviceID").and_then(Value::as_i64).unwrap_or(0);
                if service.is_some_and(|s| s != sid) {
                    return Err(e500(format!(
                        "Contract service {cs} is not for service {}.",
                        service.unwrap_or(0)
                    )));
                }
                Ok((Some(cs), sid))
            }
            (None, Some(service)) => {
                if !self.exists("Services", service) {
                    return Err(e500(format!("Reference value on field serviceID of type Services does not exist: {service}.")));
                }
                Ok((self.contract_service_of(contract_id, service), service))
            }
            (None, None) => Err(e500("serviceID or contractServiceID is required.")),
        }
    }

    /// No second adjustment on one date, and units never below 0 from the effective date on
    /// (a contract service still to create has no adjustment yet).
    fn check_adjustment_fits(
        &self,
        cs_id: Option<i64>,
        date: NaiveDate,
        unit_change: i64,
    ) -> Result<(), ApiError> {
        let on_service = |a: &&Adjustment| Some(a.contract_service_id) == cs_id;
        if let Some(cs) =
            cs_id.filter(|_| self.adjustments.iter().filter(on_service).any(|a| a.date == date))
        {
            return Err(e500(format!(
                "Cannot insert duplicate key row in object 'dbo.contract_service_period' for contract service {cs} on {date}."
            )));
        }
        let mut all: Vec<(NaiveDate, i64)> =
            self.adjustments.iter().filter(on_service).map(|a| (a.date, a.unit_change)).collect();
        all.push((date, unit_change));
        all.sort();
        let mut running = 0i64;
        for (_, change) in &all {
            running += change;
            if running < 0 {
                return Err(e500("The adjustment would take the service's units below 0."));
            }
        }
        Ok(())
    }

    /// The contract service an adjustment by serviceID creates, priced as given or as the
    /// Service's catalogue.
    fn create_adjusted_service(
        &mut self,
        contract_id: i64,
        service_id: i64,
        price: Option<Decimal>,
        cost: Option<Decimal>,
    ) -> Result<i64, ApiError> {
        let service = self.records.get("Services").and_then(|m| m.get(&service_id)).cloned();
        let mut body = json!({"contractID": contract_id, "serviceID": service_id});
        let pick = |given: Option<Decimal>, field: &str| {
            given
                .map(decimal_json)
                .or_else(|| service.as_ref().and_then(|s| s.fields.get(field).cloned()))
        };
        body["adjustedPrice"] = pick(price, "unitPrice").unwrap_or(Value::Null);
        body["unitCost"] = pick(cost, "unitCost").unwrap_or(Value::Null);
        let created = self.create("ContractServices", Some(contract_id), &body)?;
        Ok(created["itemId"].as_i64().unwrap_or(0))
    }

    /// The adjusted price is the contract's; the catalogue price stays the Service's.
    fn reprice_contract_service(&mut self, cs: i64, price: Option<Decimal>, cost: Option<Decimal>) {
        let Some(rec) = self.records.get_mut("ContractServices").and_then(|m| m.get_mut(&cs))
        else {
            return;
        };
        if let Some(p) = price {
            rec.fields.insert("adjustedPrice".into(), decimal_json(p.round_dp(4)));
            rec.fields.insert("internalCurrencyAdjustedPrice".into(), decimal_json(p.round_dp(4)));
        }
        if let Some(c) = cost {
            rec.fields.insert("unitCost".into(), decimal_json(c.round_dp(4)));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Derived ContractServiceUnits

    /// Per contract service, monthly periods from the contract's start to its end, split at each
    /// adjustment's effective date; units on a date are the sum of the adjustments up to it.
    fn unit_rows(&mut self) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut by_service: BTreeMap<i64, Vec<(NaiveDate, i64, i64)>> = BTreeMap::new();
        for a in &self.adjustments {
            by_service.entry(a.contract_service_id).or_default().push((
                a.date,
                a.unit_change,
                a.id,
            ));
        }
        let services: Vec<Record> = self
            .records
            .get("ContractServices")
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for cs in services {
            let Some(cs_id) = cs.fields.get("id").and_then(Value::as_i64) else {
                continue;
            };
            let mut adjustments = by_service.remove(&cs_id).unwrap_or_default();
            adjustments.sort();
            rows.extend(self.service_unit_rows(cs_id, &cs, &adjustments));
        }
        rows.sort_by_key(|r| r.get("id").and_then(Value::as_i64).unwrap_or(0));
        rows
    }

    /// One contract service's unit periods: the months of its contract, split at each
    /// adjustment, with the units in force (none when the contract or its dates are missing).
    fn service_unit_rows(
        &mut self,
        cs_id: i64,
        cs: &Record,
        adjustments: &[(NaiveDate, i64, i64)],
    ) -> Vec<Value> {
        let f = &cs.fields;
        let contract_id = f.get("contractID").and_then(Value::as_i64).unwrap_or(0);
        let Some(contract) = self.records.get("Contracts").and_then(|m| m.get(&contract_id)) else {
            return Vec::new();
        };
        let (Some(start), Some(end)) = (
            contract.fields.get("startDate").and_then(date_of),
            contract.fields.get("endDate").and_then(date_of),
        ) else {
            return Vec::new();
        };
        let bounds = period_bounds(start, end, adjustments);
        let vendor = self.vendor_of(f);
        let (price, internal_price) = self.unit_prices(f, contract_id);
        // A user who may not see costs reads them as null.
        let cost = f.get("unitCost").filter(|_| !self.hide_costs).cloned().unwrap_or(Value::Null);
        let mut rows = Vec::new();
        for (i, period_start) in bounds.iter().enumerate() {
            let units: i64 =
                adjustments.iter().filter(|(d, _, _)| d <= period_start).map(|(_, c, _)| c).sum();
            rows.push(json!({
                "id": self.unit_id(cs_id, *period_start),
                "approveAndPostDate": null,
                "contractID": contract_id,
                "contractServiceID": cs_id,
                "cost": cost.clone(),
                "endDate": format_date(period_end(&bounds, i, end)),
                "internalCurrencyPrice": internal_price.clone(),
                "organizationalLevelAssociationID": null,
                "price": price.clone(),
                "serviceID": f.get("serviceID").cloned().unwrap_or(Value::Null),
                "startDate": format_date(*period_start),
                "units": units,
                "vendorCompanyID": vendor.clone(),
            }));
        }
        rows
    }

    /// The vendor company of a contract service's Service (null when it has none).
    fn vendor_of(&self, fields: &Map<String, Value>) -> Value {
        let service = fields.get("serviceID").and_then(Value::as_i64).unwrap_or(0);
        self.records
            .get("Services")
            .and_then(|m| m.get(&service))
            .and_then(|s| s.fields.get("vendorCompanyID").cloned())
            .unwrap_or(Value::Null)
    }

    /// A contract service's unit price as written (the customer's currency) and in the
    /// internal currency, at its contract's exchange rate.
    fn unit_prices(&self, fields: &Map<String, Value>, contract_id: i64) -> (Value, Value) {
        // The stored adjusted price is in the customer's currency (what was written).
        let price = fields.get("internalCurrencyAdjustedPrice").cloned().unwrap_or(Value::Null);
        let rate = self.exchange_rate(contract_id);
        let internal_price = match decimal_of(&price) {
            Some(p) if rate != Decimal::ONE => decimal_json((p * rate).round_dp(4)),
            _ => price.clone(),
        };
        (price, internal_price)
    }

    /// A unit period's id, the same for the same contract service and start on every read.
    fn unit_id(&mut self, cs_id: i64, period_start: NaiveDate) -> i64 {
        let key = (cs_id, period_start);
        if let Some(id) = self.unit_ids.get(&key) {
            return *id;
        }
        let id = self.next_unit_id;
        self.next_unit_id += 1;
        self.unit_ids.insert(key, id);
        id
    }
}

/// Period boundaries: month starts from the contract start, plus adjustment dates within it.
fn period_bounds(
    start: NaiveDate,
    end: NaiveDate,
    adjustments: &[(NaiveDate, i64, i64)],
) -> Vec<NaiveDate> {
    let mut bounds = Vec::new();
    for k in 0..MAX_PERIODS {
        match start.checked_add_months(Months::new(k)) {
            Some(d) if d <= end => bounds.push(d),
            _ => break,
        }
    }
    for (date, _, _) in adjustments {
        if *date >= start && *date <= end {
            bounds.push(*date);
        }
    }
    bounds.sort();
    bounds.dedup();
    bounds
}

/// The last day of period `i`: the day before the next boundary, else its month's end
/// within the contract.
fn period_end(bounds: &[NaiveDate], i: usize, end: NaiveDate) -> NaiveDate {
    match (bounds.get(i + 1), bounds.get(i)) {
        (Some(next), _) => next.pred_opt().unwrap_or(*next),
        (None, Some(period_start)) => {
            let month_end = period_start
                .checked_add_months(Months::new(1))
                .and_then(|d| d.pred_opt())
                .unwrap_or(end);
            month_end.min(end)
        }
        (None, None) => end,
    }
}

/// A create refuses every read-only field sent with a value, all named at once.
fn refuse_read_only(def: &EntityDef, input: &Input) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for (name, value) in &input.fields {
        let field = def
            .field(name)
            .ok_or_else(|| e500(format!("{name} is not a field of {}.", def.name)))?;
        if field.read_only && !value.is_null() {
            errors.push(format!("{} is read-only.", field.name));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError { status: 500, errors })
    }
}

/// An update refuses read-only and create-only fields sent with a new value, all named at
/// once. Children written through their contract take only what may change: a read-only
/// field is refused even with its current value (ContractServices, LIVE).
fn refuse_unchangeable(def: &EntityDef, input: &Input, existing: &Record) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for (name, value) in &input.fields {
        let field = def
            .field(name)
            .ok_or_else(|| e500(format!("{name} is not a field of {}.", def.name)))?;
        let old = existing.fields.get(*name).unwrap_or(&Value::Null);
        let unchanged = same_value(field.kind, old, value) && !def.child_writes_only;
        if (field.read_only || field.create_only) && !value.is_null() && !unchanged {
            errors.push(format!("{} is read-only.", field.name));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError { status: 500, errors })
    }
}

/// The record an update leaves: the writable fields sent replace the stored ones (a PUT
/// empties the writable fields it leaves out).
fn updated(
    def: &EntityDef,
    input: &Input,
    existing: &Record,
    put: bool,
) -> Result<Record, ApiError> {
    let mut record = existing.clone();
    for (name, value) in &input.fields {
        let field = def
            .field(name)
            .ok_or_else(|| e500(format!("{name} is not a field of {}.", def.name)))?;
        if !field.read_only && !field.create_only {
            record.fields.insert(name.to_string(), value.clone());
        }
    }
    if put {
        for field in &def.fields {
            if !field.read_only && !field.create_only && !input.fields.contains_key(field.name) {
                record.fields.insert(field.name.to_string(), Value::Null);
            }
        }
    }
    Ok(record)
}

/// Whether an input value equals the stored one (so clients may send records back unchanged).
fn same_value(kind: Kind, old: &Value, new: &Value) -> bool {
    match kind {
        Kind::Double | Kind::Integer | Kind::Long => match (decimal_of(old), decimal_of(new)) {
            (Some(a), Some(b)) => a == b,
            _ => old == new,
        },
        _ => old == new,
    }
}

/// A contract service as a multi-currency tenant returns it (API-NOTES, "Permissions and
/// currencies"): prices in the customer's currency, `internalCurrency*` in the tenant's. The
/// stored record holds the Service's catalogue price (the tenant's currency) as `unitPrice` and
/// the adjusted price as written (the customer's currency).
fn in_currencies(mut row: Value, rate: Decimal) -> Value {
    if rate == Decimal::ONE {
        return row;
    }
    let dec = |row: &Value, k: &str| row.get(k).and_then(decimal_of);
    if let Some(catalogue) = dec(&row, "unitPrice") {
        row["internalCurrencyUnitPrice"] = decimal_json(catalogue.round_dp(4));
        row["unitPrice"] = decimal_json((catalogue / rate).round_dp(4));
    }
    if let Some(adjusted) = dec(&row, "internalCurrencyAdjustedPrice") {
        row["internalCurrencyAdjustedPrice"] = decimal_json((adjusted * rate).round_dp(4));
    }
    row
}

/// The modification stamps a seeded record was given (a tenant's export keeps them).
fn seeded_stamps(record: &Record) -> Vec<(String, Value)> {
    [
        "lastModifiedDateTime",
        "lastModifiedDate",
        "lastTrackedModifiedDateTime",
        "statusLastModifiedDate",
    ]
    .iter()
    .filter_map(|k| {
        record.fields.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone()))
    })
    .collect()
}

/// A child record created under `Contracts/{parent}/…`: its `contractID` is the parent's, and
/// a body naming another contract is refused.
fn under_parent(record: &mut Record, parent: i64) -> Result<(), ApiError> {
    match record.fields.get("contractID").and_then(Value::as_i64) {
        Some(c) if c != parent => {
            Err(e500(format!("contractID {c} does not match the parent contract {parent}.")))
        }
        _ => {
            record.fields.insert("contractID".into(), Value::from(parent));
            Ok(())
        }
    }
}

/// `userDefinedFields` of a body: `{name, value}` items, values as text. `None` when it is
/// null or not a list (the latter an error); an item without a name or with an object or
/// list value is an error.
fn parse_udfs(value: &Value, errors: &mut Vec<String>) -> Option<Vec<(String, Option<String>)>> {
    if value.is_null() {
        return None;
    }
    let Some(items) = value.as_array() else {
        errors.push("userDefinedFields must be an array of {name, value}.".to_string());
        return None;
    };
    let mut udfs = Vec::new();
    for item in items {
        let name = item.get("name").and_then(Value::as_str);
        let value = match item.get("value") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(()),
        };
        match (name, value) {
            (Some(name), Ok(value)) => udfs.push((name.to_string(), value)),
            _ => errors.push("userDefinedFields must be an array of {name, value}.".into()),
        }
    }
    Some(udfs)
}
