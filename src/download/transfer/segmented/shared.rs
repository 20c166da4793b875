//! The ranges of one download and who serves them: the staggered layout when the connections
//! open (`spread`) and work stealing when one is free (`claim`).

use std::time::Instant;

use crate::download::transfer::job::Segment;

/// A range is split only when at least this much of it is still to be received...
pub(super) const MIN_SPLIT: u64 = 256 << 10;
/// ... and its connection would need at least this long for it (a new request costs a round
/// trip and a slow start; measured, it also keeps the count of requests down).
pub(super) const MIN_SPLIT_S: f64 = 0.5;
/// The ranges laid out when the connections open differ in length by this share of the average
/// from one to the next (the first shortest): they complete one after the other, each shortly
/// before the next, so the in-order hash has caught up when the last byte arrives (`spread`).
pub(super) const STAGGER: f64 = 0.05;
pub(super) struct Shared {
    pub(super) segments: Vec<Segment>,
    pub(super) active: Vec<bool>,
    /// Where each range's connection has received up to (written or still buffered): a split
    /// never starts before it.
    pub(super) received: Vec<u64>,
    /// When each range's connection started and from which byte: its speed.
    pub(super) since: Vec<(Instant, u64)>,
}

impl Shared {
    pub(super) fn new(segments: Vec<Segment>) -> Self {
        let now = Instant::now();
        Self {
            active: vec![false; segments.len()],
            received: segments.iter().map(Segment::next).collect(),
            since: segments.iter().map(|s| (now, s.next())).collect(),
            segments,
        }
    }

    pub(super) fn start(&mut self, i: usize) {
        let next = self.segments[i].next();
        self.active[i] = true;
        self.received[i] = next;
        self.since[i] = (Instant::now(), next);
    }

    /// Bytes per second of the connection on range `i` since it started (None: too early).
    pub(super) fn speed(&self, i: usize) -> Option<f64> {
        let (at, from) = self.since[i];
        let secs = at.elapsed().as_secs_f64();
        (secs > 0.3).then(|| self.received[i].saturating_sub(from) as f64 / secs)
    }

    /// The one range of a fresh download (its connection running) cut for `extra` more
    /// connections: the rest is laid out in ranges whose lengths grow by `STAGGER` of the average
    /// from the first to the last, so that at equal speeds they complete in file order, a little
    /// apart. Each range completed lets the hashing thread catch up over the next one (already
    /// received up to its connection) before that one completes in turn; the connections done
    /// early take over the earliest range still large enough (`claim`). Returns the new ranges.
    pub(super) fn spread(&mut self, extra: usize) -> Vec<usize> {
        let (from, end) = (self.received[0], self.segments[0].end);
        let n = extra + 1;
        if self.segments.len() != 1 || end.saturating_sub(from) < MIN_SPLIT * n as u64 {
            return Vec::new();
        }
        let rest = (end - from) as f64;
        let middle = (n - 1) as f64 / 2.0;
        let mut cuts = Vec::with_capacity(n + 1);
        let mut at = 0.0;
        for k in 0..n {
            cuts.push(from + at as u64);
            at += rest / n as f64 * (1.0 + (k as f64 - middle) * STAGGER);
        }
        cuts.push(end);
        self.segments[0].end = cuts[1];
        let mut new = Vec::with_capacity(extra);
        for w in cuts[1..].windows(2) {
            self.segments.push(Segment {
                start: w[0],
                end: w[1],
                done: 0,
            });
            self.active.push(false);
            self.received.push(w[0]);
            self.since.push((Instant::now(), w[0]));
            let i = self.segments.len() - 1;
            self.start(i);
            new.push(i);
        }
        new
    }

    /// A range no connection serves first (the earliest in the file: what the hashing thread
    /// reaches first), else part of a range in progress: the earliest in the file of those with
    /// at least a quarter of the most still to receive (finishing the early ranges first lets
    /// the in-order hash follow; the quarter keeps one slow range from being left to the end).
    /// The connection taking it over gets a share proportional to its speed (`my_speed`, from
    /// its previous range) against the current one's (half when unknown).
    pub(super) fn claim(&mut self, my_speed: Option<f64>) -> Option<usize> {
        let idle = (0..self.segments.len())
            .filter(|&i| !self.active[i] && self.segments[i].left() > 0)
            .min_by_key(|&i| self.segments[i].next());
        if let Some(i) = idle {
            self.start(i);
            return Some(i);
        }
        let to_receive = |i: usize| self.segments[i].end.saturating_sub(self.received[i]);
        let splittable = || {
            (0..self.segments.len()).filter(|&i| {
                self.active[i]
                    && to_receive(i) >= MIN_SPLIT
                    && self
                        .speed(i)
                        .is_none_or(|v| to_receive(i) as f64 >= v * MIN_SPLIT_S)
            })
        };
        let most = splittable().map(to_receive).max()?;
        let i = splittable()
            .filter(|&i| to_receive(i) >= most / 4)
            .min_by_key(|&i| self.segments[i].start)?;
        let remaining = to_receive(i);
        let keep = match (self.speed(i), my_speed) {
            (Some(theirs), Some(mine)) if theirs + mine > 0.0 => {
                (remaining as f64 * theirs / (theirs + mine)) as u64
            }
            _ => remaining / 2,
        };
        let keep = keep.clamp(MIN_SPLIT / 4, remaining - MIN_SPLIT / 4);
        let mid = self.received[i] + keep;
        let end = self.segments[i].end;
        self.segments[i].end = mid;
        self.segments.push(Segment {
            start: mid,
            end,
            done: 0,
        });
        self.active.push(false);
        self.received.push(mid);
        self.since.push((Instant::now(), mid));
        let new = self.segments.len() - 1;
        self.start(new);
        tracing::debug!(
            split = i,
            from = mid,
            to = end,
            kept = mid - self.received[i],
            "work stealing: a free connection takes the end of a range"
        );
        Some(new)
    }

