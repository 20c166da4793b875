//! A download's observer in the service: its part, tries, progress and segments written to the
//! store and announced on the event bus.
//!
//! The transfer never waits for the database while bytes flow (it may be away: PostgreSQL
//! restarting). Progress (at most once a second) and the segments' snapshots go to a writer
//! task of the download's own, which keeps only the newest figures not written yet and tries
//! again while the database does not answer. Writes that must stay in order (the part chosen, a
//! try, the segments before the part is sized, the final name) first wait for that writer to
//! be done, then for the database itself (`patience.rs`), rather than failing the download.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::patience::{PAUSE_FIRST, longer, until_stored};
use crate::domain::UrlRole;
use crate::download::transfer::{Observer, Progress, Segment};
use crate::events::{Event, EventBus};
use crate::naming::SafeFileName;
use crate::store::{SegmentRow, Store, StoreError};

/// The store gets a running download's progress at most this often.
const STORE_EVERY: Duration = Duration::from_secs(1);

/// Persists a download's progress and announces it on the bus.
pub(super) struct StoreObserver {
    store: Store,
    events: EventBus,
    id: i64,
    /// The download's own: a write waiting for the database stops waiting with it.
    cancel: CancellationToken,
    last_store: Option<Instant>,
    writer: Option<Lagging>,
}

/// The figures not written yet (the newest of each kind).
#[derive(Default)]
struct Latest {
    progress: Option<(i64, Option<i64>)>,
    segments: Option<Vec<SegmentRow>>,
    /// Write what is left, then end.
    closing: bool,
}

/// The writer task of one download and what it shares with the transfer.
struct Lagging {
    latest: Arc<Mutex<Latest>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(latest: &Mutex<Latest>) -> MutexGuard<'_, Latest> {
    latest.lock().unwrap_or_else(|e| e.into_inner())
}

impl StoreObserver {
    pub(super) fn new(store: Store, events: EventBus, id: i64, cancel: CancellationToken) -> Self {
        Self {
            store,
            events,
            id,
            cancel,
            last_store: None,
            writer: None,
        }
    }

    /// The writer task, started when first needed.
    fn writer(&mut self) -> &Lagging {
        self.writer.get_or_insert_with(|| {
            let latest = Arc::new(Mutex::new(Latest::default()));
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(write_latest(
                self.store.clone(),
                self.id,
                latest.clone(),
                wake.clone(),
                self.cancel.clone(),
            ));
            Lagging { latest, wake, task }
        })
    }

    fn later(&mut self, put: impl FnOnce(&mut Latest)) {
        let writer = self.writer();
        put(&mut lock(&writer.latest));
        writer.wake.notify_one();
    }

    /// Waits until the figures handed to the writer are written (or the download stopped).
    async fn settle(&mut self) {
        if let Some(writer) = &mut self.writer {
            lock(&writer.latest).closing = true;
            writer.wake.notify_one();
            // Kept in `self` while waited for: if this wait is dropped, so is the writer.
            let _ = (&mut writer.task).await;
            self.writer = None;
        }
    }

