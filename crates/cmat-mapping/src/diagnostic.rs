//! Mapping errors as data: what went wrong ([`ErrorKind`]) and where ([`Location`]). They are
//! rendered in exactly one place, [`Diagnostic`]'s `Display`:
//!
//! ```text
//! mappings/microsoft.cmat:30:15: error: `sometimes` is not a valid value for `renewal`
//!    |
//! 30 |     renewal = sometimes
//!    |               ^^^^^^^^^
//!    = hint: valid values: extend, keep
//! ```

use std::fmt;

use super::ast::Span;

/// A place in a mapping file, resolved to what a person reads: 1-based line and column
/// (in characters), the length to underline, and the text of that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub length: u32,
    pub line_text: String,
}

impl Location {
    /// Resolves a byte span of `text`; spans running past their first line are underlined to
    /// the end of that line. Never panics, whatever the span.
    pub fn of_span(file: &str, text: &str, span: Span) -> Location {
        let start = floor_char_boundary(text, span.start);
        let end = floor_char_boundary(text, span.end.max(start));
        let line_start = text[..start].rfind('\n').map(|at| at + 1).unwrap_or(0);
        let line_end = text[start..].find('\n').map(|at| start + at).unwrap_or(text.len());
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let underlined = text[start..end.min(line_end)].chars().count();
        Location {
            file: file.to_string(),
            line: saturating_u32(line),
            column: saturating_u32(column),
            length: saturating_u32(underlined.max(1)),
            line_text: text[line_start..line_end].trim_end_matches('\r').to_string(),
        }
    }

