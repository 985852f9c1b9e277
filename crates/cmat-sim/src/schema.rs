//! The simulated entities' field metadata (what `entityInformation/fields` reports) and the
//! coercion of JSON values to and from each field's type.
//!
//! Field names are the camelCase form of v1.json's PascalCase properties, plus the few fields the
//! live API has that the 2020 Swagger lacks (`sku` on Services, `lastModifiedDateTime` on
//! Contracts and ContractCharges). Lengths and required flags follow Datto's field metadata.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// A field's type as the simulator stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Long,
    Str,
    /// Money and quantities: exact decimals, stored to 4 places.
    Double,
    Bool,
    /// Date-only: returned as `YYYY-MM-DDT00:00:00` (midnight, no zone).
    Date,
    /// A UTC timestamp, returned as `YYYY-MM-DDTHH:MM:SS.fffZ`.
    DateTime,
}

impl Kind {
    pub fn data_type(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Long => "long",
            Kind::Str => "string",
            Kind::Double => "double",
            Kind::Bool => "boolean",
            Kind::Date | Kind::DateTime => "datetime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickValue {
    pub value: String,
    pub label: String,
    pub is_active: bool,
    pub is_default: bool,
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: &'static str,
    pub kind: Kind,
    pub length: Option<usize>,
    pub required: bool,
    pub read_only: bool,
    /// Writable on create, read-only afterwards (Contracts.companyID, contractType…).
    pub create_only: bool,
    /// Written, never returned by queries (ContractServices.adjustedPrice, LIVE).
    pub write_only: bool,
    pub reference: Option<&'static str>,
    pub picklist: Option<Vec<PickValue>>,
}

impl FieldDef {
    fn new(name: &'static str, kind: Kind) -> Self {
        FieldDef {
            name,
            kind,
            length: None,
            required: false,
            read_only: false,
            create_only: false,
            write_only: false,
            reference: None,
            picklist: None,
        }
    }
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn ro(mut self) -> Self {
        self.read_only = true;
        self
    }
    fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
    fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    fn refs(mut self, entity: &'static str) -> Self {
        self.reference = Some(entity);
        self
    }
    fn pick(mut self, values: &[(i64, &str)]) -> Self {
        self.picklist = Some(
            values
                .iter()
                .map(|(v, l)| PickValue {
                    value: v.to_string(),
                    label: (*l).to_string(),
                    is_active: true,
                    is_default: false,
                })
                .collect(),
        );
        self
    }
    fn pick_values(mut self, values: Vec<PickValue>) -> Self {
        self.picklist = Some(values);
        self
    }

    pub fn to_json(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "value": p.value,
                    "label": p.label,
                    "valueForExport": p.label,
                    "valueForDisplay": p.label,
                    "isDefaultValue": p.is_default,
                    "sortOrder": i,
                    "parentValue": "",
                    "isActive": p.is_active,
                    "isSystem": true,
                })
            })
            .collect();
        json!({
            "name": self.name,
            "dataType": self.kind.data_type(),
            "length": self.length.unwrap_or(0),
            "isRequired": self.required,
            "isReadOnly": self.read_only,
            "isQueryable": true,
            "isReference": self.reference.is_some(),
            "referenceEntityType": self.reference.unwrap_or(""),
            "isPickList": self.picklist.is_some(),
            "picklistValues": if self.picklist.is_some() { Value::Array(picklist) } else { Value::Null },
            "picklistParentValueField": "",
            "isSupportedWebhookField": false,
        })
    }
}

fn s(name: &'static str, len: usize) -> FieldDef {
    let mut f = FieldDef::new(name, Kind::Str);
    f.length = Some(len);
    f
}
fn i(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::Integer)
}
fn l(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::Long)
}
fn d(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::Double)
}
fn b(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::Bool)
}
fn date(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::Date)
}
fn ts(name: &'static str) -> FieldDef {
    FieldDef::new(name, Kind::DateTime)
}

/// BillingCodes.useType values.
pub const USE_TYPE_MATERIAL_COST_CODE: i64 = 4;
pub const USE_TYPE_RECURRING_CONTRACT_SERVICE: i64 = 5;
/// Contracts.contractType value for a Recurring Service contract.
pub const CONTRACT_TYPE_RECURRING_SERVICE: i64 = 7;
/// ContractCharges.status once the charge has been invoiced.
pub const CHARGE_STATUS_POSTED: i64 = 3;

