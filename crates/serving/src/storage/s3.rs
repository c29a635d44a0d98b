//! `s3://BUCKET/KEY` storage URIs, read the way KServe's storage initializer
//! reads them (`_download_s3`): when the key names one object, that file;
//! otherwise every object under `KEY/`, at its path relative to the prefix.
//! Directory markers and empty objects are skipped, as KServe skips them. A
//! download of exactly one `.tar`/`.tar.gz`/`.tgz`/`.zip` object is
//! unpacked.
//!
//! Objects go into the same cache as http(s):// downloads, under
//! `model/` in the entry directory. The entry records each object's key,
//! ETag, size and SHA-256; the next fetch lists again and downloads only
//! the objects whose ETag or size changed (unchanged ones are hard-linked
//! from the previous entry). When the endpoint cannot be reached, a
//! complete cached copy is used.
//!
//! The digest of a fetch is the SHA-256 of the file for one object or
//! archive, and for a prefix the SHA-256 of its `sha256sum` manifest
//! (`<sha256>  <relative path>` lines, sorted by path).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpClient, HttpConnector, HttpError};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{
    CacheMeta, Fetched, Storage, StorageError, archive_kind, commit, error_chain, read_meta,
    staging_dir, unpack,
};

/// How many objects download at once (KServe's `S3_MAX_FILE_CONCURRENCY`
/// default).
const CONCURRENT_DOWNLOADS: usize = 4;

/// How to reach S3 or an S3-compatible store (MinIO, Ceph, moto) for
/// `s3://` URIs. [`S3Config::from_env`] reads KServe's variables; the
/// controller can build one from a secret instead. Without credentials,
/// requests are anonymous (unsigned).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `https://host[:port]`, `http://host[:port]` or a bare `host[:port]`
    /// (then `http` when `allow_http`, else `https`); `None` is AWS itself.
    pub endpoint: Option<String>,
    /// The signing region; `us-east-1` when empty.
    pub region: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// Whether a plain-HTTP endpoint may be used.
    pub allow_http: bool,
    /// Virtual-hosted-style requests (`BUCKET.host/KEY`) instead of
    /// path-style ones (`host/BUCKET/KEY`).
    pub virtual_hosted: bool,
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: false,
            virtual_hosted: false,
        }
    }
}

/// Secrets stay out of logs and error messages.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted", &self.virtual_hosted)
            .finish()
    }
}

impl S3Config {
    /// Reads the variables KServe's S3 secrets set on its storage
    /// initializer: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` (or `AWS_REGION`; default
    /// `us-east-1`), `AWS_ENDPOINT_URL` or `S3_ENDPOINT` (a URL, or
    /// `host[:port]` with `S3_USE_HTTPS=0` meaning http), `S3_USER_VIRTUAL_BUCKET`
    /// or `AWS_S3_ADDRESSING_STYLE` (path-style by default for a custom
    /// endpoint, virtual-hosted for AWS), and `awsAnonymousCredential=true`
    /// to ignore credentials. Empty variables count as unset.
    pub fn from_env() -> S3Config {
        S3Config::from_vars(|name| std::env::var(name).ok())
    }

