//! The command line: `serve`, `feed check`, `feed-proxy`, `status`, `download`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Config, FeedLocation, Overrides};
use crate::download::filename;
use crate::feed::source::{FeedSource, FetchResult, Validators};
use crate::logging;
use crate::status::MonitorStatus;

const ENV_HELP: &str = "\
Environment (also read from ./.env; flags win over variables):
  WEBHOOK_JSON_URL          feed: http(s) URL, file:// URL or path (its query string is never logged)
  WEBHOOK_CACHE_TTL         seconds a successful fetch stays fresh, 0 = always fetch [300]
  WEBHOOK_TIMEOUT           seconds per feed request [30]
  WEBHOOK_MONITOR_INTERVAL  seconds between feed checks [15]
  FEED_TIMEZONE             IANA zone of timestamps without offset (MySQL format) [UTC]
  RUSHES_BIND               HTTP address [127.0.0.1:5000]
  RUSHES_DATA_DIR           folder of rushes.db [./data]
  LOCAL_DOWNLOADS_DIR       folder downloads land in [./downloads]
  RUSHES_LOG_DIR            folder of app.log [./logs]
  DOWNLOAD_CONCURRENCY      downloads at once (at most 2 per host), 0 = paused [3]
  DRY_RUN_DOWNLOADS         1 = record automatic deliveries as dry_run, fetch nothing [0]
  ON_DOWNLOAD_COMPLETE      command run after each download, without a shell, in a clean
                            environment (PATH, HOME, LANG) with RUSHES_FILE, RUSHES_FILE_NAME,
                            RUSHES_DELIVERY_ID, RUSHES_PROVIDER, RUSHES_ORIGINAL_FILENAME set
  ON_DOWNLOAD_COMPLETE_ENV  further variables the hook may see, comma-separated names
  RUSHES_API_TOKEN          protects the API and dashboard; required when RUSHES_BIND is not loopback
  RUSHES_ALLOWED_HOSTS      host names served without a token besides loopback (comma-separated)
  WEBHOOK_AUTH_TOKEN        sent as Authorization: Bearer to the feed (e.g. to rushes feed-proxy)
  RUST_LOG                  log filter, e.g. info or rushes=debug [info]

A configuration mistake names the variable and exits with code 2.";

