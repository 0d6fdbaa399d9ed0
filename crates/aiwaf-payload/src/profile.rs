//! The application profile: a positive security model learned from the site's own traffic.
//!
//! Signature rules know what attacks look like; a large part of real tampering looks like nothing
//! in particular — a parameter renamed (`passwordA=`), a price field holding `85'`, a numeric id
//! holding `2/`, a method a form never uses, a value ten times longer than any before. The profile
//! learns, per route (the decoded path with numeric, hex and UUID segments folded into `{}`):
//! the methods used, the argument names (query, form and JSON leaves), and per argument the
//! classes of characters its values use and their longest length. Once a route has enough
//! history it is enforced: a request that leaves the learned shape is a finding of class
//! `profile`, scored like every other finding.
//!
//! What keeps it from blocking a site's own users:
//! - **Learned from clean traffic only**: requests with no finding of any kind whose upstream
//!   answered 2xx or 3xx. A blocked request, a 404 or an error teaches nothing.
//! - **Maturity**: a route is enforced after `min_samples` clean requests from `min_clients`
//!   distinct clients; one client cannot teach a route alone.
//! - **Stability**: the argument names of a route are enforced only when no new name appeared in
//!   the later half of its history, an argument's character classes only when they did not grow
//!   in the later half of that argument's history (a free-text field keeps growing: never
//!   enforced until it settles). A route with more than `max_params` names is never closed.
//! - **Relearning**: a request blocked *only* by the profile counts as a vote for what it
//!   brought (a new argument, a new character class, a new method). When `relearn_clients`
//!   distinct clients voted for the same thing, the request is learned: a site that adds a form
//!   field is blocked for a few requests, not forever. Votes are never counted for a request that
//!   carried any other finding, so an attacker cannot vote payloads in.
//! - Tracking parameters added by ad platforms and caches (`utm_*`, `fbclid`, `gclid`, `_`, …) and
//!   the names in `ignore_params` are never checked.
//!
//! Cost: a route lookup per request in an immutable snapshot (no lock); per argument one pass
//! over the value's bytes for its class mask. Learning happens in the response phase under one of
//! 32 shard locks (by route), and only for requests that bring something the route does not
//! enforce yet: the steady traffic of a learned route takes no lock; the snapshot is rebuilt from the shards at most once a second, by
//! the request whose learning changed what is enforced. Memory is bounded by `max_routes`,
//! `max_params` and a bounded vote table. Pure: time is a parameter, no IO.
//!
//! Our own code: no crate implements a learned positive model for HTTP arguments.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// Profile settings (`[payload.profile]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Learn and enforce (default true). The detector id `profile` in `payload.detectors` sets
    /// block / detect / off like any other class.
    pub enabled: bool,
    /// Clean requests a route needs before it is enforced (default 50).
    pub min_samples: u32,
    /// Distinct clients among them (default 10).
    pub min_clients: u32,
    /// Distinct clients whose requests, blocked only by the profile, teach it what they brought (default 10).
    pub relearn_clients: u32,
    /// Routes learned at most (default 4096); when full, a new route takes the place of the
    /// least learned route not yet enforced in its shard, or is not learned.
    pub max_routes: usize,
    /// Argument names learned per route (default 64); a route with more is never closed.
    pub max_params: usize,
    /// Argument names never checked, beyond the built-in tracking parameters; a trailing `*`
    /// matches a prefix.
    pub ignore_params: Vec<String>,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            enabled: true,
            min_samples: 50,
            min_clients: 10,
            relearn_clients: 10,
            max_routes: 4096,
            max_params: 64,
            ignore_params: Vec::new(),
        }
    }
}

impl ProfileConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_samples < 2 {
            return Err(format!("payload.profile.min_samples must be at least 2, got {}", self.min_samples));
        }
        if self.min_clients == 0 || self.min_clients > 1000 {
            return Err(format!("payload.profile.min_clients must be 1..=1000, got {}", self.min_clients));
        }
        if self.relearn_clients == 0 || self.relearn_clients > 1000 {
            return Err(format!("payload.profile.relearn_clients must be 1..=1000, got {}", self.relearn_clients));
        }
        if self.max_routes == 0 || self.max_routes > 1_000_000 {
            return Err(format!("payload.profile.max_routes must be 1..=1000000, got {}", self.max_routes));
        }
        if self.max_params == 0 || self.max_params > 4096 {
            return Err(format!("payload.profile.max_params must be 1..=4096, got {}", self.max_params));
        }
        Ok(())
    }
}