    /// [`S3Config::from_env`] with `overrides` (a secret's entries, named
    /// like the variables) taking precedence over the environment: how an
    /// InferenceService's `serviceAccountName` supplies credentials.
    pub fn from_env_and(overrides: &std::collections::BTreeMap<String, String>) -> S3Config {
        S3Config::from_vars(|name| {
            overrides
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
    }

    /// [`S3Config::from_env`] over any source of variables.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> S3Config {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let flag = |name: &str| {
            var(name)
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        };
        let use_https = flag("S3_USE_HTTPS").unwrap_or(true);
        let (endpoint, allow_http) = match var("AWS_ENDPOINT_URL").or_else(|| var("S3_ENDPOINT")) {
            None => (None, false),
            Some(url) if url.contains("://") => {
                let http = url.to_ascii_lowercase().starts_with("http://");
                (Some(url), http)
            }
            Some(host) => {
                let scheme = if use_https { "https" } else { "http" };
                (Some(format!("{scheme}://{host}")), !use_https)
            }
        };
        let virtual_hosted = match var("AWS_S3_ADDRESSING_STYLE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("virtual") => true,
            Some("path") => false,
            _ => flag("S3_USER_VIRTUAL_BUCKET").unwrap_or(endpoint.is_none()),
        };
        let anonymous = flag("awsAnonymousCredential").unwrap_or(false);
        let secret = |name: &str| if anonymous { None } else { var(name) };
        S3Config {
            endpoint,
            region: var("AWS_DEFAULT_REGION")
                .or_else(|| var("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: secret("AWS_ACCESS_KEY_ID"),
            secret_access_key: secret("AWS_SECRET_ACCESS_KEY"),
            session_token: secret("AWS_SESSION_TOKEN"),
            allow_http,
            virtual_hosted,
        }
    }

    fn region(&self) -> &str {
        match self.region.trim() {
            "" => "us-east-1",
            region => region,
        }
    }

    /// The endpoint as `(scheme, host[:port][/path])`, `None` for AWS.
    fn endpoint(&self) -> Result<Option<(&'static str, &str)>, String> {
        let Some(raw) = self
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        else {
            return Ok(None);
        };
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "https" => ("https", rest),
                "http" if self.allow_http => ("http", rest),
                "http" => {
                    return Err(format!(
                        "the S3 endpoint {raw} is plain HTTP; allow it with allow_http (S3_USE_HTTPS=0) or use https://"
                    ));
                }
                _ => {
                    return Err(format!(
                        "the S3 endpoint {raw} must be an http:// or https:// URL or host[:port]"
                    ));
                }
            },
            None if self.allow_http => ("http", raw),
            None => ("https", raw),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("the S3 endpoint {raw} has no host"));
        }
        Ok(Some((scheme, rest)))
    }

    /// Where requests for `bucket` go, for messages.
    fn describe(&self, bucket: &str) -> String {
        match self.endpoint() {
            Ok(Some((scheme, rest))) if self.virtual_hosted => {
                format!("{scheme}://{bucket}.{rest}")
            }
            Ok(Some((scheme, rest))) => format!("{scheme}://{rest}"),
            _ if self.virtual_hosted => {
                format!("https://{bucket}.s3.{}.amazonaws.com", self.region())
            }
            _ => format!("https://s3.{}.amazonaws.com", self.region()),
        }
    }

    fn credentials(&self) -> Credentials<'_> {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|v| !v.is_empty())
        }
        match (set(&self.access_key_id), set(&self.secret_access_key)) {
            (Some(id), Some(secret)) => Credentials::Keys {
                id,
                secret,
                token: set(&self.session_token),
            },
            (None, None) => Credentials::Anonymous,
            (Some(_), None) => Credentials::Incomplete(
                "an access key id is set but no secret access key (AWS_SECRET_ACCESS_KEY)",
            ),
            (None, Some(_)) => Credentials::Incomplete(
                "a secret access key is set but no access key id (AWS_ACCESS_KEY_ID)",
            ),
        }
    }
}

enum Credentials<'a> {
    Keys {
        id: &'a str,
        secret: &'a str,
        token: Option<&'a str>,
    },
    Anonymous,
    Incomplete(&'static str),
}

/// One downloaded object, as the cache entry records it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub(super) struct CachedObject {
    key: String,
    etag: Option<String>,
    size: u64,
    sha256: String,
    /// Where its bytes are, relative to the entry directory; absent for an
    /// archive that was unpacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

/// `s3://BUCKET/KEY`, split.
pub(super) struct Location {
    pub(super) bucket: String,
    /// The key without leading or trailing slashes; empty for the bucket.
    key: ObjectPath,
    /// A trailing slash: a prefix, never one object.
    prefix_only: bool,
}

impl Location {
    pub(super) fn parse(uri: &str, rest: &str) -> Result<Location, StorageError> {
        let invalid = |message: String| StorageError::Invalid {
            uri: uri.into(),
            message,
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            let scheme = uri.split_once("://").map_or("s3", |(s, _)| s);
            return Err(invalid(format!("expected {scheme}://BUCKET/KEY-OR-PREFIX")));
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(invalid(format!(
                "{bucket:?} is not a bucket name (letters, digits, '.', '-')"
            )));
        }
        // KServe strips leading slashes from the key, as does this.
        let key = key.trim_start_matches('/');
        let trimmed = key.trim_end_matches('/');
        let path = ObjectPath::parse(trimmed)
            .map_err(|e| invalid(format!("{trimmed:?} is not a usable object key: {e}")))?;
        Ok(Location {
            bucket: bucket.into(),
            key: path,
            prefix_only: trimmed.len() != key.len(),
        })
    }
}

