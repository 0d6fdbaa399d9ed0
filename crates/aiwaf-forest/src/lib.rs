//! An IsolationForest (Liu, Ting & Zhou, 2008) that can be saved and loaded.
//!
//! Semantics follow scikit-learn's `IsolationForest` so aiwaf's settings mean what they meant:
//! each tree is grown on `min(sample_size, n)` rows drawn without replacement, splits pick a
//! random feature and a uniform threshold between the node's minimum and maximum, depth is
//! limited to `ceil(log2(sample_size))`, and a path ends with the average-path correction
//! `c(n)`. The anomaly score is `2^(-E[h(x)] / c(ψ))` in (0, 1]; higher is more anomalous
//! (scikit-learn's `score_samples` is its negation). The threshold is the score at the
//! `1 - contamination` quantile of the training rows.
//!
//! One deliberate difference: a split only considers features that vary within the node, so a
//! column that is constant in training (say, response times absent from a log format) never
//! influences scores at serving time.
//!
//! Training is seeded and deterministic: tree `i` draws from its own generator seeded from
//! `(seed, i)`, so results do not depend on how rayon schedules the trees. The generator is
//! SplitMix64, written here so a model's trees never change with a dependency upgrade.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Number of trees (100).
    pub trees: usize,
    /// Rows per tree (256).
    pub sample_size: usize,
    /// Share of training rows above the threshold (0.05).
    pub contamination: f64,
    /// Seed (42).
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { trees: 100, sample_size: 256, contamination: 0.05, seed: 42 }
    }
}

/// Why a forest could not be built or loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForestError {
    /// No rows.
    #[error("no training rows")]
    Empty,
    /// Rows of different widths, or a width that does not match the model.
    #[error("row has {got} features, expected {expected}")]
    Width {
        /// Expected width.
        expected: usize,
        /// Width found.
        got: usize,
    },
    /// A parameter out of range.
    #[error("invalid parameter: {0}")]
    Param(String),
    /// A node refers outside its tree, or other structural damage in a loaded model.
    #[error("corrupt forest: {0}")]
    Corrupt(String),
}

/// One node. Leaves have `feature == u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Split feature, or `u32::MAX` for a leaf.
    #[serde(rename = "f")]
    pub feature: u32,
    /// Split threshold: `x[feature] < threshold` goes left.
    #[serde(rename = "t")]
    pub threshold: f64,
    /// Left child index (split) or the number of training rows (leaf).
    #[serde(rename = "l")]
    pub left: u32,
    /// Right child index (split).
    #[serde(rename = "r")]
    pub right: u32,
}

const LEAF: u32 = u32::MAX;

/// One isolation tree, nodes in a flat array (root at 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes.
    pub nodes: Vec<Node>,
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// Row width.
    pub features: usize,
    /// Rows each tree was grown on (ψ).
    pub sample_size: usize,
    /// The trees.
    pub trees: Vec<Tree>,
    /// Score above which a row is anomalous.
    pub threshold: f64,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// SplitMix64: tiny, fast, and fixed forever (so seeded results never change with a
/// dependency upgrade). Also used by training's reservoir sample and the log generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

type Rng = SplitMix64;

impl SplitMix64 {
    /// A generator for `stream` of `seed` (streams are independent).
    pub fn new(seed: u64, stream: u64) -> SplitMix64 {
        let mut r = SplitMix64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }
    /// A generator starting from a raw state.
    pub fn from_state(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // Not an iterator: it never ends.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

#[allow(clippy::needless_range_loop)] // `f` is a column index used across many rows.
fn grow(
    rows: &[&[f64]],
    idx: &mut [usize],
    depth: usize,
    max_depth: usize,
    rng: &mut Rng,
    nodes: &mut Vec<Node>,
) -> u32 {
    let me = nodes.len() as u32;
    let leaf = Node { feature: LEAF, threshold: 0.0, left: idx.len() as u32, right: 0 };
    nodes.push(leaf);
    if depth >= max_depth || idx.len() <= 1 {
        return me;
    }
    let width = rows[idx[0]].len();
    // Features that vary in this node, with their ranges.
    let mut candidates: Vec<(usize, f64, f64)> = Vec::with_capacity(width);
    for f in 0..width {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &i in idx.iter() {
            let v = rows[i][f];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            candidates.push((f, lo, hi));
        }
    }
    if candidates.is_empty() {
        return me;
    }
    let (f, lo, hi) = candidates[rng.below(candidates.len())];
    let mut t = lo + rng.unit() * (hi - lo);
    if t <= lo {
        t = (lo + hi) / 2.0;
    }
    // Partition: x < t left.
    let mut split = 0;
    for k in 0..idx.len() {
        if rows[idx[k]][f] < t {
            idx.swap(k, split);
            split += 1;
        }
    }
    let (left_idx, right_idx) = idx.split_at_mut(split);
    let left = grow(rows, left_idx, depth + 1, max_depth, rng, nodes);
    let right = grow(rows, right_idx, depth + 1, max_depth, rng, nodes);
    nodes[me as usize] = Node { feature: f as u32, threshold: t, left, right };
    me
}

/// `c(n)` for small `n`, computed once (leaf sizes are at most the sample size).
fn c_cached(n: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..=4096).map(c).collect());
    table.get(n).copied().unwrap_or_else(|| c(n))
}

