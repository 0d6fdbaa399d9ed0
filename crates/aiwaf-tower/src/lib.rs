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
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aiwaf_engine::{Action, Detector, Engine, Event, Finding, Mode, Record, RequestEntry, RequestInfo, WafState};
use bytes::Bytes;
use http::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, REFERER, RETRY_AFTER, USER_AGENT,
};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use smallvec::SmallVec;
use tokio::sync::mpsc;

pub mod body;
pub mod metrics;
pub mod page;
pub mod shared;

pub use metrics::{Counter, Counters, DETECTORS, Histogram, HistogramSnapshot, LATENCY_BUCKETS, SCORE_BUCKETS};

/// Header carrying the request id, on the response and on the request sent upstream.
pub const REQUEST_ID_HEADER: &str = "x-aiwaf-request-id";

/// The TCP peer of a request, put in the request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What a server knows of a connection once for all its requests: set on the connection's own
/// copy of the service stack ([`ForConnection`]) rather than put in every request's extensions
/// (the first extension of a request costs a map and two allocations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub secure: bool,
}

/// A service (or layer of services) that takes its connection's facts; each layer passes them
/// on to the one it wraps. A service that was not given them reads the request extensions.
pub trait ForConnection {
    /// Called once on the connection's copy, before its first request.
    fn for_connection(&mut self, conn: Connection);
}

