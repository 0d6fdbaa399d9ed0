//! Keep-alive HTTP/1.1 connections to one upstream, driven by the request that uses them, with
//! an HTTP/1.1 client of our own.
//!
//! hyper-util's pooled client (still used here for HTTP/2 upstreams and upgrades) runs every
//! upstream connection as a task of its own and keeps its idle connections in a map keyed by
//! scheme and authority: per proxied request that is a hashed lookup under a lock, a select
//! between checkout and connect, and two task wake-ups across the request/connection channel
//! (measured with `bench/callgrind.sh`: ~11k of the ~54k instructions of a request in
//! `--mode off`). Driving hyper's own client connection from the request's task still sends each
//! request and response through hyper's dispatch channels (an mpsc, a oneshot, their wakers) and
//! its generic encoder. Here each upstream ([`crate::pool::Backend`]) owns its list of idle
//! connections, and a connection is a socket with a read and a write buffer, polled by the
//! request's own task: the request head is written from the request's parts, the body follows
//! (`Content-Length` when its size is known, chunked otherwise), the response head is parsed by
//! `httparse`, and the response body ([`UpstreamBody`]) is read off the socket as the client's
//! connection asks for it (by `Content-Length`, chunked, or up to the close). When the body has
//! been read to its end the connection goes back to its upstream's list; a body dropped before its
//! end drops (closes) the connection, as does a connection the upstream closed or marked
//! `Connection: close`, one idle longer than the idle timeout, one whose request body was not
//! sent to its end (the upstream answered early), and one with bytes nobody asked for.
//!
//! A connection taken from the list may have been closed by the upstream a moment ago. When it
//! fails before a byte of the request was written, the request goes out once more on another
//! connection. One the upstream closed just as the request was written (its keep-alive timer
//! fired) fails with no byte of response; when the connection had been idle for a second or more
//! and the request has no body and an idempotent method, it is sent once more on a new connection
//! (as nginx retries a cached keep-alive connection).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tower::Service as _;

/// The client's body as it goes upstream (see `proxy.rs`).
pub type OutBody = crate::proxy::OutBody;
/// TCP, or TLS over TCP, to an upstream.
pub type Io = hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>;
/// Plain TCP for `http://` upstreams, rustls for `https://`.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest response head read from an upstream.
const MAX_HEAD: usize = 256 * 1024;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 256;
/// Largest chunk-size line, and largest trailer section, of a chunked response.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

/// An open HTTP/1.1 connection to an upstream.
pub struct Conn {
    io: TokioIo<Io>,
    /// Bytes read and not yet consumed.
    rbuf: BytesMut,
    /// Bytes to write.
    wbuf: BytesMut,
    idle_since: Instant,
    /// The upstream's idle list it returns to (weak: the list owns its idle connections).
    home: Weak<IdleList>,
    /// The worker it was opened on (`workers::current`), whose list it returns to.
    worker: usize,
    /// When the response head of the request in flight is due (`server.upstream_timeout`). One
    /// timer per connection, moved forward per request: moving a registered tokio timer to a
    /// later deadline is an atomic store, where a timer per request is a clock read, an
    /// allocation-free but locked insert into the timer wheel and a locked removal. An idle
    /// connection's timer may still fire once at its last deadline: a spurious wake-up of the
    /// task that last waited on it, whose allocation its waker keeps until then (at most one per
    /// idle connection, for at most `upstream_timeout`).
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// `server.upstream_timeout`: also how long a response body may send nothing.
    timeout: Duration,
    /// When the response body being read is due to send more (set while a read waits).
    body_due: Option<tokio::time::Instant>,
    /// The last response head's header names and values, reused where the next one repeats them.
    memo: HeadMemo,
}

/// The header names and values of a connection's last response head, by position. An upstream
/// answers a keep-alive connection with the same names in the same order and many of the same
/// values (content type, server, cache and security headers), so each repeated one is a
/// comparison and a reference count instead of a name parse or a value's allocation and copy.
/// A reused name or value is one that is byte for byte (a name: ignoring ASCII case) what was
/// parsed and validated before.
///
/// New values are cut from a chunk of the memo's own ([`aiwaf_tower::ByteChunk`]), so neither a
/// value nor the memo's copy of it is an allocation of its own (a value that changes with every
/// response, such as a length, costs no more than it did without the memo).
#[derive(Default)]
struct HeadMemo {
    names: Vec<HeaderName>,
    values: Vec<HeaderValue>,
    chunk: aiwaf_tower::ByteChunk,
}

impl HeadMemo {
    /// Positions remembered (a head's first 32 headers).
    const MAX: usize = 32;
    /// Longer values (a policy, a cookie) are parsed as before and not remembered: an idle
    /// connection then holds at most 32 short values and the few 1 KiB chunks they were cut from.
    const MAX_VALUE: usize = 256;
    const CHUNK: usize = 1024;

