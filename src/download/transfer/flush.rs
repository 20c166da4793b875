//! Write-back while data still arrives: a thread of its own `fdatasync`s the file (through a
//! second handle) every [`FLUSH_EVERY`] bytes written, so the disk works during the transfer and
//! the final `fsync` before the rename finds little left. It never blocks the writer: writing and
//! hashing go on while a flush runs, and a flush request made meanwhile is merged into the next.
//!
//! (Linux's `sync_file_range` would start write-back without waiting, but no safe binding of it
//! is in the tree; one thread per download blocked in `fdatasync` gives the same overlap.)

use std::fs::File;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes written between two background flushes.
pub(super) const FLUSH_EVERY: u64 = 32 << 20;

/// The background flusher of one file.
pub(super) struct Flusher {
    tx: Option<mpsc::Sender<u64>>,
    thread: Option<JoinHandle<()>>,
    written: u64,
    requested: u64,
}

impl Flusher {
    /// Starts flushing `file` in the background. `None` (flush only at the end) when the file
    /// cannot be shared with another thread.
    pub(super) fn start(file: &File) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (tx, rx) = mpsc::channel::<u64>();
        let thread = std::thread::Builder::new()
            .name("rushes-flush".into())
            .spawn(move || {
                while let Ok(mut upto) = rx.recv() {
                    // Requests that came in during the last flush: one flush covers them all.
                    while let Ok(later) = rx.try_recv() {
                        upto = upto.max(later);
                    }
                    // An error here is not lost: the final `sync_all` on the writer's handle
                    // reports it.
                    let _ = file.sync_data();
                }
            })
            .ok()?;
        Some(Self {
            tx: Some(tx),
            thread: Some(thread),
            written: 0,
            requested: 0,
        })
    }

    /// `n` more bytes were written.
    pub(super) fn wrote(&mut self, n: u64) {
        self.written += n;
        if self.written - self.requested >= FLUSH_EVERY {
            self.requested = self.written;
            if let Some(tx) = &self.tx {
                let _ = tx.send(self.written);
            }
        }
    }

    /// Waits for a running flush to end (call before the final `fsync`).
    pub(super) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}
