//! Service settings: where rushes listens, where it keeps its files, who may use it.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

use super::{ConfigError, Env, Overrides};

/// The service settings as read.
pub(super) struct ServiceSettings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub downloads_dir: PathBuf,
    pub log_dir: PathBuf,
    pub api_token: Option<SecretString>,
}

pub(super) fn read(env: &Env<'_>, o: &Overrides) -> Result<ServiceSettings, ConfigError> {
    let bind = Env::parse("RUSHES_BIND", env.pick(&o.bind, "RUSHES_BIND"), |raw| {
        raw.parse::<SocketAddr>()
            .map_err(|e| format!("expected IP:PORT such as 127.0.0.1:5000 ({e})"))
    })?
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
        downloads_dir: dir(&o.downloads_dir, "LOCAL_DOWNLOADS_DIR", "./downloads"),
        log_dir: dir(&o.log_dir, "RUSHES_LOG_DIR", "./logs"),
        api_token,
    })
}
