//! Scoring the reader on a labelled comment set (`rushes frameio verdict --eval FILE.json`): the
//! confusion matrix, how often it is confidently wrong, how often it is not sure, and false
//! approvals. The targets are those a set written outside the project must meet.

use serde::Deserialize;

use super::Analysis;
use crate::domain::Verdict;

/// Confidently wrong on at most this share of comments.
pub const MAX_CONFIDENTLY_WRONG: f64 = 0.03;
/// Not confident on at most this share of comments.
pub const MAX_NOT_CONFIDENT: f64 = 0.12;
/// Largest set file read.
pub const MAX_SET_BYTES: usize = 32 * 1024 * 1024;
/// Most comments in one set.
pub const MAX_SET_COMMENTS: usize = 200_000;

/// One labelled comment: `expected` null (or absent) when a producer would see no decision.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub text: String,
    #[serde(default)]
    pub expected: Option<Verdict>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("the set is larger than {} MiB", MAX_SET_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the set holds more than {MAX_SET_COMMENTS} comments")]
    TooMany,
    #[error(
        "not a list of {{\"text\", \"expected\"}} (expected: approved, changes_requested, rejected or null): {0}"
    )]
    Parse(#[from] serde_json::Error),
    #[error("the set is empty")]
    Empty,
}

/// Reads a JSON list of `{"text", "expected"}`.
pub fn parse_set(raw: &str) -> Result<Vec<Labelled>, SetError> {
    if raw.len() > MAX_SET_BYTES {
        return Err(SetError::TooLarge);
    }
    let set: Vec<Labelled> = serde_json::from_str(raw)?;
    if set.len() > MAX_SET_COMMENTS {
        return Err(SetError::TooMany);
    }
    if set.is_empty() {
        return Err(SetError::Empty);
    }
    Ok(set)
}

/// Matrix labels, in row/column order.
pub const LABELS: [&str; 4] = ["approved", "changes_requested", "rejected", "none"];

fn index(v: Option<Verdict>) -> usize {
    match v {
        Some(Verdict::Approved) => 0,
        Some(Verdict::ChangesRequested) => 1,
        Some(Verdict::Rejected) => 2,
        None => 3,
    }
}

/// The running score of a set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Rows: expected; columns: the reader's verdict (its guess when not confident).
    pub matrix: [[usize; 4]; 4],
    pub total: usize,
    pub confidently_wrong: usize,
    pub not_confident: usize,
    /// Approved, and sure of it, where the expected verdict is something else.
    pub confident_false_approvals: usize,
    /// Guessed approved (not sure) where the expected verdict is something else: these never
    /// approve an upload, they ask a person to look.
    pub guessed_false_approvals: usize,
}

impl Score {
    /// Counts one comment; true when the verdict is right.
    pub fn add(&mut self, expected: Option<Verdict>, got: &Analysis) -> bool {
        let (e, g) = (index(expected), index(got.verdict));
        self.matrix[e][g] += 1;
        self.total += 1;
        if !got.confident {
            self.not_confident += 1;
        }
        let right = e == g;
        if !right && got.confident {
            self.confidently_wrong += 1;
        }
        if !right && g == 0 {
            if got.confident {
                self.confident_false_approvals += 1;
            } else {
                self.guessed_false_approvals += 1;
            }
        }
        right
    }

    fn share(&self, n: usize) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 / self.total as f64
        }
    }

    pub fn accuracy(&self) -> f64 {
        self.share((0..4).map(|i| self.matrix[i][i]).sum())
    }

    pub fn confidently_wrong_share(&self) -> f64 {
        self.share(self.confidently_wrong)
    }

    pub fn not_confident_share(&self) -> f64 {
        self.share(self.not_confident)
    }

    /// Item 1's targets: confidently wrong ≤ 3 %, not confident ≤ 12 %, no confident false approval.
    pub fn meets_targets(&self) -> bool {
        self.confidently_wrong_share() <= MAX_CONFIDENTLY_WRONG
            && self.not_confident_share() <= MAX_NOT_CONFIDENT
            && self.confident_false_approvals == 0
    }

    /// The matrix and the summary, as printed by `--eval`.
    pub fn report(&self) -> String {
        let mut out = format!(
            "confusion matrix ({} comments; rows: expected, columns: reader)\n{:<18}",
            self.total, ""
        );
        for l in LABELS {
            out.push_str(&format!(" {l:>17}"));
        }
        out.push('\n');
        for (i, row) in self.matrix.iter().enumerate() {
            out.push_str(&format!("{:<18}", LABELS[i]));
            for n in row {
                out.push_str(&format!(" {n:>17}"));
            }
            out.push('\n');
        }
        let pct = |x: f64| x * 100.0;
        out.push_str(&format!(
            "accuracy {:.1} %\nconfidently wrong {:.1} % (target ≤ {:.0} %)\nnot confident {:.1} % (target ≤ {:.0} %)\n\
             false approvals: {} confident (target 0), {} guessed (not sure: never approve)\n",
            pct(self.accuracy()),
            pct(self.confidently_wrong_share()),
            pct(MAX_CONFIDENTLY_WRONG),
            pct(self.not_confident_share()),
            pct(MAX_NOT_CONFIDENT),
            self.confident_false_approvals,
            self.guessed_false_approvals,
        ));
        out.push_str(if self.meets_targets() {
            "targets: met\n"
        } else {
            "targets: NOT met\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(verdict: Option<Verdict>, confident: bool) -> Analysis {
        Analysis {
            verdict,
            confident,
            reason: String::new(),
        }
    }

    #[test]
    fn counts_and_targets() {
        let mut s = Score::default();
        for _ in 0..97 {
            assert!(s.add(Some(Verdict::Approved), &a(Some(Verdict::Approved), true)));
        }
        assert!(!s.add(None, &a(Some(Verdict::Approved), false)));
        assert!(s.meets_targets(), "{}", s.report());
        assert!(!s.add(
            Some(Verdict::ChangesRequested),
            &a(Some(Verdict::Approved), true)
        ));
        assert_eq!(s.confident_false_approvals, 1);
        assert_eq!(s.guessed_false_approvals, 1);
        assert_eq!(s.confidently_wrong, 1);
        assert!(!s.meets_targets());
        assert!(s.report().contains("targets: NOT met"));
        assert_eq!(s.matrix[1][0], 1);
    }

    #[test]
    fn sets_are_checked() {
        assert!(
            parse_set(
                r#"[{"text": "ok", "expected": "approved"}, {"text": "x", "expected": null}]"#
            )
            .is_ok()
        );
        assert!(matches!(parse_set("[]"), Err(SetError::Empty)));
        assert!(matches!(
            parse_set(r#"[{"text": "ok", "expected": "maybe"}]"#),
            Err(SetError::Parse(_))
        ));
    }
}
