//! The edge over real TCP connections: what a foreign page, a rebinding
//! attacker and slow or silent clients get.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use oxflow_edge::{Access, HostPolicy, ServeConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Server {
    addr: SocketAddr,
    created: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(tune: impl FnOnce(&mut ServeConfig)) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let created = Arc::new(AtomicUsize::new(0));
    let counter = created.clone();
    let app = Router::new()
        .route("/read", get(|| async { "hello" }))
        .route(
            "/create",
            post(move |body: String| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    format!("created {}", body.len())
                }
            }),
        );
    let mut config = ServeConfig::new(
        HostPolicy::for_listener(addr, &[], &[]).expect("policy"),
        Access::Open,
    );
    tune(&mut config);
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
    Server {
        addr,
        created,
        stop,
    }
}

/// Sends `request` as is and returns the status code and the whole answer.
async fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

fn post_text(host: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /create HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: text/plain\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_origins_change_nothing() {
    let server = start(|_| {}).await;
    let me = server.addr.to_string();

    let (code, body) = exchange(
        server.addr,
        "GET /read HTTP/1.1\r\nHost: rebound.attacker.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--allowed-hosts"), "{body}");

    // HTTP/1.0 without a Host, and an empty one.
    let (code, _) = exchange(server.addr, "GET /read HTTP/1.0\r\n\r\n").await;
    assert_eq!(code, 403);
    let (code, _) = exchange(
        server.addr,
        "GET /read HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(code == 403 || code == 400, "empty Host answered {code}");

    // A rebinding page's POST carries its own name in Host.
    let (code, _) = exchange(
        server.addr,
        &post_text("evil.test:8080", Some("http://evil.test:8080")),
    )
    .await;
    assert_eq!(code, 403);
    // A page on another origin posting text/plain (no preflight) to us.
    let (code, body) = exchange(server.addr, &post_text(&me, Some("http://evil.test"))).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-origin"), "{body}");
    // Another local port is another origin too.
    let (code, _) = exchange(server.addr, &post_text(&me, Some("http://127.0.0.1:1"))).await;
    assert_eq!(code, 403);
    // A multipart form posted from a foreign page.
    let form = format!(
        "POST /create HTTP/1.1\r\nHost: {me}\r\nOrigin: https://evil.test\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50\r\n\
         Connection: close\r\n\r\n--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--"
    );
    let (code, _) = exchange(server.addr, &form).await;
    assert_eq!(code, 403);
    assert_eq!(
        server.created.load(Ordering::SeqCst),
        0,
        "a refused request reached the handler"
    );

    // The server's own pages, and clients that are not browsers, go through.
    let (code, body) = exchange(server.addr, &post_text(&me, Some(&format!("http://{me}")))).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = exchange(server.addr, &post_text(&me, None)).await;
    assert_eq!(code, 200);
    let (code, _) = exchange(
        server.addr,
        &post_text(&format!("localhost:{}", server.addr.port()), None),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(server.created.load(Ordering::SeqCst), 3);
}

/// Reads until the server closes the connection, or `limit` passes.
async fn closed_within(mut tcp: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), tcp.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_closed_at_the_header_deadline() {
    let server = start(|c| c.header_read_timeout = Duration::from_millis(800)).await;
    // One connects and says nothing; one starts a request and stalls.
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /read HTTP/1.1\r\nHost: 127.0")
        .await
        .unwrap();
    let limit = Duration::from_secs(10);
    let (a, b) = tokio::join!(closed_within(silent, limit), closed_within(slow, limit));
    assert!(a.is_some(), "a silent connection was held for {limit:?}");
    assert!(b.is_some(), "a stalled request was held for {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slow_clients_never_lock_out_a_real_one() {
    let server = start(|c| {
        c.header_read_timeout = Duration::from_secs(30);
        c.max_connections = 128;
        c.max_pending = 32;
    })
    .await;
    // Ten times more stalled connections than the server keeps waiting,
    // and more than it holds at all.
    let mut stalled = Vec::new();
    for _ in 0..320 {
        if let Ok(mut tcp) = TcpStream::connect(server.addr).await {
            let _ = tcp.write_all(b"GET /read HTTP/1.1\r\nX-Slow: 1").await;
            stalled.push(tcp);
        }
    }
    // A real client still gets every answer, each long before the stalled
    // connections' header deadline would have freed anything.
    let request = format!(
        "GET /read HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    for i in 0..20 {
        let answer =
            tokio::time::timeout(Duration::from_secs(5), exchange(server.addr, &request)).await;
        let (code, body) = answer.unwrap_or_else(|_| {
            panic!("request {i} got no answer while slow clients held the server")
        });
        assert_eq!(code, 200, "request {i}: {body}");
        assert!(body.ends_with("hello"));
    }
    // Most stalled connections were closed to make room (at most the
    // pending cap of them can still be open).
    let mut open = 0;
    for tcp in stalled {
        if closed_within(tcp, Duration::from_millis(50))
            .await
            .is_none()
        {
            open += 1;
        }
    }
    assert!(open <= 32, "{open} stalled connections are still held");
}

/// A keep-alive connection busy with requests is never cut by the header
/// deadline, which bounds only how long one request's headers may take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_keep_alive_connection_outlives_the_header_deadline() {
    let server = start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut n = 0;
    let mut buf = vec![0u8; 4096];
    while started.elapsed() < Duration::from_millis(1500) {
        tcp.write_all(format!("GET /read HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"hello") {
            let k = tcp.read(&mut buf).await.unwrap();
            assert!(
                k > 0,
                "the connection was closed after {n} requests and {:?}",
                started.elapsed()
            );
            got.extend_from_slice(&buf[..k]);
        }
        n += 1;
    }
    assert!(n > 10, "{n}");
}
