//! cmat-sim against its contract (API-NOTES.md): each behaviour over real HTTP with reqwest.

use std::time::{Duration, Instant};

use cmat_sim::{Fault, Seed, SimHandle, SimOptions, Simulator, WriteFailure};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Api {
    sim: SimHandle,
    client: Client,
}

fn start_with(seed: Seed, options: SimOptions) -> Api {
    let sim = Simulator::start("127.0.0.1:0", seed, options).expect("simulator starts");
    let client = Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    Api { sim, client }
}

fn start() -> Api {
    start_with(Seed::bundled(), SimOptions::default())
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}v1.0/{path}", self.sim.base_url())
    }

    fn send(&self, method: &str, url: &str, body: Option<&Value>) -> Response {
        let creds = self.sim.credentials();
        let mut rq = self
            .client
            .request(method.parse().expect("method"), url)
            .header("ApiIntegrationCode", creds.integration_code)
            .header("UserName", creds.username)
            .header("Secret", creds.secret)
            .header("Content-Type", "application/json");
        if let Some(body) = body {
            rq = rq.body(body.to_string());
        }
        rq.send().expect("request sent")
    }

    /// (status, body) of an authenticated call to `v1.0/{path}`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let response = self.send(method, &self.url(path), body.as_ref());
        let status = response.status().as_u16();
        let text = response.text().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, out) = self.call(method, path, Some(body));
        assert_eq!(status, 200, "{method} {path}: {out}");
        out
    }

    fn query(&self, entity: &str, filter: Value) -> Vec<Value> {
        let out = self.ok("POST", &format!("{entity}/query"), json!({ "filter": filter }));
        out["items"].as_array().expect("items").clone()
    }

    fn ids(&self, entity: &str, filter: Value) -> Vec<i64> {
        self.query(entity, filter).iter().map(|r| r["id"].as_i64().expect("id")).collect()
    }

    fn new_contract(&self, contract_type: i64) -> i64 {
        let out = self.ok(
            "POST",
            "Contracts",
            json!({"companyID": 29683501, "contractName": "Microsoft 365 - Contoso Ltd", "contractType": contract_type,
                   "startDate": "2026-11-01", "endDate": "2027-10-31", "status": 1,
                   "timeReportingRequiresStartAndStopTimes": 1, "serviceLevelAgreementID": 1}),
        );
        out["itemId"].as_i64().expect("itemId")
    }

    fn new_service(&self, sku: &str) -> i64 {
        let out = self.ok(
            "POST",
            "Services",
            json!({"name": format!("Licence {sku}"), "sku": sku, "billingCodeID": 29682801, "periodType": 2,
                   "unitPrice": 22, "unitCost": "18.70"}),
        );
        out["itemId"].as_i64().expect("itemId")
    }
}

fn error_text(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter().map(|m| m.as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join(" | ")
        })
        .unwrap_or_default()
}

fn companies_seed(n: usize) -> Seed {
    let companies: Vec<Value> = (0..n)
        .map(|i| json!({"id": 1000 + i as i64, "companyName": format!("Company {i:04}"), "companyType": 1,
                         "ownerResourceID": 1, "phone": "555", "isActive": i % 2 == 0}))
        .collect();
    let mut seed = Seed::bundled();
    seed.records.insert("Companies".into(), companies);
    seed
}

// ---------------------------------------------------------------------------------------------
// Connection

#[test]
fn credentials_are_required_and_checked() {
    let api = start();
    let url = api.url("Companies/query");
    let bare = api.client.post(&url).body("{}").send().unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let wrong = api
        .client
        .post(&url)
        .header("ApiIntegrationCode", "DEMOCODE")
        .header("UserName", "demo@example.com")
        .header("Secret", "wrong")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = api.call("POST", "Companies/query", Some(json!({})));
    assert_eq!(status, 200);
}

#[test]
fn zone_lookup_needs_no_auth_and_knows_only_the_api_user() {
    let api = start();
    let found: Value = api
        .client
        .get(format!("{}?user=demo%40example.com", api.sim.zone_lookup_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(found["url"], json!(api.sim.base_url()));
    assert!(
        found["zoneName"].is_string() && found["webUrl"].is_string() && found.get("ci").is_some()
    );
    let unknown = api
        .client
        .get(format!("{}?user=nobody@example.com", api.sim.zone_lookup_url()))
        .send()
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 500);
}

#[test]
fn threshold_counts_the_hour_and_refuses_past_it() {
    let mut seed = Seed::bundled();
    seed.external_request_threshold = 5;
    let api = start_with(seed, SimOptions::default());
    let (_, info) = api.call("GET", "ThresholdInformation", None);
    assert_eq!(info["externalRequestThreshold"], 5);
    assert_eq!(info["requestThresholdTimeframe"], 60);
    assert_eq!(info["currentTimeframeRequestCount"], 0);
    for _ in 0..5 {
        assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 200);
    }
    let (_, info) = api.call("GET", "ThresholdInformation", None);
    assert_eq!(info["currentTimeframeRequestCount"], 5);
    let (status, body) = api.call("POST", "Companies/query", Some(json!({})));
    assert_eq!(status, 429, "{body}");
    assert!(!error_text(&body).is_empty());
}

#[test]
fn other_integrations_can_use_up_the_hour() {
    let api = start();
    api.sim.inject(Fault::UseThreshold { count: 9_999 });
    assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 200);
    assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 429);
}

