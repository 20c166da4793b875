//! Tracing setup: stdout, plus `$RUSHES_LOG_DIR/app.log` for the service. `RUST_LOG` is honoured.
//! `app.log` is rotated by size (`RUSHES_LOG_MAX_SIZE`, `RUSHES_LOG_KEEP` old files kept as
//! `app.log.1` (newest) ... `app.log.N`) and reopened on SIGHUP, for an outside logrotate that
//! moved it away. tracing-appender rotates by time only, hence [`RotatingFile`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// A log file that rotates itself past `max_size` and reopens its path when asked (SIGHUP).
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
    reopen: Arc<AtomicBool>,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_size: u64, keep: usize) -> io::Result<Self> {
        let (file, size) = Self::append(&path)?;
        Ok(Self {
            path,
            file,
            size,
            max_size,
            keep: keep.max(1),
            reopen: Arc::default(),
        })
    }

    /// Set it to have the path opened again before the next write.
    pub fn reopen_flag(&self) -> Arc<AtomicBool> {
        self.reopen.clone()
    }

    fn append(path: &Path) -> io::Result<(File, u64)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// `app.log.(k-1)` -> `app.log.k` ... `app.log` -> `app.log.1`, then a new `app.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.numbered(n), self.numbered(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        (self.file, self.size) = Self::append(&self.path)?;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reopen.swap(false, Ordering::AcqRel) {
            (self.file, self.size) = Self::append(&self.path)?;
        }
        if self.size > 0
            && self.size.saturating_add(buf.len() as u64) > self.max_size
            && let Err(e) = self.rotate()
        {
            // Logging goes on in the current file rather than losing lines.
            eprintln!("cannot rotate {}: {e}", self.path.display());
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// For the service: stdout and `log_dir/app.log` with the default rotation.
pub fn init_service(log_dir: &Path) -> io::Result<WorkerGuard> {
    init_service_rotated(
        log_dir,
        crate::config::DEFAULT_LOG_MAX_SIZE,
        crate::config::DEFAULT_LOG_KEEP,
    )
}

/// For the service: stdout and `log_dir/app.log`, rotated past `max_size` with `keep` old
/// files, reopened on SIGHUP. Keep the guard alive until exit (it flushes).
pub fn init_service_rotated(log_dir: &Path, max_size: u64, keep: usize) -> io::Result<WorkerGuard> {
    std::fs::create_dir_all(log_dir)?;
    let file = RotatingFile::open(log_dir.join("app.log"), max_size, keep)?;
    let reopen = file.reopen_flag();
    if tokio::runtime::Handle::try_current().is_ok()
        && let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reopen.store(true, Ordering::Release);
            }
        });
    }
    let (writer, guard) = tracing_appender::non_blocking(file);
    let _ = tracing_subscriber::registry()
        .with(filter("info"))
        .with(fmt::layer())
        .with(fmt::layer().with_ansi(false).with_writer(writer))
        .try_init();
    Ok(guard)
}

/// For one-shot commands: warnings and errors on stderr, stdout kept for the command's output.
pub fn init_command() {
    let _ = tracing_subscriber::registry()
        .with(filter("warn"))
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init();
}
