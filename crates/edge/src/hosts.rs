//! Which `Host` names and `Origin`s a listener answers to.
//!
//! A web page can make the browser send requests to `127.0.0.1:8080`, and
//! with DNS rebinding (a name of the attacker's that first resolves to the
//! attacker, then to 127.0.0.1) it can even read the answers, since the page
//! and the server then share an origin. Rebinding needs a *name*; the
//! request carries that name in `Host`. So a listener answers only to names
//! that cannot be rebound (`localhost` and its subdomains, which browsers
//! resolve to loopback themselves, and KServe's reserved default domain
//! `example.com`), to IP literals it is reachable at, and to names the
//! operator adds (`--allowed-hosts`).

use std::net::{IpAddr, SocketAddr};

/// An `--allowed-hosts` or `--allowed-origins` entry that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{option} entry {entry:?}: {reason}")]
pub struct PatternError {
    option: &'static str,
    entry: String,
    reason: &'static str,
}

/// One allowed name: exactly `name`, or `domain` and every name under it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Domain(String),
}

impl HostPattern {
    /// `name`, `*.domain` or `.domain` (both: the domain and its subdomains).
    fn parse(entry: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            option: "--allowed-hosts",
            entry: entry.to_owned(),
            reason,
        };
        let lower = entry.trim().to_ascii_lowercase();
        let (domain, name) = match lower.strip_prefix("*.").or_else(|| lower.strip_prefix('.')) {
            Some(d) => (true, d.trim_end_matches('.').to_owned()),
            None => (false, lower.trim_end_matches('.').to_owned()),
        };
        if name.parse::<IpAddr>().is_ok() && !domain {
            return Ok(Self::Exact(name));
        }
        if name.is_empty() {
            return Err(err("is empty"));
        }
        if name == "*" {
            return Err(err(
                "a wildcard for every name would let any web page rebind its name to this server; list the names",
            ));
        }
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name.split('.').all(valid_label) {
            return Err(err(
                "is not a host name (letters, digits, '-' and '.'; `*.domain` for subdomains)",
            ));
        }
        Ok(if domain {
            Self::Domain(name)
        } else {
            Self::Exact(name)
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Domain(domain) => {
                host == domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
        }
    }
}

/// The `Host`s and `Origin`s one listener accepts.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// The IP the listener is bound to (loopback IPs are always allowed).
    bound: Option<IpAddr>,
    /// Bound to every address (`0.0.0.0`, `::`): any IP literal reaches it.
    any_ip: bool,
    names: Vec<HostPattern>,
    /// Origins, besides the request's own, allowed to change state
    /// (`scheme://host[:port]`, lower case, default port omitted).
    origins: Vec<String>,
}

/// Names no web page can rebind: browsers resolve `localhost` and
/// `*.localhost` to loopback without DNS (RFC 6761), and `example.com` is
/// reserved (RFC 2606) — KServe's default ingress domain, so KServe's
/// `Host: NAME.NS.example.com` habit keeps working.
fn default_names() -> Vec<HostPattern> {
    vec![
        HostPattern::Domain("localhost".into()),
        HostPattern::Domain("example.com".into()),
    ]
}

impl HostPolicy {
    /// A listener on loopback only, with no names added.
    pub fn loopback() -> Self {
        Self {
            bound: None,
            any_ip: false,
            names: default_names(),
            origins: Vec::new(),
        }
    }

    /// A listener bound to `addr`, answering also to the `hosts` patterns
    /// (`name`, `*.domain`) and taking state-changing requests also from
    /// the `origins` (`https://host[:port]`).
    pub fn for_listener(
        addr: SocketAddr,
        hosts: &[String],
        origins: &[String],
    ) -> Result<Self, PatternError> {
        let mut policy = Self::loopback();
        let ip = addr.ip();
        policy.any_ip = ip.is_unspecified();
        policy.bound = (!ip.is_unspecified()).then_some(ip);
        for entry in hosts.iter().flat_map(|h| h.split(',')) {
            if entry.trim().is_empty() {
                continue;
            }
            policy.names.push(HostPattern::parse(entry)?);
        }
        for entry in origins.iter().flat_map(|o| o.split(',')) {
            if entry.trim().is_empty() {
                continue;
            }
            let origin = parse_origin(entry.trim()).ok_or_else(|| PatternError {
                option: "--allowed-origins",
                entry: entry.to_owned(),
                reason: "is not an origin (`http://host[:port]` or `https://host[:port]`)",
            })?;
            policy.origins.push(origin.normalized());
        }
        Ok(policy)
    }

    /// Whether a request whose `Host` (or `:authority`) is `host` may be
    /// answered.
    pub fn allows_host(&self, host: &str) -> bool {
        let Some(authority) = Authority::parse(host) else {
            return false;
        };
        if let Ok(ip) = authority.host.parse::<IpAddr>() {
            // An IP literal cannot be rebound: a page served from another
            // address is another origin.
            return ip.is_loopback() || self.any_ip || Some(ip) == self.bound;
        }
        self.names.iter().any(|p| p.matches(&authority.host))
    }

    /// Whether a state-changing request from a page at `origin` to `host`
    /// may go ahead: the page must be this server's own (same scheme-less
    /// host and port) or an allowed origin.
    pub fn allows_origin(&self, origin: &str, host: &str) -> bool {
        let Some(origin) = parse_origin(origin) else {
            return false;
        };
        if self.origins.contains(&origin.normalized()) {
            return true;
        }
        let Some(target) = Authority::parse(host) else {
            return false;
        };
        let default = origin.default_port();
        origin.authority.host == target.host
            && origin.authority.port.unwrap_or(default) == target.port.unwrap_or(default)
    }
}

