//! The rules: read a review comment the way a producer does, from the lexicon's cues. Pure: no
//! I/O, no clock. They are the precision guard of the reader (mod.rs): an approval needs theirs.
//!
//! One comment: split into clauses (punctuation, "mais"/"but", "sauf"/"except"); in each clause
//! find the lexicon's cues (longest phrase first), bind each negation ("pas", "not", "aucun",
//! "sans", "presque", …) to the next cue within four words, or, French style, to the verb just
//! before it ("je valide pas"). Then, over the whole comment: a rejection wins; else any change
//! request (an edit verb, a change noun, a problem word, a request or question proposing a
//! change, an exception to an approval, a negated approval) wins; else waiting holds an
//! approval back; else an approval that is not a question, a condition or for later approves.
//! Negated change words ("rien à modifier", "no changes") approve. When in doubt, not approved.

use super::Analysis;
pub use super::lexicon::Cat;
use super::lexicon::{Cats, Lexicon};
use super::tokens::{Clause, Token, clauses};
use crate::domain::Verdict;

/// Longest comment analysed (characters); the rest is ignored.
pub const MAX_ANALYSED_CHARS: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Approval,
    NoChange,
    Rejection,
    Change,
    Problem,
    NegatedApproval,
    Exception,
    Reservation,
    Waiting,
    Question,
    Conditional,
    Later,
    Thanks,
    Compliment,
    /// An approval given despite a reservation ("on valide quand même").
    Concession,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::NoChange => "no change wanted",
            Self::Rejection => "rejection",
            Self::Change => "change request",
            Self::Problem => "problem",
            Self::NegatedApproval => "negated approval",
            Self::Exception => "exception",
            Self::Reservation => "reservation after an approval",
            Self::Waiting => "waiting",
            Self::Question => "question",
            Self::Conditional => "condition",
            Self::Later => "for later",
            Self::Thanks => "thanks",
            Self::Compliment => "compliment",
            Self::Concession => "approval despite",
        }
    }
}

#[derive(Debug, Clone)]
struct Cue {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A lexicon phrase found in a clause.
#[derive(Debug, Clone, Copy)]
struct Match {
    start: usize,
    len: usize,
    cats: Cats,
    negated: Option<(usize, usize)>,
    negator: bool,
}

const POST_NEGATORS: [&str; 4] = ["pas", "jamais", "rien", "plus"];
/// Negations that cover everything ("rien à changer", "don't change anything").
const GLOBAL_NEGATIONS: [&str; 6] = ["rien", "nothing", "anything", "aucun", "aucune", "none"];

fn find_matches(tokens: &[Token], lexicon: &Lexicon) -> Vec<Match> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match lexicon.longest(tokens, i) {
            Some((len, cats)) => {
                out.push(Match {
                    start: i,
                    len,
                    cats,
                    negated: None,
                    negator: cats.has(Cat::Negation),
                });
                i += len;
            }
            None => i += 1,
        }
    }
    // "plus" negates after "ne"/"n'" ("n'a plus de remarque") or before "aucun"/"rien".
    for m in out.iter_mut() {
        if m.len == 1 && tokens[m.start].word == "plus" {
            let ne_before = tokens[m.start.saturating_sub(3)..m.start]
                .iter()
                .any(|t| t.word == "ne" || t.word == "n");
            let next = tokens.get(m.start + 1).map(|t| t.word.as_str());
            if ne_before || matches!(next, Some("aucun" | "aucune" | "rien")) {
                m.negator = true;
            }
        }
    }
    // Each negation binds to the next cue within four words.
    let cue_like = |m: &Match| !m.negator && !m.cats.has(Cat::Neutral);
    for n in 0..out.len() {
        if !out[n].negator {
            continue;
        }
        let from = out[n].start;
        let neg_end = out[n].start + out[n].len;
        if let Some(target) = (n + 1..out.len())
            .take_while(|&k| out[k].start <= neg_end + 3)
            .find(|&k| cue_like(&out[k]))
        {
            let end = out[target].start + out[target].len;
            out[target].negated = Some((from, end));
        }
        // French post-verbal negation: "je valide pas", "j'aime pas", "ne touche plus à rien".
        let word = tokens[from].word.as_str();
        if POST_NEGATORS.contains(&word) {
            // "pas de souci" negates the noun after it, not the verb before.
            let after = tokens.get(neg_end).map(|t| t.word.as_str());
            // "pas de souci", "rien à dire": the noun after, not the verb before.
            let shields: &[&str] = match word {
                "pas" => &["de", "d", "du", "des"],
                "rien" => &["de", "d", "a", "au"],
                _ => &[],
            };
            if out[n].len == 1 && after.is_some_and(|a| shields.contains(&a)) {
                continue;
            }
            if let Some(prev) = (0..n).rev().find(|&k| cue_like(&out[k])) {
                let p = out[prev];
                let verbish = [
                    Cat::Approval,
                    Cat::ApprovalWhenNegated,
                    Cat::Positive,
                    Cat::EditVerb,
                ]
                .iter()
                .any(|c| p.cats.has(*c));
                if verbish && from <= p.start + p.len + 2 && p.negated.is_none() {
                    out[prev].negated = Some((p.start, neg_end));
                }
            }
        }
    }
    out
}

