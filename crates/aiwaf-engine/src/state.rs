//! In-memory state the engine reads and updates on every request.
//!
//! - [`Lists`]: an immutable snapshot of what storage holds (bans, exemptions, learned
//!   keywords), swapped whole with [`arc_swap`] so readers never lock.
//! - pending bans: bans this process decided that storage may not hold yet; dropped once a
//!   snapshot taken after their write is installed (so a CLI unban takes effect).
//! - the client table: per-client windows, bounded (S3-FIFO eviction: a flood of one-off
//!   addresses cannot push out clients seen repeatedly), one small mutex per client.
//! - known paths: paths the upstream answered with 2xx/3xx, bounded.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config::EngineConfig;
use crate::features::FeatureWindow;
use crate::ip::IpSet;
use crate::keywords::KeywordSet;
use crate::model::Model;
use crate::window::Times;

/// A map keyed by client address, with a fast (randomly seeded) hasher: it is read on every
/// request.
pub type IpMap<V> = HashMap<IpAddr, V, foldhash::fast::RandomState>;

/// A ban as the request path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanState {
    /// Human reason.
    pub reason: String,
    /// Detector name.
    pub detector: String,
    /// When it was made (ms since the epoch).
    pub created_at: u64,
    /// Until when; `None` is permanent.
    pub expires_at: Option<u64>,
    /// Offence number.
    pub offences: u32,
}

impl BanState {
    /// Whether the ban is in force at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// Snapshot of the stored lists.
#[derive(Debug, Clone)]
pub struct Lists {
    /// Exempt addresses and networks (stored and configured).
    pub exemptions: IpSet,
    /// Bans, including expired ones still remembered as previous offences.
    pub bans: IpMap<BanState>,
    /// Static plus learned keywords.
    pub keywords: KeywordSet,
    /// The learned keywords in force, most frequent first.
    pub learned: Vec<String>,
}

impl Lists {
    /// Builds a snapshot. `learned` is ordered by count; only `dynamic_top_n` are used.
    pub fn new(
        config: &EngineConfig,
        exemptions: IpSet,
        bans: impl IntoIterator<Item = (IpAddr, BanState)>,
        learned: Vec<String>,
    ) -> Lists {
        let bans = bans.into_iter().collect();
        let learned: Vec<String> = learned.into_iter().take(config.dynamic_top_n).collect();
        let keywords = KeywordSet::new(
            config.static_keywords.iter().map(String::as_str),
            learned.iter().map(String::as_str),
            &config.allowed_path_keywords,
        );
        Lists { exemptions, bans, keywords, learned }
    }

    /// This snapshot with the bans of some addresses replaced (`None`: no ban any more): an
    /// incremental reload, without reading every ban again.
    pub fn with_bans(&self, changed: impl IntoIterator<Item = (IpAddr, Option<BanState>)>) -> Lists {
        let mut next = self.clone();
        for (ip, ban) in changed {
            match ban {
                Some(b) => {
                    next.bans.insert(ip, b);
                }
                None => {
                    next.bans.remove(&ip);
                }
            }
        }
        next
    }

    /// Empty lists with the configured static keywords.
    pub fn empty(config: &EngineConfig) -> Lists {
        Lists::new(config, IpSet::default(), [], Vec::new())
    }
}

/// A ban decided here and not yet confirmed by a storage snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBan {
    /// The ban as the request path needs it.
    pub state: BanState,
    /// Sequence number of the ban record sent to storage.
    pub seq: u64,
}

/// Per-client sliding windows. `repr(C)` keeps what a page GET touches at the front, in the
/// first cache lines: the rate window, the feature history, the latest GETs and the clean count
/// (on a table of 100 000 clients each further line is one more miss per request). The rest is
/// touched only by 404s, assets, logins and findings.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ClientState {
    /// Request times in the rate window.
    pub(crate) requests: Times,
    /// History for the model's features.
    pub(crate) features: FeatureWindow,
    /// Page GETs not yet matched by a form POST: (page fingerprint, time), oldest first. A
    /// POST takes the oldest GET of its page, so people sharing an address (an office NAT, two
    /// tabs) each keep their own timer.
    pub(crate) page_gets: smallvec::SmallVec<[(u64, u64); 4]>,
    /// Requests answered 2xx/3xx with no finding (saturating): a client with a history may
    /// vote for relearning the profile.
    pub(crate) clean_served: u32,
    /// Requests refused while banned (events are sampled from this count).
    pub(crate) blocked_while_banned: u64,
    /// 404s on non-exempt paths: time and path.
    pub(crate) not_found: VecDeque<(u64, Box<str>)>,
    /// 404s on probed extensions: time and path.
    pub(crate) ext_not_found: VecDeque<(u64, Box<str>)>,
    /// UUID-tamper score changes: time and delta.
    pub(crate) uuid_events: VecDeque<(u64, i32)>,
    /// Times of anomalous requests with attack signs.
    pub(crate) anomalies: VecDeque<u64>,
    /// Times of honeypot signals.
    pub(crate) honeypot_hits: VecDeque<u64>,
    /// Times of blocked payload requests.
    pub(crate) payload_hits: VecDeque<u64>,
    /// Times of login POSTs (the login rate limit).
    pub(crate) login_posts: VecDeque<u64>,
    /// Times of asset requests (their own, larger budget).
    pub(crate) asset_requests: Times,
    /// Recently requested assets: (path fingerprint, requests, window start). A browser fetches
    /// an asset once per page load; a client fetching the same one again and again is a flood.
    pub(crate) asset_repeats: smallvec::SmallVec<[(u64, u32, u64); 4]>,
}

