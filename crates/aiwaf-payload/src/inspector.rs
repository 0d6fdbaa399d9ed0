//! The inspector: turns a request into targets (with limits), runs the matchers on each and records
//! findings in a [`Report`], applying paranoia levels, detector modes and exclusions.

use std::borrow::Cow;

use crate::config::{DetectorMode, Malformed, OverLimit, PayloadConfig};
use crate::matcher::{Hit, Matcher, ScanCtx};
use crate::parse;
use crate::report::{Class, Location, PayloadFinding, Report, Severity, evidence};
use crate::rules::scope;

/// Headers inspected by default (lower-case). `Cookie` is parsed separately.
const DEFAULT_HEADERS: &[&str] =
    &["user-agent", "referer", "x-forwarded-host", "x-filename", "x_filename", "x-file-name"];
const FILENAME_HEADERS: &[&str] = &["x-filename", "x_filename", "x-file-name"];
const MAX_NAME_CHARS: usize = 100;

/// The request line and headers handed to [`Inspector::inspect_head`].
#[derive(Clone, Copy, Debug)]
pub struct HeadParts<'a> {
    /// Request method.
    pub method: &'a str,
    /// Raw (percent-encoded) path, without the query.
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Headers: name (any case) and raw value.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Compiled payload inspector; cheap to share (`&self` everywhere).
pub struct Inspector {
    cfg: PayloadConfig,
    matcher: Matcher,
    headers: Vec<String>,
    enabled_classes: u32,
    detect_classes: u32,
    max_pl: u8,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

struct Run<'a> {
    insp: &'a Inspector,
    path: &'a str,
    out: &'a mut Report,
}

impl Inspector {
    /// Validates the configuration and compiles the matchers; the error names the bad key and value.
    pub fn new(cfg: PayloadConfig) -> Result<Inspector, String> {
        cfg.validate()?;
        let matcher = Matcher::new()?;
        let mut enabled = 0u32;
        let mut detect = 0u32;
        for c in Class::ALL {
            match cfg.detectors.get(c.as_str()).copied().unwrap_or_default() {
                DetectorMode::Block => enabled |= c.bit(),
                DetectorMode::Detect => {
                    enabled |= c.bit();
                    detect |= c.bit();
                }
                DetectorMode::Off => {}
            }
        }
        let mut headers: Vec<String> = DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect();
        for h in &cfg.headers {
            let h = h.to_ascii_lowercase();
            if h != "cookie" && !headers.contains(&h) {
                headers.push(h);
            }
        }
        let max_pl = cfg.effective_executing_paranoia();
        Ok(Inspector { cfg, matcher, headers, enabled_classes: enabled, detect_classes: detect, max_pl })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PayloadConfig {
        &self.cfg
    }

    /// Request-line and headers phase: path, query arguments, cookies, selected headers.
    pub fn inspect_head(&self, req: &HeadParts<'_>, out: &mut Report) {
        if !self.cfg.enabled {
            return;
        }
        let mut run = Run { insp: self, path: req.path, out };
        let path = req.path.as_bytes();
        if !path.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_') || path.len() > 1024
        {
            let decoded = crate::decode::url_decode(path, false);
            run.value(Location::Path, scope::PATH, "path", b"", &decoded);
            run.hidden_segment(&decoded);
        }
        if let Some(q) = req.query.filter(|q| !q.is_empty()) {
            let limit = self.cfg.max_targets;
            let dropped = parse::urlencoded(q.as_bytes(), limit, &mut |name, value, had_eq| {
                run.arg(Location::QueryName, Location::QueryValue, "query.", &name, &value, had_eq);
            });
            run.dropped(dropped);
        }
        for (name, value) in req.headers {
            if name.eq_ignore_ascii_case("cookie") {
                parse::cookies(value, &mut |n, v| {
                    if !n.is_empty() {
                        run.value(Location::Cookie, scope::COOKIE, "cookie.", n, n);
                    }
                    run.value(Location::Cookie, scope::COOKIE, "cookie.", n, v);
                });
                continue;
            }
            let lname = name.to_ascii_lowercase();
            if !self.headers.contains(&lname) {
                continue;
            }
            let mut sc = scope::HEADER;
            if lname == "user-agent" {
                sc |= scope::UA;
            }
            if FILENAME_HEADERS.contains(&lname.as_str()) {
                sc |= scope::FILE;
            }
            run.value(Location::Header, sc, "header.", lname.as_bytes(), value);
        }
    }

    /// Body phase. `truncated` = the body was longer than what was handed over.
    pub fn inspect_body(&self, path: &str, content_type: Option<&str>, body: &[u8], truncated: bool, out: &mut Report) {
        if !self.cfg.enabled || body.is_empty() {
            return;
        }
        let truncated = truncated || body.len() > self.cfg.max_body_bytes;
        let body = &body[..body.len().min(self.cfg.max_body_bytes)];
        let mut run = Run { insp: self, path, out };
        if truncated {
            match self.cfg.on_body_over_limit {
                OverLimit::Pass => return,
                OverLimit::Block => {
                    run.protocol("protocol.body_over_limit", Severity::Critical, "body", b"over limit");
                    return;
                }
                OverLimit::InspectPrefix => {}
            }
        }
        let ct = content_type.unwrap_or("").trim();
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let looks_form = || {
            let first = body.split(|&b| b == b'&').next().unwrap_or(b"");
            memchr::memchr(b'=', first).is_some_and(|p| {
                p > 0 && first[..p].iter().all(|&b| b.is_ascii_graphic() && b != b'<' && b != b'{' && b != b'"')
            })
        };
        if mime == "application/x-www-form-urlencoded" || (mime.is_empty() && looks_form()) {
            let dropped = parse::urlencoded(body, self.cfg.max_targets, &mut |name, value, had_eq| {
                run.arg(Location::BodyName, Location::BodyValue, "body.", &name, &value, had_eq);
            });
            run.dropped(dropped);
        } else if mime == "multipart/form-data" || mime == "multipart/mixed" {
            let boundary = parse::header_param(ct, "boundary").unwrap_or("");
            let res = parse::multipart(body, boundary, self.cfg.max_targets, &mut |part| {
                let mut target = Vec::with_capacity(part.name.len() + 9);
                target.extend_from_slice(part.name);
                if !part.name.is_empty() {
                    run.value(Location::BodyName, scope::BNAME, "body.", part.name, part.name);
                }
                match part.filename {
                    Some(fname) => {
                        target.extend_from_slice(b".filename");
                        run.value(Location::Filename, scope::FILE | scope::BVAL, "body.", &target, fname);
                    }
                    None => run.value(Location::BodyValue, scope::BVAL, "body.", part.name, part.content),
                }
                let _ = part.headers;
            });
            match res {
                Ok(d) => run.dropped(d),
                Err(()) => run.malformed(body, truncated),
            }
        } else if mime == "application/json" || mime.ends_with("+json") || mime == "text/json" {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => {
                    let mut nodes = 0usize;
                    let mut name = String::new();
                    run.json(&v, &mut name, 0, &mut nodes);
                }
                Err(_) => run.malformed(body, truncated),
            }
        } else if mime == "application/xml" || mime == "text/xml" || mime.ends_with("+xml") {
            // declarations (DOCTYPE/ENTITY) are checked on the raw document
            let head = &body[..body.len().min(self.cfg.max_value_len)];
            run.value_classes(Location::Body, scope::BODY, "body", b"", head, Class::Xxe.bit());
            let res = parse::xml(body, self.cfg.max_targets, &mut |elem, attr, v| {
                let mut t = elem.to_vec();
                if let Some(a) = attr {
                    t.push(b'@');
                    t.extend_from_slice(a);
                }
                run.value(Location::BodyValue, scope::BVAL, "body.", &t, v);
            });
            match res {
                Ok(d) => run.dropped(d),
                Err(()) => run.malformed(body, truncated),
            }
        } else {
            run.raw(body);
        }
    }
}

