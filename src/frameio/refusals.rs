//! Refused webhook calls, kept in memory and written in bounded samples.
//!
//! `/webhooks/frameio` is the one route a tunnel exposes to the internet: anybody can call it.
//! A refused call must cost no disk write of its own, or a flood of unsigned bodies fills the
//! disk (each call was one transaction: 50 MB/s of WAL under 6 connections). So a refusal is
//! counted in memory and its details join a sample of the newest [`KEPT_REJECTED`]; a background
//! task writes the sample and the count in one transaction at most once every
//! [`WRITE_EVERY`] (the first refusal after a quiet second at once). The inspector's readers
//! write what is pending before they read, so what they show is exact. Logs follow the same
//! rule: the first refusal of a quiet spell is logged in full, the others are summed up in one
//! line at most every [`SUMMARY_EVERY`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::inspector;
use super::webhook::ReceiveError;
use crate::store::{KEPT_REJECTED, NewRejectedCall, Store, StoreError};

/// At most one write of refused calls this often.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

/// At most one log line about refused calls this often (after the first one of a quiet spell).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Refused calls not written yet, shared by the web handlers and the writing task.
#[derive(Clone, Default)]
pub struct Refusals {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<Pending>,
    /// Refusals counted but not yet in the store (the sample may hold fewer).
    unwritten: AtomicU64,
    wake: Notify,
    /// One write at a time (the task and the inspector's readers).
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Pending {
    /// The newest refused calls (at most [`KEPT_REJECTED`]), oldest first.
    sample: VecDeque<NewRejectedCall>,
    /// Refusals since the last log line, by verdict.
    unlogged: BTreeMap<&'static str, u64>,
    last_log: Option<Instant>,
}

impl Refusals {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Nothing here can leave the sample half-changed: a poisoned lock is still usable.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a refused call: counted, sampled, logged (or summed up later). No disk write.
    pub fn note(&self, status: u16, error: &ReceiveError, body: &[u8]) {
        let call = inspector::rejected_call(status, error, body);
        let log_now = {
            let mut pending = self.pending();
            if pending.sample.len() >= sample_size() {
                pending.sample.pop_front();
            }
            pending.sample.push_back(call);
            let quiet = pending
                .last_log
                .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
            if quiet && pending.unlogged.is_empty() {
                pending.last_log = Some(Instant::now());
            } else {
                *pending
                    .unlogged
                    .entry(inspector::verdict(error))
                    .or_default() += 1;
            }
            quiet && pending.unlogged.is_empty()
        };
        self.inner.unwritten.fetch_add(1, Ordering::Relaxed);
        if log_now {
            tracing::warn!(status, bytes = body.len(), reason = %error, "Frame.io webhook refused");
        }
        self.inner.wake.notify_one();
    }

    /// Refused calls counted but not written yet.
    pub fn unwritten(&self) -> u64 {
        self.inner.unwritten.load(Ordering::Relaxed)
    }

    /// Writes the pending sample and count in one transaction (nothing when none is pending).
    pub async fn write(&self, store: &Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.writing.lock().await;
        let count = self.unwritten();
        if count == 0 {
            return Ok(());
        }
        let sample: Vec<NewRejectedCall> = self.pending().sample.drain(..).collect();
        match store.record_rejected_calls(&sample, count).await {
            Ok(()) => {
                self.inner.unwritten.fetch_sub(count, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // Put the sample back (newer calls keep their place at the end).
                let mut pending = self.pending();
                for call in sample.into_iter().rev() {
                    if pending.sample.len() >= sample_size() {
                        break;
                    }
                    pending.sample.push_front(call);
                }
                Err(e)
            }
        }
    }

    /// The log line that sums up refusals not logged one by one, when one is due.
    fn summary(&self, force: bool) -> Option<String> {
        let mut pending = self.pending();
        if pending.unlogged.is_empty() {
            return None;
        }
        let due = pending
            .last_log
            .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
        if !(due || force) {
            return None;
        }
        let total: u64 = pending.unlogged.values().sum();
        let kinds: Vec<String> = pending
            .unlogged
            .iter()
            .map(|(verdict, n)| format!("{verdict}: {n}"))
            .collect();
        pending.unlogged.clear();
        pending.last_log = Some(Instant::now());
        Some(format!(
            "Frame.io webhook: {total} more call(s) refused ({})",
            kinds.join(", ")
        ))
    }

    /// Writes refused calls at most once every [`WRITE_EVERY`] and logs their summaries, until
    /// `stop` (then writes what is left).
    pub async fn run(self, store: Store, stop: CancellationToken) {
        loop {
            let summary_due = tokio::time::sleep(SUMMARY_EVERY);
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = summary_due => {}
            }
            if let Err(e) = self.write(&store).await {
                tracing::error!(error = %e, "Frame.io: cannot record refused webhook calls");
            }
            if let Some(line) = self.summary(false) {
                tracing::warn!("{line}");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(WRITE_EVERY) => {}
            }
        }
        if let Err(e) = self.write(&store).await {
            tracing::error!(error = %e, "Frame.io: cannot record refused webhook calls");
        }
        if let Some(line) = self.summary(true) {
            tracing::warn!("{line}");
        }
    }
}

fn sample_size() -> usize {
    usize::try_from(KEPT_REJECTED).unwrap_or(100)
}
