//! Deciding: the segments of a download across tries ([`Plan`]), whether a fresh download may be
//! segmented (`wanted`), and when its single connection is slow enough to open the others
//! ([`Probe`]).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use url::Url;

use super::slots::{Host, host_capacity, host_entry};
use crate::download::transfer::job::{Job, Segment};
use crate::download::transfer::part::Part;
use crate::download::transfer::ranged::{header_str, validator_of};

/// Files smaller than this are never segmented, whatever `DOWNLOAD_SEGMENT_MIN` says.
pub(super) const MIN_FILE: u64 = 1 << 20;
/// How often the single connection's speed is looked at (`Probe`)...
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(20);
/// ... the other connections being opened only if it would still need this long alone.
pub(super) const WORTH_SPLITTING_S: f64 = 2.0;
/// The segments of the current download, across tries and URLs.
pub(in crate::download::transfer) struct Plan {
    pub(super) segments: Vec<Segment>,
    /// The server ignored a range: one connection from now on.
    pub(super) disabled: bool,
}

impl Plan {
    pub(in crate::download::transfer) fn new(job: &Job) -> Self {
        Self {
            segments: job.segments.resume.clone(),
            disabled: job.segments.count < 2,
        }
    }

    pub(super) fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.end).max().unwrap_or(0)
    }

    pub(super) fn complete(&self) -> bool {
        !self.segments.is_empty() && self.segments.iter().all(|s| s.left() == 0)
    }

    pub(super) fn done(&self) -> u64 {
        self.segments.iter().map(|s| s.done).sum()
    }

    /// Bytes from the start of the file that are all on disk.
    pub(super) fn contiguous(&self) -> u64 {
        contiguous(&self.segments)
    }

    /// Whether the next try continues stored segments of `part` (else the plan is dropped).
    pub(in crate::download::transfer) fn resumes(&mut self, part: &Option<Part>) -> bool {
        if self.segments.is_empty() {
            return false;
        }
        if self.disabled {
            // Segments stored, but one connection now (DOWNLOAD_SEGMENTS=1): keep only the
            // contiguous prefix, which the single path resumes from.
            if let Some(p) = part {
                let prefix = self.contiguous();
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p.path)
                    .and_then(|f| f.set_len(prefix));
            }
            self.segments.clear();
            return false;
        }
        let ok = part.as_ref().is_some_and(|p| {
            p.validator.is_some()
                && p.path
                    .metadata()
                    .is_ok_and(|m| m.len() == self.total() && m.len() > 0)
        });
        if !ok {
            self.segments.clear();
        }
        ok
    }
}

/// Bytes from the start of the file that are all on disk, given its segments.
pub(super) fn contiguous(segments: &[Segment]) -> u64 {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
    sorted.sort_by_key(|s| s.start);
    let mut upto = 0;
    for s in sorted {
        if s.start > upto {
            break;
        }
        upto = upto.max(s.next());
        if s.left() > 0 {
            break;
        }
    }
    upto
}

/// Called by the single path on the first answer of a fresh download (body not read yet):
/// `true` when it should continue segmented.
pub(in crate::download::transfer) fn wanted(
    job: &Job,
    plan: &Plan,
    headers: &HeaderMap,
    total: Option<u64>,
) -> bool {
    let ranges = header_str(headers, header::ACCEPT_RANGES).map(str::trim);
    !plan.disabled
        && job.segments.count >= 2
        && total.is_some_and(|t| t >= job.segments.min_size.max(MIN_FILE))
        && ranges.is_none_or(|r| r.eq_ignore_ascii_case("bytes"))
        && validator_of(headers).is_some()
}

/// Watches a fresh download on its single connection (`wanted` said it could be segmented):
/// says when to open the other connections. The download stays on one connection, with nothing
/// of the segmented machinery (no preallocation, no positioned writes, no re-read for the hash),
/// as long as it would not need `WORTH_SPLITTING_S` more alone, or the host has no free slot, or
/// the connection is already fast next to this machine's SHA-256 speed (`hash_speed`): `count`
/// connections at its speed would need more than `CPU_SHARE` of it. Such a download is bound by
/// the CPU (hashing, copying), not by a per-connection cap: more connections only add work
/// (measured: a 2 GiB file from an uncapped loopback server, 0.9x of one connection split in 4).
pub(in crate::download::transfer) struct Probe {
    pub(super) started: Instant,
    pub(super) next: Instant,
    pub(super) total: u64,
    pub(super) count: usize,
    pub(super) host: Arc<Host>,
    /// Consecutive looks that found the connection slow.
    pub(super) slow_looks: u32,
}

