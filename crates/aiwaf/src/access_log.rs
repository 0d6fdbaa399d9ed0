//! The proxy's access log: one line per request, in nginx "combined" plus `$request_time`
//! (what `aiwaf train` reads, so `aiwaf serve --access-log FILE --retrain-every 24h` learns from
//! its own traffic with no other server) or JSON lines.
//!
//! Off the request path: the layer hands a small record to a bounded channel (`try_send`; a
//! full channel drops the line and counts it) and one writer thread formats, writes through a
//! buffer, flushes at least once a second, and rotates by size (`FILE.1` … `FILE.N`, the names
//! `aiwaf train` discovers). A line is written when the response body is finished (or dropped,
//! when the client goes away), so the bytes and the request time are those of the whole
//! exchange, as nginx logs them.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aiwaf_tower::{ClientAddr, Connection, ForConnection};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};

/// Lines written and dropped since start (all access logs of the process), for `/metrics`.
pub static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Lines dropped because the writer fell behind (full channel) or the file could not be written.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// nginx `combined` followed by `$request_time` in seconds.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Parses `combined` or `json`.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "combined" => Ok(Format::Combined),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown access log format {s:?} (combined or json)")),
        }
    }
}

/// What one line says.
#[derive(Debug)]
struct Entry {
    ts_ms: u64,
    client: IpAddr,
    method: http::Method,
    target: String,
    version: http::Version,
    status: u16,
    bytes: u64,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    secs: f64,
}

/// A running access log (cheap to clone).
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: SyncSender<Entry>,
}

impl AccessLog {
    /// Opens (appending, creating directories) and starts the writer thread. An unwritable path
    /// is an error here, at start, not a silent loss later.
    pub fn start(path: PathBuf, format: Format, max_bytes: u64, keep: u32, capacity: usize) -> std::io::Result<Self> {
        let file = Rotating::open(path, max_bytes, keep)?;
        let (tx, rx) = sync_channel(capacity.max(16));
        std::thread::Builder::new().name("aiwaf-access-log".into()).spawn(move || write_loop(rx, file, format))?;
        Ok(AccessLog { tx })
    }

    fn send(&self, e: Entry) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "Access log writer is behind; lines dropped.");
                }
            }
        }
    }
}

struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    out: BufWriter<File>,
    size: u64,
}