#[test]
fn at_most_three_requests_in_flight_per_endpoint() {
    let api = start_with(
        Seed::bundled(),
        SimOptions { latency: Duration::from_millis(400), ..SimOptions::default() },
    );
    let api = std::sync::Arc::new(api);
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let api = api.clone();
            std::thread::spawn(move || {
                let entity = if i == 5 { "BillingCodes" } else { "Companies" };
                let (status, body) = api.call("POST", &format!("{entity}/query"), Some(json!({})));
                (entity, status, body)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let companies: Vec<_> = results.iter().filter(|r| r.0 == "Companies").collect();
    assert_eq!(companies.iter().filter(|r| r.1 == 200).count(), 3, "{results:?}");
    for rejected in companies.iter().filter(|r| r.1 != 200) {
        assert_eq!(rejected.1, 429);
        assert_eq!(
            rejected.2,
            json!({"errors": ["API thread threshold of 3 threads has been exceeded"]})
        );
    }
    // Another endpoint has its own three.
    assert!(results.iter().any(|r| r.0 == "BillingCodes" && r.1 == 200));
    let counters = api.sim.counters();
    assert_eq!(counters.peak_in_flight["Companies"], 3);
    assert_eq!(counters.throttled, 2);
}

// ---------------------------------------------------------------------------------------------
// Metadata

fn field<'a>(fields: &'a Value, name: &str) -> &'a Value {
    fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn entity_information_describes_fields_and_picklists() {
    let api = start();
    let (_, contracts) = api.call("GET", "Contracts/entityInformation/fields", None);
    let sla = field(&contracts, "serviceLevelAgreementID");
    assert_eq!(sla["isPickList"], true);
    assert!(sla["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["value"] == "1" && v["label"] == "Standard" && v["isActive"] == true));
    let name = field(&contracts, "contractName");
    assert_eq!(
        (name["length"].as_i64(), name["isRequired"].as_bool(), name["dataType"].as_str()),
        (Some(100), Some(true), Some("string"))
    );
    let company = field(&contracts, "companyID");
    assert_eq!(
        (company["isReference"].as_bool(), company["referenceEntityType"].as_str()),
        (Some(true), Some("Companies"))
    );
    let types = field(&contracts, "contractType")["picklistValues"].as_array().unwrap().clone();
    assert!(types.iter().any(|v| v["value"] == "7" && v["label"] == "Recurring Service"));
    assert!(field(&contracts, "status")["isPickList"].as_bool().unwrap());

    let (_, codes) = api.call("GET", "BillingCodes/entityInformation/fields", None);
    let use_type = field(&codes, "useType")["picklistValues"].as_array().unwrap().clone();
    assert!(use_type
        .iter()
        .any(|v| v["value"] == "5" && v["label"] == "Recurring Contract Service Code"));
    assert!(use_type.iter().any(|v| v["label"] == "Material Cost Code"));

    let (_, services) = api.call("GET", "Services/entityInformation/fields", None);
    assert_eq!(field(&services, "sku")["dataType"], "string");
    assert_eq!(field(&services, "name")["length"], 150);
    assert!(field(&services, "periodType")["isPickList"].as_bool().unwrap());
    // The numbers live tenants show: Monthly = 2, Yearly = 5 (API-NOTES, Picklists).
    for entity_fields in [&services, &contracts] {
        let name = if entity_fields == &services { "periodType" } else { "contractPeriodType" };
        let periods = field(entity_fields, name)["picklistValues"].as_array().unwrap().clone();
        let value_of =
            |label: &str| periods.iter().find(|v| v["label"] == label).map(|v| v["value"].clone());
        assert_eq!((value_of("Monthly"), value_of("Yearly")), (Some(json!("2")), Some(json!("5"))));
    }

    let (_, charges) = api.call("GET", "ContractCharges/entityInformation/fields", None);
    for read_only in ["isBilled", "billableAmount", "extendedCost", "status"] {
        assert_eq!(field(&charges, read_only)["isReadOnly"], true, "{read_only}");
    }
    assert!(field(&charges, "chargeType")["isPickList"].as_bool().unwrap());
    for entity in
        ["Companies", "ContractServices", "ContractServiceAdjustments", "ContractServiceUnits"]
    {
        let (status, body) = api.call("GET", &format!("{entity}/entityInformation/fields"), None);
        assert_eq!(status, 200);
        assert!(!body["fields"].as_array().unwrap().is_empty());
    }
    let (status, _) = api.call("GET", "Contracts/1/Charges/entityInformation/fields", None);
    assert_eq!(status, 200);
    let (_, udfs) = api.call("GET", "Contracts/entityInformation/userDefinedFields", None);
    assert_eq!(udfs["fields"][0]["name"], "Subscription ID");
}

// ---------------------------------------------------------------------------------------------
// Query

#[test]
fn query_operators_compare_like_autotask() {
    let api = start();
    let eq = |filter: Value| api.ids("Companies", filter);
    assert_eq!(
        eq(json!([{"op": "eq", "field": "companyname", "value": "contoso LTD"}])),
        vec![29683501]
    );
    assert_eq!(
        eq(json!([{"op": "beginsWith", "field": "companyName", "value": "north"}])),
        vec![29683503]
    );
    assert_eq!(
        eq(json!([{"op": "endsWith", "field": "companyName", "value": "TOYS"}])),
        vec![29683504]
    );
    assert_eq!(
        eq(json!([{"op": "contains", "field": "companyName", "value": "abrik"}])),
        vec![29683502]
    );
    assert_eq!(
        eq(
            json!([{"op": "gt", "field": "id", "value": 29683502}, {"op": "lte", "field": "id", "value": "29683504"}])
        ),
        vec![29683503, 29683504]
    );
    assert_eq!(
        eq(json!([{"op": "in", "field": "id", "value": [29683501, 29683504, 5]}])),
        vec![29683501, 29683504]
    );
    let inactive = eq(json!([{"op": "eq", "field": "isActive", "value": false}]));
    assert_eq!(inactive, vec![29683506, 29683507]);
    let not_in = eq(
        json!([{"op": "notIn", "field": "id", "value": [0, 29683501]}, {"op": "eq", "field": "isActive", "value": true}]),
    );
    assert_eq!(not_in, vec![29683502, 29683503, 29683504, 29683505]);
    assert_eq!(eq(json!([{"op": "noteq", "field": "isActive", "value": true}])), inactive);
    let or = eq(json!([{"op": "or", "items": [
        {"op": "eq", "field": "id", "value": 29683501},
        {"op": "and", "items": [{"op": "eq", "field": "companyType", "value": 2}, {"op": "eq", "field": "isActive", "value": false}]}
    ]}]));
    assert_eq!(or, vec![29683501, 29683507]);
    assert_eq!(
        eq(json!([{"op": "notExist", "field": "city"}, {"op": "gt", "field": "id", "value": 0}])),
        vec![29683505, 29683506, 29683507]
    );
    assert_eq!(eq(json!([{"op": "exist", "field": "city"}])).len(), 4);
    // Dates compare as dates.
    let since = api.query("Companies", json!([{"op": "exist", "field": "id"}]))[0]
        ["lastTrackedModifiedDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        eq(json!([{"op": "gt", "field": "lastTrackedModifiedDateTime", "value": since}])),
        Vec::<i64>::new()
    );
    assert_eq!(
        eq(json!([{"op": "gte", "field": "lastTrackedModifiedDateTime", "value": "2020-01-01"}]))
            .len(),
        8
    );
}

#[test]
fn unknown_op_is_dropped_and_unknown_field_fails() {
    let api = start();
    let all = api.ids("Companies", json!([]));
    assert_eq!(all.len(), 8);
    assert_eq!(
        api.ids("Companies", json!([{"op": "equals", "field": "id", "value": 29683501}])),
        all
    );
    let (status, body) = api.call(
        "POST",
        "Companies/query",
        Some(json!({"filter": [{"op": "eq", "field": "nosuch", "value": 1}]})),
    );
    assert_eq!(status, 500, "{body}");
    assert!(error_text(&body).contains("nosuch"));
}

#[test]
fn udf_filters_one_per_query() {
    let api = start();
    let id = api.new_contract(7);
    api.ok(
        "PATCH",
        "Contracts",
        json!({"id": id, "userDefinedFields": [{"name": "Subscription ID", "value": "6F1C-ABC"}]}),
    );
    let hit = api.ids(
        "Contracts",
        json!([{"op": "eq", "field": "subscription id", "value": "6f1c-abc", "udf": true}]),
    );
    assert_eq!(hit, vec![id]);
    let (status, _) = api.call(
        "POST",
        "Contracts/query",
        Some(json!({"filter": [
        {"op": "eq", "field": "Subscription ID", "value": "x", "udf": true},
        {"op": "eq", "field": "Subscription ID", "value": "y", "udf": true}]})),
    );
    assert_eq!(status, 500);
    let (status, _) = api.call(
        "POST",
        "Contracts/query",
        Some(json!({"filter": [{"op": "eq", "field": "No Such UDF", "value": "x", "udf": true}]})),
    );
    assert_eq!(status, 500);
}

#[test]
fn at_most_500_or_conditions() {
    let api = start();
    let items: Vec<Value> =
        (0..501).map(|i| json!({"op": "eq", "field": "id", "value": i})).collect();
    let (status, _) = api.call(
        "POST",
        "Companies/query",
        Some(json!({"filter": [{"op": "or", "items": items}]})),
    );
    assert_eq!(status, 500);
    let items: Vec<Value> =
        (0..500).map(|i| json!({"op": "eq", "field": "id", "value": i})).collect();
    let (status, _) = api.call(
        "POST",
        "Companies/query",
        Some(json!({"filter": [{"op": "or", "items": items}]})),
    );
    assert_eq!(status, 200);
    let (status, _) = api.call(
        "POST",
        "Companies/query",
        Some(
            json!({"filter": [{"op": "in", "field": "id", "value": (0..501).collect::<Vec<_>>()}]}),
        ),
    );
    assert_eq!(status, 500);
}

#[test]
fn paging_follows_next_page_url_with_post_and_the_same_body() {
    let api = start_with(companies_seed(1203), SimOptions::default());
    let body = json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "includeFields": ["id", "companyName"]});
    let mut url = api.url("Companies/query");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = api.send("POST", &url, Some(&body)).json().unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 500);
        assert_eq!(page["pageDetails"]["count"], items.len());
        assert_eq!(items[0].as_object().unwrap().len(), 2, "only includeFields");
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        match page["pageDetails"]["nextPageUrl"].as_str() {
            Some(next) => {
                assert!(next.starts_with("http://"));
                assert_eq!(api.send("GET", next, None).status().as_u16(), 405);
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1000..2203).collect::<Vec<i64>>());
    let count = api.ok(
        "POST",
        "Companies/query/count",
        json!({"filter": [{"op": "eq", "field": "isActive", "value": true}]}),
    );
    assert_eq!(count, json!({"queryCount": 602}));
    // maxRecords sets the page size; out of range fails.
    let small = api.ok("POST", "Companies/query", json!({"filter": [], "maxRecords": 7}));
    assert_eq!(small["items"].as_array().unwrap().len(), 7);
    assert_eq!(small["pageDetails"]["requestCount"], 7);
    assert_eq!(api.call("POST", "Companies/query", Some(json!({"maxRecords": 501}))).0, 500);
    assert_eq!(api.call("POST", "Companies/query", Some(json!({"maxRecords": 0}))).0, 500);
    // Beyond 500 results includeFields must hold id.
    assert_eq!(
        api.call("POST", "Companies/query", Some(json!({"includeFields": ["companyName"]}))).0,
        500
    );
    assert_eq!(api.call("POST", "Companies/query", Some(json!({"includeFields": ["companyName"], "filter": [{"op": "lt", "field": "id", "value": 1100}]}))).0, 200);
}

