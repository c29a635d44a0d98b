use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kubernetes-style namespace (a Kubeflow profile). Every resource lives in one.
///
/// Validated on construction as a DNS-1123 label, so it is always safe to use
/// as a directory name and as a Kubernetes namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

/// Why a namespace name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid namespace {name:?}: {reason} (a namespace is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
)]
pub struct NamespaceError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Namespace {
    /// The namespace used when authentication is off and the user names none.
    pub const DEFAULT: &'static str = "default";

    /// Validates `name` as a DNS-1123 label.
    pub fn new(name: impl Into<String>) -> Result<Self, NamespaceError> {
        let name = name.into();
        let err = |reason| NamespaceError {
            name: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(err("it is empty"));
        }
        if name.len() > 63 {
            return Err(err("it is longer than 63 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("it contains a character other than a-z, 0-9 or '-'"));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(err("it starts or ends with '-'"));
        }
        Ok(Self(name))
    }

    /// The namespace's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Namespace::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubeflow_profile_names() {
        for ok in ["default", "kubeflow-user-example-com", "a", "team-1"] {
            assert_eq!(Namespace::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in ["", "-a", "a-", "Upper", "a_b", "a/b", "..", &"x".repeat(64)] {
            let e = Namespace::new(bad).unwrap_err();
            assert_eq!(e.name, bad);
        }
    }
}
