//! The decision: request phase ([`Engine::inspect`]) and response phase ([`Engine::observe`]).

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::json;

use crate::config::{BUILTIN_EXEMPT_PATHS, EngineConfig, Mode, is_browser_auto_path};
use crate::features::{FEATURE_NAMES, kw_hits};
use crate::ip::{IpSet, client_key, resolve_client_ip};
use crate::path::{ExemptPaths, NormalizedPath, Suffixes, UuidShape, uuid_shape};
use crate::state::{BanState, ClientSlot, ClientState, WafState, fingerprint};
use crate::verdict::{Action, Ban, Detector, Finding, Verdict};

/// The request facts the engine needs. Plain strings: the engine never sees an HTTP type.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The client (see [`Engine::client_ip`]).
    pub client: IpAddr,
    /// Method, upper-case.
    pub method: &'a str,
    /// Raw path, no query string.
    pub path: &'a str,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Accept`.
    pub accept: Option<&'a str>,
    /// `Sec-Fetch-Dest`.
    pub sec_fetch_dest: Option<&'a str>,
    /// `Referer` (the honeypot times a form POST from the GET of the page it names).
    pub referer: Option<&'a str>,
    /// `Host` (or the `:authority`), to tell a same-site `Referer`.
    pub host: Option<&'a str>,
    /// The query string (without `?`).
    pub query: Option<&'a str>,
    /// Every request header, name and raw value, for payload inspection (may be empty when
    /// payload inspection is off: see [`Engine::wants_headers`]).
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// What the response phase needs to remember about a request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client.
    pub client: IpAddr,
    /// The normalised path.
    pub path: NormalizedPath,
    /// Exempt address or path: nothing is counted or learned.
    pub exempt: bool,
    /// Length of the raw path (the `path_len` feature).
    pub raw_path_len: usize,
    /// The client's state as the request phase found it, so the response phase does not look
    /// it up again (one client-table lookup per request).
    slot: Option<ClientSlot>,
    /// Payload findings so far (request-headers and request-body phases); only when any.
    pub payload: Option<Box<aiwaf_payload::Report>>,
    /// The request carries a body the body phase should inspect ([`Engine::inspect_body`]).
    pub wants_body: bool,
    /// What the request brought, for the learned profile (learned when the answer is 2xx/3xx
    /// and nothing else was found).
    pub shape: Option<Box<aiwaf_payload::Shape>>,
}

/// Clean answered requests a client needs before its requests blocked by the profile alone
/// count as votes for relearning.
const PROFILE_VOTER_HISTORY: u32 = 3;

/// Result of the request phase.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The verdict.
    pub verdict: Verdict,
    /// Context for [`Engine::observe`].
    pub context: RequestContext,
}

/// Result of the response phase.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// A detector fired on the upstream's answer (the ban applies to later requests).
    pub finding: Option<Finding>,
    /// The ban it caused, in block mode.
    pub ban: Option<Ban>,
    /// The path became known-good (2xx/3xx) just now; storage should remember it.
    pub new_known_path: bool,
    /// The model's anomaly score, when a model is loaded and the request shows attack signs.
    pub score: Option<f64>,
    /// The feature vector (only from [`Engine::replay`]).
    pub features: Option<crate::features::Features>,
}

/// The immutable part of the WAF: settings and compiled matchers. Share it as `Arc<Engine>`.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    trusted: IpSet,
    exempt_ips: IpSet,
    exempt_paths: ExemptPaths,
    extensions: Suffixes,
    asset_extensions: Suffixes,
    payload: Option<aiwaf_payload::Inspector>,
    login_paths: ExemptPaths,
    /// `detectors_off` as a bit per detector.
    detectors_mask: u16,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Drops entries older than `window` (strictly: kept when `now - t < window`).
fn expire<T>(q: &mut VecDeque<T>, now: u64, window: u64, time: impl Fn(&T) -> u64) {
    while q.front().is_some_and(|e| now.saturating_sub(time(e)) >= window) {
        q.pop_front();
    }
}

/// Expires `q`, appends `item` and keeps at most `cap` entries (the newest).
fn push_window<T>(q: &mut VecDeque<T>, item: T, now: u64, window: u64, cap: usize, time: impl Fn(&T) -> u64) {
    expire(q, now, window, time);
    q.push_back(item);
    while q.len() > cap {
        q.pop_front();
    }
}

