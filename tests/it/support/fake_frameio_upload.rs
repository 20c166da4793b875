//! The upload side of the fake Frame.io v4: `local_upload` (a placeholder file and presigned part
//! URLs on this same server, signed with `X-Amz-Date`/`X-Amz-Expires` like S3's), the part `PUT`s
//! checked the way S3 checks a presigned request (`x-amz-acl: private`, `Content-Type` = the
//! file's media type, a known `Content-Length` of exactly the even part size, no
//! `Authorization`, no chunked body, an unexpired URL), the upload status, deleting a file,
//! version stacks and moving a file into one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::fake_frameio::{FakeFile, FakeFrameio, Shared, errors, gate};

/// One file made by `local_upload`.
pub struct UpFile {
    pub name: String,
    pub folder: String,
    pub size: u64,
    pub media_type: Option<String>,
    /// Accepted parts' bytes, by index.
    pub parts: Vec<Option<Vec<u8>>>,
    pub signature: String,
    pub expired: bool,
    pub deleted: bool,
    pub parent: String,
    /// When `local_upload` made it (RFC 3339, as the API dates things).
    pub created_at: String,
}

impl UpFile {
    fn part_len(&self, idx: usize) -> u64 {
        let n = self.parts.len() as u64;
        let each = self.size.div_ceil(n);
        let start = (each * idx as u64).min(self.size);
        let end = if idx + 1 == self.parts.len() {
            self.size
        } else {
            (start + each).min(self.size)
        };
        end - start
    }

    fn complete(&self) -> bool {
        !self.deleted && self.parts.iter().all(Option::is_some)
    }
}

pub struct Uploads {
    next: u32,
    pub files: HashMap<String, UpFile>,
    /// File ids in the order they were made.
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// Every PUT received: (file, part index).
    pub puts: Vec<(String, usize)>,
    /// PUTs refused for a wrong request (what S3 would refuse), with the reason.
    pub refusals: Vec<String>,
    /// URLs per file (0: one per MiB, at least 1, at most 8).
    pub parts_per_file: usize,
    /// Make URLs that have already expired.
    pub expired_urls: bool,
    /// The next PUTs answer 500.
    pub fail_next_puts: u32,
    /// PUTs of this part index wait until released.
    hold: Arc<watch::Sender<Option<usize>>>,
    pub stacks: Vec<(String, String, Vec<String>)>,
    pub moves: Vec<(String, String)>,
    /// The next version stacks are made, then answered 500.
    pub stack_faults: u32,
    /// Faults of the next `local_upload` calls, in order (the file is made, the answer lost).
    pub create_faults: std::collections::VecDeque<super::fake_frameio_children::CreateFault>,
}

impl Default for Uploads {
    fn default() -> Self {
        Self {
            next: 0,
            files: HashMap::new(),
            created: Vec::new(),
            deleted: Vec::new(),
            puts: Vec::new(),
            refusals: Vec::new(),
            parts_per_file: 0,
            expired_urls: false,
            fail_next_puts: 0,
            hold: Arc::new(watch::channel(None).0),
            stacks: Vec::new(),
            moves: Vec::new(),
            create_faults: std::collections::VecDeque::new(),
            stack_faults: 0,
        }
    }
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/v4/accounts/{a}/folders/{folder}/files/local_upload",
            post(local_upload),
        )
        .route("/v4/accounts/{a}/files/{f}/status", get(status))
        .route(
            "/v4/accounts/{a}/folders/{folder}/version_stacks",
            post(version_stack),
        )
        .route("/v4/accounts/{a}/files/{f}/move", patch(move_file))
        .route(
            "/v4/accounts/{a}/folders/{folder}/children",
            get(super::fake_frameio_children::children),
        )
        .route("/s3/{f}/{part}", put(put_part))
}

fn media_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "mov" => Some("video/quicktime"),
        "mp4" => Some("video/mp4"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        _ => None,
    }
}

fn amz_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

