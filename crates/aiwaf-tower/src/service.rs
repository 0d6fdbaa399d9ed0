//! The request's phases, driven in order for every request by [`WafService`]:
//!
//! 1. **request headers** — client address, shared windows (Redis, when configured), the
//!    engine's request phase (behaviour detectors and payload inspection of the request line,
//!    query, cookies and headers);
//! 2. **request body** — only when the engine asks for it: the first `payload.max_body_bytes`
//!    of the body are buffered (each pause bounded by the body read timeout) and inspected; the
//!    whole body then streams to the inner service unchanged ([`RequestBody`]); a body declared
//!    longer than the inner service takes ([`Waf::set_refused_body_bytes`]) goes on unread, to
//!    be refused there at once;
//! 3. the inner service (the proxied upstream, or the app);
//! 4. **response headers** — the engine's response phase (404 windows, known paths, forms,
//!    anomaly score); with shared windows it runs in a task of its own, off the response path;
//! 5. **logging** — the request log entry.
//!
//! One [`Transaction`] carries what the phases share. The layer only drives phases and turns
//! verdicts into responses; the engine decides.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aiwaf_engine::{RequestContext, RequestWindows, WindowQuery};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::*;

/// Errors of a [`RequestBody`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body the inner service receives: the bytes the body phase buffered for
/// inspection, then the rest of the client's body, as it arrives.
#[derive(Debug)]
pub struct RequestBody<B> {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    inner: Option<B>,
}

impl<B> RequestBody<B> {
    /// A body passed through untouched.
    pub fn new(inner: B) -> RequestBody<B> {
        RequestBody { prefix: None, trailers: None, inner: Some(inner) }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if let Some(inner) = &mut this.inner {
            return Pin::new(inner).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into)));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.trailers.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let pre = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let inner = self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
        let mut h = SizeHint::new();
        if let Some(u) = inner.upper() {
            h.set_upper(u.saturating_add(pre));
        }
        h.set_lower(inner.lower().saturating_add(pre));
        h
    }
}

/// Why the body phase could not read the body.
enum BodyError {
    /// The client paused longer than the body read timeout.
    Timeout,
    /// The client's body failed (reset, malformed chunking).
    Broken,
}

/// Reads up to `limit + 1` bytes of `body` (each frame within `gap`): the bytes, whether the
/// body is longer than `limit`, and the body to pass on.
async fn buffer_body<B>(mut body: B, limit: usize, gap: Duration) -> Result<(Bytes, bool, RequestBody<B>), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = bytes::BytesMut::new();
    let mut trailers = None;
    let mut ended = body.is_end_stream();
    while !ended && buf.len() <= limit {
        match tokio::time::timeout(gap, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => ended = true,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => buf.extend_from_slice(&data),
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    ended = true;
                }
            },
        }
    }
    let truncated = buf.len() > limit;
    let bytes = buf.freeze();
    let passed = RequestBody { prefix: Some(bytes.clone()), trailers, inner: (!ended).then_some(body) };
    Ok((bytes, truncated, passed))
}

/// What the phases of one request share.
struct Transaction {
    meta: Meta,
    mode: Mode,
    context: RequestContext,
    wants_html: bool,
    logging: bool,
    /// When the last request-phase decision was made.
    decided: Instant,
    /// `Content-Type`, kept only when the body phase will need it.
    content_type: Option<String>,
}

/// The request-headers phase's outcome.
pub enum Headers {
    /// Answer at once (blocked, or shared state unavailable and failing closed).
    Answer(Response<Full<Bytes>>),
    /// Go on to the body phase and the inner service.
    Continue(Pending),
}

/// A headers phase stopped before its wait on shared state (see [`Waf::request_headers_now`]):
/// what it read of the request, kept for [`Waf::request_headers_after`] (boxed: only requests
/// that wait on Redis carry it, and the usual outcome stays small).
pub struct Wait<'r>(Box<Waiting<'r>>);

struct Waiting<'r> {
    head: Head<'r>,
    key: IpAddr,
    query: WindowQuery,
}

/// What the headers phase reads of a request before deciding.
struct Head<'r> {
    seen: SeenHeaders<'r>,
    client: IpAddr,
    /// Two clock reads here and one after the upstream answers serve every measure.
    started: Instant,
    now: u64,
}

