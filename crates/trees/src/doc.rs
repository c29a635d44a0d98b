//! A JSON and UBJSON document reader for XGBoost models, and path-aware
//! accessors over the parsed tree.
//!
//! XGBoost saves the same document either as JSON text or as Universal Binary
//! JSON (UBJ). Both parse into one borrowed [`Value`] tree here, so the model
//! loader is written once. Numbers are kept as their text (JSON) or raw
//! big-endian bytes (UBJ typed arrays) until a field is read, so that an
//! `f32` field is rounded once from its decimal text, exactly like XGBoost's
//! own reader, and large arrays are not copied twice.
//!
//! Both readers are defensive: nesting depth is bounded, declared lengths are
//! checked against the bytes that remain before anything is allocated, and
//! every error carries the byte offset.

use std::borrow::Cow;

use crate::TreeError;

/// Deepest nesting accepted; XGBoost models nest about six levels.
const MAX_DEPTH: usize = 128;

/// A parsed JSON or UBJSON value borrowing from the input bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// The text of a JSON number, or of a UBJSON high-precision number.
    Number(&'a str),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// A UBJSON strongly typed array of numbers, still big-endian.
    Typed(TypedArray<'a>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// Element type of a UBJSON typed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    I8,
    U8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Elem {
    fn from_marker(m: u8) -> Option<Elem> {
        Some(match m {
            b'i' => Elem::I8,
            b'U' => Elem::U8,
            b'I' => Elem::I16,
            b'l' => Elem::I32,
            b'L' => Elem::I64,
            b'd' => Elem::F32,
            b'D' => Elem::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Elem::I8 | Elem::U8 => 1,
            Elem::I16 => 2,
            Elem::I32 | Elem::F32 => 4,
            Elem::I64 | Elem::F64 => 8,
        }
    }
}

/// A typed array's raw big-endian elements.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypedArray<'a> {
    pub elem: Elem,
    pub len: usize,
    pub bytes: &'a [u8],
}

/// One element of a typed array, decoded.
enum Scalar {
    Int(i64),
    Float(f64),
}

impl TypedArray<'_> {
    fn get(&self, i: usize) -> Option<Scalar> {
        let size = self.elem.size();
        let b = self.bytes.get(i * size..(i + 1) * size)?;
        Some(match self.elem {
            Elem::I8 => Scalar::Int(i64::from(b[0] as i8)),
            Elem::U8 => Scalar::Int(i64::from(b[0])),
            Elem::I16 => Scalar::Int(i64::from(i16::from_be_bytes([b[0], b[1]]))),
            Elem::I32 => Scalar::Int(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            Elem::I64 => Scalar::Int(i64::from_be_bytes(b.try_into().ok()?)),
            Elem::F32 => Scalar::Float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            Elem::F64 => Scalar::Float(f64::from_be_bytes(b.try_into().ok()?)),
        })
    }
}

impl<'a> Value<'a> {
    /// The value of `key` if this is an object that has it (the last one wins, as in XGBoost's map).
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's type for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) | Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Array(_) | Value::Typed(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

fn syntax(format: &'static str, offset: usize, message: impl Into<String>) -> TreeError {
    TreeError::Syntax {
        format,
        offset,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// Parses a JSON document, accepting XGBoost's `NaN`, `Infinity` and `-Infinity` number tokens.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value<'_>, TreeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| syntax("JSON", e.valid_up_to(), "the file is not valid UTF-8"))?;
    let mut p = JsonParser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    // A UTF-8 byte order mark is tolerated, as most JSON readers do.
    if p.bytes[p.pos..].starts_with("\u{feff}".as_bytes()) {
        p.pos += 3;
        p.skip_ws();
    }
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("unexpected data after the end of the document"));
    }
    Ok(v)
}

struct JsonParser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> JsonParser<'a> {
    fn err(&self, message: impl Into<String>) -> TreeError {
        syntax("JSON", self.pos, message)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect_literal(&mut self, lit: &str) -> Result<(), TreeError> {
        if self.bytes[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err(format!("expected `{lit}`")))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, TreeError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of the document")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.expect_literal("true").map(|()| Value::Bool(true)),
            Some(b'f') => self.expect_literal("false").map(|()| Value::Bool(false)),
            Some(b'n') => self.expect_literal("null").map(|()| Value::Null),
            Some(b'-' | b'+' | b'0'..=b'9' | b'N' | b'I') => self.number(),
            Some(_) => Err(self.err("unexpected character; expected a JSON value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, TreeError> {
        self.pos += 1; // '{'
        let mut fields = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected `:` after an object key"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            fields.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(fields));
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, TreeError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<Value<'a>, TreeError> {
        let start = self.pos;
        if let Some(b'-' | b'+') = self.peek() {
            self.pos += 1;
        }
        if self.bytes[self.pos..].starts_with(b"Infinity") {
            self.pos += "Infinity".len();
            return Ok(Value::Number(&self.text[start..self.pos]));
        }
        if self.bytes[self.pos..].starts_with(b"NaN") {
            self.pos += "NaN".len();
            return Ok(Value::Number(&self.text[start..self.pos]));
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            p.pos - s
        };
        if digits(self) == 0 {
            return Err(self.err("expected a digit"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.err("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'-' | b'+') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        Ok(Value::Number(&self.text[start..self.pos]))
    }

    fn string(&mut self) -> Result<Cow<'a, str>, TreeError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        // Fast path: no escapes, borrow the text.
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(c) if c < 0x20 => return Err(self.err("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.pos += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("unpaired surrogate in a \\u escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid low surrogate in a \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            let ch = char::from_u32(code)
                                .ok_or_else(|| self.err("invalid \\u escape"))?;
                            out.push(ch);
                        }
                        _ => return Err(self.err("invalid escape in a string")),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.err("control character in a string")),
                Some(_) => {
                    // Copy one UTF-8 character; the text is valid UTF-8.
                    let rest = &self.text[self.pos..];
                    let ch = rest.chars().next().ok_or_else(|| self.err("bad string"))?;
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, TreeError> {
        let s = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// UBJSON
// ---------------------------------------------------------------------------

/// Parses a Universal Binary JSON document (Draft 12, the dialect XGBoost writes
/// with `Booster.save_model('model.ubj')`): big-endian numbers, optimised
/// containers with `$` type and `#` count, and no-op markers.
pub(crate) fn parse_ubjson(bytes: &[u8]) -> Result<Value<'_>, TreeError> {
    let mut p = UbjParser { bytes, pos: 0 };
    let marker = p.marker()?;
    let v = p.value(marker, 0)?;
    if p.pos != bytes.len() {
        return Err(p.err("unexpected data after the end of the document"));
    }
    Ok(v)
}

struct UbjParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> UbjParser<'a> {
    fn err(&self, message: impl Into<String>) -> TreeError {
        syntax("UBJSON", self.pos, message)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TreeError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "unexpected end of the document: {n} bytes needed, {} left",
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, TreeError> {
        Ok(self.take(1)?[0])
    }

    /// The next marker, skipping no-op (`N`) markers.
    fn marker(&mut self) -> Result<u8, TreeError> {
        loop {
            let m = self.byte()?;
            if m != b'N' {
                return Ok(m);
            }
        }
    }

    fn peek_marker(&mut self) -> Result<u8, TreeError> {
        while self.bytes.get(self.pos) == Some(&b'N') {
            self.pos += 1;
        }
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err("unexpected end of the document"))
    }

    fn int_of(&mut self, marker: u8) -> Result<Option<i64>, TreeError> {
        Ok(Some(match marker {
            b'i' => i64::from(self.byte()? as i8),
            b'U' => i64::from(self.byte()?),
            b'I' => {
                let b = self.take(2)?;
                i64::from(i16::from_be_bytes([b[0], b[1]]))
            }
            b'l' => {
                let b = self.take(4)?;
                i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            b'L' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_be_bytes(a)
            }
            _ => return Ok(None),
        }))
    }

    /// A length or count: an integer marker and value, non-negative.
    fn length(&mut self) -> Result<usize, TreeError> {
        let at = self.pos;
        let m = self.marker()?;
        let n = self
            .int_of(m)?
            .ok_or_else(|| syntax("UBJSON", at, "expected an integer length"))?;
        usize::try_from(n).map_err(|_| syntax("UBJSON", at, format!("negative length {n}")))
    }

    fn str_bytes(&mut self) -> Result<Cow<'a, str>, TreeError> {
        let n = self.length()?;
        let at = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| syntax("UBJSON", at, "string is not valid UTF-8"))
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value<'a>, TreeError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        if let Some(i) = self.int_of(marker)? {
            return Ok(Value::Int(i));
        }
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'd' => {
                let b = self.take(4)?;
                Value::Float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            b'D' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Float(f64::from_be_bytes(a))
            }
            b'C' => Value::Int(i64::from(self.byte()?)),
            b'S' => Value::Str(self.str_bytes()?),
            b'H' => match self.str_bytes()? {
                Cow::Borrowed(s) => Value::Number(s),
                Cow::Owned(_) => return Err(self.err("bad high-precision number")),
            },
            b'[' => self.container(false, depth)?,
            b'{' => self.container(true, depth)?,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.err("unknown UBJSON type marker"));
            }
        })
    }

    fn container(&mut self, object: bool, depth: usize) -> Result<Value<'a>, TreeError> {
        let mut elem_marker = None;
        let mut count = None;
        if self.bytes.get(self.pos) == Some(&b'$') {
            self.pos += 1;
            elem_marker = Some(self.byte()?);
            if self.bytes.get(self.pos) != Some(&b'#') {
                return Err(self.err("a typed container must declare its count with `#`"));
            }
        }
        if self.bytes.get(self.pos) == Some(&b'#') {
            self.pos += 1;
            count = Some(self.length()?);
        }

        // Typed numeric arrays are kept as raw bytes.
        if let (false, Some(m), Some(n)) = (object, elem_marker, count)
            && let Some(elem) = Elem::from_marker(m)
        {
            let size = n
                .checked_mul(elem.size())
                .ok_or_else(|| self.err("typed array length overflows"))?;
            let bytes = self.take(size)?;
            return Ok(Value::Typed(TypedArray {
                elem,
                len: n,
                bytes,
            }));
        }
        if let Some(m) = elem_marker
            && matches!(m, b'Z' | b'T' | b'F' | b'N')
        {
            // Elements without a payload could make a tiny file claim billions of values.
            return Err(self.err("typed containers of null or boolean values are not supported"));
        }
        if let Some(n) = count
            && n > self.remaining()
        {
            // Every element takes at least one byte.
            return Err(self.err(format!(
                "container claims {n} elements but only {} bytes remain",
                self.remaining()
            )));
        }

        let mut items = Vec::new();
        let mut fields = Vec::new();
        let mut i = 0usize;
        loop {
            match count {
                Some(n) if i == n => break,
                Some(_) => {}
                None => {
                    let end = if object { b'}' } else { b']' };
                    if self.peek_marker()? == end {
                        self.pos += 1;
                        break;
                    }
                }
            }
            let key = if object {
                Some(self.str_bytes()?)
            } else {
                None
            };
            let m = match elem_marker {
                Some(m) => m,
                None => self.marker()?,
            };
            let v = self.value(m, depth + 1)?;
            match key {
                Some(k) => fields.push((k, v)),
                None => items.push(v),
            }
            i += 1;
        }
        Ok(if object {
            Value::Object(fields)
        } else {
            Value::Array(items)
        })
    }
}

// ---------------------------------------------------------------------------
// Path-aware access
// ---------------------------------------------------------------------------

/// A value together with its path in the document, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct At<'v, 'a> {
    pub value: &'v Value<'a>,
    pub path: String,
}

