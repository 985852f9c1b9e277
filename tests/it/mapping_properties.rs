//! Properties of the mapping language over generated rule sets and damaged files:
//! formatting is idempotent and never changes what the rules mean, and no input, however
//! broken, makes the checker panic or report an error without saying where.

use cmat_mapping::{compile_sources, decode_source, default_rules, format_source};
use proptest::prelude::*;

const FILE: &str = "mappings/generated.cmat";

/// Picks layout choices (spacing, line breaks, comments) from a generated list, in turn.
struct Layout {
    choices: Vec<u8>,
    next: usize,
}

impl Layout {
    fn pick(&mut self) -> u8 {
        let choice = self.choices.get(self.next % self.choices.len().max(1)).copied().unwrap_or(0);
        self.next += 1;
        choice
    }

    /// Between tokens of one statement.
    fn inline(&mut self) -> &'static str {
        [" ", "  ", "\t", " "][usize::from(self.pick() % 4)]
    }

    /// Between statements: same line, new lines, blank lines, comments.
    fn separator(&mut self) -> String {
        match self.pick() % 8 {
            0 => " ".to_string(),
            1 | 2 => "\n".to_string(),
            3 => "\n\n".to_string(),
            4 => "   # trailing note\n".to_string(),
            5 => "\n# a note on its own line\n".to_string(),
            6 => "\n\n\n  # after blank lines\n\n".to_string(),
            _ => "\t\n  \n".to_string(),
        }
    }

    fn setting(&mut self, key: &str, value: &str) -> String {
        format!("{key}{}={}{value}{}", self.inline(), self.inline(), self.separator())
    }

    fn block(&mut self, name: &str, statements: &[String]) -> String {
        format!(
            "{name}{}{{{}{}}}{}",
            self.inline(),
            self.separator(),
            statements.concat(),
            self.separator()
        )
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 #\"\\\\{}-]{0,15}"
}

fn template_strategy(corrected_date_allowed: bool) -> impl Strategy<Value = String> {
    let fields: Vec<&str> = [
        "organization",
        "customer_number",
        "service",
        "subscription",
        "subscription_name",
        "product",
        "item_code",
        "product_id",
        "billing_date",
        "period",
    ]
    .into_iter()
    .chain(corrected_date_allowed.then_some("corrected_date"))
    .collect();
    let piece = prop_oneof![
        "[A-Za-z0-9,.#-][A-Za-z0-9 ,.#-]{0,5}",
        Just("{{".to_string()),
        Just("}}".to_string()),
        proptest::sample::select(fields).prop_map(|field| format!("{{{field}}}")),
    ];
    proptest::collection::vec(piece, 1..5).prop_map(|pieces| pieces.concat())
}

fn choice(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_string)
}

/// The text of a valid rule set, laid out in a random way.
fn rule_file_strategy() -> impl Strategy<Value = String> {
    let ids = proptest::collection::vec(1i64..10_000_000_000, 8);
    let services =
        proptest::collection::btree_map(name_strategy(), choice(&["licence", "consumption"]), 0..4);
    let companies = proptest::collection::btree_map(name_strategy(), 1i64..100_000_000, 0..3);
    let explicit_services = proptest::collection::btree_map(name_strategy(), 1i64..100_000, 0..3);
    let templates = (
        template_strategy(false),
        template_strategy(false),
        template_strategy(false),
        template_strategy(false),
        template_strategy(true),
    );
    let choices = (
        choice(&["first_billing_date", "first_billing_month"]),
        choice(&["extend", "keep"]),
        choice(&["item_code", "product_id"]),
        choice(&["monthly", "quarterly", "semi_annual", "yearly"]),
        choice(&["half_up", "half_even", "down", "up"]),
        choice(&["zero_units", "report"]),
        choice(&["report", "end_contract"]),
        choice(&["overwrite", "report"]),
        choice(&["correct", "report"]),
    );
    let price = prop_oneof![
        Just("sales_price".to_string()),
        (0u32..100_000, 0u32..3).prop_map(|(units, scale)| format!(
            "cost + {}%",
            rust_decimal::Decimal::new(i64::from(units), scale)
        )),
    ];
    let options = (any::<bool>(), any::<bool>(), any::<bool>(), 1u32..1200, 0u32..28);
    let layout = proptest::collection::vec(any::<u8>(), 1..64);
    (ids, services, companies, explicit_services, templates, choices, price, options, layout)
        .prop_flat_map(|parts| {
            let order = Just((0..12usize).collect::<Vec<_>>()).prop_shuffle();
            (Just(parts), order)
        })
        .prop_map(
            |(
                (
                    ids,
                    services,
                    companies,
                    explicit_services,
                    templates,
                    choices,
                    price,
                    options,
                    layout,
                ),
                order,
            )| {
                let mut layout = Layout { choices: layout, next: 0 };
                let (has_column, has_create, has_category, term_months, scale) = options;
                let settings = vec![
                    layout.setting("service_billing_code", &ids[0].to_string()),
                    layout.setting("product_billing_code", &ids[1].to_string()),
                    layout.setting("service_level_agreement", &ids[2].to_string()),
                    layout.setting("subscription_udf", &quote("Subscription ID")),
                    layout.setting("contract_type", &ids[3].to_string()),
                    layout.setting("contract_status", &ids[4].to_string()),
                    layout.setting("timezone", "\"UTC\""),
                ];
                let mut contract = vec![
                    layout.setting("licence_name", &quote(&templates.0)),
                    layout.setting("consumption_name", &quote(&templates.1)),
                    layout.setting("start", &choices.0),
                    layout.setting("term_months", &term_months.to_string()),
                    layout.setting("renewal", &choices.1),
                ];
                if has_category {
                    contract.push(layout.setting("category", &ids[5].to_string()));
                }
                let mut product = vec![layout.setting("match", &choices.2)];
                for (key, id) in &explicit_services {
                    let keyword = format!("service{}{}", layout.inline(), quote(key));
                    product.push(layout.setting(&keyword, &id.to_string()));
                }
                if has_create {
                    let create = [
                        layout.setting("name", &quote(&templates.2)),
                        layout.setting("period", &choices.3),
                    ];
                    product.push(layout.block("create", &create));
                }
                let prices = [
                    layout.setting("unit_price", &price),
                    layout.setting("unit_cost", "cost_price"),
                    layout.setting("scale", &scale.to_string()),
                    layout.setting("rounding", &choices.4),
                ];
                let consumption = [
                    layout.setting("charge_name", &quote(&templates.3)),
                    layout.setting("correction_name", &quote(&templates.4)),
                    layout.setting("charge_type", &ids[6].to_string()),
                ];
                let policy = [
                    layout.setting("removed_product", &choices.5),
                    layout.setting("cancelled_subscription", &choices.6),
                    layout.setting("hand_edit", &choices.7),
                    layout.setting("billed_charge_mismatch", &choices.8),
                ];
                let mut items = vec![
                    layout.block("settings", &settings),
                    layout.block("contract", &contract),
                    layout.block("product", &product),
                    layout.block("prices", &prices),
                    layout.block("consumption", &consumption),
                    layout.block("policy", &policy),
                    services
                        .iter()
                        .map(|(name, kind)| {
                            layout.setting(&format!("service {}", quote(name)), kind)
                        })
                        .collect(),
                    companies
                        .iter()
                        .map(|(name, id)| {
                            layout.setting(&format!("company {}", quote(name)), &id.to_string())
                        })
                        .collect(),
                    if has_column {
                        format!(
                            "company column {}{}",
                            quote("AutotaskCompanyID"),
                            layout.separator()
                        )
                    } else {
                        String::new()
                    },
                ];
                items.resize(12, String::new());
                order.iter().map(|index| items[*index].clone()).collect::<String>()
            },
        )
}

