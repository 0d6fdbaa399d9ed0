//! The admin listener: JSON API under `/api/v1/`, Prometheus `/metrics`, and the dashboard.
//!
//! Off unless `--admin-listen` is given. API and metrics take `Authorization: Bearer TOKEN`
//! (`AIWAF_ADMIN_TOKEN`, compared in constant time); the dashboard signs in with the same token
//! and keeps a session cookie (HttpOnly, SameSite=Strict) with a per-session CSRF token in every
//! form. Pages are rendered on the server with inline SVG charts: no JavaScript, no CDN.

// Handlers return a ready `Response` as their error; boxing it would only add an allocation on
// the error path of an admin request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiwaf_store::writer::WriterStats;
use aiwaf_store::{EventFilter, Store};
use aiwaf_tower::{Counter, DETECTORS, Histogram, HistogramSnapshot, Waf, now_ms};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::config::Config;
use crate::views::{self, rfc3339};

mod pages;

/// A background training run started from the API or the dashboard.
#[derive(Debug, Clone)]
pub enum Job {
    /// Still running.
    Running { started: u64 },
    /// Finished with a report.
    Done { started: u64, report: Value },
    /// Failed.
    Failed { started: u64, error: String },
}

struct Session {
    csrf: String,
    expires: Instant,
}

struct Inner {
    token: Option<String>,
    store: Store,
    waf: Waf,
    config: Config,
    stats: Arc<WriterStats>,
    conns: crate::conn::ConnLimits,
    /// Serialises read-modify-write changes of the run-time payload policy in this process.
    policy: tokio::sync::Mutex<()>,
    /// Without a token (`--admin-insecure-loopback`): one random CSRF token for the process.
    loopback_csrf: String,
    sessions: Mutex<HashMap<String, Session>>,
    jobs: Mutex<HashMap<u64, Job>>,
    next_job: AtomicU64,
    started: Instant,
}

/// Shared state of the admin server.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

/// Random hex from the operating system's CSPRNG. A failed read is an error, never a token
/// of zeros (the old `/dev/urandom` read ignored its error and left the buffer zeroed).
fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    hex_from(bytes, getrandom::fill)
}

/// `bytes` random bytes from `fill` as hex; a failing source is an error, never a token.
fn hex_from<E>(bytes: usize, fill: impl FnOnce(&mut [u8]) -> Result<(), E>) -> Result<String, E> {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Constant-time comparison (no early exit on the first differing byte).
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn bad(field: &str, msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg, "field": field}))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "Admin request failed.");
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": e.to_string()}))).into_response()
}

impl Admin {
    /// Builds the admin state.
    pub fn new(
        token: Option<String>,
        store: Store,
        waf: Waf,
        config: Config,
        stats: Arc<WriterStats>,
        conns: crate::conn::ConnLimits,
    ) -> Admin {
        Admin {
            inner: Arc::new(Inner {
                token,
                store,
                waf,
                config,
                stats,
                conns,
                policy: tokio::sync::Mutex::new(()),
                loopback_csrf: random_hex(16)
                    .unwrap_or_else(|e| panic!("no randomness from the OS for the CSRF token: {e}")),
                sessions: Mutex::new(HashMap::new()),
                jobs: Mutex::new(HashMap::new()),
                next_job: AtomicU64::new(1),
                started: Instant::now(),
            }),
        }
    }

    /// The router.
    pub fn router(self) -> Router {
        let api = Router::new()
            .route("/blacklist", get(api_blacklist).post(api_ban))
            .route("/blacklist/{ip}", axum::routing::delete(api_unban))
            .route("/exemptions", get(api_exemptions).post(api_exempt))
            .route("/exemptions/{net}", axum::routing::delete(api_unexempt))
            .route("/keywords", get(api_keywords))
            .route("/keywords/{word}", axum::routing::delete(api_forget))
            .route("/events", get(api_events))
            .route("/payload/report", get(api_payload_report))
            .route("/payload/policy", get(api_payload_policy).put(api_payload_policy_set))
            .route("/payload/exclusions", post(api_payload_exclude))
            .route("/payload/exclusions/{n}", axum::routing::delete(api_payload_unexclude))
            .route("/profile", get(api_profile).delete(api_profile_forget))
            .route("/stats", get(api_stats))
            .route("/model", get(api_model))
            .route("/train", post(api_train))
            .route("/train/{id}", get(api_train_status))
            .route_layer(axum::middleware::from_fn_with_state(self.clone(), require_bearer));
        Router::new()
            .route("/api/v1/openapi.json", get(openapi))
            .nest("/api/v1", api)
            .route(
                "/metrics",
                get(metrics).route_layer(axum::middleware::from_fn_with_state(self.clone(), require_bearer)),
            )
            .merge(pages::routes())
            .layer(axum::middleware::from_fn_with_state(self.clone(), same_origin))
            .layer(axum::middleware::from_fn(security_headers))
            .with_state(self)
    }

