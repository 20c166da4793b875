//! The review reader: turns a comment into a verdict, says whether it is sure, and turns a file's
//! comments into the decision of the newest decisive one. Two readers vote: the rules
//! (`rules.rs`, the lexicon's cues, the precision guard) and a linear model trained on the corpus
//! (`model.rs`). An approval is sure only when the rules give it (sure, or unsure with the model
//! at least 0.9 sure of it too). Between verdicts that do not approve, agreement is sure; a rule
//! that found no cue abstains and a model 0.8 sure decides; a model 0.8 sure overrules the rules
//! (measured writer by writer: fewer "not sure" and no more confidently wrong). Otherwise the
//! answer is "not sure", with the best guess. An optional language model (`llm.rs`) gives a
//! second opinion on the comments left unsure.
//!
//! Pure apart from the optional second opinion: no I/O, no clock.

pub mod corpus;
pub mod eval;
pub mod lexicon;
pub mod llm;
pub mod model;
mod rules;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{ConfigError, ReviewSettings};
use crate::domain::Verdict;
pub use lexicon::{Cat, Lexicon};
use model::{CLASSES, Model, RuleSignals};
pub use rules::MAX_ANALYSED_CHARS;
pub use tokens::words;

/// Cue kinds of the rules that veto a sure approval: something to change, a refusal, or an
/// approval held back (a question, a condition, for later, waiting).
pub const APPROVAL_VETO: [&str; 10] = [
    "rejection",
    "change request",
    "problem",
    "exception",
    "reservation after an approval",
    "negated approval",
    "waiting",
    "question",
    "condition",
    "for later",
];

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
    /// The model's probability of each class (approved, changes_requested, rejected, none).
    pub model: [f32; CLASSES],
}

impl Votes {
    /// The rules veto a sure approval (they found something to change, a refusal, or an
    /// approval held back).
    pub fn approval_vetoed(&self) -> bool {
        self.kinds.iter().any(|k| APPROVAL_VETO.contains(k))
    }
}

/// How the votes make one answer: the model decides, each of its verdicts sure above a
/// probability measured writer by writer (held out) and shipped with the model; the rules lower
/// that bar when they say the same, and guard approvals: no sure approval when they found
/// anything to change, a refusal or an approval held back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The model's least probability for a sure verdict, per class (approved,
    /// changes_requested, rejected, none), when the rules give the same verdict and are sure.
    pub agree: [f32; CLASSES],
    /// The same when the rules give another verdict, or are unsure of theirs. Above 1: never.
    pub alone: [f32; CLASSES],
}

impl Policy {
    /// The vote: the model's likeliest verdict, sure when the model is sure enough of it for
    /// what the rules say, and, for an approval, when the rules veto nothing.
    pub fn decide(&self, votes: Votes) -> Analysis {
        let vetoed = votes.approval_vetoed();
        let Votes {
            rules: rule,
            model: p,
            ..
        } = votes;
        let (m, pm) = argmax(&p);
        let guess = verdict_of(m);
        let model_says = format!("model {} {:.2}", name(guess), pm);
        let agree = rule.verdict == guess;
        let needed = if agree && rule.confident {
            self.agree[m]
        } else {
            self.alone[m]
        };
        let veto = m == 0 && vetoed;
        let sure = pm >= needed && !veto;
        let reason = match (sure, agree) {
            (true, true) => format!("{} (rules and {model_says} agree)", rule.reason),
            (true, false) => format!("{model_says} (rules: {})", rule.reason),
            (false, _) if veto => format!(
                "not sure: {model_says}, but the rules see more than an approval ({})",
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
