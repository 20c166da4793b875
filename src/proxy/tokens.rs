//! The tokens file: one `name:token` a line (`#` comments and blank lines ignored). Re-read when
//! it changes or on SIGHUP, so a token is rotated without a restart; a broken file keeps the
//! tokens in force and says why. Tokens are compared in constant time and never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Largest tokens file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// How often the file's modification time is checked.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path} holds no token")]
    Empty { path: String },
}

struct Entry {
    name: String,
    token: SecretString,
}

/// The tokens in force.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokensError> {
        let shown = path.display().to_string();
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let problem = |reason: &str| TokensError::Line {
                path: shown.clone(),
                line: i + 1,
                reason: reason.into(),
            };
            let (name, token) = line
                .split_once(':')
                .ok_or_else(|| problem("expected name:token"))?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
                return Err(problem("the name must be printable ASCII without spaces"));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(problem(&format!(
                    "the token of {name:?} is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if entries.iter().any(|e| e.name == name) {
                return Err(problem(&format!("the name {name:?} appears twice")));
            }
            entries.push(Entry {
                name: name.to_string(),
                token: SecretString::from(token.to_string()),
            });
        }
        if entries.is_empty() {
            return Err(TokensError::Empty { path: shown });
        }
        Ok(Self { entries })
    }

    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let read_error = |e: std::io::Error| TokensError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(TokensError::Read {
                path: path.display().to_string(),
                reason: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Self::parse(&text, path)
    }

    /// The name of the token `given`, comparing with every token in constant time.
    pub fn name_of(&self, given: &str) -> Option<&str> {
        let given = Sha256::digest(given.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            let expected = Sha256::digest(entry.token.expose_secret().as_bytes());
            let diff = given
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(entry.name.as_str());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The tokens in force, swapped whole on reload.
#[derive(Clone)]
pub struct TokenStore {
    path: PathBuf,
    current: Arc<RwLock<Arc<Tokens>>>,
    stamp: Arc<RwLock<Option<(SystemTime, u64)>>>,
}

fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl TokenStore {
    pub fn open(path: &Path) -> Result<Self, TokensError> {
        let stamp = stamp_of(path);
        let tokens = Tokens::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            current: Arc::new(RwLock::new(Arc::new(tokens))),
            stamp: Arc::new(RwLock::new(stamp)),
        })
    }

    pub fn current(&self) -> Arc<Tokens> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the file; a broken file keeps the tokens in force.
    pub fn reload(&self, why: &str) {
        let stamp = stamp_of(&self.path);
        match Tokens::load(&self.path) {
            Ok(tokens) => {
                tracing::info!(tokens = tokens.len(), why, "feed-proxy: tokens reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
            }
            Err(e) => {
                tracing::error!(error = %e, why, "feed-proxy: tokens file not reloaded; the previous tokens stay in force")
            }
        }
        *self.stamp.write().unwrap_or_else(|e| e.into_inner()) = stamp;
    }

    /// Reloads when the file's modification time or size changed.
    pub fn reload_if_changed(&self) {
        let now = stamp_of(&self.path);
        let before = *self.stamp.read().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && now != before {
            self.reload("the file changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_keeps_the_tokens_in_force() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tokens");
        std::fs::write(&path, "alice:aaaaaaaaaaaaaaaaaaaa\n")?;
        let store = TokenStore::open(&path)?;
        std::fs::write(&path, "alice:short\n")?;
        store.reload("test");
        assert_eq!(
            store.current().name_of("aaaaaaaaaaaaaaaaaaaa"),
            Some("alice")
        );
        std::fs::write(&path, "bob:bbbbbbbbbbbbbbbbbbbbbbbb\n")?;
        store.reload("test");
        assert_eq!(store.current().name_of("aaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(
            store.current().name_of("bbbbbbbbbbbbbbbbbbbbbbbb"),
            Some("bob")
        );
        Ok(())
    }

    #[test]
    fn parsing_and_lookup() {
        let path = Path::new("tokens");
        let t = Tokens::parse(
            "# studio\nalice:aaaaaaaaaaaaaaaaaaaa\n\nbob: bbbbbbbbbbbbbbbbbbbb\n",
            path,
        );
        let t = t.ok();
        let t = t.as_ref();
        assert_eq!(
            t.and_then(|t| t.name_of("aaaaaaaaaaaaaaaaaaaa")),
            Some("alice")
        );
        assert_eq!(
            t.and_then(|t| t.name_of("bbbbbbbbbbbbbbbbbbbb")),
            Some("bob")
        );
        assert_eq!(t.and_then(|t| t.name_of("aaaaaaaaaaaaaaaaaaab")), None);
        for bad in [
            "nocolon",
            "a:short",
            "a:aaaaaaaaaaaaaaaaaaaa\na:bbbbbbbbbbbbbbbbbbbb",
            "",
        ] {
            let err = Tokens::parse(bad, path).err().map(|e| e.to_string());
            assert!(err.is_some(), "{bad:?}");
            assert!(
                !err.unwrap_or_default().contains("aaaaaaaa"),
                "a token in an error"
            );
        }
    }
}
