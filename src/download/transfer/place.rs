//! Where a download lands: names reserved while in use, `<name>.part`, free space, emptying a
//! part, and the final rename that never replaces a file.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use crate::naming::{self, SafeFileName};

/// Final names and `.part` files in use by downloads of this process.
static RESERVED: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// A name held by one download until it ends, so two downloads never pick the same file.
#[derive(Debug)]
pub(super) struct Reservation(pub(super) Vec<PathBuf>);

impl Reservation {
    pub(super) fn try_take(paths: &[PathBuf]) -> Option<Self> {
        let mut set = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
        if paths.iter().any(|p| set.contains(p)) {
            return None;
        }
        set.extend(paths.iter().cloned());
        Some(Self(paths.to_vec()))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut set = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.0 {
            set.remove(p);
        }
    }
}

/// `<name>.part`, the name cut if needed so the whole stays within 255 bytes.
pub fn part_path(dir: &Path, name: &SafeFileName) -> PathBuf {
    let mut base = name.as_str();
    let room = naming::MAX_NAME_BYTES - ".part".len();
    if base.len() > room {
        let mut end = room;
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        base = &base[..end];
    }
    dir.join(format!("{base}.part"))
}

/// The first of `name`, `name (1)`, … whose final file and `.part` are both free.
pub(super) fn choose_name(dir: &Path, name: &SafeFileName) -> (SafeFileName, Reservation) {
    let mut n = 0;
    loop {
        let candidate = if n == 0 {
            name.clone()
        } else {
            name.numbered(n)
        };
        n += 1;
        let target = dir.join(candidate.as_str());
        let part = part_path(dir, &candidate);
        if target.symlink_metadata().is_ok() || part.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(reservation) = Reservation::try_take(&[target, part]) {
            return (candidate, reservation);
        }
    }
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

pub(super) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
    )
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`.
pub(super) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            // File systems without RENAME_NOREPLACE: a hard link never replaces either.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reserved_until_released() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("rushes-reserve-{}", std::process::id()));
        let name = SafeFileName::new("same.mov").ok_or("name")?;
        let (first, r1) = choose_name(&dir, &name);
        let (second, r2) = choose_name(&dir, &name);
        assert_eq!(first.as_str(), "same.mov");
        assert_eq!(second.as_str(), "same (1).mov");
        drop(r1);
        drop(r2);
        let (again, _r) = choose_name(&dir, &name);
        assert_eq!(again.as_str(), "same.mov");
        Ok(())
    }
}