/// The objects a fetch is made of, sorted by key.
struct Listing {
    /// The key named one object (not a prefix).
    single: bool,
    objects: Vec<Listed>,
}

struct Listed {
    location: ObjectPath,
    size: u64,
    etag: Option<String>,
    /// The path under the entry's `model/` directory.
    relative: String,
}

/// Why a fetch failed: an unreachable endpoint falls back to the cache.
enum Failure {
    Unreachable(String),
    Fatal(StorageError),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Failure {
        Failure::Fatal(e)
    }
}

/// What messages need to know about the request.
pub(super) struct Context<'a> {
    pub(super) uri: &'a str,
    pub(super) bucket: &'a str,
    pub(super) endpoint: String,
    pub(super) anonymous: bool,
    pub(super) cloud: Cloud,
}

/// Which object store a URI names: both are read through object_store,
/// and the GCS XML API lists and reads as S3 does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Cloud {
    S3,
    Gcs,
}

impl Cloud {
    fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cloud::S3 => "S3",
            Cloud::Gcs => "GCS",
        }
    }

    /// What to do about a refused request.
    fn access_hint(self, anonymous: bool) -> &'static str {
        match (self, anonymous) {
            (Cloud::S3, true) => {
                "no credentials were given, so the request was anonymous; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            }
            (Cloud::S3, false) => {
                "check the access key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's policy"
            }
            (Cloud::Gcs, true) => {
                "no credentials were given, so the request was anonymous (only public buckets answer); set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or name a secret with gcloud-application-credentials.json in serviceAccountName"
            }
            (Cloud::Gcs, false) => {
                "check that the service account may read the bucket (roles/storage.objectViewer)"
            }
        }
    }
}

impl Context<'_> {
    fn io(&self, what: &str, e: std::io::Error) -> Failure {
        Failure::Fatal(StorageError::Io {
            uri: self.uri.into(),
            message: format!("{what}: {e}"),
        })
    }

    /// Turns an object_store error into one that says what is wrong.
    fn failure(&self, what: &str, e: object_store::Error) -> Failure {
        let text = error_chain(&e);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.downcast_ref::<HttpError>().is_some() {
                return Failure::Unreachable(format!(
                    "cannot reach the {} endpoint {} ({what}): {text}",
                    self.cloud.name(),
                    self.endpoint
                ));
            }
            source = s.source();
        }
        let status = match &e {
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            _ => status_in(&text),
        };
        let code = xml_field(&text, "Code");
        let detail = match (&code, xml_field(&text, "Message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, _) => String::new(),
        };
        let status_text = status.map(|s| {
            let status = reqwest::StatusCode::from_u16(s)
                .map(|s| s.to_string())
                .unwrap_or_else(|_| s.to_string());
            if detail.is_empty() {
                status
            } else {
                format!("{status}, {detail}")
            }
        });
        let download = |message: String| {
            Failure::Fatal(StorageError::Download {
                uri: self.uri.into(),
                message,
            })
        };
        match (status, code.as_deref()) {
            (Some(404), Some("NoSuchBucket")) => Failure::Fatal(StorageError::NotFound {
                uri: self.uri.into(),
                message: format!(
                    "bucket {} does not exist at {} (404 NoSuchBucket)",
                    self.bucket, self.endpoint
                ),
            }),
            (Some(404), _) => Failure::Fatal(StorageError::NotFound {
                uri: self.uri.into(),
                message: format!("{what}: not found ({})", status_text.unwrap_or_default()),
            }),
            (Some(401 | 403), _) => {
                let hint = self.cloud.access_hint(self.anonymous);
                download(format!(
                    "access denied {what} at {} ({}); {hint}",
                    self.endpoint,
                    status_text.unwrap_or_default()
                ))
            }
            (
                Some(_),
                Some(
                    "PermanentRedirect"
                    | "AuthorizationHeaderMalformed"
                    | "IllegalLocationConstraintException",
                ),
            ) => download(format!(
                "{what} failed ({}); the bucket is in another region: set AWS_DEFAULT_REGION",
                status_text.unwrap_or_default()
            )),
            (Some(_), _) => download(format!(
                "{what} failed ({})",
                status_text.unwrap_or_default()
            )),
            (None, _) => download(format!("{what} failed: {text}")),
        }
    }
}