impl Engine {
    /// Builds an engine. `exempt_ips` are the configured exemptions (`AIWAF_EXEMPT_IPS`).
    pub fn new(config: EngineConfig, exempt_ips: IpSet) -> Result<Engine, String> {
        config.validate()?;
        let trusted = IpSet::new(config.trusted_proxies.iter().copied());
        let builtin: &[&str] = if config.builtin_exempt_paths { BUILTIN_EXEMPT_PATHS } else { &[] };
        let exempt_paths =
            ExemptPaths::new(builtin.iter().copied().chain(config.exempt_paths.iter().map(String::as_str)));
        let extensions = Suffixes::new(config.file_extensions.iter().map(|e| e.to_lowercase()));
        let asset_extensions = Suffixes::new(config.asset_extensions.iter().map(|e| e.to_lowercase()));
        let detectors_mask =
            config.detectors_off.iter().filter(|d| **d != Detector::Blacklist).fold(0u16, |m, d| m | (1 << *d as u16));
        let payload = if config.payload.enabled && !config.detectors_off.contains(&Detector::Payload) {
            Some(aiwaf_payload::Inspector::new(config.payload.clone())?)
        } else {
            None
        };
        let login_paths = ExemptPaths::new(config.login_paths.iter().map(String::as_str));
        Ok(Engine {
            config,
            trusted,
            exempt_ips,
            exempt_paths,
            extensions,
            asset_extensions,
            payload,
            login_paths,
            detectors_mask,
        })
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The address a request is charged to: `values` are those of the configured
    /// [`EngineConfig::client_ip_header`] (see [`resolve_client_ip`]).
    pub fn client_ip(&self, peer: IpAddr, values: &[&str]) -> IpAddr {
        resolve_client_ip(peer, &self.trusted, self.config.client_ip_header, values)
    }

    /// The key a client's state and bans are kept under (IPv6: its configured prefix).
    pub fn client_key(&self, ip: IpAddr) -> IpAddr {
        client_key(ip, self.config.ipv6_prefix)
    }

    /// Whether `peer` is a trusted proxy (its forwarding headers are believed).
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// Whether the trusted-proxy list is empty (then forwarding headers are never read).
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// The context of a request that is only observed (training replays logs this way).
    pub fn context(&self, state: &WafState, client: IpAddr, raw_path: &str) -> RequestContext {
        let path = NormalizedPath::new(raw_path);
        let lists = state.lists();
        let exempt = self.exempt_ips.contains(client)
            || lists.exemptions.contains(client)
            || self.exempt_paths.matches(&path.once);
        RequestContext {
            client: self.client_key(client),
            path,
            exempt,
            raw_path_len: raw_path.len(),
            slot: None,
            payload: None,
            wants_body: false,
            shape: None,
        }
    }

    /// Whether a normalised path is exempt.
    pub fn is_exempt_path(&self, normalized: &str) -> bool {
        self.exempt_paths.matches(normalized)
    }

    /// Whether an address is exempt by configuration.
    pub fn is_exempt_ip(&self, ip: IpAddr) -> bool {
        self.exempt_ips.contains(ip)
    }

    /// Request phase. Never fails; a block is a verdict. In [`Mode::Block`] a new ban is also
    /// put in force in `state`; in [`Mode::Detect`] nothing is enforced.
    pub fn inspect(&self, state: &WafState, mode: Mode, req: &RequestInfo<'_>, now: u64) -> Inspection {
        self.inspect_with(state, mode, req, now, None)
    }

    /// [`Engine::inspect`] with the per-client windows read from shared state (`Some`), or
    /// kept in this process (`None`).
    pub fn inspect_with(
        &self,
        state: &WafState,
        mode: Mode,
        req: &RequestInfo<'_>,
        now: u64,
        shared: Option<RequestWindows>,
    ) -> Inspection {
        let path = NormalizedPath::new(req.path);
        let lists = state.lists();
        let ip_exempt = self.exempt_ips.contains(req.client) || lists.exemptions.contains(req.client);
        // Windows and bans are kept per client key (IPv6: per prefix); exemptions match the address.
        let ip = self.client_key(req.client);
        let path_exempt = self.exempt_paths.matches(&path.once);
        let mut context = RequestContext {
            client: ip,
            path,
            exempt: ip_exempt || path_exempt,
            raw_path_len: req.path.len(),
            slot: None,
            payload: None,
            wants_body: false,
            shape: None,
        };
        if ip_exempt || mode == Mode::Off {
            return Inspection { verdict: Verdict::ALLOW, context };
        }
        // A ban on the prefix, or an operator's ban on this one address.
        let raw = crate::ip::canonical(req.client);
        let ban = state.active_ban(ip, now).or_else(|| if raw != ip { state.active_ban(raw, now) } else { None });
        if let Some(ban) = ban {
            // A banned client's requests are counted, not each stored: the layer records an
            // event for the 1st, 2nd, 4th, 8th… (`blocked_requests` says how many so far).
            let client = state.client(ip);
            let blocked = {
                let mut cs = client.lock();
                cs.blocked_while_banned += 1;
                cs.blocked_while_banned
            };
            context.slot = Some(client);
            let verdict = Verdict {
                action: Action::Block,
                finding: Some(Finding {
                    detector: Detector::Blacklist,
                    reason: format!("Blacklisted: {}", ban.reason),
                    evidence: json!({
                        "ban_detector": ban.detector,
                        "ban_reason": ban.reason,
                        "banned_at": ban.created_at,
                        "expires_at": ban.expires_at,
                        "offences": ban.offences,
                        "blocked_requests": blocked,
                    }),
                }),
                ban: None,
            };
            return Inspection { verdict, context };
        }
        // Payload inspection of the request line and headers. It runs on exempt paths too
        // (a login form is where SQL injection is tried); exclusions are per route and target.
        context.wants_body = self.wants_body(req);
        self.inspect_payload_head(state, req, &mut context, now);
        if let Some(v) = self.login_rate(state, mode, &mut context, req, now) {
            return Inspection { verdict: v, context };
        }
        if path_exempt {
            // The path itself is exempt (no hidden-file or traversal verdict on it); what the
            // request carries in its query, headers and body is still inspected.
            if let Some(r) = context.payload.take() {
                let mut kept = aiwaf_payload::Report::default();
                for f in r.findings.into_iter().filter(|f| f.location != aiwaf_payload::Location::Path) {
                    kept.push(f);
                }
                context.payload = (!kept.is_clean()).then(|| Box::new(kept));
            }
            let verdict = self.payload_verdict(state, mode, &mut context, now).unwrap_or(Verdict::ALLOW);
            return Inspection { verdict, context };
        }

        // Browser auto-requests (favicon, robots.txt, …) and a page's sub-resources are not
        // what a person does: they are not rate-limited, and auto-requests are never keywords.
        let auto = is_browser_auto_path(&context.path.once);
        let asset = auto || self.is_asset(&context.path.once);
        let client = state.client(ip);
        // One lock of the client's state for everything a GET counts.
        let rate = {
            let c = &self.config;
            let mut cs = client.lock();
            if asset {
                // Assets have a budget of their own, much larger: a page's twenty scripts never
                // reach it, a client hammering one stylesheet does (counted in this process).
                let q = WindowQuery {
                    rate_window_ms: c.rate_window_ms,
                    rate_max: c.asset_rate_max,
                    rate_keep: c.asset_rate_flood + 1,
                };
                let w = count_window(&mut cs.asset_requests, &q, now);
                let all =
                    rate_outcome(&w, now, c.asset_rate_max, c.asset_rate_flood, c.rate_window_ms, "asset requests");
                // The same file again and again: the page limits apply to each asset path.
                let n = cs.count_asset_repeat(fingerprint(&context.path.once), now, c.rate_window_ms);
                let same = RequestWindows { rate_count: n, rate_clear_at: now + c.rate_window_ms };
                let one =
                    rate_outcome(&same, now, c.rate_max, c.rate_flood, c.rate_window_ms, "requests for one asset");
                match (&all.ban, &one.ban, &all.limited) {
                    (Some(_), _, _) => all,
                    (None, Some(_), _) => one,
                    (None, None, Some(_)) => all,
                    (None, None, None) => one,
                }
            } else {
                // Any GET of a page starts its form timer (an XHR GET of the same path is rare,
                // and a missed GET would make an honest POST look like a bot's).
                if req.method.eq_ignore_ascii_case("GET") {
                    cs.note_page_get(fingerprint(&context.path.once), now, c.form_memory_ms);
                }
                let w = match shared {
                    Some(w) => w,
                    None => self.local_request_windows(&mut cs, &self.window_query(req), now),
                };
                self.rate(&w, now)
            }
        };
        let mut rate = rate;
        if !self.on(Detector::Flood) {
            rate.ban = None;
        }
        if !self.on(Detector::RateLimit) {
            rate.limited = None;
        }
        let honeypot =
            if self.on(Detector::Honeypot) { self.honeypot(state, &client, req, &context.path, now) } else { None };
        context.slot = Some(client);
        let keyword =
            if auto || !self.on(Detector::Keyword) { None } else { self.keyword(state, &lists, &context.path) };
        let (honeypot_ban, honeypot_signal) = match honeypot {
            Some((f, true)) => (Some(f), None),
            Some((f, false)) => (None, Some(f)),
            None => (None, None),
        };
        let finding = keyword.or(honeypot_ban).or(rate.ban);
        if let Some(finding) = finding {
            let ban = self.ban(state, mode, ip, &finding, now);
            let verdict = Verdict { action: Action::Block, finding: Some(finding), ban };
            return Inspection { verdict, context };
        }
        let payload = self.payload_verdict(state, mode, &mut context, now);
        if let Some(v) = payload.as_ref().filter(|v| !v.is_allow()) {
            return Inspection { verdict: v.clone(), context };
        }
        if let Some((retry_after_s, finding)) = rate.limited {
            let verdict = Verdict { action: Action::RateLimit { retry_after_s }, finding: Some(finding), ban: None };
            return Inspection { verdict, context };
        }
        if let Some(signal) = honeypot_signal {
            // A weak signal: the request passes, the event is recorded (action `flag`).
            return Inspection {
                verdict: Verdict { action: Action::Allow, finding: Some(signal), ban: None },
                context,
            };
        }
        Inspection { verdict: Verdict::ALLOW, context }
    }

    /// The login rate limit: form POSTs to login pages, per client. Login pages are exempt from
    /// keywords and the honeypot, so without this password guessing was never slowed.
    fn login_rate(
        &self,
        state: &WafState,
        mode: Mode,
        ctx: &mut RequestContext,
        req: &RequestInfo<'_>,
        now: u64,
    ) -> Option<Verdict> {
        let c = &self.config;
        if c.login_rate_max == 0
            || !self.on(Detector::RateLimit)
            || !req.method.eq_ignore_ascii_case("POST")
            || !self.login_paths.matches(&ctx.path.once)
        {
            return None;
        }
        let client = ctx.slot.get_or_insert_with(|| state.client(ctx.client)).clone();
        let (count, clear_at) = {
            let mut cs = client.lock();
            let keep = c.login_rate_flood as usize + 1;
            push_window(&mut cs.login_posts, now, now, c.login_rate_window_ms, keep, |t| *t);
            let n = cs.login_posts.len() as u32;
            let clear =
                cs.login_posts.get(n.saturating_sub(c.login_rate_max + 1) as usize).map(|t| t + c.login_rate_window_ms);
            if n > c.login_rate_flood {
                cs.login_posts.clear();
            }
            (n, clear)
        };
        let evidence = json!({"count": count, "limit": c.login_rate_max, "flood": c.login_rate_flood,
            "window_s": secs(c.login_rate_window_ms), "path": ctx.path.once});
        if count > c.login_rate_flood {
            let f = Finding {
                detector: Detector::Flood,
                reason: format!("Login flood ({count} login posts within {}s)", secs(c.login_rate_window_ms)),
                evidence,
            };
            let ban = self.ban(state, mode, ctx.client, &f, now);
            return Some(Verdict { action: Action::Block, finding: Some(f), ban });
        }
        if count > c.login_rate_max {
            let retry_after_s = clear_at.unwrap_or(now).saturating_sub(now).div_ceil(1000).max(1);
            let f = Finding {
                detector: Detector::RateLimit,
                reason: format!("Too many login attempts ({count} within {}s)", secs(c.login_rate_window_ms)),
                evidence,
            };
            return Some(Verdict { action: Action::RateLimit { retry_after_s }, finding: Some(f), ban: None });
        }
        None
    }

    /// Whether a detector may make findings (`detectors_off`).
    fn on(&self, d: Detector) -> bool {
        self.detectors_mask & (1 << d as u16) == 0
    }

    /// Whether the layer should hand the request's headers to the engine (payload inspection on).
    pub fn wants_headers(&self) -> bool {
        self.payload.is_some()
    }

    /// The payload settings in force.
    pub fn payload_config(&self) -> Option<&aiwaf_payload::PayloadConfig> {
        self.payload.as_ref().map(|p| p.config())
    }

    fn inspect_payload_head(&self, state: &WafState, req: &RequestInfo<'_>, ctx: &mut RequestContext, now: u64) {
        let Some(insp) = self.payload.as_ref() else { return };
        let mut report = aiwaf_payload::Report::default();
        let head =
            aiwaf_payload::HeadParts { method: req.method, path: req.path, query: req.query, headers: req.headers };
        let profile = state.profile();
        profile.maybe_publish(now);
        // only a request with arguments (a query or a body) is checked and learned: a plain
        // GET costs the profile nothing
        let args = req.query.is_some_and(|q| !q.is_empty()) || ctx.wants_body;
        let mut shape = (args && profile.config().enabled).then(Box::<aiwaf_payload::Shape>::default);
        insp.inspect_head_profiled(
            &head,
            &state.payload_overlay(),
            shape.as_deref_mut().map(|s| (profile, s)),
            &mut report,
        );
        ctx.shape = shape;
        ctx.payload = (!report.is_clean()).then(|| Box::new(report));
    }

    /// Learns the request into the profile: with no finding, or as a vote for relearning when
    /// only the profile found something and the client has a history of clean requests
    /// (`history`: answered 2xx/3xx with no finding) — a fresh address cannot vote.
    fn learn_profile(&self, state: &WafState, ctx: &RequestContext, history: u32, now: u64) {
        let Some(shape) = ctx.shape.as_deref() else { return };
        let vote = match ctx.payload.as_deref() {
            None => false,
            // every finding kept is the profile's, and none was dropped unseen
            Some(r)
                if r.findings_dropped == 0 && r.findings.iter().all(|f| f.class == aiwaf_payload::Class::Profile) =>
            {
                true
            }
            Some(_) => return,
        };
        if vote && history < PROFILE_VOTER_HISTORY {
            return;
        }
        let client = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            ctx.client.hash(&mut h);
            h.finish()
        };
        state.profile().learn(shape, client, vote, now);
    }

