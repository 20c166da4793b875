//! Downloads of automatic deliveries.

pub mod engine;
pub mod filename;
pub mod hook;
pub mod oneshot;
pub mod transfer;
