//! `rushes feed check`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, FeedLocation, Overrides};
use crate::domain::Timestamp;
use crate::feed::check::{self, CheckLine, Summary, Would};
use crate::feed::source::{FeedSource, FetchResult, Validators};
use crate::logging;
use crate::text::human_bytes;

pub(super) struct CheckArgs {
    pub url: Option<String>,
    /// Print signed links (R2, presigned S3) with their query strings instead of `?…`.
    pub show_signed: bool,
    pub json: bool,
    pub sizes: bool,
    pub download_max_age: Option<String>,
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let show_signed = args.show_signed;
    logging::init_command();
    let overrides = Overrides {
        feed_url: args.url,
        download_max_age: args.download_max_age,
        ..Default::default()
    };
    let config = Config::load(&overrides)?;
    let location: FeedLocation = config.require_feed()?.clone();
    // With --json, stdout holds only the records: everything else goes to stderr.
    let say = |text: String| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    say(format!("feed: {location}"));
    let source = FeedSource::new(location, config.timeout, config.feed_timezone)
        .with_bearer(config.feed_auth_token.clone());
    let (result, attempts) = source
        .fetch(&Validators::default(), &CancellationToken::new())
        .await;
    let feed = match result {
        Ok(FetchResult::Fetched { feed, .. }) => feed,
        Ok(FetchResult::NotModified) => {
            say("not modified".into());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            say(format!("fetch failed after {attempts} attempt(s): {e}"));
            return Ok(ExitCode::from(1));
        }
    };
    let mut lines = check::plan(&feed, config.download_max_age, Timestamp::now());
    if !args.show_signed {
        for r in lines.iter_mut().filter_map(|l| l.record.as_mut()) {
            r.key = crate::web::api::shown_link(&r.key, false);
        }
    }
    drop(feed);
    if args.sizes {
        check::fetch_sizes(
            &mut lines,
            config.timeout.min(std::time::Duration::from_secs(10)),
        )
        .await;
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    for line in &lines {
        if args.json {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
        } else {
            write_text(&mut out, line, show_signed)?;
        }
    }
    out.flush()?;
    drop(out);
    say(summary_text(&Summary::of(&lines), config.download_max_age));
    Ok(ExitCode::SUCCESS)
}

fn write_text(out: &mut impl Write, line: &CheckLine, show_signed: bool) -> std::io::Result<()> {
    let Some(r) = &line.record else {
        return writeln!(
            out,
            "#{:<5} invalid: {}",
            line.index,
            line.reason.as_deref().unwrap_or("")
        );
    };
    let would = match r.duplicate_of {
        Some(first) => format!("duplicate of #{first}"),
        None => r.would.as_str().to_string(),
    };
    let name = r
        .file_name
        .as_deref()
        .map_or_else(|| "(from the server)".to_string(), |n| format!("{n:?}"));
    let size = match r.size {
        Some(Some(bytes)) => format!("  size={}", human_bytes(bytes as f64)),
        Some(None) => "  size=?".to_string(),
        None => String::new(),
    };
    // The R2 copy is a signed link: shown as `…/path?…` unless --show-signed.
    let r2 = if r.has_r2 {
        let shown = if show_signed {
            r.first_url.to_string()
        } else {
            crate::web::api::shown_link(r.first_url.as_str(), true)
        };
        format!("  (+r2 copy {shown})")
    } else {
        String::new()
    };
    writeln!(
        out,
        "#{:<5} {would:<18} {:<6} {:<13} {:<9} name={name}{size}  {}{r2}",
        line.index,
        r.format.as_str(),
        r.kind.as_str(),
        r.mode.as_str(),
        r.key,
    )
}

fn summary_text(s: &Summary, max_age: Option<std::time::Duration>) -> String {
    let counts = Would::ALL
        .iter()
        .map(|w| format!("{} {}", s.count(*w), w.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let age = max_age.map_or_else(
        || "no age limit".to_string(),
        |a| format!("age limit {}", age_text(a)),
    );
    let mut text = format!(
        "{} item(s): {} valid record(s), {} invalid item(s); a first start would list {counts} ({age})",
        s.items, s.valid, s.invalid
    );
    if let Some((asked, known, total)) = s.sized {
        text.push_str(&format!(
            "; total size {} ({known} of {asked} sizes given by the servers)",
            human_bytes(total as f64)
        ));
    }
    text
}

fn age_text(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
