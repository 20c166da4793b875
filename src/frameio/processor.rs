//! Background loops: the event processor (stored webhook events -> tracker) and the upload
//! poller (the safety net for missed webhooks). Their schedules live in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::tracker::{Handled, ProcessError, Tracker};
use crate::domain::{EventOutcome, Timestamp};
use crate::store::{FinishedEvent, FrameioEvent, Store};

/// Attempts before an event whose processing keeps failing is given up.
const MAX_ATTEMPTS: i64 = 8;
/// Stored events read and handled together (grouped by file, see `batch.rs`).
const BATCH: i64 = 200;
/// Calls a minute the poller may spend.
pub const POLL_CALLS_PER_MINUTE: u32 = 50;
const POLL_CALL_SPACING: Duration = Duration::from_millis(60_000 / POLL_CALLS_PER_MINUTE as u64);
/// Longest idle wait: the loops look at the store at least this often.
const IDLE: Duration = Duration::from_secs(30);

fn until(at: Option<Timestamp>) -> Duration {
    at.map(|t| {
        (t.as_datetime() - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    })
    .map_or(IDLE, |d| d.min(IDLE))
}

/// On a shared database, how often the loops look for work another instance left (events it
/// stored, claims that ran out); alone, [`IDLE`].
fn shared_wait(store: &Store) -> Duration {
    if store.may_have_peers() {
        (store.lease() / 3).max(Duration::from_millis(500))
    } else {
        IDLE
    }
}

/// Events this process finished, by outcome, and those it put back for a later attempt (for
/// `rushes_frameio_events_total`).
#[derive(Debug, Default)]
pub struct Outcomes {
    finished: [AtomicU64; EventOutcome::ALL.len()],
    retried: AtomicU64,
}

impl Outcomes {
    /// `(label, count)`: every outcome, then `retried`.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        EventOutcome::ALL
            .iter()
            .zip(&self.finished)
            .map(|(o, n)| (o.as_str(), n.load(Ordering::Relaxed)))
            .chain([("retried", self.retried.load(Ordering::Relaxed))])
            .collect()
    }

    fn add(&self, outcome: EventOutcome) {
        if let Some(i) = EventOutcome::ALL.iter().position(|o| *o == outcome) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn finish_all(store: &Store, finished: &[FinishedEvent], outcomes: &Outcomes) {
    match store.finish_frameio_events(finished).await {
        Ok(()) => finished.iter().for_each(|f| outcomes.add(f.outcome)),
        Err(e) => {
            tracing::error!(events = finished.len(), error = %e, "Frame.io: cannot record the outcome of processed events")
        }
    }
}

/// Processes stored events oldest first; wakes when the writer stores new ones.
pub struct EventProcessor {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) written: Arc<Notify>,
    pub(crate) outcomes: Arc<Outcomes>,
    /// Whether this rushes has API credentials: then events that waited for them (or for a
    /// retry) are taken up at once.
    pub(crate) has_client: bool,
}

impl EventProcessor {
    /// Records what handling `event` gave: finished (applied, unchanged, failed for good) into
    /// `finished`, or deferred to a later attempt.
    async fn settle(
        &self,
        store: &Store,
        event: &FrameioEvent,
        result: Result<Handled, ProcessError>,
        finished: &mut Vec<FinishedEvent>,
    ) {
        let retry = match result {
            Ok(outcome) => {
                tracing::debug!(event = %event.id, kind = %event.event_type, outcome = %outcome.outcome, "Frame.io: event processed");
                finished.push(FinishedEvent {
                    id: event.id,
                    outcome: outcome.outcome,
                    upload_id: outcome.upload_id,
                    error: None,
                });
                return;
            }
            // Started without the Frame.io settings: kept as they are (no attempt spent) until
            // rushes starts with them again.
            Err(e) if e.is_missing_settings() => {
                tracing::warn!(event = %event.id, kind = %event.event_type, error = %e, "Frame.io: event waits for the Frame.io settings (processed when rushes starts with them)");
                let reason = format!("waits for the Frame.io settings: {e}");
                if let Err(e) = store.wait_frameio_event(event.id, &reason).await {
                    tracing::error!(event = %event.id, error = %e, "Frame.io: cannot record an event's outcome");
                }
                return;
            }
            // Expired or revoked credentials: kept, tried again at the next poll interval (the
            // client refuses at once until then: no retry storm).
            Err(e) if e.is_credentials() && event.attempts + 1 < MAX_ATTEMPTS => {
                let wait = self.tracker.poll_interval();
                tracing::warn!(event = %event.id, kind = %event.event_type, error = %e, retry_in_s = wait.as_secs(), "Frame.io: event waits for valid credentials");
                (e, wait)
            }
            Err(e) if e.is_transient() && event.attempts + 1 < MAX_ATTEMPTS => {
                let wait = Duration::from_secs(1 << (event.attempts + 1).min(9));
                tracing::warn!(event = %event.id, kind = %event.event_type, error = %e, retry_in_s = wait.as_secs(), "Frame.io: event processing failed, will retry");
                (e, wait)
            }
            Err(e) => {
                tracing::error!(event = %event.id, kind = %event.event_type, error = %e, "Frame.io: event processing failed");
                finished.push(FinishedEvent {
                    id: event.id,
                    outcome: EventOutcome::Failed,
                    upload_id: None,
                    error: Some(e.to_string()),
                });
                return;
            }
        };
        let (e, wait) = retry;
        let stored = store
            .defer_frameio_event(event.id, &e.to_string(), Timestamp::now().plus(wait))
            .await;
        match stored {
            Ok(()) => {
                self.outcomes.retried.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "Frame.io: cannot record an event's outcome")
            }
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let store = self.tracker.store().clone();
        if self.has_client {
            match store.release_waiting_frameio_events().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    events = n,
                    "Frame.io: events that waited for the settings or a retry are processed now"
                ),
                Err(e) => tracing::error!(error = %e, "Frame.io: cannot release waiting events"),
            }
        }
        loop {
            let pending = match store.pending_frameio_events(Timestamp::now(), BATCH).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "Frame.io: cannot read pending events");
                    Vec::new()
                }
            };
            let busy = !pending.is_empty();
            // Events of one file are handled together, files in parallel (see `batch.rs`).
            // Outcomes are written together after the batch: one transaction instead of one per
            // event, so the receiver's group commits rarely wait for the write lock. An event
            // handled again after a crash before that write is applied idempotently.
            let mut finished: Vec<FinishedEvent> = Vec::with_capacity(pending.len());
            let results = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.tracker.handle_batch(&pending) => r,
            };
            for (event, result) in pending.iter().zip(results) {
                self.settle(&store, event, result, &mut finished).await;
            }
            finish_all(&store, &finished, &self.outcomes).await;
            if busy {
                continue;
            }
            // Other instances store events too (and one may die before processing them).
            let wait =
                until(store.next_frameio_retry().await.ok().flatten()).min(shared_wait(&store));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.written.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Polls tracked uploads that are not final, each once per `FRAMEIO_POLL_INTERVAL`, at moments
