//! Download settings: where files land, how many at once, dry run, the age limit, the completion
//! hook, segmented transfers and the transfer hosts' resolvers.

use std::path::PathBuf;

use super::transfers::{self, ResolverSettings, SegmentSettings};
use super::{ConfigError, Env, Overrides, hardening};

/// `ON_DOWNLOAD_COMPLETE`: a program and its arguments, split into words like a shell would
/// (quotes, backslashes) but never run through one, so feed data cannot be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    pub program: String,
    pub args: Vec<String>,
}

impl HookCommand {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err("unclosed single quote".into()),
                        }
                    }
                }
                '"' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c) => word.push(c),
                                None => return Err("unclosed double quote".into()),
                            },
                            Some(c) => word.push(c),
                            None => return Err("unclosed double quote".into()),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    if let Some(c) = chars.next() {
                        word.push(c);
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        let mut words = words.into_iter();
        let program = words.next().ok_or("empty command")?;
        Ok(Self {
            program,
            args: words.collect(),
        })
    }
}

/// The download settings as read.
/// The downloads' settings.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// `LOCAL_DOWNLOADS_DIR`: where downloads land.
    pub dir: PathBuf,
    /// `DOWNLOAD_CONCURRENCY`: downloads at once, 0 = paused.
    pub concurrency: usize,
    /// `DRY_RUN_DOWNLOADS`: automatic deliveries recorded as dry_run, nothing fetched.
    pub dry_run: bool,
    /// `ON_DOWNLOAD_COMPLETE`: the next pipeline step.
    pub on_complete: Option<HookCommand>,
    /// `ON_DOWNLOAD_COMPLETE_ENV`: names of further variables the hook may see.
    pub hook_env: Vec<String>,
    /// `DOWNLOAD_MAX_AGE`: automatic records whose `created_at` is older than this when first
    /// seen become `available` instead of `queued`. `None` = no limit.
    pub max_age: Option<std::time::Duration>,
    /// `DOWNLOAD_SEGMENTS`, `DOWNLOAD_SEGMENT_MIN` (transfers.rs).
    pub segments: SegmentSettings,
    /// `SWISSTRANSFER_AUTO`, `SMASH_AUTO`, ... (transfers.rs).
    pub resolvers: ResolverSettings,
}

impl DownloadSettings {
    /// Into `dir`, 3 at once, no age limit (tests use fixed dates), no hook, and no real
    /// SwissTransfer (a test turns it on with a fake).
    pub fn into_dir(dir: PathBuf) -> Self {
        Self {
            dir,
            concurrency: 3,
            dry_run: false,
            on_complete: None,
            hook_env: Vec::new(),
            max_age: None,
            segments: SegmentSettings::default(),
            resolvers: ResolverSettings {
                swisstransfer: false,
                ..ResolverSettings::default()
            },
        }
    }
}

/// `DOWNLOAD_MAX_AGE` when unset: a week.
pub const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

pub(super) fn read(env: &Env<'_>, o: &Overrides) -> Result<DownloadSettings, ConfigError> {
    let download_concurrency = Env::parse(
        "DOWNLOAD_CONCURRENCY",
        env.pick(&o.download_concurrency, "DOWNLOAD_CONCURRENCY"),
        |raw| {
            raw.parse::<usize>()
                .ok()
                .filter(|n| *n <= 64)
                .ok_or_else(|| {
                    "expected a whole number from 0 (downloads paused) to 64".to_string()
                })
        },
    )?
    .unwrap_or(3);
    let dir = env
        .pick(&o.downloads_dir, "LOCAL_DOWNLOADS_DIR")
        .unwrap_or_else(|| "./downloads".into());
    Ok(DownloadSettings {
        dir: PathBuf::from(dir),
        concurrency: download_concurrency,
        dry_run: o.dry_run_downloads || env.switch("DRY_RUN_DOWNLOADS")?,
        hook_env: hardening::hook_env(env)?,
        segments: transfers::read_segments(env)?,
        resolvers: transfers::read_resolvers(env)?,
        on_complete: Env::parse(
            "ON_DOWNLOAD_COMPLETE",
            env.get("ON_DOWNLOAD_COMPLETE"),
            HookCommand::parse,
        )?,
        max_age: Env::age_limit(
            "DOWNLOAD_MAX_AGE",
            env.pick(&o.download_max_age, "DOWNLOAD_MAX_AGE"),
            Some(DEFAULT_MAX_AGE),
        )?,
    })
}
