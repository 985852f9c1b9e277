//! Every help text a person reads, snapshotted so that a change to one is reviewed.

use std::process::Command;

fn help(binary: &str, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("run the binary");
    assert!(output.status.success(), "{args:?}");
    assert!(output.stderr.is_empty(), "{args:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

#[test]
fn cmat_help() {
    insta::assert_snapshot!("cmat", help(env!("CARGO_BIN_EXE_cmat"), &["--help"]));
}

#[test]
fn every_subcommand_help() {
    for command in [
        &["init"][..],
        &["check"],
        &["fmt"],
        &["import"],
        &["pull"],
        &["status"],
        &["plan"],
        &["apply"],
        &["sync"],
        &["audit"],
        &["approve"],
        &["completions"],
        &["report"],
        &["demo"],
        &["adopt"],
        &["revert"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        insta::assert_snapshot!(
            format!("cmat_{}", command.join("_")),
            help(env!("CARGO_BIN_EXE_cmat"), &args)
        );
    }
}
