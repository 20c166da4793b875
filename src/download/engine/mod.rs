//! The download workers: claim `queued` deliveries (at most `DOWNLOAD_CONCURRENCY` at once, at most
//! two per host), resume `downloading` ones left by a previous run, try the R2 copy then the
//! source link, and write every outcome to the store before announcing it.
//!
//! Files: `settings.rs` (how it runs), `handle.rs` (talking to it), `worker.rs` (one download
//! task), `observer.rs` (a download's progress into the store), `patience.rs` (store writes that
//! wait for a database that went away), `leases.rs` (renewed, or given up in time); this file is
//! the pool.

mod handle;
mod leases;
mod observer;
mod patience;
mod settings;
mod worker;

pub use handle::DownloadHandle;
pub use settings::EngineConfig;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::transfer;
use crate::domain::{DeliveryId, DeliveryState};
use crate::events::{Event, EventBus};
use crate::store::{Delivery, Store};
use worker::Worker;

/// At most this many downloads from one host at once.
pub const PER_HOST: usize = 2;

pub struct Engine {
    store: Store,
    events: EventBus,
    config: EngineConfig,
    handle: DownloadHandle,
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Engine {
    pub fn new(
        store: Store,
        events: EventBus,
        config: EngineConfig,
    ) -> Result<(Self, DownloadHandle), EngineError> {
        let client = transfer::client(config.timeout)?;
        let handle = DownloadHandle::default();
        Ok((
            Self {
                store,
                events,
                config,
                handle: handle.clone(),
                client,
            },
            handle,
        ))
    }

    /// Runs until `cancel`; then stops the downloads (they stay `downloading`, to resume at the
    /// next start) and returns when every worker has.
    pub async fn run(self, cancel: CancellationToken) {
        let ctx = Arc::new(Worker {
            store: self.store.clone(),
            events: self.events.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            handle: self.handle.clone(),
        });
        let mut pending: VecDeque<Delivery> = VecDeque::new();
        if !self.config.dry_run {
            self.reclaim(&mut pending, &HashMap::new()).await;
        }
        let mut workers: JoinSet<i64> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, i64> = HashMap::new();
        let mut active: HashMap<i64, String> = HashMap::new();
        if !self.config.dry_run {
            tokio::spawn(leases::keep(
                self.store.clone(),
                self.handle.clone(),
                cancel.child_token(),
            ));
        }
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut bus = self.events.subscribe();
        let mut look = true;
        let mut last_reclaim = std::time::Instant::now();
        loop {
            if look {
                self.fill(&ctx, &cancel, &mut pending, &mut workers, &mut active)
                    .await
                    .into_iter()
                    .for_each(|(task, id)| {
                        tasks.insert(task, id);
                    });
            }
            look = true;
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.handle.shared.wake.notified() => {}
                _ = ticker.tick() => {
                    if !self.config.dry_run
                        && self.store.may_have_peers()
                        && last_reclaim.elapsed() >= self.store.lease() / 3
                    {
                        last_reclaim = std::time::Instant::now();
                        self.reclaim(&mut pending, &active).await;
                    }
                }
                Some(done) = workers.join_next_with_id() => {
                    let id = match done {
                        Ok((task, id)) => {
                            tasks.remove(&task);
                            Some(id)
                        }
                        // A panicked worker still frees its slot.
                        Err(e) => tasks.remove(&e.id()),
                    };
                    if let Some(id) = id {
                        active.remove(&id);
                        self.running().remove(&DeliveryId(id));
                    }
                }
                event = bus.recv() => {
                    // A new delivery from the feed: have a look at once. Progress is noise here.
                    look = !matches!(event, Ok(Event::Progress { .. }));
                }
            }
        }
        // Children of `cancel`: already cancelled.
        while workers.join_next().await.is_some() {}
    }