impl Rotating {
    fn open(path: PathBuf, max_bytes: u64, keep: u32) -> std::io::Result<Rotating> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = f.metadata()?.len();
        Ok(Rotating { path, max_bytes: max_bytes.max(4096), keep: keep.max(1), out: BufWriter::new(f), size })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let name = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for n in (1..self.keep).rev() {
            if name(n).exists() {
                std::fs::rename(name(n), name(n + 1))?;
            }
        }
        std::fs::rename(&self.path, name(1))?;
        self.out = BufWriter::new(OpenOptions::new().create(true).append(true).open(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

fn write_loop(rx: Receiver<Entry>, mut file: Rotating, format: Format) {
    let mut line = Vec::with_capacity(512);
    let mut dirty = false;
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(e) => {
                line.clear();
                match format {
                    Format::Combined => combined(&e, &mut line),
                    Format::Json => json(&e, &mut line),
                }
                match file.write_line(&line) {
                    Ok(()) => {
                        WRITTEN.fetch_add(1, Ordering::Relaxed);
                        dirty = true;
                    }
                    Err(err) => {
                        let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::error!(error = %err, dropped = n, "Access log write failed; line dropped.");
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = file.out.flush();
                return;
            }
        }
        // flush when idle, and at least once a second under load
        if dirty && (rx.try_iter().size_hint().0 == 0) {
            let _ = file.out.flush();
            dirty = false;
        }
    }
}

/// nginx `escape=default`: `"`, `\`, control and non-ASCII bytes as `\xHH`.
fn escaped(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `01/Dec/2026:06:07:08 +0000` (UTC; `aiwaf train` reads the offset), from humantime's
/// RFC 3339 rendering (`2026-12-01T06:07:08Z`).
fn time_local(ts_ms: u64, out: &mut Vec<u8>) {
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ts_ms);
    let r = humantime::format_rfc3339_seconds(t).to_string();
    let (date, time) = r.trim_end_matches('Z').split_once('T').unwrap_or(("1970-01-01", "00:00:00"));
    let mut ymd = date.splitn(3, '-');
    let (y, m, d) = (ymd.next().unwrap_or("1970"), ymd.next().unwrap_or("01"), ymd.next().unwrap_or("01"));
    let mon = m.parse::<usize>().ok().and_then(|m| MON.get(m.wrapping_sub(1))).unwrap_or(&"Jan");
    let _ = write!(out, "{d}/{mon}/{y}:{time} +0000");
}

fn combined(e: &Entry, out: &mut Vec<u8>) {
    let _ = write!(out, "{} - - [", e.client);
    time_local(e.ts_ms, out);
    out.extend_from_slice(b"] \"");
    escaped(out, e.method.as_str().as_bytes());
    out.push(b' ');
    escaped(out, e.target.as_bytes());
    let _ = write!(out, " {}\" {} {} \"", version(e.version), e.status, e.bytes);
    escaped(out, e.referer.as_ref().map_or(&b""[..], HeaderValue::as_bytes));
    out.extend_from_slice(b"\" \"");
    escaped(out, e.user_agent.as_ref().map_or(&b""[..], HeaderValue::as_bytes));
    let _ = writeln!(out, "\" {:.3}", e.secs);
}

fn json(e: &Entry, out: &mut Vec<u8>) {
    let text = |v: &Option<HeaderValue>| v.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut ts = Vec::with_capacity(32);
    time_local(e.ts_ms, &mut ts);
    let v = serde_json::json!({
        "time_local": String::from_utf8_lossy(&ts),
        "ts_ms": e.ts_ms,
        "remote_addr": e.client.to_string(),
        "request_method": e.method.as_str(),
        "request_uri": e.target,
        "server_protocol": version(e.version),
        "status": e.status,
        "body_bytes_sent": e.bytes,
        "http_referer": text(&e.referer),
        "http_user_agent": text(&e.user_agent),
        "request_time": (e.secs * 1000.0).round() / 1000.0,
        "request_id": text(&e.request_id),
    });
    let _ = serde_json::to_writer(&mut *out, &v);
    out.push(b'\n');
}

/// Tower layer that logs every request it sees (put it outside the WAF layer, so blocked
/// requests are logged with the status the client got).
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    log: Option<AccessLog>,
}

impl AccessLogLayer {
    /// `None`: a layer that does nothing.
    pub fn new(log: Option<AccessLog>) -> Self {
        AccessLogLayer { log }
    }
}

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService { inner, log: self.log.clone(), peer: None }
    }
}

/// See [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    log: Option<AccessLog>,
    /// The connection's peer, given by the server ([`ForConnection`]).
    peer: Option<IpAddr>,
}

impl<S: ForConnection> ForConnection for AccessLogService<S> {
    fn for_connection(&mut self, conn: Connection) {
        self.peer = Some(conn.peer.ip());
        self.inner.for_connection(conn);
    }
}

/// Everything of the request a line needs, kept until the response body ends.
struct Pending {
    log: AccessLog,
    started: Instant,
    ts_ms: u64,
    peer: Option<IpAddr>,
    client: Option<IpAddr>,
    method: http::Method,
    target: String,
    version: http::Version,
    status: u16,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    bytes: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let client = self.client.or(self.peer).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        self.log.send(Entry {
            ts_ms: self.ts_ms,
            client,
            method: std::mem::take(&mut self.method),
            target: std::mem::take(&mut self.target),
            version: self.version,
            status: self.status,
            bytes: self.bytes,
            referer: self.referer.take(),
            user_agent: self.user_agent.take(),
            request_id: self.request_id.take(),
            secs: self.started.elapsed().as_secs_f64(),
        });
    }
}

