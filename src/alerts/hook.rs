//! `ON_REVIEW_CHANGE`: a command run on each verdict change, without a shell, in a clean
//! environment like `ON_DOWNLOAD_COMPLETE`'s: `PATH`, `HOME`, `LANG`, the `RUSHES_UPLOAD_*`
//! variables and the names in `ON_REVIEW_CHANGE_ENV`, never rushes' own secrets. Text from
//! outside (names, comments) is cleaned (no control characters, at most 1 KiB); the command is
//! killed after 30 minutes; the end of its output is kept.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::config::HookCommand;
use crate::store::VerdictChange;

const BASE_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];
const MAX_TEXT: usize = 1024;
const OUTPUT_TAIL: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct Outcome {
    pub exit_code: Option<i64>,
    pub output: String,
}

fn clean(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

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
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.env_clear();
    for name in BASE_ENV
        .iter()
        .copied()
        .chain(allow.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("RUSHES_UPLOAD_")) {
        cmd.env(k, clean(v));
    }
    let child = cmd
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                exit_code: None,
                output: format!("cannot start {}: {e}", command.program),
            };
        }
    };
    match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Err(_) => Outcome {
            exit_code: None,
            output: format!("killed after {} s", TIMEOUT.as_secs()),
        },
        Ok(Err(e)) => Outcome {
            exit_code: None,
            output: format!("waiting for the command failed: {e}"),
        },
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            let start = all.len().saturating_sub(OUTPUT_TAIL);
            Outcome {
                exit_code: out.status.code().map(i64::from),
                output: String::from_utf8_lossy(&all[start..]).into_owned(),
            }
        }
    }
}