const FRAMEIO_ENV_HELP: &str = "\
Frame.io environment (all optional; also read from ./.env):
  FRAMEIO_TOKEN               bearer token used as is, or:
  FRAMEIO_CLIENT_ID, FRAMEIO_CLIENT_SECRET [+ FRAMEIO_REFRESH_TOKEN]  Adobe IMS credentials
  FRAMEIO_IMS_URL             IMS token endpoint [https://ims-na1.adobelogin.com/ims/token/v3]
  FRAMEIO_API_BASE            API base [https://api.frame.io]
  FRAMEIO_ACCOUNT_ID, FRAMEIO_WORKSPACE_ID  where the webhook lives
  FRAMEIO_WEBHOOK_SECRET      signing secret (else the one `webhook ensure` stored)
  FRAMEIO_WEBHOOK_NAME        webhook name [rushes]
  FRAMEIO_POLL_INTERVAL       seconds between polls of an unfinished upload [300]
  FRAMEIO_STATUS_MAP          Status option -> state [In Progress=in_review,Needs Review=in_review,Approved=approved,Rejected=rejected]
  FRAMEIO_KEYWORDS_APPROVED, FRAMEIO_KEYWORDS_CHANGES, FRAMEIO_KEYWORDS_REJECTED  comma-separated comment keywords";

const PROXY_ENV_HELP: &str = "\
Environment (also read from ./.env):
  FEED_PROXY_UPSTREAM         the feed served (http or https; never shown to clients, never logged
                              with its query string) [required]
  FEED_PROXY_TOKENS_FILE      one `name:token` a line (tokens of 16+ characters); re-read when it
                              changes or on SIGHUP [required]
  FEED_PROXY_BIND             address to listen on [127.0.0.1:5080]
  FEED_PROXY_CACHE_TTL        seconds an upstream answer is shared, 0 = ask upstream each time [10]
  FEED_PROXY_TIMEOUT          seconds for the whole upstream request [30]
  FEED_PROXY_MAX_BYTES        largest upstream body [33554432]
  FEED_PROXY_RATE_PER_TOKEN   requests per minute per token [60]
  FEED_PROXY_RATE_PER_CLIENT  requests per minute per client address [120]
  FEED_PROXY_CORS_ORIGINS     origins allowed to read the feed from a browser (none by default)
  FEED_PROXY_AUDIT_LOG        JSON-lines audit log [$RUSHES_LOG_DIR/feed-proxy-audit.jsonl]
  RUSHES_LOG_DIR              folder of app.log [./logs]

Clients send Authorization: Bearer <token> (rushes does when WEBHOOK_AUTH_TOKEN is set).
A configuration mistake names the variable and exits with code 2.";

#[derive(Debug, Parser)]
#[command(
    name = "rushes",
    version,
    about = "Takes in client footage deliveries from a JSON feed, remembers them, downloads and shows them.",
    after_help = ENV_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the upstream feed at GET /feed to token holders: rate limits, short cache with
    /// ETag/304, audit log. The production replacement of the seed's PHP proxy.
    #[command(name = "feed-proxy", after_help = PROXY_ENV_HELP)]
    FeedProxy,
    /// Run the service: poll the feed and serve the HTTP API until Ctrl-C / SIGTERM.
    #[command(after_help = ENV_HELP)]
    Serve {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run rushes on built-in sample data: a sample feed and files served on loopback, a temporary
    /// data folder, the dashboard at the printed URL. Nothing to configure; Ctrl-C stops it.
    Demo {
        /// Address of the dashboard (falls back to a free port when taken)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
        bind: std::net::SocketAddr,
    },
    /// Work with the delivery feed.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Frame.io review tracking: track uploads, list them, manage the workspace webhook.
    #[command(subcommand, after_help = FRAMEIO_ENV_HELP)]
    Frameio(crate::frameio::commands::FrameioCommand),
    /// Download one file now with the service's engine: resume on interruption, the same naming
    /// rules, `--fallback` URL when the first fails. Exit code 1 when it fails.
    Download(crate::download::oneshot::DownloadArgs),
    /// Ask a running rushes how the feed is doing (what /api/csv_monitor_status says), readably.
    #[command(after_help = ENV_HELP)]
    Status {
        /// Base URL of the running service [default: http://$RUSHES_BIND]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Fetch the feed once and print every record (format, classification, file name) and every
    /// invalid item with its reason. Writes nothing. Exit code 1 when the fetch fails.
    #[command(after_help = ENV_HELP)]
    Check {
        /// Feed URL or path [default: $WEBHOOK_JSON_URL]
        url: Option<String>,
        /// Print signed links (R2, presigned S3) with their query strings instead of `?…`
        #[arg(long)]
        show_signed: bool,
    },
}

/// An error whose exit code is not the generic 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve { overrides } => serve(&overrides).await,
            Command::FeedProxy => feed_proxy().await,
            Command::Demo { bind } => demo(bind).await,
            Command::Feed(FeedCommand::Check { url, show_signed }) => {
                feed_check(url, show_signed).await
            }
            Command::Status { url } => status(url).await,
            Command::Frameio(command) => crate::frameio::commands::run(command).await,
            Command::Download(args) => {
                logging::init_command();
                crate::download::oneshot::run(args, shutdown_signal()).await
            }
        }
    }
}

async fn serve(overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let config = Config::load(overrides)?;
    let _guard = logging::init_service(&config.log_dir).with_context(|| {
        format!(
            "cannot write logs to {} (set RUSHES_LOG_DIR)",
            config.log_dir.display()
        )
    })?;
    tracing::info!(
        feed = %config.require_feed()?,
        interval_s = config.monitor_interval.as_secs(),
        ttl_s = config.cache_ttl.as_secs(),
        "rushes starting"
    );
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await?;
    tracing::info!("rushes stopped");
    Ok(ExitCode::SUCCESS)
}

async fn feed_proxy() -> anyhow::Result<ExitCode> {
    let config = crate::proxy::ProxyConfig::load()?;
    let _guard = logging::init_service(&config.log_dir).with_context(|| {
        format!(
            "cannot write logs to {} (set RUSHES_LOG_DIR)",
            config.log_dir.display()
        )
    })?;
    crate::proxy::run(config, shutdown_signal()).await?;
    tracing::info!("feed-proxy stopped");
    Ok(ExitCode::SUCCESS)
}

