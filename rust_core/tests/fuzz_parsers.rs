//! Property-based fuzzing of the parsers that take untrusted input: card numbers and expiries
//! (from request bodies) and routing rules (from the config file and `PUT /admin/routing`).
//!
//! `cargo test` runs a bounded number of cases (the CI run); `PROPTEST_CASES=200000 cargo test
//! --release --test fuzz_parsers` is the longer run (README, "Fuzzing").

use paymux_core::card::{self, Pan, YearMonth};
use paymux_core::rules::{Payment, RuleSet, Value};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn value() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("rules"),
        Just("default"),
        Just("name"),
        Just("priority"),
        Just("when"),
        Just("then"),
        Just("connectors"),
        Just("strategy"),
        Just("weights"),
        Just("currency"),
        Just("brand"),
        Just("bin"),
        Just("amount"),
        Just("gte"),
        Just("lt"),
        Just("country"),
        Just("metadata"),
        Just("time"),
        Just("days"),
        Just("utc_offset_minutes"),
        Just("split"),
        Just("priority"),
        Just("dynamic"),
        Just("stripe"),
        Just("adyen"),
        Just("EUR"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1e6f64..1e6).prop_map(Value::Float),
        names.clone().prop_map(Value::Str),
        "[0-9A-Za-z:\\-]{0,8}".prop_map(Value::Str),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((names.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any string: parse and validate never panic; a refused number's error never echoes it.
    #[test]
    fn card_parsers_never_panic(number in "\\PC{0,30}|[0-9 \\-]{0,25}") {
        let parsed = Pan::parse(&number);
        if let Ok(pan) = &parsed {
            prop_assert!((12..=19).contains(&pan.len()));
            prop_assert_eq!(pan.luhn_valid(), card::luhn_valid(&number));
        }
        match card::validate(&number) {
            Ok(info) => {
                prop_assert!(parsed.is_ok());
                prop_assert_eq!(info.last4().len(), 4);
            }
            Err(e) => {
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 6 {
                    prop_assert!(!e.message().contains(&digits));
                }
            }
        }
        if let Ok(masked) = card::mask_pan(&number) {
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!masked.contains(&digits));
        }
    }

    /// Any expiry, any month: a result or an error, never a panic.
    #[test]
    fn expiry_never_panics(m in any::<i64>(), y in any::<i64>(), ny in 2000i64..2100, nm in 1i64..=12) {
        let _ = card::check_expiry(m, y, YearMonth::new(ny, nm).unwrap());
    }

    /// Any config tree: compile returns a rule set or an error, and a compiled set evaluates any
    /// payment without panicking to connectors it knows.
    #[test]
    fn rule_compiler_never_panics(config in value(), amount in any::<i64>(), now in 0f64..4e9) {
        if let Ok(rules) = RuleSet::compile(&config) {
            let decision = rules.evaluate(
                &Payment {
                    currency: "EUR",
                    amount,
                    brand: Some("visa"),
                    card_type: None,
                    bin: Some("424242"),
                    country: Some("DE"),
                    merchant_id: Some("m"),
                    now,
                    payment_id: "pay_1",
                },
                |_, _| true,
            );
            for c in decision.connectors {
                prop_assert!((c as usize) < rules.connector_names().len());
            }
        }
    }
}
