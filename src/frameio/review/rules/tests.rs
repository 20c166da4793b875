use super::*;
use crate::config::parse_list;

fn verdict(text: &str, lexicon: &Lexicon) -> Option<Verdict> {
    analyse_text(text, lexicon).verdict
}

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
