//! Sending a local file to Frame.io (v4 `local_upload`): the file is claimed in the store (once
//! only, across runs and instances), made on Frame.io and tracked from that moment (`uploading`,
//! with bytes sent), its parts `PUT` in parallel to their presigned URLs and recorded one by one
//! (a run that stopped resumes without sending an accepted part again; expired URLs: the
//! half-made file is deleted and made again, never two copies), and it is done when Frame.io
//! says the upload is complete. Then it joins the version stack of its earlier version.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError};
use super::create::Create;
use super::parts::{self, DEFAULT_MEDIA_TYPE, Part, PartError};
use super::tracker::Tracker;
use super::upload_api::UploadProgress;
pub use super::upload_report::{Quiet, UploadError, Watch};
pub use super::versions::Stacked;
use super::versions::{self, StackError};
use crate::domain::{ReviewState, Timestamp, TransitionCause, UploadId};
use crate::events::{Event, EventBus};
use crate::net::RetryPolicy;
use crate::store::{
    NewSend, Send, SendClaim, StateChange, Store, StoreError, UploadUpdate, send_state,
};

/// Parts sent at once by default.
pub const DEFAULT_PARALLEL: usize = 4;
/// Longest wait for Frame.io to call an upload complete once every part was accepted.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(600);

/// One file to send.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub path: PathBuf,
    /// The name on Frame.io (the file's name).
    pub name: String,
    pub folder_id: String,
    /// The Frame.io file this one is a new version of (`--version-of`).
    pub version_of: Option<String>,
    /// What makes this file this file for "once only" (see [`source_key`]).
    pub source_key: String,
}

/// The key of a local file: where it is, its size and modification time.
pub fn source_key(place: &str, size: u64, modified: Option<std::time::SystemTime>) -> String {
    let mtime = modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("{place}\u{1f}{size}\u{1f}{mtime}")
}

/// How a send went.
#[derive(Debug, Clone)]
pub enum Done {
    /// Sent now (`stacked` says what became of its version stack).
    Sent { send: Send, stacked: Stacked },
    /// The same file was sent before: nothing done.
    Already(Send),
}

pub struct Uploader {
    tracker: Arc<Tracker>,
    events: EventBus,
    http: reqwest::Client,
    account: String,
    /// This process, as claims name it.
    claimant: String,
    pub parallel: usize,
    pub retry: RetryPolicy,
    /// Wait for a busy file's claim to run out instead of failing at once.
    pub wait_busy: bool,
}

impl Uploader {
    pub fn new(
        tracker: Arc<Tracker>,
        events: EventBus,
        account: String,
    ) -> Result<Self, UploadError> {
        let http = parts::client().map_err(|e| {
            UploadError::Api(ClientError::Transport {
                path: "presigned upload".into(),
                message: crate::net::error_text(&e),
            })
        })?;
        let claimant = format!("{}/{}", tracker.store().instance(), std::process::id());
        Ok(Self {
            tracker,
            events,
            http,
            account,
            claimant,
            parallel: DEFAULT_PARALLEL,
            retry: RetryPolicy {
                attempts: 5,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
            },
            wait_busy: true,
        })
    }

    fn store(&self) -> &Store {
        self.tracker.store()
    }

    fn client(&self) -> Result<&Client, UploadError> {
        self.tracker
            .api("upload")
            .map_err(|_| UploadError::NoClient)
    }

