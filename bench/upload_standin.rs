//! A local stand-in of Frame.io's upload endpoints for `bench/upload.sh` (not a test): the v4
//! `local_upload` call (presigned URLs on this server, `PART_MIB` MiB each), the part `PUT`s
//! (each body read to its end and dropped), the upload status, and `PUT /sink/...` for `curl -T`
//! of the same bytes. Prints `listening <addr>` and serves until killed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt as _;
use serde_json::{Value, json};

#[derive(Default)]
struct Files {
    next: u32,
    /// File id -> (parts, parts received).
    parts: HashMap<String, (usize, usize)>,
}

type Shared = Arc<Mutex<Files>>;

async fn drain(body: Body) -> Result<u64, StatusCode> {
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        n += chunk.map_err(|_| StatusCode::BAD_REQUEST)?.len() as u64;
    }
    Ok(n)
}

async fn local_upload(
    State(files): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let size = body["data"]["file_size"].as_u64().unwrap_or(0);
    let part: u64 = std::env::var("PART_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
        << 20;
    let count = size.div_ceil(part).max(1) as usize;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
    f.next += 1;
    let id = format!("bench-{}", f.next);
    f.parts.insert(id.clone(), (count, 0));
    let urls: Vec<Value> = (1..=count)
        .map(|i| json!({"size": part.min(size), "url": format!("http://{host}/s3/{id}/part_{i}?X-Amz-Signature=x")}))
        .collect();
    (
        StatusCode::CREATED,
        Json(
            json!({"data": {"id": id, "name": body["data"]["name"], "status": "created",
            "file_size": size, "media_type": null, "upload_urls": urls,
            "view_url": format!("http://{host}/view/{id}")}}),
        ),
    )
}

async fn put_part(
    State(files): State<Shared>,
    Path((id, _part)): Path<(String, String)>,
    body: Body,
) -> StatusCode {
    if drain(body).await.is_err() {
        return StatusCode::BAD_REQUEST;
    }
    let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = f.parts.get_mut(&id) {
        p.1 += 1;
    }
    StatusCode::OK
}

async fn sink(body: Body) -> StatusCode {
    match drain(body).await {
        Ok(_) => StatusCode::OK,
        Err(s) => s,
    }
}

async fn status(
    State(files): State<Shared>,
    Path((_a, id)): Path<(String, String)>,
) -> Json<Value> {
    let f = files.lock().unwrap_or_else(|e| e.into_inner());
    let complete = f.parts.get(&id).is_some_and(|(n, got)| got >= n);
    Json(json!({"data": {"id": id, "upload_complete": complete}}))
}

async fn file(State(files): State<Shared>, Path((_a, id)): Path<(String, String)>) -> Json<Value> {
    let f = files.lock().unwrap_or_else(|e| e.into_inner());
    let complete = f.parts.get(&id).is_some_and(|(n, got)| got >= n);
    let status = if complete { "uploaded" } else { "created" };
    Json(json!({"data": {"id": id, "status": status}}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let files: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/v4/accounts/{a}/folders/{f}/files/local_upload",
            post(local_upload),
        )
        .route("/v4/accounts/{a}/files/{f}/status", get(status))
        .route("/v4/accounts/{a}/files/{f}", get(file))
        .route("/s3/{id}/{part}", put(put_part))
        .route("/sink/{name}", put(sink))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
