//! The diff's words: every warning it raises and every reason it gives a change, one named
//! constructor each, so the decisions in `diff.rs` read as decisions and a text is changed in
//! one place. The texts are what plans, explain and the report show: keep them byte-identical
//! unless a change of wording is meant.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{amount, ContractTarget, UnitDecision, CONTRACT_NAME_MAX};
use crate::desired::{
    DesiredCharge, DesiredContract, DesiredContractService, Warning, WarningCode,
};
use crate::rules::{CancelledSubscription, RuleOrigin};
use crate::snapshot::{Contract, ContractCharge, IncompleteRecord};

/// Why a contract is held back on this run.
impl Warning {
    /// The organization links to company 0, the tenant's own.
    pub(super) fn own_company(contract: &DesiredContract) -> Warning {
        Warning::new(
            WarningCode::OwnCompany,
            format!(
                "organization \"{}\" links to Autotask company 0, the tenant's own company; subscription {} left out (check AutotaskCompanyID)",
                contract.organization_name, contract.subscription_id
            ),
            contract.source.to_string(),
        )
    }

    /// Several contracts carry the subscription: none is written until one is left.
    pub(super) fn duplicate_contracts(
        contract: &DesiredContract,
        ids: &[i64],
        subscription_udf: &str,
    ) -> Warning {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        Warning::new(
            WarningCode::DuplicateContracts,
            format!(
                "contracts {} all carry subscription {}; nothing is written for it until one contract is left (remove the others' \"{}\" in Autotask)",
                ids.join(", "),
                contract.subscription_id,
                subscription_udf
            ),
            format!("Contracts/{}", ids.join(",")),
        )
    }

    /// A record of the contract came with a field cmat needs null.
    pub(super) fn incomplete_record(
        record: &IncompleteRecord,
        contract: &DesiredContract,
    ) -> Warning {
        Warning::new(
            WarningCode::IncompleteRecord,
            format!(
                "Autotask sent {} {} of contract {} with `{}` null; nothing is written for subscription {} until the record is complete (see `cmat doctor`)",
                record.entity,
                record.id,
                record.contract_id.unwrap_or_default(),
                record.field,
                contract.subscription_id
            ),
            record.key(),
        )
    }

    /// The organization links to a company the snapshot does not have.
    pub(super) fn unknown_company(contract: &DesiredContract) -> Warning {
        Warning::new(
            WarningCode::UnknownCompany,
            format!(
                "organization \"{}\" links to Autotask company {}, which the snapshot does not have; subscription {} left out (check AutotaskCompanyID, or run `cmat pull autotask`)",
                contract.organization_name, contract.company_id, contract.subscription_id
            ),
            contract.source.to_string(),
        )
    }

    /// Changes held because the billing code they use came without its name or use type.
    pub(super) fn incomplete_billing_code(id: i64, held: usize) -> Warning {
        Warning::new(
            WarningCode::IncompleteRecord,
            format!(
                "Autotask sent billing code {id} without its name or use type; nothing that uses it is written ({held} change(s) held) until it is complete (see `cmat doctor`)"
            ),
            format!("BillingCodes/{id}"),
        )
    }
}

/// What is said about a contract that goes ahead.
impl Warning {
    /// The bill's currency is not the Autotask company's (`company_currency`).
    pub(super) fn company_currency_mismatch(
        contract: &DesiredContract,
        company_currency: &str,
    ) -> Warning {
        Warning::new(
            WarningCode::CurrencyMismatch,
            format!(
                "subscription {} of \"{}\" is billed in {} but Autotask company {} bills in {}; amounts are sent as they are, never converted",
                contract.subscription_id, contract.organization_name, contract.currency_code, contract.company_id, company_currency
            ),
            contract.source.to_string(),
        )
    }

    /// A skipped product Autotask still bills units of.
    pub(super) fn skipped_but_billed(
        subscription: &str,
        product: &str,
        rule: &RuleOrigin,
        contract_id: i64,
        units: i64,
    ) -> Warning {
        Warning::new(
            WarningCode::SkippedButBilled,
            format!(
                "product {product} of subscription {subscription} is skipped by the rule at {rule}, but contract #{contract_id} still bills {units} unit(s) of it; left as it is (set its units to 0 in Autotask, or remove the skip)"
            ),
            format!("Contracts/{contract_id}"),
        )
    }