#[derive(Debug, Clone)]
pub struct EntityDef {
    /// The entity's name as in the API path (`Contracts`).
    pub name: &'static str,
    /// Its path below a contract (`Contracts/{id}/Services`), for child entities.
    pub child_of_contract: Option<&'static str>,
    pub can_create: bool,
    pub can_update: bool,
    pub can_delete: bool,
    pub can_query: bool,
    /// Writes go through the parent's child path only.
    pub child_writes_only: bool,
    pub has_udfs: bool,
    pub fields: Vec<FieldDef>,
}

impl EntityDef {
    /// An entity the API only reads (no create, update or delete; no UDFs; not a child).
    fn query_only(name: &'static str, fields: Vec<FieldDef>) -> EntityDef {
        EntityDef {
            name,
            child_of_contract: None,
            can_create: false,
            can_update: false,
            can_delete: false,
            can_query: true,
            child_writes_only: false,
            has_udfs: false,
            fields,
        }
    }
}

impl EntityDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn info_json(&self) -> Value {
        json!({"info": {
            "canCreate": self.can_create,
            "canDelete": self.can_delete,
            "canQuery": self.can_query,
            "canUpdate": self.can_update,
            "hasUserDefinedFields": self.has_udfs,
            "supportsWebhookCallouts": false,
            "userAccessForCreate": if self.can_create { "All" } else { "None" },
            "userAccessForDelete": if self.can_delete { "All" } else { "None" },
            "userAccessForQuery": if self.can_query { "All" } else { "None" },
            "userAccessForUpdate": if self.can_update { "All" } else { "None" },
        }})
    }
}

/// Companies' `companyType` picklist.
const COMPANY_TYPE: &[(i64, &str)] = &[
    (1, "Customer"),
    (2, "Lead"),
    (3, "Prospect"),
    (4, "Dead"),
    (6, "Cancellation"),
    (7, "Vendor"),
    (8, "Partner"),
];

/// Contracts' `contractType` picklist.
const CONTRACT_TYPE: &[(i64, &str)] = &[
    (1, "Time & Materials"),
    (3, "Fixed Price"),
    (4, "Block Hours"),
    (6, "Retainer"),
    (7, "Recurring Service"),
    (8, "Per Ticket"),
];

/// Contracts' `billingPreference` picklist.
const BILLING_PREFERENCE: &[(i64, &str)] =
    &[(1, "Manual"), (2, "Immediate"), (3, "Timesheet Approval")];

/// Contracts' `contractCategory` picklist (the tenant's categories).
const CONTRACT_CATEGORY: &[(i64, &str)] =
    &[(1, "Standard"), (2, "Managed Services"), (3, "Cloud Services")];

/// The period picklists: the numbers live tenants show (API-NOTES, Picklists), not 1-4 as the
/// labels suggest.
const PERIOD: &[(i64, &str)] =
    &[(2, "Monthly"), (3, "Quarterly"), (4, "Semi-Annual"), (5, "Yearly")];

/// The SLA picklist (seed-dependent).
pub fn entities(slas: &[PickValue]) -> Vec<EntityDef> {
    vec![
        companies(),
        contracts(slas),
        services(slas),
        contract_services(),
        contract_service_adjustments(),
        contract_service_units(),
        contract_charges(),
        organizational_level_associations(),
        organizational_resources(),
        resources(),
        currencies(),
        billing_codes(),
    ]
}

/// The `Companies` entity.
fn companies() -> EntityDef {
    EntityDef {
        name: "Companies",
        child_of_contract: None,
        can_create: true,
        can_update: true,
        can_delete: false,
        can_query: true,
        child_writes_only: false,
        has_udfs: false,
        fields: vec![
            l("id").ro(),
            s("address1", 150),
            s("address2", 150),
            s("city", 50),
            s("companyName", 100).req(),
            s("companyNumber", 50),
            i("companyType").req().pick(COMPANY_TYPE),
            i("countryID"),
            ts("createDate").ro(),
            i("currencyID").refs("Currencies"),
            s("fax", 25),
            b("isActive"),
            ts("lastTrackedModifiedDateTime").ro(),
            i("ownerResourceID").req(),
            i("parentCompanyID").refs("Companies"),
            s("phone", 25).req(),
            s("postalCode", 20),
            s("state", 25),
            s("webAddress", 255),
        ],
    }
}

