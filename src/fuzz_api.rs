//! The parsers the fuzz targets in `fuzz/` drive, in one place so the targets do not depend on
//! where each parser lives or on module visibility. Not an API for anything else.

pub use crate::download::transfer::parse_content_range;
pub use crate::feed::source::parse_body as parse_feed_body;
pub use crate::frameio::webhook::{
    new_event as webhook_event, sign as webhook_sign, verify as webhook_verify,
};
pub use crate::naming::{MAX_NAME_BYTES, name_from_content_disposition};
