//! Event filtering as Lambda's event source mappings do it (the EventBridge pattern
//! language): a record passes a pattern when every field named in the pattern matches.
//!
//! Supported: nested objects, lists of exact values (strings, numbers, booleans, null),
//! and the operators `{"exists": bool}`, `{"prefix": "..."}` and
//! `{"anything-but": [...]}`. Any other operator is an error when the pattern is
//! compiled, never a silent pass.

use serde_json::Value;

/// A pattern the reader does not support.
#[derive(Debug, thiserror::Error)]
#[error("unsupported filter pattern: {0}")]
pub struct PatternError(String);

/// A checked filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern(Value);

impl Pattern {
    /// Checks that `pattern` only uses supported forms.
    ///
    /// # Errors
    /// [`PatternError`] naming the first unsupported part.
    pub fn new(pattern: Value) -> Result<Self, PatternError> {
        check(&pattern)?;
        Ok(Self(pattern))
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Value) -> bool {
        matches_object(&self.0, event)
    }
}

fn check(pattern: &Value) -> Result<(), PatternError> {
    let Value::Object(fields) = pattern else {
        return Err(PatternError(format!("expected an object, got {pattern}")));
    };
    for (name, rule) in fields {
        match rule {
            Value::Object(_) => check(rule)?,
            Value::Array(options) => {
                for option in options {
                    if let Value::Object(operator) = option {
                        let known = operator.len() == 1
                            && ["exists", "prefix", "anything-but"]
                                .iter()
                                .any(|k| operator.contains_key(*k));
                        if !known {
                            return Err(PatternError(format!("operator {option} in field {name}")));
                        }
                    }
                }
            }
            other => {
                return Err(PatternError(format!(
                    "field {name} must be an object or a list, got {other}"
                )));
            }
        }
    }
    Ok(())
}

fn matches_object(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, rule)| {
        let value = event.get(name);
        match rule {
            Value::Object(_) => value.is_some_and(|v| matches_object(rule, v)),
            Value::Array(options) => options.iter().any(|option| matches_option(option, value)),
            _ => false,
        }
    })
}

fn matches_option(option: &Value, value: Option<&Value>) -> bool {
    if let Value::Object(operator) = option {
        if let Some(exists) = operator.get("exists").and_then(Value::as_bool) {
            return value.is_some() == exists;
        }
        if let Some(prefix) = operator.get("prefix").and_then(Value::as_str) {
            return value
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with(prefix));
        }
        if let Some(excluded) = operator.get("anything-but") {
            let excluded: Vec<&Value> = match excluded {
                Value::Array(list) => list.iter().collect(),
                single => vec![single],
            };
            return value.is_some_and(|v| !excluded.contains(&v));
        }
        return false;
    }
    match value {
        Some(Value::Array(values)) => values.iter().any(|v| v == option),
        Some(v) => v == option,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_filter() -> Pattern {
        Pattern::new(json!({"eventName":["INSERT"],"dynamodb":{"NewImage":{"entity":{"S":["ORDER"]},"order_status":{"S":["ORDERED"]}}}})).unwrap()
    }

    fn record(event: &str, entity: &str, status: &str) -> Value {
        json!({"eventName": event, "dynamodb": {"NewImage": {"entity": {"S": entity}, "order_status": {"S": status}}}})
    }

    #[test]
    fn the_templates_filter_keeps_new_ordered_orders_only() {
        let filter = order_filter();
        assert!(filter.matches(&record("INSERT", "ORDER", "ORDERED")));
        assert!(!filter.matches(&record("MODIFY", "ORDER", "ORDERED")));
        assert!(!filter.matches(&record("INSERT", "ORDER", "PROCESSED")));
        assert!(!filter.matches(&record("INSERT", "ORDER_LINE", "ORDERED")));
        assert!(!filter.matches(&json!({"eventName": "INSERT", "dynamodb": {}})));
    }

    #[test]
    fn operators_work_and_unknown_ones_are_refused() {
        let p = Pattern::new(json!({"a": [{"prefix": "ab"}], "b": [{"exists": false}], "c": [{"anything-but": ["x"]}]})).unwrap();
        assert!(p.matches(&json!({"a": "abc", "c": "y"})));
        assert!(!p.matches(&json!({"a": "abc", "b": 1, "c": "y"})));
        assert!(!p.matches(&json!({"a": "abc", "c": "x"})));
        assert!(Pattern::new(json!({"a": [{"numeric": [">", 1]}]})).is_err());
        assert!(Pattern::new(json!({"a": "x"})).is_err());
    }
}
