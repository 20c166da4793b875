//! JSON API handlers.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::domain::DeliveryState;
use crate::events::Event;
use crate::feed::PollOutcome;
use crate::status::MonitorStatus;
use crate::store::{Delivery, DeliveryFilter};

/// Largest page of `/api/deliveries`.
pub const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

pub async fn csv_monitor_status(
    State(state): State<AppState>,
) -> Result<Json<MonitorStatus>, ApiError> {
    let feed = state.store.feed_state().await?;
    Ok(Json(MonitorStatus::from_feed_state(
        &feed,
        state.config.feed.monitor_interval.as_secs(),
    )))
}

/// Query of `GET /api/deliveries`; everything is text so that a bad value gets a clear message.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    /// `show_signed=1`: signed links with their query strings (redacted otherwise).
    show_signed: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    show_signed: Option<String>,
}

fn asked(flag: Option<&str>) -> bool {
    matches!(flag, Some("1" | "true" | "yes"))
}

/// Whether a query string carries a signature or a token (presigned R2/S3 links and the like).
pub fn is_signed(url: &url::Url) -> bool {
    url.query_pairs().any(|(k, _)| {
        let k = k.to_ascii_lowercase();
        k.starts_with("x-amz-")
            || k.contains("signature")
            || k.contains("token")
            || [
                "sig",
                "expires",
                "policy",
                "key-pair-id",
                "credential",
                "se",
                "sp",
                "sv",
            ]
            .contains(&k.as_str())
    })
}

/// A link as the API shows it: a signed query string is replaced by `?…`.
pub fn shown_link(raw: &str, always: bool) -> String {
    match url::Url::parse(raw) {
        Ok(url) if url.query().is_some() && (always || is_signed(&url)) => crate::net::redact(&url),
        _ => raw.to_string(),
    }
}

/// Signed query strings out of a delivery, unless the caller asked for them. R2 links are
/// always signed; other links only when their query says so.
pub fn redact_delivery(mut d: Delivery, show_signed: bool) -> Delivery {
    if !show_signed {
        d.r2_url = d.r2_url.map(|u| shown_link(&u, true));
        d.source_url = shown_link(&d.source_url, false);
        d.raw_source_url = shown_link(&d.raw_source_url, false);
        d.served_url = d.served_url.map(|u| shown_link(&u, false));
        d.dedupe_key = shown_key(&d.dedupe_key);
    }
    d
}

/// A dedupe key (a normalised link, often without its scheme) as the API shows it: a signed
/// query string is replaced by `?…`, as in a link.
pub fn shown_key(key: &str) -> String {
    let Some((base, _)) = key.split_once('?') else {
        return key.to_string();
    };
    let parsed = url::Url::parse(key)
        .ok()
        .filter(|u| u.has_host())
        .or_else(|| url::Url::parse(&format!("https://{key}")).ok());
    match parsed {
        Some(url) if !is_signed(&url) => key.to_string(),
        _ => format!("{base}?…"),
    }
}

pub async fn list_deliveries(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = DeliveryFilter {
        state: parse_choice(query.state.as_deref())?,
        kind: parse_choice(query.kind.as_deref())?,
        limit: match query.limit.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit must be a number from 1 to {MAX_PAGE}"))
                })?,
        },
        before: match query.before.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                raw.parse::<i64>()
                    .map_err(|_| ApiError::bad_request("before must be a delivery id"))?,
            ),
        },
    };
    let show = asked(query.show_signed.as_deref());
    let deliveries: Vec<Delivery> = state
        .store
        .deliveries(&filter)
        .await?
        .into_iter()
        .map(|d| redact_delivery(d, show))
        .collect();
    // A full page may have more behind it: give the cursor for the next one.
    let next_before = (deliveries.len() == filter.limit as usize)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(json!({
        "deliveries": deliveries,
        "next_before": next_before,
    })))
}

pub async fn get_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(show): Query<ShowQuery>,
) -> Result<Json<Delivery>, ApiError> {
    let show = asked(show.show_signed.as_deref());
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no delivery {id:?}")))?;
    state
        .store
        .delivery(id)
        .await?
        .map(|d| Json(redact_delivery(d, show)))
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))
}

pub async fn refresh_feed(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.config.feed.location.is_none() {
        return Err(ApiError::Conflict(
            "no feed configured (WEBHOOK_JSON_URL): this rushes tracks Frame.io review only".into(),
        ));
    }
    match state.poller.refresh().await {
        Ok(PollOutcome::Fetched {
            valid,
            invalid,
            new,
        }) => Ok(Json(json!({
            "outcome": "fetched",
            "records_processed": valid,
            "invalid": invalid,
            "new": new,
        }))),
        Ok(PollOutcome::NotModified) => Ok(Json(json!({ "outcome": "not_modified" }))),
        Ok(PollOutcome::Fresh) => Ok(Json(json!({ "outcome": "fresh" }))),
        Ok(PollOutcome::Elsewhere { poller }) => Ok(Json(json!({
            "outcome": "requested",
            "poller": poller,
        }))),
        Err(message) => Err(ApiError::BadGateway(message)),
    }
}

