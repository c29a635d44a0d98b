//! Authentication over real TCP connections: what a request without
//! credentials, with the token, with a scoped token and with a dashboard
//! session gets, and the login flow a browser goes through.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use oxflow_edge::{Access, Caller, Credentials, Gate, HostPolicy, ServeConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "oxf_0123456789abcdef0123456789abcdef";

struct Server {
    addr: SocketAddr,
    gate: Arc<Gate>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The handler answers with the caller the edge established.
    let whoami = |Extension(c): Extension<Caller>| async move { c.name };
    let app = Router::new().route("/who", get(whoami).post(whoami)).route(
        "/apis/kubeflow.org/v1beta1/namespaces/default/trials/t1/metrics",
        axum::routing::post(whoami),
    );
    let gate = Arc::new(Gate::new(Credentials::from_token(TOKEN.into()), true));
    let config = ServeConfig::new(
        HostPolicy::for_listener(addr, &[], &[]).unwrap(),
        Access::Token(gate.clone()),
    );
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        serve(
            listener,
            app,
            config,
            async move { token.cancelled().await },
        )
        .await
        .unwrap()
    });
    Server { addr, gate, stop }
}

/// Sends one request with `headers` (and a body for POST); returns the
/// status code and the whole answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

/// `name=value` of every Set-Cookie in `answer`.
fn cookies(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn requests_need_the_token() {
    let s = start().await;
    let (code, body) = send(s.addr, "GET", "/who", &[], "").await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    assert!(body.contains("www-authenticate: Bearer"), "{body}");
    let (code, _) = send(
        s.addr,
        "GET",
        "/who",
        &[("Authorization", "Bearer wrong-token")],
        "",
    )
    .await;
    assert_eq!(code, 401);
    let bearer = format!("Bearer {TOKEN}");
    let (code, body) = send(s.addr, "POST", "/who", &[("Authorization", &bearer)], "{}").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("oxflow:owner"), "{body}");
    // A page opened in a browser goes to the login page instead.
    let (code, body) = send(s.addr, "GET", "/who", &[("Accept", "text/html")], "").await;
    assert_eq!(code, 303, "{body}");
    assert!(body.contains("location: /login?next=/who"), "{body}");
    // gRPC clients get a gRPC status.
    let (code, body) = send(
        s.addr,
        "POST",
        "/x.Y/Z",
        &[("Content-Type", "application/grpc")],
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("grpc-status: 16"), "{body}");
}

