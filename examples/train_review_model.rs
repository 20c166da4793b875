//! Trains the review reader's linear model on the corpus in tests/data, calibrates the
//! thresholds of its policy, and writes both to `src/frameio/review/model.bin` (embedded in the
//! binary at the next build).
//!
//! Writer held out throughout: for each writer (the project's table, each batch written outside
//! the project), a model trained on all the others reads that writer's comments. The
//! thresholds are chosen on those held-out votes of the writers outside the project (as few
//! "not sure" as possible within a budget of confidently wrong answers, and no confident false
//! approval); the measure printed, and written to BENCHMARKS.md (section `review_model`), scores
//! each writer with thresholds chosen without it too.
//!
//! Run: `cargo run --release --example train_review_model` (then rebuild). `--check`: measure
//! only, write nothing. `--dump FILE`: the held-out votes as JSON lines, for study.

use std::path::Path;

use rushes::frameio::corpus::{self, Batch};
use rushes::frameio::eval::Score;
use rushes::frameio::lexicon::Lexicon;
use rushes::frameio::model::{CLASSES, Model};
use rushes::frameio::{Policy, Reader, Votes, eval};

const EPOCHS: usize = 25;
const L2: f32 = 2e-4;
const SEED: u64 = 0x5eed_2024;
/// Share of comments the calibration may leave confidently wrong (the target is 3 %).
const WRONG_BUDGET: f64 = 0.02;
/// The lowest probability that may ever be sure.
const FLOOR: f32 = 0.5;
/// How far above every held-out false approval an approval's threshold stays.
const MARGIN: f32 = 0.02;
/// The least probability for an approval over the rules' doubt (something to change, a problem).
const OVER_DOUBT: f32 = 0.97;

fn class(item: &eval::Labelled) -> usize {
    let label = item.expected.map_or("none", |v| v.as_str());
    eval::LABELS.iter().position(|l| *l == label).unwrap_or(3)
}

/// One writer's comments as the trainer needs them.
struct Writer {
    name: String,
    outside: bool,
    samples: Vec<(Vec<u32>, usize)>,
}

/// One held-out vote.
struct Held<'a> {
    writer: usize,
    votes: Votes,
    item: &'a eval::Labelled,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let check = args.iter().any(|a| a == "--check");
    let (epochs, l2) = (EPOCHS, L2);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let batches = corpus::load(&root.join("tests/data"))?;
    let lexicon = Lexicon::builtin();
    let featurer = Reader::new(lexicon.clone(), Model::zero());
    let writers: Vec<Writer> = batches
        .iter()
        .map(|b| Writer {
            name: b.name.clone(),
            outside: b.name != "home",
            samples: b
                .items
                .iter()
                .map(|i| (featurer.features(&i.text), class(i)))
                .collect(),
        })
        .collect();
    let n: usize = writers.iter().map(|w| w.samples.len()).sum();
    println!("corpus: {n} comments from {} writers", writers.len());

    // Every comment read by a model that has not seen its writer.
    let mut held = Vec::new();
    for (w, batch) in batches.iter().enumerate() {
        let train: Vec<(Vec<u32>, usize)> = writers
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != w)
            .flat_map(|(_, o)| o.samples.iter().cloned())
            .collect();
        let model = Model::train(&train, epochs, l2, SEED);
        let reader = Reader::new(lexicon.clone(), model);
        for item in &batch.items {
            held.push(Held {
                writer: w,
                votes: reader.votes(&item.text),
                item,
            });
        }
    }
    if let Some(at) = args.iter().position(|a| a == "--dump") {
        let out = args.get(at + 1).map_or("votes.jsonl", String::as_str);
        return dump(&batches, &held, Path::new(out));
    }

    // The policy shipped: calibrated on every outside writer's held-out votes.
    let outside: Vec<&Held> = held.iter().filter(|h| writers[h.writer].outside).collect();
    let every: Vec<&Held> = held.iter().collect();
    let policy = calibrate(&outside, &every);
    println!(
        "policy: agree {:?}, alone {:?}, over doubt {}",
        policy.agree, policy.alone, policy.over_doubt
    );

    // The measure: each writer scored with thresholds chosen without it.
    let mut rows = String::new();
    let (mut all, mut outside_score) = (Score::default(), Score::default());
    for (w, writer) in writers.iter().enumerate() {
        let others: Vec<&Held> = outside.iter().copied().filter(|h| h.writer != w).collect();
        let guard: Vec<&Held> = held.iter().filter(|h| h.writer != w).collect();
        let fold_policy = calibrate(&others, &guard);
        let mut score = Score::default();
        for h in held.iter().filter(|h| h.writer == w) {
            let a = fold_policy.decide(h.votes.clone());
            score.add(h.item.expected, &a);
            all.add(h.item.expected, &a);
            if writer.outside {
                outside_score.add(h.item.expected, &a);
            }
        }
        println!(
            "held out {:<28} {:>4} comments: accuracy {:5.1} %, confidently wrong {:4.1} %, not confident {:4.1} %, false approvals {} sure / {} guessed",
            writer.name,
            score.total,
            score.accuracy() * 100.0,
            score.confidently_wrong_share() * 100.0,
            score.not_confident_share() * 100.0,
            score.confident_false_approvals,
            score.guessed_false_approvals
        );
        rows.push_str(&row(&writer.name, &score));
    }
    rows.push_str(&row("**all writers**", &all));
    rows.push_str(&row("**written outside the project**", &outside_score));
    println!("{}", outside_score.report());
    if check {
        return Ok(());
    }

    let everything: Vec<(Vec<u32>, usize)> = writers
        .iter()
        .flat_map(|w| w.samples.iter().cloned())
        .collect();
    let model = Model::train(&everything, epochs, l2, SEED).with_policy(policy);
    let out = root.join("src/frameio/review/model.bin");
    std::fs::write(&out, model.to_bytes())?;
    println!("wrote {} ({n} comments)", out.display());

    let section = section(epochs, l2, n, &policy, &rows);
    write_section(&root.join("BENCHMARKS.md"), "review_model", &section)?;
    Ok(())
}

