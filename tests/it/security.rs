//! Security properties, through the real binary against the in-process simulator: secrets
//! reach no output, file or database; the state is readable by its owner only; the audit CSV
//! runs no formula; plain http:// to a host that is not loopback is refused before connecting.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{Run, TestWorkspace};
use cmat_sim::{Seed, SimHandle, SimOptions, Simulator};
use serde_json::Value;

/// Distinctive values: any of them found anywhere is a leak.
const AUTOTASK_SECRET: &str = "at-S3CRET-5e1f0c7b9a";
const INTEGRATION_CODE: &str = "INTCODE-77D41A0E";
const CLOUDMORE_PASSWORD: &str = "cm-PASSWORD-c0ffee1234";
const CLOUDMORE_CLIENT_SECRET: &str = "cm-CLIENT-SECRET-9b8a7f";
/// A wrong secret is a secret too (a typo of the real one).
const WRONG_SECRET: &str = "at-S3CRET-WRONG-31337";
const SECRETS: [&str; 5] =
    [AUTOTASK_SECRET, INTEGRATION_CODE, CLOUDMORE_PASSWORD, CLOUDMORE_CLIENT_SECRET, WRONG_SECRET];

const FORMULA: &str = "=cmd|' /C calc'!A0";

/// The bundled tenant, with our own credentials.
fn simulator() -> SimHandle {
    let mut seed: Value =
        serde_json::from_str(include_str!("../../fixtures/autotask-seed.json")).unwrap();
    seed["credentials"]["secret"] = AUTOTASK_SECRET.into();
    seed["credentials"]["integrationCode"] = INTEGRATION_CODE.into();
    seed["cloudmore"]["password"] = CLOUDMORE_PASSWORD.into();
    seed["cloudmore"]["clientSecret"] = CLOUDMORE_CLIENT_SECRET.into();
    let seed = Seed::from_json(&seed.to_string()).unwrap();
    assert_eq!(seed.credentials.secret, AUTOTASK_SECRET);
    Simulator::start("127.0.0.1:0", seed, SimOptions::default()).unwrap()
}

fn environment(sim: &SimHandle, autotask_secret: &'static str) -> Vec<(&'static str, String)> {
    let cloudmore = Seed::bundled().cloudmore.unwrap();
    vec![
        ("CMAT_AUTOTASK_USERNAME", sim.credentials().username),
        ("CMAT_AUTOTASK_SECRET", autotask_secret.to_string()),
        ("CMAT_AUTOTASK_INTEGRATION_CODE", INTEGRATION_CODE.to_string()),
        ("CMAT_CLOUDMORE_USERNAME", cloudmore.username),
        ("CMAT_CLOUDMORE_PASSWORD", CLOUDMORE_PASSWORD.to_string()),
        ("CMAT_CLOUDMORE_CLIENT_SECRET", CLOUDMORE_CLIENT_SECRET.to_string()),
    ]
}

