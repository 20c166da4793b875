//! The review lexicon: French/English cue lists as data (`lexicon.json`, embedded), optionally
//! replaced or extended by a studio's file (`FRAMEIO_REVIEW_LEXICON`), compiled into a phrase
//! matcher, with the word repairs the tokenizer asks for (typos, stretched letters, one slip).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::word::{Token, words};
use crate::text::fold_text;

/// The built-in lexicon.
pub const DEFAULT_LEXICON: &str = include_str!("lexicon.json");
/// Largest lexicon file read (a studio's list, not a dictionary).
const MAX_LEXICON_BYTES: u64 = 1024 * 1024;

/// Cue categories (a phrase may belong to several: "can we" is a request and a question).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cat {
    Approval,
    ApprovalWhenNegated,
    Rejection,
    Change,
    EditVerb,
    SoftVerb,
    Comparative,
    Problem,
    Positive,
    Neutral,
    Request,
    Question,
    InfoQuestion,
    Conditional,
    Later,
    Waiting,
    Negation,
    Thanks,
    Ack,
    Contrast,
    Exception,
    /// "quand même", "anyway": an approval despite a reservation.
    Concession,
}

/// A set of categories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cats(u32);

impl Cats {
    pub fn has(self, cat: Cat) -> bool {
        self.0 & (1 << cat as u8) != 0
    }
    fn add(&mut self, cat: Cat) {
        self.0 |= 1 << cat as u8;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The file's shape (every list optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexiconFile {
    /// `extend` (default): lists are added to the built-in ones. `replace`: each list present in
    /// the file replaces the built-in list of that name (absent lists keep the built-in ones).
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default, rename = "_about")]
    pub about: Option<String>,
    #[serde(default)]
    pub approval: Option<Vec<String>>,
    #[serde(default)]
    pub approval_when_negated: Option<Vec<String>>,
    #[serde(default)]
    pub rejection: Option<Vec<String>>,
    #[serde(default)]
    pub change: Option<Vec<String>>,
    #[serde(default)]
    pub edit_verbs: Option<Vec<String>>,
    #[serde(default)]
    pub soft_verbs: Option<Vec<String>>,
    #[serde(default)]
    pub comparatives: Option<Vec<String>>,
    #[serde(default)]
    pub problem: Option<Vec<String>>,
    #[serde(default)]
    pub positive: Option<Vec<String>>,
    #[serde(default)]
    pub neutral: Option<Vec<String>>,
    #[serde(default)]
    pub request: Option<Vec<String>>,
    #[serde(default)]
    pub question: Option<Vec<String>>,
    #[serde(default)]
    pub info_question: Option<Vec<String>>,
    #[serde(default)]
    pub conditional: Option<Vec<String>>,
    #[serde(default)]
    pub later: Option<Vec<String>>,
    #[serde(default)]
    pub waiting: Option<Vec<String>>,
    #[serde(default)]
    pub negation: Option<Vec<String>>,
    #[serde(default)]
    pub thanks: Option<Vec<String>>,
    #[serde(default)]
    pub ack: Option<Vec<String>>,
    #[serde(default)]
    pub contrast: Option<Vec<String>>,
    #[serde(default)]
    pub exception: Option<Vec<String>>,
    #[serde(default)]
    pub concession: Option<Vec<String>>,
    #[serde(default)]
    pub typos: Option<HashMap<String, String>>,
    #[serde(default)]
    pub not_typos: Option<Vec<String>>,
}

impl LexiconFile {
    fn lists_mut(&mut self) -> [(Cat, &mut Option<Vec<String>>); 22] {
        [
            (Cat::Approval, &mut self.approval),
            (Cat::ApprovalWhenNegated, &mut self.approval_when_negated),
            (Cat::Rejection, &mut self.rejection),
            (Cat::Change, &mut self.change),
            (Cat::EditVerb, &mut self.edit_verbs),
            (Cat::SoftVerb, &mut self.soft_verbs),
            (Cat::Comparative, &mut self.comparatives),
            (Cat::Problem, &mut self.problem),
            (Cat::Positive, &mut self.positive),
            (Cat::Neutral, &mut self.neutral),
            (Cat::Request, &mut self.request),
            (Cat::Question, &mut self.question),
            (Cat::InfoQuestion, &mut self.info_question),
            (Cat::Conditional, &mut self.conditional),
            (Cat::Later, &mut self.later),
            (Cat::Waiting, &mut self.waiting),
            (Cat::Negation, &mut self.negation),
            (Cat::Thanks, &mut self.thanks),
            (Cat::Ack, &mut self.ack),
            (Cat::Contrast, &mut self.contrast),
            (Cat::Exception, &mut self.exception),
            (Cat::Concession, &mut self.concession),
        ]
    }

