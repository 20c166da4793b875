//! SHA-256 in order, beside the transfer: a thread of its own follows the contiguous prefix on
//! disk and hashes it from the page cache as the connections move it on.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use sha2::{Digest, Sha256};

/// What the hashing thread and the connections share.
pub(super) struct Follow {
    /// Bytes from the start of the file that are on disk (the connections move it on).
    pub(super) frontier: Mutex<(u64, bool)>,
    pub(super) moved: Condvar,
    pub(super) stop: AtomicBool,
    /// Bytes hashed so far.
    pub(super) hashed: AtomicU64,
}

impl Follow {
    /// The contiguous prefix on disk now reaches `upto`.
    pub(super) fn advance(&self, upto: u64) {
        let mut f = self.frontier.lock().unwrap_or_else(|e| e.into_inner());
        if upto > f.0 {
            f.0 = upto;
            self.moved.notify_one();
        }
    }
}

/// The SHA-256 of the file, computed in order by a thread of its own that follows the contiguous
/// prefix on disk: as soon as a range completes, the ranges after it that are already received are
/// read back (from the page cache) and hashed, then followed as they grow. Together with `spread`
/// (the ranges complete one after the other) little is left to hash after the last byte.
pub(super) struct Hasher {
    pub(super) follow: Arc<Follow>,
    pub(super) thread: Option<std::thread::JoinHandle<io::Result<(Sha256, u64)>>>,
}

impl Hasher {
    /// Starts hashing `file` from `prefix` (the hash of its first bytes; `None`: from 0).
    pub(super) fn start(
        file: Arc<std::fs::File>,
        prefix: Option<(Sha256, u64)>,
    ) -> io::Result<Self> {
        let (hasher, from) = prefix.unwrap_or_else(|| (Sha256::new(), 0));
        let follow = Arc::new(Follow {
            frontier: Mutex::new((from, false)),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
            hashed: AtomicU64::new(from),
        });
        let shared = follow.clone();
        let thread = std::thread::Builder::new()
            .name("rushes-hash".into())
            .spawn(move || follow_prefix(&file, &shared, hasher, from))?;
        Ok(Self {
            follow,
            thread: Some(thread),
        })
    }

    /// Hashes up to `total` (the whole file is on disk) and gives the hash. Blocking.
    pub(super) fn finish(mut self, total: u64) -> io::Result<(Sha256, u64)> {
        {
            let mut f = self
                .follow
                .frontier
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *f = (total, true);
            self.follow.moved.notify_one();
        }
        self.join()
    }

    /// Stops at once; gives the hash of the bytes hashed so far (a valid prefix). Blocking.
    pub(super) fn stop(mut self) -> Option<(Sha256, u64)> {
        self.follow.stop.store(true, Ordering::Relaxed);
        self.follow.moved.notify_one();
        self.join().ok()
    }

    pub(super) fn join(&mut self) -> io::Result<(Sha256, u64)> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("the hashing thread failed")),
        }
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        // Not joined here (it may be in a read): told to stop, it ends on its own.
        self.follow.stop.store(true, Ordering::Relaxed);
        self.follow.moved.notify_one();
    }
}

/// The hashing thread: waits for the frontier to move, hashes up to it, until told to finish
/// (then everything up to the frontier is hashed) or to stop.
pub(super) fn follow_prefix(
    file: &std::fs::File,
    follow: &Follow,
    mut hasher: Sha256,
    mut upto: u64,
) -> io::Result<(Sha256, u64)> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let target = {
            let mut f = follow.frontier.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if follow.stop.load(Ordering::Relaxed) {
                    return Ok((hasher, upto));
                }
                if f.0 > upto {
                    break f.0;
                }
                if f.1 {
                    return Ok((hasher, upto));
                }
                f = follow.moved.wait(f).unwrap_or_else(|e| e.into_inner());
            }
        };
        while upto < target {
            if follow.stop.load(Ordering::Relaxed) {
                return Ok((hasher, upto));
            }
            let want = buf
                .len()
                .min(usize::try_from(target - upto).unwrap_or(usize::MAX));
            let n = file.read_at(&mut buf[..want], upto)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "partial file shorter than expected",
                ));
            }
            hasher.update(&buf[..n]);
            upto += n as u64;
            follow.hashed.store(upto, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashing_thread_follows_the_prefix_and_stops_on_a_valid_prefix() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f.part");
        let body: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?,
        );
        file.set_len(body.len() as u64)?;
        // The second half first (out of order), then the first: hashed in order all the same.
        let half = body.len() / 2;
        file.write_all_at(&body[half..], half as u64)?;
        let mut known = Sha256::new();
        known.update(&body[..10]);
        let hasher = Hasher::start(file.clone(), Some((known, 10)))?;
        file.write_all_at(&body[..half], 0)?;
        hasher.follow.advance(half as u64);
        let (sha, upto) = hasher.finish(body.len() as u64)?;
        assert_eq!(upto, body.len() as u64);
        assert_eq!(sha.finalize().as_slice(), Sha256::digest(&body).as_slice());

        // Stopped: whatever it covers is the hash of that many first bytes.
        let hasher = Hasher::start(file.clone(), None)?;
        hasher.follow.advance(half as u64);
        let (sha, upto) = hasher.stop().expect("a prefix");
        assert!(upto <= half as u64);
        let upto = usize::try_from(upto).unwrap_or(usize::MAX);
        assert_eq!(
            sha.finalize().as_slice(),
            Sha256::digest(&body[..upto]).as_slice()
        );
        Ok(())
    }
}
