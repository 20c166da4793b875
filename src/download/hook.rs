//! `ON_DOWNLOAD_COMPLETE`: the next pipeline step, started without a shell. Feed data reaches it
//! only through environment variables, never through the command line.

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

/// What the hook is told about the file.
#[derive(Debug, Clone)]
pub struct HookInput<'a> {
    pub file: &'a Path,
    pub delivery_id: i64,
    pub provider: &'a str,
    pub original_filename: Option<&'a str>,
}

pub async fn run(command: &HookCommand, input: &HookInput<'_>) -> HookOutcome {
    let child = tokio::process::Command::new(&command.program)
        .args(&command.args)
        .env("RUSHES_FILE", input.file)
        .env("RUSHES_DELIVERY_ID", input.delivery_id.to_string())
        .env("RUSHES_PROVIDER", input.provider)
        .env(
            "RUSHES_ORIGINAL_FILENAME",
            input.original_filename.unwrap_or(""),
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
