//! A typed builder for Autotask query filters.
//!
//! Autotask silently drops a filter item whose op it does not know and then returns every
//! record, so ops are an enum here and never text. A query may hold at most one
//! user-defined-field item and at most 500 values in an `in`/`notIn` list; the builder refuses
//! anything else, and [`chunked_in`] splits long id lists into several queries.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// Most records Autotask returns in one page, and the most OR conditions in one query.
pub const MAX_PAGE: usize = 500;
/// Most values in one `in` / `notIn` item.
pub const MAX_IN_VALUES: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("a query may hold only one user-defined-field item; it has `{first}` and `{second}`")]
    SecondUdf { first: String, second: String },
    #[error("`{field}`: an `{op}` list holds {count} values; at most {MAX_IN_VALUES} per query (split it with chunked_in)")]
    TooManyValues { field: String, op: &'static str, count: usize },
    #[error("`{field}`: an `{op}` list must hold at least one value")]
    EmptyList { field: String, op: &'static str },
    #[error("`{0}` is not a field name Autotask could know")]
    BadField(String),
    #[error("a query needs at least one filter item (use Filter::all() to read everything)")]
    Empty,
}

/// Autotask's comparison ops. Serialised only through [`Op::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
    BeginsWith,
    EndsWith,
    Contains,
    Exist,
    NotExist,
    In,
    NotIn,
}

impl Op {
    /// Autotask's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::NotEq => "noteq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::BeginsWith => "beginsWith",
            Op::EndsWith => "endsWith",
            Op::Contains => "contains",
            Op::Exist => "exist",
            Op::NotExist => "notExist",
            Op::In => "in",
            Op::NotIn => "notIn",
        }
    }
}

/// How the items of a group combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOp {
    And,
    Or,
}

impl GroupOp {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupOp::And => "and",
            GroupOp::Or => "or",
        }
    }
}

/// A value compared against; dates go as `YYYY-MM-DDT00:00:00Z`: midnight UTC, said so
/// explicitly, as live clients send it. How Autotask reads a zone-less value is not documented;
/// read in the tenant's time it would move the window's edges by hours and miss the unit period
/// that starts on a Billing Date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilterValue {
    Int(i64),
    Text(String),
    Bool(bool),
    Decimal(Decimal),
    Date(NaiveDate),
}

impl FilterValue {
    fn to_json(&self) -> Value {
        match self {
            FilterValue::Int(n) => json!(n),
            FilterValue::Text(s) => json!(s),
            FilterValue::Bool(b) => json!(b),
            // Autotask compares numbers given as text; a float would lose digits.
            FilterValue::Decimal(d) => json!(d.to_string()),
            FilterValue::Date(d) => json!(format!("{}T00:00:00Z", d.format("%Y-%m-%d"))),
        }
    }
}

impl From<i64> for FilterValue {
    fn from(v: i64) -> Self {
        FilterValue::Int(v)
    }
}
impl From<i32> for FilterValue {
    fn from(v: i32) -> Self {
        FilterValue::Int(v.into())
    }
}
impl From<&str> for FilterValue {
    fn from(v: &str) -> Self {
        FilterValue::Text(v.to_string())
    }
}
impl From<String> for FilterValue {
    fn from(v: String) -> Self {
        FilterValue::Text(v)
    }
}
impl From<&String> for FilterValue {
    fn from(v: &String) -> Self {
        FilterValue::Text(v.clone())
    }
}
impl From<bool> for FilterValue {
    fn from(v: bool) -> Self {
        FilterValue::Bool(v)
    }
}
impl From<Decimal> for FilterValue {
    fn from(v: Decimal) -> Self {
        FilterValue::Decimal(v)
    }
}
impl From<NaiveDate> for FilterValue {
    fn from(v: NaiveDate) -> Self {
        FilterValue::Date(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    None,
    One(FilterValue),
    List(Vec<FilterValue>),
}

/// One comparison. Built only through the constructors, so the op always fits its operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: Op,
    field: String,
    operand: Operand,
    udf: bool,
}

macro_rules! compare {
    ($($name:ident => $op:ident),* $(,)?) => {
        $(
            pub fn $name(field: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
                Condition { op: Op::$op, field: field.into(), operand: Operand::One(value.into()), udf: false }
            }
        )*
    };
}

impl Condition {
    compare! {
        eq => Eq, noteq => NotEq, gt => Gt, gte => Gte, lt => Lt, lte => Lte,
        begins_with => BeginsWith, ends_with => EndsWith, contains => Contains,
    }

    pub fn exist(field: impl Into<String>) -> Condition {
        Condition { op: Op::Exist, field: field.into(), operand: Operand::None, udf: false }
    }

    pub fn not_exist(field: impl Into<String>) -> Condition {
        Condition { op: Op::NotExist, field: field.into(), operand: Operand::None, udf: false }
    }

