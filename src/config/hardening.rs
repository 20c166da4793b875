//! Settings that bound what the outside can do: host names served without a token, the
//! completion hook's extra variables (read here, kept in their areas' settings), the HTTP
//! server's limits.

use std::time::Duration;

use super::{ConfigError, Env};

/// Limits of the HTTP server: every connection is bounded in time and in number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; 0 = derived from the descriptor limit at start.
    pub max_connections: usize,
    /// Extra connections kept for `/healthz` once the cap is reached.
    pub healthz_reserve: usize,
    /// A request header must arrive within this time.
    pub header_timeout: Duration,
    /// A connection with no request running and no byte moving for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 0,
            healthz_reserve: 8,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

fn list(env: &Env<'_>, var: &str) -> Vec<String> {
    env.get(var)
        .unwrap_or_default()
        .split([',', ' '])
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// `ON_DOWNLOAD_COMPLETE_ENV`: names of further variables the download hook may see.
pub(super) fn hook_env(env: &Env<'_>) -> Result<Vec<String>, ConfigError> {
    let hook_env = list(env, "ON_DOWNLOAD_COMPLETE_ENV");
    if let Some(bad) = hook_env
        .iter()
        .find(|v| !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(ConfigError::Invalid {
            var: "ON_DOWNLOAD_COMPLETE_ENV",
            value: bad.clone(),
            reason: "expected variable names separated by commas".into(),
        });
    }
    Ok(hook_env)
}

/// `RUSHES_ALLOWED_HOSTS`: `Host` names accepted besides loopback when there is no token.
pub(super) fn allowed_hosts(env: &Env<'_>) -> Result<Vec<String>, ConfigError> {
    let allowed_hosts: Vec<String> = list(env, "RUSHES_ALLOWED_HOSTS")
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if let Some(bad) = allowed_hosts
        .iter()
        .find(|h| h.contains(['/', '@', ':']) && !h.starts_with('['))
    {
        return Err(ConfigError::Invalid {
            var: "RUSHES_ALLOWED_HOSTS",
            value: bad.clone(),
            reason: "expected host names without scheme or port, separated by commas".into(),
        });
    }
    Ok(allowed_hosts)
}
