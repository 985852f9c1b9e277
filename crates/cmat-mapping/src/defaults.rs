//! The default rules `cmat init` writes: Cloudmore's own Autotask integration, stated as
//! rules. `mappings/microsoft.cmat` in the repository is this text with the ids of the
//! reference tenant (a test holds them equal).

use super::format_source;

/// Written in any layout; [`default_rules`] returns it in canonical form, so that the
/// trailing comments line up whatever the length of the ids.
const DEFAULT_RULES_TEMPLATE: &str = r#"# Cloudmore -> Autotask: the default rules, as Cloudmore's own Autotask integration does it.
# Every change in a plan names the file and line of the rule behind it.

settings {
    service_billing_code = SERVICE_BILLING_CODE # BillingCodes id, use type "Recurring Contract Service"
    product_billing_code = PRODUCT_BILLING_CODE # BillingCodes id, "Material Cost Code" (Azure charges)
    service_level_agreement = SERVICE_LEVEL_AGREEMENT # Contracts.serviceLevelAgreementID picklist value
    subscription_udf = "Subscription ID" # Contracts user-defined field holding the subscription id
    contract_type = "Recurring Service" # Contracts.contractType picklist label (or its number)
    contract_status = "Active" # Contracts.status picklist label
    timezone = "UTC"
}

service "Microsoft 365 CSP Direct" = licence # Cloudmore's Microsoft 365 (NCE and legacy inside). Services billed, and how; any other is unmapped.
service "Microsoft CSP" = licence
service "Microsoft NCE" = licence
service "Microsoft Azure" = consumption
service "Azure Plan" = consumption

# Organization -> Autotask company: Cloudmore's organization custom property.
company column "AutotaskCompanyID"
# company "Contoso Ltd" = 29683501      # an explicit link wins over the column

contract {
    licence_name = "Microsoft 365 - {organization}"
    consumption_name = "Microsoft Azure - {organization}"
    start = first_billing_date # or first_billing_month
    term_months = 12
    renewal = extend # or keep
    period = monthly # new contracts' contractPeriodType
}

product {
    match = item_code # or product_id
    # service "CFQ7TTC0LH18" = 812        # an explicit Autotask Service wins over the sku
    create {
        name = "{product}"
        period = monthly
    }
}

prices {
    unit_price = sales_price # or: cost + 15%
    unit_cost = cost_price
    scale = 4
    rounding = half_up # half_even, down, up
}

consumption {
    charge_name = "Azure consumption {period}"
    correction_name = "Azure consumption {period} correction"
    charge_type = "Operational" # ContractCharges.chargeType picklist label
}

policy {
    removed_product = zero_units # or report
    cancelled_subscription = report # or end_contract
    hand_edit = overwrite # or report
    billed_charge_mismatch = correct # or report
}
"#;

/// Exactly the text `cmat init` writes to `mappings/microsoft.cmat`, in canonical form.
pub fn default_rules(service_billing_code: i64, product_billing_code: i64, sla: i64) -> String {
    let text = DEFAULT_RULES_TEMPLATE
        .replace("SERVICE_BILLING_CODE", &service_billing_code.to_string())
        .replace("PRODUCT_BILLING_CODE", &product_billing_code.to_string())
        .replace("SERVICE_LEVEL_AGREEMENT", &sla.to_string());
    // The template always parses (a test says so); the fallback only keeps this total.
    format_source("mappings/microsoft.cmat", &text).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_sources;

    #[test]
    fn the_repository_file_is_the_default_rules_with_the_reference_ids() {
        let repository_file = include_str!("../../../mappings/microsoft.cmat");
        assert_eq!(default_rules(29682801, 29682802, 1), repository_file);
    }

    #[test]
    fn the_default_rules_are_canonical_and_compile_with_any_ids() {
        let text = default_rules(5, 123456789012, 3);
        assert_eq!(format_source("mappings/microsoft.cmat", &text).expect("formats"), text);
        let checked =
            compile_sources(&[("mappings/microsoft.cmat".into(), text)]).expect("compiles");
        assert_eq!(checked.rules.settings.service_billing_code.value, 5);
        assert_eq!(checked.rules.settings.product_billing_code.value, 123456789012);
        assert_eq!(checked.rules.settings.service_level_agreement.value, 3);
    }
}
