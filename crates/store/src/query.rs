//! Filtering, sorting and paging for the `list_*` methods, in the terms the
//! KFP API uses (predicates, `sort_by`, page tokens) but with typed values:
//! parsing the wire JSON is the server's job.
//!
//! Which fields each resource accepts is listed on its `list_*` method; any
//! other field is a [`crate::StoreError::BadQuery`] naming it.

use oxflow_core::{Namespace, Timestamp};

/// Page size when [`ListQuery::page_size`] is zero or negative.
pub const DEFAULT_PAGE_SIZE: i64 = 20;

/// Larger page sizes are clamped to this.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// One page request: which rows, in which order, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Only rows of this namespace (`None`: every namespace). Shared
    /// pipelines have no namespace: select them with a filter on
    /// `namespace` EQUALS `""`.
    pub namespace: Option<Namespace>,
    /// Every predicate must hold (KFP combines predicates with AND).
    pub filters: Vec<Filter>,
    /// The order of the rows; ties are broken by id in the same direction.
    pub sort: Sort,
    /// Rows per page: zero or negative means [`DEFAULT_PAGE_SIZE`], more
    /// than [`MAX_PAGE_SIZE`] means that many.
    pub page_size: i64,
    /// The `next_page_token` of the previous page, with the same sort.
    pub page_token: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            namespace: None,
            filters: Vec::new(),
            sort: Sort::default(),
            page_size: DEFAULT_PAGE_SIZE,
            page_token: None,
        }
    }
}

impl ListQuery {
    /// The page size actually used: see [`ListQuery::page_size`].
    pub fn effective_page_size(&self) -> i64 {
        if self.page_size <= 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.page_size.min(MAX_PAGE_SIZE)
        }
    }
}

/// The order of a listing (KFP `sort_by`: `"created_at desc"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// A sortable field of the resource (`created_at`, `display_name`, …).
    pub field: String,
    /// Descending when true.
    pub desc: bool,
}

impl Default for Sort {
    /// Oldest first, as KFP lists by default.
    fn default() -> Self {
        Self {
            field: "created_at".into(),
            desc: false,
        }
    }
}

impl Sort {
    /// Ascending by `field`.
    pub fn asc(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            desc: false,
        }
    }

    /// Descending by `field`.
    pub fn desc(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            desc: true,
        }
    }
}

/// One predicate: `field op value` (KFP `Predicate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// A filterable field of the resource.
    pub field: String,
    /// The comparison.
    pub op: FilterOp,
    /// What the field is compared with.
    pub value: FilterValue,
}

impl Filter {
    /// `field op value`.
    pub fn new(field: impl Into<String>, op: FilterOp, value: FilterValue) -> Self {
        Self {
            field: field.into(),
            op,
            value,
        }
    }
}

/// The comparisons of KFP's `Predicate.Operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterOp {
    /// `=`. Never true for an unset (NULL) field.
    Equals,
    /// `<>`. True for an unset field.
    NotEquals,
    /// `>`.
    GreaterThan,
    /// `>=`.
    GreaterThanEquals,
    /// `<`.
    LessThan,
    /// `<=`.
    LessThanEquals,
    /// One of a list ([`FilterValue::Strings`] or [`FilterValue::Ints`]);
    /// an empty list matches nothing.
    In,
    /// The text field contains the string, ignoring the case of ASCII
    /// letters (other characters must match exactly, in both databases).
    IsSubstring,
}

impl FilterOp {
    /// KFP's name for the operation (`EQUALS`, …), for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "EQUALS",
            Self::NotEquals => "NOT_EQUALS",
            Self::GreaterThan => "GREATER_THAN",
            Self::GreaterThanEquals => "GREATER_THAN_EQUALS",
            Self::LessThan => "LESS_THAN",
            Self::LessThanEquals => "LESS_THAN_EQUALS",
            Self::In => "IN",
            Self::IsSubstring => "IS_SUBSTRING",
        }
    }
}

/// A predicate's operand. Text fields take strings, time fields timestamps
/// and integer fields integers; a list goes with [`FilterOp::In`] only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// KFP `string_value`.
    String(String),
    /// KFP `int_value` / `long_value`.
    Int(i64),
    /// KFP `timestamp_value` (the server converts RFC 3339 or seconds).
    Timestamp(Timestamp),
    /// KFP `string_values`.
    Strings(Vec<String>),
    /// KFP `int_values` / `long_values`.
    Ints(Vec<i64>),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page, in order.
    pub items: Vec<T>,
    /// How many rows match the filters across all pages.
    pub total_size: i64,
    /// Pass as [`ListQuery::page_token`] for the next page; `None` on the last.
    pub next_page_token: Option<String>,
}