impl<'v, 'a> At<'v, 'a> {
    pub fn root(value: &'v Value<'a>) -> Self {
        At {
            value,
            path: String::new(),
        }
    }

    pub fn err(&self, message: impl Into<String>) -> TreeError {
        let field = if self.path.is_empty() {
            "(document root)".to_string()
        } else {
            self.path.clone()
        };
        TreeError::field(field, message)
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The required field `key` of this object.
    pub fn get(&self, key: &str) -> Result<At<'v, 'a>, TreeError> {
        if !matches!(self.value, Value::Object(_)) {
            return Err(self.err(format!("expected an object, found {}", self.value.kind())));
        }
        let path = self.child_path(key);
        match self.value.get(key) {
            Some(value) => Ok(At { value, path }),
            None => Err(TreeError::field(path, "missing")),
        }
    }

    /// The optional field `key` of this object.
    pub fn opt(&self, key: &str) -> Option<At<'v, 'a>> {
        self.value.get(key).map(|value| At {
            value,
            path: self.child_path(key),
        })
    }

    pub fn str(&self) -> Result<&'v str, TreeError> {
        match self.value {
            Value::Str(s) => Ok(s),
            v => Err(self.err(format!("expected a string, found {}", v.kind()))),
        }
    }

    /// A number written as a string, as XGBoost stores its parameters (`"num_feature": "10"`).
    pub fn parse_str<T: std::str::FromStr>(&self, what: &str) -> Result<T, TreeError> {
        let s = self.str()?;
        s.trim()
            .parse()
            .map_err(|_| self.err(format!("expected {what}, found another string")))
    }

