//! The one API error: each variant chooses its status code here; the body is
//! `{"error": "..."}`. Internal failures are logged with their details and answered with a
//! generic message, so database text never reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request's own fault, with what to change.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: refused whatever the credentials (cross-site, foreign host).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource is in a state that does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// 502: an upstream (the feed) failed.
    #[error("{0}")]
    BadGateway(String),
    /// 503: a part of rushes is not configured or not available.
    #[error("{0}")]
    Unavailable(String),
    /// Any other status decided by a lower layer (axum's own rejections).
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// 500: logged, never detailed to the client; 503 when the database did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Status { status, .. } => *status,
            Self::Store(e) if e.is_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Store(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, "the database did not answer a request");
                return database_unreachable();
            }
            Self::Store(e) => {
                tracing::error!(error = %e, "store error while answering a request");
                "internal error (details in the service log)".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// 503 while the database does not answer: the client may try again shortly.
pub fn database_unreachable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "5")],
        Json(json!({ "error": "database unreachable: try again shortly" })),
    )
        .into_response()
}