/// What one clause says.
#[derive(Default)]
struct ClauseCues {
    cues: Vec<Cue>,
}

fn span(tokens: &[Token], start: usize, end: usize) -> (usize, usize) {
    let last = end.max(start + 1).min(tokens.len()) - 1;
    (tokens[start].start, tokens[last].end)
}

fn read_clause(clause: &Clause, lexicon: &Lexicon, approved_before: bool) -> ClauseCues {
    let tokens = &clause.tokens;
    let matches = find_matches(tokens, lexicon);
    let any = |cat: Cat| matches.iter().any(|m| m.cats.has(cat) && !m.negator);
    let first = matches.first().filter(|m| m.start == 0);
    let question = clause.question_mark
        || matches
            .iter()
            .take_while(|m| m.start <= 1)
            .any(|m| m.cats.has(Cat::Question));
    // An imperative ("make it pop more", "mettre le logo en blanc") is a request too.
    let imperative = first.is_some_and(|m| m.cats.has(Cat::SoftVerb) || m.cats.has(Cat::EditVerb));
    let request = any(Cat::Request) || imperative;
    let conditional = any(Cat::Conditional);
    let info = question && any(Cat::InfoQuestion);
    let later = any(Cat::Later);
    let ack_before = |at: usize| {
        matches
            .iter()
            .any(|m| m.cats.has(Cat::Ack) && m.start < at && at <= m.start + m.len + 4)
    };
    let mut out = ClauseCues::default();
    let push = |cues: &mut Vec<Cue>, kind: Kind, range: (usize, usize)| {
        let (start, end) = span(tokens, range.0, range.1);
        cues.push(Cue { kind, start, end });
    };
    for m in &matches {
        if m.negator || m.cats.has(Cat::Neutral) {
            continue;
        }
        let own = (m.start, m.start + m.len);
        let whole = m.negated.map_or(own, |(a, b)| (a.min(own.0), b.max(own.1)));
        let c = m.cats;
        let negated = m.negated.is_some();
        let participle = tokens[m.start + m.len - 1].participle;
        if c.has(Cat::Rejection) && !negated && !question && !conditional {
            push(&mut out.cues, Kind::Rejection, own);
        }
        if c.has(Cat::Approval) || (c.has(Cat::ApprovalWhenNegated) && negated) {
            if negated {
                if !question {
                    push(&mut out.cues, Kind::NegatedApproval, whole);
                }
            } else if question {
                push(&mut out.cues, Kind::Question, own);
            } else if conditional {
                push(&mut out.cues, Kind::Conditional, own);
            } else if later {
                push(&mut out.cues, Kind::Later, own);
            } else {
                push(&mut out.cues, Kind::Approval, own);
                if any(Cat::Concession) {
                    push(&mut out.cues, Kind::Concession, own);
                }
            }
        }
        if c.has(Cat::Change) || c.has(Cat::EditVerb) {
            let strong = c.has(Cat::Change) || !participle || request || conditional;
            // "Rien à modifier", "don't change anything": nothing to change. "Ne pas changer la
            // musique" only protects one thing: no decision.
            let global = c.has(Cat::Change)
                || tokens
                    .iter()
                    .any(|t| GLOBAL_NEGATIONS.contains(&t.word.as_str()));
            if negated {
                if !question && global {
                    push(&mut out.cues, Kind::NoChange, whole);
                }
            } else if !ack_before(m.start) && !info && strong {
                push(&mut out.cues, Kind::Change, own);
            }
        } else if (c.has(Cat::SoftVerb) || c.has(Cat::Comparative))
            && !negated
            && (request || question)
            && !info
        {
            push(&mut out.cues, Kind::Change, own);
        }
        if c.has(Cat::Problem) && !negated && !info && !ack_before(m.start) {
            push(&mut out.cues, Kind::Problem, own);
        }
        if c.has(Cat::Positive) && !c.has(Cat::Approval) {
            if negated {
                push(&mut out.cues, Kind::Problem, whole);
            } else {
                push(&mut out.cues, Kind::Compliment, own);
            }
        }
        if c.has(Cat::Waiting) {
            push(&mut out.cues, Kind::Waiting, own);
        }
        if c.has(Cat::Thanks) || c.has(Cat::Ack) {
            push(&mut out.cues, Kind::Thanks, own);
        }
    }
    // "sauf le carton de fin", "except the end card": an exception names what is not approved.
    if let Some(f) = first
        && f.cats.has(Cat::Exception)
        && tokens.len() > f.len
        && !out.cues.iter().any(|c| c.kind == Kind::Waiting)
    {
        push(&mut out.cues, Kind::Exception, (0, tokens.len()));
    }
    // "validé, mais avec la musique de la V2": a reservation after an approval.
    // Any other lexicon phrase (even a neutral one, "une question") means it is not a reservation.
    let decisive = !out.cues.is_empty() || matches.len() > 1;
    if approved_before
        && let Some(f) = first
        && f.cats.has(Cat::Contrast)
        && tokens.len() >= f.len + 2
        && !decisive
        && !request
    {
        push(&mut out.cues, Kind::Reservation, (0, tokens.len()));
    }
    out
}

