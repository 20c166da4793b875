use super::*;
use crate::domain::Verdict;

fn c<'a>(id: &'a str, text: &'a str, at: &'a str) -> CommentText<'a> {
    CommentText {
        id,
        text,
        created_at: Some(at),
        completed: false,
    }
}

#[test]
fn newest_decisive_comment_wins() {
    let r = Reader::builtin();
    let comments = [
        c("3", "Validé !", "2026-01-03T10:00:00Z"),
        c("1", "à modifier", "2026-01-01T10:00:00Z"),
        c("4", "merci", "2026-01-04T10:00:00Z"),
        c("2", "retouche faite ?", "2026-01-02T10:00:00+02:00"),
    ];
    let d = r.analyse(&comments).expect("a decision");
    assert_eq!(d.verdict, Some(Verdict::Approved), "{d:?}");
    assert!(d.confident, "{d:?}");
    assert_eq!(d.comment_id, "3");
    assert!(d.reason.starts_with("approval 'Validé'"), "{}", d.reason);

    let later = [
        c("1", "approved", "2026-01-01T10:00:00Z"),
        c(
            "2",
            "finalement il faudrait raccourcir",
            "2026-01-01T10:00:01Z",
        ),
    ];
    assert_eq!(
        r.analyse(&later).and_then(|d| d.verdict),
        Some(Verdict::ChangesRequested)
    );
    // Offsets are compared as instants: 12:00+02:00 is before 11:00Z.
    let offsets = [
        c("a", "refusé", "2026-01-01T11:00:00Z"),
        c("b", "validé", "2026-01-01T12:00:00+02:00"),
    ];
    assert_eq!(r.analyse(&offsets).map(|d| d.comment_id), Some("a".into()));
    assert_eq!(
        r.analyse(&[c("1", "merci !", "2026-01-01T00:00:00Z")]),
        None
    );
    let mut done = c("1", "à modifier", "2026-01-01T00:00:00Z");
    done.completed = true;
    let d = r.analyse(&[done]).expect("decision");
    assert!(d.completed && d.completed_count == 1);
}

#[test]
fn an_unsure_comment_is_the_decision_and_never_a_sure_approval() {
    let r = Reader::builtin();
    // An approval the rules cannot vouch for (a clause they cannot read) is never sure.
    for text in [
        "validé, juste enlève le fondu à la fin",
        "Validé. Le carton 00:42 affiche encore l'ancien numéro",
    ] {
        let a = r.analyse_text(text);
        assert!(
            !(a.confident && a.verdict == Some(Verdict::Approved)),
            "{text:?}: {a:?}"
        );
    }
    let comments = [
        c("1", "Validé !", "2026-01-01T10:00:00Z"),
        c(
            "2",
            "validé, juste enlève le fondu à la fin",
            "2026-01-02T10:00:00Z",
        ),
    ];
    let d = r.analyse(&comments).expect("a decision");
    assert_eq!(d.comment_id, "2", "{d:?}");
    assert!(
        !(d.confident && d.verdict == Some(Verdict::Approved)),
        "{d:?}"
    );
}