    fn token_ok(&self, presented: &str) -> bool {
        match &self.inner.token {
            Some(t) => same(t.as_bytes(), presented.as_bytes()),
            None => true,
        }
    }

    /// The session behind a request's cookie, with its CSRF token.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        let id = cookie.split(';').find_map(|c| c.trim().strip_prefix("aiwaf_session="))?;
        let mut sessions = self.inner.sessions.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(id).map(|s| (id.to_string(), s.csrf.clone()))
    }

    fn new_session(&self) -> Result<String, getrandom::Error> {
        let id = random_hex(24)?;
        let s = Session { csrf: random_hex(16)?, expires: Instant::now() + Duration::from_secs(8 * 3600) };
        self.inner.sessions.lock().insert(id.clone(), s);
        Ok(id)
    }

    fn end_session(&self, id: &str) {
        self.inner.sessions.lock().remove(id);
    }

    /// Starts a training run in the background; returns its id.
    pub fn start_training(&self) -> u64 {
        let id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let started = now_ms();
        self.inner.jobs.lock().insert(id, Job::Running { started });
        let me = self.clone();
        tokio::spawn(async move {
            let req = crate::train::Request::unattended();
            let job = match crate::train::run(&me.inner.config, &me.inner.store, &req).await {
                Ok(report) => Job::Done { started, report },
                Err(e) => Job::Failed { started, error: format!("{e:#}") },
            };
            me.inner.jobs.lock().insert(id, job);
        });
        id
    }

    fn job(&self, id: u64) -> Option<Job> {
        self.inner.jobs.lock().get(&id).cloned()
    }

    /// Counters and counts for `/stats` and the overview.
    async fn stats(&self) -> Result<Value, aiwaf_store::StoreError> {
        let c = self.inner.waf.counters();
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let by: serde_json::Map<String, Value> =
            c.findings().into_iter().map(|(d, n)| (d.as_str().to_string(), json!(n))).collect();
        let counts = self.inner.store.counts(now_ms()).await?;
        Ok(json!({
            "mode": self.inner.waf.mode().as_str(),
            "uptime_s": self.inner.started.elapsed().as_secs(),
            "requests": c.get(Counter::Requests),
            "blocked": c.get(Counter::Blocked),
            "rate_limited": c.get(Counter::RateLimited),
            "would_block": c.get(Counter::WouldBlock),
            "bans": c.get(Counter::Bans),
            "findings_by_detector": by,
            "clients_tracked": self.inner.waf.state().client_count(),
            "store": {
                "backend": self.inner.store.backend().as_str(),
                "written": ld(&self.inner.stats.written),
                "queued": ld(&self.inner.stats.queued),
                "failures": ld(&self.inner.stats.failures),
                "dropped": ld(&self.inner.stats.dropped) + c.get(Counter::DroppedRecords),
                "refused": ld(&self.inner.stats.poisoned),
            },
            "counts": counts,
            "model_loaded": self.inner.waf.state().model().is_some(),
            "shared_state": self.inner.waf.shared().map(|s| if s.redis.is_healthy() { "redis (healthy)" } else { "redis (unreachable)" }),
        }))
    }
}

