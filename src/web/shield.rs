//! What stands between the network and the handlers, besides the token check in `access`:
//! - `Host` check: without a token only loopback names and `RUSHES_ALLOWED_HOSTS` are served, so a
//!   DNS-rebinding page (`Host: evil.example`) cannot read or drive the API (421);
//! - a per-client failure limit on the token (login form and bearer): after a burst of wrong
//!   guesses the client gets 429 with `Retry-After`, even with the right token, until it cools down;
//! - server-side sessions: the cookie is a random id, logout revokes it;
//! - browser hardening headers on every answer (CSP, frame refusal, nosniff, referrer policy).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng as _;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

/// Wrong guesses a client may make at once before it must wait.
pub const FAILURE_BURST: u32 = 10;
/// One more guess is allowed every this long.
pub const FAILURE_REFILL: Duration = Duration::from_secs(6);
/// How long a login session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 1000;
/// Clients remembered as blocked at most (expired ones are dropped first).
const MAX_BLOCKED: usize = 100_000;

/// The policy of the dashboard page. Scripts and stylesheets come only from `/static/`; the
/// progress bars' `style="width: …"` attributes are the one inline style allowed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub struct Shield {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// SHA-256 of each live session id -> its expiry.
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for Shield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shield")
    }
}

impl Default for Shield {
    fn default() -> Self {
        Self::new()
    }
}

impl Shield {
    pub fn new() -> Self {
        let burst = NonZeroU32::new(FAILURE_BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(FAILURE_REFILL)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// How long `client` must still wait, if it is blocked.
    pub fn blocked_for(&self, client: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = blocked.get(&client)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a wrong guess; returns the wait when this one exhausted the client's allowance.
    pub fn failed(&self, client: IpAddr) -> Option<Duration> {
        let wait = match self.failures.check_key(&client) {
            Ok(()) => return None,
            Err(not_until) => {
                not_until.wait_time_from(governor::clock::Clock::now(self.failures.clock()))
            }
        };
        let wait = wait.max(Duration::from_secs(1));
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            self.failures.retain_recent();
        }
        blocked.insert(client, Instant::now() + wait);
        Some(wait)
    }

    /// A new session; the returned id goes in the cookie, only its digest stays here.
    pub fn open_session(&self) -> String {
        let id: [u8; 32] = rand::rng().random();
        let id = hex::encode(id);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, expiry| *expiry > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(digest(&id), now + SESSION_TTL);
        id
    }

    pub fn session_valid(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(&digest(id))
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    pub fn close_session(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(&digest(id));
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The client's address (the TCP peer), or unspecified when unknown (in-process tests).
pub fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The 429 a blocked client gets.
pub fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("too many wrong tokens from this address; try again in {secs} s"),
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The host name of a `Host` value, without port, lower-cased (`[::1]:5000` -> `[::1]`).
pub fn host_name(raw: &str) -> String {
    let raw = raw.trim();
    let name = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(raw, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` (from [`host_name`]) is this machine's loopback.
pub fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" {
        return true;
    }
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn request_host(headers: &HeaderMap, request: &Request) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_string()))
}

/// Refuses requests for other host names when the API has no token (DNS rebinding).
pub async fn host_check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Signed webhooks arrive through tunnels under their public name; their signature protects them.
    if state.config.service.api_token.is_some() || request.uri().path().starts_with("/webhooks/") {
        return next.run(request).await;
    }
    let host = request_host(request.headers(), &request).map(|h| host_name(&h));
    let allowed = host.as_deref().is_some_and(|name| {
        is_loopback_name(name) || state.config.service.allowed_hosts.iter().any(|a| a == name)
    });
    if allowed {
        return next.run(request).await;
    }
    tracing::warn!(
        host = host.as_deref().unwrap_or("(none)"),
        "refused a request for another host name (set RUSHES_ALLOWED_HOSTS or RUSHES_API_TOKEN)"
    );
    ApiError::Status {
        status: StatusCode::MISDIRECTED_REQUEST,
        message: "this rushes answers only to loopback host names without RUSHES_API_TOKEN; \
                  list other names in RUSHES_ALLOWED_HOSTS"
            .into(),
    }
    .into_response()
}

/// Hardening headers on every answer; the CSP on HTML pages.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_name("LocalHost"), "localhost");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("evil.example:5000"), "evil.example");
        for ok in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }

    #[test]
    fn failures_block_after_the_burst() {
        let shield = Shield::new();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let blocked_at = (1..=FAILURE_BURST + 1).find(|_| shield.failed(ip).is_some());
        assert_eq!(blocked_at, Some(FAILURE_BURST + 1));
        assert!(shield.blocked_for(ip).is_some());
        assert!(
            shield
                .blocked_for(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .is_none()
        );
    }

    #[test]
    fn sessions_are_revocable() {
        let shield = Shield::new();
        let id = shield.open_session();
        assert!(shield.session_valid(&id));
        assert!(!shield.session_valid("forged"));
        shield.close_session(&id);
        assert!(!shield.session_valid(&id));
    }
}
