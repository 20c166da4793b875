//! What a send reports: how it failed ([`UploadError`]) and to whom it shows its progress
//! ([`Watch`]). Used by upload.rs and create.rs alike.

use super::errors::ClientError;
use super::parts::PartError;
use super::tracker::TrackError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the Frame.io API is not configured (FRAMEIO_TOKEN or IMS credentials)")]
    NoClient,
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Part(#[from] PartError),
    #[error(transparent)]
    Track(#[from] TrackError),
    #[error("{name} is being sent by {claimant}")]
    Busy { name: String, claimant: String },
    #[error("another process took the upload of {0} over")]
    LostClaim(String),
    #[error("Frame.io says the upload of {0} failed")]
    Rejected(String),
    #[error("Frame.io did not call the upload of {name} complete within {secs} s")]
    NotComplete { name: String, secs: u64 },
    #[error("stopped")]
    Cancelled,
}

/// Someone watching a send (the terminal's progress bar).
pub trait Watch: std::marker::Send + Sync {
    /// Bytes accepted or on their way, of `total`.
    fn progress(&self, _sent: u64, _total: u64) {}
    /// A step: "waiting for Frame.io", "resuming", ...
    fn step(&self, _what: &str) {}
}

/// Nobody watching.
pub struct Quiet;
impl Watch for Quiet {}