    /// The name of the `i`-th header, reused when the last head had it there.
    fn name(&mut self, i: usize, raw: &str) -> Result<HeaderName, UpstreamError> {
        if let Some(n) = self.names.get(i)
            && n.as_str().eq_ignore_ascii_case(raw)
        {
            return Ok(n.clone());
        }
        let n = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| UpstreamError::Protocol("header name"))?;
        Self::keep(&mut self.names, i, &n);
        Ok(n)
    }

    /// The value of the `i`-th header, reused when the last head had the same bytes there.
    fn value(&mut self, i: usize, raw: &[u8]) -> Result<HeaderValue, UpstreamError> {
        if let Some(v) = self.values.get(i)
            && v.as_bytes() == raw
        {
            return Ok(v.clone());
        }
        if raw.len() > Self::MAX_VALUE {
            return HeaderValue::from_bytes(raw).map_err(|_| UpstreamError::Protocol("header value"));
        }
        let bytes = self.chunk.cut(raw, Self::CHUNK);
        let v = HeaderValue::from_maybe_shared(bytes).map_err(|_| UpstreamError::Protocol("header value"))?;
        Self::keep(&mut self.values, i, &v);
        Ok(v)
    }

    fn keep<T: Clone>(list: &mut Vec<T>, i: usize, item: &T) {
        if i < list.len() {
            list[i] = item.clone();
        } else if i == list.len() && i < Self::MAX {
            list.push(item.clone());
        }
    }
}

impl Conn {
    /// Reads more into `rbuf`: `Ok(0)` at the end of the stream.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(16 * 1024);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }

    /// Writes what `wbuf` holds; ready once it is all written.
    fn flush_wbuf(&mut self, cx: &mut Context<'_>, wrote: &mut bool) -> Poll<std::io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *wrote = true;
            self.wbuf.advance(n);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Reads more of a response body: the same as `fill`, but a body that sends nothing for
    /// `timeout` fails (the connection's timer, armed when a read starts waiting).
    fn fill_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, UpstreamError>> {
        match self.fill(cx) {
            Poll::Ready(r) => {
                self.body_due = None;
                Poll::Ready(r.map_err(UpstreamError::Io))
            }
            Poll::Pending => {
                let due = *self.body_due.get_or_insert_with(|| {
                    let due = tokio::time::Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(due);
                    due
                });
                if self.deadline.as_mut().poll(cx).is_ready() && tokio::time::Instant::now() >= due {
                    return Poll::Ready(Err(UpstreamError::TimedOut));
                }
                Poll::Pending
            }
        }
    }

    /// No bytes left over in either direction (any would make the connection unusable).
    fn clean(&self) -> bool {
        self.rbuf.is_empty() && self.wbuf.is_empty()
    }

    /// Ready for another request: open, idle, and with nothing unread.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.clean() {
            return false;
        }
        // open and quiet: a read would wait (the upstream closing, or sending bytes no request
        // asked for, makes it unusable)
        self.fill(cx).is_pending()
    }
}

/// An upstream's idle connections, one list per proxy worker (`workers.rs`): a connection is
/// registered with the I/O and timer drivers of the worker that opened it and is only reused
/// there. In each list the most recently used is at the back, taken first; the oldest at the
/// front, closed once idle longer than the timeout.
pub struct IdleList {
    lists: Box<[Mutex<VecDeque<Box<Conn>>>]>,
    max: usize,
    timeout: Duration,
}

impl std::fmt::Debug for IdleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.lists.iter().map(|l| l.lock().map_or(0, |l| l.len())).sum();
        f.debug_struct("IdleList").field("idle", &n).field("max", &self.max).finish()
    }
}

impl IdleList {
    /// Keeps at most `max` idle connections per worker, each for at most `timeout`; `workers`
    /// is how many proxy workers there are (threads that are none share one more list).
    pub fn new(max: usize, timeout: Duration, workers: usize) -> IdleList {
        let lists = (0..=workers).map(|_| Mutex::new(VecDeque::new())).collect();
        IdleList { lists, max, timeout }
    }

    /// The list of the worker this thread is (or the shared one).
    fn list(&self, worker: usize) -> std::sync::MutexGuard<'_, VecDeque<Box<Conn>>> {
        let l = self.lists.get(worker).unwrap_or(&self.lists[0]);
        l.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection that is still open, polled once with `cx` to learn that.
    fn take(&self, cx: &mut Context<'_>) -> Option<Box<Conn>> {
        let worker = crate::workers::current();
        loop {
            let mut c = self.list(worker).pop_back()?;
            if c.idle_since.elapsed() <= self.timeout && c.reusable(cx) {
                return Some(c);
            }
            // closed by the upstream or idle too long: dropped (closes it)
        }
    }

    /// Back to the list after a complete exchange, if it is still usable. Connections idle
    /// longer than the timeout at the front are closed on the way (a burst's connections,
    /// perhaps closed by the upstream since, do not linger).
    fn put(mut c: Box<Conn>) {
        // Whether the upstream closed it since is asked when it is taken (`take` polls it then),
        // not here as well: a readiness poll per request for what the next taker learns anyway.
        if !c.clean() {
            return;
        }
        let Some(home) = c.home.upgrade() else { return };
        let now = Instant::now();
        c.idle_since = now;
        let expired = {
            let mut list = home.list(c.worker);
            let expired = match list.front() {
                Some(old) if now.duration_since(old.idle_since) > home.timeout => list.pop_front(),
                _ => None,
            };
            if list.len() < home.max {
                list.push_back(c);
            }
            expired
        };
        drop(expired); // closed outside the lock
    }
}

/// Why an exchange failed.
pub enum ExchangeError {
    /// No connection could be made: nothing was sent.
    Connect(BoxError),
    /// The exchange failed: the connection, the upstream's answer, or the client's body (its
    /// error is passed as it is, for the proxy to tell a body limit or timeout).
    Http(BoxError),
    /// No response head within the timeout.
    TimedOut,
}

