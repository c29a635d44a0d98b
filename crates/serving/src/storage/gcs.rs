//! `gs://BUCKET/KEY` storage URIs, read as KServe's storage initializer
//! reads them (`_download_gcs`): one object when the key names one, else
//! every object under `KEY/`, a lone archive unpacked, into the same cache
//! as `s3://` (see [`super::s3`]: the listing, ETag revalidation and the
//! offline fallback are shared; object_store speaks GCS's XML API, which
//! lists and reads as S3 does).
//!
//! Credentials, in KServe's order: a service account key from the secret
//! the predictor's `serviceAccountName` names (KServe's GCS secret key,
//! `gcloud-application-credentials.json`), else the file
//! `GOOGLE_APPLICATION_CREDENTIALS` names, else none: anonymous requests,
//! as KServe's `create_anonymous_client` falls back to, which public
//! buckets such as `gs://kfserving-examples` answer.
//! `STORAGE_EMULATOR_HOST` points at another endpoint, as it does for
//! Google's own client libraries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use object_store::ClientOptions;
use object_store::gcp::GoogleCloudStorageBuilder;

use super::s3::{Cloud, Context, Location, SharedClient, short_retries};
use super::{Fetched, Storage, StorageError, error_chain};

/// GCS's public endpoint.
const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The key of KServe's GCS credential secret.
pub const SECRET_KEY: &str = "gcloud-application-credentials.json";

/// How to reach Google Cloud Storage for `gs://` URIs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GcsConfig {
    /// Another endpoint (an emulator); `None` is GCS itself.
    pub endpoint: Option<String>,
    /// A service account key, as JSON.
    pub service_account_key: Option<String>,
    /// A credentials file (service account key or user credentials).
    pub credentials_file: Option<PathBuf>,
}

impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("endpoint", &self.endpoint)
            .field(
                "service_account_key",
                &self.service_account_key.as_ref().map(|_| "<redacted>"),
            )
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

impl GcsConfig {
    /// `STORAGE_EMULATOR_HOST` and `GOOGLE_APPLICATION_CREDENTIALS`.
    pub fn from_env() -> GcsConfig {
        Self::from_vars(|k| std::env::var(k).ok(), None)
    }

    /// The environment, with the service account key of a secret (KServe's
    /// `gcloud-application-credentials.json`) when it has one.
    pub fn from_env_and(secret: &BTreeMap<String, String>) -> GcsConfig {
        Self::from_vars(|k| std::env::var(k).ok(), secret.get(SECRET_KEY).cloned())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, key: Option<String>) -> GcsConfig {
        let set = |k: &str| {
            var(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        GcsConfig {
            endpoint: set("STORAGE_EMULATOR_HOST").map(|e| {
                let e = e.trim_end_matches('/');
                if e.contains("://") {
                    e.to_owned()
                } else {
                    format!("http://{e}")
                }
            }),
            service_account_key: key.filter(|k| !k.trim().is_empty()),
            credentials_file: set("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
        }
    }
}

impl Storage {
    /// Resolves `gs://BUCKET/KEY` (`rest` is what follows `gs://`).
    pub(super) async fn fetch_gs(&self, uri: &str, rest: &str) -> Result<Fetched, StorageError> {
        let location = Location::parse(uri, rest)?;
        let config = self.gcs.clone().unwrap_or_else(GcsConfig::from_env);
        let invalid = |message: String| StorageError::Invalid {
            uri: uri.into(),
            message,
        };
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&location.bucket)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_http_connector(SharedClient(self.client(uri)?.clone()))
            .with_retry(short_retries());
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_base_url(endpoint);
        }
        let anonymous = match (&config.service_account_key, &config.credentials_file) {
            (Some(key), _) => {
                builder = builder.with_service_account_key(key);
                false
            }
            (None, Some(file)) => {
                if !file.is_file() {
                    return Err(invalid(format!(
                        "GOOGLE_APPLICATION_CREDENTIALS names {}, which is not a file",
                        file.display()
                    )));
                }
                builder = builder.with_application_credentials(file.display().to_string());
                false
            }
            (None, None) => {
                builder = builder.with_skip_signature(true);
                true
            }
        };
        let store = builder
            .build()
            .map_err(|e| invalid(format!("cannot set up the GCS client: {}", error_chain(&e))))?;
        let context = Context {
            uri,
            bucket: &location.bucket,
            endpoint: config
                .endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            anonymous,
            cloud: Cloud::Gcs,
        };
        self.fetch_objects(&store, &context, &location).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_googles_variables_and_kserves_secret() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(GcsConfig::from_vars(vars(&[]), None), GcsConfig::default());
        let c = GcsConfig::from_vars(
            vars(&[
                ("STORAGE_EMULATOR_HOST", "localhost:9023/"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/sa.json"),
            ]),
            Some("{\"type\": \"service_account\"}".into()),
        );
        assert_eq!(c.endpoint.as_deref(), Some("http://localhost:9023"));
        assert_eq!(c.credentials_file, Some(PathBuf::from("/keys/sa.json")));
        assert!(c.service_account_key.is_some());
        assert!(!format!("{c:?}").contains("service_account\""), "{c:?}");
        let c = GcsConfig::from_vars(
            vars(&[("STORAGE_EMULATOR_HOST", "https://gcs.test")]),
            Some(" ".into()),
        );
        assert_eq!(c.endpoint.as_deref(), Some("https://gcs.test"));
        assert_eq!(c.service_account_key, None);
    }
}
