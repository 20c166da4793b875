//! `rushes feed-proxy`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::shutdown_signal;
use crate::logging;

pub(super) async fn run() -> anyhow::Result<ExitCode> {
    let config = crate::proxy::ProxyConfig::load()?;
    let _guard = logging::init_service(&config.log_dir).with_context(|| {
        format!(
            "cannot write logs to {} (set RUSHES_LOG_DIR)",
            config.log_dir.display()
        )
    })?;
    crate::proxy::run(config, shutdown_signal()).await?;
    tracing::info!("feed-proxy stopped");
    Ok(ExitCode::SUCCESS)
}