#[test]
fn get_by_id_and_missing_ids() {
    let api = start();
    let (status, body) = api.call("GET", "Companies/29683501", None);
    assert_eq!(status, 200);
    assert_eq!(body["item"]["companyName"], "Contoso Ltd");
    assert_eq!(api.call("GET", "Companies/1", None).0, 404);
    assert_eq!(api.call("GET", "NoSuchEntities/1", None).0, 404);
}

// ---------------------------------------------------------------------------------------------
// Writes

#[test]
fn contracts_create_validate_and_update() {
    let api = start();
    let (status, body) = api.call("POST", "Contracts", Some(json!({"contractName": "x"})));
    assert_eq!(status, 500);
    let text = error_text(&body);
    for required in [
        "companyID",
        "contractType",
        "startDate",
        "endDate",
        "status",
        "timeReportingRequiresStartAndStopTimes",
    ] {
        assert!(text.contains(required), "{required} in {text}");
    }
    let good = json!({"companyID": 29683501, "contractName": "C", "contractType": 7, "startDate": "2026-11-01T00:00:00",
                      "endDate": "2027-10-31", "status": 1, "timeReportingRequiresStartAndStopTimes": 1});
    let mut long = good.clone();
    long["contractName"] = json!("x".repeat(101));
    let (status, body) = api.call("POST", "Contracts", Some(long));
    assert_eq!(status, 500);
    assert!(error_text(&body).contains("exceeds maximum length"));
    let mut bad_company = good.clone();
    bad_company["companyID"] = json!(12345);
    assert_eq!(api.call("POST", "Contracts", Some(bad_company)).0, 500);
    let mut bad_udf = good.clone();
    bad_udf["userDefinedFields"] = json!([{"name": "Nope", "value": "1"}]);
    assert_eq!(api.call("POST", "Contracts", Some(bad_udf)).0, 500);
    let mut bad_sla = good.clone();
    bad_sla["serviceLevelAgreementID"] = json!(99);
    assert_eq!(api.call("POST", "Contracts", Some(bad_sla)).0, 500);

    let id = api.ok("POST", "Contracts", good)["itemId"].as_i64().unwrap();
    let record = &api.sim.records("Contracts")[0];
    // Date-only fields come back as live tenants send them.
    assert_eq!(record["startDate"], "2026-11-01T00:00:00.000Z");
    assert_eq!(record["endDate"], "2027-10-31T00:00:00.000Z");
    assert!(record.get("userDefinedFields").is_none(), "all UDFs empty: omitted");
    assert!(record["lastModifiedDateTime"].is_string());

    // companyID and contractType are read-only after create (sending them unchanged is fine).
    assert_eq!(
        api.call("PATCH", "Contracts", Some(json!({"id": id, "companyID": 29683502}))).0,
        500
    );
    assert_eq!(api.call("PATCH", "Contracts", Some(json!({"id": id, "contractType": 1}))).0, 500);
    api.ok("PATCH", "Contracts", json!({"id": id, "contractType": 7, "description": "d", "userDefinedFields": [{"name": "Subscription ID", "value": "S-1"}]}));
    api.ok("PATCH", "Contracts", json!({"ID": id, "CONTRACTNAME": "Renamed"}));
    let record = api.sim.records("Contracts")[0].clone();
    assert_eq!(
        (record["contractName"].as_str(), record["description"].as_str()),
        (Some("Renamed"), Some("d"))
    );
    assert_eq!(record["userDefinedFields"], json!([{"name": "Subscription ID", "value": "S-1"}]));
    // PUT nulls the writable fields it omits, and then the required ones fail.
    let (status, _) = api.call("PUT", "Contracts", Some(json!({"id": id, "contractName": "Put"})));
    assert_eq!(status, 500);
    let mut full = record.clone();
    full.as_object_mut().unwrap().remove("description");
    full["contractName"] = json!("Put");
    api.ok("PUT", "Contracts", full);
    let record = api.sim.records("Contracts")[0].clone();
    assert_eq!(
        (record["contractName"].as_str(), record["description"].is_null()),
        (Some("Put"), true)
    );
    // Updates go to the collection URL; contracts have no delete.
    assert_eq!(api.call("PATCH", &format!("Contracts/{id}"), Some(json!({"id": id}))).0, 405);
    assert_eq!(api.call("DELETE", &format!("Contracts/{id}"), None).0, 405);
    assert_eq!(api.call("PATCH", "Contracts", Some(json!({"id": 1, "contractName": "x"}))).0, 500);
    assert_eq!(api.call("PATCH", "Contracts", Some(json!({"contractName": "x"}))).0, 500);
}

