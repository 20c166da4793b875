//! Finding the tracked upload an event concerns (the first half of handling an event; the
//! tracker applies it). File and metadata events name the file; a comment event names the
//! comment, whose file is looked up, only when something is tracked at all.

use super::tracker::{ProcessError, Tracker};
use crate::domain::{EventKind, EventOutcome};
use crate::store::{FrameioEvent, Upload};

/// Where an event goes.
pub(super) enum Route {
    /// A tracked upload, and the Frame.io file the event is about.
    Upload {
        upload: Box<Upload>,
        file_id: String,
    },
    /// Nothing to apply (no tracked upload, a deleted comment, an event rushes does not use).
    Skip(EventOutcome),
}

impl Tracker {
    pub(super) async fn route(
        &self,
        event: &FrameioEvent,
        kind: EventKind,
    ) -> Result<Route, ProcessError> {
        let file_id = match kind {
            EventKind::FileUploadCompleted
            | EventKind::FileReady
            | EventKind::File
            | EventKind::Metadata => event.resource_id.clone(),
            EventKind::Comment if event.resource_type != "comment" => event.resource_id.clone(),
            EventKind::Comment => {
                // Only worth an API call when something is tracked at all.
                if self.store().upload_count().await? == 0 {
                    return Ok(Route::Skip(EventOutcome::Untracked));
                }
                let account = self.account(event.account_id.as_deref())?;
                match self
                    .api("look up a comment")?
                    .comment(account, &event.resource_id)
                    .await
                {
                    Ok(comment) => match comment.file_id {
                        Some(f) => f,
                        None => return Ok(Route::Skip(EventOutcome::Ignored)),
                    },
                    // A deleted comment cannot be looked up; nothing to route.
                    Err(e) if e.is_not_found() => return Ok(Route::Skip(EventOutcome::Ignored)),
                    Err(e) => return Err(e.into()),
                }
            }
            EventKind::Other => return Ok(Route::Skip(EventOutcome::Ignored)),
        };
        Ok(match self.store().upload_by_file(&file_id).await? {
            Some(upload) => Route::Upload {
                upload: Box::new(upload),
                file_id,
            },
            None => Route::Skip(EventOutcome::Untracked),
        })
    }
}
