//! Trains the review reader's linear model on the corpus in tests/data and writes it to
//! `src/frameio/review/model.bin` (embedded in the binary at the next build). Before that, a
//! writer-held-out measure: for each writer (the project's table, each batch written outside the
//! project), a model trained on all the others reads that writer's comments; the scores go to
//! BENCHMARKS.md (section `review_model`).
//!
//! Run: `cargo run --example train_review_model` (then rebuild). `--check`: measure only, write
//! nothing.

use std::path::Path;

use rushes::frameio::corpus::{self, Batch};
use rushes::frameio::eval::Score;
use rushes::frameio::lexicon::Lexicon;
use rushes::frameio::model::Model;
use rushes::frameio::{Reader, eval};

const EPOCHS: usize = 25;
const L2: f32 = 2e-4;
const SEED: u64 = 0x5eed_2024;

fn class(item: &eval::Labelled) -> usize {
    let label = item.expected.map_or("none", |v| v.as_str());
    eval::LABELS.iter().position(|l| *l == label).unwrap_or(3)
}

fn samples(reader: &Reader, batches: &[&Batch]) -> Vec<(Vec<u32>, usize)> {
    batches
        .iter()
        .flat_map(|b| b.items.iter())
        .map(|i| (reader.features(&i.text), class(i)))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let batches = corpus::load(&root.join("tests/data"))?;
    let lexicon = Lexicon::builtin();
    let featurer = Reader::new(lexicon.clone(), Model::zero());
    let n: usize = batches.iter().map(|b| b.items.len()).sum();
    println!("corpus: {n} comments from {} writers", batches.len());

    if std::env::args().any(|a| a == "--sweep") {
        return sweep(&batches, &featurer, &lexicon);
    }
    let mut rows = String::new();
    let mut all = Score::default();
    let mut outside = Score::default();
    for held in &batches {
        let train: Vec<&Batch> = batches.iter().filter(|b| b.name != held.name).collect();
        let model = Model::train(&samples(&featurer, &train), EPOCHS, L2, SEED);
        let reader = Reader::new(lexicon.clone(), model);
        let mut score = Score::default();
        for item in &held.items {
            let a = reader.analyse_text(&item.text);
            score.add(item.expected, &a);
            all.add(item.expected, &a);
            if held.name != "home" {
                outside.add(item.expected, &a);
            }
        }
        println!(
            "held out {:<28} {:>4} comments: accuracy {:5.1} %, confidently wrong {:4.1} %, not confident {:4.1} %, false approvals {} sure / {} guessed",
            held.name,
            score.total,
            score.accuracy() * 100.0,
            score.confidently_wrong_share() * 100.0,
            score.not_confident_share() * 100.0,
            score.confident_false_approvals,
            score.guessed_false_approvals
        );
        rows.push_str(&row(&held.name, &score));
    }
    rows.push_str(&row("**all writers**", &all));
    rows.push_str(&row("**written outside the project**", &outside));
    println!("{}", outside.report());

    if check {
        return Ok(());
    }
    let everything: Vec<&Batch> = batches.iter().collect();
    let model = Model::train(&samples(&featurer, &everything), EPOCHS, L2, SEED);
    let out = root.join("src/frameio/review/model.bin");
    std::fs::write(&out, model.to_bytes())?;
    println!("wrote {} ({n} comments)", out.display());

    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let section = format!(
        "<!-- review_model:start -->\n\
## Review reader, writer held out (`cargo run --example train_review_model`)\n\n\
Measured {date}: for each writer, the model is trained on every other writer's comments \
({EPOCHS} epochs, L2 {L2}) and the reader (rules + that model) reads the held-out writer's \
comments. The shipped model has seen all {n} comments; this is the measure of what it does on \
words it has not seen. The rules themselves were written against the project's own table \
(`home`), so `home` held out flatters them.\n\n\
| held-out writer | comments | accuracy | confidently wrong | not confident | false approvals (sure / guessed) |\n\
|---|---|---|---|---|---|\n{rows}<!-- review_model:end -->\n"
    );
    write_section(&root.join("BENCHMARKS.md"), "review_model", &section)?;
    Ok(())
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

/// Held-out votes once, then every policy in a grid over them (outside-project comments only):
/// how the thresholds trade "not sure" against "confidently wrong".
fn sweep(batches: &[Batch], featurer: &Reader, lexicon: &Lexicon) -> anyhow::Result<()> {
    let mut votes = Vec::new();
    for held in batches.iter().filter(|b| b.name != "home") {
        let train: Vec<&Batch> = batches.iter().filter(|b| b.name != held.name).collect();
        let model = Model::train(&samples(featurer, &train), EPOCHS, L2, SEED);
        let reader = Reader::new(lexicon.clone(), model);
        for item in &held.items {
            votes.push((reader.votes(&item.text), item.expected));
        }
    }
    let mut tally = std::collections::BTreeMap::new();
    for (v, e) in &votes {
        let m = v.model.iter().enumerate().fold(
            (3, f32::MIN),
            |b, (i, p)| if *p > b.1 { (i, *p) } else { b },
        );
        *tally
            .entry((
                v.rules.verdict.map_or("none", |x| x.as_str()),
                v.rules.confident,
                eval::LABELS[m.0],
                e.map_or("none", |x| x.as_str()),
            ))
            .or_insert(0) += 1;
    }
    println!("rules verdict, rules sure, model verdict, expected: count");
    for (k, n) in tally {
        println!("  {k:?}: {n}");
    }
    for (agree, alone, approve, overrule) in [0.5f32, 0.6, 0.7]
        .into_iter()
        .flat_map(|a| [0.7f32, 0.8, 0.9].map(move |b| (a, b)))
        .flat_map(|(a, b)| [0.9f32, 1.1].map(move |c| (a, b, c)))
        .flat_map(|(a, b, c)| [0.7f32, 0.8, 0.9, 1.1].map(move |d| (a, b, c, d)))
    {
        {
            let policy = rushes::frameio::review_policy(agree, alone, approve, overrule);
            let mut s = Score::default();
            for (v, e) in &votes {
                s.add(*e, &policy.decide(v.clone()));
            }
            println!(
                "agree {agree:.2} alone {alone:.2} approve {approve:.2} overrule {overrule:.2}: accuracy {:.1} %, confidently wrong {:.1} %, not confident {:.1} %, false approvals {} / {}",
                s.accuracy() * 100.0,
                s.confidently_wrong_share() * 100.0,
                s.not_confident_share() * 100.0,
                s.confident_false_approvals,
                s.guessed_false_approvals
            );
        }
    }
    Ok(())
}
