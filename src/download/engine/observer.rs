//! A download's observer in the service: its part, tries, progress and segments written to the
//! store (progress at most once a second) and announced on the event bus.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::domain::UrlRole;
use crate::download::transfer::{Observer, Progress, Segment};
use crate::events::{Event, EventBus};
use crate::naming::SafeFileName;
use crate::store::{SegmentRow, Store};

/// The store gets a running download's progress at most this often.
const STORE_EVERY: Duration = Duration::from_secs(1);

/// Persists a download's progress (throttled) and announces it on the bus.
pub(super) struct StoreObserver {
    pub(super) store: Store,
    pub(super) events: EventBus,
    pub(super) id: i64,
    pub(super) last_store: Option<Instant>,
    /// The progress write under way: the transfer never waits for it (the database may be
    /// away); the next write starts once it ended, with the newest figures. Other writes wait
    /// for it first, so that they stay in order.
    pub(super) progress_write: Option<tokio::task::JoinHandle<()>>,
}

impl StoreObserver {
    async fn settle_progress(&mut self) {
        if let Some(write) = self.progress_write.take() {
            let _ = write.await;
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
        self.settle_progress().await;
        self.store
            .set_download_part(
                self.id,
                Some(&part.display().to_string()),
                Some(name.as_str()),
                validator,
                total.map(|t| t as i64),
            )
            .await
            .map_err(|e| e.to_string())
    }

    async fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), String> {
        self.settle_progress().await;
        self.store
            .record_download_attempt(self.id, role, shown_url, try_number, error)
            .await
            .map_err(|e| e.to_string())
    }

    async fn progress(&mut self, p: Progress) {
        self.events.send(Event::Progress {
            id: self.id,
            bytes: p.bytes,
            total: p.total,
            speed_bps: p.speed_bps,
            eta_s: p.eta_s,
            segments: p.segments,
        });
        let now = Instant::now();
        let busy = self
            .progress_write
            .as_ref()
            .is_some_and(|w| !w.is_finished());
        if !busy
            && self
                .last_store
                .is_none_or(|t| now.duration_since(t) >= STORE_EVERY)
        {
            self.last_store = Some(now);
            let (store, id) = (self.store.clone(), self.id);
            self.progress_write = Some(tokio::spawn(async move {
                let stored = store
                    .set_download_progress(id, p.bytes as i64, p.total.map(|t| t as i64))
                    .await;
                if let Err(e) = stored {
                    tracing::warn!(id, error = %e, "cannot store download progress");
                }
            }));
        }
    }

    async fn segments(&mut self, segments: &[Segment]) -> Result<(), String> {
        self.settle_progress().await;
        let rows: Vec<SegmentRow> = segments
            .iter()
            .map(|s| SegmentRow {
                start_byte: s.start as i64,
                end_byte: s.end as i64,
                done_bytes: s.done as i64,
            })
            .collect();
        self.store
            .set_download_segments(self.id, &rows)
            .await
            .map_err(|e| e.to_string())
    }

    async fn before_rename(
        &mut self,
        final_path: &Path,
        sha256: &str,
        bytes: u64,
    ) -> Result<(), String> {
        self.settle_progress().await;
        self.store
            .set_download_final(
                self.id,
                &final_path.display().to_string(),
                sha256,
                bytes as i64,
            )
            .await
            .map_err(|e| e.to_string())
    }
}
