//! Notifications: a message to `NOTIFY_URL` (a Slack-compatible incoming webhook: `{"text": ...}`,
//! which Discord's `/slack` endpoint and Mattermost accept too) when an upload's verdict changes,
//! when a delivery fails for good and (`NOTIFY_ON_DOWNLOAD=1`) when one is downloaded; the
//! `ON_REVIEW_CHANGE` command on each verdict change.
//!
//! Durable: messages are made from what the store already holds (review transitions, delivery
//! states) into an outbox, each once by its key, from a cursor kept in the store; a crash between
//! a change and its message still sends the message, once. Sent by one task that never holds up
//! processing, at most one message a second (governor), retried with backoff (backon within a
//! round, then a later round), claimed so that one instance sends each message.

mod hook;
mod message;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::NotifySettings;
use crate::domain::Timestamp;
use crate::events::EventBus;
use crate::net::{self, RetryPolicy};
use crate::store::{NewMessage, OutboxRow, Store, StoreError};

/// How often the store is looked at when no event wakes the task earlier.
const ROUND_EVERY: Duration = Duration::from_secs(2);
/// Changes are looked for this far before the last look (a change stored late is not missed).
const LOOK_BACK: Duration = Duration::from_secs(120);
/// Messages claimed in one round.
const BATCH: i64 = 20;
/// Longest wait before a failed message is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(1800);
const CURSOR: &str = "since";

pub struct Notifier {
    store: Store,
    settings: NotifySettings,
    /// The dashboard's address for links when no tunnel URL is known (`RUSHES_PUBLIC_URL`, else
    /// the bind address).
    dashboard: String,
    /// The live public base URL (a running tunnel's, or `RUSHES_PUBLIC_URL`): links use it
    /// when it is known.
    public_url: Option<watch::Receiver<Option<String>>>,
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    claimant: String,
    events: EventBus,
    /// Hooks run one at a time, off the sending loop.
    hooks: Arc<tokio::sync::Mutex<()>>,
    /// Messages whose command is running or waiting to (not started twice).
    hooks_started: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

impl Notifier {
    /// `None` when nothing is configured.
    pub fn new(
        store: Store,
        settings: NotifySettings,
        dashboard: String,
        events: EventBus,
    ) -> Option<Self> {
        if !settings.enabled() {
            return None;
        }
        let http = net::client(net::Timeouts {
            connect: Duration::from_secs(10),
            request: Some(Duration::from_secs(20)),
            read: None,
        })
        .ok()?;
        let claimant = format!("{}/{}", store.instance(), std::process::id());
        Some(Self {
            store,
            settings,
            dashboard: dashboard.trim_end_matches('/').to_string(),
            public_url: None,
            http,
            limiter: RateLimiter::direct(Quota::per_second(NonZeroU32::MIN)),
            claimant,
            events,
            hooks: Arc::default(),
            hooks_started: Arc::default(),
        })
    }

    /// Links follow `urls` (the tunnel's public URL as it changes).
    pub fn with_public_urls(mut self, urls: watch::Receiver<Option<String>>) -> Self {
        self.public_url = Some(urls);
        self
    }

    /// The dashboard's base for a message made now.
    fn dashboard(&self) -> String {
        self.public_url
            .as_ref()
            .and_then(|u| u.borrow().clone())
            .map_or_else(
                || self.dashboard.clone(),
                |u| u.trim_end_matches('/').to_string(),
            )
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut events = self.events.subscribe();
        tracing::info!(
            webhook = self.settings.url.is_some(),
            hook = self.settings.on_review_change.is_some(),
            downloads = self.settings.on_download,
            "notifications on"
        );
        loop {
            if let Err(e) = self.fill().await {
                tracing::warn!(error = %e, "notifications: cannot read the changes");
            }
            if let Err(e) = self.send_due(&cancel).await {
                tracing::warn!(error = %e, "notifications: cannot read the outbox");
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(ROUND_EVERY) => {}
                _ = events.recv() => {}
            }
        }
    }

    /// Makes outbox rows for the changes since the cursor, then moves the cursor on.
    async fn fill(&self) -> Result<(), StoreError> {
        let started = Timestamp::now();
        let since = match self.store.notify_cursor(CURSOR).await? {
            Some(raw) => Timestamp::parse(&raw).unwrap_or(started),
            None => {
                // First time: from now on, not the whole history.
                self.store
                    .set_notify_cursor(CURSOR, &started.text())
                    .await?;
                started
            }
        };
        let no_post = self.settings.url.is_none();
        let dashboard = self.dashboard();
        for change in self.store.verdict_changes_since(since, 200).await? {
            let comment = match change
                .decided_comment
                .as_deref()
                .and_then(|k| k.split('@').next())
            {
                Some(id) if change.cause == crate::domain::TransitionCause::Comment => {
                    self.store.comment_text(&change.upload_id, id).await?
                }
                _ => None,
            };
            let text = message::verdict(&change, comment.as_ref(), &dashboard);
            let env = serde_json::to_string(&hook::upload_env(&change, comment.as_ref()))?;
            self.store
                .enqueue_message(&NewMessage {
                    key: &format!("transition:{}", change.transition_id),
                    kind: "verdict",
                    text: &text,
                    hook_env: Some(&env),
                    no_post,
                    no_hook: self.settings.on_review_change.is_none(),
                })
                .await?;
        }
        if !no_post {
            for d in self
                .store
                .finished_deliveries_since(since, self.settings.on_download, 200)
                .await?
            {
                let key = format!(
                    "delivery:{}:{}:{}",
                    d.id,
                    d.state.as_str(),
                    d.state_changed_at.text()
                );
                self.store
                    .enqueue_message(&NewMessage {
                        key: &key,
                        kind: d.state.as_str(),
                        text: &message::delivery(&d, &dashboard),
                        hook_env: None,
                        no_post: false,
                        no_hook: true,
                    })
                    .await?;
            }
        }
        let next = Timestamp::from(
            started.as_datetime() - chrono::Duration::from_std(LOOK_BACK).unwrap_or_default(),
        );
        if next > since {
            self.store.set_notify_cursor(CURSOR, &next.text()).await?;
        }
        Ok(())
    }

