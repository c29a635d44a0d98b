//! Request bodies in Kubernetes' protobuf encoding, for the few core kinds
//! whose `kubectl create <kind>` generators send them that way: `kubectl
//! create secret generic|tls|docker-registry`, `create configmap` and
//! `create namespace` use client-go's typed clients, which write protobuf
//! (`application/vnd.kubernetes.protobuf`) and do not fall back to JSON.
//! The body is turned into the JSON object the rest of the API takes, so
//! admission and storage see one shape. Answers stay JSON: those clients
//! accept it.
//!
//! The wire format is `k8s\0` then a `runtime.Unknown` {1: typeMeta
//! {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType},
//! `raw` being the object's message as `k8s.io/api`'s generated.proto
//! numbers its fields. Only the fields listed in the schemas below are
//! read; any other field is refused by its number, so nothing a client
//! sent is silently dropped.

use serde_json::{Map, Value, json};

/// The magic prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// A field's type on the wire and in JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    /// `metav1.Time` {1: seconds, 2: nanos} as RFC 3339.
    Time,
    MapStr,
    /// Map values as bytes, written in JSON as base64 (a Secret's `data`).
    MapBytes,
    RepeatedStr,
    Msg(&'static [Field]),
    RepeatedMsg(&'static [Field]),
}

/// One field of a message: its number, JSON name and type.
type Field = (u32, &'static str, Ty);

const OWNER_REFERENCE: &[Field] = &[
    (1, "kind", Ty::Str),
    (3, "name", Ty::Str),
    (4, "uid", Ty::Str),
    (5, "apiVersion", Ty::Str),
    (6, "controller", Ty::Bool),
    (7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", Ty::Str),
    (2, "generateName", Ty::Str),
    (3, "namespace", Ty::Str),
    (4, "selfLink", Ty::Str),
    (5, "uid", Ty::Str),
    (6, "resourceVersion", Ty::Str),
    (7, "generation", Ty::Int),
    (8, "creationTimestamp", Ty::Time),
    (9, "deletionTimestamp", Ty::Time),
    (10, "deletionGracePeriodSeconds", Ty::Int),
    (11, "labels", Ty::MapStr),
    (12, "annotations", Ty::MapStr),
    (13, "ownerReferences", Ty::RepeatedMsg(OWNER_REFERENCE)),
    (14, "finalizers", Ty::RepeatedStr),
];

const SECRET: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::MapBytes),
    (3, "type", Ty::Str),
    (4, "stringData", Ty::MapStr),
    (5, "immutable", Ty::Bool),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::MapStr),
    (3, "binaryData", Ty::MapBytes),
    (4, "immutable", Ty::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", Ty::RepeatedStr)];

/// Go writes the (empty) status of a namespace it creates.
const NAMESPACE_STATUS: &[Field] = &[(1, "phase", Ty::Str)];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(NAMESPACE_SPEC)),
    (3, "status", Ty::Msg(NAMESPACE_STATUS)),
];

/// The kinds read in protobuf, by `(apiVersion, kind)`.
fn schema(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "Secret") => Some(SECRET),
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Namespace") => Some(NAMESPACE),
        _ => None,
    }
}

/// Why a body could not be read; said in a 400 or 415.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// Malformed: what and where (the byte offset).
    Malformed(String),
    /// A kind (or field) this reader does not know.
    Unsupported(String),
}

