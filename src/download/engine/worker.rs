//! One download task: a claimed delivery fetched (its R2 copy, then its link; or its resolved
//! files), the outcome written to the store before it is announced, then the completion hook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use url::Url;

use super::handle::DownloadHandle;
use super::observer::StoreObserver;
use super::patience::until_stored;
use super::settings::EngineConfig;
use crate::domain::{DeliveryId, DeliveryState, UrlRole};
use crate::download::hook::{self, HookInput};
use crate::download::transfer::{
    self, Finished, Job, JobUrl, Resume, Segment, Segmenting, TransferError,
};
use crate::events::{Event, EventBus};
use crate::net;
use crate::store::{Delivery, DownloadDone, Store, StoreError};

/// What every download task shares.
pub(super) struct Worker {
    pub(super) store: Store,
    pub(super) events: EventBus,
    pub(super) client: reqwest::Client,
    pub(super) config: EngineConfig,
    pub(super) handle: DownloadHandle,
}

impl Worker {
    pub(super) async fn download(&self, delivery: Delivery, cancel: CancellationToken) {
        let id = delivery.id;
        match self.try_download(&delivery, &cancel).await {
            Ok(()) => {}
            Err(WorkerError::Transfer(TransferError::Cancelled)) => {
                // Cancelled by a user (state already `cancelled`) or by shutdown (stays
                // `downloading` and resumes at the next start): nothing to write.
                tracing::info!(id, "download stopped");
            }
            Err(e) if cancel.is_cancelled() => {
                // Stopped while a store write waited for the database (shutdown, or the lease
                // given up): nothing more to write from here.
                tracing::info!(id, error = %e, "download stopped");
            }
            Err(e)
                if crate::download::resolve::for_raw_link(
                    &self.config.resolvers,
                    &delivery.source_url,
                )
                .is_some_and(|r| r.experimental()) =>
            {
                let message =
                    format!("automatic download (experimental) did not work: {e}; open the link");
                tracing::warn!(id, error = %message, "back to manual");
                match self.store.back_to_manual(id, &message).await {
                    Ok(Some(_)) => self.events.send(Event::DeliveryChanged {
                        id: crate::domain::DeliveryId(id),
                    }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(id, error = %e, "cannot record a manual delivery"),
                }
            }
            Err(WorkerError::Resolve(error))
                if crate::download::resolved::wait_reason(&error).is_some() =>
            {
                self.wait(&delivery, &error).await;
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(id, error = %message, "download failed");
                // The part may have been chosen during this run: read where it is now.
                let part = match self.store.delivery(id).await {
                    Ok(Some(d)) => d.part_path,
                    _ => delivery.part_path.clone(),
                };
                // A segmented part is preallocated: its stored segments say what it holds.
                let bytes = match self.store.download_segments(id).await {
                    Ok(rows) if !rows.is_empty() => rows.iter().map(|r| r.done_bytes).sum(),
                    _ => part
                        .as_deref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(0, |m| m.len() as i64),
                };
                match self.store.fail_download(id, &message, bytes).await {
                    Ok(Some(_)) => self.events.send(Event::DeliveryChanged {
                        id: crate::domain::DeliveryId(id),
                    }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(id, error = %e, "cannot record a failed download"),
                }
            }
        }
    }

    /// The link resolver must wait: the host's virus check (queued again, not before a time that
    /// doubles with each wait) or a password (failed until a person gives one).
    async fn wait(&self, delivery: &Delivery, error: &crate::download::resolve::ResolveError) {
        let id = delivery.id;
        let Some(reason) = crate::download::resolved::wait_reason(error) else {
            return;
        };
        let waited = if reason.needs_password() {
            self.handle.forget_password(DeliveryId(id));
            tracing::info!(id, reason = %reason, "transfer waits for a password");
            self.store
                .wait_for_password(id, reason, &error.to_string())
                .await
        } else {
            let count = match self.store.delivery(id).await {
                Ok(Some(d)) => d.wait_count,
                _ => delivery.wait_count,
            };
            let delay = crate::download::resolved::recheck_delay(
                self.config.resolvers.recheck_after,
                count,
            );
            let at = crate::domain::Timestamp::now().plus(delay);
            let message = format!("{error}; next try at {}", at.text());
            tracing::info!(id, reason = %reason, retry_at = %at.text(), "transfer waits; queued again");
            self.store.wait_and_retry(id, reason, at, &message).await
        };
        match waited {
            Ok(Some(_)) => self.events.send(Event::DeliveryChanged {
                id: crate::domain::DeliveryId(id),
            }),
            Ok(None) => {}
            Err(e) => tracing::error!(id, error = %e, "cannot record a waiting transfer"),
        }
    }

    async fn try_download(
        &self,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let id = delivery.id;
        // Cancelled between the claim and the start of this task: nothing to do.
        let current = self.store.delivery(id).await?;
        if current.is_none_or(|d| d.state != DeliveryState::Downloading) {
            return Ok(());
        }
        if crate::download::resolve::for_raw_link(&self.config.resolvers, &delivery.source_url)
            .is_some()
        {
            // Its files are recognised in its folder (`resolved/layout.rs`), not by `final_path`.
            return self.fetch_resolved(delivery, cancel).await;
        }
        // Died between the rename and the store update: the file is there and verified.
        if let Some(done) = self.already_renamed(delivery).await {
            return self.finish(delivery, done, cancel).await;
        }
        let mut urls = Vec::new();
        let mut bad = Vec::new();
        if let Some(raw) = &delivery.r2_url {
            match Url::parse(raw) {
                Ok(url) => urls.push(JobUrl::plain(UrlRole::R2, url)),
                Err(e) => bad.push(format!("r2_url is not a URL ({e})")),
            }
        }
        let source = Url::parse(&delivery.source_url);
        match &source {
            Ok(url) => urls.push(JobUrl::plain(UrlRole::Source, url.clone())),
            Err(e) => bad.push(format!("source_url is not a URL ({e})")),
        }
        let Some(name_link) = source.ok().or_else(|| urls.first().map(|u| u.url.clone())) else {
            return Err(WorkerError::Message(bad.join("; ")));
        };
        let job = Job {
            urls,
            forced_name: delivery.original_filename.clone(),
            name_link,
            fallback_name: format!("download-{id}"),
            dir: self.config.dir.clone(),
            resume: delivery.part_path.as_ref().map(|p| Resume {
                part: PathBuf::from(p),
                validator: delivery.validator.clone(),
                total: delivery.bytes_total.and_then(|t| u64::try_from(t).ok()),
            }),
            inline_writes: false,
            segments: Segmenting {
                count: self.config.segments.count,
                min_size: self.config.segments.min_size,
                resume: self.stored_segments(delivery).await?,
            },
        };
        tracing::info!(
            id,
            urls = ?job.urls.iter().map(|u| net::redact(&u.url)).collect::<Vec<_>>(),
            "download started"
        );
        let mut observer =
            StoreObserver::new(self.store.clone(), self.events.clone(), id, cancel.clone());
        let finished = transfer::download(
            &self.client,
            &job,
            &mut observer,
            &self.config.retry,
            cancel,
        )
        .await?;
        self.finish(delivery, finished, cancel).await
    }

    /// A delivery whose link resolves to files (`resolved/`), into its own folder.
    async fn fetch_resolved(
        &self,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Result<(), WorkerError> {
        use crate::download::resolved::{self, Fetch, Target};
        use secrecy::ExposeSecret as _;
        let id = delivery.id;
        if delivery.wait_reason.is_some() {
            self.store.end_wait(id).await?;
        }
        let link = Url::parse(&delivery.source_url)
            .map_err(|e| WorkerError::Message(format!("the link is not a URL ({e})")))?;
        let password = self.handle.password(DeliveryId(id));
        let stored = self.stored_segments(delivery).await?;
        let fetch = Fetch {
            settings: &self.config.resolvers,
            segments: &self.config.segments,
            timeout: self.config.timeout,
            retry: &self.config.retry,
            cancel,
            inline_writes: false,
        };
        let target = Target {
            link: &link,
            password: password.as_ref().map(|p| p.expose_secret()),
            parent: &self.config.dir,
            forced_name: delivery.original_filename.as_deref(),
            fallback_name: format!("transfer-{id}"),
            owner: resolved::owner_key("delivery", &format!("{id} {}", delivery.source_url)),
            hint: delivery.part_path.as_deref().map(Path::new),
        };
        let transfer = resolved::open(&fetch, &target)
            .await
            .map_err(WorkerError::from)?;
        tracing::info!(
            id,
            provider = transfer.provider(),
            files = transfer.files(),
            credits_left = ?transfer.credits_left(),
            folder = %transfer.dir().display(),
            "transfer resolved; each automatic download uses one of its download credits"
        );
        let resume = |part: &Path| {
            (delivery.part_path.as_deref().map(Path::new) == Some(part))
                .then(|| (delivery.validator.clone(), stored.clone()))
        };
        let mut observer =
            StoreObserver::new(self.store.clone(), self.events.clone(), id, cancel.clone());
        let finished = transfer
            .fetch(&fetch, &resume, &mut observer)
            .await
            .map_err(WorkerError::from)?;
        self.handle.forget_password(DeliveryId(id));
        self.finish(delivery, finished, cancel).await
    }

    async fn finish(
        &self,
        delivery: &Delivery,
        f: Finished,
        cancel: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let id = delivery.id;
        let secs = f.elapsed.as_secs_f64().max(0.001);
        let done = DownloadDone {
            served_by: f.served_by,
            served_url: f.served_url.clone(),
            sha256: f.sha256.clone(),
            final_path: f.path.display().to_string(),
            bytes: f.bytes as i64,
            duration_ms: f.elapsed.as_millis() as i64,
            mean_speed_bps: (f.fetched as f64 / secs) as i64,
        };
        // The file is in place: its record waits for a database that is away.
        let updated = until_stored(cancel, id, "the finished download", || {
            self.store.finish_download(id, &done)
        })
        .await?;
        if updated.is_none() {
            // Cancelled while the last bytes arrived (the file is complete, keep the user's
            // choice), or taken over by another instance meanwhile (it finishes the record).
            tracing::info!(id, path = %done.final_path, "download finished after a cancel or a takeover");
            return Ok(());
        }
        tracing::info!(
            id,
            path = %done.final_path,
            bytes = done.bytes,
            served_by = done.served_by.map_or("(already complete)", UrlRole::as_str),
            duration_ms = done.duration_ms,
            speed_bps = done.mean_speed_bps,
            "download done"
        );
        self.events.send(Event::DeliveryChanged {
            id: crate::domain::DeliveryId(id),
        });
        if let Some(command) = &self.config.on_complete {
            let input = HookInput {
                file: &f.path,
                delivery_id: id,
                provider: &delivery.provider,
                original_filename: delivery.original_filename.as_deref(),
                allow_env: &self.config.hook_env,
            };
            // Shutdown does not wait for the hook: it is killed (and its outcome says so).
            let outcome = tokio::select! {
                outcome = hook::run(command, &input) => outcome,
                () = cancel.cancelled() => hook::HookOutcome {
                    exit_code: None,
                    output: "killed: rushes was shutting down".into(),
                },
            };
            tracing::info!(id, exit_code = ?outcome.exit_code, "ON_DOWNLOAD_COMPLETE ran");
            self.store
                .record_hook(id, outcome.exit_code, &outcome.output)
                .await?;
            self.events.send(Event::DeliveryChanged {
                id: crate::domain::DeliveryId(id),
            });
        }
        Ok(())
    }

    /// Segments stored for the delivery's partial file by an earlier run.
    async fn stored_segments(&self, d: &Delivery) -> Result<Vec<Segment>, StoreError> {
        if d.part_path.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .download_segments(d.id)
            .await?
            .into_iter()
            .map(|r| Segment {
                start: r.start_byte.max(0) as u64,
                end: r.end_byte.max(0) as u64,
                done: r.done_bytes.max(0) as u64,
            })
            .collect())
    }

    /// A final file recorded just before a rename, present and with the recorded checksum.
    async fn already_renamed(&self, d: &Delivery) -> Option<Finished> {
        let part_gone = d
            .part_path
            .as_deref()
            .is_none_or(|p| !Path::new(p).exists());
        let (path, sha) = (d.final_path.as_deref()?, d.sha256.as_deref()?);
        if !part_gone {
            return None;
        }
        let path = PathBuf::from(path);
        let len = std::fs::metadata(&path).ok()?.len();
        if len as i64 != d.bytes_done {
            return None;
        }
        let check = path.clone();
        let actual = tokio::task::spawn_blocking(move || sha256_of(&check))
            .await
            .ok()?
            .ok()?;
        (actual == sha).then(|| Finished {
            path,
            sha256: actual,
            bytes: len,
            served_by: None,
            served_url: String::new(),
            elapsed: Duration::ZERO,
            fetched: 0,
        })
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Message(String),
    #[error("{}", crate::download::resolved::shown(.0))]
    Resolve(crate::download::resolve::ResolveError),
}

impl From<crate::download::resolved::ResolvedError> for WorkerError {
    fn from(e: crate::download::resolved::ResolvedError) -> Self {
        use crate::download::resolved::ResolvedError;
        match e {
            ResolvedError::File {
                source: TransferError::Cancelled,
                ..
            } => Self::Transfer(TransferError::Cancelled),
            ResolvedError::Resolve { error } => Self::Resolve(error),
            e => Self::Message(e.to_string()),
        }
    }
}
