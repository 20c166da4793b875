//! `rushes frameio upload PATH`: sends a file to Frame.io and tracks it through review. Running
//! the same command again after an interruption finishes the same upload.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::config::{Config, ConfigError};
use crate::events::EventBus;
use crate::frameio::client::Client;
use crate::frameio::tracker::Tracker;
use crate::frameio::upload::{self, Done, UploadError, UploadRequest, Uploader, Watch};
use crate::store::Store;

/// The command's arguments.
pub struct Args<'a> {
    pub path: &'a Path,
    pub folder: Option<String>,
    pub version_of: Option<String>,
    pub parallel: usize,
}

/// A progress bar with speed and ETA on a terminal; plain step lines otherwise.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:<12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("sending");
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar }
    }
}

impl Watch for Bar {
    fn progress(&self, sent: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(sent);
    }

    fn step(&self, what: &str) {
        if self.bar.is_hidden() {
            eprintln!("{what}");
        } else {
            self.bar.println(what);
        }
    }
}

pub async fn run(config: &Config, args: Args<'_>) -> anyhow::Result<ExitCode> {
    let settings = &config.frameio;
    settings.require_auth()?;
    let account = settings.require_account()?.to_string();
    let folder_id = args
        .folder
        .clone()
        .or_else(|| settings.upload.folder_id.clone())
        .ok_or(ConfigError::Missing {
            var: "FRAMEIO_UPLOAD_FOLDER_ID",
            hint: "name the Frame.io folder with --folder or FRAMEIO_UPLOAD_FOLDER_ID".into(),
        })?;
    if args.parallel == 0 || args.parallel > 32 {
        return Err(Exit::error(Exit::CONFIG, "--parallel must be 1 to 32"));
    }
    let path = std::fs::canonicalize(args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the path has no file name")?;
    let request = UploadRequest {
        source_key: upload::source_key(
            &path.display().to_string(),
            meta.len(),
            meta.modified().ok(),
        ),
        path,
        name,
        folder_id,
        version_of: args
            .version_of
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
    };
    let store = Store::for_settings(&config.database, &config.database_path()).await?;
    let result = send(config, &store, account, &request, args.parallel).await;
    store.close().await;
    result
}

async fn send(
    config: &Config,
    store: &Store,
    account: String,
    request: &UploadRequest,
    parallel: usize,
) -> anyhow::Result<ExitCode> {
    let client = Client::from_config(&config.frameio, Some(store.clone()))
        .context("cannot build the HTTP client")?;
    let events = EventBus::new();
    let tracker = Arc::new(Tracker::new(
        store.clone(),
        events.clone(),
        Some(Arc::new(client)),
        Arc::new(config.frameio.clone()),
    ));
    let mut uploader = Uploader::new(tracker, events, account)?;
    uploader.parallel = parallel;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        stop.cancel();
    });
    let bar = Bar::new();
    let result = uploader.upload(request, &bar, &cancel).await;
    bar.bar.finish_and_clear();
    match result {
        Ok(Done::Sent { send, stacked }) => {
            println!(
                "uploaded {} as file {}",
                send.name,
                send.file_id.as_deref().unwrap_or("?")
            );
            if let Some(url) = &send.view_url {
                println!("view: {url}");
            }
            println!("tracked as upload {}", send.id);
            match stacked {
                upload::Stacked::Created { stack_id, older } => {
                    println!("version stack {stack_id} made with file {older}")
                }
                upload::Stacked::Moved { stack_id } => {
                    println!("moved into version stack {stack_id}")
                }
                upload::Stacked::Waiting { version } => println!(
                    "version {version} of this asset is still being sent: both go into the version stack, in order, once it is complete"
                ),
                upload::Stacked::Alone => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Done::Already(send)) => {
            println!(
                "already uploaded: {} is file {}{}",
                send.name,
                send.file_id.as_deref().unwrap_or("?"),
                send.view_url
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(UploadError::Cancelled) => Err(Exit::error(
            130,
            "stopped; run the same command again to finish the upload",
        )),
        Err(e) => Err(Exit::error(Exit::FAILURE, e.to_string())),
    }
}
