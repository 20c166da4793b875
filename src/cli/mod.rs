//! The command line: one file per command group, exit codes decided here.
//!
//! Exit codes: 0 success, 1 failure (a fetch, a download, an unreachable service), 2 a
//! configuration mistake (the message names the variable), and what a command sets with [`Exit`].

mod backup;
mod download;
mod feed;
mod feed_proxy;
mod frameio;
mod frameio_doctor;
mod frameio_inspect;
mod frameio_review;
mod frameio_upload;
mod password;
mod serve;
mod status;
mod verdict;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::AppError;
use crate::config::{ConfigError, Overrides};

const ENV_HELP: &str = "\
Environment (also read from ./.env; flags win over variables):
  WEBHOOK_JSON_URL          feed: http(s) URL, file:// URL or path (its query string is never logged)
  WEBHOOK_CACHE_TTL         seconds a successful fetch stays fresh, 0 = always fetch [300]
  WEBHOOK_TIMEOUT           seconds per feed request [30]
  WEBHOOK_MONITOR_INTERVAL  seconds between feed checks [15]
  FEED_TIMEZONE             IANA zone of timestamps without offset (MySQL format) [UTC]
  RUSHES_BIND               HTTP address [127.0.0.1:5000]
  RUSHES_DATA_DIR           folder of rushes.db (SQLite) and the instance lock [./data]
  RUSHES_DATABASE_URL       postgres://user:pass@host:5432/db: several instances on one PostgreSQL
                            (its password is never shown) [none: SQLite in RUSHES_DATA_DIR]
  RUSHES_INSTANCE_NAME      this instance's name on a shared database [host name + data folder hash]
  RUSHES_LEASE              seconds a claim (feed poll, download, event) holds without renewal [30]
  LOCAL_DOWNLOADS_DIR       folder downloads land in [./downloads]
  RUSHES_LOG_DIR            folder of app.log [./logs]
  DOWNLOAD_CONCURRENCY      downloads at once (at most 2 per host), 0 = paused [3]
  DRY_RUN_DOWNLOADS         1 = record automatic deliveries as dry_run, fetch nothing [0]
  DOWNLOAD_MAX_AGE          automatic records older than this when first seen are `available`,
                            not downloaded (7d, 36h, 0 = no limit) [7d]
  ON_DOWNLOAD_COMPLETE      command run after each download, without a shell, in a clean
                            environment (PATH, HOME, LANG) with RUSHES_FILE, RUSHES_FILE_NAME,
                            RUSHES_DELIVERY_ID, RUSHES_PROVIDER, RUSHES_ORIGINAL_FILENAME set
  ON_DOWNLOAD_COMPLETE_ENV  further variables the hook may see, comma-separated names
  NOTIFY_URL                Slack-compatible incoming webhook: verdict changes, failed deliveries
  NOTIFY_ON_DOWNLOAD        1 = also a message for each delivery downloaded [0]
  ON_REVIEW_CHANGE          command run on each verdict change (RUSHES_UPLOAD_* set, clean
                            environment like ON_DOWNLOAD_COMPLETE); ON_REVIEW_CHANGE_ENV as above
  RUSHES_API_TOKEN          protects the API and dashboard; required when RUSHES_BIND is not loopback
  RUSHES_TUNNEL             none | ngrok | cloudflared: be reachable by Frame.io [none]
  RUSHES_PUBLIC_URL         fixed public base URL (production, or a named cloudflared tunnel)
  NGROK_BIN, NGROK_AUTHTOKEN, NGROK_API_ADDR  ngrok agent [ngrok; none; 127.0.0.1:4040]
  CLOUDFLARED_BIN, CLOUDFLARED_TUNNEL_TOKEN   cloudflared [cloudflared; none = quick tunnel]
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
  FRAMEIO_UPLOAD_FOLDER_ID    Frame.io folder `frameio upload` and the watch folder send to
  FRAMEIO_UPLOAD_DIR          watch folder of `serve`: files put there are sent to Frame.io
  FRAMEIO_UPLOAD_SETTLE       quiet time before a watched file is sent (10s, 2m, 0) [10s]
  FRAMEIO_STATUS_MAP          Status option -> state [In Progress=in_review,Needs Review=in_review,Approved=approved,Rejected=rejected]
  FRAMEIO_REVIEW_LEXICON      JSON lexicon extending the built-in comment cues (\"mode\": \"replace\" to replace lists)
  FRAMEIO_KEYWORDS_APPROVED, FRAMEIO_KEYWORDS_CHANGES, FRAMEIO_KEYWORDS_REJECTED  comma-separated phrases replacing the approval/change/rejection cues
  FRAMEIO_REVIEW_LLM_URL, FRAMEIO_REVIEW_LLM_MODEL [, FRAMEIO_REVIEW_LLM_KEY]  optional second opinion on unsure comments (OpenAI-compatible chat completions) [off]
  RUSHES_TUNNEL, RUSHES_PUBLIC_URL, NGROK_*, CLOUDFLARED_*  see `rushes serve --help`";

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
    /// Serve the upstream feed at GET /feed to token holders: rate limits, short cache with
    /// ETag/304, audit log. The production replacement of the seed's PHP proxy.
    #[command(name = "feed-proxy", after_help = PROXY_ENV_HELP)]
    FeedProxy,
    /// Frame.io review tracking: track uploads, list them, manage the workspace webhook.
    #[command(subcommand, after_help = FRAMEIO_ENV_HELP)]
    Frameio(frameio::FrameioCommand),
    /// Download one file now with the service's engine: resume on interruption, the same naming
    /// rules, `--fallback` URL when the first fails. Exit code 1 when it fails.
    Download(download::DownloadArgs),
    /// Internal: runs a tunnel agent and stops it when rushes goes away (stdin closes).
    #[command(hide = true)]
    TunnelGuard {
        /// Milliseconds between SIGTERM and SIGKILL
        #[arg(long, default_value_t = 5000)]
        grace_ms: u64,
        /// The agent and its arguments
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Give a running rushes the password of a password-protected transfer (SwissTransfer) for a
    /// delivery waiting for one; it is read from standard input (one line), never from the
    /// command line, and the delivery is queued again. Exit code 1 when rushes refuses it.
    #[command(after_help = ENV_HELP)]
    Password {
        /// The delivery's id (as on the dashboard and in /api/deliveries)
        id: i64,
        /// Base URL of the running service [default: http://$RUSHES_BIND]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Write a consistent copy of the SQLite database to FILE, also while `rushes serve` runs
    /// (VACUUM INTO; checked, never replacing a file). On PostgreSQL use pg_dump (see README).
    #[command(after_help = ENV_HELP)]
    Backup {
        /// The new file (must not exist)
        file: std::path::PathBuf,
    },
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
    /// Fetch the feed once and say, for every item, what a first start would do with it
    /// (queued, available, manual, duplicate of #N, invalid: reason), then a summary line.
    /// Writes nothing. Exit code 1 when the fetch fails.
    #[command(after_help = ENV_HELP)]
    Check {
        /// Feed URL or path [default: $WEBHOOK_JSON_URL]
        url: Option<String>,
        /// One JSON object per item on stdout (fields in the README); the summary goes to stderr
        #[arg(long)]
        json: bool,
        /// Ask each server for the size of what would be downloaded (HEAD, 8 at a time)
        #[arg(long)]
        sizes: bool,
        /// Age limit of the check [env: DOWNLOAD_MAX_AGE, default 7d]
        #[arg(long, value_name = "AGE")]
        download_max_age: Option<String>,
        /// Print signed links (R2, presigned S3) with their query strings instead of `?…`
        #[arg(long)]
        show_signed: bool,
        /// Print only the summary line and how long the fetch and the read took (every item is
        /// still read, validated, classified and normalised: for timing a large feed)
        #[arg(long, short, conflicts_with_all = ["json", "sizes"])]
        quiet: bool,
    },
}

/// An error whose exit code is not the generic 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// Exit code 2: a configuration mistake found by a command itself.
    pub const CONFIG: u8 = 2;
    /// Exit code 1: the command ran and failed.
    pub const FAILURE: u8 = 1;

    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        Self {
            code,
            message: message.into(),
        }
        .into()
    }
}

