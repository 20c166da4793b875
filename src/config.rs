//! Configuration: environment variables (also read from `.env`), overridden by CLI flags,
//! validated once into typed values. A mistake names the variable and stops start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// A configuration mistake. `main` turns it into exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing { var: &'static str, hint: String },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

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
            Self::Http(url) => {
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

/// Values given on the command line; each one wins over its environment variable.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Feed URL (http, https, file:// or a path) [env: WEBHOOK_JSON_URL]
    #[arg(long, value_name = "URL")]
    pub feed_url: Option<String>,
    /// Seconds a successful fetch stays fresh; 0 = always fetch [env: WEBHOOK_CACHE_TTL, default 300]
    #[arg(long, value_name = "SECONDS")]
    pub cache_ttl: Option<String>,
    /// Per-request timeout in seconds [env: WEBHOOK_TIMEOUT, default 30]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// Seconds between feed checks [env: WEBHOOK_MONITOR_INTERVAL, default 15]
    #[arg(long, value_name = "SECONDS")]
    pub monitor_interval: Option<String>,
    /// Address of the HTTP server [env: RUSHES_BIND, default 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Folder of the SQLite database [env: RUSHES_DATA_DIR, default ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Folder downloads land in [env: LOCAL_DOWNLOADS_DIR, default ./downloads]
    #[arg(long, value_name = "DIR")]
    pub downloads_dir: Option<String>,
    /// Folder of app.log [env: RUSHES_LOG_DIR, default ./logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<String>,
    /// Downloads running at once, 0 = paused [env: DOWNLOAD_CONCURRENCY, default 3]
    #[arg(long, value_name = "N")]
    pub download_concurrency: Option<String>,
    /// Record automatic deliveries as dry_run without fetching them [env: DRY_RUN_DOWNLOADS=1]
    #[arg(long)]
    pub dry_run_downloads: bool,
}

/// `ON_DOWNLOAD_COMPLETE`: a program and its arguments, split into words like a shell would
/// (quotes, backslashes) but never run through one, so feed data cannot be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    pub program: String,
    pub args: Vec<String>,
}

impl HookCommand {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err("unclosed single quote".into()),
                        }
                    }
                }
                '"' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c) => word.push(c),
                                None => return Err("unclosed double quote".into()),
                            },
                            Some(c) => word.push(c),
                            None => return Err("unclosed double quote".into()),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    if let Some(c) = chars.next() {
                        word.push(c);
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        let mut words = words.into_iter();
        let program = words.next().ok_or("empty command")?;
        Ok(Self {
            program,
            args: words.collect(),
        })
    }
}

/// Limits of the HTTP server: every connection is bounded in time and in number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; 0 = derived from the descriptor limit at start.
    pub max_connections: usize,
    /// Extra connections kept for `/healthz` once the cap is reached.
    pub healthz_reserve: usize,
    /// A request header must arrive within this time.
    pub header_timeout: Duration,
    /// A connection with no request running and no byte moving for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 0,
            healthz_reserve: 8,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub feed: Option<FeedLocation>,
    pub cache_ttl: Duration,
    pub timeout: Duration,
    pub monitor_interval: Duration,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub downloads_dir: PathBuf,
    pub log_dir: PathBuf,
    pub feed_timezone: chrono_tz::Tz,
    /// `RUSHES_API_TOKEN`: required when `bind` is not loopback; then the API and the page need it.
    pub api_token: Option<SecretString>,
    /// `FRAMEIO_*`; all optional.
    pub frameio: crate::frameio::FrameioConfig,
    pub download_concurrency: usize,
    pub dry_run_downloads: bool,
    pub on_download_complete: Option<HookCommand>,
    /// `ON_DOWNLOAD_COMPLETE_ENV`: names of further variables the hook may see.
    pub hook_env: Vec<String>,
    /// `RUSHES_ALLOWED_HOSTS`: `Host` names accepted besides loopback when there is no token.
    pub allowed_hosts: Vec<String>,
    pub server: ServerLimits,
    /// `WEBHOOK_AUTH_TOKEN`: sent to the feed as `Authorization: Bearer` (rushes feed-proxy).
    pub feed_auth_token: Option<SecretString>,
}

