//! The optional second opinion of a language model (`FRAMEIO_REVIEW_LLM_URL`, off by default):
//! an OpenAI-compatible `/v1/chat/completions` endpoint (a local Ollama or llama.cpp server, or a
//! hosted one) asked only about the comments the local reader is not sure of. It is sent the
//! comment's text and nothing else, asked for a strict JSON answer; anything else, an error, a
//! 429 or 10 s without an answer leave the comment "not sure". At most two calls in flight.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;
use url::Url;

use super::{Analysis, cut};
use crate::config::LlmSettings;
use crate::domain::Verdict;
use crate::net::{Timeouts, client, redact};

/// Longest wait for an answer (and for a free slot).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Calls in flight at most.
pub const MAX_IN_FLIGHT: usize = 2;
/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

const INSTRUCTIONS: &str = "You read one comment a client wrote while reviewing a video edit \
(French or English). Say what a careful producer would conclude from it alone. Answer with one \
JSON object and nothing else: {\"verdict\": V} where V is \"approved\" (the version is accepted \
as it is, nothing asked or reported), \"changes_requested\" (anything to change, fix or check is \
asked or reported, even politely, even after an approval), \"rejected\" (the whole version is \
refused, start again) or \"none\" (no decision: thanks, questions, scheduling, waiting for someone).";

/// What the language model said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opinion {
    /// A valid answer (`None`: no decision).
    Verdict(Option<Verdict>),
    /// No usable answer, and why.
    NotSure(String),
}

/// The client of the second opinion.
#[derive(Clone)]
pub struct SecondOpinion {
    http: reqwest::Client,
    url: Url,
    model: String,
    key: Option<SecretString>,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl std::fmt::Debug for SecondOpinion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondOpinion")
            .field("url", &redact(&self.url))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    verdict: String,
}

/// The model's message content as a verdict: exactly `{"verdict": …}`, else nothing.
pub fn parse_answer(content: &str) -> Option<Option<Verdict>> {
    let answer: Answer = serde_json::from_str(content.trim()).ok()?;
    match answer.verdict.as_str() {
        "none" => Some(None),
        v => Verdict::parse(v).map(Some),
    }
}

impl SecondOpinion {
    pub fn new(settings: &LlmSettings) -> reqwest::Result<Self> {
        Self::with_timeout(settings, TIMEOUT)
    }

    /// The same with another timeout (tests).
    pub fn with_timeout(settings: &LlmSettings, timeout: Duration) -> reqwest::Result<Self> {
        Ok(Self {
            http: client(Timeouts {
                connect: timeout,
                request: Some(timeout),
                read: None,
            })?,
            url: settings.url.clone(),
            model: settings.model.clone(),
            key: settings.key.clone(),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            timeout,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks about one comment. Never fails: a missing answer is `NotSure`.
    pub async fn ask(&self, text: &str) -> Opinion {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.timeout, self.slots.acquire()).await else {
            return Opinion::NotSure(format!("{MAX_IN_FLIGHT} calls already in flight"));
        };
        match tokio::time::timeout(self.timeout, self.call(cut(text))).await {
            Ok(Ok(verdict)) => Opinion::Verdict(verdict),
            Ok(Err(why)) => {
                tracing::info!(url = %redact(&self.url), %why, "review second opinion: no usable answer");
                Opinion::NotSure(why)
            }
            Err(_) => Opinion::NotSure(format!(
                "no answer within {:.1} s",
                self.timeout.as_secs_f64()
            )),
        }
    }

    async fn call(&self, text: &str) -> Result<Option<Verdict>, String> {
        let body = serde_json::json!({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": text},
            ],
        });
        let mut request = self.http.post(self.url.clone()).json(&body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose_secret());
        }
        let timed_out = |e: reqwest::Error| {
            if e.is_timeout() {
                format!("no answer within {:.1} s", self.timeout.as_secs_f64())
            } else {
                crate::net::error_text(&e)
            }
        };
        let mut response = request.send().await.map_err(timed_out)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let mut raw = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(timed_out)? {
            if raw.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err("answer larger than 64 KiB".into());
            }
            raw.extend_from_slice(&chunk);
        }
        let completion: Completion =
            serde_json::from_slice(&raw).map_err(|_| "not a chat completion".to_string())?;
        let content = completion
            .choices
            .first()
            .map(|c| c.message.content.as_str())
            .ok_or("no choice in the answer")?;
        parse_answer(content).ok_or_else(|| "not the JSON verdict asked for".to_string())
    }

    /// The local analysis with the second opinion applied: only an unsure one is asked. A valid
    /// answer decides and says so; an approval needs the local guess to be an approval too.
    pub async fn review(&self, text: &str, local: Analysis) -> Analysis {
        if local.confident {
            return local;
        }
        combine(local, self.ask(text).await, &self.model)
    }
}

/// How an opinion changes an unsure local analysis.
pub fn combine(local: Analysis, opinion: Opinion, model: &str) -> Analysis {
    let name = |v: Option<Verdict>| v.map_or("no decision", Verdict::as_str);
    match opinion {
        Opinion::NotSure(why) => Analysis {
            reason: format!("{}; second opinion ({model}): none ({why})", local.reason),
            ..local
        },
        Opinion::Verdict(Some(Verdict::Approved)) if local.verdict != Some(Verdict::Approved) => {
            Analysis {
                reason: format!(
                    "{}; second opinion ({model}): approved, but the local guess is not: still not sure",
                    local.reason
                ),
                ..local
            }
        }
        Opinion::Verdict(v) => Analysis {
            verdict: v,
            confident: true,
            reason: format!(
                "decided by the second opinion ({model}): {}; local reader: {}",
                name(v),
                local.reason
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_strict() {
        assert_eq!(
            parse_answer(r#" {"verdict": "changes_requested"} "#),
            Some(Some(Verdict::ChangesRequested))
        );
        assert_eq!(parse_answer(r#"{"verdict": "none"}"#), Some(None));
        assert_eq!(parse_answer(r#"{"verdict": "maybe"}"#), None);
        assert_eq!(parse_answer("approved"), None);
        assert_eq!(parse_answer(r#"Sure! {"verdict": "approved"}"#), None);
        assert_eq!(parse_answer(r#"{"verdict": "approved", "why": "x"}"#), None);
    }

    #[test]
    fn an_approval_needs_the_local_guess() {
        let unsure = |v| Analysis {
            verdict: v,
            confident: false,
            reason: "not sure: x".into(),
        };
        let a = combine(
            unsure(Some(Verdict::ChangesRequested)),
            Opinion::Verdict(Some(Verdict::Approved)),
            "m",
        );
        assert!(!a.confident && a.verdict == Some(Verdict::ChangesRequested));
        let a = combine(
            unsure(None),
            Opinion::Verdict(Some(Verdict::ChangesRequested)),
            "m",
        );
        assert!(a.confident && a.reason.starts_with("decided by the second opinion (m)"));
        let a = combine(unsure(None), Opinion::NotSure("HTTP 429".into()), "m");
        assert!(!a.confident && a.reason.contains("HTTP 429"));
    }
}