/// What went wrong on an upstream connection.
#[derive(Debug)]
pub enum UpstreamError {
    /// The upstream closed the connection before the message was complete.
    Incomplete,
    /// The upstream sent what is not HTTP/1.1 as we read it.
    Protocol(&'static str),
    /// Reading or writing the socket failed.
    Io(std::io::Error),
    /// A response body sent nothing for `server.upstream_timeout`.
    TimedOut,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Incomplete => f.write_str("connection closed before message completed"),
            UpstreamError::Protocol(what) => write!(f, "invalid response from upstream: {what}"),
            UpstreamError::Io(_) => f.write_str("connection error"),
            UpstreamError::TimedOut => f.write_str("response body timed out: nothing sent for server.upstream_timeout"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// How the request body goes out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length,
    /// Chunked.
    Chunked,
}

/// How far one exchange got.
enum Failed {
    /// Before a byte of the request was written: it can go out on another connection.
    Unsent(UpstreamError),
    /// After.
    Sent(UpstreamError),
    /// The client's body failed.
    Body(BoxError),
    TimedOut,
}

/// Sends `req` to the upstream at `origin` (scheme and authority) over an idle connection of
/// `idle` or a new one, driving the connection until the response head is in, at most for
/// `timeout` (connecting included). The response's body reads the connection from then on and
/// returns it to `idle` at its end.
pub async fn exchange(
    connector: &Connector,
    origin: &Uri,
    idle: &Arc<IdleList>,
    timeout: Duration,
    req: Request<OutBody>,
) -> Result<Response<UpstreamBody>, ExchangeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut head, body) = req.into_parts();
    // `req`'s target is in origin form (`/path?query`); a request that came without a `Host`
    // (HTTP/1.0) gets the upstream's, as HTTP/1.1 requires one
    if !head.headers.contains_key(http::header::HOST)
        && let Some(a) = origin.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        head.headers.insert(http::header::HOST, v);
    }
    let sending = if body.is_end_stream() {
        Sending::Empty
    } else if body.size_hint().exact().is_some() {
        Sending::Length
    } else {
        Sending::Chunked
    };
    let left = body.size_hint().exact().unwrap_or(0);
    let mut up = Upload {
        body,
        sending,
        left,
        data: Bytes::new(),
        in_chunk: false,
        done: sending == Sending::Empty,
        sent: false,
        write_error: None,
    };
    // a request that failed before a byte of it was written goes out again: on another idle
    // connection, then on a new one (the third try is the last)
    let mut tries = 0;
    loop {
        tries += 1;
        let pooled = if tries < 3 { std::future::poll_fn(|cx| Poll::Ready(idle.take(cx))).await } else { None };
        // An upstream closes a connection idle past its keep-alive timeout (gunicorn 2 s, Node
        // 5 s); a request written in that instant is lost with the connection. When a reused
        // connection was idle that long and the request can be replayed (no body, idempotent
        // method), it is sent once more on a new connection.
        let replayable = pooled.as_ref().is_some_and(|c| {
            c.idle_since.elapsed() >= MAY_BE_CLOSED && sending == Sending::Empty && idempotent(&head.method)
        });
        let mut conn = match pooled {
            Some(c) => c,
            // boxed: a new connection is the rare path, and its future (TLS state included)
            // would otherwise be part of every request's future, copied as it moves
            None => {
                match tokio::time::timeout_at(deadline, Box::pin(connect(connector, origin, idle, deadline, timeout)))
                    .await
                {
                    Ok(c) => c?,
                    Err(_) => return Err(ExchangeError::TimedOut),
                }
            }
        };
        conn.deadline.as_mut().reset(deadline);
        // a connection is only reused with nothing left to write (`reusable`)
        debug_assert!(conn.wbuf.is_empty());
        conn.wbuf.clear();
        encode_head(&head, up.sending, up.left, &mut conn.wbuf);
        // each attempt writes its head (a replayed request has no body: nothing else is due)
        up.sent = false;
        up.write_error = None;
        let mut wrote = false;
        let head_only = head.method == Method::HEAD;
        let res = std::future::poll_fn(|cx| poll_exchange(&mut conn, cx, &mut up, head_only, &mut wrote)).await;
        match res {
            Ok(parsed) => {
                let Parsed { status, version, headers, keep_alive, framing, reason } = parsed;
                // an answer before the request body went up to its end (the upstream streams,
                // or refuses early): the body goes on being sent as the answer is read
                // (a request whose writing failed is not sent further, nor its connection reused)
                let keep_alive = keep_alive && up.write_error.is_none();
                let upload = (!up.sent && up.write_error.is_none()).then(|| Box::new(up));
                let mut resp = Response::new(UpstreamBody::own(conn, framing, keep_alive, upload));
                *resp.status_mut() = status;
                *resp.version_mut() = version;
                *resp.headers_mut() = headers;
                if let Some(reason) = reason {
                    resp.extensions_mut().insert(reason);
                }
                return Ok(resp);
            }
            Err(Failed::TimedOut) => return Err(ExchangeError::TimedOut),
            Err(Failed::Body(e)) => return Err(ExchangeError::Http(e)),
            Err(Failed::Unsent(_)) if tries < 3 => {}
            // (no byte of an answer came: a partial head is a broken upstream, not a race)
            Err(Failed::Sent(e)) if replayable && conn.rbuf.is_empty() && closed_under_us(&e) => {
                tracing::debug!("Upstream closed an idle connection as a request went out; sent again.");
                tries = 2; // the next try is the last, on a new connection
            }
            Err(Failed::Unsent(e) | Failed::Sent(e)) => return Err(ExchangeError::Http(Box::new(e))),
        }
    }
}