async fn local_upload(
    State((state, _)): State<Shared>,
    Path((a, folder)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v4/accounts/{a}/folders/{folder}/files/local_upload");
    if let Err(r) = gate(&state, "POST", &path, &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(name), Some(size)) = (
        body["data"]["name"].as_str(),
        body["data"]["file_size"].as_u64(),
    ) else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "data.name and data.file_size are required",
        );
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let (fault, data) = {
        let mut s = state.lock().expect("lock");
        let up = &mut s.uploads;
        up.next += 1;
        let id = format!("file-up-{}", up.next);
        let count = match up.parts_per_file {
            0 => (size.div_ceil(1 << 20) as usize).clamp(1, 8),
            n => n,
        };
        let signature = format!("{:016x}", rand_u64(up.next));
        let signed_at = if up.expired_urls {
            chrono::Utc::now() - chrono::Duration::hours(3)
        } else {
            chrono::Utc::now()
        };
        // Announced sizes are floor-based (not what an even ceil split gives): a client must not trust them.
        let floor = size / count as u64;
        let urls: Vec<Value> = (0..count)
        .map(|i| {
            let announced = if i + 1 == count {
                size - floor * (count as u64 - 1)
            } else {
                floor
            };
            json!({"size": announced, "url": format!(
                "http://{host}/s3/{id}/part_{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={}&X-Amz-Expires=3600&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-acl&X-Amz-Signature={signature}",
                i + 1, amz_date(signed_at))})
        })
        .collect();
        let mt = media_type(name);
        up.files.insert(
            id.clone(),
            UpFile {
                name: name.to_string(),
                folder: folder.clone(),
                size,
                media_type: mt.map(str::to_string),
                parts: vec![None; count],
                signature,
                expired: up.expired_urls,
                deleted: false,
                parent: folder.clone(),
                created_at: chrono::Utc::now().to_rfc3339(),
            },
        );
        up.created.push(id.clone());
        let fault = up.create_faults.pop_front();
        s.files.insert(id.clone(), FakeFile::with_status("created"));
        let data = json!({
            "id": id, "name": name, "status": "created", "type": "file", "file_size": size,
            "media_type": mt, "parent_id": folder, "project_id": "proj-1",
            "created_at": chrono::Utc::now().to_rfc3339(), "upload_urls": urls,
            "view_url": format!("https://next.frame.io/project/proj-1/view/{id}"),
        });
        (fault, data)
    };
    if let Some(fault) = fault {
        return fault.answer(json!({"data": data})).await;
    }
    (StatusCode::CREATED, Json(json!({"data": data}))).into_response()
}

fn rand_u64(seed: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(seed) << 32)
}

/// S3-like XML error.
fn s3_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>"),
    )
        .into_response()
}

