//! `rushes feed-proxy`: serves the upstream feed at `GET /feed` to clients holding a token.
//! Per-address and per-token rate limits (429 + `Retry-After`), a short shared cache with an ETag
//! (a burst of clients asks upstream once; an unchanged feed answers 304), a bounded upstream
//! request (timeout, size cap; failure = 502 `{"error": …}`), CORS only for listed origins, and a
//! JSON-lines audit log that names tokens, never shows them. The upstream URL is never shown to
//! clients nor logged with its query string.
//!
//! Middle floor: imports nothing from `feed`, `download` or `frameio`.

pub mod config;
pub mod tokens;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use config::ProxyConfig;
use config::shown_upstream;
use tokens::{TokenStore, TokensError};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source} (set FEED_PROXY_BIND)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl ProxyError {
    /// Whether the user must change the configuration (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Bind { .. })
    }
}

/// One upstream answer, as served to clients.
struct Cached {
    body: Bytes,
    content_type: HeaderValue,
    /// Our ETag: a digest of the body.
    etag: String,
    /// The upstream's validator, for a conditional refresh.
    upstream_etag: Option<HeaderValue>,
    at: Instant,
}

struct Upstream {
    client: reqwest::Client,
    url: url::Url,
    timeout: Duration,
    max_bytes: usize,
    ttl: Duration,
    cache: RwLock<Option<Arc<Cached>>>,
    /// One refresh at a time: a burst waits for it and shares its answer.
    refresh: tokio::sync::Mutex<()>,
}

/// What a client is told when the upstream fails (never its URL or body).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UpstreamError(String);

impl Upstream {
    fn cached_since(&self, arrived: Instant) -> Option<Arc<Cached>> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .as_ref()
            .filter(|c| c.at >= arrived || c.at.elapsed() < self.ttl)
            .cloned()
    }

    /// The feed, from the cache when fresh; the latency when upstream was asked.
    async fn feed(
        &self,
        arrived: Instant,
    ) -> Result<(Arc<Cached>, Option<Duration>), UpstreamError> {
        if let Some(c) = self.cached_since(arrived) {
            return Ok((c, None));
        }
        let _turn = self.refresh.lock().await;
        // Someone may have refreshed while this request waited its turn.
        if let Some(c) = self.cached_since(arrived) {
            return Ok((c, None));
        }
        let previous = self.cache.read().unwrap_or_else(|e| e.into_inner()).clone();
        let started = Instant::now();
        let fetched = tokio::time::timeout(self.timeout, self.fetch(previous.as_deref()))
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError(format!(
                    "the upstream feed did not answer within {} s",
                    self.timeout.as_secs()
                )))
            });
        let latency = started.elapsed();
        let fresh = Arc::new(fetched?);
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
        Ok((fresh, Some(latency)))
    }

    async fn fetch(&self, previous: Option<&Cached>) -> Result<Cached, UpstreamError> {
        let shown = shown_upstream(&self.url);
        let mut request = self
            .client
            .get(self.url.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(etag) = previous.and_then(|p| p.upstream_etag.clone()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(upstream = %shown, error = %e.without_url(), "feed-proxy: upstream unreachable");
            UpstreamError("the upstream feed could not be reached".into())
        })?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && let Some(p) = previous
        {
            return Ok(Cached {
                body: p.body.clone(),
                content_type: p.content_type.clone(),
                etag: p.etag.clone(),
                upstream_etag: p.upstream_etag.clone(),
                at: Instant::now(),
            });
        }
        if !status.is_success() {
            tracing::warn!(upstream = %shown, %status, "feed-proxy: upstream failed");
            return Err(UpstreamError(format!(
                "the upstream feed answered HTTP {}",
                status.as_u16()
            )));
        }
        let too_large = || {
            tracing::warn!(upstream = %shown, limit = self.max_bytes, "feed-proxy: upstream body too large");
            UpstreamError(format!(
                "the upstream feed is larger than {} bytes",
                self.max_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|l| l > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        let upstream_etag = response.headers().get(header::ETAG).cloned();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::warn!(upstream = %shown, error = %e.without_url(), "feed-proxy: upstream body interrupted");
                UpstreamError("the upstream feed's answer was interrupted".into())
            })?;
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let digest = Sha256::digest(&body);
        Ok(Cached {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            body: Bytes::from(body),
            content_type,
            upstream_etag,
            at: Instant::now(),
        })
    }
}

