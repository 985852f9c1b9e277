//! The one helper integration tests use: a temporary workspace and the real `cmat` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use cmat_sim::{SimHandle, SimOptions, Simulator};
use serde_json::Value;

pub struct TestWorkspace {
    pub dir: tempfile::TempDir,
}

impl TestWorkspace {
    pub fn new() -> Self {
        TestWorkspace { dir: tempfile::tempdir().expect("temporary directory") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file below the workspace, creating folders.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create folders");
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).expect("read file")
    }

    /// `cmat -w WORKSPACE ARGS…` with a clean environment (no credentials, no colour).
    pub fn cmat(&self, args: &[&str]) -> Run {
        self.cmat_with_env(args, &[])
    }

    pub fn cmat_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args, env);
        Run::from(command.output().expect("run cmat"), self.dir.path())
    }

    /// The command `cmat_with_env` runs, for callers that spawn it themselves.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cmat"));
        command.arg("-w").arg(self.dir.path()).args(args).current_dir(self.dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("CMAT_") {
                command.env_remove(name);
            }
        }
        command.env("NO_COLOR", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }
}

/// What varies from run to run in what a person reads, replaced in one place for every
/// snapshot of this binary: the simulator's address, durations, process ids, digests and the
/// plan's creation time.
const SNAPSHOT_FILTERS: [(&str, &str); 5] = [
    (r"http://127\.0\.0\.1:\d+/(atservicesrest/)?", "[SIM]/"),
    (r"\b\d+ms\b", "[MS]ms"),
    (r"\bpid \d+", "pid [PID]"),
    (r"sha256:[0-9a-f]{64}", "[digest]"),
    (r#""created_at": "[^"]+""#, r#""created_at": "[created_at]""#),
];

/// Applies [`SNAPSHOT_FILTERS`] to the snapshots of the calling test, until the guard drops
/// (`let _stable = harness::stable_snapshots();`); `insta::glob!` cases inherit them.
pub fn stable_snapshots() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in SNAPSHOT_FILTERS {
        settings.add_filter(pattern, replacement);
    }
    settings.bind_to_scope()
}

/// A finished run, with the workspace path replaced by `[WS]` for stable snapshots.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output, workspace: &Path) -> Self {
        let redact = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes).replace(&workspace.display().to_string(), "[WS]")
        };
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: redact(&output.stdout),
            stderr: redact(&output.stderr),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Apply against the in-process simulator: a workspace wired to a fresh `cmat-sim`, and a view of
// the simulator's Autotask state that does not depend on ids.

/// The bundled fixtures folder.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A fresh simulator (bundled seed) and a workspace pointing at it, with the default rules.
pub struct SimWorkspace {
    pub sim: SimHandle,
    pub ws: TestWorkspace,
}

impl SimWorkspace {
    pub fn start() -> Self {
        Self::start_with(SimOptions::default())
    }

    pub fn start_with(options: SimOptions) -> Self {
        Self::start_seeded(cmat_sim::Seed::bundled(), options)
    }

    /// A workspace against a simulator holding `seed`.
    pub fn start_seeded(seed: cmat_sim::Seed, options: SimOptions) -> Self {
        let sim = Simulator::start("127.0.0.1:0", seed, options).expect("start the simulator");
        let ws = TestWorkspace::new();
        ws.write(
            "cmat.toml",
            &format!("[autotask]\nbase_url = \"{}\"\nsettle_seconds = 1\n", sim.base_url()),
        );
        ws.write("mappings/microsoft.cmat", &cmat_mapping::default_rules(29682801, 29682802, 1));
        SimWorkspace { sim, ws }
    }