#[test]
fn services_need_an_active_recurring_service_billing_code() {
    let api = start();
    let base = json!({"name": "M365 E3", "sku": "E3", "periodType": 2, "unitPrice": 36});
    for (code, ok) in [(29682801, true), (29682802, false), (29682803, false), (424242, false)] {
        let mut body = base.clone();
        body["billingCodeID"] = json!(code);
        assert_eq!(api.call("POST", "Services", Some(body)).0 == 200, ok, "billing code {code}");
    }
    let mut long = base.clone();
    long["billingCodeID"] = json!(29682801);
    long["name"] = json!("n".repeat(151));
    assert_eq!(api.call("POST", "Services", Some(long)).0, 500);
    assert_eq!(api.call("DELETE", "Services/29685001", None).0, 405);
    let services = api.query("Services", json!([{"op": "eq", "field": "sku", "value": "e3"}]));
    assert_eq!(services.len(), 1);
    assert!(services[0]["lastModifiedDate"].is_string());
}

#[test]
fn contract_services_only_on_recurring_contracts() {
    let api = start();
    let service = api.new_service("SKU-1");
    let fixed = api.new_contract(3);
    let (status, _) = api.call(
        "POST",
        &format!("Contracts/{fixed}/Services"),
        Some(json!({"serviceID": service})),
    );
    assert_eq!(status, 500);
    let recurring = api.new_contract(7);
    let cs = api.ok(
        "POST",
        &format!("Contracts/{recurring}/Services"),
        json!({"serviceID": service, "adjustedPrice": 20}),
    )["itemId"]
        .as_i64()
        .unwrap();
    // Two prices: the Service's catalogue price (read-only here) and the contract's adjusted
    // price, written as adjustedPrice and read back only as internalCurrencyAdjustedPrice.
    let record = &api.sim.records("ContractServices")[0];
    let catalogue = record["unitPrice"].clone();
    assert_eq!(record["internalCurrencyAdjustedPrice"].as_i64(), Some(20));
    assert_eq!(record["unitCost"].as_f64(), Some(18.7));
    assert!(record.get("adjustedPrice").is_none(), "never returned");
    assert!(record.get("units").is_none(), "no units field");
    assert_eq!(
        api.call(
            "POST",
            "ContractServices",
            Some(json!({"contractID": recurring, "serviceID": service}))
        )
        .0,
        405
    );
    api.ok(
        "PATCH",
        &format!("Contracts/{recurring}/Services"),
        json!({"id": cs, "adjustedPrice": "21.50", "invoiceDescription": "Licences"}),
    );
    let record = &api.sim.records("ContractServices")[0];
    assert_eq!(record["internalCurrencyAdjustedPrice"], json!(21.5));
    assert_eq!(record["unitPrice"], catalogue);
    // Every other field is read-only on update, even sent with its current value.
    for field in [json!({"unitPrice": catalogue}), json!({"unitCost": "1.00"})] {
        let mut body = json!({"id": cs});
        body.as_object_mut().unwrap().extend(field.as_object().unwrap().clone());
        let (status, answer) =
            api.call("PATCH", &format!("Contracts/{recurring}/Services"), Some(body));
        assert_eq!(status, 500, "{answer}");
        assert!(error_text(&answer).contains("read-only"), "{answer}");
    }
    let other = api.new_service("SKU-2");
    assert_eq!(
        api.call(
            "PATCH",
            &format!("Contracts/{recurring}/Services"),
            Some(json!({"id": cs, "serviceID": other}))
        )
        .0,
        500
    );
    let (status, list) = api.call("GET", &format!("Contracts/{recurring}/Services"), None);
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 1));
}

