//! The review reader: turns a comment into a verdict, says whether it is sure, and turns a file's
//! comments into the decision of the newest decisive one. Two readers: the rules (`rules.rs`,
//! the lexicon's cues) and a linear model trained on the corpus (`model.rs`), which also reads
//! what the rules found. The model gives the verdict; it is sure when the model's probability
//! reaches the threshold for that verdict (lower when sure rules say the same), thresholds
//! calibrated writer by writer on held-out comments and shipped with the model. The rules stay
//! the precision guard of approvals: none is sure over a refusal, an exception, a negated or
//! held-back approval, or a question they do not read as an approval; over something to change
//! or a problem only a model extremely sure of the approval decides. Otherwise the answer is
//! "not sure", with the model's guess. An optional language model (`llm.rs`) gives a second
//! opinion on the comments left unsure.
//!
//! Pure apart from the optional second opinion: no I/O, no clock.

pub mod corpus;
pub mod eval;
pub mod lexicon;
pub mod llm;
pub mod model;
mod rules;
mod tokens;
mod word;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{ConfigError, ReviewSettings};
use crate::domain::Verdict;
pub use lexicon::{Cat, Lexicon};
use model::{CLASSES, Model, RuleSignals};
pub use rules::MAX_ANALYSED_CHARS;
pub use word::words;

/// Cue kinds of the rules that hold any approval back: a refusal, an exception, a negated or
/// held-back approval (waiting, a question, a condition, for later).
pub const APPROVAL_HOLD: [&str; 8] = [
    "rejection",
    "exception",
    "reservation after an approval",
    "negated approval",
    "waiting",
    "question",
    "condition",
    "for later",
];
/// Cue kinds of the rules that doubt an approval: something to change or a problem. Only a
/// model extremely sure of the approval (`Policy::over_doubt`) outweighs them: "plus de
/// modif", "all my notes have been addressed".
pub const APPROVAL_DOUBT: [&str; 2] = ["change request", "problem"];

/// A comment's verdict (none: no decision, or the guess when not sure), whether the reader is
/// sure of it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub verdict: Option<Verdict>,
    /// False: the verdict is a guess; an unsure comment never approves an upload.
    pub confident: bool,
    pub reason: String,
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

/// The deciding comment: the newest one that decides or that the reader is not sure about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The verdict, or the guess when not `confident`.
    pub verdict: Option<Verdict>,
    pub confident: bool,
    pub comment_id: String,
    pub text: String,
    /// The cues that decided the comment's verdict.
    pub reason: String,
    pub completed: bool,
    /// How many comments are marked completed (noted, they do not change the verdict).
    pub completed_count: usize,
}

fn class_of(v: Option<Verdict>) -> usize {
    match v {
        Some(Verdict::Approved) => 0,
        Some(Verdict::ChangesRequested) => 1,
        Some(Verdict::Rejected) => 2,
        None => 3,
    }
}

fn verdict_of(class: usize) -> Option<Verdict> {
    match class {
        0 => Some(Verdict::Approved),
        1 => Some(Verdict::ChangesRequested),
        2 => Some(Verdict::Rejected),
        _ => None,
    }
}

fn name(v: Option<Verdict>) -> &'static str {
    v.map_or("no decision", Verdict::as_str)
}

/// What the two readers say of one comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Votes {
    /// The rules' verdict, whether they are sure, and their cues.
    pub rules: Analysis,
    /// The kinds of cue the rules found.
    pub kinds: Vec<&'static str>,
    /// The comment holds a question mark.
    pub question: bool,
    /// The model's probability of each class (approved, changes_requested, rejected, none).
    pub model: [f32; CLASSES],
}

/// What the rules leave of an approval by the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Nothing against it.
    Free,
    /// Something to change or a problem: only an extremely sure model approves.
    Doubt,
    /// Held back or refused, or a question the rules do not read as an approval: never sure.
    Hold,
}