/// Tracking and cache-busting parameters that any page may receive.
fn tracking(name: &str) -> bool {
    matches!(
        name,
        "fbclid"
            | "gclid"
            | "gbraid"
            | "wbraid"
            | "dclid"
            | "msclkid"
            | "yclid"
            | "twclid"
            | "ttclid"
            | "igshid"
            | "mc_cid"
            | "mc_eid"
            | "_ga"
            | "_gl"
            | "_hsenc"
            | "_hsmi"
            | "mkt_tok"
            | "ref_src"
            | "_"
            | "_ke"
    ) || name.starts_with("utm_")
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

// Character classes of a value: one bit each.
const DIGIT: u64 = 1;
const ALPHA: u64 = 1 << 1;
const NON_ASCII: u64 = 1 << 2;
const SPACE: u64 = 1 << 3;
const CONTROL: u64 = 1 << 4;
/// Bits 5.. are the 32 ASCII punctuation characters, one each.
const PUNCT_SHIFT: u32 = 5;
const PUNCT: &[u8; 32] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

const fn punct_bit(c: u8) -> u64 {
    let mut i = 0;
    while i < PUNCT.len() {
        if PUNCT[i] == c {
            return 1 << (PUNCT_SHIFT + i as u32);
        }
        i += 1;
    }
    0
}

/// Characters that change how a value is parsed by a database, a shell, a browser or a template:
/// new in a field that never had them, they are tampering.
const META: u64 = CONTROL
    | punct_bit(b'\'')
    | punct_bit(b'"')
    | punct_bit(b'<')
    | punct_bit(b'>')
    | punct_bit(b';')
    | punct_bit(b'(')
    | punct_bit(b')')
    | punct_bit(b'|')
    | punct_bit(b'&')
    | punct_bit(b'`')
    | punct_bit(b'$')
    | punct_bit(b'%')
    | punct_bit(b'{')
    | punct_bit(b'}')
    | punct_bit(b'[')
    | punct_bit(b']')
    | punct_bit(b'\\')
    | punct_bit(b'=')
    | punct_bit(b'*');
const ALL_PUNCT: u64 = ((1u64 << 32) - 1) << PUNCT_SHIFT;

static CLASS_OF: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            DIGIT
        } else if c.is_ascii_alphabetic() {
            ALPHA
        } else if c >= 0x80 {
            NON_ASCII
        } else if c == b' ' || c == b'\t' {
            SPACE
        } else if c < 0x20 || c == 0x7f {
            CONTROL
        } else {
            punct_bit(c)
        };
        b += 1;
    }
    t
};

/// The character classes of a value (one bit per class; bytes ≥ 0x80 are letters of other scripts).
pub fn class_mask(v: &[u8]) -> u64 {
    let mut m = 0u64;
    for &b in v {
        m |= CLASS_OF[b as usize];
    }
    m
}

/// The classes in a mask, for evidence: `digit`, `letter`, `non-ascii`, `space`, `control`, and
/// punctuation as itself.
pub fn describe_mask(m: u64) -> String {
    let mut s = String::new();
    for (bit, name) in
        [(DIGIT, "digit"), (ALPHA, "letter"), (NON_ASCII, "non-ascii"), (SPACE, "space"), (CONTROL, "control")]
    {
        if m & bit != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(name);
        }
    }
    for (i, &c) in PUNCT.iter().enumerate() {
        if m & (1 << (PUNCT_SHIFT + i as u32)) != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push(c as char);
        }
    }
    s
}

