//! Authentication at the door: every request a listener serves carries the
//! data directory's token (`Authorization: Bearer`, as kubectl, the Kubeflow
//! SDKs, `kfp.Client(existing_token=…)`, tritonclient and the CLI send it), a
//! token scoped to its exact method and path, or the dashboard's session
//! cookie — with a CSRF header on anything that changes state. The request
//! reaches the router with the [`Caller`] in its extensions; anything else
//! is answered here.
//!
//! `/login` is the one path served without credentials (on listeners that
//! serve the dashboard): it trades a one-time code from the URL `oxflow up`
//! prints, or the token pasted into its form, for a session.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxflow_auth::{Caller, Credentials, LoginCodes};
use tracing::{info, warn};

/// Who may use a listener.
#[derive(Debug, Clone)]
pub enum Access {
    /// Every request needs the token, a scoped token or a session.
    Token(Arc<Gate>),
    /// No credentials asked: every caller is the owner. Refused on any
    /// address but loopback (`serve` checks), for `--auth none` and for
    /// internal listeners that only Oxflow's own processes call.
    Open,
}

/// How long a dashboard session lasts.
const SESSION_SECS: u64 = 30 * 24 * 3600;
/// How long a printed login link stays usable (once).
const LOGIN_CODE_SECS: u64 = 7 * 24 * 3600;
/// The header a session's mutating requests must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest login form accepted.
const MAX_LOGIN_FORM: usize = 16 * 1024;

/// The credentials a listener accepts, and its login page.
#[derive(Debug)]
pub struct Gate {
    credentials: Credentials,
    codes: LoginCodes,
    /// Whether `/login` is served (listeners with the dashboard).
    login_page: bool,
}

