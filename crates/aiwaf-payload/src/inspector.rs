//! The inspector: turns a request into targets (with limits), runs the matchers on each and records
//! findings in a [`Report`], applying paranoia levels, detector modes and exclusions.

use std::borrow::Cow;

use std::collections::BTreeMap;

use crate::config::{DetectorMode, Malformed, OverLimit, Overlay, PayloadConfig};
use crate::matcher::{Hit, Matcher, ScanCtx};
use crate::parse;
use crate::profile::{self, ArgShape, Deviation, Profile, RouteRules, Shape};
use crate::report::{Class, Location, PayloadFinding, Report, Severity, evidence};
use crate::rules::scope;

/// Headers inspected by default (lower-case). `Cookie` is parsed separately. Since every header value now
/// goes through the cheap prefilter, this list only documents the historical defaults.
const DEFAULT_HEADERS: &[&str] =
    &["user-agent", "referer", "x-forwarded-host", "x-filename", "x_filename", "x-file-name"];
/// What a request header is, for inspection purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderKind {
    Cookie,
    UserAgent,
    /// Upload file name headers (`X-Filename` and spellings).
    Filename,
    ContentLength,
    TransferEncoding,
    /// `Range` / `Request-Range`.
    Range,
    /// `Authorization` / `Proxy-Authorization`: credentials, not payload.
    Credentials,
    ContentType,
    /// Comma-separated token lists (content negotiation, caching, fetch metadata, `Host`): scanned only
    /// when the value leaves that grammar ([`plain_list_value`]).
    List,
    /// Request headers a client has no business sending: hop-by-hop proxies, WebDAV locks, method overrides.
    Restricted,
    Other,
}

fn header_kind(name: &str) -> HeaderKind {
    let n = name.as_bytes();
    if n.len() > 32 {
        return HeaderKind::Other;
    }
    // names from an HTTP library come lower-case already; others are lowered into a copy
    if !n.iter().fold(false, |up, b| up | b.is_ascii_uppercase()) {
        return lower_header_kind(n);
    }
    let mut buf = [0u8; 32];
    let l = &mut buf[..n.len()];
    l.copy_from_slice(n);
    l.make_ascii_lowercase();
    lower_header_kind(l)
}

fn lower_header_kind(l: &[u8]) -> HeaderKind {
    match l {
        b"cookie" => HeaderKind::Cookie,
        b"user-agent" => HeaderKind::UserAgent,
        b"x-filename" | b"x_filename" | b"x.filename" | b"x-file-name" | b"x_file_name" => HeaderKind::Filename,
        b"content-length" => HeaderKind::ContentLength,
        b"transfer-encoding" => HeaderKind::TransferEncoding,
        b"range" | b"request-range" => HeaderKind::Range,
        b"authorization" | b"proxy-authorization" => HeaderKind::Credentials,
        b"content-type" => HeaderKind::ContentType,
        b"accept"
        | b"accept-encoding"
        | b"accept-language"
        | b"accept-charset"
        | b"host"
        | b"connection"
        | b"cache-control"
        | b"pragma"
        | b"upgrade-insecure-requests"
        | b"dnt"
        | b"te"
        | b"priority"
        | b"sec-fetch-site"
        | b"sec-fetch-mode"
        | b"sec-fetch-dest"
        | b"sec-fetch-user"
        | b"sec-ch-ua-mobile"
        | b"keep-alive"
        | b"origin"
        | b"x-forwarded-for"
        | b"x-forwarded-proto"
        | b"x-forwarded-port"
        | b"x-real-ip"
        | b"forwarded"
        | b"cf-connecting-ip"
        | b"true-client-ip"
        | b"x-client-ip"
        | b"x-request-id"
        | b"traceparent" => HeaderKind::List,
        b"proxy" | b"lock-token" | b"if" | b"x-http-method-override" | b"x-http-method" | b"x-method-override" => {
            HeaderKind::Restricted
        }
        _ => HeaderKind::Other,
    }
}

/// Byte classes of header values and paths: what every value is checked for, found with one
/// table lookup per byte (their union over a value, [`classes`]) instead of a pass per check.
/// (`prefilter::BYTE_CLASS` does the same for the matchers' shape checks, on decoded text —
/// another input at another point, so another table.)
mod class {
    /// A control character other than tab, or DEL.
    pub(super) const CTRL: u8 = 1;
    /// Outside the plain token-list alphabet (letters, digits, blank and `,/=*.+-_:?;`).
    pub(super) const NOT_LIST: u8 = 2;
    /// A blank.
    pub(super) const SPACE: u8 = 4;
    /// `;`.
    pub(super) const SEMI: u8 = 8;
    /// Outside the plain-path alphabet (letters, digits and `/-_`).
    pub(super) const NOT_PLAIN_PATH: u8 = 16;

    pub(super) static TABLE: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            let alnum = b.is_ascii_alphanumeric();
            let mut c = 0;
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                c |= CTRL;
            }
            if !(alnum
                || matches!(b, b' ' | b',' | b'/' | b'=' | b'*' | b'.' | b'+' | b'-' | b'_' | b':' | b'?' | b';'))
            {
                c |= NOT_LIST;
            }
            if b == b' ' {
                c |= SPACE;
            }
            if b == b';' {
                c |= SEMI;
            }
            if !(alnum || matches!(b, b'/' | b'-' | b'_')) {
                c |= NOT_PLAIN_PATH;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
}

/// The union of the [`class`]es of `v`'s bytes.
fn classes(v: &[u8]) -> u8 {
    v.iter().fold(0, |acc, &b| acc | class::TABLE[b as usize])
}

