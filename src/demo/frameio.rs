//! The demo's stand-in for Frame.io v4, served on 127.0.0.1 inside the demo's process. It answers
//! the calls rushes makes, in the shapes its client reads (`{"data": …}`, `links.next` with an
//! `after` cursor, `{"errors": [...]}`): a static bearer token, files (with the "Status"
//! metadata), comments with nested replies (`include=owner,replies`), `local_upload` with
//! presigned part URLs on this same server (the part `PUT`s checked as S3 checks them and read
//! at [`UPLOAD_RATE`], so the upload's bar moves), the upload status, version stacks and moves,
//! and workspace webhooks whose deliveries are signed as Frame.io signs them (`v0:` HMAC-SHA256)
//! and sent to the URL rushes registered, on loopback only. A file whose parts are all in turns
//! `uploaded` (webhook `file.upload.completed`), then `transcoded` [`PROCESSING`] later
//! (`file.ready`). Everything is bounded: files, comments, webhooks, sizes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use futures::StreamExt as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::DemoError;

pub const ACCOUNT: &str = "demo-account";
pub const WORKSPACE: &str = "demo-workspace";
pub const PROJECT: &str = "demo-project";
/// The folder the demo's watch folder sends to.
pub const FOLDER: &str = "demo-review-folder";
/// The bearer token the stand-in accepts (the demo's `FRAMEIO_TOKEN`; not a secret).
pub const TOKEN: &str = "demo-frameio-token";
/// Bytes per second the stand-in reads uploads at, all parts of all files together.
pub const UPLOAD_RATE: u64 = 3 * 1024 * 1024;
/// From `uploaded` to `transcoded`.
pub const PROCESSING: Duration = Duration::from_secs(5);

const MAX_FILES: usize = 200;
const MAX_COMMENTS: usize = 200;
const MAX_WEBHOOKS: usize = 8;
const MAX_FILE_SIZE: u64 = 1 << 30;
/// One presigned URL per 8 MiB, at most this many.
const MAX_PARTS: u64 = 8;
const PART_SIZE: u64 = 8 << 20;
/// Most comments in one page of the list.
const MAX_PAGE: usize = 100;
/// Most bytes of a JSON request body.
const MAX_JSON: usize = 64 * 1024;
/// Rate-limiter cells are KiB; a wait takes at most this many at once.
const BURST_KIB: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Created,
    Uploaded,
    Transcoded,
}

impl FileStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Uploaded => "uploaded",
            Self::Transcoded => "transcoded",
        }
    }
}

struct File {
    name: String,
    size: u64,
    media_type: &'static str,
    status: FileStatus,
    parts: Vec<bool>,
    signature: String,
    parent: String,
    /// The "Status" metadata option, when someone chose one.
    status_option: Option<String>,
    comments: Vec<Value>,
    created_at: String,
}

impl File {
    /// Part `idx`'s length: the file cut evenly (the last part takes the rest).
    fn part_len(&self, idx: usize) -> u64 {
        let n = self.parts.len().max(1) as u64;
        let each = self.size.div_ceil(n);
        let start = (each * idx as u64).min(self.size);
        let end = if idx + 1 == self.parts.len() {
            self.size
        } else {
            (start + each).min(self.size)
        };
        end - start
    }
}

struct Hook {
    id: String,
    name: String,
    url: String,
    events: Vec<String>,
    active: bool,
    secret: String,
}

impl Hook {
    fn shown(&self) -> Value {
        json!({"id": self.id, "name": self.name, "url": self.url, "events": self.events,
            "active": self.active, "workspace_id": WORKSPACE})
    }
}

#[derive(Default)]
struct Books {
    files: HashMap<String, File>,
    /// Comment (and reply) id -> file id.
    comment_files: HashMap<String, String>,
    hooks: Vec<Hook>,
    next_id: u64,
    /// Deliveries sent, and answered with a success.
    sent: u32,
    delivered: u32,
}

impl Books {
    fn next(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:04}", self.next_id)
    }
}

pub(super) struct Inner {
    books: Mutex<Books>,
    /// Bumped on every change (the timeline waits on it).
    changed: watch::Sender<u64>,
    http: reqwest::Client,
    uploads: DefaultDirectRateLimiter,
}