    /// Applies `other` over `self` (see `mode`).
    fn merge(&mut self, mut other: LexiconFile) -> Result<(), String> {
        let replace = match other.mode.as_deref().map(str::trim) {
            None | Some("") | Some("extend") => false,
            Some("replace") => true,
            Some(m) => {
                return Err(format!(
                    "\"mode\" is {m:?}, expected \"extend\" or \"replace\""
                ));
            }
        };
        let theirs = other.lists_mut().map(|(_, l)| l.take());
        for ((_, mine), theirs) in self.lists_mut().into_iter().zip(theirs) {
            if let Some(list) = theirs {
                match mine {
                    Some(existing) if !replace => existing.extend(list),
                    _ => *mine = Some(list),
                }
            }
        }
        if let Some(typos) = other.typos.take() {
            match &mut self.typos {
                Some(existing) if !replace => existing.extend(typos),
                _ => self.typos = Some(typos),
            }
        }
        if let Some(list) = other.not_typos.take() {
            match &mut self.not_typos {
                Some(existing) if !replace => existing.extend(list),
                _ => self.not_typos = Some(list),
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than 1 MiB")]
    TooLarge { path: String },
    #[error("{path} is not a valid lexicon: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A compiled lexicon.
#[derive(Debug, Clone)]
pub struct Lexicon {
    /// First word -> phrases starting with it (longest first), with their categories.
    phrases: HashMap<String, Vec<(Vec<String>, Cats)>>,
    pub(super) typos: HashMap<String, Vec<String>>,
    vocab: HashSet<String>,
    /// Approval and rejection words a misspelling may stand for.
    fuzzy: Vec<(String, Cats)>,
    /// Single-word problem and praise adjectives, whose plural / feminine forms are read as them
    /// ("décalés", "floues").
    inflectable: HashSet<String>,
    not_typos: HashSet<String>,
}

impl Default for Lexicon {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PartialEq for Lexicon {
    fn eq(&self, other: &Self) -> bool {
        self.phrases == other.phrases && self.typos == other.typos
    }
}

/// A piece of text to match (the folded words of a phrase).
pub type Phrase = Vec<String>;

impl Lexicon {
    pub fn builtin() -> Self {
        let file: LexiconFile =
            serde_json::from_str(DEFAULT_LEXICON).expect("the embedded lexicon is valid JSON");
        Self::compile(file)
    }

    /// The built-in lexicon with `path` applied over it.
    pub fn load(path: &Path) -> Result<Self, LexiconError> {
        let shown = path.display().to_string();
        let read = |source| LexiconError::Read {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > MAX_LEXICON_BYTES {
            return Err(LexiconError::TooLarge { path: shown });
        }
        let raw = std::fs::read_to_string(path).map_err(read)?;
        Self::with_overlay(&raw).map_err(|e| match e {
            OverlayError::Json(source) => LexiconError::Parse {
                path: shown.clone(),
                source,
            },
            OverlayError::Invalid(reason) => LexiconError::Invalid {
                path: shown.clone(),
                reason,
            },
        })
    }

    /// The built-in lexicon with a JSON overlay applied.
    pub fn with_overlay(raw: &str) -> Result<Self, OverlayError> {
        let mut base: LexiconFile =
            serde_json::from_str(DEFAULT_LEXICON).expect("the embedded lexicon is valid JSON");
        let overlay: LexiconFile = serde_json::from_str(raw).map_err(OverlayError::Json)?;
        base.merge(overlay).map_err(OverlayError::Invalid)?;
        Ok(Self::compile(base))
    }

    /// Replaces one cue list (the `FRAMEIO_KEYWORDS_*` variables).
    pub fn replace_list(&mut self, cat: Cat, phrases: &[Phrase]) {
        for entries in self.phrases.values_mut() {
            for (_, cats) in entries.iter_mut() {
                cats.0 &= !(1 << cat as u8);
            }
            entries.retain(|(_, cats)| !cats.is_empty());
        }
        for phrase in phrases {
            self.insert(phrase.clone(), cat);
        }
        self.finish();
    }

    fn compile(mut file: LexiconFile) -> Self {
        let mut lexicon = Self {
            phrases: HashMap::new(),
            typos: HashMap::new(),
            vocab: HashSet::new(),
            fuzzy: Vec::new(),
            inflectable: HashSet::new(),
            not_typos: HashSet::new(),
        };
        for (from, to) in file.typos.take().unwrap_or_default() {
            // Kept with its accents: "cé" is a typo, "ce" is a word.
            let key = from.trim().to_lowercase();
            let to = words(&to);
            if !key.is_empty() && !to.is_empty() {
                lexicon.typos.insert(key, to);
            }
        }
        lexicon.not_typos = file
            .not_typos
            .take()
            .unwrap_or_default()
            .iter()
            .map(|w| fold_text(w.trim()))
            .collect();
        for (cat, list) in file.lists_mut() {
            for phrase in list.take().unwrap_or_default() {
                let phrase = words(&phrase);
                if !phrase.is_empty() {
                    lexicon.insert(phrase, cat);
                }
            }
        }
        lexicon.finish();
        lexicon
    }

    fn insert(&mut self, phrase: Vec<String>, cat: Cat) {
        let entries = self.phrases.entry(phrase[0].clone()).or_default();
        match entries.iter_mut().find(|(p, _)| *p == phrase) {
            Some((_, cats)) => cats.add(cat),
            None => {
                let mut cats = Cats::default();
                cats.add(cat);
                entries.push((phrase, cats));
            }
        }
    }

    fn finish(&mut self) {
        self.phrases.retain(|_, entries| !entries.is_empty());
        for entries in self.phrases.values_mut() {
            entries.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        self.vocab = self
            .phrases
            .values()
            .flatten()
            .flat_map(|(p, _)| p.iter().cloned())
            .collect();
        self.fuzzy = self
            .phrases
            .values()
            .flatten()
            .filter(|(p, cats)| {
                p.len() == 1
                    && p[0].chars().count() >= 6
                    && (cats.has(Cat::Approval) || cats.has(Cat::Rejection))
            })
            .map(|(p, cats)| (p[0].clone(), *cats))
            .collect();
        self.inflectable = self
            .phrases
            .values()
            .flatten()
            .filter(|(p, cats)| {
                p.len() == 1
                    && p[0].chars().count() >= 4
                    && (cats.has(Cat::Problem) || cats.has(Cat::Positive))
            })
            .map(|(p, _)| p[0].clone())
            .collect();
    }

    /// The longest phrase starting at `tokens[at]`: its length and categories.
    pub fn longest(&self, tokens: &[Token], at: usize) -> Option<(usize, Cats)> {
        let entries = self.phrases.get(&tokens[at].word)?;
        entries.iter().find_map(|(phrase, cats)| {
            let end = at + phrase.len();
            (end <= tokens.len()
                && tokens[at..end]
                    .iter()
                    .zip(phrase)
                    .all(|(t, w)| t.word == *w))
            .then_some((phrase.len(), *cats))
        })
    }

    /// The canonical words for a word of the text (typos, stretched letters, one slip).
    pub(super) fn normalise(&self, word: &str) -> Option<Vec<String>> {
        if self.vocab.contains(word) {
            return None;
        }
        if let Some(fixed) = self.typos.get(word) {
            return Some(fixed.clone());
        }
        if self.not_typos.contains(word) {
            return None;
        }
        // "okkk", "parfaiiit", "goooood": runs of three or more letters.
        if has_run(word, 3) {
            for keep in [2, 1] {
                let squeezed = squeeze(word, keep);
                if self.vocab.contains(&squeezed) {
                    return Some(vec![squeezed]);
                }
                if let Some(fixed) = self.typos.get(&squeezed) {
                    return Some(fixed.clone());
                }
            }
        }
        // Plural and feminine forms of problem and praise adjectives.
        for suffix in ["es", "s", "e", "x"] {
            if let Some(stem) = word.strip_suffix(suffix)
                && self.inflectable.contains(stem)
            {
                return Some(vec![stem.to_string()]);
            }
        }
        // One swapped, missing or extra letter in a long approval/rejection word.
        if word.chars().count() >= 5 {
            for (target, _) in &self.fuzzy {
                if one_slip(word, target) {
                    return Some(vec![target.clone()]);
                }
            }
        }
        None
    }
}

#[derive(Debug)]
pub enum OverlayError {
    Json(serde_json::Error),
    Invalid(String),
}

impl std::fmt::Display for OverlayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "{e}"),
            Self::Invalid(r) => f.write_str(r),
        }
    }
}

fn has_run(word: &str, n: usize) -> bool {
    let mut last = None;
    let mut run = 0;
    for c in word.chars() {
        if Some(c) == last {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            last = Some(c);
            run = 1;
        }
    }
    false
}

fn squeeze(word: &str, keep: usize) -> String {
    let mut out = String::with_capacity(word.len());
    let mut last = None;
    let mut run = 0;
    for c in word.chars() {
        if Some(c) == last {
            run += 1;
        } else {
            last = Some(c);
            run = 1;
        }
        if run <= keep {
            out.push(c);
        }
    }
    out
}

/// One adjacent transposition, one insertion or one deletion (no substitution: "approche" is
/// not "approuve").
fn one_slip(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a == b {
        return false;
    }
    if a.len() == b.len() {
        let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return diff.len() == 2
            && diff[1] == diff[0] + 1
            && a[diff[0]] == b[diff[1]]
            && a[diff[1]] == b[diff[0]];
    }
    let (short, long) = if a.len() < b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() != short.len() + 1 {
        return false;
    }
    let skip = (0..short.len())
        .find(|&i| short[i] != long[i])
        .unwrap_or(short.len());
    short[skip..] == long[skip + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frameio::review::tokens::clauses;

    #[test]
    fn builtin_compiles_and_folds() {
        let l = Lexicon::builtin();
        assert!(l.vocab.contains("valide"));
        assert_eq!(fold_text("À Modifier ÉTÉ Œuvre"), "a modifier ete oeuvre");
        assert_eq!(
            words("c'est-bon!! OK 👍"),
            vec!["c", "est", "bon", "ok", "👍"]
        );
        assert_eq!(fold_text("valide\u{0301}"), "valide");
    }

    #[test]
    fn typos_and_slips() {
        let l = Lexicon::builtin();
        let norm = |w: &str| l.normalise(w).map(|v| v.join(" "));
        assert_eq!(norm("approvd").as_deref(), Some("approved"));
        assert_eq!(norm("vailde").as_deref(), Some("valide"));
        assert_eq!(norm("okkkk").as_deref(), Some("ok"));
        assert_eq!(norm("parfaiiiit").as_deref(), Some("parfait"));
        assert_eq!(norm("approche"), None);
        assert_eq!(norm("valise"), None);
        assert!(one_slip("valdie", "valide"));
        assert!(!one_slip("valise", "valide"));
    }

    #[test]
    fn overlay_extends_or_replaces() -> Result<(), OverlayError> {
        let l = Lexicon::with_overlay(r#"{"approval": ["banco"]}"#)?;
        let t = |s: &str| clauses(s, &l).remove(0).tokens;
        assert!(
            l.longest(&t("banco"), 0)
                .is_some_and(|(_, c)| c.has(Cat::Approval))
        );
        assert!(
            l.longest(&t("validé"), 0)
                .is_some_and(|(_, c)| c.has(Cat::Approval))
        );
        let r = Lexicon::with_overlay(r#"{"mode": "replace", "approval": ["banco"]}"#)?;
        assert!(
            r.longest(&t("validé"), 0)
                .is_none_or(|(_, c)| !c.has(Cat::Approval))
        );
        assert!(Lexicon::with_overlay(r#"{"mode": "merge"}"#).is_err());
        assert!(Lexicon::with_overlay(r#"{"aproval": []}"#).is_err());
        Ok(())
    }
}