/// `token[/token][;param=value]*[, ...]` with tokens of letters, digits and `*.+-_:`; a blank may only
/// follow `,` or `;`. Such a value has no room for a payload (no quotes, brackets, operators or phrases).
#[cfg(test)]
fn plain_list_value(v: &[u8]) -> bool {
    plain_list_with(v, classes(v))
}

/// [`plain_list_value`] given the value's [`classes`].
fn plain_list_with(v: &[u8], cls: u8) -> bool {
    if v.len() > 256 || cls & class::NOT_LIST != 0 {
        return false;
    }
    // a blank only after `,`, `;` or a blank (so never first)
    if cls & class::SPACE != 0
        && v.iter()
            .enumerate()
            .any(|(i, &b)| b == b' ' && !matches!(if i == 0 { b',' } else { v[i - 1] }, b',' | b';' | b' '))
    {
        return false;
    }
    // `;` only introduces parameters (`;q=0.8`), never a second command
    cls & class::SEMI == 0
        || v.split(|&b| b == b';').skip(1).all(|p| {
            let p = p.trim_ascii_start();
            let end = p.iter().position(|&b| b == b',').unwrap_or(p.len());
            memchr::memchr(b'=', &p[..end]).is_some_and(|e| e > 0 && e <= 16)
        })
}

/// A path of letters, digits, `/`, `-` and `_` with no segment starting with `_` (FrontPage and
/// other probes): nothing in it for a matcher, a fragment, a control character or an escape.
fn plain_path(path: &[u8]) -> bool {
    if path.len() > 1024 || classes(path) & class::NOT_PLAIN_PATH != 0 {
        return false;
    }
    memchr::memmem::find(path, b"/_").is_none()
}

const CHARSETS: &[&str] = &[
    "utf-8",
    "utf8",
    "iso-8859-1",
    "iso-8859-15",
    "iso-8859-2",
    "latin1",
    "us-ascii",
    "ascii",
    "windows-1252",
    "windows-1251",
    "windows-1250",
    "utf-16",
    "shift_jis",
    "euc-jp",
    "euc-kr",
    "gb2312",
    "gbk",
    "gb18030",
    "big5",
    "koi8-r",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The checks as they were written before the byte-class table: the table must agree.
    fn old_plain_list(v: &[u8]) -> bool {
        if v.len() > 256 {
            return false;
        }
        let mut prev = b',';
        for &b in v {
            let ok = match b {
                b' ' => matches!(prev, b',' | b';' | b' '),
                b',' | b'/' | b'=' | b'*' | b'.' | b'+' | b'-' | b'_' | b':' | b'?' | b';' => true,
                c => c.is_ascii_alphanumeric(),
            };
            if !ok {
                return false;
            }
            prev = b;
        }
        v.split(|&b| b == b';').skip(1).all(|p| {
            let p = p.trim_ascii_start();
            let end = p.iter().position(|&b| b == b',').unwrap_or(p.len());
            memchr::memchr(b'=', &p[..end]).is_some_and(|e| e > 0 && e <= 16)
        })
    }

    fn old_plain_path(path: &[u8]) -> bool {
        path.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_')
            && path.len() <= 1024
            && memchr::memmem::find(path, b"/_").is_none()
    }

    #[test]
    fn byte_classes_agree_with_the_plain_checks() {
        for b in 0..=255u8 {
            let ctrl = ((b < 0x20) & (b != b'\t')) | (b == 0x7f);
            assert_eq!(classes(&[b]) & class::CTRL != 0, ctrl, "{b}");
            assert_eq!(plain_list_value(&[b]), old_plain_list(&[b]), "{b}");
            assert_eq!(plain_list_value(&[b'a', b]), old_plain_list(&[b'a', b]), "{b}");
            assert_eq!(plain_path(&[b'/', b]), old_plain_path(&[b'/', b]), "{b}");
        }
        for v in
            [&b" a"[..], b"a, b", b"a ,b", b"a;q=1", b"a; q=1, b", b"a;;", b"a;=1", b"a;qqqqqqqqqqqqqqqqqq=1", b"a  b"]
        {
            assert_eq!(plain_list_value(v), old_plain_list(v), "{}", String::from_utf8_lossy(v));
        }
        for p in [&b"/a/_b"[..], b"/_", b"/a_b/", b"/a-b/c", b"", b"/a b"] {
            assert_eq!(plain_path(p), old_plain_path(p), "{}", String::from_utf8_lossy(p));
        }
        assert!(!plain_path(&vec![b'a'; 1025]) && plain_path(&vec![b'a'; 1024]));
    }

    proptest::proptest! {
        #[test]
        fn plain_checks_match_the_old_ones(v in proptest::collection::vec(proptest::sample::select(b" ,;=/_-aZ9.%q\t\x7f\x01".to_vec()), 0..24)) {
            proptest::prop_assert_eq!(plain_list_value(&v), old_plain_list(&v));
            proptest::prop_assert_eq!(plain_path(&v), old_plain_path(&v));
            let ctrl = v.iter().fold(false, |acc, &b| acc | ((b < 0x20) & (b != b'\t')) | (b == 0x7f));
            proptest::prop_assert_eq!(classes(&v) & class::CTRL != 0, ctrl);
        }
    }

    #[test]
    fn list_grammar() {
        for v in [
            &b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"[..],
            b"gzip, deflate, br",
            b"en-US,en;q=0.5",
            b"shop.example:8080",
            b"keep-alive",
            b"no-cache, no-store, must-revalidate",
            b"u=0, i",
        ] {
            assert!(plain_list_value(v), "{}", String::from_utf8_lossy(v));
        }
        for v in [
            &b"text/html; union select 1"[..],
            b"1;cat /etc/passwd",
            b"x' or '1'='1",
            b"<script>",
            b"${jndi:ldap://x/a}",
            b"a;id",
            b"%{(#a=1)}",
        ] {
            assert!(!plain_list_value(v), "{}", String::from_utf8_lossy(v));
        }
    }
}

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
    /// Distinguishes inspectors (rule sets) in the per-thread memo of clean values.
    id: u64,
    /// Some header of `headers` is of a kind otherwise skipped (a list, a length, credentials…):
    /// only then is a skipped header looked up in `headers`.
    named_skippable: bool,
}

