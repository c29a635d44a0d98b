//! Parameter values. KFP carries every value as a protobuf `Value`, where
//! integers are doubles; we keep them as JSON and cast by the declared
//! [`ParameterType`], printing integral numbers as integers everywhere
//! (including inside lists and dicts), as the Go backend does — kfp.local's
//! int→float drift breaks user code (`sum(xs)` returning a float).

use serde_json::{Number, Value};

use crate::ir::ParameterType;

/// Converts `v` to the declared type, accepting the text form a user typed
/// on the command line (`-p epochs=3`, `-p cfg='{"k": 1}'`).
pub fn coerce(ty: ParameterType, v: &Value) -> Result<Value, String> {
    use ParameterType as T;
    match ty {
        T::NumberInteger => match v {
            Value::Number(n) => int_from_number(n),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::from(i))
                } else if let Ok(f) = t.parse::<f64>() {
                    int_from_f64(f)
                } else {
                    Err(format!("expected an integer, got {s:?}"))
                }
            }
            Value::Bool(_) => Err("expected an integer, got a boolean".into()),
            other => Err(format!("expected an integer, got {}", kind(other))),
        },
        T::NumberDouble => match v {
            Value::Number(n) => Ok(Value::Number(n.clone())),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("expected a number, got {s:?}")),
            other => Err(format!("expected a number, got {}", kind(other))),
        },
        T::String => match v {
            Value::String(_) => Ok(v.clone()),
            // A number or bool reaching a string input (loop item sub-fields are
            // typed STRING by the compiler) is passed in its text form.
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(to_text(v))),
            other => Err(format!("expected a string, got {}", kind(other))),
        },
        T::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("expected true or false, got {s:?}")),
            },
            other => Err(format!("expected a boolean, got {}", kind(other))),
        },
        T::List => match v {
            Value::Array(_) => Ok(normalize_numbers(v.clone())),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(a @ Value::Array(_)) => Ok(normalize_numbers(a)),
                _ => Err(format!("expected a JSON list, got {s:?}")),
            },
            other => Err(format!("expected a list, got {}", kind(other))),
        },
        T::Struct | T::TaskFinalStatus | T::TaskConfig => match v {
            Value::Object(_) => Ok(normalize_numbers(v.clone())),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(o @ Value::Object(_)) => Ok(normalize_numbers(o)),
                _ => Err(format!("expected a JSON object, got {s:?}")),
            },
            other => Err(format!("expected a dict, got {}", kind(other))),
        },
        T::ParameterTypeEnumUnspecified => Ok(normalize_numbers(v.clone())),
    }
}

/// Reads a parameter a component wrote to its output file, as the KFP
/// launcher does: strings raw, everything else as JSON.
pub fn from_output_text(ty: ParameterType, text: &str) -> Result<Value, String> {
    use ParameterType as T;
    match ty {
        T::String => Ok(Value::String(text.to_owned())),
        T::Boolean => coerce(ty, &Value::String(text.trim().to_owned())),
        _ => {
            let v: Value = serde_json::from_str(text.trim())
                .map_err(|e| format!("output is not valid JSON ({e}): {:?}", short(text)))?;
            coerce(ty, &v)
        }
    }
}

/// Integral doubles become integers, recursively.
pub fn normalize_numbers(v: Value) -> Value {
    match v {
        Value::Number(n) => match int_from_number(&n) {
            Ok(i) => i,
            Err(_) => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalize_numbers).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, normalize_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The text a placeholder expands to: strings raw, numbers shortest
/// (`3`, `0.5`), booleans `true`/`false`, lists and dicts as JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 && n.is_f64() => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        other => serde_json::to_string(&normalize_numbers(other.clone())).unwrap_or_default(),
    }
}

/// A short name for a JSON value's kind, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

fn int_from_number(n: &Number) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Value::from(u));
    }
    int_from_f64(n.as_f64().unwrap_or(f64::NAN))
}

fn int_from_f64(f: f64) -> Result<Value, String> {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 {
        Ok(Value::from(f as i64))
    } else {
        Err(format!("expected an integer, got {f}"))
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParameterType as T;
    use serde_json::json;

    fn check(ty: T, input: Value, expected: Result<Value, &str>) {
        let got = coerce(ty, &input);
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{ty:?} {input}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{g:?} should mention {e:?}"),
            (g, e) => panic!("{ty:?} {input}: got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn coercion_table() {
        check(T::NumberInteger, json!(3.0), Ok(json!(3)));
        check(T::NumberInteger, json!("42"), Ok(json!(42)));
        check(T::NumberInteger, json!(2.5), Err("expected an integer"));
        check(T::NumberInteger, json!("x"), Err("expected an integer"));
        check(T::NumberInteger, json!(true), Err("boolean"));
        check(T::NumberDouble, json!("0.1"), Ok(json!(0.1)));
        check(T::NumberDouble, json!(3), Ok(json!(3)));
        check(T::NumberDouble, json!([1]), Err("expected a number"));
        check(T::String, json!("hi"), Ok(json!("hi")));
        check(T::String, json!(1.0), Ok(json!("1")));
        check(T::String, json!({"a": 1}), Err("expected a string"));
        check(T::Boolean, json!("True"), Ok(json!(true)));
        check(T::Boolean, json!("yes"), Err("true or false"));
        check(T::List, json!([1.0, 2.0, [3.0]]), Ok(json!([1, 2, [3]])));
        check(T::List, json!("[1, 2.5]"), Ok(json!([1, 2.5])));
        check(T::List, json!("{}"), Err("JSON list"));
        check(T::Struct, json!({"k": 2.0}), Ok(json!({"k": 2})));
        check(T::Struct, json!("{\"k\": \"v\"}"), Ok(json!({"k": "v"})));
        check(T::Struct, json!(1), Err("expected a dict"));
    }

    #[test]
    fn output_text() {
        assert_eq!(
            from_output_text(T::String, "a b\n").unwrap(),
            json!("a b\n")
        );
        assert_eq!(from_output_text(T::NumberInteger, "5\n").unwrap(), json!(5));
        assert_eq!(from_output_text(T::Boolean, "False").unwrap(), json!(false));
        assert_eq!(
            from_output_text(T::List, "[1.0, 2]").unwrap(),
            json!([1, 2])
        );
        assert!(from_output_text(T::Struct, "nope").is_err());
    }

    #[test]
    fn placeholder_text() {
        assert_eq!(to_text(&json!(3.0)), "3");
        assert_eq!(to_text(&json!(0.5)), "0.5");
        assert_eq!(to_text(&json!(true)), "true");
        assert_eq!(to_text(&json!([1.0, "a"])), "[1,\"a\"]");
        assert_eq!(to_text(&json!("raw")), "raw");
    }
}
