//! The anomaly model file: a versioned JSON document (never a pickle), checked on load.

use std::collections::BTreeMap;

use aiwaf_forest::Forest;
use serde::{Deserialize, Serialize};

use crate::features::{FEATURE_NAMES, Features, LEGACY_FEATURE_COUNT};

/// Version of the model file format this build reads and writes.
pub const MODEL_SCHEMA_VERSION: u32 = 1;

/// How a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// When (ms since the epoch).
    pub trained_at: u64,
    /// Where the rows came from (log files or the request log).
    pub sources: Vec<String>,
    /// Log lines parsed into rows.
    pub rows_used: u64,
    /// Distinct clients.
    pub clients: u64,
    /// Contamination used for the threshold.
    pub contamination: f64,
    /// Seed.
    pub seed: u64,
    /// Rows the forest was fitted on (a uniform sample of all rows when there were more).
    pub fitted_rows: u64,
    /// Training score distribution: quantile → score.
    pub score_quantiles: BTreeMap<String, f64>,
}

/// The model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// [`MODEL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Feature names, in vector order (must equal [`FEATURE_NAMES`]).
    pub feature_names: Vec<String>,
    /// How it was trained.
    pub training: TrainingInfo,
    /// The forest (its `threshold` is the anomaly cut-off).
    pub forest: Forest,
}

/// A loaded, checked model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    file: ModelFile,
}

impl Model {
    /// Wraps a freshly trained forest.
    pub fn new(forest: Forest, training: TrainingInfo) -> Model {
        Model {
            file: ModelFile {
                schema_version: MODEL_SCHEMA_VERSION,
                feature_names: FEATURE_NAMES[..forest.features.min(FEATURE_NAMES.len())]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                training,
                forest,
            },
        }
    }

    /// Parses and checks a model file.
    pub fn from_json(bytes: &[u8]) -> Result<Model, String> {
        let file: ModelFile = serde_json::from_slice(bytes).map_err(|e| format!("not a model file: {e}"))?;
        if file.schema_version != MODEL_SCHEMA_VERSION {
            return Err(format!(
                "model schema version {} is not supported (this build reads {MODEL_SCHEMA_VERSION})",
                file.schema_version
            ));
        }
        // this build's features, or the first six of them (a model trained before `payload_score`)
        let n = file.feature_names.len();
        if !(LEGACY_FEATURE_COUNT..=FEATURE_NAMES.len()).contains(&n) || file.feature_names != FEATURE_NAMES[..n] {
            return Err(format!(
                "model features {:?} do not match this build's {:?}",
                file.feature_names, FEATURE_NAMES
            ));
        }
        if file.forest.features != n {
            return Err(format!("model has {} features, its file names {n}", file.forest.features));
        }
        file.forest.validate().map_err(|e| e.to_string())?;
        Ok(Model { file })
    }

    /// Serialises the model file.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.file).expect("a model always serialises")
    }

    /// The file contents.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Anomaly score in (0, 1]; higher is more anomalous.
    pub fn score(&self, x: &Features) -> f64 {
        self.file.forest.score(&x[..self.file.forest.features])
    }

    /// The cut-off above which a score is anomalous.
    pub fn threshold(&self) -> f64 {
        self.file.forest.threshold
    }
}