/// The route key of a raw request path: decoded once, lower-cased, segments that are numbers,
/// UUIDs or long hex folded into `{}`, at most 200 bytes.
pub fn route_key(raw_path: &str) -> String {
    let d = crate::decode::url_decode(raw_path.as_bytes(), false);
    let mut out = String::with_capacity(d.len().min(200));
    for (i, seg) in d.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let folded = !seg.is_empty()
            && (seg.iter().all(u8::is_ascii_digit)
                || (seg.len() >= 16 && seg.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-')));
        if folded {
            out.push_str("{}");
        } else {
            for c in String::from_utf8_lossy(seg).chars() {
                out.extend(c.to_lowercase());
            }
        }
        if out.len() >= 200 {
            let mut cut = 200;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            break;
        }
    }
    out
}

/// Learned names: JSON array indices folded (`items[3].id` → `items[].id`), at most 64 bytes;
/// appended to `out` (one buffer per request).
pub(crate) fn param_key_into(name: &[u8], out: &mut String) {
    let base = out.len();
    let s = String::from_utf8_lossy(name);
    let mut rest = s.as_ref();
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                out.push(']');
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
        if out.len() - base > 64 {
            break;
        }
    }
    out.push_str(rest);
    let mut cut = (out.len() - base).min(64) + base;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
}

fn method_bit(method: &str) -> u16 {
    match method {
        "GET" | "HEAD" => 1,
        "POST" => 1 << 1,
        "PUT" => 1 << 2,
        "PATCH" => 1 << 3,
        "DELETE" => 1 << 4,
        "OPTIONS" => 1 << 5,
        _ => 1 << 6,
    }
}

/// What one request brought, collected by the inspector for learning: route, method, and each
/// argument's name, class mask and length.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub(crate) route: String,
    pub(crate) method: u16,
    pub(crate) args: Vec<ArgShape>,
    /// The arguments' names, one after the other (`ArgShape` holds the ranges).
    pub(crate) names: String,
    /// Votes (for relearning) of the profile findings this request had.
    pub(crate) violations: Vec<u64>,
    /// Everything in it is enforced and within what was learned: learning it would only
    /// count (the route is mature and stable), so it is not learned — no shard lock for the
    /// steady traffic of a learned site.
    pub(crate) settled: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct ArgShape {
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) mask: u64,
    pub(crate) len: u32,
}

impl Shape {
    /// The route key.
    pub fn route(&self) -> &str {
        &self.route
    }
    /// Arguments collected.
    pub fn len(&self) -> usize {
        self.args.len()
    }
    /// No arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Param {
    n: u32,
    mask: u64,
    grew_at: u32,
    max_len: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Route {
    n: u32,
    /// Hashes of distinct clients, up to `min_clients`.
    clients: Vec<u64>,
    methods: u16,
    names_grew_at: u32,
    overflow: bool,
    params: Map<Box<str>, Param>,
}

/// What is enforced for one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteRules {
    pub(crate) methods: u16,
    pub(crate) names_closed: bool,
    pub(crate) params: Map<Box<str>, ParamRules>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParamRules {
    /// 0 when the argument's values are not enforced (too few, or still growing).
    pub(crate) mask: u64,
    pub(crate) max_len: u32,
}

impl Route {
    /// A digest of what [`Route::rules`] would enforce, without building it (no allocation: it
    /// runs under the shard lock for every learned request); order-independent over arguments.
    fn signature(&self, cfg: &ProfileConfig) -> u64 {
        if self.n < cfg.min_samples || (self.clients.len() as u32) < cfg.min_clients {
            return 0;
        }
        let min_param = (cfg.min_samples / 2).max(2);
        let head = hash64(&(self.methods, !self.overflow && stable_since(self.n, self.names_grew_at)));
        self.params.iter().fold(head, |acc, (k, p)| {
            let stable = p.n >= min_param && stable_since(p.n, p.grew_at);
            acc ^ hash64(&(k, stable, stable.then_some((p.mask, p.max_len))))
        })
    }

