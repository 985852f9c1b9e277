//! `POST {Entity}/query`: filters, includeFields and paging, as Autotask evaluates them.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::schema::{coerce, decimal_of, parse_datetime, value_text, EntityDef, FieldDef, Kind};
use super::ApiError;

pub const PAGE_MAX: usize = 500;
const MAX_OR_CONDITIONS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
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
    fn parse(text: &str) -> Option<Op> {
        Some(match text.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "noteq" => Op::NotEq,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "beginswith" => Op::BeginsWith,
            "endswith" => Op::EndsWith,
            "contains" => Op::Contains,
            "exist" => Op::Exist,
            "notexist" => Op::NotExist,
            "in" => Op::In,
            "notin" => Op::NotIn,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Target {
    Field(&'static str, Kind),
    Udf(String),
}

#[derive(Debug, Clone)]
enum Node {
    /// What an unknown op becomes: dropped, it restricts nothing.
    All,
    And(Vec<Node>),
    Or(Vec<Node>),
    Cond {
        op: Op,
        target: Target,
        values: Vec<Value>,
    },
}

#[derive(Debug, Clone)]
pub struct Query {
    filter: Node,
    pub max_records: usize,
    include_fields: Option<Vec<String>>,
}

fn e500(message: impl Into<String>) -> ApiError {
    ApiError::new(500, message)
}

fn get<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

struct Parser<'a> {
    def: &'a EntityDef,
    udfs: &'a [String],
    udf_filters: usize,
    /// The tenant's offset from UTC, in minutes: a date-time filter value without a zone is
    /// read in the tenant's time (the seed's `tenantUtcOffsetMinutes`; 0 reads it as UTC).
    tenant_offset_minutes: i32,
}

/// A filter value on a date field without a zone, read in the tenant's time: the UTC instant
/// it names. A value with `Z` or an offset, or a bare date, is left as it is.
fn zoneless_to_utc(text: &str, offset_minutes: i32) -> Option<String> {
    let text = text.trim();
    let time = text.get(10..)?;
    let zoned = time.ends_with('Z') || time.contains('+') || time.get(1..)?.contains('-');
    if offset_minutes == 0 || !time.starts_with('T') || zoned {
        return None;
    }
    let local = parse_datetime(text)?;
    let utc = local - chrono::Duration::minutes(i64::from(offset_minutes));
    Some(format!("{}Z", utc.format("%Y-%m-%dT%H:%M:%S")))
}

impl Parser<'_> {
    fn node(&mut self, item: &Value) -> Result<Node, ApiError> {
        let object = item.as_object().ok_or_else(|| e500("Each filter item must be an object."))?;
        let op_text = get(object, "op").and_then(Value::as_str).unwrap_or("");
        if let Some(items) = get(object, "items") {
            let items =
                items.as_array().ok_or_else(|| e500("A filter group's items must be an array."))?;
            let children = items.iter().map(|i| self.node(i)).collect::<Result<Vec<_>, _>>()?;
            return Ok(match op_text.to_ascii_lowercase().as_str() {
                "and" => Node::And(children),
                "or" => Node::Or(children),
                _ => Node::All,
            });
        }
        let field_name = get(object, "field")
            .and_then(Value::as_str)
            .ok_or_else(|| e500("A filter item needs a field."))?;
        let is_udf = get(object, "udf").and_then(Value::as_bool).unwrap_or(false);
        let target = self.target(field_name, is_udf)?;
        let Some(op) = Op::parse(op_text) else {
            return Ok(Node::All);
        };
        let raw = get(object, "value").cloned().unwrap_or(Value::Null);
        let values = match op {
            Op::Exist | Op::NotExist => Vec::new(),
            Op::In | Op::NotIn => {
                let list = raw.as_array().ok_or_else(|| {
                    e500(format!("The value of an '{op_text}' filter must be an array."))
                })?;
                list.iter().map(|v| self.value(&target, v)).collect::<Result<_, _>>()?
            }
            _ => vec![self.value(&target, &raw)?],
        };
        Ok(Node::Cond { op, target, values })
    }

    /// What a filter item compares: a field of the entity, or one of its UDFs (at most one
    /// UDF per query, as Autotask allows).
    fn target(&mut self, field_name: &str, is_udf: bool) -> Result<Target, ApiError> {
        if !is_udf {
            let field = self.def.field(field_name).ok_or_else(|| {
                e500(format!("Unable to find {field_name} in the {} entity.", self.def.name))
            })?;
            return Ok(Target::Field(field.name, field.kind));
        }
        let name =
            self.udfs.iter().find(|n| n.eq_ignore_ascii_case(field_name)).ok_or_else(|| {
                e500(format!(
                    "Unable to find {field_name} in the {} entity's user-defined fields.",
                    self.def.name
                ))
            })?;
        self.udf_filters += 1;
        if self.udf_filters > 1 {
            return Err(e500("Only one user-defined field may be used in a query filter."));
        }
        Ok(Target::Udf(name.clone()))
    }

    fn value(&self, target: &Target, value: &Value) -> Result<Value, ApiError> {
        match target {
            Target::Udf(_) => {
                Ok(if value.is_null() { Value::Null } else { Value::String(value_text(value)) })
            }
            Target::Field(name, _) => {
                let field: &FieldDef = self.def.field(name).ok_or_else(|| {
                    ApiError::new(500, format!("{name} is not a field of {}.", self.def.name))
                })?;
                if matches!(field.kind, Kind::Date | Kind::DateTime) {
                    if let Some(utc) =
                        value.as_str().and_then(|t| zoneless_to_utc(t, self.tenant_offset_minutes))
                    {
                        // A date field holds midnight: compared with the instant, not its day.
                        let instant = FieldDef { kind: Kind::DateTime, ..field.clone() };
                        return coerce(&instant, &Value::String(utc)).map_err(e500);
                    }
                }
                coerce(field, value).map_err(e500)
            }
        }
    }
}

/// `maxRecords`: 1 to a page's maximum, the maximum when absent.
fn max_records(object: &Map<String, Value>) -> Result<usize, ApiError> {
    match get(object, "maxRecords") {
        None | Some(Value::Null) => Ok(PAGE_MAX),
        Some(v) => match v.as_i64() {
            Some(n) if (1..=PAGE_MAX as i64).contains(&n) => Ok(n as usize),
            _ => Err(e500(format!("maxRecords must be between 1 and {PAGE_MAX}."))),
        },
    }
}

/// `includeFields`: the fields each row keeps, spelt as the schema spells them (`None`: all).
fn include_fields(
    def: &EntityDef,
    object: &Map<String, Value>,
) -> Result<Option<Vec<String>>, ApiError> {
    match get(object, "includeFields") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(names)) if names.is_empty() => Ok(None),
        Some(Value::Array(names)) => {
            let mut out = Vec::new();
            for name in names {
                let name = name.as_str().ok_or_else(|| e500("includeFields holds field names."))?;
                if name.eq_ignore_ascii_case("userDefinedFields") {
                    out.push("userDefinedFields".to_string());
                    continue;
                }
                let field = def.field(name).ok_or_else(|| {
                    e500(format!("Unable to find {name} in the {} entity.", def.name))
                })?;
                out.push(field.name.to_string());
            }
            Ok(Some(out))
        }
        Some(_) => Err(e500("includeFields must be an array.")),
    }
}

