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

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::DemoError;
use files::{comment, comments, delete_file, file, metadata, upload_status};
use hooks::{create_webhook, delete_webhook, list_webhooks, patch_webhook, show_webhook};
use upload::{local_upload, move_file, put_part, version_stack};

mod files;
mod hooks;
mod upload;

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

/// A file of the stand-in, as [`FrameioStandIn::file_named`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    pub id: String,
    pub status: FileStatus,
    /// Its `file.ready` webhook was delivered (so rushes stored it before anything later).
    pub ready_announced: bool,
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
    /// Its `file.ready` delivery was answered: what the client sees from now on is after it.
    ready_announced: bool,
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
    /// `http://127.0.0.1:PORT`: where the presigned part URLs point (never a Host header).
    base: String,
    books: Mutex<Books>,
    /// Bumped on every change (the timeline waits on it).
    changed: watch::Sender<u64>,
    http: reqwest::Client,
    uploads: DefaultDirectRateLimiter,
}

impl Inner {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            base: format!("http://{addr}"),
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

    /// The newest file named `name`, as the timeline sees it.
    pub fn file_named(&self, name: &str) -> Option<FileView> {
        let books = self.inner.books();
        books
            .files
            .iter()
            .filter(|(_, f)| f.name == name)
            .max_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(b.0)))
            .map(|(id, f)| FileView {
                id: id.clone(),
                status: f.status,
                ready_announced: f.ready_announced,
            })
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
        hooks::deliver(&self.inner, kind, resource_type, resource_id).await;
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
        let body = hooks::delivery_body("file.ready", "file", "not-a-demo-file");
        hooks::post_signed(&self.inner.http, &url, "not-the-secret", &body).await
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
            get(show_webhook)
                .patch(patch_webhook)
                .delete(delete_webhook),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_evenly() {
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
            ready_announced: false,
        };
        let lens: Vec<u64> = (0..3).map(|i| file.part_len(i)).collect();
        assert_eq!(lens, vec![4, 4, 2]);
    }
}
