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
//!
//! A passive checkpoint alone does not bound the WAL: SQLite rewinds the WAL only when a writer
//! starts after a checkpoint copied every frame, and under a steady stream of commits (a flood of
//! webhooks, a long first ingest) there is always a newer frame, so the file grows without end.
//! Two bounds hold it: each connection sets `journal_size_limit` (a rewound WAL is cut back to
//! [`WAL_LIMIT_BYTES`]), and when the file passes [`WAL_TRUNCATE_AT`] the task runs a
//! `TRUNCATE` checkpoint, which waits for the writers of the moment, holds new ones back for the
//! copy and empties the file. It takes this process's writer turn first, so it cannot be starved by
//! them, and it is never put off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Store;

/// How often the background task checkpoints the WAL.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A WAL rewound by SQLite is cut back to this size (`journal_size_limit`).
pub(super) const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Past this size the background task empties the WAL with a `TRUNCATE` checkpoint.
pub(super) const WAL_TRUNCATE_AT: u64 = 128 * 1024 * 1024;

/// Pragmas for each SQLite connection of the pool: no checkpoint inside a commit, and a rewound
/// WAL cut back to [`WAL_LIMIT_BYTES`].
pub(super) fn checkpoint_pragmas() -> String {
    format!("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};")
}

impl Store {
    /// Starts a write transaction. On SQLite it takes the write lock first (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes cannot wait for the lock in the busy
    /// handler when another connection wrote meanwhile, it fails at once with "database is
    /// locked". An immediate one waits its turn (`busy_timeout`) before reading.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            super::Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            super::Backend::Postgres => self.pool.begin().await,
        }
    }

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
    wal: PathBuf,
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
            let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            if wal_bytes > WAL_TRUNCATE_AT {
                put_off = 0;
                truncate(&pool, &writers, wal_bytes).await;
                continue;
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

/// Empties a WAL that passed [`WAL_TRUNCATE_AT`]: this process's writers wait for their turn
/// meanwhile; other connections wait in their busy handler.
async fn truncate(pool: &AnyPool, writers: &tokio::sync::Mutex<()>, wal_bytes: u64) {
    let _turn = writers.lock().await;
    match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
    {
        Ok(_) => tracing::info!(
            wal_bytes,
            "SQLite: the WAL passed {} MiB; checkpointed and emptied",
            WAL_TRUNCATE_AT / (1024 * 1024)
        ),
        Err(e) => {
            tracing::warn!(error = %e, wal_bytes, "SQLite: cannot empty the WAL (tried again later)")
        }
    }
}
