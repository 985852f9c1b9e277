//! Which scoped rules are in force for each bill line, fast: a large tenant has 248,000 lines a
//! period and a price book some fifty rules, but few distinct (organization, subscription…)
//! contexts and fewer distinct products. A rule's terms are split into those two halves; each
//! half is evaluated once per distinct context or product and kept as a bit set, and a line's
//! matching rules are the AND of its two sets. Each distinct set of matching rules is resolved
//! once ([`RuleSet::resolve_matched`]).

use std::collections::HashMap;

use super::scoped::{Ambiguity, Dimension, LineFacts, ScopeTerm};
use super::{Resolved, RuleSet, ScopedRule};
use crate::billing::BillLine;

/// A set of rules by index.
type Bits = Vec<u64>;

/// The rules in force for each bill line, cached by context and product so that resolving a
/// large bill costs a few hash lookups a line; one per evaluation of the rules.
pub struct Resolutions<'r> {
    rules: &'r RuleSet,
    resolved: Vec<Resolved<'r>>,
    by_matched: FastMap<Bits, Result<usize, Ambiguity>>,
    /// Rules whose context terms (service, organization, subscription, term, currency) hold,
    /// by the line's context.
    by_context: FastMap<String, Bits>,
    /// Rules whose product terms (Item Code, Product ID, name, meter category) hold, by product.
    by_product: FastMap<String, Bits>,
    /// The dimensions some rule looks at: the cache keys hold only those fields.
    used: Vec<Dimension>,
    /// Reused from line to line: the cache keys and the matched set.
    key: String,
    matched: Bits,
}

/// The caches' keys are short texts built per line: a multiply-rotate hash (as rustc's) is
/// several times cheaper than the default SipHash, and no key comes from an adversary.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// Terms about the product a line bills; the others are about its context.
fn is_product_term(term: &ScopeTerm) -> bool {
    matches!(
        term,
        ScopeTerm::ItemCode(_)
            | ScopeTerm::ProductId(_)
            | ScopeTerm::ProductName(_)
            | ScopeTerm::MeterCategory(_)
    )
}

/// Appends a field and a separator no bill text holds (a unit separator).
fn key_of(key: &mut String, field: &str) {
    key.push_str(field);
    key.push('\u{1f}');
}

impl<'r> Resolutions<'r> {
    /// Empty caches for `rules`, keyed only by the dimensions some rule looks at.
    pub fn new(rules: &'r RuleSet) -> Self {
        let mut used: Vec<Dimension> = rules
            .scoped
            .iter()
            .flat_map(|rule| rule.scope.iter().map(ScopeTerm::dimension))
            .collect();
        used.sort();
        used.dedup();
        Resolutions {
            rules,
            resolved: Vec::new(),
            by_matched: FastMap::default(),
            by_context: FastMap::default(),
            by_product: FastMap::default(),
            used,
            key: String::new(),
            matched: Vec::new(),
        }
    }

    fn uses(&self, dimension: Dimension) -> bool {
        self.used.binary_search(&dimension).is_ok()
    }

    /// The rules of one half whose terms of that half all hold for the line.
    fn half(&self, facts: &LineFacts<'_>, product: bool) -> Bits {
        let mut bits = vec![0u64; self.rules.scoped.len().div_ceil(64)];
        for (index, rule) in self.rules.scoped.iter().enumerate() {
            let holds = rule
                .scope
                .iter()
                .filter(|term| is_product_term(term) == product)
                .all(|term| term.matches(facts));
            if holds {
                bits[index / 64] |= 1 << (index % 64);
            }
        }
        bits
    }

    /// The index of the line's resolution in [`Resolutions::get`], or the ambiguity.
    pub fn of(&mut self, line: &BillLine) -> Result<usize, Ambiguity> {
        // Without a price book every line has the defaults: nothing to look at.
        if self.rules.scoped.is_empty() {
            if self.resolved.is_empty() {
                let defaults = self.rules.resolve_matched(Vec::new())?;
                self.resolved.push(defaults);
            }
            return Ok(0);
        }
        let facts = LineFacts::of(line);
        let mut key = std::mem::take(&mut self.key);
        self.context_key(&facts, &mut key);
        if !self.by_context.contains_key(key.as_str()) {
            let bits = self.half(&facts, false);
            self.by_context.insert(key.clone(), bits);
        }
        let mut matched = std::mem::take(&mut self.matched);
        matched.clear();
        matched.extend_from_slice(&self.by_context[key.as_str()]);
        self.product_key(&facts, &mut key);
        if !self.by_product.contains_key(key.as_str()) {
            let bits = self.half(&facts, true);
            self.by_product.insert(key.clone(), bits);
        }
        for (word, product) in matched.iter_mut().zip(&self.by_product[key.as_str()]) {
            *word &= product;
        }
        self.key = key;
        let result = self.resolution_of(&matched);
        self.matched = matched;
        result
    }

