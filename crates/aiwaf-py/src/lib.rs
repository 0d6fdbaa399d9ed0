//! `aiwaf._core`: the Rust engine for Python.
//!
//! The Django middleware, the WSGI and the ASGI middleware (in `python/aiwaf`) are adapters:
//! they turn their framework's request into a method, a target, a peer and headers, and drive
//! the phases of [`aiwaf_tower::Waf`] — the same code `aiwaf serve` runs — through a [`Core`]:
//! `request` (headers phase), `body` (body phase), `response` (response and logging phases).
//! Verdicts come back as an [`Answer`] (status, headers, body) or a [`Transaction`] to carry
//! to the next phase.
//!
//! A [`Core`] starts its storage and background tasks (writer, lists reloader, retention) on
//! first use in each process, in a small Tokio runtime of its own: a server that forks its
//! workers after importing the app (gunicorn `--preload`) gets them in every worker, never
//! in the parent. A request never waits on the database: bans and lists are in memory,
//! records leave through the bounded channel. The GIL is released while Rust works.
//!
//! Management commands call [`cli`]: the `aiwaf` command line itself, with the project's
//! `AIWAF_*` settings in place of the environment.

/// mimalloc, as in the `aiwaf` binary: the phases allocate small, short-lived buffers on every
/// request, and glibc's malloc cost a Django request ~5k instructions more (callgrind, gunicorn
/// worker). Only Rust's allocations use it; Python objects stay in Python's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aiwaf::config::{Config, Overrides};
use aiwaf::serve::Running;
use aiwaf_engine::Mode;
use aiwaf_tower::{Headers, Pending, Waf};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// What a blocked request is answered with.
#[pyclass(frozen, module = "aiwaf._core")]
struct Answer {
    /// HTTP status (403, 429, 503, 408, 400).
    #[pyo3(get)]
    status: u16,
    /// Response headers (content type, `Retry-After`, `X-Aiwaf-Request-Id`, …).
    #[pyo3(get)]
    headers: Vec<(String, String)>,
    body: Bytes,
}

#[pymethods]
impl Answer {
    /// The body aiwaf would send (JSON, or the HTML block page for browsers).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    /// The value of one header (case-insensitive), if present.
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    fn __repr__(&self) -> String {
        format!("Answer(status={})", self.status)
    }
}

impl Answer {
    fn from_response(resp: http::Response<http_body_util::Full<Bytes>>) -> Answer {
        let (parts, body) = resp.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        Answer { status: parts.status.as_u16(), headers, body: collect_full(body) }
    }
}

/// A request that passed its headers phase, carried to its body and response phases.
#[pyclass(module = "aiwaf._core")]
struct Transaction {
    pending: Option<Pending>,
    live: Arc<Live>,
    #[pyo3(get)]
    request_id: String,
    client: IpAddr,
    #[pyo3(get)]
    wants_body: bool,
    #[pyo3(get)]
    body_limit: usize,
}

#[pymethods]
impl Transaction {
    /// The client address the WAF decided on.
    #[getter]
    fn client(&self) -> String {
        self.client.to_string()
    }
}

/// The WAF running in this process.
struct Live {
    pid: u32,
    rt: tokio::runtime::Runtime,
    waf: Waf,
    stats: Arc<aiwaf_store::writer::WriterStats>,
    /// Storage and background tasks, taken by `close`.
    running: std::sync::Mutex<Option<Running>>,
}

impl Live {
    fn waf(&self) -> &Waf {
        &self.waf
    }
}

/// One WAF for one configuration: created at start-up (the settings are checked then), started
/// in each process on first use.
#[pyclass(frozen, module = "aiwaf._core")]
struct Core {
    config: Config,
    live: ArcSwapOption<Live>,
    /// Serialises starts (first requests of several threads at once).
    starting: std::sync::Mutex<()>,
}

fn config_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

fn load_config(settings: &HashMap<String, String>) -> anyhow::Result<Config> {
    let env = |k: &str| settings.get(k).cloned();
    Config::load(&Overrides::default(), &env)
}

