//! The webhook inbox (SQLite): where a verified delivery becomes durable before its 200.
//!
//! A delivery is acknowledged only once it is durable. On SQLite that has always meant written
//! to the operating system (WAL with `synchronous = NORMAL`: it survives rushes being killed,
//! not a power cut). Getting it into SQLite itself can take far longer than a webhook should
//! wait: the WAL is bounded, and emptying it (the `TRUNCATE` checkpoint of `store/writes.rs`)
//! holds every writer for a copy and two `fsync`s, which wait behind whatever another process
//! is writing to the same disk (72-183 ms each, measured with a `dd conv=fsync` loop beside the
//! bench; one every few seconds at 1,000 events/s).
//!
//! So on SQLite the event writer first appends each batch of verified deliveries to a small
//! append-only file (one `write`: the durability of a WAL commit, none of its waits), and the
//! handler answers as soon as the database has the batch, or [`GRACE`] after the append,
//! whichever comes first (then without an event id). A second task commits the batches to
//! SQLite in order (one transaction per group, tried again until it succeeds) and removes a
//! file once everything in it is committed. At start, whatever a killed rushes left in the
//! inbox is stored (a delivery already stored is recognised by its hash), then removed.
//!
//! Bounds: a file is closed past [`ROTATE_BYTES`] or after [`ROTATE_IDLE`] without
//! deliveries, and removed once stored; at most [`MAX_BACKLOG`] deliveries wait for the
//! database, beyond that a delivery is answered 503 (Frame.io sends it again). PostgreSQL does
//! not use the inbox: its commit (synchronous on the server) is the acknowledgement.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::webhook::{Accepted, Pending, new_event};
use crate::domain::Timestamp;
use crate::store::{NewFrameioEvent, Store};

/// How long a handler waits for the database once its delivery is in the inbox.
pub const GRACE: Duration = Duration::from_millis(2);
/// A file is closed (and removed once stored) past this size ...
const ROTATE_BYTES: u64 = 8 * 1024 * 1024;
/// ... or when no delivery came for this long.
const ROTATE_IDLE: Duration = Duration::from_secs(1);
/// Most deliveries in the inbox that the database has not taken yet.
pub const MAX_BACKLOG: usize = 20_000;
/// Most deliveries committed in one transaction.
const MAX_GROUP: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("webhook inbox {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InboxError + '_ {
    move |source| InboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The inbox folder of the SQLite file `db`.
pub fn dir_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-inbox");
    PathBuf::from(name)
}

/// One delivery, one line.
#[derive(Serialize)]
struct LineOut<'a> {
    received_at: String,
    timestamp: i64,
    body: &'a str,
}

#[derive(Deserialize)]
struct LineIn {
    received_at: String,
    timestamp: i64,
    body: String,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.jsonl")
}

/// The inbox files in `dir`, oldest first.
fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, InboxError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What a previous run left in the inbox.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub events: Vec<NewFrameioEvent>,
    /// Lines that could not be read back (a line cut by a power cut, a foreign file).
    pub unreadable: usize,
    pub files: Vec<PathBuf>,
    /// The number after the newest file's (1 for an empty inbox).
    pub next_seq: u64,
}

/// Reads every delivery left in `dir`, oldest first.
pub fn leftovers(dir: &Path) -> Result<Leftovers, InboxError> {
    let mut left = Leftovers {
        next_seq: 1,
        ..Leftovers::default()
    };
    if !dir.exists() {
        return Ok(left);
    }
    for (seq, path) in files(dir)? {
        left.next_seq = seq + 1;
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event = serde_json::from_slice::<LineIn>(line).ok().and_then(|l| {
                let received_at = Timestamp::parse(&l.received_at).ok()?;
                let mut e = new_event(l.timestamp, l.body.as_bytes()).ok()?;
                e.received_at = received_at;
                Some(e)
            });
            match event {
                Some(e) => left.events.push(e),
                None => left.unreadable += 1,
            }
        }
        left.files.push(path);
    }
    Ok(left)
}

/// The file deliveries are appended to.
struct Appender {
    dir: PathBuf,
    seq: u64,
    path: PathBuf,
    file: std::fs::File,
    bytes: u64,
}

