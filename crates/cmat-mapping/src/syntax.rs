//! Text → [`ast::File`]. The only module that touches pest: parse trees become the typed
//! syntax tree here, and pest's errors become [`ErrorKind::Syntax`] in plain words (never a
//! rule name).

use std::str::FromStr;

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;
use rust_decimal::Decimal;

use super::ast::{
    Block, Comment, CompanyColumn, File, KeyedRule, ScopeItem, Setting, Span, Spanned, Statement,
    Value,
};
use super::diagnostic::ErrorKind;

/// pest's generated parser and `Rule` enum, kept private to this module: nothing outside the
/// syntax layer sees a pest type or a rule name.
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../../../grammar/cmat.pest"]
    pub(super) struct CmatParser;
}
use grammar::{CmatParser, Rule};

/// A mistake found while reading the text, before its file and line are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Where in the text, resolved to a line once the file is known.
    pub span: Span,
}

/// Parses one file. pest stops at the first syntax error; mistakes inside tokens (an
/// unknown escape, an unclosed string, a number too large) are all reported.
pub fn parse(text: &str) -> Result<File, Vec<SyntaxError>> {
    let mut pairs =
        CmatParser::parse(Rule::file, text).map_err(|error| vec![translate(text, &error)])?;
    let Some(file_pair) = pairs.next() else {
        return Ok(File { statements: Vec::new(), comments: Vec::new() });
    };
    let comments = file_pair
        .clone()
        .into_inner()
        .flatten()
        .filter(|pair| pair.as_rule() == Rule::COMMENT)
        .map(|pair| Comment { text: pair.as_str().trim_end().to_string(), span: span_of(&pair) })
        .collect();
    let mut builder = Builder { errors: Vec::new() };
    let statements = builder.statements(file_pair);
    if builder.errors.is_empty() {
        Ok(File { statements, comments })
    } else {
        Err(builder.errors)
    }
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let span = pair.as_span();
    Span::new(span.start(), span.end())
}

/// The children of a pair, without the comments pest puts between tokens.
fn children<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.into_inner().filter(|child| !matches!(child.as_rule(), Rule::COMMENT | Rule::EOI))
}

struct Builder {
    errors: Vec<SyntaxError>,
}

impl Builder {
    fn error(&mut self, kind: ErrorKind, span: Span) {
        self.errors.push(SyntaxError { kind, span });
    }

    fn statements(&mut self, parent: Pair<'_, Rule>) -> Vec<Statement> {
        children(parent).filter_map(|pair| self.statement(pair)).collect()
    }

    fn statement(&mut self, pair: Pair<'_, Rule>) -> Option<Statement> {
        let span = span_of(&pair);
        match pair.as_rule() {
            Rule::company_column => self.company_column(pair, span),
            Rule::keyed_rule => self.keyed_rule(pair, span),
            Rule::setting => self.setting(pair, span),
            Rule::block | Rule::scoped_rule => self.block(pair, span),
            _ => None,
        }
    }