    /// The simulator's credentials as the `CMAT_AUTOTASK_*` variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let credentials = self.sim.credentials();
        vec![
            ("CMAT_AUTOTASK_USERNAME", credentials.username),
            ("CMAT_AUTOTASK_SECRET", credentials.secret),
            ("CMAT_AUTOTASK_INTEGRATION_CODE", credentials.integration_code),
        ]
    }

    /// `cmat ARGS…` with the simulator's credentials.
    pub fn cmat(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.ws.cmat_with_env(args, &env)
    }

    /// The same, as a command to spawn (for a run that is killed midway).
    pub fn command(&self, args: &[&str]) -> Command {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.ws.command(args, &env)
    }

    /// Copies a bundled bill into the workspace and imports it; panics unless it succeeds.
    pub fn import(&self, bill: &str) -> Run {
        let contents = std::fs::read_to_string(fixture(bill)).expect("read fixture");
        self.ws.write(bill, &contents);
        self.ok(&["import", bill])
    }

    pub fn pull(&self) -> Run {
        self.ok(&["pull", "autotask"])
    }

    pub fn apply(&self) -> Run {
        self.cmat(&["apply", "--auto-approve"])
    }

    pub fn plan_detailed(&self) -> Run {
        self.cmat(&["plan", "--detailed-exitcode"])
    }

    /// Runs and asserts exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.cmat(args);
        assert_eq!(run.status, 0, "cmat {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
        run
    }

    /// Writes received by the simulator so far (failed ones too).
    pub fn writes(&self) -> u64 {
        self.sim.counters().writes
    }

    pub fn state(&self) -> AutotaskState {
        AutotaskState::of(&self.sim)
    }
}