    /// Whether a request carries a body worth inspecting: a method with a body (or any method
    /// that declares one), and a content type that is text (forms, multipart fields, JSON, XML, text) or none at all. Uploads of
    /// images, archives and other binary types stream through uninspected.
    pub fn wants_body(&self, req: &RequestInfo<'_>) -> bool {
        if self.payload.is_none() {
            return false;
        }
        // these methods have no body by convention, but a body sent with one reaches an
        // application that reads it: inspected too when one is declared
        if matches!(req.method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "DELETE")
            && !req.headers.iter().any(|(n, v)| {
                (n.len() == 14 && n.eq_ignore_ascii_case("content-length") && v.trim_ascii() != b"0")
                    || (n.len() == 17 && n.eq_ignore_ascii_case("transfer-encoding"))
            })
        {
            return false;
        }
        let Some(ct) = req.content_type else { return true };
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        mime.is_empty()
            || mime.starts_with("text/")
            || matches!(
                mime.as_str(),
                "application/x-www-form-urlencoded"
                    | "multipart/form-data"
                    | "multipart/mixed"
                    | "application/json"
                    | "application/xml"
                    | "application/graphql"
                    | "application/javascript"
                    | "application/x-ndjson"
            )
            || mime.ends_with("+json")
            || mime.ends_with("+xml")
    }