impl Inner {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The running stand-in.
#[derive(Clone)]
pub struct FrameioStandIn {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn errors(status: StatusCode, title: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"title": title, "detail": title}]})),
    )
        .into_response()
}

fn not_found() -> Response {
    errors(StatusCode::NOT_FOUND, "Not Found")
}

impl FrameioStandIn {
    pub async fn start() -> Result<Self, DemoError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(DemoError::FrameioStandIn)?;
        let addr = listener.local_addr().map_err(DemoError::FrameioStandIn)?;
        let http = crate::net::loopback_client(crate::net::Timeouts {
            connect: Duration::from_secs(5),
            request: Some(Duration::from_secs(10)),
            read: None,
        })
        .map_err(|e| DemoError::FrameioStandIn(std::io::Error::other(e)))?;
        let kib = NonZeroU32::new((UPLOAD_RATE / 1024) as u32).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(BURST_KIB).unwrap_or(NonZeroU32::MIN);
        let inner = Arc::new(Inner {
            books: Mutex::new(Books::default()),
            changed: watch::channel(0).0,
            http,
            uploads: RateLimiter::direct(Quota::per_second(kib).allow_burst(burst)),
        });
        let app = routes(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "demo Frame.io stand-in stopped");
            }
        });
        Ok(Self { addr, inner })
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wakes on every change (files, parts, comments, webhooks).
    pub(super) fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The id and status of the newest file named `name`.
    pub fn file_named(&self, name: &str) -> Option<(String, FileStatus)> {
        let books = self.inner.books();
        books
            .files
            .iter()
            .filter(|(_, f)| f.name == name)
            .max_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(b.0)))
            .map(|(id, f)| (id.clone(), f.status))
    }

    /// A webhook is registered and active (rushes' keeper made it).
    pub fn has_webhook(&self) -> bool {
        self.inner.books().hooks.iter().any(|h| h.active)
    }

    /// Deliveries sent so far, and those rushes accepted.
    pub fn deliveries(&self) -> (u32, u32) {
        let books = self.inner.books();
        (books.sent, books.delivered)
    }

    /// A comment by `author` on `file` (or a reply under `parent`); returns its id.
    pub fn comment(
        &self,
        file: &str,
        parent: Option<&str>,
        author: &str,
        text: &str,
    ) -> Option<String> {
        let id = {
            let mut books = self.inner.books();
            if books.comment_files.len() >= MAX_COMMENTS {
                return None;
            }
            let id = books.next("comment");
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let comment = json!({
                "id": id, "file_id": file, "text": text, "timestamp": 42,
                "created_at": now, "updated_at": now, "completed_at": null,
                "owner": {"id": format!("user-{}", author.to_lowercase().replace(' ', "-")), "name": author}
            });
            let f = books.files.get_mut(file)?;
            match parent {
                None => f.comments.push(comment),
                Some(parent) => {
                    let p = f.comments.iter_mut().find(|c| c["id"] == parent)?;
                    match p.get_mut("replies").and_then(Value::as_array_mut) {
                        Some(list) => list.push(comment),
                        None => p["replies"] = json!([comment]),
                    }
                }
            }
            books.comment_files.insert(id.clone(), file.to_string());
            id
        };
        self.inner.bump();
        Some(id)
    }

    /// Sends a signed delivery of `kind` about `resource` to every active webhook that wants it.
    pub async fn deliver(&self, kind: &str, resource_type: &str, resource_id: &str) {
        deliver(&self.inner, kind, resource_type, resource_id).await;
    }

    /// A delivery signed with a secret that is not the webhook's, as a stranger would send.
    pub async fn forged_delivery(&self) -> Option<u16> {
        let url = self
            .inner
            .books()
            .hooks
            .iter()
            .find(|h| h.active)
            .map(|h| h.url.clone())?;
        let body = delivery_body("file.ready", "file", "not-a-demo-file");
        post_signed(&self.inner.http, &url, "not-the-secret", &body).await
    }
}