/// The BENCHMARKS.md section: how the table was measured, the shipped thresholds, the table.
fn section(epochs: usize, l2: f32, n: usize, policy: &Policy, rows: &str) -> String {
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let pct = |p: f32| {
        if p > 1.0 {
            "never".to_string()
        } else {
            format!("{p:.2}")
        }
    };
    let thresholds: Vec<String> = eval::LABELS
        .iter()
        .enumerate()
        .map(|(c, l)| format!("{l} {} / {}", pct(policy.agree[c]), pct(policy.alone[c])))
        .collect();
    let thresholds = format!(
        "{}; an approval over the rules' doubt {}",
        thresholds.join(", "),
        pct(policy.over_doubt)
    );
    format!(
        "<!-- review_model:start -->\n\
## Review reader, writer held out (`cargo run --release --example train_review_model`)\n\n\
Measured {date}: for each writer, the model is trained on every other writer's comments \
({epochs} epochs, L2 {l2}, weights averaged over the second half) and the reader (rules + that \
model + the policy) reads the held-out writer's comments. The policy's thresholds are chosen on \
held-out votes too, and for this table without the writer scored (nested): no figure here comes \
from a comment its reader was tuned on. The shipped model has seen all {n} comments; its \
thresholds (model probability for a sure verdict, rules agreeing and sure / otherwise): {thresholds}. \
The rules themselves were written against the project's own table (`home`), so `home` held out \
flatters them.\n\n\
| held-out writer | comments | accuracy | confidently wrong | not confident | false approvals (sure / guessed) |\n\
|---|---|---|---|---|---|\n{rows}<!-- review_model:end -->\n"
    )
}

