//! The statistical half of the reader: a linear model (multinomial logistic regression) over
//! hashed features of a comment: words, word pairs, character 3- to 5-grams of each word, a few
//! shape marks (question, timecode, quote) and what the rules saw (their verdict, their cue kinds).
//! Trained on the corpus in tests/data by `cargo run --example train_review_model`, shipped as
//! `model.bin` inside the binary (8-bit weights), pure Rust at run time.

use super::Policy;
use super::tokens::Clause;

/// Feature buckets (hashing trick).
pub const BUCKETS: usize = 1 << 16;
/// Classes, in the order of [`super::eval::LABELS`]: approved, changes_requested, rejected, none.
pub const CLASSES: usize = 4;
const MAGIC: &[u8; 4] = b"RVM2";
/// Magic, buckets, scale, then bias, agree and alone thresholds (one per class each), and the
/// threshold of an approval over the rules' doubt.
const HEADER: usize = 12 + 4 * 3 * CLASSES + 4;
/// The trained model shipped with rushes.
pub const EMBEDDED: &[u8] = include_bytes!("model.bin");

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a review model file (bad header)")]
    Header,
    #[error("review model file has {0} bytes, expected {1}")]
    Size(usize, usize),
}

/// Weights per bucket and class, one bias per class, and the policy calibrated with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    weights: Vec<f32>,
    bias: [f32; CLASSES],
    policy: Policy,
}

/// A policy that is never sure (an untrained model's).
pub const NEVER: Policy = Policy {
    agree: [2.0; CLASSES],
    alone: [2.0; CLASSES],
    over_doubt: 2.0,
};

/// What the rules said about a comment, as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct RuleSignals<'a> {
    /// Class index of the rules' verdict.
    pub class: usize,
    pub confident: bool,
    /// Labels of the cue kinds found.
    pub kinds: &'a [&'static str],
    /// The cue kinds in the order of the comment (a repeat next to itself once).
    pub order: &'a [&'static str],
}

fn hash(parts: &[&str]) -> u32 {
    // FNV-1a, 64 bits, folded into the bucket range.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    ((h ^ (h >> 32)) as usize % BUCKETS) as u32
}

/// Words that open a negation's scope (folded; "n" is the elided "n'").
const NEGATORS: [&str; 17] = [
    "pas", "jamais", "rien", "aucun", "aucune", "sans", "non", "ni", "ne", "n", "not", "no",
    "never", "nothing", "none", "without", "nor",
];
/// How many words after a negator it covers.
const NEGATION_SCOPE: usize = 3;

/// All figures look alike: a timecode is a timecode whatever its value.
fn shape(word: &str) -> String {
    word.chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect()
}