fn routes(inner: Arc<Inner>) -> Router {
    let api = Router::new()
        .route("/v4/accounts/{a}/files/{f}", get(file).delete(delete_file))
        .route("/v4/accounts/{a}/files/{f}/metadata", get(metadata))
        .route("/v4/accounts/{a}/files/{f}/status", get(upload_status))
        .route("/v4/accounts/{a}/files/{f}/comments", get(comments))
        .route("/v4/accounts/{a}/files/{f}/move", patch(move_file))
        .route("/v4/accounts/{a}/comments/{c}", get(comment))
        .route(
            "/v4/accounts/{a}/folders/{folder}/files/local_upload",
            post(local_upload),
        )
        .route(
            "/v4/accounts/{a}/folders/{folder}/version_stacks",
            post(version_stack),
        )
        .route(
            "/v4/accounts/{a}/workspaces/{w}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/v4/accounts/{a}/webhooks/{id}",
            get(show_webhook).patch(patch_webhook).delete(delete_webhook),
        )
        .layer(axum::middleware::from_fn(gate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON));
    Router::new()
        .merge(api)
        .route("/upload/{f}/{part}", put(put_part))
        .with_state(inner)
}

/// Every `/v4` call needs the bearer token and the demo's account.
async fn gate(request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(TOKEN) {
        return errors(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let account = request.uri().path().split('/').nth(3);
    if account != Some(ACCOUNT) {
        return not_found();
    }
    next.run(request).await
}

fn data(value: Value) -> Response {
    Json(json!({ "data": value })).into_response()
}

fn status_fields(option: Option<&str>) -> Value {
    let value = option.map_or(json!([]), |o| json!([{"id": "opt", "display_name": o}]));
    json!([{"field_definition_id": "fd-status", "field_definition_name": "Status",
        "field_type": "select", "value": value}])
}

fn file_json(id: &str, f: &File) -> Value {
    json!({"id": id, "name": f.name, "type": "file", "status": f.status.as_str(),
        "file_size": f.size, "media_type": f.media_type, "parent_id": f.parent,
        "project_id": PROJECT, "created_at": f.created_at,
        "view_url": format!("https://next.frame.io/project/{PROJECT}/view/{id}")})
}

async fn file(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let books = inner.books();
    let Some(file) = books.files.get(&f) else {
        return not_found();
    };
    let mut shown = file_json(&f, file);
    if q.get("include")
        .is_some_and(|i| i.split(',').any(|x| x.trim() == "metadata"))
    {
        shown["metadata"] = status_fields(file.status_option.as_deref());
    }
    data(shown)
}

async fn metadata(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    match books.files.get(&f) {
        Some(file) => data(
            json!({"file_id": f, "metadata": status_fields(file.status_option.as_deref())}),
        ),
        None => not_found(),
    }
}

async fn upload_status(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    match books.files.get(&f) {
        Some(file) => data(json!({
            "id": f, "upload_complete": file.parts.iter().all(|p| *p),
            "uploaded_parts": file.parts.iter().filter(|p| **p).count(),
        })),
        None => not_found(),
    }
}

async fn delete_file(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
) -> Response {
    let removed = inner.books().files.remove(&f).is_some();
    if !removed {
        return not_found();
    }
    inner.bump();
    StatusCode::NO_CONTENT.into_response()
}

/// A comment as listed: `owner` and `replies` only when included.
fn shown_comment(c: &Value, owner: bool, replies: bool) -> Value {
    let mut c = c.clone();
    if let Some(o) = c.as_object_mut() {
        if !owner {
            o.remove("owner");
        }
        match o.get_mut("replies").and_then(Value::as_array_mut) {
            Some(list) if replies => {
                for r in list.iter_mut().filter_map(Value::as_object_mut) {
                    if !owner {
                        r.remove("owner");
                    }
                }
            }
            Some(_) => {
                o.remove("replies");
            }
            None if replies => {
                o.insert("replies".into(), json!([]));
            }
            None => {}
        }
    }
    c
}

async fn comments(
    State(inner): State<Arc<Inner>>,
    Path((a, f)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let books = inner.books();
    let Some(file) = books.files.get(&f) else {
        return not_found();
    };
    let size = q
        .get("page_size")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, MAX_PAGE);
    let start = q
        .get("after")
        .and_then(|c| c.strip_prefix("c"))
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let include: Vec<&str> = q
        .get("include")
        .map(|i| i.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let (owner, replies) = (include.contains(&"owner"), include.contains(&"replies"));
    let page: Vec<Value> = file
        .comments
        .iter()
        .skip(start)
        .take(size)
        .map(|c| shown_comment(c, owner, replies))
        .collect();
    // Like the real links.next: the cursor only.
    let next = (start + size < file.comments.len())
        .then(|| format!("/v4/accounts/{a}/files/{f}/comments?after=c{}", start + size));
    Json(json!({"data": page, "links": {"next": next}})).into_response()
}

async fn comment(
    State(inner): State<Arc<Inner>>,
    Path((_, c)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    let Some(file_id) = books.comment_files.get(&c) else {
        return not_found();
    };
    let found = books.files.get(file_id).and_then(|file| {
        file.comments.iter().find_map(|x| {
            if x["id"] == c.as_str() {
                return Some(x.clone());
            }
            x.get("replies")
                .and_then(Value::as_array)
                .and_then(|r| r.iter().find(|r| r["id"] == c.as_str()))
                .cloned()
        })
    });
    match found {
        Some(x) => data(x),
        None => not_found(),
    }
}

fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "mov" => "video/quicktime",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

async fn local_upload(
    State(inner): State<Arc<Inner>>,
    Path((_, folder)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (Some(name), Some(size)) = (
        body["data"]["name"].as_str().filter(|n| !n.is_empty()),
        body["data"]["file_size"].as_u64(),
    ) else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "data.name and data.file_size are required",
        );
    };
    if size > MAX_FILE_SIZE || name.len() > 255 {
        return errors(StatusCode::UNPROCESSABLE_ENTITY, "file too large");
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let count = size.div_ceil(PART_SIZE).clamp(1, MAX_PARTS) as usize;
    let created = {
        let mut books = inner.books();
        if books.files.len() >= MAX_FILES {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, "the demo holds no more files");
        }
        let id = books.next("file");
        let signature = format!("{:016x}", rand::random::<u64>());
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ");
        let urls: Vec<Value> = (0..count)
            .map(|i| json!({"size": size.div_ceil(count as u64), "url": format!(
                "http://{host}/upload/{id}/part_{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={amz_date}&X-Amz-Expires=3600&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-acl&X-Amz-Signature={signature}",
                i + 1)}))
            .collect();
        let file = File {
            name: name.to_string(),
            size,
            media_type: media_type(name),
            status: FileStatus::Created,
            parts: vec![false; count],
            signature,
            parent: folder,
            status_option: None,
            comments: Vec::new(),
            created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let mut shown = file_json(&id, &file);
        shown["upload_urls"] = Value::Array(urls);
        books.files.insert(id.clone(), file);
        (id, shown)
    };
    inner.bump();
    let inner2 = inner.clone();
    let id = created.0.clone();
    tokio::spawn(async move { deliver(&inner2, "file.created", "file", &id).await });
    (StatusCode::CREATED, Json(json!({"data": created.1}))).into_response()
}

fn s3_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>"),
    )
        .into_response()
}

/// What a part `PUT` must carry, checked before its body is read: S3's presigned-URL rules.
fn check_put(
    file: &File,
    idx: usize,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<u64, Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if idx >= file.parts.len() || query.get("X-Amz-Signature") != Some(&file.signature) {
        return Err(s3_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    }
    if header("authorization").is_some() {
        return Err(s3_error(StatusCode::BAD_REQUEST, "InvalidArgument"));
    }
    if header("x-amz-acl") != Some("private") || header("content-type") != Some(file.media_type)
    {
        return Err(s3_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    }
    let expected = file.part_len(idx);
    match header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Some(length) if length == expected => Ok(expected),
        Some(_) => Err(s3_error(StatusCode::BAD_REQUEST, "IncompleteBody")),
        None => Err(s3_error(StatusCode::LENGTH_REQUIRED, "MissingContentLength")),
    }
}

async fn put_part(
    State(inner): State<Arc<Inner>>,
    Path((f, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(idx) = part
        .strip_prefix("part_")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
    else {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    let expected = {
        let books = inner.books();
        let Some(file) = books.files.get(&f) else {
            return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload");
        };
        match check_put(file, idx, &query, &headers) {
            Ok(expected) => expected,
            Err(refused) => return refused,
        }
    };
    // Read at the upload rate: the sender sees its bytes go out at that pace.
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody");
        };
        received += chunk.len() as u64;
        if received > expected {
            return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody");
        }
        let mut kib = (chunk.len() as u64).div_ceil(1024) as u32;
        while kib > 0 {
            let take = kib.min(BURST_KIB);
            let _ = inner
                .uploads
                .until_n_ready(NonZeroU32::new(take).unwrap_or(NonZeroU32::MIN))
                .await;
            kib -= take;
        }
    }
    if received != expected {
        return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody");
    }
    let complete = {
        let mut books = inner.books();
        let Some(file) = books.files.get_mut(&f) else {
            return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload");
        };
        if let Some(p) = file.parts.get_mut(idx) {
            *p = true;
        }
        let complete = file.status == FileStatus::Created && file.parts.iter().all(|p| *p);
        if complete {
            file.status = FileStatus::Uploaded;
        }
        complete
    };
    inner.bump();
    if complete {
        tokio::spawn(process(inner.clone(), f));
    }
    StatusCode::OK.into_response()
}

/// After the last part: `file.upload.completed`, then transcoding, then `file.ready`.
async fn process(inner: Arc<Inner>, id: String) {
    deliver(&inner, "file.upload.completed", "file", &id).await;
    tokio::time::sleep(PROCESSING).await;
    let done = {
        let mut books = inner.books();
        match books.files.get_mut(&id) {
            Some(file) => {
                file.status = FileStatus::Transcoded;
                true
            }
            None => false,
        }
    };
    if done {
        inner.bump();
        deliver(&inner, "file.ready", "file", &id).await;
    }
}

async fn version_stack(
    State(inner): State<Arc<Inner>>,
    Path((_, folder)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let ids: Vec<String> = body["data"]["file_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let stack = {
        let mut books = inner.books();
        if ids.len() < 2 || ids.len() > 50 || ids.iter().any(|id| !books.files.contains_key(id)) {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, "file_ids: two existing files");
        }
        let stack = books.next("stack");
        for id in &ids {
            if let Some(f) = books.files.get_mut(id) {
                f.parent = stack.clone();
            }
        }
        stack
    };
    inner.bump();
    let shown = json!({"id": stack, "type": "version_stack", "parent_id": folder});
    (StatusCode::CREATED, Json(json!({"data": shown}))).into_response()
}

async fn move_file(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(parent) = body["data"]["parent_id"].as_str() else {
        return errors(StatusCode::UNPROCESSABLE_ENTITY, "data.parent_id is required");
    };
    let mut books = inner.books();
    let Some(file) = books.files.get_mut(&f) else {
        return not_found();
    };
    file.parent = parent.to_string();
    data(json!({"id": f, "type": "file", "parent_id": parent}))
}

async fn list_webhooks(State(inner): State<Arc<Inner>>) -> Response {
    let books = inner.books();
    let list: Vec<Value> = books.hooks.iter().map(Hook::shown).collect();
    Json(json!({"data": list, "links": {"next": null}})).into_response()
}

async fn create_webhook(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    let d = &body["data"];
    let (Some(name), Some(url), Some(events)) =
        (d["name"].as_str(), d["url"].as_str(), d["events"].as_array())
    else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name, url and events are required",
        );
    };
    let shown = {
        let mut books = inner.books();
        if books.hooks.len() >= MAX_WEBHOOKS {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, "too many webhooks");
        }
        let hook = Hook {
            id: books.next("webhook"),
            name: name.to_string(),
            url: url.to_string(),
            events: events
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .take(64)
                .collect(),
            active: true,
            secret: format!("{:032x}", rand::random::<u128>()),
        };
        let mut shown = hook.shown();
        shown["secret"] = json!(hook.secret);
        books.hooks.push(hook);
        shown
    };
    inner.bump();
    (StatusCode::CREATED, Json(json!({"data": shown}))).into_response()
}

async fn show_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    match books.hooks.iter().find(|h| h.id == id) {
        Some(h) => data(h.shown()),
        None => not_found(),
    }
}