/// `host[:port]` of a `Host` header, the host lower-cased without a
/// trailing dot (IPv6 without brackets).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authority {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl Authority {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.contains(['/', '@', ' ', '?', '#']) {
            return None;
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest.split_once(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?.parse().ok()?),
            };
            (v6.to_owned(), port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
                None => (text.to_owned(), None),
            }
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Self { host, port })
    }
}

struct Origin {
    https: bool,
    authority: Authority,
}

impl Origin {
    fn default_port(&self) -> u16 {
        if self.https { 443 } else { 80 }
    }

    fn normalized(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.authority.host.contains(':') {
            format!("[{}]", self.authority.host)
        } else {
            self.authority.host.clone()
        };
        match self.authority.port {
            Some(p) if p != self.default_port() => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        }
    }
}

/// `scheme://host[:port]` (what browsers send in `Origin`); `None` for
/// `null`, other schemes and anything with a path.
fn parse_origin(text: &str) -> Option<Origin> {
    let lower = text.trim().to_ascii_lowercase();
    let (https, rest) = if let Some(r) = lower.strip_prefix("https://") {
        (true, r)
    } else {
        (false, lower.strip_prefix("http://")?)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    Some(Origin {
        https,
        authority: Authority::parse(rest)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bind: &str, hosts: &[&str]) -> HostPolicy {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        HostPolicy::for_listener(bind.parse().unwrap(), &hosts, &[]).unwrap()
    }

    #[test]
    fn hosts_a_loopback_listener_answers_to() {
        let p = policy("127.0.0.1:8080", &[]);
        for (host, allowed) in [
            ("127.0.0.1:8080", true),
            ("127.0.0.1", true),
            ("127.9.9.9:1", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("LOCALHOST.:8080", true),
            ("app.localhost", true),
            ("sklearn-iris.default.example.com", true),
            ("example.com:80", true),
            // DNS rebinding: the attacker's names.
            ("evil.com:8080", false),
            ("localhost.evil.com", false),
            ("example.com.evil.net", false),
            ("notexample.com", false),
            ("sklearn-iris.default.svc.cluster.local", false),
            // Other addresses of the machine when bound to loopback only.
            ("10.1.2.3:8080", false),
            // Malformed or empty.
            ("", false),
            (" ", false),
            (":8080", false),
            ("[::1", false),
            ("user@127.0.0.1", false),
            ("127.0.0.1:99999", false),
        ] {
            assert_eq!(p.allows_host(host), allowed, "{host:?}");
        }
    }

    #[test]
    fn bound_addresses_and_added_names() {
        let p = policy("10.1.2.3:8080", &["kubeflow.internal", "*.apps.corp"]);
        assert!(p.allows_host("10.1.2.3:8080"));
        assert!(!p.allows_host("10.1.2.4:8080"));
        assert!(p.allows_host("kubeflow.internal"));
        assert!(!p.allows_host("x.kubeflow.internal"));
        assert!(p.allows_host("apps.corp"));
        assert!(p.allows_host("iris.default.apps.corp:443"));
        assert!(!p.allows_host("evilapps.corp"));
        // Bound to every address: any IP literal, still no foreign names.
        let any = policy("0.0.0.0:8080", &[]);
        assert!(any.allows_host("192.168.1.20:8080"));
        assert!(any.allows_host("[fe80::1]:8080"));
        assert!(!any.allows_host("attacker.example.org"));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_entry() {
        for (entry, needle) in [
            ("*", "wildcard"),
            ("ex ample.com", "not a host name"),
            ("*.", "empty"),
            ("a..b", "not a host name"),
        ] {
            let e =
                HostPolicy::for_listener("127.0.0.1:1".parse().unwrap(), &[entry.to_owned()], &[])
                    .unwrap_err()
                    .to_string();
            assert!(
                e.contains("--allowed-hosts") && e.contains(needle),
                "{entry}: {e}"
            );
        }
        let e =
            HostPolicy::for_listener("127.0.0.1:1".parse().unwrap(), &[], &["ftp://x".to_owned()])
                .unwrap_err()
                .to_string();
        assert!(e.contains("--allowed-origins"), "{e}");
    }

    #[test]
    fn origins_must_be_the_server_itself_or_allowed() {
        let p = HostPolicy::for_listener(
            "127.0.0.1:8080".parse().unwrap(),
            &[],
            &["https://Kubeflow.Corp.Example:443".to_owned()],
        )
        .unwrap();
        for (origin, host, allowed) in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080", true),
            ("http://localhost:8080", "localhost:8080", true),
            ("http://localhost", "localhost:80", true),
            ("http://localhost:80", "localhost", true),
            ("https://localhost", "localhost:443", true),
            // Another port of the same machine is another origin.
            ("http://localhost:3000", "localhost:8080", false),
            ("http://127.0.0.1:8080", "localhost:8080", false),
            ("http://evil.com", "127.0.0.1:8080", false),
            ("null", "127.0.0.1:8080", false),
            ("file://", "127.0.0.1:8080", false),
            ("http://127.0.0.1:8080/path", "127.0.0.1:8080", false),
            ("https://kubeflow.corp.example", "127.0.0.1:8080", true),
        ] {
            assert_eq!(p.allows_origin(origin, host), allowed, "{origin} → {host}");
        }
    }
}