#[test]
fn adjustments_change_units_and_derive_periods() {
    let api = start();
    let service = api.new_service("SKU-1");
    let contract = api.new_contract(7);
    let adjust = |body: Value| {
        api.call("POST", &format!("Contracts/{contract}/ServiceAdjustments"), Some(body))
    };
    // Outside the contract's dates.
    assert_eq!(
        adjust(json!({"serviceID": service, "effectiveDate": "2026-10-31", "unitChange": 5})).0,
        500
    );
    assert_eq!(
        adjust(json!({"serviceID": service, "effectiveDate": "2027-11-01", "unitChange": 5})).0,
        500
    );
    // Going below zero.
    assert_eq!(
        adjust(json!({"serviceID": service, "effectiveDate": "2026-11-01", "unitChange": -1})).0,
        500
    );
    // First one creates the contract service.
    let (status, body) =
        adjust(json!({"serviceID": service, "effectiveDate": "2026-11-01", "unitChange": 15}));
    assert_eq!(status, 200);
    assert!(body["itemId"].as_i64().is_some(), "an adjustment is answered with its id: {body}");
    let cs = api.sim.records("ContractServices");
    assert_eq!(cs.len(), 1);
    let cs_id = cs[0]["id"].as_i64().unwrap();
    // Same service, same day: duplicate.
    let (status, body) = adjust(
        json!({"serviceID": service, "effectiveDate": "2026-11-01T00:00:00", "unitChange": 1}),
    );
    assert_eq!(status, 500);
    assert!(error_text(&body).contains("contract_service_period"));
    // Through the top-level path, by contract service, with a new price.
    let (status, _) = api.call(
        "POST",
        "ContractServiceAdjustments",
        Some(json!({"contractID": contract, "contractServiceID": cs_id,
        "effectiveDate": "2027-01-15", "unitChange": -3, "adjustedUnitPrice": "23.00"})),
    );
    assert_eq!(status, 200);
    // The adjusted price is the contract's; the catalogue price stays the Service's.
    let record = &api.sim.records("ContractServices")[0];
    assert_eq!(record["internalCurrencyAdjustedPrice"], json!(23));
    assert_ne!(record["unitPrice"], json!(23));
    assert!(record.get("adjustedPrice").is_none(), "written, never returned");
    assert_eq!(
        adjust(json!({"serviceID": service, "effectiveDate": "2027-02-01", "unitChange": -13})).0,
        500,
        "12 - 13 < 0"
    );
    let units = api.query(
        "ContractServiceUnits",
        json!([{"op": "eq", "field": "contractServiceID", "value": cs_id}]),
    );
    assert_eq!(units.len(), 13, "12 months, January split");
    let at = |date: &str| {
        units
            .iter()
            .find(|u| {
                u["startDate"].as_str().unwrap() <= date && u["endDate"].as_str().unwrap() >= date
            })
            .unwrap()
            .clone()
    };
    assert_eq!(at("2026-11-20T00:00:00.000Z")["units"], 15);
    assert_eq!(at("2027-01-14T00:00:00.000Z")["units"], 15);
    assert_eq!(at("2027-01-14T00:00:00.000Z")["endDate"], "2027-01-14T00:00:00.000Z");
    assert_eq!(at("2027-01-15T00:00:00.000Z")["units"], 12);
    assert_eq!(at("2027-10-31T00:00:00.000Z")["units"], 12);
    assert_eq!(at("2027-10-31T00:00:00.000Z")["endDate"], "2027-10-31T00:00:00.000Z");
    // Stable ids across reads.
    let again = api.query(
        "ContractServiceUnits",
        json!([{"op": "eq", "field": "contractServiceID", "value": cs_id}]),
    );
    assert_eq!(units, again);
    // Create only.
    assert_eq!(api.call("POST", "ContractServiceAdjustments/query", Some(json!({}))).0, 405);
    assert_eq!(api.call("PATCH", "ContractServiceAdjustments", Some(json!({"id": 1}))).0, 405);
    // Units are not on a fixed-price contract.
    let fixed = api.new_contract(3);
    let (status, _) = api.call(
        "POST",
        &format!("Contracts/{fixed}/ServiceAdjustments"),
        Some(json!({"serviceID": service, "effectiveDate": "2026-12-01", "unitChange": 1})),
    );
    assert_eq!(status, 500);
}

