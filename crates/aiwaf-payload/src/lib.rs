//! aiwaf's payload inspection: a pure, bounded, never-panicking inspector for request payloads.
//!
//! [`Inspector::inspect_head`] looks at the request line (method, path, query arguments), cookies and every
//! header value (list-valued headers such as `Accept` only when they leave their token-list grammar), plus
//! protocol checks (framing/smuggling, ranges, restricted headers, control characters, content type);
//! [`Inspector::inspect_body`] at form, multipart, JSON, XML or raw bodies. Every target is decoded
//! (URL once/twice, `%uXXXX`, HTML entities, `\uXXXX`/`\xXX` escapes, full-width Unicode, NUL removal, plus SQL, shell and path
//! forms, and base64 when a value clearly is base64) and checked by our own rules, written from attack
//! classes: SQL injection (with libinjection fingerprinting as one scored signal), XSS, traversal/LFI,
//! RFI/SSRF, command injection, template injection, XXE, CRLF, NoSQL, Log4Shell, code injection, session
//! fixation, LDAP, scanner User-Agents and protocol anomalies. A cheap first pass (one Aho-Corasick scan over
//! trigger literals plus byte-shape checks, see `prefilter.rs`) decides which rule groups run on a value; a
//! value in which it finds nothing costs that one pass. Findings add their severity to an anomaly
//! score (once per rule id); the request blocks at [`PayloadConfig::threshold`].
//!
//! ```
//! use aiwaf_payload::{HeadParts, Inspector, PayloadConfig, Report};
//! let insp = Inspector::new(PayloadConfig::default()).unwrap();
//! let mut report = Report::default();
//! let headers: [(&str, &[u8]); 1] = [("User-Agent", b"Mozilla/5.0")];
//! insp.inspect_head(
//!     &HeadParts { method: "GET", path: "/item", query: Some("id=1%27%20OR%20%271%27%3D%271"), headers: &headers },
//!     &mut report,
//! );
//! assert!(report.should_block(insp.config()));
//! println!("{}", report.summary());
//! ```

mod config;
mod decode;
mod inspector;
mod matcher;
mod parse;
mod prefilter;
mod profile;
mod report;
mod rules;

pub use config::{DetectorMode, Exclusion, Malformed, OverLimit, Overlay, PayloadConfig, validate_exclusion};
pub use inspector::{HeadParts, Inspector};
pub use profile::{
    ParamSummary, Profile, ProfileConfig, RouteSummary, Rules, Shape, class_mask, describe_mask, route_key,
};
pub use report::{Class, Location, MAX_FINDINGS, PayloadFinding, Report, Severity};
