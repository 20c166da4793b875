//! Which database the tests run against. `scripts/test.sh` runs the suite twice: on SQLite (the
//! default), then with `RUSHES_TEST_DATABASE_URL` set to a throwaway PostgreSQL, where every data
//! folder gets a database of its own (named after the folder, so a restarted service finds its
//! data again), created by rushes at its first start.

use std::path::Path;

use rushes::config::Config;
use rushes::store::{Identity, Location, Store};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// The PostgreSQL server's URL when the suite runs against PostgreSQL.
pub fn server_url() -> Option<String> {
    std::env::var("RUSHES_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

pub fn on_postgres() -> bool {
    server_url().is_some()
}

/// The database of the data folder `data_dir` on the test server (`None` on SQLite).
pub fn url_for(data_dir: &Path) -> Option<String> {
    let server = server_url()?;
    let mut url = url::Url::parse(&server).expect("RUSHES_TEST_DATABASE_URL is a URL");
    let digest = Sha256::digest(data_dir.to_string_lossy().as_bytes());
    let name: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    url.set_path(&format!("/rushes_t_{name}"));
    Some(url.to_string())
}

/// Environment for a `rushes` child process using `data_dir`.
pub fn env_for(data_dir: &Path) -> Vec<(String, String)> {
    url_for(data_dir)
        .map(|u| vec![("RUSHES_DATABASE_URL".to_string(), u)])
        .unwrap_or_default()
}

/// Points `config` at the database its data folder has in this run.
pub fn apply(config: &mut Config) {
    config.database.url = url_for(&config.service.data_dir).map(SecretString::from);
}

/// The store of the SQLite file `db_file`, or on PostgreSQL the database of its folder.
pub async fn open_store(db_file: &Path) -> Store {
    let data_dir = db_file.parent().expect("a folder");
    let location = match url_for(data_dir) {
        Some(url) => Location::Postgres(SecretString::from(url)),
        None => Location::Sqlite(db_file.to_path_buf()),
    };
    Store::connect(&location, Identity::default())
        .await
        .expect("store")
}