/// The whole corpus in tests/data (the project's table and every batch written outside it):
/// prints the confusion matrix; fails below the floor or on any sure false approval. The model
/// has seen this corpus: the held-out measure is the trainer's (BENCHMARKS.md).
#[test]
fn corpus_floor() -> Result<(), corpus::CorpusError> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let batches = corpus::load(&dir)?;
    let r = Reader::builtin();
    let mut total = eval::Score::default();
    let mut misses = Vec::new();
    for b in &batches {
        let mut score = eval::Score::default();
        for item in &b.items {
            let a = r.analyse_text(&item.text);
            if !score.add(item.expected, &a) {
                misses.push(format!(
                    "  {}: expected {:?} got {:?} sure={} {:?} ({})",
                    b.name, item.expected, a.verdict, a.confident, item.text, a.reason
                ));
            }
            total.add(item.expected, &a);
        }
        println!(
            "{}: {} comments, accuracy {:.1} %, confidently wrong {:.1} %, not confident {:.1} %",
            b.name,
            score.total,
            score.accuracy() * 100.0,
            score.confidently_wrong_share() * 100.0,
            score.not_confident_share() * 100.0
        );
    }
    println!("{}", total.report());
    for m in misses.iter().take(200) {
        println!("{m}");
    }
    assert!(
        total.total >= 455,
        "the corpus must hold the project's table"
    );
    assert_eq!(total.confident_false_approvals, 0, "{}", total.report());
    assert!(total.accuracy() >= 0.98, "{}", total.report());
    assert!(
        total.confidently_wrong_share() <= 0.01,
        "{}",
        total.report()
    );
    // In-sample the model agrees with the labels; "not sure" comes from the rules holding an
    // approval back and from the model's own doubt.
    assert!(total.not_confident_share() <= 0.05, "{}", total.report());
    Ok(())
}

fn votes(rules: Option<Verdict>, sure: bool, kinds: &[&'static str], p: [f32; 4]) -> Votes {
    Votes {
        rules: Analysis {
            verdict: rules,
            confident: sure,
            reason: "cues".into(),
        },
        kinds: kinds.to_vec(),
        question: false,
        model: p,
    }
}

/// The policy: the model's verdict, sure above its threshold (lower when sure rules agree);
/// the rules hold approvals back, and over their doubt only an extremely sure model approves.
#[test]
fn the_rules_guard_approvals() {
    let policy = Policy {
        agree: [0.6, 0.6, 0.6, 0.6],
        alone: [0.9, 0.8, 0.8, 0.8],
        over_doubt: 0.97,
    };
    let approve = |p: f32| [p, 1.0 - p, 0.0, 0.0];
    // Sure rules and the model agree above the agree threshold.
    let a = policy.decide(votes(
        Some(Verdict::Approved),
        true,
        &["approval"],
        approve(0.7),
    ));
    assert!(a.confident && a.verdict == Some(Verdict::Approved), "{a:?}");
    // The model alone approves only above the alone threshold.
    let a = policy.decide(votes(None, false, &["unexplained clause"], approve(0.85)));
    assert!(
        !a.confident && a.verdict == Some(Verdict::Approved),
        "{a:?}"
    );
    let a = policy.decide(votes(None, false, &["unexplained clause"], approve(0.95)));
    assert!(a.confident, "{a:?}");
    // A question the rules do not read as an approval holds it back.
    let mut asked = votes(None, false, &[], approve(0.99));
    asked.question = true;
    assert!(!policy.decide(asked).confident);
    // Held back (waiting, a negated approval, a condition…): never sure, however sure the model.
    for hold in [
        "waiting",
        "negated approval",
        "condition",
        "rejection",
        "exception",
    ] {
        let a = policy.decide(votes(None, true, &["approval", hold], approve(0.999)));
        assert!(!a.confident, "{hold}: {a:?}");
        assert!(a.reason.contains("hold the approval back"), "{}", a.reason);
    }
    // Something to change: only an extremely sure model approves.
    let doubt = |p| {
        votes(
            Some(Verdict::ChangesRequested),
            true,
            &["change request"],
            approve(p),
        )
    };
    assert!(!policy.decide(doubt(0.95)).confident);
    assert!(policy.decide(doubt(0.98)).confident);
    // Other verdicts: the model decides, above its threshold.
    let changes = [0.05, 0.85, 0.05, 0.05];
    let a = policy.decide(votes(None, false, &[], changes));
    assert!(a.confident && a.verdict == Some(Verdict::ChangesRequested));
    let a = policy.decide(votes(
        Some(Verdict::Approved),
        true,
        &["approval"],
        [0.3, 0.7, 0.0, 0.0],
    ));
    assert!(
        !a.confident && a.verdict == Some(Verdict::ChangesRequested),
        "{a:?}"
    );
    assert!(
        a.reason.starts_with("not sure: rules say approved"),
        "{}",
        a.reason
    );
}