    /// Sends `request` (or finishes sending it).
    pub async fn upload(
        &self,
        request: &UploadRequest,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<Done, UploadError> {
        let send = match self.claim(request, watch, cancel).await? {
            Ok(send) => send,
            Err(done) => return Ok(Done::Already(done)),
        };
        let id = send.id.clone();
        match self.run(send, request, watch, cancel).await {
            Ok(done) => Ok(done),
            Err(e) => {
                if let UploadError::Rejected(_) = e {
                    self.store()
                        .finish_send(&id, send_state::FAILED, 0, Some(&e.to_string()))
                        .await?;
                } else {
                    tracing::warn!(send = %id, error = %e, "Frame.io upload: not finished, the next run resumes it");
                    self.store().release_send(&id, &self.claimant).await?;
                }
                Err(e)
            }
        }
    }

    /// `Ok(send)` to send it, `Err(send)` when it was sent before.
    async fn claim(
        &self,
        request: &UploadRequest,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<Result<Send, Send>, UploadError> {
        let meta =
            tokio::fs::metadata(&request.path)
                .await
                .map_err(|source| UploadError::Read {
                    path: request.path.display().to_string(),
                    source,
                })?;
        if !meta.is_file() {
            return Err(UploadError::NotAFile {
                path: request.path.display().to_string(),
            });
        }
        let versioned = versions::split(&request.name);
        let new = NewSend {
            id: send_id(&request.source_key),
            source_key: request.source_key.clone(),
            path: request.path.display().to_string(),
            name: request.name.clone(),
            file_size: meta.len() as i64,
            folder_id: request.folder_id.clone(),
            asset_key: versioned.asset_key,
            version: versioned.version,
            version_of: request.version_of.clone(),
        };
        loop {
            match self.store().claim_send(&new, &self.claimant).await? {
                SendClaim::Claimed(send) => return Ok(Ok(send)),
                SendClaim::Complete(send) => return Ok(Err(send)),
                SendClaim::Busy(send) => {
                    let claimant = send.claimed_by.clone().unwrap_or_default();
                    if !self.wait_busy {
                        return Err(UploadError::Busy {
                            name: send.name,
                            claimant,
                        });
                    }
                    watch.step(&format!(
                        "{} is being sent by {claimant}: waiting for its claim to run out",
                        send.name
                    ));
                    let wait = send
                        .claim_until
                        .map(|t| t.as_datetime().signed_duration_since(chrono::Utc::now()))
                        .and_then(|d| d.to_std().ok())
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_millis(200), Duration::from_secs(5));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = cancel.cancelled() => return Err(UploadError::Cancelled),
                    }
                }
            }
        }
    }

