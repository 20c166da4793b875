//! The dashboard: server-rendered HTML (maud escapes everything from the feed), a stylesheet and a
//! small script embedded in the binary. Rows and the feed panel have their own routes so the
//! script can re-render them with the same code after an event.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::times::when;
use crate::domain::{DeliveryState, LinkKind, Timestamp, WaitReason};
use crate::store::{Delivery, DeliveryFilter, FeedState};
use crate::text::human_bytes;

const CSS: &str = include_str!("static/dashboard.css");
const JS: &str = include_str!("static/dashboard.js");
const PAGE_ROWS: u32 = 300;

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    state: Option<String>,
    kind: Option<String>,
}

/// `GET /`: the whole page.
pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, ApiError> {
    let filter_state = query.state.as_deref().and_then(DeliveryState::parse);
    let filter_kind = query.kind.as_deref().and_then(LinkKind::parse);
    let deliveries = state
        .store
        .deliveries(&DeliveryFilter {
            state: filter_state,
            kind: filter_kind,
            before: None,
            limit: PAGE_ROWS,
        })
        .await?;
    let counts = state.store.delivery_counts().await?;
    let feed = state.store.feed_state().await?;
    let frameio = frameio_panel(&state).await?;
    let filtered = filter_state.is_some() || filter_kind.is_some();

    if state.config.feed.location.is_none() {
        return Ok(layout(
            filtered,
            html! {
                section.panel #no-feed {
                    h2 { "Frame.io only" }
                    p { "No feed is configured (WEBHOOK_JSON_URL), so this rushes polls no feed and downloads nothing: it tracks Frame.io review." }
                }
                (frameio)
            },
        ));
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    Ok(layout(
        filtered,
        html! {
            (feed_panel(&state, &feed, total))
            section.panel {
                h2 { "Deliveries" }
                (counts_chips(&counts))
                form.filters method="get" action="/" {
                    label { "State " select name="state" {
                        option value="" { "any" }
                        @for s in DeliveryState::ALL {
                            option value=(s.as_str()) selected[filter_state == Some(*s)] { (s.label()) }
                        }
                    } }
                    label { "Kind " select name="kind" {
                        option value="" { "any" }
                        @for k in LinkKind::ALL.iter().copied() {
                            option value=(k.as_str()) selected[filter_kind == Some(k)] { (k.label()) }
                        }
                    } }
                    button type="submit" { "Filter" }
                    @if filtered { a.btn href="/" { "Clear" } }
                }
                table.deliveries {
                    thead { tr {
                        th { "File" } th { "Provider" } th { "Received" } th { "State" } th { "Progress / details" } th { }
                    } }
                    tbody {
                        @for d in &deliveries { (row(d)) }
                        @if deliveries.is_empty() {
                            tr.empty-row { td.empty colspan="6" { "No deliveries yet. They appear here as soon as the feed lists them." } }
                        }
                    }
                }
            }
            (frameio)
        },
    ))
}

