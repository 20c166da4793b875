//! Tracing setup: stdout, plus `$RUSHES_LOG_DIR/app.log` for the service. `RUST_LOG` is honoured.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// For the service: stdout and `log_dir/app.log`. Keep the guard alive until exit (it flushes).
pub fn init_service(log_dir: &Path) -> std::io::Result<WorkerGuard> {
    std::fs::create_dir_all(log_dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("app.log"))?;
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