async fn demo(bind: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let root = tempfile::Builder::new()
        .prefix("rushes-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo")?;
    let sample = crate::demo::SampleServer::start(Vec::new()).await?;
    let config = crate::demo::demo_config(root.path(), &sample.feed_url(), bind);
    let _guard = logging::init_service(&config.log_dir).context("cannot write the demo's logs")?;
    let app = match App::build(config.clone()).await {
        Err(crate::app::AppError::Bind { .. }) => {
            let mut fallback = config;
            fallback.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            App::build(fallback).await?
        }
        other => other?,
    };
    let addr = app.local_addr();
    println!();
    println!("  rushes demo is running");
    println!();
    println!("  dashboard    http://{addr}/");
    println!("  sample feed  {}", sample.feed_url());
    println!("  downloads    {}", root.path().join("downloads").display());
    println!();
    println!("  Press Ctrl-C to stop (the temporary folder is removed).");
    println!();
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn feed_check(url: Option<String>, show_signed: bool) -> anyhow::Result<ExitCode> {
    logging::init_command();
    let overrides = Overrides {
        feed_url: url,
        ..Default::default()
    };
    let config = Config::load(&overrides)?;
    let location: FeedLocation = config.require_feed()?.clone();
    println!("feed: {location}");
    let source = FeedSource::new(location, config.timeout, config.feed_timezone)
        .with_bearer(config.feed_auth_token.clone());
    let (result, attempts) = source
        .fetch(&Validators::default(), &CancellationToken::new())
        .await;
    let feed = match result {
        Ok(FetchResult::Fetched { feed, .. }) => feed,
        Ok(FetchResult::NotModified) => {
            println!("not modified");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            println!("fetch failed after {attempts} attempt(s): {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for record in &feed.records {
        let name = filename::planned_name(record.original_filename.as_deref(), &record.source_url)
            .map_or_else(
                || "(from the server, else download-<id>)".to_string(),
                |n| n.to_string(),
            );
        let link = |url: &url::Url, always: bool| {
            if show_signed {
                url.to_string()
            } else {
                crate::web::api::shown_link(url.as_str(), always)
            }
        };
        println!(
            "ok      {:<6} {:<13} {:<9} {}  name={name:?}{}",
            record.format.as_str(),
            record.classification.kind.as_str(),
            record.classification.mode.as_str(),
            link(&record.source_url, false),
            record
                .r2_url
                .as_ref()
                .map(|r2| format!("  (+r2 copy {})", link(r2, true)))
                .unwrap_or_default(),
        );
    }
    for (index, reason) in &feed.invalid {
        println!("invalid item #{index}: {reason}");
    }
    println!(
        "{} valid record(s), {} invalid item(s)",
        feed.records.len(),
        feed.invalid.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(url: Option<String>) -> anyhow::Result<ExitCode> {
    logging::init_command();
    let base = match url {
        Some(url) => url,
        None => {
            let config = Config::load(&Overrides::default())?;
            let mut addr = config.bind;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let endpoint = format!("{}/api/csv_monitor_status", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let answer = client.get(&endpoint).send().await;
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            println!("rushes is not reachable at {base}: {}", e.without_url());
            return Ok(ExitCode::from(1));
        }
    };
    if !response.status().is_success() {
        println!("{endpoint} answered HTTP {}", response.status());
        return Ok(ExitCode::from(1));
    }
    let status: MonitorStatus = response
        .json()
        .await
        .context("the status answer is not the expected JSON")?;
    let w = &status.webhook;
    println!(
        "data source       {} (checked every {} s)",
        status.data_source, status.monitor_interval
    );
    println!(
        "feed available    {}",
        if w.available { "yes" } else { "no" }
    );
    println!(
        "last fetch        {}",
        w.last_fetch_ts
            .as_deref()
            .map_or_else(|| "never".to_string(), |t| format!("{t} UTC"))
    );
    println!("records           {}", w.records_processed);
    println!("last error        {}", w.error.as_deref().unwrap_or("none"));
    Ok(ExitCode::SUCCESS)
}
