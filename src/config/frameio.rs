//! `FRAMEIO_*` settings. All optional: without them rushes runs with Frame.io tracking idle
//! (the tracker API works, the receiver answers 503, nothing is polled).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use std::path::PathBuf;

use super::{ConfigError, Env};
use crate::domain::ReviewState;
use crate::text::{fold_text, words};

pub const DEFAULT_API_BASE: &str = "https://api.frame.io";
pub const DEFAULT_IMS_URL: &str = "https://ims-na1.adobelogin.com/ims/token/v3";
pub const DEFAULT_STATUS_MAP: &str =
    "In Progress=in_review,Needs Review=in_review,Approved=approved,Rejected=rejected";
pub const S2S_SCOPE: &str = "openid AdobeID frame.s2s.all";

/// How rushes gets its bearer token.
#[derive(Clone)]
pub enum FrameioAuth {
    /// `FRAMEIO_TOKEN`, used as is (it cannot be refreshed).
    Token(SecretString),
    /// `FRAMEIO_CLIENT_ID` + `FRAMEIO_CLIENT_SECRET` + `FRAMEIO_REFRESH_TOKEN`: IMS `refresh_token` grant.
    RefreshToken {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
    /// `FRAMEIO_CLIENT_ID` + `FRAMEIO_CLIENT_SECRET` alone: IMS server-to-server `client_credentials`.
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
}

impl fmt::Debug for FrameioAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token(_) => "FrameioAuth::Token(…)",
            Self::RefreshToken { .. } => "FrameioAuth::RefreshToken(…)",
            Self::ClientCredentials { .. } => "FrameioAuth::ClientCredentials(…)",
        })
    }
}

/// Frame.io "Status" option names (compared case- and accent-insensitively) to review states.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMap(Vec<(String, ReviewState)>);

impl StatusMap {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, state) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not NAME=state"))?;
            let state = ReviewState::parse(state.trim()).ok_or_else(|| {
                format!(
                    "unknown state {:?} (one of {})",
                    state.trim(),
                    ReviewState::names()
                )
            })?;
            entries.push((fold_text(name.trim()), state));
        }
        if entries.is_empty() {
            return Err("no NAME=state pair".into());
        }
        Ok(Self(entries))
    }

    /// `DEFAULT_STATUS_MAP`.
    pub fn default_map() -> Result<Self, String> {
        Self::parse(DEFAULT_STATUS_MAP)
    }

    /// The state an option name maps to, if any.
    pub fn state_for(&self, option: &str) -> Option<ReviewState> {
        let folded = fold_text(option.trim());
        self.0.iter().find(|(n, _)| *n == folded).map(|(_, s)| *s)
    }
}

/// A keyword or phrase, as folded words ("c'est bon" -> ["c", "est", "bon"]).
pub type Phrase = Vec<String>;

/// Parses a comma-separated list of phrases (`FRAMEIO_KEYWORDS_*`); empty entries are skipped.
pub fn parse_list(raw: &str) -> Vec<Phrase> {
    raw.split(',')
        .map(words)
        .filter(|phrase| !phrase.is_empty())
        .collect()
}

#[derive(Debug, Clone)]
pub struct FrameioConfig {
    pub api_base: Url,
    pub ims_url: Url,
    pub auth: Option<FrameioAuth>,
    pub account_id: Option<String>,
    pub workspace_id: Option<String>,
    pub webhook_secret: Option<SecretString>,
    pub webhook_name: String,
    pub poll_interval: Duration,
    /// `FRAMEIO_TIMEOUT`: longest wait for one answer of the Frame.io API.
    pub timeout: Duration,
    pub status_map: StatusMap,
    /// What the review reader is built from (frameio's review builds it).
    pub review: ReviewSettings,
    /// `FRAMEIO_UPLOAD_*`: where rushes sends files itself.
    pub upload: super::frameio_upload::UploadSettings,
}

/// The review reader's settings: where a studio's lexicon is and the keyword lists that replace
/// built-in ones. Only read and checked here; the lexicon is loaded by the review reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewSettings {
    /// `FRAMEIO_REVIEW_LEXICON`: a JSON lexicon applied over the built-in one.
    pub lexicon_file: Option<PathBuf>,
    /// `FRAMEIO_KEYWORDS_APPROVED`, `_CHANGES`, `_REJECTED`: replace one built-in list each.
    pub keywords_approved: Option<Vec<Phrase>>,
    pub keywords_changes: Option<Vec<Phrase>>,
    pub keywords_rejected: Option<Vec<Phrase>>,
    /// The optional second opinion of a language model (off without `FRAMEIO_REVIEW_LLM_URL`).
    pub llm: Option<LlmSettings>,
}

