//! Who is calling, and what they may do.
//!
//! - [`Credentials`]: the data directory's secret (`<home>/token`, mode
//!   0600), from which everything else is derived: the bearer token that
//!   kubeconfig, `kfp.Client(existing_token=…)` and the CLI send; signed
//!   dashboard session cookies with their CSRF tokens; and scoped tokens that
//!   open exactly one method and path (a trial's metrics push).
//! - [`LoginCodes`]: one-time codes for the login URL `oxflow up` prints.
//! - [`Caller`] and [`authorize`]: the one check every route makes once it
//!   knows the namespace of what it touches.
//!
//! Architecture invariant: this crate knows no HTTP and does no I/O beyond
//! the token file; the edge (`oxflow-edge`) turns requests into a
//! [`Caller`], and handlers call [`authorize`] with the namespace of the
//! object behind the request — for id-keyed routes, the namespace stored
//! with the object, never one the request names.

mod codes;
mod credentials;

pub use codes::LoginCodes;
pub use credentials::{Credentials, Session, TOKEN_FILE};

/// Errors reading or creating the token file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read, created or protected.
    #[error("{action} the token file {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The token file holds something that is not a token.
    #[error(
        "the token file {path} does not hold a token ({why}); delete it and restart `oxflow up` to make a new one"
    )]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Who a request comes from, as the edge established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name (`oxflow:owner` for the data directory's owner).
    pub name: String,
    /// What the caller may reach.
    pub scope: Scope,
}

/// What a [`Caller`] may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: the owner of the data directory (its token or a
    /// dashboard session started with it).
    Everything,
    /// Only these namespaces (tests of the per-object namespace checks use
    /// it today; profiles will grant it).
    Namespaces(Vec<String>),
    /// The one method and path a scoped token was minted for; the edge has
    /// already checked that the request is exactly that.
    Route,
}

impl Caller {
    /// The owner of the data directory.
    pub fn owner() -> Self {
        Self {
            name: "oxflow:owner".into(),
            scope: Scope::Everything,
        }
    }

    /// A caller holding a scoped token.
    pub fn scoped() -> Self {
        Self {
            name: "oxflow:scoped".into(),
            scope: Scope::Route,
        }
    }
}

/// What a request does, in Kubernetes RBAC's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Follow changes.
    Watch,
    /// Make a new object.
    Create,
    /// Replace an object (or an action on it such as terminate).
    Update,
    /// Change part of an object.
    Patch,
    /// Remove an object.
    Delete,
}

impl Verb {
    /// The RBAC verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// Why [`authorize`] said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{user:?} may not {verb} in namespace {namespace:?}")]
pub struct Denied {
    /// The caller's name.
    pub user: String,
    /// The verb refused.
    pub verb: &'static str,
    /// The namespace of the object.
    pub namespace: String,
}

/// May `caller` do `verb` to something in `namespace`? The one decision
/// every route takes; the profiles work will give it RBAC's rules.
pub fn authorize(caller: &Caller, verb: Verb, namespace: &str) -> Result<(), Denied> {
    let allowed = match &caller.scope {
        Scope::Everything | Scope::Route => true,
        Scope::Namespaces(list) => list.iter().any(|n| n == namespace),
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            user: caller.name.clone(),
            verb: verb.as_str(),
            namespace: namespace.to_owned(),
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS random source failing is not something to continue past: a
    // predictable token would be worse than stopping.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_may_do_anything_anywhere() {
        assert!(authorize(&Caller::owner(), Verb::Delete, "team-a").is_ok());
        assert!(authorize(&Caller::scoped(), Verb::Create, "team-a").is_ok());
    }

    #[test]
    fn a_namespace_scope_confines_the_caller() {
        let c = Caller {
            name: "alice".into(),
            scope: Scope::Namespaces(vec!["team-a".into()]),
        };
        assert!(authorize(&c, Verb::Get, "team-a").is_ok());
        let denied = authorize(&c, Verb::Get, "team-b").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "\"alice\" may not get in namespace \"team-b\""
        );
    }

    #[test]
    fn byte_comparison() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert_eq!(random_hex(16).len(), 32);
        assert_ne!(random_hex(16), random_hex(16));
    }
}