impl<'r> Head<'r> {
    /// The engine's view of the request.
    fn info(&self, req: &'r http::request::Parts) -> RequestInfo<'_> {
        let seen = &self.seen;
        RequestInfo {
            client: self.client,
            method: req.method.as_str(),
            path: req.uri.path(),
            content_type: seen.content_type,
            accept: seen.accept,
            sec_fetch_dest: seen.sec_fetch_dest,
            referer: seen.referer,
            host: seen.host.or_else(|| req.uri.authority().map(|a| a.as_str())),
            query: req.uri.query(),
            headers: &seen.all,
        }
    }
}

/// A request that passed its headers phase: what the later phases of the same request need.
/// Adapters that drive the phases themselves (the Python package) hold it between
/// [`Waf::request_headers`], [`Waf::request_body_bytes`] and [`Waf::response_phase`].
pub struct Pending(Box<Transaction>);

impl Pending {
    /// The request id (also sent to the app and on the response).
    pub fn request_id(&self) -> &HeaderValue {
        &self.0.meta.request_id
    }

    /// The client address the WAF decided on.
    pub fn client(&self) -> IpAddr {
        self.0.meta.client
    }

    /// Whether the engine wants the request body inspected.
    pub fn wants_body(&self) -> bool {
        self.0.context.wants_body
    }
}

impl Waf {
    /// The most body bytes the body phase inspects (`payload.max_body_bytes`; 0: none).
    pub fn body_limit(&self) -> usize {
        self.engine().payload_config().map_or(0, |c| c.max_body_bytes)
    }

    /// Events, bans and counters for a verdict.
    fn record_verdict(&self, meta: &Meta, mode: Mode, verdict: &aiwaf_engine::Verdict) {
        if let Some(ban) = &verdict.ban {
            self.inner.counters.add(Counter::Bans);
            tracing::info!(client = %ban.ip, detector = ban.detector.as_str(), reason = %ban.reason, "Client banned.");
            self.emit(Record::Ban(ban.clone()));
        }
        if let Some(finding) = &verdict.finding {
            self.inner.counters.finding(finding.detector);
            // A banned client hammering on: one event per power of two of its blocked requests
            // (the count is in the evidence), so an attack cannot grow the event table per request.
            if finding.detector == Detector::Blacklist
                && finding.evidence["blocked_requests"].as_u64().is_some_and(|n| !n.is_power_of_two())
            {
                if mode == Mode::Detect {
                    self.inner.counters.add(Counter::WouldBlock);
                }
                return;
            }
            let would_ban = !matches!(finding.detector, Detector::Blacklist | Detector::Payload);
            let action = match (mode, verdict.action, verdict.ban.is_some()) {
                (_, Action::Allow, _) => "flag",
                (Mode::Block, Action::RateLimit { .. }, _) => "rate_limit",
                (Mode::Block, _, true) => "ban",
                (Mode::Block, _, false) => "block",
                (_, Action::RateLimit { .. }, _) => "would_rate_limit",
                _ if would_ban => "would_ban",
                _ => "would_block",
            };
            self.emit(meta.event(finding, action, mode));
        }
        if mode == Mode::Detect && !verdict.is_allow() {
            self.inner.counters.add(Counter::WouldBlock);
        }
    }

    /// The answer to a blocking verdict (in block mode).
    fn answer(
        &self,
        meta: &Meta,
        verdict: &aiwaf_engine::Verdict,
        wants_html: bool,
        logging: bool,
    ) -> Response<Full<Bytes>> {
        let face = page::face(verdict, meta.ts);
        if face.status == StatusCode::TOO_MANY_REQUESTS {
            self.inner.counters.add(Counter::RateLimited);
        } else {
            self.inner.counters.add(Counter::Blocked);
        }
        let template = self.inner.block_page.load();
        let html = wants_html.then(|| template.as_deref().map_or(page::DEFAULT_TEMPLATE, String::as_str));
        let resp = block_response(&face, &meta.request_id, html);
        if logging {
            let len = resp.body().size_hint().exact();
            self.emit(meta.log_entry(face.status.as_u16(), len, true, Instant::now()));
        }
        resp
    }

    /// Phase 1: request headers. `peer` is the TCP peer (the configured client header is
    /// believed only when it is a trusted proxy).
    pub async fn request_headers(&self, req: &http::request::Parts, peer: IpAddr) -> Headers {
        match self.request_headers_now(req, peer) {
            Ok(h) => h,
            Err(wait) => self.request_headers_after(req, wait).await,
        }
    }

