//! Findings and the per-request report: classes, severities, locations, scoring and evidence.

use serde_json::json;

/// Maximum findings kept in a [`Report`]; further ones are counted in [`Report::findings_dropped`].
pub const MAX_FINDINGS: usize = 32;
const MAX_EVIDENCE_CHARS: usize = 120;

/// Attack class of a finding; also the detector id used in configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal and local file inclusion.
    Traversal,
    /// Remote file inclusion and server-side request forgery.
    Rfi,
    /// OS command injection.
    Cmdi,
    /// Server-side template injection.
    Ssti,
    /// XML external entities.
    Xxe,
    /// CRLF / header injection, response splitting, request smuggling.
    Crlf,
    /// NoSQL operator injection.
    Nosqli,
    /// Log4Shell-style JNDI lookups.
    Log4shell,
    /// PHP / Java / Node / Ruby / Perl code injection.
    CodeInjection,
    /// Session fixation.
    SessionFixation,
    /// Attack tools and scanners (User-Agent).
    Scanner,
    /// LDAP injection.
    Ldapi,
    /// Protocol anomalies: malformed bodies, over limits, NUL bytes, multiple encodings, restricted files.
    Protocol,
    /// Deviations from the learned application profile (unknown argument, new characters, method, length).
    Profile,
}

impl Class {
    /// All classes.
    pub const ALL: [Class; 16] = [
        Class::Sqli,
        Class::Xss,
        Class::Traversal,
        Class::Rfi,
        Class::Cmdi,
        Class::Ssti,
        Class::Xxe,
        Class::Crlf,
        Class::Nosqli,
        Class::Log4shell,
        Class::CodeInjection,
        Class::SessionFixation,
        Class::Scanner,
        Class::Ldapi,
        Class::Protocol,
        Class::Profile,
    ];

    /// The snake_case detector id used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Traversal => "traversal",
            Class::Rfi => "rfi",
            Class::Cmdi => "cmdi",
            Class::Ssti => "ssti",
            Class::Xxe => "xxe",
            Class::Crlf => "crlf",
            Class::Nosqli => "nosqli",
            Class::Log4shell => "log4shell",
            Class::CodeInjection => "code_injection",
            Class::SessionFixation => "session_fixation",
            Class::Scanner => "scanner",
            Class::Ldapi => "ldapi",
            Class::Protocol => "protocol",
            Class::Profile => "profile",
        }
    }

    /// Human-readable name.
    pub fn label(self) -> &'static str {
        match self {
            Class::Sqli => "SQL injection",
            Class::Xss => "Cross-site scripting",
            Class::Traversal => "Path traversal",
            Class::Rfi => "Remote file inclusion / SSRF",
            Class::Cmdi => "Command injection",
            Class::Ssti => "Template injection",
            Class::Xxe => "XML external entity",
            Class::Crlf => "CRLF / header injection",
            Class::Nosqli => "NoSQL injection",
            Class::Log4shell => "JNDI lookup injection",
            Class::CodeInjection => "Code injection",
            Class::SessionFixation => "Session fixation",
            Class::Scanner => "Attack tool",
            Class::Ldapi => "LDAP injection",
            Class::Protocol => "Protocol anomaly",
            Class::Profile => "Deviation from the learned profile",
        }
    }

    /// Parses a detector id.
    pub fn from_id(id: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == id)
    }

    /// All detector ids.
    pub fn ids() -> Vec<&'static str> {
        Class::ALL.iter().map(|c| c.as_str()).collect()
    }

    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Severity of a finding; its numeric value is the anomaly score it adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 2 points.
    Notice = 2,
    /// 3 points.
    Warning = 3,
    /// 4 points.
    Error = 4,
    /// 5 points.
    Critical = 5,
}

impl Severity {
    /// Score points.
    pub fn score(self) -> u32 {
        self as u32
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// Where in the request a finding was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// The URL path.
    Path,
    /// A query argument name.
    QueryName,
    /// A query argument value.
    QueryValue,
    /// A cookie name or value.
    Cookie,
    /// A request header value.
    Header,
    /// A body field name (form, multipart, JSON key, XML).
    BodyName,
    /// A body field value.
    BodyValue,
    /// The raw body (unknown content type, or malformed).
    Body,
    /// An uploaded file name.
    Filename,
}

impl Location {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::QueryName => "query_name",
            Location::QueryValue => "query_value",
            Location::Cookie => "cookie",
            Location::Header => "header",
            Location::BodyName => "body_name",
            Location::BodyValue => "body_value",
            Location::Body => "body",
            Location::Filename => "filename",
        }
    }
}

