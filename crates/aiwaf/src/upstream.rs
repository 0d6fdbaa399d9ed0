//! Keep-alive HTTP/1.1 connections to one upstream, driven by the request that uses them.
//!
//! hyper-util's pooled client (still used here for HTTP/2 upstreams and upgrades) runs every
//! upstream connection as a task of its own and keeps its idle connections in a map keyed by
//! scheme and authority: per proxied request that is a hashed lookup under a lock, a select
//! between checkout and connect, and two task wake-ups across the request/connection channel
//! (measured with `bench/callgrind.sh`: ~11k of the ~54k instructions of a request in
//! `--mode off`). Here each upstream ([`crate::pool::Backend`]) owns its list of idle
//! connections, and the connection is polled by the request's own task: while waiting for the
//! response head (`exchange`) and then by the response body as the client's connection reads it
//! ([`UpstreamBody`]). When the body has been read to its end the connection goes back to its
//! upstream's list; a body dropped before its end drops (closes) the connection, as does a
//! connection the upstream closed, one idle longer than the idle timeout, or one with a request
//! still being written.
//!
//! A connection taken from the list may have been closed by the upstream a moment ago: a request
//! hyper never wrote is handed back (`try_send_request`; the finished connection is dropped at
//! once so that it is) and goes out once more on a new connection. One the upstream closed just
//! as the request was written (its keep-alive timer fired) fails as an incomplete message; when
//! the connection had been idle for a second or more and the request has no body and an
//! idempotent method, a copy of its head was kept and it is sent once more on a new connection
//! (as nginx retries a cached keep-alive connection). Connections in use under load are idle
//! for microseconds: nothing is copied then.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service as _;

/// The client's body as it goes upstream (see `proxy.rs`).
pub type OutBody = crate::proxy::OutBody;
/// TCP, or TLS over TCP, to an upstream.
pub type Io = hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>;
/// Plain TCP for `http://` upstreams, rustls for `https://`.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An open HTTP/1.1 connection to an upstream.
pub struct Conn {
    send: SendRequest<OutBody>,
    /// `None` once the connection future finished (closed by either side, or failed): it is
    /// dropped then, which is when hyper hands back a request still queued on it.
    conn: Option<Connection<Io, OutBody>>,
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
}

impl Conn {
    /// Polls the connection (reads, writes, notices a close); `true` when it is over.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(c) = &mut self.conn
            && Pin::new(c).poll(cx).is_ready()
        {
            self.conn = None;
        }
        self.conn.is_none()
    }

    /// Ready for another request: open and idle.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        !self.drive(cx) && self.send.is_ready()
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
        if !c.reusable(&mut Context::from_waker(std::task::Waker::noop())) {
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
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed during the exchange.
    Http(hyper::Error),
    /// No response head within the timeout.
    TimedOut,
}

