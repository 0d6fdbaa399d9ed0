//! Request counters and histograms, striped per thread.
//!
//! Every request bumps several counters. One shared atomic per counter would make the runtime's
//! worker threads fight over the same cache lines on every request; instead each thread adds to
//! its own stripe (128-byte aligned, assigned round-robin on first use) and readers sum the
//! stripes. Adding is an uncontended relaxed `fetch_add`; reading (the admin server's
//! `/metrics`, `/stats`) is rare and walks all stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aiwaf_engine::Detector;

/// Seconds buckets for latencies.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
/// Buckets for anomaly scores (0..1).
pub const SCORE_BUCKETS: &[f64] = &[0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9];

/// Detectors in a fixed order, for per-detector counters without a map.
pub const DETECTORS: &[Detector] = Detector::ALL;

/// Stripes per counter set. More threads than this share stripes (still correct, just contended).
const STRIPES: usize = 16;
/// Most buckets a histogram may have (its bounds plus +Inf).
const MAX_BUCKETS: usize = 16;

/// A plain counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests seen.
    Requests,
    /// Requests answered by aiwaf with 403.
    Blocked,
    /// Requests answered by aiwaf with 429.
    RateLimited,
    /// Would-block verdicts in detect mode.
    WouldBlock,
    /// Bans decided.
    Bans,
    /// Records dropped because the storage channel was full.
    DroppedRecords,
}

const COUNTERS: usize = 6;

/// A histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Histogram {
    /// Time the engine took to decide (request phase), seconds.
    Decision,
    /// Time the upstream took to send response headers, seconds.
    Upstream,
    /// Anomaly scores of scored requests.
    AnomalyScore,
}

impl Histogram {
    fn bounds(self) -> &'static [f64] {
        match self {
            Histogram::Decision | Histogram::Upstream => LATENCY_BUCKETS,
            Histogram::AnomalyScore => SCORE_BUCKETS,
        }
    }
}

#[derive(Default)]
struct HistStripe {
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_micros: AtomicU64,
}

#[derive(Default)]
#[repr(align(128))]
struct Stripe {
    counters: [AtomicU64; COUNTERS],
    sequence: AtomicU64,
    by_detector: [AtomicU64; DETECTORS.len()],
    hists: [HistStripe; 3],
}

/// The layer's counters (see the module docs).
pub struct Counters {
    stripes: Box<[Stripe]>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").field("requests", &self.get(Counter::Requests)).finish_non_exhaustive()
    }
}

impl Default for Counters {
    fn default() -> Self {
        const { assert!(LATENCY_BUCKETS.len() < MAX_BUCKETS && SCORE_BUCKETS.len() < MAX_BUCKETS) };
        Counters { stripes: (0..STRIPES).map(|_| Stripe::default()).collect() }
    }
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

impl Counters {
    fn mine(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    /// Adds one to a counter.
    pub fn add(&self, c: Counter) {
        self.mine().counters[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A number no other call on this counter set returns (until 2^44 calls on one stripe): the
    /// caller's stripe in bits 44..48, the stripe's own count below. Request ids are made of it,
    /// without one shared counter for every thread to fight over.
    pub fn next_sequence(&self) -> u64 {
        let i = stripe_index();
        let n = self.stripes[i].sequence.fetch_add(1, Ordering::Relaxed);
        ((i as u64) << 44) | (n & ((1 << 44) - 1))
    }

    /// Counts a finding of a detector.
    pub fn finding(&self, d: Detector) {
        if let Some(i) = DETECTORS.iter().position(|x| *x == d) {
            self.mine().by_detector[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one value in a histogram.
    pub fn observe(&self, h: Histogram, v: f64) {
        let bounds = h.bounds();
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        let s = &self.mine().hists[h as usize];
        s.buckets[i].fetch_add(1, Ordering::Relaxed);
        s.sum_micros.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// The current value of a counter (sum over stripes).
    pub fn get(&self, c: Counter) -> u64 {
        self.stripes.iter().map(|s| s.counters[c as usize].load(Ordering::Relaxed)).sum()
    }

    /// Findings by detector, in [`DETECTORS`] order.
    pub fn findings(&self) -> Vec<(Detector, u64)> {
        DETECTORS
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, self.stripes.iter().map(|s| s.by_detector[i].load(Ordering::Relaxed)).sum()))
            .collect()
    }

    /// A histogram's current state.
    pub fn histogram(&self, h: Histogram) -> HistogramSnapshot {
        let bounds = h.bounds();
        let mut buckets = vec![0; bounds.len() + 1];
        let mut sum_micros = 0u64;
        for s in self.stripes.iter() {
            let hs = &s.hists[h as usize];
            for (b, a) in buckets.iter_mut().zip(&hs.buckets) {
                *b += a.load(Ordering::Relaxed);
            }
            sum_micros += hs.sum_micros.load(Ordering::Relaxed);
        }
        HistogramSnapshot { bounds, count: buckets.iter().sum(), buckets, sum: sum_micros as f64 / 1e6 }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the buckets.
    pub bounds: &'static [f64],
    /// Counts per bucket (not cumulative), the last one for +Inf.
    pub buckets: Vec<u64>,
    /// Sum of observations (to a millionth).
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_add_up_across_threads() {
        let c = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(Counter::Requests);
                        c.finding(Detector::Keyword);
                        c.observe(Histogram::Decision, 0.000_02);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        c.observe(Histogram::Decision, 10.0);
        c.observe(Histogram::AnomalyScore, 0.42);
        assert_eq!(c.get(Counter::Requests), 20_000);
        assert_eq!(c.get(Counter::Blocked), 0);
        let f = c.findings();
        assert_eq!(f.iter().find(|(d, _)| *d == Detector::Keyword).unwrap().1, 20_000);
        assert_eq!(f.iter().map(|(_, n)| n).sum::<u64>(), 20_000);
        let h = c.histogram(Histogram::Decision);
        assert_eq!(h.count, 20_001);
        assert_eq!(h.buckets[1], 20_000, "20 µs falls in the 50 µs bucket");
        assert_eq!(h.buckets[LATENCY_BUCKETS.len()], 1, "10 s falls in +Inf");
        assert!((h.sum - (20_000.0 * 0.000_02 + 10.0)).abs() < 1e-6, "{}", h.sum);
        let s = c.histogram(Histogram::AnomalyScore);
        assert_eq!((s.count, s.buckets[2]), (1, 1));
    }

    #[test]
    fn sequences_are_unique_across_threads() {
        let c = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..500).map(|_| c.next_sequence()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 24 * 500);
        assert!(all.iter().all(|n| *n < 1 << 48));
    }
}
