//! The only place that speaks SQL. SQLite through sqlx (embedded, WAL), migrations in
//! `migrations/`. Queries use `$N` parameters, `ON CONFLICT` and `RETURNING` so they stay
//! portable to PostgreSQL.

mod deliveries;
mod downloads;
mod feed;
mod frameio;
mod health;
mod ingest;
mod inspector;
mod segments;
mod writes;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use deliveries::{Delivery, DeliveryFilter, NewDelivery, UpsertOutcome};
pub use downloads::{DownloadAttempt, DownloadDone};
pub use feed::{FeedFetch, FeedState};
pub use frameio::{
    FinishedEvent, FrameioEvent, NewFrameioEvent, RegisterError, Registered, StateChange,
    StoredComment, Transition, Upload, UploadUpdate,
};
pub use ingest::KnownDelivery;
pub use inspector::{KEPT_REJECTED, NewRejectedCall, ReceivedCall};
pub use segments::SegmentRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("invalid value in the database: {0}")]
    Corrupt(String),
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// A write probe of `/healthz` still waiting for the database (see `health.rs`).
    probing: std::sync::Arc<health::Probe>,
    /// Turns of this process's writers (see `writes.rs`).
    writers: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) `path` and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a committed transaction survives a process crash (SIGKILL); only a power
            // loss can lose the last one.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: shown,
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            probing: Default::default(),
            writers: Default::default(),
        })
    }

    /// The pool, for modules of this store only.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
