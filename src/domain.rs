//! The typed vocabulary shared by every floor: states, kinds, causes, verdicts and a UTC
//! timestamp. Each type has its one string form here; the store rows, the API, the page and the
//! CLI all use these types, never bare strings.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value outside a vocabulary (text from the database, a query string, a config value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (one of {allowed})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: String,
}

/// Defines a closed vocabulary: the enum, its string forms, `ALL`, `parse`, `Display`,
/// `FromStr`, serde and sqlx (stored as text) in one go.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The one string form (database, JSON, query strings, CLI).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// Every string form, comma-separated (for error messages and help).
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or_else(|| UnknownValue {
                    what: $what,
                    value: s.to_string(),
                    allowed: Self::names(),
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(raw.parse::<Self>()?)
            }
        }
    };
}

vocabulary! {
    /// Where a delivery stands.
    DeliveryState ("delivery state") {
        /// Automatic, waiting for a download worker.
        Queued = "queued",
        /// Automatic, but older than `DOWNLOAD_MAX_AGE` when first seen: listed, not downloaded
        /// until someone asks (`POST /api/deliveries/{id}/download`).
        Available = "available",
        /// A person must open the link.
        Manual = "manual",
        Downloading = "downloading",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
        /// Manual, marked done by a person.
        Handled = "handled",
        /// `DRY_RUN_DOWNLOADS=1`: recorded, nothing fetched.
        DryRun = "dry_run",
    }
}

impl DeliveryState {
    /// A delivery in this state, with these traces of work, has not started downloading:
    /// nothing fetched, no partial file, not running or done. Until then a better record of
    /// the same delivery may still change its name and links.
    pub fn not_started(self, started_at: Option<&Timestamp>, part_path: Option<&str>) -> bool {
        started_at.is_none()
            && part_path.is_none()
            && matches!(
                self,
                Self::Queued | Self::Available | Self::Manual | Self::Cancelled | Self::DryRun
            )
    }

    /// What a person reads on the page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Available => "Available",
            Self::Manual => "Manual",
            Self::Downloading => "Downloading",
            Self::Done => "Done",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::Handled => "Handled",
            Self::DryRun => "Dry run",
        }
    }
}

vocabulary! {
    /// Why a delivery's link resolver waits (issue 15).
    WaitReason ("wait reason") {
        /// The host is still checking the transfer for viruses: retried by itself at `retry_at`.
        VirusCheck = "virus_check",
        /// The transfer is password-protected and no password was given.
        PasswordNeeded = "password_needed",
        /// The password given was refused.
        PasswordWrong = "password_wrong",
    }
}

impl WaitReason {
    /// Whether a person must give a password before the next try.
    pub fn needs_password(self) -> bool {
        matches!(self, Self::PasswordNeeded | Self::PasswordWrong)
    }
}

vocabulary! {
    /// The service a link points at.
    LinkKind ("link kind") {
        Dropbox = "dropbox",
        Fromsmash = "fromsmash",
        Swisstransfer = "swisstransfer",
        External = "external",
    }
}

impl LinkKind {
    /// What a person reads on the page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Dropbox => "Dropbox",
            Self::Fromsmash => "FromSmash",
            Self::Swisstransfer => "SwissTransfer",
            Self::External => "External link",
        }
    }
}

vocabulary! {
    /// Whether rushes fetches the file itself or shows the link to a person.
    DeliveryMode ("delivery mode") {
        Automatic = "automatic",
        Manual = "manual",
    }
}

vocabulary! {
    /// Which of the two feed record formats a record came in.
    RecordFormat ("record format") {
        New = "new",
        Legacy = "legacy",
    }
}

vocabulary! {
    /// Where an upload stands in review.
    ReviewState ("review state") {
        Uploading = "uploading",
        Processing = "processing",
        Ready = "ready",
        InReview = "in_review",
        ChangesRequested = "changes_requested",
        Approved = "approved",
        Rejected = "rejected",
    }
}

impl ReviewState {
    /// Final states are not polled any more (events still update them).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Approved | Self::Rejected)
    }

    /// Position in the upload lifecycle (uploading -> processing -> ready); `None` for review states.
    pub fn lifecycle_rank(self) -> Option<u8> {
        match self {
            Self::Uploading => Some(0),
            Self::Processing => Some(1),
            Self::Ready => Some(2),
            _ => None,
        }
    }
}

vocabulary! {
    /// Why an upload changed state.
    TransitionCause ("transition cause") {
        Registered = "registered",
        Event = "event",
        Comment = "comment",
        Metadata = "metadata",
        Poll = "poll",
        /// A producer's own word (the dashboard's buttons, `POST /api/uploads/{id}/review`).
        Person = "person",
    }
}

vocabulary! {
    /// What one comment decides.
    Verdict ("verdict") {
        Approved = "approved",
        ChangesRequested = "changes_requested",
        Rejected = "rejected",
    }
}

