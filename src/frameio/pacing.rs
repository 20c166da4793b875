//! Pacing calls to Frame.io: the leaky bucket its answers report, `x-ratelimit-reset`, and a
//! little jitter so that clients told to wait the same time do not come back together.

use std::time::{Duration, Instant};

/// Longest pause `x-ratelimit-remaining: 0` can impose before the next request.
pub(super) const MAX_RATE_WAIT: Duration = Duration::from_secs(120);

/// Frame.io reports its leaky bucket on every answer: `x-ratelimit-limit` requests per
/// `x-ratelimit-window` milliseconds, `x-ratelimit-remaining` left. When a tenth or less is
/// left, the next call waits one refill interval (window / limit), so calls slow down to the
/// refill pace instead of running into 429s. The guide documents neither `Retry-After` nor
/// `x-ratelimit-reset`: these headers are all there is.
pub fn pace(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let limit = number("x-ratelimit-limit").filter(|l| *l >= 1.0)?;
    let window_ms = number("x-ratelimit-window").filter(|w| *w > 0.0)?;
    let remaining = number("x-ratelimit-remaining")?;
    if remaining > (limit / 10.0).max(1.0) {
        return None;
    }
    let per_call = Duration::from_secs_f64(window_ms / 1000.0 / limit);
    Some(per_call.min(MAX_RATE_WAIT))
}

/// A wait stretched by up to a quarter at random, so that two clients told to wait the same
/// time do not come back together.
pub(super) fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + rand::random::<f64>() * 0.25)
}

/// `x-ratelimit-reset`: a Unix time when large, else seconds to wait.
fn reset_wait(raw: &str) -> Option<Duration> {
    let v = raw
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    if v > 1_000_000_000.0 {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        Some(Duration::from_secs_f64((v - now).clamp(0.0, 86_400.0)))
    } else {
        Some(Duration::from_secs_f64(v.min(86_400.0)))
    }
}

/// When an answer says the budget is spent (`x-ratelimit-remaining: 0`), the instant it resets.
pub(super) fn exhausted_until(headers: &reqwest::header::HeaderMap) -> Option<Instant> {
    let remaining = headers
        .get("x-ratelimit-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    if remaining > 0.0 {
        return None;
    }
    let wait = reset_wait(headers.get("x-ratelimit-reset")?.to_str().ok()?.trim())?;
    Some(Instant::now() + wait.min(MAX_RATE_WAIT))
}