    fn rules(&self, cfg: &ProfileConfig) -> Option<RouteRules> {
        if self.n < cfg.min_samples || (self.clients.len() as u32) < cfg.min_clients {
            return None;
        }
        let min_param = (cfg.min_samples / 2).max(2);
        let params = self
            .params
            .iter()
            .map(|(k, p)| {
                let stable = p.n >= min_param && stable_since(p.n, p.grew_at);
                (
                    k.clone(),
                    if stable {
                        ParamRules { mask: p.mask, max_len: p.max_len }
                    } else {
                        ParamRules { mask: 0, max_len: 0 }
                    },
                )
            })
            .collect();
        Some(RouteRules {
            methods: self.methods,
            names_closed: !self.overflow && stable_since(self.n, self.names_grew_at),
            params,
        })
    }
}

/// Nothing new in the later half of `n` observations (the last growth at observation `grew_at`);
/// in 64 bits, so counts kept for years never wrap.
fn stable_since(n: u32, grew_at: u32) -> bool {
    let (n, g) = (u64::from(n), u64::from(grew_at.min(n)));
    (n - g) * 2 >= n
}

#[derive(Default)]
struct Shard {
    routes: Map<Box<str>, Route>,
}

/// The enforced part of the profile: mature routes only; replaced as a whole.
#[derive(Debug, Default)]
pub struct Rules {
    pub(crate) routes: Map<Box<str>, RouteRules>,
}

impl Rules {
    pub(crate) fn route(&self, key: &str) -> Option<&RouteRules> {
        if self.routes.is_empty() {
            return None;
        }
        self.routes.get(key)
    }
    /// Routes enforced.
    pub fn len(&self) -> usize {
        self.routes.len()
    }
    /// None enforced.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

const SHARDS: usize = 32;
const MAX_VOTES: usize = 8192;

/// The learned profile of a site: shards being learned, and the enforced snapshot.
pub struct Profile {
    cfg: ProfileConfig,
    shards: Vec<Mutex<Shard>>,
    routes: AtomicU64,
    rules: ArcSwap<Rules>,
    /// Something enforced changed since the snapshot was built.
    dirty: AtomicBool,
    published_at: AtomicU64,
    publishing: AtomicBool,
    /// Requests learned (a change counter for whoever saves the profile).
    learned: AtomicU64,
    /// Relearning votes: (route, thing) → distinct client hashes.
    votes: Mutex<HashMap<u64, Vec<u64>>>,
    ignore: Vec<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile").field("cfg", &self.cfg).field("routes", &self.routes).finish_non_exhaustive()
    }
}

/// A route's summary (admin API).
#[derive(Clone, Debug, Serialize)]
pub struct RouteSummary {
    /// Route key.
    pub route: String,
    /// Clean requests learned.
    pub samples: u32,
    /// Distinct clients counted (up to `min_clients`).
    pub clients: u32,
    /// Enforced.
    pub enforced: bool,
    /// Methods seen.
    pub methods: Vec<&'static str>,
    /// Argument names closed (an unknown name is a finding).
    pub names_closed: bool,
    /// Arguments: name, samples, classes, longest value, enforced.
    pub params: Vec<ParamSummary>,
}

/// An argument's summary.
#[derive(Clone, Debug, Serialize)]
pub struct ParamSummary {
    /// Name (`items[].id` for JSON arrays).
    pub name: String,
    /// Values learned.
    pub samples: u32,
    /// Character classes seen.
    pub classes: String,
    /// Longest value.
    pub max_len: u32,
    /// Values checked.
    pub enforced: bool,
}

fn methods_of(bits: u16) -> Vec<&'static str> {
    ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"]
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, m)| *m)
        .collect()
}

fn hash64<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// A relearning vote's key: the route, the kind of deviation, the argument and what it brought.
pub(crate) fn vote_key(route: &str, kind: u8, name: &str, detail: u64) -> u64 {
    hash64(&(route, kind, name, detail))
}

impl Profile {
    /// An empty profile.
    pub fn new(cfg: ProfileConfig) -> Profile {
        let ignore = cfg.ignore_params.clone();
        Profile {
            cfg,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            routes: AtomicU64::new(0),
            rules: ArcSwap::from_pointee(Rules::default()),
            dirty: AtomicBool::new(false),
            published_at: AtomicU64::new(0),
            publishing: AtomicBool::new(false),
            learned: AtomicU64::new(0),
            votes: Mutex::new(HashMap::new()),
            ignore,
        }
    }

    /// Settings.
    pub fn config(&self) -> &ProfileConfig {
        &self.cfg
    }

