//! `rushes download URL`: one file with the service's transfer code (resume, naming, fallback),
//! a progress bar on a terminal and plain lines otherwise.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{ResolverSettings, SegmentSettings};
use crate::domain::UrlRole;
use crate::download::resolve;
use crate::download::resolved::{self, Fetch, Target};
use crate::download::transfer::{
    self, Job, JobUrl, Observer, Progress, Segment, Segmenting, TransferError,
};
use crate::naming::SafeFileName;
use crate::net::RetryPolicy;
use crate::text::human_bytes;

#[derive(Debug, Clone, clap::Args)]
pub struct DownloadArgs {
    /// The file's URL (http or https)
    pub url: String,
    /// Final file name (sanitised); default: Content-Disposition, else the URL's last segment
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Folder to save into
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// A second URL tried when the first one fails (like the source link behind an R2 copy)
    #[arg(long, value_name = "URL")]
    pub fallback: Option<String>,
    /// Connect and read timeout in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

fn parse_http(raw: &str, what: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("{what} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err(format!("{what} must be an http or https URL")),
    }
}

/// Runs the download until done, failed or `shutdown`.
pub async fn run(
    args: DownloadArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let primary = parse_http(&args.url, "URL").map_err(anyhow::Error::msg)?;
    let mut urls = vec![JobUrl::plain(UrlRole::Primary, primary.clone())];
    if let Some(raw) = &args.fallback {
        urls.push(JobUrl::plain(
            UrlRole::Fallback,
            parse_http(raw, "--fallback").map_err(anyhow::Error::msg)?,
        ));
    }
    if let Some(name) = &args.name
        && SafeFileName::new(name).is_none()
    {
        anyhow::bail!("--name {name:?} has no usable characters left once sanitised");
    }
    let settings = SegmentSettings::from_process_env()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    // The part of an interrupted run: by `--name` when given, else the one this URL left in
    // this folder (its `.source` sidecar holds a digest of the URL).
    let source = source_key(&primary);
    let resume = match args.name.as_deref() {
        Some(n) => Some(crate::naming::download_name(
            Some(n),
            None,
            &primary,
            "download",
            false,
        ))
        .map(|n| args.out.join(format!("{n}.part")))
        .filter(|p| p.is_file()),
        None => part_of_source(&args.out, &source),
    };
    let job = Job {
        urls,
        forced_name: args.name.clone(),
        name_link: primary.clone(),
        fallback_name: "download".into(),
        dir: args.out.clone(),
        // A `.part` left by an interrupted run with the same --name is resumed with the validator
        // its response had (kept beside it); without one it restarts, since resuming could
        // splice two versions of the file.
        resume: resume.clone().map(|part| transfer::Resume {
            validator: read_validator(&part),
            total: None,
            part,
        }),
        inline_writes: true,
        // Segments of an interrupted segmented run are kept beside the part, like the validator.
        segments: Segmenting {
            count: settings.count,
            min_size: settings.min_size,
            resume: resume.as_deref().map(read_segments).unwrap_or_default(),
        },
    };
    let client = transfer::client(Duration::from_secs(args.timeout.max(1)))?;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let resolvers = ResolverSettings::from_process_env()?;
    if resolve::for_link(&resolvers, &primary).is_some() {
        return download_resolved(&args, &primary, &resolvers, &settings, &cancel).await;
    }
    Ok(fetch(&client, &job, resume, &cancel).await)
}

/// One job with a progress display; the exit code says how it ended.
async fn fetch(
    client: &reqwest::Client,
    job: &Job,
    resume: Option<PathBuf>,
    cancel: &CancellationToken,
) -> ExitCode {
    let mut observer = CliObserver::new(std::io::stderr().is_terminal());
    observer.source = Some(source_key(&job.name_link));
    let result =
        transfer::download(client, job, &mut observer, &RetryPolicy::default(), cancel).await;
    observer.end_line();
    match result {
        Ok(f) => {
            for part in observer.part.iter().chain(resume.iter()) {
                let _ = std::fs::remove_file(validator_path(part));
                let _ = std::fs::remove_file(sidecar(part, "segments"));
                let _ = std::fs::remove_file(sidecar(part, "source"));
            }
            let secs = f.elapsed.as_secs_f64().max(0.001);
            println!(
                "saved {} ({} bytes, sha256 {}) from the {} URL in {:.1} s, {}/s",
                f.path.display(),
                f.bytes,
                f.sha256,
                f.served_by.map_or("given", UrlRole::as_str),
                secs,
                human_bytes(f.fetched as f64 / secs)
            );
            ExitCode::SUCCESS
        }
        Err(TransferError::Cancelled) => {
            eprintln!("interrupted{}", kept(&observer.part));
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("download failed: {e}{}", kept(&observer.part));
            ExitCode::from(1)
        }
    }
}

/// A share link resolved into files (SwissTransfer): each one downloaded in turn into the
/// transfer's own folder (`--name`, else its message, else its link id; numbered when another
/// transfer has that folder), resumable like any.
async fn download_resolved(
    args: &DownloadArgs,
    link: &Url,
    resolvers: &ResolverSettings,
    settings: &SegmentSettings,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let retry = RetryPolicy::default();
    let fetch = Fetch {
        settings: resolvers,
        segments: settings,
        timeout: Duration::from_secs(args.timeout.max(1)),
        retry: &retry,
        cancel,
        inline_writes: true,
    };
    let target = Target {
        link,
        password: None,
        parent: &args.out,
        forced_name: args.name.as_deref(),
        fallback_name: link
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map_or_else(|| "transfer".into(), |s| format!("transfer-{s}")),
        owner: resolved::owner_key("link", link.as_str()),
        hint: None,
    };
    let transfer = match resolved::open(&fetch, &target).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot resolve {}: {e}", crate::net::redact(link));
            return Ok(ExitCode::from(1));
        }
    };
    match transfer.credits_left() {
        Some(left) => eprintln!(
            "{} file(s) into {}; this download uses one of the transfer's {left} download credits",
            transfer.files(),
            transfer.dir().display()
        ),
        None => eprintln!(
            "{} file(s) into {}",
            transfer.files(),
            transfer.dir().display()
        ),
    }
    let resume = |part: &Path| Some((read_validator(part), read_segments(part)));
    let mut observer = CliObserver::new(std::io::stderr().is_terminal());
    let result = transfer.fetch(&fetch, &resume, &mut observer).await;
    observer.end_line();
    match result {
        Ok(f) => {
            observer.forget_sidecars();
            let sums = std::fs::read_to_string(f.path.join("SHA256SUMS")).unwrap_or_default();
            for line in sums.lines() {
                println!("{line}");
            }
            println!(
                "saved {} ({} bytes in all; SHA256SUMS sha256 {})",
                f.path.display(),
                f.bytes,
                f.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(resolved::ResolvedError::File {
            source: TransferError::Cancelled,
            ..
        }) => {
            eprintln!("interrupted{}", kept(&observer.part));
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            eprintln!("download failed: {e}{}", kept(&observer.part));
            Ok(ExitCode::from(1))
        }
    }
}

/// Beside `x.part`, `x.part.validator` holds the ETag or Last-Modified of the response it came from,
/// so a later run can resume with `If-Range`.
fn validator_path(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".validator");
    PathBuf::from(name)
}

