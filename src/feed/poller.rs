//! The background loop that polls the feed every `WEBHOOK_MONITOR_INTERVAL`, and on demand.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{FeedService, PollError, PollOutcome};

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
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut waiters: Vec<Reply> = Vec::new();
        loop {
            let mut force = tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => false,
                Some(reply) = self.commands.recv() => {
                    waiters.push(reply);
                    true
                }
            };
            // Refreshes asked while a poll runs wait for the next poll, which starts as soon as
            // this one ends (its fetch may predate a change they want to see); all of them share it.
            let mut current = std::mem::take(&mut waiters);
            loop {
                let poll = self.service.poll(force, &cancel);
                tokio::pin!(poll);
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut poll => break outcome,
                        Some(reply) = self.commands.recv() => waiters.push(reply),
                    }
                };
                // Failures are logged and stored by `poll`; the next tick tries again.
                if let Err(PollError::Store(e)) = &outcome {
                    tracing::error!(error = %e, "WebhookService: cannot record the feed poll");
                }
                let shared = outcome.map_err(|e| e.to_string());
                for reply in current.drain(..) {
                    let _ = reply.send(shared.clone());
                }
                if waiters.is_empty() || cancel.is_cancelled() {
                    break;
                }
                current = std::mem::take(&mut waiters);
                force = true;
            }
        }
        tracing::info!("WebhookService: feed poller stopped");
    }
}