    fn company_column(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Statement> {
        let column = children(pair)
            .find(|child| matches!(child.as_rule(), Rule::string | Rule::unterminated_string))
            .map(|child| self.text(child))?;
        Some(Statement::CompanyColumn(CompanyColumn { column, span }))
    }

    fn keyed_rule(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Statement> {
        let mut parts = children(pair).filter(|child| child.as_rule() != Rule::equals);
        let keyword = parts.next().map(spanned_name)?;
        let key = parts.next().map(|child| self.text(child))?;
        let value = parts.next().map(|child| self.value(child))?;
        Some(Statement::KeyedRule(KeyedRule { keyword, key, value, span }))
    }

    fn setting(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Statement> {
        let mut parts = children(pair).filter(|child| child.as_rule() != Rule::equals);
        let key = parts.next().map(spanned_name)?;
        let value = parts.next().map(|child| self.value(child))?;
        Some(Statement::Setting(Setting { key, value, span }))
    }

    /// A named block (`contract { … }`) or a scoped rule (`for organization "X" { … }`): both
    /// become a [`Block`], the plain one with an empty scope. Their children are statements,
    /// never a bare name or scope term, so one loop reads both shapes.
    fn block(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<Statement> {
        let mut name = None;
        let mut scope = Vec::new();
        let mut open_brace = span;
        let mut close_brace = span;
        let mut statements = Vec::new();
        for child in children(pair) {
            match child.as_rule() {
                Rule::name | Rule::kw_for => name = Some(spanned_name(child)),
                Rule::comma => {}
                Rule::scope_term => scope.push(self.scope_item(child)?),
                Rule::open_brace => open_brace = span_of(&child),
                Rule::close_brace => close_brace = span_of(&child),
                _ => statements.extend(self.statement(child)),
            }
        }
        Some(Statement::Block(Block {
            name: name?,
            scope,
            statements,
            open_brace,
            close_brace,
            span,
        }))
    }

    /// One term of a scope: `organization "Contoso Ltd"`, or any of several names.
    fn scope_item(&mut self, term: Pair<'_, Rule>) -> Option<ScopeItem> {
        let span = span_of(&term);
        let mut parts = children(term);
        let keyword = parts.next().map(spanned_name)?;
        let value = parts.next().map(|part| self.text(part))?;
        let more = parts
            .filter(|part| part.as_rule() != Rule::comma)
            .map(|part| self.text(part))
            .collect();
        Some(ScopeItem { keyword, value, more, span })
    }

    fn value(&mut self, pair: Pair<'_, Rule>) -> Spanned<Value> {
        let span = span_of(&pair);
        let node = match pair.as_rule() {
            Rule::string | Rule::unterminated_string => Value::Text(self.text(pair).node),
            Rule::number => Value::Number(self.number(&pair)),
            Rule::markup | Rule::discount => {
                let on_cost = pair.as_rule() == Rule::markup;
                let (mut number, mut percent_sign, mut minus) = (Decimal::ZERO, false, false);
                for child in children(pair) {
                    match child.as_rule() {
                        Rule::number => number = self.number(&child),
                        Rule::percent => percent_sign = true,
                        Rule::minus => minus = true,
                        _ => {}
                    }
                }
                match (on_cost, minus) {
                    (true, false) => Value::CostPlus { markup: number, percent_sign },
                    (true, true) => Value::CostLess { rebate: number, percent_sign },
                    (false, true) => Value::SalesLess { discount: number, percent_sign },
                    (false, false) => Value::SalesPlus { uplift: number, percent_sign },
                }
            }
            Rule::percentage => {
                let number = children(pair)
                    .find(|child| child.as_rule() == Rule::number)
                    .map(|child| self.number(&child))
                    .unwrap_or_default();
                Value::Percent(number)
            }
            _ => Value::Name(pair.as_str().to_string()),
        };
        Spanned { node, span }
    }

    fn number(&mut self, pair: &Pair<'_, Rule>) -> Decimal {
        // `.99` (a price point) reads as `0.99`.
        let text = pair.as_str();
        let text = match text.strip_prefix('-').unwrap_or(text).strip_prefix('.') {
            Some(fraction) if text.starts_with('-') => format!("-0.{fraction}"),
            Some(fraction) => format!("0.{fraction}"),
            None => text.to_string(),
        };
        Decimal::from_str(&text).unwrap_or_else(|_| {
            self.error(ErrorKind::NumberTooLarge(pair.as_str().to_string()), span_of(pair));
            Decimal::ZERO
        })
    }

    /// A quoted string with its escapes resolved; an unclosed one is reported.
    fn text(&mut self, pair: Pair<'_, Rule>) -> Spanned<String> {
        let span = span_of(&pair);
        if pair.as_rule() == Rule::unterminated_string {
            self.error(ErrorKind::UnterminatedString, Span::new(span.start, span.start + 1));
            return Spanned { node: pair.as_str().trim_start_matches('"').to_string(), span };
        }
        let raw = pair.as_str();
        let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
        let mut node = String::new();
        let mut characters = inner.char_indices();
        while let Some((_, character)) = characters.next() {
            if character != '\\' {
                node.push(character);
                continue;
            }
            match characters.next() {
                Some((_, escaped @ ('"' | '\\'))) => node.push(escaped),
                Some((at, other)) => {
                    let start = span.start + at;
                    self.error(
                        ErrorKind::UnknownEscape(other),
                        Span::new(start, start + other.len_utf8() + 1),
                    );
                }
                None => {}
            }
        }
        Spanned { node, span }
    }
}

fn spanned_name(pair: Pair<'_, Rule>) -> Spanned<String> {
    Spanned { span: span_of(&pair), node: pair.as_str().to_string() }
}

/// What a rule means to a user; `None` for rules that only repeat what another one says.
fn describe(rule: Rule) -> Option<&'static str> {
    match rule {
        Rule::statement
        | Rule::company_column
        | Rule::keyed_rule
        | Rule::block
        | Rule::setting
        | Rule::name
        | Rule::name_char => Some("a name"),
        Rule::quoted | Rule::string | Rule::unterminated_string | Rule::string_inner => {
            Some("a string")
        }
        Rule::number => Some("a number"),
        Rule::kw_column => Some("`column`"),
        Rule::scoped_rule | Rule::kw_for => Some("a name"),
        Rule::scope_term => Some("a scope (`organization \"NAME\"`)"),
        Rule::comma => Some("`,`"),
        Rule::minus => Some("`-`"),
        Rule::kw_company => Some("a name"),
        Rule::equals => Some("`=`"),
        Rule::open_brace => Some("`{`"),
        Rule::close_brace => Some("`}`"),
        Rule::plus => Some("`+`"),
        Rule::percent => Some("`%`"),
        Rule::EOI => Some("end of file"),
        Rule::value
        | Rule::inline_space
        | Rule::markup
        | Rule::discount
        | Rule::percentage
        | Rule::kw_sales_price
        | Rule::kw_cost
        | Rule::COMMENT
        | Rule::file
        | Rule::WHITESPACE => None,
    }
}

/// "a string, a number or a name"
fn one_of(words: &[&str]) -> String {
    match words {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn translate(text: &str, error: &pest::error::Error<Rule>) -> SyntaxError {
    let position = match error.location {
        InputLocation::Pos(position) => position,
        InputLocation::Span((start, _)) => start,
    };
    let mut expected: Vec<&str> = Vec::new();
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for word in positives.iter().filter_map(|rule| describe(*rule)) {
            if !expected.contains(&word) {
                expected.push(word);
            }
        }
    }
    // "end of file" reads best last: "expected a name or end of file".
    expected.sort_by_key(|word| *word == "end of file");
    let (found, span) = token_at(text, position);
    SyntaxError { kind: ErrorKind::Syntax { expected: one_of(&expected), found }, span }
}

/// Describes the token starting at (or after blanks from) `position`, for "found …".
fn token_at(text: &str, position: usize) -> (String, Span) {
    let mut start = position.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let rest = &text[start..];
    let skipped = rest.len() - rest.trim_start_matches([' ', '\t', '\u{feff}']).len();
    let start = start + skipped;
    let rest = &text[start..];
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), Span::new(start, start));
    };
    if first == '\n' || rest.starts_with("\r\n") {
        return ("the end of the line".to_string(), Span::new(start, start));
    }
    let is_word =
        |character: char| character.is_alphanumeric() || character == '_' || character == '.';
    let length = if is_word(first) {
        rest.find(|character: char| !is_word(character)).unwrap_or(rest.len())
    } else {
        first.len_utf8()
    };
    let token = &rest[..length];
    let found = if token.chars().all(|character| !character.is_control()) {
        format!("`{token}`")
    } else {
        "a control character".to_string()
    };
    (found, Span::new(start, start + length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(text: &str) -> (String, Span) {
        let errors = parse(text).expect_err("a syntax error");
        (errors[0].kind.to_string(), errors[0].span)
    }

    #[test]
    fn parses_every_statement_shape_with_spans() {
        let text = "company column \"X\"\nservice \"A\" = licence\nprices {\n  unit_price = cost + 12.5%\n}\n";
        let file = parse(text).expect("parses");
        assert_eq!(file.statements.len(), 3);
        let Statement::Block(block) = &file.statements[2] else {
            panic!("a block");
        };
        assert_eq!(block.name.node, "prices");
        let Statement::Setting(setting) = &block.statements[0] else {
            panic!("a setting");
        };
        assert_eq!(
            setting.value.node,
            Value::CostPlus { markup: Decimal::new(125, 1), percent_sign: true }
        );
        assert_eq!(&text[setting.span.start..setting.span.end], "unit_price = cost + 12.5%");
    }

    #[test]
    fn keeps_comments_and_resolves_escapes() {
        let file = parse("# a\nx { y = \"q\\\"#\" } # b\n").expect("parses");
        assert_eq!(file.comments.len(), 2);
        let Statement::Block(block) = &file.statements[0] else {
            panic!("a block");
        };
        let Statement::Setting(setting) = &block.statements[0] else {
            panic!("a setting");
        };
        assert_eq!(setting.value.node, Value::Text("q\"#".into()));
    }

    #[test]
    fn errors_name_what_was_expected_in_words() {
        assert_eq!(
            first_error("contract {\n  term_months = \n  renewal = keep\n}\n"),
            (
                "expected a string, a number or a name, found the end of the line".to_string(),
                Span::new(27, 27)
            )
        );
        assert_eq!(
            first_error("contract {\n  term_months 12\n}").0,
            "expected a string, `=` or `{`, found `12`"
        );
        assert_eq!(first_error("contract {").0, "expected a name or `}`, found end of file");
        assert_eq!(first_error("x = 1 }").0, "expected a name, `%` or end of file, found `}`");
    }

    #[test]
    fn token_errors_are_all_reported() {
        let errors =
            parse("a {\n x = \"\\q\"\n y = \"open\n z = 123456789012345678901234567890123\n}\n")
                .expect_err("errors");
        let kinds: Vec<String> = errors.iter().map(|error| error.kind.to_string()).collect();
        assert_eq!(
            kinds,
            [
                "unknown escape `\\q` in a string",
                "this string is not closed",
                "the number `123456789012345678901234567890123` is too large"
            ]
        );
    }
}
