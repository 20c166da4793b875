//! Making the Frame.io file of a send exactly once. `local_upload` is not idempotent: when its
//! answer is lost (a 5xx after Frame.io made the file, a timeout, a reset connection), Frame.io
//! may hold a file rushes does not know, whose upload URLs are lost with the answer. So the
//! store records, before each call, that a create is in flight (with the time); an answer that
//! is recorded clears it. When an attempt's outcome is unknown, or a run finds the mark left by
//! a run that stopped, the folder's children are listed and the files of the same name and size
//! made since then that no send or tracked upload owns are deleted, before the file is made
//! again. Never two copies, whatever stopped where.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError};
use super::upload::{UploadError, Watch};
use super::upload_api::{Child, CreatedFile};
use crate::domain::Timestamp;
use crate::net::RetryPolicy;
use crate::store::{Send, Store};

/// Clocks differ: a file Frame.io dates up to this long before the recorded start is still
/// looked at.
const CLOCK_SKEW: Duration = Duration::from_secs(120);

pub(super) struct Create<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub account: &'a str,
    pub retry: RetryPolicy,
}

impl Create<'_> {
    /// Makes the file of `send` (looking first for the files of a create left in flight).
    pub async fn run(
        &self,
        send: &Send,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<CreatedFile, UploadError> {
        if let Some(since) = send.create_started_at {
            watch.step("an earlier create got no answer: looking for the file it may have made");
            self.sweep(send, since).await?;
            self.store.end_create(&send.id).await?;
        }
        let mut backoff = self.retry.backoff();
        loop {
            watch.step("creating the file on Frame.io");
            let since = self.store.begin_create(&send.id).await?;
            let error = match self
                .client
                .create_local_upload(
                    self.account,
                    &send.folder_id,
                    &send.name,
                    send.file_size as u64,
                )
                .await
            {
                Ok(created) => return Ok(created),
                Err(e @ ClientError::Unknown { .. }) => e,
                Err(e) => {
                    // Refused, or never received: no file was made.
                    self.store.end_create(&send.id).await?;
                    return Err(e.into());
                }
            };
            // The mark stays until the folder was looked at: a run that stops here looks next time.
            let Some(wait) = backoff.next_wait(None) else {
                return Err(error.into());
            };
            let wait = match &error {
                ClientError::Unknown {
                    server_error: true, ..
                } => wait.max(self.client.server_error_wait),
                _ => wait,
            };
            tracing::warn!(send = %send.id, error = %error, wait_ms = wait.as_millis() as u64,
                "Frame.io upload: the create got no answer; looking for the file it may have made before creating again");
            watch.step("the create got no answer: looking for the file it may have made");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Err(UploadError::Cancelled),
            }
            self.sweep(send, since).await?;
            self.store.end_create(&send.id).await?;
        }
    }

    /// Deletes the files of `send`'s folder that a create sent at `since` may have made: same
    /// name, same size, made since then, owned by no send and no tracked upload.
    async fn sweep(&self, send: &Send, since: Timestamp) -> Result<(), UploadError> {
        let children = self
            .client
            .folder_children(self.account, &send.folder_id)
            .await?;
        let from = since.as_datetime() - chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        let mut deleted = 0;
        for child in children {
            if !leftover(&send.name, send.file_size as u64, &child, from)
                || self.owned(&child.id).await?
            {
                continue;
            }
            match self.client.delete_file(self.account, &child.id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            deleted += 1;
            tracing::warn!(send = %send.id, file = %child.id, "Frame.io upload: deleted the file a create without answer had made");
        }
        tracing::info!(send = %send.id, deleted, "Frame.io upload: looked for files of a create without answer");
        Ok(())
    }

    /// The file belongs to a send (this one's earlier file is forgotten before a new one is
    /// made) or is tracked for review.
    async fn owned(&self, file_id: &str) -> Result<bool, UploadError> {
        Ok(self.store.send_by_file(file_id).await?.is_some()
            || self.store.upload_by_file(file_id).await?.is_some())
    }
}

/// A child that a create of `name` (`size` bytes) sent at `from` (minus the clock margin) may
/// have made: a file of that name and size made since then.
fn leftover(name: &str, size: u64, child: &Child, from: chrono::DateTime<chrono::Utc>) -> bool {
    let made = child
        .created_at
        .as_deref()
        .and_then(|t| Timestamp::parse(t).ok());
    child.kind.as_deref().is_none_or(|k| k == "file")
        && child.name.as_deref() == Some(name)
        && child.file_size == Some(size)
        && made.is_some_and(|t| t.as_datetime() >= from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(kind: &str, name: &str, size: u64, created_at: Option<&str>) -> Child {
        Child {
            id: "f".into(),
            kind: Some(kind.into()),
            name: Some(name.into()),
            file_size: Some(size),
            created_at: created_at.map(str::to_string),
        }
    }

    #[test]
    fn only_files_of_the_same_name_and_size_made_since_the_create_are_leftovers() {
        let from = Timestamp::parse("2026-12-07T10:00:00Z")
            .expect("time")
            .as_datetime();
        let after = Some("2026-12-07T11:00:01+01:00");
        assert!(leftover(
            "Cut.mov",
            10,
            &child("file", "Cut.mov", 10, after),
            from
        ));
        for other in [
            child("file", "Cut.mov", 11, after),
            child("file", "cut.mov", 10, after),
            child("version_stack", "Cut.mov", 10, after),
            child("file", "Cut.mov", 10, Some("2026-12-07T09:59:59Z")),
            child("file", "Cut.mov", 10, None),
            child("file", "Cut.mov", 10, Some("yesterday")),
        ] {
            assert!(!leftover("Cut.mov", 10, &other, from), "{other:?}");
        }
    }
}