impl Votes {
    /// How the rules guard an approval.
    pub fn guard(&self) -> Guard {
        let rules_approve = self.rules.verdict == Some(Verdict::Approved) && self.rules.confident;
        if self.kinds.iter().any(|k| APPROVAL_HOLD.contains(k)) || (self.question && !rules_approve)
        {
            Guard::Hold
        } else if self.kinds.iter().any(|k| APPROVAL_DOUBT.contains(k)) {
            Guard::Doubt
        } else {
            Guard::Free
        }
    }

    /// Which of the policy's thresholds applies to the model's verdict `class`: an index into
    /// [`Policy::agree`] (the rules say the same and are sure) or [`Policy::alone`] (plus
    /// [`CLASSES`]); `2 * CLASSES` for an approval over the rules' doubt; none when the rules
    /// hold the approval back.
    pub fn threshold_index(&self, class: usize) -> Option<usize> {
        if class == 0 {
            match self.guard() {
                Guard::Hold => return None,
                Guard::Doubt => return Some(2 * CLASSES),
                Guard::Free => {}
            }
        }
        let agree = class_of(self.rules.verdict) == class && self.rules.confident;
        Some(if agree { class } else { CLASSES + class })
    }
}

/// How the votes make one answer: the model decides, each of its verdicts sure above a
/// probability measured writer by writer (held out) and shipped with the model; the rules lower
/// that bar when they say the same, and guard approvals: no sure approval when they found a
/// refusal or an approval held back, or a question they do not read as an approval; over
/// something to change or a problem only a model extremely sure of it approves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The model's least probability for a sure verdict, per class (approved,
    /// changes_requested, rejected, none), when the rules give the same verdict and are sure.
    pub agree: [f32; CLASSES],
    /// The same when the rules give another verdict, or are unsure of theirs. Above 1: never.
    pub alone: [f32; CLASSES],
    /// The model's least probability for a sure approval over the rules' doubt.
    pub over_doubt: f32,
}

impl Policy {
    /// The threshold of [`Votes::threshold_index`].
    pub fn threshold(&self, index: usize) -> f32 {
        match index {
            i if i < CLASSES => self.agree[i],
            i if i < 2 * CLASSES => self.alone[i - CLASSES],
            _ => self.over_doubt,
        }
    }

    /// The vote: the model's likeliest verdict, sure when the model is sure enough of it for
    /// what the rules say.
    pub fn decide(&self, votes: Votes) -> Analysis {
        let (m, pm) = argmax(&votes.model);
        let index = votes.threshold_index(m);
        let rule = votes.rules;
        let guess = verdict_of(m);
        let model_says = format!("model {} {:.2}", name(guess), pm);
        let agree = rule.verdict == guess;
        let sure = index.is_some_and(|i| pm >= self.threshold(i));
        let reason = match (sure, agree) {
            (true, true) => format!("{} (rules and {model_says} agree)", rule.reason),
            (true, false) => format!("{model_says} (rules: {})", rule.reason),
            (false, _) if index.is_none() => format!(
                "not sure: {model_says}, but the rules hold the approval back ({})",
                rule.reason
            ),
            (false, true) => format!("not sure: {} ({model_says}, not sure enough)", rule.reason),
            (false, false) => format!(
                "not sure: rules say {} ({}), {model_says}",
                name(rule.verdict),
                rule.reason
            ),
        };
        Analysis {
            verdict: guess,
            confident: sure,
            reason,
        }
    }
}

/// The rules and the model, ready to read comments.
#[derive(Debug, Clone)]
pub struct Reader {
    lexicon: Lexicon,
    model: Model,
    pub policy: Policy,
    /// The optional second opinion on unsure comments.
    llm: Option<Arc<llm::SecondOpinion>>,
}

impl Default for Reader {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Reader {
    /// The built-in lexicon and the embedded model.
    pub fn builtin() -> Self {
        Self::new(Lexicon::builtin(), Model::embedded())
    }

    /// The rules of `lexicon`, and `model` with the policy it was calibrated with.
    pub fn new(lexicon: Lexicon, model: Model) -> Self {
        Self {
            lexicon,
            policy: model.policy(),
            model,
            llm: None,
        }
    }

