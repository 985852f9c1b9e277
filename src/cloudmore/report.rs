//! Reading the finished report: one walker over the answer that carries what each level says
//! down to the lines below it.
//!
//! Cloudmore documents the report as the General Billing Report is built: organizations →
//! services → items (one per subscription) → products (one per billing line), with the report's
//! columns as camelCase (or PascalCase) fields at whichever level carries them. The walker does
//! not list key names at fixed depths: every object's scalar fields are inherited by everything
//! under it, every list of objects is a level below, and an object with no list under it is a
//! line. So a flat list of lines, a report wrapped in `result`, and the nested shape read alike.
//! Field names are compared without case (`organizationName` = `OrganizationName`), and an
//! entity's bare `id`/`name` take the entity's name from the list holding it (`organizations[0]`
//! `.name` is `organizationName`). Values are kept as the JSON text they came as, so amounts are
//! read exactly later ([`super::lines`]).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// A line's fields by lower-cased name, each the JSON text it came as.
pub type Fields = BTreeMap<String, Box<RawValue>>;

/// One billing line of the report: where it is in the answer, and its fields with what its
/// ancestors said.
#[derive(Debug)]
pub struct ReportLine {
    /// Its JSON path in the answer, e.g. `$.result.organizations[0].services[1].items[0].products[2]`.
    pub path: String,
    pub fields: Fields,
}

/// An answer the walker cannot read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct ReportError {
    pub path: String,
    pub message: String,
}

/// Objects under these keys are the report itself (the finished task wrapping it), not fields.
const WRAPPERS: &[&str] = &["result", "report", "data", "value"];
/// Lists of objects that are a line's attributes, not a level of the report.
const ATTRIBUTE_LISTS: &[&str] = &["customproperties"];
/// Deeper than any report Cloudmore describes; a guard against a pathological answer.
const MAX_DEPTH: usize = 16;

/// The report's lines, in the answer's order.
pub fn read_report(body: &str) -> Result<Vec<ReportLine>, ReportError> {
    let root: Box<RawValue> = serde_json::from_str(body)
        .map_err(|err| ReportError { path: "$".into(), message: format!("not JSON: {err}") })?;
    let mut out = Vec::new();
    let mut walker = Walker { out: &mut out };
    walker.value(&root, "$".to_string(), &Fields::new(), None, 0)?;
    Ok(out)
}

struct Walker<'a> {
    out: &'a mut Vec<ReportLine>,
}

/// What one object holds: its own fields, and the lists (or wrapped report) under it.
struct Node {
    fields: Fields,
    children: Vec<(String, Box<RawValue>)>,
}

impl Walker<'_> {
    fn value(
        &mut self,
        value: &RawValue,
        path: String,
        inherited: &Fields,
        list: Option<&str>,
        depth: usize,
    ) -> Result<(), ReportError> {
        if depth > MAX_DEPTH {
            return Err(ReportError { path, message: "nested deeper than any report".into() });
        }
        let at = |path: &str, message: String| ReportError { path: path.to_string(), message };
        match first_byte(value) {
            b'[' => {
                let items: Vec<Box<RawValue>> =
                    serde_json::from_str(value.get()).map_err(|e| at(&path, e.to_string()))?;
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    if first_byte(item) != b'{' {
                        return Err(at(&path, format!("{}, expected an object", describe(item))));
                    }
                    self.value(item, path, inherited, list, depth + 1)?;
                }
                Ok(())
            }
            b'{' => self.object(value, path, inherited, list, depth),
            _ => Err(at(
                &path,
                format!("{}, expected the report (an object or a list)", describe(value)),
            )),
        }
    }

    fn object(
        &mut self,
        value: &RawValue,
        path: String,
        inherited: &Fields,
        list: Option<&str>,
        depth: usize,
    ) -> Result<(), ReportError> {
        let node =
            split(value, list).map_err(|message| ReportError { path: path.clone(), message })?;
        let mut fields = inherited.clone();
        fields.extend(node.fields);
        if node.children.is_empty() {
            if depth == 0 {
                let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                return Err(ReportError {
                    path,
                    message: format!(
                        "an object with no list of organizations or lines under it (fields: {})",
                        names.join(", ")
                    ),
                });
            }
            self.out.push(ReportLine { path, fields });
            return Ok(());
        }
        for (key, child) in &node.children {
            let child_path = format!("{path}.{key}");
            let lower = key.to_ascii_lowercase();
            let list = if WRAPPERS.contains(&lower.as_str()) { list } else { Some(lower.as_str()) };
            self.value(child, child_path, &fields, list, depth + 1)?;
        }
        Ok(())
    }
}

/// An object's own fields and its children. A nested object that is not a wrapper is flattened
/// into fields under its key (`organization: {name}` → `organizationname`).
fn split(value: &RawValue, list: Option<&str>) -> Result<Node, String> {
    let object: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(value.get()).map_err(|e| e.to_string())?;
    let mut node = Node { fields: Fields::new(), children: Vec::new() };
    for (key, raw) in object {
        let lower = key.to_ascii_lowercase();
        match first_byte(&raw) {
            // A level the documentation names is one whatever it holds (the walker then names
            // what is not an object); another list is one when it holds objects.
            b'[' if entity_of(&lower).is_some()
                || (!ATTRIBUTE_LISTS.contains(&lower.as_str()) && holds_objects(&raw)) =>
            {
                node.children.push((key, raw));
            }
            b'{' if WRAPPERS.contains(&lower.as_str()) => node.children.push((key, raw)),
            b'{' => {
                let inner: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                for (name, value) in inner {
                    node.fields.insert(format!("{lower}{}", name.to_ascii_lowercase()), value);
                }
            }
            _ => {
                node.fields.insert(lower, raw);
            }
        }
    }
    if let Some(entity) = list.and_then(entity_of) {
        for bare in ["id", "name"] {
            if let Some(value) = node.fields.get(bare).cloned() {
                node.fields.entry(format!("{entity}{bare}")).or_insert(value);
            }
        }
    }
    Ok(node)
}

/// The entity a list's members are, for their bare `id` and `name`.
fn entity_of(list: &str) -> Option<&'static str> {
    match list {
        "organizations" => Some("organization"),
        "services" => Some("service"),
        "items" | "subscriptions" => Some("subscription"),
        "products" | "lines" | "billinglines" => Some("product"),
        _ => None,
    }
}

/// A list is a level of the report when it holds objects (an empty list counts: an
/// organization without services has no lines). A list of scalars is a field.
fn holds_objects(raw: &RawValue) -> bool {
    let inner = raw.get().trim_start().trim_start_matches('[').trim_start();
    inner.starts_with('{') || inner.starts_with(']')
}

fn first_byte(value: &RawValue) -> u8 {
    value.get().trim_start().bytes().next().unwrap_or(b' ')
}

/// A value as an error message shows it: its kind and its first characters.
fn describe(value: &RawValue) -> String {
    let text: String = value.get().trim().chars().take(24).collect();
    let kind = match first_byte(value) {
        b'"' => "text",
        b'[' => "a list",
        b'{' => "an object",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    format!("{kind} {text}")
}