#[tokio::test]
async fn a_scoped_token_opens_one_route() {
    let s = start().await;
    let path = "/apis/kubeflow.org/v1beta1/namespaces/default/trials/t1/metrics";
    let scoped = format!("Bearer {}", s.gate.credentials().scoped_token("POST", path));
    let (code, body) = send(s.addr, "POST", path, &[("Authorization", &scoped)], "{}").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("oxflow:scoped"), "{body}");
    let (code, _) = send(s.addr, "POST", "/who", &[("Authorization", &scoped)], "{}").await;
    assert_eq!(code, 401);
    let (code, _) = send(s.addr, "GET", path, &[("Authorization", &scoped)], "").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn the_login_link_starts_a_session_once_and_state_changes_need_its_csrf_token() {
    let s = start().await;
    let url = s.gate.login_url(&format!("http://{}", s.addr));
    let path = url.trim_start_matches(&format!("http://{}", s.addr));
    let (code, answer) = send(s.addr, "GET", &format!("{path}&next=/who"), &[], "").await;
    assert_eq!(code, 303, "{answer}");
    assert!(answer.contains("location: /who"), "{answer}");
    assert!(answer.contains("HttpOnly; SameSite=Strict"), "{answer}");
    let jar = cookies(&answer);
    assert_eq!(jar.len(), 2, "{answer}");
    let session = jar
        .iter()
        .find(|c| c.starts_with("oxflow_session_"))
        .unwrap();
    let csrf = jar.iter().find(|c| c.starts_with("oxflow_csrf_")).unwrap();
    let csrf_value = csrf.split_once('=').unwrap().1;

    // The link works once.
    let (code, answer) = send(s.addr, "GET", path, &[], "").await;
    assert_eq!(code, 401);
    assert!(answer.contains("already used"), "{answer}");

    let (code, body) = send(s.addr, "GET", "/who", &[("Cookie", session)], "").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = send(s.addr, "POST", "/who", &[("Cookie", session)], "{}").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (code, _) = send(
        s.addr,
        "POST",
        "/who",
        &[("Cookie", session), ("X-CSRF-Token", "0000")],
        "{}",
    )
    .await;
    assert_eq!(code, 403);
    let (code, body) = send(
        s.addr,
        "POST",
        "/who",
        &[("Cookie", session), ("X-CSRF-Token", csrf_value)],
        "{}",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // A forged session cookie is no session.
    let forged = format!("{}x", session);
    let (code, _) = send(s.addr, "GET", "/who", &[("Cookie", &forged)], "").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn the_login_form_takes_the_token_and_refuses_others() {
    let s = start().await;
    let (code, page) = send(s.addr, "GET", "/login", &[], "").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<form method=\"post\" action=\"/login\">"),
        "{page}"
    );
    assert!(
        page.contains("content-security-policy: default-src 'none'"),
        "{page}"
    );
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");
    let (code, page) = send(
        s.addr,
        "POST",
        "/login",
        &[form_ct],
        "token=nope&next=%2Fwho",
    )
    .await;
    assert_eq!(code, 401);
    assert!(page.contains("not this server"), "{page}");
    assert!(cookies(&page).is_empty());
    let (code, answer) = send(
        s.addr,
        "POST",
        "/login",
        &[form_ct],
        &format!("token={TOKEN}&next=%2F%2Fevil.test"),
    )
    .await;
    assert_eq!(code, 303, "{answer}");
    assert!(
        answer.contains("location: /\r\n"),
        "an off-site next is ignored: {answer}"
    );
    assert_eq!(cookies(&answer).len(), 2);
    // A page on another origin cannot post the form.
    let (code, _) = send(
        s.addr,
        "POST",
        "/login",
        &[form_ct, ("Origin", "http://evil.test")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn an_open_listener_is_refused_off_loopback() {
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig::new(
        HostPolicy::for_listener(addr, &[], &[]).unwrap(),
        Access::Open,
    );
    let err = serve(listener, Router::new(), config, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("without authentication"), "{err}");
}

#[tokio::test]
async fn tls_and_plain_http_share_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let identity =
        oxflow_edge::tls_identity(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let whoami = |Extension(c): Extension<Caller>| async move { c.name };
    let app = Router::new().route("/who", get(whoami));
    let gate = Arc::new(Gate::new(Credentials::from_token(TOKEN.into()), false));
    let mut config = ServeConfig::new(
        HostPolicy::for_listener(addr, &[], &[]).unwrap(),
        Access::Token(gate),
    );
    config.tls = Some(identity.config.clone());
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        serve(
            listener,
            app,
            config,
            async move { token.cancelled().await },
        )
        .await
        .unwrap()
    });
    let _stop = stop.drop_guard();

    // Plain HTTP still works on the port.
    let bearer = format!("Bearer {TOKEN}");
    let (code, _) = send(addr, "GET", "/who", &[("Authorization", &bearer)], "").await;
    assert_eq!(code, 200);

    // A client that trusts the CA reaches it over TLS.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(identity.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for (auth, want) in [(Some(bearer.as_str()), "200"), (None, "401")] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        tls.write_all(
            format!("GET /who HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(&format!("HTTP/1.1 {want}")), "{answer}");
    }
    // A client that does not trust the CA is refused by its own check.
    let untrusting = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    assert!(
        tokio_rustls::TlsConnector::from(Arc::new(untrusting))
            .connect(name, tcp)
            .await
            .is_err()
    );
}
