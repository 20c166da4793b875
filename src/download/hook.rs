//! `ON_DOWNLOAD_COMPLETE`: the next pipeline step, started without a shell. Feed data reaches it
//! only through environment variables, never through the command line. The child gets a clean
//! environment: `PATH`, `HOME`, `LANG`, the `RUSHES_*` variables below and the names listed in
//! `ON_DOWNLOAD_COMPLETE_ENV`, never rushes' own secrets (API token, Frame.io keys, feed URL).
//! Feed text is cleaned first (no NUL or control characters, at most `MAX_FEED_TEXT` bytes), so a
//! hostile name cannot stop the hook from starting.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::config::HookCommand;

/// Longest output kept (the end of it), in bytes.
pub const OUTPUT_TAIL: usize = 4096;
/// A hook running longer than this is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What the hook did: its exit code (`None` when killed or not started) and output tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    pub exit_code: Option<i64>,
    pub output: String,
}

/// Longest feed text passed to the hook, in bytes.
pub const MAX_FEED_TEXT: usize = 1024;
/// Variables of rushes' environment the hook always gets (when set).
pub const BASE_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// What the hook is told about the file.
#[derive(Debug, Clone)]
pub struct HookInput<'a> {
    pub file: &'a Path,
    pub delivery_id: i64,
    pub provider: &'a str,
    pub original_filename: Option<&'a str>,
    /// `ON_DOWNLOAD_COMPLETE_ENV`: further variable names passed through.
    pub allow_env: &'a [String],
}

/// Feed text as the hook may receive it: control characters (NUL included) become spaces,
/// and the text is cut to `MAX_FEED_TEXT` bytes on a character boundary.
pub fn clean_feed_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_FEED_TEXT));
    for c in raw.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_FEED_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

pub async fn run(command: &HookCommand, input: &HookInput<'_>) -> HookOutcome {
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.env_clear();
    for name in BASE_ENV
        .iter()
        .copied()
        .chain(input.allow_env.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    let file_name = input
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let child = cmd
        .args(&command.args)
        .env("RUSHES_FILE", input.file)
        .env("RUSHES_FILE_NAME", file_name)
        .env("RUSHES_DELIVERY_ID", input.delivery_id.to_string())
        .env("RUSHES_PROVIDER", clean_feed_text(input.provider))
        .env(
            "RUSHES_ORIGINAL_FILENAME",
            clean_feed_text(input.original_filename.unwrap_or("")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return HookOutcome {
                exit_code: None,
                output: format!("cannot start {}: {e}", command.program),
            };
        }
    };
    match tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output()).await {
        Err(_) => HookOutcome {
            exit_code: None,
            output: format!("killed after {} s", HOOK_TIMEOUT.as_secs()),
        },
        Ok(Err(e)) => HookOutcome {
            exit_code: None,
            output: format!("waiting for the command failed: {e}"),
        },
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            let start = all.len().saturating_sub(OUTPUT_TAIL);
            HookOutcome {
                exit_code: out.status.code().map(i64::from),
                output: String::from_utf8_lossy(&all[start..]).into_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_text_is_cleaned_and_bounded() {
        assert_eq!(clean_feed_text("a\0b\nc"), "a b c");
        let long = "é".repeat(3_000_000);
        let cleaned = clean_feed_text(&long);
        assert!(cleaned.len() <= MAX_FEED_TEXT && cleaned.len() > MAX_FEED_TEXT - 4);
        assert_eq!(clean_feed_text("a $(x) `y`.mov"), "a $(x) `y`.mov");
    }
}
