//! A test file server on 127.0.0.1:0: serves registered files with ETag and Range, and can be told
//! to drop the connection after N bytes, answer 500, ignore Range, serve an HTML page, hide the
//! length (chunked) or send slowly (per connection, optionally slower for the range starting at
//! a given byte: a slow segment). It logs every request and counts concurrent transfers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
    /// Every request header, lowercase names, in order.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct File {
    body: Bytes,
    etag: String,
    content_type: String,
    disposition: Option<String>,
    fail_next: u32,
    fail_status: u16,
    /// Drop the connection after this many body bytes, for the next `drop_times` responses.
    drop_after: u64,
    drop_times: u32,
    ignore_range: bool,
    /// Honour `Range` but ignore `If-Range` (a server that splices versions).
    ignore_if_range: bool,
    /// A new version that replaces the body once a dropped response ends.
    next_version: Option<Vec<u8>>,
    /// Offset added to the start announced in `Content-Range` (a lying server).
    range_skew: u64,
    chunked: bool,
    /// Bytes per second per connection (0 = as fast as possible).
    rate: u64,
    /// (request number from 1, bytes per second): that response gets this rate.
    slow_request: Option<(usize, u64)>,
    /// Answer every request with this status and the body as an HTML page (a failure page).
    page_status: Option<u16>,
    /// Body bytes sent so far, all responses together.
    sent: Arc<AtomicU64>,
    seen: Vec<Seen>,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<String, File>,
    in_flight: u32,
    max_in_flight: u32,
    requests: u32,
}

#[derive(Clone)]
pub struct FileServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// Deterministic pseudo-random content (so a wrong byte changes the SHA-256).
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl FileServer {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{*path}", get(serve))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("lock"))
    }

    fn file<T>(&self, path: &str, f: impl FnOnce(&mut File) -> T) -> T {
        self.with(|i| {
            f(i.files
                .get_mut(path.trim_start_matches('/'))
                .expect("registered file"))
        })
    }

    /// Registers `body` at `path` (e.g. `r2/file`) and returns its URL, with a signed-looking query.
    pub fn add(&self, path: &str, body: Vec<u8>) -> String {
        let key = path.trim_start_matches('/').to_string();
        let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
        self.with(|i| {
            i.files.insert(
                key.clone(),
                File {
                    body: Bytes::from(body),
                    etag,
                    content_type: "application/octet-stream".into(),
                    ..Default::default()
                },
            )
        });
        self.url(&key)
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}/{}?X-Amz-Signature=s3cret-signature",
            self.addr,
            path.trim_start_matches('/')
        )
    }

    /// Replaces the content (and so the ETag) of a registered file.
    #[allow(dead_code)] // for tests that change a file upstream between two requests
    pub fn replace(&self, path: &str, body: Vec<u8>) {
        let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
        self.file(path, |f| {
            f.body = Bytes::from(body);
            f.etag = etag;
        });
    }

    pub fn fail_next(&self, path: &str, n: u32, status: u16) {
        self.file(path, |f| {
            f.fail_next = n;
            f.fail_status = status;
        });
    }

    pub fn drop_after(&self, path: &str, bytes: u64, times: u32) {
        self.file(path, |f| {
            f.drop_after = bytes;
            f.drop_times = times;
        });
    }

    pub fn ignore_range(&self, path: &str) {
        self.file(path, |f| f.ignore_range = true);
    }

    /// Honour `Range` but ignore `If-Range`, as some servers and caches do.
    pub fn ignore_if_range(&self, path: &str) {
        self.file(path, |f| f.ignore_if_range = true);
    }

    /// After the next dropped connection, the file becomes `body` (new ETag).
    pub fn next_version_after_drop(&self, path: &str, body: Vec<u8>) {
        self.file(path, |f| f.next_version = Some(body));
    }

    /// Announce `Content-Range` starts `skew` bytes later than the bytes sent.
    pub fn skew_content_range(&self, path: &str, skew: u64) {
        self.file(path, |f| f.range_skew = skew);
    }

    pub fn html(&self, path: &str) {
        self.file(path, |f| {
            f.content_type = "text/html; charset=utf-8".into();
            f.body = Bytes::from_static(
                b"<!DOCTYPE html><html><body>This link has expired</body></html>",
            );
        });
    }

    /// Serves `html` with `status` (and `text/html`) instead of the file: a recorded-shape failure
    /// page such as Dropbox's.
    #[allow(dead_code)] // for the Dropbox failure page tests
    pub fn page(&self, path: &str, status: u16, html: &str) {
        let html = html.to_string();
        self.file(path, |f| {
            f.content_type = "text/html; charset=utf-8".into();
            f.body = Bytes::from(html);
            f.page_status = Some(status);
        });
    }

    pub fn chunked(&self, path: &str) {
        self.file(path, |f| f.chunked = true);
    }

    pub fn disposition(&self, path: &str, value: &str) {
        let value = value.to_string();
        self.file(path, |f| f.disposition = Some(value));
    }

    pub fn throttle(&self, path: &str, bytes_per_second: u64) {
        self.file(path, |f| f.rate = bytes_per_second);
    }

    /// The response to the `n`th request (from 1) is sent at `bytes_per_second`: a slow connection.
    #[allow(dead_code)] // for the segmented download tests
    pub fn slow_request(&self, path: &str, n: usize, bytes_per_second: u64) {
        self.file(path, |f| f.slow_request = Some((n, bytes_per_second)));
    }

    /// Body bytes sent for `path` so far.
    #[allow(dead_code)] // for the segmented download tests
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.file(path, |f| f.sent.load(Ordering::Relaxed))
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.file(path, |f| f.seen.clone())
    }

    pub fn requests(&self) -> u32 {
        self.with(|i| i.requests)
    }

    pub fn current_in_flight(&self) -> u32 {
        self.with(|i| i.in_flight)
    }

    pub fn max_in_flight(&self) -> u32 {
        self.with(|i| i.max_in_flight)
    }
}

