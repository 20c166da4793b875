//! Reading a feed body while it arrives. A splitter looks at each piece of the body as the
//! network hands it over and cuts the top-level array into batches of whole items at the commas
//! between items (it follows strings, escapes and nesting, nothing more); worker threads read
//! each batch with serde (as [`super::scan`] reads a whole body), then validate, classify and
//! normalise its records, while the rest of the body is still on its way. The body is never held
//! whole: batches are copied into a few recycled buffers, so the memory stays a small multiple of
//! a batch whatever the feed's size.
//!
//! Same results as [`scan_body`] on the whole body (a property test compares them): the same
//! records and invalid items with their index in the array, and for a body that is not an array
//! (an error object, `null`…) the very same answer, since such a body is collected and read by
//! [`scan_body`]. A syntax error is reported by serde with its line and column in the whole body.
//! A batch that is not UTF-8 is decoded lossily on its own: its items holding a replacement
//! character are invalid, as with [`scan_body`] (which decodes the whole body lossily then, so an
//! item elsewhere that holds a genuine U+FFFD is invalid there and valid here).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::error::{FeedError, MAX_FEED_BYTES};
use super::record::FeedRecord;
use super::scan::{self, Done, Scan, read_with, scan_body};

/// Bytes of items per batch handed to a worker.
const BATCH: usize = 256 * 1024;
/// Batches waiting for a worker (bounds the memory of the read-ahead: 2 MiB).
const QUEUE: usize = 8;

/// The caller's choice of what to keep of each valid record.
type Keep<T> = dyn Fn(FeedRecord<'_>) -> Option<T> + Send + Sync;

/// A batch: `[`, the text of whole items, `]`; where it starts in the feed.
struct Batch {
    text: Vec<u8>,
    /// Index in the array of its first item.
    index: usize,
    /// Line (1-based) and column (0-based) in the body of the first byte after `[`.
    line: usize,
    column: usize,
}

/// What a worker made of a batch.
type Outcome<T> = Result<Done<T>, (usize, FeedError)>;

/// Where the splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Only white space so far.
    Before,
    /// Inside the top-level array.
    Array,
    /// After its closing `]`.
    After,
    /// The body is not an array: collected whole and read by [`scan_body`].
    Whole,
}

/// Reads a feed body pushed piece by piece ([`Self::push`]) and gives the scan at the end
/// ([`Self::finish`]).
pub struct StreamScan<T: Send + 'static> {
    tz: chrono_tz::Tz,
    keep: Arc<Keep<T>>,
    phase: Phase,
    in_string: bool,
    escaped: bool,
    /// Nesting inside the top-level array (0: between items).
    depth: usize,
    /// The current item has something other than white space.
    item_open: bool,
    /// A comma came before the current item.
    after_comma: bool,
    /// Items before the current one.
    items: usize,
    /// Bytes pushed before the current piece.
    offset: usize,
    /// Current line (1-based) and the offset where it starts.
    line: usize,
    line_start: usize,
    /// The batch being filled.
    batch: Batch,
    /// Leading white space, or the whole body in [`Phase::Whole`].
    whole: Vec<u8>,
    error: Option<FeedError>,
    pool: Option<Pool<T>>,
    /// Outcomes of batches read on the calling thread (small bodies).
    local: Vec<Outcome<T>>,
    /// Bytes of items per batch.
    batch_size: usize,
    /// A batch buffer to fill again.
    spare: Option<Vec<u8>>,
    /// SHA-256 of the body so far, when asked for ([`Self::with_sha256`]).
    sha256: Option<sha2::Sha256>,
}

/// The worker threads.
struct Pool<T> {
    tx: SyncSender<Batch>,
    spare: Receiver<Vec<u8>>,
    handles: Vec<JoinHandle<Vec<Outcome<T>>>>,
}

