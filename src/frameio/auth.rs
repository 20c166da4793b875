//! Bearer tokens for the Frame.io API: a static `FRAMEIO_TOKEN`, or Adobe IMS (refresh-token
//! grant with the rotated refresh token kept in the store, or server-to-server
//! `client_credentials`), cached until a minute before expiry. Tokens are never logged.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use url::Url;

use super::client::ClientError;
use crate::config::{FrameioAuth, FrameioConfig, S2S_SCOPE};
use crate::store::Store;

/// Store key of the rotated IMS refresh token.
pub const REFRESH_TOKEN_KEY: &str = "ims_refresh_token";

pub(super) struct CachedToken {
    token: SecretString,
    /// Refresh from this instant on (a margin before the real expiry).
    refresh_at: Instant,
}

pub(super) enum Auth {
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

fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

impl Auth {
    /// The configured way to get a token; `None` without credentials.
    pub(super) fn from_config(config: &FrameioConfig) -> Option<Self> {
        Some(match config.auth.as_ref()? {
            FrameioAuth::Token(token) => Self::Static(token.clone()),
            FrameioAuth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => Self::Ims {
                url: config.ims_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: Some(refresh_token.clone()),
                cached: Mutex::new(None),
            },
            FrameioAuth::ClientCredentials {
                client_id,
                client_secret,
            } => Self::Ims {
                url: config.ims_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: None,
                cached: Mutex::new(None),
            },
        })
    }

    /// Whether a 401 is worth a fresh token (IMS) or final (a static token).
    pub(super) fn refreshable(&self) -> bool {
        matches!(self, Self::Ims { .. })
    }

    /// A bearer token; `force` asks IMS for a new one even if the cached one looks valid.
    /// `gate` is asked right before a grant, once this caller's turn has come: a grant refused
    /// while it waited behind another caller must not be asked again (no retry storm).
    pub(super) async fn token(
        &self,
        http: &reqwest::Client,
        store: Option<&Store>,
        force: bool,
        gate: &(dyn Fn() -> Result<(), ClientError> + Sync),
    ) -> Result<SecretString, ClientError> {
        let (url, client_id, client_secret, refresh_token, cached) = match self {
            Self::Static(token) => return Ok(token.clone()),
            Self::Ims {
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
        gate()?;
        // Several instances on one database share the rotated refresh token: one refreshes at a
        // time (the others then read the token it stored), or two grants would race and one
        // instance would be left with a spent token.
        let token_lease = match store.filter(|s| s.may_have_peers() && refresh_token.is_some()) {
            Some(store) => Some(TokenLease::take(store).await?),
            None => None,
        };
        let origin = refresh_token.as_ref().map(|t| hash_hex(t.expose_secret()));
        let granted = async {
            let current_refresh =
                current_refresh_token(refresh_token.as_ref(), origin.as_deref(), store).await?;
            let form = grant_form(client_id, client_secret, current_refresh.as_deref());
            let body = request_token(http, url, form).await?;
            let (token, lifetime) = access_token(&body)?;
            if let (Some(rotated), Some(store)) =
                (body.get("refresh_token").and_then(Value::as_str), store)
            {
                store
                    .set_frameio_credential(REFRESH_TOKEN_KEY, rotated, origin.as_deref())
                    .await?;
            }
            Ok::<_, ClientError>((token, lifetime))
        }
        .await;
        if let Some(lease) = token_lease {
            lease.release().await;
        }
        let (token, lifetime) = granted?;
        tracing::info!(
            expires_in_s = lifetime.as_secs(),
            "Frame.io: got an IMS access token"
        );
        // Refresh a minute early (or at 90 % of a short lifetime).
        let margin = Duration::from_secs(60).min(lifetime / 10);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }
}

/// Store lease of the IMS refresh-token grant.
const TOKEN_LEASE: &str = "frameio_token";

/// How long an instance waits for another one's grant before asking IMS anyway.
const TOKEN_LEASE_WAIT: Duration = Duration::from_secs(15);

/// The right to rotate the shared refresh token (several instances on one database).
struct TokenLease<'a> {
    store: &'a Store,
}

impl<'a> TokenLease<'a> {
    async fn take(store: &'a Store) -> Result<Self, ClientError> {
        let deadline = Instant::now() + TOKEN_LEASE_WAIT;
        loop {
            let lease = store.hold_lease(TOKEN_LEASE).await?;
            if lease.held || Instant::now() >= deadline {
                if !lease.held {
                    tracing::warn!(holder = %lease.holder, "Frame.io: another instance's token grant takes long; asking IMS anyway");
                }
                return Ok(Self { store });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn release(self) {
        if let Err(e) = self.store.release_lease(TOKEN_LEASE).await {
            tracing::warn!(error = %e, "Frame.io: cannot release the token lease");
        }
    }
}

/// The refresh token to use: a rotated one descending from the configured one wins; a new
/// configured one (different hash) replaces it. `None`: client_credentials.
async fn current_refresh_token(
    configured: Option<&SecretString>,
    origin: Option<&str>,
    store: Option<&Store>,
) -> Result<Option<String>, ClientError> {
    let Some(configured) = configured else {
        return Ok(None);
    };
    let stored = match store {
        Some(store) => store.frameio_credential(REFRESH_TOKEN_KEY).await?,
        None => None,
    };
    Ok(Some(match stored {
        Some((value, stored_origin)) if stored_origin.as_deref() == origin => value,
        _ => configured.expose_secret().to_string(),
    }))
}

/// The IMS form: `refresh_token` grant, or `client_credentials` with the S2S scope.
fn grant_form(client_id: &str, client_secret: &SecretString, refresh: Option<&str>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret.expose_secret());
    match refresh {
        Some(token) => form
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", token),
        None => form
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", S2S_SCOPE),
    };
    form.finish()
}

/// POSTs the form to IMS; a refusal becomes an error naming IMS's code (never a secret).
async fn request_token(
    http: &reqwest::Client,
    url: &Url,
    form: String,
) -> Result<Value, ClientError> {
    let response = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| ClientError::Ims(crate::net::error_text(&e)))?;
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
        if status == reqwest::StatusCode::BAD_REQUEST
            || status == reqwest::StatusCode::UNAUTHORIZED
            || code == "invalid_grant"
            || code == "invalid_client"
        {
            return Err(ClientError::Credentials(detail.trim().to_string()));
        }
        return Err(ClientError::Ims(detail));
    }
    Ok(body)
}

/// The access token and its lifetime (`expires_in`, 1 h when absent).
fn access_token(body: &Value) -> Result<(SecretString, Duration), ClientError> {
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Ims("no access_token in the answer".into()))?;
    let lifetime = Duration::from_secs(
        body.get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(3600),
    );
    Ok((SecretString::from(access.to_string()), lifetime))
}
