//! Frame.io API v4 client: bearer auth (static token or Adobe IMS), `{"data": ...}` bodies,
//! `links.next` pagination, polite retries (429 with Retry-After / doubling from 1 s, 5xx with
//! jitter), one token refresh on 401. Tokens are never logged or shown.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use url::Url;

pub use super::api_types::{Comment, Webhook, WebhookPatch, status_from_metadata};
use super::auth::Auth;
pub use super::auth::REFRESH_TOKEN_KEY;
pub use super::pacing::pace;
use super::pacing::{MAX_RATE_WAIT, exhausted_until, jitter};
use crate::config::FrameioConfig;
use crate::net::{self, RetryPolicy};
use crate::store::{Store, StoreError};

/// What the status and the dashboard show when Frame.io refuses the credentials.
pub const CREDENTIALS_EXPIRED: &str = "Frame.io credentials expired or revoked: re-authorise";
/// Store key of the recorded credentials failure (value: the detail; cleared by a success).
pub const CREDENTIALS_ERROR_KEY: &str = "credentials_error";

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
    /// A request that is not safe to repeat got no usable answer (a 5xx, a timeout, a reset
    /// connection): it may or may not have taken effect on Frame.io.
    #[error("the answer of Frame.io to {path} was lost ({last}): it may have taken effect")]
    Unknown {
        path: String,
        last: String,
        /// The last attempt got a 5xx (Frame.io asks for a longer wait before the next one).
        server_error: bool,
    },
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
            Self::Transport { .. }
            | Self::GaveUp { .. }
            | Self::Unknown { .. }
            | Self::Ims(_)
            | Self::Store(_) => true,
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

/// Whether a request may be sent again after an answer that says nothing of its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, deletes, moves: repeating them changes nothing more.
    Safe,
    /// Creates: sent again only when Frame.io surely did not receive it.
    Once,
}

/// A Frame.io v4 API client.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    store: Option<Store>,
    pub retry: RetryPolicy,
    /// First wait after a 429 that gives no wait of its own (doubles; the API asks for ≥ 1 s).
    pub rate_limit_base: Duration,
    /// Least wait before retrying a 5xx (Frame.io's guide asks for at least 30 s).
    pub server_error_wait: Duration,
    /// After a credentials failure: no request before this instant (the next poll interval).
    blocked: std::sync::Mutex<Option<(Instant, String)>>,
    block_for: Duration,
    /// No request before this instant (`x-ratelimit-remaining: 0` with a reset time).
    not_before: std::sync::Mutex<Option<Instant>>,
    /// Requests sent (the poller spends a per-minute budget of them).
    calls: AtomicU64,
    /// A failure may be recorded in the store (true at start: a record from an earlier run is
    /// cleared by the first success).
    had_failure: AtomicBool,
}

impl Client {
    /// A client for `config`, or `None` when no credentials are configured. `store` keeps the
    /// rotated refresh token.
    pub fn from_config(config: &FrameioConfig, store: Option<Store>) -> Option<Self> {
        let auth = Auth::from_config(config)?;
        let http = net::client(net::Timeouts {
            connect: Duration::from_secs(10),
            request: Some(config.timeout),
            read: None,
        })
        .ok()?;
        Some(Self {
            http,
            base: config.api_base.clone(),
            auth,
            store,
            retry: RetryPolicy {
                attempts: 6,
                ..RetryPolicy::default()
            },
            rate_limit_base: Duration::from_secs(1),
            server_error_wait: SERVER_ERROR_WAIT,
            blocked: std::sync::Mutex::new(None),
            block_for: config.poll_interval,
            not_before: std::sync::Mutex::new(None),
            calls: AtomicU64::new(0),
            had_failure: AtomicBool::new(true),
        })
    }

    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request with retries; returns the whole JSON answer (`Null` when empty).
    /// 429: waits what the server asks (`Retry-After`, `retry-after-ms`, `x-ratelimit-reset`),
    /// at least a doubling wait from `rate_limit_base`; 5xx and transport errors: the retry
    /// policy's backoff; 401 with IMS: one fresh token.
    /// Waits until the rate budget allows the next call (see [`pace`]).
    async fn wait_for_budget(&self) {
        let pause = self
            .not_before
            .lock()
            .map(|n| n.map(|t| t.saturating_duration_since(Instant::now())))
            .unwrap_or(None);
        if let Some(pause) = pause.filter(|w| !w.is_zero()) {
            tokio::time::sleep(pause.min(MAX_RATE_WAIT)).await;
        }
    }