/// One line of the audit log. Never holds a token.
#[derive(serde::Serialize)]
struct AuditLine<'a> {
    time: String,
    client: String,
    token: Option<&'a str>,
    method: &'a str,
    status: u16,
    bytes: usize,
    /// Milliseconds upstream took, when this request asked it (else served from the cache).
    upstream_ms: Option<u128>,
}

struct Shared {
    upstream: Upstream,
    tokens: TokenStore,
    per_token: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    cors_origins: Vec<String>,
    ttl: Duration,
    audit: mpsc::Sender<String>,
}

/// A bound, not yet running, feed proxy.
pub struct FeedProxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    audit_rx: mpsc::Receiver<String>,
    audit_file: tokio::fs::File,
}

fn per_minute(n: std::num::NonZeroU32) -> Quota {
    Quota::per_minute(n)
}

impl FeedProxy {
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        let tokens = TokenStore::open(&config.tokens_file).map_err(|e| {
            let value = config.tokens_file.display().to_string();
            crate::config::ConfigError::Invalid {
                var: "FEED_PROXY_TOKENS_FILE",
                value,
                reason: match e {
                    TokensError::Read { reason, .. } => reason,
                    other => other.to_string(),
                },
            }
        })?;
        if let Some(dir) = config
            .audit_log
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| ProxyError::Audit {
                path: config.audit_log.display().to_string(),
                source,
            })?;
        }
        let audit_file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.audit_log)
            .await
            .map_err(|source| ProxyError::Audit {
                path: config.audit_log.display().to_string(),
                source,
            })?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: config.bind,
                source,
            })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("rushes-feed-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.upstream_timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap_or_default();
        let (audit, audit_rx) = mpsc::channel(8192);
        let shared = Arc::new(Shared {
            upstream: Upstream {
                client,
                url: config.upstream.clone(),
                timeout: config.upstream_timeout,
                max_bytes: config.max_bytes,
                ttl: config.cache_ttl,
                cache: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            },
            tokens,
            per_token: RateLimiter::keyed(per_minute(config.rate_per_token)),
            per_client: RateLimiter::keyed(per_minute(config.rate_per_client)),
            cors_origins: config.cors_origins.clone(),
            ttl: config.cache_ttl,
            audit,
        });
        tracing::info!(
            upstream = %shown_upstream(&config.upstream),
            tokens = shared.tokens.current().len(),
            "feed-proxy ready"
        );
        Ok(Self {
            listener,
            shared,
            audit_rx,
            audit_file,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; the audit log is flushed before returning.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ProxyError> {
        let addr = self.local_addr().map_err(ProxyError::Serve)?;
        tracing::info!(%addr, "feed-proxy listening on http://{addr}/feed");
        let Self {
            listener,
            shared,
            audit_rx,
            audit_file,
        } = self;
        let watcher = tokio::spawn(watch_tokens(shared.tokens.clone()));
        let writer = tokio::spawn(write_audit(audit_rx, audit_file));
        let router = Router::new()
            .route("/feed", get(serve_feed).options(preflight))
            .fallback(not_found)
            .with_state(shared);
        let limits = crate::config::ServerLimits::default();
        let cap = crate::server::connection_cap(&limits, crate::server::raise_descriptor_limit());
        let served = crate::server::serve(listener, router, limits, cap, shutdown).await;
        watcher.abort();
        // The router (and every audit sender) is gone once serve returns: the writer drains.
        let _ = writer.await;
        served.map_err(ProxyError::Serve)
    }
}

async fn watch_tokens(tokens: TokenStore) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(tokens::WATCH_EVERY);
    loop {
        #[cfg(unix)]
        {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => tokens.reload_if_changed(),
                _ = hup => tokens.reload("SIGHUP"),
            }
        }
        #[cfg(not(unix))]
        {
            tick.tick().await;
            tokens.reload_if_changed();
        }
    }
}