fn sidecar(part: &Path, what: &str) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".");
    name.push(what);
    PathBuf::from(name)
}

/// `x.part.segments`: one `start end done` line per segment.
fn read_segments(part: &Path) -> Vec<Segment> {
    let Ok(text) = std::fs::read_to_string(sidecar(part, "segments")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines().take(10_000) {
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match n[..] {
            [start, end, done] if start < end && done <= end - start => {
                out.push(Segment { start, end, done })
            }
            _ => return Vec::new(), // damaged: start over rather than guess
        }
    }
    out
}

fn write_segments(part: &Path, segments: &[Segment]) -> std::io::Result<()> {
    let path = sidecar(part, "segments");
    if segments.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let text: String = segments
        .iter()
        .map(|s| format!("{} {} {}\n", s.start, s.end, s.done))
        .collect();
    let tmp = sidecar(part, "segments.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

fn read_validator(part: &Path) -> Option<String> {
    std::fs::read_to_string(validator_path(part))
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() < 1024 && !v.contains(['\r', '\n']))
}

fn kept(part: &Option<PathBuf>) -> String {
    match part {
        Some(p) if p.exists() => format!(
            " (partial file kept: {}); run the same command again (same URL and --out) to resume",
            p.display()
        ),
        _ => String::new(),
    }
}

/// What identifies a download's source in its `.source` sidecar: a digest of the URL, never the
/// URL itself (a signed query string is a credential).
fn source_key(url: &Url) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(url.as_str().as_bytes()))
}