    /// Reads the budget an answer reports: the next call waits when little is left.
    fn note_budget(&self, headers: &reqwest::header::HeaderMap) {
        let paced = pace(headers)
            .map(|wait| Instant::now() + wait)
            .or_else(|| exhausted_until(headers));
        if let Some(next) = paced
            && let Ok(mut n) = self.not_before.lock()
        {
            *n = Some(n.map_or(next, |t| t.max(next)));
        }
    }

    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.send_as(method, url, body, Replay::Safe).await
    }

    /// [`Client::send`] for a request that must not be repeated blindly (`Replay::Once`): it is
    /// tried again only when Frame.io surely did not act on it (no connection, 429, 401); a
    /// 5xx or a lost answer is [`ClientError::Unknown`].
    pub(super) async fn send_as(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Value, ClientError> {
        let path = url.path().to_string();
        let mut refreshed = false;
        let mut rate_wait = self.rate_limit_base;
        let mut backoff = self.retry.backoff();
        let mut attempt = 0;
        self.check_blocked()?;
        loop {
            attempt += 1;
            let mut server_error = false;
            self.wait_for_budget().await;
            let token = match self
                .auth
                .token(&self.http, self.store.as_ref(), false, &|| {
                    self.check_blocked()
                })
                .await
            {
                Ok(t) => t,
                Err(e) => return Err(self.note_failure(e).await),
            };
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let last = match request.send().await {
                Err(e) if replay == Replay::Once && !e.is_connect() => {
                    return Err(ClientError::Unknown {
                        path,
                        last: net::error_text(&e),
                        server_error: false,
                    });
                }
                Err(e) => net::error_text(&e),
                Ok(response) => {
                    let status = response.status();
                    self.note_budget(response.headers());
                    if status.is_success() {
                        self.note_success().await;
                        return Self::answer(response, path, replay).await;
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        self.after_401(&path, refreshed).await?;
                        refreshed = true;
                        continue;
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        if attempt >= self.retry.attempts {
                            return Err(ClientError::GaveUp {
                                path,
                                attempts: attempt,
                                last: "429 rate limited".into(),
                            });
                        }
                        let asked = net::retry_after(response.headers());
                        let wait = jitter(asked.map_or(rate_wait, |r| r.max(rate_wait)));
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
                    if replay == Replay::Once {
                        return Err(ClientError::Unknown {
                            path,
                            last: format!("HTTP {status}: {message}"),
                            server_error: true,
                        });
                    }
                    server_error = true;
                    format!("HTTP {status}: {message}")
                }
            };
            let Some(wait) = backoff.next_wait(None) else {
                return Err(ClientError::GaveUp {
                    path,
                    attempts: attempt,
                    last,
                });
            };
            // A 5xx: the service is in trouble; Frame.io's guide asks for 30 s before a retry.
            let wait = if server_error {
                wait.max(self.server_error_wait)
            } else {
                wait
            };
            tracing::warn!(%path, attempt, wait_ms = wait.as_millis() as u64, error = %last, "Frame.io: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// A successful answer's JSON; for a request not to repeat, an answer cut or garbled is
    /// [`ClientError::Unknown`] (the call took effect, what it made is not known).
    async fn answer(
        response: reqwest::Response,
        path: String,
        replay: Replay,
    ) -> Result<Value, ClientError> {
        match Self::json_body(response, path).await {
            Err(
                ClientError::Transport { path, message } | ClientError::Decode { path, message },
            ) if replay == Replay::Once => Err(ClientError::Unknown {
                path,
                last: message,
                server_error: false,
            }),
            other => other,
        }
    }

    /// A 401: `Ok` when a fresh IMS token was fetched (the first time only), to try again.
    async fn after_401(&self, path: &str, refreshed: bool) -> Result<(), ClientError> {
        if !refreshed && self.auth.refreshable() {
            tracing::info!(%path, "Frame.io: 401, refreshing the token once");
            return match self
                .auth
                .token(&self.http, self.store.as_ref(), true, &|| {
                    self.check_blocked()
                })
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(self.note_failure(e).await),
            };
        }
        let detail = if self.auth.refreshable() {
            format!("401 on {path} with a fresh IMS token")
        } else {
            format!(
                "401 on {path} with FRAMEIO_TOKEN, an IMS access token that lasts about an hour"
            )
        };
        Err(self.note_failure(ClientError::Credentials(detail)).await)
    }

    /// A successful answer's JSON (`Null` when empty).
    async fn json_body(response: reqwest::Response, path: String) -> Result<Value, ClientError> {
        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
            path: path.clone(),
            message: net::error_text(&e),
        })?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            path,
            message: e.to_string(),
        })
    }

    /// Requests sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
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
            self.had_failure.store(true, Ordering::Relaxed);
            if let Some(store) = &self.store
                && let Err(e) = store
                    .set_frameio_credential(
                        CREDENTIALS_ERROR_KEY,
                        detail,
                        Some(
                            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ),
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
        if self.had_failure.swap(false, Ordering::Relaxed)
            && let Some(store) = &self.store
            && let Err(e) = store.delete_frameio_credential(CREDENTIALS_ERROR_KEY).await
        {
            tracing::warn!(error = %e, "Frame.io: cannot clear the credentials failure");
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
    pub(super) async fn list_all(&self, first: Url) -> Result<Vec<Value>, ClientError> {
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

    pub(super) fn decode<T: serde::de::DeserializeOwned>(
        path: &str,
        value: Value,
    ) -> Result<T, ClientError> {
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

/// Least wait before retrying after a 5xx.
pub const SERVER_ERROR_WAIT: Duration = Duration::from_secs(30);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_slow_to_the_refill_pace_when_little_is_left() {
        let headers = |limit: &str, remaining: &str, window: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in [
                ("x-ratelimit-limit", limit),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-window", window),
            ] {
                h.insert(k, v.parse().expect("header"));
            }
            h
        };
        // 40 a minute (the guide's example): plenty left, no pause.
        assert_eq!(pace(&headers("40", "39", "60000")), None);
        // 4 left of 40: one refill interval, 1.5 s.
        assert_eq!(
            pace(&headers("40", "4", "60000")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            pace(&headers("100", "0", "1000")),
            Some(Duration::from_millis(10))
        );
        // Missing or nonsense headers: no pacing.
        assert_eq!(pace(&headers("0", "0", "1000")), None);
        assert_eq!(pace(&headers("10", "x", "1000")), None);
        assert_eq!(pace(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn a_spent_budget_pauses_until_the_reset() {
        let mut h = reqwest::header::HeaderMap::new();
        assert!(exhausted_until(&h).is_none());
        let soon = chrono::Utc::now().timestamp() + 10;
        h.insert(
            "x-ratelimit-reset",
            soon.to_string().parse().expect("header"),
        );
        h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        let at = exhausted_until(&h).expect("paused");
        let wait = at.saturating_duration_since(Instant::now());
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(11),
            "{wait:?}"
        );
        h.insert("x-ratelimit-reset", "3".parse().expect("header"));
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