    /// The existing contract belongs to another company than the bill's.
    pub(super) fn company_mismatch(existing: &Contract, contract: &DesiredContract) -> Warning {
        Warning::new(
            WarningCode::CompanyMismatch,
            format!(
                "contract {} for subscription {} belongs to company {}, but the bill links \"{}\" to company {}; Autotask does not allow moving a contract, so it is used as it is",
                existing.id, contract.subscription_id, existing.company_id, contract.organization_name, contract.company_id
            ),
            contract.source.to_string(),
        )
    }

    /// The contract's name is cut to Autotask's length.
    pub(super) fn contract_name_shortened(contract: &DesiredContract) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!("contract name \"{}\" is longer than Autotask's {CONTRACT_NAME_MAX} characters; shortened", contract.name),
            contract.source.to_string(),
        )
    }

    /// The subscription is off the organization's latest bill; `policy` says what follows.
    pub(super) fn stopped_appearing(
        contract: &DesiredContract,
        policy: CancelledSubscription,
    ) -> Warning {
        Warning::new(
            WarningCode::SubscriptionStoppedAppearing,
            format!(
                "subscription {} of \"{}\" is not on the organization's latest bill (last billed {}); its contract is {}",
                contract.subscription_id,
                contract.organization_name,
                contract.last_billing_date,
                match policy {
                    CancelledSubscription::Report => "left as it is",
                    CancelledSubscription::EndContract => "ended on its last Billing Date",
                }
            ),
            contract.source.to_string(),
        )
    }

    /// A bill after the contract's end that the rules do not renew it for.
    pub(super) fn contract_ends_before_bill(
        existing: &Contract,
        contract: &DesiredContract,
    ) -> Warning {
        Warning::new(
            WarningCode::ContractEndsBeforeBill,
            format!(
                "contract {} ends {} but subscription {} was billed {}; unit changes are dated on the contract's last day",
                existing.id, existing.end_date, contract.subscription_id, contract.last_billing_date
            ),
            contract.source.to_string(),
        )
    }

    /// A contract field edited in Autotask, kept (`hand_edit = report`).
    pub(super) fn contract_hand_edited(
        contract_id: i64,
        field: &str,
        old: &str,
        new: &str,
    ) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!("contract {contract_id} {field} is {old} in Autotask, the rules say {new}; left as it is (policy hand_edit = report)"),
            format!("Contracts/{contract_id}"),
        )
    }
}

/// What is said about a contract service.
impl Warning {
    /// No Service has the product's sku and the rules create none.
    pub(super) fn service_not_found(
        contract: &DesiredContract,
        service: &DesiredContractService,
    ) -> Warning {
        Warning::new(
            WarningCode::ServiceNotFound,
            format!(
                "no Autotask Service has sku {} and the rules do not create one; product \"{}\" of subscription {} left out",
                service.product_key, service.product_name, contract.subscription_id
            ),
            service.source.to_string(),
        )
    }

    /// No unit period read for a contract service: its units are unknown on this run.
    pub(super) fn units_unknown(
        contract_id: i64,
        contract_service_id: i64,
        service: &DesiredContractService,
    ) -> Warning {
        Warning::new(
            WarningCode::ContractEndsBeforeBill,
            format!(
                "contract service {contract_service_id} (product {}) of contract #{contract_id}: no unit period read (the contract ended before the bills' dates), so its units are unknown; not adjusted until a run reads them",
                service.product_key
            ),
            service.source.to_string(),
        )
    }

    /// A decrease whose day falls after the contract's end.
    pub(super) fn decrease_deferred(
        contract: &DesiredContract,
        service: &DesiredContractService,
        units: &UnitDecision,
        takes_effect: NaiveDate,
        target: &ContractTarget,
    ) -> Warning {
        Warning::new(
            WarningCode::DecreaseDeferred,
            format!(
                "subscription {}, product {}: licence count {} → {} takes effect {takes_effect} ({}, rule at {}), after the contract's end {}; it is written with the first bill from that date",
                contract.subscription_id,
                service.product_key,
                units.current_units,
                service.units,
                service.decrease.value.describe(),
                service.decrease.origin,
                target.end
            ),
            service.source.to_string(),
        )
    }