/// The client's body on its way up, and how it is framed.
struct Upload {
    body: OutBody,
    sending: Sending,
    /// Bytes still due (`Sending::Length`).
    left: u64,
    /// The frame being written (from the client's own buffer, not copied into the write buffer).
    data: Bytes,
    /// Chunked: a chunk's data went out and its closing CRLF is still due.
    in_chunk: bool,
    /// Its end is in the write buffer.
    done: bool,
    /// All of it written and flushed.
    sent: bool,
    /// Writing failed after the head went out: the upstream may have answered and closed
    /// without reading the body (hyper does, for a body its handler did not read), so the answer
    /// is still read; this is the error when none comes.
    write_error: Option<UpstreamError>,
}

fn io_failed(wrote: bool, e: std::io::Error) -> Failed {
    if wrote { Failed::Sent(UpstreamError::Io(e)) } else { Failed::Unsent(UpstreamError::Io(e)) }
}

/// Writes what there is of the request: the head, then the body as it comes (framed, and
/// held to the length the head announced); ready once all of it is written and flushed. Framing
/// goes through the write buffer; each frame's data is written from its own bytes.
fn poll_upload(conn: &mut Conn, up: &mut Upload, cx: &mut Context<'_>, wrote: &mut bool) -> Poll<Result<(), Failed>> {
    use std::fmt::Write as _;
    loop {
        ready!(conn.flush_wbuf(cx, wrote)).map_err(|e| io_failed(*wrote, e))?;
        while !up.data.is_empty() {
            let n = ready!(Pin::new(&mut conn.io).poll_write(cx, &up.data)).map_err(|e| io_failed(*wrote, e))?;
            if n == 0 {
                return Poll::Ready(Err(io_failed(*wrote, std::io::ErrorKind::WriteZero.into())));
            }
            up.data.advance(n);
        }
        if up.done {
            ready!(Pin::new(&mut conn.io).poll_flush(cx)).map_err(|e| io_failed(*wrote, e))?;
            up.sent = true;
            return Poll::Ready(Ok(()));
        }
        match ready!(Pin::new(&mut up.body).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue }; // trailers: not sent
                if data.is_empty() {
                    continue;
                }
                if up.sending == Sending::Chunked {
                    if up.in_chunk {
                        conn.wbuf.extend_from_slice(b"\r\n");
                    }
                    let _ = write!(conn.wbuf, "{:x}\r\n", data.len());
                    up.in_chunk = true;
                } else {
                    // never more than the head announced (the rest would be read upstream as
                    // another request)
                    match up.left.checked_sub(data.len() as u64) {
                        Some(l) if up.sending == Sending::Length => up.left = l,
                        _ => return Poll::Ready(Err(Failed::Body("request body longer than its length".into()))),
                    }
                }
                up.data = data;
            }
            None => {
                if up.sending == Sending::Chunked {
                    if up.in_chunk {
                        conn.wbuf.extend_from_slice(b"\r\n");
                    }
                    conn.wbuf.extend_from_slice(b"0\r\n\r\n");
                } else if up.left != 0 {
                    return Poll::Ready(Err(Failed::Body("request body shorter than its length".into())));
                }
                up.done = true;
            }
            Some(Err(e)) => return Poll::Ready(Err(Failed::Body(e))),
        }
    }
}

/// Writes the request and reads until the response head is in (the connection's timer bounds
/// both). The response may come before the request body is sent to its end: it is returned then,
/// and the response body goes on sending it.
fn poll_exchange(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    up: &mut Upload,
    head_only: bool,
    wrote: &mut bool,
) -> Poll<Result<Parsed, Failed>> {
    if !up.sent && up.write_error.is_none() {
        match poll_upload(conn, up, cx, wrote) {
            Poll::Ready(Err(Failed::Sent(e))) => up.write_error = Some(e),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
    }
    // read until the response head is in
    loop {
        match parse_head(&mut conn.rbuf, head_only, &mut conn.memo) {
            Ok(Some(p)) => return Poll::Ready(Ok(p)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(Failed::Sent(e))),
        }
        if conn.rbuf.len() > MAX_HEAD {
            return Poll::Ready(Err(Failed::Sent(UpstreamError::Protocol("response head too large"))));
        }
        match conn.fill(cx) {
            Poll::Ready(Ok(0)) => {
                let e = up.write_error.take().unwrap_or(UpstreamError::Incomplete);
                return Poll::Ready(Err(if *wrote { Failed::Sent(e) } else { Failed::Unsent(e) }));
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(match up.write_error.take() {
                    Some(w) => Failed::Sent(w),
                    None => io_failed(*wrote, e),
                }));
            }
            Poll::Pending => break,
        }
    }
    if conn.deadline.as_mut().poll(cx).is_ready() {
        return Poll::Ready(Err(Failed::TimedOut));
    }
    Poll::Pending
}

