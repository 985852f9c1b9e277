//! `cmat init DIR`: the files it writes, and what it refuses.

use crate::harness;

use crate::harness::TestWorkspace;

const IDS: &[&str] =
    &["--service-billing-code", "29682801", "--product-billing-code", "29682802", "--sla", "1"];

fn init(workspace: &TestWorkspace, extra: &[&str]) -> harness::Run {
    let mut args = vec!["init", "new"];
    args.extend_from_slice(extra);
    workspace.cmat(&args)
}

#[test]
fn init_writes_config_rules_and_gitignore() {
    let workspace = TestWorkspace::new();
    let run = init(&workspace, IDS);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(
        workspace.read("new/mappings/microsoft.cmat"),
        include_str!("../../mappings/microsoft.cmat")
    );
    assert_eq!(workspace.read("new/.gitignore"), ".cmat/\n");
    let config = workspace.read("new/cmat.toml");
    insta::assert_snapshot!(config);
    cmat::workspace::Config::parse(std::path::Path::new("cmat.toml"), &config)
        .expect("the template is a valid configuration");
    for secret_variable in ["CMAT_AUTOTASK_SECRET", "CMAT_CLOUDMORE_PASSWORD"] {
        assert!(config.contains(secret_variable), "names {secret_variable}");
    }
    insta::assert_snapshot!(run.stdout, @r"
    created a cmat workspace in new
      cmat.toml, mappings/microsoft.cmat, .gitignore
    next: export the CMAT_AUTOTASK_* and CMAT_CLOUDMORE_* credentials, then run `cmat check`
    ");
}

#[test]
fn the_new_workspace_checks_clean() {
    let workspace = TestWorkspace::new();
    // An existing, empty folder is fine: only existing files are refused.
    let target = TestWorkspace::new();
    let target_dir = target.path().display().to_string();
    let args = [
        "init",
        target_dir.as_str(),
        "--service-billing-code",
        "7",
        "--product-billing-code",
        "123456789",
        "--sla",
        "3",
    ];
    assert_eq!(workspace.cmat(&args).status, 0);
    let rules = target.read("mappings/microsoft.cmat");
    assert!(rules.contains("service_billing_code = 7              "), "{rules}");
    let run = target.cmat(&["check"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let run = target.cmat(&["fmt", "--check"]);
    assert_eq!(run.status, 0, "{}", run.stdout);
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let workspace = TestWorkspace::new();
    workspace.write("new/mappings/microsoft.cmat", "# mine\n");
    let run = init(&workspace, IDS);
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "error: new/mappings/microsoft.cmat already exists; cmat init never overwrites a file\n"
    );
    assert!(!workspace.path().join("new/cmat.toml").exists());
    assert_eq!(workspace.read("new/mappings/microsoft.cmat"), "# mine\n");
}

#[test]
fn init_without_ids_or_credentials_names_the_missing_flags() {
    let workspace = TestWorkspace::new();
    let run = init(&workspace, &["--sla", "1"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.starts_with("error: missing --service-billing-code, --product-billing-code: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Billing Codes"), "{}", run.stderr);
    assert!(!workspace.path().join("new").exists());
}

#[test]
fn init_with_partial_credentials_names_the_missing_variable() {
    // With credentials cmat looks the ids up in Autotask (tests/sync_cli.rs runs that
    // against cmat-sim); an incomplete set is refused before any request.
    let workspace = TestWorkspace::new();
    let run =
        workspace.cmat_with_env(&["init", "new"], &[("CMAT_AUTOTASK_USERNAME", "api@example.com")]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.starts_with("error: environment variable CMAT_AUTOTASK_SECRET is not set"),
        "{}",
        run.stderr
    );
    assert!(!workspace.path().join("new").exists());
}

#[test]
fn init_refuses_ids_that_are_not_positive() {
    let workspace = TestWorkspace::new();
    let run = init(
        &workspace,
        &["--service-billing-code", "0", "--product-billing-code", "2", "--sla", "1"],
    );
    assert_eq!(run.status, 2, "clap's usage error");
    assert!(run.stderr.contains("--service-billing-code"), "{}", run.stderr);
}
