//! Configuration: environment variables (also read from `.env`), overridden by CLI flags,
//! validated once into typed values. A mistake names the variable and stops start-up (exit 2).
//!
//! One submodule per area reads its own variables through [`Env`]; [`Config`] gathers them.

mod database;
mod download;
mod env;
mod feed;
mod frameio;
mod frameio_upload;
mod hardening;
mod notify;
mod service;
mod transfers;
pub mod tunnel;
mod upkeep;

use std::path::Path;

pub use database::{DEFAULT_LEASE, DatabaseSettings};
pub use download::{DEFAULT_MAX_AGE, DownloadSettings, HookCommand};
pub use env::Env;
pub use feed::{FeedLocation, FeedSettings};
pub use frameio::{
    DEFAULT_API_BASE, DEFAULT_IMS_URL, FrameioAuth, FrameioConfig, LlmSettings, Phrase,
    ReviewSettings, S2S_SCOPE, StatusMap, parse_list,
};
pub use frameio_upload::{DEFAULT_SETTLE, UploadSettings};
pub use hardening::ServerLimits;
pub use notify::NotifySettings;
pub use service::ServiceSettings;
pub use transfers::{ResolverSettings, SWISSTRANSFER_API_BASE, SegmentSettings, parse_size};
pub use upkeep::{DEFAULT_EVENT_RETENTION, DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_SIZE, UpkeepSettings};

/// A configuration mistake. The binary turns it into exit code 2.
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
    /// Folder of the SQLite database and the instance lock [env: RUSHES_DATA_DIR, default ./data]
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
    /// Automatic records older than this when first seen are listed as `available`, not downloaded:
    /// 7d, 36h, 0 = no limit [env: DOWNLOAD_MAX_AGE, default 7d]
    #[arg(long, value_name = "AGE")]
    pub download_max_age: Option<String>,
    /// Record automatic deliveries as dry_run without fetching them [env: DRY_RUN_DOWNLOADS=1]
    #[arg(long)]
    pub dry_run_downloads: bool,
    /// Make rushes reachable by Frame.io: none, ngrok or cloudflared [env: RUSHES_TUNNEL, default none]
    #[arg(long, value_name = "MODE")]
    pub tunnel: Option<String>,
    /// On exit, deactivate the Frame.io webhook (active: false)
    #[arg(long)]
    pub tunnel_cleanup: bool,
}

/// The whole validated configuration: one part per area, each read from its own variables
/// only (`feed::read`, `service::read`, ...), and each component given its own part.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WEBHOOK_*`, `FEED_TIMEZONE` (feed.rs).
    pub feed: FeedSettings,
    /// `RUSHES_BIND`, `RUSHES_DATA_DIR`, `RUSHES_LOG_DIR`, `RUSHES_API_TOKEN`,
    /// `RUSHES_ALLOWED_HOSTS` (service.rs).
    pub service: ServiceSettings,
    /// `LOCAL_DOWNLOADS_DIR`, `DOWNLOAD_*`, `ON_DOWNLOAD_COMPLETE*`, resolvers (download.rs).
    pub download: DownloadSettings,
    /// `FRAMEIO_*` (frameio.rs); all optional.
    pub frameio: FrameioConfig,
    /// `RUSHES_TUNNEL`, `RUSHES_PUBLIC_URL`, `NGROK_*`, `CLOUDFLARED_*` (tunnel.rs).
    pub tunnel: tunnel::TunnelSettings,
    /// `RUSHES_DATABASE_URL`, `RUSHES_INSTANCE_NAME`, `RUSHES_LEASE` (database.rs).
    pub database: DatabaseSettings,
    /// `NOTIFY_*`, `ON_REVIEW_CHANGE`: messages and the review hook.
    pub notify: NotifySettings,
    /// `RUSHES_EVENT_RETENTION`, `RUSHES_LOG_MAX_SIZE`, `RUSHES_LOG_KEEP` (upkeep.rs).
    pub upkeep: UpkeepSettings,
}

