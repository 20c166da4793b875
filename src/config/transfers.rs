//! Faster and wider downloads: segmented transfers (`DOWNLOAD_SEGMENTS`, `DOWNLOAD_SEGMENT_MIN`)
//! and link resolvers (`SWISSTRANSFER_AUTO`, `SWISSTRANSFER_API_BASE`, `SMASH_AUTO`).

use url::Url;

use super::{ConfigError, Env};

/// SwissTransfer's API, as its own open-source client calls it.
pub const SWISSTRANSFER_API_BASE: &str = "https://www.swisstransfer.com/api";

/// How large files are split over several ranged connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSettings {
    /// `DOWNLOAD_SEGMENTS`: connections per file at most (1 = never segmented).
    pub count: usize,
    /// `DOWNLOAD_SEGMENT_MIN`: smaller files use one connection.
    pub min_size: u64,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            count: 4,
            min_size: 64 << 20,
        }
    }
}

impl SegmentSettings {
    /// Reads the process environment (for `rushes download`, which loads no full [`super::Config`]).
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        read_segments(&Env::new(&lookup))
    }
}

/// Which share links are turned into files by themselves.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// `SWISSTRANSFER_AUTO` (default on).
    pub swisstransfer: bool,
    /// `SWISSTRANSFER_API_BASE`: where `links/<uuid>` and `generateDownloadToken` live.
    pub swisstransfer_api: Url,
    /// `SMASH_AUTO` (default off, experimental).
    pub smash: bool,
    /// `SWISSTRANSFER_PASSWORD`: sent (base64) for password-protected transfers that were given
    /// no password of their own (from the page, the API or `rushes password`).
    pub swisstransfer_password: Option<secrecy::SecretString>,
    /// `VIRUS_CHECK_RETRY` (seconds, default 120): first wait when the host is still checking a
    /// transfer for viruses; doubled at each further wait, at most an hour.
    pub recheck_after: std::time::Duration,
    /// `SMASH_API_BASE`: unset = FromSmash's own hosts; set (tests) = one base for all of them.
    pub smash_api: Option<Url>,
    /// `SMASH_TOKEN`: a Smash API key; unset = an anonymous account per resolution.
    pub smash_token: Option<secrecy::SecretString>,
}

impl ResolverSettings {
    /// Whether a manual link of `kind` is fetched by rushes itself (`SWISSTRANSFER_AUTO`,
    /// `SMASH_AUTO`). The one answer: the engine's resolvers (`download/resolve/`) and
    /// `rushes feed check` both ask here, so the check says what `serve` does.
    pub fn fetches(&self, kind: crate::domain::LinkKind) -> bool {
        use crate::domain::LinkKind;
        match kind {
            LinkKind::Swisstransfer => self.swisstransfer,
            LinkKind::Fromsmash => self.smash,
            LinkKind::Dropbox | LinkKind::External => false,
        }
    }
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            swisstransfer: true,
            swisstransfer_api: Url::parse(SWISSTRANSFER_API_BASE).expect("constant URL"),
            smash: false,
            swisstransfer_password: None,
            recheck_after: std::time::Duration::from_secs(120),
            smash_api: None,
            smash_token: None,
        }
    }
}

/// `64MiB`, `100M`, `1G`, `5000000`: a size in bytes with an optional binary unit.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size such as 64MiB, 100M or 67108864".to_string())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown unit {other:?} (use K, M or G)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| "too large".to_string())
}

pub(super) fn read_segments(env: &Env<'_>) -> Result<SegmentSettings, ConfigError> {
    let defaults = SegmentSettings::default();
    let count = Env::parse("DOWNLOAD_SEGMENTS", env.get("DOWNLOAD_SEGMENTS"), |raw| {
        raw.parse::<usize>()
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| {
                "expected a whole number from 1 (one connection per file) to 16".to_string()
            })
    })?
    .unwrap_or(defaults.count);
    let min_size = Env::parse(
        "DOWNLOAD_SEGMENT_MIN",
        env.get("DOWNLOAD_SEGMENT_MIN"),
        |raw| {
            parse_size(raw).and_then(|n| {
                if n < 1 << 20 {
                    Err("must be at least 1MiB".into())
                } else {
                    Ok(n)
                }
            })
        },
    )?
    .unwrap_or(defaults.min_size);
    Ok(SegmentSettings { count, min_size })
}

impl ResolverSettings {
    /// Reads the process environment (for `rushes download`).
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        read_resolvers(&Env::new(&lookup))
    }
}

pub(super) fn read_resolvers(env: &Env<'_>) -> Result<ResolverSettings, ConfigError> {
    let swisstransfer = match env.get("SWISSTRANSFER_AUTO") {
        None => true,
        Some(_) => env.switch("SWISSTRANSFER_AUTO")?,
    };
    Ok(ResolverSettings {
        swisstransfer,
        swisstransfer_api: env.http_url("SWISSTRANSFER_API_BASE", SWISSTRANSFER_API_BASE)?,
        smash: env.switch("SMASH_AUTO")?,
        swisstransfer_password: env.secret("SWISSTRANSFER_PASSWORD"),
        recheck_after: Env::seconds(
            "VIRUS_CHECK_RETRY",
            env.get("VIRUS_CHECK_RETRY"),
            120,
            false,
        )?,
        smash_api: match env.get("SMASH_API_BASE") {
            None => None,
            Some(_) => Some(env.http_url("SMASH_API_BASE", "")?),
        },
        smash_token: env.secret("SMASH_TOKEN"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("5000000"), Ok(5_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn mistakes_name_the_variable() {
        let lookup = |name: &str| (name == "DOWNLOAD_SEGMENTS").then(|| "0".to_string());
        let err = read_segments(&Env::new(&lookup))
            .map(|_| ())
            .expect_err("a mistake");
        assert!(err.to_string().contains("DOWNLOAD_SEGMENTS"), "{err}");
        let lookup = |name: &str| (name == "DOWNLOAD_SEGMENT_MIN").then(|| "12".to_string());
        let err = read_segments(&Env::new(&lookup))
            .map(|_| ())
            .expect_err("a mistake");
        assert!(err.to_string().contains("DOWNLOAD_SEGMENT_MIN"), "{err}");
        let lookup = |name: &str| (name == "SWISSTRANSFER_AUTO").then(|| "maybe".to_string());
        let err = read_resolvers(&Env::new(&lookup))
            .map(|_| ())
            .expect_err("a mistake");
        assert!(err.to_string().contains("SWISSTRANSFER_AUTO"), "{err}");
    }
}
