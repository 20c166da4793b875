//! `rushes demo`: rushes on built-in sample data, nothing on the network but loopback. Three
//! things are simulated in the same process, each on its own 127.0.0.1 port: the client feed and
//! the file hosts it points at ([`sample`]), and Frame.io ([`frameio`]: the v4 calls rushes
//! makes, signed webhooks). Everything else is rushes itself: the feed poller, the downloads, the
//! watch folder that uploads cuts, the webhook receiver, the review reader and the dashboard. A
//! scripted timeline ([`script`]) plays the review side: cuts dropped into the watch folder,
//! client comments announced by webhooks.

pub mod frameio;
pub mod sample;
pub mod script;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FeedLocation, FrameioAuth, FrameioConfig, UploadSettings};
pub use frameio::FrameioStandIn;
pub use sample::{
    FILES, MAX_NEW_DELIVERIES, NEW_DELIVERY_EVERY, Pace, SampleFile, SampleServer, history_feed,
    new_deliveries, sample_feed,
};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the sample server: {0}")]
    SampleServer(std::io::Error),
    #[error("cannot start the Frame.io stand-in: {0}")]
    FrameioStandIn(std::io::Error),
    #[error("cannot create the demo's folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("no free port on 127.0.0.1 for the demo: {0}")]
    Port(std::io::Error),
}

/// The configuration the demo runs with: everything under `root`, the sample feed, quick polls.
pub fn demo_config(root: &Path, feed_url: &str, bind: SocketAddr) -> Config {
    let feed = FeedLocation::parse(feed_url)
        .unwrap_or_else(|_| FeedLocation::File(root.join("feed.json")));
    let mut config = Config::for_dir(root, feed);
    config.service.bind = bind;
    config.feed.monitor_interval = Duration::from_secs(5);
    config.feed.cache_ttl = Duration::ZERO;
    config.download.max_age = Some(crate::config::DEFAULT_MAX_AGE);
    config
}

/// The Frame.io settings that point rushes at the stand-in: its token, account, workspace and
/// folder, and `outbox` as the watch folder.
pub fn frameio_config(standin: &FrameioStandIn, outbox: &Path) -> FrameioConfig {
    let base = standin.base();
    let mut config = FrameioConfig::idle();
    if let (Ok(api), Ok(ims)) = (
        url::Url::parse(&base),
        url::Url::parse(&format!("{base}/ims/token/v3")),
    ) {
        config.api_base = api;
        config.ims_url = ims;
    }
    config.auth = Some(FrameioAuth::Token(SecretString::from(frameio::TOKEN)));
    config.account_id = Some(frameio::ACCOUNT.into());
    config.workspace_id = Some(frameio::WORKSPACE.into());
    config.webhook_name = "rushes demo".into();
    config.poll_interval = Duration::from_secs(120);
    config.upload = UploadSettings {
        folder_id: Some(frameio::FOLDER.into()),
        dir: Some(outbox.to_path_buf()),
        settle: Duration::from_secs(1),
    };
    config
}

/// The address the demo listens on: `wanted` when it is free, else a free port on 127.0.0.1
/// (returned with `Some(wanted)` so the demo can say so). Known before rushes starts: the
/// webhook rushes registers on the stand-in points at it.
fn free_address(wanted: SocketAddr) -> Result<(SocketAddr, Option<SocketAddr>), DemoError> {
    if let Ok(probe) = std::net::TcpListener::bind(wanted) {
        return probe
            .local_addr()
            .map(|a| (a, None))
            .map_err(DemoError::Port);
    }
    let probe = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(DemoError::Port)?;
    let addr = probe.local_addr().map_err(DemoError::Port)?;
    Ok((addr, Some(wanted)))
}

/// The demo's simulated parts, started, and the configuration of the rushes that runs on them.
pub struct Demo {
    pub config: Config,
    pub sample: SampleServer,
    pub frameio: FrameioStandIn,
    /// The address asked for, when it was taken and the demo took another.
    pub moved_from: Option<SocketAddr>,
    /// The watch folder the timeline drops cuts into.
    pub outbox: PathBuf,
}

impl Demo {
    /// Starts the sample server and the Frame.io stand-in, and prepares everything under `root`.
    pub async fn start(root: &Path, bind: SocketAddr) -> Result<Self, DemoError> {
        let sample = SampleServer::start_paced(Vec::new(), Pace::Watchable).await?;
        let frameio = FrameioStandIn::start().await?;
        let outbox = root.join("outbox");
        std::fs::create_dir_all(&outbox).map_err(|source| DemoError::Folder {
            path: outbox.display().to_string(),
            source,
        })?;
        let (addr, moved_from) = free_address(bind)?;
        let mut config = demo_config(root, &sample.feed_url(), addr);
        config.frameio = frameio_config(&frameio, &outbox);
        let host = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        config.tunnel.public_url = url::Url::parse(&format!("http://{host}")).ok();
        Ok(Self {
            config,
            sample,
            frameio,
            moved_from,
            outbox,
        })
    }

    /// Plays the review timeline in the background until it ends or `cancel`.
    pub fn spawn_timeline(&self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let timeline = script::Timeline {
            frameio: self.frameio.clone(),
            outbox: self.outbox.clone(),
        };
        tokio::spawn(timeline.run(cancel))
    }
}
