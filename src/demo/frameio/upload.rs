//! The stand-in's uploads: `local_upload` (a file and its presigned part URLs on this same
//! server), the part `PUT`s checked as S3 checks a presigned request and read at
//! [`UPLOAD_RATE`](super::UPLOAD_RATE), the processing after the last part (`file.upload.completed`,
//! then `file.ready`), version stacks and moving a file into one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};

use super::hooks::deliver;
use super::{
    BURST_KIB, File, FileStatus, Inner, MAX_FILE_SIZE, MAX_FILES, MAX_PARTS, PART_SIZE, PROCESSING,
    data, errors, file_json, not_found,
};

fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "mov" => "video/quicktime",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

pub(super) async fn local_upload(
    State(inner): State<Arc<Inner>>,
    Path((_, folder)): Path<(String, String)>,
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
    let count = size.div_ceil(PART_SIZE).clamp(1, MAX_PARTS) as usize;
    let created = {
        let mut books = inner.books();
        if books.files.len() >= MAX_FILES {
            return errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the demo holds no more files",
            );
        }
        let id = books.next("file");
        let signature = format!("{:016x}", rand::random::<u64>());
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ");
        let urls: Vec<Value> = (0..count)
            .map(|i| json!({"size": size.div_ceil(count as u64), "url": format!(
                "{}/upload/{id}/part_{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={amz_date}&X-Amz-Expires=3600&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-acl&X-Amz-Signature={signature}",
                inner.base, i + 1)}))
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
            ready_announced: false,
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
) -> Result<u64, (StatusCode, &'static str)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if idx >= file.parts.len() || query.get("X-Amz-Signature") != Some(&file.signature) {
        return Err((StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    }
    if header("authorization").is_some() {
        return Err((StatusCode::BAD_REQUEST, "InvalidArgument"));
    }
    if header("x-amz-acl") != Some("private") || header("content-type") != Some(file.media_type) {
        return Err((StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    }
    let expected = file.part_len(idx);
    match header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Some(length) if length == expected => Ok(expected),
        Some(_) => Err((StatusCode::BAD_REQUEST, "IncompleteBody")),
        None => Err((StatusCode::LENGTH_REQUIRED, "MissingContentLength")),
    }
}

pub(super) async fn put_part(
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
            Err((status, code)) => return s3_error(status, code),
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

/// After the last part: `file.upload.completed`, then transcoding, then `file.ready`; the file
/// counts as announced only once that delivery was answered, so that a comment sent after it
/// reaches rushes after it (a comment first would put the upload in review before `ready`).
pub(super) async fn process(inner: Arc<Inner>, id: String) {
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
        if let Some(file) = inner.books().files.get_mut(&id) {
            file.ready_announced = true;
        }
        inner.bump();
    }
}

pub(super) async fn version_stack(
    State(inner): State<Arc<Inner>>,
    Path((_, folder)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let ids: Vec<String> = body["data"]["file_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let stack = {
        let mut books = inner.books();
        if ids.len() < 2 || ids.len() > 50 || ids.iter().any(|id| !books.files.contains_key(id)) {
            return errors(
                StatusCode::UNPROCESSABLE_ENTITY,
                "file_ids: two existing files",
            );
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

pub(super) async fn move_file(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(parent) = body["data"]["parent_id"].as_str() else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "data.parent_id is required",
        );
    };
    let mut books = inner.books();
    let Some(file) = books.files.get_mut(&f) else {
        return not_found();
    };
    file.parent = parent.to_string();
    data(json!({"id": f, "type": "file", "parent_id": parent}))
}
