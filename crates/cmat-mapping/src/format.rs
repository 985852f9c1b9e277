//! The canonical form of a mapping file, as `cmat fmt` writes it: one statement per line,
//! four spaces per block level, `key = value` with single spaces, strings re-quoted, at most
//! one blank line where the source had any (none at the start or end of a block), and
//! comments kept where they were: on their own line, or after code on the same line.
//! Trailing comments start at column 43 (two spaces after longer code), so that the comments
//! of a block line up without one edit re-aligning its neighbours in a diff.

use super::ast::{Block, Comment, File, Statement, Value};

/// 0-based column where trailing comments start.
const TRAILING_COMMENT_COLUMN: usize = 42;
const INDENT: &str = "    ";

/// Formats a parsed file; `text` is the source it was parsed from (for comments and blank lines).
pub fn format_file(file: &File, text: &str) -> String {
    let mut printer = Printer {
        text,
        comments: &file.comments,
        next_comment: 0,
        lines: Vec::new(),
        previous_end: None,
    };
    printer.statements(&file.statements, 0, text.len());
    printer.leading_comments(usize::MAX, 0);
    let mut output = printer.lines.join("\n");
    if !output.is_empty() {
        output.push('\n');
    }
    output
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Comment],
    /// Comments are emitted in source order; this is the first one not yet emitted.
    next_comment: usize,
    lines: Vec<String>,
    /// Where the last emitted element ended in the source; `None` at the start of a file or
    /// block, where no blank line is kept.
    previous_end: Option<usize>,
}

impl Printer<'_> {
    fn statements(&mut self, statements: &[Statement], depth: usize, limit: usize) {
        for (index, statement) in statements.iter().enumerate() {
            let span = statement.span();
            let next_start =
                statements.get(index + 1).map(|next| next.span().start).unwrap_or(limit);
            self.leading_comments(span.start, depth);
            match statement {
                Statement::Block(block) => self.block(block, depth, next_start),
                leaf => {
                    // Comments written inside a statement are moved to the line above it.
                    self.leading_comments(span.end, depth);
                    let code = leaf_code(leaf);
                    self.line(depth, code, span.start, span.end, true, next_start);
                }
            }
        }
    }

    fn block(&mut self, block: &Block, depth: usize, next_start: usize) {
        self.leading_comments(block.open_brace.end, depth);
        let first_inner = block
            .statements
            .first()
            .map(|statement| statement.span().start)
            .unwrap_or(block.close_brace.start);
        let header = if block.scope.is_empty() {
            format!("{} {{", block.name.node)
        } else {
            let terms: Vec<String> = block
                .scope
                .iter()
                .map(|term| {
                    let values: Vec<String> = std::iter::once(&term.value)
                        .chain(&term.more)
                        .map(|value| quote(&value.node))
                        .collect();
                    format!("{} {}", term.keyword.node, values.join(", "))
                })
                .collect();
            format!("{} {} {{", block.name.node, terms.join(", "))
        };
        self.line(depth, header, block.span.start, block.open_brace.end, true, first_inner);
        self.previous_end = None;
        self.statements(&block.statements, depth + 1, block.close_brace.start);
        self.leading_comments(block.close_brace.start, depth + 1);
        self.line(
            depth,
            "}".to_string(),
            block.close_brace.start,
            block.close_brace.end,
            false,
            next_start,
        );
    }

    /// Emits the comments that start before `before`, each on its own line.
    fn leading_comments(&mut self, before: usize, depth: usize) {
        while let Some(comment) = self.comments.get(self.next_comment) {
            if comment.span.start >= before {
                break;
            }
            self.next_comment += 1;
            self.push(depth, comment.text.clone(), comment.span.start, comment.span.end, true);
        }
    }

    /// Emits one line of code, with the comments that follow it on the same source line
    /// (and before `next_start`, where the next code begins).
    fn line(
        &mut self,
        depth: usize,
        code: String,
        start: usize,
        end: usize,
        blank_allowed: bool,
        next_start: usize,
    ) {
        let mut trailing: Vec<&str> = Vec::new();
        let mut last_end = end;
        while let Some(comment) = self.comments.get(self.next_comment) {
            let between = self.text.get(end..comment.span.start).unwrap_or("\n");
            if comment.span.start >= next_start || between.contains('\n') {
                break;
            }
            self.next_comment += 1;
            trailing.push(&comment.text);
            last_end = comment.span.end;
        }
        let mut content = code;
        if !trailing.is_empty() {
            let width = INDENT.len() * depth + content.chars().count();
            let padding = TRAILING_COMMENT_COLUMN.saturating_sub(width).max(2);
            content.push_str(&" ".repeat(padding));
            content.push_str(&trailing.join(" "));
        }
        self.push(depth, content, start, last_end, blank_allowed);
    }

    fn push(
        &mut self,
        depth: usize,
        content: String,
        start: usize,
        end: usize,
        blank_allowed: bool,
    ) {
        if blank_allowed {
            if let Some(previous_end) = self.previous_end {
                let between = self.text.get(previous_end..start).unwrap_or("");
                if has_blank_line(between) {
                    self.lines.push(String::new());
                }
            }
        }
        self.lines.push(format!("{}{content}", INDENT.repeat(depth)));
        self.previous_end = Some(end);
    }
}