/// The request target as a URI: kept as sent when valid, otherwise with every byte a URI
/// cannot carry percent-encoded (a WSGI server hands over decoded text).
fn target_uri(target: &str) -> Uri {
    if let Ok(u) = target.parse::<Uri>()
        && u.path().starts_with('/')
    {
        return u;
    }
    let mut s = String::with_capacity(target.len() + 8);
    if !target.starts_with('/') {
        s.push('/');
    }
    for b in target.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

impl Core {
    /// Runs the headers phase and wraps its outcome. The GIL stays held while the phase runs
    /// in memory (a few microseconds: releasing and taking it back costs more than it frees);
    /// it is released only to wait — the first use in a process (storage, runtime) and a phase
    /// that waits on Redis.
    fn headers_phase(
        &self,
        py: Python<'_>,
        parts: http::request::Parts,
        peer: IpAddr,
    ) -> PyResult<(Option<Answer>, Option<Transaction>)> {
        let live = match self.running() {
            Some(l) => l,
            None => py.detach(|| self.live())?,
        };
        let waf = live.waf();
        waf.counters().add(aiwaf_tower::Counter::Requests);
        if waf.mode() == Mode::Off {
            return Ok((None, None));
        }
        // Unless the client's windows are in Redis the phase is a plain call; otherwise its
        // future is polled once here and, should it wait, driven to the end without the GIL.
        let out = match waf.request_headers_now(&parts, peer) {
            Ok(h) => h,
            Err(wait) => {
                let fut = waf.request_headers_after(&parts, wait);
                let mut fut = std::pin::pin!(fut);
                let first = {
                    let _in_runtime = live.rt.enter();
                    fut.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop()))
                };
                match first {
                    Poll::Ready(v) => v,
                    Poll::Pending => py.detach(|| live.rt.block_on(fut)),
                }
            }
        };
        match out {
            Headers::Answer(resp) => Ok((Some(Answer::from_response(resp)), None)),
            Headers::Continue(p) => {
                let tx = Transaction {
                    request_id: p.request_id().to_str().unwrap_or_default().to_string(),
                    client: p.client(),
                    wants_body: p.wants_body(),
                    body_limit: live.waf().body_limit(),
                    pending: Some(p),
                    live: live.clone(),
                };
                Ok((None, Some(tx)))
            }
        }
    }

    /// The WAF of this process if it is running (no wait, no lock).
    fn running(&self) -> Option<Arc<Live>> {
        self.live.load_full().filter(|l| l.pid == std::process::id())
    }

    /// The WAF of this process, started on first use (and again in a forked child).
    fn live(&self) -> PyResult<Arc<Live>> {
        if let Some(l) = self.running() {
            return Ok(l);
        }
        let pid = std::process::id();
        let _g = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.live.load_full();
        if let Some(l) = &old
            && l.pid == pid
        {
            return Ok(l.clone());
        }
        if let Some(l) = old {
            // Forked: the parent's runtime threads do not exist here; its memory is left
            // alone (dropping it would wait for threads that will never answer).
            std::mem::forget(l);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aiwaf")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the aiwaf runtime: {e}")))?;
        let running = rt
            .block_on(aiwaf::serve::start(&self.config))
            .map_err(|e| PyRuntimeError::new_err(format!("aiwaf cannot start: {e:#}")))?;
        let live = Arc::new(Live {
            pid,
            rt,
            waf: running.waf.clone(),
            stats: running.stats.clone(),
            running: std::sync::Mutex::new(Some(running)),
        });
        self.live.store(Some(live.clone()));
        Ok(live)
    }
}

#[pymethods]
impl Core {
    /// Checks the settings (`AIWAF_*` names as in the environment; values as text, lists as
    /// JSON arrays). Raises `ValueError` naming the setting when one is invalid.
    #[new]
    fn new(settings: HashMap<String, String>) -> PyResult<Core> {
        let config = load_config(&settings).map_err(config_error)?;
        // the engine's own checks (keywords, payload rules) run now, not at the first request
        aiwaf_engine::Engine::new(config.engine.clone(), aiwaf_engine::ip::IpSet::default())
            .map_err(|e| PyValueError::new_err(format!("invalid configuration: {e}")))?;
        Ok(Core { config, live: ArcSwapOption::empty(), starting: std::sync::Mutex::new(()) })
    }

