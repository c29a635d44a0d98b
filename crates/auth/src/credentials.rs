//! The data directory's secret and what is derived from it.
//!
//! One random token per data directory, kept in `<home>/token` (mode 0600,
//! like Jupyter's token or kubeconfig's credentials). Sessions, CSRF tokens
//! and scoped tokens are HMACs under a key derived from it, so they need no
//! server-side table, survive a restart, and all stop working when the
//! token file is replaced.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{AuthError, Caller, random_hex, same_bytes};

/// The token's file name in the data directory.
pub const TOKEN_FILE: &str = "token";

/// Tokens this server writes start with this (so secret scanners and people
/// can tell what they are).
const TOKEN_PREFIX: &str = "oxf_";
/// Scoped tokens start with this.
const SCOPED_PREFIX: &str = "oxs1.";
/// Session cookie values start with this.
const SESSION_PREFIX: &str = "s1.";

/// The secret of one data directory.
#[derive(Clone)]
pub struct Credentials {
    token: String,
    /// HMAC key for sessions, CSRF and scoped tokens.
    key: [u8; 32],
    /// Distinguishes this server's cookies from another Oxflow's on the
    /// same host (cookies are not separated by port).
    cookie_suffix: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: Debug output ends up in logs.
        f.debug_struct("Credentials")
            .field("cookie_suffix", &self.cookie_suffix)
            .finish_non_exhaustive()
    }
}

/// A dashboard session: the cookie value and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session cookie's value (HttpOnly).
    pub cookie: String,
    /// What a mutating request must echo in `X-CSRF-Token` (also in a
    /// cookie the page's script reads).
    pub csrf: String,
    /// When it ends, seconds since the epoch.
    pub expires: u64,
}