fn run(ws: &TestWorkspace, args: &[&str], env: &[(&'static str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ws.cmat_with_env(args, &env)
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in SECRETS {
        let found = bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
        assert!(!found, "{what} holds the secret {secret:?}");
    }
}

fn every_file(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            every_file(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A workspace on the simulator, whose Contoso organization is named like a formula and
/// whose licence contracts are named after the organization alone (so a cell of the audit
/// trail starts with `=`).
fn workspace(sim: &SimHandle) -> TestWorkspace {
    let ws = TestWorkspace::new();
    let cloudmore = Seed::bundled().cloudmore.unwrap();
    ws.write(
        "cmat.toml",
        &format!(
            "[autotask]\nbase_url = \"{}\"\n[cloudmore]\nbase_url = \"{}\"\nreseller_id = \"{}\"\n",
            sim.base_url(),
            sim.cloudmore_base_url(),
            cloudmore.reseller_id
        ),
    );
    let rules = include_str!("../../mappings/microsoft.cmat").replace(
        "licence_name = \"Microsoft 365 - {organization}\"",
        "licence_name = \"{organization}\"",
    );
    assert!(rules.contains("licence_name = \"{organization}\""));
    ws.write("mappings/microsoft.cmat", &rules);
    ws.write(
        "bill.csv",
        &include_str!("../../fixtures/bill-2026-10-01.csv").replace("Contoso Ltd", FORMULA),
    );
    ws.write(
        "bill-2026-11-01.csv",
        &include_str!("../../fixtures/bill-2026-11-01.csv").replace("Contoso Ltd", FORMULA),
    );
    ws
}

#[test]
fn secrets_reach_no_output_file_or_database() {
    let sim = simulator();
    let ws = workspace(&sim);
    let env = environment(&sim, AUTOTASK_SECRET);
    let mut runs = Vec::new();
    for args in [
        &["check"][..],
        &["import", "bill.csv"],
        &["pull", "autotask"],
        &["pull", "cloudmore"],
        &["plan"],
        &["plan", "--format", "json", "--out", "plan.json"],
        &["plan", "--format", "csv"],
        &["adopt", "--out", "adopt.csv"],
        &["apply", "plan.json", "--auto-approve"],
        &["status"],
        &["audit", "--out", "audit.csv"],
        &["audit"],
        &["sync", "--dry-run", "--import", "bill-2026-11-01.csv"],
    ] {
        let result = run(&ws, args, &env);
        assert!(
            result.status == 0 || (args[0] == "sync" && result.status == 2),
            "{args:?}: {}{}",
            result.stdout,
            result.stderr
        );
        runs.push((args, result));
    }
    // Failures are where secrets slip into messages: a wrong secret, a refused login.
    let wrong = environment(&sim, WRONG_SECRET);
    for args in [&["pull", "autotask"][..], &["apply", "--auto-approve"]] {
        let result = run(&ws, args, &wrong);
        assert_eq!(result.status, 1, "{args:?}: {}", result.stdout);
        runs.push((args, result));
    }

    // The request log at its most detailed (`-v`, and every tracing event there is).
    let mut traced = environment(&sim, AUTOTASK_SECRET);
    traced.push(("CMAT_LOG", "trace".to_string()));
    let mut traced_wrong = environment(&sim, WRONG_SECRET);
    traced_wrong.push(("CMAT_LOG", "trace".to_string()));
    for (args, env) in [
        (&["-v", "pull", "autotask"][..], &traced),
        (&["-v", "pull", "cloudmore"], &traced),
        (&["-v", "apply", "--auto-approve"], &traced),
        (&["-v", "pull", "autotask"], &traced_wrong),
    ] {
        let result = run(&ws, args, env);
        assert!(result.stderr.contains(" 200 ") || result.status == 1, "{}", result.stderr);
        runs.push((args, result));
    }

    for (args, result) in &runs {
        assert_no_secret(&format!("stdout of {args:?}"), result.stdout.as_bytes());
        assert_no_secret(&format!("stderr of {args:?}"), result.stderr.as_bytes());
    }
    let mut files = Vec::new();
    every_file(ws.path(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|path| path.strip_prefix(ws.path()).unwrap().display().to_string())
        .collect();
    for expected in [".cmat/state.db", "audit.csv", "plan.json"] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    for path in &files {
        assert_no_secret(&path.display().to_string(), &std::fs::read(path).unwrap());
    }
    // The database, once more through SQLite: every text and blob of every table.
    let connection = rusqlite::Connection::open(ws.path().join(".cmat/state.db")).unwrap();
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let mut statement = connection.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let width = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for index in 0..width {
                if let Ok(bytes) = row.get_ref(index).unwrap().as_bytes() {
                    assert_no_secret(&format!("table {table}"), bytes);
                }
            }
        }
    }
    // The apply wrote: the trail is not empty, and the simulator saw the real credentials.
    assert!(sim.counters().writes_committed > 0);
}

#[test]
fn the_audit_csv_runs_no_formula() {
    let sim = simulator();
    let ws = workspace(&sim);
    let env = environment(&sim, AUTOTASK_SECRET);
    for args in [
        &["import", "bill.csv"][..],
        &["pull", "autotask"],
        &["apply", "--auto-approve"],
        // November lowers some licence counts: negative unit changes in the trail.
        &["import", "bill-2026-11-01.csv"],
        &["apply", "--auto-approve"],
        &["audit", "--out", "audit.csv"],
    ] {
        let result = run(&ws, args, &env);
        assert_eq!(result.status, 0, "{args:?}: {}", result.stderr);
    }
    let mut reader = csv::Reader::from_path(ws.path().join("audit.csv")).unwrap();
    let mut cells = Vec::new();
    for record in reader.records() {
        cells.extend(record.unwrap().iter().map(str::to_string));
    }
    assert!(
        cells.iter().any(|cell| cell == &format!("'{FORMULA}")),
        "the formula-named contract is in the trail, escaped"
    );
    assert!(cells.iter().any(|cell| cell.starts_with("'-")), "negative numbers are escaped too");
    for cell in &cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a cell a spreadsheet would run: {cell:?}"
        );
    }
    // `cmat audit` on standard output is the same CSV.
    let stdout = run(&ws, &["audit"], &env);
    assert_eq!(stdout.stdout, std::fs::read_to_string(ws.path().join("audit.csv")).unwrap());
}

#[cfg(unix)]
#[test]
fn the_state_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sim = simulator();
    let ws = workspace(&sim);
    let env = environment(&sim, AUTOTASK_SECRET);
    for args in [&["import", "bill.csv"][..], &["pull", "autotask"], &["apply", "--auto-approve"]] {
        assert_eq!(run(&ws, args, &env).status, 0, "{args:?}");
    }
    let mode = |relative: &str| {
        std::fs::metadata(ws.path().join(relative)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(".cmat"), 0o700);
    assert_eq!(mode(".cmat/state.db"), 0o600);
    let mut files = Vec::new();
    every_file(&ws.path().join(".cmat"), &mut files);
    for path in files {
        let bits = std::fs::metadata(&path).unwrap().permissions().mode() & 0o077;
        assert_eq!(bits, 0, "{} is readable by others", path.display());
    }
}

/// A listener on every interface: `http://0.0.0.0:PORT/` reaches it, yet 0.0.0.0 is not a
/// loopback address, so cmat must refuse it without connecting. Connections are counted and
/// dropped at once (so that a regression fails fast instead of waiting for a timeout).
struct Trap {
    port: u16,
    connections: Arc<AtomicUsize>,
}

fn trap() -> Trap {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Trap { port, connections }
}

impl Trap {
    fn assert_untouched(&self, url: &str) {
        assert_eq!(self.connections.load(Ordering::SeqCst), 0, "{url}: cmat connected");
    }
}

#[test]
fn plain_http_to_a_host_not_loopback_is_refused_before_any_request() {
    let trap = trap();
    let port = trap.port;
    let sim = simulator();
    let env = environment(&sim, AUTOTASK_SECRET);
    for url in [
        format!("http://0.0.0.0:{port}/atservicesrest/"),
        // The text before the first ':' says loopback; the host is 0.0.0.0 (user info
        // "127.0.0.1:PORT"). This one used to be let through.
        format!("http://127.0.0.1:{port}@0.0.0.0:{port}/atservicesrest/"),
        format!("http://localhost:{port}@0.0.0.0:{port}/atservicesrest/"),
    ] {
        for (section, command) in [("autotask", "autotask"), ("cloudmore", "cloudmore")] {
            let ws = TestWorkspace::new();
            let reseller = if section == "cloudmore" { "reseller_id = \"r-1\"\n" } else { "" };
            ws.write("cmat.toml", &format!("[{section}]\nbase_url = \"{url}\"\n{reseller}"));
            let result = run(&ws, &["pull", command], &env);
            assert_eq!(result.status, 1, "{url}: {}", result.stdout);
            assert!(
                result.stderr.contains("plain http:// is refused except to loopback"),
                "{url}: {}",
                result.stderr
            );
            assert_no_secret("stderr", result.stderr.as_bytes());
            trap.assert_untouched(&url);
        }
    }
    // The zone lookup is held to the same rule.
    let ws = TestWorkspace::new();
    ws.write(
        "cmat.toml",
        &format!("[autotask]\nzone_lookup_url = \"http://0.0.0.0:{port}/zoneInformation\"\n"),
    );
    let result = run(&ws, &["pull", "autotask"], &env);
    assert_eq!(result.status, 1);
    assert!(result.stderr.contains("plain http:// is refused"), "{}", result.stderr);
    trap.assert_untouched("zone lookup");
}
