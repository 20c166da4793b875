//! Shared test support: real servers on 127.0.0.1:0, a real rushes (in-process or as a child
//! process), and waiting on conditions with a deadline instead of sleeping.

pub mod browser;
pub mod db;
pub mod fake_agents;
pub mod fake_frameio;
pub mod fake_frameio_children;
pub mod fake_frameio_upload;
pub mod fake_fromsmash;
pub mod fake_llm;
pub mod fake_swisstransfer;
pub mod feed_server;
pub mod file_server;
pub mod service;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Approvals with a reservation left hanging: comments a careful reader cannot call either way.
/// Which of them the shipped reader is unsure of moves when its model is retrained, so tests
/// that need an unsure comment take one from [`unsure_approvals`] instead of naming one.
const UNSURE_CANDIDATES: &[&str] = &[
    "Validé. Le plan 00:55, à voir",
    "Validé dans l'ensemble, le carton 00:42 me laisse un doute.",
    "ok pour moi, le carton on verra",
    "Ça me va, je crois",
    "ok pour moi… le carton 00:42 par contre",
    "bon ok",
    "C'est bon je crois, le carton 00:42 ?",
    "fine by me I think, let me sleep on the end card",
    "On valide… enfin je crois, je repasse ce soir",
    "Ça me va, reste à voir avec Paul pour le carton",
    "c'est normal que le logo soit si petit ?",
    "pas sûr pour la couleur, on s'appelle ?",
    "Top. Juste le carton, on en reparle ?",
];

/// `n` comments the reader as built is not sure of and would guess as approvals (the case where
/// "never approve while unsure" matters). Fails when fewer are left: add candidates.
pub fn unsure_approvals(n: usize) -> Vec<&'static str> {
    unsure_where(n, "guessing an approval", |guess| guess == Some("approved"))
}

/// `n` comments the reader as built is not sure of and would not guess as approvals.
pub fn unsure_non_approvals(n: usize) -> Vec<&'static str> {
    unsure_where(n, "guessing no approval", |guess| guess != Some("approved"))
}

fn unsure_where(
    n: usize,
    what: &str,
    guess_fits: impl Fn(Option<&str>) -> bool,
) -> Vec<&'static str> {
    let reader = rushes::frameio::Reader::builtin();
    let found: Vec<&'static str> = UNSURE_CANDIDATES
        .iter()
        .copied()
        .filter(|text| {
            let a = reader.analyse_text(text);
            !a.confident && guess_fits(a.verdict.map(|v| v.as_str()))
        })
        .collect();
    assert!(
        found.len() >= n,
        "only {} of the candidates are unsure, {what}, for this reader ({found:?}); add candidates",
        found.len()
    );
    found.into_iter().take(n).collect()
}
