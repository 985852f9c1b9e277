//! Snapshot tests of the mapping language's diagnostics and canonical form. Each file (or
//! folder of files) in `tests/mapping_inputs/errors/` is one case; adding a case is adding a file.

use std::path::Path;

use cmat_mapping::{compile_sources, decode_source, format_source, Diagnostics};

fn case_name(path: &Path) -> String {
    path.file_stem().expect("a file name").to_string_lossy().into_owned()
}

/// The mapping files of one case as `cmat` would name them: a single file is
/// `mappings/<case>.cmat`; a folder holds several files of one workspace.
fn case_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    if path.is_dir() {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(path)
            .expect("case folder")
            .map(|entry| {
                let path = entry.expect("folder entry").path();
                let name =
                    format!("mappings/{}", path.file_name().expect("name").to_string_lossy());
                (name, std::fs::read(&path).expect("read input"))
            })
            .collect();
        files.sort();
        files
    } else {
        vec![(
            format!("mappings/{}.cmat", case_name(path)),
            std::fs::read(path).expect("read input"),
        )]
    }
}

fn diagnostics_of(files: Vec<(String, Vec<u8>)>) -> Diagnostics {
    let mut sources = Vec::new();
    for (name, bytes) in files {
        match decode_source(&name, bytes) {
            Ok(text) => sources.push((name, text)),
            Err(diagnostics) => return diagnostics,
        }
    }
    compile_sources(&sources).expect_err("an error case must not compile")
}

#[test]
fn every_error_case_is_reported_with_its_place() {
    insta::glob!("mapping_inputs/errors/*", |path| {
        let diagnostics = diagnostics_of(case_files(path));
        assert!(!diagnostics.is_empty());
        insta::assert_snapshot!("error", diagnostics.to_string());
    });
}

#[test]
fn formatting_is_canonical_and_idempotent() {
    insta::glob!("mapping_inputs/fmt/*", |path| {
        let text = String::from_utf8(std::fs::read(path).expect("read input")).expect("UTF-8");
        let name = format!("mappings/{}.cmat", case_name(path));
        let formatted = format_source(&name, &text).expect("formats");
        assert_eq!(format_source(&name, &formatted).expect("formats again"), formatted);
        insta::assert_snapshot!("fmt", formatted);
    });
}

#[test]
fn format_refuses_syntax_errors_with_a_location() {
    let error = format_source("mappings/x.cmat", "contract {\n  term_months = \n")
        .expect_err("syntax error");
    insta::assert_snapshot!(error.to_string(), @r"
    mappings/x.cmat:2:17: error: expected a string, a number or a name, found the end of the line
      |
    2 |   term_months = 
      |                 ^
    ");
}
