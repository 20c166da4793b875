//! The proxy's JSON-lines audit log: one line per served request (naming the token, never
//! showing it), refused requests summed up (the first of a quiet spell in full, then one
//! summary line at most every [`SUMMARY_EVERY`]: 2,000 wrong guesses are two lines, not 2,000),
//! and the file rotated by size (`FEED_PROXY_AUDIT_MAX_BYTES`, [`KEPT_FILES`] old files kept).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// At most one summary line of refused requests this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Rotated files kept beside the current one (`.1` is the newest).
pub const KEPT_FILES: u32 = 3;

/// Clients named in a summary line; the others are counted together.
const NAMED_CLIENTS: usize = 20;

/// One line of the audit log. Never holds a token.
#[derive(serde::Serialize)]
pub(super) struct AuditLine<'a> {
    pub time: String,
    pub client: String,
    pub token: Option<&'a str>,
    pub method: &'a str,
    pub status: u16,
    pub bytes: usize,
    /// Milliseconds upstream took, when this request asked it (else served from the cache).
    pub upstream_ms: Option<u128>,
}

#[derive(Default)]
struct Refused {
    /// When the last line about refused requests was written.
    last_line: Option<Instant>,
    count: u64,
    by_status: BTreeMap<u16, u64>,
    by_client: BTreeMap<String, u64>,
    other_clients: u64,
}

/// Refused requests counted for the next summary line (shared by [`Audit`] and the writer,
/// which writes the last summary after every sender is gone).
#[derive(Clone, Default)]
pub(super) struct RefusedCount(Arc<Mutex<Refused>>);

/// The audit log's sending side: lines go to the writer task.
pub(super) struct Audit {
    tx: mpsc::Sender<String>,
    refused: RefusedCount,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Audit {
    pub fn new(tx: mpsc::Sender<String>, refused: RefusedCount) -> Self {
        Self { tx, refused }
    }

    /// Records a request. A refused one (401, 429) is written in full only when no line about
    /// refused requests was written for [`SUMMARY_EVERY`]; else it is counted for the summary.
    pub async fn record(&self, line: &AuditLine<'_>) {
        if matches!(line.status, 401 | 429) {
            let mut refused = self.refused.0.lock().unwrap_or_else(|e| e.into_inner());
            let quiet = refused
                .last_line
                .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
            if !(quiet && refused.count == 0) {
                refused.count += 1;
                *refused.by_status.entry(line.status).or_default() += 1;
                if refused.by_client.contains_key(&line.client)
                    || refused.by_client.len() < NAMED_CLIENTS
                {
                    *refused.by_client.entry(line.client.clone()).or_default() += 1;
                } else {
                    refused.other_clients += 1;
                }
                return;
            }
            refused.last_line = Some(Instant::now());
        }
        if let Ok(mut text) = serde_json::to_string(line) {
            text.push('\n');
            let _ = self.tx.send(text).await;
        }
    }
}

impl RefusedCount {
    /// The summary line of refused requests counted, when one is due (or `force`d at exit).
    pub fn summary(&self, force: bool) -> Option<String> {
        let mut refused = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let due = refused
            .last_line
            .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
        if refused.count == 0 || !(due || force) {
            return None;
        }
        let taken = std::mem::take(&mut *refused);
        refused.last_line = Some(Instant::now());
        let mut text = serde_json::json!({
            "time": now(),
            "summary": "refused",
            "count": taken.count,
            "by_status": taken.by_status,
            "by_client": taken.by_client,
            "other_clients": taken.other_clients,
        })
        .to_string();
        text.push('\n');
        Some(text)
    }
}

/// The audit file, reopened after each rotation.
struct AuditFile {
    path: PathBuf,
    max_bytes: u64,
    size: u64,
    out: tokio::io::BufWriter<tokio::fs::File>,
}

impl AuditFile {
    async fn write(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate().await?;
        }
        self.out.write_all(line.as_bytes()).await?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `audit.jsonl` -> `audit.jsonl.1` -> `.2` ... the oldest beyond [`KEPT_FILES`] dropped.
    async fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush().await?;
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..KEPT_FILES).rev() {
            let _ = tokio::fs::rename(numbered(n), numbered(n + 1)).await;
        }
        tokio::fs::rename(&self.path, numbered(1)).await?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        self.out = tokio::io::BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

/// Writes audit lines until every sender is gone, summaries of refused requests as they fall
/// due, the last one at the end.
pub(super) async fn write(
    mut rx: mpsc::Receiver<String>,
    file: tokio::fs::File,
    path: PathBuf,
    max_bytes: u64,
    refused: RefusedCount,
) {
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut out = AuditFile {
        path,
        max_bytes,
        size,
        out: tokio::io::BufWriter::new(file),
    };
    let mut tick = tokio::time::interval(SUMMARY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let mut lines = Vec::new();
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => lines.push(line),
                None => break,
            },
            _ = tick.tick() => {}
        }
        while let Ok(more) = rx.try_recv() {
            lines.push(more);
        }
        if let Some(summary) = refused.summary(false) {
            lines.push(summary);
        }
        write_lines(&mut out, &lines).await;
    }
    let last: Vec<String> = refused.summary(true).into_iter().collect();
    write_lines(&mut out, &last).await;
}

async fn write_lines(out: &mut AuditFile, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut ok = true;
    for line in lines {
        ok &= out.write(line).await.is_ok();
    }
    ok &= out.out.flush().await.is_ok();
    if !ok {
        tracing::error!("feed-proxy: cannot write the audit log");
    }
}
