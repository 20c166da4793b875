//! How the engine runs: what `app.rs` gives it.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{HookCommand, ResolverSettings, SegmentSettings};
use crate::net::RetryPolicy;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dir: PathBuf,
    pub concurrency: usize,
    pub per_host: usize,
    pub dry_run: bool,
    pub on_complete: Option<HookCommand>,
    /// `ON_DOWNLOAD_COMPLETE_ENV`: variables the hook may see besides its own.
    pub hook_env: Vec<String>,
    pub retry: RetryPolicy,
    /// Connect and read timeout of each request.
    pub timeout: Duration,
    /// `DOWNLOAD_SEGMENTS` / `DOWNLOAD_SEGMENT_MIN`.
    pub segments: SegmentSettings,
    /// `SWISSTRANSFER_AUTO`...: manual links of these kinds are fetched too (`resolved.rs`).
    pub resolvers: ResolverSettings,
}