/// Splits a clause before each contrast or exception connective ("mais", "sauf", "but", …).
fn split_at_connectives(clause: Clause, lexicon: &Lexicon) -> Vec<Clause> {
    let cuts: Vec<usize> = find_matches(&clause.tokens, lexicon)
        .iter()
        .filter(|m| m.start > 0 && (m.cats.has(Cat::Contrast) || m.cats.has(Cat::Exception)))
        .map(|m| m.start)
        .collect();
    if cuts.is_empty() {
        return vec![clause];
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut tokens = clause.tokens;
    for cut in cuts.iter().rev() {
        let tail = tokens.split_off(*cut);
        out.push(Clause {
            tokens: tail,
            question_mark: out.is_empty() && clause.question_mark,
        });
    }
    out.push(Clause {
        tokens,
        question_mark: false,
    });
    out.reverse();
    out
}

/// The rules' verdict of one comment and its reason.
#[cfg(test)]
pub fn analyse_text(text: &str, lexicon: &Lexicon) -> Analysis {
    read(text, lexicon).analysis
}

/// What the rules read in a comment.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Their verdict, whether they are sure, and the cues that decided.
    pub analysis: Analysis,
    /// The kinds of cue found (labels, each once, sorted), and "unexplained clause" when a
    /// clause of more than one word held none.
    pub kinds: Vec<&'static str>,
    /// The cue kinds in the order of the comment, a repeat next to itself once.
    pub order: Vec<&'static str>,
    /// The comment's clauses, cut again at contrasts and exceptions ("mais", "sauf", "but").
    pub clauses: Vec<Clause>,
}

/// The rules' verdict and the kinds of cue they found.
pub fn read(text: &str, lexicon: &Lexicon) -> Reading {
    let text = match text.char_indices().nth(MAX_ANALYSED_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    let mut cues: Vec<Cue> = Vec::new();
    let mut unexplained = 0;
    let mut all = Vec::new();
    for sentence in clauses(text, lexicon) {
        for clause in split_at_connectives(sentence, lexicon) {
            let approved_before = cues.iter().any(|c| c.kind == Kind::Approval);
            let read = read_clause(&clause, lexicon, approved_before).cues;
            if read.is_empty() && clause.tokens.len() >= 2 {
                unexplained += 1;
            }
            cues.extend(read);
            all.push(clause);
        }
    }
    let mut analysis = decide(text, &cues);
    analysis.confident = confident(text, &cues, analysis.verdict, unexplained);
    let mut order: Vec<&'static str> = cues.iter().map(|c| c.kind.label()).collect();
    order.dedup();
    let mut kinds = order.clone();
    if unexplained > 0 {
        kinds.push("unexplained clause");
    }
    kinds.sort_unstable();
    kinds.dedup();
    Reading {
        analysis,
        kinds,
        order,
        clauses: all,
    }
}

/// Whether the rules alone are sure: an approval only when every clause of more than one word
/// carries a cue (a clause the rules cannot read may report a problem), nothing is conceded; no
/// decision only when the comment has a cue that says so (thanks, waiting, a question about an
/// approval) or is short and holds no figure (a timecode, a quote, an arrow often report a fault).
fn confident(text: &str, cues: &[Cue], verdict: Option<Verdict>, unexplained: usize) -> bool {
    let has = |k: Kind| cues.iter().any(|c| c.kind == k);
    let factual = text
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '"' | '«' | '»' | '“' | '”' | '→'))
        || text.contains("->");
    match verdict {
        Some(Verdict::Rejected) => true,
        Some(Verdict::ChangesRequested) => true,
        Some(Verdict::Approved) => unexplained == 0 && !has(Kind::Concession),
        None if cues.is_empty() => {
            let words = text.split_whitespace().count();
            !factual && words <= 6 && !text.contains('?')
        }
        None => unexplained == 0 || !factual,
    }
}