/// The `Contracts` entity.
fn contracts(slas: &[PickValue]) -> EntityDef {
    EntityDef {
        name: "Contracts",
        child_of_contract: None,
        can_create: true,
        can_update: true,
        can_delete: false,
        can_query: true,
        child_writes_only: false,
        has_udfs: true,
        fields: vec![
            l("id").ro(),
            i("billingPreference").pick(BILLING_PREFERENCE),
            i("billToCompanyContactID"),
            i("billToCompanyID").refs("Companies"),
            i("companyID").req().create_only().refs("Companies"),
            i("contactID"),
            s("contactName", 250).ro(),
            i("contractCategory").pick(CONTRACT_CATEGORY),
            i("contractExclusionSetID"),
            s("contractName", 100).req(),
            s("contractNumber", 50),
            i("contractPeriodType").pick(PERIOD),
            i("contractType").req().create_only().pick(CONTRACT_TYPE),
            s("description", 2000),
            date("endDate").req(),
            d("estimatedCost"),
            d("estimatedHours"),
            d("estimatedRevenue"),
            l("exclusionContractID").refs("Contracts"),
            d("internalCurrencyOverageBillingRate").ro(),
            d("internalCurrencySetupFee").ro(),
            b("isCompliant").ro(),
            b("isDefaultContract"),
            ts("lastModifiedDateTime").ro(),
            i("opportunityID"),
            i("organizationalLevelAssociationID"),
            d("overageBillingRate"),
            s("purchaseOrderNumber", 50),
            l("renewedContractID").refs("Contracts"),
            i("serviceLevelAgreementID").pick_values(slas.to_vec()),
            d("setupFee"),
            l("setupFeeBillingCodeID").refs("BillingCodes"),
            date("startDate").req(),
            i("status").req().pick(&[(0, "Inactive"), (1, "Active")]),
            i("timeReportingRequiresStartAndStopTimes").req(),
        ],
    }
}

/// The `Services` entity.
fn services(slas: &[PickValue]) -> EntityDef {
    EntityDef {
        name: "Services",
        child_of_contract: None,
        can_create: true,
        can_update: true,
        can_delete: false,
        can_query: true,
        child_writes_only: false,
        has_udfs: false,
        fields: vec![
            l("id").ro(),
            i("billingCodeID").req().refs("BillingCodes"),
            ts("createDate").ro(),
            i("creatorResourceID").ro(),
            s("description", 400),
            s("invoiceDescription", 1000),
            b("isActive"),
            ts("lastModifiedDate").ro(),
            d("markupRate"),
            s("name", 150).req(),
            i("periodType").req().pick(PERIOD),
            l("serviceLevelAgreementID").pick_values(slas.to_vec()),
            s("sku", 50),
            d("unitCost"),
            d("unitPrice").req(),
            i("updateResourceID").ro(),
            i("vendorCompanyID").refs("Companies"),
        ],
    }
}

/// The `ContractServices` entity.
fn contract_services() -> EntityDef {
    EntityDef {
        name: "ContractServices",
        child_of_contract: Some("Services"),
        can_create: true,
        can_update: true,
        can_delete: false,
        can_query: true,
        child_writes_only: true,
        has_udfs: false,
        fields: vec![
            // Two prices (API-NOTES): `unitPrice` is the Service's catalogue price,
            // read-only; the contract bills the adjusted price, written as `adjustedPrice`
            // and read back only as `internalCurrencyAdjustedPrice`. On update every field
            // but adjustedPrice and invoiceDescription is read-only.
            l("id").ro(),
            d("adjustedPrice").write_only(),
            i("contractID").req().create_only().refs("Contracts"),
            d("internalCurrencyAdjustedPrice").ro(),
            d("internalCurrencyUnitPrice").ro(),
            s("internalDescription", 100).create_only(),
            s("invoiceDescription", 1000),
            l("quoteItemID").create_only(),
            i("serviceID").req().create_only().refs("Services"),
            d("unitCost").create_only(),
            d("unitPrice").ro(),
        ],
    }
}