impl<T: Send + 'static> StreamScan<T> {
    /// `keep` is called on every valid record (from worker threads); what it returns is kept
    /// in feed order.
    pub fn new<F>(tz: chrono_tz::Tz, keep: F) -> Self
    where
        F: Fn(FeedRecord<'_>) -> Option<T> + Send + Sync + 'static,
    {
        Self {
            tz,
            keep: Arc::new(keep),
            phase: Phase::Before,
            in_string: false,
            escaped: false,
            depth: 0,
            item_open: false,
            after_comma: false,
            items: 0,
            offset: 0,
            line: 1,
            line_start: 0,
            batch: Batch {
                text: Vec::new(),
                index: 0,
                line: 1,
                column: 0,
            },
            whole: Vec::new(),
            error: None,
            pool: None,
            local: Vec::new(),
            batch_size: BATCH,
            spare: None,
            sha256: None,
        }
    }

    /// Also computes the SHA-256 of the body ([`Scan::sha256`]), piece by piece as it arrives.
    pub fn with_sha256(mut self) -> Self {
        self.sha256 = Some(sha2::Digest::new());
        self
    }

    /// Batches of about `bytes` (tests cut small bodies into many batches).
    #[cfg(test)]
    fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// The next piece of the body. Never waits: when the workers are behind, the batch it
    /// completes is read on the calling thread.
    pub fn push(&mut self, piece: &[u8]) {
        if let Some(sha) = &mut self.sha256 {
            sha2::Digest::update(sha, piece);
        }
        if self.error.is_none() {
            self.split(piece);
        }
        self.offset += piece.len();
    }

    fn split(&mut self, piece: &[u8]) {
        let Some(i) = self.open(piece) else {
            return;
        };
        match self.phase {
            Phase::Whole => self.keep_whole(piece),
            Phase::After => self.after(piece, i),
            Phase::Before | Phase::Array => self.array(piece, i),
        }
    }

    /// Before the body's first character: white space, then `[` (an array, split into
    /// batches) or anything else (a body read whole at the end). `None` when `piece` held
    /// white space only; otherwise where the array's text starts in `piece`.
    fn open(&mut self, piece: &[u8]) -> Option<usize> {
        if self.phase != Phase::Before {
            return Some(0);
        }
        let mut i = 0;
        while let Some(&c) = piece.get(i).filter(|c| is_space(**c)) {
            if c == b'\n' {
                self.line += 1;
                self.line_start = self.offset + i + 1;
            }
            i += 1;
        }
        match piece.get(i) {
            None => {
                self.whole.extend_from_slice(piece);
                return None;
            }
            Some(b'[') => {
                self.phase = Phase::Array;
                self.whole = Vec::new();
                i += 1;
                self.start_batch(self.offset + i);
            }
            Some(_) => self.phase = Phase::Whole,
        }
        Some(i)
    }

    /// A body that is not an array is kept whole (bounded) for the whole-body reader.
    fn keep_whole(&mut self, piece: &[u8]) {
        if self.whole.len() + piece.len() > MAX_FEED_BYTES {
            self.error = Some(FeedError::TooLarge {
                limit: MAX_FEED_BYTES,
            });
        } else {
            self.whole.extend_from_slice(piece);
        }
    }

    /// Inside the array from `i`: items are counted and cut into batches at top-level commas.
    fn array(&mut self, piece: &[u8], mut i: usize) {
        // Start of the bytes of `piece` not yet copied into the batch.
        let mut copied = i;
        while i < piece.len() {
            if self.in_string {
                i = self.string(piece, i);
                continue;
            }
            match piece[i] {
                b'"' => {
                    self.in_string = true;
                    self.item_open = true;
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    self.item_open = true;
                }
                b']' if self.depth == 0 => {
                    self.close(piece, copied, i);
                    return;
                }
                b'}' | b']' => {
                    // A `}` between items is serde's to report.
                    self.depth = self.depth.saturating_sub(1);
                    self.item_open = true;
                }
                b',' if self.depth == 0 => match self.comma(piece, copied, i) {
                    Some(next) => copied = next,
                    None => return,
                },
                b'\n' => {
                    self.line += 1;
                    self.line_start = self.offset + i + 1;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.item_open = true,
            }
            i += 1;
        }
        self.batch.text.extend_from_slice(&piece[copied..]);
        if self.batch.text.len() > MAX_FEED_BYTES {
            // One item larger than any feed may be (the caller bounds the body as well).
            self.error = Some(FeedError::TooLarge {
                limit: MAX_FEED_BYTES,
            });
        }
    }

    /// Inside a string at `i`: returns where scanning goes on (past its end when it ends in
    /// `piece`).
    fn string(&mut self, piece: &[u8], i: usize) -> usize {
        if self.escaped {
            self.escaped = false;
            return i + 1;
        }
        let i = super::items::string_stop(piece, i, false);
        match piece.get(i) {
            None => i,
            Some(b'"') => {
                self.in_string = false;
                i + 1
            }
            Some(_) => {
                self.escaped = true;
                i + 1
            }
        }
    }

    /// The array's closing `]` at `i`: the last batch goes, then only white space may follow.
    fn close(&mut self, piece: &[u8], copied: usize, i: usize) {
        self.batch.text.extend_from_slice(&piece[copied..i]);
        if !self.item_open && self.after_comma {
            self.fail_at(self.offset + i, "trailing comma");
            return;
        }
        if self.item_open {
            self.items += 1;
        }
        self.batch.text.push(b']');
        self.send(true);
        self.phase = Phase::After;
        self.after(piece, i + 1);
    }

    /// A top-level comma at `i`: an item ends; a full batch goes to the workers. Returns the
    /// new start of the bytes not yet copied, `None` on a syntax error.
    fn comma(&mut self, piece: &[u8], copied: usize, i: usize) -> Option<usize> {
        if !self.item_open {
            self.batch.text.extend_from_slice(&piece[copied..i]);
            self.fail_at(self.offset + i, "expected value");
            return None;
        }
        self.items += 1;
        self.item_open = false;
        self.after_comma = true;
        if self.batch.text.len() + (i - copied) < self.batch_size {
            return Some(copied);
        }
        self.batch.text.extend_from_slice(&piece[copied..i]);
        self.batch.text.push(b']');
        self.send(false);
        let next = i + 1;
        self.start_batch(self.offset + next);
        Some(next)
    }

    /// After the array: only white space may follow.
    fn after(&mut self, piece: &[u8], from: usize) {
        for (k, &c) in piece.iter().enumerate().skip(from) {
            if c == b'\n' {
                self.line += 1;
                self.line_start = self.offset + k + 1;
            } else if !is_space(c) {
                let (line, column) = (self.line, self.offset + k - self.line_start + 1);
                self.error = Some(FeedError::Json(format!(
                    "trailing characters at line {line} column {column}"
                )));
                return;
            }
        }
    }

    /// A new batch whose first item starts at `at` (an offset in the body).
    fn start_batch(&mut self, at: usize) {
        let mut text = self
            .spare
            .take()
            .or_else(|| {
                self.pool
                    .as_ref()
                    .and_then(|pool| pool.spare.try_recv().ok())
            })
            .unwrap_or_else(|| Vec::with_capacity(self.batch_size + self.batch_size / 4));
        text.clear();
        text.push(b'[');
        self.batch = Batch {
            text,
            index: self.items,
            line: self.line,
            column: at - self.line_start,
        };
    }

    /// Hands the (complete) batch to a worker; the workers start with the first batch that is
    /// not the `last` one (a small body is read on the calling thread).
    fn send(&mut self, last: bool) {
        let batch = std::mem::replace(
            &mut self.batch,
            Batch {
                text: Vec::new(),
                index: 0,
                line: 1,
                column: 0,
            },
        );
        if last && self.pool.is_none() {
            let outcome = read_batch(&batch, self.tz, &*self.keep);
            self.local.push(outcome);
            return;
        }
        let pool = self
            .pool
            .get_or_insert_with(|| Pool::start(self.tz, self.keep.clone()));
        match pool.tx.try_send(batch) {
            Ok(()) => {}
            // The workers are behind: this thread reads the batch itself rather than wait.
            Err(TrySendError::Full(batch)) => {
                let outcome = read_batch(&batch, self.tz, &*self.keep);
                self.local.push(outcome);
                self.spare = Some(batch.text);
            }
            // The workers are gone (a panic): finish() reports it.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A syntax error the splitter found at `at`: serde's own error when the text of the batch
    /// before it holds an earlier one, else `what` at that position.
    fn fail_at(&mut self, at: usize, what: &str) {
        if let Some(e) = syntax_error(&self.batch.text)
            && !e.is_eof()
        {
            self.error = Some(batch_error(&self.batch, &e));
            return;
        }
        let column = at - self.line_start + 1;
        self.error = Some(FeedError::Json(format!(
            "{what} at line {} column {column}",
            self.line
        )));
    }

    /// The scan of the whole body, once every piece was pushed.
    pub fn finish(mut self) -> Result<Scan<T>, FeedError> {
        let body_end = std::time::Instant::now();
        let sha256 = self
            .sha256
            .take()
            .map(|sha| sha2::Digest::finalize(sha).into());
        if self.error.is_none() {
            match self.phase {
                Phase::Before | Phase::Whole => {
                    let keep = self.keep.clone();
                    let scan = scan_body(&self.whole, self.tz, |record| keep(record))?;
                    return Ok(Scan {
                        body_end: Some(body_end),
                        sha256,
                        ..scan
                    });
                }
                Phase::Array => {
                    // The body ended inside the array: serde says where and what it expected
                    // (after a comma, a value rather than the rest of a list).
                    let after_comma =
                        self.after_comma && self.batch.text[1..].iter().all(|c| is_space(*c));
                    let e = match syntax_error(&self.batch.text) {
                        Some(e) if after_comma && e.is_eof() => FeedError::Json(
                            position(&self.batch, &e).replacen("a list", "a value", 1),
                        ),
                        Some(e) => batch_error(&self.batch, &e),
                        None => FeedError::Json("EOF while parsing a list".into()),
                    };
                    self.error = Some(e);
                }
                Phase::After => {}
            }
        }
        let mut outcomes = std::mem::take(&mut self.local);
        if let Some(pool) = self.pool.take() {
            drop(pool.tx);
            for handle in pool.handles {
                match handle.join() {
                    Ok(done) => outcomes.extend(done),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
        // The first error in the body wins: a batch's comes before the splitter's position.
        let mut results = Vec::with_capacity(outcomes.len());
        let mut first_error: Option<(usize, FeedError)> = None;
        for outcome in outcomes {
            match outcome {
                Ok(done) => results.push(done),
                Err((index, e)) => {
                    if first_error.as_ref().is_none_or(|(i, _)| index < *i) {
                        first_error = Some((index, e));
                    }
                }
            }
        }
        if let Some((_, e)) = first_error {
            return Err(e);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(Scan {
            bytes: self.offset,
            body_end: Some(body_end),
            sha256,
            ..scan::merge(results)
        })
    }
}

impl<T: Send + 'static> Pool<T> {
    fn start(tz: chrono_tz::Tz, keep: Arc<Keep<T>>) -> Self {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
        let (spare_tx, spare) = mpsc::channel::<Vec<u8>>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                let keep = keep.clone();
                let spare_tx = spare_tx.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(batch) = next else { break };
                        out.push(read_batch(&batch, tz, &*keep));
                        let _ = spare_tx.send(batch.text);
                    }
                    out
                })
            })
            .collect();
        Self { tx, spare, handles }
    }
}

/// Reads one batch as [`scan_body`] reads a body.
fn read_batch<T>(batch: &Batch, tz: chrono_tz::Tz, keep: &Keep<T>) -> Outcome<T> {
    // Most batches: flat items read the short way.
    if let Ok(text) = std::str::from_utf8(&batch.text)
        && let Some(items) = super::items::read_items(text)
    {
        return Ok(scan::process_items(batch.index, items, tz, keep));
    }
    let mut results = Vec::new();
    let process = |index: usize, items| scan::process_items(batch.index + index, items, tz, keep);
    let read = match std::str::from_utf8(&batch.text) {
        Ok(text) => read_with(&mut serde_json::Deserializer::from_str(text), |i, items| {
            results.push(process(i, items));
        }),
        Err(_) => read_with(
            &mut serde_json::Deserializer::from_slice(&batch.text),
            |i, items| results.push(process(i, items)),
        ),
    };
    match read {
        Ok(_) => {
            let mut done = Done {
                index: batch.index,
                kept: Vec::new(),
                valid: 0,
                invalid: Vec::new(),
            };
            for part in results {
                done.kept.extend(part.kept);
                done.valid += part.valid;
                done.invalid.extend(part.invalid);
            }
            Ok(done)
        }
        Err(e) if std::str::from_utf8(&batch.text).is_err() => {
            let text = String::from_utf8_lossy(&batch.text);
            scan::lossy_items(&text, batch.index, tz, keep).map_err(|lossy| {
                let e = match lossy {
                    FeedError::Json(_) => FeedError::Json(format!(
                        "{} (the body is not UTF-8 either)",
                        position(batch, &e)
                    )),
                    other => other,
                };
                (batch.index, e)
            })
        }
        Err(e) => Err((batch.index, batch_error(batch, &e))),
    }
}

/// The first syntax error of `text` (a batch cut short), as serde finds it reading the items.
fn syntax_error(text: &[u8]) -> Option<serde_json::Error> {
    match std::str::from_utf8(text) {
        Ok(text) => read_with(&mut serde_json::Deserializer::from_str(text), |_, _| {}),
        Err(_) => read_with(&mut serde_json::Deserializer::from_slice(text), |_, _| {}),
    }
    .err()
}

/// serde's error in a batch, placed in the whole body.
fn batch_error(batch: &Batch, e: &serde_json::Error) -> FeedError {
    FeedError::Json(position(batch, e))
}

fn position(batch: &Batch, e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&suffix).unwrap_or(&text);
    let (line, column) = if e.line() == 1 {
        // Column 1 of the batch is its `[`.
        (batch.line, batch.column + e.column().saturating_sub(1))
    } else {
        (batch.line + e.line() - 1, e.column())
    };
    format!("{what} at line {line} column {column}")
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Runs `f`, telling a multi-threaded runtime that this thread blocks meanwhile.
pub(super) fn block<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests;
