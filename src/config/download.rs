//! Download settings: how many at once, dry run, and the completion hook.

use super::{ConfigError, Env, Overrides};

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
pub(super) struct DownloadSettings {
    pub download_concurrency: usize,
    pub dry_run_downloads: bool,
    pub on_download_complete: Option<HookCommand>,
    pub download_max_age: Option<std::time::Duration>,
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
    Ok(DownloadSettings {
        download_concurrency,
        dry_run_downloads: o.dry_run_downloads || env.switch("DRY_RUN_DOWNLOADS")?,
        on_download_complete: Env::parse(
            "ON_DOWNLOAD_COMPLETE",
            env.get("ON_DOWNLOAD_COMPLETE"),
            HookCommand::parse,
        )?,
        download_max_age: Env::age_limit(
            "DOWNLOAD_MAX_AGE",
            env.pick(&o.download_max_age, "DOWNLOAD_MAX_AGE"),
            Some(DEFAULT_MAX_AGE),
        )?,
    })
}
