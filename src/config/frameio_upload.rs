//! `FRAMEIO_UPLOAD_*`: where `rushes frameio upload` and the watch folder send files.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Env};

/// Default quiet time before a file in the watch folder is sent.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct UploadSettings {
    /// `FRAMEIO_UPLOAD_FOLDER_ID`: the Frame.io folder files go to (`--folder` wins).
    pub folder_id: Option<String>,
    /// `FRAMEIO_UPLOAD_DIR`: the watch folder of `rushes serve` (none: no watch folder).
    pub dir: Option<PathBuf>,
    /// `FRAMEIO_UPLOAD_SETTLE`: how long a file's size must stay the same before it is sent.
    pub settle: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            folder_id: None,
            dir: None,
            settle: DEFAULT_SETTLE,
        }
    }
}

impl UploadSettings {
    /// `has_api`: Frame.io credentials and an account id are configured (the watch folder needs them).
    pub(super) fn read(env: &Env<'_>, has_api: bool) -> Result<Self, ConfigError> {
        let settle = Env::parse(
            "FRAMEIO_UPLOAD_SETTLE",
            env.get("FRAMEIO_UPLOAD_SETTLE"),
            super::env::parse_age_limit,
        )?
        .map_or(DEFAULT_SETTLE, |limit| limit.unwrap_or(Duration::ZERO));
        let dir = env
            .text("FRAMEIO_UPLOAD_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let folder_id = env
            .text("FRAMEIO_UPLOAD_FOLDER_ID")
            .filter(|f| !f.is_empty());
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                return Err(ConfigError::Invalid {
                    var: "FRAMEIO_UPLOAD_DIR",
                    value: dir.display().to_string(),
                    reason: "not an existing folder".into(),
                });
            }
            if !has_api {
                return Err(ConfigError::Missing {
                    var: "FRAMEIO_ACCOUNT_ID",
                    hint: "FRAMEIO_UPLOAD_DIR is set: it needs FRAMEIO_ACCOUNT_ID and Frame.io credentials (FRAMEIO_TOKEN or IMS)".into(),
                });
            }
            if folder_id.is_none() {
                return Err(ConfigError::Missing {
                    var: "FRAMEIO_UPLOAD_FOLDER_ID",
                    hint: "FRAMEIO_UPLOAD_DIR is set: name the Frame.io folder its files go to"
                        .into(),
                });
            }
        }
        Ok(Self {
            folder_id,
            dir,
            settle,
        })
    }
}
