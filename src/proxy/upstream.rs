//! The proxy's upstream: one refresh at a time shared by everyone waiting, its answer (or its
//! failure) shared with them too, a short cache, and the last good body served for a while
//! when upstream fails, marked stale. Only a JSON body is cached and served.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::config::shown_upstream;

/// One upstream answer, as served to clients.
pub(super) struct Cached {
    pub body: Bytes,
    /// Our ETag: a digest of the body.
    pub etag: String,
    /// The upstream's validator, for a conditional refresh.
    upstream_etag: Option<HeaderValue>,
    pub at: Instant,
}

/// What a client is told when the upstream fails (never its URL or body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UpstreamError(pub String);

/// A failed refresh, shared with the requests that waited for it.
struct Failure {
    ended: Instant,
    error: UpstreamError,
}

/// Where a served body comes from.
pub(super) enum Served {
    /// Fresh from the cache (`None`) or from upstream (its latency).
    Fresh(Option<Duration>),
    /// Upstream failed: the last good body, with why.
    Stale(UpstreamError),
}

pub(super) struct Upstream {
    pub client: reqwest::Client,
    pub url: url::Url,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub ttl: Duration,
    /// How old a last good body may be to be served when upstream fails.
    pub max_stale: Duration,
    pub cache: RwLock<Option<std::sync::Arc<Cached>>>,
    last_failure: RwLock<Option<Failure>>,
    /// One refresh at a time: a burst waits for it and shares its answer.
    refresh: tokio::sync::Mutex<()>,
}

type Answer = Result<(std::sync::Arc<Cached>, Served), UpstreamError>;

impl Upstream {
    pub fn new(
        client: reqwest::Client,
        url: url::Url,
        timeout: Duration,
        max_bytes: usize,
        ttl: Duration,
        max_stale: Duration,
    ) -> Self {
        Self {
            client,
            url,
            timeout,
            max_bytes,
            ttl,
            max_stale,
            cache: RwLock::new(None),
            last_failure: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<std::sync::Arc<Cached>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn cached_since(&self, arrived: Instant) -> Option<std::sync::Arc<Cached>> {
        self.cached()
            .filter(|c| c.at >= arrived || c.at.elapsed() < self.ttl)
    }

    /// A failure that ended after `arrived`: this request waited through it.
    fn failed_since(&self, arrived: Instant) -> Option<UpstreamError> {
        let failure = self.last_failure.read().unwrap_or_else(|e| e.into_inner());
        failure
            .as_ref()
            .filter(|f| f.ended >= arrived)
            .map(|f| f.error.clone())
    }

    /// The feed: from the cache when fresh, else from upstream (once for everyone waiting);
    /// when upstream fails, the last good body if it is younger than `max_stale`.
    pub async fn feed(&self, arrived: Instant) -> Answer {
        if let Some(c) = self.cached_since(arrived) {
            return Ok((c, Served::Fresh(None)));
        }
        let _turn = self.refresh.lock().await;
        // Someone may have refreshed, or failed to, while this request waited its turn: their
        // answer is this request's too (a hanging upstream is waited for once, not once each).
        if let Some(c) = self.cached_since(arrived) {
            return Ok((c, Served::Fresh(None)));
        }
        if let Some(error) = self.failed_since(arrived) {
            return self.stale_or(error);
        }
        let previous = self.cached();
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
        match fetched {
            Ok(fresh) => {
                let fresh = std::sync::Arc::new(fresh);
                *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
                Ok((fresh, Served::Fresh(Some(latency))))
            }
            Err(error) => {
                *self.last_failure.write().unwrap_or_else(|e| e.into_inner()) = Some(Failure {
                    ended: Instant::now(),
                    error: error.clone(),
                });
                self.stale_or(error)
            }
        }
    }

    fn stale_or(&self, error: UpstreamError) -> Answer {
        match self.cached().filter(|c| c.at.elapsed() <= self.max_stale) {
            Some(c) => Ok((c, Served::Stale(error))),
            None => Err(error),
        }
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
        // A login page, an error page or a captive portal is not the feed: never cached, never
        // relayed (it is served as application/json, whatever upstream said).
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            tracing::warn!(upstream = %shown, bytes = body.len(), "feed-proxy: upstream answer is not JSON");
            return Err(UpstreamError(
                "the upstream feed's answer is not JSON".into(),
            ));
        }
        let digest = Sha256::digest(&body);
        Ok(Cached {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            body: Bytes::from(body),
            upstream_etag,
            at: Instant::now(),
        })
    }
}