    /// Phase 1 up to a wait: the outcome, or — when the client's windows are kept in shared
    /// state — a [`Wait`] for [`Waf::request_headers_after`]. A plain function, not a future:
    /// without shared state (the usual case) it always answers, and no future is built or
    /// moved for the phase. Nothing is drawn or counted before it returns a `Wait`.
    pub fn request_headers_now<'r>(&self, req: &'r http::request::Parts, peer: IpAddr) -> Result<Headers, Wait<'r>> {
        let (started, now) = (Instant::now(), now_ms());
        let engine = self.engine();
        let seen = SeenHeaders::scan(&req.headers, &self.inner.client_ip_header, engine.wants_headers());
        let client = if engine.trusts_proxies() {
            engine.client_ip(peer, &seen.client_ip)
        } else {
            aiwaf_engine::ip::canonical(peer)
        };
        let head = Head { seen, client, started, now };
        if self.inner.shared.is_some() {
            let info = head.info(req);
            if engine.needs_windows(self.state(), self.mode(), &info, head.now) {
                let (key, query) = (engine.client_key(client), engine.window_query(&info));
                return Err(Wait(Box::new(Waiting { head, key, query })));
            }
        }
        Ok(self.decide(req, &head, None))
    }

    /// Phase 1 after [`Waf::request_headers_now`] stopped: fetches the client's windows from
    /// shared state and decides with them (unavailable: the configured fail-open or -closed).
    pub async fn request_headers_after<'r>(&self, req: &'r http::request::Parts, wait: Wait<'r>) -> Headers {
        let Waiting { head, key, query } = &*wait.0;
        let shared = self.inner.shared.as_ref().expect("a Wait is made only with shared state");
        match shared.redis.request_windows(*key, query, head.now).await {
            Ok(w) => self.decide(req, head, Some(w)),
            Err(_) if shared.fail_open => self.decide(req, head, None),
            Err(_) => {
                let mut resp = unavailable(&self.next_request_id());
                if self.expose_client() {
                    resp.extensions_mut().insert(ClientAddr(head.client));
                }
                Headers::Answer(resp)
            }
        }
    }

    /// The rest of phase 1: the engine's decision on what was read, with the shared windows
    /// when they were fetched.
    fn decide<'r>(&self, req: &'r http::request::Parts, head: &Head<'r>, windows: Option<RequestWindows>) -> Headers {
        let engine = self.engine();
        let mode = self.mode();
        let (started, now, client) = (head.started, head.now, head.client);
        let info = head.info(req);
        let seen = &head.seen;
        let wants_html = info.accept.is_some_and(|a| a.contains("text/html"));
        let logging = self.request_logging();
        let meta = Meta {
            request_id: self.next_request_id(),
            client,
            method: req.method.clone(),
            path_and_query: req.uri.path_and_query().cloned(),
            user_agent: if logging { seen.user_agent.unwrap_or("").to_string() } else { String::new() },
            referer: if logging { seen.referer.unwrap_or("").to_string() } else { String::new() },
            ts: now,
            started,
        };
        // The decision's time excludes a wait on shared state.
        let decide = if windows.is_some() { Instant::now() } else { started };
        let inspection = engine.inspect_with(self.state(), mode, &info, now, windows);
        let decided = Instant::now();
        self.inner.counters.observe(Histogram::Decision, (decided - decide).as_secs_f64());
        let content_type = inspection.context.wants_body.then(|| info.content_type.unwrap_or("").to_string());
        self.record_verdict(&meta, mode, &inspection.verdict);
        if mode == Mode::Block && !inspection.verdict.is_allow() {
            let mut resp = self.answer(&meta, &inspection.verdict, wants_html, logging);
            if self.expose_client() {
                resp.extensions_mut().insert(ClientAddr(meta.client));
            }
            return Headers::Answer(resp);
        }
        Headers::Continue(Pending(Box::new(Transaction {
            meta,
            mode,
            context: inspection.context,
            wants_html,
            logging,
            decided,
            content_type,
        })))
    }

    /// Phase 2: request body (only when the engine asked for it).
    async fn request_body<B>(&self, tx: &mut Pending, body: B) -> Result<RequestBody<B>, Response<Full<Bytes>>>
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let refused = self.inner.refused_body_bytes.load(Ordering::Relaxed);
        if !tx.wants_body() || (refused > 0 && body.size_hint().lower() > refused) {
            return Ok(RequestBody::new(body));
        }
        let limit = self.body_limit();
        let gap = Duration::from_millis(self.inner.body_read_timeout_ms.load(Ordering::Relaxed));
        let (bytes, truncated, passed) = match buffer_body(body, limit, gap).await {
            Ok(b) => b,
            Err(e) => {
                let (status, what) = match e {
                    BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, "request body read timed out"),
                    BodyError::Broken => (StatusCode::BAD_REQUEST, "request body could not be read"),
                };
                return Err(plain_error(status, what, tx.request_id()));
            }
        };
        match self.request_body_bytes(tx, &bytes[..bytes.len().min(limit)], truncated) {
            Some(resp) => Err(resp),
            None => Ok(passed),
        }
    }

    /// Phase 2 for adapters that hold the body already: inspects `bytes` (at most
    /// [`Waf::body_limit`] of them; `truncated` when the body is longer). `Some` is the
    /// answer to a blocked request.
    pub fn request_body_bytes(&self, tx: &mut Pending, bytes: &[u8], truncated: bool) -> Option<Response<Full<Bytes>>> {
        let tx = &mut *tx.0;
        if !tx.context.wants_body {
            return None;
        }
        let path = tx.meta.path_and_query.as_ref().map_or("/", |p| p.path());
        let verdict = self.engine().inspect_body(
            self.state(),
            tx.mode,
            &mut tx.context,
            path,
            tx.content_type.as_deref().filter(|c| !c.is_empty()),
            bytes,
            truncated,
            now_ms(),
        );
        tx.decided = Instant::now();
        self.record_verdict(&tx.meta, tx.mode, &verdict);
        if tx.mode == Mode::Block && !verdict.is_allow() {
            return Some(self.answer(&tx.meta, &verdict, tx.wants_html, tx.logging));
        }
        None
    }

    /// Phase 4 (response headers) and 5 (logging), from the status and headers the app or
    /// upstream answered with. With shared windows the counting runs in a task of its own, so
    /// it must be called inside the Tokio runtime then.
    pub fn response_phase(&self, tx: Pending, status: u16, headers: &HeaderMap) {
        let tx = *tx.0;
        let is_get = tx.meta.method == http::Method::GET;
        let engine = self.engine();
        let answered = Instant::now();
        self.inner.counters.observe(Histogram::Upstream, (answered - tx.decided).as_secs_f64());
        if is_get
            && (200..300).contains(&status)
            && headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.trim_start().get(..9).is_some_and(|m| m.eq_ignore_ascii_case("text/html")))
        {
            engine.note_html_page(self.state(), &tx.context);
        }
        let elapsed = answered - tx.meta.started;
        let now = tx.meta.ts + elapsed.as_millis() as u64;
        if tx.logging {
            let len = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
            self.emit(tx.meta.log_entry(status, len, false, answered));
        }
        let query = if self.inner.shared.is_some() { engine.response_query(&tx.context, status) } else { None };
        match query {
            // Counting in Redis takes a round trip: it runs in a task of its own, so the answer
            // is not held back (a ban it decides applies to the client's next request).
            Some(q) => {
                let waf = self.clone();
                tokio::spawn(async move {
                    let engine = waf.engine();
                    let shared = waf.inner.shared.as_ref().expect("checked above");
                    let w = shared.redis.response_windows(tx.context.client, &q, engine.config(), now).await;
                    // On failure the local windows count instead.
                    waf.observe(&tx, status, elapsed, now, w.ok());
                });
            }
            None => self.observe(&tx, status, elapsed, now, None),
        }
    }

    fn observe(
        &self,
        tx: &Transaction,
        status: u16,
        elapsed: Duration,
        now: u64,
        windows: Option<aiwaf_engine::ResponseWindows>,
    ) {
        let obs =
            self.engine().observe_with(self.state(), tx.mode, &tx.context, status, elapsed.as_secs_f64(), now, windows);
        if obs.new_known_path {
            self.emit(Record::KnownPath { path: tx.context.path.once.clone(), at: now });
        }
        if let Some(score) = obs.score {
            self.inner.counters.observe(Histogram::AnomalyScore, score);
        }
        if let Some(finding) = &obs.finding {
            self.inner.counters.finding(finding.detector);
            if let Some(ban) = &obs.ban {
                self.inner.counters.add(Counter::Bans);
                tracing::info!(client = %ban.ip, detector = ban.detector.as_str(), reason = %ban.reason, "Client banned.");
                self.emit(Record::Ban(ban.clone()));
            }
            let action = if tx.mode == Mode::Block { "ban" } else { "would_ban" };
            self.emit(tx.meta.event(finding, action, tx.mode));
        }
    }
}

