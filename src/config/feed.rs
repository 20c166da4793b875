//! Feed settings: where the feed lives, how often and how patiently it is read, and the time
//! zone of its timestamps without offset.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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

/// The feed's settings as read.
pub(super) struct FeedSettings {
    pub feed: Option<FeedLocation>,
    pub cache_ttl: Duration,
    pub timeout: Duration,
    pub monitor_interval: Duration,
    pub feed_timezone: chrono_tz::Tz,
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
        feed,
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
        feed_timezone: tz.unwrap_or(chrono_tz::UTC),
    })
}
