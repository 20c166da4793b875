//! A batch of stored events handled together (issue 28): the events of one file share one
//! comment listing and one Status read and are applied in the order they arrived; different
//! files are handled in parallel (the client paces every call within Frame.io's rate budget).
//! A comment event names only its comment: the first one of a file is looked up, the file's
//! listing then routes the others without a call each.

use std::collections::HashMap;

use futures::StreamExt as _;

use super::client::Comment;
use super::route::Route;
use super::tracker::{Handled, ProcessError, Tracker};
use crate::domain::{EventKind, EventOutcome, TransitionCause, UploadId};
use crate::store::{FrameioEvent, StoreError, UploadUpdate};

/// Files handled at the same time within a batch.
pub const FILES_IN_PARALLEL: usize = 4;

/// One file's events in a batch, and what they read from Frame.io once for all of them.
struct FileGroup {
    upload_id: UploadId,
    file_id: String,
    /// Indexes into the batch, in arrival order.
    events: Vec<usize>,
    comments: Option<Vec<Comment>>,
    status: Option<Option<String>>,
}

type Outcome = Result<Handled, ProcessError>;

impl Tracker {
    /// Routes one stored event to its upload and applies it.
    pub async fn handle_event(&self, event: &FrameioEvent) -> Outcome {
        let mut results = self.handle_batch(std::slice::from_ref(event)).await;
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("an event without a result".into()).into()))
    }

    /// Handles `events` (oldest first); one result per event, in the same order.
    pub async fn handle_batch(&self, events: &[FrameioEvent]) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = events.iter().map(|_| None).collect();
        let mut groups: Vec<FileGroup> = Vec::new();
        let mut group_of_file: HashMap<String, usize> = HashMap::new();
        // Comment id -> file id, from the listings fetched in this batch.
        let mut comment_files: HashMap<String, String> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            let kind = EventKind::of(&event.event_type);
            let routed = match comment_files.get(&event.resource_id) {
                Some(file_id) if kind == EventKind::Comment => self.route_to_file(file_id).await,
                _ => self.route(event, kind).await,
            };
            let (upload, file_id) = match routed {
                Ok(Route::Upload { upload, file_id }) => (upload, file_id),
                Ok(Route::Skip(outcome)) => {
                    results[i] = Some(Ok(Handled {
                        outcome,
                        upload_id: None,
                    }));
                    continue;
                }
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let g = *group_of_file.entry(file_id.clone()).or_insert_with(|| {
                groups.push(FileGroup {
                    upload_id: upload.id.clone(),
                    file_id: file_id.clone(),
                    events: Vec::new(),
                    comments: None,
                    status: None,
                });
                groups.len() - 1
            });
            let group = &mut groups[g];
            group.events.push(i);
            // A comment looked up by its id: list its file now, so that the file's other new
            // comments in this batch are routed by the listing instead of one lookup each.
            if kind == EventKind::Comment
                && event.resource_type == "comment"
                && group.comments.is_none()
            {
                match self.list_comments(event, &file_id).await {
                    Ok(comments) => {
                        for c in &comments {
                            comment_files.insert(c.id.clone(), file_id.clone());
                        }
                        group.comments = Some(comments);
                    }
                    // Left to the group, which tries again and records the error.
                    Err(e) => tracing::debug!(error = %e, "Frame.io: comment listing failed"),
                }
            }
        }
        let done: Vec<Vec<(usize, Outcome)>> = futures::stream::iter(groups)
            .map(|group| self.apply_group(events, group))
            .buffer_unordered(FILES_IN_PARALLEL)
            .collect()
            .await;
        for (i, outcome) in done.into_iter().flatten() {
            results[i] = Some(outcome);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Corrupt("an event left unhandled".into()).into())
                })
            })
            .collect()
    }

    async fn route_to_file(&self, file_id: &str) -> Result<Route, ProcessError> {
        Ok(match self.store().upload_by_file(file_id).await? {
            Some(upload) => Route::Upload {
                upload: Box::new(upload),
                file_id: file_id.to_string(),
            },
            None => Route::Skip(EventOutcome::Untracked),
        })
    }

    async fn list_comments(
        &self,
        event: &FrameioEvent,
        file_id: &str,
    ) -> Result<Vec<Comment>, ProcessError> {
        let account = self.account(event.account_id.as_deref())?;
        Ok(self
            .api("fetch comments")?
            .comments(account, file_id)
            .await?)
    }

    /// One file's events, in order. A run of comment (or metadata) events is answered by one
    /// application of the listing (or Status): the later ones of the run find nothing new.
    async fn apply_group(
        &self,
        events: &[FrameioEvent],
        mut group: FileGroup,
    ) -> Vec<(usize, Outcome)> {
        let mut out = Vec::with_capacity(group.events.len());
        let mut previous: Option<EventKind> = None;
        for &i in &group.events.clone() {
            let event = &events[i];
            let kind = EventKind::of(&event.event_type);
            let repeat =
                previous == Some(kind) && matches!(kind, EventKind::Comment | EventKind::Metadata);
            let outcome = if repeat {
                Ok(Handled {
                    outcome: EventOutcome::Unchanged,
                    upload_id: Some(group.upload_id.clone()),
                })
            } else {
                self.apply_one(event, kind, &mut group).await
            };
            previous = if outcome.is_ok() { Some(kind) } else { None };
            out.push((i, outcome));
        }
        out
    }

    /// Applies one routed event to the upload as it is now.
    async fn apply_one(
        &self,
        event: &FrameioEvent,
        kind: EventKind,
        group: &mut FileGroup,
    ) -> Outcome {
        let Some(upload) = self.store().upload(&group.upload_id).await? else {
            return Ok(Handled {
                outcome: EventOutcome::Untracked,
                upload_id: None,
            });
        };
        let account_update = UploadUpdate {
            account_id: event.account_id.clone(),
            ..Default::default()
        };
        self.store()
            .update_upload(&upload.id, &account_update)
            .await?;
        let name = event.event_type.as_str();
        let changed = match kind {
            EventKind::FileUploadCompleted | EventKind::FileReady => {
                let to = if kind == EventKind::FileReady {
                    crate::domain::ReviewState::Ready
                } else {
                    crate::domain::ReviewState::Processing
                };
                self.advance_lifecycle(
                    &upload,
                    to,
                    TransitionCause::Event,
                    name.to_string(),
                    Some(event.id),
                )
                .await?
            }
            EventKind::Metadata => {
                let status = match group.status.take() {
                    Some(status) => status,
                    None => {
                        let account = self.account(event.account_id.as_deref())?;
                        self.api("read the Status field")?
                            .file_status(account, &group.file_id)
                            .await?
                    }
                };
                group.status = Some(status.clone());
                self.apply_status(
                    &upload,
                    status,
                    TransitionCause::Metadata,
                    ("", &format!(" ({name}, event #{})", event.id)),
                    Some(event.id),
                )
                .await?
            }
            EventKind::Comment => {
                let comments = match group.comments.take() {
                    Some(c) => c,
                    None => self.list_comments(event, &group.file_id).await?,
                };
                let changed = self
                    .apply_comments(&upload, &comments, TransitionCause::Comment, Some(event.id))
                    .await;
                group.comments = Some(comments);
                changed?
            }
            EventKind::File | EventKind::Other => false,
        };
        Ok(Handled {
            outcome: if changed {
                EventOutcome::Applied
            } else {
                EventOutcome::Unchanged
            },
            upload_id: Some(upload.id),
        })
    }
}