    /// A decrease lowered to what a later-dated unit period allows.
    pub(super) fn decrease_floored(
        contract: &DesiredContract,
        service: &DesiredContractService,
        effective: NaiveDate,
        decrease: i64,
        fewest: i64,
    ) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!(
                "subscription {}, product {}: a decrease of {} on {effective} would take a later-dated unit period below zero (Autotask holds {fewest} units there, written for a bill since restated); lowered by {fewest} only",
                contract.subscription_id,
                service.product_key,
                decrease,
            ),
            service.source.to_string(),
        )
    }

    /// A product off the bill whose units stay (`removed_product = report`).
    pub(super) fn removed_product_kept(
        contract: &DesiredContract,
        service: &DesiredContractService,
        current_units: i64,
    ) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!(
                "product {} is no longer on subscription {}'s bill but still has {current_units} units; left as it is (policy removed_product = report)",
                service.product_key, contract.subscription_id
            ),
            service.source.to_string(),
        )
    }

    /// A contract service's price edited by hand in Autotask, kept (`hand_edit = report`).
    pub(super) fn price_hand_edited(
        contract_service_id: i64,
        service: &DesiredContractService,
        held: Decimal,
    ) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!(
                "contract service {contract_service_id} has unit price {} in Autotask, the bill says {}; left as it is (policy hand_edit = report)",
                amount(held, service.scale),
                amount(service.unit_price, service.scale)
            ),
            service.source.to_string(),
        )
    }
}

/// What Autotask did not show, said once per plan (`first` names one of the records).
impl Warning {
    /// Records read without a cost.
    pub(super) fn costs_not_visible(records: usize, first: &str) -> Warning {
        Warning::new(
            WarningCode::CostsNotVisible,
            format!(
                "Autotask shows no cost on {records} record(s) cmat compares (the API user may lack permission to see costs): costs are not compared, and no change is planned for a cost alone (grant the API user's security level access to costs to have them kept in step)"
            ),
            first.to_string(),
        )
    }

    /// Contract services read without an adjusted price.
    pub(super) fn no_adjusted_price(contract_services: usize, first: i64) -> Warning {
        Warning::new(
            WarningCode::Drift,
            format!(
                "Autotask returned no adjusted price (internalCurrencyAdjustedPrice) for {contract_services} contract service(s); their prices are not compared until a pull reads one"
            ),
            format!("ContractServices/{first}"),
        )
    }

    /// Contract services whose price cannot be read in the customer's currency.
    pub(super) fn foreign_currency(contract_services: usize, first: i64) -> Warning {
        Warning::new(
            WarningCode::ForeignCurrency,
            format!(
                "{contract_services} contract service(s) bill in the customer's currency (multi-currency is on) and their adjusted price could not be turned from the tenant's currency into the customer's (the catalogue price is 0 in one of them), so their prices are not compared; bills are never converted"
            ),
            format!("ContractServices/{first}"),
        )
    }
}

/// What is said about a consumption charge.
impl Warning {
    /// A period charged under another grouping, whose total the bill no longer agrees with.
    pub(super) fn charge_grouping_changed(
        contract: &DesiredContract,
        charge: &DesiredCharge,
        other_grouping: &[&ContractCharge],
        billed: Decimal,
        wanted: Decimal,
    ) -> Warning {
        let scale = charge.scale;
        let names: Vec<String> = other_grouping
            .iter()
            .map(|existing| format!("\"{}\" (#{})", existing.name, existing.id))
            .collect();
        Warning::new(
            WarningCode::ChargeGroupingChanged,
            format!(
                "subscription {}: the period {} is charged {} as {}, under another grouping of its consumption, and the bill now says {}; no charge is added or corrected, so the period is not billed twice (correct it in Autotask by hand)",
                contract.subscription_id,
                charge.date,
                amount(billed, scale),
                names.join(", "),
                amount(wanted, scale)
            ),
            charge.source.to_string(),
        )
    }

    /// Billed charges the bill disagrees with, kept (`billed_charge_mismatch = report`);
    /// `mismatch` is [`billed_mismatch`]'s text.
    pub(super) fn billed_charge_mismatch(charge: &DesiredCharge, mismatch: &str) -> Warning {
        Warning::new(
            WarningCode::BilledChargeMismatch,
            format!("{mismatch}; left as it is (policy billed_charge_mismatch = report)"),
            charge.source.to_string(),
        )
    }
}

/// How the text plan labels a contract: name and subscription, and its id once it exists.
pub(super) fn contract_label(contract: &DesiredContract, existing_id: Option<i64>) -> String {
    match existing_id {
        Some(id) => format!("{} [{}] #{id}", contract.name, contract.subscription_id),
        None => format!("{} [{}]", contract.name, contract.subscription_id),
    }
}