    /// Request-body phase: inspects the first bytes of the body (`truncated`: it was longer)
    /// together with what the headers phase found. `path` is the raw request path.
    #[allow(clippy::too_many_arguments)] // The facts of one body.
    pub fn inspect_body(
        &self,
        state: &WafState,
        mode: Mode,
        ctx: &mut RequestContext,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        truncated: bool,
        now: u64,
    ) -> Verdict {
        let Some(insp) = &self.payload else { return Verdict::ALLOW };
        if mode == Mode::Off || !ctx.wants_body {
            return Verdict::ALLOW;
        }
        ctx.wants_body = false;
        let mut report = ctx.payload.take().unwrap_or_default();
        let profile = state.profile();
        insp.inspect_body_profiled(
            path,
            content_type,
            body,
            truncated,
            &state.payload_overlay(),
            ctx.shape.as_deref_mut().map(|s| (profile, s)),
            &mut report,
        );
        ctx.payload = (!report.is_clean()).then_some(report);
        self.payload_verdict(state, mode, ctx, now).unwrap_or(Verdict::ALLOW)
    }

    /// The verdict on the payload findings so far: a block when the score reaches the
    /// threshold (a ban when the client keeps sending them), a flag when there are findings
    /// below it, nothing when clean. While a body is still to come, only a block is decided.
    fn payload_verdict(&self, state: &WafState, mode: Mode, ctx: &mut RequestContext, now: u64) -> Option<Verdict> {
        let report = ctx.payload.as_ref()?;
        let cfg = self.payload.as_ref()?.config();
        let blocks = report.should_block(cfg);
        if !blocks && ctx.wants_body {
            return None;
        }
        let mut evidence = report.to_json();
        evidence["threshold"] = cfg.threshold.into();
        evidence["paranoia"] = cfg.paranoia.into();
        let finding =
            Finding { detector: Detector::Payload, reason: format!("Payload: {}", report.summary()), evidence };
        if !blocks {
            return Some(Verdict { action: Action::Allow, finding: Some(finding), ban: None });
        }
        // A block by the learned profile alone is never counted toward a ban (a site that
        // changed a form blocks its users until relearned; it must not ban them), and is a vote
        // for relearning what the request brought (blocked, it never reaches the response phase).
        if report.findings_dropped == 0
            && report.findings.iter().filter(|f| !f.shadow).all(|f| f.class == aiwaf_payload::Class::Profile)
        {
            if mode == Mode::Block {
                let history = {
                    let client = ctx.slot.get_or_insert_with(|| state.client(ctx.client));
                    client.lock().clean_served
                };
                self.learn_profile(state, ctx, history, now);
            }
            return Some(Verdict { action: Action::Block, finding: Some(finding), ban: None });
        }
        // Repeat senders are banned; one false positive is a blocked request, never a ban.
        let c = &self.config;
        let hits = {
            let client = ctx.slot.get_or_insert_with(|| state.client(ctx.client));
            let mut cs = client.lock();
            push_window(&mut cs.payload_hits, now, now, c.payload_ban_window_ms, c.payload_ban_hits as usize, |t| *t);
            let n = cs.payload_hits.len() as u32;
            if n >= c.payload_ban_hits {
                cs.payload_hits.clear();
            }
            n
        };
        let ban = if hits >= c.payload_ban_hits {
            let f = Finding {
                reason: format!("{} ({hits} payload blocks within {}s)", finding.reason, secs(c.payload_ban_window_ms)),
                ..finding.clone()
            };
            self.ban(state, mode, ctx.client, &f, now)
        } else {
            None
        };
        Some(Verdict { action: Action::Block, finding: Some(finding), ban })
    }