/// Page GETs remembered per client for the honeypot.
pub(crate) const MAX_PAGE_GETS: usize = 16;

impl ClientState {
    /// Counts a request for the asset `fp` in a fixed window of `window_ms`; returns the count.
    pub(crate) fn count_asset_repeat(&mut self, fp: u64, now: u64, window_ms: u64) -> u32 {
        if let Some(e) = self.asset_repeats.iter_mut().find(|e| e.0 == fp) {
            if now.saturating_sub(e.2) >= window_ms {
                *e = (fp, 0, now);
            }
            e.1 += 1;
            return e.1;
        }
        if self.asset_repeats.len() >= 4 {
            let oldest = self.asset_repeats.iter().enumerate().min_by_key(|(_, e)| e.2).map_or(0, |(i, _)| i);
            self.asset_repeats.remove(oldest);
        }
        self.asset_repeats.push((fp, 1, now));
        1
    }

    /// Remembers a page GET (the oldest is forgotten beyond [`MAX_PAGE_GETS`]).
    pub(crate) fn note_page_get(&mut self, page: u64, now: u64, memory_ms: u64) {
        self.page_gets.retain(|e| now.saturating_sub(e.1) <= memory_ms);
        if self.page_gets.len() >= MAX_PAGE_GETS {
            self.page_gets.remove(0);
        }
        self.page_gets.push((page, now));
    }

    /// Takes the oldest remembered GET of `page` (within `memory_ms`).
    pub(crate) fn take_page_get(&mut self, page: u64, now: u64, memory_ms: u64) -> Option<u64> {
        self.page_gets.retain(|e| now.saturating_sub(e.1) <= memory_ms);
        let i = self.page_gets.iter().position(|e| e.0 == page)?;
        Some(self.page_gets.remove(i).1)
    }
}

/// Slots of the known-path fingerprint filter (a power of two).
const KNOWN_RECENT_SLOTS: usize = 4096;

/// A 64-bit fingerprint of a path (never 0, the empty slot).
pub(crate) fn fingerprint(path: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6169_7761_665f_6b70).hash_one(path) | 1
}

/// One client's state in the client table.
pub(crate) type ClientSlot = Arc<Mutex<ClientState>>;

/// All mutable state of a running WAF. Cheap to share behind an `Arc`.
pub struct WafState {
    lists: ArcSwap<Lists>,
    /// Pending bans: a concurrent map (lock-free reads, O(1) inserts — a copied snapshot per
    /// ban was quadratic under a storage outage), with a count read first so the common case,
    /// none pending, costs one relaxed load.
    pending: papaya::HashMap<IpAddr, PendingBan, foldhash::fast::RandomState>,
    pending_len: AtomicU64,
    pending_cap: usize,
    clients: quick_cache::sync::Cache<IpAddr, ClientSlot>,
    known_paths: quick_cache::sync::Cache<Box<str>, ()>,
    /// Fingerprints of pages the upstream served as HTML to a GET (the pages forms live on).
    form_pages: quick_cache::sync::Cache<u64, ()>,
    /// Recently noted form pages, in front of `form_pages` as `known_recent` is in front of
    /// `known_paths`: most HTML answers are for pages already noted, one atomic load each.
    form_recent: Box<[AtomicU64]>,
    /// Fingerprints of recently confirmed known paths, in front of `known_paths` (a path is
    /// known when either holds it): most responses are for paths already known, and this
    /// answers them with one plain atomic load (the cache's shard lock is a read-modify-write
    /// every thread would contend on). A slot is overwritten by the next path hashing to it.
    known_recent: Box<[AtomicU64]>,
    ban_seq: AtomicU64,
    model: arc_swap::ArcSwapOption<Model>,
    /// Payload exclusions and detector modes changed at run time (admin API).
    payload_overlay: ArcSwap<aiwaf_payload::Overlay>,
    /// The learned application profile.
    profile: aiwaf_payload::Profile,
    /// Resolution of the clock `now` comes from, in ms (0: exact; training from a log with
    /// whole-second timestamps sets 1000).
    clock_resolution_ms: AtomicU64,
}