/// The instances on this database, who polls the feed and who runs each download.
pub async fn cluster(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = &state.store;
    let running = store
        .deliveries(&crate::store::DeliveryFilter {
            state: Some(crate::domain::DeliveryState::Downloading),
            kind: None,
            before: None,
            limit: 500,
        })
        .await?;
    let downloads: Vec<Value> = running
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "file_name": d.file_name,
                "owner": d.owner,
                "bytes_done": d.bytes_done,
                "bytes_total": d.bytes_total,
            })
        })
        .collect();
    Ok(Json(json!({
        "backend": store.backend(),
        "instance": store.instance(),
        "lease_seconds": store.lease().as_secs(),
        "instances": store.instances().await?,
        "leases": store.leases().await?,
        "downloads": downloads,
    })))
}

/// While the database does not answer ([`crate::store::Store::unreachable_for`]), `/api/*`
/// answers 503 at once instead of waiting the pool's 10 s for a connection; the live event
/// stream still opens, and `/healthz` and `/metrics` say what is wrong.
pub async fn database_gate(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") && path != "/api/events" && state.store.unreachable_for().is_some()
    {
        return super::error::database_unreachable();
    }
    next.run(request).await
}

/// How long `/healthz` waits for the database (a read, then the write lock) before it
/// reports `degraded`: an answer within 2 s, also when the database is away.
pub const HEALTH_WRITE_WAIT: Duration = Duration::from_millis(1500);

pub async fn healthz(State(state): State<AppState>) -> Response {
    // Healthy means the database answers reads and takes writes.
    let started = std::time::Instant::now();
    let problem = match tokio::time::timeout(HEALTH_WRITE_WAIT, state.store.feed_state()).await {
        Err(_) => Some(format!(
            "database unreachable: no answer within {} s",
            HEALTH_WRITE_WAIT.as_secs_f32()
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "/healthz: the database did not answer");
            Some("database unreachable".to_string())
        }
        Ok(Ok(_)) => state
            .store
            .writable_within(HEALTH_WRITE_WAIT.saturating_sub(started.elapsed()))
            .await
            .err(),
    };
    match problem {
        None => Json(json!({
            "status": "ok",
            "backend": state.store.backend(),
            "instance": state.store.instance(),
        }))
        .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "degraded",
                "database": reason,
                "backend": state.store.backend(),
                "instance": state.store.instance(),
            })),
        )
            .into_response(),
    }
}

/// An optional query value from a vocabulary; an unknown one is a 400 that lists the choices.
fn parse_choice<T>(raw: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = crate::domain::UnknownValue>,
{
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|e: crate::domain::UnknownValue| ApiError::bad_request(e.to_string())),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

fn delivery_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no delivery {raw:?}")))
}

/// Moves delivery `id` from one of `from` to `to`: 404 when it does not exist, 409 when it is in
/// another state.
async fn move_delivery(
    state: &AppState,
    id: i64,
    from: &[DeliveryState],
    to: DeliveryState,
    action: &str,
) -> Result<Delivery, ApiError> {
    if let Some(moved) = state.store.transition(id, from, to, None).await? {
        state.events.send(Event::DeliveryChanged {
            id: crate::domain::DeliveryId(id),
        });
        return Ok(moved);
    }
    let current = state
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    let allowed: Vec<_> = from.iter().map(|s| s.as_str()).collect();
    Err(ApiError::Conflict(format!(
        "delivery {id} is {}; only {} deliveries can be {action}",
        current.state,
        allowed.join(" or ")
    )))
}

/// `POST /api/deliveries/{id}/retry`: failed or cancelled -> queued (a kept `.part` is resumed).
pub async fn retry_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let id = delivery_id(&id)?;
    let moved = move_delivery(
        &state,
        id,
        &[DeliveryState::Failed, DeliveryState::Cancelled],
        DeliveryState::Queued,
        "retried",
    )
    .await?;
    state.downloads.wake();
    Ok(Json(moved))
}

/// `POST /api/deliveries/{id}/download`: available (older than `DOWNLOAD_MAX_AGE` when first
/// seen) -> queued, so the workers fetch it.
pub async fn download_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let id = delivery_id(&id)?;
    let moved = move_delivery(
        &state,
        id,
        &[DeliveryState::Available],
        DeliveryState::Queued,
        "downloaded on request",
    )
    .await?;
    state.downloads.wake();
    Ok(Json(moved))
}

/// `POST /api/deliveries/{id}/cancel`: queued or downloading -> cancelled; a running download stops
/// and keeps its `.part`.
pub async fn cancel_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let id = delivery_id(&id)?;
    let moved = move_delivery(
        &state,
        id,
        &[DeliveryState::Queued, DeliveryState::Downloading],
        DeliveryState::Cancelled,
        "cancelled",
    )
    .await?;
    state.downloads.cancel(crate::domain::DeliveryId(id));
    Ok(Json(moved))
}

/// `POST /api/deliveries/{id}/handled`: a manual delivery someone fetched by hand.
pub async fn mark_handled(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let id = delivery_id(&id)?;
    Ok(Json(
        move_delivery(
            &state,
            id,
            &[DeliveryState::Manual],
            DeliveryState::Handled,
            "marked handled",
        )
        .await?,
    ))
}

/// `GET /api/deliveries/{id}/attempts`: every download try, with the URL (no query) and error.
pub async fn delivery_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = delivery_id(&id)?;
    if state.store.delivery(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no delivery {id}")));
    }
    let attempts = state.store.download_attempts(id).await?;
    Ok(Json(json!({ "attempts": attempts })))
}
