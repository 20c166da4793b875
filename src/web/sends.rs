//! What rushes itself sends to Frame.io, as the uploads API shows it: each upload that rushes
//! sent carries a `transfer` object (bytes sent of the file's size, the send's state, its
//! version and version stack, Frame.io's view URL).

use std::collections::HashMap;

use serde_json::{Value, json};

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
    let sends: HashMap<String, Send> = store
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
pub async fn transfer_of(store: &Store, upload_id: &str) -> Result<Option<Value>, StoreError> {
    Ok(store.send(upload_id).await?.as_ref().map(transfer))
}
