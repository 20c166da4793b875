//! Downloads of automatic deliveries: the engine (worker pool over queued rows), one transfer
//! (URLs, tries, resume, checks, rename), the completion hook.

pub mod engine;
pub mod hook;
pub mod transfer;
