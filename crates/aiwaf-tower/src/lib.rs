//! aiwaf as a tower [`Layer`](tower::Layer).
//!
//! [`WafLayer`] wraps any `Service<Request<B>>` (an axum router, a hyper proxy). For each
//! request it asks the engine for a verdict before calling the inner service, answers blocks
//! itself (403, or 429 with `Retry-After`), and shows the upstream's status to the engine's
//! response phase. `aiwaf serve` is exactly this layer around a proxy service, so the proxy
//! and Rust apps share one inspection path.
//!
//! The layer never waits on storage: records go to a bounded channel with `try_send`; when it
//! is full the record is dropped and counted ([`Waf::dropped_records`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aiwaf_engine::ip::ForwardingHeaders;
use aiwaf_engine::{Action, Engine, Event, Finding, Mode, Record, RequestEntry, RequestInfo, WafState};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, REFERER, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tokio::sync::mpsc;

pub mod shared;

/// Header carrying the request id, on the response and on the request sent upstream.
pub const REQUEST_ID_HEADER: &str = "x-aiwaf-request-id";

/// The TCP peer of a request, put in the request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Response body: aiwaf's own small body, or the inner service's.
pub type WafBody<B> = Either<Full<Bytes>, B>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A histogram of fixed buckets made of atomics: no lock on the request path.
#[derive(Debug)]
pub struct AtomicHistogram {
    /// Upper bounds of the buckets.
    pub bounds: &'static [f64],
    /// Counts per bucket (not cumulative), the last one for +Inf.
    pub buckets: Vec<AtomicU64>,
    /// Sum of observations, in millionths.
    pub sum_micros: AtomicU64,
    /// Number of observations.
    pub count: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds.
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Seconds buckets for latencies.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
/// Buckets for anomaly scores (0..1).
pub const SCORE_BUCKETS: &[f64] = &[0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9];

/// Detectors in a fixed order, for per-detector counters without a map.
pub const DETECTORS: &[aiwaf_engine::Detector] = &[
    aiwaf_engine::Detector::Blacklist,
    aiwaf_engine::Detector::RateLimit,
    aiwaf_engine::Detector::Flood,
    aiwaf_engine::Detector::Keyword,
    aiwaf_engine::Detector::Honeypot,
    aiwaf_engine::Detector::UuidTamper,
    aiwaf_engine::Detector::NotFoundFlood,
    aiwaf_engine::Detector::ExtensionProbe,
    aiwaf_engine::Detector::Anomaly,
    aiwaf_engine::Detector::Manual,
];

/// Counters kept by the layer (all atomics; rendered as Prometheus text by the admin server).
#[derive(Debug)]
pub struct Counters {
    /// Findings by detector (index into [`DETECTORS`]): blocks in block mode, would-blocks in detect mode.
    pub by_detector: Vec<AtomicU64>,
    /// Time the engine took to decide (request phase).
    pub decision_seconds: AtomicHistogram,
    /// Time the upstream took to answer (response headers).
    pub upstream_seconds: AtomicHistogram,
    /// Anomaly scores of scored requests.
    pub anomaly_scores: AtomicHistogram,
    /// Requests seen.
    pub requests: AtomicU64,
    /// Requests answered by aiwaf with 403.
    pub blocked: AtomicU64,
    /// Requests answered by aiwaf with 429.
    pub rate_limited: AtomicU64,
    /// Would-block verdicts in detect mode.
    pub would_block: AtomicU64,
    /// Bans decided.
    pub bans: AtomicU64,
    /// Records dropped because the storage channel was full.
    pub dropped_records: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            by_detector: DETECTORS.iter().map(|_| AtomicU64::new(0)).collect(),
            decision_seconds: AtomicHistogram::new(LATENCY_BUCKETS),
            upstream_seconds: AtomicHistogram::new(LATENCY_BUCKETS),
            anomaly_scores: AtomicHistogram::new(SCORE_BUCKETS),
            requests: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            would_block: AtomicU64::new(0),
            bans: AtomicU64::new(0),
            dropped_records: AtomicU64::new(0),
        }
    }
}