    async fn ordered<T, F, Fut>(&mut self, what: &str, write: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.settle().await;
        until_stored(&self.cancel, self.id, what, write)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for StoreObserver {
    fn drop(&mut self) {
        // Figures not written by now are dropped: an older snapshot only makes a resume fetch
        // again what it already had, while a stale one written after the next run's own
        // writes could not be told from them.
        if let Some(writer) = self.writer.take() {
            writer.task.abort();
        }
    }
}

/// The writer task: writes the newest segments, then the newest progress, whenever there are
/// some; what the database did not take is kept (unless newer came) and tried again.
async fn write_latest(
    store: Store,
    id: i64,
    latest: Arc<Mutex<Latest>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut pause = PAUSE_FIRST;
    let mut waiting_since: Option<Instant> = None;
    loop {
        let (segments, progress, closing) = {
            let mut l = lock(&latest);
            (l.segments.take(), l.progress.take(), l.closing)
        };
        if segments.is_none() && progress.is_none() {
            if closing {
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => continue,
            }
        }
        let unreachable = write_once(&store, id, &latest, segments, progress).await;
        match unreachable {
            None => {
                if let Some(since) = waiting_since.take() {
                    tracing::info!(
                        id,
                        waited_ms = since.elapsed().as_millis() as u64,
                        "download progress stored again"
                    );
                }
                pause = PAUSE_FIRST;
            }
            Some(e) => {
                if waiting_since.is_none() {
                    waiting_since = Some(Instant::now());
                    tracing::warn!(id, error = %e, "the database does not answer: the download goes on, its progress is stored when it does");
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = longer(pause);
            }
        }
    }
}

/// Writes the segments, then the progress; what the database did not take goes back into
/// `latest` (unless newer figures came meanwhile) and its error is returned. Other errors are
/// logged: those figures are not tried again.
async fn write_once(
    store: &Store,
    id: i64,
    latest: &Mutex<Latest>,
    segments: Option<Vec<SegmentRow>>,
    progress: Option<(i64, Option<i64>)>,
) -> Option<StoreError> {
    if let Some(rows) = segments {
        match store.set_download_segments(id, &rows).await {
            Ok(()) => {}
            Err(e) if e.is_unreachable() => {
                let mut l = lock(latest);
                l.segments.get_or_insert(rows);
                if let Some(figures) = progress {
                    l.progress.get_or_insert(figures);
                }
                return Some(e);
            }
            Err(e) => tracing::warn!(id, error = %e, "cannot store the download's segments"),
        }
    }
    let (bytes, total) = progress?;
    match store.set_download_progress(id, bytes, total).await {
        Ok(()) => None,
        Err(e) if e.is_unreachable() => {
            lock(latest).progress.get_or_insert((bytes, total));
            Some(e)
        }
        Err(e) => {
            tracing::warn!(id, error = %e, "cannot store download progress");
            None
        }
    }
}

impl Observer for StoreObserver {
    async fn part_chosen(
        &mut self,
        part: &Path,
        name: &SafeFileName,
        validator: Option<&str>,
        total: Option<u64>,
    ) -> Result<(), String> {
        let (store, id) = (self.store.clone(), self.id);
        let part = part.display().to_string();
        let total = total.map(|t| t as i64);
        self.ordered("the partial file", || {
            store.set_download_part(id, Some(&part), Some(name.as_str()), validator, total)
        })
        .await
    }

    async fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), String> {
        let (store, id) = (self.store.clone(), self.id);
        self.ordered("a try", || {
            store.record_download_attempt(id, role, shown_url, try_number, error)
        })
        .await
    }

    async fn progress(&mut self, p: Progress) {
        self.events.send(Event::Progress {
            id: crate::domain::DeliveryId(self.id),
            bytes: p.bytes,
            total: p.total,
            speed_bps: p.speed_bps,
            eta_s: p.eta_s,
            segments: p.segments,
        });
        let now = Instant::now();
        if self
            .last_store
            .is_none_or(|t| now.duration_since(t) >= STORE_EVERY)
        {
            self.last_store = Some(now);
            let figures = (p.bytes as i64, p.total.map(|t| t as i64));
            self.later(|l| l.progress = Some(figures));
        }
    }

    async fn segments(&mut self, segments: &[Segment]) -> Result<(), String> {
        let (store, id) = (self.store.clone(), self.id);
        let rows = rows(segments);
        self.ordered("the segments", || store.set_download_segments(id, &rows))
            .await
    }

    async fn segments_snapshot(&mut self, segments: &[Segment]) -> Result<(), String> {
        let rows = rows(segments);
        self.later(|l| l.segments = Some(rows));
        Ok(())
    }

    async fn before_rename(
        &mut self,
        final_path: &Path,
        sha256: &str,
        bytes: u64,
    ) -> Result<(), String> {
        let (store, id) = (self.store.clone(), self.id);
        let path = final_path.display().to_string();
        self.ordered("the final name", || {
            store.set_download_final(id, &path, sha256, bytes as i64)
        })
        .await
    }
}

fn rows(segments: &[Segment]) -> Vec<SegmentRow> {
    segments
        .iter()
        .map(|s| SegmentRow {
            start_byte: s.start as i64,
            end_byte: s.end as i64,
            done_bytes: s.done as i64,
        })
        .collect()
}
