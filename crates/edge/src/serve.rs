//! Serving a router on a TCP listener so that no single caller can take the
//! listener down: a deadline for a connection's first request and for every
//! request's headers, a cap on connections, and eviction of the oldest
//! connection that has not yet sent a request when too many sit idle.
//!
//! `axum::serve` has none of these: hyper's header timeout needs a timer
//! axum does not give it, and a connection that never sends a byte is held
//! forever, so a thousand silent connections exhaust the descriptors and
//! the listener stops accepting.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::HostPolicy;
use crate::access::{Access, Admit};

/// How one listener is served.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Which `Host`s and `Origin`s it answers to.
    pub hosts: Arc<HostPolicy>,
    /// Which credentials it asks for.
    pub access: Access,
    /// With this, connections that open with a TLS handshake are served
    /// over TLS, on the same port as plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A connection must send its first request's headers within this, and
    /// every later request's headers within this once they begin.
    pub header_read_timeout: Duration,
    /// Connections held at once; more are refused (closed at once) unless
    /// an idle one can be evicted for them.
    pub max_connections: usize,
    /// Connections held at once that have not sent a whole request yet;
    /// past this the oldest of them is closed for each new one.
    pub max_pending: usize,
}

impl ServeConfig {
    /// Defaults sized from the process's descriptor limit (raised to its
    /// hard limit first): half of the descriptors for connections, the rest
    /// for the store, logs, artifacts and workloads' pipes.
    pub fn new(hosts: HostPolicy, access: Access) -> Self {
        let descriptors = raise_descriptor_limit();
        let max_connections = usize::try_from(descriptors / 2)
            .unwrap_or(usize::MAX)
            .clamp(64, 16_384);
        Self {
            hosts: Arc::new(hosts),
            access,
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            max_connections,
            max_pending: (max_connections / 4).clamp(16, 1024),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit once per process and
/// returns the soft limit in force.
fn raise_descriptor_limit() -> u64 {
    static RAISE: Once = Once::new();
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    RAISE.call_once(|| {
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
            && soft < hard
            && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        {
            debug!(error = %e, "Could not raise the descriptor limit.");
        }
    });
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Connections accepted but without a request yet, oldest first.
#[derive(Default)]
struct Pending {
    next: AtomicU64,
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Pending {
    fn add(&self, max: usize) -> (u64, CancellationToken) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.insert(seq, token.clone());
        while waiting.len() > max {
            if let Some((_, oldest)) = waiting.pop_first() {
                oldest.cancel();
            }
        }
        (seq, token)
    }

    fn remove(&self, seq: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
    }

    /// Closes the oldest waiting connection; false when none waits.
    fn evict_oldest(&self) -> bool {
        let oldest = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_first();
        match oldest {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` behind the Host/Origin check until `shutdown`
/// completes; then stops accepting, lets requests in flight finish and
/// returns.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    // The Host/Origin check and authentication run in the per-connection
    // service below, in front of the router (the same checks as `protect`,
    // without a middleware layer's boxing on the hot path).
    let hosts = config.hosts.clone();
    let access = config.access.clone();
    if matches!(access, Access::Open) {
        let bound = listener.local_addr()?;
        if !bound.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to serve {bound} without authentication: only a loopback address may be served with `--auth none`"
                ),
            ));
        }
    }
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let pending = Arc::new(Pending::default());
    let tracker = TaskTracker::new();
    let stopping = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or memory: back off briefly instead of
                // spinning; the connections' own deadlines free them.
                warn!(error = %e, "Accepting a connection failed.");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) if pending.evict_oldest() => {
                // The evicted connection gives its slot back as it closes.
                match tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(slot)) => slot,
                    _ => continue,
                }
            }
            Err(_) => {
                warn!(%peer, limit = config.max_connections, "Connection refused: every connection slot is taken by a request in progress.");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (seq, evicted) = pending.add(config.max_pending);
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let app = app.clone();
            let hosts = hosts.clone();
            let access = access.clone();
            let started = started.clone();
            let pending = pending.clone();
            tower::service_fn(move |request: Request<Incoming>| {
                if !started.swap(true, Ordering::AcqRel) {
                    pending.remove(seq);
                }
                let mut request = request.map(Body::new);
                let admit = match crate::guard::screen(&hosts, &request) {
                    Some(refused) => Admit::Refuse(refused),
                    None => match &access {
                        Access::Open => Admit::Caller(oxflow_auth::Caller::owner()),
                        Access::Token(gate) => gate.admit(&request),
                    },
                };
                let app = app.clone();
                let access = access.clone();
                async move {
                    match admit {
                        Admit::Refuse(response) => Ok(response),
                        Admit::Caller(caller) => {
                            request.extensions_mut().insert(caller);
                            app.oneshot(request).await
                        }
                        Admit::Login => match &access {
                            Access::Token(gate) => Ok(gate.login(request).await),
                            Access::Open => app.oneshot(request).await,
                        },
                    }
                }
            })
        };
        let header_read_timeout = config.header_read_timeout;
        let stopping = stopping.clone();
        let pending = pending.clone();
        let tls = config.tls.clone();
        tracker.spawn(async move {
            let _slot = slot;
            // TLS or plain, told by the first byte, within the deadline for
            // a first request (and closed if evicted meanwhile).
            let io = match tls {
                None => Either::Left(tcp),
                Some(tls) => {
                    let opened = async {
                        let mut first = [0u8; 1];
                        match tcp.peek(&mut first).await {
                            Ok(1) if first[0] == 0x16 => {
                                match tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await {
                                    Ok(stream) => Some(Either::Right(stream)),
                                    Err(e) => {
                                        debug!(%peer, error = %e, "TLS handshake failed.");
                                        None
                                    }
                                }
                            }
                            Ok(1) => Some(Either::Left(tcp)),
                            _ => None,
                        }
                    };
                    let opened = tokio::select! {
                        r = tokio::time::timeout(header_read_timeout, opened) => r.ok().flatten(),
                        () = evicted.cancelled() => None,
                    };
                    match opened {
                        Some(io) => io,
                        None => {
                            pending.remove(seq);
                            return;
                        }
                    }
                }
            };
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            tokio::pin!(connection);
            let first_request_deadline = tokio::time::sleep(header_read_timeout);
            tokio::pin!(first_request_deadline);
            let mut draining = false;
            // `select!` evaluates a branch's condition once per entry, and
            // the connection future keeps this select entered for the
            // connection's whole life: so the deadline branch stays armed
            // and checks, when it fires, whether a request came in time.
            let mut deadline_passed = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            debug!(%peer, error = %e, "Connection ended with an error.");
                        }
                        break;
                    }
                    () = evicted.cancelled() => {
                        debug!(%peer, "Closed an idle connection to make room for a new one.");
                        break;
                    }
                    () = &mut first_request_deadline, if !deadline_passed => {
                        if started.load(Ordering::Acquire) {
                            // It did: the deadline is done with.
                            deadline_passed = true;
                            continue;
                        }
                        debug!(%peer, "Closed a connection that sent no request in time.");
                        break;
                    }
                    () = stopping.cancelled(), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            pending.remove(seq);
        });
    }
    tracker.close();
    stopping.cancel();
    tracker.wait().await;
    Ok(())
}
