//! The mapping language: `mappings/*.cmat` → [`cmat_engine::rules::RuleSet`].
//!
//! One stage per file: [`syntax`] (text → [`ast`], the only user of pest), [`compile`]
//! (checks and compiles the syntax trees of all files), [`format`] (the canonical form), and
//! [`diagnostic`] (errors as data, rendered in one place).

// No shipped function over 50 lines of code (clippy.toml), so each one reads on a screen; test
// code is left out, as fn_lengths.py leaves it out.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]
// A panic in the engine would lose a run's plan: errors are typed, never unwrapped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Every public item says what it is for: the crate is read by the CLI's and the engine's
// authors, who should not have to open the checker to know what a field means.
#![deny(missing_docs)]

pub mod ast;
pub mod compile;
pub mod defaults;
pub mod diagnostic;
pub mod format;
pub mod scoped;
pub mod syntax;

use std::path::Path;

pub use compile::ParsedFile;
pub use defaults::default_rules;
pub use diagnostic::{Diagnostic, Diagnostics, ErrorKind, Location};

use cmat_engine::rules::RuleSet;

/// The workspace folder that holds the rules, one `*.cmat` file or more.
pub const MAPPINGS_DIR: &str = "mappings";

/// What `cmat check` reports on success.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRules {
    /// The rules the engine runs on.
    pub rules: RuleSet,
    /// How many `.cmat` files were read.
    pub files: usize,
    /// Settings, service, company and product rules written in the files.
    pub rule_count: usize,
    /// Every scope term of the `for` rules, and where it was written.
    pub scope_terms: Vec<(cmat_engine::rules::ScopeTerm, Location)>,
    /// Likely mistakes that still check (a rule whose `from` is after its `until`).
    pub warnings: Vec<Diagnostic>,
}

/// Reads, checks and compiles `mappings/*.cmat` of a workspace into one rule set.
pub fn load_rules(workspace_root: &Path) -> Result<RuleSet, Diagnostics> {
    check_workspace(workspace_root).map(|checked| checked.rules)
}

/// [`load_rules`], with the counts `cmat check` prints.
pub fn check_workspace(workspace_root: &Path) -> Result<CheckedRules, Diagnostics> {
    let sources = mapping_sources(workspace_root)?;
    compile_sources(&sources)
}

/// Every `mappings/*.cmat` file as (name relative to the workspace, text), sorted by name.
/// Several files form one rule set; the engine hashes these for the plan's mappings digest.
pub fn mapping_sources(workspace_root: &Path) -> Result<Vec<(String, String)>, Diagnostics> {
    let folder = workspace_root.join(MAPPINGS_DIR);
    let (file_names, mut diagnostics) = mapping_file_names(&folder)?;
    let mut sources = Vec::new();
    for file_name in file_names {
        let name = format!("{MAPPINGS_DIR}/{file_name}");
        match std::fs::read(folder.join(&file_name)) {
            Ok(bytes) => match decode_source(&name, bytes) {
                Ok(text) => sources.push((name, text)),
                Err(errors) => diagnostics.extend(errors),
            },
            Err(error) => diagnostics.push(Diagnostic::in_file(
                ErrorKind::Unreadable { reason: error.to_string() },
                &name,
            )),
        }
    }
    if diagnostics.is_empty() {
        Ok(sources)
    } else {
        Err(Diagnostics::new(diagnostics))
    }
}

/// The names of the `.cmat` files in `mappings/`, sorted, and the entries that could not be
/// read (or "no mapping files" when there is none). A folder that cannot be listed at all is
/// the error.
fn mapping_file_names(folder: &Path) -> Result<(Vec<String>, Vec<Diagnostic>), Diagnostics> {
    let folder_name = format!("{MAPPINGS_DIR}/");
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostics::single(Diagnostic::in_file(
                ErrorKind::NoMappingFiles,
                &folder_name,
            )))
        }
        Err(error) => {
            return Err(Diagnostics::single(Diagnostic::in_file(
                ErrorKind::Unreadable { reason: error.to_string() },
                &folder_name,
            )))
        }
    };
    let mut file_names = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let is_mapping =
                    path.extension().is_some_and(|extension| extension == "cmat") && path.is_file();
                if is_mapping {
                    file_names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            Err(error) => diagnostics.push(Diagnostic::in_file(
                ErrorKind::Unreadable { reason: error.to_string() },
                &folder_name,
            )),
        }
    }
    file_names.sort();
    if file_names.is_empty() && diagnostics.is_empty() {
        diagnostics.push(Diagnostic::in_file(ErrorKind::NoMappingFiles, &folder_name));
    }
    Ok((file_names, diagnostics))
}

/// A mapping file's bytes as text; invalid UTF-8 is an error at the first bad byte.
pub fn decode_source(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostics> {
    String::from_utf8(bytes).map_err(|error| {
        let valid_up_to = error.utf8_error().valid_up_to();
        let bytes = error.into_bytes();
        // Show the line as far as it can be read; the caret lands on the first bad byte.
        let readable = String::from_utf8_lossy(&bytes[..valid_up_to]).into_owned();
        let line_rest: String = String::from_utf8_lossy(&bytes[valid_up_to..])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let text = format!("{readable}{line_rest}");
        let span = ast::Span::new(valid_up_to, valid_up_to + 1);
        Diagnostics::single(Diagnostic::at(
            ErrorKind::InvalidUtf8,
            Location::of_span(name, &text, span),
        ))
    })
}

/// Parses each source, then checks and compiles them all together: every error of every file
/// in one go (pest stops at the first syntax error of a file).
pub fn compile_sources(sources: &[(String, String)]) -> Result<CheckedRules, Diagnostics> {
    let mut diagnostics = Vec::new();
    let mut parsed = Vec::new();
    for (name, text) in sources {
        match parse_source(name, text) {
            Ok(file) => parsed.push(file),
            Err(errors) => diagnostics.extend(errors),
        }
    }
    let partial = !diagnostics.is_empty();
    match compile::compile(&parsed, partial) {
        Ok(compiled) if diagnostics.is_empty() => Ok(CheckedRules {
            rules: compiled.rules,
            files: sources.len(),
            rule_count: compile::count_rules(&parsed),
            scope_terms: compiled.scope_terms,
            warnings: compiled.warnings,
        }),
        Ok(_) => Err(Diagnostics::new(diagnostics)),
        Err(errors) => {
            diagnostics.extend(errors);
            Err(Diagnostics::new(diagnostics))
        }
    }
}

/// Parses one file into its syntax tree, with located errors.
pub fn parse_source(name: &str, text: &str) -> Result<ParsedFile, Vec<Diagnostic>> {
    match syntax::parse(text) {
        Ok(ast) => Ok(ParsedFile { name: name.to_string(), text: text.to_string(), ast }),
        Err(errors) => Err(errors
            .into_iter()
            .map(|error| Diagnostic::at(error.kind, Location::of_span(name, text, error.span)))
            .collect()),
    }
}

/// The canonical form of one mapping file (comments kept); formatting it again changes
/// nothing. Only syntax errors stop it: a file need not be valid rules to be formatted.
pub fn format_source(file_name: &str, text: &str) -> Result<String, Diagnostics> {
    let parsed = parse_source(file_name, text).map_err(Diagnostics::new)?;
    Ok(format::format_file(&parsed.ast, text))
}
