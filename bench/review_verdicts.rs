//! Verdicts per second of the review reader (`rushes::frameio::Reader`: rules + model), over the
//! comment table in tests/data, next to a reference measured in the same run: the analysis it
//! replaced (whole-word keyword lists, re-implemented here as it was). Also the cost of analysing
//! a poll's worth of comments (100). Writes the numbers into BENCHMARKS.md.
//!
//! Run: `cargo bench --bench review_verdicts` (optional env: BENCH_SECONDS). Without `--bench`
//! (as `cargo test --benches` runs it) only a short smoke run, and BENCHMARKS.md is left alone.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rushes::frameio::Reader;
use rushes::frameio::words;

#[path = "common.rs"]
mod common;

const TABLE: &str = include_str!("../tests/data/review_comments.tsv");

/// The keyword lists of the analysis this one replaced.
const OLD_APPROVED: &str = "approved, approve, approuvé, approuvée, validé, validée, valide, \
    c'est bon, c'est ok, ok pour moi, bon pour moi, lgtm, looks good, good to go, all good";
const OLD_CHANGES: &str = "à modifier, modifier, modification, modifications, retouche, \
    retouches, retoucher, corriger, correction, corrections, à revoir, changes, change, \
    changes requested, please fix, fix, needs work";
const OLD_REJECTED: &str = "refusé, refusée, refus, rejeté, rejetée, rejected, reject, refused";

fn list(raw: &str) -> Vec<Vec<String>> {
    raw.split(',')
        .map(words)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The old analysis: whole-word keyword lists, rejected > changes > approved.
fn old_verdict(text: &str, lists: &[Vec<Vec<String>>; 3]) -> Option<usize> {
    let folded = words(text);
    let has = |l: &[Vec<String>]| {
        l.iter()
            .any(|p| folded.windows(p.len()).any(|w| w == p.as_slice()))
    };
    (0..3).find(|&i| has(&lists[i]))
}

/// Runs `f` over every text, round after round, for `budget`; returns (verdicts, elapsed).
fn run(texts: &[&str], budget: Duration, mut f: impl FnMut(&str)) -> (u64, Duration) {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < budget {
        for t in texts {
            f(t);
        }
        n += texts.len() as u64;
    }
    (n, started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds = if measuring {
        common::env_u64("BENCH_SECONDS", 3)
    } else {
        0
    };
    let budget = Duration::from_millis(if measuring { seconds * 1000 } else { 50 });
    let texts: Vec<&str> = TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.splitn(3, '\t').nth(2))
        .collect();
    anyhow::ensure!(texts.len() >= 200, "the comment table is missing");
    let lexicon = Reader::builtin();
    let old = [list(OLD_APPROVED), list(OLD_CHANGES), list(OLD_REJECTED)];

    // Warm up both, then measure them alternately (reference, analysis, reference, analysis).
    run(&texts, budget / 4, |t| {
        black_box(lexicon.analyse_text(t));
    });
    let mut old_rates = Vec::new();
    let mut new_rates = Vec::new();
    for _ in 0..2 {
        let (n, d) = run(&texts, budget / 2, |t| {
            black_box(old_verdict(t, &old));
        });
        old_rates.push(n as f64 / d.as_secs_f64());
        let (n, d) = run(&texts, budget / 2, |t| {
            black_box(lexicon.analyse_text(t));
        });
        new_rates.push(n as f64 / d.as_secs_f64());
    }
    let old_rate = old_rates.iter().sum::<f64>() / old_rates.len() as f64;
    let new_rate = new_rates.iter().sum::<f64>() / new_rates.len() as f64;
    // A poll's worth: 100 comments, the most a page holds.
    let poll: Vec<&str> = texts.iter().cycle().take(100).copied().collect();
    let rounds = if measuring { 200 } else { 2 };
    let started = Instant::now();
    for _ in 0..rounds {
        for t in &poll {
            black_box(lexicon.analyse_text(t));
        }
    }
    let per_poll = started.elapsed() / rounds;
    let lexicon_started = Instant::now();
    black_box(Reader::builtin());
    let lexicon_load = lexicon_started.elapsed();

    let mean_chars =
        texts.iter().map(|t| t.chars().count()).sum::<usize>() as f64 / texts.len() as f64;
    println!(
        "analysis: {new_rate:.0} verdicts/s; old keyword lists (reference): {old_rate:.0} verdicts/s; ratio {:.2}",
        new_rate / old_rate
    );
    println!(
        "100 comments (one poll page): {:.2} ms; reader load: {:.2} ms",
        per_poll.as_secs_f64() * 1000.0,
        lexicon_load.as_secs_f64() * 1000.0
    );
    if !measuring {
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let section = format!(
        "<!-- review_verdicts:start -->\n\
## Comment analysis (`cargo bench --bench review_verdicts`)\n\n\
Measured {date} on {cores} core(s) ({cpu}), one thread, release build. Input: the {n} comments of \
`tests/data/review_comments.tsv` (mean {mean_chars:.0} characters), round after round, {seconds} s per \
phase, the two analyses measured alternately. The reference is the analysis this one replaced \
(whole-word keyword lists), re-implemented in the bench and measured in the same run.\n\n\
| measure | value | vs old keyword lists |\n|---|---|---|\n\
| old keyword lists (reference) | {old_rate:.0} verdicts/s | 1.00 |\n\
| reader: rules (clauses, negation, requests) + linear model | **{new_rate:.0} verdicts/s** | {ratio:.2} |\n\
| one poll page (100 comments) | {poll_ms:.2} ms | |\n\
| reader load (embedded lexicon JSON compiled, embedded model read) | {lex_ms:.2} ms | once at start |\n\n\
A poll's HTTP round trips to Frame.io take tens to hundreds of milliseconds each: the analysis is \
not the bottleneck of a poll.\n\
<!-- review_verdicts:end -->\n",
        n = texts.len(),
        ratio = new_rate / old_rate,
        poll_ms = per_poll.as_secs_f64() * 1000.0,
        lex_ms = lexicon_load.as_secs_f64() * 1000.0,
    );
    common::write_section("review_verdicts", &section)
}
