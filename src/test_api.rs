//! What the integration tests drive below the service's own surface (a single transfer with a
//! link resolver's headers), in one place so that `download` stays crate-private. Not an API for
//! anything else.

pub use crate::domain::UrlRole;
pub use crate::download::resolve::RemoteFile;
pub use crate::download::transfer::{
    Job, JobUrl, Observer, Progress, Segment, Segmenting, client, download,
};
pub use crate::naming::SafeFileName;
