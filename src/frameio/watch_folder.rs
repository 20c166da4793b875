//! The watch folder (`FRAMEIO_UPLOAD_DIR`): a file that appears there is sent to Frame.io once its
//! size and modification time have not changed for `FRAMEIO_UPLOAD_SETTLE`. The folder is read
//! every second and at once when inotify (the `notify` crate) reports a change; hidden and
//! partial files (`.*`, `*.part`, `*.tmp`, `~*`) and empty files are skipped. Each file is sent once only: the
//! store's claim on its send (path, size, modification time) holds across restarts and, on
//! PostgreSQL, across instances; an instance takes over an unfinished send only once the claim
//! of the instance that held it ran out.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::Watcher as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::upload::{self, Done, Quiet, UploadError, UploadRequest, Uploader};

/// How often the folder is read when nothing wakes the watcher earlier.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Files sent at once from the folder.
const AT_ONCE: usize = 2;
/// Most files looked at in one read of the folder.
const MAX_ENTRIES: usize = 10_000;
/// First wait before a failed file is tried again (doubles up to `MAX_RETRY_WAIT`).
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(10);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

/// A name the watch folder never sends: hidden, partial or temporary files.
pub fn skipped(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || lower.ends_with(".part")
        || lower.ends_with(".tmp")
        || lower.ends_with(".crdownload")
}

/// A file as last seen: its size and modification time, and since when they have not changed.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// A file that failed: not tried again before `at`.
struct Later {
    at: Instant,
    wait: Duration,
}

pub struct WatchFolder {
    pub dir: PathBuf,
    pub folder_id: String,
    pub settle: Duration,
    pub uploader: Arc<Uploader>,
}

impl WatchFolder {
    pub async fn run(self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let _watcher = self.watch_events(wake.clone());
        tracing::info!(dir = %self.dir.display(), folder = %self.folder_id, settle_s = self.settle.as_secs_f64(), "Frame.io: watching the upload folder");
        let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut later: HashMap<String, Later> = HashMap::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<(String, Result<Done, UploadError>)> = JoinSet::new();
        loop {
            self.scan(&mut seen).await;
            let now = Instant::now();
            for (path, s) in &seen {
                if running.len() >= AT_ONCE {
                    break;
                }
                if now.duration_since(s.since) < self.settle {
                    continue;
                }
                let request = self.request(path, s);
                let key = request.source_key.clone();
                if done.contains(&key)
                    || running.contains(&key)
                    || later.get(&key).is_some_and(|l| l.at > now)
                {
                    continue;
                }
                running.insert(key.clone());
                let uploader = self.uploader.clone();
                let stop = cancel.clone();
                tasks.spawn(async move {
                    let result = uploader.upload(&request, &Quiet, &stop).await;
                    (key, result)
                });
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(SCAN_EVERY) => {}
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((key, result)) = joined {
                        running.remove(&key);
                        settle_result(key, result, &mut done, &mut later);
                    }
                }
            }
        }
        // Shutdown: running sends see the cancellation and release their claims.
        while tasks.join_next().await.is_some() {}
    }

    /// inotify wakes the loop on any change in the folder; without it, the 1 s reads suffice.
    fn watch_events(&self, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                wake.notify_one();
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(mut watcher) => {
                match watcher.watch(&self.dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => Some(watcher),
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "Frame.io: cannot watch the upload folder for changes; reading it every second");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Frame.io: no file watcher; reading the upload folder every second");
                None
            }
        }
    }

    /// Reads the folder: files appear, change (their quiet time starts again) or go.
    async fn scan(&self, seen: &mut HashMap<PathBuf, Seen>) {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "Frame.io: cannot read the upload folder");
                return;
            }
        };
        let mut present = HashSet::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            if present.len() >= MAX_ENTRIES {
                break;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if skipped(&name) {
                continue;
            }
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            // An empty file is one an export tool has just created: it is not a cut yet.
            if !meta.is_file() || meta.len() == 0 {
                continue;
            }
            let path = entry.path();
            present.insert(path.clone());
            let (size, modified) = (meta.len(), meta.modified().ok());
            match seen.get_mut(&path) {
                Some(s) if s.size == size && s.modified == modified => {}
                Some(s) => {
                    *s = Seen {
                        size,
                        modified,
                        since: Instant::now(),
                    }
                }
                None => {
                    seen.insert(
                        path,
                        Seen {
                            size,
                            modified,
                            since: Instant::now(),
                        },
                    );
                }
            }
        }
        seen.retain(|p, _| present.contains(p));
    }

    fn request(&self, path: &Path, seen: &Seen) -> UploadRequest {
        let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        UploadRequest {
            source_key: upload::source_key(&full.display().to_string(), seen.size, seen.modified),
            path: full,
            name,
            folder_id: self.folder_id.clone(),
            version_of: None,
        }
    }
}

/// What a finished send means for the loop: done for good, or tried again later.
fn settle_result(
    key: String,
    result: Result<Done, UploadError>,
    done: &mut HashSet<String>,
    later: &mut HashMap<String, Later>,
) {
    match result {
        Ok(Done::Sent { send, .. }) => {
            tracing::info!(name = %send.name, file = ?send.file_id, "Frame.io: watch folder file sent");
            later.remove(&key);
            done.insert(key);
        }
        Ok(Done::Already(_)) => {
            later.remove(&key);
            done.insert(key);
        }
        Err(UploadError::Cancelled) => {}
        Err(e) => {
            let wait = later
                .get(&key)
                .map_or(FIRST_RETRY_WAIT, |l| (l.wait * 2).min(MAX_RETRY_WAIT));
            if matches!(e, UploadError::Busy { .. }) {
                tracing::debug!(error = %e, "Frame.io: watch folder file claimed elsewhere");
            } else {
                tracing::warn!(error = %e, retry_s = wait.as_secs(), "Frame.io: watch folder file not sent, trying again later");
            }
            later.insert(
                key,
                Later {
                    at: Instant::now() + wait,
                    wait,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_partial_files_are_skipped() {
        for name in [
            ".DS_Store",
            ".Promo.mov",
            "Promo.mov.part",
            "x.TMP",
            "~lock.prproj",
        ] {
            assert!(skipped(name), "{name}");
        }
        for name in ["Promo.mov", "Promo v2.mov", "part.mov", "tmp.mp4"] {
            assert!(!skipped(name), "{name}");
        }
    }
}
