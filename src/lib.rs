//! rushes: takes in client footage deliveries from a JSON feed, remembers every record, downloads
//! the automatic ones and shows everything live.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod download;
pub mod events;
pub mod feed;
pub mod frameio;
#[doc(hidden)]
pub mod fuzz_api;
pub mod instance;
pub mod logging;
#[cfg(test)]
mod properties;
pub mod proxy;
pub mod server;
pub mod status;
pub mod store;
pub mod web;