    pub fn int(&self) -> Result<i64, TreeError> {
        scalar_int(self.value).ok_or_else(|| self.expected("an integer"))
    }

    /// The elements of an untyped array.
    pub fn items(&self) -> Result<Vec<At<'v, 'a>>, TreeError> {
        match self.value {
            Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| At {
                    value,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            v => Err(self.err(format!("expected an array, found {}", v.kind()))),
        }
    }

    fn expected(&self, what: &str) -> TreeError {
        // The kind of value, not the value: messages never quote the file.
        let found = match self.value {
            Value::Number(_) | Value::Float(_) => "another number",
            v => v.kind(),
        };
        self.err(format!("expected {what}, found {found}"))
    }

    fn len(&self) -> Result<usize, TreeError> {
        match self.value {
            Value::Array(items) => Ok(items.len()),
            Value::Typed(t) => Ok(t.len),
            v => Err(self.err(format!("expected an array, found {}", v.kind()))),
        }
    }

    /// Calls `f` with each element of a numeric array (typed or not) as a scalar.
    fn each<T>(
        &self,
        mut f: impl FnMut(&Value<'a>) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, TreeError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let item = match self.value {
                Value::Array(items) => items[i].clone(),
                Value::Typed(t) => match t.get(i) {
                    Some(Scalar::Int(v)) => Value::Int(v),
                    Some(Scalar::Float(v)) => Value::Float(v),
                    None => Value::Null,
                },
                _ => Value::Null,
            };
            match f(&item) {
                Some(v) => out.push(v),
                None => {
                    let at = At {
                        value: &item,
                        path: format!("{}[{i}]", self.path),
                    };
                    return Err(at.expected(what));
                }
            }
        }
        Ok(out)
    }

