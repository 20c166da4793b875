//! `ON_REVIEW_CHANGE`: a command run on each verdict change by the ground floor's runner
//! ([`crate::hook`], like `ON_DOWNLOAD_COMPLETE`): the `RUSHES_UPLOAD_*` variables, cleaned, and
//! the names in `ON_REVIEW_CHANGE_ENV`, never rushes' own secrets.

use std::collections::BTreeMap;

use crate::config::HookCommand;
use crate::hook::{self, clean_text as clean};
use crate::store::VerdictChange;

pub use crate::hook::Outcome;

/// The `RUSHES_UPLOAD_*` variables of a verdict change.
pub fn upload_env(
    change: &VerdictChange,
    comment: Option<&(String, Option<String>)>,
) -> BTreeMap<&'static str, String> {
    let mut env = BTreeMap::new();
    env.insert("RUSHES_UPLOAD_ID", clean(&change.upload_id));
    env.insert("RUSHES_UPLOAD_FILE_ID", clean(&change.file_id));
    env.insert(
        "RUSHES_UPLOAD_NAME",
        clean(change.name.as_deref().unwrap_or("")),
    );
    env.insert("RUSHES_UPLOAD_STATE", change.to_state.as_str().to_string());
    env.insert(
        "RUSHES_UPLOAD_PREVIOUS_STATE",
        change
            .from_state
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    );
    env.insert("RUSHES_UPLOAD_CAUSE", change.cause.as_str().to_string());
    env.insert("RUSHES_UPLOAD_REASON", clean(&change.reason));
    env.insert(
        "RUSHES_UPLOAD_VERSION",
        change.version.map(|v| v.to_string()).unwrap_or_default(),
    );
    env.insert(
        "RUSHES_UPLOAD_VIEW_URL",
        clean(change.view_url.as_deref().unwrap_or("")),
    );
    env.insert(
        "RUSHES_UPLOAD_COMMENT",
        comment.map(|(t, _)| clean(t)).unwrap_or_default(),
    );
    env.insert(
        "RUSHES_UPLOAD_COMMENT_AUTHOR",
        comment
            .and_then(|(_, a)| a.as_deref())
            .map(clean)
            .unwrap_or_default(),
    );
    env.insert("RUSHES_UPLOAD_CHANGED_AT", change.at.text());
    env
}

pub async fn run(command: &HookCommand, vars: &[(String, String)], allow: &[String]) -> Outcome {
    let vars: Vec<(&str, String)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("RUSHES_UPLOAD_"))
        .map(|(k, v)| (k.as_str(), clean(v)))
        .collect();
    hook::run(command, allow, &vars).await
}