impl std::fmt::Debug for WafState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WafState")
            .field("clients", &self.clients.len())
            .field("pending_bans", &self.pending_bans())
            .finish_non_exhaustive()
    }
}

impl WafState {
    /// Fresh state with empty lists.
    pub fn new(config: &EngineConfig) -> WafState {
        WafState {
            lists: ArcSwap::from_pointee(Lists::empty(config)),
            pending: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
            pending_len: AtomicU64::new(0),
            pending_cap: config.client_capacity.min(1 << 20) as usize,
            clients: quick_cache::sync::Cache::new(config.client_capacity as usize),
            known_paths: quick_cache::sync::Cache::new(config.known_path_capacity as usize),
            form_pages: quick_cache::sync::Cache::new(config.known_path_capacity as usize),
            form_recent: (0..KNOWN_RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            known_recent: (0..KNOWN_RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            ban_seq: AtomicU64::new(0),
            model: arc_swap::ArcSwapOption::empty(),
            payload_overlay: ArcSwap::from_pointee(aiwaf_payload::Overlay::default()),
            profile: aiwaf_payload::Profile::new(config.payload.profile.clone()),
            clock_resolution_ms: AtomicU64::new(0),
        }
    }

    /// The resolution of the clock requests are timed with (0: exact).
    pub fn clock_resolution_ms(&self) -> u64 {
        self.clock_resolution_ms.load(Ordering::Relaxed)
    }

    /// Says how precise `now` is: a replay of a log with whole-second timestamps sets 1000, and
    /// rules that compare short intervals widen their bounds by it.
    pub fn set_clock_resolution_ms(&self, ms: u64) {
        self.clock_resolution_ms.store(ms, Ordering::Relaxed);
    }

    /// The learned application profile.
    pub fn profile(&self) -> &aiwaf_payload::Profile {
        &self.profile
    }

    /// The payload changes made at run time, borrowed for one request phase.
    pub fn payload_overlay(&self) -> arc_swap::Guard<Arc<aiwaf_payload::Overlay>> {
        self.payload_overlay.load()
    }

    /// Installs payload changes read from storage (requests already inspecting finish with the
    /// previous ones). Returns whether they differ from those in force.
    pub fn set_payload_overlay(&self, overlay: aiwaf_payload::Overlay) -> bool {
        if **self.payload_overlay.load() == overlay {
            return false;
        }
        self.payload_overlay.store(Arc::new(overlay));
        true
    }

    /// The anomaly model in force, if any.
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model.load_full()
    }

    /// The anomaly model in force, borrowed for the duration of one call (no reference-count
    /// traffic on the request path).
    pub(crate) fn model_guard(&self) -> arc_swap::Guard<Option<Arc<Model>>> {
        self.model.load()
    }

    /// Swaps the anomaly model (in-flight requests finish with the one they started with).
    pub fn set_model(&self, model: Option<Arc<Model>>) {
        self.model.store(model);
    }

    /// The current snapshot.
    pub fn lists(&self) -> arc_swap::Guard<Arc<Lists>> {
        self.lists.load()
    }

    /// Installs a snapshot read from storage after every ban up to `persisted_seq` was written.
    /// Pending bans storage now holds (or that were removed there since) are dropped, as are
    /// expired ones.
    pub fn install_lists(&self, lists: Lists, persisted_seq: u64, now: u64) {
        self.lists.store(Arc::new(lists));
        if self.pending_len.load(Ordering::Relaxed) > 0 {
            let m = self.pending.pin();
            m.retain(|_, p| p.seq > persisted_seq && p.state.active(now));
            self.pending_len.store(m.len() as u64, Ordering::Relaxed);
        }
    }

    fn pending_get<T>(&self, ip: &IpAddr, f: impl FnOnce(&PendingBan) -> Option<T>) -> Option<T> {
        if self.pending_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.pending.pin().get(ip).and_then(f)
    }

    /// The ban in force for `ip` at `now`, pending or stored.
    pub fn active_ban(&self, ip: IpAddr, now: u64) -> Option<BanState> {
        if let Some(b) = self.pending_get(&ip, |p| p.state.active(now).then(|| p.state.clone())) {
            return Some(b);
        }
        let lists = self.lists.load();
        lists.bans.get(&ip).filter(|b| b.active(now)).cloned()
    }

    /// Previous offences of `ip` remembered at `now`.
    pub fn prior_offences(&self, ip: IpAddr, now: u64, memory_ms: u64) -> u32 {
        let recent = |b: &BanState| now.saturating_sub(b.created_at) <= memory_ms;
        let stored = self.lists.load().bans.get(&ip).filter(|b| recent(b)).map_or(0, |b| b.offences);
        let pending = self.pending_get(&ip, |p| recent(&p.state).then_some(p.state.offences)).unwrap_or(0);
        stored.max(pending)
    }

    /// Records a ban decided here; returns its sequence number.
    pub fn add_pending_ban(&self, ip: IpAddr, state: BanState) -> u64 {
        let seq = self.ban_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let m = self.pending.pin();
        if m.len() >= self.pending_cap {
            // Storage holds these already or will; keep memory bounded. Expired ones go first,
            // then the oldest eighth at once, so eviction is amortised O(1) per ban.
            let now = state.created_at;
            m.retain(|_, p| p.state.active(now));
            if m.len() >= self.pending_cap {
                let mut seqs: Vec<u64> = m.iter().map(|(_, p)| p.seq).collect();
                let k = (seqs.len() / 8).min(seqs.len() - 1);
                let cutoff = *seqs.select_nth_unstable(k).1;
                m.retain(|_, p| p.seq > cutoff);
            }
        }
        m.insert(ip, PendingBan { state, seq });
        self.pending_len.store(m.len() as u64, Ordering::Relaxed);
        seq
    }

    /// Number of bans decided here and not yet seen in a snapshot.
    pub fn pending_bans(&self) -> usize {
        self.pending_len.load(Ordering::Relaxed) as usize
    }

    /// The state of one client, created on first use.
    pub(crate) fn client(&self, ip: IpAddr) -> ClientSlot {
        // A lookup, and on a miss an insert: cheaper than the cache's placeholder protocol
        // (`get_or_insert_with` allocates a placeholder and takes the shard lock twice), and a
        // flood of new addresses is all misses. Two first requests of one client at the same
        // instant may each insert a state; the later insert wins and the earlier request's
        // counts are lost — one request, once per client.
        if let Some(c) = self.clients.get(&ip) {
            return c;
        }
        let c = ClientSlot::default();
        self.clients.insert(ip, c.clone());
        c
    }

    /// Clients currently tracked.
    pub fn client_count(&self) -> u64 {
        self.clients.len() as u64
    }

    /// Whether the upstream has answered this normalised path with 2xx/3xx.
    pub fn is_known_path(&self, path: &str) -> bool {
        let fp = fingerprint(path);
        self.known_recent[(fp as usize) & (KNOWN_RECENT_SLOTS - 1)].load(Ordering::Relaxed) == fp
            || self.known_paths.contains_key(path)
    }

    /// Marks a path as served; returns true when it was not known before.
    pub fn add_known_path(&self, path: &str) -> bool {
        let fp = fingerprint(path);
        let slot = &self.known_recent[(fp as usize) & (KNOWN_RECENT_SLOTS - 1)];
        if slot.load(Ordering::Relaxed) == fp {
            return false;
        }
        let known = self.known_paths.contains_key(path);
        if !known {
            // Two requests may race here; both then report the path as new, which only means
            // one redundant (idempotent) write.
            self.known_paths.insert(path.into(), ());
        }
        slot.store(fp, Ordering::Relaxed);
        !known
    }

    /// Marks a page (normalised path) as served as HTML.
    pub fn add_form_page(&self, path: &str) {
        let fp = fingerprint(path);
        let slot = &self.form_recent[(fp as usize) & (KNOWN_RECENT_SLOTS - 1)];
        if slot.load(Ordering::Relaxed) == fp {
            return;
        }
        if !self.form_pages.contains_key(&fp) {
            self.form_pages.insert(fp, ());
        }
        slot.store(fp, Ordering::Relaxed);
    }

    /// Whether the upstream has served this page as HTML.
    pub fn is_form_page(&self, path: &str) -> bool {
        let fp = fingerprint(path);
        self.form_recent[(fp as usize) & (KNOWN_RECENT_SLOTS - 1)].load(Ordering::Relaxed) == fp
            || self.form_pages.contains_key(&fp)
    }

    /// Seeds known paths from storage at start-up.
    pub fn seed_known_paths<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        for p in paths {
            self.known_paths.insert(p.into(), ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: each new pending ban copied the whole map (quadratic under a storage outage).
    /// Now an insert is O(1) amortised and the map stays within its cap.
    #[test]
    fn pending_bans_stay_bounded_and_cheap_under_an_outage() {
        let config = EngineConfig { client_capacity: 1000, ..Default::default() };
        let s = WafState::new(&config);
        let started = std::time::Instant::now();
        for k in 0..50_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + k));
            let b = BanState { reason: "r".into(), detector: "d".into(), created_at: 1, expires_at: None, offences: 1 };
            s.add_pending_ban(ip, b);
        }
        assert!(s.pending_bans() <= 1000, "{}", s.pending_bans());
        assert!(s.active_ban(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 49_999)), 2).is_some());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
        s.install_lists(Lists::empty(&config), u64::MAX, 2);
        assert_eq!(s.pending_bans(), 0);
    }
}
