//! rushes: takes in client footage deliveries from a JSON feed, remembers every record, downloads
//! the automatic ones, shows everything live and tracks client review on Frame.io.
//!
//! Three floors; imports only go down, never sideways on the middle floor (`.ci/floors` checks):
//! - ground: `config`, `domain` (the typed vocabulary), `links`, `naming`, `net`, `text`,
//!   `store` (the only SQL), `events`, `logging`, `instance`, `memory`, `server`;
//! - middle, side by side: `feed`, `download`, `frameio`, `tunnel`, `proxy`, `alerts`;
//! - top: `app` (wiring), `web`, `cli`, `demo`, `status`.
//!
//! Public: what the binary, the integration tests and the benchmarks use.

// Ground floor.
pub mod config;
pub(crate) mod domain;
pub mod events;
/// Running a user's command (the download and review hooks) in a clean environment.
pub(crate) mod hook;
/// One rushes per data folder; writable-folder check.
pub mod instance;
pub(crate) mod links;
pub(crate) mod logging;
pub(crate) mod memory;
pub(crate) mod naming;
pub mod net;
/// The accept loop of both HTTP servers.
pub mod server;
pub mod store;
pub(crate) mod text;

// Middle floor.
pub(crate) mod alerts;
pub(crate) mod cluster;
pub(crate) mod download;
pub mod feed;
pub mod frameio;
pub mod proxy;
pub(crate) mod tunnel;

// Top floor.
pub mod app;
pub mod cli;
pub mod demo;
#[doc(hidden)]
pub mod fuzz_api;
#[cfg(test)]
mod properties;
pub(crate) mod status;
#[doc(hidden)]
pub mod test_api;
pub mod web;
