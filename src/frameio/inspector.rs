//! The webhook inspector: refused deliveries are recorded with their reason, every received call
//! can be listed with its verdict and processing outcome, and a stored event can be replayed.

use serde::Serialize;

use super::tracker::Tracker;
use super::webhook::{ReceiveError, SignatureError};
use crate::domain::{EventId, EventOutcome, UploadId};
use crate::store::{NewRejectedCall, ReceivedCall, StoreError};

/// Most of a refused body kept.
const KEPT_BODY: usize = 4096;

/// The inspector's name for a refusal.
pub fn verdict(error: &ReceiveError) -> &'static str {
    match error {
        ReceiveError::Signature(
            SignatureError::MissingSignature | SignatureError::MissingTimestamp,
        ) => "missing_signature",
        ReceiveError::Signature(SignatureError::Stale { .. }) => "stale",
        ReceiveError::Signature(_) => "bad_signature",
        ReceiveError::BadBody(_) => "bad_body",
        ReceiveError::NoSecret => "no_secret",
        ReceiveError::Store(_) => "store_error",
    }
}

/// What the inspector keeps of a refused delivery (written later, in a sample: see
/// `refusals.rs`).
pub fn rejected_call(status: u16, error: &ReceiveError, body: &[u8]) -> NewRejectedCall {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_str())
            .map(|s| s.chars().take(200).collect::<String>())
    };
    let mut kept = String::from_utf8_lossy(&body[..body.len().min(KEPT_BODY)]).into_owned();
    if body.len() > KEPT_BODY {
        kept.push_str(&format!("… ({} bytes in all)", body.len()));
    }
    NewRejectedCall {
        status,
        verdict: verdict(error),
        reason: error.to_string(),
        event_type: text(parsed.as_ref().and_then(|p| p.get("type"))),
        resource_id: text(
            parsed
                .as_ref()
                .and_then(|p| p.get("resource"))
                .and_then(|r| r.get("id")),
        ),
        body: kept,
        received_at: crate::domain::Timestamp::now(),
    }
}

/// What processing did, in words (for the dashboard and the CLI).
pub fn outcome_text(call: &ReceivedCall) -> String {
    if call.verdict != "accepted" {
        return format!(
            "refused ({}): {}",
            call.http_status,
            call.reason.as_deref().unwrap_or("")
        );
    }
    let upload = call.upload_id.as_deref().unwrap_or("?");
    match call.outcome {
        None => "not processed yet".into(),
        Some(EventOutcome::Applied) => format!("moved upload {upload}"),
        Some(EventOutcome::Unchanged) => format!("upload {upload}, no change"),
        Some(EventOutcome::Untracked) => "no tracked upload".into(),
        Some(EventOutcome::Ignored) => "ignored (nothing to route)".into(),
        Some(EventOutcome::Failed) => format!(
            "failed: {}",
            call.error.as_deref().unwrap_or("unknown error")
        ),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub event_id: EventId,
    pub outcome: EventOutcome,
    pub upload_id: Option<UploadId>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no stored event {0}")]
    NotFound(EventId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Processes stored event `id` again. The tracker skips what is already applied, so replaying
/// twice changes nothing more.
pub async fn replay(tracker: &Tracker, id: EventId) -> Result<Replayed, ReplayError> {
    let store = tracker.store();
    let event = store
        .frameio_event(id)
        .await?
        .ok_or(ReplayError::NotFound(id))?;
    match tracker.handle_event(&event).await {
        Ok(outcome) => {
            store
                .finish_frameio_event(id, outcome.outcome, outcome.upload_id.as_ref(), None)
                .await?;
            tracing::info!(event = %id, outcome = %outcome.outcome, "Frame.io: event replayed");
            Ok(Replayed {
                event_id: id,
                outcome: outcome.outcome,
                upload_id: outcome.upload_id,
                error: None,
            })
        }
        Err(e) => {
            let message = e.to_string();
            store
                .finish_frameio_event(id, EventOutcome::Failed, None, Some(&message))
                .await?;
            Ok(Replayed {
                event_id: id,
                outcome: EventOutcome::Failed,
                upload_id: None,
                error: Some(message),
            })
        }
    }
}