/// True when the text between two elements holds an empty (or blank) line.
fn has_blank_line(between: &str) -> bool {
    let segments: Vec<&str> = between.split('\n').collect();
    segments.len() > 2
        && segments[1..segments.len() - 1].iter().any(|segment| segment.trim().is_empty())
}

fn leaf_code(statement: &Statement) -> String {
    match statement {
        Statement::Setting(setting) => {
            format!("{} = {}", setting.key.node, value_code(&setting.value.node))
        }
        Statement::KeyedRule(rule) => format!(
            "{} {} = {}",
            rule.keyword.node,
            quote(&rule.key.node),
            value_code(&rule.value.node)
        ),
        Statement::CompanyColumn(link) => format!("company column {}", quote(&link.column.node)),
        Statement::Block(block) => format!("{} {{}}", block.name.node),
    }
}

fn value_code(value: &Value) -> String {
    match value {
        Value::Text(text) => quote(text),
        Value::Number(number) => number.to_string(),
        Value::Name(name) => name.clone(),
        Value::CostPlus { markup, percent_sign: true } => format!("cost + {markup}%"),
        Value::CostPlus { markup, percent_sign: false } => format!("cost + {markup}"),
        Value::SalesLess { discount, percent_sign: true } => format!("sales_price - {discount}%"),
        Value::SalesLess { discount, percent_sign: false } => format!("sales_price - {discount}"),
        Value::CostLess { rebate, percent_sign: true } => format!("cost - {rebate}%"),
        Value::CostLess { rebate, percent_sign: false } => format!("cost - {rebate}"),
        Value::SalesPlus { uplift, percent_sign: true } => format!("sales_price + {uplift}%"),
        Value::SalesPlus { uplift, percent_sign: false } => format!("sales_price + {uplift}"),
        Value::Percent(number) => format!("{number}%"),
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use crate::format_source;

    fn format(text: &str) -> String {
        format_source("mappings/test.cmat", text).expect("formats")
    }

    #[test]
    fn lays_out_statements_and_keeps_comments() {
        let source = "# head\n\n\n\nx{a=1 # one\n# lone\nb=\"q\\\"\"   }  # after\nservice   \"S\"=licence\n";
        let expected = "# head\n\nx {\n    a = 1                                 # one\n    # lone\n    b = \"q\\\"\"\n}                                         # after\nservice \"S\" = licence\n";
        assert_eq!(format(source), expected);
        assert_eq!(format(expected), expected);
    }

    #[test]
    fn long_lines_get_two_spaces_before_the_comment() {
        let source =
            "contract {\n  consumption_name = \"Microsoft Azure - {organization}\" # c\n}\n";
        assert_eq!(
            format(source),
            "contract {\n    consumption_name = \"Microsoft Azure - {organization}\"  # c\n}\n"
        );
    }

    #[test]
    fn blank_lines_inside_blocks_are_kept_once_but_not_at_the_edges() {
        assert_eq!(format("a {\n\n x = 1\n\n\n y = 2\n\n}\n"), "a {\n    x = 1\n\n    y = 2\n}\n");
    }

    #[test]
    fn an_empty_file_stays_empty() {
        assert_eq!(format(""), "");
        assert_eq!(format("\n\n"), "");
    }
}