/// The features of a comment, read from the tokenizer's clauses (canonical words: folded,
/// typos repaired, contractions opened, emoji kept): words, word pairs across the comment,
/// character 3- to 5-grams of each word; each word again when it lies in a negation's scope,
/// in a clause after the first (an approval then a request), or opens a clause (and whether
/// that clause is a question); shape marks; and what the rules saw (their verdict, their cue
/// kinds, and which kind follows which). Sorted, without repeats.
pub fn features(text: &str, clauses: &[Clause], rules: RuleSignals<'_>) -> Vec<u32> {
    let total: usize = clauses.iter().map(|c| c.tokens.len()).sum();
    let mut out = Vec::with_capacity(total * 20 + 32);
    let mut prev = String::from("^");
    let mut gram = String::new();
    for (ci, clause) in clauses.iter().enumerate() {
        let mut negated = 0;
        for (ti, token) in clause.tokens.iter().enumerate() {
            let w = shape(&token.word);
            out.push(hash(&["w", &w]));
            out.push(hash(&["b", &prev, &w]));
            if negated > 0 {
                out.push(hash(&["n", &w]));
                negated -= 1;
            }
            if NEGATORS.contains(&w.as_str()) {
                negated = NEGATION_SCOPE;
            }
            if ci > 0 {
                out.push(hash(&["a", &w]));
            }
            if ti == 0 {
                out.push(hash(&["f", &w]));
                if clause.question_mark {
                    out.push(hash(&["qf", &w]));
                }
            }
            let padded: Vec<char> = std::iter::once('<')
                .chain(w.chars())
                .chain(std::iter::once('>'))
                .collect();
            if padded.len() > 3 {
                for n in 3..=5 {
                    for win in padded.windows(n) {
                        gram.clear();
                        gram.extend(win);
                        out.push(hash(&["c", &gram]));
                    }
                }
            }
            prev = w;
        }
        prev = String::from("|");
    }
    out.push(hash(&["b", &prev, "$"]));
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let shouting = text
        .split(|c: char| !c.is_alphabetic())
        .any(|w| w.chars().count() >= 3 && w.chars().all(char::is_uppercase));
    let marks = [
        ("question", text.contains('?')),
        ("ends with a question", text.trim_end().ends_with('?')),
        ("exclaim", text.contains('!')),
        (
            "timecode",
            text.as_bytes()
                .windows(3)
                .any(|w| w[0].is_ascii_digit() && w[1] == b':' && w[2].is_ascii_digit()),
        ),
        (
            "quote",
            text.contains(['"', '«', '“']) || text.contains("->") || text.contains('→'),
        ),
        ("short", total <= 3),
        ("long", total >= 25),
        ("lines", lines >= 3),
        ("shouting", shouting),
        ("one clause", clauses.len() == 1),
        ("many clauses", clauses.len() >= 4),
    ];
    for (mark, present) in marks {
        if present {
            out.push(hash(&["m", mark]));
        }
    }
    let class = ["approved", "changes", "rejected", "none"][rules.class.min(3)];
    out.push(hash(&["r", class]));
    out.push(hash(&[
        "r",
        class,
        if rules.confident { "sure" } else { "unsure" },
    ]));
    for k in rules.kinds {
        out.push(hash(&["k", k]));
    }
    for pair in rules.order.windows(2) {
        out.push(hash(&["kk", pair[0], pair[1]]));
    }
    if let Some(last) = rules.order.last() {
        out.push(hash(&["kl", last]));
    }
    out.push(hash(&["bias"]));
    out.sort_unstable();
    out.dedup();
    out
}