impl Config {
    /// Reads the process environment (after `.env` was loaded) and applies `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::from_lookup(overrides, |name| std::env::var(name).ok())
    }

    /// Same as [`Config::load`] with an injectable environment, for tests.
    pub fn from_lookup(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let pick = |flag: &Option<String>, var: &str| -> Option<String> {
            flag.clone()
                .or_else(|| env(var))
                .filter(|v| !v.trim().is_empty())
        };

        let feed = match pick(&overrides.feed_url, "WEBHOOK_JSON_URL") {
            Some(raw) => Some(FeedLocation::parse(&raw).map_err(|reason| {
                ConfigError::Invalid {
                    var: "WEBHOOK_JSON_URL",
                    // Never echo a query string back: it may hold a token.
                    value: raw.split('?').next().unwrap_or("").to_string(),
                    reason,
                }
            })?),
            None => None,
        };
        let cache_ttl = seconds(
            "WEBHOOK_CACHE_TTL",
            pick(&overrides.cache_ttl, "WEBHOOK_CACHE_TTL"),
            300,
            true,
        )?;
        let timeout = seconds(
            "WEBHOOK_TIMEOUT",
            pick(&overrides.timeout, "WEBHOOK_TIMEOUT"),
            30,
            false,
        )?;
        let monitor_interval = seconds(
            "WEBHOOK_MONITOR_INTERVAL",
            pick(&overrides.monitor_interval, "WEBHOOK_MONITOR_INTERVAL"),
            15,
            false,
        )?;
        let bind_raw =
            pick(&overrides.bind, "RUSHES_BIND").unwrap_or_else(|| "127.0.0.1:5000".into());
        let bind = bind_raw
            .trim()
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                var: "RUSHES_BIND",
                value: bind_raw.clone(),
                reason: format!("expected IP:PORT such as 127.0.0.1:5000 ({e})"),
            })?;
        let dir = |flag: &Option<String>, var: &str, default: &str| {
            PathBuf::from(pick(flag, var).unwrap_or_else(|| default.into()))
        };
        let tz_raw = env("FEED_TIMEZONE")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "UTC".into());
        let feed_timezone =
            tz_raw
                .trim()
                .parse::<chrono_tz::Tz>()
                .map_err(|_| ConfigError::Invalid {
                    var: "FEED_TIMEZONE",
                    value: tz_raw.clone(),
                    reason: "expected an IANA time zone name such as Europe/Paris".into(),
                })?;

        let api_token = env("RUSHES_API_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        if api_token.is_none() && !bind.ip().is_loopback() {
            return Err(ConfigError::Missing {
                var: "RUSHES_API_TOKEN",
                hint: format!(
                    "it is required because RUSHES_BIND={bind} is reachable from the network \
                     (set a long random token, or bind 127.0.0.1)"
                ),
            });
        }

        let concurrency_raw = pick(&overrides.download_concurrency, "DOWNLOAD_CONCURRENCY")
            .unwrap_or_else(|| "3".into());
        let download_concurrency = concurrency_raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 64)
            .ok_or_else(|| ConfigError::Invalid {
                var: "DOWNLOAD_CONCURRENCY",
                value: concurrency_raw.clone(),
                reason: "expected a whole number from 0 (downloads paused) to 64".into(),
            })?;
        let dry_run_downloads = overrides.dry_run_downloads
            || match env("DRY_RUN_DOWNLOADS").map(|v| v.trim().to_ascii_lowercase()) {
                None => false,
                Some(v) => match v.as_str() {
                    "" | "0" | "false" | "no" | "off" => false,
                    "1" | "true" | "yes" | "on" => true,
                    _ => {
                        return Err(ConfigError::Invalid {
                            var: "DRY_RUN_DOWNLOADS",
                            value: v,
                            reason: "expected 1 or 0 (true/false, yes/no)".into(),
                        });
                    }
                },
            };
        let on_download_complete = match env("ON_DOWNLOAD_COMPLETE")
            .filter(|v| !v.trim().is_empty())
        {
            None => None,
            Some(raw) => Some(
                HookCommand::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    var: "ON_DOWNLOAD_COMPLETE",
                    value: raw.clone(),
                    reason,
                })?,
            ),
        };

        let list = |var: &str| -> Vec<String> {
            env(var)
                .unwrap_or_default()
                .split([',', ' '])
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let hook_env = list("ON_DOWNLOAD_COMPLETE_ENV");
        if let Some(bad) = hook_env
            .iter()
            .find(|v| !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ConfigError::Invalid {
                var: "ON_DOWNLOAD_COMPLETE_ENV",
                value: bad.clone(),
                reason: "expected variable names separated by commas".into(),
            });
        }
        let allowed_hosts: Vec<String> = list("RUSHES_ALLOWED_HOSTS")
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(bad) = allowed_hosts
            .iter()
            .find(|h| h.contains(['/', '@', ':']) && !h.starts_with('['))
        {
            return Err(ConfigError::Invalid {
                var: "RUSHES_ALLOWED_HOSTS",
                value: bad.clone(),
                reason: "expected host names without scheme or port, separated by commas".into(),
            });
        }

        let feed_auth_token = env("WEBHOOK_AUTH_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);

        Ok(Self {
            feed_auth_token,
            hook_env,
            allowed_hosts,
            server: ServerLimits::default(),
            download_concurrency,
            dry_run_downloads,
            on_download_complete,
            api_token,
            feed,
            cache_ttl,
            timeout,
            monitor_interval,
            bind,
            data_dir: dir(&overrides.data_dir, "RUSHES_DATA_DIR", "./data"),
            downloads_dir: dir(
                &overrides.downloads_dir,
                "LOCAL_DOWNLOADS_DIR",
                "./downloads",
            ),
            log_dir: dir(&overrides.log_dir, "RUSHES_LOG_DIR", "./logs"),
            feed_timezone,
            frameio: crate::frameio::FrameioConfig::from_lookup(&env)?,
        })
    }

    /// The feed location, required by commands that poll it.
    pub fn require_feed(&self) -> Result<&FeedLocation, ConfigError> {
        self.feed.as_ref().ok_or_else(|| ConfigError::Missing {
            var: "WEBHOOK_JSON_URL",
            hint: "set it (in the environment or .env) to the feed URL or a JSON file path, or pass --feed-url".into(),
        })
    }

    /// `$RUSHES_DATA_DIR/rushes.db`.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("rushes.db")
    }

    /// A configuration for tests and the demo: everything under `root`, short intervals.
    pub fn for_dir(root: &Path, feed: FeedLocation) -> Self {
        Self {
            feed: Some(feed),
            cache_ttl: Duration::ZERO,
            timeout: Duration::from_secs(10),
            monitor_interval: Duration::from_secs(15),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: root.join("data"),
            downloads_dir: root.join("downloads"),
            log_dir: root.join("logs"),
            feed_timezone: chrono_tz::UTC,
            api_token: None,
            frameio: crate::frameio::FrameioConfig::idle(),
            download_concurrency: 3,
            dry_run_downloads: false,
            on_download_complete: None,
            hook_env: Vec::new(),
            allowed_hosts: Vec::new(),
            server: ServerLimits::default(),
            feed_auth_token: None,
        }
    }
}