    async fn run(
        &self,
        mut send: Send,
        request: &UploadRequest,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<Done, UploadError> {
        let client = self.client()?;
        let mut remade = false;
        loop {
            if needs_new_file(&send) {
                send = self.make_file(client, send, watch, cancel).await?;
            } else {
                watch.step("resuming");
            }
            match self.send_parts(&send, &request.path, watch, cancel).await {
                Ok(()) => break,
                Err(UploadError::Part(PartError::Expired { .. })) if !remade => {
                    remade = true;
                    tracing::warn!(send = %send.id, "Frame.io upload: the part URLs expired, making the file again");
                    send.urls_expire_at = Some(Timestamp::now());
                }
                Err(e) => return Err(e),
            }
        }
        let file_id = send.file_id.clone().unwrap_or_default();
        watch.step("waiting for Frame.io to confirm");
        self.wait_complete(client, &send, cancel).await?;
        self.store()
            .finish_send(&send.id, send_state::COMPLETE, send.file_size, None)
            .await?;
        self.mark_uploaded(&send.id).await?;
        tracing::info!(send = %send.id, file = %file_id, bytes = send.file_size, "Frame.io upload: complete");
        let send = self.store().send(&send.id).await?.unwrap_or(send);
        let stacked = match versions::stack(
            client,
            self.store(),
            &self.account,
            &send,
            &self.claimant,
        )
        .await
        {
            Ok(s) => s,
            Err(StackError::Api(e)) => {
                tracing::error!(file = %file_id, error = %e, "Frame.io: cannot put the new version in its version stack");
                Stacked::Alone
            }
            Err(StackError::Store(e)) => return Err(e.into()),
        };
        let send = self.store().send(&send.id).await?.unwrap_or(send);
        self.events.send(Event::UploadChanged {
            id: send.id.clone(),
        });
        Ok(Done::Sent { send, stacked })
    }

    /// Makes the Frame.io file (deleting a half-made one whose URLs expired) and tracks it.
    async fn make_file(
        &self,
        client: &Client,
        send: Send,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<Send, UploadError> {
        if let Some(old) = &send.file_id {
            watch.step("the upload URLs expired: making the file again");
            match client.delete_file(&self.account, old).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(send = %send.id, file = %old, "Frame.io upload: half-made file deleted");
            self.store().clear_send_file(&send.id).await?;
        }
        let created = Create {
            client,
            store: self.store(),
            account: &self.account,
            retry: self.retry,
        }
        .run(&send, watch, cancel)
        .await?;
        let urls: Vec<String> = created.upload_urls.iter().map(|u| u.url.clone()).collect();
        let expire = parts::urls_expire_at(&urls).map(Timestamp::from);
        let encoded = serde_json::to_string(&urls).map_err(StoreError::from)?;
        self.store()
            .set_send_file(
                &send.id,
                &created.id,
                created.view_url.as_deref(),
                created.media_type.as_deref(),
                &encoded,
                expire,
            )
            .await?;
        if !self.store().repoint_upload(&send.id, &created.id).await? {
            self.tracker
                .register(Some(send.id.as_str()), &created.id, Some(&send.name))
                .await?;
        }
        tracing::info!(send = %send.id, file = %created.id, parts = urls.len(), "Frame.io upload: file created");
        self.events.send(Event::UploadChanged {
            id: send.id.clone(),
        });
        self.store()
            .send(&send.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("send {} vanished", send.id)).into())
    }

    /// Sends the parts not yet accepted, `parallel` at a time; progress is written (and the
    /// claim renewed) once a second.
    async fn send_parts(
        &self,
        send: &Send,
        path: &Path,
        watch: &dyn Watch,
        cancel: &CancellationToken,
    ) -> Result<(), UploadError> {
        let urls: Vec<String> = serde_json::from_str(send.upload_urls.as_deref().unwrap_or("[]"))
            .map_err(StoreError::from)?;
        let total = send.file_size as u64;
        let done = self.store().send_parts_done(&send.id).await?;
        let plan = parts::plan(total, urls.len());
        let already: u64 = plan
            .iter()
            .filter(|p| done.contains(&(p.idx as i64)))
            .map(|p| p.len)
            .sum();
        let todo: Vec<Part> = plan
            .into_iter()
            .filter(|p| !done.contains(&(p.idx as i64)))
            .collect();
        let sent = Arc::new(AtomicU64::new(already));
        let media_type = send
            .media_type
            .clone()
            .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.to_string());
        let mut transfers = futures::stream::iter(todo)
            .map(|part| {
                let (sent, urls, media_type) = (sent.clone(), &urls, &media_type);
                async move {
                    let url = urls.get(part.idx).map(String::as_str).unwrap_or_default();
                    parts::put_part(&self.http, path, url, part, media_type, self.retry, &sent)
                        .await?;
                    self.store()
                        .mark_send_part(&send.id, part.idx as i64)
                        .await?;
                    Ok::<(), UploadError>(())
                }
            })
            .buffer_unordered(self.parallel.max(1));
        // Progress is written (and the claim renewed) by a task of its own: awaiting a store
        // write here would pause the parts, one of which may hold the store's write turn.
        let lost = CancellationToken::new();
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(progress_writer(
            self.store().clone(),
            self.events.clone(),
            (send.id.clone(), self.claimant.clone()),
            sent.clone(),
            lost.clone(),
            writer_stop.clone(),
        ));
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        watch.progress(already, total);
        let outcome = loop {
            tokio::select! {
                next = transfers.try_next() => match next {
                    Ok(Some(())) => {}
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
                _ = tick.tick() => watch.progress(sent.load(Ordering::Relaxed), total),
                () = lost.cancelled() => break Err(UploadError::LostClaim(send.name.clone())),
                () = cancel.cancelled() => break Err(UploadError::Cancelled),
            }
        };
        drop(transfers);
        writer_stop.cancel();
        let _ = writer.await;
        if let Err(e) = outcome {
            if matches!(e, UploadError::Cancelled) {
                self.note_progress(send, sent.load(Ordering::Relaxed))
                    .await
                    .ok();
            }
            return Err(e);
        }
        watch.progress(total, total);
        self.note_progress(send, total).await
    }

    async fn note_progress(&self, send: &Send, sent: u64) -> Result<(), UploadError> {
        if !self
            .store()
            .send_progress(&send.id, &self.claimant, sent as i64)
            .await?
        {
            return Err(UploadError::LostClaim(send.name.clone()));
        }
        self.events.send(Event::UploadChanged {
            id: send.id.clone(),
        });
        Ok(())
    }

    /// Asks Frame.io until it calls the upload complete (its status call, else the file's
    /// `status`), waiting a little longer each time.
    async fn wait_complete(
        &self,
        client: &Client,
        send: &Send,
        cancel: &CancellationToken,
    ) -> Result<(), UploadError> {
        let file_id = send.file_id.as_deref().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + COMPLETION_TIMEOUT;
        let mut wait = Duration::from_millis(250);
        loop {
            match client.upload_progress(&self.account, file_id).await? {
                UploadProgress::Complete => return Ok(()),
                UploadProgress::Failed => return Err(UploadError::Rejected(send.name.clone())),
                UploadProgress::Pending => {}
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Err(UploadError::NotComplete {
                    name: send.name.clone(),
                    secs: COMPLETION_TIMEOUT.as_secs(),
                });
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Err(UploadError::Cancelled),
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// The tracked upload leaves `uploading` (Frame.io has every byte; it processes them now).
    async fn mark_uploaded(&self, upload_id: &UploadId) -> Result<(), StoreError> {
        let Some(upload) = self.store().upload(upload_id).await? else {
            return Ok(());
        };
        if upload.state == ReviewState::Uploading {
            let change = StateChange {
                to: ReviewState::Processing,
                cause: TransitionCause::Poll,
                reason: "upload complete (Frame.io has every part)".into(),
                event_id: None,
            };
            self.store()
                .update_upload(
                    upload_id,
                    &UploadUpdate {
                        state: Some(change),
                        ..Default::default()
                    },
                )
                .await?;
        }
        self.events.send(Event::UploadChanged {
            id: upload_id.clone(),
        });
        Ok(())
    }
}

/// Writes a send's bytes once a second (renewing its claim) until `stop`; cancels `lost` when
/// another process took the claim over.
async fn progress_writer(
    store: Store,
    events: EventBus,
    (id, claimant): (UploadId, String),
    sent: Arc<AtomicU64>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        match store
            .send_progress(&id, &claimant, sent.load(Ordering::Relaxed) as i64)
            .await
        {
            Ok(true) => events.send(Event::UploadChanged { id: id.clone() }),
            Ok(false) => {
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(send = %id, error = %e, "Frame.io upload: cannot record the progress")
            }
        }
    }
}

/// A new file is needed: none yet, no URLs, or URLs past their expiry (a minute of margin).
fn needs_new_file(send: &Send) -> bool {
    let expired = send
        .urls_expire_at
        .is_some_and(|t| t <= Timestamp::now().plus(Duration::from_secs(60)));
    send.file_id.is_none() || send.upload_urls.is_none() || expired
}

/// A short stable id for a file's send (the tracked upload's id too).
fn send_id(source_key: &str) -> UploadId {
    let digest = Sha256::digest(source_key.as_bytes());
    UploadId(format!("up-{}", &hex::encode(digest)[..16]))
}
