//! Whether the database takes writes now. Reads keep working while another process holds the
//! write lock (WAL), so a health check that only reads says "ok" while every poll and download
//! stalls. The probe takes the write lock (`BEGIN IMMEDIATE`, then `ROLLBACK`: nothing is
//! written), waited for a short time; it keeps running in the background if the lock outlasts
//! the wait, and no second probe starts meanwhile: a check that comes while one runs waits for
//! it (within its own wait) and takes its answer, rather than reporting the database locked
//! because another checker asked first. A success is trusted for a second, so a busy health
//! checker costs at most one probe per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, Store};

/// How long a successful probe is trusted.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// State of the write probe, shared by the clones of one `Store`.
#[derive(Debug)]
pub(crate) struct Probe {
    /// Held by the running probe (one at a time).
    running: Arc<tokio::sync::Mutex<()>>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last success, plus one (0 = never).
    last_ok: AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            running: Arc::default(),
            epoch: Instant::now(),
            last_ok: AtomicU64::new(0),
        }
    }
}

impl Probe {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A success less than [`TRUSTED_FOR`] ago.
    fn trusted(&self) -> bool {
        let last = self.last_ok.load(Ordering::Acquire);
        last > 0 && self.now_ms().saturating_sub(last - 1) < TRUSTED_FOR.as_millis() as u64
    }
}

impl Store {
    /// `Ok(())` when the write lock was had within `wait` (or was, less than a second ago).
    pub async fn writable_within(&self, wait: Duration) -> Result<(), String> {
        let probe_state = self.probing.clone();
        if probe_state.trusted() {
            self.answered();
            return Ok(());
        }
        let started = Instant::now();
        let locked = || {
            format!(
                "the database is locked: a write waited more than {} s",
                wait.as_secs_f32()
            )
        };
        // One probe at a time; a check that finds one running waits for it.
        let Ok(running) =
            tokio::time::timeout(wait, probe_state.running.clone().lock_owned()).await
        else {
            return Err(locked());
        };
        if probe_state.trusted() {
            self.answered();
            return Ok(()); // the probe waited for succeeded
        }
        let wait = wait.saturating_sub(started.elapsed());
        let pool = self.pool.clone();
        let backend = self.backend;
        let writers = self.writers.clone();
        let probe = tokio::spawn(async move {
            // Held until the probe ends, also when the caller stopped waiting.
            let _running = running;
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
            result
        });
        match tokio::time::timeout(wait, probe).await {
            Ok(Ok(Ok(()))) => {
                self.answered();
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(format!("the database refuses writes: {e}")),
            Ok(Err(e)) => Err(format!("the write probe failed: {e}")),
            Err(_) => Err(locked()),
        }
    }
}

/// How often, and how patiently, [`Store::watch_reachability`] asks the database.
const REACH_EVERY: Duration = Duration::from_secs(1);

/// Whether the database answered lately, shared by the clones of one `Store`.
#[derive(Debug)]
pub(crate) struct Reach {
    epoch: Instant,
    /// Milliseconds since `epoch` when the checks started failing, plus one (0 = answering).
    down_since: AtomicU64,
}

impl Default for Reach {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            down_since: AtomicU64::new(0),
        }
    }
}

impl Store {
    /// How long the database has not been answering, as [`Store::watch_reachability`] last
    /// found (`None`: it answers, or nobody watches).
    pub fn unreachable_for(&self) -> Option<Duration> {
        let since = self.reach.down_since.load(Ordering::Acquire);
        (since > 0).then(|| {
            let now = u64::try_from(self.reach.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(now.saturating_sub(since - 1))
        })
    }

    /// The database answered (a write probe succeeded): it is reachable from now on, without
    /// waiting for the next check of [`Store::watch_reachability`].
    fn answered(&self) {
        if self.reach.down_since.swap(0, Ordering::AcqRel) > 0 {
            tracing::info!("the database answers again");
        }
    }

    /// Asks the database every second for a `SELECT 1` answered within a second, until
    /// `cancel`: while it does not answer, [`Store::unreachable_for`] says so, and the API
    /// answers 503 at once instead of waiting for a connection (a database server that went
    /// away; a local SQLite file never does).
    pub async fn watch_reachability(&self, cancel: tokio_util::sync::CancellationToken) {
        loop {
            let answered = tokio::time::timeout(REACH_EVERY, async {
                sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
            })
            .await
            .unwrap_or(false);
            let reach = &self.reach;
            if answered {
                if reach.down_since.swap(0, Ordering::AcqRel) > 0 {
                    tracing::info!("the database answers again");
                }
            } else {
                let now = u64::try_from(reach.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                if reach
                    .down_since
                    .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::warn!(
                        "the database does not answer: the API answers 503 until it does"
                    );
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(REACH_EVERY) => {}
            }
        }
    }
}