/// A small JSON error of the layer's own (body read failures).
fn plain_error(status: StatusCode, what: &str, request_id: &HeaderValue) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": what, "request_id": request_id.to_str().unwrap_or_default()});
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(X_AIWAF_REQUEST_ID, request_id.clone());
    resp
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for WafService<S>
where
    S: tower::Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Body<Data = Bytes> + Unpin + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: Body + Send + 'static,
{
    type Response = Response<WafBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        use futures_util::TryFutureExt as _;
        // The clone may not be ready; call the instance that was polled (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let waf = self.waf.clone();
        waf.inner.counters.add(Counter::Requests);
        if waf.mode() == Mode::Off {
            // the inner future mapped, not an async block holding the request next to it
            return Box::pin(inner.call(req.map(RequestBody::new)).map_ok(|r| r.map(Either::Right)));
        }
        let peer =
            self.conn_peer.or_else(|| (self.peer)(req.extensions())).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let (mut parts, body) = req.into_parts();
        // Without shared state the headers phase never waits: it runs here, a plain call, and a
        // request that needs no body phase goes on as the inner future mapped (as in mode off),
        // not inside an async block that would hold the inner future and the request beside
        // it. (With shared state the phase runs once, in the async block below.)
        let at_once = if waf.inner.shared.is_none() { waf.request_headers_now(&parts, peer).ok() } else { None };
        if let Some(headers) = at_once {
            return match headers {
                Headers::Answer(resp) => Box::pin(std::future::ready(Ok(resp.map(Either::Left)))),
                Headers::Continue(tx) if !tx.wants_body() => {
                    let tail = Tail::new(waf, tx, &mut parts);
                    let req = Request::from_parts(parts, RequestBody::new(body));
                    Box::pin(inner.call(req).map_ok(|resp| tail.finish(resp)))
                }
                Headers::Continue(tx) => Box::pin(after_headers(waf, inner, parts, body, tx)),
            };
        }
        // The future owns the request: the engine's view of it borrows the request's own
        // strings across the wait on shared state.
        Box::pin(async move {
            let tx = match waf.request_headers(&parts, peer).await {
                Headers::Answer(resp) => return Ok(resp.map(Either::Left)),
                Headers::Continue(tx) => tx,
            };
            after_headers(waf, inner, parts, body, tx).await
        })
    }
}