/// A protobuf body as the JSON object it encodes.
pub(crate) fn decode(body: &[u8]) -> Result<Value, Refused> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        Refused::Malformed(
            "the body does not start with Kubernetes' protobuf prefix \"k8s\\0\"".into(),
        )
    })?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut r = Reader {
        buf: rest,
        pos: 0,
        base: MAGIC.len(),
    };
    while let Some((number, wire)) = r.key()? {
        match (number, wire) {
            (1, 2) => {
                let mut t = r.sub()?;
                while let Some((n, w)) = t.key()? {
                    match (n, w) {
                        (1, 2) => api_version = t.string()?,
                        (2, 2) => kind = t.string()?,
                        _ => t.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (3, 2) => {
                let encoding = r.string()?;
                if !encoding.is_empty() {
                    return Err(Refused::Unsupported(format!(
                        "contentEncoding {encoding:?}"
                    )));
                }
            }
            _ => r.skip(wire)?,
        }
    }
    let fields = schema(&api_version, &kind).ok_or_else(|| {
        Refused::Unsupported(format!("{kind} ({api_version}) objects are not read"))
    })?;
    let offset = body.len() - raw.len();
    let mut object = message(
        &mut Reader {
            buf: raw,
            pos: 0,
            base: offset,
        },
        fields,
    )?;
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where `buf` starts in the whole body, for messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &str) -> Refused {
        Refused::Malformed(format!("{what} at byte {}", self.base + self.pos))
    }

    fn varint(&mut self) -> Result<u64, Refused> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.bad("a truncated varint"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("a varint longer than 10 bytes"))
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, Refused> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        let number = u32::try_from(k >> 3).map_err(|_| self.bad("a field number out of range"))?;
        Ok(Some((number, (k & 7) as u8)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Refused> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.bad("a length out of range"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.bad("a length past the end of the body"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A length-delimited field as a reader of its own, offsets kept.
    fn sub(&mut self) -> Result<Reader<'a>, Refused> {
        let buf = self.bytes()?;
        Ok(Reader {
            buf,
            pos: 0,
            base: self.base + self.pos - buf.len(),
        })
    }

    fn string(&mut self) -> Result<String, Refused> {
        let at = self.base + self.pos;
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| Refused::Malformed(format!("a string that is not UTF-8 at byte {at}")))
    }

    fn skip(&mut self, wire: u8) -> Result<(), Refused> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            _ => Err(self.bad(&format!("wire type {wire}"))),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), Refused> {
        if self.pos + n > self.buf.len() {
            return Err(self.bad("a truncated field"));
        }
        self.pos += n;
        Ok(())
    }
}

fn expect(r: &Reader<'_>, name: &str, wire: u8, want: u8) -> Result<(), Refused> {
    if wire == want {
        Ok(())
    } else {
        Err(r.bad(&format!(
            "field {name} with wire type {wire} (expected {want})"
        )))
    }
}

/// A map entry {1: key, 2: value}.
fn entry(r: &mut Reader<'_>, bytes: bool) -> Result<(String, Value), Refused> {
    let mut e = r.sub()?;
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((n, w)) = e.key()? {
        match (n, w) {
            (1, 2) => k = e.string()?,
            (2, 2) if bytes => v = json!(oxflow_core::secret::encode(e.bytes()?)),
            (2, 2) => v = json!(e.string()?),
            _ => e.skip(w)?,
        }
    }
    Ok((k, v))
}

fn message(r: &mut Reader<'_>, fields: &'static [Field]) -> Result<Map<String, Value>, Refused> {
    let mut out = Map::new();
    while let Some((number, wire)) = r.key()? {
        let Some(&(_, name, ty)) = fields.iter().find(|(n, _, _)| *n == number) else {
            return Err(Refused::Unsupported(format!(
                "field number {number} (at byte {}) is not read",
                r.base + r.pos
            )));
        };
        match ty {
            Ty::Str => {
                expect(r, name, wire, 2)?;
                out.insert(name.into(), json!(r.string()?));
            }
            Ty::Bool => {
                expect(r, name, wire, 0)?;
                out.insert(name.into(), json!(r.varint()? != 0));
            }
            Ty::Int => {
                expect(r, name, wire, 0)?;
                out.insert(name.into(), json!(r.varint()? as i64));
            }
            Ty::Time => {
                expect(r, name, wire, 2)?;
                let mut t = r.sub()?;
                let mut seconds = 0i64;
                while let Some((n, w)) = t.key()? {
                    match (n, w) {
                        (1, 0) => seconds = t.varint()? as i64,
                        _ => t.skip(w)?,
                    }
                }
                // The zero time is how Go writes "unset" (JSON's null).
                if seconds != 0 {
                    let t = oxflow_core::Timestamp(seconds.saturating_mul(1000));
                    out.insert(name.into(), json!(t.to_rfc3339()));
                }
            }
            Ty::MapStr | Ty::MapBytes => {
                expect(r, name, wire, 2)?;
                let (k, v) = entry(r, matches!(ty, Ty::MapBytes))?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            Ty::RepeatedStr => {
                expect(r, name, wire, 2)?;
                let s = r.string()?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(s));
                }
            }
            Ty::Msg(inner) => {
                expect(r, name, wire, 2)?;
                let m = message(&mut r.sub()?, inner)?;
                out.insert(name.into(), Value::Object(m));
            }
            Ty::RepeatedMsg(inner) => {
                expect(r, name, wire, 2)?;
                let m = message(&mut r.sub()?, inner)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(Value::Object(m));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf writer for the tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(n: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(n) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    fn entry_bytes(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        field(1, k.as_bytes(), &mut e);
        field(2, v, &mut e);
        e
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(1, api_version.as_bytes(), &mut tm);
        field(2, kind.as_bytes(), &mut tm);
        let mut body = MAGIC.to_vec();
        field(1, &tm, &mut body);
        field(2, raw, &mut body);
        field(4, b"application/vnd.kubernetes.protobuf", &mut body);
        body
    }

    #[test]
    fn a_secret_as_kubectl_create_secret_sends_it() {
        let mut meta = Vec::new();
        field(1, b"db", &mut meta);
        field(3, b"team-a", &mut meta);
        field(11, &entry_bytes("app", b"x"), &mut meta);
        field(8, &[], &mut meta); // a zero creationTimestamp
        let mut raw = Vec::new();
        field(1, &meta, &mut raw);
        field(2, &entry_bytes("password", &[0xff, b'p']), &mut raw);
        field(2, &entry_bytes("user", b"me"), &mut raw);
        field(3, b"Opaque", &mut raw);
        raw.extend_from_slice(&[5 << 3, 1]); // immutable: true
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["metadata"]["name"], "db");
        assert_eq!(v["metadata"]["namespace"], "team-a");
        assert_eq!(v["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(v["data"], json!({"password": "/3A=", "user": "bWU="}));
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["immutable"], true);
    }

    #[test]
    fn bad_bodies_are_refused_with_the_place() {
        assert!(matches!(decode(b"{}"), Err(Refused::Malformed(_))));
        let Err(Refused::Unsupported(why)) = decode(&envelope("v1", "Pod", &[])) else {
            panic!()
        };
        assert_eq!(why, "Pod (v1) objects are not read");
        // A length running past the end.
        let mut raw = Vec::new();
        raw.extend_from_slice(&[1 << 3 | 2, 50, b'x']);
        let Err(Refused::Malformed(why)) = decode(&envelope("v1", "ConfigMap", &raw)) else {
            panic!()
        };
        assert!(why.contains("past the end"), "{why}");
        // A field the schema does not list.
        let mut raw = Vec::new();
        field(9, b"?", &mut raw);
        let Err(Refused::Unsupported(why)) = decode(&envelope("v1", "ConfigMap", &raw)) else {
            panic!()
        };
        assert!(why.starts_with("field number 9"), "{why}");
    }
}