    /// What the per-client request windows need to know about a request (for shared state).
    pub fn window_query(&self, req: &RequestInfo<'_>) -> WindowQuery {
        let c = &self.config;
        let _ = req;
        WindowQuery { rate_window_ms: c.rate_window_ms, rate_max: c.rate_max, rate_keep: c.rate_flood + 1 }
    }

    /// Whether a request needs the per-client windows at all (not exempt, not banned, not off):
    /// the layer asks shared state only then.
    pub fn needs_windows(&self, state: &WafState, mode: Mode, req: &RequestInfo<'_>, now: u64) -> bool {
        if mode == Mode::Off || self.exempt_ips.contains(req.client) || state.lists().exemptions.contains(req.client) {
            return false;
        }
        let raw = crate::ip::canonical(req.client);
        if state.active_ban(self.client_key(raw), now).is_some() || state.active_ban(raw, now).is_some() {
            return false;
        }
        let path = NormalizedPath::new(req.path);
        !self.exempt_paths.matches(&path.once) && !is_browser_auto_path(&path.once) && !self.is_asset(&path.once)
    }

    /// Whether a normalised path is a static asset (by prefix or extension).
    pub fn is_asset(&self, normalized: &str) -> bool {
        let c = &self.config;
        c.asset_prefixes.iter().any(|p| normalized.starts_with(p.as_str())) || self.asset_extensions.matches(normalized)
    }

    /// The upstream served `ctx`'s path as an HTML page to a GET: forms posted from it are
    /// timed by the honeypot (endpoints never served as a page — webhooks, API posts — are not).
    pub fn note_html_page(&self, state: &WafState, ctx: &RequestContext) {
        if !ctx.exempt {
            state.add_form_page(&ctx.path.once);
        }
    }

    /// Counts a request in `client`'s windows kept in this process and returns them: what
    /// [`Engine::inspect`] does without shared state. Public so shared state can be checked
    /// against it (the Redis scripts must agree with these rules exactly).
    pub fn count_request_locally(&self, state: &WafState, client: IpAddr, q: &WindowQuery, now: u64) -> RequestWindows {
        let slot = state.client(self.client_key(client));
        let mut cs = slot.lock();
        self.local_request_windows(&mut cs, q, now)
    }

    /// Counts a response in `client`'s windows kept in this process (see
    /// [`Engine::count_request_locally`]).
    pub fn count_response_locally(
        &self,
        state: &WafState,
        client: IpAddr,
        q: &ResponseQuery,
        now: u64,
    ) -> ResponseWindows {
        let slot = state.client(self.client_key(client));
        let mut cs = slot.lock();
        self.local_response_windows(&mut cs, q, now)
    }

    /// The request windows kept in this process (the same rules the Redis script applies).
    fn local_request_windows(&self, cs: &mut ClientState, q: &WindowQuery, now: u64) -> RequestWindows {
        count_window(&mut cs.requests, q, now)
    }

    /// Response phase: the upstream answered `status` after `resp_time_s` seconds. Updates the
    /// 404, extension and UUID counters, the model's features and the known-good paths, scores
    /// the request when a model is loaded; may ban the client for its next requests.
    pub fn observe(
        &self,
        state: &WafState,
        mode: Mode,
        ctx: &RequestContext,
        status: u16,
        resp_time_s: f64,
        now: u64,
    ) -> Observation {
        self.observe_inner(state, mode, ctx, status, resp_time_s, now, false, None)
    }

    /// [`Engine::observe`] that also returns the feature vector (for training, which replays
    /// logs through exactly this code with the log's timestamps as `now`).
    pub fn replay(
        &self,
        state: &WafState,
        ctx: &RequestContext,
        status: u16,
        resp_time_s: f64,
        now: u64,
    ) -> Observation {
        self.observe_inner(state, Mode::Detect, ctx, status, resp_time_s, now, true, None)
    }

    /// [`Engine::observe`] with the per-client response windows read from shared state.
    #[allow(clippy::too_many_arguments)] // The facts of one response.
    pub fn observe_with(
        &self,
        state: &WafState,
        mode: Mode,
        ctx: &RequestContext,
        status: u16,
        resp_time_s: f64,
        now: u64,
        shared: Option<ResponseWindows>,
    ) -> Observation {
        self.observe_inner(state, mode, ctx, status, resp_time_s, now, false, shared)
    }

