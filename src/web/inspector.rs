//! Reachability and the webhook inspector: `GET /api/frameio/status`, `GET /api/frameio/events`,
//! the raw body of a call, `POST /api/frameio/events/{id}/replay`, and their dashboard sections.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::domain::EventId;
use crate::frameio::inspector::{self, ReplayError};
use crate::frameio::keeper::{self, WebhookView};
use crate::store::{KEPT_REJECTED, ReceivedCall};
use crate::tunnel::TunnelStatus;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/frameio/status", get(status))
        .route("/api/frameio/events", get(events))
        .route("/api/frameio/events/{id}/body", get(body))
        .route("/api/frameio/events/{id}/replay", post(replay))
}

/// The whole picture, as `/api/frameio/status` serves it.
#[derive(Debug, Clone, Serialize)]
pub struct FrameioStatus {
    pub mode: &'static str,
    pub public_url: Option<String>,
    pub tunnel: TunnelStatus,
    pub webhook: WebhookView,
    /// `configured` (FRAMEIO_WEBHOOK_SECRET), `stored` (from `webhook ensure`), `missing`.
    pub signing_secret: &'static str,
    pub last_webhook_received_at: Option<crate::domain::Timestamp>,
    pub last_poll_at: Option<String>,
    pub rejected_calls: i64,
    pub feed_configured: bool,
}

pub async fn frameio_status(state: &AppState) -> Result<FrameioStatus, ApiError> {
    let tunnel = state.tunnel.status();
    let signing_secret = if state.config.frameio.webhook_secret.is_some() {
        "configured"
    } else if state
        .store
        .frameio_credential(crate::frameio::webhook::SECRET_KEY)
        .await?
        .is_some()
    {
        "stored"
    } else {
        "missing"
    };
    Ok(FrameioStatus {
        mode: tunnel.mode,
        public_url: tunnel.public_url.clone(),
        webhook: keeper::view(&state.frameio.webhook),
        signing_secret,
        last_webhook_received_at: state.store.last_call_received_at().await?,
        last_poll_at: state.store.last_upload_poll_at().await?,
        rejected_calls: rejected_total(state).await?,
        feed_configured: state.config.feed.location.is_some(),
        tunnel,
    })
}

async fn status(State(state): State<AppState>) -> Result<Json<FrameioStatus>, ApiError> {
    Ok(Json(frameio_status(&state).await?))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// A call with its outcome in words.
#[derive(Debug, Serialize)]
struct CallItem {
    #[serde(flatten)]
    call: ReceivedCall,
    outcome_text: String,
}

async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let number = |raw: Option<&str>, default: i64, max: i64, name: &str| match raw {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be 1 to {max}"))),
    };
    let page = number(q.page.as_deref(), 1, 1_000_000, "page")?;
    let per_page = number(q.per_page.as_deref(), 50, 200, "per_page")?;
    state.frameio.refusals.write(&state.store).await?;
    let calls = state
        .store
        .received_calls(per_page + 1, (page - 1) * per_page)
        .await?;
    let more = calls.len() as i64 > per_page;
    let items: Vec<CallItem> = calls
        .into_iter()
        .take(per_page as usize)
        .map(|call| CallItem {
            outcome_text: inspector::outcome_text(&call),
            call,
        })
        .collect();
    Ok(Json(json!({
        "events": items,
        "page": page,
        "per_page": per_page,
        "next_page": more.then_some(page + 1),
        "rejected_total": rejected_total(&state).await?,
        "rejected_kept": KEPT_REJECTED,
    })))
}

/// `e12` / `r3`, or a bare event id.
fn call_id(raw: &str) -> String {
    if raw.chars().all(|c| c.is_ascii_digit()) {
        format!("e{raw}")
    } else {
        raw.to_string()
    }
}

async fn body(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = call_id(&id);
    let text = state
        .store
        .received_call_body(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no received call {id:?}")))?;
    let pretty = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        pretty,
    )
        .into_response())
}

