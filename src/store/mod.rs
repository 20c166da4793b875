//! The only place that speaks SQL. Two backends through sqlx's `Any` driver, with the same
//! queries: SQLite (embedded, WAL; the default, one instance per data folder) and PostgreSQL
//! (several instances on one database, `RUSHES_DATABASE_URL`). Queries use `$N` parameters,
//! `ON CONFLICT` and `RETURNING`, which both understand; the few places where they differ ask
//! [`Store::backend`]. Migrations: `migrations/sqlite/` and `migrations/postgres/`.

mod backup;
mod cluster;
mod deliveries;
mod downloads;
mod feed;
mod frameio;
mod health;
mod ingest;
mod inspector;
mod notify;
mod ops;
mod outbox;
mod params;
mod reviews;
mod segments;
mod sends;
mod stack_turns;
mod waits;
mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;

use sqlx::{AnyPool, ConnectOptions, Executor};

pub use backup::{BackupSummary, backup_sqlite};
pub use cluster::{FEED_LEASE, InstanceRow, LeaseRow, LeaseState};
pub use deliveries::{Delivery, DeliveryFilter, NewDelivery, UpsertOutcome};
pub use downloads::{DownloadAttempt, DownloadDone};
pub use feed::{FeedFetch, FeedState};
pub use frameio::{
    FinishedEvent, FrameioEvent, NeedsLook, NewFrameioEvent, RegisterError, Registered,
    StateChange, StoredComment, Transition, Upload, UploadUpdate,
};
pub use ingest::{Change, ChangedDelivery, Inserted, KnownDelivery, NewDeliveries, NewRow};
pub use inspector::{KEPT_REJECTED, NewRejectedCall, RECEIVED_CALLS_SQL, ReceivedCall};
pub use notify::{CHANNEL, Listener, MAX_PAYLOAD};
pub use ops::{EventBacklog, PRUNE_BATCH, prune_events};
pub use outbox::{FinishedDelivery, NewMessage, OutboxRow, VerdictChange};
pub use reviews::CommentLabel;
pub use segments::SegmentRow;
pub use sends::{NewSend, Send, SendClaim, state as send_state};

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
    /// The database has a migration this binary does not know: nothing was run (exit 2).
    #[error(
        "the database was upgraded by a newer rushes (it has migration {found}, this rushes knows \
         up to {known}); nothing was changed: run that newer rushes, or restore a backup made \
         before the upgrade"
    )]
    NewerDatabase { found: i64, known: i64 },
    #[error("cannot back up the database: {0}")]
    Backup(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("invalid value in the database: {0}")]
    Corrupt(String),
    #[error("cannot encode rows for the database: {0}")]
    Encode(#[from] serde_json::Error),
}

impl StoreError {
    /// The database did not answer (no connection within the pool's wait, the connection
    /// broke): it is away, not wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Sql(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        )
    }
}

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Several instances may share this database (claims and leases matter).
    pub fn shared(self) -> bool {
        self == Self::Postgres
    }
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum Location {
    /// An SQLite file (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://user:password@host/db`); the database is created if missing
    /// and the role may.
    Postgres(SecretString),
}

