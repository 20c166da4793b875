//! A fake Frame.io v4 + Adobe IMS: a real HTTP server on 127.0.0.1:0 following the documented
//! shapes (`{"data": ...}`, `links.next` pagination with an opaque `after` cursor, `{"errors": [...]}`),
//! with injectable faults (429 then success, 401 on expired tokens, a gate holding comment
//! answers) and deliveries signed the way Frame.io signs them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

pub const ACCOUNT: &str = "acc-1";
pub const WORKSPACE: &str = "ws-1";
pub const STATIC_TOKEN: &str = "static-token-s3cret";
pub const CLIENT_ID: &str = "rushes-client";
pub const CLIENT_SECRET: &str = "client-s3cret";
pub const FIRST_REFRESH: &str = "refresh-0";

#[derive(Default)]
pub(super) struct FakeFile {
    status: Option<String>,
    pub(super) file_status: String,
    comments: Vec<Value>,
}

impl FakeFile {
    pub(super) fn with_status(status: &str) -> Self {
        Self {
            file_status: status.into(),
            ..Default::default()
        }
    }
}

#[derive(Default)]
pub(super) struct Fake {
    valid_tokens: HashSet<String>,
    refresh_tokens: HashSet<String>,
    issued: u32,
    grants: Vec<String>,
    pub(super) files: HashMap<String, FakeFile>,
    comment_files: HashMap<String, String>,
    webhooks: Vec<Value>,
    next_webhook: u32,
    rate_limit_next: u32,
    server_error_next: u32,
    requests: Vec<(String, String)>,
    unauthorized: u32,
    rate_limited: u32,
    bucket_refused: u32,
    bucket: Bucket,
    /// Uploads, version stacks and moves (see fake_frameio_upload.rs).
    pub(super) uploads: super::fake_frameio_upload::Uploads,
}

/// Frame.io's rate limit as its guide describes it: a leaky bucket per user, reported on every
/// response as `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-window` (ms); no
/// `Retry-After`, no `x-ratelimit-reset`. A request over the limit answers 429.
struct Bucket {
    limit: f64,
    window_ms: f64,
    level: f64,
    at: std::time::Instant,
}

impl Default for Bucket {
    fn default() -> Self {
        // The guide's highest limit: 100 requests a second.
        Self {
            limit: 100.0,
            window_ms: 1000.0,
            level: 0.0,
            at: std::time::Instant::now(),
        }
    }
}

impl Bucket {
    /// Takes one request; `None` when the bucket is full (429). Returns what remains.
    fn take(&mut self) -> Option<u32> {
        let leaked = self.at.elapsed().as_secs_f64() * 1000.0 * self.limit / self.window_ms;
        self.at = std::time::Instant::now();
        self.level = (self.level - leaked).max(0.0);
        if self.level + 1.0 > self.limit {
            return None;
        }
        self.level += 1.0;
        Some((self.limit - self.level).floor() as u32)
    }

    fn headers(&self, remaining: u32) -> [(&'static str, String); 3] {
        [
            ("x-ratelimit-limit", format!("{}", self.limit as u32)),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-window", format!("{}", self.window_ms as u64)),
        ]
    }
}

/// Every `/v4` answer carries the rate-limit headers; a full bucket answers 429.
async fn rate_limit(
    State((state, _)): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !request.uri().path().starts_with("/v4/") {
        return next.run(request).await;
    }
    let taken = {
        let mut s = state.lock().expect("lock");
        let taken = s.bucket.take();
        if taken.is_none() {
            s.rate_limited += 1;
            s.bucket_refused += 1;
        }
        (taken, s.bucket.headers(taken.unwrap_or(0)))
    };
    let mut response = match taken.0 {
        Some(_) => next.run(request).await,
        None => errors(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
    };
    for (name, value) in taken.1 {
        if let Ok(v) = value.parse() {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

#[derive(Clone)]
pub struct FakeFrameio {
    pub addr: SocketAddr,
    state: Arc<Mutex<Fake>>,
    comments_open: Arc<watch::Sender<bool>>,
}

pub(super) type Shared = (Arc<Mutex<Fake>>, Arc<watch::Sender<bool>>);

pub(super) fn errors(status: StatusCode, title: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"title": title, "detail": title}]})),
    )
        .into_response()
}