async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id
        .trim_start_matches('e')
        .parse()
        .map(EventId)
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a stored event id")))?;
    match inspector::replay(&state.frameio.tracker, id).await {
        Ok(done) => Ok(Json(json!(done))),
        Err(ReplayError::NotFound(_)) => Err(ApiError::not_found(format!(
            "no stored event {id} (refused calls cannot be replayed)"
        ))),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

/// Calls the dashboard lists.
const PANEL_CALLS: i64 = 20;

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// The reachability grid and the inspector, inside the Frame.io panel.
pub async fn sections(state: &AppState) -> Result<Markup, ApiError> {
    state.frameio.refusals.write(&state.store).await?;
    let s = frameio_status(state).await?;
    let calls = state.store.received_calls(PANEL_CALLS, 0).await?;
    let t = &s.tunnel;
    let w = &s.webhook;
    Ok(html! {
        div #frameio-reach .feed-grid {
            div { div.k { "Mode" } div.v #reach-mode { (s.mode) } }
            div { div.k { "Public URL" } div.v #reach-url {
                @if let Some(u) = &s.public_url { code { (u) } } @else { span.sub { "none" } }
            } }
            div { div.k { "Agent" } div.v #reach-agent {
                span class={ "pill " (t.agent_state.as_str()) } { (t.agent_state.as_str().replace('_', " ")) }
                @if t.restarts > 0 { " · " (t.restarts) " restart" @if t.restarts > 1 { "s" } }
            } }
            div { div.k { "Webhook" } div.v #reach-webhook {
                @if let Some(id) = &w.webhook_id { code { (id) } } @else { span.sub { "none known" } }
                " · " (w.state.replace('_', " "))
            } }
            div { div.k { "Points at current URL" } div.v #reach-points { (yes_no(w.points_at_current_url)) } }
            div { div.k { "Active" } div.v #reach-active { (yes_no(w.active)) } }
            div { div.k { "Credentials" } div.v #reach-credentials { (w.credentials) " · secret " (s.signing_secret) } }
            div { div.k { "Last webhook received" } div.v #reach-last-webhook { (super::times::when_at(s.last_webhook_received_at)) } }
            div { div.k { "Last poll" } div.v #reach-last-poll { (super::times::when_text(s.last_poll_at.as_deref())) } }
            div { div.k { "Refused calls" } div.v #reach-rejected { (s.rejected_calls) } }
        }
        @if let Some(e) = &t.last_error {
            div.feed-error #reach-agent-error { strong { "Tunnel: " } (e) }
        }
        @if let Some(e) = &w.last_error {
            div.feed-error #reach-webhook-error { strong { "Webhook: " } (e) }
        }
        @if !s.feed_configured {
            p.sub #frameio-only { "Frame.io only: no feed is configured (WEBHOOK_JSON_URL), so there is no feed panel and no feed poller." }
        }
        h3 { "Received webhook calls" }
        @if calls.is_empty() {
            p.sub #inspector-empty { "No webhook call received yet." }
        } @else {
            table.deliveries #inspector {
                thead { tr { th { "Received" } th { "Event" } th { "Resource" } th { "Signature" } th { "Outcome" } th {} } }
                tbody {
                    @for c in &calls {
                        tr data-call=(c.call_id) data-verdict=(c.verdict) {
                            td.when { (super::times::when_at(Some(c.received_at))) }
                            td { (c.event_type.as_deref().unwrap_or("?")) }
                            td { div.sub { (c.resource_type.as_deref().unwrap_or("")) " " (c.resource_id.as_deref().unwrap_or("")) } }
                            td {
                                @if c.verdict == "accepted" { span.pill.done { "accepted" } }
                                @else { span.pill.failed title=(c.reason.as_deref().unwrap_or("")) { (c.http_status) " " (c.verdict.replace('_', " ")) } }
                            }
                            td.outcome { (inspector::outcome_text(c)) }
                            td { div.actions {
                                a.btn href={ "/api/frameio/events/" (c.call_id) "/body" } target="_blank" rel="noopener" { "Raw body" }
                                @if let Some(id) = c.event_id {
                                    form method="post" action={ "/api/frameio/events/" (id) "/replay" } data-action="replay" data-event=(id) {
                                        button type="submit" { "Replay" }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        }
    })
}

/// Refused calls since the start: those written, and those still in memory.
async fn rejected_total(state: &AppState) -> Result<i64, ApiError> {
    let written = state.store.rejected_call_count().await?;
    let unwritten = i64::try_from(state.frameio.refusals.unwritten()).unwrap_or(i64::MAX);
    Ok(written.saturating_add(unwritten))
}
