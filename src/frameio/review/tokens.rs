//! The tokenizer of the comment analysis: a comment cut into clauses of canonical words
//! (folded, emoji kept as words, typos and slips repaired through the lexicon, English
//! contractions opened, arrows kept).

use super::lexicon::Lexicon;
pub use super::word::Token;
use super::word::is_emoji;
use crate::text::fold_text;

/// A clause: the words between two boundaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clause {
    pub tokens: Vec<Token>,
    /// Ended by a question mark.
    pub question_mark: bool,
}

/// Splits a comment into clauses of canonical tokens. Boundaries: . ! ? ; : , newlines,
/// brackets, quotes and spaced dashes (not between digits: "1:20", "1,5").
pub fn clauses(text: &str, lexicon: &Lexicon) -> Vec<Clause> {
    let mut out = Vec::new();
    let mut current = Clause::default();
    let mut word = String::new();
    let mut word_start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let flush_word = |word: &mut String, start: usize, end: usize, clause: &mut Clause| {
        if word.is_empty() {
            return;
        }
        let raw = std::mem::take(word);
        push_word(&raw, &text[start..end], start, end, clause, lexicon);
    };
    while i < chars.len() {
        let (at, c) = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        let next = chars.get(i + 1).map(|n| n.1);
        if c.is_alphanumeric() {
            if word.is_empty() {
                word_start = at;
            }
            word.push(c);
            i += 1;
            continue;
        }
        // English contractions: "don't" -> "do not", "can't" -> "can not".
        if matches!(c, '\'' | '’') && next == Some('t') && word.ends_with(['n', 'N']) {
            let after_t = chars.get(i + 2).map(|n| n.1);
            if !after_t.is_some_and(char::is_alphanumeric) {
                let stem = word.to_lowercase();
                let stem = match stem.as_str() {
                    "can" => "can".to_string(),
                    "won" => "will".to_string(),
                    s => s.trim_end_matches('n').to_string(),
                };
                word.clear();
                let end = chars.get(i + 2).map_or(text.len(), |n| n.0);
                push_word(
                    &stem,
                    &text[word_start..end],
                    word_start,
                    end,
                    &mut current,
                    lexicon,
                );
                push_word(
                    "not",
                    &text[word_start..end],
                    word_start,
                    end,
                    &mut current,
                    lexicon,
                );
                i += 2;
                continue;
            }
        }
        flush_word(&mut word, word_start, at, &mut current);
        let digits_around =
            prev.is_some_and(|p| p.is_ascii_digit()) && next.is_some_and(|n| n.is_ascii_digit());
        let boundary = match c {
            '.' | ',' | ':' if digits_around => false,
            '.' | '!' | '?' | ';' | ':' | ',' | '\n' | '\r' | '(' | ')' | '[' | ']' | '"' | '«'
            | '»' | '“' | '”' | '…' | '•' => true,
            '-' | '–' | '—' if next == Some('>') => {
                let end = chars.get(i + 2).map_or(text.len(), |n| n.0);
                current.tokens.push(arrow(at, end));
                i += 2;
                continue;
            }
            '-' | '–' | '—' => {
                prev.is_none_or(char::is_whitespace) && next.is_none_or(char::is_whitespace)
            }
            _ => false,
        };
        if c == '→' {
            current.tokens.push(arrow(at, at + c.len_utf8()));
        } else if is_emoji(c) {
            current.tokens.push(Token {
                word: c.to_string(),
                start: at,
                end: at + c.len_utf8(),
                participle: false,
            });
        }
        if boundary {
            if c == '?' {
                current.question_mark = true;
            }
            if !current.tokens.is_empty() {
                out.push(std::mem::take(&mut current));
            } else if c == '?' {
                // "??" or "? ?": mark the clause before.
                if let Some(last) = out.last_mut() {
                    last.question_mark = true;
                }
                current.question_mark = false;
            }
        }
        i += 1;
    }
    flush_word(&mut word, word_start, text.len(), &mut current);
    if !current.tokens.is_empty() {
        out.push(current);
    }
    out
}

fn arrow(start: usize, end: usize) -> Token {
    Token {
        word: "→".into(),
        start,
        end,
        participle: false,
    }
}

fn push_word(
    raw: &str,
    original: &str,
    start: usize,
    end: usize,
    clause: &mut Clause,
    lexicon: &Lexicon,
) {
    let lower = raw.to_lowercase();
    let participle = ["é", "ée", "és", "ées"].iter().any(|s| lower.ends_with(s))
        || (lower.len() > 4 && lower.ends_with("ed") && original.is_ascii());
    // Typos may carry accents ("cé"), so look the accented form up first.
    if let Some(fixed) = lexicon.typos.get(&lower) {
        for w in fixed {
            clause.tokens.push(Token {
                word: w.clone(),
                start,
                end,
                participle: false,
            });
        }
        return;
    }
    let folded = fold_text(&lower);
    match lexicon.normalise(&folded) {
        Some(fixed) => {
            for w in fixed {
                clause.tokens.push(Token {
                    word: w,
                    start,
                    end,
                    participle,
                });
            }
        }
        None => clause.tokens.push(Token {
            word: folded,
            start,
            end,
            participle,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_and_tokens() {
        let l = Lexicon::builtin();
        let c = clauses("Validé, juste remonter à 1:20 ! Ça va ?", &l);
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].tokens.last().map(|t| t.word.as_str()), Some("20"));
        assert!(c[2].question_mark && !c[0].question_mark);
        assert!(c[0].tokens[0].participle);
        let c = clauses("I don't love it, Jonh -> John 👍🏻", &l);
        let w: Vec<&str> = c
            .iter()
            .flat_map(|c| &c.tokens)
            .map(|t| t.word.as_str())
            .collect();
        assert_eq!(
            w,
            ["i", "do", "not", "love", "it", "jonh", "→", "john", "👍"]
        );
    }
}