/// The HTTP status in an object_store error message ("… status code: 400 …").
fn status_in(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// The text of `<NAME>…</NAME>` in an S3 error body quoted in `text`.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let (_, after) = text.split_once(&format!("<{name}>"))?;
    let (value, _) = after.split_once(&format!("</{name}>"))?;
    let value = value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Lends object_store the storage's one HTTP client (one TLS setup, one
/// connection pool) instead of letting it build its own per bucket.
#[derive(Debug)]
pub(super) struct SharedClient(pub(super) reqwest::Client);

impl HttpConnector for SharedClient {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

impl Storage {
    /// Resolves `s3://BUCKET/KEY` (`rest` is what follows `s3://`).
    pub(super) async fn fetch_s3(&self, uri: &str, rest: &str) -> Result<Fetched, StorageError> {
        let location = Location::parse(uri, rest)?;
        let config = match &self.s3 {
            Some(config) => config.clone(),
            None => S3Config::from_env(),
        };
        let store = self.s3_store(uri, &location.bucket, &config)?;
        let context = Context {
            uri,
            bucket: &location.bucket,
            endpoint: config.describe(&location.bucket),
            anonymous: matches!(config.credentials(), Credentials::Anonymous),
            cloud: Cloud::S3,
        };
        self.fetch_objects(&store, &context, &location).await
    }

    /// Lists and downloads what `location` names (or, when the store
    /// cannot be reached, uses a complete cached copy).
    pub(super) async fn fetch_objects(
        &self,
        store: &dyn ObjectStore,
        context: &Context<'_>,
        location: &Location,
    ) -> Result<Fetched, StorageError> {
        let uri = context.uri;
        let dir = self.cache_dir(uri);
        // Only a committed entry has a record, so one whose files are there
        // is complete.
        let cached = read_meta(&dir).filter(|meta| dir.join(&meta.entry).exists());
        match sync(store, context, location, &dir, cached.as_ref()).await {
            Ok(fetched) => Ok(fetched),
            Err(Failure::Unreachable(message)) => match cached {
                Some(meta) => {
                    tracing::warn!(uri, error = %message, "Object store unreachable; using the cached copy.");
                    Ok(Fetched {
                        path: dir.join(&meta.entry),
                        digest: Some(meta.sha256),
                    })
                }
                None => Err(StorageError::Download {
                    uri: uri.into(),
                    message,
                }),
            },
            Err(Failure::Fatal(e)) => Err(e),
        }
    }

    fn s3_store(
        &self,
        uri: &str,
        bucket: &str,
        config: &S3Config,
    ) -> Result<AmazonS3, StorageError> {
        let invalid = |message: String| StorageError::Invalid {
            uri: uri.into(),
            message,
        };
        let endpoint = config.endpoint().map_err(invalid)?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(config.region())
            .with_virtual_hosted_style_request(config.virtual_hosted)
            // Checked above; the shared client speaks both.
            .with_allow_http(true)
            .with_http_connector(SharedClient(self.client(uri)?.clone()))
            .with_retry(short_retries());
        match endpoint {
            Some((scheme, rest)) if config.virtual_hosted => {
                builder = builder.with_endpoint(format!("{scheme}://{bucket}.{rest}"));
            }
            Some((scheme, rest)) => builder = builder.with_endpoint(format!("{scheme}://{rest}")),
            None => {}
        }
        builder = match config.credentials() {
            Credentials::Keys { id, secret, token } => {
                let builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                match token {
                    Some(token) => builder.with_token(token),
                    None => builder,
                }
            }
            // KServe's awsAnonymousCredential: unsigned requests.
            Credentials::Anonymous => builder.with_skip_signature(true),
            Credentials::Incomplete(what) => return Err(invalid(what.into())),
        };
        builder
            .build()
            .map_err(|e| invalid(format!("cannot set up the S3 client: {}", error_chain(&e))))
    }
}

/// Short retries: an unreachable endpoint should fall back to the cache in
/// seconds, not after object_store's default three minutes.
pub(super) fn short_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Lists, and downloads what changed since `cached`.
async fn sync(
    store: &dyn ObjectStore,
    context: &Context<'_>,
    location: &Location,
    dir: &Path,
    cached: Option<&CacheMeta>,
) -> Result<Fetched, Failure> {
    let listing = list(store, context, location).await?;
    if let Some(meta) = cached
        && unchanged(meta, &listing)
    {
        tracing::debug!(
            uri = context.uri,
            "Objects unchanged; using the cached copy."
        );
        return Ok(Fetched {
            path: dir.join(&meta.entry),
            digest: Some(meta.sha256.clone()),
        });
    }
    download(store, context, &listing, dir, cached).await
}

/// The object the key names, or else the objects under `KEY/`.
async fn list(
    store: &dyn ObjectStore,
    context: &Context<'_>,
    location: &Location,
) -> Result<Listing, Failure> {
    let key = &location.key;
    // A failed HEAD is reported only if the listing finds nothing either
    // (S3 answers 403 for a missing key to callers without ListBucket).
    let mut head_failure = None;
    let mut empty_object = false;
    if !key.as_ref().is_empty() && !location.prefix_only {
        match store.head(key).await {
            Ok(meta) if meta.size > 0 => {
                let name = key.as_ref().rsplit('/').next().unwrap_or(key.as_ref());
                return Ok(Listing {
                    single: true,
                    objects: vec![Listed {
                        relative: name.into(),
                        location: meta.location,
                        size: meta.size,
                        etag: meta.e_tag,
                    }],
                });
            }
            // An empty object or a directory marker: KServe skips those.
            Ok(_) => empty_object = true,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => match context.failure(
                &format!(
                    "reading {}://{}/{key}",
                    context.cloud.scheme(),
                    context.bucket
                ),
                e,
            ) {
                Failure::Fatal(e) => head_failure = Some(e),
                unreachable => return Err(unreachable),
            },
        }
    }
    let prefix = (!key.as_ref().is_empty()).then_some(key);
    let under = format!("{}://{}/{key}", context.cloud.scheme(), context.bucket);
    let mut objects = Vec::new();
    let mut stream = store.list(prefix);
    while let Some(meta) = stream.next().await {
        let meta = meta.map_err(|e| context.failure(&format!("listing {under}"), e))?;
        let relative = match prefix {
            None => meta.location.as_ref(),
            Some(prefix) => match meta.location.as_ref().strip_prefix(prefix.as_ref()) {
                Some(rest) => rest.trim_start_matches('/'),
                None => continue,
            },
        };
        if relative.is_empty() || meta.size == 0 {
            tracing::debug!(uri = context.uri, key = %meta.location, "Skipping an empty object.");
            continue;
        }
        objects.push(Listed {
            relative: relative.into(),
            location: meta.location,
            size: meta.size,
            etag: meta.e_tag,
        });
    }
    if objects.is_empty() {
        return Err(Failure::Fatal(head_failure.unwrap_or_else(|| {
            StorageError::NotFound {
                uri: context.uri.into(),
                message: if empty_object {
                    format!(
                        "{under} is an empty object (skipped, as KServe skips them) and no objects are under it (at {})",
                        context.endpoint
                    )
                } else {
                    format!(
                        "no objects under {under} (at {}); check the bucket and key",
                        context.endpoint
                    )
                },
            }
        })));
    }
    objects.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    Ok(Listing {
        single: false,
        objects,
    })
}

/// The cached entry holds exactly the listed objects, by ETag and size.
fn unchanged(meta: &CacheMeta, listing: &Listing) -> bool {
    meta.objects.len() == listing.objects.len()
        && meta.objects.iter().zip(&listing.objects).all(|(c, l)| {
            c.key == l.location.as_ref() && c.size == l.size && c.etag.is_some() && c.etag == l.etag
        })
}

/// Downloads the listing into a fresh entry (reusing unchanged objects of
/// the previous one) and swaps it in.
async fn download(
    store: &dyn ObjectStore,
    context: &Context<'_>,
    listing: &Listing,
    dir: &Path,
    cached: Option<&CacheMeta>,
) -> Result<Fetched, Failure> {
    let uri = context.uri;
    let staging = staging_dir(uri, dir)?;
    let root = staging.path().join("model");
    std::fs::create_dir_all(&root).map_err(|e| context.io("creating the model directory", e))?;
    let archive = match listing.objects.as_slice() {
        [only] => archive_kind(&only.relative),
        _ => None,
    };
    let archive_path = staging.path().join("archive");
    let previous: HashMap<&str, &CachedObject> = cached
        .map(|meta| meta.objects.iter().map(|o| (o.key.as_str(), o)).collect())
        .unwrap_or_default();
    let mut jobs = Vec::with_capacity(listing.objects.len());
    for object in &listing.objects {
        let key = object.location.as_ref();
        let (target, path) = if archive.is_some() {
            (archive_path.clone(), None)
        } else {
            let relative = safe_relative(&object.relative).ok_or_else(|| StorageError::Io {
                uri: uri.into(),
                message: format!("object key {key} cannot be a file path"),
            })?;
            (
                root.join(&relative),
                Some(format!("model/{}", object.relative)),
            )
        };
        let old = previous.get(key).copied();
        jobs.push(fetch_object(store, context, dir, object, target, path, old).boxed());
    }
    let results: Vec<(CachedObject, bool)> = futures::stream::iter(jobs)
        .buffer_unordered(CONCURRENT_DOWNLOADS)
        .try_collect()
        .await?;
    let downloaded = results.iter().filter(|(_, fresh)| *fresh).count();
    let mut objects: Vec<CachedObject> = results.into_iter().map(|(o, _)| o).collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));

    let (entry, digest) = if let Some(kind) = archive {
        let (uri_owned, archive_path, root) = (uri.to_string(), archive_path.clone(), root.clone());
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&archive_path).map_err(|e| StorageError::Io {
                uri: uri_owned.clone(),
                message: format!("reading the downloaded archive: {e}"),
            })?;
            unpack(&uri_owned, kind, std::io::BufReader::new(file), &root)?;
            let _ = std::fs::remove_file(&archive_path);
            Ok::<_, StorageError>(())
        })
        .await
        .map_err(|e| StorageError::Io {
            uri: uri.into(),
            message: e.to_string(),
        })??;
        ("model".to_string(), objects[0].sha256.clone())
    } else if listing.single {
        (
            format!("model/{}", listing.objects[0].relative),
            objects[0].sha256.clone(),
        )
    } else {
        // Both are sorted by key.
        let mut manifest: Vec<(&str, &str)> = listing
            .objects
            .iter()
            .zip(&objects)
            .map(|(l, o)| {
                debug_assert_eq!(l.location.as_ref(), o.key);
                (l.relative.as_str(), o.sha256.as_str())
            })
            .collect();
        manifest.sort();
        let mut hasher = Sha256::new();
        for (relative, sha256) in manifest {
            hasher.update(format!("{sha256}  {relative}\n"));
        }
        ("model".to_string(), hex::encode(hasher.finalize()))
    };
    tracing::info!(
        uri,
        objects = objects.len(),
        downloaded,
        "Model fetched from S3."
    );
    let meta = CacheMeta {
        uri: uri.into(),
        etag: None,
        last_modified: None,
        sha256: digest.clone(),
        entry: entry.clone(),
        objects,
    };
    let (uri_owned, dir_owned) = (uri.to_string(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || commit(&uri_owned, &dir_owned, staging, &meta))
        .await
        .map_err(|e| StorageError::Io {
            uri: uri.into(),
            message: e.to_string(),
        })??;
    Ok(Fetched {
        path: dir.join(entry),
        digest: Some(digest),
    })
}