    /// Sends what is due: posts (one a second) and commands.
    async fn send_due(&self, cancel: &CancellationToken) -> Result<(), StoreError> {
        for row in self.store.claim_messages(&self.claimant, BATCH).await? {
            if cancel.is_cancelled() {
                break;
            }
            if row.hook_done_at.is_none() {
                self.start_hook(&row);
            }
            if row.sent_at.is_some() {
                continue;
            }
            let Some(url) = &self.settings.url else {
                continue;
            };
            let posted = tokio::select! {
                posted = self.post(url, &row.text) => posted,
                () = cancel.cancelled() => break,
            };
            match posted {
                Ok(()) => {
                    self.store.message_sent(row.id).await?;
                    tracing::info!(message = row.id, kind = %row.kind, "notification sent");
                }
                Err((error, asked)) => {
                    let wait = retry_wait(row.attempts, asked);
                    tracing::warn!(message = row.id, error = %error, retry_s = wait.as_secs(), "notification not sent, trying again later");
                    self.store
                        .message_retry(row.id, &error, Timestamp::now().plus(wait))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Posts `{"text": ...}`, a few quick tries (backon), one post a second at most; the error
    /// says why, never the URL.
    async fn post(&self, url: &SecretString, text: &str) -> Result<(), (String, Option<Duration>)> {
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        };
        let mut backoff = policy.backoff();
        let body = serde_json::json!({ "text": text });
        loop {
            // Every try counts: at most one post a second, retries included.
            self.limiter.until_ready().await;
            let (error, asked) = match self.http.post(url.expose_secret()).json(&body).send().await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let asked = net::retry_after(r.headers());
                    let permanent = status.is_client_error() && status.as_u16() != 429;
                    let error = format!("HTTP {status}");
                    if permanent {
                        return Err((error, None));
                    }
                    (error, asked)
                }
                Err(e) => (net::error_text(&e), None),
            };
            match backoff.next_wait(asked) {
                Some(wait) if wait <= Duration::from_secs(10) => tokio::time::sleep(wait).await,
                _ => return Err((error, asked)),
            }
        }
    }

    /// Runs `ON_REVIEW_CHANGE` for a verdict message in its own task (one command at a time).
    fn start_hook(&self, row: &OutboxRow) {
        let Some(command) = self.settings.on_review_change.clone() else {
            return;
        };
        let (store, lock, allow) = (
            self.store.clone(),
            self.hooks.clone(),
            self.settings.review_hook_env.clone(),
        );
        let (id, env) = (row.id, row.hook_env.clone().unwrap_or_default());
        let started = self.hooks_started.clone();
        let fresh = started
            .lock()
            .map(|mut set| set.insert(id))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        tokio::spawn(async move {
            let _turn = lock.lock().await;
            let vars: Vec<(String, String)> =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&env)
                    .map(|m| {
                        m.into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
            let outcome = hook::run(&command, &vars, &allow).await;
            if let Err(e) = store
                .message_hook_done(id, outcome.exit_code, &outcome.output)
                .await
            {
                tracing::warn!(error = %e, "ON_REVIEW_CHANGE: cannot record the run");
            }
            tracing::info!(message = id, exit = ?outcome.exit_code, "ON_REVIEW_CHANGE ran");
            if let Ok(mut set) = started.lock() {
                set.remove(&id);
            }
        });
    }
}

/// The wait before the next round for a message that failed `attempts` times before: at least
/// what the server asked, doubling from 2 s, capped.
fn retry_wait(attempts: i64, asked: Option<Duration>) -> Duration {
    let doubled = Duration::from_secs(2).saturating_mul(1u32 << attempts.clamp(0, 16) as u32);
    doubled
        .min(MAX_RETRY_WAIT)
        .max(asked.unwrap_or_default().min(MAX_RETRY_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time() {
        assert_eq!(retry_wait(0, None), Duration::from_secs(2));
        assert_eq!(retry_wait(3, None), Duration::from_secs(16));
        assert_eq!(retry_wait(40, None), MAX_RETRY_WAIT);
        assert_eq!(
            retry_wait(0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
