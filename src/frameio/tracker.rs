//! Tracked uploads and their review state machine. Every change is stored with its cause
//! (registration, event, comment, metadata value, poll) before it is announced.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use serde::Serialize;
use tokio::sync::Notify;

use super::client::{Client, ClientError, Comment};
use super::review::{Analysis, CommentText, Decision, Reader};
use crate::config::FrameioConfig;
use crate::domain::{EventId, EventOutcome, ReviewState, Timestamp, TransitionCause, UploadId};
use crate::events::{Event, EventBus};
use crate::store::{
    NeedsLook, RegisterError, Registered, StateChange, Store, StoreError, StoredComment,
    Transition, Upload, UploadUpdate,
};

/// Comments kept per upload for display.
const KEPT_COMMENTS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the Frame.io API is not configured (FRAMEIO_TOKEN or IMS credentials), cannot {0}")]
    NoClient(&'static str),
    #[error("no Frame.io account id (the event has none and FRAMEIO_ACCOUNT_ID is not set)")]
    NoAccount,
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProcessError {
    /// Frame.io refused the credentials: wait for the next poll interval (or a new configuration).
    pub fn is_credentials(&self) -> bool {
        matches!(self, Self::Api(e) if e.is_credentials())
    }

    /// A setting is missing (API credentials, account id): the event waits until rushes starts
    /// with it; no attempt is spent.
    pub fn is_missing_settings(&self) -> bool {
        matches!(self, Self::NoClient(_) | Self::NoAccount)
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api(e) => e.is_transient(),
            Self::Store(_) => true,
            Self::NoClient(_) | Self::NoAccount => false,
        }
    }
}

/// What processing an event did, and to which upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub outcome: EventOutcome,
    pub upload_id: Option<UploadId>,
}

/// An upload with its history and last comments (the API's detail shape).
#[derive(Debug, Clone, Serialize)]
pub struct UploadDetails {
    #[serde(flatten)]
    pub upload: Upload,
    pub history: Vec<Transition>,
    pub comments: Vec<StoredComment>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Register(#[from] RegisterError),
}

pub struct Tracker {
    store: Store,
    events: EventBus,
    client: Option<Arc<Client>>,
    config: Arc<FrameioConfig>,
    /// Reads the comments (built-in unless [`Tracker::with_reader`] says otherwise).
    reader: Arc<Reader>,
    /// Wakes the poller when an upload is registered.
    pub(crate) poll_wake: Arc<Notify>,
}

fn valid_id(what: &str, raw: &str) -> Result<String, TrackError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TrackError::Invalid(format!(
            "{what} must be 1 to 200 characters without spaces, got {raw:?}"
        )));
    }
    Ok(id.to_string())
}

fn after(interval: Duration, fraction: f64) -> Timestamp {
    Timestamp::now().plus(interval.mul_f64(fraction))
}

impl Tracker {
    pub fn new(
        store: Store,
        events: EventBus,
        client: Option<Arc<Client>>,
        config: Arc<FrameioConfig>,
    ) -> Self {
        Self {
            store,
            events,
            client,
            config,
            reader: Arc::new(Reader::builtin()),
            poll_wake: Arc::new(Notify::new()),
        }
    }

    /// The review reader built from the settings (a studio's lexicon, keyword lists).
    pub fn with_reader(mut self, reader: Arc<Reader>) -> Self {
        self.reader = reader;
        self
    }

