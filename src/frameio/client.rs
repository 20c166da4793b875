//! Frame.io API v4 client: bearer auth (static token or Adobe IMS), `{"data": ...}` bodies,
//! `links.next` pagination, polite retries (429 with Retry-After / doubling from 1 s, 5xx with
//! jitter), one token refresh on 401. Tokens are never logged or shown.

use std::time::{Duration, Instant};

use rand::Rng as _;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use url::Url;

use super::config::{FrameioAuth, FrameioConfig, S2S_SCOPE};
use crate::store::{Store, StoreError};

/// What the status and the dashboard show when Frame.io refuses the credentials.
pub const CREDENTIALS_EXPIRED: &str = "Frame.io credentials expired or revoked: re-authorise";
/// Store key of the recorded credentials failure (value: the detail; cleared by a success).
pub const CREDENTIALS_ERROR_KEY: &str = "credentials_error";
/// Longest wait a rate-limit header can ask for.
const MAX_RATE_WAIT: Duration = Duration::from_secs(120);

/// Store key of the rotated IMS refresh token.
pub const REFRESH_TOKEN_KEY: &str = "ims_refresh_token";
/// Most pages followed for one list (100 items each).
const MAX_PAGES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Frame.io answered {status} to {method} {path}: {message}")]
    Api {
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    #[error(
        "Frame.io refused the token (401 on {path}); check FRAMEIO_TOKEN or the IMS credentials"
    )]
    Unauthorized { path: String },
    #[error("cannot reach Frame.io ({path}): {message}")]
    Transport { path: String, message: String },
    #[error("Frame.io still failing after {attempts} attempts on {path}: {last}")]
    GaveUp {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("unexpected answer from Frame.io on {path}: {message}")]
    Decode { path: String, message: String },
    #[error("Adobe IMS token request failed: {0}")]
    Ims(String),
    /// Not transient: nothing works until someone re-authorises (new token, new refresh token).
    #[error("{CREDENTIALS_EXPIRED} ({0})")]
    Credentials(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClientError {
    /// Worth trying again later (as opposed to a request that can never succeed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::GaveUp { .. } | Self::Ims(_) | Self::Store(_) => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            Self::Unauthorized { .. } | Self::Decode { .. } | Self::Credentials(_) => false,
        }
    }

    /// The credentials are expired or revoked (retrying will not help).
    pub fn is_credentials(&self) -> bool {
        matches!(self, Self::Credentials(_))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

/// Waits between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// First wait after a 429 without Retry-After (doubles each time; the API asks for ≥ 1 s).
    pub rate_limit_base: Duration,
    /// First wait after a 5xx or a transport error (doubles, with ±50 % jitter).
    pub server_error_base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            rate_limit_base: Duration::from_secs(1),
            server_error_base: Duration::from_millis(500),
        }
    }
}

struct CachedToken {
    token: SecretString,
    /// Refresh from this instant on (a margin before the real expiry).
    refresh_at: Instant,
}

enum Auth {
    Static(SecretString),
    Ims {
        url: Url,
        client_id: String,
        client_secret: SecretString,
        /// `None`: client_credentials. `Some`: the configured refresh token.
        refresh_token: Option<SecretString>,
        cached: Mutex<Option<CachedToken>>,
    },
}

/// A Frame.io v4 API client.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    store: Option<Store>,
    pub retry: RetryPolicy,
    /// After a credentials failure: no request before this instant (the next poll interval).
    blocked: std::sync::Mutex<Option<(Instant, String)>>,
    block_for: Duration,
    /// No request before this instant (`x-ratelimit-remaining: 0` with a reset time).
    not_before: std::sync::Mutex<Option<Instant>>,
    /// Requests sent (the poller spends a per-minute budget of them).
    calls: std::sync::atomic::AtomicU64,
    /// A failure may be recorded in the store (true at start: a record from an earlier run is
    /// cleared by the first success).
    had_failure: std::sync::atomic::AtomicBool,
}

/// A comment as the API gives it; only `id` is required.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Comment {
    pub id: String,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub owner: Option<Value>,
    /// Replies nested under the comment (`include=replies`).
    #[serde(default)]
    pub replies: Option<Vec<Comment>>,
}