/// Puts one object at `target`: a link to the previous entry's copy when
/// its ETag and size are unchanged, else a download. `true` when downloaded.
async fn fetch_object(
    store: &dyn ObjectStore,
    context: &Context<'_>,
    dir: &Path,
    object: &Listed,
    target: PathBuf,
    path: Option<String>,
    old: Option<&CachedObject>,
) -> Result<(CachedObject, bool), Failure> {
    let key = object.location.as_ref();
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| context.io(&format!("writing {key}"), e))?;
    }
    if let (Some(path), Some(old)) = (&path, old)
        && old.etag.is_some()
        && old.etag == object.etag
        && old.size == object.size
        && let Some(old_path) = &old.path
        && link_or_copy(&dir.join(old_path), &target).await
    {
        let reused = CachedObject {
            path: Some(path.clone()),
            ..old.clone()
        };
        return Ok((reused, false));
    }
    let (sha256, etag, size) = get_object(store, context, object, &target).await?;
    let fetched = CachedObject {
        key: key.into(),
        etag: etag.or_else(|| object.etag.clone()),
        size,
        sha256,
        path,
    };
    Ok((fetched, true))
}

/// `relative` as a path that stays inside the entry: no empty, `.` or `..`
/// components (object_store's paths already refuse them).
fn safe_relative(relative: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in relative.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// Reuses a previous entry's copy of an unchanged object; `false` when it
/// is gone (then the object downloads again).
async fn link_or_copy(old: &Path, target: &Path) -> bool {
    tokio::fs::hard_link(old, target).await.is_ok() || tokio::fs::copy(old, target).await.is_ok()
}

/// Streams one object into `target`, hashing it on the way; returns its
/// SHA-256, ETag and size.
async fn get_object(
    store: &dyn ObjectStore,
    context: &Context<'_>,
    object: &Listed,
    target: &Path,
) -> Result<(String, Option<String>, u64), Failure> {
    let key = object.location.as_ref();
    let what = format!(
        "downloading {}://{}/{key}",
        context.cloud.scheme(),
        context.bucket
    );
    let result = store
        .get(&object.location)
        .await
        .map_err(|e| context.failure(&what, e))?;
    let etag = result.meta.e_tag.clone();
    let mut stream = result.into_stream();
    let mut file = tokio::fs::File::create(target)
        .await
        .map_err(|e| context.io(&format!("writing {key}"), e))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| context.failure(&what, e))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| context.io(&format!("writing {key}"), e))?;
    }
    // tokio writes in the background: flush to know the bytes are there.
    file.flush()
        .await
        .map_err(|e| context.io(&format!("writing {key}"), e))?;
    Ok((hex::encode(hasher.finalize()), etag, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> S3Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        S3Config::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn config_from_kserve_variables() {
        let check = |vars: &[(&str, &str)], expected: S3Config| {
            assert_eq!(from(vars), expected, "{vars:?}");
        };
        // AWS itself: virtual-hosted, https, anonymous without keys.
        check(
            &[],
            S3Config {
                virtual_hosted: true,
                ..S3Config::default()
            },
        );
        // KServe's S3 secret on MinIO: host:port, S3_USE_HTTPS=0, path-style.
        check(
            &[
                ("AWS_ACCESS_KEY_ID", "minio"),
                ("AWS_SECRET_ACCESS_KEY", "minio123"),
                ("S3_ENDPOINT", "minio-service.kubeflow:9000"),
                ("S3_USE_HTTPS", "0"),
                ("AWS_REGION", "eu-west-1"),
            ],
            S3Config {
                endpoint: Some("http://minio-service.kubeflow:9000".into()),
                region: "eu-west-1".into(),
                access_key_id: Some("minio".into()),
                secret_access_key: Some("minio123".into()),
                allow_http: true,
                ..S3Config::default()
            },
        );
        // AWS_ENDPOINT_URL wins over S3_ENDPOINT; its scheme decides http.
        check(
            &[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("S3_ENDPOINT", "ignored:1"),
                ("AWS_DEFAULT_REGION", "us-west-2"),
                ("AWS_REGION", "ignored"),
                ("S3_USER_VIRTUAL_BUCKET", "true"),
                ("AWS_SESSION_TOKEN", "tok"),
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
            S3Config {
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "us-west-2".into(),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                session_token: Some("tok".into()),
                allow_http: true,
                virtual_hosted: true,
            },
        );
        // A bare host is https by default; the addressing style can be forced.
        check(
            &[
                ("S3_ENDPOINT", "s3.example.com"),
                ("AWS_S3_ADDRESSING_STYLE", "virtual"),
            ],
            S3Config {
                endpoint: Some("https://s3.example.com".into()),
                virtual_hosted: true,
                ..S3Config::default()
            },
        );
        check(
            &[("AWS_S3_ADDRESSING_STYLE", "path"), ("AWS_REGION", " ")],
            S3Config::default(),
        );
        // awsAnonymousCredential ignores the keys.
        check(
            &[
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("awsAnonymousCredential", "true"),
                ("AWS_ENDPOINT_URL", "https://storage.example/"),
            ],
            S3Config {
                endpoint: Some("https://storage.example/".into()),
                ..S3Config::default()
            },
        );
    }

    #[test]
    fn endpoints_and_credentials_are_checked() {
        let endpoint = |endpoint: &str, allow_http: bool| {
            S3Config {
                endpoint: Some(endpoint.into()),
                allow_http,
                ..S3Config::default()
            }
            .endpoint()
            .map(|e| e.map(|(scheme, rest)| format!("{scheme}://{rest}")))
        };
        assert_eq!(
            endpoint("minio:9000", false),
            Ok(Some("https://minio:9000".into()))
        );
        assert_eq!(
            endpoint("minio:9000", true),
            Ok(Some("http://minio:9000".into()))
        );
        assert_eq!(endpoint("HTTP://m:1/", true), Ok(Some("http://m:1".into())));
        assert!(
            endpoint("http://m:1", false)
                .unwrap_err()
                .contains("allow_http")
        );
        assert!(
            endpoint("ftp://m", true)
                .unwrap_err()
                .contains("http:// or https://")
        );
        assert!(endpoint("https://", true).unwrap_err().contains("no host"));
        let secret_only = S3Config {
            secret_access_key: Some("s".into()),
            ..S3Config::default()
        };
        assert!(matches!(
            secret_only.credentials(),
            Credentials::Incomplete(m) if m.contains("AWS_ACCESS_KEY_ID")
        ));
        let debug = format!(
            "{:?}",
            S3Config {
                access_key_id: Some("AKIA".into()),
                secret_access_key: Some("very-secret".into()),
                ..S3Config::default()
            }
        );
        assert!(
            debug.contains("AKIA") && !debug.contains("very-secret"),
            "{debug}"
        );
    }

    #[test]
    fn uris_and_error_bodies() {
        let parse = |rest: &str| Location::parse(&format!("s3://{rest}"), rest);
        let l = parse("bucket/a/b/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.key.as_ref(), l.prefix_only),
            ("bucket", "a/b", true)
        );
        let l = parse("bucket//a/model.bst").unwrap();
        assert_eq!((l.key.as_ref(), l.prefix_only), ("a/model.bst", false));
        let l = parse("bucket").unwrap();
        assert_eq!((l.key.as_ref(), l.prefix_only), ("", false));
        for (rest, expected) in [
            ("", "expected s3://BUCKET/KEY-OR-PREFIX"),
            ("/key", "expected s3://BUCKET/KEY-OR-PREFIX"),
            ("b?x/key", "is not a bucket name"),
            ("b/a//c", "is not a usable object key"),
            ("b/a/../c", "is not a usable object key"),
        ] {
            let e = parse(rest).err().unwrap().to_string();
            assert!(e.starts_with(&format!("storageUri s3://{rest}: ")), "{e}");
            assert!(e.contains(expected), "{rest}: {e}");
        }
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
            <Error><Code>SignatureDoesNotMatch</Code><Message>The &quot;signature&quot; differs</Message></Error>";
        assert_eq!(status_in(body), Some(403));
        assert_eq!(
            xml_field(body, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            xml_field(body, "Message").as_deref(),
            Some("The \"signature\" differs")
        );
        assert_eq!(xml_field("no body", "Code"), None);
        assert_eq!(safe_relative("a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(safe_relative("a/../b"), None);
        assert_eq!(safe_relative("a//b"), None);
    }
}