    /// The line's context as a cache key: only the fields some rule looks at.
    fn context_key(&self, facts: &LineFacts<'_>, key: &mut String) {
        key.clear();
        for (dimension, field) in [
            (Dimension::Service, facts.service),
            (Dimension::Broker, facts.broker),
            (Dimension::Organization, facts.organization),
            (Dimension::Organization, facts.customer_number),
            (Dimension::OrganizationGroup, facts.organization_groups),
            (Dimension::Subscription, facts.subscription),
            (Dimension::Term, facts.term),
            (Dimension::Currency, facts.currency),
        ] {
            if self.uses(dimension) {
                key_of(key, field);
            }
        }
        // Dated rules: the Billing Date is part of the context (a bill has one).
        if self.uses(Dimension::From) || self.uses(Dimension::Until) {
            use std::fmt::Write as _;
            let _ = write!(key, "{}", facts.billing_date);
        }
    }

    /// The line's product as a cache key: only the fields some rule looks at.
    fn product_key(&self, facts: &LineFacts<'_>, key: &mut String) {
        key.clear();
        for (dimensions, field) in [
            ([Dimension::Product, Dimension::Product], facts.item_code),
            ([Dimension::Product, Dimension::Product], facts.product_id),
            ([Dimension::ProductName, Dimension::MeterCategory], facts.product_name),
        ] {
            if dimensions.iter().any(|dimension| self.uses(*dimension)) {
                key_of(key, field);
            }
        }
    }

    /// The resolution of a set of matching rules, resolved the first time the set is seen.
    fn resolution_of(&mut self, matched: &Bits) -> Result<usize, Ambiguity> {
        if let Some(known) = self.by_matched.get(matched.as_slice()) {
            return known.clone();
        }
        let mut rules: Vec<&'r ScopedRule> = self
            .rules
            .scoped
            .iter()
            .enumerate()
            .filter(|(index, _)| matched[index / 64] & (1 << (index % 64)) != 0)
            .map(|(_, rule)| rule)
            .collect();
        // Most specific first; in file order among equals.
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.specificity));
        let result = self.rules.resolve_matched(rules).map(|resolved| {
            self.resolved.push(resolved);
            self.resolved.len() - 1
        });
        self.by_matched.insert(matched.clone(), result.clone());
        result
    }

    /// The resolution [`Resolutions::of`] gave the index of, shared by every line with the
    /// same matching rules.
    pub fn get(&self, index: usize) -> &Resolved<'r> {
        &self.resolved[index]
    }

    /// The rules it resolves, for callers that hold only the resolutions.
    pub fn rules(&self) -> &'r RuleSet {
        self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{PriceSource, Ruled, ScopedSettings, Specificity};
    use crate::testing::{default_rules, line};

    #[test]
    fn the_cached_halves_give_what_resolving_each_line_gives() {
        let mut rules = default_rules();
        let terms = [
            vec![ScopeTerm::ProductName("product a*".into())],
            vec![ScopeTerm::CustomerNumber("C1".into())],
            vec![ScopeTerm::CustomerNumber("C1".into()), ScopeTerm::ItemCode("B".into())],
            vec![
                ScopeTerm::Service("Azure Plan".into()),
                ScopeTerm::MeterCategory("Product M1".into()),
            ],
            vec![ScopeTerm::Organization("Fabrikam".into())],
        ];
        for (number, scope) in terms.into_iter().enumerate() {
            let origin = crate::rules::RuleOrigin {
                file: "mappings/p.cmat".into(),
                line: number as u32 + 1,
            };
            rules.scoped.push(ScopedRule {
                specificity: Specificity::of(&scope),
                scope,
                set: ScopedSettings {
                    unit_price: Some(Ruled {
                        value: PriceSource::Fixed(number.into()),
                        origin: origin.clone(),
                    }),
                    ..Default::default()
                },
                origin,
            });
        }
        let mut other = line("2026-10-01", "Fabrikam", "Microsoft CSP", "S9", "A", "1", "5");
        other.customer_number = "C2".into();
        let lines = [
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "1", "5"),
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "B", "1", "5"),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M1", "1", "5"),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M2", "1", "5"),
            other,
        ];
        let mut resolutions = Resolutions::new(&rules);
        for bill_line in &lines {
            let cached = resolutions
                .of(bill_line)
                .map(|index| resolutions.get(index).unit_price.origin.clone());
            let direct = rules
                .resolve(&LineFacts::of(bill_line))
                .map(|resolved| resolved.unit_price.origin.clone());
            assert_eq!(cached, direct, "{bill_line:?}");
        }
        // Contoso's line A: customer C1 (an organization) beats the product pattern.
        assert_eq!(
            resolutions.of(&lines[0]).map(|index| resolutions.get(index).unit_price.origin.line),
            Ok(2)
        );
    }
}