async fn put_part(
    State((state, _)): State<Shared>,
    Path((f, part)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idx) = part
        .strip_prefix("part_")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
    else {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    let hold = state.lock().expect("lock").uploads.hold.subscribe();
    let mut hold = hold;
    let _ = hold.wait_for(|h| *h != Some(idx)).await;
    let mut s = state.lock().expect("lock");
    let up = &mut s.uploads;
    up.puts.push((f.clone(), idx));
    let refuse = |up: &mut Uploads, status: StatusCode, code: &str, why: String| {
        up.refusals.push(why);
        s3_error(status, code)
    };
    let Some(file) = up.files.get(&f) else {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    };
    let (deleted, count, signature, expired) = (
        file.deleted,
        file.parts.len(),
        file.signature.clone(),
        file.expired,
    );
    let expected_type = file
        .media_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let expected = if idx < count { file.part_len(idx) } else { 0 };
    if deleted {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    }
    if idx >= count || q.get("X-Amz-Signature") != Some(&signature) {
        return s3_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    if expired {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("authorization").is_some() {
        return refuse(
            up,
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Authorization header with a presigned URL".into(),
        );
    }
    if header("x-amz-acl") != Some("private") {
        return refuse(
            up,
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!("x-amz-acl {:?}", header("x-amz-acl")),
        );
    }
    if header("content-type") != Some(expected_type.as_str()) {
        return refuse(
            up,
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!(
                "Content-Type {:?}, expected {expected_type:?}",
                header("content-type")
            ),
        );
    }
    if header("transfer-encoding").is_some() {
        return refuse(
            up,
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "chunked transfer encoding".into(),
        );
    }
    let Some(length) = header("content-length").and_then(|v| v.parse::<u64>().ok()) else {
        return refuse(
            up,
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "no Content-Length".into(),
        );
    };
    if length != expected || body.len() as u64 != expected {
        return refuse(
            up,
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            format!("part {idx}: {length} bytes, expected {expected}"),
        );
    }
    if up.fail_next_puts > 0 {
        up.fail_next_puts -= 1;
        return s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
    }
    let Some(file) = up.files.get_mut(&f) else {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload");
    };
    file.parts[idx] = Some(body.to_vec());
    let complete = file.complete();
    if complete && let Some(f) = s.files.get_mut(&f) {
        f.file_status = "uploaded".into();
    }
    StatusCode::OK.into_response()
}

async fn status(
    State((state, _)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "GET",
        &format!("/v4/accounts/{a}/files/{f}/status"),
        &headers,
    ) {
        return r;
    }
    let s = state.lock().expect("lock");
    match s.uploads.files.get(&f) {
        Some(file) if !file.deleted => Json(json!({"data": {
            "id": f, "upload_complete": file.complete(),
            "uploaded_parts": file.parts.iter().filter(|p| p.is_some()).count(),
        }}))
        .into_response(),
        _ => errors(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn delete_file(
    State((state, _)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        "DELETE",
        &format!("/v4/accounts/{a}/files/{f}"),
        &headers,
    ) {
        return r;
    }
    let mut s = state.lock().expect("lock");
    if s.files.remove(&f).is_none() {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    }
    if let Some(file) = s.uploads.files.get_mut(&f) {
        file.deleted = true;
    }
    s.uploads.deleted.push(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn version_stack(
    State((state, _)): State<Shared>,
    Path((a, folder)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v4/accounts/{a}/folders/{folder}/version_stacks");
    if let Err(r) = gate(&state, "POST", &path, &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let ids: Vec<String> = body["data"]["file_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut s = state.lock().expect("lock");
    if ids.len() < 2 || ids.iter().any(|id| !s.files.contains_key(id)) {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "file_ids: two existing files",
        );
    }
    let stack = format!("vs-{}", s.uploads.stacks.len() + 1);
    for id in &ids {
        if let Some(f) = s.uploads.files.get_mut(id) {
            f.parent = stack.clone();
        }
    }
    s.uploads.stacks.push((stack.clone(), folder.clone(), ids));
    if s.uploads.stack_faults > 0 {
        s.uploads.stack_faults -= 1;
        return errors(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let data = json!({"id": stack, "type": "version_stack", "parent_id": folder});
    (StatusCode::CREATED, Json(json!({"data": data}))).into_response()
}

async fn move_file(
    State((state, _)): State<Shared>,
    Path((a, f)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(
        &state,
        "PATCH",
        &format!("/v4/accounts/{a}/files/{f}/move"),
        &headers,
    ) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(parent) = body["data"]["parent_id"].as_str() else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "data.parent_id is required",
        );
    };
    let mut s = state.lock().expect("lock");
    if !s.files.contains_key(&f) {
        return errors(StatusCode::NOT_FOUND, "Not Found");
    }
    if let Some(file) = s.uploads.files.get_mut(&f) {
        file.parent = parent.to_string();
    }
    s.uploads.moves.push((f.clone(), parent.to_string()));
    Json(json!({"data": {"id": f, "type": "file", "parent_id": parent}})).into_response()
}

/// What tests set and read.
impl FakeFrameio {
    pub fn uploads<T>(&self, f: impl FnOnce(&mut Uploads) -> T) -> T {
        self.with(|s| f(&mut s.uploads))
    }

    /// The bytes Frame.io holds for a file (its accepted parts joined), when complete.
    pub fn uploaded_bytes(&self, file: &str) -> Option<Vec<u8>> {
        self.uploads(|u| {
            let f = u.files.get(file)?;
            f.complete()
                .then(|| f.parts.iter().flatten().flatten().copied().collect())
        })
    }

    /// PUTs of part `idx` (0-based) wait until [`FakeFrameio::release_parts`].
    pub fn hold_part(&self, idx: usize) {
        self.uploads(|u| u.hold.send_replace(Some(idx)));
    }

    pub fn release_parts(&self) {
        self.uploads(|u| u.hold.send_replace(None));
    }

    /// Files that exist (made and not deleted).
    pub fn live_upload_files(&self) -> Vec<String> {
        self.uploads(|u| {
            u.created
                .iter()
                .filter(|id| u.files.get(*id).is_some_and(|f| !f.deleted))
                .cloned()
                .collect()
        })
    }

    /// The parent (folder or version stack) of a made file.
    pub fn parent_of(&self, file: &str) -> Option<String> {
        self.uploads(|u| u.files.get(file).map(|f| f.parent.clone()))
    }

    /// How many PUTs each part of `file` received.
    pub fn puts_per_part(&self, file: &str) -> Vec<usize> {
        self.uploads(|u| {
            let n = u.files.get(file).map_or(0, |f| f.parts.len());
            (0..n)
                .map(|i| u.puts.iter().filter(|(f, p)| f == file && *p == i).count())
                .collect()
        })
    }

    /// The name a file was made with.
    pub fn name_of(&self, file: &str) -> Option<String> {
        self.uploads(|u| u.files.get(file).map(|f| f.name.clone()))
    }

    /// Folder of a made file.
    pub fn folder_of(&self, file: &str) -> Option<String> {
        self.uploads(|u| u.files.get(file).map(|f| f.folder.clone()))
    }
}