/// What the gate decided about one request.
pub(crate) enum Admit {
    /// Route it, as this caller.
    Caller(Caller),
    /// `/login`: the gate answers it itself.
    Login,
    /// Answered here.
    Refuse(Response),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gate {
    /// A gate accepting `credentials`; `login_page` serves `/login`.
    pub fn new(credentials: Credentials, login_page: bool) -> Self {
        Self {
            credentials,
            codes: LoginCodes::default(),
            login_page,
        }
    }

    /// The credentials behind the gate.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A one-time login URL for the dashboard at `base` (`http://HOST:PORT`).
    pub fn login_url(&self, base: &str) -> String {
        let code = self.codes.issue(now(), LOGIN_CODE_SECS);
        format!("{}/login?code={code}", base.trim_end_matches('/'))
    }

    pub(crate) fn admit<B>(&self, request: &Request<B>) -> Admit {
        let path = request.uri().path();
        if self.login_page && path == "/login" {
            return Admit::Login;
        }
        let headers = request.headers();
        let method = request.method();
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let presented = value
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, rest) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
                .unwrap_or("");
            return match self
                .credentials
                .verify_bearer(presented, method.as_str(), path)
            {
                Some(caller) => Admit::Caller(caller),
                None => {
                    warn!(%method, %path, "Request refused: the bearer token is not valid here.");
                    Admit::Refuse(self.unauthorized(
                        request,
                        "the bearer token is not this server's token (`oxflow token` prints it; kubeconfig: `oxflow kubeconfig`)",
                    ))
                }
            };
        }
        if let Some(csrf) = cookie(headers, &self.credentials.session_cookie())
            .and_then(|c| self.credentials.verify_session(c, now()))
        {
            let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
                || headers.contains_key(header::UPGRADE);
            let echoed = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == csrf));
            if changes_state && !echoed {
                warn!(%method, %path, "Request refused: a session request that changes state without its CSRF token.");
                return Admit::Refuse(status_json(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "a dashboard session must send its CSRF token (the X-CSRF-Token header) to change state",
                ));
            }
            return Admit::Caller(Caller::owner());
        }
        Admit::Refuse(self.unauthorized(
            request,
            "authentication required: send `Authorization: Bearer <token>` (`oxflow token` prints it; \
             kubectl: `export KUBECONFIG=$(oxflow kubeconfig)`), or log in to the dashboard",
        ))
    }

    /// 401 in the form the caller reads: a gRPC status, a redirect to the
    /// login page for a browser opening a page, or a Kubernetes `Status`
    /// (which also has the `code`/`message`/`error` fields Oxflow's other
    /// APIs use).
    fn unauthorized<B>(&self, request: &Request<B>, message: &str) -> Response {
        let headers = request.headers();
        if is_grpc(headers) {
            return grpc_unauthenticated(message);
        }
        let wants_page = matches!(*request.method(), Method::GET | Method::HEAD)
            && headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        if self.login_page && wants_page {
            let next = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let location = format!("/login?next={}", encode_component(next));
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, location.as_str())],
            )
                .into_response();
        }
        let mut resp = status_json(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"oxflow\""),
        );
        resp
    }

    /// Answers `/login`: the form (GET), a one-time code (GET `?code=`), or
    /// the token from the form (POST).
    pub(crate) async fn login(&self, request: Request<Body>) -> Response {
        let query = request.uri().query().unwrap_or("").to_owned();
        let params = |text: &str| -> Vec<(String, String)> { parse_form(text) };
        match *request.method() {
            Method::GET | Method::HEAD => {
                let q = params(&query);
                let next = safe_next(find(&q, "next"));
                match find(&q, "code") {
                    Some(code) if self.codes.redeem(code, now()) => {
                        info!("Dashboard login with a one-time link.");
                        self.start_session(&next)
                    }
                    Some(_) => login_page(
                        StatusCode::UNAUTHORIZED,
                        &next,
                        Some(
                            "This login link was already used or has expired. Paste the token instead (`oxflow token` prints it).",
                        ),
                    ),
                    None => login_page(StatusCode::OK, &next, None),
                }
            }
            Method::POST => {
                let body = match axum::body::to_bytes(request.into_body(), MAX_LOGIN_FORM).await {
                    Ok(b) => b,
                    Err(_) => {
                        return login_page(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "/",
                            Some("The login form is too large."),
                        );
                    }
                };
                let form = params(&String::from_utf8_lossy(&body));
                let next = safe_next(find(&form, "next"));
                let token = find(&form, "token").unwrap_or("").trim();
                match self.credentials.verify_bearer(token, "POST", "/login") {
                    Some(caller) if caller == Caller::owner() => {
                        info!("Dashboard login with the token.");
                        self.start_session(&next)
                    }
                    _ => {
                        warn!("Dashboard login refused: wrong token.");
                        login_page(
                            StatusCode::UNAUTHORIZED,
                            &next,
                            Some("That is not this server's token."),
                        )
                    }
                }
            }
            _ => status_json(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "/login takes GET and POST",
            ),
        }
    }

    fn start_session(&self, next: &str) -> Response {
        let session = self.credentials.new_session(now(), SESSION_SECS);
        let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
        let h = resp.headers_mut();
        for cookie in [
            format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}",
                self.credentials.session_cookie(),
                session.cookie
            ),
            format!(
                "{}={}; Path=/; SameSite=Strict; Max-Age={SESSION_SECS}",
                self.credentials.csrf_cookie(),
                session.csrf
            ),
        ] {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.append(header::SET_COOKIE, v);
            }
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A trailers-only gRPC answer with status UNAUTHENTICATED (16).
fn grpc_unauthenticated(message: &str) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static("16"));
    if let Ok(v) = HeaderValue::from_str(&encode_component(message)) {
        h.insert("grpc-message", v);
    }
    resp
}

