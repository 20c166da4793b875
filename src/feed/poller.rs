//! The background loop that polls the feed every `WEBHOOK_MONITOR_INTERVAL`, and on demand.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{FeedService, PollError, PollOutcome};
use crate::store::FEED_LEASE;

type Reply = oneshot::Sender<Result<PollOutcome, String>>;

/// Asks the poller to fetch now, bypassing the TTL.
#[derive(Debug, Clone)]
pub struct PollerHandle {
    commands: mpsc::Sender<oneshot::Sender<Result<PollOutcome, String>>>,
}

impl PollerHandle {
    /// A handle for rushes without a feed (Frame.io only): refreshing says so.
    pub fn disabled() -> Self {
        Self {
            commands: mpsc::channel(1).0,
        }
    }

    /// Fetches now and waits for the outcome (an error is the message to show).
    pub async fn refresh(&self) -> Result<PollOutcome, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(reply)
            .await
            .map_err(|_| "the feed poller is stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the feed poller stopped before answering".to_string())?
    }
}

/// The poller, not yet running.
pub struct Poller {
    service: Arc<FeedService>,
    interval: Duration,
    commands: mpsc::Receiver<oneshot::Sender<Result<PollOutcome, String>>>,
}

impl Poller {
    pub fn new(service: Arc<FeedService>, interval: Duration) -> (Self, PollerHandle) {
        let (tx, rx) = mpsc::channel(8);
        (
            Self {
                service,
                interval,
                commands: rx,
            },
            PollerHandle { commands: tx },
        )
    }

    /// Polls at once, then every interval, until `cancel`. Polls never overlap. A manual refresh
    /// runs at once when idle; one that arrives during a poll runs right after it, and every
    /// refresh that arrived meanwhile shares that one poll (never a queue of polls).
    pub async fn run(mut self, cancel: CancellationToken) {
        if self.service.store().may_have_peers() {
            return self.run_shared(cancel).await;
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let current: Vec<Reply> = tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => Vec::new(),
                Some(reply) = self.commands.recv() => vec![reply],
            };
            let force = !current.is_empty();
            self.poll_for(current, force, &cancel, &mut ticker, None)
                .await;
        }
        tracing::info!("FeedService: feed poller stopped");
    }
}

impl Poller {
    /// Several instances on one database: only the holder of the feed lease polls. Every
    /// instance tries to take or renew the lease a few times per lease period; the holder polls
    /// every interval, and at once when a refresh was asked on any instance (through the lease
    /// row). When the holder dies its lease runs out and another instance takes over: within
    /// one interval plus the lease time.
    async fn run_shared(mut self, cancel: CancellationToken) {
        let store = self.service.store().clone();
        let tick = (store.lease() / 3)
            .min(self.interval)
            .max(Duration::from_millis(500));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut holding = false;
        let mut last_poll: Option<tokio::time::Instant> = None;
        let mut refresh_seen = None;
        loop {
            let mut waiters: Vec<Reply> = Vec::new();
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
                Some(reply) = self.commands.recv() => waiters.push(reply),
            }
            while let Ok(reply) = self.commands.try_recv() {
                waiters.push(reply);
            }
            let lease = match store.hold_lease(FEED_LEASE).await {
                Ok(lease) => lease,
                Err(e) => {
                    tracing::error!(error = %e, "FeedService: cannot read the feed lease");
                    for reply in waiters {
                        let _ = reply.send(Err(format!("cannot read the feed lease: {e}")));
                    }
                    continue;
                }
            };
            if lease.held != holding {
                holding = lease.held;
                if holding {
                    tracing::info!(
                        instance = store.instance(),
                        "FeedService: this instance now polls the feed"
                    );
                    refresh_seen = lease.refresh_requested_at;
                    last_poll = None;
                    // Others wrote meanwhile: what this instance took in before is not enough.
                    self.service.forget().await;
                } else {
                    tracing::info!(poller = %lease.holder, "FeedService: another instance polls the feed");
                }
            }
            if !lease.held {
                if !waiters.is_empty() {
                    let asked = store.request_refresh(FEED_LEASE).await;
                    for reply in waiters {
                        let _ = reply.send(match &asked {
                            Ok(()) => Ok(PollOutcome::Elsewhere {
                                poller: lease.holder.clone(),
                            }),
                            Err(e) => Err(format!("cannot ask the polling instance: {e}")),
                        });
                    }
                }
                continue;
            }
            let refresh =
                lease.refresh_requested_at.is_some() && lease.refresh_requested_at != refresh_seen;
            refresh_seen = lease.refresh_requested_at;
            let due = last_poll.is_none_or(|t| t.elapsed() >= self.interval);
            if waiters.is_empty() && !refresh && !due {
                continue;
            }
            last_poll = Some(tokio::time::Instant::now());
            let force = !waiters.is_empty() || refresh;
            self.poll_for(waiters, force, &cancel, &mut ticker, Some(&store))
                .await;
        }
        if holding && let Err(e) = store.release_lease(FEED_LEASE).await {
            tracing::warn!(error = %e, "FeedService: cannot release the feed lease");
        }
        tracing::info!("FeedService: feed poller stopped");
    }
}

impl Poller {
    /// Polls for the refreshes in `current`; refreshes asked while a poll runs wait for the next
    /// poll, which starts as soon as this one ends (its fetch may predate a change they want to
    /// see), and all of them share it. With `lease` (several instances), the feed lease is renewed
    /// at each tick of `ticker` while a long poll (a first ingest) runs.
    async fn poll_for(
        &mut self,
        mut current: Vec<Reply>,
        mut force: bool,
        cancel: &CancellationToken,
        ticker: &mut tokio::time::Interval,
        lease: Option<&crate::store::Store>,
    ) {
        loop {
            let mut late: Vec<Reply> = Vec::new();
            let poll = self.service.poll(force, cancel);
            tokio::pin!(poll);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut poll => break outcome,
                    Some(reply) = self.commands.recv() => late.push(reply),
                    _ = ticker.tick(), if lease.is_some() => {
                        if let Some(store) = lease
                            && let Err(e) = store.hold_lease(FEED_LEASE).await
                        {
                            tracing::warn!(error = %e, "FeedService: cannot renew the feed lease");
                        }
                    }
                }
            };
            // Failures are logged and stored by `poll`; the next tick tries again.
            if let Err(PollError::Store(e)) = &outcome {
                tracing::error!(error = %e, "FeedService: cannot record the feed poll");
            }
            let shared = outcome.map_err(|e| e.to_string());
            for reply in current.drain(..) {
                let _ = reply.send(shared.clone());
            }
            if late.is_empty() || cancel.is_cancelled() {
                return;
            }
            current = late;
            force = true;
        }
    }
}