/// `FRAMEIO_REVIEW_LLM_*`: an OpenAI-compatible chat completions endpoint asked about the
/// comments the local reader is not sure of.
#[derive(Clone)]
pub struct LlmSettings {
    /// `FRAMEIO_REVIEW_LLM_URL`: the full `/v1/chat/completions` URL.
    pub url: Url,
    /// `FRAMEIO_REVIEW_LLM_MODEL`.
    pub model: String,
    /// `FRAMEIO_REVIEW_LLM_KEY`: sent as a bearer token, never logged.
    pub key: Option<SecretString>,
}

impl fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field("url", &crate::net::redact(&self.url))
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "…"))
            .finish()
    }
}

impl PartialEq for LlmSettings {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.model == other.model
    }
}

fn read_llm(env: &Env<'_>) -> Result<Option<LlmSettings>, ConfigError> {
    let key = env.secret("FRAMEIO_REVIEW_LLM_KEY");
    let model = env.text("FRAMEIO_REVIEW_LLM_MODEL");
    if env.get("FRAMEIO_REVIEW_LLM_URL").is_none() {
        if key.is_some() || model.is_some() {
            return Err(ConfigError::Missing {
                var: "FRAMEIO_REVIEW_LLM_URL",
                hint: "FRAMEIO_REVIEW_LLM_MODEL / FRAMEIO_REVIEW_LLM_KEY need the chat completions URL (http://localhost:11434/v1/chat/completions for Ollama)".into(),
            });
        }
        return Ok(None);
    }
    let url = env.http_url("FRAMEIO_REVIEW_LLM_URL", "")?;
    let model = model.ok_or_else(|| ConfigError::Missing {
        var: "FRAMEIO_REVIEW_LLM_MODEL",
        hint: "FRAMEIO_REVIEW_LLM_URL is set; name the model to ask (e.g. llama3.1:8b)".into(),
    })?;
    Ok(Some(LlmSettings { url, model, key }))
}

impl FrameioConfig {
    /// Reads the `FRAMEIO_*` variables from `lookup` alone (tests, benchmarks).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        read(&Env::new(&lookup))
    }

    /// Nothing configured: what rushes uses when no `FRAMEIO_*` variable is set (tests, demo).
    pub fn idle() -> Self {
        Self {
            api_base: Url::parse(DEFAULT_API_BASE).expect("constant URL"),
            ims_url: Url::parse(DEFAULT_IMS_URL).expect("constant URL"),
            auth: None,
            account_id: None,
            workspace_id: None,
            webhook_secret: None,
            webhook_name: "rushes".into(),
            poll_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            status_map: StatusMap::default_map().unwrap_or(StatusMap(Vec::new())),
            review: ReviewSettings::default(),
            upload: Default::default(),
        }
    }
}

