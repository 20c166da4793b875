use super::*;
use crate::config::parse_list;

fn lex() -> Lexicon {
    Lexicon::builtin()
}

fn v(text: &str) -> Option<Verdict> {
    verdict(text, &lex())
}

#[test]
fn the_issue_examples() {
    use Verdict::*;
    let table: &[(&str, Option<Verdict>)] = &[
        ("Je valide pas en l'état", Some(ChangesRequested)),
        ("Pas validé : le plan 4 est flou", Some(ChangesRequested)),
        ("Pas encore validé, j'attends le retour du client", None),
        ("Not approved yet, still waiting on legal", None),
        (
            "Validé pour moi, juste remonter un peu la musique",
            Some(ChangesRequested),
        ),
        (
            "C'est bon pour moi sauf le carton de fin",
            Some(ChangesRequested),
        ),
        (
            "Approved with one tweak: please swap the music",
            Some(ChangesRequested),
        ),
        (
            "Il faudrait raccourcir le plan d'ouverture",
            Some(ChangesRequested),
        ),
        (
            "Est-ce qu'on pourrait essayer une musique plus douce ?",
            Some(ChangesRequested),
        ),
        (
            "Attention coquille sur le carton final",
            Some(ChangesRequested),
        ),
        ("Can we make the logo a bit bigger?", Some(ChangesRequested)),
        (
            "typo in the lower third (Jonh -> John)",
            Some(ChangesRequested),
        ),
        ("too much magenta, please adjust", Some(ChangesRequested)),
        ("la musique est trop forte", Some(ChangesRequested)),
        ("à reprendre", Some(ChangesRequested)),
        ("Rien à modifier, c'est parfait", Some(Approved)),
        (
            "Aucune correction de notre côté, on valide !",
            Some(Approved),
        ),
        ("no changes needed", Some(Approved)),
        ("ok pr moi 👌", Some(Approved)),
        (
            "Nickel, on part là-dessus pour la diffusion",
            Some(Approved),
        ),
        (
            "Super boulot, rien à redire, vous pouvez livrer",
            Some(Approved),
        ),
        ("aproved, thx", Some(Approved)),
    ];
    let l = lex();
    for (text, expected) in table {
        let a = analyse_text(text, &l);
        assert_eq!(a.verdict, *expected, "{text:?}: {}", a.reason);
    }
}

#[test]
fn reasons_name_the_cues() {
    let l = lex();
    let a = analyse_text("Validé pour moi, juste remonter un peu la musique", &l);
    assert!(a.reason.contains("approval 'Validé'"), "{}", a.reason);
    assert!(a.reason.contains("overridden by"), "{}", a.reason);
    assert!(a.reason.contains("'remonter'"), "{}", a.reason);
    let a = analyse_text("Pas validé : le plan 4 est flou", &l);
    assert!(
        a.reason.contains("'flou'") && a.reason.contains("'Pas validé'"),
        "{}",
        a.reason
    );
    let a = analyse_text("Pas encore validé, j'attends le retour du client", &l);
    assert!(a.reason.starts_with("no decision: "), "{}", a.reason);
    assert!(a.reason.contains("waiting"), "{}", a.reason);
    assert_eq!(analyse_text("", &l).reason, "no decision: no review cue");
    let a = analyse_text("Refusé.", &l);
    assert_eq!(a.reason, "rejection 'Refusé'");
}

