//! The fake Frame.io's folder listing (`GET /v4/accounts/{a}/folders/{folder}/children`: the
//! files and version stacks of a folder, `{"data": [...], "links": {"next": ...}}` with an
//! opaque `after` cursor and `page_size`, as v4 lists) and the faults of an ambiguous create:
//! `local_upload` makes the file, then its answer is lost (a 500, an answer that never comes, a
//! connection cut in the middle of the answer).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fake_frameio::{FakeFrameio, Shared, errors, gate};

/// What happens to the answer of a `local_upload` that made its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFault {
    /// 500 Internal Server Error.
    ServerError,
    /// No answer for ten minutes (the client's timeout runs out first).
    Hang,
    /// The answer's head, part of its body, then the connection is cut.
    Reset,
}

impl CreateFault {
    pub(super) async fn answer(self, body: Value) -> Response {
        match self {
            Self::ServerError => errors(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Self::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                (StatusCode::CREATED, Json(body)).into_response()
            }
            Self::Reset => {
                let text = body.to_string();
                let half = Bytes::from(text.as_bytes()[..text.len() / 2].to_vec());
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(half),
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset",
                    )),
                ];
                let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
                *response.status_mut() = StatusCode::CREATED;
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().expect("header"));
                response
            }
        }
    }
}

pub(super) async fn children(
    State((state, _)): State<Shared>,
    Path((a, folder)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v4/accounts/{a}/folders/{folder}/children");
    if let Err(r) = gate(&state, "GET", &path, &headers) {
        return r;
    }
    let s = state.lock().expect("lock");
    let up = &s.uploads;
    let mut items: Vec<Value> = up
        .created
        .iter()
        .filter_map(|id| up.files.get(id).map(|f| (id, f)))
        .filter(|(_, f)| !f.deleted && f.parent == folder)
        .map(|(id, f)| {
            json!({
                "id": id, "name": f.name, "type": "file", "file_size": f.size,
                "media_type": f.media_type, "parent_id": folder, "project_id": "proj-1",
                "status": s.files.get(id).map(|x| x.file_status.clone()),
                "created_at": f.created_at, "updated_at": f.created_at,
                "view_url": format!("https://next.frame.io/project/proj-1/view/{id}"),
            })
        })
        .collect();
    items.extend(
        up.stacks
            .iter()
            .filter(|(_, f, _)| *f == folder)
            .map(|(id, _, _)| json!({"id": id, "type": "version_stack", "parent_id": folder})),
    );
    let size: usize = q
        .get("page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let start = q
        .get("after")
        .and_then(|c| usize::from_str_radix(c.trim_start_matches("cur"), 16).ok())
        .unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(start).take(size).cloned().collect();
    let next = (start + size < items.len()).then(|| format!("{path}?after=cur{:x}", start + size));
    Json(json!({"data": page, "links": {"next": next}})).into_response()
}

/// What tests set and read.
impl FakeFrameio {
    /// The next `local_upload` calls make their file, then lose their answer this way.
    pub fn fail_next_creates(&self, faults: &[CreateFault]) {
        self.uploads(|u| u.create_faults.extend(faults.iter().copied()));
    }

    /// Files of `folder` (made, not deleted, not moved into a version stack) named `name`.
    pub fn live_files_named(&self, name: &str) -> Vec<String> {
        self.uploads(|u| {
            u.created
                .iter()
                .filter(|id| {
                    u.files
                        .get(*id)
                        .is_some_and(|f| !f.deleted && f.name == name)
                })
                .cloned()
                .collect()
        })
    }
}
