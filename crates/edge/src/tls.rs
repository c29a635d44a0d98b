//! TLS for a listener, from a local certificate authority.
//!
//! kubectl (client-go) sends a kubeconfig's bearer token only over TLS, so
//! `oxflow up` answers TLS on the same port as plain HTTP (the first byte of
//! a connection tells them apart: a TLS handshake starts with 0x16, no HTTP
//! method does). The CA lives in the data directory (`<dir>/ca.key`, mode
//! 0600, and `<dir>/ca.crt`) so the kubeconfig that names it stays valid
//! across restarts; the server's certificate is made at every start for the
//! names it answers to, and its key never touches the disk.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA's files could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A certificate or key could not be made or read.
    #[error("{what}: {why}; delete {dir} to make a new local CA (and run `oxflow up` again)")]
    Certificate {
        /// Which one.
        what: &'static str,
        /// The CA directory.
        dir: PathBuf,
        /// The underlying error.
        why: String,
    },
}

/// A listener's TLS configuration and the CA that clients trust.
#[derive(Clone)]
pub struct TlsIdentity {
    /// For the listener.
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate (PEM), for kubeconfig's
    /// `certificate-authority-data` and other clients' trust stores.
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// The CA's fixed parameters: re-made identically at every start, so that
/// the key in `ca.key` signs certificates that chain to `ca.crt`.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Oxflow");
    dn.push(DnType::CommonName, "Oxflow local CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Loads the CA in `dir` (making it on first use) and issues a server
/// certificate for `names` (DNS names, `*.domain` wildcards and IP
/// addresses).
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsIdentity, TlsError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io {
            action,
            path,
            source,
        }
    };
    let cert_err = |what: &'static str| {
        let dir = dir.to_path_buf();
        move |e: rcgen::Error| TlsError::Certificate {
            what,
            dir,
            why: e.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let key_path = dir.join("ca.key");
    let crt_path = dir.join("ca.crt");
    let (ca_key, ca_pem) = match (
        std::fs::read_to_string(&key_path),
        std::fs::read_to_string(&crt_path),
    ) {
        (Ok(key), Ok(crt)) => (
            KeyPair::from_pem(&key).map_err(cert_err("reading the CA key"))?,
            crt,
        ),
        _ => {
            let key = KeyPair::generate().map_err(cert_err("making the CA key"))?;
            let crt = ca_params()
                .self_signed(&key)
                .map_err(cert_err("making the CA certificate"))?
                .pem();
            write_private(&key_path, key.serialize_pem().as_bytes())
                .map_err(io("writing", &key_path))?;
            std::fs::write(&crt_path, &crt).map_err(io("writing", &crt_path))?;
            (key, crt)
        }
    };
    let ca_der =
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| TlsError::Certificate {
            what: "reading the CA certificate",
            dir: dir.to_path_buf(),
            why: format!("{}: {e}", crt_path.display()),
        })?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(cert_err("naming the server"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "oxflow");
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(cert_err("making the server key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(cert_err("making the server certificate"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth().with_single_cert(
                vec![cert.der().clone(), ca_der],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        })
        .map_err(|e| TlsError::Certificate {
            what: "setting up TLS",
            dir: dir.to_path_buf(),
            why: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        ca_pem,
    })
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = load_or_create(dir.path(), &names).unwrap();
        let b = load_or_create(dir.path(), &names).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem, "the CA survives a restart");
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            a.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