/// The request head, in origin form, with our framing of its body.
fn encode_head(head: &http::request::Parts, sending: Sending, length: u64, out: &mut BytesMut) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(head.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in &head.headers {
        if name == http::header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if name == http::header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match sending {
        Sending::Length => {
            use std::fmt::Write as _;
            let _ = write!(out, "content-length: {length}\r\n");
        }
        Sending::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Sending::Empty => {
            // a body-less POST says so (some servers wait for a length otherwise)
            if had_length || matches!(head.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A response head as read.
struct Parsed {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    keep_alive: bool,
    framing: Framing,
    /// The upstream's own reason phrase, when it is not the standard one (passed on, as nginx does).
    reason: Option<hyper::ext::ReasonPhrase>,
}

/// Parses a final response head off the front of `buf` (interim 1xx responses are skipped);
/// `None` until it is all in. `head_only`: the answer to a HEAD request, which has no body
/// whatever its framing headers say (as 204 and 304 have none).
fn parse_head(buf: &mut BytesMut, head_only: bool, memo: &mut HeadMemo) -> Result<Option<Parsed>, UpstreamError> {
    loop {
        // left uninitialised for httparse to fill (an initialised array of 256 headers is 8 KiB
        // of stores per response)
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut r, buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(UpstreamError::Protocol("too many headers")),
            Err(_) => return Err(UpstreamError::Protocol("malformed response head")),
        };
        let code = r.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| UpstreamError::Protocol("invalid status"))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(UpstreamError::Protocol("unexpected 101 Switching Protocols"));
            }
            buf.advance(len); // 100 Continue, 103 Early Hints: not passed on
            continue;
        }
        let version = if r.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        // room for the headers the layers above add (the request id, HSTS) without regrowing
        let mut headers = HeaderMap::with_capacity(r.headers.len() + 2);
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_coding = false;
        let (mut close_token, mut keep_alive_token) = (false, false);
        for (i, h) in r.headers.iter().enumerate() {
            let name = memo.name(i, h.name)?;
            let value = memo.value(i, h.value)?;
            if name == http::header::CONTENT_LENGTH {
                // several equal values are one length; different ones are an error
                for part in h.value.split(|&b| b == b',') {
                    let n = parse_length(part.trim_ascii()).ok_or(UpstreamError::Protocol("content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(UpstreamError::Protocol("conflicting content-length"));
                    }
                    length = Some(n);
                }
            } else if name == http::header::TRANSFER_ENCODING {
                // an HTTP/1.0 message cannot be framed so (RFC 9112, 6.1)
                if version == Version::HTTP_10 {
                    return Err(UpstreamError::Protocol("transfer-encoding in an HTTP/1.0 response"));
                }
                // the last coding decides: chunked, or anything else (read to the close)
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
                chunked = last.eq_ignore_ascii_case(b"chunked");
                other_coding = !chunked;
            } else if name == http::header::CONNECTION {
                for token in h.value.split(|&b| b == b',') {
                    let t = token.trim_ascii();
                    close_token |= t.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            headers.append(name, value);
        }
        // `close` wins wherever it appears; HTTP/1.0 closes unless it says keep-alive
        let mut close = close_token || (version == Version::HTTP_10 && !keep_alive_token);
        let framing = if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Done
        } else if chunked {
            // with Transfer-Encoding a Content-Length means nothing: removed, not passed on to
            // the client beside a body of another length (RFC 9112, 6.3), and the connection is
            // not reused (the upstream may disagree about where the message ends)
            if length.is_some() {
                headers.remove(http::header::CONTENT_LENGTH);
                close = true;
            }
            Framing::Chunked(Chunk::Size)
        } else if other_coding {
            headers.remove(http::header::CONTENT_LENGTH);
            close = true;
            Framing::UntilClose
        } else {
            match length {
                Some(0) => Framing::Done,
                Some(n) => Framing::Length(n),
                None => {
                    close = true;
                    Framing::UntilClose
                }
            }
        };
        let reason = r
            .reason
            .filter(|&given| status.canonical_reason() != Some(given))
            .and_then(|given| hyper::ext::ReasonPhrase::try_from(given.as_bytes()).ok());
        buf.advance(len);
        return Ok(Some(Parsed { status, version, headers, keep_alive: !close, framing, reason }));
    }
}

/// A chunk-size line: at least one hex digit, then extensions with no bare CR or LF (stricter
/// than `httparse::parse_chunk_size`, which reads an empty line as the last chunk).
fn chunk_size(buf: &[u8]) -> Result<httparse::Status<(usize, u64)>, ()> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.first().is_none_or(u8::is_ascii_hexdigit) { Ok(httparse::Status::Partial) } else { Err(()) };
    };
    let line = &buf[..end];
    if !line.first().is_some_and(u8::is_ascii_hexdigit)
        || line.last() != Some(&b'\r')
        || line[..line.len() - 1].contains(&b'\r')
    {
        return Err(());
    }
    httparse::parse_chunk_size(&buf[..=end]).map_err(|_| ())
}

/// A decimal `Content-Length` (digits only, no sign, no overflow).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// The connection went away under the request: closed (no byte of answer) or reset.
fn closed_under_us(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Incomplete => true,
        UpstreamError::Io(e) => {
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        }
        UpstreamError::Protocol(_) | UpstreamError::TimedOut => false,
    }
}

/// A reused connection idle this long may have been closed by the upstream's keep-alive timer.
const MAY_BE_CLOSED: Duration = Duration::from_secs(1);

/// A method whose repetition changes nothing.
fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

async fn connect(
    connector: &Connector,
    origin: &Uri,
    idle: &Arc<IdleList>,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Box<Conn>, ExchangeError> {
    let io = connector.clone().call(origin.clone()).await.map_err(ExchangeError::Connect)?;
    Ok(Box::new(Conn {
        io: TokioIo::new(io),
        rbuf: BytesMut::with_capacity(16 * 1024),
        wbuf: BytesMut::with_capacity(1024),
        idle_since: Instant::now(),
        home: Arc::downgrade(idle),
        worker: crate::workers::current(),
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
        timeout,
        body_due: None,
        memo: HeadMemo::default(),
    }))
}

/// Where a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this part of a chunk.
    Chunked(Chunk),
    /// At the close of the connection.
    UntilClose,
    /// Read to its end.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty one (this many bytes of them read so far).
    Trailers(usize),
}

/// An upstream's response body; polling it reads the upstream connection, which goes back to its
/// upstream's idle list once the body has been read to its end.
pub struct UpstreamBody {
    kind: Kind,
}