/// Header and cookie values come back unchanged request after request (a browser's
/// `User-Agent`, `Accept-Language`, a session cookie), and so do most argument names and many
/// values (`page=2`, `sort=price`, `utm_source=newsletter`); scanning them is most of the cost
/// of an ordinary request. A value in which the matcher found nothing is remembered per thread
/// in direct-mapped slots, with the inspector, scope, classes and paranoia it was scanned under,
/// and not scanned again. A slot is found by a fast hash but matched by comparing the bytes, so
/// no hash collision can pass a payload off as a remembered value; a flood of distinct values
/// only evicts slots. Whole bodies, uploaded files and values longer than [`MAX_LEN`] are not
/// remembered (rarely repeated; bounded memory: [`SLOTS`] × [`MAX_LEN`] bytes per thread).
mod clean_memo {
    use std::cell::RefCell;
    use std::hash::{BuildHasher, Hasher};

    use crate::rules::scope;

    /// The scopes whose clean values are remembered.
    pub(super) const SCOPES: u16 = scope::ALL & !(scope::BODY | scope::FILE);
    /// Slots per thread.
    pub(super) const SLOTS: usize = 1024;
    /// The longest value remembered.
    pub(super) const MAX_LEN: usize = 256;

    /// A value scanned under a context: the inspector and the scan's scope, classes and paranoia.
    pub(super) struct Key<'v> {
        inspector: u64,
        ctx: u64,
        value: &'v [u8],
        hash: u64,
    }

    #[derive(Default)]
    struct Slot {
        inspector: u64,
        ctx: u64,
        /// Empty: a free slot (empty values are never scanned).
        value: Vec<u8>,
    }

    thread_local! {
        static CLEAN: RefCell<Box<[Slot]>> = RefCell::new((0..SLOTS).map(|_| Slot::default()).collect());
    }

    /// Only picks a slot: a match is decided by comparing, so the hash needs no secret seed.
    const HASHER: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6d65_6d6f);

    /// The key of `value` (non-empty), or `None` when it is too long to remember.
    pub(super) fn key(inspector: u64, scope: u16, classes: u32, max_pl: u8, value: &[u8]) -> Option<Key<'_>> {
        if value.is_empty() || value.len() > MAX_LEN {
            return None;
        }
        let ctx = u64::from(scope) | u64::from(classes) << 16 | u64::from(max_pl) << 48;
        let mut h = HASHER.build_hasher();
        h.write_u64(inspector ^ ctx.rotate_left(32));
        h.write(value);
        let hash = h.finish();
        Some(Key { inspector, ctx, value, hash })
    }

    fn index(hash: u64) -> usize {
        (hash >> 7) as usize % SLOTS
    }

    pub(super) fn contains(k: &Key<'_>) -> bool {
        CLEAN.with(|c| {
            let slots = c.borrow();
            let s = &slots[index(k.hash)];
            s.inspector == k.inspector && s.ctx == k.ctx && s.value == k.value
        })
    }

    pub(super) fn insert(k: &Key<'_>) {
        CLEAN.with(|c| {
            let mut slots = c.borrow_mut();
            let s = &mut slots[index(k.hash)];
            s.inspector = k.inspector;
            s.ctx = k.ctx;
            s.value.clear();
            s.value.extend_from_slice(k.value);
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Two values whose hashes collide (forced here) share a slot, never a verdict.
        #[test]
        fn a_colliding_hash_is_not_a_match() {
            let clean = key(7, scope::QVAL, 1, 1, b"page").expect("short");
            insert(&clean);
            assert!(contains(&clean));
            let evil = Key { hash: clean.hash, ..key(7, scope::QVAL, 1, 1, b"' or 1=1 --").expect("short") };
            assert!(!contains(&evil));
            // the same bytes under another scope, classes, paranoia or inspector
            for other in [
                key(7, scope::HEADER, 1, 1, b"page"),
                key(7, scope::QVAL, 3, 1, b"page"),
                key(7, scope::QVAL, 1, 2, b"page"),
                key(8, scope::QVAL, 1, 1, b"page"),
            ] {
                let other = Key { hash: clean.hash, ..other.expect("short") };
                assert!(!contains(&other));
            }
            insert(&evil);
            assert!(!contains(&clean), "evicted");
            assert!(key(7, scope::QVAL, 1, 1, &[b'a'; MAX_LEN + 1]).is_none());
            assert!(key(7, scope::QVAL, 1, 1, b"").is_none());
        }
    }
}

static NEXT_INSPECTOR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

struct Run<'a> {
    insp: &'a Inspector,
    path: &'a str,
    out: &'a mut Report,
    overlay: &'a Overlay,
    /// Classes that run (configuration, then the overlay's modes).
    enabled: u32,
    /// Classes that only record (shadow).
    detect: u32,
    /// The learned profile: this route's enforced rules and the shape being collected.
    prof: Option<ProfRun<'a>>,
}

struct ProfRun<'a> {
    profile: &'a Profile,
    rules: Option<&'a RouteRules>,
    shape: &'a mut Shape,
}

