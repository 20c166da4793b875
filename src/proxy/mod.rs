//! `rushes feed-proxy`: serves the upstream feed at `GET /feed` to clients holding a token.
//! Per-address and per-token rate limits (429 + `Retry-After`), a short shared cache with an ETag
//! (a burst of clients asks upstream once; an unchanged feed answers 304), a bounded upstream
//! request (timeout, size cap; failure = 502 `{"error": …}`), CORS only for listed origins, and a
//! JSON-lines audit log that names tokens, never shows them. The upstream URL is never shown to
//! clients nor logged with its query string.
//!
//! Middle floor: imports nothing from `feed`, `download` or `frameio`.

mod audit;
pub mod config;
pub mod tokens;
mod upstream;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use tokio::net::TcpListener;

use audit::{Audit, AuditLine, RefusedCount};
use tokio::sync::mpsc;
use upstream::{Served, Upstream, UpstreamError};

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

struct Shared {
    upstream: Upstream,
    tokens: TokenStore,
    per_token: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    cors_origins: Vec<String>,
    ttl: Duration,
    audit: Audit,
}

/// A bound, not yet running, feed proxy.
pub struct FeedProxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    audit_rx: mpsc::Receiver<String>,
    audit_file: tokio::fs::File,
    audit_path: std::path::PathBuf,
    audit_max_bytes: u64,
    refused: RefusedCount,
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
        let refused = RefusedCount::default();
        let shared = Arc::new(Shared {
            upstream: Upstream::new(
                client,
                config.upstream.clone(),
                config.upstream_timeout,
                config.max_bytes,
                config.cache_ttl,
                config.max_stale,
            ),
            tokens,
            per_token: RateLimiter::keyed(per_minute(config.rate_per_token)),
            per_client: RateLimiter::keyed(per_minute(config.rate_per_client)),
            cors_origins: config.cors_origins.clone(),
            ttl: config.cache_ttl,
            audit: Audit::new(audit, refused.clone()),
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
            audit_path: config.audit_log.clone(),
            audit_max_bytes: config.audit_max_bytes,
            refused,
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
            audit_path,
            audit_max_bytes,
            refused,
        } = self;
        let watcher = tokio::spawn(watch_tokens(shared.tokens.clone()));
        let writer = tokio::spawn(audit::write(
            audit_rx,
            audit_file,
            audit_path,
            audit_max_bytes,
            refused,
        ));
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
    shared.audit.record(&line).await;
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
    let (feed, served) = match shared.upstream.feed(arrived).await {
        Ok(pair) => pair,
        Err(UpstreamError(message)) => return json_error(StatusCode::BAD_GATEWAY, &message),
    };
    let stale = match served {
        Served::Fresh(latency) => {
            *upstream_ms = latency.map(|l| l.as_millis());
            None
        }
        Served::Stale(UpstreamError(why)) => Some(why),
    };
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
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
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
    if let Some(why) = stale {
        // The last good body, said to be stale: how old, and why upstream was not used.
        let age = feed.at.elapsed().as_secs();
        h.insert(header::AGE, HeaderValue::from(age));
        h.insert(
            header::WARNING,
            HeaderValue::from_static("111 - \"Revalidation Failed\""),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("age={age}s; {why}")) {
            h.insert(STALE_HEADER, v);
        }
    }
    response
}

/// Set on a last good body served because upstream failed: its age and why.
pub const STALE_HEADER: &str = "x-feed-proxy-stale";

/// `rushes feed-proxy`: loads the configuration, serves until `shutdown`.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    FeedProxy::bind(config).await?.run_until(shutdown).await
}