async fn patch_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let shown = {
        let mut books = inner.books();
        let Some(h) = books.hooks.iter_mut().find(|h| h.id == id) else {
            return not_found();
        };
        let d = &body["data"];
        if let Some(url) = d["url"].as_str() {
            h.url = url.to_string();
        }
        if let Some(events) = d["events"].as_array() {
            h.events = events
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .take(64)
                .collect();
        }
        if let Some(active) = d["active"].as_bool() {
            h.active = active;
        }
        h.shown()
    };
    inner.bump();
    data(shown)
}

async fn delete_webhook(
    State(inner): State<Arc<Inner>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let removed = {
        let mut books = inner.books();
        let before = books.hooks.len();
        books.hooks.retain(|h| h.id != id);
        books.hooks.len() != before
    };
    if !removed {
        return not_found();
    }
    inner.bump();
    StatusCode::NO_CONTENT.into_response()
}

/// A delivery body with exactly Frame.io's fields.
fn delivery_body(kind: &str, resource_type: &str, resource_id: &str) -> String {
    json!({
        "type": kind,
        "resource": {"id": resource_id, "type": resource_type},
        "account": {"id": ACCOUNT},
        "workspace": {"id": WORKSPACE},
        "project": {"id": PROJECT},
        "user": {"id": "user-demo-client"}
    })
    .to_string()
}