#[test]
fn charges_compute_amounts_exactly_and_lock_once_billed() {
    let api = start();
    let contract = api.new_contract(7);
    let path = format!("Contracts/{contract}/Charges");
    let charge = json!({"name": "Azure consumption 2026-11", "datePurchased": "2026-11-01", "chargeType": 1,
                        "unitQuantity": 3, "unitPrice": 0.1, "unitCost": "0.07", "billingCodeID": 29682802});
    let id = api.ok("POST", &path, charge.clone())["itemId"].as_i64().unwrap();
    let record = api.ok("GET", &format!("ContractCharges/{id}"), Value::Null)["item"].clone();
    assert_eq!(record["billableAmount"], json!(0.3));
    assert_eq!(record["extendedCost"], json!(0.21));
    assert_eq!(
        (record["isBilled"].as_bool(), record["datePurchased"].as_str()),
        (Some(false), Some("2026-11-01T00:00:00.000Z"))
    );
    // Material cost code only; name length; read-only fields.
    let mut wrong_code = charge.clone();
    wrong_code["billingCodeID"] = json!(29682801);
    assert_eq!(api.call("POST", &path, Some(wrong_code)).0, 500);
    let mut no_code = charge.clone();
    no_code.as_object_mut().unwrap().remove("billingCodeID");
    assert_eq!(api.call("POST", &path, Some(no_code)).0, 500);
    let mut long = charge.clone();
    long["name"] = json!("n".repeat(101));
    assert_eq!(api.call("POST", &path, Some(long)).0, 500);
    let mut billed = charge.clone();
    billed["isBilled"] = json!(true);
    assert_eq!(api.call("POST", &path, Some(billed)).0, 500);
    assert_eq!(api.call("POST", "ContractCharges", Some(charge.clone())).0, 405);
    // Unbilled: update recomputes; billed: no update, no delete.
    api.ok("PATCH", &path, json!({"id": id, "unitPrice": "145.4520", "unitQuantity": 1}));
    let record = api.sim.records("ContractCharges")[0].clone();
    assert_eq!(record["billableAmount"], json!(145.452));
    assert_eq!(api.call("PATCH", &path, Some(json!({"id": id, "billableAmount": 1}))).0, 500);
    assert!(api.sim.set_billed(id));
    assert_eq!(api.call("PATCH", &path, Some(json!({"id": id, "unitPrice": 1}))).0, 500);
    assert_eq!(api.call("DELETE", &format!("{path}/{id}"), None).0, 500);
    let second = api.ok("POST", &path, charge)["itemId"].as_i64().unwrap();
    assert_eq!(api.call("DELETE", &format!("{path}/{second}"), None).0, 200);
    assert_eq!(api.call("GET", &format!("ContractCharges/{second}"), None).0, 404);
    assert_eq!(api.sim.records("ContractCharges").len(), 1);
}