/// The phases after the headers phase: the body phase, the inner service, the response phases.
async fn after_headers<S, ReqB, ResB>(
    waf: Waf,
    mut inner: S,
    mut parts: http::request::Parts,
    body: ReqB,
    mut tx: Pending,
) -> Result<Response<WafBody<ResB>>, S::Error>
where
    S: tower::Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes> + Unpin,
{
    let body = match waf.request_body(&mut tx, body).await {
        Ok(b) => b,
        Err(mut resp) => {
            if waf.expose_client() {
                resp.extensions_mut().insert(ClientAddr(tx.client()));
            }
            return Ok(resp.map(Either::Left));
        }
    };
    let tail = Tail::new(waf, tx, &mut parts);
    let resp = inner.call(Request::from_parts(parts, body)).await?;
    Ok(tail.finish(resp))
}

/// A request that went on to the inner service: what its response phases need.
struct Tail {
    waf: Waf,
    tx: Pending,
}

impl Tail {
    /// Gives the request its id header, on its way to the inner service.
    fn new(waf: Waf, tx: Pending, parts: &mut http::request::Parts) -> Tail {
        parts.headers.insert(X_AIWAF_REQUEST_ID, tx.request_id().clone());
        Tail { waf, tx }
    }

    /// The response phases, then the id (and the client address, when exposed) on the response.
    fn finish<B>(self, mut resp: Response<B>) -> Response<WafBody<B>> {
        let Tail { waf, tx } = self;
        let request_id = tx.request_id().clone();
        let client = waf.expose_client().then_some(ClientAddr(tx.client()));
        waf.response_phase(tx, resp.status().as_u16(), resp.headers());
        resp.headers_mut().insert(X_AIWAF_REQUEST_ID, request_id);
        if let Some(c) = client {
            resp.extensions_mut().insert(c);
        }
        resp.map(Either::Right)
    }
}
