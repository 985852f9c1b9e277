//! The requests of a saved plan: each kind of write, read back from the plan's JSON, goes to
//! Autotask with the fields the plan shows (one field map makes both), amounts as numbers and
//! planned records as the ids they were given.

use std::collections::BTreeMap;

use cmat_engine::plan::Plan;
use cmat_engine::write::Ref;
use serde_json::{json, Value};

use super::{request, Method};

/// One change of every kind cmat writes, as `cmat plan --out` saves them.
fn every_kind_of_write() -> Value {
    let udf = |value: Value| json!([{ "name": "Subscription ID", "value": value }]);
    let change = |reference: &str, action: &str, entity: &str, key: &str| {
        json!({ "ref": reference, "action": action, "entity": entity, "id": null,
                "parent": null, "key": key, "fields": {}, "before": null,
                "rule": "rule", "reason": "reason" })
    };
    let charge = json!({
        "name": "Azure", "description": "Azure consumption", "datePurchased": "2026-10-01",
        "chargeType": 1, "unitQuantity": "1.0000", "unitPrice": "20.6000",
        "unitCost": "15.0000", "billingCodeID": 2, "isBillableToCompany": true,
    });
    let azure = json!({ "entity": "Contracts", "id": 4410 });
    let mut changes = vec![
        change("c1", "create", "Services", "sku:SKU1"),
        change("c2", "create", "Contracts", "subscription:S1"),
        change("c3", "adjust", "ContractServiceAdjustments", "subscription:S1/item:A"),
        change("c4", "create", "ContractCharges", "subscription:AZ/charge:2026-10-01"),
        change("c5", "update", "Contracts", "subscription:AZ"),
        change("c6", "update", "ContractCharges", "subscription:AZ/charge:2026-09-01"),
        change("c7", "delete", "ContractCharges", "subscription:AZ/charge:2026-10-01"),
    ];
    changes[0]["fields"] = json!({
        "name": "Microsoft 365", "sku": "SKU1", "billingCodeID": 1, "periodType": 2,
        "unitPrice": "5.0000", "unitCost": "3.5000", "isActive": true,
    });
    changes[1]["fields"] = json!({
        "companyID": 100, "contractName": "Contoso CSP", "contractType": 7, "status": 1,
        "contractPeriodType": 2, "startDate": "2026-10-01", "endDate": "2027-09-30",
        "serviceLevelAgreementID": 1, "timeReportingRequiresStartAndStopTimes": 1,
        "contractCategory": 3, "organizationalLevelAssociationID": 4,
        "userDefinedFields": udf(json!("S1")),
    });
    changes[2]["parent"] = json!({ "ref": "c2" });
    changes[2]["fields"] = json!({
        "serviceID": { "ref": "c1" }, "effectiveDate": "2026-10-01", "unitChange": 10,
        "adjustedUnitPrice": "5.0000", "adjustedUnitCost": "3.5000",
    });
    changes[2]["before"] = json!({ "units": "0", "adjustedUnitPrice": "4.5000" });
    changes[3]["parent"] = azure.clone();
    changes[3]["fields"] = charge.clone();
    changes[4]["id"] = json!(4410);
    changes[4]["fields"] =
        json!({ "endDate": "2027-10-31", "userDefinedFields": udf(json!("AZ")) });
    changes[4]["before"] = json!({ "endDate": null, "userDefinedFields": udf(Value::Null) });
    changes[5]["id"] = json!(77);
    changes[5]["parent"] = azure.clone();
    changes[5]["fields"] = json!({ "unitCost": "12.5000" });
    changes[5]["before"] = json!({ "unitCost": "10.0000" });
    changes[6]["id"] = json!(78);
    changes[6]["parent"] = azure;
    changes[6]["before"] = charge;
    json!({
        "format_version": 1, "created_at": "2026-11-01T00:00:00Z",
        "digests": { "snapshot": "sha256:aa", "inputs": "sha256:bb", "mappings": "sha256:cc" },
        "summary": { "create": 3, "update": 2, "adjust": 1, "delete": 1, "unchanged": 0,
                     "warnings": 0 },
        "changes": changes, "warnings": [],
    })
}

#[test]
fn every_kind_of_write_sends_the_fields_its_saved_plan_shows() {
    let saved = every_kind_of_write();
    let text = serde_json::to_string_pretty(&saved).expect("JSON");
    let plan = Plan::from_json("plan.json", &text).expect("a valid plan");
    let again: Value = serde_json::from_str(&plan.to_json()).expect("JSON");
    assert_eq!(again, saved, "the plan reads back as saved");
    let ids = BTreeMap::from([("c1", 501), ("c2", 502)]);
    let sent: Vec<(Method, String, Value)> = plan
        .changes
        .iter()
        .map(|change| {
            let write = change
                .write
                .map_refs(|Ref(reference)| ids.get(reference.as_str()).copied().ok_or(()))
                .expect("every ref created");
            let request = request(&write).expect("a request");
            (request.method, request.path, request.body)
        })
        .collect();
    let udf = |value: &str| json!([{ "name": "Subscription ID", "value": value }]);
    let charge = json!({
        "name": "Azure", "description": "Azure consumption", "datePurchased": "2026-10-01",
        "chargeType": 1, "unitQuantity": 1, "unitPrice": 20.6, "unitCost": 15,
        "billingCodeID": 2, "isBillableToCompany": true, "contractID": 4410,
    });
    let expected = vec![
        (
            Method::Create,
            "Services".into(),
            json!({
                "name": "Microsoft 365", "sku": "SKU1", "billingCodeID": 1, "periodType": 2,
                "unitPrice": 5, "unitCost": 3.5, "isActive": true,
            }),
        ),
        (
            Method::Create,
            "Contracts".into(),
            json!({
                "companyID": 100, "contractName": "Contoso CSP", "contractType": 7, "status": 1,
                "contractPeriodType": 2, "startDate": "2026-10-01", "endDate": "2027-09-30",
                "serviceLevelAgreementID": 1, "timeReportingRequiresStartAndStopTimes": 1,
                "contractCategory": 3, "organizationalLevelAssociationID": 4,
                "userDefinedFields": udf("S1"),
            }),
        ),
        (
            Method::Create,
            "Contracts/502/ServiceAdjustments".into(),
            json!({
                "serviceID": 501, "effectiveDate": "2026-10-01", "unitChange": 10,
                "adjustedUnitPrice": 5, "adjustedUnitCost": 3.5, "contractID": 502,
            }),
        ),
        (Method::Create, "Contracts/4410/Charges".into(), charge),
        (
            Method::Update,
            "Contracts".into(),
            json!({
                "id": 4410, "endDate": "2027-10-31", "userDefinedFields": udf("AZ"),
            }),
        ),
        (Method::Update, "Contracts/4410/Charges".into(), json!({ "id": 77, "unitCost": 12.5 })),
        (
            Method::Delete,
            "Contracts/4410/Charges/78".into(),
            json!({
                "id": 78, "contractID": 4410,
            }),
        ),
    ];
    assert_eq!(sent, expected);
}
