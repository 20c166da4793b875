//! Frame.io review tracking: one webhook per workspace, events routed to tracked uploads by file
//! id, comments fetched only for tracked files and analysed into a review state, and periodic
//! polling as a safety net.

mod api_types;
mod auth;
mod batch;
pub mod client;
mod create;
mod errors;
pub mod inbox;
pub(crate) mod inspector;
pub(crate) mod keeper;
pub(crate) mod manage;
mod pacing;
mod parts;
pub(crate) mod processor;
pub(crate) mod refusals;
pub(crate) mod review;
mod route;
pub(crate) mod tracker;
pub mod upload;
mod upload_api;
mod upload_report;
pub(crate) mod versions;
pub(crate) mod watch_folder;
pub mod webhook;

/// The review reader, for `rushes frameio verdict`, the trainer and the benchmark.
pub use review::{Analysis, Policy, Reader, Votes, corpus, eval, lexicon, llm, model, words};

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, FrameioConfig};
use crate::events::EventBus;
use crate::store::Store;
use client::Client;
use processor::{EventProcessor, UploadPoller};
use tracker::Tracker;
use webhook::{EventWriter, Receiver};

/// What the web handlers reach.
#[derive(Clone)]
pub struct FrameioHandle {
    pub receiver: Receiver,
    /// Refused webhook calls not written yet (see `refusals.rs`).
    pub refusals: refusals::Refusals,
    pub tracker: Arc<Tracker>,
    /// The workspace webhook as the keeper last saw it.
    pub webhook: keeper::WebhookState,
    /// Events processed by this process, by outcome.
    pub outcomes: Arc<processor::Outcomes>,
}

/// The background parts, not yet running.
pub struct FrameioTasks {
    writer: EventWriter,
    refusals: refusals::Refusals,
    store: Store,
    processor: EventProcessor,
    poller: Option<UploadPoller>,
    keeper: keeper::WebhookKeeper,
    /// `FRAMEIO_UPLOAD_DIR`: files put there are sent to Frame.io.
    watch: Option<watch_folder::WatchFolder>,
}

/// Builds the Frame.io side from its settings. Works with nothing configured. `cleanup`
/// deactivates the webhook when rushes stops. A review lexicon that cannot be read is a
/// configuration mistake.
pub fn build(
    config: &FrameioConfig,
    store: Store,
    events: EventBus,
    cleanup: bool,
) -> Result<(FrameioHandle, FrameioTasks), ConfigError> {
    let reader = Arc::new(Reader::from_settings(&config.review)?);
    let client = Client::from_config(config, Some(store.clone())).map(Arc::new);
    let webhook = keeper::new_state(config);
    let config = Arc::new(config.clone());
    let written = Arc::new(Notify::new());
    let (receiver, writer) = webhook::receiver(
        config.webhook_secret.clone(),
        store.clone(),
        written.clone(),
    );
    let refusals = refusals::Refusals::default();
    let has_client = client.is_some();
    let keeper = keeper::WebhookKeeper {
        client: client.clone(),
        store: store.clone(),
        config: config.clone(),
        state: webhook.clone(),
        cleanup,
    };
    let tracker = Arc::new(
        Tracker::new(store.clone(), events.clone(), client, config.clone()).with_reader(reader),
    );
    let watch = watch_folder(&config, &tracker, events);
    let outcomes = Arc::new(processor::Outcomes::default());
    let poller = has_client.then(|| UploadPoller {
        tracker: tracker.clone(),
    });
    Ok((
        FrameioHandle {
            receiver,
            refusals: refusals.clone(),
            tracker: tracker.clone(),
            webhook,
            outcomes: outcomes.clone(),
        },
        FrameioTasks {
            writer,
            refusals,
            store,
            processor: EventProcessor {
                tracker,
                written,
                outcomes,
                has_client,
            },
            poller,
            keeper,
            watch,
        },
    ))
}

/// The watch folder, when `FRAMEIO_UPLOAD_DIR` is set (the configuration made sure that the
/// folder id, the account and credentials are there too).
fn watch_folder(
    config: &FrameioConfig,
    tracker: &Arc<Tracker>,
    events: EventBus,
) -> Option<watch_folder::WatchFolder> {
    let dir = config.upload.dir.clone()?;
    let (Some(folder_id), Some(account)) =
        (config.upload.folder_id.clone(), config.account_id.clone())
    else {
        tracing::error!(
            "Frame.io: FRAMEIO_UPLOAD_DIR needs FRAMEIO_UPLOAD_FOLDER_ID and FRAMEIO_ACCOUNT_ID; not watching it"
        );
        return None;
    };
    match upload::Uploader::new(tracker.clone(), events, account) {
        Ok(mut uploader) => {
            uploader.wait_busy = false;
            Some(watch_folder::WatchFolder {
                dir,
                folder_id,
                settle: config.upload.settle,
                uploader: Arc::new(uploader),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "Frame.io: cannot start the watch folder");
            None
        }
    }
}

impl FrameioTasks {
    /// Spawns the loops. `cancel` stops the processor and the poller; `writer_stop` stops the
    /// event writer and must come after the HTTP server has drained (it answers in-flight
    /// deliveries). `public_urls` carries rushes' public base URL: the webhook follows it.
    pub fn spawn(
        self,
        tasks: &TaskTracker,
        cancel: CancellationToken,
        writer_stop: CancellationToken,
        public_urls: watch::Receiver<Option<String>>,
    ) {
        tasks.spawn(self.refusals.run(self.store, writer_stop.clone()));
        tasks.spawn(self.writer.run(writer_stop));
        tasks.spawn(self.keeper.run(public_urls, cancel.clone()));
        tasks.spawn(self.processor.run(cancel.clone()));
        if let Some(watch) = self.watch {
            tasks.spawn(watch.run(cancel.clone()));
        }
        match self.poller {
            Some(poller) => {
                tasks.spawn(poller.run(cancel));
            }
            None => tracing::info!(
                "Frame.io: no API credentials (FRAMEIO_TOKEN or IMS), uploads are not polled"
            ),
        }
    }
}
