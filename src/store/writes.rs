//! Turns of this process's writers. SQLite has one writer at a time: when two connections of
//! the pool want to write at once, the loser gets SQLITE_BUSY and its busy handler sleeps 1, 2,
//! 5, 10, 15 ms... before trying again, so a webhook's durable write queued behind a batch of
//! the event processor could wait tens of milliseconds after the lock was free. Writers on hot
//! paths (the webhook receiver's group commit, the processor's batches, the feed's batched
//! intake) first take their turn here: the next one starts as soon as the previous one commits.

use super::Store;

impl Store {
    /// Waits for this process's turn to write (held until the transaction is committed).
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writers.lock().await
    }
}