impl Tree {
    fn path_length(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        let mut depth = 0.0;
        loop {
            let n = &self.nodes[i];
            if n.feature == LEAF {
                return depth + c_cached(n.left as usize);
            }
            i = if x[n.feature as usize] < n.threshold { n.left } else { n.right } as usize;
            depth += 1.0;
        }
    }
}

impl Forest {
    /// Grows a forest on `rows` (all of the same width) and sets the threshold from
    /// `params.contamination`.
    pub fn fit(rows: &[Vec<f64>], params: &Params) -> Result<Forest, ForestError> {
        let first = rows.first().ok_or(ForestError::Empty)?;
        let width = first.len();
        if width == 0 || width >= LEAF as usize {
            return Err(ForestError::Param(format!("row width {width}")));
        }
        if let Some(bad) = rows.iter().find(|r| r.len() != width) {
            return Err(ForestError::Width { expected: width, got: bad.len() });
        }
        if params.trees == 0 || params.sample_size < 2 {
            return Err(ForestError::Param("trees must be ≥ 1 and sample_size ≥ 2".into()));
        }
        if !(0.0..=0.5).contains(&params.contamination) {
            return Err(ForestError::Param(format!("contamination {} not in [0, 0.5]", params.contamination)));
        }
        let psi = params.sample_size.min(rows.len());
        let max_depth = (psi.max(2) as f64).log2().ceil() as usize;
        let views: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let trees: Vec<Tree> = (0..params.trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = Rng::new(params.seed, t as u64 + 1);
                // Partial Fisher-Yates: the first psi entries are a sample without replacement.
                let mut all: Vec<usize> = (0..rows.len()).collect();
                for k in 0..psi {
                    let j = k + rng.below(rows.len() - k);
                    all.swap(k, j);
                }
                let idx = &mut all[..psi];
                let mut nodes = Vec::with_capacity(2 * psi);
                grow(&views, idx, 0, max_depth, &mut rng, &mut nodes);
                Tree { nodes }
            })
            .collect();
        let mut forest = Forest { features: width, sample_size: psi, trees, threshold: 1.0 };
        let mut scores = forest.score_many(rows);
        forest.threshold = quantile(&mut scores, 1.0 - params.contamination);
        Ok(forest)
    }

    /// Anomaly score of one row in (0, 1]; higher is more anomalous. `x` must have
    /// `self.features` values (extra values are ignored, missing ones read as 0).
    pub fn score(&self, x: &[f64]) -> f64 {
        let mut buf = [0.0f64; 16];
        let x = if x.len() >= self.features || self.features > buf.len() {
            x
        } else {
            buf[..x.len()].copy_from_slice(x);
            &buf[..self.features]
        };
        let mut sum = 0.0;
        for t in &self.trees {
            sum += t.path_length(x);
        }
        let mean = sum / self.trees.len() as f64;
        let norm = c(self.sample_size);
        if norm == 0.0 { 0.5 } else { 2f64.powf(-mean / norm) }
    }

    /// Scores many rows (each `self.features` wide) in parallel; the same values as
    /// [`Forest::score`]. Rows are taken in blocks and trees walked tree-major, so one tree's
    /// nodes stay in cache for a whole block (about twice as fast as row by row).
    pub fn score_many<R: AsRef<[f64]> + Sync>(&self, rows: &[R]) -> Vec<f64> {
        let norm = c(self.sample_size);
        let n = self.trees.len() as f64;
        rows.par_chunks(512)
            .flat_map_iter(|block| {
                let mut sums = vec![0.0f64; block.len()];
                for t in &self.trees {
                    for (s, r) in sums.iter_mut().zip(block) {
                        *s += t.path_length(r.as_ref());
                    }
                }
                sums.into_iter().map(move |s| if norm == 0.0 { 0.5 } else { 2f64.powf(-(s / n) / norm) })
            })
            .collect()
    }

    /// Whether a score is above the threshold.
    pub fn is_anomalous(&self, score: f64) -> bool {
        score > self.threshold
    }

    /// Checks the structure of a loaded forest, so scoring can never index out of bounds.
    pub fn validate(&self) -> Result<(), ForestError> {
        if self.trees.is_empty() || self.features == 0 {
            return Err(ForestError::Corrupt("no trees".into()));
        }
        for (ti, t) in self.trees.iter().enumerate() {
            if t.nodes.is_empty() {
                return Err(ForestError::Corrupt(format!("tree {ti} is empty")));
            }
            for (ni, n) in t.nodes.iter().enumerate() {
                if n.feature == LEAF {
                    continue;
                }
                let ok = (n.feature as usize) < self.features
                    && (n.left as usize) < t.nodes.len()
                    && (n.right as usize) < t.nodes.len()
                    && n.left as usize > ni
                    && n.right as usize > ni
                    && n.threshold.is_finite();
                if !ok {
                    return Err(ForestError::Corrupt(format!("tree {ti} node {ni}")));
                }
            }
        }
        Ok(())
    }
}