/// A Kubernetes `Status` error that Oxflow's own error readers also
/// understand (`code`, `message`, `error`).
pub(crate) fn status_json(status: StatusCode, reason: &str, message: &str) -> Response {
    let m = crate::guard::json_string(message);
    let body = format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\
         \"message\":{m},\"reason\":\"{reason}\",\"code\":{code},\"error\":{m}}}",
        code = status.as_u16()
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// Only a path on this server: `/x…`, never `//host` or `/\host`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn find<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `application/x-www-form-urlencoded` (and query strings) into pairs.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    percent_decode(s.replace('+', " ").as_bytes())
}

/// Decodes `%XX` escapes (anything malformed stays as it is).
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The login page: a form for the token (no script; its own strict CSP).
fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · Oxflow</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}\
         input{{width:100%;padding:.5rem;font:inherit;box-sizing:border-box;margin:.25rem 0 1rem}}\
         button{{padding:.5rem 1rem;font:inherit}}.error{{color:#b91c1c}}code{{background:#f3f4f6;padding:0 .25rem}}</style>\
         </head><body><main><h1>Oxflow</h1>{error}\
         <form method=\"post\" action=\"/login\"><label for=\"token\">Token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\">Log in</button></form>\
         <p>Open the link <code>oxflow up</code> printed, or paste the token <code>oxflow token</code> prints.</p>\
         </main></body></html>",
        next = esc(next)
    );
    let mut resp = (status, Body::from(html)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(Credentials::from_token("t".repeat(40)), true)
    }

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn status(a: Admit) -> Result<Caller, u16> {
        match a {
            Admit::Caller(c) => Ok(c),
            Admit::Login => Err(0),
            Admit::Refuse(r) => Err(r.status().as_u16()),
        }
    }

    #[test]
    fn bearer_tokens_and_sessions() {
        let g = gate();
        let token = format!("Bearer {}", "t".repeat(40));
        assert_eq!(
            status(g.admit(&req(Method::POST, "/x", &[("authorization", &token)]))),
            Ok(Caller::owner())
        );
        assert_eq!(
            status(g.admit(&req(Method::GET, "/x", &[("authorization", "bearer nope")]))),
            Err(401)
        );
        assert_eq!(status(g.admit(&req(Method::GET, "/x", &[]))), Err(401));
        let s = g.credentials.new_session(now(), 60);
        let c = format!("a=b; {}={}", g.credentials.session_cookie(), s.cookie);
        assert_eq!(
            status(g.admit(&req(Method::GET, "/x", &[("cookie", &c)]))),
            Ok(Caller::owner())
        );
        assert_eq!(
            status(g.admit(&req(Method::POST, "/x", &[("cookie", &c)]))),
            Err(403),
            "a state change without the CSRF header"
        );
        let both = format!("other,{}", s.csrf);
        assert_eq!(
            status(g.admit(&req(
                Method::POST,
                "/x",
                &[("cookie", &c), (CSRF_HEADER, &both)]
            ))),
            Ok(Caller::owner())
        );
        assert!(matches!(
            g.admit(&req(Method::GET, "/login", &[])),
            Admit::Login
        ));
    }

    #[test]
    fn browsers_are_sent_to_the_login_page_and_grpc_gets_a_grpc_status() {
        let g = gate();
        let Admit::Refuse(r) = g.admit(&req(
            Method::GET,
            "/runs?x=1",
            &[("accept", "text/html,*/*")],
        )) else {
            panic!("admitted")
        };
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/login?next=/runs%3Fx%3D1");
        let Admit::Refuse(r) = g.admit(&req(
            Method::POST,
            "/inference.GRPCInferenceService/ModelInfer",
            &[("content-type", "application/grpc")],
        )) else {
            panic!("admitted")
        };
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "16");
    }

    #[test]
    fn next_is_only_ever_a_local_path() {
        for (input, want) in [
            (Some("/runs/1"), "/runs/1"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_next(input), want, "{input:?}");
        }
        assert_eq!(
            parse_form("token=a%2Bb+c&next=%2Fx"),
            vec![
                ("token".into(), "a+b c".into()),
                ("next".into(), "/x".into())
            ]
        );
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
    }
}