impl Appender {
    fn create(dir: &Path, seq: u64) -> Result<Self, InboxError> {
        let path = dir.join(file_name(seq));
        // Readable by rushes' user only, like the database it stands in for.
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            seq,
            path,
            file,
            bytes: 0,
        })
    }

    /// Appends one line per event with a single `write`. On failure the file is cut back to
    /// what it held, so that a half-written line cannot swallow the next one.
    fn append(&mut self, events: &[&NewFrameioEvent]) -> Result<(), InboxError> {
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.body.len() + 96).sum());
        for e in events {
            let line = LineOut {
                received_at: e.received_at.text(),
                timestamp: e.request_timestamp,
                body: &e.body,
            };
            serde_json::to_writer(&mut buf, &line).map_err(|e| InboxError::Io {
                path: self.path.display().to_string(),
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        match self.file.write_all(&buf) {
            Ok(()) => {
                self.bytes += buf.len() as u64;
                Ok(())
            }
            Err(source) => {
                let _ = self.file.set_len(self.bytes);
                Err(InboxError::Io {
                    path: self.path.display().to_string(),
                    source,
                })
            }
        }
    }

    /// Starts the next file; returns the path of the one closed.
    fn rotate(&mut self) -> Result<PathBuf, InboxError> {
        let next = Self::create(&self.dir, self.seq + 1)?;
        Ok(std::mem::replace(self, next).path)
    }
}

/// What the appender hands to the committer, in order.
enum ToStore {
    Group(Vec<Pending>),
    /// Every delivery of this file is in the groups before: remove it once they are stored.
    Closed(PathBuf),
}

/// What the event writer's queue carries.
// Nearly every item is a delivery: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Queued {
    Delivery(Pending),
    /// Every [`ROTATE_IDLE`]: closes the file if no delivery came since the last tick.
    Tick,
    /// The server has drained: append what is queued and stop.
    Stop,
}

