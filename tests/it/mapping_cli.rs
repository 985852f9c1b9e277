//! `cmat check` and `cmat fmt` run as a user runs them: exit codes, stdout and stderr.

use crate::harness::TestWorkspace;

fn workspace_with_default_rules() -> TestWorkspace {
    let workspace = TestWorkspace::new();
    workspace.write("mappings/microsoft.cmat", &cmat_mapping::default_rules(29682801, 29682802, 1));
    workspace
}

#[test]
fn the_repository_rules_are_the_default_rules() {
    let repository_file = include_str!("../../mappings/microsoft.cmat");
    assert_eq!(repository_file, cmat_mapping::default_rules(29682801, 29682802, 1));
}

#[test]
fn check_accepts_the_default_rules() {
    let run = workspace_with_default_rules().cmat(&["check"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "checked 1 file, 33 rules: ok\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn check_reports_every_error_of_every_file_and_exits_1() {
    let workspace = workspace_with_default_rules();
    let rules = workspace.read("mappings/microsoft.cmat");
    workspace.write(
        "mappings/microsoft.cmat",
        &rules.replace("renewal = extend", "renewal = sometimes"),
    );
    workspace.write(
        "mappings/more.cmat",
        "service \"Microsoft CSP\" = licence\nservice \"Other\" = monthly\n",
    );
    let run = workspace.cmat(&["check"]);
    assert_eq!(run.status, 1);
    assert_eq!(run.stdout, "");
    insta::assert_snapshot!(run.stderr, @r#"
    mappings/microsoft.cmat:29:15: error: `sometimes` is not a valid value for `renewal`
       |
    29 |     renewal = sometimes                      # or keep
       |               ^^^^^^^^^
       = hint: valid values: extend, keep

    mappings/more.cmat:1:1: error: duplicate rule for service "Microsoft CSP"
      |
    1 | service "Microsoft CSP" = licence
      | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      = note: first defined at mappings/microsoft.cmat:15:1

    mappings/more.cmat:2:19: error: `monthly` is not a valid value for `service kind`
      |
    2 | service "Other" = monthly
      |                   ^^^^^^^
      = hint: valid values: licence, consumption

    3 errors in the mapping files
    "#);
}

#[test]
fn check_without_mapping_files_points_to_init() {
    let run = TestWorkspace::new().cmat(&["check"]);
    assert_eq!(run.status, 1);
    insta::assert_snapshot!(run.stderr, @r"
    mappings/: error: no mapping files (*.cmat) found
     = hint: run `cmat init DIR` to create a workspace with the default rules

    1 error in the mapping files
    ");
}

#[test]
fn check_locates_invalid_utf8() {
    let workspace = TestWorkspace::new();
    let path = workspace.path().join("mappings/bad.cmat");
    std::fs::create_dir_all(workspace.path().join("mappings")).expect("folder");
    std::fs::write(path, b"settings {\n  timezone = \"\xff\"\n}\n").expect("write");
    let run = workspace.cmat(&["check"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.starts_with("mappings/bad.cmat:2:15: error: the file is not valid UTF-8\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn fmt_check_lists_unformatted_files_writes_nothing_and_exits_1() {
    let workspace = workspace_with_default_rules();
    let messy = "policy{removed_product=report}\n";
    workspace.write("mappings/zz.cmat", messy);
    let run = workspace.cmat(&["fmt", "--check"]);
    assert_eq!(run.status, 1);
    assert_eq!(run.stdout, "mappings/zz.cmat\n");
    assert_eq!(run.stderr, "error: 1 of 2 mapping files are not formatted; run `cmat fmt`\n");
    assert_eq!(workspace.read("mappings/zz.cmat"), messy);
}

#[test]
fn fmt_rewrites_then_check_passes() {
    let workspace = workspace_with_default_rules();
    workspace.write("mappings/zz.cmat", "policy{removed_product=report}\n");
    let run = workspace.cmat(&["fmt"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "formatted mappings/zz.cmat\n");
    assert_eq!(workspace.read("mappings/zz.cmat"), "policy {\n    removed_product = report\n}\n");
    let run = workspace.cmat(&["fmt", "--check"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn fmt_refuses_files_with_syntax_errors_and_writes_nothing() {
    let workspace = workspace_with_default_rules();
    workspace.write("mappings/a.cmat", "policy{removed_product=report}\n");
    workspace.write("mappings/b.cmat", "policy {\n");
    let run = workspace.cmat(&["fmt"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .starts_with("mappings/b.cmat:2:1: error: expected a name or `}`, found end of file\n"),
        "{}",
        run.stderr
    );
    assert_eq!(workspace.read("mappings/a.cmat"), "policy{removed_product=report}\n");
}