    /// What the response windows must count for this answer; `None` when nothing (neither a
    /// 404 nor a UUID path): then shared state need not be asked.
    pub fn response_query(&self, ctx: &RequestContext, status: u16) -> Option<ResponseQuery> {
        if ctx.exempt {
            return None;
        }
        let ok = (200..400).contains(&status);
        let shape = uuid_shape(&ctx.path.once);
        let c = &self.config;
        let uuid_delta = match (status, shape) {
            (_, UuidShape::None) => None,
            (404, UuidShape::Malformed) => Some(c.uuid_malformed_weight),
            (404, _) => Some(c.uuid_not_found_weight),
            _ if ok => Some(-c.uuid_success_decay),
            _ => None,
        };
        // Browser auto-requests (`/favicon.ico` on a site without one) are nobody's probing.
        let not_found = status == 404 && !is_browser_auto_path(&ctx.path.once);
        if !not_found && uuid_delta.is_none() {
            return None;
        }
        Some(ResponseQuery {
            not_found,
            extension: not_found && self.extensions.matches(&ctx.path.once),
            uuid_delta,
            path: truncate(&ctx.path.once, 160).to_string(),
        })
    }

    /// The response windows kept in this process (the same rules the Redis script applies).
    fn local_response_windows(&self, cs: &mut ClientState, q: &ResponseQuery, now: u64) -> ResponseWindows {
        let c = &self.config;
        let mut w = ResponseWindows::default();
        let count = |dq: &mut VecDeque<(u64, Box<str>)>, threshold: u32| -> (u32, Vec<String>) {
            // Distinct paths: the same missing page asked for again is not a new probe.
            if let Some(i) = dq.iter().position(|e| *e.1 == *q.path) {
                dq.remove(i);
            }
            push_window(dq, (now, q.path.as_str().into()), now, c.window_ms, threshold as usize, |e| e.0);
            let n = dq.len() as u32;
            if n >= threshold {
                let paths = dq.drain(..).map(|e| e.1.into_string()).collect();
                return (n, paths);
            }
            (n, Vec::new())
        };
        if q.not_found {
            (w.not_found, w.not_found_paths) = count(&mut cs.not_found, c.not_found_threshold);
        }
        if q.extension {
            (w.extension, w.extension_paths) = count(&mut cs.ext_not_found, c.extension_threshold);
        }
        if let Some(delta) = q.uuid_delta {
            push_window(&mut cs.uuid_events, (now, delta), now, c.uuid_window_ms, 64, |e| e.0);
            w.uuid_score = cs.uuid_events.iter().fold(0i32, |s, e| (s + e.1).max(0));
            if w.uuid_score >= c.uuid_threshold {
                cs.uuid_events.clear();
            }
        }
        w
    }

    /// Findings from the response windows: extension probing, then 404 flood, then UUID tamper.
    fn response_finding(&self, q: &ResponseQuery, w: &ResponseWindows) -> Option<Finding> {
        let c = &self.config;
        if q.extension && w.extension >= c.extension_threshold && self.on(Detector::ExtensionProbe) {
            return Some(Finding {
                detector: Detector::ExtensionProbe,
                reason: format!(
                    "File-extension probing ({} 404s on {} within {}s)",
                    w.extension,
                    self.extensions.list().join(" "),
                    secs(c.window_ms)
                ),
                evidence: json!({"count": w.extension, "threshold": c.extension_threshold,
                    "window_s": secs(c.window_ms), "paths": w.extension_paths}),
            });
        }
        if q.not_found && w.not_found >= c.not_found_threshold && self.on(Detector::NotFoundFlood) {
            return Some(Finding {
                detector: Detector::NotFoundFlood,
                reason: format!("Excessive 404s ({} within {}s)", w.not_found, secs(c.window_ms)),
                evidence: json!({"count": w.not_found, "threshold": c.not_found_threshold,
                    "window_s": secs(c.window_ms), "paths": w.not_found_paths}),
            });
        }
        if q.uuid_delta.is_some() && w.uuid_score >= c.uuid_threshold && self.on(Detector::UuidTamper) {
            return Some(Finding {
                detector: Detector::UuidTamper,
                reason: format!("UUID tampering (score {} within {}s)", w.uuid_score, secs(c.uuid_window_ms)),
                evidence: json!({"score": w.uuid_score, "threshold": c.uuid_threshold,
                    "window_s": secs(c.uuid_window_ms), "last_path": q.path,
                    "malformed": q.uuid_delta == Some(c.uuid_malformed_weight) && q.not_found}),
            });
        }
        None
    }

    #[allow(clippy::too_many_arguments)] // The public wrappers keep the API small.
    fn observe_inner(
        &self,
        state: &WafState,
        mode: Mode,
        ctx: &RequestContext,
        status: u16,
        resp_time_s: f64,
        now: u64,
        want_features: bool,
        shared: Option<ResponseWindows>,
    ) -> Observation {
        let mut out = Observation::default();
        if ctx.exempt || mode == Mode::Off {
            return out;
        }
        let ok = (200..400).contains(&status);
        if ok {
            out.new_known_path = state.add_known_path(&ctx.path.once);
        }
        let model = state.model_guard();
        let c = &self.config;
        let looked_up;
        let client = match &ctx.slot {
            Some(slot) => slot,
            None => {
                looked_up = state.client(ctx.client);
                &looked_up
            }
        };
        let mut cs = client.lock();
        if ok && !want_features && ctx.shape.is_some() {
            self.learn_profile(state, ctx, cs.clean_served, now);
            if ctx.payload.is_none() {
                cs.clean_served = cs.clean_served.saturating_add(1);
            }
        }
        let kw = if model.is_some() || want_features { kw_hits(&state.lists().keywords, &ctx.path) } else { 0 };
        // the model's `payload_score` leaves the learned profile out: a deviation from it alone is
        // never an attack sign (nor a ban)
        let payload_score = ctx.payload.as_ref().map_or(0, |r| r.attack_score());
        let features = cs.features.observe(ctx.raw_path_len, kw, payload_score, status, resp_time_s, now, c.window_ms);
        if want_features {
            out.features = Some(features);
        }
        let mut finding = None;
        if let Some(q) = self.response_query(ctx, status) {
            let w = match shared {
                Some(w) => w,
                None => self.local_response_windows(&mut cs, &q, now),
            };
            finding = self.response_finding(&q, &w);
        }
        // A request without attack signs can never count towards a ban, so it is not scored
        // (most traffic; the forest walk is the costliest step of the response phase).
        // A payload finding is an attack sign too (the `payload_score` feature).
        let signs = c.attack_signs(&features);
        if let Some(m) = model.as_ref().filter(|_| signs) {
            let score = m.score(&features);
            out.score = Some(score);
            if finding.is_none() && self.on(Detector::Anomaly) {
                finding = self.anomaly_rule(&mut cs, &ctx.path.once, &features, score, m.threshold(), signs, now);
            }
        }
        drop(cs);
        if let Some(f) = finding {
            out.ban = self.ban(state, mode, ctx.client, &f, now);
            out.finding = Some(f);
        }
        out
    }

