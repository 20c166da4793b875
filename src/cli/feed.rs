//! `rushes feed check`.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, FeedLocation, Overrides};
use crate::feed::source::{FeedSource, FetchResult, Validators};
use crate::{links, logging, naming};

pub(super) async fn check(url: Option<String>, show_signed: bool) -> anyhow::Result<ExitCode> {
    logging::init_command();
    let overrides = Overrides {
        feed_url: url,
        ..Default::default()
    };
    let config = Config::load(&overrides)?;
    let location: FeedLocation = config.require_feed()?.clone();
    println!("feed: {location}");
    let source = FeedSource::new(location, config.timeout, config.feed_timezone)
        .with_bearer(config.feed_auth_token.clone());
    let (result, attempts) = source
        .fetch(&Validators::default(), &CancellationToken::new())
        .await;
    let feed = match result {
        Ok(FetchResult::Fetched { feed, .. }) => feed,
        Ok(FetchResult::NotModified) => {
            println!("not modified");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            println!("fetch failed after {attempts} attempt(s): {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for record in &feed.records {
        let name = naming::planned_name(
            record.original_filename.as_deref(),
            &record.source_url,
            links::is_dropbox_folder(&record.source_url),
        )
        .map_or_else(
            || "(from the server, else download-<id>)".to_string(),
            |n| n.to_string(),
        );
        let link = |url: &url::Url, always: bool| {
            if show_signed {
                url.to_string()
            } else {
                crate::web::api::shown_link(url.as_str(), always)
            }
        };
        println!(
            "ok      {:<6} {:<13} {:<9} {}  name={name:?}{}",
            record.format.as_str(),
            record.classification.kind.as_str(),
            record.classification.mode.as_str(),
            link(&record.source_url, false),
            record
                .r2_url
                .as_ref()
                .map(|r2| format!("  (+r2 copy {})", link(r2, true)))
                .unwrap_or_default(),
        );
    }
    for (index, reason) in &feed.invalid {
        println!("invalid item #{index}: {reason}");
    }
    println!(
        "{} valid record(s), {} invalid item(s)",
        feed.records.len(),
        feed.invalid.len()
    );
    Ok(ExitCode::SUCCESS)
}
