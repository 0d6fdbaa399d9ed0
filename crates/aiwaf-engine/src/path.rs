//! Path normalisation, exempt-path matching, tokens and UUID shapes.
//!
//! Detectors never look at the raw request target. They see the path percent-decoded once and
//! twice, lower-cased, with `\` read as `/` and dot-segments resolved, so `/%2e%2e/.%65nv`,
//! `/A/../.ENV` and `/.env` are the same thing.

use std::borrow::Cow;

/// Decodes `%XX` escapes once; invalid escapes are kept as they are.
pub fn percent_decode(input: &str) -> Cow<'_, str> {
    if !input.contains('%') {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lower-cases, reads `\` as `/`, collapses `//`, resolves `.` and `..` (never above the root).
/// The result always starts with `/`; a trailing `/` is kept.
pub fn normalize(path: &str) -> String {
    if is_normal(path) {
        return path.to_string();
    }
    let lowered = path.to_lowercase().replace('\\', "/");
    let trailing = lowered.ends_with('/') && lowered.len() > 1;
    let mut parts: Vec<&str> = Vec::new();
    let mut ends_with_dot = false;
    for seg in lowered.split('/') {
        ends_with_dot = false;
        match seg {
            "" => {}
            "." => ends_with_dot = true,
            ".." => {
                parts.pop();
                ends_with_dot = true;
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(lowered.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() || ((trailing || ends_with_dot) && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

/// Whether `normalize` would return the path unchanged (the common case, checked in one pass).
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev = b'/';
    for (i, &c) in b.iter().enumerate().skip(1) {
        if c.is_ascii_uppercase() || c == b'\\' || !c.is_ascii() {
            return false;
        }
        if prev == b'/' && (c == b'/' || (c == b'.' && matches!(b.get(i + 1), None | Some(b'/') | Some(b'.')))) {
            return false;
        }
        prev = c;
    }
    true
}

/// The forms of a path the detectors match against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// Decoded once, normalised. Used for exemptions, counters and learning.
    pub once: String,
    /// Decoded twice, normalised; `None` when equal to `once`.
    pub twice: Option<String>,
}

impl NormalizedPath {
    /// Normalises a raw request path (no query string).
    pub fn new(raw_path: &str) -> NormalizedPath {
        let d1 = percent_decode(raw_path);
        let once = normalize(&d1);
        let twice = match percent_decode(&d1) {
            Cow::Borrowed(_) => None,
            Cow::Owned(d2) => Some(normalize(&d2)).filter(|t| *t != once),
        };
        NormalizedPath { once, twice }
    }

    /// Both forms (one when they are equal).
    pub fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.once.as_str()).chain(self.twice.as_deref())
    }
}

/// Exempt path prefixes, matched case-insensitively on segment boundaries.
#[derive(Debug, Clone, Default)]
pub struct ExemptPaths {
    prefixes: Vec<String>,
}

impl ExemptPaths {
    /// Builds the matcher. `/` alone exempts only the root page, as in the seed.
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> ExemptPaths {
        let mut prefixes: Vec<String> = entries
            .into_iter()
            .map(|e| {
                let n = normalize(e.trim());
                if n == "/" { n } else { n.trim_end_matches('/').to_string() }
            })
            .collect();
        prefixes.sort();
        prefixes.dedup();
        ExemptPaths { prefixes }
    }

    /// Whether a normalised path is exempt.
    pub fn matches(&self, normalized: &str) -> bool {
        self.prefixes.iter().any(|p| {
            if p == "/" {
                return normalized == "/";
            }
            normalized.starts_with(p.as_str()) && matches!(normalized.as_bytes().get(p.len()), None | Some(b'/'))
        })
    }
}

/// Word tokens of a normalised path: runs of `[a-z0-9_]`, at least 4 characters (the seed's rule).
pub fn tokens(normalized: &str) -> impl Iterator<Item = &str> {
    normalized.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| t.chars().count() >= 4)
}

/// Whether the last segment of a normalised path ends with one of `extensions` (lower-case).
pub fn has_extension(normalized: &str, extensions: &[String]) -> bool {
    let last = last_segment(normalized);
    extensions.iter().any(|e| !e.is_empty() && last.ends_with(e.as_str()))
}

fn last_segment(normalized: &str) -> &str {
    let p = normalized.trim_end_matches('/');
    memchr::memrchr(b'/', p.as_bytes()).map_or(p, |i| &p[i + 1..])
}

/// File-name endings (`.php`, `.css`, lower-case) matched on a path's last segment, as
/// [`has_extension`] matches them, with the paths that cannot match turned away first (most of
/// them: no ending ends in their last byte, or no `.` where every ending has one) instead of
/// comparing every ending.
#[derive(Debug, Clone)]
pub struct Suffixes {
    list: Vec<String>,
    last_bytes: [bool; 256],
    all_dotted: bool,
}

impl Suffixes {
    /// The endings (empty ones are ignored).
    pub fn new(list: impl IntoIterator<Item = String>) -> Suffixes {
        let list: Vec<String> = list.into_iter().filter(|e| !e.is_empty()).collect();
        let mut last_bytes = [false; 256];
        for e in &list {
            if let Some(&b) = e.as_bytes().last() {
                last_bytes[b as usize] = true;
            }
        }
        let all_dotted = list.iter().all(|e| e.contains('.'));
        Suffixes { list, last_bytes, all_dotted }
    }

    /// The endings, in the order given.
    pub fn list(&self) -> &[String] {
        &self.list
    }

    /// Whether the last segment of `normalized` ends with one of them.
    pub fn matches(&self, normalized: &str) -> bool {
        let last = last_segment(normalized);
        let Some(&b) = last.as_bytes().last() else { return false };
        if !self.last_bytes[b as usize] || (self.all_dotted && memchr::memchr(b'.', last.as_bytes()).is_none()) {
            return false;
        }
        self.list.iter().any(|e| last.ends_with(e.as_str()))
    }
}

/// What UUIDs a path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UuidShape {
    /// No UUID-like segment.
    None,
    /// A well-formed UUID (8-4-4-4-12 hex, or 32 hex digits).
    Valid,
    /// Something that imitates a UUID but is not one (bad digits, bad grouping, trailing junk).
    Malformed,
}

/// Classifies the UUID-like segments of a normalised path; a malformed one wins.
pub fn uuid_shape(normalized: &str) -> UuidShape {
    // No segment of a shorter path is long enough to look like a UUID (see `classify_segment`).
    if normalized.len() < 33 {
        return UuidShape::None;
    }
    let mut shape = UuidShape::None;
    for seg in normalized.split('/').filter(|s| !s.is_empty()) {
        match classify_segment(seg) {
            UuidShape::Malformed => return UuidShape::Malformed,
            UuidShape::Valid => shape = UuidShape::Valid,
            UuidShape::None => {}
        }
    }
    shape
}

fn is_uuid(s: &[u8]) -> bool {
    match s.len() {
        36 => s.iter().enumerate().all(
            |(i, &b)| {
                if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() }
            },
        ),
        32 => s.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

fn classify_segment(seg: &str) -> UuidShape {
    let b = seg.as_bytes();
    // Every shape below needs at least 32 characters (28 hex digits and 4 hyphens at least).
    if b.len() < 32 {
        return UuidShape::None;
    }
    if is_uuid(b) {
        return UuidShape::Valid;
    }
    // A valid UUID embedded in a longer segment (`<uuid>'--`, `<uuid>.json` is fine).
    if b.len() > 36 {
        for start in 0..=b.len() - 36 {
            if is_uuid(&b[start..start + 36]) {
                let rest: Vec<u8> = b[..start].iter().chain(&b[start + 36..]).copied().collect();
                // `<uuid>.json` is a format suffix; `<uuid>)` or `<uuid>.` is a pasted link that
                // kept the punctuation around it: a typo, not tampering.
                let format_suffix =
                    start == 0 && rest.first() == Some(&b'.') && rest[1..].iter().all(u8::is_ascii_alphanumeric);
                let paste_junk = start == 0 && rest.len() <= 3 && rest.iter().all(|c| b").,;:!]>".contains(c));
                return if format_suffix || paste_junk { UuidShape::Valid } else { UuidShape::Malformed };
            }
        }
    }
    // The 8-4-4-4-12 grouping with non-hex characters, or hex groups of the wrong lengths.
    let groups: Vec<&str> = seg.split('-').collect();
    if groups.len() == 5 {
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        let alnum = groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_alphanumeric()));
        let hexish = groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()));
        let total: usize = lens.iter().sum();
        if alnum && lens == [8, 4, 4, 4, 12] {
            return UuidShape::Malformed; // right shape, non-hex digits
        }
        if hexish && (28..=36).contains(&total) && lens.iter().all(|&l| l > 0) {
            return UuidShape::Malformed; // hex, wrong grouping
        }
    }
    UuidShape::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn normalize_is_idempotent_and_rooted(s in "[/a-zA-Z.%2e\\\\]{0,24}") {
            let n = normalize(&s);
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.contains("/../") && !n.contains("/./") && !n.contains("//"));
            prop_assert_eq!(normalize(&n), n.clone());
        }

        /// The quick rejections of `Suffixes` never change an answer of the plain comparison:
        /// endings with and without dots, several dots, one character.
        #[test]
        fn suffixes_match_as_the_plain_comparison(
            path in "[/a-z.2]{0,16}",
            endings in proptest::collection::vec("[a-z.2]{0,4}", 0..5),
        ) {
            let s = Suffixes::new(endings.iter().cloned());
            prop_assert_eq!(s.matches(&path), has_extension(&path, &endings));
        }

        #[test]
        fn percent_decode_never_panics(s in "\\PC{0,40}") {
            let _ = NormalizedPath::new(&s);
        }
    }

    #[test]
    fn decode_and_normalize() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
        assert_eq!(normalize("/A/./b/../C//d/"), "/a/c/d/");
        assert_eq!(normalize("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("\\..\\win.ini"), "/win.ini");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/a/b/.."), "/a/");
        assert_eq!(normalize("/a/.b/c.d"), "/a/.b/c.d");
        assert_eq!(normalize("/a/..b/"), "/a/..b/");
        assert_eq!(normalize("/a/."), "/a/");
        assert_eq!(normalize("/Ü"), "/ü");
        let n = NormalizedPath::new("/%252e%252e/%2E%65nv");
        assert_eq!(n.once, "/%2e%2e/.env");
        assert_eq!(n.twice.as_deref(), Some("/.env"));
        assert_eq!(NormalizedPath::new("/plain").twice, None);
    }

    #[test]
    fn exempt_paths_respect_segment_boundaries() {
        let e = ExemptPaths::new(["/admin/", "/Health", "/"]);
        assert!(e.matches("/admin"));
        assert!(e.matches("/admin/users/1"));
        assert!(!e.matches("/administrator"));
        assert!(e.matches("/health/live"));
        assert!(e.matches("/"));
        assert!(!e.matches("/other"));
    }

    #[test]
    fn tokens_and_extensions() {
        let t: Vec<&str> = tokens("/wp-admin/setup-config.php?x").collect();
        assert_eq!(t, ["admin", "setup", "config"]);
        let exts = vec![".php".to_string(), ".asp".to_string()];
        assert!(has_extension("/x/y.php", &exts));
        assert!(has_extension("/x/y.php/", &exts));
        assert!(!has_extension("/x.php/y", &exts));
        let s = Suffixes::new(exts.clone());
        for (path, want) in
            [("/x/y.php", true), ("/x/y.php/", true), ("/x.php/y", false), ("/", false), ("/x/p", false)]
        {
            assert_eq!(s.matches(path), want, "{path}");
        }
        assert!(Suffixes::new(["php".to_string()]).matches("/x/indexphp"));
    }

    #[test]
    fn uuid_shapes() {
        assert_eq!(uuid_shape("/items/550e8400-e29b-41d4-a716-446655440000"), UuidShape::Valid);
        assert_eq!(uuid_shape("/items/550e8400e29b41d4a716446655440000/"), UuidShape::Valid);
        assert_eq!(uuid_shape("/items/550e8400-e29b-41d4-a716-446655440000.json"), UuidShape::Valid);
        assert_eq!(uuid_shape("/items/550e8400-e29b-41d4-a716-446655440000'--"), UuidShape::Malformed);
        assert_eq!(uuid_shape("/items/550e8400-e29b-41d4-a716-44665544zzzz"), UuidShape::Malformed);
        assert_eq!(uuid_shape("/items/550e84-00e29b-41d4-a716-446655440000"), UuidShape::Malformed);
        assert_eq!(uuid_shape("/items/42"), UuidShape::None);
        assert_eq!(uuid_shape("/2024-01-02-my-post"), UuidShape::None);
    }
}
