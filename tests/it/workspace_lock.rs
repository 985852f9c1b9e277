//! One writer per workspace, through the binary: a second writer exits 1 naming the holder and
//! writes nothing; readers go on; a lock left by a dead process is taken over.

use crate::harness;

use std::fs::{File, OpenOptions};
use std::io::Write;

use crate::harness::SimWorkspace;
use cmat::store::LockHolder;

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";

/// Holds `.cmat/lock` as a running cmat would: the OS lock taken, the holder written.
fn hold_lock(sw: &SimWorkspace, holder: &LockHolder) -> File {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sw.ws.path().join(".cmat/lock"))
        .expect("open the lock file");
    file.try_lock().expect("the lock is free");
    file.set_len(0).expect("truncate");
    file.write_all(holder.to_text().as_bytes()).expect("write the holder");
    file
}

#[test]
fn a_second_writer_names_the_holder_and_writes_nothing() {
    let _stable = crate::harness::stable_snapshots();
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    let holder = LockHolder {
        pid: std::process::id(),
        command: "cmat apply --auto-approve".into(),
        started_at: "2026-11-29T03:18:35Z".parse().expect("a time"),
    };
    let lock = hold_lock(&sw, &holder);
    let november = std::fs::read_to_string(harness::fixture(NOVEMBER)).expect("fixture");
    sw.ws.write(NOVEMBER, &november);
    let status_before = sw.ok(&["status"]).stdout;
    let requests_before = sw.sim.counters().total;

    let pid = std::process::id().to_string();
    let mut messages = Vec::new();
    for args in [
        &["apply", "--auto-approve"][..],
        &["sync", "--auto-approve", "--import", NOVEMBER][..],
        &["import", NOVEMBER][..],
        &["pull", "autotask"][..],
    ] {
        let run = sw.cmat(args);
        assert_eq!(run.status, 1, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(&format!("pid {pid}")), "{args:?}: {}", run.stderr);
        messages.push(format!("$ cmat {}\n{}", args.join(" "), run.stderr));
    }
    insta::assert_snapshot!("second_writer", messages.join("\n"));
    assert_eq!(sw.sim.counters().total, requests_before, "no request reached Autotask");
    // Readers go on, and see that nothing was written.
    assert_eq!(sw.ok(&["status"]).stdout, status_before);
    let plan = sw.cmat(&["plan"]);
    assert!(plan.status == 0 || plan.status == 2, "{}", plan.stderr);

    drop(lock);
    let run = sw.apply();
    assert_eq!(run.status, 0, "the lock released, apply runs: {}", run.stderr);
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over() {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cmat"))
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");
    let dead = LockHolder {
        pid: dead_pid,
        command: "cmat apply --auto-approve".into(),
        started_at: "2026-11-28T06:00:00Z".parse().expect("a time"),
    };
    // What a killed cmat leaves: the file with its details, the OS lock gone with it.
    std::fs::write(sw.ws.path().join(".cmat/lock"), dead.to_text()).expect("write");

    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(sw.sim.counters().writes_committed > 0, "the apply wrote");
    let now = LockHolder::from_text(&sw.ws.read(".cmat/lock")).expect("the new holder");
    assert_ne!(now.pid, dead_pid);
    assert!(now.command.ends_with("apply --auto-approve"), "{now:?}");
}
