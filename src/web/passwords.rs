//! `POST /api/deliveries/{id}/password`: the password of a password-protected transfer
//! (SwissTransfer), for a delivery waiting for one (`wait_reason` `password_needed` or
//! `password_wrong`). The password goes to the download engine's memory only (never to the store,
//! the logs or any answer) and the delivery is queued again.
//!
//! Body: JSON `{"password": "…"}` (the API, `rushes password`, the page's script) or a form field
//! `password` (the page without its script).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::events::Event;
use crate::store::Delivery;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Deserialize)]
struct Body {
    password: String,
}

fn password_of(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    let password = if json {
        serde_json::from_slice::<Body>(body)
            .map_err(|_| ApiError::BadRequest("expected JSON {\"password\": \"…\"}".into()))?
            .password
    } else {
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ApiError::BadRequest("no `password` field".into()))?
    };
    if password.is_empty() {
        return Err(ApiError::BadRequest("the password is empty".into()));
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "the password is longer than {MAX_PASSWORD} bytes"
        )));
    }
    Ok(password)
}

pub async fn give_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Delivery>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("not a delivery id: {id:?}")))?;
    if body.len() > 4 * MAX_PASSWORD {
        return Err(ApiError::BadRequest("body too large".into()));
    }
    let password = password_of(&headers, &body)?;
    let current = state
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery {id}")))?;
    if !current.wait_reason.is_some_and(|r| r.needs_password()) {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is not waiting for a password"
        )));
    }
    // Kept before the delivery is queued, so the worker that picks it up finds it.
    state
        .downloads
        .set_password(crate::domain::DeliveryId(id), SecretString::from(password));
    let Some(moved) = state.store.requeue_with_password(id).await? else {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is not waiting for a password"
        )));
    };
    tracing::info!(id, "transfer password given; queued again");
    state.events.send(Event::DeliveryChanged {
        id: crate::domain::DeliveryId(id),
    });
    state.downloads.wake();
    Ok(Json(moved))
}
