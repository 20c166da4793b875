//! A delivery whose link resolves to several files (SwissTransfer, FromSmash): each file
//! downloaded in turn by the normal transfer (resume, segments, SHA-256) into the delivery's own
//! folder (`layout.rs`: one folder per delivery, a unique name per file, a file adopted after a
//! restart only on its recorded SHA-256). The delivery's `final_path` is the folder, its `sha256`
//! the SHA-256 of the `SHA256SUMS` file written beside the files (one `<sha256>  <path>` line per
//! file), once every file has landed.
//!
//! Shared by the engine and `rushes download`, in two steps: [`open`] (resolve, check that every
//! file comes from the provider's own hosts, claim the folder, plan the names), then
//! [`Transfer::fetch`].

mod layout;

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use super::resolve::{self, ResolveError, Resolved, Resolver};
use super::transfer::{
    self, Finished, Job, JobUrl, Observer, Progress, Resume, Segment, Segmenting,
};
use crate::config::{ResolverSettings, SegmentSettings};
use crate::domain::{UrlRole, WaitReason};
use crate::naming::SafeFileName;
use crate::net::{self, RetryPolicy};
use layout::{Folder, Planned};

pub use layout::owner_key;

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

/// How the files are fetched (the same for every resolved delivery of a run).
pub struct Fetch<'a> {
    pub settings: &'a ResolverSettings,
    pub segments: &'a SegmentSettings,
    /// Connect and read timeout of every request.
    pub timeout: Duration,
    pub retry: &'a RetryPolicy,
    pub cancel: &'a CancellationToken,
    /// `Job::inline_writes` (the CLI).
    pub inline_writes: bool,
}

/// Which delivery, and where it goes.
pub struct Target<'a> {
    pub link: &'a Url,
    /// The password given for this delivery, if any (a resolver may have its own default).
    pub password: Option<&'a str>,
    /// The folder the delivery's folder is made in.
    pub parent: &'a Path,
    /// The folder's name when the delivery forces one (`original_filename`, `--name`); else the
    /// transfer's title, else `fallback_name`.
    pub forced_name: Option<&'a str>,
    pub fallback_name: String,
    /// Whose folder it is (`owner_key`): the same delivery finds its folder again, another never.
    pub owner: String,
    /// The partial file the store says this delivery was writing (a folder made before markers).
    pub hint: Option<&'a Path>,
}

/// What an earlier run left for a file's partial file, when it left it: its validator and
/// segments.
pub type ResumeOf<'a> = &'a (dyn Fn(&Path) -> Option<(Option<String>, Vec<Segment>)> + Sync);

/// A resolved delivery ready to fetch.
pub struct Transfer {
    resolver: &'static dyn Resolver,
    client: reqwest::Client,
    link: Url,
    resolved: Resolved,
    folder: Folder,
    plan: Vec<Planned>,
}

/// Resolves the link with its host's resolver (through a client that follows redirects only to
/// the provider's own hosts), refuses any file served from elsewhere, claims the delivery's
/// folder and plans every file's name. Nothing is downloaded yet.
pub async fn open(fetch: &Fetch<'_>, target: &Target<'_>) -> Result<Transfer, ResolvedError> {
    let resolve_error = |error| ResolvedError::Resolve { error };
    let resolver = resolve::for_link(fetch.settings, target.link)
        .ok_or_else(|| resolve_error(ResolveError::Api("no resolver for this link".into())))?;
    let hosts = resolver.hosts(fetch.settings);
    let client = net::guarded_client(
        net::Timeouts {
            connect: fetch.timeout,
            request: None,
            read: Some(fetch.timeout),
        },
        move |url| hosts.permits(url),
    )
    .map_err(|e| resolve_error(ResolveError::Network(net::error_text(&e))))?;
    let resolved = resolver
        .resolve(&client, fetch.settings, target.link, target.password)
        .await
        .unwrap_or_else(|| Err(ResolveError::Api("no resolver for this link".into())))
        .map_err(resolve_error)?;
    let hosts = resolver.hosts(fetch.settings);
    if let Some(file) = resolved.files.iter().find(|f| !hosts.permits(&f.url)) {
        return Err(resolve_error(ResolveError::ForeignHost {
            name: file.name.chars().take(200).collect(),
            url: net::redact(&file.url),
        }));
    }
    let base = target
        .forced_name
        .or(resolved.title.as_deref())
        .and_then(SafeFileName::new)
        .or_else(|| SafeFileName::new(&target.fallback_name))
        .unwrap_or_else(|| SafeFileName::new("transfer").expect("a constant name"));
    let io_error = |source| ResolvedError::Io {
        path: target.parent.display().to_string(),
        source,
    };
    std::fs::create_dir_all(target.parent).map_err(io_error)?;
    let folder =
        Folder::claim(target.parent, &base, &target.owner, target.hint).map_err(io_error)?;
    let plan = layout::plan(&folder.dir, &resolved.files);
    Ok(Transfer {
        resolver,
        client,
        link: target.link.clone(),
        resolved,
        folder,
        plan,
    })
}

impl Transfer {
    /// The delivery's own folder.
    pub fn dir(&self) -> &Path {
        &self.folder.dir
    }