    pub fn f32s(&self) -> Result<Vec<f32>, TreeError> {
        self.each(scalar_f32, "a number")
    }

    pub fn i64s(&self) -> Result<Vec<i64>, TreeError> {
        self.each(scalar_int, "an integer")
    }

    /// 0/1 flags, written as integers (or booleans by old versions).
    pub fn bools(&self) -> Result<Vec<bool>, TreeError> {
        self.each(
            |v| match v {
                Value::Bool(b) => Some(*b),
                v => match scalar_int(v) {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => None,
                },
            },
            "0 or 1",
        )
    }
}

fn scalar_int(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Number(s) => s.parse().ok(),
        _ => None,
    }
}

/// Converts a scalar to `f32`, rounding decimal text once (as XGBoost's reader does).
pub(crate) fn scalar_f32(v: &Value<'_>) -> Option<f32> {
    match v {
        Value::Int(i) => Some(*i as f32),
        Value::Float(f) => Some(*f as f32),
        Value::Number(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a value as UBJSON the way XGBoost writes it (counted containers, `L` lengths),
    /// optionally with typed arrays for numeric arrays.
    pub(crate) fn to_ubj(v: &Value<'_>, out: &mut Vec<u8>) {
        fn len(n: usize, out: &mut Vec<u8>) {
            out.push(b'L');
            out.extend_from_slice(&(n as i64).to_be_bytes());
        }
        match v {
            Value::Null => out.push(b'Z'),
            Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
            Value::Int(i) => {
                out.push(b'L');
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Float(f) => {
                out.push(b'D');
                out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Number(s) => {
                if let Ok(i) = s.parse::<i64>() {
                    to_ubj(&Value::Int(i), out)
                } else {
                    let f: f32 = s.parse().unwrap_or(f32::NAN);
                    out.push(b'd');
                    out.extend_from_slice(&f.to_be_bytes());
                }
            }
            Value::Str(s) => {
                out.push(b'S');
                len(s.len(), out);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Array(items) => {
                let all_floats = !items.is_empty()
                    && items
                        .iter()
                        .all(|i| matches!(i, Value::Number(s) if s.parse::<i64>().is_err()));
                let all_ints = !items.is_empty()
                    && items
                        .iter()
                        .all(|i| matches!(i, Value::Number(s) if s.parse::<i64>().is_ok()));
                if all_floats {
                    out.extend_from_slice(b"[$d#");
                    len(items.len(), out);
                    for i in items {
                        let f = scalar_f32(i).unwrap_or(f32::NAN);
                        out.extend_from_slice(&f.to_be_bytes());
                    }
                } else if all_ints {
                    out.extend_from_slice(b"[$l#");
                    len(items.len(), out);
                    for i in items {
                        let x = scalar_int(i).unwrap_or(0) as i32;
                        out.extend_from_slice(&x.to_be_bytes());
                    }
                } else {
                    out.extend_from_slice(b"[#");
                    len(items.len(), out);
                    for i in items {
                        to_ubj(i, out);
                    }
                }
            }
            Value::Typed(t) => {
                out.push(b'[');
                out.push(b'$');
                out.push(match t.elem {
                    Elem::I8 => b'i',
                    Elem::U8 => b'U',
                    Elem::I16 => b'I',
                    Elem::I32 => b'l',
                    Elem::I64 => b'L',
                    Elem::F32 => b'd',
                    Elem::F64 => b'D',
                });
                out.push(b'#');
                len(t.len, out);
                out.extend_from_slice(t.bytes);
            }
            Value::Object(fields) => {
                out.push(b'{');
                for (k, v) in fields {
                    len(k.len(), out);
                    out.extend_from_slice(k.as_bytes());
                    to_ubj(v, out);
                }
                out.push(b'}');
            }
        }
    }

    #[test]
    fn json_parses_xgboost_number_tokens() {
        let v = parse_json(
            br#"{"a": [1, -2.5E-1, NaN, Infinity, -Infinity, 1e-45], "b": "x\"y\u00e9"}"#,
        )
        .unwrap();
        let a = At::root(&v).get("a").unwrap().f32s().unwrap();
        assert_eq!(a[0], 1.0);
        assert_eq!(a[1], -0.25);
        assert!(a[2].is_nan());
        assert_eq!(a[3], f32::INFINITY);
        assert_eq!(a[4], f32::NEG_INFINITY);
        assert_eq!(a[5], f32::from_bits(1));
        assert_eq!(At::root(&v).get("b").unwrap().str().unwrap(), "x\"yé");
    }

    #[test]
    fn json_rounds_decimal_text_to_f32_once() {
        // 1 + 2^-24 + 2^-60 rounds up to 1 + 2^-23 when rounded once to f32, but rounds to 1 + 2^-24
        // in f64 and then (ties to even) down to 1.0 if rounded twice.
        let text = "1.0000000596046447753906251";
        assert_eq!(scalar_f32(&Value::Number(text)), Some(1.0 + f32::EPSILON));
        assert_eq!(text.parse::<f64>().unwrap() as f32, 1.0);
    }

    #[test]
    fn json_errors_carry_offsets() {
        for (bad, offset) in [
            (&b"{\"a\": }"[..], 6),
            (b"[1, 2", 5),
            (b"{\"a\" 1}", 5),
            (b"[01x]", 3),
            (b"\"abc", 4),
        ] {
            match parse_json(bad) {
                Err(TreeError::Syntax { offset: o, .. }) => assert_eq!(o, offset, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_nesting_is_bounded() {
        let deep = "[".repeat(10_000);
        assert!(matches!(
            parse_json(deep.as_bytes()),
            Err(TreeError::Syntax { .. })
        ));
    }

    #[test]
    fn ubjson_reads_typed_arrays_and_optimised_containers() {
        let mut b = Vec::new();
        b.extend_from_slice(b"{");
        // key "f": typed float32 array [0.5, -2]
        b.extend_from_slice(b"U\x01f[$d#U\x02");
        b.extend_from_slice(&0.5f32.to_be_bytes());
        b.extend_from_slice(&(-2.0f32).to_be_bytes());
        // key "i": typed int32 array with an int64 count
        b.extend_from_slice(b"i\x01i[$l#L");
        b.extend_from_slice(&2i64.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        // key "u": typed uint8 array (XGBoost's default_left)
        b.extend_from_slice(b"U\x01u[$U#i\x03\x00\x01\x01");
        // key "m": mixed array with end marker and a no-op, strings, ints of every width
        b.extend_from_slice(b"U\x01m[SU\x02hiNi\xffU\xffI\x01\x00");
        b.extend_from_slice(b"l\x00\x01\x00\x00");
        b.extend_from_slice(b"TFZ]");
        // key "o": counted object
        b.extend_from_slice(b"U\x01o{#U\x01U\x01kd");
        b.extend_from_slice(&1.25f32.to_be_bytes());
        b.extend_from_slice(b"}");
        let v = parse_ubjson(&b).unwrap();
        let root = At::root(&v);
        assert_eq!(root.get("f").unwrap().f32s().unwrap(), vec![0.5, -2.0]);
        assert_eq!(root.get("i").unwrap().i64s().unwrap(), vec![7, -1]);
        assert_eq!(
            root.get("u").unwrap().bools().unwrap(),
            vec![false, true, true]
        );
        let m = root.get("m").unwrap().items().unwrap();
        assert_eq!(m[0].str().unwrap(), "hi");
        assert_eq!(m[1].int().unwrap(), -1);
        assert_eq!(m[2].int().unwrap(), 255);
        assert_eq!(m[3].int().unwrap(), 256);
        assert_eq!(m[4].int().unwrap(), 65536);
        assert_eq!(m[5].value, &Value::Bool(true));
        assert_eq!(m[6].value, &Value::Bool(false));
        assert_eq!(m[7].value, &Value::Null);
        let o = root.get("o").unwrap().get("k").unwrap();
        assert_eq!(scalar_f32(o.value), Some(1.25));
    }

    #[test]
    fn ubjson_rejects_lying_lengths_without_allocating() {
        for bad in [
            &b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff"[..],
            b"[#L\x00\x00\x00\x01\x00\x00\x00\x00i\x01",
            b"SL\xff\xff\xff\xff\xff\xff\xff\xff",
            b"[$Z#L\x00\x00\x00\x01\x00\x00\x00\x00",
            b"{U\x05ab",
            b"[i\x01",
            b"q",
        ] {
            assert!(
                matches!(parse_ubjson(bad), Err(TreeError::Syntax { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ubjson_round_trips_json_documents() {
        let json = br#"{"a": {"b": [1, 2, 3], "c": [0.5, 1.5], "d": "s", "e": [true, null, "x"]}}"#;
        let v = parse_json(json).unwrap();
        let mut ubj = Vec::new();
        to_ubj(&v, &mut ubj);
        let w = parse_ubjson(&ubj).unwrap();
        let (a, b) = (
            At::root(&v).get("a").unwrap(),
            At::root(&w).get("a").unwrap(),
        );
        assert_eq!(
            a.get("b").unwrap().i64s().unwrap(),
            b.get("b").unwrap().i64s().unwrap()
        );
        assert_eq!(
            a.get("c").unwrap().f32s().unwrap(),
            b.get("c").unwrap().f32s().unwrap()
        );
        assert_eq!(b.get("d").unwrap().str().unwrap(), "s");
        assert_eq!(b.get("e").unwrap().items().unwrap().len(), 3);
    }

    #[test]
    fn errors_name_the_path() {
        let v = parse_json(br#"{"a": {"b": [1, "x"]}}"#).unwrap();
        let err = At::root(&v)
            .get("a")
            .unwrap()
            .get("b")
            .unwrap()
            .i64s()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.b[1]: expected an integer, found a string"
        );
        let err = At::root(&v).get("a").unwrap().get("zz").unwrap_err();
        assert_eq!(err.to_string(), "a.zz: missing");
    }
}