enum Kind {
    Own {
        conn: Option<Box<Conn>>,
        framing: Framing,
        keep_alive: bool,
        /// The request body, when the answer came before all of it was sent.
        upload: Option<Box<Upload>>,
    },
    /// Driven elsewhere (hyper-util's client: HTTP/2, upgrades).
    Detached(Incoming),
}

impl UpstreamBody {
    fn own(conn: Box<Conn>, framing: Framing, keep_alive: bool, upload: Option<Box<Upload>>) -> UpstreamBody {
        let mut b = UpstreamBody { kind: Kind::Own { conn: Some(conn), framing, keep_alive, upload } };
        if framing == Framing::Done {
            b.release();
        }
        b
    }

    /// A body whose connection is driven elsewhere (hyper-util's client: HTTP/2, upgrades).
    pub fn detached(inner: Incoming) -> UpstreamBody {
        UpstreamBody { kind: Kind::Detached(inner) }
    }

    /// The connection back to its list (once the body is read to its end).
    fn release(&mut self) {
        // reusable: the upstream keeps it open, and all of the request went up
        if let Kind::Own { conn, keep_alive, upload, .. } = &mut self.kind
            && let Some(c) = conn.take()
            && *keep_alive
            && upload.is_none()
        {
            IdleList::put(c);
        }
    }
}