    pub fn files(&self) -> usize {
        self.resolved.files.len()
    }

    /// Downloads the host still allows, when it says.
    pub fn credits_left(&self) -> Option<u64> {
        self.resolved.credits_left
    }

    /// The host's name ("SwissTransfer").
    pub fn provider(&self) -> &'static str {
        self.resolver.name()
    }

    /// Fetches every file not already landed, then writes `SHA256SUMS`; `resume` gives what an
    /// earlier run left for a file's partial file.
    pub async fn fetch<O: Observer>(
        mut self,
        fetch: &Fetch<'_>,
        resume: ResumeOf<'_>,
        observer: &mut O,
    ) -> Result<Finished, ResolvedError> {
        let started = Instant::now();
        let (mut sums, mut bytes, mut fetched) = (String::new(), 0u64, 0u64);
        let plan = std::mem::take(&mut self.plan);
        for (i, place) in plan.iter().enumerate() {
            let (path, sha256, size, got) = match self.folder.landed(&place.key).await {
                Some((path, sha256, size)) => (path, sha256, size, 0),
                None => {
                    let done = self
                        .fetch_one(fetch, resume, observer, i, place)
                        .await
                        .map_err(|source| ResolvedError::File {
                            name: self.resolved.files[i].name.chars().take(200).collect(),
                            source,
                        })?;
                    (done.path, done.sha256, done.bytes, done.fetched)
                }
            };
            sums.push_str(&format!("{sha256}  {}\n", relative(self.dir(), &path)));
            bytes += size;
            fetched += got;
        }
        let sha256 = self
            .folder
            .write_sums(&sums)
            .map_err(|source| ResolvedError::Io {
                path: self.dir().join(layout::SUMS).display().to_string(),
                source,
            })?;
        Ok(Finished {
            path: self.folder.dir.clone(),
            sha256,
            bytes,
            served_by: Some(UrlRole::Source),
            served_url: net::redact(&self.link),
            elapsed: started.elapsed().max(Duration::from_millis(1)),
            fetched,
        })
    }

    /// One file through the normal transfer, recorded in the folder before its rename.
    async fn fetch_one<O: Observer>(
        &mut self,
        fetch: &Fetch<'_>,
        resume: ResumeOf<'_>,
        observer: &mut O,
        index: usize,
        place: &Planned,
    ) -> Result<Finished, transfer::TransferError> {
        let file = &self.resolved.files[index];
        let io_error = |source| transfer::TransferError::Io {
            path: place.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&place.dir).map_err(io_error)?;
        let part = transfer::part_path(&place.dir, &place.name);
        let earlier = resume(&part).filter(|_| part.is_file());
        let headers = file.header_map().map_err(|e| {
            transfer::TransferError::Observer(format!("{}: {e}", self.resolver.name()))
        })?;
        let job = Job {
            urls: vec![JobUrl {
                role: UrlRole::Source,
                url: file.url.clone(),
                headers,
            }],
            forced_name: Some(place.name.as_str().to_string()),
            name_link: file.url.clone(),
            fallback_name: format!("file-{}", index + 1),
            dir: place.dir.clone(),
            segments: Segmenting {
                count: fetch.segments.count,
                min_size: fetch.segments.min_size,
                resume: earlier.as_ref().map(|e| e.1.clone()).unwrap_or_default(),
            },
            resume: earlier.map(|(validator, _)| Resume {
                part,
                validator,
                total: file.size,
            }),
            inline_writes: fetch.inline_writes,
        };
        let mut recording = Recording {
            inner: observer,
            folder: &mut self.folder,
            key: &place.key,
        };
        transfer::download(
            &self.client,
            &job,
            &mut recording,
            fetch.retry,
            fetch.cancel,
        )
        .await
    }
}

/// Passes everything on, but records a file in the folder (instead of the delivery) just
/// before its rename: the delivery's own `final_path` and `sha256` are the folder's.
struct Recording<'a, O> {
    inner: &'a mut O,
    folder: &'a mut Folder,
    key: &'a str,
}

impl<O: Observer> Observer for Recording<'_, O> {
    async fn part_chosen(
        &mut self,
        part: &Path,
        name: &SafeFileName,
        validator: Option<&str>,
        total: Option<u64>,
    ) -> Result<(), String> {
        self.inner.part_chosen(part, name, validator, total).await
    }

    async fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), String> {
        self.inner.attempt(role, shown_url, try_number, error).await
    }

    async fn progress(&mut self, progress: Progress) {
        self.inner.progress(progress).await;
    }

    async fn before_rename(
        &mut self,
        final_path: &Path,
        sha256: &str,
        bytes: u64,
    ) -> Result<(), String> {
        self.folder
            .record(self.key, final_path, sha256, bytes)
            .map_err(|e| format!("cannot record {}: {e}", final_path.display()))
    }

    async fn segments(&mut self, segments: &[Segment]) -> Result<(), String> {
        self.inner.segments(segments).await
    }

    async fn segments_snapshot(&mut self, segments: &[Segment]) -> Result<(), String> {
        self.inner.segments_snapshot(segments).await
    }
}

fn relative(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir).unwrap_or(file).display().to_string()
}
