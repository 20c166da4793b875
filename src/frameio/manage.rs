//! `webhook ensure`: one webhook per workspace, found by name, created or corrected, idempotent.

use std::collections::BTreeSet;

use super::client::{Client, ClientError, Webhook, WebhookPatch};
use super::webhook::SECRET_KEY;
use crate::store::{Store, StoreError};

/// Events subscribed by default: the file, comment and metadata ones rushes routes.
pub const DEFAULT_EVENTS: [&str; 11] = [
    "file.created",
    "file.ready",
    "file.upload.completed",
    "file.versioned",
    "file.deleted",
    "comment.created",
    "comment.updated",
    "comment.completed",
    "comment.uncompleted",
    "comment.deleted",
    "metadata.value.updated",
];

#[derive(Debug, Clone, PartialEq)]
pub enum EnsureOutcome {
    /// Created; its secret is stored.
    Created { id: String },
    /// Existed with other settings; patched.
    Updated { id: String, patch: WebhookPatch },
    /// Existed as wanted; nothing sent.
    Unchanged { id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Frame.io created the webhook but returned no secret; delete it and try again")]
    NoSecret,
    #[error(
        "{count} webhooks are named {name:?}; delete the extra ones (`rushes frameio webhook list`)"
    )]
    Ambiguous { name: String, count: usize },
}

/// What must change so that `existing` matches the wanted url and events (set comparison).
pub fn patch_for(existing: &Webhook, url: &str, events: &[String]) -> WebhookPatch {
    let have: BTreeSet<&str> = existing.events.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = events.iter().map(String::as_str).collect();
    WebhookPatch {
        url: (existing.url != url).then(|| url.to_string()),
        events: (have != want).then(|| events.to_vec()),
        active: (existing.active == Some(false)).then_some(true),
    }
}

pub async fn ensure(
    client: &Client,
    store: &Store,
    account: &str,
    workspace: &str,
    name: &str,
    url: &str,
    events: &[String],
) -> Result<EnsureOutcome, ManageError> {
    ensure_with(client, store, account, workspace, name, url, Some(events)).await
}

/// [`ensure`] for a new public URL: creates the webhook with the default events when it is
/// missing, otherwise corrects only its url (and reactivates it), keeping the events a user chose.
pub async fn ensure_url(
    client: &Client,
    store: &Store,
    account: &str,
    workspace: &str,
    name: &str,
    url: &str,
) -> Result<EnsureOutcome, ManageError> {
    ensure_with(client, store, account, workspace, name, url, None).await
}

async fn ensure_with(
    client: &Client,
    store: &Store,
    account: &str,
    workspace: &str,
    name: &str,
    url: &str,
    events: Option<&[String]>,
) -> Result<EnsureOutcome, ManageError> {
    let hooks = client.webhooks(account, workspace).await?;
    let named: Vec<&Webhook> = hooks.iter().filter(|h| h.name == name).collect();
    match named.as_slice() {
        [] => {
            let defaults: Vec<String>;
            let events = match events {
                Some(e) => e,
                None => {
                    defaults = DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect();
                    &defaults
                }
            };
            let created = client
                .create_webhook(account, workspace, name, url, events)
                .await?;
            let secret = created.secret.as_deref().ok_or(ManageError::NoSecret)?;
            store
                .set_frameio_credential(SECRET_KEY, secret, Some(&created.id))
                .await?;
            Ok(EnsureOutcome::Created { id: created.id })
        }
        [existing] => {
            let patch = patch_for(existing, url, events.unwrap_or(&existing.events));
            if patch.is_empty() {
                Ok(EnsureOutcome::Unchanged {
                    id: existing.id.clone(),
                })
            } else {
                client.update_webhook(account, &existing.id, &patch).await?;
                Ok(EnsureOutcome::Updated {
                    id: existing.id.clone(),
                    patch,
                })
            }
        }
        many => Err(ManageError::Ambiguous {
            name: name.to_string(),
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_only_what_differs() {
        let hook = Webhook {
            id: "w".into(),
            name: "rushes".into(),
            url: "https://a/webhooks/frameio".into(),
            events: vec!["file.ready".into(), "comment.created".into()],
            active: Some(true),
            secret: None,
        };
        let same = patch_for(
            &hook,
            "https://a/webhooks/frameio",
            &["comment.created".into(), "file.ready".into()],
        );
        assert!(same.is_empty(), "{same:?}");
        let moved = patch_for(&hook, "https://b/webhooks/frameio", &hook.events);
        assert_eq!(moved.url.as_deref(), Some("https://b/webhooks/frameio"));
        assert!(moved.events.is_none() && moved.active.is_none());
        let inactive = Webhook {
            active: Some(false),
            ..hook.clone()
        };
        assert_eq!(
            patch_for(&inactive, &hook.url, &hook.events).active,
            Some(true)
        );
        let fewer = patch_for(&hook, &hook.url, &["file.ready".into()]);
        assert_eq!(fewer.events, Some(vec!["file.ready".to_string()]));
    }
}
