//! The simulator's help text, snapshotted so that a change to it is reviewed.

use std::process::Command;

#[test]
fn cmat_sim_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_cmat-sim"))
        .arg("--help")
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("run cmat-sim");
    assert!(output.status.success());
    assert!(output.stderr.is_empty());
    insta::assert_snapshot!("cmat-sim", String::from_utf8(output.stdout).expect("UTF-8 help"));
}
