//! Talking to a running engine from outside (the web API, the CLI through it): wake it up, cancel
//! a download, give a transfer password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::DeliveryId;

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) running: Mutex<HashMap<DeliveryId, CancellationToken>>,
    pub(super) wake: Notify,
    /// Transfer passwords given from the page, the API or `rushes password`, per delivery: in
    /// memory only (never written to disk or logged), forgotten once used successfully or refused.
    passwords: Mutex<HashMap<DeliveryId, secrecy::SecretString>>,
}

/// Talks to a running engine: wake it up, cancel one download. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DownloadHandle {
    pub(super) shared: Arc<Shared>,
}

impl DownloadHandle {
    /// Look for queued deliveries now rather than at the next tick.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Keeps `password` for delivery `id`'s next try (see `Shared::passwords`).
    pub fn set_password(&self, id: DeliveryId, password: secrecy::SecretString) {
        self.passwords().insert(id, password);
    }

    pub(super) fn password(&self, id: DeliveryId) -> Option<secrecy::SecretString> {
        self.passwords().get(&id).cloned()
    }

    pub(super) fn forget_password(&self, id: DeliveryId) {
        self.passwords().remove(&id);
    }

    fn passwords(&self) -> std::sync::MutexGuard<'_, HashMap<DeliveryId, secrecy::SecretString>> {
        self.shared
            .passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The deliveries downloading here now.
    pub(super) fn running_ids(&self) -> Vec<DeliveryId> {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Stops the running download of `id`, if any (its `.part` is kept). The caller has
    /// already moved the delivery out of `downloading`, or this instance lost (or is about to
    /// lose) its lease on it.
    pub fn cancel(&self, id: DeliveryId) -> bool {
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match running.get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}