fn softmax(mut z: [f32; CLASSES]) -> [f32; CLASSES] {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in &mut z {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in &mut z {
        *v /= sum;
    }
    z
}

impl Model {
    /// An untrained model (every class equally likely).
    pub fn zero() -> Self {
        Self {
            weights: vec![0.0; BUCKETS * CLASSES],
            bias: [0.0; CLASSES],
            policy: NEVER,
        }
    }

    /// The model shipped with rushes.
    pub fn embedded() -> Self {
        Self::from_bytes(EMBEDDED).unwrap_or_else(|_| Self::zero())
    }

    /// The thresholds calibrated for this model (held out, writer by writer).
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The model with the thresholds calibrated for it (the trainer).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Class probabilities for a comment's features.
    pub fn predict(&self, features: &[u32]) -> [f32; CLASSES] {
        let scale = 1.0 / (features.len().max(1) as f32).sqrt();
        let mut z = self.bias;
        for f in features {
            let row = &self.weights[*f as usize * CLASSES..(*f as usize + 1) * CLASSES];
            for (zc, w) in z.iter_mut().zip(row) {
                *zc += w * scale;
            }
        }
        softmax(z)
    }

    /// Trains on `(features, class)` pairs: AdaGrad on the log loss with L2, `epochs` passes
    /// in an order fixed by `seed` (same data, same model). The weights returned are the mean
    /// of those after each pass of the second half (averaging steadies the probabilities).
    pub fn train(samples: &[(Vec<u32>, usize)], epochs: usize, l2: f32, seed: u64) -> Self {
        let mut m = Self::zero();
        let mut mean = Self::zero();
        let mut averaged = 0usize;
        let mut g2 = vec![1e-6f32; BUCKETS * CLASSES];
        let mut b2 = [1e-6f32; CLASSES];
        let lr = 0.5f32;
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut state = seed | 1;
        for epoch in 0..epochs {
            // xorshift shuffle: reproducible without a dependency on rand's stream.
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            for &i in &order {
                let (features, class) = &samples[i];
                let p = m.predict(features);
                let scale = 1.0 / (features.len().max(1) as f32).sqrt();
                for c in 0..CLASSES {
                    let err = p[c] - if c == *class { 1.0 } else { 0.0 };
                    b2[c] += err * err;
                    m.bias[c] -= lr * err / b2[c].sqrt();
                    for f in features {
                        let k = *f as usize * CLASSES + c;
                        let g = err * scale + l2 * m.weights[k];
                        g2[k] += g * g;
                        m.weights[k] -= lr * g / g2[k].sqrt();
                    }
                }
            }
            if epoch >= epochs / 2 {
                averaged += 1;
                for (a, w) in mean.weights.iter_mut().zip(&m.weights) {
                    *a += w;
                }
                for (a, w) in mean.bias.iter_mut().zip(&m.bias) {
                    *a += w;
                }
            }
        }
        if averaged == 0 {
            return m;
        }
        let n = averaged as f32;
        mean.weights.iter_mut().for_each(|w| *w /= n);
        mean.bias.iter_mut().for_each(|w| *w /= n);
        mean
    }

    /// The file form: header, bias, the policy's thresholds, then every weight in 8 bits with
    /// one scale.
    pub fn to_bytes(&self) -> Vec<u8> {
        let max = self.weights.iter().fold(0f32, |a, w| a.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let mut out = Vec::with_capacity(HEADER + self.weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(BUCKETS as u32).to_le_bytes());
        out.extend_from_slice(&scale.to_le_bytes());
        for b in self
            .bias
            .iter()
            .chain(&self.policy.agree)
            .chain(&self.policy.alone)
            .chain([&self.policy.over_doubt])
        {
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend(
            self.weights
                .iter()
                .map(|w| ((w / scale).round().clamp(-127.0, 127.0) as i8) as u8),
        );
        out
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, ModelError> {
        let expected = HEADER + BUCKETS * CLASSES;
        if raw.len() < 8 || &raw[..4] != MAGIC || raw[4..8] != (BUCKETS as u32).to_le_bytes() {
            return Err(ModelError::Header);
        }
        if raw.len() != expected {
            return Err(ModelError::Size(raw.len(), expected));
        }
        let f32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&raw[at..at + 4]);
            f32::from_le_bytes(b)
        };
        let scale = f32_at(8);
        let row = |at: usize| std::array::from_fn(|c| f32_at(at + 4 * c));
        let bias = row(12);
        let policy = Policy {
            agree: row(12 + 4 * CLASSES),
            alone: row(12 + 8 * CLASSES),
            over_doubt: f32_at(12 + 12 * CLASSES),
        };
        let weights = raw[HEADER..]
            .iter()
            .map(|b| f32::from(*b as i8) * scale)
            .collect();
        Ok(Self {
            weights,
            bias,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> RuleSignals<'static> {
        RuleSignals {
            class: 3,
            confident: false,
            kinds: &[],
            order: &[],
        }
    }

    fn feats(text: &str) -> Vec<u32> {
        let clauses = super::super::tokens::clauses(text, &super::super::Lexicon::builtin());
        features(text, &clauses, sig())
    }

    #[test]
    fn learns_and_round_trips() -> Result<(), ModelError> {
        let data = [
            ("banco pour nous", 0),
            ("banco, on diffuse", 0),
            ("refaites le plan 3", 1),
            ("refaites la fin", 1),
        ];
        let samples: Vec<(Vec<u32>, usize)> = data.iter().map(|(t, c)| (feats(t), *c)).collect();
        let policy = Policy {
            agree: [0.5, 0.6, 0.7, 0.8],
            alone: [0.9, 0.91, 0.92, 2.0],
            over_doubt: 0.97,
        };
        let m = Model::train(&samples, 30, 1e-4, 7).with_policy(policy);
        let p = m.predict(&feats("banco"));
        assert!(p[0] > p[1], "{p:?}");
        let p = m.predict(&feats("refaites le titre"));
        assert!(p[1] > p[0], "{p:?}");
        let back = Model::from_bytes(&m.to_bytes())?;
        assert_eq!(back.policy(), policy);
        let (a, b) = (m.predict(&samples[0].0), back.predict(&samples[0].0));
        assert!((a[0] - b[0]).abs() < 0.05, "{a:?} vs {b:?}");
        assert!(matches!(
            Model::from_bytes(b"nope"),
            Err(ModelError::Header)
        ));
        Ok(())
    }

    #[test]
    fn the_embedded_model_loads() {
        assert!(Model::from_bytes(EMBEDDED).is_ok());
    }
}