/// The response body, counting what it sends; the line is written when it ends or is dropped.
pub struct LoggedBody<B> {
    inner: B,
    pending: Option<Box<Pending>>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for LoggedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(p), Some(d)) = (this.pending.as_mut(), f.data_ref()) {
                    p.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                this.pending = None; // writes the line
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The future of [`AccessLogService`]: the inner service's, its response's body wrapped to
/// count and log (no box of its own: without an access log it adds nothing per request).
pub struct LogFuture<F> {
    inner: F,
    pending: Option<Box<Pending>>,
}

impl<F, ResB, E> std::future::Future for LogFuture<F>
where
    F: std::future::Future<Output = Result<Response<ResB>, E>> + Unpin,
{
    type Output = Result<Response<LoggedBody<ResB>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let resp = match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(resp)) => resp,
        };
        let pending = this.pending.take().map(|mut p| {
            p.status = resp.status().as_u16();
            p.client = resp.extensions().get::<ClientAddr>().map(|c| c.0);
            p.request_id = resp.headers().get("x-aiwaf-request-id").cloned();
            p
        });
        Poll::Ready(Ok(resp.map(|inner| LoggedBody { inner, pending })))
    }
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for AccessLogService<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>> + Send,
    S::Future: Unpin,
    ResB: Body<Data = Bytes> + Unpin,
{
    type Response = Response<LoggedBody<ResB>>;
    type Error = S::Error;
    type Future = LogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let pending = self.log.clone().map(|log| {
            let h = req.headers();
            let ts_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            Box::new(Pending {
                log,
                started: Instant::now(),
                ts_ms,
                peer: self.peer,
                client: None,
                method: req.method().clone(),
                target: req.uri().path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
                version: req.version(),
                status: 0,
                referer: h.get(http::header::REFERER).cloned(),
                user_agent: h.get(http::header::USER_AGENT).cloned(),
                request_id: None,
                bytes: 0,
            })
        });
        LogFuture { inner: self.inner.call(req), pending }
    }
}

/// Shared counters for tests and `/metrics`.
pub fn counts() -> (u64, u64) {
    (WRITTEN.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            ts_ms: 1_764_569_228_000, // 2025-12-01T06:07:08Z
            client: "203.0.113.7".parse().unwrap(),
            method: http::Method::GET,
            target: "/search?q=a\"b".into(),
            version: http::Version::HTTP_11,
            status: 403,
            bytes: 12,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
            request_id: Some(HeaderValue::from_static("abc")),
            secs: 0.0123,
        }
    }

    #[test]
    fn combined_line_is_what_training_reads() {
        let mut out = Vec::new();
        combined(&entry(), &mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "203.0.113.7 - - [01/Dec/2025:06:07:08 +0000] \"GET /search?q=a\\x22b HTTP/1.1\" 403 12 \"-\" \"curl/8.5.0\" 0.012\n"
        );
        let (l, _) =
            aiwaf_train::parse::parse_line(line.trim_end().as_bytes(), aiwaf_train::parse::LogFormat::CombinedRt)
                .expect("parses");
        assert_eq!((l.status, l.ip.to_string(), l.target), (403, "203.0.113.7".to_string(), "/search?q=a\\x22b"));
        assert_eq!(l.ts, 1_764_569_228_000);
        assert_eq!(l.resp_time_s, Some(0.012));
    }

    #[test]
    fn json_line() {
        let mut out = Vec::new();
        json(&entry(), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["status"], 403);
        assert_eq!(v["request_uri"], "/search?q=a\"b");
        assert_eq!(v["time_local"], "01/Dec/2025:06:07:08 +0000");
        assert_eq!(v["request_time"], 0.012);
    }

    #[test]
    fn dates() {
        let t = |ms: u64| {
            let mut v = Vec::new();
            time_local(ms, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(t(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(t(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(t(1_767_225_599_999), "31/Dec/2025:23:59:59 +0000");
    }

    #[test]
    fn rotation_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("aiwaf-al-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("access.log");
        let mut f = Rotating::open(path.clone(), 4096, 2).unwrap();
        let line = vec![b'x'; 1000];
        for _ in 0..20 {
            f.write_line(&line).unwrap();
        }
        f.out.flush().unwrap();
        assert!(path.exists() && dir.join("access.log.1").exists() && dir.join("access.log.2").exists());
        assert!(!dir.join("access.log.3").exists(), "only `keep` rotations are kept");
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
