//! A fake FromSmash on 127.0.0.1:0 with the routes of FromSmash's public SDK (smash-sdk-js), all
//! under one base (`SMASH_API_BASE`): `POST /iam/<region>/account` (anonymous account ->
//! `account.token.token`), `GET /link/target/<host+path>` -> `target.{target, region}`,
//! `GET /transfer/<region>/transfer/<id>/preview` -> `transfer.{id, title, status, …}`,
//! `GET /transfer/<region>/transfer/<id>/files/preview?limit&start` -> `{files, next}` (one file
//! per page, to exercise paging), and the signed download URLs `GET /files/<id>/<n>?sig=…`.
//! Every API call but the account needs `Authorization: Bearer <the account's token>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const TOKEN: &str = "anon-token-0001";
const REGION: &str = "eu-west-1";

#[derive(Debug, Clone)]
pub struct SmashTransfer {
    /// `fromsmash.com/<this>`
    pub link_id: String,
    pub transfer_id: String,
    pub title: String,
    pub status: String,
    pub files: Vec<(String, Vec<u8>)>,
    /// Where the signed `download` URLs point (default: this fake's own `/files/…`).
    pub download_base: Option<String>,
}

#[derive(Default)]
struct Inner {
    transfers: Vec<SmashTransfer>,
    requests: u32,
    unauthorized: u32,
    file_requests: u32,
}

type Shared = (Arc<Mutex<Inner>>, SocketAddr);

#[derive(Clone)]
pub struct FakeSmash {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSmash {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/iam/{region}/account", post(account))
            .route("/link/target/{target}", get(target))
            .route("/transfer/{region}/transfer/{id}/preview", get(preview))
            .route("/transfer/{region}/transfer/{id}/files/preview", get(files))
            .route("/files/{id}/{n}", get(file))
            .with_state((inner.clone(), addr));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    /// `SMASH_API_BASE` for rushes.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add(&self, t: SmashTransfer) {
        self.inner.lock().expect("lock").transfers.push(t);
    }

    /// API calls seen (account, target, preview, files), and how many came without the token.
    pub fn requests(&self) -> (u32, u32) {
        let i = self.inner.lock().expect("lock");
        (i.requests, i.unauthorized)
    }

    pub fn file_requests(&self) -> u32 {
        self.inner.lock().expect("lock").file_requests
    }
}

fn authorized(inner: &mut Inner, headers: &HeaderMap) -> bool {
    inner.requests += 1;
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !ok {
        inner.unauthorized += 1;
    }
    ok
}

fn error(status: StatusCode, name: &str) -> Response {
    (
        status,
        Json(json!({ "name": name, "code": status.as_u16() })),
    )
        .into_response()
}

async fn account(State((inner, _)): State<Shared>, Path(region): Path<String>) -> Response {
    inner.lock().expect("lock").requests += 1;
    Json(json!({ "account": {
        "id": "acc-0001", "username": "", "region": region,
        "token": { "type": "Bearer", "token": TOKEN, "issuedAt": "2026-01-08T20:19:38Z", "expiration": "2026-01-09T20:19:38Z" },
        "refreshToken": { "token": "refresh-0001", "issuedAt": "2026-01-08T20:19:38Z", "expiration": "2026-02-08T20:19:38Z" },
    }}))
    .into_response()
}

async fn target(
    State((inner, _)): State<Shared>,
    Path(target): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    if !authorized(&mut inner, &headers) {
        return error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    }
    match inner
        .transfers
        .iter()
        .find(|t| format!("fromsmash.com/{}", t.link_id) == target)
    {
        Some(t) => Json(json!({ "target": {
            "url": format!("https://fromsmash.com/{}", t.link_id),
            "source": target,
            "target": t.transfer_id,
            "region": REGION,
        }}))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFoundError"),
    }
}

async fn preview(
    State((inner, _)): State<Shared>,
    Path((region, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    if !authorized(&mut inner, &headers) {
        return error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    }
    match inner.transfers.iter().find(|t| t.transfer_id == id && region == REGION) {
        Some(t) => Json(json!({ "transfer": {
            "id": t.transfer_id, "size": t.files.iter().map(|f| f.1.len()).sum::<usize>(),
            "title": t.title, "region": REGION, "domain": "fromsmash.com", "status": t.status,
            "filesNumber": t.files.len().to_string(), "transferUrl": format!("https://fromsmash.com/{}", t.link_id),
            "download": "https://example.invalid/zip",
        }}))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFoundError"),
    }
}

async fn files(
    State((inner, addr)): State<Shared>,
    Path((region, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    if !authorized(&mut inner, &headers) {
        return error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
    }
    let Some(t) = inner
        .transfers
        .iter()
        .find(|t| t.transfer_id == id && region == REGION)
    else {
        return error(StatusCode::NOT_FOUND, "NotFoundError");
    };
    let start: usize = query
        .get("start")
        .and_then(|s| s.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = t
        .files
        .iter()
        .enumerate()
        .skip(start)
        .take(1)
        .map(|(n, (name, body))| {
            json!({
                "id": format!("file-{n}"), "ext": "mov", "size": body.len(), "name": name, "crc32": 0,
                "preview": "", "thumbnail": "",
                "download": format!(
                    "{}/files/{}/{n}?sig=signed-{n}",
                    t.download_base.clone().unwrap_or_else(|| format!("http://{addr}")),
                    t.transfer_id
                ),
            })
        })
        .collect();
    let next = (start + 1 < t.files.len()).then(|| format!("page-{}", start + 1));
    Json(json!({ "files": page, "next": next, "urlsExpiredAt": "2026-01-09T20:19:38Z" }))
        .into_response()
}

async fn file(
    State((inner, _)): State<Shared>,
    Path((id, n)): Path<(String, usize)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    inner.file_requests += 1;
    let body = inner
        .transfers
        .iter()
        .find(|t| t.transfer_id == id)
        .and_then(|t| t.files.get(n))
        .filter(|_| query.get("sig") == Some(&format!("signed-{n}")))
        .map(|f| f.1.clone());
    match body {
        Some(b) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            b,
        )
            .into_response(),
        None => error(StatusCode::FORBIDDEN, "AccessDenied"),
    }
}
