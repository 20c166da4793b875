//! The background loop that polls the feed every `WEBHOOK_MONITOR_INTERVAL`, and on demand.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{FeedService, PollError, PollOutcome};

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

    /// Polls at once, then every interval, until `cancel`. Polls never overlap: a manual refresh
    /// waits for a running poll.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {
                    // Failures are logged and stored by `poll`; the next tick tries again.
                    if let Err(PollError::Store(e)) = self.service.poll(false, &cancel).await {
                        tracing::error!(error = %e, "WebhookService: cannot record the feed poll");
                    }
                }
                Some(reply) = self.commands.recv() => {
                    let outcome = self.service.poll(true, &cancel).await.map_err(|e| e.to_string());
                    let _ = reply.send(outcome);
                }
            }
        }
        tracing::info!("WebhookService: feed poller stopped");
    }
}
