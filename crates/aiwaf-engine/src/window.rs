//! [`Times`]: the timestamps of one client's recent requests, kept inline.
//!
//! Most clients make a handful of requests per window, so the first few times live inside the
//! client's state itself instead of in a separate heap buffer: on a table of 100 000 clients
//! every separate buffer is one more cache miss per request. A busy client spills to the heap
//! and comes back inline once its window holds half of what fits inline (not as soon as it
//! fits: a client hovering at the limit would move between the two on every request).

use smallvec::SmallVec;

/// Times kept inline before spilling to the heap: eight, a minute's browsing at a page every
/// few seconds in the 10 s rate window.
const INLINE: usize = 8;

/// Times (ms) of events in a sliding window, oldest first: `buf[head..]`. Dropping the oldest
/// only moves `head`; the buffer is compacted once half of it is dead, so a busy client's window
/// (hundreds of entries, replayed by training) costs amortised O(1) per event.
#[derive(Debug, Default, Clone)]
pub(crate) struct Times {
    buf: SmallVec<[u64; INLINE]>,
    head: usize,
}

impl Times {
    fn live(&self) -> &[u64] {
        &self.buf[self.head..]
    }

    fn drop_oldest(&mut self, n: usize) {
        self.head += n;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        if self.buf.spilled() && self.buf.len() <= INLINE / 2 {
            self.buf.shrink_to_fit();
        }
    }

    /// Drops times older than `window` (kept while `now - t < window`).
    pub(crate) fn expire(&mut self, now: u64, window: u64) {
        let old = self.live().iter().take_while(|&&t| now.saturating_sub(t) >= window).count();
        if old > 0 {
            self.drop_oldest(old);
        }
    }

    /// Expires, appends `now` and keeps at most `cap` times (the newest).
    pub(crate) fn push(&mut self, now: u64, window: u64, cap: usize) {
        self.expire(now, window);
        self.buf.push(now);
        if self.len() > cap {
            self.drop_oldest(self.len() - cap);
        }
    }

    /// Number of times kept.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    /// The `i`-th oldest time.
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        self.live().get(i).copied()
    }

    /// Forgets every time.
    pub(crate) fn clear(&mut self) {
        self.buf = SmallVec::new();
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slides_caps_and_returns_inline() {
        let mut t = Times::default();
        // one time every 100 ms from 1 000, capped at the newest INLINE + 2
        let cap = INLINE + 2;
        for i in 0..(cap as u64 + 4) {
            t.push(1_000 + i * 100, 10_000, cap);
        }
        assert_eq!(t.len(), cap, "capped at the newest {cap}");
        assert_eq!(t.get(0), Some(1_400));
        assert!(t.buf.spilled());
        let last = 1_000 + (cap as u64 + 3) * 100;
        // Down to INLINE times: still on the heap (no move back and forth at the limit).
        t.expire(last - 100 * INLINE as u64 + 10_000, 10_000);
        assert_eq!(t.len(), INLINE);
        assert!(t.buf.spilled(), "stays on the heap until half the inline size");
        // Down to INLINE / 2: back inline.
        t.expire(last - 100 * (INLINE as u64 / 2) + 10_000, 10_000);
        assert_eq!((t.len(), t.get(0)), (INLINE / 2, Some(last - 100 * (INLINE as u64 / 2 - 1))));
        assert!(!t.buf.spilled(), "back inline once small");
        t.push(60_000, 10_000, cap);
        assert_eq!((t.len(), t.get(0)), (1, Some(60_000)));
        t.clear();
        assert_eq!((t.len(), t.get(0)), (0, None));
    }

    #[test]
    fn same_as_a_deque() {
        // The window a VecDeque would keep, for an irregular stream.
        let mut t = Times::default();
        let mut d = std::collections::VecDeque::new();
        let mut now = 0u64;
        for i in 0..2_000u64 {
            now += (i * 7919) % 900;
            if i % 500 == 0 {
                t.expire(now, 3_000);
            }
            t.push(now, 3_000, 9);
            while d.front().is_some_and(|&x: &u64| now - x >= 3_000) {
                d.pop_front();
            }
            d.push_back(now);
            while d.len() > 9 {
                d.pop_front();
            }
            assert_eq!(t.live(), d.iter().copied().collect::<Vec<_>>());
        }
    }
}
