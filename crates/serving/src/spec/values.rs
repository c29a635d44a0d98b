//! Validated scalar values of KServe resources: names, storage URIs, HTTP
//! URLs, traffic percentages and Go durations. Each has a constructor that
//! checks it, so a value of these types is always valid.

use std::fmt;
use std::time::Duration;

use oxflow_core::spec::matches_dns1035_label;

/// An InferenceService name: a DNS-1035 label (`^[a-z]([-a-z0-9]*[a-z0-9])?$`,
/// at most 63 characters), KServe's `IsvcNameFmt`. It becomes a host name
/// (`<name>.<namespace>.example.com`) and part of Service names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsvcName(String);

impl IsvcName {
    /// Validates `name`; the error says what is wrong.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() {
            return Err("is empty".to_owned());
        }
        if !matches_dns1035_label(&name) {
            return Err(format!(
                "{name:?} is not a valid InferenceService name: use lower case letters, digits and '-', start with a letter and end with a letter or digit (e.g. \"my-name\" or \"abc-123\"; KServe's regex is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ));
        }
        if name.len() > 63 {
            return Err(format!(
                "{name:?} is {} characters long; the limit is 63",
                name.len()
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IsvcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kubernetes object name: a DNS-1123 subdomain (lower case letters,
/// digits, '-' and '.', starting and ending with a letter or digit, at most
/// 253 characters). Names of ServingRuntimes, TrainedModels and service
/// accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

impl ObjectName {
    /// Validates `name`; the error says what is wrong.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() {
            return Err("is empty".to_owned());
        }
        if name.len() > 253 {
            return Err(format!(
                "{name:?} is {} characters long; the limit is 253",
                name.len()
            ));
        }
        if !name.split('.').all(is_dns1123_label) {
            return Err(format!(
                "{name:?} is not a valid Kubernetes name: use lower case letters, digits, '-' and '.', starting and ending with a letter or digit"
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS-1123 label: 1-63 lower case letters, digits or '-', starting and
/// ending with a letter or digit (container names, port names, predictor
/// variant names).
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// How a [`StorageUri`] is fetched: its scheme, or a local path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageScheme {
    /// A path without a scheme (absolute or relative), used as it is.
    LocalPath,
    /// `file://`: a local path.
    File,
    /// `http://`: one file downloaded (archives are unpacked).
    Http,
    /// `https://`: as `http://`; Azure Blob URLs also use it.
    Https,
    /// `s3://bucket/path` (S3 or MinIO).
    S3,
    /// `gs://bucket/path` (Google Cloud Storage).
    Gcs,
    /// `pvc://claim/path`: a persistent volume claim, mounted, not copied.
    Pvc,
    /// `hf://org/model[:revision]` (Hugging Face Hub).
    HuggingFace,
    /// `oci://`: a model packaged as an OCI image ("modelcar").
    Oci,
    /// `oci+native://`: a modelcar mounted as an image volume.
    OciNative,
    /// `oci+fetch://`: a modelcar pulled and unpacked.
    OciFetch,
    /// `hdfs://`.
    Hdfs,
    /// `webhdfs://`.
    WebHdfs,
}

impl StorageScheme {
    /// Every scheme KServe's storage initializer accepts, with its prefix
    /// (KServe's `SupportedStorageURIPrefixList`).
    pub const PREFIXES: [(&'static str, StorageScheme); 12] = [
        ("file://", Self::File),
        ("http://", Self::Http),
        ("https://", Self::Https),
        ("s3://", Self::S3),
        ("gs://", Self::Gcs),
        ("pvc://", Self::Pvc),
        ("hf://", Self::HuggingFace),
        ("oci://", Self::Oci),
        ("oci+native://", Self::OciNative),
        ("oci+fetch://", Self::OciFetch),
        ("hdfs://", Self::Hdfs),
        ("webhdfs://", Self::WebHdfs),
    ];

    /// The prefix (`s3://`), empty for a local path.
    pub fn prefix(self) -> &'static str {
        Self::PREFIXES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("", |(p, _)| p)
    }
}

/// A model location (`storageUri`): a URI with one of KServe's schemes or a
/// local path. Checked on construction; kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageUri {
    text: String,
    scheme: StorageScheme,
}

impl StorageUri {
    /// Validates `uri`; the error says what is wrong and what is allowed.
    pub fn parse(uri: &str) -> Result<Self, String> {
        if uri.is_empty() {
            return Err(
                "is empty; give the model's location (e.g. s3://bucket/model, gs://…, https://…, pvc://claim/path or a local path)"
                    .to_owned(),
            );
        }
        if uri.chars().any(char::is_whitespace) {
            return Err(format!(
                "{uri:?} contains white space; percent-encode it (%20) or remove it"
            ));
        }
        let Some((scheme_text, _)) = uri.split_once("://") else {
            return Ok(Self {
                text: uri.to_owned(),
                scheme: StorageScheme::LocalPath,
            });
        };
        let Some(&(prefix, scheme)) = StorageScheme::PREFIXES
            .iter()
            .find(|(p, _)| uri.starts_with(p))
        else {
            let allowed: Vec<&str> = StorageScheme::PREFIXES.iter().map(|(p, _)| *p).collect();
            return Err(format!(
                "{uri:?} has the unsupported scheme {scheme_text:?}; use one of {} or a local path",
                allowed.join(", ")
            ));
        };
        let rest = &uri[prefix.len()..];
        let first = rest.split('/').next().unwrap_or_default();
        let missing = |what: &str| Err(format!("{uri:?} names no {what} after {prefix}"));
        match scheme {
            StorageScheme::S3 | StorageScheme::Gcs if first.is_empty() => missing("bucket"),
            StorageScheme::Pvc if first.is_empty() => missing("persistent volume claim"),
            StorageScheme::Http | StorageScheme::Https | StorageScheme::WebHdfs
                if first.is_empty() =>
            {
                missing("host")
            }
            StorageScheme::HuggingFace if first.is_empty() || rest.len() == first.len() => {
                Err(format!(
                    "{uri:?} is not a Hugging Face model; write hf://<org>/<model>[:<revision>]"
                ))
            }
            _ if rest.is_empty() => missing("location"),
            _ => Ok(Self {
                text: uri.to_owned(),
                scheme,
            }),
        }
    }

    /// The URI as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its scheme.
    pub fn scheme(&self) -> StorageScheme {
        self.scheme
    }

    /// The part after the scheme (`bucket/path` of `s3://bucket/path`), or
    /// the whole path for a local path.
    pub fn location(&self) -> &str {
        &self.text[self.scheme.prefix().len()..]
    }
}

impl fmt::Display for StorageUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An absolute `http://` or `https://` URL with a host (logger sinks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Validates `url`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                format!("{url:?} is not an http:// or https:// URL (e.g. http://message-dumper.default.svc.cluster.local)")
            })?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let (name, port) = if let Some(v6) = host.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            match v6.split_once(']') {
                Some((addr, "")) => (addr, None),
                Some((addr, tail)) => (addr, Some(tail.strip_prefix(':').unwrap_or("x"))),
                None => ("", None),
            }
        } else {
            match host.rsplit_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (host, None),
            }
        };
        if name.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        if let Some(p) = port
            && (p.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("{url:?} has an invalid port {p:?}"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?} contains white space"));
        }
        Ok(Self(url.to_owned()))
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A share of traffic, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percent(u8);

impl Percent {
    /// `None` above 100.
    pub fn new(p: u8) -> Option<Self> {
        (p <= 100).then_some(Self(p))
    }

    /// The percentage.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// Parses a Go `time.ParseDuration` string (`"5s"`, `"100ms"`, `"1m30s"`,
/// `"0"`); negative durations are refused.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration; write a number with a unit (ns, us, ms, s, m, h), e.g. \"5s\" or \"100ms\""
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        let u = tail
            .bytes()
            .position(|b| b.is_ascii_digit() || b == b'.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        let frac_scale = 10u128.pow(frac.len() as u32);
        total = int
            .checked_mul(per_unit)
            .and_then(|v| v.checked_add(frac_value * per_unit / frac_scale))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(bad)?;
        rest = tail;
    }
    let nanos = u64::try_from(total).map_err(|_| bad())?;
    Ok(Duration::from_nanos(nanos))
}

/// Writes a duration the way [`parse_go_duration`] reads it, in the largest
/// unit that keeps it exact.
pub(crate) fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(per) {
            return format!("{}{unit}", nanos / per);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isvc_names_follow_dns_1035() {
        for ok in ["sklearn-iris", "a", "x1", "abc-123"] {
            assert_eq!(IsvcName::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "1abc",
            "-a",
            "a-",
            "Upper",
            "a_b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(IsvcName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_names_follow_dns_1123_subdomains() {
        for ok in ["kserve-mlserver", "model1-sklearn", "a.b.c", "1abc"] {
            assert_eq!(ObjectName::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "A", "a_b", "a..b", ".a", "a-", &"a".repeat(254)] {
            assert!(ObjectName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn storage_uris() {
        for (uri, scheme, location) in [
            (
                "gs://kfserving-examples/models/sklearn/1.0/model",
                StorageScheme::Gcs,
                "kfserving-examples/models/sklearn/1.0/model",
            ),
            ("s3://bucket", StorageScheme::S3, "bucket"),
            (
                "pvc://claim/dir/model.onnx",
                StorageScheme::Pvc,
                "claim/dir/model.onnx",
            ),
            ("file:///tmp/model", StorageScheme::File, "/tmp/model"),
            ("/mnt/models", StorageScheme::LocalPath, "/mnt/models"),
            ("models/iris", StorageScheme::LocalPath, "models/iris"),
            (
                "https://github.com/x/y/model.joblib?raw=true",
                StorageScheme::Https,
                "github.com/x/y/model.joblib?raw=true",
            ),
            (
                "http://10.0.0.1:8000/m.tar.gz",
                StorageScheme::Http,
                "10.0.0.1:8000/m.tar.gz",
            ),
            (
                "hf://meta-llama/Llama-3:main",
                StorageScheme::HuggingFace,
                "meta-llama/Llama-3:main",
            ),
            (
                "oci://registry/model:v1",
                StorageScheme::Oci,
                "registry/model:v1",
            ),
            (
                "oci+native://registry/model:v1",
                StorageScheme::OciNative,
                "registry/model:v1",
            ),
            (
                "hdfs://namenode/models",
                StorageScheme::Hdfs,
                "namenode/models",
            ),
        ] {
            let u = StorageUri::parse(uri).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (u.as_str(), u.scheme(), u.location()),
                (uri, scheme, location)
            );
        }
        for (bad, msg) in [
            ("", "is empty"),
            ("ftp://host/model", "unsupported scheme \"ftp\""),
            ("S3://bucket/x", "unsupported scheme"),
            ("s3://", "names no bucket"),
            ("gs:///path", "names no bucket"),
            ("pvc://", "names no persistent volume claim"),
            ("https:///x", "names no host"),
            ("hf://org", "not a Hugging Face model"),
            ("oci://", "names no location"),
            ("s3://bucket/my model", "white space"),
        ] {
            let e = StorageUri::parse(bad).unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn http_urls() {
        for ok in [
            "http://message-dumper.default.svc.cluster.local",
            "https://example.com:8443/path?q=1",
            "http://user:pw@host/x",
            "http://[::1]:8080/",
        ] {
            assert_eq!(HttpUrl::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "message-dumper",
            "ftp://x",
            "http://",
            "http:///x",
            "http://h:x/",
            "http://h:/",
            "http://a b",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("100ms", Duration::from_millis(100)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
        ] {
            let d = parse_go_duration(text).unwrap();
            assert_eq!(d, want, "{text}");
            assert_eq!(parse_go_duration(&format_go_duration(d)).unwrap(), d);
        }
        assert_eq!(format_go_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1500ms");
        for bad in ["", "5", "-1s", "s", "1x", "1.2.3s", "ms5"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent() {
        assert_eq!(Percent::new(100).map(Percent::get), Some(100));
        assert_eq!(Percent::new(101), None);
        assert_eq!(Percent::new(10).unwrap().to_string(), "10%");
    }
}