impl Counters {
    fn finding(&self, d: aiwaf_engine::Detector) {
        if let Some(i) = DETECTORS.iter().position(|x| *x == d) {
            self.by_detector[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Shared per-client state and what to do when it is unreachable.
pub struct Shared {
    /// The Redis windows.
    pub redis: shared::RedisWindows,
    /// `true`: fall back to this process's windows; `false`: answer 503.
    pub fail_open: bool,
}

struct Inner {
    shared: Option<Shared>,
    engine: ArcSwap<Engine>,
    state: WafState,
    mode: Mode,
    sink: Option<mpsc::Sender<Record>>,
    request_logging: AtomicBool,
    counters: Counters,
    id_prefix: u32,
    id_counter: AtomicU64,
}

/// The running WAF: engine, in-memory state, mode and the storage channel. Cheap to clone.
#[derive(Clone)]
pub struct Waf {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Waf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waf").field("mode", &self.inner.mode).field("state", &self.inner.state).finish()
    }
}

impl Waf {
    /// A WAF with no storage: bans live in memory only.
    pub fn new(engine: Engine, mode: Mode) -> Waf {
        Waf::with_sink(engine, mode, None)
    }

    /// A WAF that sends its records (events, bans, request log) to `sink`.
    pub fn with_sink(engine: Engine, mode: Mode, sink: Option<mpsc::Sender<Record>>) -> Waf {
        Waf::with_shared(engine, mode, sink, None)
    }

    /// A WAF whose per-client windows live in shared state (several instances, one memory).
    pub fn with_shared(engine: Engine, mode: Mode, sink: Option<mpsc::Sender<Record>>, shared: Option<Shared>) -> Waf {
        let state = WafState::new(engine.config());
        let seed = now_ms() ^ (u64::from(std::process::id()) << 32);
        Waf {
            inner: Arc::new(Inner {
                shared,
                engine: ArcSwap::from_pointee(engine),
                state,
                mode,
                sink,
                request_logging: AtomicBool::new(false),
                counters: Counters::default(),
                id_prefix: (seed ^ (seed >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u32,
                id_counter: AtomicU64::new(0),
            }),
        }
    }

    /// The in-memory state (lists snapshot, pending bans, client table).
    pub fn state(&self) -> &WafState {
        &self.inner.state
    }

    /// The current engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.inner.engine.load_full()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Turns the request log on or off.
    pub fn set_request_logging(&self, on: bool) {
        self.inner.request_logging.store(on, Ordering::Relaxed);
    }

    /// Whether the request log is on.
    pub fn request_logging(&self) -> bool {
        self.inner.request_logging.load(Ordering::Relaxed)
    }

    /// The shared state, when configured.
    pub fn shared(&self) -> Option<&Shared> {
        self.inner.shared.as_ref()
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Records dropped because storage could not keep up.
    pub fn dropped_records(&self) -> u64 {
        self.inner.counters.dropped_records.load(Ordering::Relaxed)
    }

    /// A fresh request id: 20 hex digits (process prefix + counter), as a header value.
    fn next_request_id(&self) -> HeaderValue {
        let n = self.inner.id_counter.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff_ffff;
        let v = (u128::from(self.inner.id_prefix) << 48) | u128::from(n);
        let mut buf = [0u8; 20];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((v >> (4 * (19 - i))) & 0xf) as usize];
        }
        HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&buf)).expect("hex digits are a valid header value")
    }

    fn emit(&self, record: Record) {
        if let Some(sink) = &self.inner.sink
            && sink.try_send(record).is_err()
        {
            let n = self.inner.counters.dropped_records.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n + 1, "Storage channel full; records dropped.");
            }
        }
    }
}

/// How the layer finds the TCP peer of a request.
pub type PeerFn = fn(&http::Extensions) -> Option<IpAddr>;

fn peer_from_extension(ext: &http::Extensions) -> Option<IpAddr> {
    ext.get::<PeerAddr>().map(|p| p.0.ip())
}

/// The tower layer.
#[derive(Clone)]
pub struct WafLayer {
    waf: Waf,
    peer: PeerFn,
}

impl WafLayer {
    /// A layer reading the peer from the [`PeerAddr`] request extension.
    pub fn new(waf: Waf) -> WafLayer {
        WafLayer { waf, peer: peer_from_extension }
    }

    /// Reads the peer some other way (e.g. axum's `ConnectInfo<SocketAddr>`).
    pub fn peer_addr_with(mut self, peer: PeerFn) -> WafLayer {
        self.peer = peer;
        self
    }
}

impl<S> tower::Layer<S> for WafLayer {
    type Service = WafService<S>;
    fn layer(&self, inner: S) -> WafService<S> {
        WafService { inner, waf: self.waf.clone(), peer: self.peer }
    }
}

