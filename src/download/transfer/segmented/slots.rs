//! Connections per host, shared by every download of the process: each connection (the first
//! one of a download and each segment) holds a slot; at most `max(DOWNLOAD_SEGMENTS, 2)` per host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use url::Url;

pub(super) struct Host {
    pub(super) slots: Arc<Semaphore>,
    pub(super) waiting: AtomicUsize,
}

/// Connections per host, shared by every download of the process.
pub(super) static HOSTS: LazyLock<Mutex<HashMap<String, Arc<Host>>>> =
    LazyLock::new(Default::default);

/// One connection to a host, held while it is open.
pub(in crate::download::transfer) struct HostSlot {
    _permit: OwnedSemaphorePermit,
    host: Arc<Host>,
}

impl HostSlot {
    /// Someone else waits for a connection to this host.
    pub(super) fn wanted_elsewhere(&self) -> bool {
        self.host.waiting.load(Ordering::Relaxed) > 0
    }
}

/// Connections allowed per host for jobs segmented up to `count`: the engine's two downloads per
/// host keep working, and one download can use all of its segments.
pub(in crate::download::transfer) fn host_capacity(count: usize) -> usize {
    count.max(2)
}

pub(super) fn host_entry(url: &Url, capacity: usize) -> Arc<Host> {
    let key = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    );
    let mut hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    hosts
        .entry(key)
        .or_insert_with(|| {
            Arc::new(Host {
                slots: Arc::new(Semaphore::new(capacity)),
                waiting: AtomicUsize::new(0),
            })
        })
        .clone()
}

/// Waits for a connection slot to `url`'s host; `None` if cancelled first.
pub(in crate::download::transfer) async fn host_slot(
    url: &Url,
    capacity: usize,
    cancel: &CancellationToken,
) -> Option<HostSlot> {
    let host = host_entry(url, capacity);
    if let Ok(permit) = host.slots.clone().try_acquire_owned() {
        return Some(HostSlot {
            _permit: permit,
            host,
        });
    }
    host.waiting.fetch_add(1, Ordering::Relaxed);
    let permit = tokio::select! {
        () = cancel.cancelled() => None,
        p = host.slots.clone().acquire_owned() => p.ok(),
    };
    host.waiting.fetch_sub(1, Ordering::Relaxed);
    permit.map(|permit| HostSlot {
        _permit: permit,
        host,
    })
}

pub(super) fn try_host_slot(url: &Url, capacity: usize) -> Option<HostSlot> {
    let host = host_entry(url, capacity);
    let permit = host.slots.clone().try_acquire_owned().ok()?;
    Some(HostSlot {
        _permit: permit,
        host,
    })
}