    /// The reader the settings describe: a studio's lexicon file over the built-in one, then
    /// the `FRAMEIO_KEYWORDS_*` lists. A lexicon that cannot be read is a configuration mistake.
    pub fn from_settings(settings: &ReviewSettings) -> Result<Self, ConfigError> {
        let mut lexicon = match &settings.lexicon_file {
            Some(path) => Lexicon::load(Path::new(path)).map_err(|e| ConfigError::Invalid {
                var: "FRAMEIO_REVIEW_LEXICON",
                value: path.display().to_string(),
                reason: e.to_string(),
            })?,
            None => Lexicon::builtin(),
        };
        for (list, cat) in [
            (&settings.keywords_approved, Cat::Approval),
            (&settings.keywords_changes, Cat::Change),
            (&settings.keywords_rejected, Cat::Rejection),
        ] {
            if let Some(phrases) = list {
                lexicon.replace_list(cat, phrases);
            }
        }
        let mut reader = Self::new(lexicon, Model::embedded());
        if let Some(llm) = &settings.llm {
            let opinion = llm::SecondOpinion::new(llm).map_err(|e| ConfigError::Invalid {
                var: "FRAMEIO_REVIEW_LLM_URL",
                value: crate::net::redact(&llm.url),
                reason: format!("cannot build its HTTP client: {e}"),
            })?;
            reader.llm = Some(Arc::new(opinion));
        }
        Ok(reader)
    }

    /// With a second opinion (tests; the settings give it otherwise).
    pub fn with_second_opinion(mut self, opinion: llm::SecondOpinion) -> Self {
        self.llm = Some(Arc::new(opinion));
        self
    }

    /// The local analysis, with the language model's opinion when it is configured and the
    /// local reader is not sure.
    pub async fn second_opinion(&self, text: &str, local: Analysis) -> Analysis {
        match &self.llm {
            Some(llm) if !local.confident => llm.review(text, local).await,
            _ => local,
        }
    }

    /// One comment, with the second opinion when configured.
    pub async fn analyse_text_with_opinion(&self, text: &str) -> Analysis {
        let local = self.analyse_text(text);
        self.second_opinion(text, local).await
    }

    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The model's features of a comment (the trainer uses the same).
    pub fn features(&self, text: &str) -> Vec<u32> {
        let reading = rules::read(cut(text), &self.lexicon);
        features_of(cut(text), &reading)
    }

    /// What each reader says of one comment.
    pub fn votes(&self, text: &str) -> Votes {
        let text = cut(text);
        let reading = rules::read(text, &self.lexicon);
        let model = self.model.predict(&features_of(text, &reading));
        Votes {
            rules: reading.analysis,
            kinds: reading.kinds,
            question: text.contains('?'),
            model,
        }
    }

    /// One comment: both readers, then the vote.
    pub fn analyse_text(&self, text: &str) -> Analysis {
        self.policy.decide(self.votes(text))
    }

    /// The verdict of one comment's text (sure or not).
    pub fn verdict(&self, text: &str) -> Option<Verdict> {
        self.analyse_text(text).verdict
    }

    /// The newest comment that decides (a sure verdict) or that the reader is not sure about;
    /// comments the reader is sure say nothing are skipped.
    pub fn analyse(&self, comments: &[CommentText<'_>]) -> Option<Decision> {
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
            let a = self.analyse_text(c.text);
            (a.verdict.is_some() || !a.confident).then(|| Decision {
                verdict: a.verdict,
                confident: a.confident,
                comment_id: c.id.to_string(),
                text: c.text.to_string(),
                reason: a.reason,
                completed: c.completed,
                completed_count,
            })
        })
    }
}

fn features_of(text: &str, reading: &rules::Reading) -> Vec<u32> {
    model::features(
        text,
        &reading.clauses,
        RuleSignals {
            class: class_of(reading.analysis.verdict),
            confident: reading.analysis.confident,
            kinds: &reading.kinds,
            order: &reading.order,
        },
    )
}

fn argmax(p: &[f32; CLASSES]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .fold((CLASSES - 1, f32::MIN), |best, (i, v)| {
            if v > best.1 { (i, v) } else { best }
        })
}

fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_ANALYSED_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn parse_instant(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests;