    /// The live anomaly rule: an anomalous request with attack signs counts; enough of them
    /// within the window make a finding.
    #[allow(clippy::too_many_arguments)] // The facts of one scored request.
    fn anomaly_rule(
        &self,
        cs: &mut ClientState,
        path: &str,
        features: &crate::features::Features,
        score: f64,
        threshold: f64,
        signs: bool,
        now: u64,
    ) -> Option<Finding> {
        let c = &self.config;
        if score <= threshold || !signs {
            return None;
        }
        push_window(&mut cs.anomalies, now, now, c.anomaly_window_ms, c.anomaly_min_hits as usize, |t| *t);
        if cs.anomalies.len() < c.anomaly_min_hits as usize {
            return None;
        }
        let named: serde_json::Map<String, serde_json::Value> =
            FEATURE_NAMES.iter().zip(features).map(|(n, v)| (n.to_string(), json!(v))).collect();
        let finding = Finding {
            detector: Detector::Anomaly,
            reason: format!(
                "AI anomaly with attack signs ({} anomalous requests within {}s, score {score:.3} > {threshold:.3})",
                cs.anomalies.len(),
                secs(c.anomaly_window_ms),
            ),
            evidence: json!({"score": score, "threshold": threshold, "features": named,
                "anomalous_requests": cs.anomalies.len(), "window_s": secs(c.anomaly_window_ms), "path": path}),
        };
        cs.anomalies.clear();
        Some(finding)
    }

    /// Training's second pass: a replayed request's features were scored elsewhere (in
    /// parallel); apply the same anomaly rule the server applies live, in time order.
    #[allow(clippy::too_many_arguments)] // The facts of one scored request.
    pub fn judge_anomaly(
        &self,
        state: &WafState,
        client: IpAddr,
        path: &str,
        features: &crate::features::Features,
        score: f64,
        threshold: f64,
        now: u64,
    ) -> Option<Finding> {
        let cs = state.client(self.client_key(client));
        let mut cs = cs.lock();
        let signs = self.config.attack_signs(features);
        self.anomaly_rule(&mut cs, path, features, score, threshold, signs, now)
    }

    fn keyword(&self, state: &WafState, lists: &crate::state::Lists, path: &NormalizedPath) -> Option<Finding> {
        let hit = lists.keywords.find(path)?;
        if state.is_known_path(&path.once) {
            return None;
        }
        Some(Finding {
            detector: Detector::Keyword,
            reason: format!("Keyword block: {}", hit.keyword),
            evidence: json!({"keyword": hit.keyword, "source": hit.source.as_str(), "path": path.once,
                "decoded_twice": path.twice}),
        })
    }

    /// The timing honeypot. A form POST is timed from this client's oldest unmatched GET of
    /// the page it was posted from (the same-site `Referer`, else its own path), and only when
    /// the upstream has served that page as HTML. Too fast, or with no GET at all, is a signal;
    /// `honeypot_min_hits` signals within `honeypot_window_ms` are a ban. Returns the finding
    /// and whether it bans.
    fn honeypot(
        &self,
        state: &WafState,
        client: &ClientSlot,
        req: &RequestInfo<'_>,
        target: &NormalizedPath,
        now: u64,
    ) -> Option<(Finding, bool)> {
        let c = &self.config;
        if !req.method.eq_ignore_ascii_case("POST") || !is_form(req.content_type) {
            return None;
        }
        let referer = same_site_referer_path(req.referer, req.host).map(NormalizedPath::new);
        let page = referer.as_ref().map_or(target.once.as_str(), |p| p.once.as_str());
        if !state.is_form_page(page) {
            return None;
        }
        // A clock that only tells whole seconds (a log's timestamps) cannot place a POST under a
        // 1 s threshold: a POST in its GET's second or the next is "faster than 2 s", and the
        // threshold is widened by the resolution. A ban still needs `honeypot_min_hits` signals:
        // one quick person is never enough.
        let res = state.clock_resolution_ms();
        let (min_form_ms, min_hits) = (c.min_form_time_ms + res, c.honeypot_min_hits);
        let mut cs = client.lock();
        let (reason, elapsed) = match cs.take_page_get(fingerprint(page), now, c.form_memory_ms) {
            None => ("Form POST without a GET of its page".to_string(), None),
            Some(t) if now.saturating_sub(t) < min_form_ms => {
                let e = now.saturating_sub(t);
                (format!("Form submitted too quickly ({:.2}s)", secs(e)), Some(e))
            }
            Some(_) => return None,
        };
        push_window(&mut cs.honeypot_hits, now, now, c.honeypot_window_ms, min_hits as usize, |t| *t);
        let hits = cs.honeypot_hits.len() as u32;
        let bans = hits >= min_hits;
        if bans {
            cs.honeypot_hits.clear();
        }
        let finding = Finding {
            detector: Detector::Honeypot,
            reason: if bans {
                format!("{reason}: {hits} suspicious form posts within {}s", secs(c.honeypot_window_ms))
            } else {
                reason
            },
            evidence: json!({"page": page, "since_get_s": elapsed.map(secs), "min_form_time_s": secs(min_form_ms),
                "signals": hits, "min_hits": min_hits, "window_s": secs(c.honeypot_window_ms),
                "clock_resolution_s": secs(res)}),
        };
        Some((finding, bans))
    }