async fn write_audit(mut rx: mpsc::Receiver<String>, file: tokio::fs::File) {
    let mut out = tokio::io::BufWriter::new(file);
    while let Some(line) = rx.recv().await {
        let mut ok = out.write_all(line.as_bytes()).await.is_ok();
        // Write what else is waiting, then flush once.
        while let Ok(more) = rx.try_recv() {
            ok &= out.write_all(more.as_bytes()).await.is_ok();
        }
        ok &= out.flush().await.is_ok();
        if !ok {
            tracing::error!("feed-proxy: cannot write the audit log");
        }
    }
    let _ = out.flush().await;
}

fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn limited(wait: Duration, what: &str) -> Response {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut response = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many requests {what}; try again in {secs} s"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// CORS headers for an allowed `Origin`; nothing for any other.
fn cors(shared: &Shared, headers: &HeaderMap, response: &mut Response) {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let out = response.headers_mut();
    out.append(header::VARY, HeaderValue::from_static("Origin"));
    if shared.cors_origins.iter().any(|o| o == origin)
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        out.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("ETag, Retry-After"),
        );
    }
}

async fn preflight(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    cors(&shared, request.headers(), &mut response);
    if response
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, If-None-Match"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not found; the feed is at GET /feed")
}

async fn serve_feed(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = Instant::now();
    let client = client_ip(&request);
    let headers = request.headers().clone();
    let method = request.method().clone();
    let mut token_name: Option<String> = None;
    let mut upstream_ms = None;
    drop(request);
    let mut response = answer(
        &shared,
        &headers,
        client,
        arrived,
        &mut token_name,
        &mut upstream_ms,
    )
    .await;
    cors(&shared, &headers, &mut response);
    let bytes = if method == Method::HEAD {
        0
    } else {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    };
    let line = AuditLine {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        client: client.to_string(),
        token: token_name.as_deref(),
        method: method.as_str(),
        status: response.status().as_u16(),
        bytes,
        upstream_ms,
    };
    if let Ok(mut text) = serde_json::to_string(&line) {
        text.push('\n');
        let _ = shared.audit.send(text).await;
    }
    response
}

async fn answer(
    shared: &Shared,
    headers: &HeaderMap,
    client: IpAddr,
    arrived: Instant,
    token_name: &mut Option<String>,
    upstream_ms: &mut Option<u128>,
) -> Response {
    let clock = governor::clock::Clock::now(shared.per_client.clock());
    if let Err(not_until) = shared.per_client.check_key(&client) {
        return limited(not_until.wait_time_from(clock), "from this address");
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let tokens = shared.tokens.current();
    let Some(name) = given.and_then(|g| tokens.name_of(g)) else {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "a valid token is required: send Authorization: Bearer <token>",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    *token_name = Some(name.to_string());
    let clock = governor::clock::Clock::now(shared.per_token.clock());
    if let Err(not_until) = shared.per_token.check_key(&name.to_string()) {
        return limited(not_until.wait_time_from(clock), "for this token");
    }
    let (feed, latency) = match shared.upstream.feed(arrived).await {
        Ok(pair) => pair,
        Err(UpstreamError(message)) => return json_error(StatusCode::BAD_GATEWAY, &message),
    };
    *upstream_ms = latency.map(|l| l.as_millis());
    let etag =
        HeaderValue::from_str(&feed.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let cache_control =
        HeaderValue::from_str(&format!("private, max-age={}", shared.ttl.as_secs()))
            .unwrap_or_else(|_| HeaderValue::from_static("private, no-cache"));
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let v = v.trim();
            v == "*" || v.trim_start_matches("W/") == feed.etag
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(feed.body.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, feed.content_type.clone());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(feed.body.len()));
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, cache_control);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `rushes feed-proxy`: loads the configuration, serves until `shutdown`.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    FeedProxy::bind(config).await?.run_until(shutdown).await
}