/// Only deliveries to this machine: the demo never sends anything elsewhere.
fn loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    })
}

/// POSTs `body` signed with `secret`; the answer's status, `None` when nothing answered.
async fn post_signed(http: &reqwest::Client, url: &str, secret: &str, body: &str) -> Option<u16> {
    if !loopback(url) {
        tracing::warn!("demo Frame.io: the webhook does not point at this machine; not sent");
        return None;
    }
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = crate::frameio::webhook::sign(secret.as_bytes(), &ts, body.as_bytes());
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header(crate::frameio::webhook::TIMESTAMP_HEADER, ts)
        .header(crate::frameio::webhook::SIGNATURE_HEADER, signature)
        .body(body.to_string())
        .send()
        .await;
    sent.ok().map(|r| r.status().as_u16())
}

/// Signs and sends one delivery to each active webhook subscribed to `kind`, retrying a failed
/// one a few times as Frame.io does.
async fn deliver(inner: &Inner, kind: &str, resource_type: &str, resource_id: &str) {
    let targets: Vec<(String, String)> = inner
        .books()
        .hooks
        .iter()
        .filter(|h| h.active && h.events.iter().any(|e| e == kind))
        .map(|h| (h.url.clone(), h.secret.clone()))
        .collect();
    let body = delivery_body(kind, resource_type, resource_id);
    for (url, secret) in targets {
        let mut backoff = crate::net::RetryPolicy::default().backoff();
        inner.books().sent += 1;
        loop {
            match post_signed(&inner.http, &url, &secret, &body).await {
                Some(status) if (200..300).contains(&status) => {
                    inner.books().delivered += 1;
                    break;
                }
                answer => match backoff.next_wait(None) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => {
                        tracing::warn!(kind, status = ?answer, "demo Frame.io: a webhook delivery was not accepted");
                        break;
                    }
                },
            }
        }
        inner.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_evenly_and_only_loopback_gets_deliveries() {
        let file = File {
            name: "a.mov".into(),
            size: 10,
            media_type: "video/quicktime",
            status: FileStatus::Created,
            parts: vec![false; 3],
            signature: String::new(),
            parent: FOLDER.into(),
            status_option: None,
            comments: Vec::new(),
            created_at: String::new(),
        };
        let lens: Vec<u64> = (0..3).map(|i| file.part_len(i)).collect();
        assert_eq!(lens, vec![4, 4, 2]);
        assert!(loopback("http://127.0.0.1:5000/webhooks/frameio"));
        assert!(loopback("http://localhost:5000/webhooks/frameio"));
        assert!(!loopback("https://example.com/webhooks/frameio"));
        assert!(!loopback("not a url"));
    }

    #[test]
    fn replies_and_owners_show_only_when_included() {
        let c = json!({"id": "c1", "owner": {"name": "Claire"},
            "replies": [{"id": "c2", "owner": {"name": "Paul"}}]});
        let bare = shown_comment(&c, false, false);
        assert!(bare.get("owner").is_none() && bare.get("replies").is_none());
        let full = shown_comment(&c, true, true);
        assert_eq!(full["replies"][0]["owner"]["name"], "Paul");
        let no_owner = shown_comment(&c, false, true);
        assert!(no_owner["replies"][0].get("owner").is_none());
    }
}