    /// `FRAMEIO_POLL_INTERVAL`.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    /// API requests sent so far (0 without a client).
    pub(crate) fn api_calls(&self) -> u64 {
        self.client.as_ref().map_or(0, |c| c.calls())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A random moment within the next poll interval: spreads polls over the interval.
    pub fn spread_poll_time(&self) -> Timestamp {
        after(
            self.config.poll_interval,
            rand::rng().random_range(0.0..1.0),
        )
    }

    /// Starts tracking `file_id` (upload id defaults to the file id).
    pub async fn register(
        &self,
        upload_id: Option<&str>,
        file_id: &str,
        name: Option<&str>,
    ) -> Result<Registered, TrackError> {
        let file_id = valid_id("file id", file_id)?;
        let upload_id = match upload_id {
            Some(id) => valid_id("upload id", id)?,
            None => file_id.clone(),
        };
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let registered = self
            .store
            .register_upload(
                &UploadId(upload_id),
                &file_id,
                name,
                Some(self.spread_poll_time()),
            )
            .await?;
        if let Registered::Created(u) = &registered {
            tracing::info!(upload = %u.id, file = %u.file_id, "Frame.io: tracking upload");
            self.events.send(Event::UploadChanged { id: u.id.clone() });
            self.poll_wake.notify_one();
        }
        Ok(registered)
    }

    pub async fn details(&self, id: &UploadId) -> Result<Option<UploadDetails>, StoreError> {
        let Some(upload) = self.store.upload(id).await? else {
            return Ok(None);
        };
        let history = self.store.upload_transitions(id).await?;
        let mut comments = self.store.upload_comments(id).await?;
        comments.truncate(10);
        Ok(Some(UploadDetails {
            upload,
            history,
            comments,
        }))
    }

    pub(super) fn account<'a>(&'a self, event: Option<&'a str>) -> Result<&'a str, ProcessError> {
        event
            .or(self.config.account_id.as_deref())
            .ok_or(ProcessError::NoAccount)
    }

    pub(super) fn api(&self, doing: &'static str) -> Result<&Client, ProcessError> {
        self.client.as_deref().ok_or(ProcessError::NoClient(doing))
    }

    async fn change(
        &self,
        upload: &Upload,
        change: StateChange,
        mut update: UploadUpdate,
    ) -> Result<bool, StoreError> {
        let to = change.to;
        let was_final = upload.state.is_final();
        if to.is_final() {
            update.next_poll_at = Some(None);
        } else if was_final {
            // Reopened (a new comment after approval, say): poll again.
            update.next_poll_at = Some(Some(self.spread_poll_time()));
        }
        let reason = change.reason.clone();
        let cause = change.cause;
        update.state = Some(change);
        let changed = self.store.update_upload(&upload.id, &update).await?;
        if changed {
            tracing::info!(upload = %upload.id, from = %upload.state, to = %to, %cause, %reason, "Frame.io: review state changed");
            self.events.send(Event::UploadChanged {
                id: upload.id.clone(),
            });
        }
        Ok(changed)
    }

    /// uploading -> processing -> ready only moves forward, and never over a review state.
    pub(super) async fn advance_lifecycle(
        &self,
        upload: &Upload,
        to: ReviewState,
        cause: TransitionCause,
        reason: String,
        event_id: Option<EventId>,
    ) -> Result<bool, StoreError> {
        let forward = matches!(
            (upload.state.lifecycle_rank(), to.lifecycle_rank()),
            (Some(from), Some(target)) if target > from
        );
        if !forward {
            return Ok(false);
        }
        self.change(
            upload,
            StateChange {
                to,
                cause,
                reason,
                event_id,
            },
            UploadUpdate::default(),
        )
        .await
    }

    /// Applies the "Status" option when it differs from the last one seen (newest signal wins).
    pub(super) async fn apply_status(
        &self,
        upload: &Upload,
        status: Option<String>,
        cause: TransitionCause,
        reason: (&str, &str),
        event_id: Option<EventId>,
    ) -> Result<bool, StoreError> {
        let Some(status) = status else {
            return Ok(false);
        };
        if upload.metadata_status.as_deref() == Some(status.as_str()) {
            return Ok(false);
        }
        let update = UploadUpdate {
            metadata_status: Some(status.clone()),
            ..Default::default()
        };
        match self.config.status_map.state_for(&status) {
            Some(to) => {
                self.change(
                    upload,
                    StateChange {
                        to,
                        cause,
                        reason: format!("{}Status = {status:?}{}", reason.0, reason.1),
                        event_id,
                    },
                    update,
                )
                .await
            }
            None => {
                tracing::info!(upload = %upload.id, %status, "Frame.io: Status option not in FRAMEIO_STATUS_MAP, ignored");
                self.store.update_upload(&upload.id, &update).await?;
                Ok(false)
            }
        }
    }

    /// Stores the comments and applies the newest decisive one when it is new.
    pub(super) async fn apply_comments(
        &self,
        upload: &Upload,
        comments: &[Comment],
        cause: TransitionCause,
        event_id: Option<EventId>,
    ) -> Result<bool, StoreError> {
        let texts: Vec<CommentText<'_>> = comments
            .iter()
            .map(|c| CommentText {
                id: &c.id,
                text: c.text.as_deref().unwrap_or(""),
                created_at: c.created_at.as_deref(),
                completed: c.completed_at.is_some(),
            })
            .collect();
        let decision = self.reader.analyse(&texts);
        let mut update = UploadUpdate {
            comments: Some(self.stored_comments(comments)),
            ..Default::default()
        };
        let Some(d) = decision else {
            update.needs_look = Some(None);
            if !comments.is_empty() && upload.state.lifecycle_rank().is_some() {
                let reason = format!("{} comment(s), none decisive yet", comments.len());
                let to = ReviewState::InReview;
                return self
                    .change(
                        upload,
                        StateChange {
                            to,
                            cause,
                            reason,
                            event_id,
                        },
                        update,
                    )
                    .await;
            }
            self.store.update_upload(&upload.id, &update).await?;
            return Ok(false);
        };
        let deciding = comments.iter().find(|c| c.id == d.comment_id);
        let key = decision_key(&d, deciding);
        if self.outranked(upload, comments, &d).await?
            || upload.decided_comment.as_deref() == Some(key.as_str())
        {
            self.store.update_upload(&upload.id, &update).await?;
            return Ok(false);
        }
        update.decided_comment = Some(key);
        let d = self.second_opinion(d).await;
        let reason = decision_reason(&d, deciding.and_then(Comment::author));
        match d.verdict {
            Some(verdict) if d.confident => {
                update.needs_look = Some(None);
                let to = verdict.state();
                self.change(
                    upload,
                    StateChange {
                        to,
                        cause,
                        reason,
                        event_id,
                    },
                    update,
                )
                .await
            }
            _ => {
                self.needs_look(upload, &d, reason, (cause, event_id), update)
                    .await
            }
        }
    }

    /// The comments as kept with the upload (newest first, at most `KEPT_COMMENTS`), each with
    /// its own verdict.
    fn stored_comments(&self, comments: &[Comment]) -> Vec<StoredComment> {
        let mut stored: Vec<StoredComment> = comments
            .iter()
            .map(|c| StoredComment {
                comment_id: c.id.clone(),
                text: c.text.clone().unwrap_or_default(),
                author: c.author(),
                created_at: c.created_at.clone(),
                updated_at: c.updated_at.clone(),
                completed_at: c.completed_at.clone(),
                verdict: self.reader.verdict(c.text.as_deref().unwrap_or("")),
            })
            .collect();
        stored.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        stored.truncate(KEPT_COMMENTS);
        stored
    }

    /// Whether something outranks what the comments imply: a decisive Status set by a person
    /// in Frame.io, or the producer's own word until a newer comment arrives.
    async fn outranked(
        &self,
        upload: &Upload,
        comments: &[Comment],
        d: &Decision,
    ) -> Result<bool, StoreError> {
        if let Some(status) = upload.metadata_status.as_deref()
            && let Some(state) = self.config.status_map.state_for(status)
            && matches!(
                state,
                ReviewState::Approved | ReviewState::ChangesRequested | ReviewState::Rejected
            )
        {
            tracing::debug!(upload = %upload.id, %status, comment = %d.comment_id, "Frame.io: Status outranks the comments");
            return Ok(true);
        }
        if let Some(person_at) = self.store.person_decided_at(&upload.id).await?
            && !comments.iter().any(|c| {
                c.created_at
                    .as_deref()
                    .and_then(|t| crate::domain::Timestamp::parse(t).ok())
                    .is_some_and(|t| t > person_at)
            })
        {
            tracing::debug!(upload = %upload.id, comment = %d.comment_id, "Frame.io: the producer's decision outranks older comments");
            return Ok(true);
        }
        Ok(false)
    }

    /// Only a new deciding comment the local reader is unsure of goes to the second opinion.
    async fn second_opinion(&self, d: Decision) -> Decision {
        if d.confident {
            return d;
        }
        let local = Analysis {
            verdict: d.verdict,
            confident: false,
            reason: d.reason.clone(),
        };
        let a = self.reader.second_opinion(&d.text, local).await;
        Decision {
            verdict: a.verdict,
            confident: a.confident,
            reason: a.reason,
            ..d
        }
    }

    /// The reader is not sure of the deciding comment: the upload is flagged for a person with
    /// the guess and its reason, and stays (or goes back) in review, so polling continues. An
    /// unsure comment never approves.
    async fn needs_look(
        &self,
        upload: &Upload,
        d: &Decision,
        reason: String,
        (cause, event_id): (TransitionCause, Option<EventId>),
        mut update: UploadUpdate,
    ) -> Result<bool, StoreError> {
        let (guess, comment_id) = (d.verdict, d.comment_id.as_str());
        let flag = NeedsLook {
            guess,
            reason: reason.clone(),
            comment_id: comment_id.to_string(),
        };
        let new_flag = upload.needs_look.as_ref() != Some(&flag);
        update.needs_look = Some(Some(flag));
        tracing::info!(upload = %upload.id, comment = %comment_id, guess = guess.map_or("none", |v| v.as_str()), "Frame.io: not sure of a comment, the upload needs a look");
        let changed = if upload.state == ReviewState::InReview {
            self.store.update_upload(&upload.id, &update).await?
        } else {
            let guessed = guess.map_or("no decision", |v| v.as_str());
            self.change(
                upload,
                StateChange {
                    to: ReviewState::InReview,
                    cause,
                    reason: format!("needs a look (guess: {guessed}): {reason}"),
                    event_id,
                },
                update,
            )
            .await?
        };
        if new_flag && !changed {
            self.events.send(Event::UploadChanged {
                id: upload.id.clone(),
            });
        }
        Ok(changed || new_flag)
    }

    /// Asks Frame.io for the file, its Status and its comments: catches what webhooks missed.
    pub async fn poll(&self, upload: &Upload) -> Result<bool, ProcessError> {
        let client = self.api("poll")?;
        let account = self.account(upload.account_id.as_deref())?.to_string();
        let mut changed = false;
        let result: Result<(), ProcessError> = async {
            // One call for the file and its Status (rate limits count per call).
            let status = match client.file_with_status(&account, &upload.file_id).await {
                Ok((file, status)) => {
                    if let Some(to) = file
                        .get("status")
                        .and_then(serde_json::Value::as_str)
                        .and_then(lifecycle_from_file_status)
                    {
                        changed |= self
                            .advance_lifecycle(
                                upload,
                                to,
                                TransitionCause::Poll,
                                "poll: file status".into(),
                                None,
                            )
                            .await?;
                    }
                    status
                }
                Err(e) => return Err(e.into()),
            };
            let current = self.reload(upload).await?;
            changed |= self
                .apply_status(
                    &current,
                    status,
                    TransitionCause::Poll,
                    ("poll: ", ""),
                    None,
                )
                .await?;
            let current = self.reload(upload).await?;
            let comments = client.comments(&account, &upload.file_id).await?;
            changed |= self
                .apply_comments(&current, &comments, TransitionCause::Poll, None)
                .await?;
            Ok(())
        }
        .await;
        let current = self.reload(upload).await?;
        let next = if current.state.is_final() {
            None
        } else {
            Some(after(self.config.poll_interval, 1.0))
        };
        let update = UploadUpdate {
            polled_at: Some(Timestamp::now()),
            next_poll_at: Some(next),
            last_error: Some(result.as_ref().err().map(ToString::to_string)),
            ..Default::default()
        };
        self.store.update_upload(&upload.id, &update).await?;
        result.map(|()| changed)
    }

    async fn reload(&self, upload: &Upload) -> Result<Upload, StoreError> {
        self.store
            .upload(&upload.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("upload {:?} vanished", upload.id)))
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A file's `status` as the lifecycle state it implies, when it says something clear.
fn lifecycle_from_file_status(status: &str) -> Option<ReviewState> {
    let s = status.to_ascii_lowercase();
    if s.contains("transcoded") || s == "ready" || s == "complete" || s == "completed" {
        Some(ReviewState::Ready)
    } else if s == "uploaded" || s.contains("transcoding") || s == "processing" {
        Some(ReviewState::Processing)
    } else {
        None
    }
}

/// Which comment decided, as of which edit: the same key again changes nothing.
fn decision_key(d: &Decision, deciding: Option<&Comment>) -> String {
    format!(
        "{}@{}",
        d.comment_id,
        deciding
            .and_then(|c| c.updated_at.clone().or_else(|| c.created_at.clone()))
            .unwrap_or_default()
    )
}

/// The reason a change records: which comment, by whom, why, and its start.
fn decision_reason(d: &Decision, author: Option<String>) -> String {
    let quoted = short(&d.text, 80);
    let mut reason = match author {
        Some(a) => format!("comment {} by {a}: {} ({quoted:?})", d.comment_id, d.reason),
        None => format!("comment {}: {} ({quoted:?})", d.comment_id, d.reason),
    };
    if d.completed {
        reason.push_str(" (marked completed)");
    }
    reason
}