impl FakeFrameio {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Fake::default()));
        {
            let mut s = state.lock().expect("lock");
            s.valid_tokens.insert(STATIC_TOKEN.into());
            s.refresh_tokens.insert(FIRST_REFRESH.into());
        }
        let (tx, _) = watch::channel(true);
        let comments_open = Arc::new(tx);
        let shared: Shared = (state.clone(), comments_open.clone());
        let app = Router::new()
            .route("/ims/token/v3", post(ims_token))
            .route(
                "/v4/accounts/{a}/files/{f}",
                get(file).delete(super::fake_frameio_upload::delete_file),
            )
            .merge(super::fake_frameio_upload::routes())
            .route("/v4/accounts/{a}/files/{f}/metadata", get(metadata))
            .route("/v4/accounts/{a}/files/{f}/comments", get(comments))
            .route("/v4/accounts/{a}/comments/{c}", get(comment))
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
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                rate_limit,
            ))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            state,
            comments_open,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ims_url(&self) -> String {
        format!("http://{}/ims/token/v3", self.addr)
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    pub fn add_file(&self, id: &str) {
        self.with(|s| {
            s.files.insert(
                id.into(),
                FakeFile {
                    file_status: "uploaded".into(),
                    ..Default::default()
                },
            )
        });
    }

    pub fn set_status(&self, file: &str, option: &str) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(file) {
                f.status = Some(option.into());
            }
        });
    }

    pub fn set_file_status(&self, file: &str, status: &str) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(file) {
                f.file_status = status.into();
            }
        });
    }

    pub fn add_comment(&self, file: &str, id: &str, text: &str, created_at: &str) {
        self.with(|s| {
            s.comment_files.insert(id.into(), file.into());
            if let Some(f) = s.files.get_mut(file) {
                f.comments.push(json!({
                    "id": id, "file_id": file, "text": text, "timestamp": 12,
                    "created_at": created_at, "updated_at": created_at, "completed_at": null,
                    "owner": {"id": "u1", "name": "Claire (client)", "email": "claire@example.com"}
                }));
            }
        });
    }

    /// A comment by a named author.
    pub fn add_comment_by(&self, file: &str, id: &str, text: &str, created_at: &str, author: &str) {
        self.with(|s| {
            s.comment_files.insert(id.into(), file.into());
            if let Some(f) = s.files.get_mut(file) {
                f.comments.push(json!({
                    "id": id, "file_id": file, "text": text, "timestamp": 12,
                    "created_at": created_at, "updated_at": created_at, "completed_at": null,
                    "owner": {"id": format!("u-{author}"), "name": author}
                }));
            }
        });
    }

    /// A reply nested under comment `parent` (v4 nests replies under their comment).
    pub fn add_reply(&self, file: &str, parent: &str, id: &str, text: &str, created_at: &str) {
        self.with(|s| {
            s.comment_files.insert(id.into(), file.into());
            if let Some(f) = s.files.get_mut(file)
                && let Some(p) = f.comments.iter_mut().find(|c| c["id"] == parent)
            {
                let reply = json!({
                    "id": id, "text": text, "created_at": created_at, "updated_at": created_at,
                    "completed_at": null, "owner": {"id": "u2", "name": "Paul (producer)"}
                });
                match p.get_mut("replies").and_then(Value::as_array_mut) {
                    Some(list) => list.push(reply),
                    None => p["replies"] = json!([reply]),
                }
            }
        });
    }

    /// Every refresh token is revoked: IMS answers `invalid_grant` from now on.
    pub fn revoke_refresh_tokens(&self) {
        self.with(|s| s.refresh_tokens.clear());
    }

    /// How many token requests IMS received.
    pub fn token_requests(&self) -> usize {
        self.with(|s| s.grants.len())
    }

    /// Every token issued so far stops working (IMS and static alike); IMS can issue new ones.
    pub fn expire_tokens(&self) {
        self.with(|s| s.valid_tokens.clear());
    }

    /// The next `n` API requests answer 429 (as Frame.io does: no `Retry-After`).
    pub fn rate_limit_next(&self, n: u32) {
        self.with(|s| s.rate_limit_next = n);
    }

    /// Comment lists wait until `open_comments` (to hold processing in flight).
    pub fn close_comments(&self) {
        self.comments_open.send_replace(false);
    }

    pub fn open_comments(&self) {
        self.comments_open.send_replace(true);
    }

    /// How many requests had this method and a path containing `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|(m, p)| m == method && p.contains(fragment))
                .count()
        })
    }

    pub fn grants(&self) -> Vec<String> {
        self.with(|s| s.grants.clone())
    }

    pub fn current_refresh_tokens(&self) -> Vec<String> {
        self.with(|s| s.refresh_tokens.iter().cloned().collect())
    }

    pub fn unauthorized(&self) -> u32 {
        self.with(|s| s.unauthorized)
    }

    /// The next `n` API requests answer 503.
    pub fn server_error_next(&self, n: u32) {
        self.with(|s| s.server_error_next = n);
    }

    /// This account's limit from now on: `limit` requests per `window_ms` (a leaky bucket).
    pub fn set_rate_limit(&self, limit: u32, window_ms: u64) {
        self.with(|s| {
            s.bucket = Bucket {
                limit: f64::from(limit),
                window_ms: window_ms as f64,
                ..Bucket::default()
            }
        });
    }

    /// Requests refused because the bucket was full (not the injected 429s).
    pub fn bucket_refused(&self) -> u32 {
        self.with(|s| s.bucket_refused)
    }

    pub fn rate_limited(&self) -> u32 {
        self.with(|s| s.rate_limited)
    }

    pub fn webhooks(&self) -> Vec<Value> {
        self.with(|s| s.webhooks.clone())
    }
}

