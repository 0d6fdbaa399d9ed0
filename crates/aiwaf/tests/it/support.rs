//! Test support: a real upstream, the real `aiwaf` binary, and a client that can pick its
//! loopback source address (127.x.y.z) so each test client is a distinct IP.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The one real UUID the upstream knows.
pub const KNOWN_UUID: &str = "550e8400-e29b-41d4-a716-446655440000";

/// A small upstream web app on 127.0.0.1:0.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpBody = http_body_util::Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
>;

async fn route(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_string();
    let text = |status: u16, body: String| {
        let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(body))));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        r
    };
    if path.starts_with("/echo") {
        let method = req.method().to_string();
        let target = req.uri().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        for (k, v) in req.headers() {
            headers.entry(k.to_string()).or_insert_with(Vec::new).push(v.to_str().unwrap_or("").to_string());
        }
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let v = serde_json::json!({"method": method, "target": target, "path": path, "query": query, "headers": headers, "body_len": body.len()});
        let mut r = text(200, v.to_string());
        r.headers_mut().insert("connection", "keep-alive, x-hop".parse().unwrap());
        r.headers_mut().insert("x-hop", "secret".parse().unwrap());
        return Ok(r);
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        return Ok(text(200, "slow done".into()));
    }
    if path == "/big" {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
            (0..64).map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 32 * 1024])))).collect();
        return Ok(Response::new(http_body_util::Either::Right(StreamBody::new(futures_util::stream::iter(chunks)))));
    }
    if path == "/redirect" {
        let mut r = text(302, String::new());
        r.headers_mut().insert("location", "/".parse().unwrap());
        return Ok(r);
    }
    if let Some(id) = path.strip_prefix("/items/") {
        let status = if id.trim_end_matches('/') == KNOWN_UUID { 200 } else { 404 };
        return Ok(text(status, format!("item {id}")));
    }
    let lower = path.to_lowercase();
    // The site has no favicon or touch icons (most don't), like the Django site of issue 11.
    if lower == "/favicon.ico" || lower.starts_with("/apple-touch-icon") {
        return Ok(text(404, "not found".into()));
    }
    if lower.starts_with("/nf")
        || lower.starts_with("/missing")
        || [".php", ".asp", ".jsp"].iter().any(|e| lower.ends_with(e))
    {
        return Ok(text(404, "not found".into()));
    }
    let mut r = text(200, format!("ok {path}"));
    r.headers_mut().insert("content-type", "text/html; charset=utf-8".parse().unwrap());
    Ok(r)
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        route(req)
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Upstream { addr, hits, conns, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A running `aiwaf serve` process with its own data dir.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin listener, when started with one.
    pub admin: Option<SocketAddr>,
    pub dir: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
    config: Option<PathBuf>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aiwaf")
}

/// Options for starting a proxy.
#[derive(Default, Clone)]
pub struct ProxyOpts {
    pub config: Option<String>,
    pub mode: Option<&'static str>,
    pub env: Vec<(&'static str, String)>,
    pub dir: Option<PathBuf>,
    pub listen: Option<&'static str>,
    pub args: Vec<&'static str>,
}

impl Proxy {
    pub fn start(upstream: &str, opts: ProxyOpts) -> Proxy {
        let (tmp, dir) = match &opts.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let config = opts.config.as_ref().map(|text| {
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join("aiwaf.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(opts.listen.unwrap_or("127.0.0.1:0"))
            .arg("--upstream")
            .arg(upstream)
            .arg("--data-dir")
            .arg(&dir)
            .env("AIWAF_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(m) = opts.mode {
            cmd.arg("--mode").arg(m);
        }
        cmd.args(&opts.args);
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn aiwaf");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut admin = None;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            match line.strip_prefix("aiwaf admin on http://") {
                Some(a) => admin = Some(a.trim().parse().unwrap()),
                None => break,
            }
        }
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let addr_text = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://").or_else(|| w.strip_prefix("https://")))
            .unwrap_or_else(|| panic!("unexpected first line from aiwaf serve: {line:?}"));
        let addr: SocketAddr = addr_text.parse().unwrap();
        Proxy { addr, admin, dir, child, _tmp: tmp, config }
    }

    /// Runs a CLI command against this proxy's data dir (and config); returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        cli_in(&self.dir, self.config.as_deref(), args)
    }

    /// Sends SIGTERM and waits; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

pub fn cli_in(dir: &Path, config: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).arg("--data-dir").arg(dir).env("AIWAF_LOG", "warn").stdin(Stdio::null());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a fresh connection from source address `src`.
pub async fn send_from(
    src: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Resp {
    let src: IpAddr = src.parse().unwrap();
    let socket = if src.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }.unwrap();
    socket.bind(SocketAddr::new(src, 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path).header("host", "app.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender.send_request(b.body(Full::new(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp { status: parts.status.as_u16(), headers: parts.headers, body }
}

pub async fn get(src: &str, to: SocketAddr, path: &str) -> Resp {
    send_from(src, to, "GET", path, &[("accept", "*/*")], Bytes::new()).await
}

/// Polls `f` until it returns true or `limit` passes; returns the time it took.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// The blacklist as JSON, via the CLI.
pub fn blacklist(p: &Proxy) -> Vec<serde_json::Value> {
    let (code, out, err) = p.cli(&["blacklist", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().clone()
}

/// Stored events as JSON, via the CLI.
pub fn events(p: &Proxy, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["events", "--json", "--limit", "1000"];
    args.extend_from_slice(extra);
    let (code, out, err) = p.cli(&args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().clone()
}

pub fn banned_ips(p: &Proxy) -> Vec<String> {
    blacklist(p).iter().map(|b| b["ip"].as_str().unwrap().to_string()).collect()
}
