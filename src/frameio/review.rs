//! Comment analysis: turns a file's comments into a review verdict. Pure: no I/O, no clock.
//!
//! Rules: keywords (French and English, configurable) match whole words, ignoring case and
//! accents; within one comment rejected beats changes beats approved ("ok mais à modifier" asks
//! for changes); across comments the newest decisive one wins.

use serde::Serialize;

use crate::store::ReviewState;

/// What a comment decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approved,
    ChangesRequested,
    Rejected,
}

impl Verdict {
    pub fn state(self) -> ReviewState {
        match self {
            Self::Approved => ReviewState::Approved,
            Self::ChangesRequested => ReviewState::ChangesRequested,
            Self::Rejected => ReviewState::Rejected,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.state().as_str()
    }
}

/// A keyword or phrase, as folded words ("c'est bon" -> ["c", "est", "bon"]).
pub type Phrase = Vec<String>;

/// The keyword lists (`FRAMEIO_KEYWORDS_APPROVED`, `_CHANGES`, `_REJECTED`, comma-separated).
#[derive(Debug, Clone, PartialEq)]
pub struct Keywords {
    pub approved: Vec<Phrase>,
    pub changes: Vec<Phrase>,
    pub rejected: Vec<Phrase>,
}

pub const DEFAULT_APPROVED: &str = "approved, approve, approuvé, approuvée, validé, validée, \
    valide, c'est bon, c'est ok, ok pour moi, bon pour moi, lgtm, looks good, good to go, all good";
pub const DEFAULT_CHANGES: &str = "à modifier, modifier, modification, modifications, retouche, \
    retouches, retoucher, corriger, correction, corrections, à revoir, changes, change, \
    changes requested, please fix, fix, needs work";
pub const DEFAULT_REJECTED: &str =
    "refusé, refusée, refus, rejeté, rejetée, rejected, reject, refused";

impl Default for Keywords {
    fn default() -> Self {
        Self {
            approved: Self::parse_list(DEFAULT_APPROVED),
            changes: Self::parse_list(DEFAULT_CHANGES),
            rejected: Self::parse_list(DEFAULT_REJECTED),
        }
    }
}

impl Keywords {
    /// Parses a comma-separated list; empty entries are skipped.
    pub fn parse_list(raw: &str) -> Vec<Phrase> {
        raw.split(',')
            .map(words)
            .filter(|phrase| !phrase.is_empty())
            .collect()
    }
}

/// One comment as the analysis needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentText<'a> {
    pub id: &'a str,
    pub text: &'a str,
    /// RFC 3339; compared as instants. Missing sorts first (oldest).
    pub created_at: Option<&'a str>,
    pub completed: bool,
}

/// The deciding comment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub comment_id: String,
    pub text: String,
    pub completed: bool,
    /// How many comments are marked completed (noted, they do not change the verdict).
    pub completed_count: usize,
}

/// The verdict of one comment's text, if it holds a keyword.
pub fn verdict(text: &str, keywords: &Keywords) -> Option<Verdict> {
    let folded = words(text);
    let has = |list: &[Phrase]| list.iter().any(|p| contains_phrase(&folded, p));
    if has(&keywords.rejected) {
        Some(Verdict::Rejected)
    } else if has(&keywords.changes) {
        Some(Verdict::ChangesRequested)
    } else if has(&keywords.approved) {
        Some(Verdict::Approved)
    } else {
        None
    }
}