    /// `FILE:LINE:COL`
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Every mistake the mapping language can report, with what the message needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read the file: {reason}")]
    Unreadable { reason: String },
    #[error("no mapping files (*.cmat) found")]
    NoMappingFiles,
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
    #[error("expected {expected}, found {found}")]
    Syntax { expected: String, found: String },
    #[error("this string is not closed")]
    UnterminatedString,
    #[error("unknown escape `\\{0}` in a string")]
    UnknownEscape(char),
    #[error("the number `{0}` is too large")]
    NumberTooLarge(String),
    #[error("unknown block `{name}`")]
    UnknownBlock { name: String, valid: &'static [&'static str] },
    #[error("`{name}` blocks belong at the top level of a file, not inside `{parent}`")]
    NestedBlock { name: String, parent: String },
    #[error("unknown setting `{key}` in `{block}`")]
    UnknownSetting { block: String, key: String, valid: &'static [&'static str] },
    #[error("a setting must be inside a block, such as `settings {{ … }}`")]
    SettingOutsideBlock { key: String },
    #[error("`{keyword} \"…\" = …` is not a rule {place}")]
    UnknownRule { keyword: String, place: String, valid: &'static str },
    #[error("`company column` belongs at the top level of a file")]
    MisplacedCompanyColumn,
    #[error("unknown template field `{{{field}}}`")]
    UnknownTemplateField { field: String },
    #[error("`{{{field}}}` can only be used in `correction_name`")]
    TemplateFieldNotHere { field: String },
    #[error("this `{{` is not closed in the template")]
    UnclosedTemplateField,
    #[error("a lone `}}` in the template")]
    LoneClosingBrace,
    #[error("`{found}` is not a valid value for `{setting}`")]
    UnknownValue { setting: String, found: String, valid: Vec<&'static str> },
    #[error("`{setting}` expects {expected}, found {found}")]
    TypeMismatch { setting: String, expected: &'static str, found: &'static str },
    #[error("`{setting}` must be a positive whole number (an Autotask id), found `{found}`")]
    NotPositiveId { setting: String, found: String },
    #[error("`{setting}` must be a whole number from {min} to {max}, found `{found}`")]
    OutOfRange { setting: String, min: u32, max: u32, found: String },
    #[error("a price point is the cents a price ends in, under 1 (`.99`), found `{found}`")]
    PricePointOutOfRange { found: String },
    #[error("the markup `{found}%` is negative")]
    NegativeMarkup { found: String },
    #[error("the discount or uplift `{found}` is not a percent")]
    DiscountNotPercent { found: String },
    #[error("`{setting}` must be a percentage from 0% to 100%, found `{found}`")]
    PercentOutOfRange { setting: String, found: String },
    #[error("a fixed price must not be negative, found `{found}`")]
    NegativePrice { found: String },
    #[error("`{setting}` must not be negative, found `{found}`")]
    NegativeAmount { setting: String, found: String },
    #[error("`{keyword}` expects a date written `YYYY-MM-DD`, found \"{found}\"")]
    InvalidDate { keyword: String, found: String },
    #[error("this rule is in force from {from} until {until}: no Billing Date is both, so it never applies")]
    DatesNeverApply { from: String, until: String },
    #[error("a per-seat add-on needs `{missing}` as well")]
    AddOnIncomplete { missing: &'static str },
    #[error("seat-count tiers: {detail}")]
    TierBands { detail: String },
    #[error("a rule states `unit_price` and tiers: keep one (the tiers are its price)")]
    TiersAndPrice,
    #[error("unknown scope `{found}`")]
    UnknownScope { found: String },
    #[error(
        "this scope names {dimension} twice: a line has only one, so the rule could never match"
    )]
    RepeatedDimension { dimension: &'static str, first: Location },
    #[error("service \"{name}\" is not billed by any `service` rule")]
    UnknownService { name: String, valid: Vec<String> },
    #[error("this rule sets nothing")]
    EmptyScopedRule,
    #[error("no imported bill has {term}: the rule matches nothing (a typo?)")]
    UnseenScope { term: String },
    #[error("`{setting}` is set twice for the same scope: {detail}")]
    AmbiguousRules { setting: String, detail: &'static str, first: Location },
    #[error("products these rules put on Service {service} can share a subscription, but the rules set their {setting} differently: one contract service cannot hold both")]
    SharedServiceConflict { service: i64, setting: &'static str, first: Location },
    #[error("`{setting}` is the contract's (one per subscription): a scope naming {dimension} cannot set it")]
    ContractWideSetting { setting: &'static str, dimension: &'static str },
    #[error("timezone `{found}` is not supported: only \"UTC\" is")]
    UnsupportedTimezone { found: String },
    #[error("{what} must not be empty")]
    EmptyText { what: String },
    #[error("duplicate {what}")]
    Duplicate { what: String, first: Location },
    #[error("missing setting `{key}` in `{block}`")]
    MissingSetting { block: String, key: String },
    #[error("missing `{block}` block")]
    MissingBlock { block: String },
}

impl ErrorKind {
    /// The `= hint:` line, when a fix can be suggested.
    pub fn hint(&self) -> Option<String> {
        self.syntax_hint()
            .or_else(|| self.placement_hint())
            .or_else(|| self.value_hint())
            .or_else(|| self.scope_hint())
    }

    /// Hints for a file that cannot be read or a token written wrong.
    fn syntax_hint(&self) -> Option<String> {
        match self {
            ErrorKind::NoMappingFiles => {
                Some("run `cmat init DIR` to create a workspace with the default rules".to_string())
            }
            ErrorKind::InvalidUtf8 => Some("save the file as UTF-8".to_string()),
            ErrorKind::UnterminatedString => {
                Some("add a `\"` before the end of the line".to_string())
            }
            ErrorKind::UnknownEscape(_) => {
                Some("a string may only contain the escapes `\\\"` and `\\\\`".to_string())
            }
            ErrorKind::UnknownTemplateField { .. } => Some(format!(
                "valid fields: {}",
                cmat_engine::rules::TemplateField::ALL
                    .iter()
                    .map(|(_, name)| format!("{{{name}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ErrorKind::UnclosedTemplateField | ErrorKind::LoneClosingBrace => {
                Some("write `{{` or `}}` for a literal brace".to_string())
            }
            _ => None,
        }
    }

    /// Hints for a statement in the wrong place or missing: what belongs there.
    fn placement_hint(&self) -> Option<String> {
        match self {
            ErrorKind::UnknownBlock { valid: [], .. } => None,
            ErrorKind::UnknownBlock { valid, .. } => {
                Some(format!("valid blocks here: {}", valid.join(", ")))
            }
            ErrorKind::UnknownSetting { valid: [], .. } => None,
            ErrorKind::UnknownSetting { valid, .. } => {
                Some(format!("valid settings here: {}", valid.join(", ")))
            }
            ErrorKind::SettingOutsideBlock { key } => Some(format!(
                "`{key}` goes in one of the blocks: settings, contract, product, prices, consumption, policy"
            )),
            ErrorKind::UnknownRule { valid, .. } => Some(valid.to_string()),
            ErrorKind::MissingSetting { key, .. } => Some(format!("add `{key} = …` to this block")),
            ErrorKind::MissingBlock { block } => Some(format!(
                "add a `{block} {{ … }}` block; `cmat init` writes the default rules"
            )),
            _ => None,
        }
    }

    /// Hints for a setting's value: how it is written.
    fn value_hint(&self) -> Option<String> {
        match self {
            ErrorKind::TypeMismatch { expected: "a name", found: "a string", .. } => {
                Some("names such as `half_up` are written without quotes".to_string())
            }
            ErrorKind::UnknownValue { valid, .. } => {
                Some(format!("valid values: {}", valid.join(", ")))
            }
            ErrorKind::PricePointOutOfRange { .. } => {
                Some("write `.99`, `.95`, or `whole` for whole units".to_string())
            }
            ErrorKind::DiscountNotPercent { found } => Some(format!(
                "write it as a percent: `sales_price - {found}%` or `sales_price + {found}%`"
            )),
            ErrorKind::UnsupportedTimezone { .. } => Some(
                "bill dates are calendar dates and are never shifted; write `timezone = \"UTC\"`"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// Hints for `for` rules: their scopes, and rules that collide.
    fn scope_hint(&self) -> Option<String> {
        match self {
            ErrorKind::UnknownScope { .. } => Some(format!(
                "a scope is one or more of: {}, each followed by a quoted value",
                cmat_engine::rules::ScopeTerm::KEYWORDS.join(", ")
            )),
            ErrorKind::UnknownService { valid, .. } if !valid.is_empty() => {
                Some(format!("services with a rule: {}", valid.join(", ")))
            }
            ErrorKind::EmptyScopedRule => Some(format!(
                "add one of: {}",
                crate::scoped::SCOPED_KEYS.join(", ")
            )),
            ErrorKind::UnseenScope { .. } => Some(
                "names are compared exactly (a product pattern ignores case); check the spelling against the bill, or ignore this until the first bill with it is imported".to_string(),
            ),
            ErrorKind::AmbiguousRules { .. } => Some(
                "keep one of the two, or make one scope more specific".to_string(),
            ),
            ErrorKind::ContractWideSetting { .. } => Some(
                "scope it by subscription, organization, organization group, term, service or currency"
                    .to_string(),
            ),
            ErrorKind::SharedServiceConflict { .. } => Some(
                "give each its own Service, or the same price and decrease timing".to_string(),
            ),
            _ => None,
        }
    }

    /// The `= note:` line: the other place a duplicate was written.
    pub fn note(&self) -> Option<String> {
        match self {
            ErrorKind::Duplicate { first, .. } => {
                Some(format!("first defined at {}", first.position()))
            }
            ErrorKind::RepeatedDimension { first, .. } => {
                Some(format!("first named at {}", first.position()))
            }
            ErrorKind::AmbiguousRules { first, .. } => {
                Some(format!("also set at {}", first.position()))
            }
            ErrorKind::SharedServiceConflict { first, .. } => {
                Some(format!("the other rule's service is at {}", first.position()))
            }
            _ => None,
        }
    }
}

/// One error: a kind, and the file (and place in it, when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub file: String,
    pub location: Option<Location>,
    /// A warning does not fail `cmat check`.
    pub warning: bool,
}

impl Diagnostic {
    pub fn at(kind: ErrorKind, location: Location) -> Self {
        Diagnostic { kind, file: location.file.clone(), location: Some(location), warning: false }
    }

    /// An error about a whole file (or folder), with no line to show.
    pub fn in_file(kind: ErrorKind, file: &str) -> Self {
        Diagnostic { kind, file: file.to_string(), location: None, warning: false }
    }

    pub fn warning_at(kind: ErrorKind, location: Location) -> Self {
        Diagnostic { warning: true, ..Diagnostic::at(kind, location) }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.warning { "warning" } else { "error" };
        match &self.location {
            None => writeln!(f, "{}: {severity}: {}", self.file, self.kind)?,
            Some(location) => {
                writeln!(f, "{}: {severity}: {}", location.position(), self.kind)?;
                let number = location.line.to_string();
                let gutter = " ".repeat(number.len());
                let (shown_line, caret_offset) = expand_tabs(&location.line_text, location.column);
                writeln!(f, "{gutter} |")?;
                writeln!(f, "{number} | {shown_line}")?;
                writeln!(
                    f,
                    "{gutter} | {}{}",
                    " ".repeat(caret_offset),
                    "^".repeat(location.length.max(1) as usize)
                )?;
            }
        }
        let gutter = match &self.location {
            Some(location) => " ".repeat(location.line.to_string().len()),
            None => String::new(),
        };
        if let Some(note) = self.kind.note() {
            writeln!(f, "{gutter} = note: {note}")?;
        }
        if let Some(hint) = self.kind.hint() {
            writeln!(f, "{gutter} = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Tabs become four spaces so that the caret stays under the right character; returns the
/// line as shown and how many columns precede the caret.
fn expand_tabs(line: &str, column: u32) -> (String, usize) {
    let mut shown = String::new();
    let mut caret_offset = 0;
    for (index, character) in line.chars().enumerate() {
        if index + 1 == column as usize {
            caret_offset = shown.chars().count();
        }
        if character == '\t' {
            shown.push_str("    ");
        } else if character.is_control() {
            shown.push(char::REPLACEMENT_CHARACTER);
        } else {
            shown.push(character);
        }
    }
    if column as usize > line.chars().count() {
        caret_offset = shown.chars().count();
    }
    (shown, caret_offset)
}

/// All the errors of one run, in file and line order. Its `Display` is the full rendering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by(|left, right| {
            let key = |diagnostic: &Diagnostic| {
                (
                    diagnostic.file.clone(),
                    diagnostic.location.as_ref().map(|at| (at.line, at.column)),
                )
            };
            key(left).cmp(&key(right))
        });
        Diagnostics(diagnostics)
    }

    pub fn single(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_source_line_caret_and_hint() {
        let text = "policy {\n    renewal = sometimes\n}\n";
        let location = Location::of_span("mappings/a.cmat", text, Span::new(23, 32));
        let diagnostic = Diagnostic::at(
            ErrorKind::UnknownValue {
                setting: "renewal".into(),
                found: "sometimes".into(),
                valid: vec!["extend", "keep"],
            },
            location,
        );
        assert_eq!(
            diagnostic.to_string(),
            "mappings/a.cmat:2:15: error: `sometimes` is not a valid value for `renewal`\n  |\n2 |     renewal = sometimes\n  |               ^^^^^^^^^\n  = hint: valid values: extend, keep\n"
        );
    }

    #[test]
    fn spans_past_the_end_or_inside_characters_do_not_panic() {
        let text = "é\n";
        for start in 0..6 {
            for end in 0..6 {
                let location = Location::of_span("f", text, Span::new(start, end));
                assert!(location.length >= 1);
            }
        }
    }

    #[test]
    fn tabs_keep_the_caret_aligned() {
        assert_eq!(expand_tabs("\tx", 2), ("    x".to_string(), 4));
    }
}
