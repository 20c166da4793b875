//! The stand-in's files and comments: a file with its "Status" metadata, the upload status,
//! deleting a file, comments with their replies nested (`owner` and `replies` only when
//! included) in pages with an `after` cursor, and one comment (or reply) by id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Inner, MAX_PAGE, data, file_json, not_found, status_fields};

pub(super) async fn file(
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

pub(super) async fn metadata(
    State(inner): State<Arc<Inner>>,
    Path((_, f)): Path<(String, String)>,
) -> Response {
    let books = inner.books();
    match books.files.get(&f) {
        Some(file) => {
            data(json!({"file_id": f, "metadata": status_fields(file.status_option.as_deref())}))
        }
        None => not_found(),
    }
}

pub(super) async fn upload_status(
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

pub(super) async fn delete_file(
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

pub(super) async fn comments(
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
    let next = (start + size < file.comments.len()).then(|| {
        format!(
            "/v4/accounts/{a}/files/{f}/comments?after=c{}",
            start + size
        )
    });
    Json(json!({"data": page, "links": {"next": next}})).into_response()
}

pub(super) async fn comment(
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

#[cfg(test)]
mod tests {
    use super::*;

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
