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
    /// The file, relative to the workspace (`mappings/microsoft.cmat`).
    pub file: String,
    /// 1-based line, as editors number them.
    pub line: u32,
    /// 1-based column, in characters, where the caret goes.
    pub column: u32,
    /// How many characters the carets underline (at least 1).
    pub length: u32,
    /// The line itself, shown above the carets.
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
    /// A mapping file or `mappings/` cannot be read (permissions, a vanished file).
    #[error("cannot read the file: {reason}")]
    Unreadable {
        /// The operating system's reason, as it words it.
        reason: String,
    },
    /// The workspace has no rules at all: nothing could be reconciled.
    #[error("no mapping files (*.cmat) found")]
    NoMappingFiles,
    /// The file is not text cmat can read (saved in a legacy encoding).
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
    /// pest stopped here: the file's shape is wrong.
    #[error("expected {expected}, found {found}")]
    Syntax {
        /// What could have come here, in words (never a rule name).
        expected: String,
        /// What was written instead, in words.
        found: String,
    },
    /// A string runs to the end of its line: the rest of the line would be swallowed.
    #[error("this string is not closed")]
    UnterminatedString,
    /// A backslash before a character the language does not escape.
    #[error("unknown escape `\\{0}` in a string")]
    UnknownEscape(char),
    /// A number beyond what a decimal holds: it cannot be an amount or an id.
    #[error("the number `{0}` is too large")]
    NumberTooLarge(String),
    /// A block name the checker does not know here (a typo, or the wrong place).
    #[error("unknown block `{name}`")]
    UnknownBlock {
        /// The name as written.
        name: String,
        /// The blocks allowed here, for the hint (none inside most blocks).
        valid: &'static [&'static str],
    },
    /// A top-level block or a `for` rule written inside another block.
    #[error("`{name}` blocks belong at the top level of a file, not inside `{parent}`")]
    NestedBlock {
        /// The nested block.
        name: String,
        /// The block it was written in.
        parent: String,
    },
    /// A setting the block does not have: a misspelling would otherwise be ignored.
    #[error("unknown setting `{key}` in `{block}`")]
    UnknownSetting {
        /// The block it was written in.
        block: String,
        /// The setting as written.
        key: String,
        /// The block's settings, for the hint.
        valid: &'static [&'static str],
    },
    /// A setting at the top level of a file: it belongs to no block.
    #[error("a setting must be inside a block, such as `settings {{ … }}`")]
    SettingOutsideBlock {
        /// The setting as written.
        key: String,
    },
    /// A keyed rule (`keyword "key" = value`) that does not exist where it was written.
    #[error("`{keyword} \"…\" = …` is not a rule {place}")]
    UnknownRule {
        /// The keyword as written.
        keyword: String,
        /// Where it was written, in words ("at the top level").
        place: String,
        /// The rules allowed there, for the hint.
        valid: &'static str,
    },
    /// `company column` inside a block: it is a file-wide rule.
    #[error("`company column` belongs at the top level of a file")]
    MisplacedCompanyColumn,
    /// A `{field}` a name template cannot fill.
    #[error("unknown template field `{{{field}}}`")]
    UnknownTemplateField {
        /// The field name as written.
        field: String,
    },
    /// A template field that exists, but not in this setting (`{corrected_date}`).
    #[error("`{{{field}}}` can only be used in `correction_name`")]
    TemplateFieldNotHere {
        /// The field name as written.
        field: String,
    },
    /// A `{` in a template with no `}`: a field or a literal brace?
    #[error("this `{{` is not closed in the template")]
    UnclosedTemplateField,
    /// A `}` in a template with no `{` before it.
    #[error("a lone `}}` in the template")]
    LoneClosingBrace,
    /// A value none of the setting's choices.
    #[error("`{found}` is not a valid value for `{setting}`")]
    UnknownValue {
        /// The setting (or rule) it was given to.
        setting: String,
        /// The value as written.
        found: String,
        /// The values allowed, for the hint.
        valid: Vec<&'static str>,
    },
    /// A value of the wrong kind for the setting (a string where a name goes).
    #[error("`{setting}` expects {expected}, found {found}")]
    TypeMismatch {
        /// The setting it was given to.
        setting: String,
        /// What the setting takes, in words.
        expected: &'static str,
        /// What kind of value was written, in words.
        found: &'static str,
    },
    /// An Autotask id that is not a whole number above 0.
    #[error("`{setting}` must be a positive whole number (an Autotask id), found `{found}`")]
    NotPositiveId {
        /// The setting (or rule) it was given to.
        setting: String,
        /// The value as written.
        found: String,
    },
    /// A whole number outside what the setting allows.
    #[error("`{setting}` must be a whole number from {min} to {max}, found `{found}`")]
    OutOfRange {
        /// The setting it was given to.
        setting: String,
        /// The smallest value allowed.
        min: u32,
        /// The largest value allowed.
        max: u32,
        /// The value as written.
        found: String,
    },
    /// A price point that is not the cents a price ends in.
    #[error("a price point is the cents a price ends in, under 1 (`.99`), found `{found}`")]
    PricePointOutOfRange {
        /// The value as written.
        found: String,
    },
    /// A markup below 0: the price would be under the cost.
    #[error("the markup `{found}%` is negative")]
    NegativeMarkup {
        /// The markup as written.
        found: String,
    },
    /// A discount or uplift on the list price given as an amount, not a percent.
    #[error("the discount or uplift `{found}` is not a percent")]
    DiscountNotPercent {
        /// The amount as written.
        found: String,
    },
    /// A percentage below 0% or above 100%.
    #[error("`{setting}` must be a percentage from 0% to 100%, found `{found}`")]
    PercentOutOfRange {
        /// The setting it was given to.
        setting: String,
        /// The percentage as written.
        found: String,
    },
    /// A fixed price below 0.
    #[error("a fixed price must not be negative, found `{found}`")]
    NegativePrice {
        /// The price as written.
        found: String,
    },
    /// A margin floor or a price cap below 0: no price could meet it.
    #[error("`{setting}` must not be negative, found `{found}`")]
    NegativeAmount {
        /// The setting it was given to.
        setting: String,
        /// The amount as written.
        found: String,
    },
    /// A `from` or `until` scope that is not a `YYYY-MM-DD` date.
    #[error("`{keyword}` expects a date written `YYYY-MM-DD`, found \"{found}\"")]
    InvalidDate {
        /// `from` or `until`.
        keyword: String,
        /// The value as written.
        found: String,
    },
    /// A warning: a rule whose `from` is after its `until` never applies.
    #[error("this rule is in force from {from} until {until}: no Billing Date is both, so it never applies")]
    DatesNeverApply {
        /// The first date the rule holds.
        from: String,
        /// The last date the rule holds.
        until: String,
    },
    /// A per-seat add-on missing one of its two required settings.
    #[error("a per-seat add-on needs `{missing}` as well")]
    AddOnIncomplete {
        /// The setting it lacks.
        missing: &'static str,
    },
    /// Seat-count tiers written wrong: a band that is not one, or bands with gaps.
    #[error("seat-count tiers: {detail}")]
    TierBands {
        /// What is wrong with the bands, in words.
        detail: String,
    },
    /// A rule with tiers and a `unit_price`: two prices for one line.
    #[error("a rule states `unit_price` and tiers: keep one (the tiers are its price)")]
    TiersAndPrice,
    /// A scope keyword the `for` rules do not have.
    #[error("unknown scope `{found}`")]
    UnknownScope {
        /// The keyword as written.
        found: String,
    },
    /// A scope naming one dimension twice: no line has two values of it.
    #[error(
        "this scope names {dimension} twice: a line has only one, so the rule could never match"
    )]
    RepeatedDimension {
        /// The dimension, in words.
        dimension: &'static str,
        /// Where the scope named it first.
        first: Location,
    },
    /// A `service` scope naming a service no `service` rule bills.
    #[error("service \"{name}\" is not billed by any `service` rule")]
    UnknownService {
        /// The service as written.
        name: String,
        /// The services that have a rule, for the hint.
        valid: Vec<String>,
    },
    /// A `for` rule with nothing inside it.
    #[error("this rule sets nothing")]
    EmptyScopedRule,
    /// A warning: no imported bill has this scope's value (a typo?).
    #[error("no imported bill has {term}: the rule matches nothing (a typo?)")]
    UnseenScope {
        /// The scope term, as a rule writes it.
        term: String,
    },
    /// Two rules set one setting for the same scope: neither could win.
    #[error("`{setting}` is set twice for the same scope: {detail}")]
    AmbiguousRules {
        /// The setting both set.
        setting: String,
        /// Why neither wins, in words.
        detail: &'static str,
        /// Where the other rule sets it.
        first: Location,
    },
    /// Two rules put products that can share a subscription on one Service but disagree on what its one contract service holds.
    #[error("products these rules put on Service {service} can share a subscription, but the rules set their {setting} differently: one contract service cannot hold both")]
    SharedServiceConflict {
        /// The Autotask Service id both rules name.
        service: i64,
        /// The setting they disagree on.
        setting: &'static str,
        /// Where the other rule's `service` is.
        first: Location,
    },
    /// A contract-wide setting in a rule scoped finer than a subscription.
    #[error("`{setting}` is the contract's (one per subscription): a scope naming {dimension} cannot set it")]
    ContractWideSetting {
        /// The contract-wide setting.
        setting: &'static str,
        /// The finer dimension the scope names, in words.
        dimension: &'static str,
    },
    /// A timezone other than UTC: bill dates are calendar dates, never shifted.
    #[error("timezone `{found}` is not supported: only \"UTC\" is")]
    UnsupportedTimezone {
        /// The timezone as written.
        found: String,
    },
    /// An empty name where one is needed (a service, an organization, a column).
    #[error("{what} must not be empty")]
    EmptyText {
        /// What was empty, in words.
        what: String,
    },
    /// Something written twice that may be written once.
    #[error("duplicate {what}")]
    Duplicate {
        /// What was repeated, in words.
        what: String,
        /// Where it was written first.
        first: Location,
    },
    /// A required setting the block lacks.
    #[error("missing setting `{key}` in `{block}`")]
    MissingSetting {
        /// The block that lacks it.
        block: String,
        /// The setting.
        key: String,
    },
    /// A required block no file has.
    #[error("missing `{block}` block")]
    MissingBlock {
        /// The block.
        block: String,
    },
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
    /// What went wrong, with what its message needs.
    pub kind: ErrorKind,
    /// The file (or folder) it is about, also when there is no line to show.
    pub file: String,
    /// Where in the file; `None` for a whole file or folder.
    pub location: Option<Location>,
    /// A warning does not fail `cmat check`.
    pub warning: bool,
}

impl Diagnostic {
    /// An error at a place in a file.
    pub fn at(kind: ErrorKind, location: Location) -> Self {
        Diagnostic { kind, file: location.file.clone(), location: Some(location), warning: false }
    }

    /// An error about a whole file (or folder), with no line to show.
    pub fn in_file(kind: ErrorKind, file: &str) -> Self {
        Diagnostic { kind, file: file.to_string(), location: None, warning: false }
    }

    /// A warning at a place in a file: shown, but `cmat check` still passes.
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
    /// The errors of a run, sorted by file, line and column so the output reads top-down.
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

    /// One error that stops the run before any file is checked (no `mappings/`).
    pub fn single(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }

    /// How many errors and warnings: `cmat check`'s count.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the files checked without a word.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics in file and line order, for callers that render or count them apart.
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
