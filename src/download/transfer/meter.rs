//! Speed over the last seconds, and how often progress is reported.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::job::{PROGRESS_EVERY, Progress};

/// Speed over the last couple of seconds and progress throttling.
pub(super) struct Meter {
    samples: VecDeque<(Instant, u64)>,
    last_report: Option<Instant>,
}

impl Meter {
    pub(super) fn new(start: u64) -> Self {
        let mut samples = VecDeque::new();
        samples.push_back((Instant::now(), start));
        Self {
            samples,
            last_report: None,
        }
    }

    pub(super) fn tick(&mut self, bytes: u64, total: Option<u64>) -> Option<Progress> {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(self.last(bytes, total))
    }

    pub(super) fn last(&mut self, bytes: u64, total: Option<u64>) -> Progress {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            self.samples.pop_front();
        }
        let speed_bps = match self.samples.front() {
            Some((t, b)) if now.duration_since(*t) > Duration::from_millis(50) => {
                let secs = now.duration_since(*t).as_secs_f64();
                (bytes.saturating_sub(*b) as f64 / secs) as u64
            }
            _ => 0,
        };
        let eta_s = total
            .filter(|_| speed_bps > 0)
            .map(|t| t.saturating_sub(bytes) / speed_bps);
        Progress {
            bytes,
            total,
            speed_bps,
            eta_s,
            segments: 1,
        }
    }
}
