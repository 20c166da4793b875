//! `FRAMEIO_*` settings. All optional: without them rushes runs with Frame.io tracking idle
//! (the tracker API works, the receiver answers 503, nothing is polled).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use std::sync::Arc;

use super::lexicon::{Cat, Lexicon};
use super::review::parse_list;
use crate::config::ConfigError;
use crate::store::ReviewState;

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
                    ReviewState::ALL.map(ReviewState::as_str).join(", ")
                )
            })?;
            entries.push((super::review::fold_text(name.trim()), state));
        }
        if entries.is_empty() {
            return Err("no NAME=state pair".into());
        }
        Ok(Self(entries))
    }

    /// The state an option name maps to, if any.
    pub fn state_for(&self, option: &str) -> Option<ReviewState> {
        let folded = super::review::fold_text(option.trim());
        self.0.iter().find(|(n, _)| *n == folded).map(|(_, s)| *s)
    }
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
    pub status_map: StatusMap,
    /// The review lexicon (built-in, `FRAMEIO_REVIEW_LEXICON`, `FRAMEIO_KEYWORDS_*`).
    pub lexicon: Arc<Lexicon>,
}

impl FrameioConfig {
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
            status_map: StatusMap::parse(DEFAULT_STATUS_MAP).expect("constant map"),
            lexicon: Arc::new(Lexicon::builtin()),
        }
    }
}

impl FrameioConfig {
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let url = |var: &'static str, default: &str| -> Result<Url, ConfigError> {
            let raw = get(var).unwrap_or_else(|| default.to_string());
            let parsed = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
                var,
                value: raw.clone(),
                reason: format!("not a valid URL ({e})"),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: "expected an http(s) URL with a host".into(),
                });
            }
            Ok(parsed)
        };
        let secret = |var: &str| get(var).map(|v| SecretString::from(v.trim().to_string()));

        let client_id = get("FRAMEIO_CLIENT_ID").map(|v| v.trim().to_string());
        let client_secret = secret("FRAMEIO_CLIENT_SECRET");
        let auth = match (
            secret("FRAMEIO_TOKEN"),
            client_id,
            client_secret,
            secret("FRAMEIO_REFRESH_TOKEN"),
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
                    hint: "FRAMEIO_CLIENT_SECRET / FRAMEIO_REFRESH_TOKEN need the IMS client id"
                        .into(),
                });
            }
            (None, None, None, None) => None,
        };

        let poll_interval = crate::config::seconds(
            "FRAMEIO_POLL_INTERVAL",
            get("FRAMEIO_POLL_INTERVAL"),
            300,
            false,
        )?;
        let status_raw = get("FRAMEIO_STATUS_MAP").unwrap_or_else(|| DEFAULT_STATUS_MAP.into());
        let status_map = StatusMap::parse(&status_raw).map_err(|reason| ConfigError::Invalid {
            var: "FRAMEIO_STATUS_MAP",
            value: status_raw.clone(),
            reason,
        })?;
        let mut lexicon = match get("FRAMEIO_REVIEW_LEXICON") {
            Some(path) => Lexicon::load(std::path::Path::new(path.trim())).map_err(|e| {
                ConfigError::Invalid {
                    var: "FRAMEIO_REVIEW_LEXICON",
                    value: path.clone(),
                    reason: e.to_string(),
                }
            })?,
            None => Lexicon::builtin(),
        };
        for (var, cat) in [
            ("FRAMEIO_KEYWORDS_APPROVED", Cat::Approval),
            ("FRAMEIO_KEYWORDS_CHANGES", Cat::Change),
            ("FRAMEIO_KEYWORDS_REJECTED", Cat::Rejection),
        ] {
            if let Some(raw) = get(var) {
                let list = parse_list(&raw);
                if list.is_empty() {
                    return Err(ConfigError::Invalid {
                        var: match var {
                            "FRAMEIO_KEYWORDS_APPROVED" => "FRAMEIO_KEYWORDS_APPROVED",
                            "FRAMEIO_KEYWORDS_CHANGES" => "FRAMEIO_KEYWORDS_CHANGES",
                            _ => "FRAMEIO_KEYWORDS_REJECTED",
                        },
                        value: raw,
                        reason: "expected a comma-separated list of words or phrases".into(),
                    });
                }
                lexicon.replace_list(cat, &list);
            }
        }
        let webhook_name = get("FRAMEIO_WEBHOOK_NAME")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "rushes".into());

        Ok(Self {
            api_base: url("FRAMEIO_API_BASE", DEFAULT_API_BASE)?,
            ims_url: url("FRAMEIO_IMS_URL", DEFAULT_IMS_URL)?,
            auth,
            account_id: get("FRAMEIO_ACCOUNT_ID").map(|v| v.trim().to_string()),
            workspace_id: get("FRAMEIO_WORKSPACE_ID").map(|v| v.trim().to_string()),
            webhook_secret: secret("FRAMEIO_WEBHOOK_SECRET"),
            webhook_name,
            poll_interval,
            status_map,
            lexicon: Arc::new(lexicon),
        })
    }

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
        FrameioConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
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
