//! The request check every listener applies before routing: a `Host` the
//! listener answers to, and no state change from a page on another origin.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::HostPolicy;

/// Why a request was refused; the message is the answer's body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoHost,
    ForeignHost(String),
    ForeignOrigin { origin: String, host: String },
}

impl Refusal {
    fn message(&self) -> String {
        match self {
            Self::NoHost => {
                "the request has no Host header; Oxflow answers only requests that name it".into()
            }
            Self::ForeignHost(host) => format!(
                "Host {host:?} is not a name this server answers to (loopback names, its own address, \
                 and the names given with --allowed-hosts); this guards against DNS rebinding"
            ),
            Self::ForeignOrigin { origin, host } => format!(
                "cross-origin request refused: a page at {origin:?} may not change state on {host:?} \
                 (add its origin with --allowed-origins to allow it)"
            ),
        }
    }
}

/// The verdict for one request, from its method and headers (and the
/// URI's authority, which is where HTTP/2 puts `:authority`).
pub(crate) fn verdict(
    policy: &HostPolicy,
    method: &Method,
    authority: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let host_header = headers.get(header::HOST).map(|v| v.to_str().unwrap_or(""));
    let mut host = None;
    for candidate in [host_header, authority].into_iter().flatten() {
        if !policy.allows_host(candidate) {
            return Err(if candidate.trim().is_empty() {
                Refusal::NoHost
            } else {
                Refusal::ForeignHost(candidate.chars().take(200).collect())
            });
        }
        host.get_or_insert(candidate);
    }
    let Some(host) = host else {
        return Err(Refusal::NoHost);
    };
    // Browsers send `Origin` with every request that is not a GET or HEAD,
    // and with WebSocket handshakes; a page's requests without one are
    // same-origin navigations, and other clients (the CLI, SDKs, curl) send
    // none.
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || headers.contains_key(header::UPGRADE);
    if !changes_state {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null"));
    match origin {
        Some(origin) if !policy.allows_origin(origin, host) => Err(Refusal::ForeignOrigin {
            origin: origin.chars().take(200).collect(),
            host: host.to_owned(),
        }),
        Some(_) => Ok(()),
        None => {
            // A browser that sends Fetch Metadata but no Origin still says
            // where the request comes from.
            let site = headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
                Err(Refusal::ForeignOrigin {
                    origin: format!("(a {site} page)"),
                    host: host.to_owned(),
                })
            } else {
                Ok(())
            }
        }
    }
}

/// axum middleware: refuses with 403 what [`verdict`] refuses. The body is
/// JSON that both of Oxflow's error shapes read: `{"error"}` (the
/// inference protocol) and `{"code", "message"}` (`google.rpc.Status`).
pub(crate) async fn check(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match screen(&policy, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// The refusal for `request`, or `None` when it may go on: what [`check`]
/// does, callable without a middleware layer (the serve loop calls it for
/// every request before routing).
pub(crate) fn screen<B>(policy: &HostPolicy, request: &axum::http::Request<B>) -> Option<Response> {
    let authority = request.uri().authority().map(|a| a.as_str());
    let refusal = verdict(policy, request.method(), authority, request.headers()).err()?;
    let message = refusal.message();
    warn!(method = %request.method(), path = %request.uri().path(), reason = %message, "Request refused at the edge.");
    Some(refuse(&message))
}

fn refuse(message: &str) -> Response {
    let body = format!(
        "{{\"error\":{m},\"code\":7,\"message\":{m},\"details\":[]}}",
        m = json_string(message)
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// `text` as a JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn check(method: Method, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let policy = HostPolicy::for_listener("127.0.0.1:8080".parse().unwrap(), &[], &[]).unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        verdict(&policy, &method, None, &map)
    }

    #[test]
    fn requests_without_an_allowed_host_are_refused() {
        assert_eq!(check(Method::GET, &[]), Err(Refusal::NoHost));
        assert_eq!(check(Method::GET, &[("host", "")]), Err(Refusal::NoHost));
        assert!(matches!(
            check(Method::GET, &[("host", "rebind.attacker.net:8080")]),
            Err(Refusal::ForeignHost(_))
        ));
        assert_eq!(check(Method::GET, &[("host", "127.0.0.1:8080")]), Ok(()));
    }

    #[test]
    fn state_changes_from_other_origins_are_refused() {
        let host = ("host", "127.0.0.1:8080");
        for (method, origin, site, ok) in [
            // Clients that are not browsers send no Origin.
            (Method::POST, None, None, true),
            (
                Method::POST,
                Some("http://127.0.0.1:8080"),
                Some("same-origin"),
                true,
            ),
            (Method::DELETE, Some("http://127.0.0.1:8080"), None, true),
            (
                Method::POST,
                Some("http://evil.example.org"),
                Some("cross-site"),
                false,
            ),
            (Method::PUT, Some("http://localhost:8080"), None, false),
            (Method::PATCH, Some("null"), None, false),
            (Method::POST, None, Some("cross-site"), false),
            (Method::POST, None, Some("same-site"), false),
            (Method::POST, None, Some("none"), true),
            // Reading is left to the browser's same-origin policy.
            (
                Method::GET,
                Some("http://evil.example.org"),
                Some("cross-site"),
                true,
            ),
        ] {
            let mut headers = vec![host];
            if let Some(o) = origin {
                headers.push(("origin", o));
            }
            if let Some(s) = site {
                headers.push(("sec-fetch-site", s));
            }
            assert_eq!(
                check(method.clone(), &headers).is_ok(),
                ok,
                "{method} {origin:?} {site:?}"
            );
        }
        // A WebSocket handshake is a GET that opens a channel both ways.
        assert!(
            check(
                Method::GET,
                &[
                    host,
                    ("upgrade", "websocket"),
                    ("origin", "http://evil.example.org")
                ]
            )
            .is_err()
        );
    }

    #[test]
    fn refusals_are_json_in_both_error_shapes() {
        let text = json_string("a \"quoted\"\nline\\");
        assert_eq!(text, "\"a \\\"quoted\\\"\\u000aline\\\\\"");
    }
}
