//! What a Frame.io call can end in (the client's and the IMS token exchange's errors): the
//! bottom of frameio/'s API files, used by client.rs and auth.rs alike.

use crate::store::StoreError;

/// What the status and the dashboard show when Frame.io refuses the credentials.
pub const CREDENTIALS_EXPIRED: &str = "Frame.io credentials expired or revoked: re-authorise";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Frame.io answered {status} to {method} {path}: {message}")]
    Api {
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    #[error(
        "Frame.io refused the token (401 on {path}); check FRAMEIO_TOKEN or the IMS credentials"
    )]
    Unauthorized { path: String },
    #[error("cannot reach Frame.io ({path}): {message}")]
    Transport { path: String, message: String },
    #[error("Frame.io still failing after {attempts} attempts on {path}: {last}")]
    GaveUp {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("unexpected answer from Frame.io on {path}: {message}")]
    Decode { path: String, message: String },
    /// A request that is not safe to repeat got no usable answer (a 5xx, a timeout, a reset
    /// connection): it may or may not have taken effect on Frame.io.
    #[error("the answer of Frame.io to {path} was lost ({last}): it may have taken effect")]
    Unknown {
        path: String,
        last: String,
        /// The last attempt got a 5xx (Frame.io asks for a longer wait before the next one).
        server_error: bool,
    },
    #[error("Adobe IMS token request failed: {0}")]
    Ims(String),
    /// Not transient: nothing works until someone re-authorises (new token, new refresh token).
    #[error("{CREDENTIALS_EXPIRED} ({0})")]
    Credentials(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClientError {
    /// Worth trying again later (as opposed to a request that can never succeed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. }
            | Self::GaveUp { .. }
            | Self::Unknown { .. }
            | Self::Ims(_)
            | Self::Store(_) => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            Self::Unauthorized { .. } | Self::Decode { .. } | Self::Credentials(_) => false,
        }
    }

    /// The credentials are expired or revoked (retrying will not help).
    pub fn is_credentials(&self) -> bool {
        matches!(self, Self::Credentials(_))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}