/// The reason a contract is created.
pub(super) fn new_subscription(contract: &DesiredContract) -> String {
    format!("new subscription {} ({})", contract.subscription_id, contract.service_name)
}

/// The reason a contract's end date moves: ended by a cancelled subscription, or renewed.
pub(super) fn end_date_moved(contract: &DesiredContract, ended: bool) -> String {
    if ended {
        "subscription stopped appearing: contract ended".to_string()
    } else {
        format!("bill of {} falls after the contract's end: renewed", contract.last_billing_date)
    }
}

/// The reason a field cmat owns is set back.
pub(super) fn field_edited(field: &str) -> String {
    format!("{field} edited in Autotask")
}

/// The reason a Service is created.
pub(super) fn no_service_with_sku(sku: &str) -> String {
    format!("no Autotask Service has sku {sku}")
}

/// The reasons for a contract service's unit change, in the order the plan gives them.
pub(super) fn unit_reasons(
    service: &DesiredContractService,
    units: &UnitDecision,
    new_product: bool,
) -> Vec<String> {
    let current_units = units.current_units;
    let mut reasons = vec![if !service.on_current_bill {
        format!("product removed from the {} bill: {current_units} → 0", service.effective_date)
    } else if new_product {
        format!(
            "new product {} ({}): {} units",
            service.product_key, service.product_name, service.units
        )
    } else {
        format!("licence count {current_units} → {}", service.units)
    }];
    if let Some(rule) = &service.units_rule {
        reasons.push(format!("{} on the bill, units by the rule at {rule}", service.licence_count));
    }
    if let Some(date) = units.deferred_to {
        reasons.push(format!(
            "the decrease takes effect {date}, {} (rule at {})",
            service.decrease.value.describe(),
            service.decrease.origin
        ));
    }
    // The term matters when licences change outside a monthly commitment (NCE annual).
    let term = service.payment_frequency.trim();
    if !term.is_empty() && !term.eq_ignore_ascii_case("monthly") {
        reasons.push(format!("Payment Frequency {term}"));
    }
    reasons
}

/// "unit price 5.0000 → 5.5000" (or cost: `what`), for a reason.
pub(super) fn repriced(what: &str, held: Decimal, wanted: Decimal, scale: u32) -> String {
    format!("{what} {} → {}", amount(held, scale), amount(wanted, scale))
}

/// The reason naming the dated rule behind a new price.
pub(super) fn priced_by_dated_rule(dated: &str) -> String {
    format!("priced by the dated rule at {dated}")
}

/// A consumption charge's description in Autotask.
pub(super) fn charge_description(contract: &DesiredContract, charge: &DesiredCharge) -> String {
    format!(
        "{} {} consumption, {} line(s), subscription {}",
        contract.service_name, charge.date, charge.line_count, contract.subscription_id
    )
}

/// The reason a period's charge is created.
pub(super) fn new_period(contract: &DesiredContract, charge: &DesiredCharge) -> String {
    format!(
        "{} consumption for {}: {} line(s), total {}",
        contract.service_name,
        charge.date,
        charge.line_count,
        amount(charge.unit_price, charge.scale)
    )
}

/// The reason an open charge takes a restated period's difference.
pub(super) fn restated(charge: &DesiredCharge, billed_price: Decimal) -> String {
    format!(
        "bill of {} restated: total {} → {}",
        charge.date,
        amount(billed_price, charge.scale),
        amount(charge.unit_price, charge.scale)
    )
}

/// What billed charges and the bill disagree on: the start of a correction's reason or of
/// [`Warning::billed_charge_mismatch`].
pub(super) fn billed_mismatch(
    contract: &DesiredContract,
    charge: &DesiredCharge,
    billed_price: Decimal,
) -> String {
    format!(
        "the billed charge(s) of {} for subscription {} total {} but the bill now says {}",
        charge.date,
        contract.subscription_id,
        amount(billed_price, charge.scale),
        amount(charge.unit_price, charge.scale)
    )
}

/// The reason a correcting charge is created.
pub(super) fn correcting_charge(mismatch: &str, price_gap: Decimal, scale: u32) -> String {
    format!("{mismatch}: correcting charge of {}", amount(price_gap, scale))
}

/// A correcting charge's name: the base, then "base 2", "base 3"…
pub(super) fn correction_name(base: &str, n: u32) -> String {
    if n == 1 {
        base.to_string()
    } else {
        format!("{base} {n}")
    }
}
