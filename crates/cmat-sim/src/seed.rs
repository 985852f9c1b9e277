//! The simulator's starting data, in the API's own JSON shape (see `fixtures/autotask-seed.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::schema::PickValue;
use crate::SimError;

/// The entities a seed may hold records for (ContractServiceUnits are derived, never seeded).
/// In dependency order: a record may refer only to records of entities before it.
pub const SEEDABLE: [&str; 11] = [
    "Resources",
    "OrganizationalLevelAssociations",
    "OrganizationalResources",
    "Currencies",
    "Companies",
    "BillingCodes",
    "Contracts",
    "Services",
    "ContractServices",
    "ContractServiceAdjustments",
    "ContractCharges",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
    pub integration_code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudmoreSeed {
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub reseller_id: String,
    /// As Cloudmore returns them: `{"id","name","customerNumber","customProperties":[…]}`.
    pub organizations: Vec<Value>,
    /// Cloudmore billing lines, flat (the export's columns in camelCase, decimals as strings):
    /// the report task nests them into Cloudmore's documented shape (`cloudmore.rs`).
    pub billing_lines: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    pub credentials: Credentials,
    /// Records by entity name (`Contracts`), camelCase fields as the API sends them.
    pub records: BTreeMap<String, Vec<Value>>,
    /// Names of the user-defined fields on Contracts.
    pub contract_udfs: Vec<String>,
    pub external_request_threshold: u64,
    /// The Service Level Agreement picklist (Contracts.serviceLevelAgreementID).
    pub slas: Vec<PickValue>,
    pub zone_name: String,
    pub cloudmore: Option<CloudmoreSeed>,
    /// `"hideCosts": true`: the API user may not see costs (every cost reads null, cost
    /// writes are ignored), as on a tenant whose API user's security level hides them.
    pub hide_costs: bool,
    /// How the thread threshold behaves (seed key `throttling`).
    pub throttling: Throttling,
    /// `"tenantUtcOffsetMinutes": 600`: the tenant's time zone. A date-time filter value sent
    /// without a zone is read in it (how a live tenant reads one is not documented; values
    /// with `Z` are UTC whatever this says).
    pub tenant_utc_offset_minutes: i32,
    /// `"requiredFields": {"Contracts": ["organizationalLevelAssociationID"]}`: fields this
    /// tenant requires beyond Datto's defaults (`isRequired` in the metadata, enforced).
    pub required_fields: BTreeMap<String, Vec<String>>,
    /// `"requiredContractUdfs": ["Customer Ref"]`: Contracts UDFs this tenant requires.
    pub required_contract_udfs: Vec<String>,
}

/// The thread threshold as live tenants show it (API-NOTES, "Shapes seen on live tenants"):
/// a slot frees a little after the answer, and a refusal may come with a status other than 429.
/// Seed JSON: `"throttling": {"slotReleaseDelayMs": 30, "refusalStatus": 500}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttling {
    /// A request's slot stays taken this long after its answer; zero frees it at once.
    pub slot_release_delay: std::time::Duration,
    /// The HTTP status of a thread-threshold refusal.
    pub refusal_status: u16,
    /// What a thread-threshold refusal's body says (`refusalBody`: `errors`, `code`, `text`).
    pub refusal_body: RefusalBody,
}

/// The body of a thread-threshold refusal, in the shapes live tenants send (API-NOTES).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefusalBody {
    /// `{"errors":["API thread threshold of 3 threads has been exceeded"]}`.
    #[default]
    Errors,
    /// Only Autotask's code: `{"errors":[{"code":"Itgenatr005","message":null}]}`.
    CodeOnly,
    /// The text as a plain-text body, not JSON.
    PlainText,
}

impl Default for Throttling {
    fn default() -> Self {
        Throttling {
            slot_release_delay: std::time::Duration::ZERO,
            refusal_status: 429,
            refusal_body: RefusalBody::Errors,
        }
    }
}

/// The bundled demo tenant.
pub const BUNDLED_SEED: &str = include_str!("../../../fixtures/autotask-seed.json");

impl Default for Seed {
    /// An empty tenant with the demo credentials.
    fn default() -> Self {
        Seed {
            credentials: Credentials {
                username: "demo@example.com".into(),
                secret: "demo-secret".into(),
                integration_code: "DEMOCODE".into(),
            },
            records: BTreeMap::new(),
            contract_udfs: vec!["Subscription ID".into()],
            external_request_threshold: 10_000,
            slas: vec![PickValue {
                value: "1".into(),
                label: "Standard".into(),
                is_active: true,
                is_default: true,
            }],
            zone_name: "Simulated Zone".into(),
            cloudmore: None,
            hide_costs: false,
            throttling: Throttling::default(),
            tenant_utc_offset_minutes: 0,
            required_fields: BTreeMap::new(),
            required_contract_udfs: Vec::new(),
        }
    }
}