pub(crate) fn seconds(
    var: &'static str,
    raw: Option<String>,
    default: u64,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Duration::from_secs(default));
    };
    let value: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
        var,
        value: raw.clone(),
        reason: "expected a whole number of seconds".into(),
    })?;
    if value == 0 && !zero_ok {
        return Err(ConfigError::Invalid {
            var,
            value: raw,
            reason: "must be at least 1 second".into(),
        });
    }
    Ok(Duration::from_secs(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&Overrides::default(), |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_follow_the_spec() -> Result<(), ConfigError> {
        let c = load(&[])?;
        assert_eq!(c.cache_ttl, Duration::from_secs(300));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.monitor_interval, Duration::from_secs(15));
        assert_eq!(c.bind.to_string(), "127.0.0.1:5000");
        assert!(c.feed.is_none());
        Ok(())
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("WEBHOOK_MONITOR_INTERVAL", "0"),
            ("WEBHOOK_MONITOR_INTERVAL", "abc"),
            ("WEBHOOK_CACHE_TTL", "-1"),
            ("WEBHOOK_TIMEOUT", "1.5"),
            ("RUSHES_BIND", "localhost"),
            ("WEBHOOK_JSON_URL", "ftp://example.com/feed"),
            ("WEBHOOK_JSON_URL", "https://"),
            ("FEED_TIMEZONE", "Mars/Olympus"),
            ("DOWNLOAD_CONCURRENCY", "65"),
            ("DOWNLOAD_CONCURRENCY", "many"),
            ("DRY_RUN_DOWNLOADS", "maybe"),
            ("ON_DOWNLOAD_COMPLETE", "notify 'unclosed"),
        ] {
            let err = load(&[(var, value)]).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn a_network_bind_needs_a_token() {
        let err = load(&[("RUSHES_BIND", "0.0.0.0:5000")])
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("RUSHES_API_TOKEN") && err.contains("0.0.0.0:5000"),
            "{err}"
        );
        let ok = load(&[
            ("RUSHES_BIND", "0.0.0.0:5000"),
            ("RUSHES_API_TOKEN", "t0ken"),
        ]);
        assert!(ok.is_ok_and(|c| c.api_token.is_some()));
    }

    #[test]
    fn flags_override_env_and_ttl_zero_is_allowed() -> Result<(), ConfigError> {
        let overrides = Overrides {
            cache_ttl: Some("0".into()),
            ..Default::default()
        };
        let c = Config::from_lookup(&overrides, |name| {
            (name == "WEBHOOK_CACHE_TTL").then(|| "99".to_string())
        })?;
        assert_eq!(c.cache_ttl, Duration::ZERO);
        Ok(())
    }

    #[test]
    fn feed_location_forms_and_redaction() {
        let http = FeedLocation::parse("https://Feed.Example.com/api/downloads?token=s3cret");
        assert!(matches!(http, Ok(FeedLocation::Http(_))));
        let shown = http.map(|l| l.redacted()).unwrap_or_default();
        assert_eq!(shown, "https://feed.example.com/api/downloads?…");
        assert!(!shown.contains("s3cret"));
        assert_eq!(
            FeedLocation::parse("/tmp/feed.json"),
            Ok(FeedLocation::File("/tmp/feed.json".into()))
        );
        assert_eq!(
            FeedLocation::parse("file:///tmp/feed.json"),
            Ok(FeedLocation::File("/tmp/feed.json".into()))
        );
    }

    #[test]
    fn invalid_feed_url_error_hides_query() {
        let err = load(&[("WEBHOOK_JSON_URL", "gopher://x/?token=s3cret")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("WEBHOOK_JSON_URL"));
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn download_settings() -> Result<(), ConfigError> {
        let c = load(&[])?;
        assert_eq!(c.download_concurrency, 3);
        assert!(!c.dry_run_downloads);
        assert!(c.on_download_complete.is_none());
        let c = load(&[
            ("DOWNLOAD_CONCURRENCY", "5"),
            ("DRY_RUN_DOWNLOADS", "1"),
            (
                "ON_DOWNLOAD_COMPLETE",
                r#"/usr/bin/step1 --in "my dir" 'a b' c\ d"#,
            ),
        ])?;
        assert_eq!(c.download_concurrency, 5);
        assert!(c.dry_run_downloads);
        assert_eq!(
            c.on_download_complete,
            Some(HookCommand {
                program: "/usr/bin/step1".into(),
                args: vec!["--in".into(), "my dir".into(), "a b".into(), "c d".into()],
            })
        );
        Ok(())
    }
}