/// Decrements the in-flight count when the body stream ends or is dropped.
struct InFlight(Arc<Mutex<Inner>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut i) = self.0.lock() {
            i.in_flight = i.in_flight.saturating_sub(1);
        }
    }
}

/// `bytes=START-` or `bytes=START-END` -> (START, END inclusive), within the file.
fn parse_range(raw: &str, len: u64) -> Option<(u64, u64)> {
    let (start, end) = raw.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.parse().ok().filter(|s| *s <= len)?;
    let last = len.saturating_sub(1);
    let end = match end.trim() {
        "" => last,
        e => e.parse::<u64>().ok()?.min(last),
    };
    (end >= start || start == len).then_some((start, end))
}

async fn serve(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut guard = inner.lock().expect("lock");
    guard.requests += 1;
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let range = text(header::RANGE);
    let if_range = text(header::IF_RANGE);
    let Some(file) = guard.files.get_mut(&path) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found"))
            .expect("response");
    };
    let mut seen = Seen {
        range: range.clone(),
        if_range: if_range.clone(),
        status: 200,
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    };
    if file.fail_next > 0 {
        file.fail_next -= 1;
        seen.status = file.fail_status;
        file.seen.push(seen);
        return Response::builder()
            .status(file.fail_status)
            .body(Body::from("server error"))
            .expect("response");
    }
    if let Some(status) = file.page_status {
        seen.status = status;
        file.seen.push(seen);
        return Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, file.content_type.as_str())
            .body(Body::from(file.body.clone()))
            .expect("response");
    }
    let len = file.body.len() as u64;
    let start = match (&range, file.ignore_range) {
        (Some(r), false)
            if file.ignore_if_range || if_range.as_deref().is_none_or(|v| v == file.etag) =>
        {
            parse_range(r, len)
        }
        _ => None,
    };
    let mut response = Response::builder()
        .header(header::ETAG, file.etag.as_str())
        .header(header::CONTENT_TYPE, file.content_type.as_str())
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(d) = &file.disposition {
        response = response.header(header::CONTENT_DISPOSITION, d.as_str());
    }
    let offset = start.map_or(0, |(s, _)| s);
    let mut body = file.body.slice(offset as usize..);
    if let Some((start, end)) = start {
        seen.status = 206;
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {}-{end}/{len}", start + file.range_skew),
        );
        let count = (end + 1).saturating_sub(start).min(body.len() as u64);
        body = body.slice(..count as usize);
    }
    if !file.chunked {
        response = response.header(header::CONTENT_LENGTH, body.len());
    }
    let drop_after = if file.drop_times > 0 {
        file.drop_times -= 1;
        if let Some(next) = file.next_version.take() {
            file.etag = format!("\"{}\"", &sha256_hex(&next)[..16]);
            file.body = Bytes::from(next);
        }
        Some(file.drop_after)
    } else {
        None
    };
    let rate = match file.slow_request {
        Some((n, slow)) if file.seen.len() + 1 == n => slow,
        _ => file.rate,
    };
    let sent_counter = file.sent.clone();
    file.seen.push(seen);
    guard.in_flight += 1;
    guard.max_in_flight = guard.max_in_flight.max(guard.in_flight);
    drop(guard);
    let in_flight = InFlight(inner.clone());

    let chunk = 64 * 1024;
    let stream =
        futures::stream::unfold((body, 0u64, in_flight), move |(body, sent, in_flight)| {
            let sent_counter = sent_counter.clone();
            async move {
                if sent == u64::MAX {
                    return None;
                }
                if drop_after.is_some_and(|limit| sent >= limit) {
                    // An error in the body stream makes hyper abort the connection mid-body.
                    return Some((
                        Err(std::io::Error::other("dropped on purpose")),
                        (Bytes::new(), u64::MAX, in_flight),
                    ));
                }
                if sent as usize >= body.len() {
                    return None;
                }
                let mut end = (sent as usize + chunk).min(body.len());
                if let Some(limit) = drop_after {
                    end = end.min(limit.max(sent + 1) as usize);
                }
                let piece = body.slice(sent as usize..end);
                if rate > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(piece.len() as f64 / rate as f64))
                        .await;
                }
                let sent_now = end as u64;
                sent_counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
                Some((Ok::<_, std::io::Error>(piece), (body, sent_now, in_flight)))
            }
        });
    response.body(Body::from_stream(stream)).expect("response")
}