    /// The enforced snapshot.
    pub fn rules(&self) -> arc_swap::Guard<Arc<Rules>> {
        self.rules.load()
    }

    pub(crate) fn ignored(&self, name: &str) -> bool {
        tracking(name)
            || self.ignore.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => p == name,
            })
    }

    fn shard(&self, route: &str) -> &Mutex<Shard> {
        &self.shards[(hash64(route) as usize) % SHARDS]
    }

    /// Learns one request. `client` is any stable hash of the client; `now` in ms. With
    /// `vote` (the request was blocked or flagged only by the profile) it is learned only once
    /// `relearn_clients` distinct clients brought the same things.
    pub fn learn(&self, shape: &Shape, client: u64, vote: bool, now: u64) {
        if !self.cfg.enabled || shape.route.is_empty() {
            return;
        }
        if vote && (shape.violations.is_empty() || !self.vote(&shape.violations, client)) {
            return;
        }
        if !vote && shape.settled {
            return;
        }
        let changed = {
            let mut shard = self.shard(&shape.route).lock().unwrap_or_else(|e| e.into_inner());
            if !shard.routes.contains_key(shape.route.as_str()) {
                if self.routes.load(Ordering::Relaxed) >= self.cfg.max_routes as u64 {
                    // full: the least learned route not enforced yet makes room, from this shard
                    // or (without waiting: no lock order to break) another one; slugs and junk
                    // come and go, enforced routes stay
                    if !self.evict_from(&mut shard) {
                        let mine = self.shard(&shape.route) as *const Mutex<Shard>;
                        let freed = self
                            .shards
                            .iter()
                            .filter(|m| !std::ptr::eq(*m, mine))
                            .any(|m| m.try_lock().is_ok_and(|mut other| self.evict_from(&mut other)));
                        if !freed {
                            return;
                        }
                    }
                } else {
                    self.routes.fetch_add(1, Ordering::Relaxed);
                }
                shard.routes.insert(shape.route.clone().into_boxed_str(), Route::default());
            }
            let Some(r) = shard.routes.get_mut(shape.route.as_str()) else { return };
            let before = r.signature(&self.cfg);
            r.n = r.n.saturating_add(1);
            if (r.clients.len() as u32) < self.cfg.min_clients && !r.clients.contains(&client) {
                r.clients.push(client);
            }
            r.methods |= shape.method;
            for a in &shape.args {
                let name = shape.names.get(a.start as usize..a.end as usize).unwrap_or("");
                if !r.params.contains_key(name) {
                    if r.params.len() >= self.cfg.max_params {
                        r.overflow = true;
                        continue;
                    }
                    r.names_grew_at = r.n;
                    r.params.insert(name.into(), Param::default());
                }
                let Some(p) = r.params.get_mut(name) else { continue };
                p.n = p.n.saturating_add(1);
                if p.mask | a.mask != p.mask {
                    p.mask |= a.mask;
                    p.grew_at = p.n;
                }
                p.max_len = p.max_len.max(a.len);
            }
            before != r.signature(&self.cfg)
        };
        self.learned.fetch_add(1, Ordering::Relaxed);
        if changed {
            self.dirty.store(true, Ordering::Release);
        }
        self.maybe_publish(now);
    }

    /// Rebuilds the enforced snapshot when something enforced changed and the last rebuild is
    /// at least a second old (one atomic load otherwise). Called by [`Profile::learn`] and by
    /// the request phase, so a pause in traffic does not leave an old snapshot in force.
    pub fn maybe_publish(&self, now: u64) {
        if self.dirty.load(Ordering::Acquire) && now.saturating_sub(self.published_at.load(Ordering::Relaxed)) >= 1000 {
            self.publish(now);
        }
    }

    /// Removes the least learned route of `shard` that is not enforced; false when there is none.
    fn evict_from(&self, shard: &mut Shard) -> bool {
        let cfg = &self.cfg;
        let victim = shard
            .routes
            .iter()
            .filter(|(_, r)| r.n < cfg.min_samples || (r.clients.len() as u32) < cfg.min_clients)
            .min_by_key(|(_, r)| r.n)
            .map(|(k, _)| k.clone());
        victim.is_some_and(|v| shard.routes.remove(&v).is_some())
    }

    /// Counts this client's vote for each violation; true when every one has enough voters.
    fn vote(&self, keys: &[u64], client: u64) -> bool {
        let need = self.cfg.relearn_clients as usize;
        let mut votes = self.votes.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = true;
        for k in keys {
            if !votes.contains_key(k) && votes.len() >= MAX_VOTES {
                // full: the oldest entries are not known; start over rather than grow
                votes.clear();
            }
            let v = votes.entry(*k).or_default();
            if !v.contains(&client) && v.len() < need {
                v.push(client);
            }
            all &= v.len() >= need;
        }
        if all {
            for k in keys {
                votes.remove(k);
            }
        }
        all
    }

    /// Rebuilds the enforced snapshot from the shards (at most one caller at a time).
    pub fn publish(&self, now: u64) {
        self.dirty.store(true, Ordering::Release);
        // one builder at a time; a change made while it builds makes it build again (twice at
        // most here: a later request picks up what is left)
        for _ in 0..2 {
            if !self.dirty.load(Ordering::Acquire) {
                break;
            }
            if self.publishing.swap(true, Ordering::AcqRel) {
                return;
            }
            self.dirty.store(false, Ordering::Release);
            self.published_at.store(now, Ordering::Relaxed);
            let mut routes = Map::default();
            for s in &self.shards {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                for (k, r) in &shard.routes {
                    if let Some(rules) = r.rules(&self.cfg) {
                        routes.insert(k.clone(), rules);
                    }
                }
            }
            self.rules.store(Arc::new(Rules { routes }));
            self.publishing.store(false, Ordering::Release);
        }
    }

    /// Changes so far (requests learned, routes forgotten, imports): save when it moved.
    pub fn changes(&self) -> u64 {
        self.learned.load(Ordering::Relaxed)
    }

    /// Routes being learned.
    pub fn routes(&self) -> usize {
        self.routes.load(Ordering::Relaxed) as usize
    }

    /// Every route, enforced or not, most learned first (admin API), at most `limit`.
    pub fn summary(&self, limit: usize) -> Vec<RouteSummary> {
        let mut out = Vec::new();
        for s in &self.shards {
            let shard = s.lock().unwrap_or_else(|e| e.into_inner());
            for (k, r) in &shard.routes {
                let rules = r.rules(&self.cfg);
                let mut params: Vec<ParamSummary> = r
                    .params
                    .iter()
                    .map(|(name, p)| ParamSummary {
                        name: name.to_string(),
                        samples: p.n,
                        classes: describe_mask(p.mask),
                        max_len: p.max_len,
                        enforced: rules.as_ref().and_then(|x| x.params.get(name)).is_some_and(|x| x.mask != 0),
                    })
                    .collect();
                params.sort_by(|a, b| a.name.cmp(&b.name));
                out.push(RouteSummary {
                    route: k.to_string(),
                    samples: r.n,
                    clients: r.clients.len() as u32,
                    enforced: rules.is_some(),
                    methods: methods_of(r.methods),
                    names_closed: rules.as_ref().is_some_and(|x| x.names_closed),
                    params,
                });
            }
        }
        out.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.route.cmp(&b.route)));
        out.truncate(limit);
        out
    }

    /// Forgets one route (`Some`) or everything (`None`); true when something was forgotten.
    pub fn forget(&self, route: Option<&str>, now: u64) -> bool {
        let mut any = false;
        for s in &self.shards {
            let mut shard = s.lock().unwrap_or_else(|e| e.into_inner());
            match route {
                Some(k) => {
                    if shard.routes.remove(k).is_some() {
                        self.routes.fetch_sub(1, Ordering::Relaxed);
                        any = true;
                    }
                }
                None => {
                    any |= !shard.routes.is_empty();
                    self.routes.fetch_sub(shard.routes.len() as u64, Ordering::Relaxed);
                    shard.routes.clear();
                }
            }
        }
        self.learned.fetch_add(1, Ordering::Relaxed);
        self.publish(now);
        any
    }

    /// The learned state as JSON (persisted by the server).
    pub fn export(&self) -> serde_json::Value {
        let mut all: HashMap<Box<str>, Route> = HashMap::new();
        for s in &self.shards {
            let shard = s.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(shard.routes.iter().map(|(k, r)| (k.clone(), r.clone())));
        }
        serde_json::json!({ "version": 1, "routes": all })
    }

    /// Restores an exported state (replacing what is learned) and publishes it. Routes over
    /// `max_routes` and malformed input are skipped; returns the routes restored.
    pub fn import(&self, v: &serde_json::Value, now: u64) -> Result<usize, String> {
        if v.get("version").and_then(|x| x.as_u64()) != Some(1) {
            return Err("profile: unknown version".into());
        }
        let routes: Map<Box<str>, Route> = serde_json::from_value(v.get("routes").cloned().unwrap_or_default())
            .map_err(|e| format!("profile: {e}"))?;
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).routes.clear();
        }
        let mut n = 0usize;
        for (k, mut r) in routes {
            if n >= self.cfg.max_routes {
                break;
            }
            r.clients.truncate(self.cfg.min_clients as usize);
            r.names_grew_at = r.names_grew_at.min(r.n);
            for p in r.params.values_mut() {
                p.grew_at = p.grew_at.min(p.n);
            }
            r.params.retain(|name, _| name.len() <= 64);
            r.params = r.params.into_iter().take(self.cfg.max_params).collect();
            self.shard(&k).lock().unwrap_or_else(|e| e.into_inner()).routes.insert(k, r);
            n += 1;
        }
        self.routes.store(n as u64, Ordering::Relaxed);
        self.publish(now);
        Ok(n)
    }
}