/// `GET /ui/deliveries/{id}/row`: one row, for the script.
pub async fn row_fragment(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Markup, ApiError> {
    let delivery = state
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    Ok(row(&delivery))
}

/// `GET /ui/frameio`: the Frame.io panel, for the script.
pub async fn frameio_fragment(State(state): State<AppState>) -> Result<Markup, ApiError> {
    frameio_panel(&state).await
}

/// Most uploads the panel lists.
const PANEL_UPLOADS: usize = 50;

/// Tracked Frame.io uploads with their review state and last comment. Absent when Frame.io is
/// neither configured nor used.
async fn frameio_panel(state: &AppState) -> Result<Markup, ApiError> {
    let uploads = state.store.uploads().await?;
    let reachable =
        state.tunnel.status().mode != "none" || state.tunnel.status().public_url.is_some();
    if uploads.is_empty()
        && state.config.frameio.auth.is_none()
        && !reachable
        && state.config.feed.location.is_some()
    {
        return Ok(html! { section #frameio-panel hidden {} });
    }
    let credentials = state
        .store
        .frameio_credential(crate::frameio::client::CREDENTIALS_ERROR_KEY)
        .await?;
    let reach = super::inspector::sections(state).await?;
    let mut rows = Vec::new();
    for upload in uploads.into_iter().take(PANEL_UPLOADS) {
        let comments = state.store.upload_comments(&upload.id).await?;
        let last = comments
            .into_iter()
            .max_by(|a, b| a.created_at.cmp(&b.created_at));
        let labels = state.store.upload_labels(&upload.id).await?;
        let corrected = last.as_ref().and_then(|c| {
            labels
                .into_iter()
                .find(|l| l.comment_id == c.comment_id)
                .map(|l| l.expected)
        });
        rows.push((upload, last, corrected));
    }
    Ok(html! {
        section #frameio-panel .panel {
            h2 { "Frame.io review" }
            @if let Some((detail, since)) = &credentials {
                p.error-text #frameio-credentials {
                    strong { (crate::frameio::client::CREDENTIALS_EXPIRED) }
                    " — " (detail)
                    @if let Some(since) = since.as_deref().and_then(|s| crate::domain::Timestamp::parse(s).ok()) { " (since " (when(Some(since))) ")" }
                }
            }
            (reach)
            (super::sends::panel(&state.store).await?)
            h3 { "Tracked uploads" }
            @if rows.is_empty() {
                p.sub { "No upload tracked yet: " code { "rushes frameio track FILE_ID" } " or POST /api/uploads." }
            } @else {
                table.deliveries.uploads {
                    thead { tr { th { "Upload" } th { "Review state" } th { "Why" } th { "Last comment" } th { "Changed" } th { "Producer" } } }
                    tbody {
                        @for (upload, last, corrected) in &rows {
                            tr id={ "upload-" (upload.id) } data-upload=(upload.id) {
                                td {
                                    div.name { (upload.name.as_deref().unwrap_or(&upload.file_id)) }
                                    div.sub { "file " span.url { (upload.file_id) } }
                                }
                                td data-label="Review state" {
                                    span class={ "pill review " (upload.state.as_str()) } { (upload.state.as_str().replace('_', " ")) }
                                    @if upload.needs_look.is_some() { " " span.pill.review.needs-look { "needs a look" } }
                                }
                                td {
                                    @if let Some(look) = &upload.needs_look {
                                        div.needs-look { "Not sure of comment " (look.comment_id) ", guess: " strong { (look.guess.map_or("no decision", |v| v.as_str()).replace('_', " ")) } }
                                        div.sub { (look.reason) }
                                    } @else {
                                        div.sub { (upload.state_reason) }
                                    }
                                }
                                td {
                                    @if let Some(c) = last {
                                        div { "“" (c.text) "”" }
                                        div.sub { @if let Some(a) = &c.author { (a) " · " } (when(c.created_at.as_deref().and_then(|raw| Timestamp::parse(raw).ok()))) }
                                        (super::review::comment_verdict(upload.id.as_str(), c, corrected.as_deref()))
                                    } @else { span.sub { "none" } }
                                }
                                td.when data-label="Changed" { (when(Some(upload.state_changed_at))) }
                                td { (super::review::buttons(upload)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// `GET /ui/counts`: the per-state counts, for the script.
pub async fn counts_fragment(State(state): State<AppState>) -> Result<Markup, ApiError> {
    Ok(counts_chips(&state.store.delivery_counts().await?))
}

fn counts_chips(counts: &[(DeliveryState, i64)]) -> Markup {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    html! {
        div #counts .counts {
            a.chip href="/" { "All" b { (total) } }
            @for (name, n) in counts {
                a.chip href={ "/?state=" (name) } { (name.label()) b { (n) } }
            }
        }
    }
}

/// `GET /ui/feed`: the feed panel, for the script.
pub async fn feed_fragment(State(state): State<AppState>) -> Result<Markup, ApiError> {
    let feed = state.store.feed_state().await?;
    let total: i64 = state
        .store
        .delivery_counts()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    Ok(feed_panel(&state, &feed, total))
}

fn head(page: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { "rushes · " (page) }
            link rel="stylesheet" href="/static/dashboard.css";
        }
    }
}

fn layout(filtered: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("deliveries"))
            body data-filtered=(if filtered { "true" } else { "false" }) {
                header.top {
                    h1 { "rushes" span { " · deliveries" } }
                    div.spacer {}
                    span #live .live { span.dot {} span { "Connecting…" } }
                }
                main { (body) }
                div #toast .toast role="status" aria-live="polite" {}
                script src="/static/dashboard.js" defer {}
            }
        }
    }
}

/// The login page shown when `RUSHES_API_TOKEN` is set and the browser has no session.
pub fn login_page(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("sign in"))
            body {
                header.top { h1 { "rushes" span { " · sign in" } } }
                main { section.panel.login {
                    h2 { "Sign in" }
                    p { "This rushes is reachable from the network: enter its access token (RUSHES_API_TOKEN)." }
                    @if let Some(error) = error { div.feed-error { (error) } }
                    form #login method="post" action="/login" {
                        input type="password" name="token" placeholder="Access token" autocomplete="current-password" required autofocus;
                        button.primary type="submit" { "Sign in" }
                    }
                } }
            }
        }
    }
}

/// The feed panel. Its counts agree with the table: records (valid items of the last body),
/// the deliveries they make (the table's total: a delivery listed twice counts once), and the
/// invalid items, skipped, each with its reason.
fn feed_panel(state: &AppState, feed: &FeedState, deliveries: i64) -> Markup {
    let host = state
        .config
        .feed
        .location
        .as_ref()
        .map_or_else(|| "not configured".to_string(), |f| f.host());
    let next = feed
        .last_attempt_at
        .map(|t| t.plus(state.config.feed.monitor_interval));
    let healthy = feed.last_error.is_none() && feed.last_success_at.is_some();
    html! {
        section #feed-panel .panel {
            h2 { "Feed" }
            div.feed-grid {
                div { div.k { "Source" } div.v.url #feed-host { (host) } }
                div { div.k { "Status" } div.v {
                    @if healthy { span.pill.done { "available" } }
                    @else if feed.last_error.is_some() { span.pill.failed { "failing" } }
                    @else { span.pill { "not fetched yet" } }
                } }
                div { div.k { "Last successful fetch" } div.v { @if let Some(t) = feed.last_success_at { (short_time(t)) } @else { "never" } } }
                div { div.k { "Next fetch" } div.v { @if let Some(t) = next { (short_time(t)) } @else { "soon" } } }
                div { div.k { "Records processed" } div.v #records-processed { (feed.records_processed) } }
                div { div.k { "Deliveries" } div.v #feed-deliveries title="the table's total: a delivery the feed lists several times counts once" { (deliveries) } }
                div { div.k { "Invalid items" } div.v #records-invalid { (feed.records_invalid) } }
                div { form method="post" action="/api/feed/refresh" data-action="refresh" {
                    button.primary type="submit" { "Refresh now" }
                } }
            }
            @if let Some(error) = &feed.last_error {
                div.feed-error { strong { "Last error: " } (error) }
            }
            @if feed.records_invalid > 0 {
                @let items = feed.invalid_items();
                div #feed-invalid .feed-invalid {
                    strong {
                        (feed.records_invalid) " invalid "
                        (if feed.records_invalid == 1 { "item" } else { "items" })
                        " skipped (not listed below, not downloaded):"
                    }
                    ul {
                        @for item in &items {
                            li { "item #" (item.index) ": " span.reason { (item.reason) } }
                        }
                        @if (items.len() as i64) < feed.records_invalid {
                            li.sub { "… and " (feed.records_invalid - items.len() as i64) " more: " code { "rushes feed check" } " lists them all." }
                        }
                    }
                }
            }
        }
    }
}

/// One delivery. Everything from the feed goes through maud's escaping.
pub fn row(d: &Delivery) -> Markup {
    let name = d
        .file_name
        .clone()
        .or_else(|| d.original_filename.clone())
        .unwrap_or_else(|| format!("download-{}", d.id));
    let link_host = url::Url::parse(&d.source_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let id = d.id.to_string();
    html! {
        tr id={ "delivery-" (d.id) } data-id=(d.id) data-state=(d.state.as_str()) data-sort={ (d.created_at) "#" (format!("{:012}", d.id)) } {
            td {
                div.name { (name) }
                @if let Some(renamed) = &d.renamed_in_feed {
                    div.sub.orig title="a later feed record gave this name after the download had started; the file keeps its own" { "feed now names it: " (renamed) }
                } @else if let Some(original) = d.original_filename.as_deref().filter(|o| *o != name) {
                    div.sub.orig title="original_filename in the feed" { "feed name: " (original) }
                }
                div.sub { (d.kind.label()) " · " span.url { (link_host) } @if d.r2_url.is_some() { " · R2 copy" } }
            }
            td.provider data-label="Provider" { (provider_label(d, &link_host)) }
            td.when data-label="Received" { (when(Some(d.created_at))) }
            td data-label="State" { span class={ "pill " (d.state.as_str()) } { (d.state.label()) } }
            td { (details(d)) }
            td { div.actions { (actions(d, &id)) } }
        }
    }
}

/// Who delivered: the link's service when rushes knows it (Dropbox, FromSmash, SwissTransfer);
/// for another link, the feed's `provider` (new format) or the link's host. A legacy record's
/// `source` ("webhook" by default) says where the record came from, not who holds the files.
fn provider_label(d: &Delivery, link_host: &str) -> String {
    match d.kind {
        LinkKind::External => {
            let named = d.record_format == crate::domain::RecordFormat::New
                && !d.provider.trim().is_empty();
            if named {
                d.provider.clone()
            } else if link_host.is_empty() {
                d.kind.label().to_string()
            } else {
                link_host.to_string()
            }
        }
        kind => kind.label().to_string(),
    }
}

fn details(d: &Delivery) -> Markup {
    match d.state {
        DeliveryState::Queued if d.wait_reason == Some(WaitReason::VirusCheck) => html! {
            div.sub.waiting data-wait="virus_check" {
                "Waiting for the host's virus check · next try "
                (short_time_opt(d.retry_at))
            }
        },
        DeliveryState::Queued | DeliveryState::Downloading => {
            let pct = match (d.bytes_total, d.state) {
                (Some(total), _) if total > 0 => Some((d.bytes_done.max(0) * 100 / total).min(100)),
                _ => None,
            };
            html! {
                div.progress data-progress=(d.id) data-pct=(pct.map(|p| p.to_string()).unwrap_or_default()) {
                    div.bar { div.fill style={ "width: " (pct.unwrap_or(0)) "%" } {} }
                    div.meta {
                        span.pct { @if let Some(p) = pct { (p) " %" } @else if d.state == DeliveryState::Queued { "waiting" } @else { (human_bytes(d.bytes_done as f64)) } }
                        span.bytes { @if let Some(total) = d.bytes_total { (human_bytes(d.bytes_done as f64)) " / " (human_bytes(total as f64)) } }
                        span.speed {}
                        span.segments {}
                        span.eta {}
                    }
                }
            }
        }
        DeliveryState::Done => html! {
            div {
                @if let Some(size) = d.bytes_total.or(Some(d.bytes_done)) { (human_bytes(size as f64)) }
                @if let Some(speed) = d.mean_speed_bps { " · " (human_bytes(speed as f64)) "/s" }
                @if let Some(by) = &d.served_by { " · from " (by) }
            }
            @if let Some(sha) = &d.sha256 {
                div.sha {
                    code title=(sha) { "sha256 " (sha.get(..12).unwrap_or(sha)) "…" }
                    button type="button" data-copy=(sha) title="Copy the full SHA-256" { "Copy" }
                }
            }
        },
        DeliveryState::Failed if d.wait_reason.is_some_and(WaitReason::needs_password) => html! {
            @if let Some(error) = &d.error { div.error-text { (error) } }
            form.password method="post" action={ "/api/deliveries/" (d.id) "/password" } data-action="password" data-id=(d.id) {
                label {
                    span.sub { @if d.wait_reason == Some(WaitReason::PasswordWrong) { "Another password:" } @else { "Transfer password:" } }
                    input type="password" name="password" autocomplete="off" required maxlength="1024";
                }
                button.primary type="submit" { "Download with it" }
            }
        },
        DeliveryState::Failed | DeliveryState::Cancelled => html! {
            @if let Some(error) = &d.error { div.error-text { (error) } }
            @else if d.state == DeliveryState::Cancelled { div.sub { "Cancelled" } }
        },
        DeliveryState::Manual => {
            html! { div.sub { "Open the link, fetch the files, then mark it handled." } }
        }
        DeliveryState::Available => html! {
            div.sub { "Older than DOWNLOAD_MAX_AGE when first seen: not downloaded automatically." }
        },
        DeliveryState::Handled => {
            html! { div.sub { "Handled by hand " (when(Some(d.state_changed_at))) } }
        }
        DeliveryState::DryRun => html! { div.sub { "Dry run: nothing was downloaded" } },
    }
}

fn actions(d: &Delivery, id: &str) -> Markup {
    html! {
        @match d.state {
            DeliveryState::Failed | DeliveryState::Cancelled => {
                form method="post" action={ "/api/deliveries/" (id) "/retry" } data-action="retry" data-id=(id) {
                    button.primary type="submit" { "Retry" }
                }
            }
            DeliveryState::Available => {
                form method="post" action={ "/api/deliveries/" (id) "/download" } data-action="download" data-id=(id) {
                    button.primary type="submit" { "Download" }
                }
            }
            DeliveryState::Queued | DeliveryState::Downloading => {
                form method="post" action={ "/api/deliveries/" (id) "/cancel" } data-action="cancel" data-id=(id) {
                    button.danger type="submit" { "Cancel" }
                }
            }
            DeliveryState::Manual => {
                a.btn.primary href=(d.source_url) target="_blank" rel="noopener noreferrer" { "Open" }
                form method="post" action={ "/api/deliveries/" (id) "/handled" } data-action="handled" data-id=(id) {
                    button type="submit" { "Mark handled" }
                }
            }
            _ => {}
        }
    }
}

fn short_time_opt(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => short_time(t),
        None => html! { "soon" },
    }
}

/// A time to the second (feed panel); the script shows it in the viewer's time zone.
fn short_time(t: Timestamp) -> Markup {
    let t = t.as_datetime();
    html! { time datetime=(t.to_rfc3339()) data-seconds="true" { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}