/// Looks in a row (20 ms apart) that must find the connection slow: one look early in a download
/// can catch this process starved of CPU on a busy machine (measured: an uncapped download split
/// at load 7).
pub(super) const SLOW_LOOKS: u32 = 3;

/// More connections only when together, at the first one's speed, they would need at most this
/// share of what one core hashes (SHA-256) per second.
pub(super) const CPU_SHARE: f64 = 0.5;

/// Bytes per second this machine hashes with SHA-256: measured once, the best of four passes
/// over 1 MiB (~3 ms in all; the best, so that a pass interrupted by another process does not
/// count).
pub(super) fn hash_speed() -> f64 {
    static SPEED: LazyLock<f64> = LazyLock::new(|| {
        let data = vec![0x5au8; 1 << 20];
        (0..4)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
                data.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
            })
            .fold(0.0, f64::max)
    });
    *SPEED
}

impl Probe {
    pub(in crate::download::transfer) fn new(job: &Job, url: &Url, total: u64) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            next: now + PROBE_EVERY,
            total,
            count: job.segments.count,
            host: host_entry(url, host_capacity(job.segments.count)),
            slow_looks: 0,
        }
    }

    /// When to look next.
    pub(in crate::download::transfer) fn next_look(&self) -> Instant {
        self.next
    }

    /// Whether to hand over now, `received` bytes in (looked at every `PROBE_EVERY`).
    pub(in crate::download::transfer) fn split_now(&mut self, received: u64) -> bool {
        let now = Instant::now();
        self.next = now + PROBE_EVERY;
        let speed = received as f64 / now.duration_since(self.started).as_secs_f64();
        let left_s = self.total.saturating_sub(received) as f64 / speed.max(1.0);
        let slow = left_s >= WORTH_SPLITTING_S
            && speed * self.count as f64 <= hash_speed() * CPU_SHARE
            && self.host.slots.available_permits() > 0;
        self.slow_looks = if slow { self.slow_looks + 1 } else { 0 };
        self.slow_looks >= SLOW_LOOKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Semaphore;

    fn seg(start: u64, end: u64, done: u64) -> Segment {
        Segment { start, end, done }
    }

    #[test]
    fn the_probe_splits_a_slow_connection_not_a_fast_or_nearly_done_one() {
        let probe = |total: u64| Probe {
            started: Instant::now() - Duration::from_secs(1),
            next: Instant::now(),
            total,
            count: 4,
            host: Arc::new(Host {
                slots: Arc::new(Semaphore::new(3)),
                waiting: AtomicUsize::new(0),
            }),
            slow_looks: 0,
        };
        // Three looks in a row must find it slow.
        let thrice = |mut p: Probe, received: u64| {
            (0..SLOW_LOOKS)
                .map(|_| p.split_now(received))
                .collect::<Vec<_>>()
        };
        // 4 MB/s, 100 MB left: 25 s alone, a fraction of what the CPU hashes.
        assert_eq!(
            thrice(probe(104_000_000), 4_000_000),
            vec![false, false, true]
        );
        // 4 MB/s but 6 MB left: done in 1.5 s.
        assert!(!thrice(probe(10_000_000), 4_000_000).contains(&true));
        // As fast as this machine hashes: bound by the CPU, not by a cap.
        let fast = hash_speed() as u64;
        assert!(!thrice(probe(fast * 100), fast).contains(&true));
        // No free slot for the host: stays alone.
        let mut full = probe(104_000_000);
        full.host = Arc::new(Host {
            slots: Arc::new(Semaphore::new(0)),
            waiting: AtomicUsize::new(0),
        });
        assert!(!thrice(full, 4_000_000).contains(&true));
        // A fast look in between starts the count again.
        let mut p = probe(104_000_000);
        assert!(!p.split_now(4_000_000));
        assert!(!p.split_now(fast * 2));
        assert!(!p.split_now(4_000_000));
        assert!(!p.split_now(4_000_000));
    }

    #[test]
    fn contiguous_prefix_stops_at_the_first_gap() {
        let plan = Plan {
            segments: vec![
                seg(10, 20, 10),
                seg(0, 10, 10),
                seg(20, 30, 4),
                seg(30, 40, 10),
            ],
            disabled: false,
        };
        assert_eq!(plan.contiguous(), 24);
        assert_eq!(plan.total(), 40);
        assert!(!plan.complete());
    }
}