fn quote(text: &str, cues: &[&Cue]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for c in cues {
        let s = text.get(c.start..c.end).unwrap_or("").trim();
        if !s.is_empty() && !seen.contains(&s) {
            seen.push(s);
        }
    }
    let shown: Vec<String> = seen.iter().take(3).map(|s| format!("'{s}'")).collect();
    let mut out = shown.join(", ");
    if seen.len() > 3 {
        out.push_str(", …");
    }
    out
}

fn describe(text: &str, cues: &[Cue], kinds: &[Kind]) -> String {
    let mut parts = Vec::new();
    for kind in kinds {
        let of: Vec<&Cue> = cues.iter().filter(|c| c.kind == *kind).collect();
        if !of.is_empty() {
            parts.push(format!("{} {}", kind.label(), quote(text, &of)));
        }
    }
    parts.join(", ")
}

fn decide(text: &str, cues: &[Cue]) -> Analysis {
    let has = |k: Kind| cues.iter().any(|c| c.kind == k);
    const CHANGES: [Kind; 5] = [
        Kind::Change,
        Kind::Problem,
        Kind::Exception,
        Kind::Reservation,
        Kind::NegatedApproval,
    ];
    const APPROVALS: [Kind; 2] = [Kind::Approval, Kind::NoChange];
    if has(Kind::Rejection) {
        return Analysis {
            verdict: Some(Verdict::Rejected),
            confident: true,
            reason: describe(text, cues, &[Kind::Rejection]),
        };
    }
    let approving = APPROVALS.iter().any(|k| has(*k));
    let waiting = has(Kind::Waiting);
    // "Pas parfait mais on valide quand même": a conceded approval outweighs a negated one
    // (not an explicit change request).
    let conceded = has(Kind::Concession);
    let changing = CHANGES[..4].iter().any(|k| has(*k))
        || (has(Kind::NegatedApproval) && !waiting && !conceded);
    if changing {
        let changes = describe(text, cues, &CHANGES);
        let reason = if approving {
            format!(
                "{} overridden by {changes}",
                describe(text, cues, &APPROVALS)
            )
        } else {
            changes
        };
        return Analysis {
            verdict: Some(Verdict::ChangesRequested),
            confident: true,
            reason,
        };
    }
    let none = |reason: String| Analysis {
        verdict: None,
        confident: true,
        reason: format!("no decision: {reason}"),
    };
    if waiting {
        let held: Vec<Kind> = [Kind::Approval, Kind::NoChange, Kind::NegatedApproval]
            .into_iter()
            .filter(|k| has(*k))
            .collect();
        return none(if held.is_empty() {
            describe(text, cues, &[Kind::Waiting])
        } else {
            format!(
                "{} held back by {}",
                describe(text, cues, &held),
                describe(text, cues, &[Kind::Waiting])
            )
        });
    }
    if approving {
        let mut reason = describe(text, cues, &APPROVALS);
        if conceded && has(Kind::NegatedApproval) {
            reason = format!(
                "{reason}, conceded despite {}",
                describe(text, cues, &[Kind::NegatedApproval])
            );
        }
        return Analysis {
            verdict: Some(Verdict::Approved),
            confident: true,
            reason,
        };
    }
    for (kind, why) in [
        (Kind::Question, "is a question"),
        (Kind::Conditional, "is conditional"),
        (Kind::Later, "is for later"),
    ] {
        if has(kind) {
            return none(format!(
                "approval {} {why}",
                quote(
                    text,
                    &cues.iter().filter(|c| c.kind == kind).collect::<Vec<_>>()
                )
            ));
        }
    }
    if has(Kind::Thanks) {
        return none(describe(text, cues, &[Kind::Thanks, Kind::Compliment]) + " only");
    }
    if has(Kind::Compliment) {
        return none(describe(text, cues, &[Kind::Compliment]) + " only");
    }
    none("no review cue".into())
}

#[cfg(test)]
mod tests;
