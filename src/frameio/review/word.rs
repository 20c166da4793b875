//! The word of the comment analysis, its ground floor: a comment's words folded (lowercase,
//! accents removed) with pictographs kept as words, and the `Token` the tokenizer and the
//! lexicon both speak of. Knows nothing of the lexicon.

use crate::text::fold_text;

/// A word of a comment: canonical form and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub word: String,
    /// Byte range in the original text.
    pub start: usize,
    pub end: usize,
    /// A French past participle (written with a final é / ée / és / ées) or an English -ed form.
    pub participle: bool,
}

/// Pictographs that carry meaning in a review (👍 👎 ✅ ❌ 🙏 …); modifiers are dropped.
pub(super) fn is_emoji(c: char) -> bool {
    let u = c as u32;
    let modifier = (0x1F3FB..=0x1F3FF).contains(&u) || u == 0xFE0F || u == 0x200D;
    !modifier && (u >= 0x1F000 || (0x2190..=0x2BFF).contains(&u))
}

/// Lowercase, accents removed, split into words; pictographs (👍, ✅, …) are words too.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in fold_text(text).chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if is_emoji(c) {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_and_keep_pictographs() {
        assert_eq!(
            words("Validé 👍🏻, c'est-bon!"),
            ["valide", "👍", "c", "est", "bon"]
        );
        assert!(is_emoji('✅') && !is_emoji('\u{FE0F}') && !is_emoji('a'));
    }
}
