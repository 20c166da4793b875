//! `rushes serve` and `rushes demo`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::shutdown_signal;
use crate::app::App;
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
    let demo = crate::demo::Demo::start(root.path(), bind).await?;
    let _guard = logging::init_service(&demo.config.service.log_dir)
        .context("cannot write the demo's logs")?;
    let app = App::build(demo.config.clone()).await?;
    let addr = app.local_addr();
    print_banner(&demo, addr, root.path());
    let timeline = tokio_util::sync::CancellationToken::new();
    let script = demo.spawn_timeline(timeline.clone());
    let ran = app.run_until(shutdown_signal()).await;
    timeline.cancel();
    let _ = script.await;
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// What the demo prints on start: where to look, and which parts are simulated.
fn print_banner(demo: &crate::demo::Demo, addr: std::net::SocketAddr, root: &std::path::Path) {
    println!();
    println!("  rushes demo is running");
    if let Some(wanted) = demo.moved_from {
        println!();
        println!(
            "  {wanted} is taken (another rushes?), so the demo took port {} instead",
            addr.port()
        );
    }
    println!();
    println!("  dashboard    http://{addr}/");
    println!("  downloads    {}", root.join("downloads").display());
    println!(
        "  watch folder {} (cuts put here are sent to Frame.io)",
        demo.outbox.display()
    );
    println!();
    println!("  Simulated on this machine (nothing goes to the network):");
    println!(
        "    the client feed  {} (a new delivery every {} s)",
        demo.sample.feed_url(),
        crate::demo::NEW_DELIVERY_EVERY.as_secs()
    );
    println!(
        "    the file hosts   http://{}/files/ (slowed to 1-2 MiB/s so downloads can be watched)",
        demo.sample.addr
    );
    println!(
        "    Frame.io         {} (uploads, client comments, signed webhooks)",
        demo.frameio.base()
    );
    println!("  Real: rushes itself (feed, downloads, uploads, webhook receiver, review reader).");
    println!("  The review plays out over the first minute: see docs/demo.md.");
    println!();
    println!("  Press Ctrl-C to stop (the temporary folder is removed).");
    println!();
}
