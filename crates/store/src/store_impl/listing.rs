//! The one listing engine behind every `list_*` method: KFP predicates turned
//! into SQL over a whitelist of fields per resource, and keyset pagination.
//!
//! A page is `WHERE <filters> AND <after the cursor> ORDER BY <key>, id
//! LIMIT n + 1`: the cursor (the last row's sort key and id, in the page
//! token) makes the database start inside an index on `(…, key, id)` instead
//! of counting past an offset, and rows inserted between two fetches can
//! neither repeat nor push rows off a page. The extra row says whether
//! another page follows.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::DbContext;
use crate::{Filter, FilterOp, FilterValue, ListQuery, Page, Result, StoreError};

/// How a field's values are stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    /// TEXT, compared bytewise in both databases.
    Text,
    /// A BIGINT (booleans as 0/1).
    Int,
    /// A BIGINT of epoch milliseconds.
    Time,
}

impl FieldType {
    /// The value a comparison with this field takes, for messages.
    fn describe(self) -> &'static str {
        match self {
            Self::Text => "a string",
            Self::Int => "an integer",
            Self::Time => "a timestamp",
        }
    }

    /// For "… on created_at (a time field) …".
    fn name(self) -> &'static str {
        match self {
            Self::Text => "a text",
            Self::Int => "an integer",
            Self::Time => "a time",
        }
    }
}

/// A field predicates may name.
pub(super) struct Field {
    /// The names the API uses for it (the first is the canonical one).
    pub names: &'static [&'static str],
    /// The column.
    pub column: &'static str,
    pub ty: FieldType,
    /// The column may be NULL (an unset value): only NOT_EQUALS matches it.
    pub nullable: bool,
}

/// A text field for a [`Resource`] table.
pub(super) const fn text(
    names: &'static [&'static str],
    column: &'static str,
    nullable: bool,
) -> Field {
    Field {
        names,
        column,
        ty: FieldType::Text,
        nullable,
    }
}

/// A timestamp field for a [`Resource`] table.
pub(super) const fn time(
    names: &'static [&'static str],
    column: &'static str,
    nullable: bool,
) -> Field {
    Field {
        names,
        column,
        ty: FieldType::Time,
        nullable,
    }
}

/// An integer field for a [`Resource`] table (booleans are 0/1).
pub(super) const fn int(names: &'static [&'static str], column: &'static str) -> Field {
    Field {
        names,
        column,
        ty: FieldType::Int,
        nullable: false,
    }
}

/// A field rows may be sorted by.
pub(super) struct SortKey {
    /// The names the API uses for it (the first is the canonical one).
    pub names: &'static [&'static str],
    /// The expression sorted on; never NULL, so that both databases order
    /// it the same way (they disagree on where NULLs go).
    pub expr: &'static str,
    /// Whether `expr` is an integer (else text).
    pub int: bool,
}

/// What the engine needs to know about one table.
pub(super) struct Resource {
    /// Plural name (`runs`) for messages and page tokens.
    pub kind: &'static str,
    pub table: &'static str,
    /// The columns the row decoder reads.
    pub columns: &'static str,
    /// The column [`ListQuery::namespace`] restricts, if the table has one.
    pub namespace_column: Option<&'static str>,
    pub fields: &'static [Field],
    pub sorts: &'static [SortKey],
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Text(String),
    Int(i64),
}

/// The statements of one page request.
pub(super) struct Plan {
    /// The resource kind, for messages and the page token.
    kind: &'static str,
    /// The page: the resource's columns plus `sort_key`.
    sql: String,
    /// `COUNT(*)` of every row the filters match.
    count_sql: String,
    args: Vec<Arg>,
    /// `count_sql` uses only the first this many of `args`.
    filter_args: usize,
    /// Rows asked for: one more than the page size.
    fetch: usize,
    int_key: bool,
    sort_name: &'static str,
    desc: bool,
}

/// What a page token holds. Short keys: tokens travel in URLs.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    /// The resource kind.
    r: String,
    /// The canonical sort field.
    s: String,
    /// Descending.
    d: bool,
    /// The last row's sort key.
    k: Key,
    /// The last row's id.
    i: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Key {
    Int(i64),
    Text(String),
}