#[test]
fn malformed_input_gets_errors_not_panics() {
    let api = start();
    let bodies = [
        "not json",
        "[1,2]",
        "{\"filter\": 5}",
        "{\"filter\": [5]}",
        "{\"filter\": [{\"op\": \"in\", \"field\": \"id\", \"value\": 3}]}",
        "{\"filter\": [{\"op\": \"eq\", \"field\": \"id\", \"value\": \"abc\"}]}",
        "{\"filter\": [{\"op\": \"eq\"}]}",
        "{\"maxRecords\": \"many\"}",
        "{\"includeFields\": [1]}",
    ];
    for body in bodies {
        let response = api.send("POST", &api.url("Companies/query"), Some(&Value::Null));
        assert_eq!(response.status().as_u16(), 200, "null body is an empty query");
        let creds = api.sim.credentials();
        let response = api
            .client
            .post(api.url("Companies/query"))
            .header("ApiIntegrationCode", creds.integration_code)
            .header("UserName", creds.username)
            .header("Secret", creds.secret)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let json: Value = response.json().unwrap();
        assert!(status == 500 || status == 400, "{body}: {status}");
        assert!(json["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}: {json}");
    }
    for body in [
        json!([1]),
        json!({"companyID": "x"}),
        json!({"startDate": "31/12/2026"}),
        json!({"userDefinedFields": 3}),
        json!({"contractName": {"a": 1}}),
    ] {
        let (status, out) = api.call("POST", "Contracts", Some(body.clone()));
        assert_eq!(status, 500, "{body}: {out}");
    }
    assert_eq!(api.call("POST", "Contracts/abc/Charges", Some(json!({}))).0, 404);
    assert_eq!(api.call("GET", "Companies/query/next?paging=zz", None).0, 405);
    assert_eq!(
        api.call(
            "POST",
            "Companies",
            Some(json!({"companyName": "N", "companyType": 1, "ownerResourceID": 1, "phone": "1"}))
        )
        .0,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Faults and the control surface

#[test]
fn fail_nth_write_with_500_commits_nothing() {
    let api = start();
    api.sim.inject(Fault::FailWrite { nth: 2, mode: WriteFailure::Error500 });
    api.new_contract(7);
    api.query("Contracts", json!([])); // queries are not writes
    let (status, _) = api.call("POST", "Contracts", Some(json!({"companyID": 29683501, "contractName": "B", "contractType": 7,
        "startDate": "2026-11-01", "endDate": "2027-10-31", "status": 1, "timeReportingRequiresStartAndStopTimes": 1})));
    assert_eq!(status, 500);
    assert_eq!(api.sim.records("Contracts").len(), 1);
    api.new_contract(7);
    assert_eq!(api.sim.records("Contracts").len(), 2);
    let counters = api.sim.counters();
    assert_eq!((counters.writes, counters.writes_committed), (3, 2));
}

#[test]
fn commit_then_drop_gives_a_transport_error_quickly_and_the_record_exists() {
    let api = start();
    api.sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::CommitThenDrop });
    let creds = api.sim.credentials();
    let started = Instant::now();
    let result = api
        .client
        .post(api.url("Contracts"))
        .header("ApiIntegrationCode", creds.integration_code)
        .header("UserName", creds.username)
        .header("Secret", creds.secret)
        .json(&json!({"companyID": 29683501, "contractName": "Dropped", "contractType": 7, "startDate": "2026-11-01",
                      "endDate": "2027-10-31", "status": 1, "timeReportingRequiresStartAndStopTimes": 1}))
        .send();
    assert!(result.is_err(), "no HTTP response: {result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "failed fast: {:?}", started.elapsed());
    assert_eq!(api.sim.records("Contracts").len(), 1, "but committed");
    assert_eq!(api.sim.request_log().last().unwrap().status, 0);
    // The server still serves.
    assert_eq!(api.query("Contracts", json!([])).len(), 1);
}

#[test]
fn injected_429s() {
    let api = start();
    api.sim.inject(Fault::Burst429 { count: 2 });
    assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 429);
    assert_eq!(api.call("GET", "Companies/29683501", None).0, 429);
    assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 200);
    api.sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::TooMany429 });
    let contract = json!({"companyID": 29683501, "contractName": "B", "contractType": 7, "startDate": "2026-11-01",
                          "endDate": "2027-10-31", "status": 1, "timeReportingRequiresStartAndStopTimes": 1});
    assert_eq!(api.call("POST", "Contracts", Some(contract.clone())).0, 429);
    assert_eq!(api.sim.records("Contracts").len(), 0);
    assert_eq!(api.call("POST", "Contracts", Some(contract)).0, 200);
}

#[test]
fn control_routes_over_http() {
    let api = start();
    let root = api.sim.root_url();
    let faults = api
        .client
        .post(format!("{root}/_sim/faults"))
        .json(&json!([{"kind": "burst429", "count": 1}, {"kind": "latency", "ms": 1}]))
        .send()
        .unwrap();
    assert_eq!(faults.status().as_u16(), 200);
    assert_eq!(api.call("POST", "Companies/query", Some(json!({}))).0, 429);
    api.new_contract(7);
    let bad = api
        .client
        .post(format!("{root}/_sim/faults"))
        .json(&json!({"kind": "meteor"}))
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let log: Value = api.client.get(format!("{root}/_sim/log")).send().unwrap().json().unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[1]["method"].as_str(), log[1]["status"].as_u64(), log[1]["route"].as_str()),
        (Some("POST"), Some(200), Some("POST Contracts"))
    );
    assert!(log[1]["body_len"].as_u64().unwrap() > 0);
    let counters: Value =
        api.client.get(format!("{root}/_sim/counters")).send().unwrap().json().unwrap();
    assert_eq!(counters["by_route"]["POST Contracts"], 1);
    assert_eq!(counters["writes"], 1);
    let state: Value = api.client.get(format!("{root}/_sim/state")).send().unwrap().json().unwrap();
    assert_eq!(state["Contracts"].as_array().unwrap().len(), 1);
    assert_eq!(state["Companies"].as_array().unwrap().len(), 8);
    let reset = api.client.post(format!("{root}/_sim/reset")).send().unwrap();
    assert_eq!(reset.status().as_u16(), 200);
    assert!(api.sim.records("Contracts").is_empty());
    assert!(api.sim.request_log().is_empty());
}

#[test]
fn stop_closes_the_port() {
    let mut api = start();
    let url = api.url("Companies/query");
    api.sim.stop();
    assert!(api.client.post(url).body("{}").send().is_err());
}

