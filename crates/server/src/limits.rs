//! What one caller may store, and what one answer may hold.
//!
//! Every list answer is read back by every client that lists, so one
//! oversized field multiplies: a run with a 30 MB description made every
//! runs listing 32 MB. Fields are therefore bounded when they are written
//! (400 naming the field and its limit), and listings are bounded when they
//! are read: at most [`MAX_PAGE_SIZE`] items (KFP's own cap) and about
//! [`MAX_LIST_BYTES`] of JSON per page, the rest behind `next_page_token`.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Names and display names, in characters. KFP's are free text stored in
/// 128- to 255-character columns; Kubernetes' longest names are 253.
pub(crate) const MAX_NAME_CHARS: usize = 256;

/// Descriptions, in bytes: a paragraph or a README's worth, not a data set.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 8 * 1024;

/// A run's (or recurring run's) `runtime_config.parameters`, as JSON.
/// Parameters are values a pipeline reads, not a way to ship data.
pub(crate) const MAX_PARAMETERS_BYTES: usize = 1024 * 1024;

/// The other small JSON fields of a recurring run (`trigger`,
/// `runtime_config.pipeline_root`), as JSON.
pub(crate) const MAX_SMALL_FIELD_BYTES: usize = 4 * 1024;

/// Most items on one page, whatever `page_size` asks for (KFP's
/// `maxPageSize`); larger requests are clamped, as KFP does.
pub(crate) const MAX_PAGE_SIZE: i64 = 200;

/// A page stops growing once its items hold this many bytes of JSON; the
/// rest come with its `next_page_token` (a page always holds at least one
/// item, so paging always advances).
pub(crate) const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

/// Refuses a name or display name longer than [`MAX_NAME_CHARS`].
pub(crate) fn name(field: &str, value: &str) -> ApiResult<()> {
    let n = value.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "{field}: {n} characters is more than the limit of {MAX_NAME_CHARS}; use a shorter name"
        )));
    }
    Ok(())
}

/// Refuses a description longer than [`MAX_DESCRIPTION_BYTES`].
pub(crate) fn description(field: &str, value: &str) -> ApiResult<()> {
    let n = value.len();
    if n > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::bad_request(format!(
            "{field}: {n} bytes is more than the limit of {MAX_DESCRIPTION_BYTES} bytes; \
             keep descriptions short and put long documents in an artifact"
        )));
    }
    Ok(())
}

/// Refuses a JSON field whose serialisation is longer than `limit` bytes.
pub(crate) fn json_field(field: &str, value: &Value, limit: usize) -> ApiResult<()> {
    let n = json_len(value);
    if n > limit {
        return Err(ApiError::bad_request(format!(
            "{field}: {n} bytes of JSON is more than the limit of {limit} bytes"
        )));
    }
    Ok(())
}

/// The length of `value` serialised as JSON, without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    // A `Value` always serialises.
    oxflow_core::spec::json_len(value).unwrap_or(0)
}

/// Most items on one page of a Kubernetes-style list (Katib's and KServe's
/// resources), whatever `limit` asks for.
pub(crate) const MAX_KUBE_LIMIT: usize = 500;

/// The paging query of a Kubernetes-style list: `limit` and `continue`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct KubeListParams {
    limit: Option<String>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// Assembles one page of a Kubernetes-style list whose items are ordered
/// by a key `K`: items after the `continue` token, at most `limit` (and
/// [`MAX_KUBE_LIMIT`]) of them, and no more than [`MAX_LIST_BYTES`] of
/// JSON (at least one item); `metadata.continue` then names where the next
/// page starts. The token is the last item's key, so items created or
/// deleted between pages neither repeat nor shift the rest.
pub(crate) struct KubePager<K> {
    limit: usize,
    after: Option<K>,
    items: Vec<Value>,
    bytes: usize,
    last: Option<K>,
    more: bool,
}

