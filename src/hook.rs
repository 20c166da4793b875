//! Running a user's command (`ON_DOWNLOAD_COMPLETE`, `ON_REVIEW_CHANGE`): without a shell, in a
//! clean environment (`PATH`, `HOME`, `LANG`, the names the user allows, and the `RUSHES_*`
//! variables the caller passes), never rushes' own secrets. Text from outside reaches the command
//! only through variables, cleaned first (no NUL or control characters, at most `MAX_TEXT` bytes),
//! so a hostile name cannot stop it from starting. The command is killed after `TIMEOUT`; the end
//! of its output is kept.

use std::process::Stdio;
use std::time::Duration;

use crate::config::HookCommand;

/// Longest output kept (the end of it), in bytes.
pub const OUTPUT_TAIL: usize = 4096;
/// A command running longer than this is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest outside text passed in one variable, in bytes.
pub const MAX_TEXT: usize = 1024;
/// Variables of rushes' environment the command always gets (when set).
pub const BASE_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// What the command did: its exit code (`None` when killed or not started) and output tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: Option<i64>,
    pub output: String,
}

/// Outside text as a command may receive it: control characters (NUL included) become spaces,
/// and the text is cut to `MAX_TEXT` bytes on a character boundary.
pub fn clean_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_TEXT));
    for c in raw.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

/// Runs `command` with the base variables, the `allow`ed names of rushes' environment, and
/// `vars` (set as given: the caller cleans outside text with [`clean_text`]).
pub async fn run<K, V>(command: &HookCommand, allow: &[String], vars: &[(K, V)]) -> Outcome
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
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
    for (name, value) in vars {
        cmd.env(name, value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_cleaned_and_bounded() {
        assert_eq!(clean_text("a\0b\nc"), "a b c");
        let long = "é".repeat(3_000_000);
        let cleaned = clean_text(&long);
        assert!(cleaned.len() <= MAX_TEXT && cleaned.len() > MAX_TEXT - 4);
        assert_eq!(clean_text("a $(x) `y`.mov"), "a $(x) `y`.mov");
    }
}