/// Thresholds for the held-out votes given. Each decision's group (the model's verdict, and
/// whether sure rules say the same) gets the threshold that leaves the fewest comments "not
/// sure" for a price per confidently wrong answer; the price is the lowest that keeps the
/// confidently wrong of `votes` within [`WRONG_BUDGET`]. An approval's threshold is always above
/// every false approval of `guard` (all writers but the one measured, the project's table
/// included) by [`MARGIN`]; an approval over the rules' doubt needs at least [`OVER_DOUBT`].
fn calibrate(votes: &[&Held], guard: &[&Held]) -> Policy {
    let groups_n = 2 * CLASSES + 1;
    // The least threshold each group's approvals may have.
    let mut least = vec![FLOOR; groups_n];
    least[2 * CLASSES] = OVER_DOUBT;
    for h in guard {
        let (m, pm) = argmax(&h.votes.model);
        if m == 0
            && h.item.expected.map(|v| v.as_str()) != Some("approved")
            && let Some(g) = h.votes.threshold_index(m)
        {
            least[g] = least[g].max(pm + MARGIN);
        }
    }
    // Per group: (probability, right) of each comment the threshold governs.
    let mut groups: Vec<Vec<(f32, bool)>> = vec![Vec::new(); groups_n];
    for h in votes {
        let (m, pm) = argmax(&h.votes.model);
        if let Some(g) = h.votes.threshold_index(m) {
            let expected = h.item.expected.map_or("none", |x| x.as_str());
            groups[g].push((pm, eval::LABELS[m] == expected));
        }
    }
    let candidates: Vec<f32> = (0..=50)
        .map(|i| FLOOR + i as f32 * 0.01)
        .chain([2.0])
        .collect();
    let total = votes.len().max(1) as f64;
    let mut chosen = vec![2.0f32; groups_n];
    for price in [
        1.0f64, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0,
    ] {
        let mut wrong = 0usize;
        for (g, items) in groups.iter().enumerate() {
            let cost = |t: f32| {
                let unsure = items.iter().filter(|(p, _)| *p < t).count();
                let bad = items.iter().filter(|(p, right)| *p >= t && !right).count();
                (unsure as f64 + price * bad as f64, bad)
            };
            let (t, bad) = candidates
                .iter()
                .filter(|t| **t >= least[g])
                .map(|t| (*t, cost(*t)))
                .fold(
                    (2.0, (f64::MAX, 0)),
                    |b, (t, c)| if c.0 < b.1.0 { (t, c) } else { b },
                );
            chosen[g] = t;
            wrong += bad.1;
        }
        if wrong as f64 / total <= WRONG_BUDGET {
            break;
        }
    }
    Policy {
        agree: std::array::from_fn(|c| chosen[c]),
        alone: std::array::from_fn(|c| chosen[CLASSES + c]),
        over_doubt: chosen[2 * CLASSES],
    }
}

fn argmax(p: &[f32; CLASSES]) -> (usize, f32) {
    p.iter().copied().enumerate().fold(
        (CLASSES - 1, f32::MIN),
        |b, (i, v)| if v > b.1 { (i, v) } else { b },
    )
}

fn row(name: &str, s: &Score) -> String {
    format!(
        "| {name} | {} | {:.1} % | {:.1} % | {:.1} % | {} / {} |\n",
        s.total,
        s.accuracy() * 100.0,
        s.confidently_wrong_share() * 100.0,
        s.not_confident_share() * 100.0,
        s.confident_false_approvals,
        s.guessed_false_approvals
    )
}

/// Replaces the section between `<!-- NAME:start -->` and `<!-- NAME:end -->`, or appends it.
fn write_section(path: &Path, name: &str, section: &str) -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(path)?;
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->\n"),
    );
    let doc = match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + end.len()..]),
        _ => format!("{}\n{section}", doc.trim_end()),
    };
    std::fs::write(path, doc)?;
    Ok(())
}

/// Held-out votes of every comment, one JSON line each: for studying the policy.
fn dump(batches: &[Batch], held: &[Held], out: &Path) -> anyhow::Result<()> {
    let mut lines = String::new();
    for h in held {
        let text = &h.item.text;
        lines.push_str(
            &serde_json::json!({
                "writer": batches[h.writer].name,
                "text": text,
                "expected": h.item.expected.map(|x| x.as_str()),
                "rules": h.votes.rules.verdict.map(|x| x.as_str()),
                "rules_sure": h.votes.rules.confident,
                "rules_reason": h.votes.rules.reason,
                "kinds": h.votes.kinds,
                "question": h.votes.question,
                "p": h.votes.model,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(out, lines)?;
    Ok(())
}