    fn rate(&self, w: &RequestWindows, now: u64) -> RateOutcome {
        let c = &self.config;
        rate_outcome(w, now, c.rate_max, c.rate_flood, c.rate_window_ms, "requests")
    }

    fn ban(&self, state: &WafState, mode: Mode, ip: IpAddr, f: &Finding, now: u64) -> Option<Ban> {
        let offences = state.prior_offences(ip, now, self.config.offence_memory_ms) + 1;
        let expires_at = self.config.ban_duration(offences).map(|d| now.saturating_add(d));
        if mode != Mode::Block {
            return None;
        }
        let seq = state.add_pending_ban(
            ip,
            BanState {
                reason: f.reason.clone(),
                detector: f.detector.as_str().to_string(),
                created_at: now,
                expires_at,
                offences,
            },
        );
        Some(Ban {
            ip,
            detector: f.detector,
            reason: f.reason.clone(),
            evidence: f.evidence.clone(),
            created_at: now,
            expires_at,
            offences,
            seq,
        })
    }
}

/// What the request-phase windows need to know (the input of the shared-state script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowQuery {
    /// Rate window.
    pub rate_window_ms: u64,
    /// Requests allowed in the window.
    pub rate_max: u32,
    /// Timestamps to keep (flood + 1: enough to tell a flood).
    pub rate_keep: u32,
}

/// The per-client request windows after counting this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestWindows {
    /// Requests in the rate window, this one included (saturates at flood + 1).
    pub rate_count: u32,
    /// When the client is back under the limit (ms since the epoch), when over it.
    pub rate_clear_at: u64,
}

/// What the response-phase windows need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseQuery {
    /// The upstream answered 404.
    pub not_found: bool,
    /// ... on a probed file extension.
    pub extension: bool,
    /// UUID score change, when the path carries a UUID.
    pub uuid_delta: Option<i32>,
    /// The normalised path (kept for evidence).
    pub path: String,
}

/// The per-client response windows after counting this response. A count at or over its
/// threshold comes with the paths behind it, and the window starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseWindows {
    /// 404s on non-exempt paths in the window.
    pub not_found: u32,
    /// Their paths, when the threshold was reached.
    pub not_found_paths: Vec<String>,
    /// 404s on probed extensions in the window.
    pub extension: u32,
    /// Their paths, when the threshold was reached.
    pub extension_paths: Vec<String>,
    /// UUID-tamper score (never below 0).
    pub uuid_score: i32,
}

struct RateOutcome {
    ban: Option<Finding>,
    limited: Option<(u64, Finding)>,
}

/// Counts a request in a window (keeping `rate_keep` times) and returns the count and when the
/// client is back under `rate_max`. A count over `rate_keep - 1` (a flood) starts afresh.
fn count_window(times: &mut crate::window::Times, q: &WindowQuery, now: u64) -> RequestWindows {
    times.push(now, q.rate_window_ms, q.rate_keep as usize);
    let count = times.len() as u32;
    let rate_clear_at = match times.get(count.saturating_sub(q.rate_max + 1) as usize) {
        Some(t) if count > q.rate_max => t + q.rate_window_ms,
        _ => now,
    };
    if count >= q.rate_keep {
        // The flood is punished; start counting afresh.
        times.clear();
    }
    RequestWindows { rate_count: count, rate_clear_at }
}

/// The rate decision on a counted window: over `flood` a ban, over `max` a 429.
fn rate_outcome(w: &RequestWindows, now: u64, max: u32, flood: u32, window_ms: u64, what: &str) -> RateOutcome {
    let count = w.rate_count;
    let evidence = |limit: u32| json!({"count": count, "limit": limit, "window_s": secs(window_ms), "counted": what});
    if count > flood {
        let ban = Finding {
            detector: Detector::Flood,
            reason: format!("Flood pattern ({count} {what} within {}s)", secs(window_ms)),
            evidence: evidence(flood),
        };
        return RateOutcome { ban: Some(ban), limited: None };
    }
    if count > max {
        let retry = w.rate_clear_at.saturating_sub(now).div_ceil(1000).max(1);
        let finding = Finding {
            detector: Detector::RateLimit,
            reason: format!("Too many {what} ({count} within {}s)", secs(window_ms)),
            evidence: evidence(max),
        };
        return RateOutcome { ban: None, limited: Some((retry, finding)) };
    }
    RateOutcome { ban: None, limited: None }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The path of a `Referer` that points at this site (relative, or with the request's host).
fn same_site_referer_path<'a>(referer: Option<&'a str>, host: Option<&str>) -> Option<&'a str> {
    let r = referer?.trim();
    let path = if r.starts_with('/') && !r.starts_with("//") {
        r
    } else {
        let rest = r.strip_prefix("https://").or_else(|| r.strip_prefix("http://"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        if !host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return None;
        }
        path
    };
    Some(path.split(['?', '#']).next().unwrap_or("/"))
}

/// Form posts are url-encoded or multipart; JSON and other API bodies are not.
fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.trim_start().to_ascii_lowercase();
        ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("multipart/form-data")
    })
}

#[cfg(test)]
mod tests;
