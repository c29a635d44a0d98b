//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), applied to a
//! stored object as the Kubernetes API server applies them for custom
//! resources. An error names the operation and the path at fault.

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not what its media type says.
    #[error("the patch is not a valid {kind}: {why}")]
    Malformed {
        /// `JSON merge patch` or `JSON patch`.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// An operation could not be applied.
    #[error("operation {index} ({op} {path:?}): {why}")]
    Failed {
        /// 0-based index of the operation.
        index: usize,
        /// Its `op`.
        op: String,
        /// Its `path`.
        path: String,
        /// What went wrong.
        why: String,
    },
}

/// Applies a JSON merge patch: objects merge key by key, `null` removes a
/// key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Checks that `patch` is a merge patch (a JSON object).
pub fn check_merge_patch(patch: &Value) -> Result<(), PatchError> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(PatchError::Malformed {
            kind: "JSON merge patch",
            why: "expected a JSON object".into(),
        })
    }
}

/// Applies a JSON patch (a list of operations) to `target`; on error
/// `target` is left unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch.as_array().ok_or_else(|| PatchError::Malformed {
        kind: "JSON patch",
        why: "expected a JSON array of operations".into(),
    })?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let field = |name: &str| op.get(name).and_then(Value::as_str);
        let name = field("op").unwrap_or("");
        let path = field("path").unwrap_or("").to_owned();
        let fail = |why: String| PatchError::Failed {
            index,
            op: name.to_owned(),
            path: path.clone(),
            why,
        };
        if op.get("path").and_then(Value::as_str).is_none() {
            return Err(fail("\"path\" is required and must be a string".into()));
        }
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| fail("\"value\" is required".into()))
        };
        let from = || {
            field("from")
                .map(str::to_owned)
                .ok_or_else(|| fail("\"from\" is required".into()))
        };
        match name {
            "add" => add(&mut doc, &path, value()?).map_err(fail)?,
            "remove" => {
                remove(&mut doc, &path).map_err(fail)?;
            }
            "replace" => {
                let v = value()?;
                let slot = doc
                    .pointer_mut(&path)
                    .ok_or_else(|| fail("no value at the path".into()))?;
                *slot = v;
            }
            "move" => {
                let from = from()?;
                if path.starts_with(&format!("{from}/")) {
                    return Err(fail("cannot move a value into itself".into()));
                }
                let v = remove(&mut doc, &from).map_err(fail)?;
                add(&mut doc, &path, v).map_err(fail)?;
            }
            "copy" => {
                let from = from()?;
                let v = doc
                    .pointer(&from)
                    .cloned()
                    .ok_or_else(|| fail(format!("no value at \"from\" {from:?}")))?;
                add(&mut doc, &path, v).map_err(fail)?;
            }
            "test" => {
                let v = value()?;
                if doc.pointer(&path) != Some(&v) {
                    return Err(fail("the value there is not the one tested for".into()));
                }
            }
            other => {
                return Err(fail(format!(
                    "unknown op {other:?} (add, remove, replace, move, copy, test)"
                )));
            }
        }
    }
    *target = doc;
    Ok(())
}

/// Splits a JSON pointer into its parent pointer and unescaped last token.
fn split(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("the whole document cannot be the target".into());
    }
    if !path.starts_with('/') {
        return Err("a JSON pointer starts with '/'".into());
    }
    let i = path.rfind('/').unwrap_or(0);
    let last = path[i + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..i], last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = split(path)?;
    let target = doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("no value at {parent:?} to add into"))?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i > a.len() {
                return Err(format!("index {i} is past the end ({})", a.len()));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("{parent:?} is neither an object nor an array")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let target = doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("no value at {parent:?}"))?;
    match target {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| "no value at the path".to_owned()),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i >= a.len() {
                return Err(format!("index {i} is past the end ({})", a.len()));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("{parent:?} is neither an object nor an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The RFC's own example.
        let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                             "tags": ["example", "sample"], "content": "This will be unchanged"});
        merge_patch(
            &mut doc,
            &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                    "author": {"familyName": null}, "tags": ["example"]}),
        );
        assert_eq!(
            doc,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                   "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
        assert!(check_merge_patch(&json!([1])).is_err());
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"spec": {"maxTrialCount": 3, "list": [1, 2]}, "a/b": 1});
        json_patch(
            &mut doc,
            &json!([
                {"op": "replace", "path": "/spec/maxTrialCount", "value": 8},
                {"op": "add", "path": "/spec/list/1", "value": 9},
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "remove", "path": "/a~1b"},
                {"op": "copy", "from": "/spec/maxTrialCount", "path": "/spec/copy"},
                {"op": "move", "from": "/spec/copy", "path": "/moved"},
                {"op": "test", "path": "/moved", "value": 8}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"maxTrialCount": 8, "list": [1, 9, 2, 3]}, "moved": 8})
        );
    }

    #[test]
    fn a_failing_operation_names_itself_and_changes_nothing() {
        let before = json!({"spec": {"x": 1}});
        let mut doc = before.clone();
        let e = json_patch(
            &mut doc,
            &json!([
                {"op": "replace", "path": "/spec/x", "value": 2},
                {"op": "replace", "path": "/spec/nope", "value": 2}
            ]),
        )
        .unwrap_err();
        assert_eq!(doc, before);
        assert!(
            matches!(&e, PatchError::Failed { index: 1, path, .. } if path == "/spec/nope"),
            "{e}"
        );
        for bad in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/x"}]),
            json!([{"op": "add", "path": "/x"}]),
            json!([{"op": "test", "path": "/spec/x", "value": 5}]),
            json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
        ] {
            assert!(json_patch(&mut doc, &bad).is_err(), "{bad}");
        }
    }
}
