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
mod help;
mod password;
mod serve;
mod status;
mod verdict;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::AppError;
use crate::config::{ConfigError, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "rushes",
    version,
    about = "Takes in client footage deliveries from a JSON feed, remembers them, downloads and shows them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: poll the feed and serve the HTTP API until Ctrl-C / SIGTERM.
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
    #[command(name = "feed-proxy")]
    FeedProxy,
    /// Frame.io review tracking: track uploads, list them, manage the workspace webhook.
    #[command(subcommand)]
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
    Password {
        /// The delivery's id (as on the dashboard and in /api/deliveries)
        id: i64,
        /// Base URL of the running service [default: http://$RUSHES_BIND]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Write a consistent copy of the SQLite database to FILE, also while `rushes serve` runs
    /// (VACUUM INTO; checked, never replacing a file). On PostgreSQL use pg_dump (see docs/operations.md).
    Backup {
        /// The new file (must not exist)
        file: std::path::PathBuf,
    },
    /// Ask a running rushes how the feed is doing (what /api/csv_monitor_status says), readably.
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
    Check {
        /// Feed URL or path [default: $WEBHOOK_JSON_URL]
        url: Option<String>,
        /// One JSON object per item on stdout (fields in docs/feed.md); the summary goes to stderr
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

impl Cli {
    /// The command line as given, its `--help` laid out for the terminal (each command's
    /// environment block lists the variables it reads; `help.rs`). Exits on `--help` or a
    /// usage mistake, as clap does.
    pub fn parse_args() -> Self {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let command = help::command(Self::command(), help::terminal_width());
        let matches = command.get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
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
