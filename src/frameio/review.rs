//! Comment analysis: turns a file's comments into a review verdict. Pure: no I/O, no clock.
//!
//! Rules: keywords (French and English, configurable) match whole words, ignoring case and
//! accents; within one comment rejected beats changes beats approved ("ok mais à modifier" asks
//! for changes); across comments the newest decisive one wins.

use serde::Serialize;

use crate::config::{Keywords, Phrase};
use crate::domain::Verdict;
use crate::text::words;

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
}