    /// `in`: at most [`MAX_IN_VALUES`] values (checked when added to a filter).
    pub fn is_in<V: Into<FilterValue>>(
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Condition {
        Condition {
            op: Op::In,
            field: field.into(),
            operand: Operand::List(values.into_iter().map(Into::into).collect()),
            udf: false,
        }
    }

    pub fn not_in<V: Into<FilterValue>>(
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Condition {
        Condition {
            op: Op::NotIn,
            field: field.into(),
            operand: Operand::List(values.into_iter().map(Into::into).collect()),
            udf: false,
        }
    }

    /// Marks the field as a user-defined field (`"udf": true`).
    pub fn udf(mut self) -> Condition {
        self.udf = true;
        self
    }

    pub fn op(&self) -> Op {
        self.op
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    fn check(&self) -> Result<(), FilterError> {
        // Field names come from code or settings; refuse anything that could not be one.
        if self.field.trim().is_empty()
            || self.field.chars().any(|c| c.is_control() || matches!(c, '"' | '\\'))
        {
            return Err(FilterError::BadField(self.field.clone()));
        }
        if let Operand::List(values) = &self.operand {
            if values.is_empty() {
                return Err(FilterError::EmptyList {
                    field: self.field.clone(),
                    op: self.op.as_str(),
                });
            }
            if values.len() > MAX_IN_VALUES {
                return Err(FilterError::TooManyValues {
                    field: self.field.clone(),
                    op: self.op.as_str(),
                    count: values.len(),
                });
            }
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        let mut item = Map::new();
        item.insert("op".into(), json!(self.op.as_str()));
        item.insert("field".into(), json!(self.field));
        match &self.operand {
            Operand::None => {}
            Operand::One(v) => {
                item.insert("value".into(), v.to_json());
            }
            Operand::List(vs) => {
                item.insert(
                    "value".into(),
                    Value::Array(vs.iter().map(FilterValue::to_json).collect()),
                );
            }
        }
        if self.udf {
            item.insert("udf".into(), json!(true));
        }
        Value::Object(item)
    }
}

/// A filter item: a comparison or a group of items.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Condition(Condition),
    Group(GroupOp, Vec<Item>),
}

impl From<Condition> for Item {
    fn from(c: Condition) -> Self {
        Item::Condition(c)
    }
}

impl Item {
    pub fn and(items: impl IntoIterator<Item = Item>) -> Item {
        Item::Group(GroupOp::And, items.into_iter().collect())
    }

    pub fn or(items: impl IntoIterator<Item = Item>) -> Item {
        Item::Group(GroupOp::Or, items.into_iter().collect())
    }

    fn conditions<'a>(&'a self, out: &mut Vec<&'a Condition>) {
        match self {
            Item::Condition(c) => out.push(c),
            Item::Group(_, items) => items.iter().for_each(|i| i.conditions(out)),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Item::Condition(c) => c.to_json(),
            Item::Group(op, items) => json!({
                "op": op.as_str(),
                "items": items.iter().map(Item::to_json).collect::<Vec<_>>(),
            }),
        }
    }
}

/// A whole query: top-level items (combined with AND), optional `includeFields`.
/// Always asks for pages of [`MAX_PAGE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    items: Vec<Item>,
    include_fields: Vec<String>,
}

impl Filter {
    /// Every record: `id gte 0` (Autotask wants at least one item).
    pub fn all() -> Filter {
        Filter { items: vec![Condition::gte("id", 0).into()], include_fields: Vec::new() }
    }

    /// A filter of one item.
    pub fn new(item: impl Into<Item>) -> Result<Filter, FilterError> {
        Filter { items: Vec::new(), include_fields: Vec::new() }.and(item)
    }

    /// Adds a top-level item; refuses a second UDF item and oversized lists.
    pub fn and(mut self, item: impl Into<Item>) -> Result<Filter, FilterError> {
        self.items.push(item.into());
        self.check()?;
        Ok(self)
    }

    /// Restricts the fields returned; `id` is added when missing (Autotask needs it past 500).
    pub fn include_fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.include_fields = fields.into_iter().map(Into::into).collect();
        if !self.include_fields.iter().any(|f| f.eq_ignore_ascii_case("id")) {
            self.include_fields.insert(0, "id".to_string());
        }
        self
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Checks the rules Autotask does not check itself (or checks by returning everything).
    pub fn check(&self) -> Result<(), FilterError> {
        if self.items.is_empty() {
            return Err(FilterError::Empty);
        }
        let mut conditions = Vec::new();
        self.items.iter().for_each(|i| i.conditions(&mut conditions));
        let mut udf: Option<&str> = None;
        for c in conditions {
            c.check()?;
            if c.udf {
                if let Some(first) = udf {
                    return Err(FilterError::SecondUdf {
                        first: first.to_string(),
                        second: c.field.clone(),
                    });
                }
                udf = Some(&c.field);
            }
        }
        Ok(())
    }