/// Runs the inbox until `stop`, then stores what is queued. The file is written by a thread of
/// its own (`write` is a blocking call: on a tokio worker, one that the kernel held for a moment
/// would hold every task queued behind it too). An error means the inbox cannot be used (its
/// folder cannot be made or read): the queue is handed back untouched.
pub(super) async fn run(
    store: &Store,
    dir: &Path,
    queue: mpsc::Receiver<Queued>,
    control: &mpsc::Sender<Queued>,
    written: &Arc<Notify>,
    backlog: &Arc<AtomicUsize>,
    stop: &CancellationToken,
) -> Result<(), (InboxError, mpsc::Receiver<Queued>)> {
    let opened = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
        .and_then(|()| {
            let left = leftovers(dir)?;
            let appender = Appender::create(dir, left.next_seq)?;
            Ok((left, appender))
        });
    let (left, appender) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err((e, queue)),
    };
    store_leftovers(store, left, written).await;

    let backlog = Arc::clone(backlog);
    let (to_store, from_inbox) = mpsc::unbounded_channel();
    let committer = tokio::spawn(commit_loop(
        store.clone(),
        from_inbox,
        written.clone(),
        backlog.clone(),
        stop.clone(),
    ));
    let (done, appended) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("webhook-inbox".into())
        .spawn(move || {
            let last = append_loop(appender, queue, &to_store, &backlog);
            let _ = done.send(last);
        });
    if let Err(e) = thread {
        // The queue went with the closure: deliveries get 503 (the writer is stopped).
        tracing::error!(error = %e, "Frame.io: cannot start the webhook inbox's thread");
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(ROTATE_IDLE) => {
                if control.send(Queued::Tick).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = control.send(Queued::Stop).await;
    let last = appended.await;
    let _ = committer.await;
    // The file opened last is empty.
    if let Ok(path) = last {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The inbox thread: appends what comes, in groups, until told to stop; then appends what is
/// still queued. Returns the path of the (empty) file it had opened last.
fn append_loop(
    mut appender: Appender,
    mut queue: mpsc::Receiver<Queued>,
    to_store: &mpsc::UnboundedSender<ToStore>,
    backlog: &AtomicUsize,
) -> PathBuf {
    let mut since_tick = false;
    let mut stopping = false;
    while !stopping {
        let first = match queue.blocking_recv() {
            Some(Queued::Delivery(p)) => p,
            Some(Queued::Tick) => {
                if !since_tick && appender.bytes > 0 {
                    close(&mut appender, to_store);
                }
                since_tick = false;
                continue;
            }
            Some(Queued::Stop) | None => break,
        };
        since_tick = true;
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(Queued::Delivery(p)) => batch.push(p),
                Ok(Queued::Tick) => {}
                Ok(Queued::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        take(&mut appender, batch, to_store, backlog);
    }
    // Answer whatever is still queued before stopping.
    queue.close();
    let mut rest = Vec::new();
    while let Ok(item) = queue.try_recv() {
        if let Queued::Delivery(p) = item {
            rest.push(p);
        }
    }
    if !rest.is_empty() {
        take(&mut appender, rest, to_store, backlog);
    }
    close(&mut appender, to_store);
    appender.path
}

/// Appends a batch, tells its handlers it is durable and hands it to the committer.
fn take(
    appender: &mut Appender,
    batch: Vec<Pending>,
    to_store: &mpsc::UnboundedSender<ToStore>,
    backlog: &AtomicUsize,
) {
    let waiting = backlog.load(Ordering::Acquire);
    if waiting + batch.len() > MAX_BACKLOG {
        let message = format!(
            "the database is {waiting} deliveries behind (at most {MAX_BACKLOG} wait in the inbox)"
        );
        tracing::warn!(
            waiting,
            "Frame.io: webhook inbox full, deliveries answered 503"
        );
        for p in batch {
            let _ = p.reply.send(Err(message.clone()));
        }
        return;
    }
    let events: Vec<&NewFrameioEvent> = batch.iter().map(|p| &p.event).collect();
    if let Err(e) = appender.append(&events) {
        tracing::error!(error = %e, count = batch.len(), "Frame.io: cannot write webhook events to the inbox");
        let message = e.to_string();
        for p in batch {
            let _ = p.reply.send(Err(message.clone()));
        }
        return;
    }
    let mut group = Vec::with_capacity(batch.len());
    for mut p in batch {
        if let Some(durable) = p.durable.take() {
            let _ = durable.send(());
        }
        group.push(p);
    }
    backlog.fetch_add(group.len(), Ordering::AcqRel);
    let _ = to_store.send(ToStore::Group(group));
    if appender.bytes > ROTATE_BYTES {
        close(appender, to_store);
    }
}

fn close(appender: &mut Appender, to_store: &mpsc::UnboundedSender<ToStore>) {
    match appender.rotate() {
        Ok(closed) => {
            let _ = to_store.send(ToStore::Closed(closed));
        }
        // Appending to the same file goes on; it is closed at the next rotation that works.
        Err(e) => tracing::warn!(error = %e, "Frame.io: cannot start a new webhook inbox file"),
    }
}

/// Stores what a previous run left (in groups), then removes its files. Kept if the database
/// refuses: tried again at the next start.
async fn store_leftovers(store: &Store, left: Leftovers, written: &Notify) {
    if left.unreadable > 0 {
        tracing::warn!(
            lines = left.unreadable,
            "Frame.io: unreadable lines in the webhook inbox skipped (cut by a crash?)"
        );
    }
    let mut new = 0;
    for group in left.events.chunks(MAX_GROUP) {
        let group: Vec<&NewFrameioEvent> = group.iter().collect();
        match store.insert_frameio_events(&group).await {
            Ok(ids) => new += ids.iter().filter(|id| id.is_some()).count(),
            Err(e) => {
                tracing::error!(error = %e, "Frame.io: cannot store the deliveries left in the webhook inbox (kept for the next start)");
                return;
            }
        }
    }
    if !left.events.is_empty() {
        tracing::info!(
            deliveries = left.events.len(),
            new,
            "Frame.io: deliveries acknowledged before a stop are stored from the webhook inbox"
        );
        written.notify_one();
    }
    for path in left.files {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, path = %path.display(), "Frame.io: cannot remove a webhook inbox file");
        }
    }
}

/// Commits the groups in order, each tried again until the database takes it (or rushes stops:
/// then the rest stays in the inbox for the next start).
async fn commit_loop(
    store: Store,
    mut from_inbox: mpsc::UnboundedReceiver<ToStore>,
    written: Arc<Notify>,
    backlog: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut held: Option<ToStore> = None;
    loop {
        let item = match held.take() {
            Some(item) => item,
            None => match from_inbox.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        let mut group = match item {
            ToStore::Closed(path) => {
                // Unlinking a file whose pages are being written back can wait: not on a worker.
                let removed = tokio::task::spawn_blocking(move || {
                    std::fs::remove_file(&path).map_err(|e| (e, path))
                })
                .await;
                if let Ok(Err((e, path))) = removed {
                    tracing::warn!(error = %e, path = %path.display(), "Frame.io: cannot remove a webhook inbox file");
                }
                continue;
            }
            ToStore::Group(group) => group,
        };
        while group.len() < MAX_GROUP {
            match from_inbox.try_recv() {
                Ok(ToStore::Group(more)) => group.extend(more),
                Ok(closed) => {
                    held = Some(closed);
                    break;
                }
                Err(_) => break,
            }
        }
        let events: Vec<&NewFrameioEvent> = group.iter().map(|p| &p.event).collect();
        let stored = (|| store.insert_frameio_events(&events))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times(),
            )
            .sleep(tokio::time::sleep)
            .when(|_| !stop.is_cancelled())
            .notify(|e, wait| {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, count = events.len(), "Frame.io: the database does not take webhook events yet (they are safe in the inbox)");
            })
            .await;
        match stored {
            Ok(ids) => {
                backlog.fetch_sub(group.len(), Ordering::AcqRel);
                let any_new = ids.iter().any(Option::is_some);
                for (p, id) in group.into_iter().zip(ids) {
                    let _ = p.reply.send(Ok(id));
                }
                if any_new {
                    written.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = events.len(), "Frame.io: stopping with webhook events not yet in the database; they stay in the inbox and are stored at the next start");
                return;
            }
        }
    }
}

/// A handler's wait once its delivery is queued: `Some` when the writer said it is durable in
/// the inbox (then the database's answer is taken if it comes within [`GRACE`]); `None` when the
/// database's answer is the acknowledgement (no inbox).
pub(super) async fn durable_answer(
    durable: oneshot::Receiver<()>,
    answer: &mut oneshot::Receiver<Result<Option<i64>, String>>,
) -> Option<Accepted> {
    durable.await.ok()?;
    Some(match tokio::time::timeout(GRACE, answer).await {
        Ok(Ok(Ok(id))) => Accepted::stored(id),
        // Not in the database yet (or it refused for now): it is in the inbox, stored later.
        _ => Accepted::InInbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> NewFrameioEvent {
        let body = format!(
            r#"{{"type":"comment.created","resource":{{"id":"c{n}","type":"comment"}},"account":{{"id":"a"}}}}"#
        );
        new_event(1_767_225_600 + n as i64, body.as_bytes()).expect("event")
    }

    #[test]
    fn appended_deliveries_read_back_in_order_across_files_and_a_cut_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Appender::create(dir.path(), 1).expect("create");
        let (e1, e2, e3) = (event(1), event(2), event(3));
        a.append(&[&e1, &e2]).expect("append");
        let closed = a.rotate().expect("rotate");
        assert!(closed.ends_with(file_name(1)));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&closed)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        a.append(&[&e3]).expect("append");
        // A power cut can leave a line half written at the end of the newest file.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&a.path)
            .expect("open");
        f.write_all(br#"{"received_at":"2026-"#).expect("cut line");
        let left = leftovers(dir.path()).expect("leftovers");
        assert_eq!(left.unreadable, 1);
        assert_eq!(left.files.len(), 2);
        assert_eq!(left.next_seq, 3);
        let hashes: Vec<_> = left.events.iter().map(|e| &e.delivery_hash).collect();
        assert_eq!(
            hashes,
            vec![&e1.delivery_hash, &e2.delivery_hash, &e3.delivery_hash]
        );
        assert_eq!(left.events[0].received_at.text(), e1.received_at.text());
        assert_eq!(left.events[2].body, e3.body);
    }

    type Answer = oneshot::Receiver<Result<Option<i64>, String>>;

    fn pending(n: u64) -> (Pending, oneshot::Receiver<()>, Answer) {
        let (durable, in_inbox) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        let p = Pending {
            event: event(n),
            durable: Some(durable),
            reply,
        };
        (p, in_inbox, answer)
    }

    #[test]
    fn a_full_backlog_refuses_without_writing_and_a_taken_group_is_durable_then_handed_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Appender::create(dir.path(), 1).expect("create");
        let (to_store, mut from_inbox) = mpsc::unbounded_channel();

        // The database is MAX_BACKLOG deliveries behind: refused (503), nothing written.
        let backlog = AtomicUsize::new(MAX_BACKLOG);
        let (p, mut in_inbox, mut answer) = pending(1);
        take(&mut a, vec![p], &to_store, &backlog);
        assert!(matches!(answer.try_recv(), Ok(Err(m)) if m.contains("behind")));
        assert!(in_inbox.try_recv().is_err(), "not durable");
        assert_eq!(a.bytes, 0);
        assert!(from_inbox.try_recv().is_err());

        // Room again: appended, told durable, handed to the committer, counted.
        let backlog = AtomicUsize::new(0);
        let (p, mut in_inbox, mut answer) = pending(2);
        take(&mut a, vec![p], &to_store, &backlog);
        assert_eq!(in_inbox.try_recv(), Ok(()));
        assert!(
            answer.try_recv().is_err(),
            "answered by the committer, later"
        );
        assert!(a.bytes > 0);
        assert_eq!(backlog.load(Ordering::Acquire), 1);
        assert!(matches!(from_inbox.try_recv(), Ok(ToStore::Group(g)) if g.len() == 1));
        let left = leftovers(dir.path()).expect("leftovers");
        assert_eq!(left.events.len(), 1);
        assert_eq!(left.events[0].resource_id, "c2");
    }

    #[test]
    fn inbox_folder_is_beside_the_database() {
        assert_eq!(
            dir_for(Path::new("/data/rushes.db")),
            PathBuf::from("/data/rushes.db-inbox")
        );
    }
}