/// The `ContractServiceAdjustments` entity.
fn contract_service_adjustments() -> EntityDef {
    EntityDef {
        name: "ContractServiceAdjustments",
        child_of_contract: Some("ServiceAdjustments"),
        can_create: true,
        can_update: false,
        can_delete: false,
        can_query: false,
        child_writes_only: false,
        has_udfs: false,
        fields: vec![
            l("id").ro(),
            d("adjustedUnitCost"),
            d("adjustedUnitPrice"),
            b("allowRepeatService"),
            i("contractID").req().refs("Contracts"),
            i("contractServiceID").refs("ContractServices"),
            date("effectiveDate").req(),
            i("quoteItemID"),
            i("serviceID").refs("Services"),
            i("unitChange").req(),
        ],
    }
}

/// The `ContractServiceUnits` entity.
fn contract_service_units() -> EntityDef {
    EntityDef {
        name: "ContractServiceUnits",
        child_of_contract: Some("ServiceUnits"),
        can_create: false,
        can_update: false,
        can_delete: false,
        can_query: true,
        child_writes_only: false,
        has_udfs: false,
        fields: vec![
            l("id").ro(),
            ts("approveAndPostDate").ro(),
            i("contractID").ro().refs("Contracts"),
            i("contractServiceID").ro().refs("ContractServices"),
            d("cost").ro(),
            date("endDate").ro(),
            d("internalCurrencyPrice").ro(),
            i("organizationalLevelAssociationID").ro(),
            d("price").ro(),
            i("serviceID").ro().refs("Services"),
            date("startDate").ro(),
            i("units").ro(),
            i("vendorCompanyID").ro().refs("Companies"),
        ],
    }
}

/// The `ContractCharges` entity.
fn contract_charges() -> EntityDef {
    EntityDef {
        name: "ContractCharges",
        child_of_contract: Some("Charges"),
        can_create: true,
        can_update: true,
        can_delete: true,
        can_query: true,
        child_writes_only: true,
        has_udfs: false,
        fields: vec![
            l("id").ro(),
            d("billableAmount").ro(),
            l("billingCodeID").refs("BillingCodes"),
            i("chargeType").req().pick(&[(1, "Operational"), (2, "Capitalized")]),
            l("contractID").req().create_only().refs("Contracts"),
            l("contractServiceBundleID"),
            l("contractServiceID").refs("ContractServices"),
            ts("createDate").ro(),
            l("creatorResourceID").ro(),
            date("datePurchased").req(),
            s("description", 2000),
            d("extendedCost").ro(),
            d("internalCurrencyBillableAmount").ro(),
            d("internalCurrencyUnitPrice").ro(),
            s("internalPurchaseOrderNumber", 50),
            b("isBillableToCompany"),
            b("isBilled").ro(),
            ts("lastModifiedDateTime").ro(),
            s("name", 100).req(),
            s("notes", 2000),
            i("organizationalLevelAssociationID"),
            l("productID"),
            s("purchaseOrderNumber", 50),
            l("status").ro().pick(&[(1, "Pending"), (2, "Approved"), (3, "Posted")]),
            l("statusLastModifiedBy").ro(),
            ts("statusLastModifiedDate").ro(),
            d("unitCost"),
            d("unitPrice"),
            d("unitQuantity").req(),
        ],
    }
}

/// Lines of business (organizational levels), and the resources (users) they hold: an
/// API user restricted to some reads only their contracts.
fn organizational_level_associations() -> EntityDef {
    EntityDef::query_only(
        "OrganizationalLevelAssociations",
        vec![
            l("id").ro(),
            b("isActive").ro(),
            i("organizationalLevel1ID").ro(),
            i("organizationalLevel2ID").ro(),
        ],
    )
}

/// The `OrganizationalResources` entity.
fn organizational_resources() -> EntityDef {
    EntityDef::query_only(
        "OrganizationalResources",
        vec![l("id").ro(), i("organizationalLevelAssociationID").ro(), i("resourceID").ro()],
    )
}

/// The `Resources` entity.
fn resources() -> EntityDef {
    EntityDef::query_only(
        "Resources",
        vec![
            l("id").ro(),
            s("firstName", 50).ro(),
            b("isActive").ro(),
            s("lastName", 50).ro(),
            s("userName", 50).ro(),
        ],
    )
}

