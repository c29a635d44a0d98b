//! The kind registry: which kinds exist, under which group, version and
//! names. Built once at start-up from every component's entries; the API
//! layer, the CLI and the dashboard find kinds only through it.

use oxflow_core::object::Kind;

/// Every kind the server knows.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: Vec<&'static Kind>,
}

impl Registry {
    /// A registry of `kinds`. Two entries for one group and kind, or for
    /// one group, version and plural, are a programming error caught by
    /// the registry's test of the full set.
    pub fn new(kinds: impl IntoIterator<Item = &'static Kind>) -> Self {
        Self {
            kinds: kinds.into_iter().collect(),
        }
    }

    /// Every kind, in registration order.
    pub fn kinds(&self) -> &[&'static Kind] {
        &self.kinds
    }

    /// The kind served at `/apis/{group}/{version}/…/{plural}`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
        self.kinds
            .iter()
            .copied()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// The kind named `kind` in `group`.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static Kind> {
        self.kinds
            .iter()
            .copied()
            .find(|k| k.group == group && k.kind == kind)
    }

    /// The kinds a name stands for, as kubectl resolves them: a plural,
    /// singular, short name or kind (any case), optionally followed by
    /// `.group` (`experiments.kubeflow.org`).
    pub fn resolve(&self, name: &str) -> Vec<&'static Kind> {
        let lower = name.to_ascii_lowercase();
        let matches = |k: &Kind, n: &str| {
            k.plural == n
                || k.singular == n
                || k.kind.eq_ignore_ascii_case(n)
                || k.short_names.contains(&n)
        };
        let exact: Vec<_> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| matches(k, &lower))
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        match lower.split_once('.') {
            Some((n, group)) => self
                .kinds
                .iter()
                .copied()
                .filter(|k| k.group == group && matches(k, n))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The groups with their versions, in registration order (the core
    /// group `""` included).
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for k in &self.kinds {
            match out.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, versions)) => {
                    if !versions.contains(&k.version) {
                        versions.push(k.version);
                    }
                }
                None => out.push((k.group, vec![k.version])),
            }
        }
        out
    }

    /// The kinds of one group and version.
    pub fn in_version(&self, group: &str, version: &str) -> Vec<&'static Kind> {
        self.kinds
            .iter()
            .copied()
            .filter(|k| k.group == group && k.version == version)
            .collect()
    }

    /// Names that two kinds claim (plural per group/version, kind per
    /// group, short names anywhere): what a registry must not have.
    pub fn clashes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, a) in self.kinds.iter().enumerate() {
            for b in &self.kinds[i + 1..] {
                if a.group == b.group && a.version == b.version && a.plural == b.plural {
                    out.push(format!("{}/{} {}", a.group, a.version, a.plural));
                }
                if a.group == b.group && a.kind == b.kind {
                    out.push(format!("{} {}", a.group, a.kind));
                }
                for s in a.short_names {
                    if b.short_names.contains(s) {
                        out.push(format!("short name {s}"));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    #[test]
    fn kinds_resolve_by_every_name_kubectl_uses() {
        let r = Registry::new(builtin::kinds());
        assert!(r.clashes().is_empty(), "{:?}", r.clashes());
        for name in ["configmaps", "configmap", "cm", "ConfigMap", "CM"] {
            let found = r.resolve(name);
            assert_eq!(found.len(), 1, "{name}");
            assert_eq!(found[0].kind, "ConfigMap");
        }
        assert!(r.resolve("experiments").is_empty());
        assert_eq!(
            r.by_plural("", "v1", "namespaces").unwrap().kind,
            "Namespace"
        );
        assert_eq!(r.groups(), vec![("", vec!["v1"])]);
        let twice = Registry::new([&builtin::CONFIG_MAP, &builtin::CONFIG_MAP]);
        assert!(!twice.clashes().is_empty());
    }
}