#[test]
fn emoji_case_accents_and_stretching() {
    use Verdict::*;
    assert_eq!(v("👍"), Some(Approved));
    assert_eq!(v("👍🏽"), Some(Approved));
    assert_eq!(v("✅"), Some(Approved));
    assert_eq!(v("👎"), Some(ChangesRequested));
    assert_eq!(v("❌"), Some(ChangesRequested));
    assert_eq!(v("VALIDE"), Some(Approved));
    assert_eq!(v("valide\u{0301}"), Some(Approved));
    assert_eq!(v("parfaiiiit"), Some(Approved));
    assert_eq!(v("c’est bon"), Some(Approved));
    // Whole words only.
    assert_eq!(v("unapproved draft"), None);
    assert_eq!(v("invalidé"), None);
    assert_eq!(v("bonjour, belle image"), None);
    // Huge input is bounded.
    let long = "belle image ".repeat(10_000) + "refusé";
    assert_eq!(v(&long), None);
}

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
    let l = lex();
    let comments = [
        c("3", "Validé !", "2026-01-03T10:00:00Z"),
        c("1", "à modifier", "2026-01-01T10:00:00Z"),
        c("4", "belle lumière", "2026-01-04T10:00:00Z"),
        c("2", "retouche faite ?", "2026-01-02T10:00:00+02:00"),
    ];
    let d = analyse(&comments, &l).expect("a decision");
    assert_eq!(d.verdict, Verdict::Approved);
    assert_eq!(d.comment_id, "3");
    assert_eq!(d.reason, "approval 'Validé'");

    let later = [
        c("1", "approved", "2026-01-01T10:00:00Z"),
        c(
            "2",
            "finalement il faudrait raccourcir",
            "2026-01-01T10:00:01Z",
        ),
    ];
    assert_eq!(
        analyse(&later, &l).map(|d| d.verdict),
        Some(Verdict::ChangesRequested)
    );
    // Offsets are compared as instants: 12:00+02:00 is before 11:00Z.
    let offsets = [
        c("a", "refusé", "2026-01-01T11:00:00Z"),
        c("b", "validé", "2026-01-01T12:00:00+02:00"),
    ];
    assert_eq!(
        analyse(&offsets, &l).map(|d| d.comment_id),
        Some("a".into())
    );
    assert_eq!(
        analyse(&[c("1", "nice shot", "2026-01-01T00:00:00Z")], &l),
        None
    );
    let mut done = c("1", "à modifier", "2026-01-01T00:00:00Z");
    done.completed = true;
    let d = analyse(&[done], &l).expect("decision");
    assert!(d.completed && d.completed_count == 1);
}

#[test]
fn keyword_lists_replace_their_category() {
    let mut l = lex();
    l.replace_list(Cat::Approval, &parse_list("go, feu vert"));
    l.replace_list(Cat::Rejection, &parse_list("poubelle"));
    assert_eq!(verdict("FEU VERT", &l), Some(Verdict::Approved));
    assert_eq!(verdict("approved", &l), None);
    assert_eq!(
        verdict("go mais à reprendre", &l),
        Some(Verdict::ChangesRequested)
    );
    assert_eq!(verdict("Poubelle.", &l), Some(Verdict::Rejected));
}

/// The table in tests/data: prints the confusion matrix; fails below 95 % or on any false approval.
#[test]
fn dataset_agreement() {
    let raw = include_str!("../../../tests/data/review_comments.tsv");
    let l = lex();
    let labels = ["approved", "changes_requested", "rejected", "none"];
    let index = |s: &str| labels.iter().position(|l| *l == s);
    let mut matrix = [[0usize; 4]; 4];
    let mut wrong = Vec::new();
    let mut false_approvals = Vec::new();
    let mut total = 0;
    for (n, line) in raw.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (Some(expected), Some(_lang), Some(text)) = (cols.next(), cols.next(), cols.next())
        else {
            panic!("line {}: expected 3 tab-separated columns", n + 1);
        };
        let e = index(expected).unwrap_or_else(|| panic!("line {}: bad label {expected:?}", n + 1));
        let a = analyse_text(text, &l);
        let got = a.verdict.map_or("none", Verdict::as_str);
        let g = index(got).unwrap_or(3);
        matrix[e][g] += 1;
        total += 1;
        if e != g {
            wrong.push(format!(
                "  expected {expected:<17} got {got:<17} {text:?} ({})",
                a.reason
            ));
            if g == 0 {
                false_approvals.push(text.to_string());
            }
        }
    }
    let agree: usize = (0..4).map(|i| matrix[i][i]).sum();
    println!("confusion matrix (rows: expected, columns: analysis), {total} comments");
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9}",
        "", "approved", "changes", "rejected", "none"
    );
    for (i, row) in matrix.iter().enumerate() {
        println!(
            "{:<18} {:>9} {:>9} {:>9} {:>9}",
            labels[i], row[0], row[1], row[2], row[3]
        );
    }
    let rate = agree as f64 / total as f64;
    println!("agreement {agree}/{total} = {:.1} %", rate * 100.0);
    for w in &wrong {
        println!("{w}");
    }
    assert!(total >= 200, "the table must hold at least 200 comments");
    assert!(
        false_approvals.is_empty(),
        "false approvals: {false_approvals:?}"
    );
    assert!(
        rate >= 0.95,
        "agreement {:.1} % is below 95 %",
        rate * 100.0
    );
}
