//! Configuration of the payload inspector: paranoia levels, limits, detector modes and exclusions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::Class;

/// What to do when a body is longer than [`PayloadConfig::max_body_bytes`].
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Inspect the prefix that was handed over (default).
    #[default]
    InspectPrefix,
    /// Record a critical `protocol.body_over_limit` finding (blocks at the default threshold).
    Block,
    /// Skip body inspection.
    Pass,
}

/// What to do with a JSON/XML/multipart body that does not parse.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Malformed {
    /// Record a low-severity `protocol.malformed_body` finding (default), and inspect the body as raw text.
    #[default]
    Finding,
    /// Inspect the body as raw text, without a finding.
    Pass,
}

/// Mode of one detector class.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DetectorMode {
    /// Findings are scored (default).
    #[default]
    Block,
    /// Findings are recorded as shadow findings, never scored.
    Detect,
    /// The detector does not run.
    Off,
}

/// Switches some detectors off for some paths and targets.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Exclusion {
    /// Applies to request paths starting with this prefix (raw path, as received).
    pub path_prefix: String,
    /// Detector class ids (`"sqli"`, `"xss"`, ...); empty = all detectors.
    pub detectors: Vec<String>,
    /// Target names (`"body.content"`, `"query.q"`, `"cookie.session"`, `"header.user-agent"`); empty = all.
    pub targets: Vec<String>,
}

/// Payload inspection settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadConfig {
    /// Master switch (default true).
    pub enabled: bool,
    /// 1..=4 (default 1): rules at or below this level are scored.
    pub paranoia: u8,
    /// `>= paranoia` (default: same as paranoia; 0 also means "same"): rules above `paranoia` but at or
    /// below this level run in shadow (recorded, never scored).
    pub executing_paranoia: u8,
    /// Anomaly score at which a request blocks (default 5).
    pub threshold: u32,
    /// Extra header names to inspect beyond the defaults.
    pub headers: Vec<String>,
    /// Body inspection limit in bytes (default 65536).
    pub max_body_bytes: usize,
    /// What to do with a body over the limit.
    pub on_body_over_limit: OverLimit,
    /// What to do with a body that does not parse as its content type says.
    pub on_malformed_body: Malformed,
    /// Maximum number of targets inspected per request (default 512).
    pub max_targets: usize,
    /// Maximum number of bytes inspected per value (default 8192).
    pub max_value_len: usize,
    /// Maximum JSON nesting depth walked (default 32).
    pub json_max_depth: usize,
    /// Maximum JSON nodes walked (default 2048).
    pub json_max_nodes: usize,
    /// Per detector class id: block (default), detect or off.
    pub detectors: BTreeMap<String, DetectorMode>,
    /// Exclusions by path prefix, detector and target.
    pub exclusions: Vec<Exclusion>,
    /// The learned application profile (`[payload.profile]`).
    pub profile: crate::ProfileConfig,
}

impl Default for PayloadConfig {
    fn default() -> Self {
        PayloadConfig {
            enabled: true,
            paranoia: 1,
            executing_paranoia: 0,
            threshold: 5,
            headers: Vec::new(),
            max_body_bytes: 65536,
            on_body_over_limit: OverLimit::InspectPrefix,
            on_malformed_body: Malformed::Finding,
            max_targets: 512,
            max_value_len: 8192,
            json_max_depth: 32,
            json_max_nodes: 2048,
            detectors: BTreeMap::new(),
            exclusions: Vec::new(),
            profile: crate::ProfileConfig::default(),
        }
    }
}

impl PayloadConfig {
    /// The effective executing paranoia level (`max(paranoia, executing_paranoia)`).
    pub fn effective_executing_paranoia(&self) -> u8 {
        self.executing_paranoia.max(self.paranoia)
    }

    /// Checks ranges and names; the error names the offending key and value.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4).contains(&self.paranoia) {
            return Err(format!("payload.paranoia must be 1..=4, got {}", self.paranoia));
        }
        if self.executing_paranoia != 0 && !(self.paranoia..=4).contains(&self.executing_paranoia) {
            return Err(format!(
                "payload.executing_paranoia must be paranoia ({})..=4, got {}",
                self.paranoia, self.executing_paranoia
            ));
        }
        if self.threshold == 0 {
            return Err("payload.threshold must be > 0, got 0".to_string());
        }
        if self.max_targets == 0 {
            return Err("payload.max_targets must be > 0, got 0".to_string());
        }
        if self.max_value_len < 16 {
            return Err(format!("payload.max_value_len must be >= 16, got {}", self.max_value_len));
        }
        if self.json_max_depth == 0 || self.json_max_nodes == 0 {
            return Err(format!(
                "payload.json_max_depth/json_max_nodes must be > 0, got {}/{}",
                self.json_max_depth, self.json_max_nodes
            ));
        }
        for h in &self.headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("payload.headers: invalid header name {h:?}"));
            }
        }
        for k in self.detectors.keys() {
            if Class::from_id(k).is_none() {
                return Err(format!("payload.detectors: unknown detector {k:?} (known: {})", Class::ids().join(", ")));
            }
        }
        for (i, ex) in self.exclusions.iter().enumerate() {
            validate_exclusion(ex).map_err(|e| format!("payload.exclusions[{i}].{e}"))?;
        }
        self.profile.validate()
    }
}

/// Changes an operator makes while the server runs (admin API), applied on top of the
/// configuration without a restart: more exclusions, and detector modes that replace the
/// configured ones. Stored as JSON; every instance sharing the database follows.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Overlay {
    /// Exclusions added at run time (after the configured ones).
    pub exclusions: Vec<Exclusion>,
    /// Per detector class id: block, detect or off, replacing the configured mode.
    pub detectors: BTreeMap<String, DetectorMode>,
}

impl Overlay {
    /// Checks names and prefixes like the configuration does; the error names the bad entry.
    pub fn validate(&self) -> Result<(), String> {
        for k in self.detectors.keys() {
            if Class::from_id(k).is_none() {
                return Err(format!("detectors: unknown detector {k:?} (known: {})", Class::ids().join(", ")));
            }
        }
        for (i, ex) in self.exclusions.iter().enumerate() {
            validate_exclusion(ex).map_err(|e| format!("exclusions[{i}].{e}"))?;
        }
        Ok(())
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.exclusions.is_empty() && self.detectors.is_empty()
    }
}

/// Checks one exclusion; the error starts with the field name.
pub fn validate_exclusion(ex: &Exclusion) -> Result<(), String> {
    if !ex.path_prefix.starts_with('/') {
        return Err(format!("path_prefix must start with '/', got {:?}", ex.path_prefix));
    }
    for d in &ex.detectors {
        if Class::from_id(d).is_none() {
            return Err(format!("detectors: unknown detector {d:?} (known: {})", Class::ids().join(", ")));
        }
    }
    for t in &ex.targets {
        if t.is_empty() || t.len() > 256 || t.chars().any(char::is_control) {
            return Err(format!("targets: invalid target name {t:?}"));
        }
    }
    Ok(())
}