/// The number of OR'ed conditions a filter holds (`in` lists count each value).
fn or_conditions(node: &Node, inside_or: bool) -> usize {
    match node {
        Node::All => 0,
        Node::And(items) => items.iter().map(|n| or_conditions(n, false)).sum(),
        Node::Or(items) => items.iter().map(|n| or_conditions(n, true)).sum(),
        Node::Cond { op: Op::In | Op::NotIn, values, .. } => values.len(),
        Node::Cond { .. } => usize::from(inside_or),
    }
}

impl Query {
    pub fn parse(def: &EntityDef, udfs: &[String], body: &Value) -> Result<Query, ApiError> {
        Query::parse_in(def, udfs, body, 0)
    }

    /// Like [`Query::parse`] on a tenant `tenant_offset_minutes` from UTC: zone-less date-time
    /// values are read in the tenant's time.
    pub fn parse_in(
        def: &EntityDef,
        udfs: &[String],
        body: &Value,
        tenant_offset_minutes: i32,
    ) -> Result<Query, ApiError> {
        let empty = Map::new();
        let object = match body {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(e500("The query body must be a JSON object.")),
        };
        let mut parser = Parser { def, udfs, udf_filters: 0, tenant_offset_minutes };
        let filter = match get(object, "filter") {
            None | Some(Value::Null) => Node::And(Vec::new()),
            Some(Value::Array(items)) => {
                Node::And(items.iter().map(|i| parser.node(i)).collect::<Result<_, _>>()?)
            }
            Some(_) => return Err(e500("filter must be an array.")),
        };
        if or_conditions(&filter, false) > MAX_OR_CONDITIONS {
            return Err(e500(format!(
                "A query may hold at most {MAX_OR_CONDITIONS} OR conditions."
            )));
        }
        let max_records = max_records(object)?;
        let include_fields = include_fields(def, object)?;
        Ok(Query { filter, max_records, include_fields })
    }