/// The `.part` in `dir` an interrupted download of the same URL left (the newest, if several).
fn part_of_source(dir: &Path, key: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .take(100_000)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let part = dir.join(name.strip_suffix(".source")?);
            let text = std::fs::read_to_string(e.path()).ok()?;
            (text.trim() == key && part.is_file() && part.extension()? == "part").then(|| {
                let modified = part.metadata().and_then(|m| m.modified()).ok();
                (modified, part)
            })
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, part)| part)
}

fn eta(seconds: Option<u64>) -> String {
    match seconds {
        Some(s) => format!("{}:{:02}", s / 60, s % 60),
        None => "?".into(),
    }
}

struct CliObserver {
    tty: bool,
    part: Option<PathBuf>,
    /// Every part of this run (a resolved transfer has one per file).
    parts: Vec<PathBuf>,
    /// `source_key` of the URL, written beside a part so that the same command finds it again.
    source: Option<String>,
    last_line: Option<Instant>,
    drawn: bool,
}

impl CliObserver {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            part: None,
            parts: Vec::new(),
            source: None,
            last_line: None,
            drawn: false,
        }
    }

    /// The validator and segments kept beside the parts, once the files are complete.
    fn forget_sidecars(&self) {
        for part in &self.parts {
            let _ = std::fs::remove_file(validator_path(part));
            let _ = std::fs::remove_file(sidecar(part, "segments"));
            let _ = std::fs::remove_file(sidecar(part, "source"));
        }
    }

    fn end_line(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Observer for CliObserver {
    async fn part_chosen(
        &mut self,
        part: &Path,
        name: &SafeFileName,
        validator: Option<&str>,
        total: Option<u64>,
    ) -> Result<(), String> {
        // Best effort: without these the next run restarts from zero instead of resuming.
        if let Some(key) = &self.source {
            let _ = std::fs::write(sidecar(part, "source"), key);
        }
        let sidecar = validator_path(part);
        match validator {
            Some(v) => {
                let _ = std::fs::write(&sidecar, v);
            }
            None => {
                let _ = std::fs::remove_file(&sidecar);
            }
        }
        if self.part.as_deref() != Some(part) {
            self.end_line();
            eprintln!(
                "downloading {name} ({})",
                total.map_or_else(|| "size unknown".to_string(), |t| human_bytes(t as f64))
            );
        }
        self.part = Some(part.to_path_buf());
        if !self.parts.iter().any(|p| p == part) {
            self.parts.push(part.to_path_buf());
        }
        // Plain lines start after a first interval, once the speed means something.
        self.last_line.get_or_insert_with(Instant::now);
        Ok(())
    }

    async fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), String> {
        if let Some(error) = error {
            self.end_line();
            eprintln!("{role} URL {shown_url}, try {try_number}: {error}");
        }
        Ok(())
    }

    async fn progress(&mut self, p: Progress) {
        let percent = p.total.filter(|t| *t > 0).map(|t| p.bytes * 100 / t);
        let of = p
            .total
            .map_or_else(String::new, |t| format!(" / {}", human_bytes(t as f64)));
        let speed = match p.segments {
            n if n > 1 => format!("{}/s over {n} connections", human_bytes(p.speed_bps as f64)),
            _ => format!("{}/s", human_bytes(p.speed_bps as f64)),
        };
        if self.tty {
            let width = 24usize;
            let filled = percent.map_or(0, |pc| (pc as usize * width / 100).min(width));
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled));
            eprint!(
                "\r[{bar}] {:>3}% {}{of}  {speed}  ETA {}   ",
                percent.map_or_else(|| "?".to_string(), |p| p.to_string()),
                human_bytes(p.bytes as f64),
                eta(p.eta_s)
            );
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            let now = Instant::now();
            if self
                .last_line
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(2))
            {
                return;
            }
            self.last_line = Some(now);
            eprintln!(
                "{}{of}{} at {speed}, ETA {}",
                human_bytes(p.bytes as f64),
                percent.map_or_else(String::new, |p| format!(" ({p}%)")),
                eta(p.eta_s)
            );
        }
    }

    async fn segments(&mut self, segments: &[Segment]) -> Result<(), String> {
        match &self.part {
            Some(part) => write_segments(part, segments)
                .map_err(|e| format!("cannot save the segments beside {}: {e}", part.display())),
            None => Ok(()),
        }
    }

    async fn before_rename(
        &mut self,
        _final_path: &Path,
        _sha256: &str,
        _bytes: u64,
    ) -> Result<(), String> {
        Ok(())
    }
}
