//! Service settings: where rushes listens, where it keeps its files, who may use it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::hardening::{self, ServerLimits};
use super::{ConfigError, Env, Overrides};

/// The service's settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// `RUSHES_BIND`.
    pub bind: SocketAddr,
    /// `RUSHES_DATA_DIR`: the SQLite database and the instance lock.
    pub data_dir: PathBuf,
    /// `RUSHES_LOG_DIR`.
    pub log_dir: PathBuf,
    /// `RUSHES_API_TOKEN`: required when `bind` is not loopback; then the API and the page need it.
    pub api_token: Option<SecretString>,
    /// `RUSHES_ALLOWED_HOSTS`: `Host` names accepted besides loopback when there is no token.
    pub allowed_hosts: Vec<String>,
    /// Limits of the HTTP server (defaults; tests tighten them).
    pub limits: ServerLimits,
}

impl ServiceSettings {
    /// Everything under `root`, on a free loopback port.
    pub fn under(root: &Path) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: root.join("data"),
            log_dir: root.join("logs"),
            api_token: None,
            allowed_hosts: Vec::new(),
            limits: ServerLimits::default(),
        }
    }
}

/// `IP:PORT`, or `localhost:PORT` (people type it): the loopback address.
pub(super) fn parse_bind(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Some(port) = raw
        .strip_prefix("localhost:")
        .or_else(|| raw.strip_prefix("LOCALHOST:"))
    {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|e| format!("expected localhost:PORT such as localhost:5000 ({e})"));
    }
    raw.parse::<SocketAddr>().map_err(|e| {
        format!("expected IP:PORT such as 127.0.0.1:5000, [::1]:5000 or localhost:5000 ({e})")
    })
}

pub(super) fn read(env: &Env<'_>, o: &Overrides) -> Result<ServiceSettings, ConfigError> {
    let bind = Env::parse("RUSHES_BIND", env.pick(&o.bind, "RUSHES_BIND"), parse_bind)?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)));
    let api_token = env.secret("RUSHES_API_TOKEN");
    if api_token.is_none() && !bind.ip().is_loopback() {
        return Err(ConfigError::Missing {
            var: "RUSHES_API_TOKEN",
            hint: format!(
                "it is required because RUSHES_BIND={bind} is reachable from the network \
                 (set a long random token, or bind 127.0.0.1)"
            ),
        });
    }
    let dir = |flag: &Option<String>, var: &str, default: &str| {
        PathBuf::from(env.pick(flag, var).unwrap_or_else(|| default.into()))
    };
    Ok(ServiceSettings {
        bind,
        data_dir: dir(&o.data_dir, "RUSHES_DATA_DIR", "./data"),
        log_dir: dir(&o.log_dir, "RUSHES_LOG_DIR", "./logs"),
        api_token,
        allowed_hosts: hardening::allowed_hosts(env)?,
        limits: ServerLimits::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_bind;

    #[test]
    fn bind_addresses_people_type() {
        assert_eq!(
            parse_bind("localhost:5000"),
            Ok(([127, 0, 0, 1], 5000).into())
        );
        assert_eq!(
            parse_bind(" 127.0.0.1:8080 "),
            Ok(([127, 0, 0, 1], 8080).into())
        );
        assert_eq!(
            parse_bind("[::1]:5000").map(|a| a.ip().is_loopback()),
            Ok(true)
        );
        assert!(parse_bind("localhost").is_err());
        assert!(parse_bind("localhost:99999").is_err());
        assert!(parse_bind("example.com:80").is_err());
    }
}
