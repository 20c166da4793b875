//! Where received bytes go: hashed and written, then synced.

use std::io::{self, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::flush::Flusher;

/// Batches queued between the network and the writer thread (bounds memory, not speed).
const WRITE_QUEUE: usize = 4;
/// Bytes handed to the writer thread at once.
const WRITE_BATCH: usize = 1 << 20;

/// Where received bytes go: hashed and written by a blocking thread fed in ~1 MiB batches (the
/// service), or hashed and written inline (the one-shot CLI: no hand-off between
/// threads, bytes hashed and written while still in cache).
pub(super) enum Sink {
    Thread {
        tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
        writer: tokio::task::JoinHandle<(Sha256, u64, io::Result<()>)>,
        batch: Vec<Bytes>,
        batch_bytes: usize,
    },
    Inline {
        file: std::fs::File,
        hasher: Sha256,
        written: u64,
        result: io::Result<()>,
        flusher: Option<Flusher>,
    },
}

impl Sink {
    /// Hashing and writing on a blocking thread fed in ~1 MiB batches (one wake-up and one `writev`
    /// each): the OS schedules those threads, so concurrent downloads share the CPU equally, and a
    /// slow disk never stalls the runtime.
    pub(super) fn thread(mut file: std::fs::File, mut hasher: Sha256) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            let mut written = 0u64;
            let mut result = Ok(());
            // Write-back of what is written starts during the transfer (see `flush`).
            let mut flusher = Flusher::start(&file);
            while let Some(batch) = rx.blocking_recv() {
                if let Err(e) = write_all_vectored(&mut file, &batch) {
                    result = Err(e);
                    break;
                }
                let before = written;
                for chunk in &batch {
                    hasher.update(chunk);
                    written += chunk.len() as u64;
                }
                if let Some(f) = flusher.as_mut() {
                    f.wrote(written - before);
                }
            }
            if let Some(f) = flusher {
                f.finish();
            }
            if result.is_ok() {
                result = file.sync_all();
            }
            (hasher, written, result)
        });
        Self::Thread {
            tx,
            writer,
            batch: Vec::new(),
            batch_bytes: 0,
        }
    }

    /// Hashing and writing inline, write-back started in the background as data arrives.
    pub(super) fn inline(file: std::fs::File, hasher: Sha256) -> Self {
        let flusher = Flusher::start(&file);
        Self::Inline {
            file,
            hasher,
            written: 0,
            result: Ok(()),
            flusher,
        }
    }

    /// `false` once writing failed (the error comes out of `finish`).
    pub(super) async fn push(&mut self, chunk: Bytes) -> bool {
        match self {
            Self::Thread {
                tx,
                batch,
                batch_bytes,
                ..
            } => {
                *batch_bytes += chunk.len();
                batch.push(chunk);
                if *batch_bytes >= WRITE_BATCH {
                    *batch_bytes = 0;
                    return tx.send(std::mem::take(batch)).await.is_ok();
                }
                true
            }
            Self::Inline {
                file,
                hasher,
                written,
                result,
                flusher,
            } => {
                if let Err(e) = file.write_all(&chunk) {
                    *result = Err(e);
                    return false;
                }
                hasher.update(&chunk);
                *written += chunk.len() as u64;
                if let Some(f) = flusher.as_mut() {
                    f.wrote(chunk.len() as u64);
                }
                true
            }
        }
    }

    /// Writes what is pending, syncs, and gives the hash, the bytes written and the outcome.
    /// After a write error the hash covers more than the file: the caller drops it.
    pub(super) async fn finish(self) -> Result<(Sha256, u64, io::Result<()>), String> {
        match self {
            Self::Thread {
                tx, writer, batch, ..
            } => {
                if !batch.is_empty() {
                    let _ = tx.send(batch).await;
                }
                drop(tx);
                writer.await.map_err(|e| format!("writer task failed: {e}"))
            }
            Self::Inline {
                file,
                hasher,
                written,
                mut result,
                flusher,
            } => {
                if let Some(f) = flusher {
                    f.finish();
                }
                if result.is_ok() {
                    result = file.sync_all();
                }
                Ok((hasher, written, result))
            }
        }
    }
}

/// Writes every chunk, in order, with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut std::fs::File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hashes bytes `from..len` of the file at `path` into `prefix` (the hash of its first `from`
/// bytes; `None`: start at 0): a part left by an earlier run, or what a segmented download's
/// in-order hash had not reached. Fails when the file is shorter than `len`.
pub(super) fn hash_part(
    path: &std::path::Path,
    prefix: Option<(Sha256, u64)>,
    len: u64,
) -> io::Result<Sha256> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let (mut hasher, from) = prefix.unwrap_or_else(|| (Sha256::new(), 0));
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len.saturating_sub(from);
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "partial file shorter than expected",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}
