//! Secrets as the Kubernetes API writes them: `data` holds each value in
//! standard base64, `stringData` is a write-only convenience the server
//! folds into `data`. The rules of a valid `v1` Secret live here, with the
//! decoding a workload needs, so that the resource layer (which admits
//! Secrets) and the store (which hands their values to workloads) agree on
//! them without depending on each other.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::object::FieldError;

/// The most a Secret's values may hold together, as the API server's
/// `MaxSecretSize`.
pub const MAX_SIZE: usize = 1024 * 1024;

/// The `type` of a Secret that names none.
pub const OPAQUE: &str = "Opaque";

/// `bytes` in standard base64 with padding, as `data` holds them.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Whether `key` may name a value: alphanumerics, `-`, `_` and `.`, at
/// most 253 characters, and not `.` or `..` (a value may become a file).
fn key_error(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 253 {
        Some("must be 1 to 253 characters")
    } else if key == "." || key == ".." {
        Some("must not be '.' or '..'")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
    } else {
        None
    }
}

/// The keys each well-known type requires, as the API server checks them.
fn required_keys(type_: &str) -> &'static [&'static str] {
    match type_ {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    }
}

/// Admits a Secret as the API server does: checks `data` (base64 values
/// under valid keys), folds `stringData` into it (its values win), sets
/// `type` to `Opaque` when absent, and checks the size and the keys the
/// type requires. Every fault is named by its field.
pub fn admit(object: &mut Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut data: BTreeMap<String, Value> = BTreeMap::new();
    let mut size = 0usize;
    match object.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let field = format!("data[{k}]");
                if let Some(why) = key_error(k) {
                    errors.push(FieldError::invalid(field.clone(), why));
                }
                match v.as_str().map(|s| STANDARD.decode(s)) {
                    Some(Ok(bytes)) => {
                        size += bytes.len();
                        data.insert(k.clone(), v.clone());
                    }
                    Some(Err(e)) => errors.push(FieldError::invalid(
                        field,
                        format!("not base64 (as `data` values must be; `stringData` takes plain text): {e}"),
                    )),
                    None => errors.push(FieldError::invalid(field, "expected a base64 string")),
                }
            }
        }
        Some(_) => errors.push(FieldError::invalid(
            "data",
            "expected a map of base64 strings",
        )),
    }
    match object.get("stringData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let field = format!("stringData[{k}]");
                if let Some(why) = key_error(k) {
                    errors.push(FieldError::invalid(field.clone(), why));
                }
                match v.as_str() {
                    Some(s) => {
                        if let Some(old) = data.get(k).and_then(Value::as_str) {
                            size -= STANDARD.decode(old).map(|b| b.len()).unwrap_or(0);
                        }
                        size += s.len();
                        data.insert(k.clone(), Value::String(encode(s.as_bytes())));
                    }
                    None => errors.push(FieldError::invalid(field, "expected a string")),
                }
            }
        }
        Some(_) => errors.push(FieldError::invalid(
            "stringData",
            "expected a map of strings",
        )),
    }
    if size > MAX_SIZE {
        errors.push(FieldError::invalid(
            "data",
            format!("Too long: must have at most {MAX_SIZE} bytes (the values hold {size})"),
        ));
    }
    let type_ = match object.get("type") {
        None | Some(Value::Null) => OPAQUE.to_owned(),
        Some(Value::String(s)) if s.is_empty() => OPAQUE.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errors.push(FieldError::invalid("type", "expected a string"));
            OPAQUE.to_owned()
        }
    };
    for key in required_keys(&type_) {
        if !data.contains_key(*key) {
            errors.push(FieldError::required(format!("data[{key}]")));
        }
    }
    if let Some(b) = object.get("immutable")
        && !b.is_boolean()
        && !b.is_null()
    {
        errors.push(FieldError::invalid("immutable", "expected true or false"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(o) = object.as_object_mut() {
        o.remove("stringData");
        if data.is_empty() {
            o.remove("data");
        } else {
            o.insert("data".into(), Value::Object(data.into_iter().collect()));
        }
        o.insert("type".into(), Value::String(type_));
    }
    Ok(())
}

/// What may not change once a Secret (or a ConfigMap) exists: its `type`,
/// and anything at all once it is `immutable`.
pub fn check_update(old: &Value, new: &Value, fields: &[&str]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if old.get("type") != new.get("type") && old.get("type").is_some() {
        errors.push(FieldError::invalid("type", "field is immutable"));
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        for f in fields {
            let differs = match (old.get(*f), new.get(*f)) {
                (None | Some(Value::Null), None | Some(Value::Null)) => false,
                (a, b) => a != b,
            };
            if differs {
                errors.push(FieldError::invalid(
                    *f,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The values of a stored Secret, decoded for a workload (an environment
/// variable or a file): each must be UTF-8 text. An error names the key.
pub fn values(object: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let Some(data) = object.get("data").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (k, v) in data {
        let text = v
            .as_str()
            .ok_or_else(|| format!("data[{k}] is not a string"))?;
        let bytes = STANDARD
            .decode(text)
            .map_err(|e| format!("data[{k}] is not base64: {e}"))?;
        let value = String::from_utf8(bytes)
            .map_err(|_| format!("data[{k}] is not UTF-8 text, which Oxflow's workloads need"))?;
        out.insert(k.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(r: Result<(), Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn string_data_is_folded_into_data_and_type_defaults() {
        let mut s = json!({"data": {"a": encode(b"old"), "b": encode(b"keep")},
                           "stringData": {"a": "new", "c": "plain ✓"}});
        admit(&mut s).unwrap();
        assert_eq!(s.get("stringData"), None);
        assert_eq!(s["type"], "Opaque");
        let v = values(&s).unwrap();
        assert_eq!(v["a"], "new");
        assert_eq!(v["b"], "keep");
        assert_eq!(v["c"], "plain ✓");
    }

    #[test]
    fn bad_values_keys_and_types_are_named() {
        let mut s = json!({"data": {"ok": "aGk=", "bad": "not base64!", "sp ace": "aGk="},
                           "stringData": {"n": 1}, "immutable": "yes"});
        assert_eq!(
            fields(admit(&mut s)),
            ["data[bad]", "data[sp ace]", "stringData[n]", "immutable"]
        );
        let mut tls = json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}});
        assert_eq!(fields(admit(&mut tls)), ["data[tls.key]"]);
        let mut big = json!({"stringData": {"a": "x".repeat(MAX_SIZE + 1)}});
        assert_eq!(fields(admit(&mut big)), ["data"]);
        // Nothing is changed on the way out of a refusal.
        assert_eq!(s["stringData"], json!({"n": 1}));
    }

    #[test]
    fn immutable_secrets_and_types_do_not_change() {
        let old = json!({"type": "Opaque", "data": {"a": "aGk="}, "immutable": true});
        let mut new = old.clone();
        new["data"]["a"] = json!("aG8=");
        assert_eq!(
            fields(check_update(&old, &new, &["data", "immutable"])),
            ["data"]
        );
        let mut retyped = old.clone();
        retyped["type"] = json!("kubernetes.io/basic-auth");
        retyped["immutable"] = json!(false);
        assert_eq!(
            fields(check_update(&old, &retyped, &["data", "immutable"])),
            ["type", "immutable"]
        );
        let mutable = json!({"type": "Opaque", "data": {"a": "aGk="}});
        let mut changed = mutable.clone();
        changed["data"]["a"] = json!("aG8=");
        assert!(check_update(&mutable, &changed, &["data", "immutable"]).is_ok());
    }

    #[test]
    fn values_must_be_text() {
        let s = json!({"data": {"bin": encode(&[0xff, 0xfe])}});
        assert!(values(&s).unwrap_err().contains("data[bin]"));
    }
}
