//! What the Frame.io v4 API gives and takes besides files: comments (with their replies and
//! authors), webhooks, and the "Status" field of a file's metadata.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most replies read under one comment.
const MAX_REPLIES: usize = 500;

/// A comment as the API gives it; only `id` is required.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Comment {
    pub id: String,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub owner: Option<Value>,
    /// Replies nested under the comment (`include=replies`).
    #[serde(default)]
    pub replies: Option<Vec<Comment>>,
}

impl Comment {
    /// Comments and their replies as one list (a reply inherits its comment's file id).
    pub fn flatten(comments: Vec<Comment>) -> Vec<Comment> {
        let mut out = Vec::with_capacity(comments.len());
        for mut c in comments {
            let replies = c.replies.take().unwrap_or_default();
            let file_id = c.file_id.clone();
            out.push(c);
            for mut r in replies.into_iter().take(MAX_REPLIES) {
                r.replies = None;
                if r.file_id.is_none() {
                    r.file_id = file_id.clone();
                }
                out.push(r);
            }
        }
        out
    }

    /// Who wrote it, when `include=owner` gave a name or an email.
    pub fn author(&self) -> Option<String> {
        let owner = self.owner.as_ref()?;
        ["name", "display_name", "email"]
            .iter()
            .find_map(|k| owner.get(*k).and_then(Value::as_str))
            .map(str::to_string)
    }
}

/// A webhook as listed; `secret` only comes back from creation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Webhook {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, alias = "is_active")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

/// Fields to change on a webhook (`None` = leave as is).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WebhookPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl WebhookPatch {
    pub fn is_empty(&self) -> bool {
        self.url.is_none() && self.events.is_none() && self.active.is_none()
    }
}

/// Finds the "Status" field in a file's metadata and returns the chosen option's name.
/// Accepts `{"metadata": [{"field_definition_name": "Status", "value": [...]}]}` and close variants
/// (`name` / `field_definition.name`; value as a string, an option object or a list of either).
pub fn status_from_metadata(data: &Value) -> Option<String> {
    let fields = data
        .get("metadata")
        .or_else(|| data.get("fields"))
        .and_then(Value::as_array)
        .or_else(|| data.as_array())?;
    let field = fields.iter().find(|f| {
        let name = f
            .get("field_definition_name")
            .or_else(|| f.get("name"))
            .or_else(|| f.get("field_definition").and_then(|d| d.get("name")))
            .and_then(Value::as_str);
        name.is_some_and(|n| n.trim().eq_ignore_ascii_case("status"))
    })?;
    option_name(field.get("value")?)
}

fn option_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Array(items) => items.iter().find_map(option_name),
        Value::Object(o) => ["display_name", "name", "value"]
            .iter()
            .find_map(|k| o.get(*k))
            .and_then(option_name),
        _ => None,
    }
}