/// The next frame of an own connection's body.
fn poll_own(
    conn: &mut Conn,
    framing: &mut Framing,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, UpstreamError>>> {
    loop {
        // what the buffer holds is used first; the socket is read when it holds too little
        let need_more = match framing {
            Framing::Done => return Poll::Ready(None),
            Framing::Length(0) => {
                *framing = Framing::Done;
                return Poll::Ready(None);
            }
            Framing::Length(n) | Framing::Chunked(Chunk::Data(n)) => {
                if conn.rbuf.is_empty() {
                    true
                } else {
                    let k = (*n).min(conn.rbuf.len() as u64);
                    let data = conn.rbuf.split_to(k as usize).freeze();
                    *n -= k;
                    if *framing == Framing::Chunked(Chunk::Data(0)) {
                        *framing = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
            }
            Framing::UntilClose => {
                if conn.rbuf.is_empty() {
                    true
                } else {
                    return Poll::Ready(Some(Ok(conn.rbuf.split().freeze())));
                }
            }
            Framing::Chunked(Chunk::Size) => match chunk_size(&conn.rbuf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    conn.rbuf.advance(used);
                    *framing = Framing::Chunked(if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) });
                    false
                }
                Ok(httparse::Status::Partial) if conn.rbuf.len() < MAX_CHUNK_LINE => true,
                _ => return Poll::Ready(Some(Err(UpstreamError::Protocol("chunk size")))),
            },
            Framing::Chunked(Chunk::DataEnd) => {
                if conn.rbuf.len() < 2 {
                    true
                } else if conn.rbuf.starts_with(b"\r\n") {
                    conn.rbuf.advance(2);
                    *framing = Framing::Chunked(Chunk::Size);
                    false
                } else {
                    return Poll::Ready(Some(Err(UpstreamError::Protocol("chunk data"))));
                }
            }
            Framing::Chunked(Chunk::Trailers(seen)) => match conn.rbuf.windows(2).position(|w| w == b"\r\n") {
                // trailer fields are read and dropped (the client's response is already under way)
                Some(0) => {
                    conn.rbuf.advance(2);
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Some(i) if *seen + i + 2 <= MAX_TRAILERS => {
                    conn.rbuf.advance(i + 2);
                    *seen += i + 2;
                    false
                }
                None if *seen + conn.rbuf.len() <= MAX_TRAILERS => true,
                _ => return Poll::Ready(Some(Err(UpstreamError::Protocol("trailers too large")))),
            },
        };
        if need_more {
            match ready!(conn.fill_body(cx)) {
                Ok(0) if *framing == Framing::UntilClose => {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(UpstreamError::Incomplete))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Detached(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            Kind::Own { conn, framing, upload, keep_alive } => {
                let Some(c) = conn else { return Poll::Ready(None) };
                if let Some(u) = upload {
                    match poll_upload(c, u, cx, &mut true) {
                        Poll::Ready(Ok(())) => *upload = None,
                        // the answer is still read; the connection is not reused
                        Poll::Ready(Err(_)) => {
                            *upload = None;
                            *keep_alive = false;
                        }
                        Poll::Pending => {}
                    }
                }
                match ready!(poll_own(c, framing, cx)) {
                    Some(Ok(data)) => {
                        if this.is_end_stream() {
                            this.release();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    None => {
                        this.release();
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => {
                        *conn = None; // closed
                        Poll::Ready(Some(Err(Box::new(e))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Detached(inner) => inner.is_end_stream(),
            Kind::Own { framing, .. } => matches!(framing, Framing::Done | Framing::Length(0)),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.kind {
            Kind::Detached(inner) => inner.size_hint(),
            Kind::Own { framing: Framing::Length(n), .. } => http_body::SizeHint::with_exact(*n),
            Kind::Own { framing: Framing::Done, .. } => http_body::SizeHint::with_exact(0),
            Kind::Own { .. } => http_body::SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // read to its end (the server stops polling a body that says it has ended): reusable;
        // otherwise the rest of the response is still on the wire and the connection is closed
        if self.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A connection's head memo gives every head what a fresh parse gives: same names, values,
    /// order, framing and status — for repeated heads, changed values, reordered and re-cased
    /// names, fewer and more headers than the last head.
    #[test]
    fn head_memo_parses_as_a_fresh_parse_does() {
        let heads: [&[u8]; 7] = [
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 50\r\nX-A: 2\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\nCONTENT-TYPE: text/html\r\nX-B: 1\r\nX-A: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
        ];
        let view = |p: &Parsed| {
            let h: Vec<(String, Vec<u8>)> =
                p.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
            (p.status, p.version, h, p.keep_alive, p.framing)
        };
        let mut memo = HeadMemo::default();
        for (i, head) in heads.iter().enumerate() {
            let fresh = parse_head(&mut BytesMut::from(*head), false, &mut HeadMemo::default()).unwrap().unwrap();
            let kept = parse_head(&mut BytesMut::from(*head), false, &mut memo).unwrap().unwrap();
            assert_eq!(view(&kept), view(&fresh), "head {i}");
        }
        // the repeated head reused the names and values it could (a reference, not a copy)
        let again = parse_head(&mut BytesMut::from(heads[6]), false, &mut memo).unwrap().unwrap();
        let x_a = again.headers.get("x-a").unwrap();
        assert_eq!(x_a.as_bytes().as_ptr(), memo.values[2].as_bytes().as_ptr());
        // a long value parses as fresh and is not remembered
        let long = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: {}\r\n\r\n",
            "a".repeat(300)
        );
        let fresh = parse_head(&mut BytesMut::from(long.as_bytes()), false, &mut HeadMemo::default()).unwrap().unwrap();
        let kept = parse_head(&mut BytesMut::from(long.as_bytes()), false, &mut memo).unwrap().unwrap();
        assert_eq!(view(&kept), view(&fresh));
        assert_eq!(memo.values[2].as_bytes(), b"1", "the long value is not kept");
        // a value that is not valid is refused, whatever was remembered at its place
        let bad = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nX-A: 1\x7f\r\n\r\n";
        assert!(parse_head(&mut BytesMut::from(&bad[..]), false, &mut memo).is_err());
    }

    /// An upstream that answers each request head it reads with the next scripted response,
    /// written in the pieces given (a pause between them, so that they arrive apart), and closes
    /// the connection after it when the script says so. Returns its address, the connections it
    /// accepted and the request heads it read.
    async fn scripted(script: Vec<(Vec<&'static [u8]>, bool)>) -> (Uri, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (a, h) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let (script, heads) = (script.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        heads.lock().unwrap().push(String::from_utf8_lossy(&buf[..end]).into_owned());
                        buf.drain(..end);
                        let next = script.lock().unwrap().pop_front();
                        let Some((pieces, close)) = next else { return };
                        for p in pieces {
                            if s.write_all(p).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(15)).await;
                        }
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}").parse().unwrap(), accepted, heads)
    }

    fn connector() -> Connector {
        let tls = crate::tls::upstream_client_config(None).unwrap();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    fn request(method: &str, path: &str) -> Request<OutBody> {
        let mut r = Request::new(http_body_util::Either::Right(http_body_util::Empty::new()));
        *r.method_mut() = method.parse().unwrap();
        *r.uri_mut() = path.parse().unwrap();
        r.headers_mut().insert("host", HeaderValue::from_static("app"));
        r
    }

    async fn run(
        origin: &Uri,
        idle: &Arc<IdleList>,
        method: &str,
        path: &str,
    ) -> Result<(u16, HeaderMap, Vec<u8>), String> {
        run_for(origin, idle, method, path, Duration::from_secs(5)).await
    }

    async fn run_for(
        origin: &Uri,
        idle: &Arc<IdleList>,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap, Vec<u8>), String> {
        let resp = match exchange(&connector(), origin, idle, timeout, request(method, path)).await {
            Ok(r) => r,
            Err(ExchangeError::Http(e) | ExchangeError::Connect(e)) => return Err(e.to_string()),
            Err(ExchangeError::TimedOut) => return Err("timed out".into()),
        };
        let (parts, body) = resp.into_parts();
        // a body that never ends fails the test instead of hanging it
        let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .map_err(|_| "body never ended".to_string())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((parts.status.as_u16(), parts.headers, body.to_vec()))
    }

    /// Every framing a response can have, each arriving in pieces: chunked (with a chunk
    /// extension, a trailer, and a size line split in two), Content-Length, HEAD, 204 and 304 (no
    /// body whatever the framing headers say), an interim 100 before the answer; all over one connection,
    /// reused after each; the request line in origin form with the client's Host.
    #[tokio::test]
    async fn framings_in_pieces_over_one_connection() {
        let (origin, accepted, heads) = scripted(vec![
            (
                vec![
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5;ext=1\r\nhello\r\n",
                    b"1",
                    b"0\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n",
                    b"\r\n",
                ],
                false,
            ),
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", b"56789"], false),
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], false),
            (vec![b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"], false),
            (vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"], false),
            (vec![b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"], false),
            (vec![b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"], false),
        ])
        .await;
        let idle = Arc::new(IdleList::new(8, Duration::from_secs(60), 0));
        let (s, h, b) = run(&origin, &idle, "GET", "/a?x=1").await.unwrap();
        assert_eq!((s, h["x-a"].to_str().unwrap(), &b[..]), (200, "1", &b"hello0123456789abcdef"[..]));
        let (s, _, b) = run(&origin, &idle, "GET", "/b").await.unwrap();
        assert_eq!((s, &b[..]), (200, &b"0123456789"[..]));
        let (s, h, b) = run(&origin, &idle, "HEAD", "/c").await.unwrap();
        assert_eq!((s, h["content-length"].to_str().unwrap(), b.len()), (200, "10", 0));
        let (s, _, b) = run(&origin, &idle, "GET", "/d").await.unwrap();
        assert_eq!((s, b.len()), (204, 0));
        // a HEAD answered with chunked framing, a 304 with none: no body, and reusable
        let (s, _, b) = run(&origin, &idle, "HEAD", "/streamed").await.unwrap();
        assert_eq!((s, b.len()), (200, 0));
        let (s, _, b) = run(&origin, &idle, "GET", "/cached").await.unwrap();
        assert_eq!((s, b.len()), (304, 0));
        let (s, _, b) = run(&origin, &idle, "POST", "/e").await.unwrap();
        assert_eq!((s, &b[..]), (201, &b"ok"[..]));
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");
        let heads = heads.lock().unwrap();
        assert!(heads[0].starts_with("GET /a?x=1 HTTP/1.1\r\nhost: app\r\n"), "{}", heads[0]);
        assert!(
            heads[6].starts_with("POST /e HTTP/1.1\r\n") && heads[6].contains("content-length: 0\r\n"),
            "{}",
            heads[6]
        );
    }

    /// A body that ends at the close, and `Connection: close`, are not reused; a response with
    /// two different lengths, or a malformed chunk, is an error and its connection is dropped; a
    /// body cut short by the close is an error.
    #[tokio::test]
    async fn closes_and_errors() {
        let (origin, accepted, _) = scripted(vec![
            (vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the close"], true),
            (vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"], false),
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"], false),
            (vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], false),
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], true),
            (
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                ],
                false,
            ),
            (vec![b"HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\nContent-Length: 2\r\n\r\nok"], false),
            (vec![b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"], false),
            (vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n\r\n2\r\nno\r\n0\r\n\r\n"], false),
        ])
        .await;
        let idle = Arc::new(IdleList::new(8, Duration::from_secs(60), 0));
        let (s, _, b) = run(&origin, &idle, "GET", "/").await.unwrap();
        assert_eq!((s, &b[..]), (200, &b"until the close"[..]));
        let (s, _, b) = run(&origin, &idle, "GET", "/").await.unwrap();
        assert_eq!((s, &b[..]), (200, &b"ok"[..]));
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "neither connection was reused");
        let e = run(&origin, &idle, "GET", "/").await.unwrap_err();
        assert!(e.contains("conflicting content-length"), "{e}");
        let e = run(&origin, &idle, "GET", "/").await.unwrap_err();
        assert!(e.contains("chunk size"), "{e}");
        let e = run(&origin, &idle, "GET", "/").await.unwrap_err();
        assert!(e.contains("closed before message completed"), "{e}");
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        // Transfer-Encoding with Content-Length: chunked decides, the length is not passed on,
        // and the connection is not reused
        let (s, h, b) = run(&origin, &idle, "GET", "/").await.unwrap();
        assert_eq!((s, &b[..], h.contains_key("content-length")), (200, &b"ok"[..], false));
        // HTTP/1.0: `close` wins over a `keep-alive` beside it; chunked framing is refused
        let (s, _, b) = run(&origin, &idle, "GET", "/").await.unwrap();
        assert_eq!((s, &b[..]), (200, &b"ok"[..]));
        let e = run(&origin, &idle, "GET", "/").await.unwrap_err();
        assert!(e.contains("transfer-encoding in an HTTP/1.0 response"), "{e}");
        // a stray empty line where a chunk size belongs is an error, not the end of the body
        let e = run(&origin, &idle, "GET", "/").await.unwrap_err();
        assert!(e.contains("chunk size"), "{e}");
        assert_eq!(accepted.load(Ordering::SeqCst), 9, "none of those connections was reused");
    }

    /// A response body that stops coming fails after `upstream_timeout` of silence (counted from
    /// the last bytes, not from the request), and its connection is not reused.
    #[tokio::test]
    async fn a_silent_body_times_out() {
        let (origin, accepted, _) = scripted(vec![
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", b"c", b"d"], false),
            (vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], false),
        ])
        .await;
        let idle = Arc::new(IdleList::new(8, Duration::from_secs(60), 0));
        let t0 = Instant::now();
        let e = run_for(&origin, &idle, "GET", "/", Duration::from_millis(300)).await.unwrap_err();
        let took = t0.elapsed();
        assert!(e.contains("timed out"), "{e}");
        // the pieces came 15 ms apart: the wait counts from the last one
        assert!(took >= Duration::from_millis(320) && took < Duration::from_secs(3), "{took:?}");
        let (s, _, b) = run(&origin, &idle, "GET", "/").await.unwrap();
        assert_eq!((s, &b[..]), (200, &b"ok"[..]));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn chunk_size_lines() {
        use httparse::Status::{Complete, Partial};
        assert_eq!(chunk_size(b"5\r\nhello"), Ok(Complete((3, 5))));
        assert_eq!(chunk_size(b"1f;name=v\r\n"), Ok(Complete((11, 31))));
        assert_eq!(chunk_size(b""), Ok(Partial));
        assert_eq!(chunk_size(b"5"), Ok(Partial));
        for bad in [&b"\r\n"[..], b";x\r\n", b" 5\r\n", b"5;a\nb\r\n", b"5;a\rb\r\n", b"z"] {
            assert_eq!(chunk_size(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"18446744073709551615"), None, "twenty digits");
        assert_eq!(parse_length(b"1844674407370955161"), Some(1_844_674_407_370_955_161));
        for bad in [&b""[..], b"+1", b"-1", b"1 2", b"0x10", b"1e3"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