/// The simulator's Autotask state, keyed by natural keys instead of ids. Records that share a
/// natural key are listed in `duplicates` (the first one is kept in the maps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutotaskState {
    /// By the "Subscription ID" UDF.
    pub contracts: BTreeMap<String, ContractView>,
    /// By sku.
    pub services: BTreeMap<String, ServiceView>,
    /// By (subscription, sku).
    pub contract_services: BTreeMap<(String, String), ContractServiceView>,
    /// By (subscription, datePurchased, name).
    pub charges: BTreeMap<(String, String, String), ChargeView>,
    pub duplicates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractView {
    pub name: String,
    pub company_id: i64,
    pub contract_type: i64,
    pub start_date: String,
    pub end_date: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub name: String,
    pub unit_price: String,
    pub unit_cost: String,
    pub period_type: String,
    pub billing_code_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractServiceView {
    pub unit_price: String,
    /// The price the contract bills (after adjustments), as Autotask reads it back.
    pub adjusted_price: String,
    pub unit_cost: String,
    /// Units per billing period, by the period's start date (from ContractServiceUnits).
    pub units: BTreeMap<String, i64>,
    /// Every adjustment sent, as (effectiveDate, unitChange), sorted.
    pub adjustments: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeView {
    pub unit_quantity: String,
    pub unit_price: String,
    pub unit_cost: String,
    pub is_billed: bool,
    pub billing_code_id: String,
}

fn text(record: &Value, field: &str) -> String {
    match record.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn int(record: &Value, field: &str) -> i64 {
    record.get(field).and_then(Value::as_i64).unwrap_or(-1)
}

/// A decimal written the same way however it was sent (`18.5`, `"18.5000"`).
fn decimal(record: &Value, field: &str) -> String {
    let raw = text(record, field);
    match rust_decimal::Decimal::from_str(&raw) {
        Ok(value) => value.normalize().to_string(),
        Err(_) => raw,
    }
}

fn date(record: &Value, field: &str) -> String {
    text(record, field).chars().take(10).collect()
}

/// Inserts, or lists the key as held twice (keeping the first record).
fn insert_unique<K: Ord + std::fmt::Debug, V>(
    map: &mut BTreeMap<K, V>,
    key: K,
    value: V,
    what: &str,
    duplicates: &mut Vec<String>,
) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Occupied(entry) => {
            duplicates.push(format!("two {what} {:?}", entry.key()))
        }
        std::collections::btree_map::Entry::Vacant(entry) => {
            entry.insert(value);
        }
    }
}

impl AutotaskState {
    pub fn of(sim: &SimHandle) -> AutotaskState {
        let mut state = AutotaskState::default();
        let mut subscription_of: BTreeMap<i64, String> = BTreeMap::new();
        for contract in sim.records("Contracts") {
            let subscription = contract
                .get("userDefinedFields")
                .and_then(Value::as_array)
                .and_then(|udfs| {
                    udfs.iter().find(|udf| {
                        udf.get("name").and_then(Value::as_str) == Some("Subscription ID")
                    })
                })
                .and_then(|udf| udf.get("value").and_then(Value::as_str))
                .unwrap_or("")
                .to_string();
            subscription_of.insert(int(&contract, "id"), subscription.clone());
            let view = ContractView {
                name: text(&contract, "contractName"),
                company_id: int(&contract, "companyID"),
                contract_type: int(&contract, "contractType"),
                start_date: date(&contract, "startDate"),
                end_date: date(&contract, "endDate"),
                status: text(&contract, "status"),
            };
            insert_unique(
                &mut state.contracts,
                subscription,
                view,
                "contracts with Subscription ID",
                &mut state.duplicates,
            );
        }
        let mut sku_of: BTreeMap<i64, String> = BTreeMap::new();
        for service in sim.records("Services") {
            let sku = text(&service, "sku");
            sku_of.insert(int(&service, "id"), sku.clone());
            let view = ServiceView {
                name: text(&service, "name"),
                unit_price: decimal(&service, "unitPrice"),
                unit_cost: decimal(&service, "unitCost"),
                period_type: text(&service, "periodType"),
                billing_code_id: text(&service, "billingCodeID"),
            };
            insert_unique(
                &mut state.services,
                sku,
                view,
                "services with sku",
                &mut state.duplicates,
            );
        }
        let natural = |contract_id: i64, service_id: i64| {
            (
                subscription_of
                    .get(&contract_id)
                    .cloned()
                    .unwrap_or_else(|| format!("contract #{contract_id}")),
                sku_of
                    .get(&service_id)
                    .cloned()
                    .unwrap_or_else(|| format!("service #{service_id}")),
            )
        };
        let mut key_of_contract_service: BTreeMap<i64, (String, String)> = BTreeMap::new();
        for cs in sim.records("ContractServices") {
            let key = natural(int(&cs, "contractID"), int(&cs, "serviceID"));
            key_of_contract_service.insert(int(&cs, "id"), key.clone());
            let view = ContractServiceView {
                unit_price: decimal(&cs, "unitPrice"),
                adjusted_price: decimal(&cs, "internalCurrencyAdjustedPrice"),
                unit_cost: decimal(&cs, "unitCost"),
                units: BTreeMap::new(),
                adjustments: Vec::new(),
            };
            insert_unique(
                &mut state.contract_services,
                key,
                view,
                "contract services for",
                &mut state.duplicates,
            );
        }
        for row in sim.records("ContractServiceUnits") {
            let key = natural(int(&row, "contractID"), int(&row, "serviceID"));
            let period = date(&row, "startDate");
            let units = int(&row, "units");
            match state.contract_services.get_mut(&key) {
                Some(view) => {
                    if view.units.insert(period.clone(), units).is_some() {
                        state.duplicates.push(format!("two unit rows for {key:?} from {period}"));
                    }
                }
                None => {
                    state.duplicates.push(format!("units for {key:?} without a contract service"))
                }
            }
        }
        for adjustment in sim.records("ContractServiceAdjustments") {
            let key = match adjustment.get("contractServiceID").and_then(Value::as_i64) {
                Some(id) if key_of_contract_service.contains_key(&id) => {
                    key_of_contract_service[&id].clone()
                }
                _ => natural(int(&adjustment, "contractID"), int(&adjustment, "serviceID")),
            };
            let entry = (date(&adjustment, "effectiveDate"), int(&adjustment, "unitChange"));
            match state.contract_services.get_mut(&key) {
                Some(view) => view.adjustments.push(entry),
                None => state
                    .duplicates
                    .push(format!("an adjustment for {key:?} without a contract service")),
            }
        }
        for view in state.contract_services.values_mut() {
            view.adjustments.sort();
        }
        for charge in sim.records("ContractCharges") {
            let subscription =
                subscription_of.get(&int(&charge, "contractID")).cloned().unwrap_or_default();
            let key = (subscription, date(&charge, "datePurchased"), text(&charge, "name"));
            let view = ChargeView {
                unit_quantity: decimal(&charge, "unitQuantity"),
                unit_price: decimal(&charge, "unitPrice"),
                unit_cost: decimal(&charge, "unitCost"),
                is_billed: charge.get("isBilled").and_then(Value::as_bool).unwrap_or(false),
                billing_code_id: text(&charge, "billingCodeID"),
            };
            insert_unique(&mut state.charges, key, view, "charges for", &mut state.duplicates);
        }
        state
    }

    /// Panics (naming `scenario`) unless no natural key is held twice.
    pub fn assert_no_duplicates(&self, scenario: &str) {
        assert!(
            self.duplicates.is_empty(),
            "{scenario}: duplicates in Autotask: {:#?}",
            self.duplicates
        );
    }
}