/// Who this process is on a shared database, and how long its claims hold.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `RUSHES_INSTANCE_NAME`: stable across restarts of the same instance, unique among them.
    pub instance: String,
    /// `RUSHES_LEASE`: how long a claim (feed poll, download, event) holds without renewal.
    pub lease: Duration,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            instance: "local".into(),
            lease: Duration::from_secs(30),
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for the `LISTEN` connection.
    url: Option<SecretString>,
    identity: Arc<Identity>,
    /// A write probe of `/healthz` still waiting for the database (see `health.rs`).
    probing: std::sync::Arc<health::Probe>,
    /// Whether the database answered lately (see `health.rs`).
    reach: std::sync::Arc<health::Reach>,
    /// Turns of this process's writers (see `writes.rs`).
    writers: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The SQLite file (none on PostgreSQL).
    sqlite_file: Option<Arc<Path>>,
    /// Background WAL checkpoints (SQLite; see `writes.rs`), stopped with the last clone.
    _checkpoints: Option<Arc<tokio_util::sync::DropGuard>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file `path` and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&Location::Sqlite(path.to_path_buf()), Identity::default()).await
    }

    /// The database `settings` name: PostgreSQL when `RUSHES_DATABASE_URL` is set, else the
    /// SQLite file `sqlite_file` (`$RUSHES_DATA_DIR/rushes.db`).
    pub async fn for_settings(
        settings: &crate::config::DatabaseSettings,
        sqlite_file: &Path,
    ) -> Result<Self, StoreError> {
        let location = match &settings.url {
            Some(url) => Location::Postgres(url.clone()),
            None => Location::Sqlite(sqlite_file.to_path_buf()),
        };
        let identity = Identity {
            instance: settings.instance.clone(),
            lease: settings.lease,
        };
        Self::connect(&location, identity).await
    }

    /// Connects to `location` (creating the database if needed) and runs pending migrations.
    pub async fn connect(location: &Location, identity: Identity) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (pool, backend) = match location {
            Location::Sqlite(path) => (open_sqlite(path).await?, Backend::Sqlite),
            Location::Postgres(url) => (open_postgres(url).await?, Backend::Postgres),
        };
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        backup::migrate(&migrator, &pool).await?;
        let url = match location {
            Location::Postgres(url) => Some(url.clone()),
            Location::Sqlite(_) => None,
        };
        let writers: Arc<tokio::sync::Mutex<()>> = Default::default();
        let checkpoints = match location {
            Location::Sqlite(path) => Some(writes::start_checkpoints(
                &pool,
                writers.clone(),
                wal_path(path),
            )),
            Location::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            backend,
            url,
            identity: Arc::new(identity),
            probing: Default::default(),
            reach: Default::default(),
            writers,
            sqlite_file: match location {
                Location::Sqlite(path) => Some(Arc::from(path.as_path())),
                Location::Postgres(_) => None,
            },
            _checkpoints: checkpoints,
        })
    }

    /// The pool, for modules of this store only.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// Which backend, for what is shown (`/api/cluster`, `/healthz`); components ask
    /// [`Store::may_have_peers`] instead of branching on it.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Other instances may share this database: work is claimed and leased, the event bus is
    /// relayed between instances. Alone (SQLite, one instance per data folder) none of it is
    /// needed.
    pub fn may_have_peers(&self) -> bool {
        self.backend.shared()
    }

    /// This instance's name on the database.
    pub fn instance(&self) -> &str {
        &self.identity.instance
    }

    /// How long claims hold without renewal.
    pub fn lease(&self) -> Duration {
        self.identity.lease
    }

    /// `FOR UPDATE SKIP LOCKED` where the engine has it (PostgreSQL): a claim skips rows another
    /// instance is claiming instead of waiting for them. SQLite has one writer at a time anyway.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Text from outside as both backends can store it: PostgreSQL's `text` cannot hold U+0000 (a
/// NUL in a feed name, a hook's output or a comment), so it is dropped on both backends alike.
pub(crate) fn storable(text: &str) -> String {
    text.replace('\0', "")
}

/// SQLite's write-ahead log beside the database file `path`.
pub(crate) fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    std::path::PathBuf::from(name)
}

/// Connections to the SQLite file: each keeps a page cache of its own ...
pub(crate) const SQLITE_CONNECTIONS: u32 = 8;
/// ... of at most this many KiB (about SQLite's default, said here so the bound is ours: 16 MiB
/// for all of them; `/metrics` shows what they hold as `rushes_sqlite_memory_bytes`).
pub(crate) const PAGE_CACHE_KIB: i64 = 2048;

async fn open_sqlite(path: &Path) -> Result<AnyPool, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let shown = path.display().to_string();
    let open_error = |source| StoreError::Open {
        path: shown.clone(),
        source,
    };
    let url = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy();
    let options = AnyConnectOptions::from_url(&url).map_err(open_error)?;
    AnyPoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL + NORMAL: a committed transaction survives a process crash (SIGKILL); only
                // a power loss can lose the last one.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA temp_store = MEMORY;",
                )
                .await?;
                conn.execute(format!("PRAGMA cache_size = -{PAGE_CACHE_KIB}").as_str())
                    .await?;
                conn.execute(writes::checkpoint_pragmas().as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(open_error)
}

async fn open_postgres(url: &SecretString) -> Result<AnyPool, StoreError> {
    use sqlx::migrate::MigrateDatabase;
    let raw = url.expose_secret();
    // Errors name the server and database, never the password.
    let shown = url::Url::parse(raw)
        .map(|u| crate::net::redact(&u))
        .unwrap_or_else(|_| "RUSHES_DATABASE_URL (not a URL)".into());
    let open_error = |source| StoreError::Open {
        path: shown.clone(),
        source,
    };
    if !sqlx::Postgres::database_exists(raw).await.unwrap_or(true) {
        sqlx::Postgres::create_database(raw)
            .await
            .map_err(open_error)?;
    }
    let options = AnyConnectOptions::from_str(raw).map_err(open_error)?;
    AnyPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(open_error)
}