    /// `block`, `detect` or `off`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.config.mode.as_str()
    }

    /// The storage: `sqlite://PATH` or the PostgreSQL URL (password hidden).
    #[getter]
    fn database(&self) -> String {
        match &self.config.database_url {
            Some(u) if u.starts_with("sqlite:") => u.clone(),
            Some(u) => aiwaf_store::redact_url(u),
            None => format!("sqlite://{}", self.config.data_dir.join(aiwaf_store::DB_FILE).display()),
        }
    }

    /// Detectors switched off.
    #[getter]
    fn detectors_off(&self) -> Vec<&'static str> {
        self.config.engine.detectors_off.iter().map(|d| d.as_str()).collect()
    }

    /// Starts storage and background tasks now (otherwise the first request does).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.live().map(|_| ()))
    }

    /// Phase 1, request headers. `target` is the request target (path and query as sent),
    /// `peer` the TCP peer's address, `headers` (name, value) pairs. Returns `(answer, None)`
    /// for a request answered at once, `(None, transaction)` to go on.
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        target: &str,
        peer: &str,
        headers: Vec<(String, Vec<u8>)>,
    ) -> PyResult<(Option<Answer>, Option<Transaction>)> {
        let mut req = Request::new(());
        *req.method_mut() = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        *req.uri_mut() = target_uri(target);
        let map = req.headers_mut();
        map.reserve(headers.len());
        for (n, v) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_bytes(v)) {
                map.append(n, v);
            }
        }
        let (parts, ()) = req.into_parts();
        self.headers_phase(py, parts, peer.trim().parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    /// Phase 1 from a WSGI environ (or Django's `request.META`): method, target (the server's
    /// raw URI when it gives one, else `SCRIPT_NAME` + `PATH_INFO` + `QUERY_STRING`), peer
    /// (`REMOTE_ADDR`) and headers (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`) read here
    /// rather than in Python.
    fn request_environ(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
    ) -> PyResult<(Option<Answer>, Option<Transaction>)> {
        // keys interned once per process: no string made and hashed per lookup
        let get = |k: &Bound<'_, PyString>| -> Option<String> {
            environ.get_item(k).ok().flatten().and_then(|v| v.extract::<String>().ok())
        };
        let method = get(pyo3::intern!(py, "REQUEST_METHOD")).unwrap_or_else(|| "GET".into());
        let target = match get(pyo3::intern!(py, "RAW_URI"))
            .or_else(|| get(pyo3::intern!(py, "REQUEST_URI")))
            .filter(|t| t.starts_with('/'))
        {
            Some(t) => t,
            None => {
                // PEP 3333: the path is bytes decoded as latin-1; query as sent
                let mut t = String::new();
                for c in get(pyo3::intern!(py, "SCRIPT_NAME"))
                    .unwrap_or_default()
                    .chars()
                    .chain(get(pyo3::intern!(py, "PATH_INFO")).unwrap_or_default().chars())
                {
                    let b = u32::from(c);
                    if b < 0x80
                        && c.is_ascii_graphic()
                        && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' | '?' | '#')
                    {
                        t.push(c);
                    } else if b <= 0xFF {
                        t.push_str(&format!("%{b:02X}"));
                    } else {
                        for byte in c.to_string().bytes() {
                            t.push_str(&format!("%{byte:02X}"));
                        }
                    }
                }
                if t.is_empty() {
                    t.push('/');
                }
                if let Some(q) = get(pyo3::intern!(py, "QUERY_STRING")).filter(|q| !q.is_empty()) {
                    t.push('?');
                    t.push_str(&q);
                }
                t
            }
        };
        let mut req = Request::new(());
        *req.method_mut() = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        *req.uri_mut() = target_uri(&target);
        let map = req.headers_mut();
        let mut name: Vec<u8> = Vec::with_capacity(32);
        for (k, v) in environ.iter() {
            let Ok(k) = k.cast::<PyString>() else { continue };
            let Ok(k) = k.to_str() else { continue };
            let header = if let Some(h) = k.strip_prefix("HTTP_") {
                h
            } else if k == "CONTENT_TYPE" || k == "CONTENT_LENGTH" {
                k
            } else {
                continue;
            };
            let Ok(v) = v.cast::<PyString>() else { continue };
            let Ok(v) = v.to_str() else { continue };
            if v.is_empty() && !k.starts_with("HTTP_") {
                continue;
            }
            name.clear();
            name.extend(header.bytes().map(|c| if c == b'_' { b'-' } else { c.to_ascii_lowercase() }));
            // latin-1 text back to its bytes (PEP 3333); anything wider is not a header byte.
            // ASCII (nearly every value) is its own bytes.
            let value = if v.is_ascii() {
                HeaderValue::from_str(v)
            } else {
                let bytes: Vec<u8> = v.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect();
                HeaderValue::from_bytes(&bytes)
            };
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&name), value) {
                map.append(n, v);
            }
        }
        let peer = get(pyo3::intern!(py, "REMOTE_ADDR"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let (parts, ()) = req.into_parts();
        self.headers_phase(py, parts, peer)
    }

    /// Phase 2, request body: `body` holds at most `transaction.body_limit` bytes of it;
    /// `truncated` when the body is longer. Returns the answer to a blocked request.
    fn body(&self, py: Python<'_>, tx: &mut Transaction, body: &[u8], truncated: bool) -> Option<Answer> {
        let Transaction { pending, live, .. } = tx;
        let p = pending.as_mut()?;
        py.detach(|| live.waf().request_body_bytes(p, body, truncated)).map(Answer::from_response)
    }

    /// Phases 4 and 5: the app answered `status` with these headers (content type, length).
    fn response(&self, py: Python<'_>, tx: &mut Transaction, status: u16, headers: Vec<(String, String)>) {
        let mut map = HeaderMap::with_capacity(headers.len());
        for (n, v) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&v)) {
                map.append(n, v);
            }
        }
        respond(py, tx, status, map);
    }

    /// Phases 4 and 5 with the two response headers the engine reads passed as they are
    /// (`Content-Type`, `Content-Length`; `None` when absent): the adapters' fast path.
    #[pyo3(signature = (tx, status, content_type = None, content_length = None))]
    fn response_with(
        &self,
        py: Python<'_>,
        tx: &mut Transaction,
        status: u16,
        content_type: Option<&str>,
        content_length: Option<&str>,
    ) {
        respond(py, tx, status, engine_headers(content_type, content_length));
    }

    /// Phases 4 and 5 for a Django `HttpResponse`, in one call: its status and the two headers
    /// the engine reads are taken from the response, and `X-Aiwaf-Request-Id` is added unless
    /// the view set one. Django's `ResponseHeaders` keeps `{lower-case name: (name, value)}` in
    /// `_store`; it is read and written directly (the id is our own hex: nothing to validate),
    /// and through the mapping's methods when a response has no such store.
    fn django_response<'py>(
        &self,
        py: Python<'py>,
        tx: &mut Transaction,
        response: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let status: u16 = response.getattr(pyo3::intern!(py, "status_code"))?.extract()?;
        let headers = response.getattr(pyo3::intern!(py, "headers"))?;
        let text = |v: Option<Bound<'py, PyAny>>| v.and_then(|v| v.extract::<String>().ok());
        let store = headers.getattr(pyo3::intern!(py, "_store")).ok();
        let (ctype, length) = match store.as_ref().and_then(|s| s.cast::<PyDict>().ok()) {
            Some(store) => {
                let value = |k: &Bound<'py, PyString>| -> Option<Bound<'py, PyAny>> {
                    store.get_item(k).ok().flatten().and_then(|t| t.get_item(1).ok())
                };
                let found =
                    (text(value(pyo3::intern!(py, "content-type"))), text(value(pyo3::intern!(py, "content-length"))));
                let key = pyo3::intern!(py, "x-aiwaf-request-id");
                if !store.contains(key)? {
                    store.set_item(key, (pyo3::intern!(py, "X-Aiwaf-Request-Id"), tx.request_id.as_str()))?;
                }
                found
            }
            None => {
                let get = pyo3::intern!(py, "get");
                let found = (
                    text(headers.call_method1(get, ("Content-Type",)).ok()),
                    text(headers.call_method1(get, ("Content-Length",)).ok()),
                );
                headers
                    .call_method1(pyo3::intern!(py, "setdefault"), ("X-Aiwaf-Request-Id", tx.request_id.as_str()))?;
                found
            }
        };
        respond(py, tx, status, engine_headers(ctype.as_deref(), length.as_deref()));
        Ok(())
    }

    /// Waits (at most `timeout` seconds) until the records of this process's requests so far
    /// (bans, events, request log) are in storage. Returns whether they are. For exit, and for
    /// tests that read the database right after a request.
    #[pyo3(signature = (timeout = 5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> bool {
        let Some(live) = self.live.load_full() else { return true };
        if live.pid != std::process::id() {
            return true;
        }
        py.detach(move || {
            let deadline = Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 600.0));
            let stats = &live.stats;
            // nothing in the channel, nothing queued after a failure, no batch being written
            let idle = || {
                live.waf().queued_records() == 0
                    && stats.queued.load(std::sync::atomic::Ordering::SeqCst) == 0
                    && !stats.writing.load(std::sync::atomic::Ordering::SeqCst)
            };
            // idle twice, a moment apart: a record just taken from the channel is marked as
            // being written by then
            let mut calm = 0;
            while Instant::now() < deadline {
                calm = if idle() { calm + 1 } else { 0 };
                if calm >= 2 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            idle()
        })
    }

    /// Stops this process's background tasks and closes its database connections, after
    /// writing what is queued (at most `timeout` seconds). The next request starts them again.
    #[pyo3(signature = (timeout = 5.0))]
    fn close(&self, py: Python<'_>, timeout: f64) {
        self.flush(py, timeout);
        let Some(live) = self.live.swap(None) else { return };
        if live.pid != std::process::id() {
            std::mem::forget(live);
            return;
        }
        py.detach(move || {
            let running = live.running.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(running) = running {
                live.rt.block_on(running.abort());
            }
        });
    }

    /// Counters of this process: requests, blocked, rate limited, bans, dropped records.
    fn stats(&self) -> HashMap<&'static str, u64> {
        let Some(live) = self.live.load_full() else { return HashMap::new() };
        let c = live.waf().counters();
        use aiwaf_tower::Counter as K;
        HashMap::from([
            ("requests", c.get(K::Requests)),
            ("blocked", c.get(K::Blocked)),
            ("rate_limited", c.get(K::RateLimited)),
            ("bans", c.get(K::Bans)),
            ("dropped_records", c.get(K::DroppedRecords)),
        ])
    }
}

