//! The stand-in's workspace webhooks (list, create with its signing secret, show, patch,
//! delete) and their deliveries: Frame.io's body, signed `v0:` HMAC-SHA256 over
//! `v0:{timestamp}:{body}`, sent to the registered URL on this machine only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ACCOUNT, Hook, Inner, MAX_WEBHOOKS, PROJECT, WORKSPACE, data, errors, not_found};

pub(super) async fn list_webhooks(State(inner): State<Arc<Inner>>) -> Response {
    let books = inner.books();
    let list: Vec<Value> = books.hooks.iter().map(Hook::shown).collect();
    Json(json!({"data": list, "links": {"next": null}})).into_response()
}

pub(super) async fn create_webhook(
    State(inner): State<Arc<Inner>>,
    Json(body): Json<Value>,
) -> Response {
    let d = &body["data"];
    let (Some(name), Some(url), Some(events)) = (
        d["name"].as_str(),
        d["url"].as_str(),
        d["events"].as_array(),
    ) else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name, url and events are required",
        );
    };
    let shown = {
        let mut books = inner.books();
        if books.hooks.len() >= MAX_WEBHOOKS {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, "too many webhooks");
        }
        let hook = Hook {
            id: books.next("webhook"),
            name: name.to_string(),
            url: url.to_string(),
            events: events
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .take(64)
                .collect(),
            active: true,
            secret: format!("{:032x}", rand::random::<u128>()),
        };
        let mut shown = hook.shown();
        shown["secret"] = json!(hook.secret);
        books.hooks.push(hook);
        shown
    };
    inner.bump();
    (StatusCode::CREATED, Json(json!({"data": shown}))).into_response()
}

pub(super) async fn show_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    match books.hooks.iter().find(|h| h.id == id) {
        Some(h) => data(h.shown()),
        None => not_found(),
    }
}

pub(super) async fn patch_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let shown = {
        let mut books = inner.books();
        let Some(h) = books.hooks.iter_mut().find(|h| h.id == id) else {
            return not_found();
        };
        let d = &body["data"];
        if let Some(url) = d["url"].as_str() {
            h.url = url.to_string();
        }
        if let Some(events) = d["events"].as_array() {
            h.events = events
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .take(64)
                .collect();
        }
        if let Some(active) = d["active"].as_bool() {
            h.active = active;
        }
        h.shown()
    };
    inner.bump();
    data(shown)
}

pub(super) async fn delete_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let removed = {
        let mut books = inner.books();
        let before = books.hooks.len();
        books.hooks.retain(|h| h.id != id);
        books.hooks.len() != before
    };
    if !removed {
        return not_found();
    }
    inner.bump();
    StatusCode::NO_CONTENT.into_response()
}

/// A delivery body with exactly Frame.io's fields.
pub(super) fn delivery_body(kind: &str, resource_type: &str, resource_id: &str) -> String {
    json!({
        "type": kind,
        "resource": {"id": resource_id, "type": resource_type},
        "account": {"id": ACCOUNT},
        "workspace": {"id": WORKSPACE},
        "project": {"id": PROJECT},
        "user": {"id": "user-demo-client"}
    })
    .to_string()
}

/// Only deliveries to this machine: the demo never sends anything elsewhere.
fn loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    })
}

/// POSTs `body` signed with `secret`; the answer's status, `None` when nothing answered.
pub(super) async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &str,
) -> Option<u16> {
    if !loopback(url) {
        tracing::warn!("demo Frame.io: the webhook does not point at this machine; not sent");
        return None;
    }
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = crate::frameio::webhook::sign(secret.as_bytes(), &ts, body.as_bytes());
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header(crate::frameio::webhook::TIMESTAMP_HEADER, ts)
        .header(crate::frameio::webhook::SIGNATURE_HEADER, signature)
        .body(body.to_string())
        .send()
        .await;
    sent.ok().map(|r| r.status().as_u16())
}

/// Signs and sends one delivery to each active webhook subscribed to `kind`, retrying a failed
/// one a few times as Frame.io does.
pub(super) async fn deliver(inner: &Inner, kind: &str, resource_type: &str, resource_id: &str) {
    let targets: Vec<(String, String)> = inner
        .books()
        .hooks
        .iter()
        .filter(|h| h.active && h.events.iter().any(|e| e == kind))
        .map(|h| (h.url.clone(), h.secret.clone()))
        .collect();
    let body = delivery_body(kind, resource_type, resource_id);
    for (url, secret) in targets {
        let mut backoff = crate::net::RetryPolicy::default().backoff();
        inner.books().sent += 1;
        loop {
            match post_signed(&inner.http, &url, &secret, &body).await {
                Some(status) if (200..300).contains(&status) => {
                    inner.books().delivered += 1;
                    break;
                }
                answer => match backoff.next_wait(None) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => {
                        tracing::warn!(kind, status = ?answer, "demo Frame.io: a webhook delivery was not accepted");
                        break;
                    }
                },
            }
        }
        inner.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_gets_deliveries() {
        assert!(loopback("http://127.0.0.1:5000/webhooks/frameio"));
        assert!(loopback("http://[::1]:5000/webhooks/frameio"));
        assert!(loopback("http://localhost:5000/webhooks/frameio"));
        assert!(!loopback("https://example.com/webhooks/frameio"));
        assert!(!loopback("http://10.0.0.1/webhooks/frameio"));
        assert!(!loopback("not a url"));
    }
}
