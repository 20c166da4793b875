//! Keeps the workspace webhook pointed at rushes' current public URL: each time the URL changes
//! (a tunnel restarted, or at start-up), the same idempotent code as `webhook ensure` runs
//! (create if missing, otherwise PATCH its url in place; never a second webhook; the signing
//! secret is kept). With `--tunnel-cleanup` the webhook is deactivated on exit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::FrameioConfig;
use super::client::{Client, ClientError, WebhookPatch};
use super::manage::{self, EnsureOutcome, ManageError};
use crate::config::tunnel::webhook_url;
use crate::domain::Timestamp;
use crate::net::RetryPolicy;
use crate::store::Store;

/// What rushes knows about the workspace webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebhookView {
    /// `waiting_for_url`, `syncing`, `in_sync`, `failed`, `not_configured`, `deactivated`.
    pub state: &'static str,
    /// `<public url>/webhooks/frameio`, once the public URL is known.
    pub target_url: Option<String>,
    pub webhook_id: Option<String>,
    pub webhook_url: Option<String>,
    pub points_at_current_url: Option<bool>,
    pub active: Option<bool>,
    /// `missing`, `configured` (not used yet), `ok`, `refused`.
    pub credentials: &'static str,
    pub last_sync_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Times the webhook was created or its url changed by rushes.
    pub updates: u32,
}

/// Shared between the keeper and the web handlers.
pub type WebhookState = Arc<Mutex<WebhookView>>;

pub fn new_state(config: &FrameioConfig) -> WebhookState {
    Arc::new(Mutex::new(WebhookView {
        state: "waiting_for_url",
        credentials: if config.auth.is_some() {
            "configured"
        } else {
            "missing"
        },
        ..WebhookView::default()
    }))
}

