//! Link resolvers: a share link that is a page, not a file, turned into the files behind it
//! (URL, name, size, headers), which the normal engine then downloads one by one (resume,
//! segments, SHA-256). One file per host (`swisstransfer.rs`; `fromsmash.rs`, experimental,
//! `SMASH_AUTO=1`), each implementing [`Resolver`] (`resolver.rs`: the interface and the types
//! every resolver shares). This file is the registry: the only place that lists them. The engine,
//! `resolved/` and the CLI ask it, and name no host.

pub mod fromsmash;
mod resolver;
pub mod swisstransfer;

pub use resolver::{RemoteFile, ResolveError, Resolved, Resolver};

use url::Url;

use crate::config::ResolverSettings;
use crate::links;

/// Every resolver rushes has. Adding a host: its file here beside the others, one line below.
pub const REGISTRY: &[&dyn Resolver] = &[&swisstransfer::SwissTransfer, &fromsmash::FromSmash];

/// The enabled resolver for `link`'s host, if any.
pub fn for_link(settings: &ResolverSettings, link: &Url) -> Option<&'static dyn Resolver> {
    let kind = links::kind_of_url(link);
    REGISTRY
        .iter()
        .copied()
        .find(|r| r.kind() == kind && r.enabled(settings))
}

/// The same for a link as stored (text).
pub fn for_raw_link(settings: &ResolverSettings, link: &str) -> Option<&'static dyn Resolver> {
    Url::parse(link).ok().and_then(|u| for_link(settings, &u))
}

/// The resolvers switched on by the settings.
pub fn enabled(settings: &ResolverSettings) -> impl Iterator<Item = &'static dyn Resolver> + '_ {
    REGISTRY.iter().copied().filter(|r| r.enabled(settings))
}