/// Most replies read under one comment.
const MAX_REPLIES: usize = 500;

impl Comment {
    /// Comments and their replies as one list (a reply inherits its comment's file id).
    pub fn flatten(comments: Vec<Comment>) -> Vec<Comment> {
        let mut out = Vec::with_capacity(comments.len());
        for mut c in comments {
            let replies = c.replies.take().unwrap_or_default();
            let file_id = c.file_id.clone();
            out.push(c);
            for mut r in replies.into_iter().take(MAX_REPLIES) {
                r.replies = None;
                if r.file_id.is_none() {
                    r.file_id = file_id.clone();
                }
                out.push(r);
            }
        }
        out
    }

    /// Who wrote it, when `include=owner` gave a name or an email.
    pub fn author(&self) -> Option<String> {
        let owner = self.owner.as_ref()?;
        ["name", "display_name", "email"]
            .iter()
            .find_map(|k| owner.get(*k).and_then(Value::as_str))
            .map(str::to_string)
    }
}

/// A webhook as listed; `secret` only comes back from creation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Webhook {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, alias = "is_active")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

/// Fields to change on a webhook (`None` = leave as is).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WebhookPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl WebhookPatch {
    pub fn is_empty(&self) -> bool {
        self.url.is_none() && self.events.is_none() && self.active.is_none()
    }
}

fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