/// Signs a delivery the way Frame.io does; returns (timestamp, signature).
pub fn sign_now(secret: &str, body: &str) -> (String, String) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = rushes::frameio::webhook::sign(secret.as_bytes(), &ts, body.as_bytes());
    (ts, sig)
}

/// A delivery body with exactly Frame.io's fields.
pub fn delivery(kind: &str, resource_type: &str, resource_id: &str) -> String {
    json!({
        "type": kind,
        "resource": {"id": resource_id, "type": resource_type},
        "account": {"id": ACCOUNT},
        "workspace": {"id": WORKSPACE},
        "project": {"id": "proj-1"},
        "user": {"id": "user-1"}
    })
    .to_string()
}

/// Posts `body` signed with `secret` to `url`; returns the status.
pub async fn deliver(client: &reqwest::Client, url: &str, secret: &str, body: &str) -> u16 {
    deliver_answer(client, url, secret, body)
        .await
        .status()
        .as_u16()
}

/// Posts `body` signed with `secret` to `url`; returns the whole answer.
pub async fn deliver_answer(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &str,
) -> reqwest::Response {
    let (ts, sig) = sign_now(secret, body);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("X-Frameio-Request-Timestamp", ts)
        .header("X-Frameio-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .expect("POST delivery")
}

/// Records the request and checks the bearer token; `Err` is the answer to give instead.
#[allow(clippy::result_large_err)] // a test server: the answer is returned as is
pub(super) fn gate(
    state: &Arc<Mutex<Fake>>,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let mut s = state.lock().expect("lock");
    s.requests.push((method.to_string(), path.to_string()));
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.valid_tokens.contains(token) {
        s.unauthorized += 1;
        return Err(errors(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    if s.server_error_next > 0 {
        s.server_error_next -= 1;
        return Err(errors(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        ));
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        s.rate_limited += 1;
        return Err(errors(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"));
    }
    Ok(())
}

async fn ims_token(
    State((state, _)): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().expect("lock");
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    s.grants.push(grant.clone());
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "bad client"})),
        )
            .into_response();
    }
    s.issued += 1;
    let access = format!("ims-access-{}", s.issued);
    let mut answer = json!({"access_token": access, "token_type": "bearer", "expires_in": 86399});
    match grant.as_str() {
        "refresh_token" => {
            let given = form.get("refresh_token").cloned().unwrap_or_default();
            if !s.refresh_tokens.remove(&given) {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "refresh token unknown or used"}))).into_response();
            }
            // Rotation: the old refresh token is spent, a new one is issued.
            let rotated = format!("refresh-{}", s.issued);
            s.refresh_tokens.insert(rotated.clone());
            answer["refresh_token"] = json!(rotated);
        }
        "client_credentials" => {
            if form.get("scope").map(String::as_str) != Some("openid AdobeID frame.s2s.all") {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_scope"})),
                )
                    .into_response();
            }
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    }
    s.valid_tokens.insert(access);
    Json(answer).into_response()
}