    /// Claims downloads left `downloading` (interrupted here, or on a shared database by an
    /// instance whose lease ran out) and queues them to resume first.
    async fn reclaim(&self, pending: &mut VecDeque<Delivery>, active: &HashMap<i64, String>) {
        match self.store.reclaim_downloads().await {
            Ok(rows) => {
                let rows: Vec<Delivery> = rows
                    .into_iter()
                    .filter(|d| {
                        !active.contains_key(&d.id) && !pending.iter().any(|p| p.id == d.id)
                    })
                    .collect();
                if !rows.is_empty() {
                    tracing::info!(count = rows.len(), "resuming interrupted downloads");
                }
                for d in &rows {
                    self.events.send(Event::DeliveryChanged {
                        id: crate::domain::DeliveryId(d.id),
                    });
                }
                pending.extend(rows);
            }
            Err(e) => tracing::error!(error = %e, "cannot list interrupted downloads"),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<DeliveryId, CancellationToken>> {
        self.handle
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts downloads while there are free slots and eligible deliveries.
    async fn fill(
        &self,
        ctx: &Arc<Worker>,
        cancel: &CancellationToken,
        pending: &mut VecDeque<Delivery>,
        workers: &mut JoinSet<i64>,
        active: &mut HashMap<i64, String>,
    ) -> Vec<(tokio::task::Id, i64)> {
        let mut started = Vec::new();
        let host_busy = |active: &HashMap<i64, String>, host: &str| {
            active.values().filter(|h| h.as_str() == host).count() >= self.config.per_host
        };
        // Interrupted downloads first (already `downloading`, no claim needed).
        let mut waiting = VecDeque::new();
        while let Some(d) = pending.pop_front() {
            let host = primary_host(&d);
            if active.len() >= self.config.concurrency || host_busy(active, &host) {
                waiting.push_back(d);
                continue;
            }
            started.push(self.start(ctx, cancel, d, host, workers, active));
        }
        *pending = waiting;
        if active.len() >= self.config.concurrency {
            return started;
        }
        let mut candidates = match self.store.queued_deliveries(200).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot list queued deliveries");
                return started;
            }
        };
        for resolver in crate::download::resolve::enabled(&self.config.resolvers) {
            match self.store.manual_deliveries_of(resolver.kind(), 50).await {
                // An experimental resolver tries once: a delivery that went back to manual (with
                // its reason in `error`) is left to a person.
                Ok(more) => candidates.extend(
                    more.into_iter()
                        .filter(|d| !resolver.experimental() || d.error.is_none()),
                ),
                Err(e) => {
                    tracing::error!(error = %e, provider = resolver.name(), "cannot list deliveries to resolve")
                }
            }
        }
        let mut skipped_hosts = HashSet::new();
        for d in candidates {
            if active.len() >= self.config.concurrency {
                break;
            }
            if active.contains_key(&d.id) {
                continue; // a cancelled worker still winding down
            }
            if self.config.dry_run {
                match self
                    .store
                    .transition(d.id, &[DeliveryState::Queued], DeliveryState::DryRun, None)
                    .await
                {
                    Ok(Some(_)) => {
                        tracing::info!(id = d.id, "dry run: delivery recorded, not downloaded");
                        self.events.send(Event::DeliveryChanged {
                            id: crate::domain::DeliveryId(d.id),
                        });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(id = d.id, error = %e, "cannot record a dry run"),
                }
                continue;
            }
            let host = primary_host(&d);
            if skipped_hosts.contains(&host) || host_busy(active, &host) {
                skipped_hosts.insert(host);
                continue;
            }
            let claim = if d.state == DeliveryState::Manual {
                self.store.claim_manual(d.id).await
            } else {
                self.store.claim_queued(d.id).await
            };
            match claim {
                Ok(Some(claimed)) => {
                    self.events.send(Event::DeliveryChanged {
                        id: crate::domain::DeliveryId(d.id),
                    });
                    started.push(self.start(ctx, cancel, claimed, host, workers, active));
                }
                Ok(None) => {}
                Err(e) => tracing::error!(id = d.id, error = %e, "cannot claim a delivery"),
            }
        }
        started
    }

    fn start(
        &self,
        ctx: &Arc<Worker>,
        cancel: &CancellationToken,
        delivery: Delivery,
        host: String,
        workers: &mut JoinSet<i64>,
        active: &mut HashMap<i64, String>,
    ) -> (tokio::task::Id, i64) {
        let id = delivery.id;
        let token = cancel.child_token();
        self.running().insert(DeliveryId(id), token.clone());
        active.insert(id, host);
        let ctx = ctx.clone();
        let task = workers.spawn(async move {
            ctx.download(delivery, token).await;
            id
        });
        (task.id(), id)
    }
}

/// Host of the first URL a delivery is fetched from: what the per-host limit counts.
fn primary_host(d: &Delivery) -> String {
    d.r2_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .or_else(|| Url::parse(&d.source_url).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}