impl<K: Ord + Clone + serde::Serialize + serde::de::DeserializeOwned> KubePager<K> {
    /// A pager for the page `params` asks for.
    pub(crate) fn new(params: &KubeListParams) -> ApiResult<Self> {
        let limit = match params
            .limit
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => MAX_KUBE_LIMIT,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n <= 0 => MAX_KUBE_LIMIT,
                Ok(n) => usize::try_from(n)
                    .unwrap_or(MAX_KUBE_LIMIT)
                    .min(MAX_KUBE_LIMIT),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "limit: {s:?} is not an integer"
                    )));
                }
            },
        };
        let after = match params.continue_token.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(t) => Some(decode_token(t).ok_or_else(|| {
                ApiError::bad_request(
                    "continue: not a token this server issued; list again without it",
                )
            })?),
        };
        Ok(Self {
            limit,
            after,
            items: Vec::new(),
            bytes: 0,
            last: None,
            more: false,
        })
    }

    /// The items of `all` that come after the token, in key order.
    pub(crate) fn select<T>(&self, all: Vec<T>, key: impl Fn(&T) -> K) -> Vec<(K, T)> {
        let mut keyed: Vec<(K, T)> = all
            .into_iter()
            .map(|t| (key(&t), t))
            .filter(|(k, _)| self.after.as_ref().is_none_or(|a| k > a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed
    }

    /// Whether another item may still join the page; when not, the page
    /// gets a continue token.
    pub(crate) fn wants_more(&mut self) -> bool {
        if self.items.len() >= self.limit {
            self.more = true;
        }
        !self.more
    }

    /// Adds an item unless it would take the page past its byte budget
    /// (then the page ends before it, with a continue token, and `false`
    /// is returned).
    pub(crate) fn push(&mut self, key: K, item: Value) -> bool {
        let n = json_len(&item) + 1;
        if !self.items.is_empty() && self.bytes + n > MAX_LIST_BYTES {
            self.more = true;
            return false;
        }
        self.bytes += n;
        self.items.push(item);
        self.last = Some(key);
        true
    }

    /// The page's items and, when more follow, its continue token.
    pub(crate) fn finish(self) -> (Vec<Value>, Option<String>) {
        let token = match (self.more, &self.last) {
            (true, Some(last)) => Some(encode_token(last)),
            _ => None,
        };
        (self.items, token)
    }
}

/// A key as a continue token: its JSON, hex-encoded so that it needs no
/// escaping in a query string.
fn encode_token<K: serde::Serialize>(key: &K) -> String {
    let json = serde_json::to_vec(key).unwrap_or_default();
    json.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_token<K: serde::de::DeserializeOwned>(token: &str) -> Option<K> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect();
    serde_json::from_slice(&bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field_and_the_limit() {
        assert!(name("display_name", &"é".repeat(MAX_NAME_CHARS)).is_ok());
        let e = name("display_name", &"x".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert_eq!(
            e.message,
            "display_name: 257 characters is more than the limit of 256; use a shorter name"
        );
        assert!(description("description", &"x".repeat(MAX_DESCRIPTION_BYTES)).is_ok());
        let e = description("description", &"x".repeat(MAX_DESCRIPTION_BYTES + 1)).unwrap_err();
        assert!(
            e.message
                .starts_with("description: 8193 bytes is more than the limit of 8192 bytes"),
            "{}",
            e.message
        );
        let v = serde_json::json!({"a": "x".repeat(100)});
        assert_eq!(json_len(&v), serde_json::to_vec(&v).unwrap().len());
        let e = json_field("runtime_config.parameters", &v, 50).unwrap_err();
        assert_eq!(
            e.message,
            "runtime_config.parameters: 108 bytes of JSON is more than the limit of 50 bytes"
        );
    }

    fn params(limit: Option<&str>, token: Option<&str>) -> KubeListParams {
        KubeListParams {
            limit: limit.map(str::to_owned),
            continue_token: token.map(str::to_owned),
        }
    }

    /// Pages through `keys` with `limit`, each item `size` bytes of JSON.
    fn pages(keys: &[(String, String)], limit: Option<&str>, size: usize) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut pager = KubePager::new(&params(limit, token.as_deref())).unwrap();
            for (k, _) in pager.select(keys.to_vec(), |k| k.clone()) {
                if !pager.wants_more() {
                    break;
                }
                let name = format!("{}/{}", k.0, k.1);
                let item = serde_json::json!({"name": name, "pad": "x".repeat(size)});
                if !pager.push(k, item) {
                    break;
                }
            }
            let (items, next) = pager.finish();
            assert!(
                items.iter().map(|i| json_len(i) + 1).sum::<usize>() <= MAX_LIST_BYTES
                    || items.len() == 1
            );
            out.push(
                items
                    .iter()
                    .map(|i| i["name"].as_str().unwrap().to_owned())
                    .collect(),
            );
            match next {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    }

    #[test]
    fn kubernetes_lists_page_by_limit_and_bytes() {
        // Out of order on purpose: pages follow the key order ("a" < "a-b").
        let keys: Vec<(String, String)> = [("a-b", "x"), ("a", "z"), ("a", "y"), ("b", "x")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            pages(&keys, None, 0),
            vec![vec!["a/y", "a/z", "a-b/x", "b/x"]]
        );
        assert_eq!(
            pages(&keys, Some("3"), 0),
            vec![vec!["a/y", "a/z", "a-b/x"], vec!["b/x"]]
        );
        // 1.5 MiB items: two fit in a page of 4 MiB.
        assert_eq!(
            pages(&keys, None, 1536 * 1024),
            vec![vec!["a/y", "a/z"], vec!["a-b/x", "b/x"]]
        );
        // One item larger than the budget still makes a page of its own.
        assert_eq!(pages(&keys[..2], None, MAX_LIST_BYTES).len(), 2);
        let e = KubePager::<String>::new(&params(None, Some("zz")))
            .err()
            .unwrap();
        assert!(
            e.message.starts_with("continue: not a token"),
            "{}",
            e.message
        );
        let e = KubePager::<String>::new(&params(Some("x"), None))
            .err()
            .unwrap();
        assert_eq!(e.message, "limit: \"x\" is not an integer");
    }
}