async fn file(
    State((state, _)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "GET",
        &format!("/v4/accounts/{a}/files/{f}"),
        &headers,
    ) {
        return r;
    }
    let s = state.lock().expect("lock");
    match s.files.get(&f) {
        Some(file) => {
            let mut data = json!({"id": f, "name": format!("{f}.mov"), "status": file.file_status, "type": "file"});
            if let Some(up) = s.uploads.files.get(&f) {
                data["name"] = json!(up.name);
                data["parent_id"] = json!(up.parent);
            }
            if q.get("include")
                .is_some_and(|i| i.split(',').any(|x| x.trim() == "metadata"))
            {
                data["metadata"] = metadata_fields(file);
            }
            Json(json!({"data": data})).into_response()
        }
        None => errors(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn metadata_fields(file: &FakeFile) -> Value {
    let value = match &file.status {
        Some(option) => json!([{"id": "opt", "display_name": option}]),
        None => json!([]),
    };
    json!([
        {"field_definition_id": "fd-rating", "field_definition_name": "Rating", "field_type": "rating", "value": 4},
        {"field_definition_id": "fd-status", "field_definition_name": "Status", "field_type": "select", "value": value}
    ])
}

async fn metadata(
    State((state, _)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "GET",
        &format!("/v4/accounts/{a}/files/{f}/metadata"),
        &headers,
    ) {
        return r;
    }
    let s = state.lock().expect("lock");
    let Some(file) = s.files.get(&f) else {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    };
    Json(json!({"data": {"file_id": f, "metadata": metadata_fields(file)}})).into_response()
}

async fn comments(
    State((state, open)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v4/accounts/{a}/files/{f}/comments");
    if let Err(r) = gate(&state, "GET", &path, &headers) {
        return r;
    }
    let mut rx = open.subscribe();
    let _ = rx.wait_for(|open| *open).await;
    let s = state.lock().expect("lock");
    let Some(file) = s.files.get(&f) else {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    };
    let size: usize = q
        .get("page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    // The cursor is opaque to clients: here, the hex of the start index.
    let start = q
        .get("after")
        .and_then(|c| usize::from_str_radix(c.trim_start_matches("cur"), 16).ok())
        .unwrap_or(0);
    // Like the real API: `owner` and `replies` only when included.
    let include: Vec<&str> = q
        .get("include")
        .map(|i| i.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let shown = |c: &Value| {
        let mut c = c.clone();
        if let Some(o) = c.as_object_mut() {
            if !include.contains(&"owner") {
                o.remove("owner");
            }
            if include.contains(&"replies") {
                let replies: Vec<Value> = o
                    .get("replies")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .map(|r| {
                                let mut r = r.clone();
                                if !include.contains(&"owner")
                                    && let Some(ro) = r.as_object_mut()
                                {
                                    ro.remove("owner");
                                }
                                r
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                o.insert("replies".into(), Value::Array(replies));
            } else {
                o.remove("replies");
            }
        }
        c
    };
    let page: Vec<Value> = file
        .comments
        .iter()
        .skip(start)
        .take(size)
        .map(shown)
        .collect();
    // The real links.next carries the cursor only: include and page_size are not repeated.
    let next =
        (start + size < file.comments.len()).then(|| format!("{path}?after=cur{:x}", start + size));
    Json(json!({"data": page, "links": {"next": next}})).into_response()
}

async fn comment(
    State((state, _)): State<Shared>,
    Path((a, c)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "GET",
        &format!("/v4/accounts/{a}/comments/{c}"),
        &headers,
    ) {
        return r;
    }
    let s = state.lock().expect("lock");
    let file_id = s.comment_files.get(&c).cloned().unwrap_or_default();
    let found = s.files.get(&file_id).and_then(|file| {
        file.comments.iter().find_map(|x| {
            if x["id"] == c.as_str() {
                return Some(x.clone());
            }
            // Replies are comments too: shown with their file id.
            x.get("replies")
                .and_then(Value::as_array)
                .and_then(|r| r.iter().find(|r| r["id"] == c.as_str()))
                .map(|r| {
                    let mut r = r.clone();
                    r["file_id"] = json!(file_id);
                    r
                })
        })
    });
    match found {
        Some(x) => Json(json!({"data": x})).into_response(),
        None => errors(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn list_webhooks(
    State((state, _)): State<Shared>,
    Path((a, w)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v4/accounts/{a}/workspaces/{w}/webhooks");
    if let Err(r) = gate(&state, "GET", &path, &headers) {
        return r;
    }
    let s = state.lock().expect("lock");
    // Small pages, so that the client must follow links.next.
    let start = q
        .get("after")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = s.webhooks.iter().skip(start).take(2).cloned().collect();
    let next = (start + 2 < s.webhooks.len()).then(|| format!("{path}?after={}", start + 2));
    Json(json!({"data": page, "links": {"next": next}})).into_response()
}

async fn create_webhook(
    State((state, _)): State<Shared>,
    Path((a, w)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = gate(
        &state,
        "POST",
        &format!("/v4/accounts/{a}/workspaces/{w}/webhooks"),
        &headers,
    ) {
        return r;
    }
    let data = &body["data"];
    if !data["name"].is_string() || !data["url"].is_string() || !data["events"].is_array() {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name, url and events are required",
        );
    }
    let mut s = state.lock().expect("lock");
    s.next_webhook += 1;
    let hook = json!({
        "id": format!("wh-{}", s.next_webhook), "name": data["name"], "url": data["url"],
        "events": data["events"], "active": true, "workspace_id": w,
    });
    s.webhooks.push(hook.clone());
    let mut shown = hook;
    shown["secret"] = json!(format!("whsec-{}-s3cret", s.next_webhook));
    (StatusCode::CREATED, Json(json!({"data": shown}))).into_response()
}

async fn show_webhook(
    State((state, _)): State<Shared>,
    Path((a, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "GET",
        &format!("/v4/accounts/{a}/webhooks/{id}"),
        &headers,
    ) {
        return r;
    }
    let s = state.lock().expect("lock");
    match s.webhooks.iter().find(|h| h["id"] == id.as_str()) {
        Some(h) => Json(json!({"data": h})).into_response(),
        None => errors(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn patch_webhook(
    State((state, _)): State<Shared>,
    Path((a, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = gate(
        &state,
        "PATCH",
        &format!("/v4/accounts/{a}/webhooks/{id}"),
        &headers,
    ) {
        return r;
    }
    let mut s = state.lock().expect("lock");
    let Some(h) = s.webhooks.iter_mut().find(|h| h["id"] == id.as_str()) else {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    };
    for key in ["url", "events", "name", "active"] {
        if let Some(v) = body["data"].get(key) {
            h[key] = v.clone();
        }
    }
    Json(json!({"data": h.clone()})).into_response()
}

async fn delete_webhook(
    State((state, _)): State<Shared>,
    Path((a, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "DELETE",
        &format!("/v4/accounts/{a}/webhooks/{id}"),
        &headers,
    ) {
        return r;
    }
    let mut s = state.lock().expect("lock");
    let before = s.webhooks.len();
    s.webhooks.retain(|h| h["id"] != id.as_str());
    if s.webhooks.len() == before {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    }
    StatusCode::NO_CONTENT.into_response()
}