/// Sends `req` to the upstream at `origin` (scheme and authority) over an idle connection of
/// `idle` or a new one, driving the connection until the response head is in, at most for
/// `timeout` (connecting included). The response's body drives it from then on and returns it
/// to `idle` at its end.
pub async fn exchange(
    connector: &Connector,
    origin: &Uri,
    idle: &Arc<IdleList>,
    timeout: Duration,
    mut req: Request<OutBody>,
) -> Result<Response<UpstreamBody>, ExchangeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // `req`'s target is in origin form (`/path?query`); a request that came without a `Host`
    // (HTTP/1.0) gets the upstream's, as HTTP/1.1 requires one
    if !req.headers().contains_key(http::header::HOST)
        && let Some(a) = origin.authority()
        && let Ok(v) = http::HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(http::header::HOST, v);
    }
    // a request hyper hands back (never written: the connection closed under it) goes out
    // again: on another idle connection, then on a new one (the third try is the last)
    let mut tries = 0;
    loop {
        tries += 1;
        let pooled = if tries < 3 { std::future::poll_fn(|cx| Poll::Ready(idle.take(cx))).await } else { None };
        // An upstream closes a connection idle past its keep-alive timeout (gunicorn 2 s, Node
        // 5 s); a request written in that instant is lost with the connection. When a reused
        // connection was idle that long and the request can be replayed (no body, idempotent
        // method), a copy of its head is kept to send it once more on a new connection.
        let replay = pooled
            .as_ref()
            .filter(|c| c.idle_since.elapsed() >= MAY_BE_CLOSED && replayable(&req))
            .map(|_| Box::new(head_of(&req)));
        let mut conn = match pooled {
            Some(c) => c,
            // boxed: a new connection is the rare path, and its future (TLS state included)
            // would otherwise be part of every request's future, copied as it moves
            None => match tokio::time::timeout_at(deadline, Box::pin(connect(connector, origin, idle, deadline))).await
            {
                Ok(c) => c?,
                Err(_) => return Err(ExchangeError::TimedOut),
            },
        };
        conn.deadline.as_mut().reset(deadline);
        let mut fut = std::pin::pin!(conn.send.try_send_request(req));
        let res = std::future::poll_fn(|cx| {
            conn.drive(cx);
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if conn.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        // out of time: the connection (with the request on it) is dropped, which closes it
        let Some(res) = res else { return Err(ExchangeError::TimedOut) };
        match res {
            Ok(resp) => {
                let (parts, inner) = resp.into_parts();
                return Ok(Response::from_parts(parts, UpstreamBody { inner, conn: Some(conn) }));
            }
            Err(mut e) => match (e.take_message(), replay) {
                (Some(back), _) if tries < 3 => req = back,
                (None, Some(head)) if e.error().is_incomplete_message() => {
                    tracing::debug!("Upstream closed an idle connection as a request went out; sent again.");
                    req = Request::from_parts(*head, Either::Right(http_body_util::Empty::new()));
                    tries = 2; // the next try is the last, on a new connection
                }
                _ => return Err(ExchangeError::Http(e.into_error())),
            },
        }
    }
}

/// A reused connection idle this long may have been closed by the upstream's keep-alive timer.
const MAY_BE_CLOSED: Duration = Duration::from_secs(1);

/// A request that can be sent again: no body, and a method whose repetition changes nothing.
fn replayable(req: &Request<OutBody>) -> bool {
    use http::Method;
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
        && req.body().is_end_stream()
}

/// A copy of a request's head.
fn head_of(req: &Request<OutBody>) -> http::request::Parts {
    let mut head = Request::new(()).into_parts().0;
    head.method = req.method().clone();
    head.uri = req.uri().clone();
    head.version = req.version();
    head.headers = req.headers().clone();
    head
}

async fn connect(
    connector: &Connector,
    origin: &Uri,
    idle: &Arc<IdleList>,
    deadline: tokio::time::Instant,
) -> Result<Box<Conn>, ExchangeError> {
    let io = connector.clone().call(origin.clone()).await.map_err(ExchangeError::Connect)?;
    let (send, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| ExchangeError::Connect(Box::new(e)))?;
    Ok(Box::new(Conn {
        send,
        conn: Some(conn),
        idle_since: Instant::now(),
        home: Arc::downgrade(idle),
        worker: crate::workers::current(),
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
    }))
}

/// An upstream's response body; polling it drives the upstream connection, which goes back to
/// its upstream's idle list once the body has been read to its end.
pub struct UpstreamBody {
    inner: Incoming,
    conn: Option<Box<Conn>>,
}

impl UpstreamBody {
    /// A body whose connection is driven elsewhere (hyper-util's client: HTTP/2, upgrades).
    pub fn detached(inner: Incoming) -> UpstreamBody {
        UpstreamBody { inner, conn: None }
    }

    fn release(&mut self) {
        if let Some(c) = self.conn.take() {
            IdleList::put(c);
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(c) = &mut this.conn {
            c.drive(cx);
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // read to its end (the server stops polling a body that says it has ended): reusable;
        // otherwise the rest of the response is still on the wire and the connection is closed
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