/// The rule set's meaning without its line numbers (formatting moves lines, nothing else).
fn meaning(text: &str) -> String {
    let checked =
        compile_sources(&[(FILE.to_string(), text.to_string())]).unwrap_or_else(|diagnostics| {
            panic!("a generated rule set must compile:\n{diagnostics}\n{text}")
        });
    let debug = format!("{:?}", checked.rules);
    let mut meaning = String::new();
    let mut rest = debug.as_str();
    while let Some(at) = rest.find("line: ") {
        meaning.push_str(&rest[..at + 6]);
        rest = rest[at + 6..].trim_start_matches(|character: char| character.is_ascii_digit());
    }
    meaning.push_str(rest);
    meaning
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn formatting_is_idempotent_and_keeps_the_meaning(text in rule_file_strategy()) {
        let formatted = format_source(FILE, &text).map_err(|error| TestCaseError::fail(format!("{error}\n{text}")))?;
        let again = format_source(FILE, &formatted).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&again, &formatted);
        prop_assert_eq!(meaning(&formatted), meaning(&text));
    }

    #[test]
    fn damaged_files_get_located_errors_and_never_a_panic(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut bytes = default_rules(29682801, 29682802, 1).into_bytes();
        for (index, byte, edit) in edits {
            let at = index.index(bytes.len() + 1);
            match edit {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => bytes[at] = byte,
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.push(byte),
            }
        }
        assert_errors_are_located(bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        assert_errors_are_located(bytes);
    }
}

/// Any error names the file; those with a line point inside the file.
fn assert_errors_are_located(bytes: Vec<u8>) {
    let line_count = bytes.split(|byte| *byte == b'\n').count();
    let result = decode_source(FILE, bytes).and_then(|text| {
        compile_sources(&[(FILE.to_string(), text.clone())])?;
        format_source(FILE, &text).map(|_| ())
    });
    if let Err(diagnostics) = result {
        assert!(!diagnostics.is_empty());
        for diagnostic in diagnostics.iter() {
            assert!(diagnostic.to_string().starts_with(FILE), "{diagnostic}");
            if let Some(location) = &diagnostic.location {
                assert!(location.line >= 1 && location.line as usize <= line_count, "{diagnostic}");
                assert!(location.column >= 1, "{diagnostic}");
            }
        }
    }
}

#[test]
fn every_truncation_of_the_default_rules_is_reported_in_place() {
    let text = default_rules(29682801, 29682802, 1);
    let complete_up_to = text.trim_end().len();
    for end in (0..text.len()).filter(|end| text.is_char_boundary(*end)) {
        let prefix = &text[..end];
        match compile_sources(&[(FILE.to_string(), prefix.to_string())]) {
            Ok(_) => assert!(end >= complete_up_to, "a truncated file compiled: {end}"),
            Err(diagnostics) => {
                for diagnostic in diagnostics.iter() {
                    assert!(diagnostic.to_string().starts_with(FILE), "{diagnostic}");
                }
                if prefix.trim_end().ends_with('{') {
                    assert!(diagnostics.iter().any(|diagnostic| diagnostic.location.is_some()));
                }
            }
        }
    }
}
