//! `rushes feed check`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, FeedLocation, Overrides, ResolverSettings};
use crate::domain::Timestamp;
use crate::feed::check::{self, CheckLine, Summary, Would};
use crate::feed::source::{FeedSource, FetchResult, Validators};
use crate::feed::stream::StreamScan;
use crate::logging;
use crate::text::human_bytes;

pub(super) struct CheckArgs {
    pub url: Option<String>,
    /// Print signed links (R2, presigned S3) with their query strings instead of `?…`.
    pub show_signed: bool,
    pub json: bool,
    pub sizes: bool,
    pub download_max_age: Option<String>,
    /// Summary and timings only.
    pub quiet: bool,
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
    let source = FeedSource::new(location, config.feed.timeout, config.feed.timezone)
        .with_bearer(config.feed.auth_token.clone());
    if args.quiet {
        return quiet(&source, config.download.max_age, &config.download.resolvers).await;
    }
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
    // The same answer as the engine's: which manual links `serve` fetches by itself.
    let resolvers = config.download.resolvers.clone();
    let fetches = move |kind| resolvers.fetches(kind);
    let mut lines = check::plan_for(&feed, config.download.max_age, Timestamp::now(), &fetches);
    if !args.show_signed {
        for r in lines.iter_mut().filter_map(|l| l.record.as_mut()) {
            r.key = crate::web::api::shown_link(&r.key, false);
        }
    }
    drop(feed);
    if args.sizes {
        check::fetch_sizes(
            &mut lines,
            config.feed.timeout.min(std::time::Duration::from_secs(10)),
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
    say(summary_text(&Summary::of(&lines), config.download.max_age));
    Ok(ExitCode::SUCCESS)
}

/// `--quiet`: every item read, validated, classified, normalised and planned (duplicates, age
/// rule) as without it, but only the counts are kept; prints the summary and the timings.
async fn quiet(
    source: &FeedSource,
    max_age: Option<std::time::Duration>,
    resolvers: &ResolverSettings,
) -> anyhow::Result<ExitCode> {
    /// A record as the summary needs it: fingerprints of its keys (computed on the worker
    /// threads; the duplicate count then costs a set of integers, not of strings).
    /// 64 bits: a collision among a feed's keys (one in ~10^9 for 200,000 of them) would only
    /// miscount one duplicate in this summary.
    struct Planned {
        key: u64,
        /// 0: no R2 copy.
        r2_key: u64,
        would: Would,
    }
    fn fingerprint(text: &str) -> u64 {
        quick_hash(text.as_bytes()).max(1)
    }
    let now = Timestamp::now();
    let started = Instant::now();
    let tz = source.tz();
    // The body is read while it arrives (the timing of the read alone is what follows the
    // last byte).
    let start = || {
        let resolvers = resolvers.clone();
        StreamScan::new(tz, move |record| {
            let fetches = |kind| resolvers.fetches(kind);
            let (_, would) = check::would(
                record.classification.mode,
                record.classification.kind,
                Timestamp::from(record.created_at),
                now,
                max_age,
                &fetches,
            );
            Some(Planned {
                key: fingerprint(&record.source_url),
                r2_key: record.r2_key.as_deref().map_or(0, fingerprint),
                would,
            })
        })
    };
    let (result, attempts) = source
        .fetch_streamed(&Validators::default(), &CancellationToken::new(), start)
        .await;
    let scan = match result {
        Ok(FetchResult::Fetched { feed, .. }) => feed,
        Ok(FetchResult::NotModified) => {
            println!("not modified");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            println!("fetch failed after {attempts} attempt(s): {e}");
            return Ok(ExitCode::from(1));
        }
    };
    // Duplicates: a record whose source or R2 key an earlier record had.
    let mut keys: HashSet<u64, BuildHasherDefault<Fingerprints>> =
        HashSet::with_capacity_and_hasher(scan.kept.len() * 2, Default::default());
    let mut summary = Summary {
        items: scan.valid + scan.invalid.len(),
        valid: scan.valid,
        invalid: scan.invalid.len(),
        ..Summary::default()
    };
    for p in &scan.kept {
        let seen = keys.contains(&p.key) || (p.r2_key != 0 && keys.contains(&p.r2_key));
        keys.insert(p.key);
        if p.r2_key != 0 {
            keys.insert(p.r2_key);
        }
        match if seen { Would::Duplicate } else { p.would } {
            Would::Queued => summary.queued += 1,
            Would::Available => summary.available += 1,
            Would::Manual => summary.manual += 1,
            Would::Duplicate => summary.duplicate += 1,
        }
    }
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    let read_ms = scan
        .body_end
        .map_or(total_ms, |end| end.elapsed().as_secs_f64() * 1000.0);
    let bytes = scan.bytes;
    println!("{}", summary_text(&summary, max_age));
    println!(
        "{bytes} bytes fetched in {:.1} ms, read in {read_ms:.1} ms ({total_ms:.1} ms in all; \
         the records are read while the body arrives: \"read\" is what was left after its last byte)",
        total_ms - read_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// A fast non-cryptographic 64-bit hash: each 8-byte word folded in by a 64x64->128-bit multiply
/// whose halves are xored (high bits fold down into low ones, unlike a plain multiply, which
/// let keys that differ only in their last bytes collide), then a final fold. Good enough to
/// count duplicate keys in a summary, several times cheaper than SipHash.
fn quick_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xbf58_476d_1ce4_e5b9;
    fn fold(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let mut h = bytes.len() as u64 ^ K2;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = fold(h ^ u64::from_le_bytes(word), K);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = fold(h ^ u64::from_le_bytes(last), K);
    fold(h, K2)
}

/// Hashes a fingerprint (already a hash) to its low bits.
#[derive(Default)]
struct Fingerprints(u64);

impl Hasher for Fingerprints {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
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
        let first = r.first_url.as_ref().map_or("", url::Url::as_str);
        let shown = if show_signed {
            first.to_string()
        } else {
            crate::web::api::shown_link(first, true)
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

#[cfg(test)]
mod tests {
    use super::quick_hash;
    use std::collections::HashSet;

    /// Keys of a feed differ in a few bytes: none of 800,000 such keys share a fingerprint (the
    /// previous multiply-rotate hash gave `…/s954` and `…/s184` the same one).
    #[test]
    fn similar_keys_get_distinct_fingerprints() {
        let mut seen = HashSet::new();
        for pattern in [
            "https://fromsmash.com/s",
            "https://x.workers.dev/dropbox/",
            "https://www.dropbox.com/s/x",
            "",
        ] {
            for i in 0..200_000 {
                assert!(seen.insert(quick_hash(format!("{pattern}{i}/f").as_bytes())));
            }
        }
        assert_ne!(
            quick_hash(b"https://fromsmash.com/s954"),
            quick_hash(b"https://fromsmash.com/s184")
        );
    }
}