pub fn view(state: &WebhookState) -> WebhookView {
    state.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Manage(#[from] ManageError),
}

pub struct WebhookKeeper {
    pub(crate) client: Option<Arc<Client>>,
    pub(crate) store: Store,
    pub(crate) config: Arc<FrameioConfig>,
    pub(crate) state: WebhookState,
    pub(crate) cleanup: bool,
}

impl WebhookKeeper {
    fn set(&self, f: impl FnOnce(&mut WebhookView)) {
        if let Ok(mut v) = self.state.lock() {
            f(&mut v);
        }
    }

    fn note_api_result(&self, e: Option<&ClientError>) {
        self.set(|v| {
            v.credentials = match e {
                Some(ClientError::Unauthorized { .. }) => "refused",
                Some(_) => v.credentials,
                None => "ok",
            }
        });
    }

    fn ids(&self) -> Result<(&Client, &str, &str), SyncError> {
        let client = self.client.as_deref().ok_or_else(|| {
            SyncError::NotConfigured(
                "no Frame.io credentials (FRAMEIO_TOKEN or FRAMEIO_CLIENT_ID + FRAMEIO_CLIENT_SECRET): the webhook cannot be managed".into(),
            )
        })?;
        let account = self.config.account_id.as_deref().ok_or_else(|| {
            SyncError::NotConfigured(
                "FRAMEIO_ACCOUNT_ID is not set: the webhook cannot be managed".into(),
            )
        })?;
        let workspace = self.config.workspace_id.as_deref().ok_or_else(|| {
            SyncError::NotConfigured(
                "FRAMEIO_WORKSPACE_ID is not set: the webhook cannot be managed".into(),
            )
        })?;
        Ok((client, account, workspace))
    }

    async fn sync(&self, target: &str) -> Result<(), SyncError> {
        let (client, account, workspace) = self.ids()?;
        self.set(|v| v.state = "syncing");
        let outcome = manage::ensure_url(
            client,
            &self.store,
            account,
            workspace,
            &self.config.webhook_name,
            target,
        )
        .await;
        if let Err(ManageError::Api(e)) = &outcome {
            self.note_api_result(Some(e));
        }
        let outcome = outcome?;
        self.note_api_result(None);
        let (id, changed) = match &outcome {
            EnsureOutcome::Created { id } => {
                tracing::info!(webhook = %id, url = %target, "Frame.io: webhook created for {target}");
                (id.clone(), true)
            }
            EnsureOutcome::Updated { id, patch } => {
                tracing::info!(webhook = %id, url = %target, url_changed = patch.url.is_some(), reactivated = patch.active.is_some(), "Frame.io: webhook now points at {target}");
                (id.clone(), true)
            }
            EnsureOutcome::Unchanged { id } => {
                tracing::info!(webhook = %id, url = %target, "Frame.io: webhook already points at {target}");
                (id.clone(), false)
            }
        };
        self.set(|v| {
            v.state = "in_sync";
            v.webhook_id = Some(id);
            v.webhook_url = Some(target.to_string());
            v.points_at_current_url = Some(true);
            v.active = Some(true);
            v.last_sync_at = Some(Timestamp::now());
            v.last_error = None;
            if changed {
                v.updates += 1;
            }
        });
        Ok(())
    }

    /// Reads the webhook as it is (for the status when there is no public URL to sync to).
    async fn look(&self) {
        let Ok((client, account, workspace)) = self.ids() else {
            return;
        };
        match client.webhooks(account, workspace).await {
            Ok(hooks) => {
                self.note_api_result(None);
                let found = hooks
                    .into_iter()
                    .find(|h| h.name == self.config.webhook_name);
                self.set(|v| {
                    v.webhook_id = found.as_ref().map(|h| h.id.clone());
                    v.webhook_url = found.as_ref().map(|h| h.url.clone());
                    v.active = found.as_ref().map(|h| h.active != Some(false));
                    v.points_at_current_url = match (&found, &v.target_url) {
                        (Some(h), Some(t)) => Some(&h.url == t),
                        _ => None,
                    };
                });
            }
            Err(e) => {
                self.note_api_result(Some(&e));
                tracing::warn!(error = %e, "Frame.io: cannot read the webhook");
            }
        }
    }

    /// Follows `urls` until `cancel`; then deactivates the webhook when asked to.
    pub async fn run(self, mut urls: watch::Receiver<Option<String>>, cancel: CancellationToken) {
        if urls.borrow().is_none() {
            self.look().await;
            tracing::info!(
                "Frame.io: no public URL (set RUSHES_PUBLIC_URL or RUSHES_TUNNEL=ngrok|cloudflared); the webhook is not managed"
            );
        }
        'follow: loop {
            let base = urls.borrow_and_update().clone();
            if let Some(base) = base {
                let target = webhook_url(&base);
                self.set(|v| {
                    v.target_url = Some(target.clone());
                    v.points_at_current_url = v.webhook_url.as_ref().map(|u| *u == target);
                });
                // Frame.io unreachable or failing: try again, doubling the wait up to a minute.
                let mut backoff = RetryPolicy {
                    attempts: u32::MAX,
                    base_delay: Duration::from_secs(1),
                    max_delay: Duration::from_secs(60),
                }
                .backoff();
                loop {
                    match self.sync(&target).await {
                        Ok(()) => break,
                        Err(SyncError::NotConfigured(message)) => {
                            tracing::warn!("Frame.io: {message}");
                            self.set(|v| {
                                v.state = "not_configured";
                                v.last_error = Some(message);
                            });
                            break;
                        }
                        Err(e) => {
                            let delay = backoff.next_wait(None).unwrap_or(Duration::from_secs(60));
                            tracing::error!(error = %e, retry_in_s = delay.as_secs(), "Frame.io: cannot point the webhook at {target}");
                            self.set(|v| {
                                v.state = "failed";
                                v.last_error = Some(e.to_string());
                            });
                            tokio::select! {
                                () = cancel.cancelled() => break 'follow,
                                changed = urls.changed() => {
                                    if changed.is_err() { break 'follow; }
                                    continue 'follow;
                                }
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                changed = urls.changed() => {
                    if changed.is_err() {
                        cancel.cancelled().await;
                        break;
                    }
                }
            }
        }
        if self.cleanup {
            self.deactivate().await;
        }
    }

    async fn deactivate(&self) {
        let Ok((client, account, _)) = self.ids() else {
            return;
        };
        let Some(id) = view(&self.state).webhook_id else {
            tracing::info!("Frame.io: --tunnel-cleanup: no webhook known, nothing to deactivate");
            return;
        };
        let patch = WebhookPatch {
            active: Some(false),
            ..WebhookPatch::default()
        };
        match tokio::time::timeout(
            Duration::from_secs(10),
            client.update_webhook(account, &id, &patch),
        )
        .await
        {
            Ok(Ok(_)) => {
                tracing::info!(webhook = %id, "Frame.io: webhook deactivated (--tunnel-cleanup)");
                self.set(|v| {
                    v.active = Some(false);
                    v.state = "deactivated";
                });
            }
            Ok(Err(e)) => {
                tracing::error!(webhook = %id, error = %e, "Frame.io: cannot deactivate the webhook")
            }
            Err(_) => {
                tracing::error!(webhook = %id, "Frame.io: deactivating the webhook timed out")
            }
        }
    }
}
