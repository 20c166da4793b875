//! Frame.io review tracking: one webhook per workspace, events routed to tracked uploads by file
//! id, comments fetched only for tracked files and analysed into a review state, and periodic
//! polling as a safety net.

mod auth;
pub mod client;
pub(crate) mod inspector;
pub(crate) mod keeper;
pub(crate) mod manage;
mod parts;
pub(crate) mod processor;
pub(crate) mod review;
mod route;
pub(crate) mod tracker;
pub mod upload;
mod upload_api;
pub(crate) mod versions;
pub mod webhook;

/// The comment analysis, for `rushes frameio verdict` and the benchmark.
pub use review::{Analysis, analyse_text};

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FrameioConfig;
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
    pub tracker: Arc<Tracker>,
    /// The workspace webhook as the keeper last saw it.
    pub webhook: keeper::WebhookState,
}

/// The background parts, not yet running.
pub struct FrameioTasks {
    writer: EventWriter,
    processor: EventProcessor,
    poller: Option<UploadPoller>,
    keeper: keeper::WebhookKeeper,
}

/// Builds the Frame.io side from its settings. Works with nothing configured. `cleanup`
/// deactivates the webhook when rushes stops.
pub fn build(
    config: &FrameioConfig,
    store: Store,
    events: EventBus,
    cleanup: bool,
) -> (FrameioHandle, FrameioTasks) {
    let client = Client::from_config(config, Some(store.clone())).map(Arc::new);
    let webhook = keeper::new_state(config);
    let config = Arc::new(config.clone());
    let written = Arc::new(Notify::new());
    let (receiver, writer) = webhook::receiver(
        config.webhook_secret.clone(),
        store.clone(),
        written.clone(),
    );
    let has_client = client.is_some();
    let keeper = keeper::WebhookKeeper {
        client: client.clone(),
        store: store.clone(),
        config: config.clone(),
        state: webhook.clone(),
        cleanup,
    };
    let tracker = Arc::new(Tracker::new(store, events, client, config));
    let poller = has_client.then(|| UploadPoller {
        tracker: tracker.clone(),
    });
    (
        FrameioHandle {
            receiver,
            tracker: tracker.clone(),
            webhook,
        },
        FrameioTasks {
            writer,
            processor: EventProcessor { tracker, written },
            poller,
            keeper,
        },
    )
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
        tasks.spawn(self.writer.run(writer_stop));
        tasks.spawn(self.keeper.run(public_urls, cancel.clone()));
        tasks.spawn(self.processor.run(cancel.clone()));
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
