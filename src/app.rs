//! Wiring: build every component from a `Config`, run them until shutdown, stop cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::download::engine::{Engine, EngineConfig, EngineError};
use crate::events::EventBus;
use crate::feed::FeedService;
use crate::feed::poller::Poller;
use crate::feed::source::FeedSource;
use crate::net::RetryPolicy;
use crate::store::{Store, StoreError};
use crate::web::{self, AppState};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source} (is another rushes running? set RUSHES_BIND)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Downloads(#[from] EngineError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Another process holds the data folder (exit 2, like a configuration mistake).
    #[error(transparent)]
    Locked(#[from] crate::instance::LockError),
}

impl AppError {
    /// Whether the user must change something before a retry can work (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Store(StoreError::NewerDatabase { .. })
                | Self::Locked(
                    crate::instance::LockError::InUse { .. }
                        | crate::instance::LockError::Unusable { .. }
                )
        )
    }
}

/// A built, not yet running, rushes service. The listener is already bound, so `port()` is known.
pub struct App {
    listener: TcpListener,
    state: AppState,
    /// `None` without a feed (Frame.io only).
    poller: Option<Poller>,
    tunnel: Option<crate::tunnel::Supervisor>,
    frameio: crate::frameio::FrameioTasks,
    downloads: Engine,
    /// `NOTIFY_URL` / `ON_REVIEW_CHANGE`: messages and the review hook, when configured.
    alerts: Option<crate::alerts::Notifier>,
    /// Held until the service stops: one rushes per data folder.
    lock: crate::instance::DataDirLock,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        Self::build_with_retry(config, RetryPolicy::default()).await
    }

    /// Same as [`App::build`] with a feed retry policy of the caller's (tests shorten the waits).
    pub async fn build_with_retry(config: Config, retry: RetryPolicy) -> Result<Self, AppError> {
        let lock = crate::instance::lock_data_dir(&config.service.data_dir)?;
        std::fs::create_dir_all(&config.download.dir).map_err(|source| AppError::CreateDir {
            path: config.download.dir.display().to_string(),
            source,
        })?;
        crate::instance::check_writable(&config.download.dir).map_err(|e| {
            ConfigError::Invalid {
                var: "LOCAL_DOWNLOADS_DIR",
                value: config.download.dir.display().to_string(),
                reason: format!("rushes cannot write in this folder ({e})"),
            }
        })?;
        let store = Store::for_settings(&config.database, &config.database_path()).await?;
        let listener = TcpListener::bind(config.service.bind)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.service.bind,
                source,
            })?;
        let events = EventBus::new();
        let (poller, poller_handle) = match config.feed.location.clone() {
            Some(feed_location) => {
                let mut source =
                    FeedSource::new(feed_location, config.feed.timeout, config.feed.timezone)
                        .with_bearer(config.feed.auth_token.clone());
                source.retry = retry;
                let service = Arc::new(
                    FeedService::new(source, store.clone(), config.feed.cache_ttl, events.clone())
                        .with_max_age(config.download.max_age),
                );
                let (poller, handle) = Poller::new(service, config.feed.monitor_interval);
                (Some(poller), handle)
            }
            None => (None, crate::feed::poller::PollerHandle::disabled()),
        };
        let local = listener.local_addr().unwrap_or(config.service.bind);
        let (tunnel, tunnel_supervisor) = crate::tunnel::build(&config.tunnel, local);
        let (frameio, frameio_tasks) = crate::frameio::build(
            &config.frameio,
            store.clone(),
            events.clone(),
            config.tunnel.cleanup,
        )?;
        let (downloads, downloads_handle) = Engine::new(
            store.clone(),
            events.clone(),
            EngineConfig {
                dir: config.download.dir.clone(),
                concurrency: config.download.concurrency,
                per_host: crate::download::engine::PER_HOST,
                dry_run: config.download.dry_run,
                on_complete: config.download.on_complete.clone(),
                hook_env: config.download.hook_env.clone(),
                retry,
                timeout: config.feed.timeout,
                segments: config.download.segments,
                resolvers: config.download.resolvers.clone(),
            },
        )?;
        let dashboard = match &config.tunnel.public_url {
            Some(url) => url.to_string(),
            None if local.ip().is_unspecified() => format!("http://127.0.0.1:{}", local.port()),
            None => format!("http://{local}"),
        };
        let alerts = crate::alerts::Notifier::new(
            store.clone(),
            config.notify.clone(),
            dashboard,
            events.clone(),
        )
        .map(|n| n.with_public_urls(tunnel.url_watch()));
        let state = AppState {
            store,
            poller: poller_handle,
            downloads: downloads_handle,
            events,
            config: Arc::new(config),
            frameio,
            tunnel,
            shield: Arc::new(web::shield::Shield::new()),
        };
        Ok(Self {
            listener,
            state,
            poller,
            tunnel: tunnel_supervisor,
            frameio: frameio_tasks,
            downloads,
            alerts,
            lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.service.bind)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs the poller and the HTTP server until `shutdown` completes, then drains and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let addr = self.local_addr();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        match self.poller {
            Some(poller) => {
                tracker.spawn(poller.run(cancel.clone()));
            }
            None => tracing::info!(
                "no feed configured (WEBHOOK_JSON_URL): Frame.io review tracking only, no feed poller"
            ),
        }
        if let Some(supervisor) = self.tunnel {
            tracker.spawn(supervisor.run(cancel.clone()));
        }
        // The webhook writer stops only after the server has drained: in-flight deliveries get
        // their durable write and their answer.
        let served_token = CancellationToken::new();
        self.frameio.spawn(
            &tracker,
            cancel.clone(),
            served_token.clone(),
            self.state.tunnel.url_watch(),
        );
        tracker.spawn(self.downloads.run(cancel.clone()));
        if let Some(alerts) = self.alerts {
            tracker.spawn(alerts.run(cancel.clone()));
        }
        if let Some(retention) = self.state.config.upkeep.event_retention {
            tracker.spawn(crate::store::prune_events(
                self.state.store.clone(),
                retention,
                cancel.clone(),
            ));
        }
        if self.state.store.may_have_peers() {
            // A database server can go away: the API answers 503 at once while it is.
            let store = self.state.store.clone();
            let stop = cancel.clone();
            tracker.spawn(async move { store.watch_reachability(stop).await });
        }
        tracker.spawn(crate::cluster::run(
            self.state.store.clone(),
            self.state.events.clone(),
            addr.to_string(),
            cancel.clone(),
        ));

        let trigger = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            trigger.cancel();
        });

        tracing::info!(%addr, "rushes listening on http://{addr}");
        let store = self.state.store.clone();
        let events = self.state.events.clone();
        let limits = self.state.config.service.limits;
        let app = web::router(self.state);
        let stopping = cancel.clone();
        let descriptors = crate::server::raise_descriptor_limit();
        let cap = crate::server::connection_cap(&limits, descriptors);
        tracing::debug!(cap, reserve = limits.healthz_reserve, "connection limits");
        let served = crate::server::serve(self.listener, app, limits, cap, async move {
            stopping.cancelled().await;
            // Open event streams end, so the server can drain.
            events.close();
        })
        .await;
        cancel.cancel();
        served_token.cancel();
        tracker.close();
        tracker.wait().await;
        store.close().await;
        drop(self.lock);
        served.map_err(AppError::Serve)
    }
}
