//! `ON_DOWNLOAD_COMPLETE`: the next pipeline step, run by the ground floor's runner
//! ([`crate::hook`]: no shell, clean environment, bounded time and output). Feed data reaches it
//! only through the `RUSHES_*` variables below, cleaned, never through the command line; the
//! names listed in `ON_DOWNLOAD_COMPLETE_ENV` are passed through.

use std::path::Path;

use crate::config::HookCommand;
use crate::hook::{self, clean_text};

pub use crate::hook::Outcome as HookOutcome;

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

pub async fn run(command: &HookCommand, input: &HookInput<'_>) -> HookOutcome {
    let file_name = input
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let vars = [
        ("RUSHES_FILE", input.file.as_os_str().to_owned()),
        ("RUSHES_FILE_NAME", file_name.into()),
        ("RUSHES_DELIVERY_ID", input.delivery_id.to_string().into()),
        ("RUSHES_PROVIDER", clean_text(input.provider).into()),
        (
            "RUSHES_ORIGINAL_FILENAME",
            clean_text(input.original_filename.unwrap_or("")).into(),
        ),
    ];
    hook::run(command, input.allow_env, &vars).await
}