/// Reads the `FRAMEIO_*` variables.
pub(super) fn read(env: &Env<'_>) -> Result<FrameioConfig, ConfigError> {
    let client_id = env.text("FRAMEIO_CLIENT_ID");
    let client_secret = env.secret("FRAMEIO_CLIENT_SECRET");
    let auth = match (
        env.secret("FRAMEIO_TOKEN"),
        client_id,
        client_secret,
        env.secret("FRAMEIO_REFRESH_TOKEN"),
    ) {
        (Some(token), _, _, _) => Some(FrameioAuth::Token(token)),
        (None, Some(client_id), Some(client_secret), Some(refresh_token)) => {
            Some(FrameioAuth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            })
        }
        (None, Some(client_id), Some(client_secret), None) => {
            Some(FrameioAuth::ClientCredentials {
                client_id,
                client_secret,
            })
        }
        (None, Some(_), None, _) => {
            return Err(ConfigError::Missing {
                var: "FRAMEIO_CLIENT_SECRET",
                hint: "FRAMEIO_CLIENT_ID is set; IMS needs the client secret too".into(),
            });
        }
        (None, None, Some(_), _) | (None, None, None, Some(_)) => {
            return Err(ConfigError::Missing {
                var: "FRAMEIO_CLIENT_ID",
                hint: "FRAMEIO_CLIENT_SECRET / FRAMEIO_REFRESH_TOKEN need the IMS client id".into(),
            });
        }
        (None, None, None, None) => None,
    };
    let status_map = Env::parse(
        "FRAMEIO_STATUS_MAP",
        env.get("FRAMEIO_STATUS_MAP"),
        StatusMap::parse,
    )?
    .map_or_else(StatusMap::default_map, Ok)
    .map_err(|reason| ConfigError::Invalid {
        var: "FRAMEIO_STATUS_MAP",
        value: DEFAULT_STATUS_MAP.into(),
        reason,
    })?;
    let keywords = |var: &'static str| {
        Env::parse(var, env.get(var), |raw| {
            let parsed = parse_list(raw);
            if parsed.is_empty() {
                Err("expected a comma-separated list of words or phrases".to_string())
            } else {
                Ok(parsed)
            }
        })
    };
    let lexicon_file = env
        .get("FRAMEIO_REVIEW_LEXICON")
        .map(|path| PathBuf::from(path.trim()));
    let review = ReviewSettings {
        lexicon_file,
        keywords_approved: keywords("FRAMEIO_KEYWORDS_APPROVED")?,
        keywords_changes: keywords("FRAMEIO_KEYWORDS_CHANGES")?,
        keywords_rejected: keywords("FRAMEIO_KEYWORDS_REJECTED")?,
        llm: read_llm(env)?,
    };
    let upload = super::frameio_upload::UploadSettings::read(
        env,
        auth.is_some() && env.text("FRAMEIO_ACCOUNT_ID").is_some(),
    )?;
    Ok(FrameioConfig {
        api_base: env.http_url("FRAMEIO_API_BASE", DEFAULT_API_BASE)?,
        ims_url: env.http_url("FRAMEIO_IMS_URL", DEFAULT_IMS_URL)?,
        auth,
        account_id: env.text("FRAMEIO_ACCOUNT_ID"),
        workspace_id: env.text("FRAMEIO_WORKSPACE_ID"),
        webhook_secret: env.secret("FRAMEIO_WEBHOOK_SECRET"),
        webhook_name: env
            .text("FRAMEIO_WEBHOOK_NAME")
            .unwrap_or_else(|| "rushes".into()),
        poll_interval: Env::seconds(
            "FRAMEIO_POLL_INTERVAL",
            env.get("FRAMEIO_POLL_INTERVAL"),
            300,
            false,
        )?,
        timeout: Env::seconds("FRAMEIO_TIMEOUT", env.get("FRAMEIO_TIMEOUT"), 30, false)?,
        status_map,
        review,
        upload,
    })
}

impl FrameioConfig {
    pub fn require_account(&self) -> Result<&str, ConfigError> {
        self.account_id.as_deref().ok_or(ConfigError::Missing {
            var: "FRAMEIO_ACCOUNT_ID",
            hint: "set it to the Frame.io account id (v4)".into(),
        })
    }

    pub fn require_workspace(&self) -> Result<&str, ConfigError> {
        self.workspace_id.as_deref().ok_or(ConfigError::Missing {
            var: "FRAMEIO_WORKSPACE_ID",
            hint: "set it to the Frame.io workspace id the webhook belongs to".into(),
        })
    }