    /// The request body of `POST {Entity}/query`.
    pub fn to_body(&self) -> Result<Value, FilterError> {
        self.check()?;
        let mut body = Map::new();
        body.insert("filter".into(), Value::Array(self.items.iter().map(Item::to_json).collect()));
        body.insert("maxRecords".into(), json!(MAX_PAGE));
        if !self.include_fields.is_empty() {
            body.insert("includeFields".into(), json!(self.include_fields));
        }
        Ok(Value::Object(body))
    }
}

/// Splits `field in values` into filters of at most [`MAX_IN_VALUES`] values each, every one
/// also holding `base`'s items. Duplicate values are sent once. No values: no filters.
pub fn chunked_in<V: Into<FilterValue>>(
    base: Option<&Filter>,
    field: &str,
    values: impl IntoIterator<Item = V>,
) -> Result<Vec<Filter>, FilterError> {
    // In first-seen order; a scope can hold ten thousand contract ids.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<FilterValue> = values
        .into_iter()
        .map(Into::into)
        .filter(|v: &FilterValue| seen.insert(v.clone()))
        .collect();
    unique
        .chunks(MAX_IN_VALUES)
        .map(|chunk| {
            let condition = Condition::is_in(field, chunk.to_vec());
            match base {
                Some(base) => base.clone().and(condition),
                None => Filter::new(condition),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_autotasks_spelling() {
        let ops = [
            (Op::Eq, "eq"),
            (Op::NotEq, "noteq"),
            (Op::Gt, "gt"),
            (Op::Gte, "gte"),
            (Op::Lt, "lt"),
            (Op::Lte, "lte"),
            (Op::BeginsWith, "beginsWith"),
            (Op::EndsWith, "endsWith"),
            (Op::Contains, "contains"),
            (Op::Exist, "exist"),
            (Op::NotExist, "notExist"),
            (Op::In, "in"),
            (Op::NotIn, "notIn"),
        ];
        for (op, text) in ops {
            assert_eq!(op.as_str(), text);
        }
    }

    #[test]
    fn all_reads_everything_in_pages_of_500() {
        let body = Filter::all().to_body().unwrap();
        assert_eq!(body, json!({"filter":[{"op":"gte","field":"id","value":0}],"maxRecords":500}));
    }

    #[test]
    fn groups_udf_and_dates_serialise() {
        let filter = Filter::new(Condition::eq("contractType", 7))
            .unwrap()
            .and(Item::or([
                Condition::gte("endDate", NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()).into(),
                Condition::not_exist("endDate").into(),
            ]))
            .unwrap()
            .and(Condition::eq("Subscription ID", "6f1c").udf())
            .unwrap()
            .include_fields(["contractName"]);
        assert_eq!(
            filter.to_body().unwrap(),
            json!({
                "filter": [
                    {"op":"eq","field":"contractType","value":7},
                    {"op":"or","items":[
                        {"op":"gte","field":"endDate","value":"2026-11-01T00:00:00Z"},
                        {"op":"notExist","field":"endDate"}
                    ]},
                    {"op":"eq","field":"Subscription ID","value":"6f1c","udf":true}
                ],
                "maxRecords": 500,
                "includeFields": ["id", "contractName"]
            })
        );
    }

    #[test]
    fn a_second_udf_item_is_refused_even_inside_a_group() {
        let filter = Filter::new(Condition::eq("Subscription ID", "a").udf()).unwrap();
        let err = filter.and(Item::or([Condition::eq("Other", "b").udf().into()])).unwrap_err();
        assert!(matches!(err, FilterError::SecondUdf { .. }), "{err}");
    }

    #[test]
    fn in_lists_are_limited_and_chunked() {
        let err = Filter::new(Condition::is_in("id", 0..501i64)).unwrap_err();
        assert!(matches!(err, FilterError::TooManyValues { count: 501, .. }));
        let err = Filter::new(Condition::is_in("id", Vec::<i64>::new())).unwrap_err();
        assert!(matches!(err, FilterError::EmptyList { .. }));

        let base = Filter::new(Condition::eq("contractID", 4410)).unwrap();
        let ids: Vec<i64> = (0..1201).chain(0..10).collect();
        let filters = chunked_in(Some(&base), "id", ids).unwrap();
        assert_eq!(filters.len(), 3);
        let sizes: Vec<usize> = filters
            .iter()
            .map(|f| {
                let body = f.to_body().unwrap();
                assert_eq!(body["filter"][0]["field"], "contractID");
                body["filter"][1]["value"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(sizes, vec![500, 500, 201]);
        assert!(chunked_in::<i64>(None, "id", vec![]).unwrap().is_empty());
    }

    #[test]
    fn decimals_go_as_text_and_bad_fields_are_refused() {
        let body = Filter::new(Condition::gt("unitPrice", Decimal::new(12345, 4)))
            .unwrap()
            .to_body()
            .unwrap();
        assert_eq!(body["filter"][0]["value"], "1.2345");
        assert!(Filter::new(Condition::eq("a\"b", 1)).is_err());
        assert!(Filter::new(Condition::eq("", 1)).is_err());
    }
}