/// The service produced by [`WafLayer`].
#[derive(Clone)]
pub struct WafService<S> {
    inner: S,
    waf: Waf,
    peer: PeerFn,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn header(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn all<'a>(h: &'a HeaderMap, name: &'static str) -> Vec<&'a str> {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// Data kept from the request for the response phase and the logs.
struct Meta {
    request_id: HeaderValue,
    client: IpAddr,
    method: http::Method,
    uri: http::Uri,
    user_agent: String,
    referer: String,
    ts: u64,
    started: Instant,
}

impl Meta {
    fn id(&self) -> String {
        self.request_id.to_str().unwrap_or_default().to_string()
    }

    fn path_and_query(&self) -> String {
        let mut s = self.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        s.truncate(s.floor_char_boundary(2048));
        s
    }

    fn event(&self, finding: &Finding, action: &'static str, mode: Mode) -> Record {
        Record::Event(Event {
            request_id: self.id(),
            ts: self.ts,
            ip: self.client,
            method: self.method.to_string(),
            path: self.path_and_query(),
            detector: finding.detector,
            action,
            reason: finding.reason.clone(),
            evidence: finding.evidence.clone(),
            mode: mode.as_str(),
        })
    }

    fn log_entry(&self, status: u16, content_length: Option<u64>, blocked: bool) -> Record {
        Record::Request(RequestEntry {
            request_id: self.id(),
            ts: self.ts,
            ip: self.client,
            method: self.method.to_string(),
            path: self.uri.path().to_string(),
            query: self.uri.query().unwrap_or("").to_string(),
            status,
            response_time_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            user_agent: self.user_agent.clone(),
            referer: self.referer.clone(),
            content_length,
            blocked,
        })
    }
}

fn block_response<B>(
    status: StatusCode,
    finding: &Finding,
    request_id: &HeaderValue,
    html: bool,
    retry_after: Option<u64>,
) -> Response<WafBody<B>> {
    let id = request_id.to_str().unwrap_or_default();
    let (body, ctype) = if html {
        let reason = escape_html(&finding.reason);
        (
            format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {text}</title></head>\
                 <body><h1>{code} {text}</h1><p>This request was blocked by aiwaf: {reason}.</p>\
                 <p>Request id: <code>{id}</code></p></body></html>\n",
                code = status.as_u16(),
                text = status.canonical_reason().unwrap_or(""),
            ),
            "text/html; charset=utf-8",
        )
    } else {
        let json = serde_json::json!({"blocked": true, "reason": finding.reason, "request_id": id});
        (format!("{json}\n"), "application/json")
    };
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HeaderName::from_static(REQUEST_ID_HEADER), request_id.clone());
    if let Some(s) = retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for WafService<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<WafBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // The clone may not be ready; call the instance that was polled (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let waf = self.waf.clone();
        let mode = waf.mode();
        waf.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        if mode == Mode::Off {
            return Box::pin(async move { Ok(inner.call(req).await?.map(Either::Right)) });
        }
        let peer = (self.peer)(req.extensions()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // Everything else happens in the future, which owns the request: the engine's view of
        // it borrows the request's own strings, even across a wait on shared state.
        Box::pin(async move {
            let engine = waf.engine();
            let state_now = now_ms();
            let headers = req.headers();
            let client = if engine.trusts_proxies() {
                let forwarded = all(headers, "forwarded");
                let xff = all(headers, "x-forwarded-for");
                let fh = ForwardingHeaders {
                    forwarded: &forwarded,
                    x_forwarded_for: &xff,
                    x_real_ip: header(headers, "x-real-ip"),
                };
                engine.client_ip(peer, &fh)
            } else {
                aiwaf_engine::ip::canonical(peer)
            };
            let info = RequestInfo {
                client,
                method: req.method().as_str(),
                path: req.uri().path(),
                content_type: header(headers, CONTENT_TYPE),
                accept: header(headers, ACCEPT),
                sec_fetch_dest: header(headers, "sec-fetch-dest"),
            };
            let wants_html = info.accept.is_some_and(|a| a.contains("text/html"));
            let logging = waf.request_logging();
            let meta = Meta {
                request_id: waf.next_request_id(),
                client,
                method: req.method().clone(),
                uri: req.uri().clone(),
                user_agent: if logging { header(headers, USER_AGENT).unwrap_or("").to_string() } else { String::new() },
                referer: if logging { header(headers, REFERER).unwrap_or("").to_string() } else { String::new() },
                ts: state_now,
                started: Instant::now(),
            };
            let mut shared_windows = None;
            if let Some(shared) = &waf.inner.shared
                && engine.needs_windows(waf.state(), mode, &info, state_now)
            {
                match shared.redis.request_windows(client, &engine.window_query(&info), state_now).await {
                    Ok(w) => shared_windows = Some(w),
                    Err(_) if shared.fail_open => {}
                    Err(_) => return Ok(unavailable(&meta.request_id)),
                }
            }
            let decide = Instant::now();
            let inspection = engine.inspect_with(waf.state(), mode, &info, state_now, shared_windows);
            waf.inner.counters.decision_seconds.observe(decide.elapsed().as_secs_f64());

            let verdict = inspection.verdict;
            if let Some(ban) = &verdict.ban {
                waf.inner.counters.bans.fetch_add(1, Ordering::Relaxed);
                tracing::info!(client = %ban.ip, detector = ban.detector.as_str(), reason = %ban.reason, "Client banned.");
                waf.emit(Record::Ban(ban.clone()));
            }
            if let Some(finding) = &verdict.finding {
                waf.inner.counters.finding(finding.detector);
                let action = match (mode, verdict.action, verdict.ban.is_some()) {
                    (Mode::Block, Action::RateLimit { .. }, _) => "rate_limit",
                    (Mode::Block, _, true) => "ban",
                    (Mode::Block, _, false) => "block",
                    (_, Action::RateLimit { .. }, _) => "would_rate_limit",
                    (_, _, _) if finding.detector == aiwaf_engine::Detector::Blacklist => "would_block",
                    _ => "would_ban",
                };
                waf.emit(meta.event(finding, action, mode));
            }
            if mode == Mode::Block && !verdict.is_allow() {
                let finding = verdict.finding.as_ref().expect("a block always carries its finding");
                let (status, retry) = match verdict.action {
                    Action::RateLimit { retry_after_s } => {
                        waf.inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        (StatusCode::TOO_MANY_REQUESTS, Some(retry_after_s))
                    }
                    _ => {
                        waf.inner.counters.blocked.fetch_add(1, Ordering::Relaxed);
                        (StatusCode::FORBIDDEN, None)
                    }
                };
                let resp = block_response(status, finding, &meta.request_id, wants_html, retry);
                if logging {
                    let len = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
                    waf.emit(meta.log_entry(status.as_u16(), len, true));
                }
                return Ok(resp);
            }
            if mode == Mode::Detect && !verdict.is_allow() {
                waf.inner.counters.would_block.fetch_add(1, Ordering::Relaxed);
            }

            req.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), meta.request_id.clone());
            let context = inspection.context;
            let upstream = Instant::now();
            let mut resp = inner.call(req).await?;
            waf.inner.counters.upstream_seconds.observe(upstream.elapsed().as_secs_f64());
            let status = resp.status().as_u16();
            let now = now_ms();
            let mut shared_windows = None;
            if let Some(shared) = &waf.inner.shared
                && let Some(q) = engine.response_query(&context, status)
            {
                let c = engine.config();
                let w = shared
                    .redis
                    .response_windows(
                        context.client,
                        &q,
                        c.window_ms,
                        c.not_found_threshold,
                        c.extension_threshold,
                        c.uuid_window_ms,
                        c.uuid_threshold,
                        now,
                    )
                    .await;
                // On failure the local windows count instead (the answer is already on its way).
                shared_windows = w.ok();
            }
            let elapsed = meta.started.elapsed().as_secs_f64();
            let obs = engine.observe_with(waf.state(), mode, &context, status, elapsed, now, shared_windows);
            if obs.new_known_path {
                waf.emit(Record::KnownPath { path: context.path.once.clone(), at: now });
            }
            if let Some(score) = obs.score {
                waf.inner.counters.anomaly_scores.observe(score);
            }
            if let Some(finding) = &obs.finding {
                waf.inner.counters.finding(finding.detector);
                if let Some(ban) = &obs.ban {
                    waf.inner.counters.bans.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(client = %ban.ip, detector = ban.detector.as_str(), reason = %ban.reason, "Client banned.");
                    waf.emit(Record::Ban(ban.clone()));
                }
                let action = if mode == Mode::Block { "ban" } else { "would_ban" };
                waf.emit(meta.event(finding, action, mode));
            }
            if logging {
                let len = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
                waf.emit(meta.log_entry(status, len, false));
            }
            resp.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), meta.request_id.clone());
            Ok(resp.map(Either::Right))
        })
    }
}

/// 503 when shared state is unreachable and `on_backend_error = "closed"`.
fn unavailable<B>(request_id: &HeaderValue) -> Response<WafBody<B>> {
    let id = request_id.to_str().unwrap_or_default();
    let body = serde_json::json!({"blocked": true, "reason": "shared state unavailable", "request_id": id});
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(format!("{body}\n")))));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), request_id.clone());
    resp
}

#[cfg(test)]
mod tests;
