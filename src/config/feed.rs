//! Feed settings: where the feed lives, how often and how patiently it is read, and the time
//! zone of its timestamps without offset.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env, Overrides};

/// Where the delivery feed lives: an http(s) URL or a local JSON file.
#[derive(Clone, PartialEq, Eq)]
pub enum FeedLocation {
    Http(Url),
    File(PathBuf),
}

impl FeedLocation {
    /// Parses `WEBHOOK_JSON_URL`: http, https, file:// or a plain path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("empty value".into());
        }
        if let Some(scheme_end) = raw.find("://") {
            let scheme = raw[..scheme_end].to_ascii_lowercase();
            let url = Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
            return match scheme.as_str() {
                "http" | "https" => {
                    if url.host_str().is_none_or(str::is_empty) {
                        Err("the URL has no host".into())
                    } else {
                        Ok(Self::Http(url))
                    }
                }
                "file" => url
                    .to_file_path()
                    .map(Self::File)
                    .map_err(|()| "not a usable file:// URL".into()),
                other => Err(format!(
                    "unsupported scheme {other:?} (use http, https, file:// or a path)"
                )),
            };
        }
        Ok(Self::File(PathBuf::from(raw)))
    }

    /// What may be shown or logged: scheme, host and path, never the query string (it may hold a token).
    pub fn redacted(&self) -> String {
        match self {
            Self::Http(url) => crate::net::redact(url),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// Host shown on the dashboard (or "local file").
    pub fn host(&self) -> String {
        match self {
            Self::Http(url) => url.host_str().unwrap_or("").to_string(),
            Self::File(_) => "local file".into(),
        }
    }
}

// Debug must not leak the query string either.
impl fmt::Debug for FeedLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedLocation({})", self.redacted())
    }
}

impl fmt::Display for FeedLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The feed's settings.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// `WEBHOOK_JSON_URL`; `None`: no feed (Frame.io only).
    pub location: Option<FeedLocation>,
    /// `WEBHOOK_CACHE_TTL`: a successful fetch stays fresh this long.
    pub cache_ttl: Duration,
    /// `WEBHOOK_TIMEOUT`: per request.
    pub timeout: Duration,
    /// `WEBHOOK_MONITOR_INTERVAL`: between polls.
    pub monitor_interval: Duration,
    /// `FEED_TIMEZONE`: the zone of timestamps without an offset.
    pub timezone: chrono_tz::Tz,
    /// `WEBHOOK_AUTH_TOKEN`: sent to the feed as `Authorization: Bearer` (rushes feed-proxy).
    pub auth_token: Option<SecretString>,
}

impl FeedSettings {
    /// A feed at `location`, read at every poll (no cache), polled every 15 s.
    pub fn at(location: Option<FeedLocation>) -> Self {
        Self {
            location,
            cache_ttl: Duration::ZERO,
            timeout: Duration::from_secs(10),
            monitor_interval: Duration::from_secs(15),
            timezone: chrono_tz::UTC,
            auth_token: None,
        }
    }
}

pub(super) fn read(env: &Env<'_>, o: &Overrides) -> Result<FeedSettings, ConfigError> {
    let feed = match env.pick(&o.feed_url, "WEBHOOK_JSON_URL") {
        Some(raw) => Some(
            FeedLocation::parse(&raw).map_err(|reason| ConfigError::Invalid {
                var: "WEBHOOK_JSON_URL",
                // Never echo a query string back: it may hold a token.
                value: raw.split('?').next().unwrap_or("").to_string(),
                reason,
            })?,
        ),
        None => None,
    };
    let tz = Env::parse("FEED_TIMEZONE", env.get("FEED_TIMEZONE"), |raw| {
        raw.parse::<chrono_tz::Tz>()
            .map_err(|_| "expected an IANA time zone name such as Europe/Paris".to_string())
    })?;
    Ok(FeedSettings {
        location: feed,
        auth_token: env.secret("WEBHOOK_AUTH_TOKEN"),
        cache_ttl: Env::seconds(
            "WEBHOOK_CACHE_TTL",
            env.pick(&o.cache_ttl, "WEBHOOK_CACHE_TTL"),
            300,
            true,
        )?,
        timeout: Env::seconds(
            "WEBHOOK_TIMEOUT",
            env.pick(&o.timeout, "WEBHOOK_TIMEOUT"),
            30,
            false,
        )?,
        monitor_interval: Env::seconds(
            "WEBHOOK_MONITOR_INTERVAL",
            env.pick(&o.monitor_interval, "WEBHOOK_MONITOR_INTERVAL"),
            15,
            false,
        )?,
        timezone: tz.unwrap_or(chrono_tz::UTC),
    })
}