impl Verdict {
    /// The review state this verdict puts an upload in.
    pub fn state(self) -> ReviewState {
        match self {
            Self::Approved => ReviewState::Approved,
            Self::ChangesRequested => ReviewState::ChangesRequested,
            Self::Rejected => ReviewState::Rejected,
        }
    }
}

vocabulary! {
    /// What processing a stored Frame.io event did.
    EventOutcome ("event outcome") {
        /// It moved a tracked upload.
        Applied = "applied",
        /// It concerned a tracked upload but changed nothing.
        Unchanged = "unchanged",
        /// It concerns no tracked upload.
        Untracked = "untracked",
        /// An event type or resource rushes does not act on (a deleted comment, say).
        Ignored = "ignored",
        /// Processing failed for good (after its retries).
        Failed = "failed",
    }
}

vocabulary! {
    /// The role of one URL in a download job, tried in order.
    UrlRole ("URL role") {
        /// The feed's R2 copy (tried first).
        R2 = "r2",
        /// The feed's source link (the fallback).
        Source = "source",
        /// `rushes download URL`.
        Primary = "primary",
        /// `rushes download --fallback URL`.
        Fallback = "fallback",
    }
}

vocabulary! {
    /// How one poll of the feed ended (after its retries).
    FeedFetchOutcome ("feed fetch outcome") {
        Ok = "ok",
        NotModified = "not_modified",
        Error = "error",
    }
}

/// What a Frame.io event type means to rushes (the type itself is an open set of names such as
/// `file.ready` or `comment.created`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    FileUploadCompleted,
    FileReady,
    /// Another `file.*` event.
    File,
    /// `metadata.*`: the Status field may have changed.
    Metadata,
    /// `comment.*`.
    Comment,
    Other,
}

impl EventKind {
    pub fn of(event_type: &str) -> Self {
        match event_type {
            "file.upload.completed" => Self::FileUploadCompleted,
            "file.ready" => Self::FileReady,
            t if t.starts_with("file.") => Self::File,
            t if t.starts_with("metadata.") => Self::Metadata,
            t if t.starts_with("comment.") => Self::Comment,
            _ => Self::Other,
        }
    }
}

/// A timestamp parsing error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {raw:?}: {reason}")]
pub struct BadTimestamp {
    pub raw: String,
    pub reason: String,
}

/// A point in time, always UTC. Its one text form is RFC 3339 with milliseconds and `Z`, which
/// sorts as text (the store relies on that) and is what the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// Parses any RFC 3339 form (offset converted to UTC).
    pub fn parse(raw: &str) -> Result<Self, BadTimestamp> {
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(|e| BadTimestamp {
                raw: raw.chars().take(64).collect(),
                reason: e.to_string(),
            })
    }

    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// The text form (RFC 3339, milliseconds, `Z`).
    pub fn text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn plus(self, d: std::time::Duration) -> Self {
        Self(self.0 + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
    }

    /// Time elapsed since this instant (zero when it lies in the future).
    pub fn elapsed(self) -> std::time::Duration {
        (Utc::now() - self.0).to_std().unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for Timestamp
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Timestamp
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(self.text(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Timestamp
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let raw = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
        Ok(Self::parse(raw)?)
    }
}

/// A delivery's id where it crosses rooms (the web API asking the download engine to cancel a
/// download or keep a password): a type of its own, so that no other number is passed by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A tracked upload's id: rushes' own (a UUID), never Frame.io's file id, which is a string too;
/// a type of its own where it crosses rooms (store, tracker, API, notifications) so that one is
/// never passed for the other.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UploadId(pub String);

/// Shown as the text it is (`"up-1f…"`), as messages quoting an id always did.
impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl UploadId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored Frame.io event's id (its row in `frameio_events`), where it crosses rooms (the
/// processor, the inspector, the API).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_round_trips_its_text() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(*s));
        }
        for s in ReviewState::ALL {
            assert_eq!(s.as_str().parse::<ReviewState>(), Ok(*s));
        }
        for v in Verdict::ALL {
            assert_eq!(v.state().as_str(), v.as_str());
        }
        let err = "bogus".parse::<LinkKind>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "unknown link kind \"bogus\" (one of dropbox, fromsmash, swisstransfer, external)"
            )
        );
    }

    #[test]
    fn serde_uses_the_one_text_form() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::to_string(&DeliveryState::DryRun)?,
            "\"dry_run\""
        );
        assert_eq!(
            serde_json::from_str::<ReviewState>("\"changes_requested\"")?,
            ReviewState::ChangesRequested
        );
        assert!(serde_json::from_str::<UrlRole>("\"other\"").is_err());
        Ok(())
    }

    #[test]
    fn timestamps_have_one_sortable_text_form() -> Result<(), BadTimestamp> {
        let t = Timestamp::parse("2026-01-08T22:19:38+02:00")?;
        assert_eq!(t.text(), "2026-01-08T20:19:38.000Z");
        assert_eq!(Timestamp::parse(&t.text())?, t);
        assert!(Timestamp::parse("yesterday").is_err());
        let later = t.plus(std::time::Duration::from_secs(1));
        assert!(later > t && later.text() > t.text());
        Ok(())
    }
}