/// Whether a `Host` header names this machine's loopback (any port).
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Cross-site and DNS-rebinding defences for the admin listener. (The pages send
/// `Referrer-Policy: same-origin`: with `no-referrer` browsers send `Origin: null` even on the
/// admin's own forms, and `null` — also what sandboxed frames send — is refused.) Without a token (loopback
/// only) the `Host` must be a loopback name, so a page on another site that rebinds its DNS to
/// 127.0.0.1 is refused. In every mode a state-changing request from a browser must come from
/// the admin's own origin, and API writes must be `application/json` (a cross-site form can
/// send `text/plain`, never JSON, without a CORS preflight).
async fn same_origin(
    State(admin): State<Admin>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h = req.headers();
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if admin.inner.token.is_none() && !loopback_host(host) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "admin without a token answers loopback hosts only", "field": "host"})),
        )
            .into_response();
    }
    let writes =
        !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    if writes {
        if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if own.is_none_or(|o| !o.eq_ignore_ascii_case(host)) {
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"error": "cross-origin request refused", "field": "origin"})),
                )
                    .into_response();
            }
        }
        let api = req.uri().path().starts_with("/api/");
        let json = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
        let has_body = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|n| n != "0")
            || h.contains_key(header::TRANSFER_ENCODING);
        if api && has_body && !json {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                axum::Json(json!({"error": "API bodies must be application/json", "field": "content-type"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn require_bearer(
    State(admin): State<Admin>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if admin.inner.token.is_some() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if presented.is_empty() || !admin.token_ok(presented) {
            let mut r = (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "missing or wrong bearer token"})))
                .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

async fn api_blacklist(State(a): State<Admin>) -> Response {
    let now = now_ms();
    match a.inner.store.blacklist(false, now).await {
        Ok(rows) => axum::Json(rows.iter().map(|r| views::ban(r, now as i64)).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(e),
    }
}

fn body_json(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("body", "expected a JSON object")),
        Err(e) => Err(bad("body", &format!("invalid JSON: {e}"))),
    }
}

fn str_field<'a>(m: &'a serde_json::Map<String, Value>, k: &str, required: bool) -> Result<Option<&'a str>, Response> {
    match m.get(k) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad(k, &format!("`{k}` is required"))),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(k, &format!("`{k}` must be a string"))),
    }
}

async fn api_ban(State(a): State<Admin>, body: Bytes) -> Response {
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (ip, reason, ttl) =
        match (str_field(&m, "ip", true), str_field(&m, "reason", false), str_field(&m, "ttl", false)) {
            (Ok(ip), Ok(reason), Ok(ttl)) => (ip.unwrap_or_default(), reason.unwrap_or("Manual ban"), ttl),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
        };
    let Ok(addr) = ip.trim().parse::<IpAddr>() else { return bad("ip", &format!("`{ip}` is not an IP address")) };
    let now = now_ms();
    let expires = match ttl {
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) => Some(now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            Err(_) => return bad("ttl", &format!("`{t}` is not a duration (e.g. 30m, 24h)")),
        },
        None => None,
    };
    match a.inner.store.add_ban(addr, reason, expires, now).await {
        Ok(()) => (
            StatusCode::CREATED,
            axum::Json(json!({"ip": aiwaf_engine::ip::canonical(addr).to_string(), "reason": reason,
                "expires_at": expires.map(|e| rfc3339(e as i64))})),
        )
            .into_response(),
        Err(aiwaf_store::StoreError::Invalid(msg)) => bad("ip", &msg),
        Err(e) => internal(e),
    }
}

async fn api_unban(State(a): State<Admin>, Path(ip): Path<String>) -> Response {
    let Ok(addr) = ip.parse::<IpAddr>() else { return bad("ip", &format!("`{ip}` is not an IP address")) };
    match a.inner.store.remove_ban(addr, now_ms()).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, axum::Json(json!({"error": "not banned", "field": "ip"}))).into_response(),
        Err(e) => internal(e),
    }
}

