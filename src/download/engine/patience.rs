//! Store writes that wait for a database that went away (PostgreSQL restarting, a network cut)
//! instead of failing the download: tried again with growing pauses while the database does not
//! answer, until the download is stopped. Any other store error is returned at once.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// First pause after a write the database did not answer; it doubles up to [`PAUSE_MAX`].
pub(super) const PAUSE_FIRST: Duration = Duration::from_millis(250);
pub(super) const PAUSE_MAX: Duration = Duration::from_secs(2);

/// The next pause after `pause`.
pub(super) fn longer(pause: Duration) -> Duration {
    (pause * 2).min(PAUSE_MAX)
}

/// Runs `write` until it succeeds, fails for another reason than an unreachable database, or
/// `cancel` fires (then the last error is returned).
pub(super) async fn until_stored<T, F, Fut>(
    cancel: &CancellationToken,
    id: i64,
    what: &str,
    mut write: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = PAUSE_FIRST;
    let mut warned = false;
    loop {
        match write().await {
            Ok(value) => {
                if warned {
                    tracing::info!(id, what, "stored once the database answered again");
                }
                return Ok(value);
            }
            Err(e) if e.is_unreachable() && !cancel.is_cancelled() => {
                if !warned {
                    warned = true;
                    tracing::warn!(id, what, error = %e, "the database does not answer: waiting for it");
                }
                tokio::select! {
                    () = cancel.cancelled() => return Err(e),
                    () = tokio::time::sleep(pause) => {}
                }
                pause = longer(pause);
            }
            Err(e) => return Err(e),
        }
    }
}