#[test]
fn seeds_parse_and_bad_ones_are_refused() {
    let seed = Seed::bundled();
    assert_eq!(seed.credentials.integration_code, "DEMOCODE");
    assert_eq!(seed.contract_udfs, vec!["Subscription ID".to_string()]);
    assert!(Seed::from_json("[]").is_err());
    assert!(Seed::from_json("{\"Contracts\": 3}").is_err());
    let dangling =
        Seed::from_json(r#"{"Contracts": [{"id": 5, "companyID": 1, "contractName": "x"}]}"#)
            .unwrap();
    assert!(Simulator::start("127.0.0.1:0", dangling, SimOptions::default()).is_err());
}

// ---------------------------------------------------------------------------------------------
// Swagger

#[test]
fn served_paths_and_methods_exist_in_v1_json() {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/autotask/v1.json");
    let extract =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/autotask-v1-paths.json");
    let text = std::fs::read_to_string(&full)
        .or_else(|_| std::fs::read_to_string(&extract))
        .expect("v1.json or its extract");
    let swagger: Value = serde_json::from_str(&text).unwrap();
    let paths = swagger["paths"].as_object().unwrap();
    let routes = cmat_sim::served_routes();
    assert!(routes.len() > 40);
    for (method, path) in routes {
        let found = paths.iter().find(|(p, _)| p.eq_ignore_ascii_case(&path));
        let (_, methods) = found.unwrap_or_else(|| panic!("{path} is not in v1.json"));
        assert!(
            methods.get(method.to_ascii_lowercase()).is_some(),
            "{method} {path} is not in v1.json"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cloudmore

#[test]
fn cloudmore_token_organizations_and_billing_report() {
    let api = start();
    let cm = api.sim.cloudmore_base_url();
    let seed = Seed::bundled().cloudmore.unwrap();
    let basic = |secret: &str| {
        format!("Basic {}", cmat_sim_base64(&format!("ro.customer.client:{secret}")))
    };
    let form = format!(
        "grant_type=password&username={}&password={}&scope=api",
        seed.username.replace('@', "%40"),
        seed.password
    );
    let bad = api
        .client
        .post(format!("{cm}/connect/token"))
        .header("Authorization", basic("wrong"))
        .body(form.clone())
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let token: Value = api
        .client
        .post(format!("{cm}/connect/token"))
        .header("Authorization", basic(&seed.client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (token["expires_in"].as_i64(), token["token_type"].as_str()),
        (Some(86400), Some("Bearer"))
    );
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let r = &seed.reseller_id;
    assert_eq!(
        api.client
            .get(format!("{cm}/api/resellers/{r}/organizations"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let orgs: Value = api
        .client
        .get(format!("{cm}/api/resellers/{r}/organizations"))
        .header("Authorization", &bearer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 4);
    // The list carries no custom properties; the detail does.
    assert!(orgs[0].get("customProperties").is_none(), "{orgs}");
    let org = orgs[0]["id"].as_str().unwrap();
    let detail: Value = api
        .client
        .get(format!("{cm}/api/resellers/{r}/organizations/{org}"))
        .header("Authorization", &bearer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        detail["customProperties"][0],
        json!({"name": "AutotaskCompanyID", "value": "29683501"})
    );
    // The endpoints of earlier cmat versions do not exist.
    let old = api
        .client
        .post(format!("{cm}/api/resellers/{r}/organizations/{org}/billing/reports"))
        .header("Authorization", &bearer)
        .json(&json!({"year": 2026, "month": 11}))
        .send()
        .unwrap();
    assert_eq!(old.status().as_u16(), 404);
    let report =
        format!("{cm}/api/resellers/{r}/billing/reports/MonthlyBillingPerOrganizationAsync");
    let started = api
        .client
        .post(&report)
        .header("Authorization", &bearer)
        .json(&json!({"startDate": "2026-11-01", "endDate": "2026-11-30"}))
        .send()
        .unwrap();
    assert_eq!(started.status().as_u16(), 202);
    let task = started.json::<Value>().unwrap()["taskId"].as_str().unwrap().to_string();
    let old_poll = api
        .client
        .get(format!("{cm}/api/resellers/{r}/tasks/{task}"))
        .header("Authorization", &bearer)
        .send()
        .unwrap();
    assert_eq!(old_poll.status().as_u16(), 404);
    let poll = || {
        api.client.get(format!("{report}/{task}")).header("Authorization", &bearer).send().unwrap()
    };
    let running = poll();
    assert_eq!(running.status().as_u16(), 202, "running at the first poll");
    assert_eq!(running.json::<Value>().unwrap()["status"], "Processing", "Cloudmore's word");
    let done = poll();
    assert_eq!(done.status().as_u16(), 200);
    let text = done.text().unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["status"], "Successful");
    // Nested as the General Billing Report: organizations → services → items → products.
    let organizations = answer["result"]["organizations"].as_array().unwrap();
    let products: Vec<&Value> = organizations
        .iter()
        .flat_map(|o| o["services"].as_array().unwrap())
        .flat_map(|s| s["items"].as_array().unwrap())
        .flat_map(|i| i["products"].as_array().unwrap())
        .collect();
    assert_eq!(products.len(), 5, "every organization's November lines, in one report");
    assert!(organizations.iter().all(|o| o["organizationName"].is_string()));
    // Amounts as a .NET API sends decimals: JSON numbers, with their scale.
    assert!(products.iter().all(|p| p["quantity"].is_number()), "{products:?}");
    assert!(text.contains("\"unitCostPrice\":18.7000"), "{text}");
    assert!(products.iter().all(|p| p["billingDate"] == "2026-11-01"));
}

fn cmat_sim_base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn an_api_user_without_cost_permission_reads_null_costs_and_its_cost_writes_are_ignored() {
    let mut seed = Seed::bundled();
    seed.hide_costs = true;
    let api = start_with(seed, SimOptions::default());
    let service = api.new_service("SKU-1");
    let contract = api.new_contract(7);
    api.ok(
        "POST",
        &format!("Contracts/{contract}/ServiceAdjustments"),
        json!({"serviceID": service, "effectiveDate": "2026-11-01", "unitChange": 3,
               "adjustedUnitPrice": "20.00", "adjustedUnitCost": "15.00"}),
    );
    let services = api.query("ContractServices", json!([{"op": "exist", "field": "id"}]));
    assert_eq!(services[0]["unitCost"], Value::Null);
    assert_eq!(services[0]["internalCurrencyAdjustedPrice"], json!(20));
    let charge = api.ok(
        "POST",
        &format!("Contracts/{contract}/Charges"),
        json!({"name": "Azure", "datePurchased": "2026-11-01", "chargeType": 1,
               "unitQuantity": 1, "unitPrice": "10", "unitCost": "8", "billingCodeID": 29682802}),
    )["itemId"]
        .as_i64()
        .unwrap();
    let charges =
        api.query("ContractCharges", json!([{"op": "eq", "field": "id", "value": charge}]));
    assert_eq!(
        (charges[0]["unitCost"].clone(), charges[0]["extendedCost"].clone()),
        (Value::Null, Value::Null)
    );
}
