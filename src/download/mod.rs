//! Downloads of automatic deliveries.

pub mod filename;
