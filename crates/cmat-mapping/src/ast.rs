//! The syntax tree of one mapping file. Every node keeps its [`Span`] (byte offsets in the
//! file's text) so that the checker can point at it and the compiled rules can name their
//! line. Nothing here knows about pest.

use rust_decimal::Decimal;

/// A byte range in one file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// The first byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The bytes `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// What was written.
    pub node: T,
    /// Where, for diagnostics and rule origins.
    pub span: Span,
}

/// One parsed file: its statements in source order, and its comments aside (the formatter
/// puts them back by position).
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// The top-level statements, in source order.
    pub statements: Vec<Statement>,
    /// Every comment of the file, in source order, kept for the formatter.
    pub comments: Vec<Comment>,
}

/// `# text`, without the line break.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The comment with its `#`, trailing blanks removed.
    pub text: String,
    /// Where it was, so the formatter puts it back beside the same statement.
    pub span: Span,
}

/// One of the five shapes a statement takes; the checker decides which belongs where.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `company column "AutotaskCompanyID"`
    CompanyColumn(CompanyColumn),
    /// `service "Microsoft CSP" = licence`
    KeyedRule(KeyedRule),
    /// `contract { … }`
    Block(Block),
    /// `term_months = 12`
    Setting(Setting),
}

impl Statement {
    /// The whole statement's bytes, whatever its shape: what a "misplaced" error points at.
    pub fn span(&self) -> Span {
        match self {
            Statement::CompanyColumn(statement) => statement.span,
            Statement::KeyedRule(statement) => statement.span,
            Statement::Block(statement) => statement.span,
            Statement::Setting(statement) => statement.span,
        }
    }
}

/// `company column "AutotaskCompanyID"`: the bill column that holds the Autotask company id.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyColumn {
    /// The column's name, quoted in the file.
    pub column: Spanned<String>,
    /// The whole statement.
    pub span: Span,
}

/// `keyword "key" = value`: a rule about one named thing (a service, an organization, a
/// product).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedRule {
    /// `service`, `company`, `tier`: what kind of rule.
    pub keyword: Spanned<String>,
    /// The quoted name it is about.
    pub key: Spanned<String>,
    /// What it says of that name.
    pub value: Spanned<Value>,
    /// The whole rule.
    pub span: Span,
}

/// `name { … }` or `for scope { … }`: a group of statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The block's name; `for` for a scoped rule.
    pub name: Spanned<String>,
    /// A scoped rule's terms (`organization "Contoso Ltd"`); empty for other blocks.
    pub scope: Vec<ScopeItem>,
    /// What the block holds, in source order.
    pub statements: Vec<Statement>,
    /// The `{`, for the formatter and for errors about an empty block.
    pub open_brace: Span,
    /// The `}`, for the formatter.
    pub close_brace: Span,
    /// The whole block, braces included.
    pub span: Span,
}

/// `organization "Contoso Ltd"` in `for organization "Contoso Ltd" { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeItem {
    /// What the term looks at: `organization`, `product`, `from`.
    pub keyword: Spanned<String>,
    /// The (first) value the line must have.
    pub value: Spanned<String>,
    /// `customer_number "A", "B"`: the values after the first; the term holds for any.
    pub more: Vec<Spanned<String>>,
    /// The whole term.
    pub span: Span,
}

/// `key = value` inside a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The setting's name.
    pub key: Spanned<String>,
    /// Its value.
    pub value: Spanned<Value>,
    /// The whole line.
    pub span: Span,
}

/// A value as written, before the checker gives it a meaning for its setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string, escapes resolved.
    Text(String),
    /// `12`, `-3`, `12.5`, exactly as decimals.
    Number(Decimal),
    /// A bare word such as `licence` or `half_up`.
    Name(String),
    /// `cost + 15%`; `percent_sign` is false for `cost + 1.50` (an amount per unit).
    CostPlus {
        /// The number after `+`.
        markup: Decimal,
        /// Written with `%`.
        percent_sign: bool,
    },
    /// `sales_price - 10%`; `percent_sign` as for [`Value::CostPlus`].
    SalesLess {
        /// The number after `-`.
        discount: Decimal,
        /// Written with `%`.
        percent_sign: bool,
    },
    /// `cost - 3%` (a rebate, for `unit_cost`), `cost - 0.50`.
    CostLess {
        /// The number after `-`.
        rebate: Decimal,
        /// Written with `%`.
        percent_sign: bool,
    },
    /// `sales_price + 5%`: an uplift on the list price.
    SalesPlus {
        /// The number after `+`.
        uplift: Decimal,
        /// Written with `%`.
        percent_sign: bool,
    },
    /// `10%`, as written (10, not 0.10).
    Percent(Decimal),
}

impl Value {
    /// How the value reads in an error message ("found a string").
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Text(_) => "a string",
            Value::Number(number) if number.scale() > 0 => "a decimal number",
            Value::Number(_) => "a number",
            Value::Name(_) => "a name",
            Value::CostPlus { .. } => "a markup (`cost + …`)",
            Value::SalesLess { .. } => "a discount (`sales_price - …`)",
            Value::CostLess { .. } => "a rebate (`cost - …`)",
            Value::SalesPlus { .. } => "an uplift (`sales_price + …`)",
            Value::Percent(_) => "a percentage",
        }
    }
}