/// Runs the response phase of `tx` (once; later calls do nothing).
/// The two response headers the engine reads, as a header map (a value that is no valid header
/// value is left out).
fn engine_headers(content_type: Option<&str>, content_length: Option<&str>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(2);
    if let Some(v) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        map.insert(http::header::CONTENT_TYPE, v);
    }
    if let Some(v) = content_length.and_then(|v| HeaderValue::from_str(v).ok()) {
        map.insert(http::header::CONTENT_LENGTH, v);
    }
    map
}

fn respond(_py: Python<'_>, tx: &mut Transaction, status: u16, map: HeaderMap) {
    let Some(p) = tx.pending.take() else { return };
    // in memory (a shared-counter update is spawned, never awaited here): the GIL stays held
    let _in_runtime = tx.live.rt.enter();
    tx.live.waf().response_phase(p, status, &map);
}

/// Runs an `aiwaf` command line (`args` without the program name) with these settings in
/// place of the environment; returns its exit code. Output goes to this process's stdout.
#[pyfunction]
fn cli(py: Python<'_>, args: Vec<String>, settings: HashMap<String, String>) -> PyResult<i32> {
    let code = py.detach(move || {
        let env = |k: &str| settings.get(k).cloned();
        aiwaf::cli::run_args(std::iter::once("aiwaf".to_string()).chain(args), &env)
    });
    match code {
        Ok(c) if c == ExitCode::SUCCESS => Ok(0),
        Ok(c) => Ok((1..=255u8).find(|n| ExitCode::from(*n) == c).map_or(1, i32::from)),
        Err(e) => Err(PyRuntimeError::new_err(format!("{e:#}"))),
    }
}

