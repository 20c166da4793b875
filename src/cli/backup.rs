//! `rushes backup FILE`: a consistent copy of the SQLite database while rushes runs.

use std::path::Path;
use std::process::ExitCode;

use super::Exit;
use crate::config::{Config, Overrides};
use crate::store::backup_sqlite;
use crate::text::human_bytes;

pub(super) async fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(&Overrides::default())?;
    if config.database.url.is_some() {
        return Err(Exit::error(
            Exit::CONFIG,
            "RUSHES_DATABASE_URL is set: this rushes keeps its data in PostgreSQL, back it up with \
             pg_dump (see docs/operations.md, \"Backups\")",
        ));
    }
    let db = config.database_path();
    if !db.is_file() {
        return Err(Exit::error(
            Exit::CONFIG,
            format!(
                "no database at {} (set RUSHES_DATA_DIR to the data folder of the rushes to back up)",
                db.display()
            ),
        ));
    }
    if file.exists() {
        return Err(Exit::error(
            Exit::CONFIG,
            format!(
                "{} already exists: a backup never replaces a file",
                file.display()
            ),
        ));
    }
    match backup_sqlite(&db, file).await {
        Ok(s) => {
            println!(
                "{}: {} ({} deliveries, {} Frame.io events, {} tracked uploads, schema {})",
                file.display(),
                human_bytes(s.bytes as f64),
                s.deliveries,
                s.frameio_events,
                s.uploads,
                s.schema_version
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(Exit::error(Exit::FAILURE, e.to_string())),
    }
}
