//! Whether the database takes writes now. Reads keep working while another process holds the
//! write lock (WAL), so a health check that only reads says "ok" while every poll and download
//! stalls. The probe takes the write lock (`BEGIN IMMEDIATE`, then `ROLLBACK`: nothing is
//! written), waited for a short time; it keeps running in the background if the lock outlasts
//! the wait, and no second probe starts meanwhile. A success is trusted for a second, so a busy
//! health checker costs at most one probe per second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, Store};

/// How long a successful probe is trusted.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// State of the write probe, shared by the clones of one `Store`.
#[derive(Debug)]
pub(crate) struct Probe {
    running: AtomicBool,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last success, plus one (0 = never).
    last_ok: AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            running: AtomicBool::new(false),
            epoch: Instant::now(),
            last_ok: AtomicU64::new(0),
        }
    }
}

impl Probe {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Store {
    /// `Ok(())` when the write lock was had within `wait` (or was, less than a second ago).
    pub async fn writable_within(&self, wait: Duration) -> Result<(), String> {
        let probe_state = self.probing.clone();
        let last = probe_state.last_ok.load(Ordering::Acquire);
        if last > 0
            && probe_state.now_ms().saturating_sub(last - 1) < TRUSTED_FOR.as_millis() as u64
        {
            return Ok(());
        }
        if probe_state.running.swap(true, Ordering::AcqRel) {
            return Err("the database is locked (an earlier write is still waiting)".into());
        }
        let pool = self.pool.clone();
        let backend = self.backend;
        let writers = self.writers.clone();
        let probe = tokio::spawn(async move {
            let result = match backend {
                // In turn with this process's writers (a large feed ingest holds the database
                // for up to a quarter of a second per transaction): waiting in line answers as
                // soon as it is done, SQLite's busy handler polls with growing sleeps.
                Backend::Sqlite => {
                    let _turn = writers.lock().await;
                    match pool.begin_with("BEGIN IMMEDIATE").await {
                        Ok(tx) => tx.rollback().await,
                        Err(e) => Err(e),
                    }
                }
                // A transaction id is only given to a server that takes writes (not a standby,
                // not a read-only transaction).
                Backend::Postgres => match pool.begin().await {
                    Ok(mut tx) => {
                        match sqlx::query("SELECT txid_current()").execute(&mut *tx).await {
                            Ok(_) => tx.rollback().await,
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            if result.is_ok() {
                probe_state
                    .last_ok
                    .store(probe_state.now_ms() + 1, Ordering::Release);
            }
            probe_state.running.store(false, Ordering::Release);
            result
        });
        match tokio::time::timeout(wait, probe).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("the database refuses writes: {e}")),
            Ok(Err(e)) => Err(format!("the write probe failed: {e}")),
            Err(_) => Err(format!(
                "the database is locked: a write waited more than {} s",
                wait.as_secs_f32()
            )),
        }
    }
}
