//! Which database (`RUSHES_DATABASE_URL`: PostgreSQL for several instances; SQLite in the data
//! folder otherwise), this instance's name on it (`RUSHES_INSTANCE_NAME`) and how long its claims
//! hold (`RUSHES_LEASE`).

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{ConfigError, Env};

/// Default `RUSHES_LEASE`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The database settings as read.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `RUSHES_DATABASE_URL` (`postgres://…`); `None` = SQLite in `RUSHES_DATA_DIR`.
    pub url: Option<SecretString>,
    /// `RUSHES_INSTANCE_NAME`: default `<host name>-<8 hex of the data folder's path>`, so that a
    /// restarted instance finds its own claims and two instances on one machine differ.
    pub instance: String,
    /// `RUSHES_LEASE`: seconds a claim holds without renewal (default 30, 3-600).
    pub lease: Duration,
}

impl DatabaseSettings {
    /// SQLite, an instance name derived from `data_dir`, the default lease.
    pub fn local(data_dir: &Path) -> Self {
        Self {
            url: None,
            instance: default_instance(data_dir),
            lease: DEFAULT_LEASE,
        }
    }
}

pub(super) fn read(env: &Env<'_>, data_dir: &Path) -> Result<DatabaseSettings, ConfigError> {
    let url = env.secret("RUSHES_DATABASE_URL");
    if let Some(url) = &url {
        check_url(url.expose_secret()).map_err(|reason| ConfigError::Invalid {
            var: "RUSHES_DATABASE_URL",
            // The URL may carry a password: show only its scheme.
            value: url
                .expose_secret()
                .split_once("://")
                .map(|(scheme, _)| format!("{scheme}://…"))
                .unwrap_or_else(|| "…".into()),
            reason,
        })?;
    }
    let instance = match env.text("RUSHES_INSTANCE_NAME") {
        None => default_instance(data_dir),
        Some(name) => {
            let ok = name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if !ok {
                return Err(ConfigError::Invalid {
                    var: "RUSHES_INSTANCE_NAME",
                    value: name,
                    reason: "expected at most 64 letters, digits, '-', '_', '.' or ':'".into(),
                });
            }
            name
        }
    };
    let lease = Env::seconds(
        "RUSHES_LEASE",
        env.get("RUSHES_LEASE"),
        DEFAULT_LEASE.as_secs(),
        false,
    )?;
    if !(3..=600).contains(&lease.as_secs()) {
        return Err(ConfigError::Invalid {
            var: "RUSHES_LEASE",
            value: lease.as_secs().to_string(),
            reason: "expected between 3 and 600 seconds".into(),
        });
    }
    Ok(DatabaseSettings {
        url,
        instance,
        lease,
    })
}

fn check_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(
            "expected postgres://user:password@host:port/database (only PostgreSQL is \
                    supported; leave it unset for SQLite in RUSHES_DATA_DIR)"
                .into(),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("expected a host, as in postgres://user:password@host:5432/rushes".into());
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err("expected a database name, as in postgres://user@host:5432/rushes".into());
    }
    Ok(())
}

/// `<host name>-<8 hex of the data folder's absolute path>`.
fn default_instance(data_dir: &Path) -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect::<String>();
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    if host.is_empty() {
        format!("rushes-{hex}")
    } else {
        format!("{host}-{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_with(vars: &[(&str, &str)]) -> Result<DatabaseSettings, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        read(&Env::new(&lookup), Path::new("/srv/rushes/data"))
    }

    #[test]
    fn a_wrong_url_names_the_variable_and_hides_the_password() {
        let e = read_with(&[("RUSHES_DATABASE_URL", "mysql://u:hunter2@db/rushes")])
            .expect_err("mysql refused")
            .to_string();
        assert!(e.contains("RUSHES_DATABASE_URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = read_with(&[("RUSHES_DATABASE_URL", "postgres://u:hunter2@db")])
            .expect_err("no database name")
            .to_string();
        assert!(e.contains("database name") && !e.contains("hunter2"), "{e}");
        assert!(read_with(&[("RUSHES_DATABASE_URL", "postgres://u:p@db:5432/rushes")]).is_ok());
    }

    #[test]
    fn instance_names_are_stable_and_checked() {
        let a = read_with(&[]).expect("defaults");
        let b = read_with(&[]).expect("defaults");
        assert_eq!(a.instance, b.instance);
        assert!(a.url.is_none());
        assert_eq!(a.lease, DEFAULT_LEASE);
        assert_ne!(a.instance, default_instance(Path::new("/srv/other/data")));
        assert!(read_with(&[("RUSHES_INSTANCE_NAME", "ingest 1")]).is_err());
        assert_eq!(
            read_with(&[("RUSHES_INSTANCE_NAME", "ingest-1")])
                .expect("ok")
                .instance,
            "ingest-1"
        );
        assert!(read_with(&[("RUSHES_LEASE", "1")]).is_err());
        assert!(read_with(&[("RUSHES_LEASE", "10")]).is_ok());
    }
}
