//! Look-ups for `cmat init`: the ids a user would otherwise dig out of the API explorer.
//!
//! Billing code use types are found by their picklist labels in
//! `BillingCodes/entityInformation/fields`, never by hard-coded numbers.

use serde_json::Value;

use super::client::{AutotaskClient, AutotaskError, FieldInfo, PicklistValue};
use super::query::{Condition, Filter};
use super::read::DEFAULT_SUBSCRIPTION_UDF;

/// A billing code a user may pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingCodeChoice {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// BillingCodes.useType of "Recurring Contract Service", if the picklist has it.
    pub recurring_use_type: Option<i64>,
    /// BillingCodes.useType of "Material Cost Code", if the picklist has it.
    pub material_use_type: Option<i64>,
    /// Active billing codes for Services (the Service Billing Code ID), by id.
    pub service_billing_codes: Vec<BillingCodeChoice>,
    /// Active billing codes for consumption charges (the Product Billing Code ID), by id.
    pub product_billing_codes: Vec<BillingCodeChoice>,
    /// Contracts.serviceLevelAgreementID picklist, active values only.
    pub slas: Vec<PicklistValue>,
    /// Whether Contracts have the subscription UDF.
    pub has_subscription_udf: bool,
    /// The UDF name looked for.
    pub subscription_udf: String,
}

/// [`discover_ids_for`] with the default UDF name ("Subscription ID").
pub fn discover_ids(client: &AutotaskClient) -> Result<Discovery, AutotaskError> {
    discover_ids_for(client, DEFAULT_SUBSCRIPTION_UDF)
}

/// Five requests: BillingCodes fields, BillingCodes query, Contracts fields, Contracts UDFs
/// (and more pages only if the tenant has over 500 active billing codes of those types).
pub fn discover_ids_for(
    client: &AutotaskClient,
    subscription_udf: &str,
) -> Result<Discovery, AutotaskError> {
    let billing_fields = client.get_fields("BillingCodes")?;
    let use_types = find_field(&billing_fields, "useType")
        .map(|f| f.picklist_values.clone())
        .unwrap_or_default();
    let recurring_use_type = use_type(&use_types, &["recurring contract service"]);
    let material_use_type = use_type(&use_types, &["material cost code", "material code"]);
    let (service_billing_codes, product_billing_codes) =
        billing_codes(client, recurring_use_type, material_use_type)?;

    let contract_fields = client.get_fields("Contracts")?;
    let slas = find_field(&contract_fields, "serviceLevelAgreementID")
        .map(|f| f.picklist_values.iter().filter(|v| v.is_active).cloned().collect())
        .unwrap_or_default();
    let udfs = client.get_udfs("Contracts")?;
    let has_subscription_udf =
        udfs.iter().any(|f| f.name.trim().eq_ignore_ascii_case(subscription_udf.trim()));
    Ok(Discovery {
        recurring_use_type,
        material_use_type,
        service_billing_codes,
        product_billing_codes,
        slas,
        has_subscription_udf,
        subscription_udf: subscription_udf.to_string(),
    })
}

/// The active billing codes of the service (recurring) and product (material) use types, each
/// list by id; none when neither use type is known.
fn billing_codes(
    client: &AutotaskClient,
    recurring_use_type: Option<i64>,
    material_use_type: Option<i64>,
) -> Result<(Vec<BillingCodeChoice>, Vec<BillingCodeChoice>), AutotaskError> {
    let mut service_billing_codes = Vec::new();
    let mut product_billing_codes = Vec::new();
    let wanted: Vec<i64> = [recurring_use_type, material_use_type].into_iter().flatten().collect();
    if !wanted.is_empty() {
        let filter = Filter::new(Condition::eq("isActive", true))
            .and_then(|f| f.and(Condition::is_in("useType", wanted)))
            .map_err(|source| AutotaskError::Filter {
                request: "POST BillingCodes/query".into(),
                source,
            })?;
        for code in client.query("BillingCodes", &filter)? {
            let Some((use_type, choice)) = billing_code_choice(&code) else {
                continue;
            };
            if Some(use_type) == recurring_use_type {
                service_billing_codes.push(choice);
            } else if Some(use_type) == material_use_type {
                product_billing_codes.push(choice);
            }
        }
    }
    service_billing_codes.sort_by_key(|c| c.id);
    product_billing_codes.sort_by_key(|c| c.id);
    Ok((service_billing_codes, product_billing_codes))
}

/// A billing code record's use type and choice; none for one without id or use type, or
/// inactive.
fn billing_code_choice(code: &Value) -> Option<(i64, BillingCodeChoice)> {
    let field = |name: &str| {
        code.as_object()
            .and_then(|map| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
    let id = field("id").and_then(Value::as_i64)?;
    let use_type = field("useType").and_then(Value::as_i64)?;
    if field("isActive").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let name = field("name").and_then(Value::as_str).unwrap_or_default().to_string();
    Some((use_type, BillingCodeChoice { id, name }))
}

fn find_field<'a>(fields: &'a [FieldInfo], name: &str) -> Option<&'a FieldInfo> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

fn use_type(values: &[PicklistValue], labels: &[&str]) -> Option<i64> {
    values
        .iter()
        .find(|v| {
            let label = v.label.to_ascii_lowercase();
            labels.iter().any(|wanted| label.starts_with(wanted))
        })
        .and_then(PicklistValue::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_types_come_from_labels() {
        let values = vec![
            PicklistValue {
                value: "4".into(),
                label: "Material Cost Code".into(),
                is_active: true,
            },
            PicklistValue {
                value: "5".into(),
                label: "Recurring Contract Service Code".into(),
                is_active: true,
            },
        ];
        assert_eq!(use_type(&values, &["recurring contract service"]), Some(5));
        assert_eq!(use_type(&values, &["material cost code"]), Some(4));
        assert_eq!(use_type(&values, &["milestone"]), None);
    }
}