impl Config {
    /// Reads the process environment (after `.env` was loaded) and applies `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = Self::from_lookup(overrides, |name| std::env::var(name).ok())?;
        // This process is the rushes binary: it can guard a tunnel agent (`rushes tunnel-guard`).
        config.tunnel.guard = std::env::current_exe().ok();
        Ok(config)
    }

    /// Same as [`Config::load`] with an injectable environment, for tests.
    pub fn from_lookup(
        overrides: &Overrides,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let service = service::read(&env, overrides)?;
        Ok(Self {
            feed: feed::read(&env, overrides)?,
            download: download::read(&env, overrides)?,
            database: database::read(&env, &service.data_dir)?,
            frameio: frameio::read(&env)?,
            tunnel: tunnel::read(&env, overrides.tunnel.as_deref(), overrides.tunnel_cleanup)?,
            notify: NotifySettings::read(&env)?,
            upkeep: upkeep::read(&env)?,
            service,
        })
    }

    /// The feed location, required by commands that poll it.
    pub fn require_feed(&self) -> Result<&FeedLocation, ConfigError> {
        self.feed.location.as_ref().ok_or_else(|| ConfigError::Missing {
            var: "WEBHOOK_JSON_URL",
            hint: "set it (in the environment or .env) to the feed URL or a JSON file path, or give the URL to the command: rushes feed check URL".into(),
        })
    }

    /// `$RUSHES_DATA_DIR/rushes.db`.
    pub fn database_path(&self) -> std::path::PathBuf {
        self.service.data_dir.join("rushes.db")
    }

    /// A configuration for tests and the demo: everything under `root`, short intervals.
    pub fn for_dir(root: &Path, feed: FeedLocation) -> Self {
        Self {
            feed: FeedSettings::at(Some(feed)),
            service: ServiceSettings::under(root),
            download: DownloadSettings::into_dir(root.join("downloads")),
            frameio: FrameioConfig::idle(),
            tunnel: tunnel::TunnelSettings::default(),
            database: DatabaseSettings::local(&root.join("data")),
            notify: NotifySettings::default(),
            upkeep: UpkeepSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        assert_eq!(c.feed.cache_ttl, Duration::from_secs(300));
        assert_eq!(c.feed.timeout, Duration::from_secs(30));
        assert_eq!(c.feed.monitor_interval, Duration::from_secs(15));
        assert_eq!(c.service.bind.to_string(), "127.0.0.1:5000");
        assert!(c.feed.location.is_none());
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
            ("DOWNLOAD_MAX_AGE", "7"),
            ("DOWNLOAD_MAX_AGE", "a week"),
            ("ON_DOWNLOAD_COMPLETE_ENV", "A=B"),
            ("RUSHES_ALLOWED_HOSTS", "https://rushes.lan"),
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
        assert!(ok.is_ok_and(|c| c.service.api_token.is_some()));
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
        assert_eq!(c.feed.cache_ttl, Duration::ZERO);
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
        assert_eq!(c.download.concurrency, 3);
        assert!(!c.download.dry_run);
        assert!(c.download.on_complete.is_none());
        assert_eq!(c.download.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(load(&[("DOWNLOAD_MAX_AGE", "0")])?.download.max_age, None);
        assert_eq!(
            load(&[("DOWNLOAD_MAX_AGE", "36h")])?.download.max_age,
            Some(Duration::from_secs(36 * 3600))
        );
        let c = load(&[
            ("DOWNLOAD_CONCURRENCY", "5"),
            ("DRY_RUN_DOWNLOADS", "1"),
            (
                "ON_DOWNLOAD_COMPLETE",
                r#"/usr/bin/step1 --in "my dir" 'a b' c\ d"#,
            ),
        ])?;
        assert_eq!(c.download.concurrency, 5);
        assert!(c.download.dry_run);
        assert_eq!(
            c.download.on_complete,
            Some(HookCommand {
                program: "/usr/bin/step1".into(),
                args: vec!["--in".into(), "my dir".into(), "a b".into(), "c d".into()],
            })
        );
        Ok(())
    }
}
