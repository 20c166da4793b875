//! `rushes feed-proxy` settings, from the environment (and `.env`). A mistake names the variable.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::config::{ConfigError, Env};

/// Everything the proxy needs.
#[derive(Clone)]
pub struct ProxyConfig {
    /// `FEED_PROXY_UPSTREAM`: never shown to clients nor logged with its query string.
    pub upstream: Url,
    /// `FEED_PROXY_BIND`, default 127.0.0.1:5080.
    pub bind: SocketAddr,
    /// `FEED_PROXY_TOKENS_FILE`: one `name:token` a line.
    pub tokens_file: PathBuf,
    /// `FEED_PROXY_CACHE_TTL` seconds (default 10; 0 = every request asks upstream).
    pub cache_ttl: Duration,
    /// `FEED_PROXY_CORS_ORIGINS`: origins allowed to read the feed from a browser (none by default).
    pub cors_origins: Vec<String>,
    /// `FEED_PROXY_TIMEOUT` seconds for the whole upstream request (default 30).
    pub upstream_timeout: Duration,
    /// `FEED_PROXY_MAX_BYTES`: largest upstream body accepted (default 32 MiB).
    pub max_bytes: usize,
    /// `FEED_PROXY_RATE_PER_TOKEN`: requests per minute per token (default 60).
    pub rate_per_token: NonZeroU32,
    /// `FEED_PROXY_RATE_PER_CLIENT`: requests per minute per client address (default 120).
    pub rate_per_client: NonZeroU32,
    /// `FEED_PROXY_AUDIT_LOG`: JSON-lines audit file (default `$RUSHES_LOG_DIR/feed-proxy-audit.jsonl`).
    pub audit_log: PathBuf,
    /// `FEED_PROXY_AUDIT_MAX_BYTES`: the audit log is rotated past this size (default 10 MiB).
    pub audit_max_bytes: u64,
    /// `FEED_PROXY_MAX_STALE` seconds: how old the last good body may be to be served (marked
    /// stale) when upstream fails (default 300; 0 = never).
    pub max_stale: Duration,
    pub log_dir: PathBuf,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("upstream", &shown_upstream(&self.upstream))
            .field("bind", &self.bind)
            .field("tokens_file", &self.tokens_file)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// The upstream as it may be logged: scheme, host, port and path, never the query.
pub fn shown_upstream(url: &Url) -> String {
    crate::net::redact(url)
}

impl ProxyConfig {
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let raw = get("FEED_PROXY_UPSTREAM").ok_or_else(|| ConfigError::Missing {
            var: "FEED_PROXY_UPSTREAM",
            hint: "set it to the URL of the feed the proxy serves (http or https)".into(),
        })?;
        let upstream = Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| ConfigError::Invalid {
                var: "FEED_PROXY_UPSTREAM",
                value: raw.split('?').next().unwrap_or("").to_string(),
                reason: "expected an absolute http or https URL".into(),
            })?;
        let bind_raw = get("FEED_PROXY_BIND").unwrap_or_else(|| "127.0.0.1:5080".into());
        let bind = bind_raw.trim().parse().map_err(|e| ConfigError::Invalid {
            var: "FEED_PROXY_BIND",
            value: bind_raw.clone(),
            reason: format!("expected IP:PORT such as 127.0.0.1:5080 ({e})"),
        })?;
        let tokens_file = PathBuf::from(get("FEED_PROXY_TOKENS_FILE").ok_or_else(|| {
            ConfigError::Missing {
                var: "FEED_PROXY_TOKENS_FILE",
                hint: "set it to a file of `name:token` lines; clients send Authorization: Bearer <token>".into(),
            }
        })?);
        let cache_ttl = Env::seconds(
            "FEED_PROXY_CACHE_TTL",
            get("FEED_PROXY_CACHE_TTL"),
            10,
            true,
        )?;
        let upstream_timeout =
            Env::seconds("FEED_PROXY_TIMEOUT", get("FEED_PROXY_TIMEOUT"), 30, false)?;
        let number = |var: &'static str, default: u32| -> Result<NonZeroU32, ConfigError> {
            match get(var) {
                None => Ok(NonZeroU32::new(default).unwrap_or(NonZeroU32::MIN)),
                Some(raw) => raw
                    .trim()
                    .parse::<NonZeroU32>()
                    .map_err(|_| ConfigError::Invalid {
                        var,
                        value: raw.clone(),
                        reason: "expected a whole number of at least 1".into(),
                    }),
            }
        };
        let rate_per_token = number("FEED_PROXY_RATE_PER_TOKEN", 60)?;
        let rate_per_client = number("FEED_PROXY_RATE_PER_CLIENT", 120)?;
        let max_bytes = usize::try_from(number("FEED_PROXY_MAX_BYTES", 32 * 1024 * 1024)?.get())
            .unwrap_or(usize::MAX);
        let cors_origins = get("FEED_PROXY_CORS_ORIGINS")
            .unwrap_or_default()
            .split([',', ' '])
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| *o == "*" || !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::Invalid {
                var: "FEED_PROXY_CORS_ORIGINS",
                value: bad.clone(),
                reason: "expected origins such as https://app.example.com (no `*`)".into(),
            });
        }
        let log_dir = PathBuf::from(get("RUSHES_LOG_DIR").unwrap_or_else(|| "./logs".into()));
        let audit_log = get("FEED_PROXY_AUDIT_LOG")
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dir.join("feed-proxy-audit.jsonl"));
        Ok(Self {
            upstream,
            bind,
            tokens_file,
            cache_ttl,
            cors_origins,
            upstream_timeout,
            max_bytes,
            rate_per_token,
            rate_per_client,
            audit_log,
            audit_max_bytes: u64::from(
                number("FEED_PROXY_AUDIT_MAX_BYTES", 10 * 1024 * 1024)?.get(),
            ),
            max_stale: Env::seconds(
                "FEED_PROXY_MAX_STALE",
                get("FEED_PROXY_MAX_STALE"),
                300,
                true,
            )?,
            log_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<ProxyConfig, ConfigError> {
        ProxyConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_mistakes() {
        let base = [
            ("FEED_PROXY_UPSTREAM", "https://feed.example/api?key=s3cret"),
            ("FEED_PROXY_TOKENS_FILE", "/tmp/tokens"),
        ];
        let c = load(&base).ok();
        assert_eq!(
            c.as_ref().map(|c| c.bind.to_string()),
            Some("127.0.0.1:5080".into())
        );
        assert!(c.as_ref().is_some_and(|c| c.cors_origins.is_empty()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        for (var, value) in [
            ("FEED_PROXY_UPSTREAM", "ftp://x/y"),
            ("FEED_PROXY_BIND", "localhost"),
            ("FEED_PROXY_CACHE_TTL", "soon"),
            ("FEED_PROXY_CORS_ORIGINS", "*"),
            ("FEED_PROXY_RATE_PER_TOKEN", "0"),
        ] {
            let mut vars = base.to_vec();
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = load(&vars).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let err = load(&base[..1])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("FEED_PROXY_TOKENS_FILE"), "{err}");
    }
}