    pub(super) fn active_count(&self) -> usize {
        self.active.iter().filter(|a| **a).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seg(start: u64, end: u64, done: u64) -> Segment {
        Segment { start, end, done }
    }

    #[test]
    fn a_finished_connection_takes_an_abandoned_range_then_splits_the_largest() {
        let mut s = Shared::new(vec![
            seg(0, 100 << 20, 100 << 20),
            seg(100 << 20, 200 << 20, 10 << 20),
        ]);
        assert_eq!(s.claim(None), Some(1), "the abandoned range first");
        let i = s.claim(None).expect("a split");
        assert_eq!(i, 2);
        let (a, b) = (s.segments[1], s.segments[2]);
        assert_eq!(a.end, b.start);
        assert_eq!(b.end, 200 << 20);
        assert_eq!(a.left(), b.left(), "halves when speeds are unknown");
        // The owner received (buffered) more than it wrote: a split starts after that.
        s.segments[2].done = 0;
        s.received[2] = b.end - 100_000;
        s.segments[1].done = a.end - a.start;
        s.received[1] = a.end;
        assert_eq!(s.claim(None), None, "too little left to split");
    }

    #[test]
    fn a_slow_connection_keeps_a_share_proportional_to_its_speed() {
        let mut s = Shared::new(vec![seg(0, 10 << 20, 0)]);
        s.start(0);
        s.since[0] = (Instant::now() - Duration::from_secs(1), 0);
        s.received[0] = 100_000; // 100 kB/s
        let i = s.claim(Some(9_900_000.0)).expect("a split");
        let kept = s.segments[0].end - s.received[0];
        let taken = s.segments[i].end - s.segments[i].start;
        assert!(kept * 50 < taken, "kept {kept}, taken {taken}");
        assert_eq!(s.segments[i].start, s.segments[0].end);
    }

    #[test]
    fn a_range_its_connection_is_about_to_finish_is_not_split() {
        let mut s = Shared::new(vec![seg(0, 10 << 20, 0)]);
        s.start(0);
        s.since[0] = (Instant::now() - Duration::from_secs(1), 0);
        // 4 MiB/s with 1 MiB left: done in a quarter of a second, not worth a request.
        s.received[0] = 9 << 20;
        s.segments[0].done = 9 << 20;
        s.since[0] = (Instant::now() - Duration::from_secs(1), 5 << 20);
        assert_eq!(s.claim(None), None);
        // With 3 MiB left (0.75 s), it is.
        s.received[0] = 7 << 20;
        s.segments[0].done = 7 << 20;
        s.since[0] = (Instant::now() - Duration::from_secs(1), 3 << 20);
        assert!(s.claim(None).is_some());
    }

    #[test]
    fn spread_lays_out_staggered_ranges_that_cover_the_rest() {
        let total = 400 << 20;
        let mut s = Shared::new(vec![seg(0, total, 0)]);
        s.start(0);
        s.received[0] = 8 << 20;
        let new = s.spread(3);
        assert_eq!(new, vec![1, 2, 3]);
        assert!(new.iter().all(|&i| s.active[i]));
        // Contiguous, in file order, covering the file.
        for w in s.segments.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(s.segments[3].end, total);
        // Each longer than the one before (the first completes first), by about STAGGER.
        let first = s.segments[0].end - s.received[0];
        let lens: Vec<u64> = std::iter::once(first)
            .chain(s.segments[1..].iter().map(|g| g.end - g.start))
            .collect();
        let average = (total - (8 << 20)) as f64 / 4.0;
        for w in lens.windows(2) {
            assert!(w[0] < w[1], "{lens:?}");
            let step = (w[1] - w[0]) as f64 / average;
            assert!((step - STAGGER).abs() < 0.001, "{lens:?}");
        }
        // Too little left for four: not cut.
        let mut small = Shared::new(vec![seg(0, MIN_SPLIT * 3, 0)]);
        small.start(0);
        assert!(small.spread(3).is_empty());
        assert_eq!(small.segments.len(), 1);
    }

    #[test]
    fn a_free_connection_splits_the_earliest_range_with_enough_left() {
        let mut s = Shared::new(vec![
            seg(0, 100 << 20, 100 << 20),
            seg(100 << 20, 200 << 20, 90 << 20),
            seg(200 << 20, 300 << 20, 80 << 20),
            seg(300 << 20, 400 << 20, 50 << 20),
        ]);
        for i in 1..4 {
            s.start(i);
        }
        // 10, 20 and 50 MiB left: the first with at least a quarter of the most (12.5 MiB).
        let i = s.claim(None).expect("a split");
        assert_eq!(s.segments[i].end, 300 << 20, "{:?}", s.segments);
        // Then the earliest again: range 1 (10 MiB) is now a fifth of the most (50 MiB).
        let j = s.claim(None).expect("a split");
        assert_eq!(s.segments[j].end, 400 << 20, "{:?}", s.segments);
    }
}