    pub fn require_auth(&self) -> Result<&FrameioAuth, ConfigError> {
        self.auth.as_ref().ok_or(ConfigError::Missing {
            var: "FRAMEIO_TOKEN",
            hint: "set FRAMEIO_TOKEN, or FRAMEIO_CLIENT_ID + FRAMEIO_CLIENT_SECRET (+ FRAMEIO_REFRESH_TOKEN)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<FrameioConfig, ConfigError> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        read(&Env::new(&lookup))
    }

    #[test]
    fn review_settings_are_read_and_checked() -> Result<(), ConfigError> {
        let c = load(&[
            ("FRAMEIO_REVIEW_LEXICON", " /etc/rushes/lexicon.json "),
            (
                "FRAMEIO_REVIEW_LLM_URL",
                "http://127.0.0.1:11434/v1/chat/completions",
            ),
            ("FRAMEIO_REVIEW_LLM_MODEL", "llama3.1:8b"),
            ("FRAMEIO_REVIEW_LLM_KEY", "sk-secret"),
        ])?;
        assert_eq!(
            c.review.lexicon_file.as_deref(),
            Some(std::path::Path::new("/etc/rushes/lexicon.json"))
        );
        let llm = c.review.llm.as_ref().expect("llm settings");
        assert_eq!(llm.model, "llama3.1:8b");
        assert!(!format!("{c:?}").contains("sk-secret"));
        assert!(load(&[])?.review.llm.is_none());
        let var = |vars: &[(&str, &str)]| match load(vars) {
            Err(ConfigError::Missing { var, .. }) | Err(ConfigError::Invalid { var, .. }) => var,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            var(&[(
                "FRAMEIO_REVIEW_LLM_URL",
                "http://127.0.0.1:8080/v1/chat/completions"
            )]),
            "FRAMEIO_REVIEW_LLM_MODEL"
        );
        assert_eq!(
            var(&[("FRAMEIO_REVIEW_LLM_MODEL", "m")]),
            "FRAMEIO_REVIEW_LLM_URL"
        );
        assert_eq!(
            var(&[
                ("FRAMEIO_REVIEW_LLM_URL", "ftp://x/v1"),
                ("FRAMEIO_REVIEW_LLM_MODEL", "m")
            ]),
            "FRAMEIO_REVIEW_LLM_URL"
        );
        Ok(())
    }

    #[test]
    fn nothing_set_means_idle_with_defaults() -> Result<(), ConfigError> {
        let c = load(&[])?;
        assert!(c.auth.is_none());
        assert!(c.webhook_secret.is_none());
        assert_eq!(c.poll_interval, Duration::from_secs(300));
        assert_eq!(c.webhook_name, "rushes");
        assert_eq!(c.api_base.as_str(), "https://api.frame.io/");
        assert_eq!(
            c.status_map.state_for("needs review"),
            Some(ReviewState::InReview)
        );
        assert_eq!(
            c.status_map.state_for("Approved"),
            Some(ReviewState::Approved)
        );
        Ok(())
    }

    #[test]
    fn auth_modes() -> Result<(), ConfigError> {
        assert!(matches!(
            load(&[("FRAMEIO_TOKEN", "t")])?.auth,
            Some(FrameioAuth::Token(_))
        ));
        let refresh = load(&[
            ("FRAMEIO_CLIENT_ID", "c"),
            ("FRAMEIO_CLIENT_SECRET", "s"),
            ("FRAMEIO_REFRESH_TOKEN", "r"),
        ])?;
        assert!(matches!(
            refresh.auth,
            Some(FrameioAuth::RefreshToken { .. })
        ));
        let s2s = load(&[("FRAMEIO_CLIENT_ID", "c"), ("FRAMEIO_CLIENT_SECRET", "s")])?;
        assert!(matches!(
            s2s.auth,
            Some(FrameioAuth::ClientCredentials { .. })
        ));
        Ok(())
    }

    #[test]
    fn errors_name_the_variable_and_hide_secrets() {
        for (vars, var) in [
            (
                vec![("FRAMEIO_POLL_INTERVAL", "0")],
                "FRAMEIO_POLL_INTERVAL",
            ),
            (
                vec![("FRAMEIO_STATUS_MAP", "Approved=done")],
                "FRAMEIO_STATUS_MAP",
            ),
            (vec![("FRAMEIO_API_BASE", "ftp://x")], "FRAMEIO_API_BASE"),
            (vec![("FRAMEIO_CLIENT_ID", "c")], "FRAMEIO_CLIENT_SECRET"),
            (vec![("FRAMEIO_CLIENT_SECRET", "hush")], "FRAMEIO_CLIENT_ID"),
            (
                vec![("FRAMEIO_KEYWORDS_APPROVED", " , ")],
                "FRAMEIO_KEYWORDS_APPROVED",
            ),
        ] {
            let err = load(&vars).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(var), "{vars:?}: {err}");
            assert!(!err.contains("hush"), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_a_token() -> Result<(), ConfigError> {
        let c = load(&[
            ("FRAMEIO_TOKEN", "tok-s3cret"),
            ("FRAMEIO_WEBHOOK_SECRET", "whs3cret"),
        ])?;
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("tok-s3cret") && !shown.contains("whs3cret"),
            "{shown}"
        );
        Ok(())
    }
}