impl Client {
    /// A client for `config`, or `None` when no credentials are configured. `store` keeps the
    /// rotated refresh token.
    pub fn from_config(config: &FrameioConfig, store: Option<Store>) -> Option<Self> {
        let auth = match config.auth.as_ref()? {
            FrameioAuth::Token(token) => Auth::Static(token.clone()),
            FrameioAuth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => Auth::Ims {
                url: config.ims_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: Some(refresh_token.clone()),
                cached: Mutex::new(None),
            },
            FrameioAuth::ClientCredentials {
                client_id,
                client_secret,
            } => Auth::Ims {
                url: config.ims_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: None,
                cached: Mutex::new(None),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rushes/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Self {
            http,
            base: config.api_base.clone(),
            auth,
            store,
            retry: RetryPolicy::default(),
            blocked: std::sync::Mutex::new(None),
            block_for: config.poll_interval,
            not_before: std::sync::Mutex::new(None),
            calls: std::sync::atomic::AtomicU64::new(0),
            had_failure: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A bearer token; `force` asks IMS for a new one even if the cached one looks valid.
    async fn token(&self, force: bool) -> Result<SecretString, ClientError> {
        let (url, client_id, client_secret, refresh_token, cached) = match &self.auth {
            Auth::Static(token) => return Ok(token.clone()),
            Auth::Ims {
                url,
                client_id,
                client_secret,
                refresh_token,
                cached,
            } => (url, client_id, client_secret, refresh_token, cached),
        };
        let mut cached = cached.lock().await;
        if !force
            && let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let origin = refresh_token.as_ref().map(|t| hash_hex(t.expose_secret()));
        let current_refresh = match refresh_token {
            Some(configured) => {
                // A rotated token descending from the configured one wins; a new configured one
                // (different hash) replaces it.
                let stored = match &self.store {
                    Some(store) => store.frameio_credential(REFRESH_TOKEN_KEY).await?,
                    None => None,
                };
                Some(match stored {
                    Some((value, stored_origin)) if stored_origin == origin => value,
                    _ => configured.expose_secret().to_string(),
                })
            }
            None => None,
        };
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret.expose_secret());
            match &current_refresh {
                Some(token) => form
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token),
                None => form
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("scope", S2S_SCOPE),
            };
            form.finish()
        };
        let response = self
            .http
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| ClientError::Ims(e.without_url().to_string()))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // IMS errors are {"error": code, "error_description": text}: no secret in them.
            let code = body.get("error").and_then(Value::as_str).unwrap_or("");
            let text = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let detail = format!("IMS answered HTTP {} {code} {text}", status.as_u16());
            // A refused grant or client is not transient: only re-authorising fixes it.
            if status == StatusCode::BAD_REQUEST
                || status == StatusCode::UNAUTHORIZED
                || code == "invalid_grant"
                || code == "invalid_client"
            {
                return Err(ClientError::Credentials(detail.trim().to_string()));
            }
            return Err(ClientError::Ims(detail));
        }
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Ims("no access_token in the answer".into()))?;
        let lifetime = Duration::from_secs(
            body.get("expires_in")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3600),
        );
        // Refresh a minute early (or at 90 % of a short lifetime).
        let margin = Duration::from_secs(60).min(lifetime / 10);
        let token = SecretString::from(access.to_string());
        if let (Some(rotated), Some(store)) = (
            body.get("refresh_token").and_then(Value::as_str),
            &self.store,
        ) {
            store
                .set_frameio_credential(REFRESH_TOKEN_KEY, rotated, origin.as_deref())
                .await?;
        }
        tracing::info!(
            expires_in_s = lifetime.as_secs(),
            "Frame.io: got an IMS access token"
        );
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }

    /// Sends one request with retries; returns the whole JSON answer (`Null` when empty).
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let path = url.path().to_string();
        let mut refreshed = false;
        let mut rate_wait = self.retry.rate_limit_base;
        let mut error_wait = self.retry.server_error_base;
        let mut attempt = 0;
        self.check_blocked()?;
        loop {
            attempt += 1;
            let wait = self
                .not_before
                .lock()
                .map(|n| n.map(|t| t.saturating_duration_since(Instant::now())))
                .unwrap_or(None);
            if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                tokio::time::sleep(wait.min(MAX_RATE_WAIT)).await;
            }
            let token = match self.token(false).await {
                Ok(t) => t,
                Err(e) => return Err(self.note_failure(e).await),
            };
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let last = match outcome {
                Err(e) => {
                    let message = e.without_url().to_string();
                    if attempt >= self.retry.attempts {
                        return Err(ClientError::Transport { path, message });
                    }
                    message
                }
                Ok(response) => {
                    let status = response.status();
                    if let Some(reset) = exhausted_until(response.headers())
                        && let Ok(mut n) = self.not_before.lock()
                    {
                        *n = Some(reset);
                    }
                    if status.is_success() {
                        self.note_success().await;
                        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
                            path: path.clone(),
                            message: e.without_url().to_string(),
                        })?;
                        if bytes.is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                            path,
                            message: e.to_string(),
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        if !refreshed && matches!(self.auth, Auth::Ims { .. }) {
                            refreshed = true;
                            tracing::info!(%path, "Frame.io: 401, refreshing the token once");
                            if let Err(e) = self.token(true).await {
                                return Err(self.note_failure(e).await);
                            }
                            continue;
                        }
                        let detail = match self.auth {
                            Auth::Static(_) => format!(
                                "401 on {path} with FRAMEIO_TOKEN, an IMS access token that lasts about an hour"
                            ),
                            Auth::Ims { .. } => format!("401 on {path} with a fresh IMS token"),
                        };
                        return Err(self.note_failure(ClientError::Credentials(detail)).await);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let retry_after = rate_limit_wait(response.headers());
                        if attempt >= self.retry.attempts {
                            return Err(ClientError::GaveUp {
                                path,
                                attempts: attempt,
                                last: "429 rate limited".into(),
                            });
                        }
                        // The server's own figure when it gives one, else doubling from 1 s.
                        let wait = retry_after
                            .map_or(rate_wait, |r| r.max(Duration::from_millis(50)))
                            .min(MAX_RATE_WAIT);
                        rate_wait *= 2;
                        tracing::warn!(%path, wait_ms = wait.as_millis() as u64, "Frame.io: rate limited (429), waiting");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let message = api_message(response).await;
                    if !status.is_server_error() {
                        return Err(ClientError::Api {
                            status: status.as_u16(),
                            method: method.to_string(),
                            path,
                            message,
                        });
                    }
                    if attempt >= self.retry.attempts {
                        return Err(ClientError::GaveUp {
                            path,
                            attempts: attempt,
                            last: format!("HTTP {status}: {message}"),
                        });
                    }
                    format!("HTTP {status}: {message}")
                }
            };
            let jitter = rand::rng().random_range(0.5..1.5);
            let wait = error_wait.mul_f64(jitter);
            error_wait *= 2;
            tracing::warn!(%path, attempt, wait_ms = wait.as_millis() as u64, error = %last, "Frame.io: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Requests sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Refuses at once while a credentials failure is recorded (no retry storm).
    fn check_blocked(&self) -> Result<(), ClientError> {
        let Ok(mut blocked) = self.blocked.lock() else {
            return Ok(());
        };
        match blocked.as_ref() {
            Some((until, detail)) if Instant::now() < *until => {
                Err(ClientError::Credentials(detail.clone()))
            }
            Some(_) => {
                // The next poll interval: try once more.
                *blocked = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a credentials failure (memory and store) and returns the error.
    async fn note_failure(&self, error: ClientError) -> ClientError {
        if let ClientError::Credentials(detail) = &error {
            tracing::error!(error = %error, retry_in_s = self.block_for.as_secs(), "Frame.io: credentials refused, no more calls until the next poll interval or a configuration change");
            if let Ok(mut blocked) = self.blocked.lock() {
                *blocked = Some((Instant::now() + self.block_for, detail.clone()));
            }
            self.had_failure
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(store) = &self.store
                && let Err(e) = store
                    .set_frameio_credential(
                        CREDENTIALS_ERROR_KEY,
                        detail,
                        Some(&crate::store::now_text()),
                    )
                    .await
            {
                tracing::warn!(error = %e, "Frame.io: cannot record the credentials failure");
            }
        }
        error
    }

    /// Clears a recorded credentials failure after a successful call.
    async fn note_success(&self) {
        let had = self
            .had_failure
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if had && let Some(store) = &self.store {
            let _ = store.delete_frameio_credential(CREDENTIALS_ERROR_KEY).await;
        }
    }

    /// GET and unwrap `{"data": ...}`.
    async fn get_data(&self, url: Url) -> Result<Value, ClientError> {
        let path = url.path().to_string();
        let mut answer = self.send(Method::GET, url, None).await?;
        match answer.get_mut("data") {
            Some(data) => Ok(data.take()),
            None => Err(ClientError::Decode {
                path,
                message: "no \"data\" in the answer".into(),
            }),
        }
    }

    /// GET every page of a list (`links.next` until null).
    async fn list_all(&self, first: Url) -> Result<Vec<Value>, ClientError> {
        // links.next carries only the `after` cursor: the other parameters are added again.
        let first_query: Vec<(String, String)> = first
            .query_pairs()
            .filter(|(k, _)| k != "after")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let path = url.path().to_string();
            let answer = self.send(Method::GET, url, None).await?;
            match answer.get("data") {
                Some(Value::Array(page)) => items.extend(page.iter().cloned()),
                _ => {
                    return Err(ClientError::Decode {
                        path,
                        message: "no \"data\" list in the answer".into(),
                    });
                }
            }
            if let Some(link) = answer
                .get("links")
                .and_then(|l| l.get("next"))
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                if pages >= MAX_PAGES {
                    return Err(ClientError::Decode {
                        path,
                        message: format!("more than {MAX_PAGES} pages"),
                    });
                }
                let mut url = self.base.join(link).map_err(|e| ClientError::Decode {
                    path: path.clone(),
                    message: format!("bad links.next ({e})"),
                })?;
                keep_query(&first_query, &mut url);
                next = Some(url);
            }
        }
        Ok(items)
    }

    fn decode<T: serde::de::DeserializeOwned>(path: &str, value: Value) -> Result<T, ClientError> {
        serde_json::from_value(value).map_err(|e| ClientError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET /v4/accounts/{account}/comments/{id}`.
    pub async fn comment(&self, account: &str, comment_id: &str) -> Result<Comment, ClientError> {
        let url = self.url(&["v4", "accounts", account, "comments", comment_id], &[]);
        let path = url.path().to_string();
        Self::decode(&path, self.get_data(url).await?)
    }

    /// Every comment of a file (all pages).
    pub async fn comments(
        &self,
        account: &str,
        file_id: &str,
    ) -> Result<Vec<Comment>, ClientError> {
        let url = self.url(
            &["v4", "accounts", account, "files", file_id, "comments"],
            &[("include", "owner,replies"), ("page_size", "100")],
        );
        let path = url.path().to_string();
        let comments = self
            .list_all(url)
            .await?
            .into_iter()
            .map(|v| Self::decode(&path, v))
            .collect::<Result<Vec<Comment>, _>>()?;
        Ok(Comment::flatten(comments))
    }

    /// The file and its "Status" option in one call (`include=metadata`); falls back to the
    /// metadata endpoint when the answer has no metadata.
    pub async fn file_with_status(
        &self,
        account: &str,
        file_id: &str,
    ) -> Result<(Value, Option<String>), ClientError> {
        let file = self
            .get_data(self.url(
                &["v4", "accounts", account, "files", file_id],
                &[("include", "metadata")],
            ))
            .await?;
        let status = match file.get("metadata") {
            Some(_) => status_from_metadata(&file),
            None => self.file_status(account, file_id).await?,
        };
        Ok((file, status))
    }

    /// `GET /v4/accounts/{account}/files/{id}`.
    pub async fn file(&self, account: &str, file_id: &str) -> Result<Value, ClientError> {
        self.get_data(self.url(&["v4", "accounts", account, "files", file_id], &[]))
            .await
    }

    /// The option chosen in the file's built-in "Status" metadata field, if any.
    pub async fn file_status(
        &self,
        account: &str,
        file_id: &str,
    ) -> Result<Option<String>, ClientError> {
        let data = self
            .get_data(self.url(
                &["v4", "accounts", account, "files", file_id, "metadata"],
                &[],
            ))
            .await?;
        Ok(status_from_metadata(&data))
    }

    pub async fn webhooks(
        &self,
        account: &str,
        workspace: &str,
    ) -> Result<Vec<Webhook>, ClientError> {
        let url = self.url(
            &[
                "v4",
                "accounts",
                account,
                "workspaces",
                workspace,
                "webhooks",
            ],
            &[("page_size", "100")],
        );
        let path = url.path().to_string();
        self.list_all(url)
            .await?
            .into_iter()
            .map(|v| Self::decode(&path, v))
            .collect()
    }

    /// Creates a webhook; the answer holds its signing secret (only this once).
    pub async fn create_webhook(
        &self,
        account: &str,
        workspace: &str,
        name: &str,
        url: &str,
        events: &[String],
    ) -> Result<Webhook, ClientError> {
        let endpoint = self.url(
            &[
                "v4",
                "accounts",
                account,
                "workspaces",
                workspace,
                "webhooks",
            ],
            &[],
        );
        let path = endpoint.path().to_string();
        let body = json!({ "data": { "name": name, "url": url, "events": events } });
        let answer = self.send(Method::POST, endpoint, Some(&body)).await?;
        Self::decode(&path, answer.get("data").cloned().unwrap_or(Value::Null))
    }

    pub async fn update_webhook(
        &self,
        account: &str,
        id: &str,
        patch: &WebhookPatch,
    ) -> Result<Webhook, ClientError> {
        let endpoint = self.url(&["v4", "accounts", account, "webhooks", id], &[]);
        let path = endpoint.path().to_string();
        let body = json!({ "data": patch });
        let answer = self.send(Method::PATCH, endpoint, Some(&body)).await?;
        Self::decode(&path, answer.get("data").cloned().unwrap_or(Value::Null))
    }

    pub async fn delete_webhook(&self, account: &str, id: &str) -> Result<(), ClientError> {
        let endpoint = self.url(&["v4", "accounts", account, "webhooks", id], &[]);
        self.send(Method::DELETE, endpoint, None).await.map(|_| ())
    }
}

/// How long a 429 asks to wait: `retry-after-ms`, `Retry-After` (seconds or HTTP date) or
/// `x-ratelimit-reset` (seconds to wait, or a Unix time), the longest of those given.
fn rate_limit_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut waits = Vec::new();
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        waits.push(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                waits.push(Duration::from_secs_f64(secs.min(86_400.0)));
            }
        } else if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
            waits.push(delta.to_std().unwrap_or_default());
        }
    }
    if let Some(reset) = text("x-ratelimit-reset").and_then(reset_wait) {
        waits.push(reset);
    }
    waits.into_iter().max()
}

/// `x-ratelimit-reset`: a Unix time when large, else seconds to wait.
fn reset_wait(raw: &str) -> Option<Duration> {
    let v = raw
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    if v > 1_000_000_000.0 {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        Some(Duration::from_secs_f64((v - now).clamp(0.0, 86_400.0)))
    } else {
        Some(Duration::from_secs_f64(v.min(86_400.0)))
    }
}

/// When a successful answer says the budget is spent (`x-ratelimit-remaining: 0`), the instant
/// it resets.
fn exhausted_until(headers: &reqwest::header::HeaderMap) -> Option<Instant> {
    let remaining = headers
        .get("x-ratelimit-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    if remaining > 0.0 {
        return None;
    }
    let wait = reset_wait(headers.get("x-ratelimit-reset")?.to_str().ok()?.trim())?;
    Some(Instant::now() + wait.min(MAX_RATE_WAIT))
}

/// Adds to `url` the parameters of the first page it lacks.
fn keep_query(first: &[(String, String)], url: &mut Url) {
    let present: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    let missing: Vec<&(String, String)> =
        first.iter().filter(|(k, _)| !present.contains(k)).collect();
    if !missing.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in missing {
            pairs.append_pair(k, v);
        }
    }
}

/// `{"errors": [{"title", "detail"}]}` as one line.
async fn api_message(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let title = e.get("title").and_then(Value::as_str).unwrap_or("");
                    let detail = e.get("detail").and_then(Value::as_str).unwrap_or("");
                    if detail.is_empty() {
                        title.to_string()
                    } else {
                        format!("{title}: {detail}")
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "no error detail".into())
}

/// Finds the "Status" field in a file's metadata and returns the chosen option's name.
/// Accepts `{"metadata": [{"field_definition_name": "Status", "value": [...]}]}` and close variants
/// (`name` / `field_definition.name`; value as a string, an option object or a list of either).
pub fn status_from_metadata(data: &Value) -> Option<String> {
    let fields = data
        .get("metadata")
        .or_else(|| data.get("fields"))
        .and_then(Value::as_array)
        .or_else(|| data.as_array())?;
    let field = fields.iter().find(|f| {
        let name = f
            .get("field_definition_name")
            .or_else(|| f.get("name"))
            .or_else(|| f.get("field_definition").and_then(|d| d.get("name")))
            .and_then(Value::as_str);
        name.is_some_and(|n| n.trim().eq_ignore_ascii_case("status"))
    })?;
    option_name(field.get("value")?)
}

fn option_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Array(items) => items.iter().find_map(option_name),
        Value::Object(o) => ["display_name", "name", "value"]
            .iter()
            .find_map(|k| o.get(*k))
            .and_then(option_name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(rate_limit_wait(&h), None);
        h.insert("retry-after-ms", "1500".parse().expect("header"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", "3".parse().expect("header"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(3)));
        let soon = chrono::Utc::now().timestamp() + 10;
        h.insert(
            "x-ratelimit-reset",
            soon.to_string().parse().expect("header"),
        );
        let w = rate_limit_wait(&h).unwrap_or_default();
        assert!(
            w > Duration::from_secs(8) && w <= Duration::from_secs(11),
            "{w:?}"
        );
        h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        assert!(exhausted_until(&h).is_some());
        h.insert("x-ratelimit-remaining", "12".parse().expect("header"));
        assert!(exhausted_until(&h).is_none());
    }

    #[test]
    fn status_shapes() {
        let list = json!({"metadata": [
            {"field_definition_name": "Rating", "value": 3},
            {"field_definition_name": "Status", "field_type": "select",
             "value": [{"id": "o1", "display_name": "Needs Review"}]}
        ]});
        assert_eq!(status_from_metadata(&list), Some("Needs Review".into()));
        let plain = json!({"metadata": [{"name": "status", "value": "Approved"}]});
        assert_eq!(status_from_metadata(&plain), Some("Approved".into()));
        let empty = json!({"metadata": [{"field_definition_name": "Status", "value": []}]});
        assert_eq!(status_from_metadata(&empty), None);
        assert_eq!(status_from_metadata(&json!({})), None);
    }
}