async fn api_exemptions(State(a): State<Admin>) -> Response {
    match a.inner.store.exemptions().await {
        Ok(rows) => axum::Json(rows.iter().map(views::exemption).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(e),
    }
}

async fn api_exempt(State(a): State<Admin>, body: Bytes) -> Response {
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (net, reason) = match (str_field(&m, "ip", true), str_field(&m, "reason", false)) {
        (Ok(n), Ok(r)) => (n.unwrap_or_default(), r.unwrap_or("")),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let n = match aiwaf_engine::ip::parse_net(net) {
        Ok(n) => n,
        Err(e) => return bad("ip", &e),
    };
    match a.inner.store.add_exemption(n, reason, now_ms()).await {
        Ok((created, lifted)) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            let body = json!({"ip": net, "reason": reason, "created": created, "lifted_bans": lifted});
            (status, axum::Json(body)).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn api_unexempt(State(a): State<Admin>, Path(net): Path<String>) -> Response {
    let n = match aiwaf_engine::ip::parse_net(&net) {
        Ok(n) => n,
        Err(e) => return bad("ip_or_cidr", &e),
    };
    match a.inner.store.remove_exemption(n).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": "not exempt", "field": "ip_or_cidr"}))).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn api_keywords(State(a): State<Admin>) -> Response {
    match a.inner.store.keywords().await {
        Ok(rows) => axum::Json(rows.iter().map(views::keyword).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(e),
    }
}

async fn api_forget(State(a): State<Admin>, Path(word): Path<String>) -> Response {
    match a.inner.store.remove_keyword(&word).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such keyword", "field": "word"}))).into_response()
        }
        Err(e) => internal(e),
    }
}

/// Parses the `events` filters; errors name the field.
fn event_filter(q: &HashMap<String, String>) -> Result<EventFilter, Response> {
    let limit = match q.get("limit") {
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => return Err(bad("limit", "`limit` must be a number from 1 to 10000")),
        },
        None => 100,
    };
    let since = match q.get("since").filter(|s| !s.is_empty()) {
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) => Some(now_ms().saturating_sub(d.as_millis() as u64) as i64),
            Err(_) => match humantime::parse_rfc3339_weak(s) {
                Ok(t) => Some(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)),
                Err(_) => return Err(bad("since", "`since` must be a duration (1h) or a time (2026-11-23T10:00:00Z)")),
            },
        },
        None => None,
    };
    if let Some(ip) = q.get("ip").filter(|s| !s.is_empty())
        && ip.parse::<IpAddr>().is_err()
    {
        return Err(bad("ip", &format!("`{ip}` is not an IP address")));
    }
    if let Some(d) = q.get("detector").filter(|s| !s.is_empty())
        && !DETECTORS.iter().any(|x| x.as_str() == d)
    {
        return Err(bad("detector", &format!("unknown detector `{d}`")));
    }
    let nonempty = |k: &str| q.get(k).filter(|s| !s.is_empty()).cloned();
    Ok(EventFilter {
        ip: nonempty("ip"),
        detector: nonempty("detector"),
        request_id: nonempty("request_id"),
        since,
        limit,
    })
}

