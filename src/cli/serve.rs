//! `rushes serve` and `rushes demo`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::shutdown_signal;
use crate::app::{App, AppError};
use crate::config::{Config, Overrides};
use crate::logging;

pub(super) async fn serve(overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let config = Config::load(overrides)?;
    if config.feed.location.is_none() {
        // The terminal's first line: the log line below is easy to miss among the others.
        println!(
            "rushes: Frame.io-only mode: no feed is set (WEBHOOK_JSON_URL), so nothing is \
             polled or downloaded. To take in deliveries, set WEBHOOK_JSON_URL=https://… (or a \
             file path) or run `rushes serve --feed-url URL`."
        );
    }
    let _guard = logging::init_service_rotated(
        &config.service.log_dir,
        config.upkeep.log_max_size,
        config.upkeep.log_keep,
    )
    .with_context(|| {
        format!(
            "cannot write logs to {} (set RUSHES_LOG_DIR)",
            config.service.log_dir.display()
        )
    })?;
    match &config.feed.location {
        Some(feed) => tracing::info!(
            feed = %feed,
            interval_s = config.feed.monitor_interval.as_secs(),
            ttl_s = config.feed.cache_ttl.as_secs(),
            tunnel = %config.tunnel.mode,
            "rushes starting"
        ),
        None => tracing::info!(
            tunnel = %config.tunnel.mode,
            "rushes starting without a feed (WEBHOOK_JSON_URL not set): Frame.io review tracking only"
        ),
    }
    if let Some(url) = &config.tunnel.public_url
        && url.scheme() != "https"
    {
        tracing::warn!(url = %url, "RUSHES_PUBLIC_URL is not https: Frame.io delivers webhooks to https URLs only");
    }
    let app = App::build(config).await?;
    app.run_until(shutdown_signal()).await?;
    tracing::info!("rushes stopped");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn demo(bind: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let root = tempfile::Builder::new()
        .prefix("rushes-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo")?;
    let sample = crate::demo::SampleServer::start(Vec::new()).await?;
    let config = crate::demo::demo_config(root.path(), &sample.feed_url(), bind);
    let _guard =
        logging::init_service(&config.service.log_dir).context("cannot write the demo's logs")?;
    let mut moved_from = None;
    let app = match App::build(config.clone()).await {
        Err(AppError::Bind { .. }) => {
            moved_from = Some(config.service.bind);
            let mut fallback = config;
            fallback.service.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            App::build(fallback).await?
        }
        other => other?,
    };
    let addr = app.local_addr();
    println!();
    println!("  rushes demo is running");
    if let Some(wanted) = moved_from {
        println!();
        println!(
            "  {wanted} is taken (another rushes?), so the demo took port {} instead",
            addr.port()
        );
    }
    println!();
    println!("  dashboard    http://{addr}/");
    println!("  sample feed  {}", sample.feed_url());
    println!("  downloads    {}", root.path().join("downloads").display());
    println!();
    println!("  Press Ctrl-C to stop (the temporary folder is removed).");
    println!();
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