/// The `q` quantile (0..=1) of `v`, by linear interpolation (numpy's default).
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense cloud (each feature a sum of uniforms, so values thin out towards the edges).
    fn cloud(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed, 0);
        let mut bell = |lo: f64, span: f64| lo + span * (r.unit() + r.unit() + r.unit()) / 3.0;
        (0..n).map(|_| vec![bell(10.0, 5.0), bell(0.0, 1.0), bell(0.1, 0.2), 0.0, bell(0.0, 3.0), 0.0]).collect()
    }

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        assert!((c(256) - 10.244_770_920_116_851).abs() < 1e-9);
    }

    #[test]
    fn planted_outliers_score_above_inliers() {
        let mut rows = cloud(2000, 7);
        let outliers = vec![
            vec![80.0, 3.0, 0.1, 2.0, 40.0, 20.0],
            vec![40.0, 0.5, 9.0, 0.0, 1.0, 0.0],
            vec![14.0, 2.5, 0.2, 0.0, 30.0, 0.0],
        ];
        rows.extend(outliers.clone());
        let f = Forest::fit(&rows, &Params::default()).unwrap();
        // The centre of the cloud is the least anomalous.
        assert!(f.score(&[12.5, 0.5, 0.2, 0.0, 1.5, 0.0]) < 0.45);
        let inlier_max = {
            let mut s: Vec<f64> = rows[..2000].iter().map(|r| f.score(r)).collect();
            quantile(&mut s, 0.99)
        };
        for o in &outliers {
            let s = f.score(o);
            assert!(s > inlier_max, "outlier {o:?} scored {s}, inlier p99 {inlier_max}");
            assert!(f.is_anomalous(s));
        }
        // About `contamination` of the training rows are above the threshold.
        let above = rows.iter().filter(|r| f.is_anomalous(f.score(r))).count() as f64 / rows.len() as f64;
        assert!((0.03..=0.07).contains(&above), "{above}");
    }

    #[test]
    fn deterministic_whatever_the_thread_count() {
        let rows = cloud(1500, 3);
        let a = Forest::fit(&rows, &Params::default()).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = pool.install(|| Forest::fit(&rows, &Params::default()).unwrap());
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        let c = Forest::fit(&rows, &Params { seed: 43, ..Params::default() }).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn save_load_round_trip_scores_the_same() {
        let rows = cloud(800, 5);
        let f = Forest::fit(&rows, &Params { trees: 20, ..Params::default() }).unwrap();
        let back: Forest = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        back.validate().unwrap();
        let many = back.score_many(&rows);
        for (r, m) in rows.iter().zip(many) {
            assert_eq!(f.score(r), m);
        }
    }

    #[test]
    fn constant_columns_never_matter() {
        let rows: Vec<Vec<f64>> = cloud(500, 9)
            .into_iter()
            .map(|mut r| {
                r[2] = 0.0;
                r
            })
            .collect();
        let f = Forest::fit(&rows, &Params::default()).unwrap();
        let mut x = rows[0].clone();
        let s0 = f.score(&x);
        x[2] = 1000.0;
        assert_eq!(f.score(&x), s0);
    }

    #[test]
    fn rejects_bad_input_and_corrupt_models() {
        assert_eq!(Forest::fit(&[], &Params::default()), Err(ForestError::Empty));
        assert!(matches!(
            Forest::fit(&[vec![1.0], vec![1.0, 2.0]], &Params::default()),
            Err(ForestError::Width { .. })
        ));
        let mut f = Forest::fit(&cloud(100, 1), &Params { trees: 3, ..Params::default() }).unwrap();
        f.trees[0].nodes[0].left = 9999;
        assert!(f.validate().is_err());
    }
}