    pub fn matches(&self, row: &Value) -> bool {
        eval(&self.filter, row)
    }

    /// Checks what can only be checked once the result size is known.
    pub fn check_total(&self, total: usize) -> Result<(), ApiError> {
        if total > PAGE_MAX {
            if let Some(fields) = &self.include_fields {
                if !fields.iter().any(|f| f == "id") {
                    return Err(e500(
                        "includeFields must contain id when a query returns more than 500 records.",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn project(&self, row: &Value) -> Value {
        match (&self.include_fields, row) {
            (Some(fields), Value::Object(object)) => {
                let mut out = Map::new();
                for name in fields {
                    if let Some(v) = object.get(name) {
                        out.insert(name.clone(), v.clone());
                    }
                }
                Value::Object(out)
            }
            _ => row.clone(),
        }
    }
}

fn eval(node: &Node, row: &Value) -> bool {
    match node {
        Node::All => true,
        Node::And(items) => items.iter().all(|n| eval(n, row)),
        Node::Or(items) => {
            let live: Vec<&Node> = items.iter().filter(|n| !matches!(n, Node::All)).collect();
            live.is_empty() || live.iter().any(|n| eval(n, row))
        }
        Node::Cond { op, target, values } => {
            let (actual, kind) = match target {
                Target::Field(name, kind) => {
                    (row.get(*name).cloned().unwrap_or(Value::Null), *kind)
                }
                Target::Udf(name) => (udf_value(row, name), Kind::Str),
            };
            let present = !actual.is_null() && actual.as_str() != Some("");
            let expected = values.first().cloned().unwrap_or(Value::Null);
            match op {
                Op::Exist => present,
                Op::NotExist => !present,
                _ if actual.is_null() => expected.is_null() && *op == Op::Eq,
                Op::Eq => compare(kind, &actual, &expected) == Some(Ordering::Equal),
                Op::NotEq => {
                    !expected.is_null()
                        && compare(kind, &actual, &expected) != Some(Ordering::Equal)
                }
                Op::Gt => compare(kind, &actual, &expected) == Some(Ordering::Greater),
                Op::Gte => matches!(
                    compare(kind, &actual, &expected),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
                Op::Lt => compare(kind, &actual, &expected) == Some(Ordering::Less),
                Op::Lte => matches!(
                    compare(kind, &actual, &expected),
                    Some(Ordering::Less | Ordering::Equal)
                ),
                Op::BeginsWith => lower(&actual).starts_with(&lower(&expected)),
                Op::EndsWith => lower(&actual).ends_with(&lower(&expected)),
                Op::Contains => lower(&actual).contains(&lower(&expected)),
                Op::In => values.iter().any(|v| compare(kind, &actual, v) == Some(Ordering::Equal)),
                Op::NotIn => {
                    !values.iter().any(|v| compare(kind, &actual, v) == Some(Ordering::Equal))
                }
            }
        }
    }
}

fn udf_value(row: &Value, name: &str) -> Value {
    row.get("userDefinedFields")
        .and_then(Value::as_array)
        .and_then(|udfs| {
            udfs.iter()
                .find(|u| u.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|u| u.get("value").cloned())
        })
        .unwrap_or(Value::Null)
}

fn lower(value: &Value) -> String {
    if value.is_null() {
        return String::new();
    }
    value_text(value).to_lowercase()
}

/// `2026-11-01` of `2026-11-01` or `2026-11-01T00:00:00` (with `Z` or `.000`): a date at midnight.
fn midnight_date(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let midnight = matches!(
        text.get(10..)?,
        "" | "T00:00:00" | "T00:00:00Z" | "T00:00:00.000" | "T00:00:00.000Z"
    );
    midnight.then(|| text.get(..10)).flatten()
}

fn compare(kind: Kind, a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    match kind {
        Kind::Integer | Kind::Long | Kind::Double => match (a.as_i64(), b.as_i64()) {
            // Ids and counts: no decimal parsing (an `in` of 500 ids is compared on every row).
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(decimal_of(a)?.cmp(&decimal_of(b)?)),
        },
        Kind::Str => Some(lower(a).cmp(&lower(b))),
        Kind::Bool => Some(a.as_bool()?.cmp(&b.as_bool()?)),
        Kind::Date | Kind::DateTime => {
            let (a, b) = (a.as_str()?, b.as_str()?);
            // Two midnight ISO dates compare as text (no parsing on every row of every page).
            if let (Some(x), Some(y)) = (midnight_date(a), midnight_date(b)) {
                return Some(x.cmp(y));
            }
            Some(parse_datetime(a)?.cmp(&parse_datetime(b)?))
        }
    }
}

/// Where a page starts: the whole result, after an id (next page) or before one (previous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFrom {
    Start,
    After(i64),
    Before(i64),
}

/// Runs a query over rows ordered by id: the response body.
pub fn run(
    query: &Query,
    rows: &[Value],
    from: PageFrom,
    page_url: &dyn Fn(&str, i64) -> String,
) -> Result<Value, ApiError> {
    let matching: Vec<&Value> = rows.iter().filter(|r| query.matches(r)).collect();
    query.check_total(matching.len())?;
    let id_of = |r: &Value| r.get("id").and_then(Value::as_i64).unwrap_or(0);
    let n = query.max_records;
    let (start, end) = match from {
        PageFrom::Start => (0, n.min(matching.len())),
        PageFrom::After(id) => {
            let s = matching.iter().position(|r| id_of(r) > id).unwrap_or(matching.len());
            (s, (s + n).min(matching.len()))
        }
        PageFrom::Before(id) => {
            let e = matching.iter().position(|r| id_of(r) >= id).unwrap_or(matching.len());
            (e.saturating_sub(n), e)
        }
    };
    let page = &matching[start..end];
    let next = (end < matching.len() && !page.is_empty())
        .then(|| page_url("next", id_of(page[page.len() - 1])));
    let prev = (start > 0 && !page.is_empty()).then(|| page_url("prev", id_of(page[0])));
    let items: Vec<Value> = page.iter().map(|r| query.project(r)).collect();
    Ok(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(),
            "requestCount": n,
            "prevPageUrl": prev,
            "nextPageUrl": next,
        }
    }))
}

pub fn count(query: &Query, rows: &[Value]) -> Value {
    json!({"queryCount": rows.iter().filter(|r| query.matches(r)).count()})
}
