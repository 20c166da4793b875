//! The HTTP side: JSON API, health and metrics (and later the dashboard).

pub(crate) mod access;
pub(crate) mod api;
pub(crate) mod compat;
pub(crate) mod dashboard;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod frameio;
pub(crate) mod inspector;
pub(crate) mod metrics;
pub(crate) mod passwords;
mod review;
pub(crate) mod router;
mod sends;
pub(crate) mod shield;
mod times;

use std::sync::Arc;

use crate::config::Config;
use crate::download::engine::DownloadHandle;
use crate::events::EventBus;
use crate::feed::poller::PollerHandle;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub poller: PollerHandle,
    pub downloads: DownloadHandle,
    pub events: EventBus,
    pub config: Arc<Config>,
    pub frameio: crate::frameio::FrameioHandle,
    pub tunnel: crate::tunnel::TunnelHandle,
    /// Failure limits and login sessions.
    pub shield: Arc<shield::Shield>,
}

pub use router::router;
