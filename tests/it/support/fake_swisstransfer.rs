//! A fake SwissTransfer on 127.0.0.1:0 following the API its open-source client uses:
//! `GET /api/links/<linkUUID>` (`Authorization`: the password base64-encoded) answers
//! `{"data": {linkUUID, containerUUID, downloadHost, downloadCounterCredit, expiredDate,
//! container: {UUID, needPassword, message, numberOfFile, files: [{UUID, fileName,
//! fileSizeInBytes, path, mimeType}]}}}`; `POST /api/generateDownloadToken` with
//! `{password, containerUUID, fileUUID}` answers a quoted token; `GET
//! /api/download/<linkUUID>/<fileUUID>[?token=…]` serves the file. Error states: 404 with
//! `data.type` `expired` / `wait_virus_check`, 401 `need_password` / `wrong_password`, and a
//! container whose `downloadCounterCredit` is 0 or 1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

/// What the fake answers for one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferState {
    #[default]
    Ready,
    Expired,
    VirusCheck,
}

#[derive(Debug, Clone, Default)]
pub struct FakeTransfer {
    pub state: TransferState,
    pub password: Option<String>,
    pub credit: i64,
    pub message: String,
    /// (file UUID, name, bytes)
    pub files: Vec<(String, String, Vec<u8>)>,
    /// `path` of a file in the container, by file UUID (default "").
    pub paths: HashMap<String, String>,
    /// `downloadHost` as answered (default: the `Host` the API was asked on).
    pub download_host: Option<String>,
    /// Downloads answer `302 Location: <this>` instead of the file.
    pub redirect: Option<String>,
}

#[derive(Default)]
struct Inner {
    transfers: HashMap<String, FakeTransfer>,
    downloads: u32,
    /// Download requests per file UUID.
    asked: HashMap<String, u32>,
    tokens_asked: u32,
    link_requests: u32,
}

#[derive(Clone)]
pub struct FakeSwissTransfer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSwissTransfer {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/api/links/{uuid}", get(link))
            .route("/api/generateDownloadToken", post(token))
            .route("/api/download/{link}/{file}", get(download))
            .with_state((inner.clone(), Arc::new(Mutex::new(None::<SocketAddr>))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    /// `SWISSTRANSFER_API_BASE` for rushes.
    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn add(&self, link_uuid: &str, transfer: FakeTransfer) {
        self.inner
            .lock()
            .expect("lock")
            .transfers
            .insert(link_uuid.to_string(), transfer);
    }

    /// The transfer's state from now on (a virus check that ends).
    pub fn set_state(&self, link_uuid: &str, state: TransferState) {
        if let Some(t) = self
            .inner
            .lock()
            .expect("lock")
            .transfers
            .get_mut(link_uuid)
        {
            t.state = state;
        }
    }

    /// Times `GET /api/links/<uuid>` was asked for.
    pub fn link_requests(&self) -> u32 {
        self.inner.lock().expect("lock").link_requests
    }

    pub fn downloads(&self) -> u32 {
        self.inner.lock().expect("lock").downloads
    }

    /// Download requests for the file `uuid` (served or not).
    pub fn asked_for(&self, uuid: &str) -> u32 {
        self.inner
            .lock()
            .expect("lock")
            .asked
            .get(uuid)
            .copied()
            .unwrap_or(0)
    }

    pub fn tokens_asked(&self) -> u32 {
        self.inner.lock().expect("lock").tokens_asked
    }
}

type Shared = (Arc<Mutex<Inner>>, Arc<Mutex<Option<SocketAddr>>>);

fn error(status: StatusCode, kind: &str) -> Response {
    (
        status,
        Json(json!({ "data": { "type": kind, "message": kind } })),
    )
        .into_response()
}

fn password_of(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

async fn link(
    State((inner, _)): State<Shared>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut inner = inner.lock().expect("lock");
    inner.link_requests += 1;
    let Some(t) = inner.transfers.get(&uuid) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    match t.state {
        TransferState::Expired => return error(StatusCode::NOT_FOUND, "expired"),
        TransferState::VirusCheck => return error(StatusCode::NOT_FOUND, "wait_virus_check"),
        TransferState::Ready => {}
    }
    if let Some(expected) = &t.password {
        match password_of(&headers) {
            None => return error(StatusCode::UNAUTHORIZED, "need_password"),
            Some(p) if &p != expected => return error(StatusCode::UNAUTHORIZED, "wrong_password"),
            Some(_) => {}
        }
    }
    let files: Vec<Value> = t
        .files
        .iter()
        .map(|(id, name, body)| {
            json!({
                "UUID": id,
                "fileName": name,
                "fileSizeInBytes": body.len(),
                "downloadCounter": 0,
                "path": t.paths.get(id).cloned().unwrap_or_default(),
                "mimeType": "application/octet-stream",
                "createdDate": "2026-01-08T20:19:38+00:00",
                "expiredDate": "2026-02-08T20:19:38+00:00",
            })
        })
        .collect();
    Json(json!({
        "data": {
            "linkUUID": uuid,
            "containerUUID": format!("container-{uuid}"),
            "downloadHost": t.download_host.clone().unwrap_or(host),
            "downloadCounterCredit": t.credit,
            "createdDate": "2026-01-08T20:19:38+00:00",
            "expiredDate": "2026-02-08T20:19:38+00:00",
            "isDownloadOnetime": 0,
            "container": {
                "UUID": format!("container-{uuid}"),
                "duration": 30,
                "needPassword": i32::from(t.password.is_some()),
                "message": t.message,
                "numberOfFile": t.files.len(),
                "lang": "fr_FR",
                "files": files,
            }
        }
    }))
    .into_response()
}

async fn token(State((inner, _)): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut inner = inner.lock().expect("lock");
    inner.tokens_asked += 1;
    let container = body["containerUUID"].as_str().unwrap_or("");
    let file = body["fileUUID"].as_str().unwrap_or("");
    let password = body["password"].as_str().unwrap_or("");
    let Some(t) = inner
        .transfers
        .iter()
        .find(|(uuid, _)| format!("container-{uuid}") == container)
        .map(|(_, t)| t)
    else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if t.password.as_deref() != Some(password) {
        return error(StatusCode::UNAUTHORIZED, "wrong_password");
    }
    (StatusCode::OK, format!("\"tok-{file}\"")).into_response()
}

async fn download(
    State((inner, _)): State<Shared>,
    Path((link, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    *inner.asked.entry(file.clone()).or_default() += 1;
    let Some(t) = inner.transfers.get_mut(&link) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if t.password.is_some() && query.get("token") != Some(&format!("tok-{file}")) {
        return error(StatusCode::UNAUTHORIZED, "need_password");
    }
    if t.credit <= 0 {
        return error(StatusCode::NOT_FOUND, "expired_download_quota");
    }
    let Some((_, name, body)) = t.files.iter().find(|(id, _, _)| *id == file).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if let Some(to) = t.redirect.clone() {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, to)
            .body(Body::empty())
            .expect("response");
    }
    t.credit -= 1;
    inner.downloads += 1;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ETAG, format!("\"{file}\""))
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from(body))
        .expect("response")
}
