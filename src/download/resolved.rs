//! A delivery whose link resolves to several files (SwissTransfer): each file downloaded in turn
//! by the normal transfer (resume, segments, SHA-256) into a folder named after the delivery.
//! The delivery's `final_path` is the folder, its `sha256` the SHA-256 of the `SHA256SUMS` file
//! written beside the files (one `<sha256>  <name>` line per file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use super::resolve::{self, ResolveError};
use super::transfer::{self, Finished, Job, JobUrl, Observer, Resume, Segment, Segmenting};
use crate::config::{ResolverSettings, SegmentSettings};
use crate::domain::{UrlRole, WaitReason};
use crate::naming::SafeFileName;
use crate::net::{self, RetryPolicy};
use crate::store::Delivery;

/// Why a resolved delivery did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ResolvedError {
    #[error("{}", shown(.error))]
    Resolve {
        #[source]
        error: ResolveError,
    },
    #[error("{name}: {source}")]
    File {
        name: String,
        #[source]
        source: transfer::TransferError,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A resolver error as shown: " (retry later)" when trying again can help.
pub fn shown(error: &ResolveError) -> String {
    match error.retry_later() {
        true => format!("{error} (retry later)"),
        false => error.to_string(),
    }
}

/// Why a delivery waits instead of failing, when it does: the host's virus check (queued again by
/// itself) or a password a person must give.
pub fn wait_reason(error: &ResolveError) -> Option<WaitReason> {
    match error {
        ResolveError::VirusCheck => Some(WaitReason::VirusCheck),
        ResolveError::PasswordNeeded => Some(WaitReason::PasswordNeeded),
        ResolveError::PasswordWrong => Some(WaitReason::PasswordWrong),
        _ => None,
    }
}

/// How long a delivery waits after its `count`-th wait for a virus check: `base`, doubled each
/// time, at most an hour.
pub fn recheck_delay(base: Duration, count: i64) -> Duration {
    let doublings = u32::try_from(count.clamp(0, 16)).unwrap_or(16);
    base.saturating_mul(1u32 << doublings)
        .min(Duration::from_secs(3600))
        .max(base.min(Duration::from_secs(3600)))
}

/// Whether the engine resolves this delivery's link instead of downloading it.
pub fn applies(settings: &ResolverSettings, link: &str) -> bool {
    use crate::domain::LinkKind;
    Url::parse(link).is_ok_and(|u| match crate::links::kind_of_url(&u) {
        LinkKind::Swisstransfer => settings.swisstransfer,
        LinkKind::Fromsmash => settings.smash,
        _ => false,
    })
}

/// Whether any error of this delivery's automatic download sends it back to manual (FromSmash,
/// experimental) instead of failing it.
pub fn manual_on_error(settings: &ResolverSettings, link: &str) -> bool {
    settings.smash
        && Url::parse(link)
            .is_ok_and(|u| crate::links::kind_of_url(&u) == crate::domain::LinkKind::Fromsmash)
}

/// The folder a delivery's files go into: its forced name, else the transfer's message, else
/// `transfer-<id>`.
fn folder_name(delivery: &Delivery, title: Option<&str>) -> String {
    delivery
        .original_filename
        .as_deref()
        .or(title)
        .and_then(SafeFileName::new)
        .map_or_else(
            || format!("transfer-{}", delivery.id),
            |n| n.as_str().to_string(),
        )
}

/// Resolves the delivery's link and downloads every file; `stored` gives the part, validator and
/// segments an earlier run left (for the file that was in progress).
#[allow(clippy::too_many_arguments)]
pub async fn fetch_all<O: Observer>(
    client: &reqwest::Client,
    settings: &ResolverSettings,
    segments: &SegmentSettings,
    delivery: &Delivery,
    password: Option<&secrecy::SecretString>,
    stored: Vec<Segment>,
    downloads: &Path,
    observer: &mut O,
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Finished, ResolvedError> {
    let started = Instant::now();
    let link = Url::parse(&delivery.source_url).map_err(|e| ResolvedError::Resolve {
        error: ResolveError::Api(format!("the link is not a URL ({e})")),
    })?;
    use secrecy::ExposeSecret;
    // The password given for this delivery, else SWISSTRANSFER_PASSWORD.
    let password = password
        .or(settings.swisstransfer_password.as_ref())
        .map(|p| p.expose_secret().to_string());
    let resolved = match resolve::resolve(client, settings, &link, password.as_deref()).await {
        Some(r) => r.map_err(|error| ResolvedError::Resolve { error })?,
        None => {
            return Err(ResolvedError::Resolve {
                error: ResolveError::Api("no resolver for this link".into()),
            });
        }
    };
    let dir = downloads.join(folder_name(delivery, resolved.title.as_deref()));
    tracing::info!(
        id = delivery.id,
        files = resolved.files.len(),
        credits_left = ?resolved.credits_left,
        folder = %dir.display(),
        "transfer resolved; each automatic download uses one of its download credits"
    );
    let mut sums = String::new();
    let mut bytes = 0u64;
    let mut fetched = 0u64;
    for (i, file) in resolved.files.iter().enumerate() {
        let mut file_dir = dir.clone();
        for part in file.path.iter().flat_map(|p| p.split('/')) {
            if let Some(safe) = SafeFileName::new(part) {
                file_dir.push(safe.as_str());
            }
        }
        std::fs::create_dir_all(&file_dir).map_err(|source| ResolvedError::Io {
            path: file_dir.display().to_string(),
            source,
        })?;
        let name = crate::naming::download_name(Some(&file.name), None, &file.url, "file", false);
        let target = file_dir.join(name.as_str());
        // Already there from an earlier run (the transfer is fetched file by file).
        if let Some(sha) = complete(&target, file.size).await {
            sums.push_str(&format!("{sha}  {}\n", relative(&dir, &target)));
            bytes += file.size.unwrap_or(0);
            continue;
        }
        let part = file_dir.join(format!("{name}.part"));
        let resume = delivery
            .part_path
            .as_deref()
            .filter(|p| Path::new(p) == part && part.is_file())
            .map(|p| Resume {
                part: PathBuf::from(p),
                validator: delivery.validator.clone(),
                total: file.size,
            });
        let job = Job {
            urls: vec![JobUrl {
                role: UrlRole::Source,
                url: file.url.clone(),
                headers: file
                    .header_map()
                    .map_err(|error| ResolvedError::Resolve { error })?,
            }],
            forced_name: Some(name.as_str().to_string()),
            name_link: file.url.clone(),
            fallback_name: format!("file-{}", i + 1),
            dir: file_dir,
            segments: Segmenting {
                count: segments.count,
                min_size: segments.min_size,
                resume: if resume.is_some() {
                    stored.clone()
                } else {
                    Vec::new()
                },
            },
            resume,
            inline_writes: false,
        };
        let done = transfer::download(client, &job, observer, retry, cancel)
            .await
            .map_err(|source| ResolvedError::File {
                name: file.name.clone(),
                source,
            })?;
        sums.push_str(&format!(
            "{}  {}\n",
            done.sha256,
            relative(&dir, &done.path)
        ));
        bytes += done.bytes;
        fetched += done.fetched;
    }
    let sums_path = dir.join("SHA256SUMS");
    std::fs::write(&sums_path, &sums).map_err(|source| ResolvedError::Io {
        path: sums_path.display().to_string(),
        source,
    })?;
    use sha2::Digest;
    Ok(Finished {
        path: dir,
        sha256: hex::encode(sha2::Sha256::digest(sums.as_bytes())),
        bytes,
        served_by: Some(UrlRole::Source),
        served_url: net::redact(&link),
        elapsed: started.elapsed().max(Duration::from_millis(1)),
        fetched,
    })
}

fn relative(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir).unwrap_or(file).display().to_string()
}

/// The SHA-256 of `path` when it is there with the announced size.
async fn complete(path: &Path, size: Option<u64>) -> Option<String> {
    let len = std::fs::metadata(path).ok()?.len();
    if size.is_some_and(|s| s != len) {
        return None;
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(path).ok()?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Some(hex::encode(hasher.finalize()))
    })
    .await
    .ok()?
}
