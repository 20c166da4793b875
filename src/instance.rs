//! One rushes per data folder: an exclusive `flock` on `$RUSHES_DATA_DIR/rushes.lock`, held for
//! the life of the process (the kernel drops it when the process dies, even by SIGKILL). The
//! file holds the owner's pid, so a second instance can say which process is in the way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Name of the lock file inside the data folder.
pub const LOCK_FILE: &str = "rushes.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another rushes (pid {pid}) uses this data folder ({dir}); stop it or set RUSHES_DATA_DIR to another folder"
    )]
    InUse { pid: String, dir: String },
    #[error(
        "RUSHES_DATA_DIR ({dir}) is not a folder rushes can write in: {reason}; set \
         RUSHES_DATA_DIR to a writable folder"
    )]
    Unusable { dir: String, reason: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the data folder for this process, or says who holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io_error = |source: io::Error| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let unusable = |reason: String| LockError::Unusable {
        dir: dir.display().to_string(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(unusable("it is a file, not a folder".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot create it ({e})")))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| unusable(format!("cannot create {} in it ({e})", LOCK_FILE)))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = Read::by_ref(&mut file).take(32).read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::InUse {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_string()
                },
                dir: dir.display().to_string(),
            });
        }
        Err(e) => return Err(io_error(io::Error::from(e))),
    }
    file.set_len(0).map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    writeln!(file, "{}", std::process::id()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(DataDirLock { _file: file, path })
}

/// Whether a process can create files in `dir` (root ignores permission bits, so try for real).
pub fn check_writable(dir: &Path) -> io::Result<()> {
    let probe = tempfile::Builder::new()
        .prefix(".rushes-write-check")
        .tempfile_in(dir)?;
    probe.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_names_the_holder() -> Result<(), LockError> {
        let dir = tempfile::tempdir().map_err(|source| LockError::Io {
            path: "tmp".into(),
            source,
        })?;
        let held = lock_data_dir(dir.path())?;
        let err = lock_data_dir(dir.path()).err().map(|e| e.to_string());
        let expected = format!("another rushes (pid {})", std::process::id());
        assert!(
            err.as_deref().is_some_and(|e| e.contains(&expected)),
            "{err:?}"
        );
        drop(held);
        assert!(lock_data_dir(dir.path()).is_ok());
        Ok(())
    }
}