static NO_OVERLAY: Overlay = Overlay { exclusions: Vec::new(), detectors: BTreeMap::new() };

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
        let id = NEXT_INSPECTOR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let named_skippable = headers.iter().any(|h| {
            matches!(
                header_kind(h),
                HeaderKind::ContentLength
                    | HeaderKind::TransferEncoding
                    | HeaderKind::Range
                    | HeaderKind::Credentials
                    | HeaderKind::List
                    | HeaderKind::ContentType
            )
        });
        Ok(Inspector {
            cfg,
            matcher,
            headers,
            enabled_classes: enabled,
            detect_classes: detect,
            max_pl,
            id,
            named_skippable,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PayloadConfig {
        &self.cfg
    }

    fn run<'a>(&'a self, path: &'a str, overlay: &'a Overlay, out: &'a mut Report) -> Run<'a> {
        let (mut enabled, mut detect) = (self.enabled_classes, self.detect_classes);
        for (id, mode) in &overlay.detectors {
            let Some(c) = Class::from_id(id) else { continue };
            match mode {
                DetectorMode::Block => {
                    enabled |= c.bit();
                    detect &= !c.bit();
                }
                DetectorMode::Detect => {
                    enabled |= c.bit();
                    detect |= c.bit();
                }
                DetectorMode::Off => enabled &= !c.bit(),
            }
        }
        Run { insp: self, path, out, overlay, enabled, detect, prof: None }
    }

    /// The profile part of a run: the route's rules (from `rules`) and the shape to fill;
    /// `None` when the profile is off.
    fn prof_run<'a>(
        &self,
        enabled: u32,
        raw_path: &str,
        profile: Option<(&'a Profile, &'a mut Shape)>,
        rules: &'a Option<arc_swap::Guard<std::sync::Arc<profile::Rules>>>,
    ) -> Option<ProfRun<'a>> {
        let (p, shape) = profile?;
        if !p.config().enabled || enabled & Class::Profile.bit() == 0 {
            return None;
        }
        if shape.route.is_empty() {
            shape.route = profile::route_key(raw_path);
        }
        let rules = rules.as_ref().and_then(|g| {
            // the guard lives as long as the run; the route borrowed from it too
            let r: &'a profile::Rules = g;
            r.route(&shape.route)
        });
        if rules.is_none() {
            shape.settled = false;
        }
        Some(ProfRun { profile: p, rules, shape })
    }

    /// Request-line and headers phase: path, query arguments, cookies, selected headers.
    pub fn inspect_head(&self, req: &HeadParts<'_>, out: &mut Report) {
        self.inspect_head_with(req, &NO_OVERLAY, out);
    }

    /// [`Inspector::inspect_head`] with run-time changes applied.
    pub fn inspect_head_with(&self, req: &HeadParts<'_>, overlay: &Overlay, out: &mut Report) {
        self.inspect_head_profiled(req, overlay, None, out);
    }

    /// [`Inspector::inspect_head_with`] that also checks the request against the learned
    /// `profile` and collects its `shape` (for [`Profile::learn`] once the answer is known).
    pub fn inspect_head_profiled(
        &self,
        req: &HeadParts<'_>,
        overlay: &Overlay,
        profile: Option<(&Profile, &mut Shape)>,
        out: &mut Report,
    ) {
        if !self.cfg.enabled {
            return;
        }
        let guard = profile.as_ref().map(|(p, _)| p.rules());
        let mut run = self.run(req.path, overlay, out);
        run.prof = self.prof_run(run.enabled, req.path, profile, &guard);
        run.profile_method(req.method);
        let path = req.path.as_bytes();
        // a path of plain words is done here; one with other characters, or a segment that starts
        // with `_` (FrontPage and other probes), is inspected
        let plain = plain_path(path);
        if !plain {
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
        let mut has_cl = false;
        let mut has_te = false;
        let mut body_declared = false;
        for &(name, value) in req.headers {
            let kind = header_kind(name);
            let cls = classes(value);
            run.header_protocol(name, value, kind, cls & class::CTRL != 0);
            match kind {
                HeaderKind::Cookie => {
                    parse::cookies(value, &mut |n, v| {
                        if !n.is_empty() {
                            if [&b"$version"[..], b"$path", b"$domain"].iter().any(|k| n.eq_ignore_ascii_case(k)) {
                                run.protocol_at(
                                    "protocol.cookie_v1",
                                    Severity::Critical,
                                    Location::Cookie,
                                    "cookie",
                                    n,
                                );
                            }
                            run.value(Location::Cookie, scope::COOKIE, "cookie.", n, n);
                        }
                        run.value(Location::Cookie, scope::COOKIE, "cookie.", n, v);
                    });
                    continue;
                }
                HeaderKind::ContentLength => {
                    has_cl = true;
                    body_declared |= value.trim_ascii() != b"0";
                }
                HeaderKind::TransferEncoding => has_te = true,
                _ => {}
            }
            let skip = match kind {
                HeaderKind::ContentLength
                | HeaderKind::TransferEncoding
                | HeaderKind::Range
                | HeaderKind::Credentials => true,
                HeaderKind::List | HeaderKind::ContentType => plain_list_with(value, cls),
                _ => false,
            };
            // headers named in the configuration are always inspected
            if skip && !(self.named_skippable && self.headers.iter().any(|h| name.eq_ignore_ascii_case(h))) {
                continue;
            }
            let sc = match kind {
                HeaderKind::UserAgent => scope::HEADER | scope::UA,
                HeaderKind::Filename => scope::HEADER | scope::FILE,
                _ => scope::HEADER,
            };
            // the target name is lower-cased when there is a finding to name
            run.value(Location::Header, sc, "header.", name.as_bytes(), value);
        }
        // a GET or HEAD with a body: unusual, and what proxies and applications read can differ;
        // recorded (the body itself is inspected like any other), a block only with more
        if (body_declared || has_te) && matches!(req.method, "GET" | "HEAD") {
            run.protocol_at(
                "protocol.body_on_get",
                Severity::Error,
                Location::Header,
                "header.content-length",
                req.method.as_bytes(),
            );
        }
        if has_cl && has_te {
            run.protocol_class(
                "crlf.request_smuggling",
                Class::Crlf,
                Severity::Critical,
                Location::Header,
                "header.transfer-encoding",
                b"Content-Length with Transfer-Encoding",
            );
        }
        run.line_protocol(req, plain);
    }

    /// Body phase. `truncated` = the body was longer than what was handed over.
    pub fn inspect_body(&self, path: &str, content_type: Option<&str>, body: &[u8], truncated: bool, out: &mut Report) {
        self.inspect_body_with(path, content_type, body, truncated, &NO_OVERLAY, out);
    }

    /// [`Inspector::inspect_body`] with run-time changes applied.
    pub fn inspect_body_with(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        truncated: bool,
        overlay: &Overlay,
        out: &mut Report,
    ) {
        self.inspect_body_profiled(path, content_type, body, truncated, overlay, None, out);
    }

    /// [`Inspector::inspect_body_with`] with the learned profile (see
    /// [`Inspector::inspect_head_profiled`]; the same `shape` continues).
    #[allow(clippy::too_many_arguments)] // The facts of one body.
    pub fn inspect_body_profiled(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        truncated: bool,
        overlay: &Overlay,
        profile: Option<(&Profile, &mut Shape)>,
        out: &mut Report,
    ) {
        if !self.cfg.enabled || body.is_empty() {
            return;
        }
        let truncated = truncated || body.len() > self.cfg.max_body_bytes;
        let body = &body[..body.len().min(self.cfg.max_body_bytes)];
        let guard = profile.as_ref().map(|(p, _)| p.rules());
        let mut run = self.run(path, overlay, out);
        run.prof = self.prof_run(run.enabled, path, profile, &guard);
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
        // without a Content-Type the body is read as what it looks like: a form (`a=b`, or text that
        // is URL-encoded: no raw blanks, some `%XX` or `+`), or JSON; an application may parse it so
        let looks_encoded = || {
            body.iter().all(|b| b.is_ascii_graphic())
                && (memchr::memchr(b'+', body).is_some()
                    || memchr::memchr_iter(b'%', body)
                        .any(|i| body.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))))
        };
        let looks_json = || {
            matches!(body.trim_ascii_start().first(), Some(b'{' | b'['))
                && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        };
        let mime = if mime.is_empty() && looks_json() { "application/json".to_string() } else { mime };
        if mime == "application/x-www-form-urlencoded" || (mime.is_empty() && (looks_form() || looks_encoded())) {
            if invalid_pct(body) {
                run.protocol_at("protocol.invalid_url_encoding", Severity::Critical, Location::Body, "body", body);
            }
            let dropped = parse::urlencoded(body, self.cfg.max_targets, &mut |name, value, had_eq| {
                run.arg(Location::BodyName, Location::BodyValue, "body.", &name, &value, had_eq);
            });
            run.dropped(dropped);
        } else if mime == "multipart/form-data" || mime == "multipart/mixed" {
            let boundary = parse::header_param(ct, "boundary").unwrap_or("");
            let res = parse::multipart(body, boundary, self.cfg.max_targets, &mut |part| {
                run.multipart_part(&part);
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
        // HTTP method override: frameworks honour `_method` in a POSTed form for PUT, PATCH and
        // DELETE; a method named in a query string (a link, a GET) or any other method named in a
        // form bypasses method rules
        const METHODS: [&[u8]; 19] = [
            b"get",
            b"post",
            b"put",
            b"patch",
            b"delete",
            b"head",
            b"options",
            b"trace",
            b"connect",
            b"propfind",
            b"proppatch",
            b"mkcol",
            b"copy",
            b"move",
            b"lock",
            b"unlock",
            b"search",
            b"report",
            b"track",
        ];
        let is = |m: &[u8]| value.trim_ascii().eq_ignore_ascii_case(m);
        if had_eq
            && name.eq_ignore_ascii_case(b"_method")
            && METHODS.iter().any(|m| is(m))
            && (prefix == "query." || ![&b"put"[..], b"patch", b"delete", b"post"].iter().any(|m| is(m)))
        {
            self.protocol_at("protocol.method_override", Severity::Critical, lvalue, "_method", value);
        }
        if had_eq {
            if !name.is_empty() {
                self.value(lname, sname, prefix, name, name);
            }
            self.value(lvalue, svalue, prefix, name, value);
            self.arg_shape(lname, lvalue, prefix, name, value);
            self.profile_arg(lvalue, prefix, name, value);
        } else {
            // argument without '=': both a name and a value
            self.value(lvalue, sname | svalue, prefix, b"", name);
            self.profile_arg(lname, prefix, name, b"");
        }
    }

    /// The method against the route's learned methods.
    fn profile_method(&mut self, method: &str) {
        let Some(p) = self.prof.as_mut() else { return };
        p.shape.method = profile::method_bit_of(method);
        let Some(r) = p.rules else { return };
        // settled until an argument says otherwise: nothing in it the route does not enforce
        p.shape.settled = r.names_closed && profile::method_allowed(r, method);
        if profile::method_allowed(r, method) {
            return;
        }
        p.shape.violations.push(Deviation::Method { bit: p.shape.method }.vote(&p.shape.route, ""));
        self.finding(
            "profile.method",
            Class::Profile,
            Severity::Error,
            Location::Path,
            "method",
            method.as_bytes(),
            String::from("a method this route was never seen with"),
        );
    }

    /// One argument against the route's learned arguments; collected for learning.
    fn profile_arg(&mut self, loc: Location, prefix: &'static str, name: &[u8], value: &[u8]) {
        let Some(p) = self.prof.as_mut() else { return };
        let start = p.shape.names.len();
        profile::param_key_into(name, &mut p.shape.names);
        let key = &p.shape.names[start..];
        if key.is_empty() || p.profile.ignored(key) {
            p.shape.names.truncate(start);
            return;
        }
        let mask = profile::class_mask(value);
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        let dev = p.rules.and_then(|r| profile::check_arg(r, key, mask, len));
        if dev.is_some() || p.rules.is_none_or(|r| r.params.get(key).is_none_or(|x| x.mask == 0 || len > x.max_len)) {
            p.shape.settled = false;
        }
        if let Some((dev, _)) = &dev {
            p.shape.violations.push(dev.vote(&p.shape.route, key));
        }
        if p.shape.args.len() < 256 {
            let end = p.shape.names.len();
            p.shape.args.push(ArgShape { start: start as u32, end: end as u32, mask, len });
        } else {
            p.shape.names.truncate(start);
        }
        let Some((dev, sev)) = dev else { return };
        let (rule, why) = match dev {
            Deviation::Method { .. } => ("profile.method", String::new()),
            Deviation::UnknownName => ("profile.unknown_param", "an argument this route never had".to_string()),
            Deviation::Chars { new, learned } => (
                "profile.value_chars",
                format!(
                    "new characters: {}; learned: {}",
                    profile::describe_mask(new),
                    profile::describe_mask(learned)
                ),
            ),
            Deviation::Length { learned, .. } => {
                ("profile.value_length", format!("{len} bytes; longest learned: {learned}"))
            }
        };
        let target = target_name(prefix, name);
        let shown = if matches!(rule, "profile.unknown_param") { name } else { value };
        self.finding(rule, Class::Profile, sev, loc, &target, shown, why);
    }

    /// Multipart smuggling: part names and file names with characters that make parsers disagree
    /// (`;`, `=`, a backslash that is not a Windows path, a quote), and part charsets an
    /// application does not decode the way the WAF does (UTF-7 and friends).
    fn multipart_part(&mut self, part: &parse::Part<'_>) {
        let odd = |v: &[u8], file: bool| {
            let v = if file && v.len() > 2 && v[1] == b':' && v[0].is_ascii_alphabetic() { &v[2..] } else { v };
            v.iter().enumerate().any(|(i, &b)| match b {
                b'=' | b'"' => true,
                b'\\' => !file,
                // `;` that does not end an HTML entity (`&amp;`, `&eacute;`)
                b';' => {
                    let head = &v[..i];
                    !head.iter().rposition(|&c| c == b'&').is_some_and(|a| {
                        i - a > 1 && i - a <= 10 && head[a + 1..].iter().all(u8::is_ascii_alphanumeric)
                    })
                }
                _ => false,
            })
        };
        if odd(part.name, false) || part.filename.is_some_and(|f| odd(f, true)) {
            let shown = part.filename.filter(|f| odd(f, true)).unwrap_or(part.name);
            self.protocol_at("protocol.multipart_name", Severity::Critical, Location::Filename, "body", shown);
        }
        for line in part.headers.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            let Some(colon) = memchr::memchr(b':', line) else { continue };
            if !line[..colon].trim_ascii().eq_ignore_ascii_case(b"content-type") {
                continue;
            }
            let v = String::from_utf8_lossy(&line[colon + 1..]).to_ascii_lowercase();
            if let Some(cs) = parse::header_param(&v, "charset") {
                let cs = cs.trim_matches(|c| c == '"' || c == '\'' || c == ' ');
                if !["utf-8", "utf8", "iso-8859-1", "iso-8859-15", "windows-1252", "us-ascii", "ascii"].contains(&cs) {
                    self.protocol_at(
                        "protocol.multipart_charset",
                        Severity::Critical,
                        Location::Body,
                        "body",
                        cs.as_bytes(),
                    );
                }
            }
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
        if let Some(seg) = hit
            && self.enabled & Class::Protocol.bit() != 0
            && !self.excluded(Class::Protocol, "path")
        {
            self.out.push(PayloadFinding {
                rule: "protocol.hidden_file",
                class: Class::Protocol,
                paranoia: 1,
                severity: Severity::Critical,
                location: Location::Path,
                target: "path".to_string(),
                matched: evidence(seg),
                decoded: evidence(path),
                shadow: self.detect & Class::Protocol.bit() != 0,
            });
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

    fn protocol_at(&mut self, rule: &'static str, sev: Severity, loc: Location, target: &str, matched: &[u8]) {
        self.protocol_class(rule, Class::Protocol, sev, loc, target, matched);
    }

    fn protocol_class(
        &mut self,
        rule: &'static str,
        class: Class,
        sev: Severity,
        loc: Location,
        target: &str,
        matched: &[u8],
    ) {
        self.finding(rule, class, sev, loc, target, matched, String::new());
    }

    /// A paranoia-1 finding of a check outside the rule set (protocol checks, the profile),
    /// unless its class is off or excluded for the target.
    #[allow(clippy::too_many_arguments)] // The facts of one finding.
    fn finding(
        &mut self,
        rule: &'static str,
        class: Class,
        sev: Severity,
        loc: Location,
        target: &str,
        matched: &[u8],
        decoded: String,
    ) {
        if self.enabled & class.bit() == 0 || self.excluded(class, target) {
            return;
        }
        self.out.push(PayloadFinding {
            rule,
            class,
            paranoia: 1,
            severity: sev,
            location: loc,
            target: target.to_string(),
            matched: evidence(matched),
            decoded,
            shadow: self.detect & class.bit() != 0,
        });
    }

    /// Protocol checks on the request line: method, raw path (fragment, control characters) and
    /// URL encoding. `plain_path`: the path is [`plain_path`] (none of those can be in it).
    fn line_protocol(&mut self, req: &HeadParts<'_>, plain_path: bool) {
        let m = req.method.as_bytes();
        if m.is_empty() || m.len() > 16 || !m.iter().all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_') {
            self.protocol_at("protocol.invalid_method", Severity::Critical, Location::Path, "method", m);
        }
        let raw_path = if plain_path { &b""[..] } else { req.path.as_bytes() };
        if memchr::memchr(b'#', raw_path).is_some() {
            self.protocol_at("protocol.fragment_in_path", Severity::Critical, Location::Path, "path", raw_path);
        }
        if raw_path.iter().any(|&b| b < 0x20 || b == 0x7f) {
            self.protocol_at("protocol.control_char", Severity::Critical, Location::Path, "path", raw_path);
        }
        if invalid_pct(raw_path) {
            self.protocol_at("protocol.invalid_url_encoding", Severity::Critical, Location::Path, "path", raw_path);
        }
        if let Some(q) = req.query
            && invalid_pct(q.as_bytes())
        {
            self.protocol_at(
                "protocol.invalid_url_encoding",
                Severity::Critical,
                Location::QueryValue,
                "query",
                q.as_bytes(),
            );
        }
    }

    /// Protocol checks on one header: control characters, restricted names, framing, ranges, content type.
    /// `ctrl`: the value holds a control character other than tab (its [`classes`]).
    fn header_protocol(&mut self, name: &str, value: &[u8], kind: HeaderKind, ctrl: bool) {
        let v = value.trim_ascii();
        if ctrl {
            self.protocol_class("crlf.header_value", Class::Crlf, Severity::Critical, Location::Header, name, value);
        }
        match kind {
            HeaderKind::Restricted => {
                self.protocol_at("protocol.restricted_header", Severity::Critical, Location::Header, name, value);
            }
            HeaderKind::ContentLength if v.is_empty() || !v.iter().all(u8::is_ascii_digit) => {
                self.protocol_at("protocol.content_length", Severity::Critical, Location::Header, name, value);
            }
            // anything but a plain `chunked` (obfuscated or stacked codings) is a desync attempt
            HeaderKind::TransferEncoding if !v.eq_ignore_ascii_case(b"chunked") => {
                self.protocol_class(
                    "crlf.transfer_encoding",
                    Class::Crlf,
                    Severity::Critical,
                    Location::Header,
                    name,
                    value,
                );
            }
            HeaderKind::Range => {
                let ranges = v.iter().filter(|&&b| b == b',').count() + 1;
                let well_formed = v.len() > 6
                    && v[..6].eq_ignore_ascii_case(b"bytes=")
                    && v[6..].iter().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b',' | b' '));
                // `Request-Range` is the obsolete Netscape spelling, only seen from attack tools
                if ranges > 5 || (well_formed && name.eq_ignore_ascii_case("request-range")) {
                    self.protocol_at("protocol.range", Severity::Critical, Location::Header, name, value);
                }
            }
            HeaderKind::ContentType => self.content_type(name, v),
            // a User-Agent is product tokens; one that starts with a shell separator or a
            // substitution is a command line aimed at a script that logs or passes it on
            HeaderKind::UserAgent
                if matches!(v.first(), Some(b';' | b'|' | b'`')) || v.starts_with(b"&&") || v.starts_with(b"$(") =>
            {
                self.protocol_class(
                    "cmdi.ua_separator",
                    Class::Cmdi,
                    Severity::Critical,
                    Location::Header,
                    name,
                    value,
                );
            }
            _ => {}
        }
    }

    /// An argument's name and value beyond the rules: ORM lookups that walk relations (Django
    /// `user__password__startswith`: the ORM leaks what it filters on), and ASCII letters and
    /// digits written as `\u00XX` escapes (nothing encodes a plain letter so but an evasion).
    fn arg_shape(&mut self, lname: Location, lvalue: Location, prefix: &'static str, name: &[u8], value: &[u8]) {
        if name.len() >= 7 && memchr::memmem::find(name, b"__").is_some() && orm_lookup(name) {
            let target = target_name(prefix, name);
            self.protocol_class("sqli.orm_lookup", Class::Sqli, Severity::Critical, lname, &target, name);
        }
        if value.len() >= 6 && memchr::memmem::find(value, b"\\u00").is_some() && escaped_ascii(value) {
            let target = target_name(prefix, name);
            self.protocol_at("protocol.escaped_ascii", Severity::Critical, lvalue, &target, value);
        }
    }

    fn content_type(&mut self, name: &str, v: &[u8]) {
        let s = String::from_utf8_lossy(v).to_ascii_lowercase();
        let mut parts = s.split(';');
        let mime = parts.next().unwrap_or("").trim();
        let mime_ok = mime.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
        });
        let mut charsets = 0;
        let mut bad = !mime_ok;
        for p in parts {
            let Some((k, val)) = p.split_once('=') else { continue };
            let val = val.trim().trim_matches('"').trim();
            if k.trim() == "charset" {
                charsets += 1;
                if !CHARSETS.contains(&val) && val.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c)) {
                    bad = true;
                }
            }
            // a media type or a charset hidden in another parameter (parser confusion)
            if k.trim() != "charset"
                && (val.contains("charset")
                    || (val.contains('/')
                        && !val.contains(' ')
                        && val.split('/').all(|x| {
                            !x.is_empty() && x.bytes().all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c))
                        })))
            {
                bad = true;
            }
        }
        if bad || charsets > 1 {
            self.protocol_at("protocol.content_type", Severity::Critical, Location::Header, name, v);
        }
    }

    fn protocol(&mut self, rule: &'static str, sev: Severity, target: &str, matched: &[u8]) {
        self.protocol_class(rule, Class::Protocol, sev, Location::Body, target, matched);
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
                self.profile_arg(Location::BodyValue, "body.", n.as_bytes(), s.as_bytes());
            }
            Value::Number(x) if self.prof.is_some() => {
                let n = name.clone();
                self.profile_arg(Location::BodyValue, "body.", n.as_bytes(), x.to_string().as_bytes());
            }
            Value::Bool(b) if self.prof.is_some() => {
                let n = name.clone();
                self.profile_arg(Location::BodyValue, "body.", n.as_bytes(), if *b { b"true" } else { b"false" });
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
        let ctx = ScanCtx { scope: sc, classes: self.enabled & classes, max_pl: self.insp.max_pl };
        let memo = if sc & clean_memo::SCOPES != 0 {
            clean_memo::key(self.insp.id, sc, ctx.classes, ctx.max_pl, value)
        } else {
            None
        };
        if memo.as_ref().is_some_and(clean_memo::contains) {
            return;
        }
        let mut hits: Vec<(crate::matcher::RuleMeta, String, String)> = Vec::new();
        self.insp.matcher.scan(value, ctx, &mut |h: Hit<'_>| {
            // one hit per rule id; a later, more severe (or lower-paranoia) variant of the same id wins
            let rank = |m: &crate::matcher::RuleMeta| (m.pl, std::cmp::Reverse(m.sev));
            if let Some(slot) = hits.iter_mut().find(|(m, _, _)| m.id == h.meta.id) {
                if rank(&h.meta) < rank(&slot.0) {
                    *slot = (h.meta, evidence(h.matched), evidence(h.seen));
                }
            } else if hits.len() < 16 {
                hits.push((h.meta, evidence(h.matched), evidence(h.seen)));
            }
        });
        if hits.is_empty() {
            if let Some(k) = &memo {
                clean_memo::insert(k);
            }
            return;
        }
        let target = target_name(prefix, name);
        for (meta, matched, decoded) in hits {
            if self.excluded(meta.class, &target) {
                continue;
            }
            let shadow = meta.pl > cfg.paranoia || self.detect & meta.class.bit() != 0;
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
        self.insp.cfg.exclusions.iter().chain(&self.overlay.exclusions).any(|ex| {
            self.path.starts_with(&ex.path_prefix)
                && (ex.detectors.is_empty() || ex.detectors.iter().any(|d| d == class.as_str()))
                && (ex.targets.is_empty() || ex.targets.iter().any(|t| t.eq_ignore_ascii_case(target)))
        })
    }
}

