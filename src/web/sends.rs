//! What rushes itself sends to Frame.io, as the uploads API shows it: each upload that rushes
//! sent carries a `transfer` object (bytes sent of the file's size, the send's state, its
//! version and version stack, Frame.io's view URL).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::domain::UploadId;
use crate::store::{Send, Store, StoreError, Upload};

/// Most sends looked at for one listing.
const MAX_SENDS: i64 = 5000;

/// The `transfer` object of a send.
pub fn transfer(send: &Send) -> Value {
    json!({
        "state": send.state,
        "bytes_sent": send.bytes_sent,
        "file_size": send.file_size,
        "path": send.path,
        "folder_id": send.folder_id,
        "asset": send.asset_key,
        "version": send.version,
        "version_of": send.version_of,
        "stack_id": send.stack_id,
        "view_url": send.view_url,
        "error": send.error,
        "updated_at": send.updated_at,
    })
}

/// `uploads` as JSON, each with its `transfer` when rushes sent it.
pub async fn with_transfers(store: &Store, uploads: Vec<Upload>) -> Result<Vec<Value>, StoreError> {
    let sends: HashMap<UploadId, Send> = store
        .sends(MAX_SENDS)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    Ok(uploads
        .into_iter()
        .map(|u| {
            let mut value = json!(u);
            if let (Some(send), Some(obj)) = (sends.get(&u.id), value.as_object_mut()) {
                obj.insert("transfer".into(), transfer(send));
            }
            value
        })
        .collect())
}

/// One upload's `transfer`, if rushes sent it.
pub async fn transfer_of(store: &Store, upload_id: &UploadId) -> Result<Option<Value>, StoreError> {
    Ok(store.send(upload_id).await?.as_ref().map(transfer))
}

/// Most sends the dashboard groups.
const PANEL_SENDS: i64 = 200;

/// One asset on the dashboard: its versions, newest first.
struct Asset {
    versions: Vec<(Send, Option<Upload>)>,
}

/// The files rushes sent, grouped by asset (a version stack, or the name without its version
/// mark): each version with its progress while it is sent, then its review state; the newest
/// version's state is the asset's.
pub async fn panel(store: &Store) -> Result<maud::Markup, StoreError> {
    let sends = store.sends(PANEL_SENDS).await?;
    if sends.is_empty() {
        return Ok(maud::html! {});
    }
    let mut order: Vec<String> = Vec::new();
    let mut assets: HashMap<String, Asset> = HashMap::new();
    for send in sends {
        let key = format!("{}\u{1f}{}", send.folder_id, send.asset_key);
        let upload = store.upload(&send.id).await?;
        if !assets.contains_key(&key) {
            order.push(key.clone());
        }
        assets
            .entry(key)
            .or_insert_with(|| Asset {
                versions: Vec::new(),
            })
            .versions
            .push((send, upload));
    }
    for asset in assets.values_mut() {
        asset
            .versions
            .sort_by_key(|v| std::cmp::Reverse((v.0.version, v.0.created_at)));
    }
    Ok(maud::html! {
        h3 { "Sent by rushes" }
        table.deliveries.sends {
            thead { tr { th { "Asset / version" } th { "State" } th { "Sent" } th { "Frame.io" } } }
            tbody {
                @for key in &order {
                    @if let Some(asset) = assets.get(key) {
                        (asset_rows(asset))
                    }
                }
            }
        }
    })
}

fn asset_rows(asset: &Asset) -> maud::Markup {
    let Some((newest, newest_upload)) = asset.versions.first() else {
        return maud::html! {};
    };
    let verdict = newest_upload.as_ref().map(|u| u.state.as_str());
    maud::html! {
        tr.asset data-asset=(newest.asset_key) {
            td { div.name { (newest.name) } div.sub { (asset.versions.len()) " version(s)" @if let Some(s) = &newest.stack_id { " · stack " (s) } } }
            td {
                @if let Some(state) = verdict {
                    span class={ "pill review " (state) } data-verdict=(state) { (state.replace('_', " ")) }
                } @else { span.sub { (newest.state) } }
            }
            td {}
            td {}
        }
        @for (send, upload) in &asset.versions {
            tr.version id={ "send-" (send.id) } data-send=(send.id) data-version=(send.version) {
                td { div.sub { "v" (send.version) " · " (send.name) } }
                td {
                    @if let Some(u) = upload {
                        span class={ "pill review " (u.state.as_str()) } { (u.state.as_str().replace('_', " ")) }
                    } @else {
                        span.sub { (send.state) }
                    }
                    @if let Some(e) = &send.error { div.sub.error-text { (e) } }
                }
                td.progress {
                    @let pct = if send.file_size > 0 { (send.bytes_sent as f64 / send.file_size as f64 * 100.0).clamp(0.0, 100.0) } else { 100.0 };
                    div.bar { div.fill style={ "width:" (format!("{pct:.1}")) "%" } {} }
                    div.meta {
                        span.pct { (format!("{pct:.0}")) "%" }
                        span { (crate::text::human_bytes(send.bytes_sent as f64)) " of " (crate::text::human_bytes(send.file_size as f64)) }
                    }
                }
                td {
                    @if let Some(url) = &send.view_url { a href=(url) rel="noopener" target="_blank" { "view" } }
                    @if let Some(f) = &send.file_id { div.sub { "file " (f) } }
                }
            }
        }
    }
}