/// One rule firing on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadFinding {
    /// Stable rule id, e.g. `"sqli.tautology"`.
    pub rule: &'static str,
    /// Attack class.
    pub class: Class,
    /// Paranoia level of the rule.
    pub paranoia: u8,
    /// Severity (score points).
    pub severity: Severity,
    /// Where the target is.
    pub location: Location,
    /// Target name, e.g. `"query.id"`, `"body.user.name[2]"`, `"header.user-agent"`, `"path"`.
    pub target: String,
    /// The matched fragment (at most ~120 chars, control characters escaped).
    pub matched: String,
    /// The decoded value the rule saw (truncated similarly).
    pub decoded: String,
    /// Recorded only: above the blocking paranoia level, or the detector is in `detect` mode.
    pub shadow: bool,
}

impl PayloadFinding {
    /// JSON evidence for events.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "rule": self.rule,
            "class": self.class.as_str(),
            "paranoia": self.paranoia,
            "severity": self.severity.as_str(),
            "location": self.location.as_str(),
            "target": self.target,
            "matched": self.matched,
            "decoded": self.decoded,
            "shadow": self.shadow,
        })
    }
}

/// The result of inspecting one request (head and body phases add to the same report).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Anomaly score from blocking (non-shadow) findings; each rule id counts once.
    pub score: u32,
    /// Findings, at most [`MAX_FINDINGS`].
    pub findings: Vec<PayloadFinding>,
    /// Targets inspected.
    pub targets_inspected: u32,
    /// Targets not inspected because of `max_targets` (or JSON limits).
    pub targets_dropped: u32,
    /// Findings not kept because of [`MAX_FINDINGS`].
    pub findings_dropped: u32,
    scored_rules: Vec<&'static str>,
}

impl Report {
    /// A fresh, empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// True when the score reaches `threshold`.
    pub fn blocks(&self, threshold: u32) -> bool {
        self.score >= threshold
    }

    /// True when the score reaches the configured threshold.
    pub fn should_block(&self, cfg: &crate::PayloadConfig) -> bool {
        cfg.enabled && self.blocks(cfg.threshold)
    }

    /// The score without the learned profile's findings (what the anomaly model sees as an attack
    /// sign): the score itself when the profile found nothing.
    pub fn attack_score(&self) -> u32 {
        if !self.findings.iter().any(|f| f.class == Class::Profile && !f.shadow) {
            return self.score;
        }
        let mut seen: Vec<&'static str> = Vec::new();
        let mut s = 0u32;
        for f in self.findings.iter().filter(|f| !f.shadow && f.class != Class::Profile) {
            if !seen.contains(&f.rule) {
                seen.push(f.rule);
                s = s.saturating_add(f.severity.score());
            }
        }
        s
    }

    /// True if nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.findings_dropped == 0
    }

    /// Adds a finding, scoring it once per rule id unless it is a shadow finding.
    pub fn push(&mut self, f: PayloadFinding) {
        if !f.shadow && !self.scored_rules.contains(&f.rule) {
            self.scored_rules.push(f.rule);
            self.score = self.score.saturating_add(f.severity.score());
        }
        if self.findings.iter().any(|g| g.rule == f.rule && g.target == f.target) {
            return;
        }
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.findings_dropped = self.findings_dropped.saturating_add(1);
        }
    }

    /// Merges another report (e.g. a separately inspected body) into this one.
    pub fn merge(&mut self, other: Report) {
        self.targets_inspected = self.targets_inspected.saturating_add(other.targets_inspected);
        self.targets_dropped = self.targets_dropped.saturating_add(other.targets_dropped);
        self.findings_dropped = self.findings_dropped.saturating_add(other.findings_dropped);
        for f in other.findings {
            self.push(f);
        }
    }

    /// The most severe scored finding (or shadow if none scored).
    pub fn top(&self) -> Option<&PayloadFinding> {
        self.findings.iter().max_by_key(|f| (!f.shadow, f.severity, std::cmp::Reverse(f.paranoia)))
    }

    /// One-line human reason, e.g. `"SQL injection in query.id (sqli.tautology)"`; empty if clean.
    pub fn summary(&self) -> String {
        match self.top() {
            None => String::new(),
            Some(f) => {
                let others = self.findings.iter().filter(|g| !g.shadow && g.rule != f.rule).count();
                let mut s = format!("{} in {} ({})", f.class.label(), f.target, f.rule);
                if f.shadow {
                    s.push_str(" [shadow]");
                }
                if others > 0 {
                    s.push_str(&format!(" +{others} more"));
                }
                s
            }
        }
    }

    /// JSON evidence of all findings.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "score": self.score,
            "targets_inspected": self.targets_inspected,
            "targets_dropped": self.targets_dropped,
            "findings_dropped": self.findings_dropped,
            "findings": self.findings.iter().map(PayloadFinding::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Lossy, escaped, truncated evidence string.
pub(crate) fn evidence(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len().min(MAX_EVIDENCE_CHARS + 8));
    for (n, c) in s.chars().enumerate() {
        if n >= MAX_EVIDENCE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