impl Credentials {
    /// The token in `<home>/token`, made (random, mode 0600) if there is
    /// none yet. Two processes racing to make it end up with the same one.
    pub fn load_or_create(home: &Path) -> Result<Self, AuthError> {
        let path = home.join(TOKEN_FILE);
        match Self::load(&path) {
            Ok(c) => return Ok(c),
            Err(AuthError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let token = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let tmp = home.join(format!(
            ".{TOKEN_FILE}.{}.{}.tmp",
            std::process::id(),
            random_hex(4)
        ));
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io {
                action,
                path,
                source,
            }
        };
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("creating", &tmp))?;
            f.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("writing", &tmp))?;
        }
        // A hard link never replaces an existing file: whoever links first
        // wins, and the other reads the winner's token.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self::from_token(token)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(io("creating", &path)(e)),
        }
    }

    /// The token in the file at `path`; a file others can read is made
    /// private first.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let err = |action, source| AuthError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(|e| err("reading", e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err("protecting", e))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| err("reading", e))?;
        let token = text.trim();
        let malformed = |why: &str| AuthError::Malformed {
            path: PathBuf::from(path),
            why: why.into(),
        };
        if token.len() < 32 {
            return Err(malformed("shorter than 32 characters"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("not printable ASCII"));
        }
        Ok(Self::from_token(token.to_owned()))
    }

    /// Credentials for a known token (tests, and clients that hold one).
    pub fn from_token(token: String) -> Self {
        let key: [u8; 32] = mac(token.as_bytes(), &[b"oxflow key v1"]);
        let cookie_suffix = hex::encode(&mac(&key, &[b"cookie name"])[..4]);
        Self {
            token,
            key,
            cookie_suffix,
        }
    }

    /// The bearer token (for kubeconfig, the CLI and the printed login URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The caller a bearer token stands for on `method path`: the owner's
    /// token anywhere, a scoped token only where it was minted for.
    pub fn verify_bearer(&self, presented: &str, method: &str, path: &str) -> Option<Caller> {
        if same_bytes(presented.as_bytes(), self.token.as_bytes()) {
            return Some(Caller::owner());
        }
        if presented.starts_with(SCOPED_PREFIX)
            && same_bytes(
                presented.as_bytes(),
                self.scoped_token(method, path).as_bytes(),
            )
        {
            return Some(Caller::scoped());
        }
        None
    }

    /// A token good for exactly `method path` (a trial's metrics push):
    /// handed to a workload instead of the owner's token.
    pub fn scoped_token(&self, method: &str, path: &str) -> String {
        let m = mac(
            &self.key,
            &[b"scoped\0", method.as_bytes(), b" ", path.as_bytes()],
        );
        format!("{SCOPED_PREFIX}{}", hex::encode(m))
    }

    /// A new dashboard session lasting `ttl_secs` from `now`.
    pub fn new_session(&self, now: u64, ttl_secs: u64) -> Session {
        let expires = now.saturating_add(ttl_secs);
        let nonce = random_hex(16);
        let body = format!("{expires}.{nonce}");
        let sig = hex::encode(mac(&self.key, &[b"session\0", body.as_bytes()]));
        Session {
            cookie: format!("{SESSION_PREFIX}{body}.{sig}"),
            csrf: self.csrf_for_nonce(&nonce),
            expires,
        }
    }

    /// The CSRF token of a valid, unexpired session cookie.
    pub fn verify_session(&self, cookie: &str, now: u64) -> Option<String> {
        let rest = cookie.strip_prefix(SESSION_PREFIX)?;
        let (body, sig) = rest.rsplit_once('.')?;
        let (expires, nonce) = body.split_once('.')?;
        let expected = hex::encode(mac(&self.key, &[b"session\0", body.as_bytes()]));
        if !same_bytes(sig.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        (expires > now).then(|| self.csrf_for_nonce(nonce))
    }

    fn csrf_for_nonce(&self, nonce: &str) -> String {
        hex::encode(&mac(&self.key, &[b"csrf\0", nonce.as_bytes()])[..16])
    }

    /// The session cookie's name.
    pub fn session_cookie(&self) -> String {
        format!("oxflow_session_{}", self.cookie_suffix)
    }

    /// The CSRF cookie's name (readable by the page's script).
    pub fn csrf_cookie(&self) -> String {
        format!("oxflow_csrf_{}", self.cookie_suffix)
    }
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Credentials::load_or_create(dir.path()).unwrap();
        assert!(a.token().starts_with(TOKEN_PREFIX));
        assert_eq!(a.token().len(), TOKEN_PREFIX.len() + 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Credentials::load_or_create(dir.path()).unwrap();
        assert_eq!(a.token(), b.token());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(TOKEN_FILE)]);
    }

    #[test]
    fn a_readable_token_file_is_made_private_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        std::fs::write(&path, "x".repeat(40)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Credentials::load(&path).unwrap();
        assert_eq!(c.token(), "x".repeat(40));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        std::fs::write(&path, "short").unwrap();
        let e = Credentials::load(&path).unwrap_err().to_string();
        assert!(e.contains("shorter than 32"), "{e}");
    }

    #[test]
    fn concurrent_creators_agree_on_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let tokens: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        Credentials::load_or_create(dir.path())
                            .unwrap()
                            .token()
                            .to_owned()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    }

    #[test]
    fn bearer_tokens() {
        let c = Credentials::from_token("t".repeat(40));
        assert_eq!(
            c.verify_bearer(&"t".repeat(40), "GET", "/x"),
            Some(Caller::owner())
        );
        assert_eq!(c.verify_bearer(&"t".repeat(39), "GET", "/x"), None);
        assert_eq!(c.verify_bearer("", "GET", "/x"), None);
        let other = Credentials::from_token("u".repeat(40));
        assert_eq!(c.verify_bearer(other.token(), "GET", "/x"), None);
    }

    #[test]
    fn a_scoped_token_opens_only_its_method_and_path() {
        let c = Credentials::from_token("t".repeat(40));
        let path = "/apis/kubeflow.org/v1beta1/namespaces/default/trials/t1/metrics";
        let s = c.scoped_token("POST", path);
        assert_eq!(c.verify_bearer(&s, "POST", path), Some(Caller::scoped()));
        assert_eq!(c.verify_bearer(&s, "GET", path), None);
        assert_eq!(c.verify_bearer(&s, "POST", &path.replace("t1", "t2")), None);
        let other = Credentials::from_token("u".repeat(40));
        assert_eq!(other.verify_bearer(&s, "POST", path), None);
    }

    #[test]
    fn sessions_verify_expire_and_bind_their_csrf_token() {
        let c = Credentials::from_token("t".repeat(40));
        let s = c.new_session(1000, 60);
        assert_eq!(s.expires, 1060);
        assert_eq!(c.verify_session(&s.cookie, 1001), Some(s.csrf.clone()));
        assert_eq!(c.verify_session(&s.cookie, 1060), None, "expired");
        // Each part of the cookie is covered by the signature.
        let mut forged = s.cookie.clone();
        forged.replace_range(3..7, "9999");
        assert_eq!(c.verify_session(&forged, 1001), None);
        assert_eq!(c.verify_session("s1.garbage", 1001), None);
        let other = Credentials::from_token("u".repeat(40));
        assert_eq!(other.verify_session(&s.cookie, 1001), None);
        let s2 = c.new_session(1000, 60);
        assert_ne!(s.csrf, s2.csrf, "each session has its own CSRF token");
        assert_ne!(c.session_cookie(), other.session_cookie());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = Credentials::from_token("secret-secret-secret-secret-secret".into());
        assert!(!format!("{c:?}").contains("secret"));
    }
}