/// What the inspector checks for one request against the enforced rules; findings are named
/// by the caller. Returns the rule id, severity and an explanation for each deviation.
pub(crate) enum Deviation {
    Method { bit: u16 },
    UnknownName,
    Chars { new: u64, learned: u64 },
    Length { len: u32, learned: u32 },
}

impl Deviation {
    pub(crate) fn vote(&self, route: &str, name: &str) -> u64 {
        match self {
            Deviation::Method { bit } => vote_key(route, 0, "", u64::from(*bit)),
            Deviation::UnknownName => vote_key(route, 1, name, 0),
            Deviation::Chars { new, .. } => vote_key(route, 2, name, *new),
            // by order of magnitude: ten votes for a little longer do not teach a hundred times longer
            Deviation::Length { len, .. } => vote_key(route, 3, name, u64::from(len.max(&1).ilog2())),
        }
    }
}

/// The deviation of one argument (`name` already a [`param_key_into`]) from a route's rules.
pub(crate) fn check_arg(r: &RouteRules, name: &str, mask: u64, len: u32) -> Option<(Deviation, crate::Severity)> {
    use crate::Severity;
    let Some(p) = r.params.get(name) else {
        return r.names_closed.then_some((Deviation::UnknownName, Severity::Critical));
    };
    if p.mask == 0 {
        return None;
    }
    let new = mask & !p.mask;
    if new != 0 {
        // a character that changes parsing, letters in a field that only held numbers, or a
        // new punctuation in a field that had at most one kind
        let strong = new & META != 0
            || (new & (ALPHA | NON_ASCII) != 0 && p.mask & (ALPHA | NON_ASCII) == 0)
            || (new & ALL_PUNCT != 0 && (p.mask & ALL_PUNCT).count_ones() <= 1 && p.mask & SPACE == 0);
        let sev = if strong { Severity::Critical } else { Severity::Warning };
        return Some((Deviation::Chars { new, learned: p.mask }, sev));
    }
    if p.max_len > 0 && len > p.max_len.saturating_mul(2).saturating_add(10) {
        let sev = if p.mask & SPACE != 0 { Severity::Error } else { Severity::Critical };
        return Some((Deviation::Length { len, learned: p.max_len }, sev));
    }
    None
}

pub(crate) fn method_allowed(r: &RouteRules, method: &str) -> bool {
    r.methods & method_bit(method) != 0
}

pub(crate) fn method_bit_of(method: &str) -> u16 {
    method_bit(method)
}