/// Django-style lookups that leak what they filter on: a name of `__`-joined parts ending in a
/// partial-match or comparison lookup (one guess per request tells a secret's next character),
/// that walks at least two relations or one into an account field
/// (`user__password__startswith`). Filtering a relation by its key (`groups__id__exact`, as the
/// Django admin's filter links do) is not.
fn orm_lookup(name: &[u8]) -> bool {
    const LOOKUPS: [&[u8]; 19] = [
        b"iexact",
        b"contains",
        b"icontains",
        b"gt",
        b"gte",
        b"lt",
        b"lte",
        b"startswith",
        b"istartswith",
        b"endswith",
        b"iendswith",
        b"range",
        b"regex",
        b"iregex",
        b"has_key",
        b"has_keys",
        b"has_any_keys",
        b"contained_by",
        b"search",
    ];
    const ACCOUNT: [&[u8]; 12] = [
        b"user",
        b"users",
        b"owner",
        b"author",
        b"password",
        b"is_staff",
        b"is_superuser",
        b"email",
        b"token",
        b"secret",
        b"groups",
        b"permissions",
    ];
    let lower = name.to_ascii_lowercase();
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = &lower[..];
    while let Some(i) = memchr::memmem::find(rest, b"__") {
        parts.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    parts.push(rest);
    let well_formed = parts.iter().all(|p| {
        !p.is_empty() && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') && p[0].is_ascii_alphabetic()
    });
    let Some(last) = parts.last() else { return false };
    if !well_formed || parts.len() < 3 || !LOOKUPS.contains(last) {
        return false;
    }
    // comparing keys (`author__id__gt=3`) leaks nothing a list page does not show
    if matches!(parts[parts.len() - 2], b"id" | b"pk") {
        return false;
    }
    parts.len() >= 4 || parts[..parts.len() - 1].iter().any(|p| ACCOUNT.contains(p))
}

/// A `\u00XX` escape of an ASCII letter or digit.
fn escaped_ascii(v: &[u8]) -> bool {
    memchr::memmem::find_iter(v, b"\\u00").any(|i| {
        let hex = |k: usize| v.get(i + k).and_then(|c| (*c as char).to_digit(16));
        match (hex(4), hex(5)) {
            (Some(h), Some(l)) => (h * 16 + l).try_into().is_ok_and(|c: u8| c.is_ascii_alphanumeric()),
            _ => false,
        }
    })
}

/// True if a `%` is not followed by two hex digits (nor by `u` and four hex digits).
fn invalid_pct(s: &[u8]) -> bool {
    memchr::memchr_iter(b'%', s).any(|i| {
        let h = |k: usize| s.get(i + k).is_some_and(u8::is_ascii_hexdigit);
        let valid = (h(1) && h(2)) || (matches!(s.get(i + 1), Some(b'u' | b'U')) && h(2));
        !valid
    })
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
        // header names are case-insensitive: named in lower case
        let c = if prefix == "header." { c.to_ascii_lowercase() } else { c };
        s.push(if c.is_control() { '?' } else { c });
    }
    s
}
