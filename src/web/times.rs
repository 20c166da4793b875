//! How a stored time is shown on the page: a `<time>` element with its zone (UTC), or "never";
//! the browser's script turns it into local time. Used by the dashboard and the inspector.

use maud::{Markup, html};

use crate::domain::Timestamp;

/// A stored time for other dashboard sections.
pub(super) fn when_text(raw: Option<&str>) -> Markup {
    when(raw.and_then(|r| Timestamp::parse(r).ok()))
}

pub(super) fn when_at(t: Option<Timestamp>) -> Markup {
    when(t)
}

pub(super) fn when(t: Option<Timestamp>) -> Markup {
    match t.map(Timestamp::as_datetime) {
        Some(t) => html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) } },
        None => html! { "never" },
    }
}
