//! Frame.io routes: the signed webhook receiver and the uploads API.

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;

/// Longest wait for a webhook's durable write before answering 503.
pub const WEBHOOK_WRITE_WAIT: std::time::Duration = std::time::Duration::from_millis(2500);
use super::error::ApiError;
use crate::domain::UploadId;
use crate::frameio::tracker::TrackError;
use crate::frameio::webhook::{
    Accepted, MAX_BODY_BYTES, ReceiveError, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::store::{RegisterError, Registered};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/frameio",
            post(receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/uploads", get(list_uploads).post(create_upload))
        .route("/api/uploads/{id}", get(get_upload))
}

/// A delivery whose signature and timestamp were verified over the exact bytes and that is
/// stored durably. Rejections answer 401 (signature), 400 (body), 413 (size), 503 (no secret /
/// store); each is logged without the secret.
pub struct StoredDelivery(pub Accepted);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequest<AppState> for StoredDelivery {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            tracing::warn!(status = %e.status(), "Frame.io webhook refused: {}", e.body_text());
            ApiError::Status {
                status: e.status(),
                message: e.body_text(),
            }
        })?;
        let timestamp = header(&headers, TIMESTAMP_HEADER);
        let signature = header(&headers, SIGNATURE_HEADER);
        // Frame.io counts an answer slower than 5 s as a failure: when the database does not
        // take the event in time, a 503 makes Frame.io send it again. Known to be away (the
        // reachability check): 503 at once. Only a durable event (committed, or on SQLite in the
        // webhook inbox, see `frameio/inbox.rs`) is answered 200.
        let accepted = if let Some(away) = state.store.unreachable_for() {
            Err(ReceiveError::Store(format!(
                "the database has not answered for {} s",
                away.as_secs()
            )))
        } else {
            tokio::time::timeout(
                WEBHOOK_WRITE_WAIT,
                state.frameio.receiver.accept(timestamp, signature, &body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ReceiveError::Store(format!(
                    "the database did not take the event within {} s",
                    WEBHOOK_WRITE_WAIT.as_secs_f32()
                )))
            })
        };
        match accepted {
            Ok(accepted) => Ok(Self(accepted)),
            Err(e) => {
                let error = match &e {
                    ReceiveError::Signature(_) => ApiError::Unauthorized(e.to_string()),
                    ReceiveError::BadBody(_) => ApiError::BadRequest(e.to_string()),
                    ReceiveError::NoSecret | ReceiveError::Store(_) => {
                        ApiError::Unavailable(e.to_string())
                    }
                };
                // Counted and sampled in memory: a refused call costs no disk write of its own
                // (this route is the one a tunnel exposes to anybody).
                state
                    .frameio
                    .refusals
                    .note(error.status().as_u16(), &e, &body);
                Err(error)
            }
        }
    }
}

async fn receive(StoredDelivery(accepted): StoredDelivery) -> Json<Value> {
    match accepted {
        Accepted::New(id) => Json(json!({ "status": "stored", "event_id": id })),
        Accepted::Duplicate => Json(json!({ "status": "duplicate" })),
        // Durable, not yet in the database (it was busy): no id to give yet.
        Accepted::InInbox => Json(json!({ "status": "stored" })),
    }
}

#[derive(Debug, Deserialize)]
pub struct NewUpload {
    file_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    upload_id: Option<String>,
}

async fn create_upload(
    State(state): State<AppState>,
    body: Result<Json<NewUpload>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match state
        .frameio
        .tracker
        .register(
            body.upload_id.as_deref(),
            &body.file_id,
            body.name.as_deref(),
        )
        .await
    {
        Ok(Registered::Created(u)) => Ok((StatusCode::CREATED, Json(json!(u)))),
        Ok(Registered::Existing(u)) => Ok((StatusCode::OK, Json(json!(u)))),
        Err(TrackError::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(TrackError::Register(
            e @ (RegisterError::FileTaken { .. } | RegisterError::IdTaken(_)),
        )) => Err(ApiError::Conflict(e.to_string())),
        Err(TrackError::Register(RegisterError::Store(e))) => Err(e.into()),
    }
}

async fn list_uploads(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let uploads = super::sends::with_transfers(&state.store, state.store.uploads().await?).await?;
    // Frame.io refused the credentials for good: said here too (and on the dashboard).
    let credentials = state
        .store
        .frameio_credential(crate::frameio::client::CREDENTIALS_ERROR_KEY)
        .await?
        .map(|(detail, since)| {
            json!({
                "error": crate::frameio::client::CREDENTIALS_EXPIRED,
                "detail": detail,
                "since": since,
            })
        });
    Ok(Json(
        json!({ "uploads": uploads, "frameio_credentials": credentials }),
    ))
}

async fn get_upload(
    State(state): State<AppState>,
    Path(id): Path<UploadId>,
) -> Result<Json<Value>, ApiError> {
    let details = state
        .frameio
        .tracker
        .details(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no upload {id:?}")))?;
    let mut value = json!(details);
    if let (Some(transfer), Some(obj)) = (
        super::sends::transfer_of(&state.store, &id).await?,
        value.as_object_mut(),
    ) {
        obj.insert("transfer".into(), transfer);
    }
    Ok(Json(value))
}