/// The exit code for an error that ended a command.
/// What `status` and `password` add when nothing answers.
pub(crate) const NOT_RUNNING_HINT: &str = "is `rushes serve` running? Start it with `rushes serve` \
     (or `cargo run --release -- serve`), or give its address with --url";

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(exit) = e.downcast_ref::<Exit>() {
        return exit.code;
    }
    let config_error = e.downcast_ref::<ConfigError>().is_some()
        || e.downcast_ref::<AppError>()
            .is_some_and(AppError::is_config)
        || e.downcast_ref::<crate::proxy::ProxyError>()
            .is_some_and(crate::proxy::ProxyError::is_config)
        || e.chain().any(|cause| {
            cause
                .downcast_ref::<crate::store::StoreError>()
                .is_some_and(crate::store::StoreError::is_config)
        });
    if config_error {
        Exit::CONFIG
    } else {
        Exit::FAILURE
    }
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve { overrides } => serve::serve(&overrides).await,
            Command::Demo { bind } => serve::demo(bind).await,
            Command::Feed(FeedCommand::Check {
                url,
                json,
                sizes,
                download_max_age,
                show_signed,
                quiet,
            }) => {
                feed::check(feed::CheckArgs {
                    url,
                    json,
                    sizes,
                    download_max_age,
                    show_signed,
                    quiet,
                })
                .await
            }
            Command::FeedProxy => feed_proxy::run().await,
            Command::Backup { file } => backup::run(&file).await,
            Command::Status { url } => status::status(url).await,
            Command::Password { id, url } => password::password(id, url).await,
            Command::Frameio(command) => frameio::run(command).await,
            Command::TunnelGuard { grace_ms, command } => {
                let mut words = command.into_iter();
                let program = words.next().unwrap_or_default();
                Ok(crate::tunnel::guard::run(
                    std::time::Duration::from_millis(grace_ms),
                    program,
                    words.collect(),
                )
                .await)
            }
            Command::Download(args) => {
                crate::logging::init_command();
                download::run(args, shutdown_signal()).await
            }
        }
    }
}

/// Where the running service answers a command: `http://` and its bind address (an
/// unspecified address, `0.0.0.0`, is asked on loopback).
fn local_url(mut addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
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
