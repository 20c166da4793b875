//! Online backups of the SQLite store (`rushes backup FILE`) and the guard that keeps an older
//! rushes from migrating a database a newer one upgraded (issue 28).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions as _, Connection as _, SqliteConnection};

use super::StoreError;

/// Runs `migrator`'s pending migrations, unless the database has one it does not know: then
/// nothing runs and the error says a newer rushes upgraded it.
pub(super) async fn migrate(migrator: &Migrator, pool: &AnyPool) -> Result<(), StoreError> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        // sqlx checks every applied migration against the binary's before it runs any.
        Err(MigrateError::VersionMissing(found)) => Err(StoreError::NewerDatabase { found, known }),
        Err(e) => Err(e.into()),
    }
}

impl StoreError {
    /// The user must change something before trying again (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::NewerDatabase { .. })
    }
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub bytes: u64,
    pub deliveries: i64,
    pub frameio_events: i64,
    pub uploads: i64,
    /// The newest migration in it.
    pub schema_version: i64,
}

fn open_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10))
        .disable_statement_logging()
}

/// A consistent copy of the SQLite database `db` into the new file `dest`, while rushes may be
/// running (`VACUUM INTO`: one read transaction, compacted). Written next to `dest` first,
/// checked (`PRAGMA integrity_check`), then linked to `dest`, which is never replaced.
pub async fn backup_sqlite(db: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    let fail = |what: String| StoreError::Backup(what);
    if !db.is_file() {
        return Err(fail(format!("{} does not exist", db.display())));
    }
    if dest.exists() {
        return Err(fail(format!(
            "{} already exists (a backup never replaces a file)",
            dest.display()
        )));
    }
    let name = dest
        .file_name()
        .ok_or_else(|| fail(format!("{} is not a file name", dest.display())))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = dir.join(partial_name);
    let _ = std::fs::remove_file(&partial);
    let result = copy_and_check(db, &partial).await;
    let linked = result.and_then(|summary| {
        std::fs::hard_link(&partial, dest)
            .map(|()| summary)
            .map_err(|e| fail(format!("cannot create {}: {e}", dest.display())))
    });
    let _ = std::fs::remove_file(&partial);
    linked
}

async fn copy_and_check(db: &Path, partial: &Path) -> Result<BackupSummary, StoreError> {
    let mut live = open_options(db).connect().await?;
    let target = partial
        .to_str()
        .ok_or_else(|| StoreError::Backup(format!("{} is not UTF-8", partial.display())))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut live)
        .await?;
    live.close().await?;
    let mut copy: SqliteConnection = open_options(partial).read_only(true).connect().await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await?;
    if check != "ok" {
        return Err(StoreError::Backup(format!(
            "the copy fails its integrity check: {check}"
        )));
    }
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let deliveries: i64 = sqlx::query_scalar(&count("deliveries"))
        .fetch_one(&mut copy)
        .await?;
    let frameio_events: i64 = sqlx::query_scalar(&count("frameio_events"))
        .fetch_one(&mut copy)
        .await?;
    let uploads: i64 = sqlx::query_scalar(&count("frameio_uploads"))
        .fetch_one(&mut copy)
        .await?;
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&mut copy)
            .await?;
    copy.close().await?;
    let bytes = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        bytes,
        deliveries,
        frameio_events,
        uploads,
        schema_version,
    })
}
