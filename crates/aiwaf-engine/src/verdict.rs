//! Verdicts and the records the engine hands to storage. A block is data, never an error.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

/// Which detector decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The client is on the blacklist.
    Blacklist,
    /// Over `rate_max` requests in the window (429).
    RateLimit,
    /// Over `rate_flood` requests in the window (ban).
    Flood,
    /// A static or learned keyword in the path.
    Keyword,
    /// A form POST without a recent GET, or too soon after it.
    Honeypot,
    /// Too many 404s on UUID paths, or malformed UUIDs.
    UuidTamper,
    /// Too many 404s on non-exempt paths.
    NotFoundFlood,
    /// Too many 404s on probed file extensions.
    ExtensionProbe,
    /// The anomaly model, with attack signs.
    Anomaly,
    /// Payload inspection (SQL injection, XSS, traversal, command injection, …) scored over
    /// the request's query, body, headers and cookies.
    Payload,
    /// Added by an operator.
    Manual,
}

impl Detector {
    /// Every detector.
    pub const ALL: &[Detector] = &[
        Detector::Blacklist,
        Detector::RateLimit,
        Detector::Flood,
        Detector::Keyword,
        Detector::Honeypot,
        Detector::UuidTamper,
        Detector::NotFoundFlood,
        Detector::ExtensionProbe,
        Detector::Anomaly,
        Detector::Payload,
        Detector::Manual,
    ];

    /// Stable snake_case name used in storage, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Blacklist => "blacklist",
            Detector::RateLimit => "rate_limit",
            Detector::Flood => "flood",
            Detector::Keyword => "keyword",
            Detector::Honeypot => "honeypot",
            Detector::UuidTamper => "uuid_tamper",
            Detector::NotFoundFlood => "not_found_flood",
            Detector::ExtensionProbe => "extension_probe",
            Detector::Anomaly => "anomaly",
            Detector::Payload => "payload",
            Detector::Manual => "manual",
        }
    }
}

/// Why a detector fired, with the facts behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The detector.
    pub detector: Detector,
    /// A one-line human reason.
    pub reason: String,
    /// Machine-readable facts (counts, thresholds, matched keyword, timings).
    pub evidence: Value,
}

/// What should happen to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass it on.
    Allow,
    /// Answer 429 with `Retry-After`.
    RateLimit {
        /// Seconds until the client is back under the limit.
        retry_after_s: u64,
    },
    /// Answer 403.
    Block,
}

/// A ban decided by a detector (or an operator).
#[derive(Debug, Clone, PartialEq)]
pub struct Ban {
    /// The banned client.
    pub ip: IpAddr,
    /// Who decided.
    pub detector: Detector,
    /// Human reason.
    pub reason: String,
    /// Facts behind it.
    pub evidence: Value,
    /// When (ms since the epoch).
    pub created_at: u64,
    /// Until when; `None` is permanent.
    pub expires_at: Option<u64>,
    /// Which offence this is for the client (1 for the first).
    pub offences: u32,
    /// Order of the ban among those this process decided (0 for operator bans). Storage
    /// reports the highest one written so the server knows which bans a snapshot holds.
    pub seq: u64,
}

/// The engine's answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// Why (absent when allowed).
    pub finding: Option<Finding>,
    /// A new ban, when this request caused one.
    pub ban: Option<Ban>,
}

impl Verdict {
    /// Let the request through.
    pub const ALLOW: Verdict = Verdict { action: Action::Allow, finding: None, ban: None };

    /// Whether the request may pass.
    pub fn is_allow(&self) -> bool {
        self.action == Action::Allow
    }
}

/// A stored record of a block (or, in detect mode, a would-block).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The request id sent to the client in `X-Aiwaf-Request-Id`.
    pub request_id: String,
    /// When (ms since the epoch).
    pub ts: u64,
    /// The client.
    pub ip: IpAddr,
    /// Request method.
    pub method: String,
    /// Request path and query, truncated.
    pub path: String,
    /// Detector.
    pub detector: Detector,
    /// `block`, `rate_limit`, `ban` or, in detect mode, `would_block` / `would_rate_limit` / `would_ban`.
    pub action: &'static str,
    /// Human reason.
    pub reason: String,
    /// Facts.
    pub evidence: Value,
    /// `block` or `detect`.
    pub mode: &'static str,
}

/// One line of the request log.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEntry {
    /// Request id.
    pub request_id: String,
    /// Start of the request (ms since the epoch).
    pub ts: u64,
    /// The client.
    pub ip: IpAddr,
    /// Method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Query string (may be empty).
    pub query: String,
    /// Status sent to the client.
    pub status: u16,
    /// Time to response headers, in milliseconds.
    pub response_time_ms: f64,
    /// `User-Agent`.
    pub user_agent: String,
    /// `Referer`.
    pub referer: String,
    /// `Content-Length` of the response, when known.
    pub content_length: Option<u64>,
    /// Whether aiwaf answered instead of the upstream.
    pub blocked: bool,
}

/// Everything the engine asks storage to keep. Sent through a bounded channel, written in batches.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A block or would-block.
    Event(Event),
    /// A new ban.
    Ban(Ban),
    /// A request log line (only when request logging is on).
    Request(RequestEntry),
    /// A path the upstream answered with 2xx/3xx for the first time (never keyword-blocked).
    KnownPath {
        /// Normalised path.
        path: String,
        /// When (ms since the epoch).
        at: u64,
    },
}
