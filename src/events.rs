//! In-process announcements (delivery changes, feed polls) for live views such as SSE.
//! Durable state is always written to the store before its event is sent.

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A delivery was created or changed state; read it again from the store.
    DeliveryChanged { id: i64 },
    /// New deliveries were taken in together (one event per batch of the feed's intake, in
    /// place of one `DeliveryChanged` each); read them from the store.
    DeliveriesAdded { ids: Vec<i64> },
    /// The feed was polled (successfully or not).
    FeedUpdated,
    /// A tracked Frame.io upload was registered or changed review state; read it from the store.
    UploadChanged { id: String },
    /// A running download moved on (sent a few times per second, never stored per chunk).
    Progress {
        id: i64,
        bytes: u64,
        total: Option<u64>,
        speed_bps: u64,
        eta_s: Option<u64>,
        /// Connections receiving it (more than one for a segmented download).
        segments: u32,
    },
}

/// A broadcast channel; sending with no listener is fine, a slow listener loses old events.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    /// Cancelled at shutdown so long-lived listeners (SSE) end and the server can drain.
    closed: CancellationToken,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            sender,
            closed: CancellationToken::new(),
        }
    }

    /// Tells listeners the service is stopping.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Completes once [`EventBus::close`] was called.
    pub fn closed(&self) -> WaitForCancellationFutureOwned {
        self.closed.clone().cancelled_owned()
    }

    pub fn send(&self, event: Event) {
        // An error only means nobody listens right now.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