/// Creates or updates the storage schema (what `manage.py migrate` runs).
#[pyfunction]
fn migrate(py: Python<'_>, settings: HashMap<String, String>) -> PyResult<String> {
    let config = load_config(&settings).map_err(config_error)?;
    py.detach(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let store = aiwaf_store::Store::connect(config.database_url.as_deref(), &config.data_dir).await?;
            let what = store.path().display().to_string();
            store.close().await;
            Ok::<_, anyhow::Error>(what)
        })
    })
    .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))
}

/// Checks settings without starting anything; raises `ValueError` naming the bad setting.
#[pyfunction]
fn check_settings(settings: HashMap<String, String>) -> PyResult<()> {
    Core::new(settings).map(|_| ())
}

/// The default static keywords (`AIWAF_MALICIOUS_KEYWORDS` when unset).
#[pyfunction]
fn default_keywords() -> Vec<&'static str> {
    aiwaf_engine::config::DEFAULT_STATIC_KEYWORDS.to_vec()
}

/// The detector names (as in events and `AIWAF_DETECTORS_OFF`).
#[pyfunction]
fn detectors() -> Vec<&'static str> {
    aiwaf_engine::Detector::ALL.iter().map(|d| d.as_str()).collect()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust's logs to stderr (AIWAF_LOG filters; warnings and errors by default)
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIWAF_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    m.add_class::<Core>()?;
    m.add_class::<Answer>()?;
    m.add_class::<Transaction>()?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(migrate, m)?)?;
    m.add_function(wrap_pyfunction!(check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(detectors, m)?)?;
    m.add_function(wrap_pyfunction!(default_keywords, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The bytes of aiwaf's own (complete, in-memory) answer body.
fn collect_full(body: http_body_util::Full<Bytes>) -> Bytes {
    use http_body_util::BodyExt;
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(body.collect()).poll(&mut cx) {
        Poll::Ready(Ok(c)) => c.to_bytes(),
        _ => Bytes::new(),
    }
}