async fn api_events(State(a): State<Admin>, Query(q): Query<HashMap<String, String>>) -> Response {
    let f = match event_filter(&q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match a.inner.store.events(&f).await {
        Ok(rows) => axum::Json(rows.iter().map(views::event).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(e),
    }
}

async fn api_payload_report(State(a): State<Admin>, Query(q): Query<HashMap<String, String>>) -> Response {
    let since = q.get("since").map_or("24h", String::as_str);
    let Ok(d) = humantime::parse_duration(since) else {
        return bad("since", &format!("`{since}` is not a duration (e.g. 1h, 7d)"));
    };
    let from = now_ms().saturating_sub(d.as_millis() as u64) as i64;
    let f = EventFilter { detector: Some("payload".into()), since: Some(from), limit: 100_000, ..Default::default() };
    match a.inner.store.events(&f).await {
        Ok(rows) => axum::Json(views::payload_report(&rows)).into_response(),
        Err(e) => internal(e),
    }
}

/// The payload policy: what the configuration sets, what was changed at run time, and what is in
/// force in this process.
async fn api_payload_policy(State(a): State<Admin>) -> Response {
    let cfg = a.inner.config.engine.payload.clone();
    match stored_overlay(&a).await {
        Ok(runtime) => axum::Json(json!({
            "config": {"exclusions": cfg.exclusions, "detectors": cfg.detectors, "paranoia": cfg.paranoia, "threshold": cfg.threshold},
            "runtime": runtime,
            "in_force": &**a.inner.waf.state().payload_overlay(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn stored_overlay(a: &Admin) -> Result<aiwaf_engine::payload::Overlay, Response> {
    match a.inner.store.payload_overlay().await {
        Ok(None) => Ok(aiwaf_engine::payload::Overlay::default()),
        Ok(Some(j)) => {
            serde_json::from_str(&j).map_err(|e| internal(format!("stored payload changes do not parse: {e}")))
        }
        Err(e) => Err(internal(e)),
    }
}

/// Validates, stores and applies at once in this process (other instances follow on the
/// change notification).
async fn save_overlay(a: &Admin, o: &aiwaf_engine::payload::Overlay) -> Result<(), Response> {
    if let Err(e) = o.validate() {
        let field = e.split(['.', ':']).next().unwrap_or("body").to_string();
        return Err(bad(&field, &e));
    }
    let json = serde_json::to_string(o).map_err(internal)?;
    a.inner.store.set_payload_overlay(&json).await.map_err(internal)?;
    crate::serve::reload(&a.inner.store, &a.inner.waf, &a.inner.stats, &a.inner.config).await.map_err(internal)?;
    tracing::info!(
        exclusions = o.exclusions.len(),
        detectors = o.detectors.len(),
        "Payload policy changed through the admin API."
    );
    Ok(())
}

/// Replaces the run-time payload changes: `{"exclusions": [...], "detectors": {"xss": "detect"}}`.
async fn api_payload_policy_set(State(a): State<Admin>, body: Bytes) -> Response {
    let o: aiwaf_engine::payload::Overlay = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => return bad("body", &format!("expected {{\"exclusions\": [...], \"detectors\": {{...}}}}: {e}")),
    };
    let _g = a.inner.policy.lock().await;
    match save_overlay(&a, &o).await {
        Ok(()) => axum::Json(json!({"runtime": o})).into_response(),
        Err(r) => r,
    }
}

/// Adds one exclusion: `{"path_prefix": "/api/webhooks/", "detectors": [], "targets": []}`.
async fn api_payload_exclude(State(a): State<Admin>, body: Bytes) -> Response {
    let ex: aiwaf_engine::payload::Exclusion = match serde_json::from_slice(&body) {
        Ok(x) => x,
        Err(e) => return bad("body", &format!("expected {{\"path_prefix\", \"detectors\", \"targets\"}}: {e}")),
    };
    if let Err(e) = aiwaf_engine::payload::validate_exclusion(&ex) {
        let field = e.split([' ', ':']).next().unwrap_or("body").to_string();
        return bad(&field, &e);
    }
    let _g = a.inner.policy.lock().await;
    let mut o = match stored_overlay(&a).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if o.exclusions.contains(&ex) {
        return (StatusCode::OK, axum::Json(json!({"exclusion": ex, "created": false}))).into_response();
    }
    o.exclusions.push(ex.clone());
    match save_overlay(&a, &o).await {
        Ok(()) => (
            StatusCode::CREATED,
            axum::Json(json!({"exclusion": ex, "created": true, "index": o.exclusions.len() - 1})),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// Removes the run-time exclusion at index `n` (as listed by `GET /payload/policy`).
async fn api_payload_unexclude(State(a): State<Admin>, Path(n): Path<String>) -> Response {
    let Ok(n) = n.parse::<usize>() else { return bad("n", &format!("`{n}` is not an index")) };
    let _g = a.inner.policy.lock().await;
    let mut o = match stored_overlay(&a).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if n >= o.exclusions.len() {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such run-time exclusion", "field": "n"})))
            .into_response();
    }
    o.exclusions.remove(n);
    match save_overlay(&a, &o).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

/// The learned application profile: routes by requests learned, what is enforced.
async fn api_profile(State(a): State<Admin>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) => n.min(10_000),
        Some(Err(_)) => return bad("limit", "expected a number"),
    };
    let p = a.inner.waf.state().profile();
    let routes = p.summary(limit);
    axum::Json(json!({
        "enabled": p.config().enabled,
        "settings": {"min_samples": p.config().min_samples, "min_clients": p.config().min_clients,
                     "relearn_clients": p.config().relearn_clients, "max_routes": p.config().max_routes},
        "routes_learned": p.routes(),
        "routes_enforced": p.rules().len(),
        "routes": routes,
    }))
    .into_response()
}

/// Forgets one route (`?route=/checkout`) or, with `?all=true`, everything learned; saved at once.
async fn api_profile_forget(State(a): State<Admin>, Query(q): Query<HashMap<String, String>>) -> Response {
    let route = match (q.get("route"), q.get("all").map(String::as_str)) {
        (Some(r), _) => Some(aiwaf_engine::payload::route_key(r)),
        (None, Some("true")) => None,
        _ => return bad("route", "give ?route=/path or ?all=true"),
    };
    let p = a.inner.waf.state().profile();
    let forgot = p.forget(route.as_deref(), now_ms());
    crate::serve::save_profile(&a.inner.store, &a.inner.waf).await;
    tracing::info!(
        route = route.as_deref().unwrap_or("(all)"),
        forgot,
        "Learned profile forgotten through the admin API."
    );
    if forgot {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such learned route", "field": "route"}))).into_response()
    }
}

async fn api_stats(State(a): State<Admin>) -> Response {
    match a.stats().await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => internal(e),
    }
}

fn model_json(a: &Admin) -> Option<Value> {
    let m = a.inner.waf.state().model()?;
    Some(views::model(&a.inner.config.model_path(), &m))
}

async fn api_model(State(a): State<Admin>) -> Response {
    match model_json(&a) {
        Some(v) => axum::Json(v).into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no model loaded: anomaly scoring is off"})))
            .into_response(),
    }
}

async fn api_train(State(a): State<Admin>) -> Response {
    let id = a.start_training();
    (StatusCode::ACCEPTED, axum::Json(json!({"id": id, "status": "running"}))).into_response()
}

fn job_json(id: u64, j: &Job) -> Value {
    match j {
        Job::Running { started } => json!({"id": id, "status": "running", "started_at": rfc3339(*started as i64)}),
        Job::Done { started, report } => {
            json!({"id": id, "status": "done", "started_at": rfc3339(*started as i64), "report": report})
        }
        Job::Failed { started, error } => {
            json!({"id": id, "status": "failed", "started_at": rfc3339(*started as i64), "error": error})
        }
    }
}

async fn api_train_status(State(a): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else { return bad("id", "`id` must be a number") };
    match a.job(id) {
        Some(j) => axum::Json(job_json(id, &j)).into_response(),
        None => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such training run", "field": "id"}))).into_response()
        }
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cum = 0;
    for (b, n) in h.bounds.iter().zip(&h.buckets) {
        cum += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

async fn metrics(State(a): State<Admin>) -> Response {
    let c = a.inner.waf.counters();
    let mode = a.inner.waf.mode().as_str();
    let ld = |x: &AtomicU64| x.load(Ordering::Relaxed);
    let mut out = String::with_capacity(4096);
    let _ = writeln!(out, "# HELP aiwaf_requests_total Requests seen by the WAF.\n# TYPE aiwaf_requests_total counter");
    let _ = writeln!(out, "aiwaf_requests_total{{mode=\"{mode}\"}} {}", c.get(Counter::Requests));
    let _ = writeln!(
        out,
        "# HELP aiwaf_findings_total Blocks (block mode) or would-blocks (detect mode) by detector.\n# TYPE aiwaf_findings_total counter"
    );
    for (d, n) in c.findings() {
        let _ = writeln!(out, "aiwaf_findings_total{{detector=\"{}\",mode=\"{mode}\"}} {n}", d.as_str());
    }
    let _ = writeln!(
        out,
        "# HELP aiwaf_responses_total Requests answered by aiwaf itself.\n# TYPE aiwaf_responses_total counter"
    );
    let _ = writeln!(out, "aiwaf_responses_total{{status=\"403\"}} {}", c.get(Counter::Blocked));
    let _ = writeln!(out, "aiwaf_responses_total{{status=\"429\"}} {}", c.get(Counter::RateLimited));
    let _ = writeln!(
        out,
        "# HELP aiwaf_bans_total Bans decided.\n# TYPE aiwaf_bans_total counter\naiwaf_bans_total {}",
        c.get(Counter::Bans)
    );
    histogram(&mut out, "aiwaf_decision_seconds", "Time the engine took to decide.", &c.histogram(Histogram::Decision));
    histogram(
        &mut out,
        "aiwaf_upstream_seconds",
        "Time the upstream took to send response headers.",
        &c.histogram(Histogram::Upstream),
    );
    histogram(
        &mut out,
        "aiwaf_anomaly_score",
        "Anomaly scores of requests with attack signs.",
        &c.histogram(Histogram::AnomalyScore),
    );
    let s = &a.inner.stats;
    let _ = writeln!(
        out,
        "# HELP aiwaf_store_queue_depth Records waiting to be written.\n# TYPE aiwaf_store_queue_depth gauge\naiwaf_store_queue_depth {}",
        ld(&s.queued)
    );
    let _ = writeln!(
        out,
        "# HELP aiwaf_store_errors_total Failed storage writes (retried).\n# TYPE aiwaf_store_errors_total counter\naiwaf_store_errors_total {}",
        ld(&s.failures)
    );
    let _ = writeln!(
        out,
        "# HELP aiwaf_store_dropped_total Records dropped (channel or outage queue full).\n# TYPE aiwaf_store_dropped_total counter\naiwaf_store_dropped_total {}",
        ld(&s.dropped) + c.get(Counter::DroppedRecords)
    );
    let cn = &a.inner.conns;
    let _ = writeln!(
        out,
        "# HELP aiwaf_connections_open Client connections open.\n# TYPE aiwaf_connections_open gauge\naiwaf_connections_open {}\n\
         # HELP aiwaf_connections_refused_total Connections closed on accept by max_connections / max_connections_per_ip.\n# TYPE aiwaf_connections_refused_total counter\naiwaf_connections_refused_total {}\n\
         # HELP aiwaf_connections_timed_out_total Connections closed for sending nothing usable within header_read_timeout.\n# TYPE aiwaf_connections_timed_out_total counter\naiwaf_connections_timed_out_total {}",
        cn.open(),
        cn.refused(),
        cn.timed_out()
    );
    let _ = writeln!(
        out,
        "# HELP aiwaf_store_refused_total Records the database refused as bad data (dropped, never retried).\n# TYPE aiwaf_store_refused_total counter\naiwaf_store_refused_total {}\n\
         # HELP aiwaf_lists_reloads_total Lists reloads from storage: full, or only the bans changed since the last.\n# TYPE aiwaf_lists_reloads_total counter\n\
         aiwaf_lists_reloads_total{{kind=\"full\"}} {}\naiwaf_lists_reloads_total{{kind=\"incremental\"}} {}",
        ld(&s.poisoned),
        ld(&s.full_reloads),
        ld(&s.incremental_reloads)
    );
    let (written, dropped) = crate::access_log::counts();
    let _ = writeln!(
        out,
        "# HELP aiwaf_access_log_lines_total Access log lines written.\n# TYPE aiwaf_access_log_lines_total counter\naiwaf_access_log_lines_total {written}\n\
         # HELP aiwaf_access_log_dropped_total Access log lines dropped (writer behind, or the file not writable).\n# TYPE aiwaf_access_log_dropped_total counter\naiwaf_access_log_dropped_total {dropped}"
    );
    let _ = writeln!(
        out,
        "# HELP aiwaf_clients Clients whose state is kept in memory.\n# TYPE aiwaf_clients gauge\naiwaf_clients {}",
        a.inner.waf.state().client_count()
    );
    let _ = writeln!(
        out,
        "# HELP aiwaf_model_loaded Whether an anomaly model is loaded.\n# TYPE aiwaf_model_loaded gauge\naiwaf_model_loaded {}",
        u8::from(a.inner.waf.state().model().is_some())
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

async fn openapi() -> Response {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let list = |desc: &str| json!({"200": {"description": desc}, "401": {"description": "missing or wrong token", "content": {"application/json": {"schema": err}}}});
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "aiwaf admin API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/blacklist": {
                "get": {"summary": "Active bans", "responses": list("bans")},
                "post": {"summary": "Ban a client", "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                    "required": ["ip"], "properties": {"ip": {"type": "string"}, "reason": {"type": "string"}, "ttl": {"type": "string", "example": "24h"}}}}}},
                    "responses": {"201": {"description": "banned"}, "400": {"description": "bad input", "content": {"application/json": {"schema": err}}}}}
            },
            "/api/v1/blacklist/{ip}": {"delete": {"summary": "Lift a ban", "parameters": [{"name": "ip", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "unbanned"}, "404": {"description": "not banned"}, "400": {"description": "bad input"}}}},
            "/api/v1/exemptions": {
                "get": {"summary": "Exemptions", "responses": list("exemptions")},
                "post": {"summary": "Exempt an address or CIDR", "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                    "required": ["ip"], "properties": {"ip": {"type": "string", "example": "10.0.0.0/8"}, "reason": {"type": "string"}}}}}},
                    "responses": {"201": {"description": "exempted"}, "200": {"description": "already exempt"}, "400": {"description": "bad input"}}}
            },
            "/api/v1/exemptions/{ip_or_cidr}": {"delete": {"summary": "Remove an exemption (CIDR slash as %2F)",
                "parameters": [{"name": "ip_or_cidr", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "removed"}, "404": {"description": "not exempt"}, "400": {"description": "bad input"}}}},
            "/api/v1/keywords": {"get": {"summary": "Learned keywords", "responses": list("keywords")}},
            "/api/v1/keywords/{word}": {"delete": {"summary": "Forget a keyword", "parameters": [{"name": "word", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "removed"}, "404": {"description": "unknown"}}}},
            "/api/v1/events": {"get": {"summary": "Block events (the why of each block)", "parameters": [
                {"name": "ip", "in": "query", "schema": {"type": "string"}}, {"name": "detector", "in": "query", "schema": {"type": "string"}},
                {"name": "since", "in": "query", "schema": {"type": "string", "example": "1h"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                {"name": "request_id", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "events"}, "400": {"description": "bad filter"}}}},
            "/api/v1/payload/report": {"get": {"summary": "Which payload detectors fired on which routes and targets, with suggested exclusions",
                "parameters": [{"name": "since", "in": "query", "schema": {"type": "string", "example": "24h"}}],
                "responses": {"200": {"description": "rows by count"}, "400": {"description": "bad since"}}}},
            "/api/v1/profile": {
                "get": {"summary": "The learned application profile: routes, arguments, what is enforced",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}}],
                    "responses": {"200": {"description": "routes by requests learned"}, "400": {"description": "bad limit"}}},
                "delete": {"summary": "Forget one learned route (?route=/path) or everything (?all=true)",
                    "parameters": [{"name": "route", "in": "query", "schema": {"type": "string"}}, {"name": "all", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": {"204": {"description": "forgotten"}, "404": {"description": "no such route"}, "400": {"description": "neither given"}}}
            },
            "/api/v1/payload/policy": {
                "get": {"summary": "Payload exclusions and detector modes: configured, changed at run time, in force", "responses": {"200": {"description": "policy"}}},
                "put": {"summary": "Replace the run-time changes (applied at once, no restart; other instances follow)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "exclusions": {"type": "array", "items": {"type": "object", "properties": {"path_prefix": {"type": "string"}, "detectors": {"type": "array", "items": {"type": "string"}}, "targets": {"type": "array", "items": {"type": "string"}}}}},
                        "detectors": {"type": "object", "additionalProperties": {"type": "string", "enum": ["block", "detect", "off"]}}}}}}},
                    "responses": {"200": {"description": "stored and in force"}, "400": {"description": "invalid; names the field"}}}},
            "/api/v1/payload/exclusions": {"post": {"summary": "Add one run-time exclusion",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["path_prefix"], "properties": {"path_prefix": {"type": "string"}, "detectors": {"type": "array", "items": {"type": "string"}}, "targets": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"201": {"description": "added and in force"}, "200": {"description": "already there"}, "400": {"description": "invalid"}}}},
            "/api/v1/payload/exclusions/{n}": {"delete": {"summary": "Remove the run-time exclusion at index n",
                "parameters": [{"name": "n", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"204": {"description": "removed"}, "404": {"description": "no such index"}}}},
            "/api/v1/stats": {"get": {"summary": "Counters", "responses": list("stats")}},
            "/api/v1/model": {"get": {"summary": "The anomaly model", "responses": {"200": {"description": "model"}, "404": {"description": "no model"}}}},
            "/api/v1/train": {"post": {"summary": "Start a training run", "responses": {"202": {"description": "started; poll /api/v1/train/{id}"}}}},
            "/api/v1/train/{id}": {"get": {"summary": "A training run", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "status and report"}, "404": {"description": "unknown"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": list("text exposition")}}
        }
    });
    axum::Json(doc).into_response()
}

/// Redirect helper for the dashboard.
fn to(path: &str) -> Response {
    Redirect::to(path).into_response()
}

#[cfg(test)]
mod tests {
    /// Issue 10: a failed `/dev/urandom` read left the buffer zeroed and produced all-zero
    /// session and CSRF tokens. A failing source is now an error.
    #[test]
    fn a_failing_random_source_is_an_error_never_a_zero_token() {
        let failed = super::hex_from(16, |_: &mut [u8]| Err("no entropy"));
        assert_eq!(failed, Err("no entropy"));
        let t = super::random_hex(16).unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, "0".repeat(32));
        assert_ne!(t, super::random_hex(16).unwrap());
    }
}
