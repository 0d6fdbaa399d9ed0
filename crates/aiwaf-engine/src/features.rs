//! The anomaly model's features, computed by one implementation for serving and training.
//!
//! The feature vector is the seed's, in the seed's order, plus the payload score:
//! `[path_len, kw_hits, resp_time, status_idx, burst_count, total_404, payload_score]`, with the
//! seed's train/serve skew removed:
//! - `path_len` is the length of the raw path without the query string, in both;
//! - `kw_hits` counts static keywords in the normalised path, in both;
//! - `resp_time` is seconds until response headers (the proxy's measure; `$request_time` in logs);
//! - `burst_count` counts the client's requests in the *preceding* 10 s (the seed's trainer also
//!   counted later ones);
//! - `total_404` counts the client's 404s in the window ending now (the seed's trainer used the
//!   whole log's total);
//! - `payload_score` is the request's payload anomaly score (0 when payload inspection found
//!   nothing; in training, of the logged path and query).
//!
//! Models trained before `payload_score` existed (six features) still load and score on the
//! first six.
//!
//! Training replays a log in time order through [`FeatureWindow::observe`] with the log's
//! timestamps as `now`, exactly as the server calls it with the clock.

use std::collections::VecDeque;

use crate::keywords::KeywordSet;
use crate::path::NormalizedPath;
use crate::window::Times;

/// Feature names, in vector order. Stored in model files and checked on load.
pub const FEATURE_NAMES: [&str; 7] =
    ["path_len", "kw_hits", "resp_time", "status_idx", "burst_count", "total_404", "payload_score"];

/// Features of models trained before `payload_score` (still loaded, scored on these).
pub const LEGACY_FEATURE_COUNT: usize = 6;

/// Width of the feature vector.
pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// Window of `burst_count`.
pub const BURST_WINDOW_MS: u64 = 10_000;

/// Most entries a window keeps (so a flooding client costs bounded memory; counts saturate).
pub const WINDOW_CAP: usize = 512;

/// A feature vector.
pub type Features = [f64; FEATURE_COUNT];

/// The seed's status index: 200 → 0, 403 → 1, 404 → 2, 500 → 3, anything else → −1.
pub fn status_idx(status: u16) -> f64 {
    match status {
        200 => 0.0,
        403 => 1.0,
        404 => 2.0,
        500 => 3.0,
        _ => -1.0,
    }
}

/// The `kw_hits` feature: static keywords present in the normalised path.
pub fn kw_hits(keywords: &KeywordSet, path: &NormalizedPath) -> u32 {
    keywords.count_static(path)
}

/// Per-client history the features need.
#[derive(Debug, Default, Clone)]
pub struct FeatureWindow {
    recent: Times,
    not_found: VecDeque<u64>,
}

impl FeatureWindow {
    /// Records one completed request and returns its features. Call in time order per client.
    /// `kw_hits` is [`kw_hits`] of the request's path, `payload_score` the request's payload score.
    #[allow(clippy::too_many_arguments)] // The facts of one request.
    pub fn observe(
        &mut self,
        raw_path_len: usize,
        kw_hits: u32,
        payload_score: u32,
        status: u16,
        resp_time_s: f64,
        now: u64,
        window_ms: u64,
    ) -> Features {
        self.recent.expire(now, BURST_WINDOW_MS);
        let burst = self.recent.len();
        self.recent.push(now, BURST_WINDOW_MS, WINDOW_CAP);
        while self.not_found.front().is_some_and(|&t| now.saturating_sub(t) >= window_ms) {
            self.not_found.pop_front();
        }
        if status == 404 {
            self.not_found.push_back(now);
            if self.not_found.len() > WINDOW_CAP {
                self.not_found.pop_front();
            }
        }
        [
            raw_path_len as f64,
            f64::from(kw_hits),
            if resp_time_s.is_finite() { resp_time_s.max(0.0) } else { 0.0 },
            status_idx(status),
            burst as f64,
            self.not_found.len() as f64,
            f64::from(payload_score),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_STATIC_KEYWORDS;

    #[test]
    fn burst_counts_only_the_past_and_404s_the_window() {
        let kw = KeywordSet::new(DEFAULT_STATIC_KEYWORDS.iter().copied(), [], &[]);
        let mut w = FeatureWindow::default();
        let hits = kw_hits(&kw, &NormalizedPath::new("/wp-admin/x.php"));
        let f = w.observe(15, hits, 0, 404, 0.02, 1_000, 60_000);
        assert_eq!(f, [15.0, 2.0, 0.02, 2.0, 0.0, 1.0, 0.0]);
        for k in 1..5 {
            w.observe(15, hits, 0, 404, 0.02, 1_000 + k * 1000, 60_000);
        }
        let f = w.observe(1, 0, 0, 200, 0.5, 5_500, 60_000);
        assert_eq!((f[4], f[5], f[3]), (5.0, 5.0, 0.0));
        // 20 s later the burst is gone; 404s stay within the 60 s window.
        let f = w.observe(1, 0, 0, 302, 0.1, 25_500, 60_000);
        assert_eq!((f[4], f[5], f[3]), (0.0, 5.0, -1.0));
        let f = w.observe(1, 0, 0, 200, 0.1, 70_000, 60_000);
        assert_eq!((f[4], f[5]), (0.0, 0.0));
        let f = w.observe(30, 0, 10, 200, 0.1, 71_000, 60_000);
        assert_eq!(f[6], 10.0, "the payload score");
    }
}