fn get<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn text(
    object: &serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<String, SimError> {
    match get(object, key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(SimError::Seed(format!("{what}: \"{key}\" is missing or not a string"))),
    }
}

/// The seed keys of a live tenant's shape: its time zone, the fields and UDFs it requires.
fn read_tenant_shape(
    object: &serde_json::Map<String, Value>,
    seed: &mut Seed,
) -> Result<(), SimError> {
    if let Some(offset) = get(object, "tenantUtcOffsetMinutes") {
        seed.tenant_utc_offset_minutes = offset
            .as_i64()
            .filter(|m| m.abs() <= 14 * 60)
            .and_then(|m| i32::try_from(m).ok())
            .ok_or_else(|| {
                SimError::Seed("tenantUtcOffsetMinutes must be minutes within ±14 h".into())
            })?;
    }
    if let Some(required) = get(object, "requiredFields") {
        let bad = || SimError::Seed("requiredFields maps entities to lists of field names".into());
        for (entity, fields) in required.as_object().ok_or_else(bad)? {
            let names = (fields.as_array().ok_or_else(bad)?.iter())
                .map(|f| f.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?;
            seed.required_fields.insert(entity.clone(), names);
        }
    }
    if let Some(udfs) = get(object, "requiredContractUdfs") {
        let bad = || SimError::Seed("requiredContractUdfs must be a list of UDF names".into());
        seed.required_contract_udfs = (udfs.as_array().ok_or_else(bad)?.iter())
            .map(|u| u.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

impl Seed {
    /// The bundled demo tenant (`fixtures/autotask-seed.json`).
    // A constant compiled in, not user input: `the_bundled_seed_reads` checks it.
    #[allow(clippy::expect_used)]
    pub fn bundled() -> Seed {
        Seed::from_json(BUNDLED_SEED).expect("the bundled seed is valid")
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Seed, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Seed(format!("{}: {e}", path.display())))?;
        Seed::from_json(&text).map_err(|e| match e {
            SimError::Seed(m) => SimError::Seed(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn from_json(json_text: &str) -> Result<Seed, SimError> {
        let value: Value = serde_json::from_str(json_text)
            .map_err(|e| SimError::Seed(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| SimError::Seed("the seed must be a JSON object".into()))?;
        let mut seed = Seed::default();
        read_credentials(object, &mut seed)?;
        read_records(object, &mut seed)?;
        read_udfs(object, &mut seed)?;
        read_threshold_and_slas(object, &mut seed)?;
        read_throttling(object, &mut seed)?;
        read_tenant_shape(object, &mut seed)?;
        if let Some(zone) = get(object, "zoneName").and_then(Value::as_str) {
            seed.zone_name = zone.to_string();
        }
        read_cloudmore(object, &mut seed)?;
        Ok(seed)
    }
}

/// Credentials: username, secret and integration code.
fn read_credentials(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    if let Some(creds) = get(object, "credentials") {
        let creds = creds
            .as_object()
            .ok_or_else(|| SimError::Seed("credentials must be an object".into()))?;
        seed.credentials = Credentials {
            username: text(creds, "username", "credentials")?,
            secret: text(creds, "secret", "credentials")?,
            integration_code: text(creds, "integrationCode", "credentials")?,
        };
    }
    Ok(())
}

/// The seedable entities' records (unit periods are derived, never seeded).
fn read_records(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    for entity in SEEDABLE {
        if let Some(list) = get(object, entity) {
            let list = list
                .as_array()
                .ok_or_else(|| SimError::Seed(format!("{entity} must be an array")))?;
            seed.records.insert(entity.to_string(), list.clone());
        }
    }
    if get(object, "ContractServiceUnits").is_some() {
        return Err(SimError::Seed(
            "ContractServiceUnits are derived from ContractServiceAdjustments; seed those".into(),
        ));
    }
    Ok(())
}

/// The Contracts UDFs by name (at most 50, as Autotask allows).
fn read_udfs(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    if let Some(udfs) = get(object, "contractUserDefinedFields") {
        let udfs = udfs
            .as_array()
            .ok_or_else(|| SimError::Seed("contractUserDefinedFields must be an array".into()))?;
        seed.contract_udfs = udfs
            .iter()
            .map(|u| match u {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => text(o, "name", "contractUserDefinedFields"),
                _ => Err(SimError::Seed("contractUserDefinedFields: names are strings".into())),
            })
            .collect::<Result<_, _>>()?;
        if seed.contract_udfs.len() > 50 {
            return Err(SimError::Seed("Contracts hold at most 50 user-defined fields".into()));
        }
    }
    Ok(())
}

/// The hourly request threshold, the SLA picklist and whether costs are hidden.
fn read_threshold_and_slas(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    if let Some(threshold) = get(object, "threshold") {
        let n = threshold
            .as_object()
            .and_then(|t| get(t, "externalRequestThreshold"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                SimError::Seed("threshold.externalRequestThreshold must be a number".into())
            })?;
        seed.external_request_threshold = n;
    }
    if let Some(slas) = get(object, "serviceLevelAgreements") {
        let slas = slas
            .as_array()
            .ok_or_else(|| SimError::Seed("serviceLevelAgreements must be an array".into()))?;
        seed.slas = slas
            .iter()
            .map(|s| {
                let o = s
                    .as_object()
                    .ok_or_else(|| SimError::Seed("serviceLevelAgreements: objects".into()))?;
                Ok(PickValue {
                    value: text(o, "value", "serviceLevelAgreements")?,
                    label: text(o, "label", "serviceLevelAgreements")?,
                    is_active: get(o, "isActive").and_then(Value::as_bool).unwrap_or(true),
                    is_default: get(o, "isDefaultValue").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect::<Result<_, SimError>>()?;
    }
    if let Some(hide) = get(object, "hideCosts") {
        seed.hide_costs = hide
            .as_bool()
            .ok_or_else(|| SimError::Seed("hideCosts must be true or false".into()))?;
    }
    Ok(())
}

/// How the thread threshold refuses: slot release delay, status and body.
fn read_throttling(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    if let Some(throttling) = get(object, "throttling") {
        let throttling = throttling
            .as_object()
            .ok_or_else(|| SimError::Seed("throttling must be an object".into()))?;
        if let Some(ms) = get(throttling, "slotReleaseDelayMs") {
            let ms = ms.as_u64().ok_or_else(|| {
                SimError::Seed("throttling.slotReleaseDelayMs must be a whole number".into())
            })?;
            seed.throttling.slot_release_delay = std::time::Duration::from_millis(ms);
        }
        if let Some(status) = get(throttling, "refusalStatus") {
            seed.throttling.refusal_status = status
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (400..600).contains(s))
                .ok_or_else(|| {
                    SimError::Seed("throttling.refusalStatus must be an HTTP error status".into())
                })?;
        }
        if let Some(body) = get(throttling, "refusalBody") {
            seed.throttling.refusal_body = match body.as_str() {
                Some("errors") => RefusalBody::Errors,
                Some("code") => RefusalBody::CodeOnly,
                Some("text") => RefusalBody::PlainText,
                _ => {
                    return Err(SimError::Seed(
                        "throttling.refusalBody must be \"errors\", \"code\" or \"text\"".into(),
                    ))
                }
            };
        }
    }
    Ok(())
}

/// The Cloudmore tenant: credentials, organizations and billing lines.
fn read_cloudmore(object: &Map<String, Value>, seed: &mut Seed) -> Result<(), SimError> {
    if let Some(cm) = get(object, "cloudmore") {
        let cm =
            cm.as_object().ok_or_else(|| SimError::Seed("cloudmore must be an object".into()))?;
        let list = |key: &str| -> Result<Vec<Value>, SimError> {
            match get(cm, key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items.clone()),
                Some(_) => Err(SimError::Seed(format!("cloudmore.{key} must be an array"))),
            }
        };
        seed.cloudmore = Some(CloudmoreSeed {
            client_secret: text(cm, "clientSecret", "cloudmore")?,
            username: text(cm, "username", "cloudmore")?,
            password: text(cm, "password", "cloudmore")?,
            reseller_id: text(cm, "resellerId", "cloudmore")?,
            organizations: list("organizations")?,
            billing_lines: list("billingLines")?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Seed, Throttling};

    #[test]
    fn the_bundled_seed_reads() {
        let seed = Seed::from_json(super::BUNDLED_SEED).expect("the bundled seed");
        assert!(!seed.records.get("Companies").is_none_or(Vec::is_empty));
        assert_eq!(Seed::bundled().credentials.username, seed.credentials.username);
    }

    #[test]
    fn throttling_reads_the_live_shapes_and_refuses_bad_values() {
        assert_eq!(Seed::default().throttling, Throttling::default());
        assert_eq!(Throttling::default().refusal_status, 429);
        let seed =
            Seed::from_json(r#"{"throttling": {"slotReleaseDelayMs": 30, "refusalStatus": 500}}"#)
                .expect("a seed");
        assert_eq!(
            seed.throttling,
            Throttling {
                slot_release_delay: Duration::from_millis(30),
                refusal_status: 500,
                refusal_body: crate::seed::RefusalBody::Errors,
            }
        );
        let seed = Seed::from_json(r#"{"throttling": {"refusalBody": "code"}}"#).expect("a seed");
        assert_eq!(seed.throttling.refusal_body, crate::seed::RefusalBody::CodeOnly);
        for bad in [
            r#"{"throttling": 3}"#,
            r#"{"throttling": {"slotReleaseDelayMs": -1}}"#,
            r#"{"throttling": {"refusalStatus": 200}}"#,
            r#"{"throttling": {"refusalStatus": 70000}}"#,
            r#"{"throttling": {"refusalBody": "xml"}}"#,
            r#"{"tenantUtcOffsetMinutes": 100000}"#,
        ] {
            assert!(Seed::from_json(bad).is_err(), "{bad}");
        }
    }
}
