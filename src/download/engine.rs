//! The download workers: claim `queued` deliveries (at most `DOWNLOAD_CONCURRENCY` at once, at most
//! two per host), resume `downloading` ones left by a previous run, try the R2 copy then the
//! source link, and write every outcome to the store before announcing it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::hook::{self, HookInput};
use super::transfer::{
    self, Finished, Job, JobUrl, Observer, Progress, Resume, Segment, Segmenting, TransferError,
};
use crate::config::{HookCommand, ResolverSettings, SegmentSettings};
use crate::domain::{DeliveryState, UrlRole};
use crate::events::{Event, EventBus};
use crate::naming::SafeFileName;
use crate::net::{self, RetryPolicy};
use crate::store::{Delivery, DownloadDone, SegmentRow, Store, StoreError};

/// At most this many downloads from one host at once.
pub const PER_HOST: usize = 2;
/// The store gets a running download's progress at most this often.
const STORE_EVERY: Duration = Duration::from_secs(1);

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dir: PathBuf,
    pub concurrency: usize,
    pub per_host: usize,
    pub dry_run: bool,
    pub on_complete: Option<HookCommand>,
    /// `ON_DOWNLOAD_COMPLETE_ENV`: variables the hook may see besides its own.
    pub hook_env: Vec<String>,
    pub retry: RetryPolicy,
    /// Connect and read timeout of each request.
    pub timeout: Duration,
    /// `DOWNLOAD_SEGMENTS` / `DOWNLOAD_SEGMENT_MIN`.
    pub segments: SegmentSettings,
    /// `SWISSTRANSFER_AUTO`...: manual links of these kinds are fetched too (`resolved.rs`).
    pub resolvers: ResolverSettings,
}

#[derive(Debug, Default)]
struct Shared {
    running: Mutex<HashMap<i64, CancellationToken>>,
    wake: Notify,
    /// Transfer passwords given from the page, the API or `rushes password`, per delivery: in
    /// memory only (never written to disk or logged), forgotten once used successfully or refused.
    passwords: Mutex<HashMap<i64, secrecy::SecretString>>,
}

/// Talks to a running engine: wake it up, cancel one download. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DownloadHandle {
    shared: Arc<Shared>,
}

impl DownloadHandle {
    /// Look for queued deliveries now rather than at the next tick.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Keeps `password` for delivery `id`'s next try (see `Shared::passwords`).
    pub fn set_password(&self, id: i64, password: secrecy::SecretString) {
        self.passwords().insert(id, password);
    }

    fn password(&self, id: i64) -> Option<secrecy::SecretString> {
        self.passwords().get(&id).cloned()
    }

    fn forget_password(&self, id: i64) {
        self.passwords().remove(&id);
    }