impl Run<'_> {
    fn arg(
        &mut self,
        lname: Location,
        lvalue: Location,
        prefix: &'static str,
        name: &[u8],
        value: &[u8],
        had_eq: bool,
    ) {
        let (sname, svalue) =
            if prefix == "query." { (scope::QNAME, scope::QVAL) } else { (scope::BNAME, scope::BVAL) };
        if had_eq {
            if !name.is_empty() {
                self.value(lname, sname, prefix, name, name);
            }
            self.value(lvalue, svalue, prefix, name, value);
        } else {
            // argument without '=': both a name and a value
            self.value(lvalue, sname | svalue, prefix, b"", name);
        }
    }

    /// Requests for dot-files and dot-directories (other than `.well-known`) are probes for secrets.
    fn hidden_segment(&mut self, path: &[u8]) {
        let hit = path.split(|&b| b == b'/').find(|seg| {
            seg.len() >= 2
                && seg[0] == b'.'
                && (seg[1].is_ascii_alphanumeric() || seg[1] == b'_')
                && !seg.eq_ignore_ascii_case(b".well-known")
        });
        if let Some(seg) = hit {
            if self.insp.enabled_classes & Class::Protocol.bit() != 0 && !self.excluded(Class::Protocol, "path") {
                self.out.push(PayloadFinding {
                    rule: "protocol.hidden_file",
                    class: Class::Protocol,
                    paranoia: 1,
                    severity: Severity::Critical,
                    location: Location::Path,
                    target: "path".to_string(),
                    matched: evidence(seg),
                    decoded: evidence(path),
                    shadow: self.insp.detect_classes & Class::Protocol.bit() != 0,
                });
            }
        }
    }

    fn raw(&mut self, body: &[u8]) {
        let chunk = self.insp.cfg.max_value_len;

        for (i, c) in body.chunks(chunk).enumerate() {
            let name = if i == 0 { String::new() } else { format!("[{i}]") };
            self.value(Location::Body, scope::BODY, "body", name.as_bytes(), c);
        }
    }

    fn malformed(&mut self, body: &[u8], truncated: bool) {
        if !truncated && self.insp.cfg.on_malformed_body == Malformed::Finding {
            self.protocol("protocol.malformed_body", Severity::Notice, "body", b"malformed");
        }
        self.raw(body);
    }

    fn dropped(&mut self, n: usize) {
        if n > 0 {
            self.out.targets_dropped = self.out.targets_dropped.saturating_add(n as u32);
            self.protocol("protocol.too_many_targets", Severity::Notice, "request", b"targets over limit");
        }
    }

    fn protocol(&mut self, rule: &'static str, sev: Severity, target: &str, matched: &[u8]) {
        if self.insp.enabled_classes & Class::Protocol.bit() == 0 || self.excluded(Class::Protocol, target) {
            return;
        }
        self.out.push(PayloadFinding {
            rule,
            class: Class::Protocol,
            paranoia: 1,
            severity: sev,
            location: Location::Body,
            target: target.to_string(),
            matched: evidence(matched),
            decoded: String::new(),
            shadow: self.insp.detect_classes & Class::Protocol.bit() != 0,
        });
    }

    fn json(&mut self, v: &serde_json::Value, name: &mut String, depth: usize, nodes: &mut usize) {
        use serde_json::Value;
        *nodes += 1;
        if *nodes > self.insp.cfg.json_max_nodes || depth > self.insp.cfg.json_max_depth {
            self.dropped(1);
            return;
        }
        match v {
            Value::String(s) => {
                let n = name.clone();
                self.value(Location::BodyValue, scope::BVAL, "body.", n.as_bytes(), s.as_bytes());
            }
            Value::Array(items) => {
                let base = name.len();
                for (i, item) in items.iter().enumerate() {
                    name.push_str(&format!("[{i}]"));
                    self.json(item, name, depth + 1, nodes);
                    name.truncate(base);
                    if *nodes > self.insp.cfg.json_max_nodes {
                        break;
                    }
                }
            }
            Value::Object(map) => {
                let base = name.len();
                for (k, item) in map {
                    if base > 0 {
                        name.push('.');
                    }
                    name.push_str(k);
                    let n = name.clone();
                    self.value(Location::BodyName, scope::BNAME, "body.", n.as_bytes(), k.as_bytes());
                    self.json(item, name, depth + 1, nodes);
                    name.truncate(base);
                    if *nodes > self.insp.cfg.json_max_nodes {
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    fn value(&mut self, loc: Location, sc: u16, prefix: &'static str, name: &[u8], value: &[u8]) {
        self.value_classes(loc, sc, prefix, name, value, u32::MAX);
    }

    fn value_classes(&mut self, loc: Location, sc: u16, prefix: &'static str, name: &[u8], value: &[u8], classes: u32) {
        if value.is_empty() {
            return;
        }
        let cfg = &self.insp.cfg;
        if self.out.targets_inspected as usize >= cfg.max_targets {
            self.dropped(1);
            return;
        }
        self.out.targets_inspected += 1;
        let value = &value[..value.len().min(cfg.max_value_len)];
        let ctx = ScanCtx { scope: sc, classes: self.insp.enabled_classes & classes, max_pl: self.insp.max_pl };
        let mut hits: Vec<(crate::matcher::RuleMeta, String, String)> = Vec::new();
        self.insp.matcher.scan(value, ctx, &mut |h: Hit<'_>| {
            if hits.len() < 16 && !hits.iter().any(|(m, _, _)| m.id == h.meta.id) {
                hits.push((h.meta, evidence(h.matched), evidence(h.seen)));
            }
        });
        if hits.is_empty() {
            return;
        }
        let target = target_name(prefix, name);
        for (meta, matched, decoded) in hits {
            if self.excluded(meta.class, &target) {
                continue;
            }
            let shadow = meta.pl > cfg.paranoia || self.insp.detect_classes & meta.class.bit() != 0;
            self.out.push(PayloadFinding {
                rule: meta.id,
                class: meta.class,
                paranoia: meta.pl,
                severity: meta.sev,
                location: loc,
                target: target.clone(),
                matched,
                decoded,
                shadow,
            });
        }
    }

    fn excluded(&self, class: Class, target: &str) -> bool {
        self.insp.cfg.exclusions.iter().any(|ex| {
            self.path.starts_with(&ex.path_prefix)
                && (ex.detectors.is_empty() || ex.detectors.iter().any(|d| d == class.as_str()))
                && (ex.targets.is_empty() || ex.targets.iter().any(|t| t.eq_ignore_ascii_case(target)))
        })
    }
}

fn target_name(prefix: &str, name: &[u8]) -> String {
    let n: Cow<'_, str> = String::from_utf8_lossy(name);
    let mut s = String::with_capacity(prefix.len() + n.len().min(MAX_NAME_CHARS));
    if n.is_empty() {
        s.push_str(prefix.trim_end_matches('.'));
        return s;
    }
    s.push_str(prefix);
    for (i, c) in n.chars().enumerate() {
        if i >= MAX_NAME_CHARS {
            s.push('…');
            break;
        }
        s.push(if c.is_control() { '?' } else { c });
    }
    s
}
