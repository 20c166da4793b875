//! The integration tests: one binary (one link on a 2-core machine), one module per area,
//! sharing `support/` (fake feed, file server, fake Frame.io, rushes in-process or as a child
//! process, headless Chromium).

mod support;

mod access;
mod cli;
mod dashboard;
mod dashboard_words;
mod demo;
mod download_resume;
mod downloads;
mod dropbox_pages;
mod feed_intake;
mod feed_proxy;
mod feed_scale;
mod feeds;
mod frameio;
mod fromsmash;
mod hardening;
mod hardening3;
mod newcomer;
mod notify;
mod ops;
mod ops_store;
mod producer;
mod resolver_headers;
mod resolver_waits;
mod review_llm;
mod scale_out;
mod schema;
mod segmented;
mod swisstransfer;
mod transfer_folders;
mod tunnel;
mod upload_faults;
mod uploads;
mod verdicts;
mod watch_folder;
mod webhook_inbox;