/// The newest decisive comment, if any.
pub fn analyse(comments: &[CommentText<'_>], keywords: &Keywords) -> Option<Decision> {
    let completed_count = comments.iter().filter(|c| c.completed).count();
    let mut ordered: Vec<(Option<chrono::DateTime<chrono::Utc>>, usize)> = comments
        .iter()
        .enumerate()
        .map(|(i, c)| (c.created_at.and_then(parse_instant), i))
        .collect();
    // Oldest first; equal times keep the API's order.
    ordered.sort();
    ordered.iter().rev().find_map(|(_, i)| {
        let c = &comments[*i];
        verdict(c.text, keywords).map(|v| Decision {
            verdict: v,
            comment_id: c.id.to_string(),
            text: c.text.to_string(),
            completed: c.completed,
            completed_count,
        })
    })
}

fn parse_instant(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && haystack.windows(phrase.len()).any(|w| w == phrase)
}

/// Lowercase, accents removed, split into words (letters and digits; everything else separates,
/// apostrophes included).
pub fn words(text: &str) -> Vec<String> {
    fold_text(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Lowercase with the accents of Latin letters removed ("À Modifier" -> "a modifier").
pub fn fold_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => out.push('a'),
            'æ' => out.push_str("ae"),
            'ç' | 'ć' | 'č' => out.push('c'),
            'ď' => out.push('d'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => out.push('i'),
            'ł' => out.push('l'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'œ' => out.push_str("oe"),
            'ř' => out.push('r'),
            'ś' | 'š' => out.push('s'),
            'ß' => out.push_str("ss"),
            'ť' => out.push('t'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            // Combining accents (decomposed input) are dropped.
            '\u{300}'..='\u{36f}' => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_comment_table() {
        let k = Keywords::default();
        use Verdict::*;
        let table: &[(&str, Option<Verdict>)] = &[
            ("Approved", Some(Approved)),
            ("approved!", Some(Approved)),
            ("Validé, merci", Some(Approved)),
            ("VALIDE", Some(Approved)),
            ("valide", Some(Approved)),
            ("C'est bon pour nous", Some(Approved)),
            ("c’est bon", Some(Approved)), // typographic apostrophe
            ("OK pour moi", Some(Approved)),
            ("ok pour MOI 👍", Some(Approved)),
            ("LGTM", Some(Approved)),
            ("ok mais à modifier", Some(ChangesRequested)),
            ("OK MAIS A MODIFIER", Some(ChangesRequested)),
            (
                "Validé, mais une retouche sur le plan 3",
                Some(ChangesRequested),
            ),
            (
                "Looks good but please fix the audio",
                Some(ChangesRequested),
            ),
            ("Retouches à prévoir", Some(ChangesRequested)),
            ("changes requested", Some(ChangesRequested)),
            ("Refusé", Some(Rejected)),
            ("refusee", Some(Rejected)),
            ("Rejected, à modifier entièrement", Some(Rejected)),
            ("rejected", Some(Rejected)),
            // Whole words only.
            ("unapproved draft", None),
            ("prefix the title", None),
            ("invalidé", None),
            ("exchange the clips", None),
            ("bonjour, belle image", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(verdict(text, &k), *expected, "{text:?}");
        }
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
        let k = Keywords::default();
        let comments = [
            c("3", "Validé !", "2026-01-03T10:00:00Z"),
            c("1", "à modifier", "2026-01-01T10:00:00Z"),
            c("4", "belle lumière", "2026-01-04T10:00:00Z"),
            c("2", "retouche faite ?", "2026-01-02T10:00:00+02:00"),
        ];
        let d = analyse(&comments, &k).expect("a decision");
        assert_eq!(d.verdict, Verdict::Approved);
        assert_eq!(d.comment_id, "3");
        assert_eq!(d.text, "Validé !");

        let later = [
            c("1", "approved", "2026-01-01T10:00:00Z"),
            c("2", "finalement à modifier", "2026-01-01T10:00:01Z"),
        ];
        assert_eq!(
            analyse(&later, &k).map(|d| d.verdict),
            Some(Verdict::ChangesRequested)
        );
        // Offsets are compared as instants: 12:00+02:00 is before 11:00Z.
        let offsets = [
            c("a", "refusé", "2026-01-01T11:00:00Z"),
            c("b", "validé", "2026-01-01T12:00:00+02:00"),
        ];
        assert_eq!(
            analyse(&offsets, &k).map(|d| d.comment_id),
            Some("a".into())
        );
    }

    #[test]
    fn no_keyword_no_decision_and_completed_noted() {
        let k = Keywords::default();
        assert_eq!(
            analyse(&[c("1", "nice shot", "2026-01-01T00:00:00Z")], &k),
            None
        );
        assert_eq!(analyse(&[], &k), None);
        let mut done = c("1", "à modifier", "2026-01-01T00:00:00Z");
        done.completed = true;
        let d = analyse(&[done], &k).expect("decision");
        assert!(d.completed);
        assert_eq!(d.completed_count, 1);
    }

    #[test]
    fn custom_lists_replace_the_defaults() {
        let k = Keywords {
            approved: Keywords::parse_list("go, feu vert"),
            changes: Keywords::parse_list("à reprendre"),
            rejected: Keywords::parse_list("poubelle"),
        };
        assert_eq!(verdict("FEU VERT", &k), Some(Verdict::Approved));
        assert_eq!(verdict("approved", &k), None);
        assert_eq!(
            verdict("go mais à reprendre", &k),
            Some(Verdict::ChangesRequested)
        );
        assert_eq!(verdict("Poubelle.", &k), Some(Verdict::Rejected));
    }

    #[test]
    fn folding() {
        assert_eq!(fold_text("À Modifier ÉTÉ Œuvre"), "a modifier ete oeuvre");
        assert_eq!(words("c'est-bon!! OK"), vec!["c", "est", "bon", "ok"]);
        // Decomposed é (e + combining acute).
        assert_eq!(fold_text("valide\u{0301}"), "valide");
    }
}
