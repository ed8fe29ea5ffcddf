//! The local event-source filter against Lambda's documented filter semantics
//! (EventBridge patterns), by construction rather than by a second implementation:
//!
//! - a pattern built from an event, naming some of its fields with options that the
//!   documentation says match (the value itself, one of an array's values, a prefix of
//!   a string, `exists: true`, `anything-but` another value, `exists: false` for a field
//!   the event lacks, alongside options that do not match), must match it;
//! - the same pattern with one field's options all replaced by non-matching ones (a
//!   different value, a prefix the string lacks, `exists: false` for a present field,
//!   `anything-but` the value itself, any value for an absent field) must not.
//!
//! `scripts/fuzz` runs at least 100 000 cases per property.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use local::filter::Pattern;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A scalar leaf of an event.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z]{0,6}".prop_map(Value::String),
        (-50i64..50).prop_map(|n| json!(n)),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 1..4).prop_map(Value::Array),
    ]
}

/// An event: objects two levels deep with distinct field names.
fn event() -> impl Strategy<Value = Value> {
    let inner = prop::collection::btree_map("[a-e]", leaf(), 1..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()));
    prop::collection::btree_map("[f-j]", prop_oneof![2 => leaf(), 1 => inner], 1..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// The leaves of an event, by path.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match value {
        Value::Object(fields) => {
            for (name, child) in fields {
                path.push(name.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

/// Options that match a present leaf, per the documentation.
fn matching_options(leaf: &Value, choice: u8) -> Vec<Value> {
    let values: Vec<Value> = match leaf {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    match (choice % 4, leaf) {
        (1, Value::String(s)) => vec![json!({ "prefix": s[..s.len() / 2] })],
        (2, _) => vec![json!({ "exists": true })],
        (3, scalar) if !scalar.is_array() => {
            vec![json!({ "anything-but": [different(scalar)] })]
        }
        _ => vec![values[usize::from(choice) % values.len()].clone()],
    }
}

/// Options that cannot match a present leaf, per the documentation.
fn failing_options(leaf: &Value, choice: u8) -> Vec<Value> {
    match (choice % 4, leaf) {
        (1, Value::String(s)) => vec![json!({ "prefix": format!("{s}~") })],
        (2, _) => vec![json!({ "exists": false })],
        (3, scalar) if !scalar.is_array() => vec![json!({ "anything-but": [scalar] })],
        _ => vec![json!("~never~")],
    }
}

/// A scalar that is not `value`.
fn different(value: &Value) -> Value {
    match value {
        Value::String(s) => json!(format!("{s}~")),
        Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1000),
        Value::Bool(b) => json!(!b),
        _ => json!("~"),
    }
}

fn set(pattern: &mut Value, path: &[String], options: Vec<Value>) {
    let mut target = pattern;
    for name in &path[..path.len() - 1] {
        target = target
            .as_object_mut()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(|| json!({}));
    }
    target[path[path.len() - 1].as_str()] = Value::Array(options);
}

proptest! {
    #[test]
    fn a_pattern_built_to_match_matches_and_breaking_one_field_does_not(
        event in event(),
        picks in prop::collection::vec(any::<(bool, u8)>(), 12),
        with_absent in any::<bool>(),
        broken in any::<usize>(),
        breaking in any::<u8>(),
    ) {
        let mut all = Vec::new();
        leaves(&event, &mut Vec::new(), &mut all);
        // Name some of the leaves (at least one), each with a matching option and,
        // beside it, one that does not match: a list matches when any option does.
        let mut named: Vec<(Vec<String>, Option<Value>)> = all
            .iter()
            .zip(picks.iter().cycle())
            .filter(|(_, (keep, _))| *keep)
            .map(|((path, leaf), _)| (path.clone(), Some(leaf.clone())))
            .collect();
        if named.is_empty() {
            named.push((all[0].0.clone(), Some(all[0].1.clone())));
        }
        if with_absent {
            named.push((vec!["zz".to_owned()], None));
        }
        let mut pattern = json!({});
        for ((path, leaf), (_, choice)) in named.iter().zip(picks.iter().cycle()) {
            let options = match leaf {
                Some(leaf) => {
                    let mut options = failing_options(leaf, choice.wrapping_add(1));
                    options.extend(matching_options(leaf, *choice));
                    options
                }
                None => vec![json!({ "exists": false })],
            };
            set(&mut pattern, path, options);
        }
        let compiled = Pattern::new(pattern.clone()).unwrap();
        prop_assert!(compiled.matches(&event), "{pattern} should match {event}");

        let (path, leaf) = &named[broken % named.len()];
        let options = match leaf {
            Some(leaf) => failing_options(leaf, breaking),
            None => vec![if breaking % 2 == 0 { json!({ "exists": true }) } else { json!("x") }],
        };
        set(&mut pattern, path, options);
        let compiled = Pattern::new(pattern.clone()).unwrap();
        prop_assert!(!compiled.matches(&event), "{pattern} should not match {event}");
    }

    #[test]
    fn any_pattern_is_checked_or_refused_and_matching_never_panics(
        pattern in any_json(),
        event in any_json(),
    ) {
        if let Ok(compiled) = Pattern::new(pattern) {
            let _ = compiled.matches(&event);
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,4}".prop_map(Value::String),
        Just(json!({"prefix": "a"})),
        Just(json!({"exists": true})),
        Just(json!({"anything-but": ["a"]})),
        Just(json!({"numeric": [">", 1]})),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