fn bad(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::BadQuery {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn names<'a>(names: impl Iterator<Item = &'a &'static [&'static str]>) -> String {
    names
        .flat_map(|n| n.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resource {
    fn field(&self, name: &str) -> Result<&Field> {
        self.fields
            .iter()
            .find(|f| f.names.contains(&name))
            .ok_or_else(|| {
                bad(
                    name,
                    format!(
                        "{} cannot be filtered on {name:?}; use one of: {}",
                        self.kind,
                        names(self.fields.iter().map(|f| &f.names))
                    ),
                )
            })
    }

    fn sort_key(&self, name: &str) -> Result<&SortKey> {
        self.sorts
            .iter()
            .find(|s| s.names.contains(&name))
            .ok_or_else(|| {
                bad(
                    name,
                    format!(
                        "{} cannot be sorted by {name:?}; use one of: {}",
                        self.kind,
                        names(self.sorts.iter().map(|s| &s.names))
                    ),
                )
            })
    }

    /// Builds the statements for `q`, with `scope` (`column = value`) as an
    /// extra condition when the listing is inside a parent resource.
    pub(super) fn plan(&self, q: &ListQuery, scope: Option<(&str, &str)>) -> Result<Plan> {
        let mut args = Vec::new();
        let mut conditions = Vec::new();
        if let Some((column, value)) = scope {
            let p = push(&mut args, Arg::Text(value.to_owned()));
            conditions.push(format!("{column} = {p}"));
        }
        if let (Some(column), Some(ns)) = (self.namespace_column, &q.namespace) {
            let p = push(&mut args, Arg::Text(ns.as_str().to_owned()));
            conditions.push(format!("{column} = {p}"));
        }
        for f in &q.filters {
            conditions.push(self.condition(f, &mut args)?);
        }
        let filter_args = args.len();
        let where_sql = |conditions: &[String]| {
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            }
        };
        let count_sql = format!(
            "SELECT COUNT(*) FROM {}{}",
            self.table,
            where_sql(&conditions)
        );

        let key = self.sort_key(&q.sort.field)?;
        // Every table lists at least one name per key; the expression is a
        // stable stand-in otherwise.
        let sort_name = key.names.first().copied().unwrap_or(key.expr);
        let e = key.expr;
        if let Some(token) = &q.page_token {
            let t = decode_token(token)?;
            if t.r != self.kind {
                return Err(bad(
                    "page_token",
                    format!(
                        "the token was issued for listing {}, not {}; start again without a page token",
                        t.r, self.kind
                    ),
                ));
            }
            if t.s != sort_name || t.d != q.sort.desc {
                let dir = |d| if d { " desc" } else { "" };
                return Err(bad(
                    "page_token",
                    format!(
                        "the token was issued for sort_by \"{}{}\", not \"{}{}\"; keep the sort \
                         while paging, or start again without a page token",
                        t.s,
                        dir(t.d),
                        sort_name,
                        dir(q.sort.desc)
                    ),
                ));
            }
            let k = match (t.k, key.int) {
                (Key::Int(k), true) => Arg::Int(k),
                (Key::Text(k), false) => Arg::Text(k),
                _ => {
                    return Err(bad(
                        "page_token",
                        "the token is corrupt: start again without one",
                    ));
                }
            };
            let k = push(&mut args, k);
            let id = push(&mut args, Arg::Text(t.i));
            let (strict, loose) = if q.sort.desc {
                ("<", "<=")
            } else {
                (">", ">=")
            };
            // The first conjunct alone bounds the index range; the second
            // steps past the rows of the previous page that share its key.
            conditions.push(format!(
                "{e} {loose} {k} AND ({e} {strict} {k} OR id {strict} {id})"
            ));
        }
        let size = q.effective_page_size();
        let limit = push(&mut args, Arg::Int(size + 1));
        let dir = if q.sort.desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {}, {e} AS sort_key FROM {}{} ORDER BY {e} {dir}, id {dir} LIMIT {limit}",
            self.columns,
            self.table,
            where_sql(&conditions),
        );
        Ok(Plan {
            kind: self.kind,
            sql,
            count_sql,
            args,
            filter_args,
            fetch: usize::try_from(size + 1).unwrap_or(usize::MAX),
            int_key: key.int,
            sort_name,
            desc: q.sort.desc,
        })
    }

    /// The SQL of one predicate, pushing its values onto `args`.
    fn condition(&self, f: &Filter, args: &mut Vec<Arg>) -> Result<String> {
        let field = self.field(&f.field)?;
        let col = field.column;
        let mismatch = || {
            let (what, ty) = match (f.op, field.ty) {
                (FilterOp::In, FieldType::Text) => ("a list of strings", field.ty),
                (FilterOp::In, FieldType::Int) => ("a list of integers", field.ty),
                (FilterOp::In, FieldType::Time) => ("no list: use two comparisons", field.ty),
                (FilterOp::IsSubstring, FieldType::Text) => ("a string", field.ty),
                (FilterOp::IsSubstring, _) => ("only text fields", field.ty),
                (_, ty) => (ty.describe(), ty),
            };
            bad(
                &f.field,
                format!(
                    "{} on {} ({} field) takes {what}, not {}",
                    f.op.as_str(),
                    f.field,
                    ty.name(),
                    describe_value(&f.value)
                ),
            )
        };
        let sql_op = match f.op {
            FilterOp::In => {
                let items: Vec<Arg> = match (&f.value, field.ty) {
                    (FilterValue::Strings(v), FieldType::Text) => {
                        v.iter().map(|s| Arg::Text(s.clone())).collect()
                    }
                    (FilterValue::Ints(v), FieldType::Int) => {
                        v.iter().map(|&i| Arg::Int(i)).collect()
                    }
                    _ => return Err(mismatch()),
                };
                if items.is_empty() {
                    return Ok("1 = 0".into());
                }
                let list: Vec<String> = items.into_iter().map(|a| push(args, a)).collect();
                return Ok(format!("{col} IN ({})", list.join(", ")));
            }
            FilterOp::IsSubstring => {
                let (FilterValue::String(s), FieldType::Text) = (&f.value, field.ty) else {
                    return Err(mismatch());
                };
                // LOWER folds ASCII only in SQLite and under PostgreSQL's "C"
                // collation (which every filterable column has), so folding
                // the pattern the same way keeps both databases in step.
                let mut pattern = String::from("%");
                for c in s.to_ascii_lowercase().chars() {
                    if matches!(c, '%' | '_' | '!') {
                        pattern.push('!');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                let p = push(args, Arg::Text(pattern));
                return Ok(format!("LOWER({col}) LIKE {p} ESCAPE '!'"));
            }
            FilterOp::Equals => "=",
            FilterOp::NotEquals => "<>",
            FilterOp::GreaterThan => ">",
            FilterOp::GreaterThanEquals => ">=",
            FilterOp::LessThan => "<",
            FilterOp::LessThanEquals => "<=",
        };
        let arg = match (&f.value, field.ty) {
            (FilterValue::String(s), FieldType::Text) => Arg::Text(s.clone()),
            (FilterValue::Int(i), FieldType::Int) => Arg::Int(*i),
            (FilterValue::Timestamp(t), FieldType::Time) => Arg::Int(t.millis()),
            _ => return Err(mismatch()),
        };
        let p = push(args, arg);
        if f.op == FilterOp::NotEquals && field.nullable {
            // An unset field is "not equal" to any value, as users expect.
            Ok(format!("({col} IS NULL OR {col} <> {p})"))
        } else {
            Ok(format!("{col} {sql_op} {p}"))
        }
    }
}

fn describe_value(v: &FilterValue) -> &'static str {
    match v {
        FilterValue::String(_) => "a string",
        FilterValue::Int(_) => "an integer",
        FilterValue::Timestamp(_) => "a timestamp",
        FilterValue::Strings(_) => "a list of strings",
        FilterValue::Ints(_) => "a list of integers",
    }
}

/// Appends a bound value and returns its placeholder.
fn push(args: &mut Vec<Arg>, arg: Arg) -> String {
    args.push(arg);
    format!("${}", args.len())
}

fn query(
    sql: &str,
    args: &[Arg],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    // Only placeholders, fixed keywords and whitelisted column names were
    // formatted into `sql`; every user value is bound.
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
}

impl Plan {
    /// Runs the page and count statements and decodes the rows.
    pub(super) async fn fetch<T>(
        &self,
        pool: &sqlx::AnyPool,
        decode: fn(&AnyRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let kind = self.kind;
        // The count (KFP's `total_size`) and the page are independent: on a
        // server database they run on two connections at once, so a list
        // costs one round trip instead of two.
        let (count, rows) = tokio::join!(
            query(&self.count_sql, &self.args[..self.filter_args]).fetch_one(pool),
            query(&self.sql, &self.args).fetch_all(pool),
        );
        let total_size: i64 = count
            .and_then(|row| row.try_get(0))
            .context(|| format!("counting {kind}"))?;
        let mut rows = rows.context(|| format!("listing {kind}"))?;
        let next_page_token = if rows.len() >= self.fetch {
            rows.truncate(self.fetch - 1);
            match rows.last() {
                Some(last) => Some(self.token(last)?),
                None => None,
            }
        } else {
            None
        };
        let items = rows.iter().map(decode).collect::<Result<Vec<T>>>()?;
        Ok(Page {
            items,
            total_size,
            next_page_token,
        })
    }

    fn token(&self, last: &AnyRow) -> Result<String> {
        let kind = self.kind;
        let context = || format!("reading the sort key of the last {kind} of a page");
        let k = if self.int_key {
            Key::Int(last.try_get("sort_key").context(context)?)
        } else {
            Key::Text(last.try_get("sort_key").context(context)?)
        };
        let i: String = last.try_get("id").context(context)?;
        let token = Token {
            r: kind.to_owned(),
            s: self.sort_name.to_owned(),
            d: self.desc,
            k,
            i,
        };
        // Serializing plain strings, bools and integers cannot fail.
        let json = serde_json::to_vec(&token).unwrap_or_default();
        Ok(base64url::encode(&json))
    }

    /// The database's plan for the page statement, one line per node.
    pub(super) async fn explain(
        &self,
        pool: &sqlx::AnyPool,
        dialect: crate::Dialect,
    ) -> Result<Vec<String>> {
        let (prefix, column) = match dialect {
            crate::Dialect::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            crate::Dialect::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let rows = query(&format!("{prefix}{}", self.sql), &self.args)
            .fetch_all(pool)
            .await
            .context(|| format!("explaining {}", self.sql))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(column))
            .collect::<Result<_, _>>()
            .context(|| format!("reading the plan of {}", self.sql))
    }
}

fn decode_token(token: &str) -> Result<Token> {
    base64url::decode(token)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            bad(
                "page_token",
                "not a page token this server issued; start again without one",
            )
        })
}

/// Unpadded URL-safe base64 (RFC 4648 §5), so tokens need no escaping in a
/// query string. Hand-written to keep the store's dependencies as they are.
mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        for chunk in text.as_bytes().chunks(4) {
            if chunk.len() == 1 {
                return None;
            }
            let mut n = 0;
            for (i, &c) in chunk.iter().enumerate() {
                n |= sextet(c)? << (18 - 6 * i);
            }
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        let cases: [(&[u8], &str); 6] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (&[0xfb, 0xff, 0xfe], "-__-"),
        ];
        for (bytes, text) in cases {
            assert_eq!(base64url::encode(bytes), text);
            assert_eq!(base64url::decode(text).as_deref(), Some(bytes));
        }
        for bad in ["Z", "Zm9vY", "Zm+v", "Zm=v"] {
            assert_eq!(base64url::decode(bad), None, "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64url::decode(&base64url::encode(&all)), Some(all));
    }
}
