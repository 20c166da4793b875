//! Frame.io review tracking: one webhook per workspace, events routed to tracked uploads by file
//! id, comments fetched only for tracked files and analysed into a review state, and periodic
//! polling as a safety net.

mod auth;
pub mod client;
pub(crate) mod manage;
pub(crate) mod processor;
pub(crate) mod review;
mod route;
pub(crate) mod tracker;
pub mod webhook;

/// The comment analysis, for `rushes frameio verdict` and the benchmark.
pub use review::{Analysis, analyse_text};

use std::sync::Arc;

use tokio::sync::Notify;
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
}

/// The background parts, not yet running.
pub struct FrameioTasks {
    writer: EventWriter,
    processor: EventProcessor,
    poller: Option<UploadPoller>,
}

/// Builds the Frame.io side from its settings. Works with nothing configured.
pub fn build(
    config: &FrameioConfig,
    store: Store,
    events: EventBus,
) -> (FrameioHandle, FrameioTasks) {
    let client = Client::from_config(config, Some(store.clone())).map(Arc::new);
    let config = Arc::new(config.clone());
    let written = Arc::new(Notify::new());
    let (receiver, writer) = webhook::receiver(
        config.webhook_secret.clone(),
        store.clone(),
        written.clone(),
    );
    let has_client = client.is_some();
    let tracker = Arc::new(Tracker::new(store, events, client, config));
    let poller = has_client.then(|| UploadPoller {
        tracker: tracker.clone(),
    });
    (
        FrameioHandle {
            receiver,
            tracker: tracker.clone(),
        },
        FrameioTasks {
            writer,
            processor: EventProcessor { tracker, written },
            poller,
        },
    )
}

impl FrameioTasks {
    /// Spawns the loops. `cancel` stops the processor and the poller; `writer_stop` stops the
    /// event writer and must come after the HTTP server has drained (it answers in-flight
    /// deliveries).
    pub fn spawn(
        self,
        tasks: &TaskTracker,
        cancel: CancellationToken,
        writer_stop: CancellationToken,
    ) {
        tasks.spawn(self.writer.run(writer_stop));
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
