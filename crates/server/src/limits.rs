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
}
