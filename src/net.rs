//! HTTP habits shared by every component, in one place: the retry policy (exponential backoff
//! with jitter, and the server's own `Retry-After`), the client builder (every connection and
//! request has a timeout), URL redaction and error text without signed query strings.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How failures are retried: `attempts` tries in all; the wait before the second is about
/// `base_delay`, then doubles (with up to as much again of random jitter), capped at `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three tries, 0.5 s then 1 s (plus jitter): what the feed and downloads use.
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The waits between tries, in order (`attempts - 1` of them).
    pub fn backoff(&self) -> Backoff {
        Backoff(
            ExponentialBuilder::new()
                .with_min_delay(self.base_delay)
                .with_max_delay(self.max_delay.max(self.base_delay))
                .with_factor(2.0)
                .with_jitter()
                .with_max_times(self.attempts.saturating_sub(1) as usize)
                .build(),
        )
    }
}

/// The waits of one run of retries.
#[derive(Debug)]
pub struct Backoff(backon::ExponentialBackoff);

impl Backoff {
    /// The wait before the next try, at least what the server asked (`retry_after`); `None`
    /// when the tries are used up.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let wait = self.0.next()?;
        Some(retry_after.map_or(wait, |asked| asked.max(wait)))
    }

    /// Sleeps before the next try; `false` when the tries are used up or `cancel` fired.
    pub async fn wait(
        &mut self,
        retry_after: Option<Duration>,
        cancel: &CancellationToken,
    ) -> bool {
        let Some(wait) = self.next_wait(retry_after) else {
            return false;
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = cancel.cancelled() => false,
        }
    }
}

/// The wait a server asks for: `Retry-After` (seconds or an HTTP date), `retry-after-ms`, or
/// `x-ratelimit-reset` (seconds from now, or a Unix time). Bounded to one hour.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(3600);
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let asked = if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    } else if let Some(raw) = text("retry-after") {
        match raw.parse::<f64>() {
            Ok(secs) => Some(Duration::from_secs_f64(secs.max(0.0))),
            Err(_) => httpdate(raw),
        }
    } else if let Some(reset) = text("x-ratelimit-reset").and_then(|v| v.parse::<f64>().ok()) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // Large values are a Unix time, small ones a number of seconds.
        let secs = if reset > 1_000_000_000.0 {
            reset - now
        } else {
            reset
        };
        Some(Duration::from_secs_f64(secs.max(0.0)))
    } else {
        None
    };
    asked.map(|d| d.min(MAX))
}

fn httpdate(raw: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// Timeouts of a client. Every client has a connect timeout; `request` bounds a whole request
/// (API calls), `read` bounds the silence between two reads (large downloads).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Option<Duration>,
    pub read: Option<Duration>,
}

/// The one way rushes builds an HTTP client: rustls, its user agent, the given timeouts.
pub fn client(timeouts: Timeouts) -> reqwest::Result<reqwest::Client> {
    builder(timeouts).build()
}

/// The same for a service on this machine (a tunnel agent's local API): never through an
/// `HTTP_PROXY` the environment may set.
pub fn loopback_client(timeouts: Timeouts) -> reqwest::Result<reqwest::Client> {
    builder(timeouts).no_proxy().build()
}

/// The same, following a redirect (at most 10) only to a URL `allowed` accepts: a link
/// resolver's files come from the provider's own hosts, and a redirect cannot take the download
/// somewhere else (a service on this machine or the local network).
pub fn guarded_client(
    timeouts: Timeouts,
    allowed: impl Fn(&Url) -> bool + Send + Sync + 'static,
) -> reqwest::Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else if allowed(attempt.url()) {
            attempt.follow()
        } else {
            let refused = format!(
                "redirect to {} refused: not one of the provider's hosts",
                redact(attempt.url())
            );
            attempt.error(refused)
        }
    });
    builder(timeouts).redirect(policy).build()
}

fn builder(timeouts: Timeouts) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rushes/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect);
    if let Some(t) = timeouts.request {
        builder = builder.timeout(t);
    }
    if let Some(t) = timeouts.read {
        builder = builder.read_timeout(t);
    }
    builder
}

/// What may be shown or logged of a URL: scheme, host, port and path, never the query string
/// (signed links and feed tokens live there); `?…` says that one was there.
pub fn redact(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    shown
}

/// A reqwest error as text a person can act on, with its causes, without the URL (which may
/// carry a signed query string): "timeout: …", "cannot connect: …".
pub fn error_text(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    // reqwest's Display adds " for url (...)" when it has one; keep only what precedes it.
    let full = e.to_string();
    let mut message = format!("{kind}: {}", full.split(" for url (").next().unwrap_or(""));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_gives_attempts_minus_one_growing_waits() {
        let policy = RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        };
        let mut backoff = policy.backoff();
        let waits: Vec<Duration> = std::iter::from_fn(|| backoff.next_wait(None)).collect();
        assert_eq!(waits.len(), 3);
        // Each wait is at least the doubled base and at most twice that (jitter).
        for (i, w) in waits.iter().enumerate() {
            let floor = Duration::from_millis(100 << i);
            assert!(*w >= floor && *w <= floor * 2, "wait {i}: {w:?}");
        }
        let mut backoff = policy.backoff();
        assert_eq!(
            backoff.next_wait(Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            "retry-after",
            "3".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after-ms",
            "1500".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            "7".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "99999999".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn redaction_never_shows_a_query() -> Result<(), url::ParseError> {
        let url = Url::parse("https://Bucket.example.com:8443/a/b.mov?X-Amz-Signature=s3cret")?;
        assert_eq!(redact(&url), "https://bucket.example.com:8443/a/b.mov?…");
        Ok(())
    }
}
