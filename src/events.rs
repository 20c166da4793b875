//! In-process announcements (delivery changes, feed polls) for live views such as SSE.
//! Durable state is always written to the store before its event is sent.

use std::sync::{Arc, OnceLock};

use crate::domain::{DeliveryId, UploadId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A delivery was created or changed state; read it again from the store.
    DeliveryChanged { id: DeliveryId },
    /// New deliveries were taken in together (one event per batch of the feed's intake, in
    /// place of one `DeliveryChanged` each); read them from the store.
    DeliveriesAdded { ids: Vec<DeliveryId> },
    /// The feed was polled (successfully or not).
    FeedUpdated,
    /// A tracked Frame.io upload was registered or changed review state; read it from the store.
    UploadChanged { id: UploadId },
    /// A running download moved on (sent a few times per second, never stored per chunk).
    Progress {
        id: DeliveryId,
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
    /// Events sent here, for the other instances on a shared database (see [`EventBus::tap`]).
    outgoing: Arc<OnceLock<tokio::sync::mpsc::Sender<Event>>>,
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
            outgoing: Arc::default(),
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
        if let Some(outgoing) = self.outgoing.get() {
            // Full: the relay is behind; it sends a catch-all refresh instead (see cluster.rs).
            let _ = outgoing.try_send(event.clone());
        }
        // An error only means nobody listens right now.
        let _ = self.sender.send(event);
    }

    /// An event that happened on another instance: to the local listeners only.
    pub fn inject(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// From now on, a copy of every event sent on this instance (not injected ones) goes to the
    /// returned receiver, which relays them to the other instances. Only the first call taps.
    pub fn tap(&self, capacity: usize) -> Option<tokio::sync::mpsc::Receiver<Event>> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.outgoing.set(tx).ok().map(|()| rx)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