/// spread over the interval.
pub struct UploadPoller {
    pub(crate) tracker: Arc<Tracker>,
}

impl UploadPoller {
    pub async fn run(self, cancel: CancellationToken) {
        let store: Store = self.tracker.store().clone();
        // After downtime every upload is overdue: spread them instead of polling all at once.
        match store.uploads_due(Timestamp::now(), i64::MAX).await {
            Ok(overdue) => {
                for upload in overdue {
                    let at = self.tracker.spread_poll_time();
                    if let Err(e) = store.set_next_poll(&upload.id, at).await {
                        tracing::error!(error = %e, "Frame.io: cannot reschedule a poll");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "Frame.io: cannot read the poll schedule"),
        }
        let wake = self.tracker.poll_wake.clone();
        loop {
            let due = store
                .uploads_due(Timestamp::now(), 20)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "Frame.io: cannot read the poll schedule");
                    Vec::new()
                });
            for upload in due {
                let calls_before = self.tracker.api_calls();
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = self.tracker.poll(&upload) => r,
                };
                // Spend at most POLL_CALLS_PER_MINUTE calls a minute on polls, whatever the
                // number of open uploads (Frame.io allows ~100 comment/metadata calls a minute
                // per account user; the rest is left to webhook-driven calls).
                let spent = self.tracker.api_calls() - calls_before;
                let pause = POLL_CALL_SPACING.saturating_mul(spent.min(100) as u32);
                if !pause.is_zero() {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                match result {
                    Ok(changed) => {
                        tracing::debug!(upload = %upload.id, changed, "Frame.io: polled")
                    }
                    Err(e) => {
                        tracing::warn!(upload = %upload.id, error = %e, "Frame.io: poll failed")
                    }
                }
            }
            let wait =
                until(store.next_upload_poll().await.ok().flatten()).min(shared_wait(&store));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
