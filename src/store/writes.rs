//! Turns of this process's writers, and WAL checkpoints kept off their path.
//!
//! SQLite has one writer at a time: when two connections of the pool want to write at once, the
//! loser gets SQLITE_BUSY and its busy handler sleeps 1, 2, 5, 10, 15 ms... before trying again,
//! so a webhook's durable write queued behind a batch of the event processor could wait tens of
//! milliseconds after the lock was free. Writers on hot paths (the webhook receiver's group
//! commit, the processor's batches, the feed's batched intake) first take their turn here: the
//! next one starts as soon as the previous one commits.
//!
//! By default SQLite checkpoints the WAL inside the commit that takes it past 1,000 pages: that
//! commit copies the WAL into the database file and waits for two `fsync`s while it still holds
//! the writers' turn, so every webhook queued behind it waits too (tens of milliseconds on a busy
//! disk). The pool's connections have automatic checkpoints off (`wal_autocheckpoint = 0`) and a
//! background task runs a passive checkpoint (which never blocks writers nor readers) every
//! [`CHECKPOINT_EVERY`], put off (up to 5 s) while a writer holds its turn. Closing the last
//! connection still checkpoints and removes the WAL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Store;

/// How often the background task checkpoints the WAL.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Pragma for each SQLite connection of the pool: no checkpoint inside a commit.
pub(super) const NO_AUTO_CHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0;";

impl Store {
    /// Waits for this process's turn to write (held until the transaction is committed).
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writers.lock().await
    }
}

/// Ticks a checkpoint may be put off while a writer holds its turn (a large first ingest,
/// which checkpoints once at its end, or a burst of webhooks): at most 5 s.
const MAX_PUT_OFF: u32 = 10;

/// Starts the background checkpoints of an SQLite pool. They stop when the returned guard (kept
/// by every clone of the store) is dropped, or the pool is closed.
pub(super) fn start_checkpoints(
    pool: &AnyPool,
    writers: Arc<tokio::sync::Mutex<()>>,
) -> Arc<DropGuard> {
    let stop = CancellationToken::new();
    let pool = pool.clone();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut put_off = 0;
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = tick.tick() => {}
            }
            if pool.is_closed() {
                break;
            }
            // A writer in the middle of its transaction: the checkpoint would copy pages it is
            // still rewriting; wait for a quiet moment (not holding the turn: a passive
            // checkpoint does not block writers).
            if writers.try_lock().is_err() && put_off < MAX_PUT_OFF {
                put_off += 1;
                continue;
            }
            put_off = 0;
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint failed (tried again later)");
            }
        }
    });
    Arc::new(stop.drop_guard())
}
