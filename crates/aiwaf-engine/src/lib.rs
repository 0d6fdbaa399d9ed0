//! The aiwaf detection engine.
//!
//! Pure by construction: no IO, no async runtime, no clock reads (every entry point takes `now`
//! in milliseconds since the Unix epoch), and inspection never fails — a block is a
//! [`Verdict`], not an error. The same code runs behind the reverse proxy, inside the tower
//! layer for Rust apps, and (for features) in the offline trainer.
//!
//! - [`Engine`]: immutable settings and compiled matchers, shared as `Arc<Engine>`.
//! - [`WafState`]: the in-memory state (lists snapshot, pending bans, bounded client table).
//! - [`Engine::inspect`] runs before the upstream, [`Engine::observe`] on its answer.

pub mod config;
mod engine;
pub mod features;
pub mod ip;
pub mod keywords;
pub mod model;
pub mod path;
pub mod state;
pub mod verdict;
mod window;

pub use aiwaf_payload as payload;
pub use config::{EngineConfig, Mode};
pub use engine::{
    Engine, Inspection, Observation, RequestContext, RequestInfo, RequestWindows, ResponseQuery, ResponseWindows,
    WindowQuery,
};
pub use features::{FEATURE_NAMES, Features};
pub use model::Model;
pub use state::{BanState, Lists, WafState};
pub use verdict::{Action, Ban, Detector, Event, Finding, Record, RequestEntry, Verdict};