/// The multi-currency module's currencies: a company bills in its currencyID.
fn currencies() -> EntityDef {
    EntityDef::query_only(
        "Currencies",
        vec![
            l("id").ro(),
            s("description", 100).ro(),
            s("displaySymbol", 10).ro(),
            d("exchangeRate").ro(),
            b("isActive").ro(),
            b("isInternalCurrency").ro(),
            s("name", 3).ro(),
        ],
    )
}

/// The `BillingCodes` entity.
fn billing_codes() -> EntityDef {
    EntityDef::query_only(
        "BillingCodes",
        vec![
            l("id").ro(),
            i("afterHoursWorkType").ro(),
            i("billingCodeType").ro().pick(&[(0, "System"), (1, "Non-System")]),
            i("department").ro(),
            s("description", 500).ro(),
            s("externalNumber", 100).ro(),
            i("generalLedgerAccount").ro(),
            b("isActive").ro(),
            b("isExcludedFromNewContracts").ro(),
            d("markupRate").ro(),
            s("name", 100).ro(),
            i("taxCategoryID").ro(),
            d("unitCost").ro(),
            d("unitPrice").ro(),
            i("useType").ro().pick(&[
                (1, "Work Type"),
                (2, "Internal Allocation Code"),
                (3, "Expense Category"),
                (USE_TYPE_MATERIAL_COST_CODE, "Material Cost Code"),
                (USE_TYPE_RECURRING_CONTRACT_SERVICE, "Recurring Contract Service Code"),
                (6, "Milestone Code"),
            ]),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Values

/// A JSON number or numeric string as an exact decimal.
pub fn decimal_of(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Decimal::from_str(&text).ok().or_else(|| Decimal::from_scientific(&text).ok())
}

/// A decimal as a JSON number, the way the API sends amounts. The decimal's own text is parsed
/// by serde_json; amounts are stored to 4 places, so the text round-trips exactly.
pub fn decimal_json(value: Decimal) -> Value {
    let text = value.normalize().to_string();
    serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
}

/// A date-only field as live tenants send it: midnight, milliseconds, `Z`.
pub fn format_date(date: NaiveDate) -> String {
    format!("{}T00:00:00.000Z", date.format("%Y-%m-%d"))
}

pub fn format_timestamp(at: NaiveDateTime) -> String {
    format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S%.3f"))
}

/// Accepts `2026-11-01`, `2026-11-01T10:00:00`, with fractions and a `Z` or offset.
pub fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_time(NaiveTime::MIN));
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.naive_utc());
    }
    let trimmed = text.trim_end_matches('Z');
    for format in
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"]
    {
        if let Ok(at) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Some(at);
        }
    }
    None
}

/// The stored date of a date-only field, or a timestamp's date.
pub fn date_of(value: &Value) -> Option<NaiveDate> {
    value.as_str().and_then(parse_datetime).map(|at| at.date())
}

pub fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            decimal_of(value)
                .filter(|d| d.fract().is_zero())
                .and_then(|d| d.to_string().parse().ok())
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Coerces an input value to a field's stored form; Err names what was wrong.
pub fn coerce(field: &FieldDef, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bad = || {
        format!(
            "Value '{}' is not valid for field {} of type {}.",
            value_text(value),
            field.name,
            field.kind.data_type()
        )
    };
    match field.kind {
        Kind::Integer | Kind::Long => {
            let n = int_of(value).ok_or_else(bad)?;
            if field.kind == Kind::Integer && i32::try_from(n).is_err() {
                return Err(bad());
            }
            Ok(Value::from(n))
        }
        Kind::Double => {
            let d = decimal_of(value).ok_or_else(bad)?;
            Ok(decimal_json(d.round_dp(4)))
        }
        Kind::Str => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(bad()),
        },
        Kind::Bool => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        Kind::Date => {
            let at = value.as_str().and_then(parse_datetime).ok_or_else(bad)?;
            Ok(Value::String(format_date(at.date())))
        }
        Kind::DateTime => {
            let at = value.as_str().and_then(parse_datetime).ok_or_else(bad)?;
            Ok(Value::String(format_timestamp(at)))
        }
    }
}

pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
