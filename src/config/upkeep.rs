//! What keeps a long-running rushes bounded (issue 28): `RUSHES_EVENT_RETENTION`,
//! `RUSHES_LOG_MAX_SIZE`, `RUSHES_LOG_KEEP`.

use std::time::Duration;

use super::{ConfigError, Env};

/// `RUSHES_EVENT_RETENTION` when unset: 30 days.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// `RUSHES_LOG_MAX_SIZE` when unset: 50 MiB.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 50 * 1024 * 1024;
/// `RUSHES_LOG_KEEP` when unset.
pub const DEFAULT_LOG_KEEP: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpkeepSettings {
    /// Processed Frame.io events older than this are deleted; `None` keeps them all.
    pub event_retention: Option<Duration>,
    /// `app.log` is rotated when a write would take it past this size.
    pub log_max_size: u64,
    /// Rotated logs kept (`app.log.1` ... `app.log.N`).
    pub log_keep: usize,
}

impl Default for UpkeepSettings {
    fn default() -> Self {
        Self {
            event_retention: Some(DEFAULT_EVENT_RETENTION),
            log_max_size: DEFAULT_LOG_MAX_SIZE,
            log_keep: DEFAULT_LOG_KEEP,
        }
    }
}

/// A log size: the sizes of `transfers.rs` (`50MiB`, `200M`, `1G`, bytes), at least 64 KiB.
fn log_size(raw: &str) -> Result<u64, String> {
    let bytes = super::transfers::parse_size(raw)?;
    if bytes < 64 * 1024 {
        return Err("must be at least 64KiB".into());
    }
    Ok(bytes)
}

pub(super) fn read(env: &Env<'_>) -> Result<UpkeepSettings, ConfigError> {
    let event_retention = Env::age_limit(
        "RUSHES_EVENT_RETENTION",
        env.get("RUSHES_EVENT_RETENTION"),
        Some(DEFAULT_EVENT_RETENTION),
    )?;
    let log_max_size = Env::parse(
        "RUSHES_LOG_MAX_SIZE",
        env.get("RUSHES_LOG_MAX_SIZE"),
        log_size,
    )?
    .unwrap_or(DEFAULT_LOG_MAX_SIZE);
    let log_keep = Env::parse("RUSHES_LOG_KEEP", env.get("RUSHES_LOG_KEEP"), |raw| {
        raw.parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| "expected a whole number from 1 to 100".to_string())
    })?
    .unwrap_or(DEFAULT_LOG_KEEP);
    Ok(UpkeepSettings {
        event_retention,
        log_max_size,
        log_keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sizes() {
        assert_eq!(log_size("50MiB"), Ok(50 * 1024 * 1024));
        assert_eq!(log_size("1G"), Ok(1 << 30));
        assert!(log_size("1KiB").is_err());
        assert!(log_size("lots").is_err());
    }

    #[test]
    fn defaults_and_mistakes_name_the_variable() {
        let read_with = |vars: &[(&str, &str)]| {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            read(&Env::new(&lookup))
        };
        assert_eq!(read_with(&[]).ok(), Some(UpkeepSettings::default()));
        let off = read_with(&[("RUSHES_EVENT_RETENTION", "0")]).ok();
        assert_eq!(off.map(|s| s.event_retention), Some(None));
        for (var, value) in [
            ("RUSHES_EVENT_RETENTION", "30"),
            ("RUSHES_LOG_MAX_SIZE", "big"),
            ("RUSHES_LOG_KEEP", "0"),
        ] {
            let err = read_with(&[(var, value)]).expect_err(var).to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