    fn passwords(&self) -> std::sync::MutexGuard<'_, HashMap<i64, secrecy::SecretString>> {
        self.shared
            .passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the running download of `id`, if any (its `.part` is kept). The caller has
    /// already moved the delivery out of `downloading`.
    pub fn cancel(&self, id: i64) -> bool {
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match running.get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

pub struct Engine {
    store: Store,
    events: EventBus,
    config: EngineConfig,
    handle: DownloadHandle,
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Engine {
    pub fn new(
        store: Store,
        events: EventBus,
        config: EngineConfig,
    ) -> Result<(Self, DownloadHandle), EngineError> {
        let client = transfer::client(config.timeout)?;
        let handle = DownloadHandle::default();
        Ok((
            Self {
                store,
                events,
                config,
                handle: handle.clone(),
                client,
            },
            handle,
        ))
    }

    /// Runs until `cancel`; then stops the downloads (they stay `downloading`, to resume at the
    /// next start) and returns when every worker has.
    pub async fn run(self, cancel: CancellationToken) {
        let ctx = Arc::new(Worker {
            store: self.store.clone(),
            events: self.events.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            handle: self.handle.clone(),
        });
        let mut pending: VecDeque<Delivery> = VecDeque::new();
        if !self.config.dry_run {
            self.reclaim(&mut pending, &HashMap::new()).await;
        }
        let mut workers: JoinSet<i64> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, i64> = HashMap::new();
        let mut active: HashMap<i64, String> = HashMap::new();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut bus = self.events.subscribe();
        let mut look = true;
        let mut last_renewal = std::time::Instant::now();
        loop {
            if look {
                self.fill(&ctx, &cancel, &mut pending, &mut workers, &mut active)
                    .await
                    .into_iter()
                    .for_each(|(task, id)| {
                        tasks.insert(task, id);
                    });
            }
            look = true;
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.handle.shared.wake.notified() => {}
                _ = ticker.tick() => {
                    if !self.config.dry_run && last_renewal.elapsed() >= self.store.lease() / 3 {
                        last_renewal = std::time::Instant::now();
                        self.renew(&active).await;
                        if self.store.backend().shared() {
                            self.reclaim(&mut pending, &active).await;
                        }
                    }
                }
                Some(done) = workers.join_next_with_id() => {
                    let id = match done {
                        Ok((task, id)) => {
                            tasks.remove(&task);
                            Some(id)
                        }
                        // A panicked worker still frees its slot.
                        Err(e) => tasks.remove(&e.id()),
                    };
                    if let Some(id) = id {
                        active.remove(&id);
                        self.running().remove(&id);
                    }
                }
                event = bus.recv() => {
                    // A new delivery from the feed: have a look at once. Progress is noise here.
                    look = !matches!(event, Ok(Event::Progress { .. }));
                }
            }
        }
        // Children of `cancel`: already cancelled.
        while workers.join_next().await.is_some() {}
    }

    /// Claims downloads left `downloading` (interrupted here, or on a shared database by an
    /// instance whose lease ran out) and queues them to resume first.
    async fn reclaim(&self, pending: &mut VecDeque<Delivery>, active: &HashMap<i64, String>) {
        match self.store.reclaim_downloads().await {
            Ok(rows) => {
                let rows: Vec<Delivery> = rows
                    .into_iter()
                    .filter(|d| {
                        !active.contains_key(&d.id) && !pending.iter().any(|p| p.id == d.id)
                    })
                    .collect();
                if !rows.is_empty() {
                    tracing::info!(count = rows.len(), "resuming interrupted downloads");
                }
                for d in &rows {
                    self.events.send(Event::DeliveryChanged { id: d.id });
                }
                pending.extend(rows);
            }
            Err(e) => tracing::error!(error = %e, "cannot list interrupted downloads"),
        }
    }

    /// Renews the leases of the running downloads; one that another instance took over (this
    /// one could not renew in time) is stopped here, so that a file has one writer.
    async fn renew(&self, active: &HashMap<i64, String>) {
        let ids: Vec<i64> = active.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        match self.store.renew_download_leases(&ids).await {
            Ok(held) => {
                for id in ids.iter().filter(|id| !held.contains(id)) {
                    if let Some(token) = self.running().get(id) {
                        tracing::warn!(
                            id,
                            "download taken over by another instance: stopping it here"
                        );
                        token.cancel();
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot renew the download leases"),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CancellationToken>> {
        self.handle
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts downloads while there are free slots and eligible deliveries.
    async fn fill(
        &self,
        ctx: &Arc<Worker>,
        cancel: &CancellationToken,
        pending: &mut VecDeque<Delivery>,
        workers: &mut JoinSet<i64>,
        active: &mut HashMap<i64, String>,
    ) -> Vec<(tokio::task::Id, i64)> {
        let mut started = Vec::new();
        let host_busy = |active: &HashMap<i64, String>, host: &str| {
            active.values().filter(|h| h.as_str() == host).count() >= self.config.per_host
        };
        // Interrupted downloads first (already `downloading`, no claim needed).
        let mut waiting = VecDeque::new();
        while let Some(d) = pending.pop_front() {
            let host = primary_host(&d);
            if active.len() >= self.config.concurrency || host_busy(active, &host) {
                waiting.push_back(d);
                continue;
            }
            started.push(self.start(ctx, cancel, d, host, workers, active));
        }
        *pending = waiting;
        if active.len() >= self.config.concurrency {
            return started;
        }
        let mut candidates = match self.store.queued_deliveries(200).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot list queued deliveries");
                return started;
            }
        };
        if self.config.resolvers.swisstransfer {
            match self
                .store
                .manual_deliveries_of(crate::domain::LinkKind::Swisstransfer, 50)
                .await
            {
                Ok(more) => candidates.extend(more),
                Err(e) => tracing::error!(error = %e, "cannot list SwissTransfer deliveries"),
            }
        }
        if self.config.resolvers.smash {
            // Experimental: tried once; a delivery that went back to manual (with its reason in
            // `error`) is left to a person.
            match self
                .store
                .manual_deliveries_of(crate::domain::LinkKind::Fromsmash, 50)
                .await
            {
                Ok(more) => candidates.extend(more.into_iter().filter(|d| d.error.is_none())),
                Err(e) => tracing::error!(error = %e, "cannot list FromSmash deliveries"),
            }
        }
        let mut skipped_hosts = HashSet::new();
        for d in candidates {
            if active.len() >= self.config.concurrency {
                break;
            }
            if active.contains_key(&d.id) {
                continue; // a cancelled worker still winding down
            }
            if self.config.dry_run {
                match self
                    .store
                    .transition(d.id, &[DeliveryState::Queued], DeliveryState::DryRun, None)
                    .await
                {
                    Ok(Some(_)) => {
                        tracing::info!(id = d.id, "dry run: delivery recorded, not downloaded");
                        self.events.send(Event::DeliveryChanged { id: d.id });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(id = d.id, error = %e, "cannot record a dry run"),
                }
                continue;
            }
            let host = primary_host(&d);
            if skipped_hosts.contains(&host) || host_busy(active, &host) {
                skipped_hosts.insert(host);
                continue;
            }
            let claim = if d.state == DeliveryState::Manual {
                self.store.claim_manual(d.id).await
            } else {
                self.store.claim_queued(d.id).await
            };
            match claim {
                Ok(Some(claimed)) => {
                    self.events.send(Event::DeliveryChanged { id: d.id });
                    started.push(self.start(ctx, cancel, claimed, host, workers, active));
                }
                Ok(None) => {}
                Err(e) => tracing::error!(id = d.id, error = %e, "cannot claim a delivery"),
            }
        }
        started
    }

    fn start(
        &self,
        ctx: &Arc<Worker>,
        cancel: &CancellationToken,
        delivery: Delivery,
        host: String,
        workers: &mut JoinSet<i64>,
        active: &mut HashMap<i64, String>,
    ) -> (tokio::task::Id, i64) {
        let id = delivery.id;
        let token = cancel.child_token();
        self.running().insert(id, token.clone());
        active.insert(id, host);
        let ctx = ctx.clone();
        let task = workers.spawn(async move {
            ctx.download(delivery, token).await;
            id
        });
        (task.id(), id)
    }
}

/// Host of the first URL a delivery is fetched from: what the per-host limit counts.
fn primary_host(d: &Delivery) -> String {
    d.r2_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .or_else(|| Url::parse(&d.source_url).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// What every download task shares.
struct Worker {
    store: Store,
    events: EventBus,
    client: reqwest::Client,
    config: EngineConfig,
    handle: DownloadHandle,
}

impl Worker {
    async fn download(&self, delivery: Delivery, cancel: CancellationToken) {
        let id = delivery.id;
        match self.try_download(&delivery, &cancel).await {
            Ok(()) => {}
            Err(WorkerError::Transfer(TransferError::Cancelled)) => {
                // Cancelled by a user (state already `cancelled`) or by shutdown (stays
                // `downloading` and resumes at the next start): nothing to write.
                tracing::info!(id, "download stopped");
            }
            Err(e)
                if super::resolved::manual_on_error(
                    &self.config.resolvers,
                    &delivery.source_url,
                ) =>
            {
                let message =
                    format!("automatic download (experimental) did not work: {e}; open the link");
                tracing::warn!(id, error = %message, "back to manual");
                match self.store.back_to_manual(id, &message).await {
                    Ok(Some(_)) => self.events.send(Event::DeliveryChanged { id }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(id, error = %e, "cannot record a manual delivery"),
                }
            }
            Err(WorkerError::Resolve(error)) if super::resolved::wait_reason(&error).is_some() => {
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
                    Ok(Some(_)) => self.events.send(Event::DeliveryChanged { id }),
                    Ok(None) => {}
                    Err(e) => tracing::error!(id, error = %e, "cannot record a failed download"),
                }
            }
        }
    }

    /// The link resolver must wait: the host's virus check (queued again, not before a time that
    /// doubles with each wait) or a password (failed until a person gives one).
    async fn wait(&self, delivery: &Delivery, error: &super::resolve::ResolveError) {
        let id = delivery.id;
        let Some(reason) = super::resolved::wait_reason(error) else {
            return;
        };
        let waited = if reason.needs_password() {
            self.handle.forget_password(id);
            tracing::info!(id, reason = %reason, "transfer waits for a password");
            self.store
                .wait_for_password(id, reason, &error.to_string())
                .await
        } else {
            let count = match self.store.delivery(id).await {
                Ok(Some(d)) => d.wait_count,
                _ => delivery.wait_count,
            };
            let delay = super::resolved::recheck_delay(self.config.resolvers.recheck_after, count);
            let at = crate::domain::Timestamp::now().plus(delay);
            let message = format!("{error}; next try at {}", at.text());
            tracing::info!(id, reason = %reason, retry_at = %at.text(), "transfer waits; queued again");
            self.store.wait_and_retry(id, reason, at, &message).await
        };
        match waited {
            Ok(Some(_)) => self.events.send(Event::DeliveryChanged { id }),
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
        // Died between the rename and the store update: the file is there and verified.
        if let Some(done) = self.already_renamed(delivery).await {
            return self.finish(delivery, done, cancel).await;
        }
        if super::resolved::applies(&self.config.resolvers, &delivery.source_url) {
            if delivery.wait_reason.is_some() {
                self.store.end_wait(id).await?;
            }
            let password = self.handle.password(id);
            let mut observer = StoreObserver {
                store: self.store.clone(),
                events: self.events.clone(),
                id,
                last_store: None,
                progress_write: None,
            };
            let finished = super::resolved::fetch_all(
                &self.client,
                &self.config.resolvers,
                &self.config.segments,
                delivery,
                password.as_ref(),
                self.stored_segments(delivery).await?,
                &self.config.dir,
                &mut observer,
                &self.config.retry,
                cancel,
            )
            .await
            .map_err(|e| match e {
                super::resolved::ResolvedError::File {
                    source: TransferError::Cancelled,
                    ..
                } => WorkerError::Transfer(TransferError::Cancelled),
                super::resolved::ResolvedError::Resolve { error } => WorkerError::Resolve(error),
                e => WorkerError::Message(e.to_string()),
            })?;
            self.handle.forget_password(id);
            return self.finish(delivery, finished, cancel).await;
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
        let mut observer = StoreObserver {
            store: self.store.clone(),
            events: self.events.clone(),
            id,
            last_store: None,
            progress_write: None,
        };
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
        let updated = self.store.finish_download(id, &done).await?;
        if updated.is_none() {
            // Cancelled while the last bytes arrived: the file is complete, keep the user's choice.
            tracing::info!(id, path = %done.final_path, "download finished after a cancel");
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
        self.events.send(Event::DeliveryChanged { id });
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
            self.events.send(Event::DeliveryChanged { id });
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
    #[error("{}", super::resolved::shown(.0))]
    Resolve(super::resolve::ResolveError),
}

/// Persists a download's progress (throttled) and announces it on the bus.
struct StoreObserver {
    store: Store,
    events: EventBus,
    id: i64,
    last_store: Option<Instant>,
    /// The progress write under way: the transfer never waits for it (the database may be
    /// away); the next write starts once it ended, with the newest figures. Other writes wait
    /// for it first, so that they stay in order.
    progress_write: Option<tokio::task::JoinHandle<()>>,
}

impl StoreObserver {
    async fn settle_progress(&mut self) {
        if let Some(write) = self.progress_write.take() {
            let _ = write.await;
        }
    }
}

impl Observer for StoreObserver {
    async fn part_chosen(
        &mut self,
        part: &Path,
        name: &SafeFileName,
        validator: Option<&str>,
        total: Option<u64>,
    ) -> Result<(), String> {
        self.settle_progress().await;
        self.store
            .set_download_part(
                self.id,
                Some(&part.display().to_string()),
                Some(name.as_str()),
                validator,
                total.map(|t| t as i64),
            )
            .await
            .map_err(|e| e.to_string())
    }

    async fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), String> {
        self.settle_progress().await;
        self.store
            .record_download_attempt(self.id, role, shown_url, try_number, error)
            .await
            .map_err(|e| e.to_string())
    }

    async fn progress(&mut self, p: Progress) {
        self.events.send(Event::Progress {
            id: self.id,
            bytes: p.bytes,
            total: p.total,
            speed_bps: p.speed_bps,
            eta_s: p.eta_s,
            segments: p.segments,
        });
        let now = Instant::now();
        let busy = self
            .progress_write
            .as_ref()
            .is_some_and(|w| !w.is_finished());
        if !busy
            && self
                .last_store
                .is_none_or(|t| now.duration_since(t) >= STORE_EVERY)
        {
            self.last_store = Some(now);
            let (store, id) = (self.store.clone(), self.id);
            self.progress_write = Some(tokio::spawn(async move {
                let stored = store
                    .set_download_progress(id, p.bytes as i64, p.total.map(|t| t as i64))
                    .await;
                if let Err(e) = stored {
                    tracing::warn!(id, error = %e, "cannot store download progress");
                }
            }));
        }
    }

    async fn segments(&mut self, segments: &[Segment]) -> Result<(), String> {
        self.settle_progress().await;
        let rows: Vec<SegmentRow> = segments
            .iter()
            .map(|s| SegmentRow {
                start_byte: s.start as i64,
                end_byte: s.end as i64,
                done_bytes: s.done as i64,
            })
            .collect();
        self.store
            .set_download_segments(self.id, &rows)
            .await
            .map_err(|e| e.to_string())
    }

    async fn before_rename(
        &mut self,
        final_path: &Path,
        sha256: &str,
        bytes: u64,
    ) -> Result<(), String> {
        self.settle_progress().await;
        self.store
            .set_download_final(
                self.id,
                &final_path.display().to_string(),
                sha256,
                bytes as i64,
            )
            .await
            .map_err(|e| e.to_string())
    }
}
