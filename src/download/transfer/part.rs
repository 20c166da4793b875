//! The partial file across tries and URLs ([`Part`]), how one try ended ([`TryError`]), a fresh
//! download handed to the segmented path ([`Handover`]), and what is done to a part: locked,
//! emptied, renamed to its final name.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use sha2::Sha256;

use tokio_util::sync::CancellationToken;

use super::job::{Job, Observer, TransferError};
use super::place::{Reservation, rename_no_replace};
use crate::naming::SafeFileName;

/// What a try of one URL works with, on one connection or several.
pub(super) struct Try<'a, O> {
    pub(super) client: &'a reqwest::Client,
    pub(super) job: &'a Job,
    pub(super) observer: &'a mut O,
    pub(super) cancel: &'a CancellationToken,
    /// Bytes received over the network by this download, all tries and URLs together.
    pub(super) fetched: u64,
}

/// How a single try ended, when it did not serve the file.
pub(super) enum TryError {
    /// Worth another try of the same URL (connection, timeout, 5xx, 408/429, truncated body).
    Retry(String),
    /// This URL will not work (4xx, HTML page): go to the next one at once.
    NextUrl(String),
    /// The whole download stops (disk, cancel, store).
    Fatal(TransferError),
    /// A fresh download found slow on one connection: the rest of its body, handed to
    /// `segmented::run` with what is written (the part's hash covers it).
    Segmented(Box<Handover>),
}

/// State of the partial file across tries and URLs.
pub(super) struct Part {
    pub(super) name: SafeFileName,
    pub(super) path: PathBuf,
    pub(super) validator: Option<String>,
    /// The whole file's size as first announced: a resumed answer must agree with it.
    pub(super) total: Option<u64>,
    /// Hash of the first `hashed` bytes of the part, when known without re-reading it.
    pub(super) hasher: Option<(Sha256, u64)>,
    pub(super) _reservation: Reservation,
}

impl Part {
    /// The part an earlier run left (`job.resume`), reserved again, if it is still there.
    pub(super) fn resumed(job: &Job) -> Option<Self> {
        if let Some(resume) = &job.resume
            && resume.part.is_file()
        {
            let name = resume
                .part
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(SafeFileName::new);
            if let Some(name) = name {
                let reservation =
                    Reservation::try_take(&[job.dir.join(name.as_str()), resume.part.clone()])
                        .unwrap_or(Reservation(Vec::new()));
                return Some(Part {
                    path: resume.part.clone(),
                    name,
                    validator: resume.validator.clone(),
                    total: resume.total,
                    hasher: None,
                    _reservation: reservation,
                });
            }
        }
        None
    }
}

/// A response body, read chunk by chunk.
pub(super) type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A fresh download the single path hands over: the rest of its body (the first segment's
/// stream), the file's size and the bytes already written (and hashed: the part's `hasher`).
pub(super) struct Handover {
    pub(super) body: Body,
    pub(super) total: u64,
    pub(super) written: u64,
}

/// Takes an exclusive lock on an opened `.part` for as long as `file` stays open: two processes
/// (two rushes instances on a shared downloads folder, one of which lost its claim) never write
/// the same partial file; the second one retries later instead.
pub(super) fn lock_part(file: &std::fs::File, path: &Path) -> Result<(), TryError> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(TryError::Retry(format!(
            "{} is being written by another process (another rushes instance?); not touching it",
            path.display()
        ))),
        Err(e) => Err(io_fatal(path, io::Error::from(e))),
    }
}

pub(super) fn io_fatal(path: &Path, source: io::Error) -> TryError {
    TryError::Fatal(TransferError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub(super) fn truncate_part(part: &mut Option<Part>) -> Result<(), TryError> {
    match part.as_mut() {
        Some(p) => reset_part(p),
        None => Ok(()),
    }
}

/// Empties the part: the next try starts from zero.
pub(super) fn reset_part(p: &mut Part) -> Result<(), TryError> {
    p.hasher = None;
    p.validator = None;
    p.total = None;
    if p.path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p.path)
            .and_then(|f| f.set_len(0))
            .map_err(|e| io_fatal(&p.path, e))?;
    }
    Ok(())
}

/// Renames the synced part to its final name, numbering the name if a file took it meanwhile.
pub(super) async fn finalize<O: Observer>(
    dir: &Path,
    p: &Part,
    sha256: &str,
    size: u64,
    observer: &mut O,
) -> Result<PathBuf, TryError> {
    let mut n = 0;
    loop {
        let name = if n == 0 {
            p.name.clone()
        } else {
            p.name.numbered(n)
        };
        n += 1;
        let target = dir.join(name.as_str());
        if target.symlink_metadata().is_ok() {
            continue;
        }
        let reservation = if n == 1 {
            None // our own name, reserved since the part was chosen
        } else {
            match Reservation::try_take(std::slice::from_ref(&target)) {
                Some(r) => Some(r),
                None => continue,
            }
        };
        observer
            .before_rename(&target, sha256, size)
            .await
            .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
        match rename_no_replace(&p.path, &target) {
            Ok(()) => {
                drop(reservation);
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_fatal(&target, e)),
        }
    }
}
