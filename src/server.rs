//! The accept loop of rushes' HTTP servers (the service and `feed-proxy`). `axum::serve` has no header-read timeout, no idle timeout and no connection
//! cap, so clients sending half a header could hold sockets until the descriptors ran out. Here:
//! - a request header must arrive within `header_timeout` (HTTP/1),
//! - a connection with no request running and no byte moving for `idle_timeout` is closed,
//! - at most `max_connections` are served; beyond that a small reserve answers only `/healthz`
//!   (anything else gets 503), and beyond the reserve a connection is closed at once. A reserve
//!   slot is held only by a client that says at once what it wants: its request line must
//!   arrive within [`RESERVE_LINE_WAIT`] (else it is closed), and only `GET /healthz` is served,
//!   once, so half-sent requests cannot sit on the reserve,
//! - on shutdown, connections finish their requests, then close.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ServerLimits;

/// How long a connection over the cap has to send its request line.
pub const RESERVE_LINE_WAIT: Duration = Duration::from_millis(500);

/// Connections served when the descriptor limit is unknown.
const FALLBACK_CAP: usize = 512;

/// Raises the soft open-file limit to the hard one (the common soft default of 1024 is what a
/// few hundred slow clients exhaust), and returns the soft limit now in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let before = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::info!(
                before = ?before,
                now = ?limit.current,
                "raised the open-file limit"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
                limit = getrlimit(Resource::Nofile);
            }
        }
    }
    limit.current
}

/// The connection cap for a descriptor limit: half of it for clients (the rest is for the
/// database, downloads, hooks and the reserve), within sane bounds.
pub fn connection_cap(limits: &ServerLimits, descriptors: Option<u64>) -> usize {
    if limits.max_connections > 0 {
        return limits.max_connections;
    }
    match descriptors {
        Some(n) => usize::try_from(n / 2)
            .unwrap_or(usize::MAX)
            .clamp(32, 16_384),
        None => FALLBACK_CAP,
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let general = Arc::new(Semaphore::new(max_connections.max(1)));
    let reserve = Arc::new(Semaphore::new(limits.healthz_reserve));
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off a little.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (permit, healthz_only) = match general.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    tracing::debug!(%peer, "connection cap reached: closed at once");
                    drop(stream);
                    continue;
                }
            },
        };
        let router = router.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            if healthz_only {
                reserve_connection(stream, peer, router, limits, stop).await;
            } else {
                connection(stream, peer, router, limits, false, stop).await;
            }
            drop(permit);
        });
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServerLimits,
    healthz_only: bool,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let running = Running::start(requests.clone());
        async move {
            let response = if healthz_only && request.uri().path() != "/healthz" {
                busy()
            } else {
                match router.oneshot(request.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            };
            drop(running);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(check_every) => {
                if activity.idle_for() >= limits.idle_timeout {
                    if closing {
                        break; // asked to close an idle period ago and still open: drop it
                    }
                    tracing::debug!(%peer, "idle connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    activity.touch();
                }
            }
        }
    }
}

/// A connection over the cap: served only when its request line, sent at once, asks for
/// `/healthz`; anything else gets a 503 written directly; a silent or slow client is closed.
async fn reserve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    match tokio::time::timeout(RESERVE_LINE_WAIT, request_line(&stream)).await {
        Ok(Some(line)) if is_healthz(&line) => {
            let limits = ServerLimits {
                header_timeout: limits.header_timeout.min(Duration::from_secs(1)),
                idle_timeout: limits.idle_timeout.min(Duration::from_secs(1)),
                ..limits
            };
            connection(stream, peer, router, limits, true, stop).await;
        }
        Ok(Some(_)) => {
            use tokio::io::AsyncWriteExt as _;
            let body = r#"{"error":"too many connections; only /healthz is answered"}"#;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = stream;
            let _ =
                tokio::time::timeout(RESERVE_LINE_WAIT, stream.write_all(answer.as_bytes())).await;
        }
        _ => tracing::debug!(%peer, "over the connection cap and no request line: closed"),
    }
}

/// The first line of the request, once it has arrived whole (`None`: closed or too long).
async fn request_line(stream: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 256];
    loop {
        stream.readable().await.ok()?;
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == b'\n') {
            return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        if n == buf.len() {
            return None;
        }
        // Part of the line is there: peeking again at once would see the same bytes.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_healthz(line: &str) -> bool {
    let mut parts = line.split_ascii_whitespace();
    matches!(parts.next(), Some("GET" | "HEAD"))
        && parts
            .next()
            .is_some_and(|path| path == "/healthz" || path.starts_with("/healthz?"))
}

fn busy() -> Response<Body> {
    let mut response = Response::new(Body::from(
        r#"{"error":"too many connections; only /healthz is answered"}"#,
    ));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

/// When a connection last moved a byte, and how many requests it is running.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Zero while a request runs (a slow handler is not an idle client).
    fn idle_for(&self) -> Duration {
        if self.running.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Counts a running request until dropped.
struct Running(Arc<Activity>);

impl Running {
    fn start(activity: Arc<Activity>) -> Self {
        activity.running.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A TCP stream that records when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
