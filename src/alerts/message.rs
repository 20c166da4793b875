//! The text of each message (Slack's `mrkdwn`: `*bold*`, `<url|label>` links), with feed and
//! comment text cut to size and stripped of what would break the markup.

use crate::domain::ReviewState;
use crate::store::{FinishedDelivery, VerdictChange};

/// How much of the deciding comment a message quotes.
const COMMENT_CHARS: usize = 200;

/// Text from outside made safe inside Slack markup: no `<`, `>`, `&` (Slack's escapes), no control
/// characters, at most `max` characters.
fn clean(raw: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn state_words(state: ReviewState) -> &'static str {
    match state {
        ReviewState::Approved => "approved",
        ReviewState::ChangesRequested => "changes requested",
        ReviewState::Rejected => "rejected",
        ReviewState::InReview => "back in review (no decision)",
        _ => "in progress",
    }
}

/// An upload's verdict changed.
pub fn verdict(
    change: &VerdictChange,
    comment: Option<&(String, Option<String>)>,
    dashboard: &str,
) -> String {
    let name = clean(change.name.as_deref().unwrap_or(&change.file_id), 200);
    let version = change
        .version
        .map(|v| format!(" (v{v})"))
        .unwrap_or_default();
    let mut text = format!(
        "*{name}*{version}: {} ({})",
        state_words(change.to_state),
        change.cause.as_str()
    );
    match comment {
        Some((body, author)) => {
            text.push_str(&format!("\n> {}", clean(body, COMMENT_CHARS)));
            if let Some(a) = author {
                text.push_str(&format!("\n— {}", clean(a, 100)));
            }
        }
        None => text.push_str(&format!("\n{}", clean(&change.reason, 300))),
    }
    let mut links = Vec::new();
    if let Some(url) = &change.view_url {
        links.push(format!("<{}|Open in Frame.io>", clean(url, 500)));
    }
    links.push(format!(
        "<{dashboard}/#upload-{}|Dashboard>",
        clean(&change.upload_id, 200)
    ));
    text.push('\n');
    text.push_str(&links.join(" · "));
    text
}

/// A delivery failed for good, or was downloaded.
pub fn delivery(d: &FinishedDelivery, dashboard: &str) -> String {
    let name = clean(
        d.file_name
            .as_deref()
            .or(d.original_filename.as_deref())
            .unwrap_or("(no name)"),
        200,
    );
    let link = format!("<{dashboard}/#delivery-{}|Dashboard>", d.id);
    match d.state {
        crate::domain::DeliveryState::Failed => format!(
            "Delivery failed for good: *{name}*\n{}\n{link}",
            clean(d.error.as_deref().unwrap_or("no detail"), 300)
        ),
        _ => format!(
            "Downloaded: *{name}*{}\n{link}",
            d.bytes_total
                .map(|b| format!(" ({})", crate::text::human_bytes(b as f64)))
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_cannot_break_the_markup() {
        assert_eq!(clean("a <b|c> & d\n", 100), "a &lt;b|c&gt; &amp; d ");
        assert_eq!(clean(&"é".repeat(300), 200).chars().count(), 201);
    }
}
