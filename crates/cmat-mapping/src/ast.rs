//! The syntax tree of one mapping file. Every node keeps its [`Span`] (byte offsets in the
//! file's text) so that the checker can point at it and the compiled rules can name their
//! line. Nothing here knows about pest.

use rust_decimal::Decimal;

/// A byte range in one file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

/// One parsed file: its statements in source order, and its comments aside (the formatter
/// puts them back by position).
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub statements: Vec<Statement>,
    pub comments: Vec<Comment>,
}

/// `# text`, without the line break.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

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
    pub fn span(&self) -> Span {
        match self {
            Statement::CompanyColumn(statement) => statement.span,
            Statement::KeyedRule(statement) => statement.span,
            Statement::Block(statement) => statement.span,
            Statement::Setting(statement) => statement.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompanyColumn {
    pub column: Spanned<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyedRule {
    pub keyword: Spanned<String>,
    pub key: Spanned<String>,
    pub value: Spanned<Value>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The block's name; `for` for a scoped rule.
    pub name: Spanned<String>,
    /// A scoped rule's terms (`organization "Contoso Ltd"`); empty for other blocks.
    pub scope: Vec<ScopeItem>,
    pub statements: Vec<Statement>,
    pub open_brace: Span,
    pub close_brace: Span,
    pub span: Span,
}

/// `organization "Contoso Ltd"` in `for organization "Contoso Ltd" { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeItem {
    pub keyword: Spanned<String>,
    pub value: Spanned<String>,
    /// `customer_number "A", "B"`: the values after the first; the term holds for any.
    pub more: Vec<Spanned<String>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: Spanned<String>,
    pub value: Spanned<Value>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string, escapes resolved.
    Text(String),
    /// `12`, `-3`, `12.5`, exactly as decimals.
    Number(Decimal),
    /// A bare word such as `licence` or `half_up`.
    Name(String),
    /// `cost + 15%`; `percent_sign` is false for `cost + 1.50` (an amount per unit).
    CostPlus { markup: Decimal, percent_sign: bool },
    /// `sales_price - 10%`; `percent_sign` as for [`Value::CostPlus`].
    SalesLess { discount: Decimal, percent_sign: bool },
    /// `cost - 3%` (a rebate, for `unit_cost`), `cost - 0.50`.
    CostLess { rebate: Decimal, percent_sign: bool },
    /// `sales_price + 5%`: an uplift on the list price.
    SalesPlus { uplift: Decimal, percent_sign: bool },
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
