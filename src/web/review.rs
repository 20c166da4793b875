//! The producer's word: `POST /api/uploads/{id}/review` (Approved / Changes requested / No
//! decision, recorded as a transition with cause `person`, who and when) and
//! `POST /api/uploads/{id}/comments/{comment_id}/label` (a corrected comment verdict, for
//! `rushes frameio corrections`); the dashboard's buttons and correction forms. The access
//! guard applies as to every write route (token or session, same-origin).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::domain::{ReviewState, UploadId, Verdict};
use crate::events::Event;
use crate::store::{StoredComment, Upload};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/uploads/{id}/review", post(review))
        .route("/api/uploads/{id}/comments/{comment_id}/label", post(label))
}

/// The decisions a person can give, as the API and the buttons name them.
const DECISIONS: [(&str, &str); 3] = [
    ("approved", "Approved"),
    ("changes_requested", "Changes requested"),
    ("no_decision", "No decision"),
];

/// Verdicts a comment can be given (`none`: it decides nothing).
const LABELS: [&str; 4] = ["approved", "changes_requested", "rejected", "none"];

#[derive(Debug, Deserialize)]
struct ReviewBody {
    state: String,
    #[serde(default)]
    by: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LabelBody {
    verdict: String,
    #[serde(default)]
    by: Option<String>,
}

/// Who decided: the body's `by`, else where the request came from.
fn who(by: Option<&str>, headers: &HeaderMap) -> String {
    let named: String = by
        .map(str::trim)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    if !named.is_empty() {
        return named;
    }
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        "producer (API)".into()
    } else {
        "producer (dashboard)".into()
    }
}

/// A decision's state: `no_decision` puts the upload back in review.
fn decision_state(raw: &str) -> Option<(ReviewState, &'static str)> {
    match raw.trim() {
        "approved" => Some((ReviewState::Approved, "Approved")),
        "changes_requested" => Some((ReviewState::ChangesRequested, "Changes requested")),
        "rejected" => Some((ReviewState::Rejected, "Rejected")),
        "no_decision" | "in_review" => Some((ReviewState::InReview, "No decision")),
        _ => None,
    }
}

async fn review(
    State(state): State<AppState>,
    Path(id): Path<UploadId>,
    headers: HeaderMap,
    body: Result<Json<ReviewBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (to, label) = decision_state(&body.state).ok_or_else(|| {
        ApiError::bad_request(format!(
            "state must be approved, changes_requested, rejected or no_decision, got {:?}",
            body.state
        ))
    })?;
    let by = who(body.by.as_deref(), &headers);
    let reason = format!("{label} by {by}");
    if !state.store.person_review(&id, to, &reason).await? {
        return Err(ApiError::not_found(format!("no upload {id:?}")));
    }
    tracing::info!(upload = %id, state = to.as_str(), %by, "Frame.io: review state set by a person");
    state.events.send(Event::UploadChanged { id: id.clone() });
    let details = state
        .frameio
        .tracker
        .details(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no upload {id:?}")))?;
    Ok(Json(json!(details)))
}

async fn label(
    State(state): State<AppState>,
    Path((id, comment_id)): Path<(UploadId, String)>,
    headers: HeaderMap,
    body: Result<Json<LabelBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let expected = body.verdict.trim();
    if !LABELS.contains(&expected) {
        return Err(ApiError::bad_request(format!(
            "verdict must be approved, changes_requested, rejected or none, got {:?}",
            body.verdict
        )));
    }
    let by = who(body.by.as_deref(), &headers);
    let label = state
        .store
        .label_comment(&id, &comment_id, expected, &by)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("upload {id:?} has no comment {comment_id:?}"))
        })?;
    state.events.send(Event::UploadChanged { id });
    Ok(Json(json!(label)))
}

/// The three decision buttons of an upload (one form each; the script posts them as JSON).
pub fn buttons(upload: &Upload) -> Markup {
    html! {
        div.decide {
            @for (value, text) in DECISIONS {
                form method="post" action={ "/api/uploads/" (upload.id) "/review" }
                    data-action="review" data-json="1" data-upload=(upload.id) {
                    input type="hidden" name="state" value=(value);
                    @let current = decision_state(value).map(|(s, _)| s) == Some(upload.state);
                    button type="submit" class={ "decide " (value) @if current { " current" } }
                        data-decision=(value) { (text) }
                }
            }
        }
    }
}

/// A comment's verdict and the form that corrects it (`corrected`: a person's label, if any).
pub fn comment_verdict(
    upload_id: &str,
    comment: &StoredComment,
    corrected: Option<&str>,
) -> Markup {
    let analysed = comment.verdict.map_or("none", Verdict::as_str);
    html! {
        div.verdict {
            span.sub { "verdict: " }
            span data-verdict=(analysed) { (analysed.replace('_', " ")) }
            @if let Some(c) = corrected { span.sub { " · corrected: " } span data-corrected=(c) { (c.replace('_', " ")) } }
            form.inline method="post" action={ "/api/uploads/" (upload_id) "/comments/" (comment.comment_id) "/label" }
                data-action="label" data-json="1" {
                select name="verdict" aria-label="Correct verdict" {
                    @for l in LABELS {
                        option value=(l) selected[corrected.unwrap_or(analysed) == l] { (l.replace('_', " ")) }
                    }
                }
                button type="submit" { "Correct" }
            }
        }
    }
}