/// The client address the WAF decided on (trusted proxy header applied), put in the extensions
/// of every response it handles (access logs outside the layer read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Response body: aiwaf's own small body, or the inner service's.
pub type WafBody<B> = Either<Full<Bytes>, B>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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
    engine: Engine,
    state: WafState,
    mode: Mode,
    sink: Option<mpsc::Sender<Record>>,
    request_logging: AtomicBool,
    counters: Counters,
    id_prefix: u32,
    /// The configured client-address header, parsed once.
    client_ip_header: HeaderName,
    /// The operator's block-page template (`None`: [`page::DEFAULT_TEMPLATE`]).
    block_page: arc_swap::ArcSwapOption<String>,
    /// Longest pause allowed while the body phase reads a body.
    body_read_timeout_ms: AtomicU64,
    /// Bodies declared longer than this the inner service refuses itself (0: none).
    refused_body_bytes: AtomicU64,
    /// Put [`ClientAddr`] in response extensions (an access log outside the layer wants it; the
    /// extension map is an allocation per response, so only then).
    expose_client: std::sync::atomic::AtomicBool,
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
        let client_ip_header = HeaderName::from_static(engine.config().client_ip_header.header_name());
        let seed = now_ms() ^ (u64::from(std::process::id()) << 32);
        Waf {
            inner: Arc::new(Inner {
                shared,
                engine,
                state,
                mode,
                sink,
                request_logging: AtomicBool::new(false),
                counters: Counters::default(),
                id_prefix: (seed ^ (seed >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u32,
                client_ip_header,
                block_page: arc_swap::ArcSwapOption::empty(),
                body_read_timeout_ms: AtomicU64::new(30_000),
                refused_body_bytes: AtomicU64::new(0),
                expose_client: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The in-memory state (lists snapshot, pending bans, client table).
    pub fn state(&self) -> &WafState {
        &self.inner.state
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Sets the HTML page shown to blocked browsers (see [`page::DEFAULT_TEMPLATE`] for its
    /// placeholders); `None` restores the default.
    pub fn set_block_page(&self, template: Option<String>) {
        self.inner.block_page.store(template.map(Arc::new));
    }

    /// Sets the longest pause allowed while the body phase reads a request body (30 s).
    pub fn set_body_read_timeout(&self, d: std::time::Duration) {
        self.inner.body_read_timeout_ms.store(d.as_millis().clamp(1, u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Tells the layer that its inner service refuses a request whose declared body is longer
    /// than `bytes` (the proxy's `server.max_body_bytes`; 0: it refuses none): the body phase
    /// then passes such a request on at once instead of waiting for the first bytes of a body
    /// that will not be taken (a client declaring 100 GB and sending one byte was answered 408
    /// after the body timeout, not 413 at once). Set it only for an inner service that refuses
    /// them: their bodies are not inspected.
    pub fn set_refused_body_bytes(&self, bytes: u64) {
        self.inner.refused_body_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Puts the client address the WAF decided on ([`ClientAddr`]) in every response's extensions.
    pub fn set_expose_client(&self, on: bool) {
        self.inner.expose_client.store(on, Ordering::Relaxed);
    }

    fn expose_client(&self) -> bool {
        self.inner.expose_client.load(Ordering::Relaxed)
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

    /// Records handed to storage and not yet taken by its writer.
    pub fn queued_records(&self) -> usize {
        self.inner.sink.as_ref().map_or(0, |s| s.max_capacity() - s.capacity())
    }

    /// Records dropped because storage could not keep up.
    pub fn dropped_records(&self) -> u64 {
        self.inner.counters.get(Counter::DroppedRecords)
    }

    /// A fresh request id: 20 hex digits (process prefix + sequence), as a header value.
    fn next_request_id(&self) -> HeaderValue {
        let n = self.inner.counters.next_sequence();
        // (prefix << 48 | n) as 20 hex digits: the top 32 bits, then the low 48, in u64s
        let hi = u64::from(self.inner.id_prefix) | (n >> 48);
        let lo = n & 0xffff_ffff_ffff;
        let mut buf = [0u8; 20];
        for (i, b) in buf[..8].iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((hi >> (4 * (7 - i))) & 0xf) as usize];
        }
        for (i, b) in buf[8..].iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((lo >> (4 * (11 - i))) & 0xf) as usize];
        }
        HeaderValue::from_maybe_shared(id_bytes(&buf)).expect("hex digits are a valid header value")
    }

    fn emit(&self, record: Record) {
        if let Some(sink) = &self.inner.sink
            && sink.try_send(record).is_err()
        {
            self.inner.counters.add(Counter::DroppedRecords);
            let n = self.dropped_records();
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "Storage channel full; records dropped.");
            }
        }
    }
}

/// Small byte strings cut one after another from a chunk: one allocation per chunk instead of
/// one per string, and a string's clones count references in the chunk instead of allocating the
/// shared count a `Vec`-backed `Bytes` gets on its first clone. A chunk is freed when the last
/// string cut from it is dropped, so keep only short strings this way.
#[derive(Debug, Default)]
pub struct ByteChunk {
    buf: bytes::BytesMut,
}

impl ByteChunk {
    /// A copy of `bytes`, cut from the current chunk (a new one of `chunk` bytes when it is full).
    pub fn cut(&mut self, bytes: &[u8], chunk: usize) -> Bytes {
        if self.buf.capacity() < bytes.len() {
            self.buf = bytes::BytesMut::with_capacity(chunk.max(bytes.len()));
        }
        self.buf.extend_from_slice(bytes);
        self.buf.split().freeze()
    }
}

/// Bytes for a request id, cut from a chunk of this thread's (one allocation per 200 ids; the
/// id's clones on the request, the response and the log count references in it).
fn id_bytes(id: &[u8; 20]) -> Bytes {
    thread_local! {
        static CHUNK: std::cell::RefCell<ByteChunk> = std::cell::RefCell::new(ByteChunk::default());
    }
    CHUNK.with_borrow_mut(|chunk| chunk.cut(id, 4000))
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
        WafService { inner, waf: self.waf.clone(), peer: self.peer, conn_peer: None }
    }
}

/// The service produced by [`WafLayer`].
#[derive(Clone)]
pub struct WafService<S> {
    inner: S,
    waf: Waf,
    peer: PeerFn,
    /// The connection's peer, when the server gave it ([`ForConnection`]); read before `peer`.
    conn_peer: Option<IpAddr>,
}

impl<S: ForConnection> ForConnection for WafService<S> {
    fn for_connection(&mut self, conn: Connection) {
        self.conn_peer = Some(conn.peer.ip());
        self.inner.for_connection(conn);
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The request headers the WAF reads, found in one pass over the map (each lookup by name
/// would hash the name again). Single-valued ones keep their first value.
#[derive(Default)]
struct SeenHeaders<'a> {
    /// Values of the configured client-address header.
    client_ip: SmallVec<[&'a str; 2]>,
    /// Every header (name, raw value), when payload inspection wants them.
    all: SmallVec<[(&'a str, &'a [u8]); 16]>,
    content_type: Option<&'a str>,
    accept: Option<&'a str>,
    sec_fetch_dest: Option<&'a str>,
    user_agent: Option<&'a str>,
    referer: Option<&'a str>,
    host: Option<&'a str>,
}

impl<'a> SeenHeaders<'a> {
    fn scan(h: &'a HeaderMap, client_ip_header: &HeaderName, all: bool) -> SeenHeaders<'a> {
        let mut s = SeenHeaders::default();
        for (name, value) in h {
            if all {
                s.all.push((name.as_str(), value.as_bytes()));
            }
            // the value is read as text only for a header the WAF reads so
            let slot = if name == ACCEPT {
                &mut s.accept
            } else if name == USER_AGENT {
                &mut s.user_agent
            } else if name == CONTENT_TYPE {
                &mut s.content_type
            } else if name == REFERER {
                &mut s.referer
            } else if name == HOST {
                &mut s.host
            } else if name == SEC_FETCH_DEST {
                &mut s.sec_fetch_dest
            } else {
                if name == client_ip_header
                    && let Ok(v) = value.to_str()
                {
                    s.client_ip.push(v);
                }
                continue;
            };
            if slot.is_none()
                && let Ok(v) = value.to_str()
            {
                *slot = Some(v);
            }
        }
        s
    }
}

// Header names parsed once (a `&str` name is parsed and hashed on every lookup).
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
const X_AIWAF_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Data kept from the request for the response phase and the logs.
struct Meta {
    request_id: HeaderValue,
    client: IpAddr,
    method: http::Method,
    path_and_query: Option<http::uri::PathAndQuery>,
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
        let mut s = self.path_and_query.as_ref().map_or("/", |p| p.as_str()).to_string();
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

    fn log_entry(&self, status: u16, content_length: Option<u64>, blocked: bool, done: Instant) -> Record {
        Record::Request(RequestEntry {
            request_id: self.id(),
            ts: self.ts,
            ip: self.client,
            method: self.method.to_string(),
            path: self.path_and_query.as_ref().map_or("/", |p| p.path()).to_string(),
            query: self.path_and_query.as_ref().and_then(|p| p.query()).unwrap_or("").to_string(),
            status,
            response_time_ms: (done - self.started).as_secs_f64() * 1000.0,
            user_agent: self.user_agent.clone(),
            referer: self.referer.clone(),
            content_length,
            blocked,
        })
    }
}

fn block_response(face: &page::Face, request_id: &HeaderValue, html: Option<&str>) -> Response<Full<Bytes>> {
    let id = request_id.to_str().unwrap_or_default();
    let (body, ctype) = match html {
        Some(template) => (page::render(template, face, id), "text/html; charset=utf-8"),
        None => {
            let mut json = serde_json::json!({"blocked": true, "reason": face.title, "request_id": id});
            if let Some(s) = face.retry_after_s {
                json["retry_after_s"] = s.into();
            }
            if face.banned {
                json["banned"] = true.into();
            }
            (format!("{json}\n"), "application/json")
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = face.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_AIWAF_REQUEST_ID, request_id.clone());
    if let Some(s) = face.retry_after_s {
        h.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

mod service;
pub use service::{Headers, Pending, RequestBody, Wait};

/// 503 when shared state is unreachable and `on_backend_error = "closed"`.
fn unavailable(request_id: &HeaderValue) -> Response<Full<Bytes>> {
    let id = request_id.to_str().unwrap_or_default();
    let body = serde_json::json!({"blocked": true, "reason": "shared state unavailable", "request_id": id});
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp.headers_mut().insert(X_AIWAF_REQUEST_ID, request_id.clone());
    resp
}

#[cfg(test)]
mod tests;
