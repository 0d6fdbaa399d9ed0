//! The upstream side: a tower service that forwards a request to the upstream over a pooled
//! keep-alive client and streams both bodies. It never fails: an unreachable upstream is a
//! 502, a slow one a 504, an oversized body a 413.
//!
//! HTTP/1.1 upgrades (WebSocket): the handshake is an ordinary request — it went through the
//! WAF's phases like any other (same client rules, same bans) — forwarded with its `Upgrade`
//! header; when the upstream answers 101 both connections are taken over and bytes are copied
//! both ways, not inspected, until either side closes, nothing moves for
//! `server.upgrade_idle_timeout`, or `server.upgrade_max_lifetime` is over.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aiwaf_engine::ip::IpSet;
use aiwaf_tower::body::{TimeoutBody, is_body_timeout};
use aiwaf_tower::{Connection, ForConnection, RequestBody};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::ProxySettings;
use crate::pool::Pool;
use crate::upstream::{self, Connector, ExchangeError, UpstreamBody};
use aiwaf_tower::now_ms;
use http_body::Body as _;

/// Body of a proxied response: the upstream's, streamed, or a small error body of ours.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// What goes upstream: the client's body (limited, with its pause timeout), or nothing (a
/// bodiless request retried on another upstream).
pub type OutBody = Either<Limited<TimeoutBody<RequestBody<Incoming>>>, http_body_util::Empty<Bytes>>;

/// A boxed error of an upstream exchange.
type BoxError = Box<dyn StdError + Send + Sync>;

struct Inner {
    /// HTTP/1.1 exchanges: connections of each upstream's own idle list ([`crate::upstream`]).
    connector: Connector,
    /// HTTP/2 upstreams and upgrades (WebSocket): hyper-util's pooled client.
    client: Client<Connector, OutBody>,
    /// `[[server.routes]]`, longest prefix first.
    routes: Vec<(String, Pool)>,
    /// `server.upstream` + `server.upstreams`.
    default: Pool,
    trusted: IpSet,
    settings: ProxySettings,
}

impl Inner {
    fn pool_for(&self, path: &str) -> &Pool {
        self.routes.iter().find(|(prefix, _)| path.starts_with(prefix.as_str())).map_or(&self.default, |(_, p)| p)
    }
}

/// Upstreams a bodiless request is tried on, at most, when none can be reached.
const MAX_ATTEMPTS: usize = 3;

/// How one attempt at an upstream ended.
enum Attempt {
    Answered(Response<UpstreamBody>),
    /// No connection: nothing was sent, another upstream may take the request.
    NoConnection(BoxError),
    Failed(BoxError),
    TimedOut,
}

/// Forwards requests to one upstream.
#[derive(Clone)]
pub struct ProxyService {
    inner: Arc<Inner>,
    /// The connection's peer and TLS, given by the server ([`ForConnection`]).
    conn: Option<Connection>,
}

impl ForConnection for ProxyService {
    fn for_connection(&mut self, conn: Connection) {
        self.conn = Some(conn);
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. Names parsed
/// once: removing by `&str` parses the name on every call.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Headers that name the client or the original request to the app behind. Sent by an
/// untrusted client they are lies the app must not see: they are removed (and `X-Real-IP` set
/// to the peer), so neither aiwaf nor the upstream can be fooled by them.
const CLIENT_CLAIMS: [HeaderName; 6] = [
    header::FORWARDED,
    X_REAL_IP,
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-client-ip"),
];

/// What forwarding asks of a request's headers, read in one pass over them: a request carries a
/// few headers, and a hashed lookup per question (eight of them) cost more than reading them
/// all once.
#[derive(Debug, Default)]
struct Noted {
    /// Whether the first `Accept` asks for HTML (errors of ours are then a page); `None`: no
    /// `Accept`.
    html: Option<bool>,
    /// The first `Content-Length`: `Some(None)` when it is not a number.
    content_length: Option<Option<u64>>,
    host: bool,
    upgrade: bool,
    /// `Connection` lists `upgrade`.
    connection_upgrade: bool,
    te: bool,
    transfer_encoding: bool,
    /// Any hop-by-hop header at all.
    hop_by_hop: bool,
    forwarded_proto: bool,
    /// Any of `CLIENT_CLAIMS`.
    claims: bool,
}

impl Noted {
    /// Reads `h`. With `chain` (the peer is a trusted proxy, whose chain is extended), the values
    /// of `X-Forwarded-For` that are text are appended to `xff`, joined with ", ".
    fn read(h: &HeaderMap, chain: bool, xff: &mut Vec<u8>) -> Noted {
        let mut n = Noted::default();
        for (name, value) in h {
            // `==` on a name compares the standard ones as numbers (no hashing, no bytes)
            if *name == header::ACCEPT {
                if n.html.is_none() {
                    n.html = Some(value.to_str().is_ok_and(|a| a.contains("text/html")));
                }
            } else if *name == header::HOST {
                n.host = true;
            } else if *name == header::CONTENT_LENGTH {
                if n.content_length.is_none() {
                    n.content_length = Some(value.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
                }
            } else if *name == X_FORWARDED_FOR {
                if chain && let Ok(v) = value.to_str() {
                    if !xff.is_empty() {
                        xff.extend_from_slice(b", ");
                    }
                    xff.extend_from_slice(v.as_bytes());
                }
            } else if *name == X_FORWARDED_PROTO {
                n.forwarded_proto = true;
            } else if HOP_BY_HOP.contains(name) {
                n.hop_by_hop = true;
                if *name == header::CONNECTION {
                    n.connection_upgrade |=
                        value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
                } else if *name == header::UPGRADE {
                    n.upgrade = true;
                } else if *name == header::TE {
                    n.te = true;
                } else if *name == header::TRANSFER_ENCODING {
                    n.transfer_encoding = true;
                }
            } else if CLIENT_CLAIMS.contains(name) {
                n.claims = true;
            }
        }
        n
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // one pass over the names present (a few, compared without hashing) instead of a hashed
    // removal per hop-by-hop name: most messages carry none of them
    if !h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if h.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            h.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        h.remove(name);
    }
}

/// An error of ours: a small page for browsers (as nginx answers), JSON for everyone else.
fn error_response(status: StatusCode, error: &str, detail: &str, html: bool) -> Response<ProxyBody> {
    let (body, ctype) = if html {
        let title = status.canonical_reason().unwrap_or("Error");
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
             <style>body{{font:16px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1f2430}}\
             main{{max-width:34rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:12px}}</style></head>\
             <body><main><h1>{code} {title}</h1><p>{detail}.</p></main></body></html>\n",
            code = status.as_u16(),
            detail = human_detail(error),
        );
        (page, "text/html; charset=utf-8")
    } else {
        (format!("{}\n", serde_json::json!({"error": error, "detail": detail})), "application/json")
    };
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// What a person is told (no upstream addresses or internals on a page).
fn human_detail(error: &str) -> &'static str {
    match error {
        "payload_too_large" => "The file or form you sent is larger than this site accepts",
        "request_timeout" => "Your browser stopped sending the request before it was complete",
        "gateway_timeout" => "The site did not answer in time; please try again shortly",
        "bad_request" => "The request could not be understood",
        _ => "The site is temporarily unreachable; please try again shortly",
    }
}

impl ProxyService {
    /// A proxy to `upstreams` (`http://host:port[/base]` or `https://…`; several: a pool) and
    /// the pools of `routes` (path prefix, upstreams). Errors name the setting (an unreadable
    /// `server.upstream_ca`, h2c over TLS).
    pub fn new(
        upstreams: &[Uri],
        routes: &[(String, Vec<Uri>)],
        trusted: IpSet,
        settings: ProxySettings,
    ) -> anyhow::Result<ProxyService> {
        anyhow::ensure!(!upstreams.is_empty(), "no upstream");
        let all = || upstreams.iter().chain(routes.iter().flat_map(|r| r.1.iter()));
        let https = all().any(|u| u.scheme() == Some(&http::uri::Scheme::HTTPS));
        let plain = all().any(|u| u.scheme() != Some(&http::uri::Scheme::HTTPS));
        if https && settings.upstream_h2c {
            anyhow::bail!(
                "server.upstream_protocol = \"h2c\" is HTTP/2 in clear text; an https:// upstream negotiates HTTP/2 with \"h2\""
            );
        }
        if plain && settings.upstream_h2 {
            anyhow::bail!("server.upstream_protocol = \"h2\" needs https:// upstreams (\"h2c\" for http://)");
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        // ALPN: http/1.1 only by default (WebSocket upgrades need it), h2 first when asked
        let tls = crate::tls::upstream_client_config(settings.upstream_ca.as_deref())?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1();
        let connector = if settings.upstream_h2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .http2_only(settings.upstream_h2c)
            .build(connector.clone());
        let workers = crate::workers::count(settings.threads);
        let pool = |uris: &[Uri]| Pool::new(uris, settings.balance, settings.max_fails, settings.fail_timeout, workers);
        let mut routes: Vec<(String, Pool)> = routes.iter().map(|(p, u)| (p.clone(), pool(u))).collect();
        routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(ProxyService {
            inner: Arc::new(Inner { connector, client, routes, default: pool(upstreams), trusted, settings }),
            conn: None,
        })
    }

    /// Takes the request in parts: an async fn's arguments keep their place in its future for
    /// its whole life, so a whole request taken apart inside would be held twice.
    async fn forward(self, mut parts: http::request::Parts, body: RequestBody<Incoming>) -> Response<ProxyBody> {
        let s = &self.inner.settings;
        let peer: Option<IpAddr> = self.conn.map(|c| aiwaf_engine::ip::canonical(c.peer.ip()));
        let secure = self.conn.is_some_and(|c| c.secure);
        // A chain sent by an untrusted client is not passed on as if it were true.
        let trusted = peer.is_some_and(|p| self.inner.trusted.contains(p));
        // the chain (a trusted proxy's values, joined) and then the peer, in one buffer
        let mut xff = Vec::new();
        if trusted {
            xff.reserve(64);
        }
        let noted = Noted::read(&parts.headers, trusted, &mut xff);
        let html = noted.html == Some(true);
        let declared = noted.content_length.flatten();
        if declared.is_some_and(|n| n > s.max_body_bytes) {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body exceeds server.max_body_bytes",
                html,
            );
        }

        // the client's target; each attempt builds the upstream's URI from it
        let target = std::mem::take(&mut parts.uri);
        let path_and_query = target.path_and_query().map_or("/", |p| p.as_str());
        if !noted.host
            && let Some(a) = target.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            parts.headers.insert(header::HOST, v);
        }
        // An upgrade (WebSocket) asked for over HTTP/1.1: keep its `Upgrade` header and take the
        // client side of the connection over if the upstream agrees.
        let h2 = self.inner.settings.upstream_h2c;
        // HTTP/2 offered by ALPN may be what the upstream picks: no upgrade through it either
        let maybe_h2 = h2 || self.inner.settings.upstream_h2;
        let mut upgrade =
            if !maybe_h2 && parts.version == http::Version::HTTP_11 && noted.upgrade && noted.connection_upgrade {
                parts.headers.get(header::UPGRADE).cloned().zip(parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
            } else {
                None
            };
        parts.version = if h2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 };
        // `TE: trailers` is the one TE an HTTP/2 upstream takes (gRPC needs it)
        let te_trailers = maybe_h2
            && noted.te
            && parts.headers.get_all(header::TE).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if noted.hop_by_hop {
            strip_hop_by_hop(&mut parts.headers);
        }
        if te_trailers {
            parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some((proto, _)) = &upgrade {
            parts.headers.insert(header::UPGRADE, proto.clone());
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        if let Some(peer) = peer {
            if !xff.is_empty() {
                xff.extend_from_slice(b", ");
            }
            write_ip(&mut xff, peer);
            // untrusted: the chain is the peer alone, which is also X-Real-IP's value
            let xff = HeaderValue::from_maybe_shared(Bytes::from(xff)).ok();
            match &xff {
                // `insert` replaces every earlier value.
                Some(v) => {
                    parts.headers.insert(X_FORWARDED_FOR, v.clone());
                }
                None => {
                    parts.headers.remove(X_FORWARDED_FOR);
                }
            }
            if !(trusted && noted.forwarded_proto) {
                parts
                    .headers
                    .insert(X_FORWARDED_PROTO, HeaderValue::from_static(if secure { "https" } else { "http" }));
            }
            if !trusted {
                if noted.claims {
                    for name in CLIENT_CLAIMS {
                        parts.headers.remove(name);
                    }
                }
                if let Some(v) = xff {
                    parts.headers.insert(X_REAL_IP, v);
                }
            }
        }
        let pool = self.inner.pool_for(target.path());
        // A request with no body can be sent again elsewhere when an upstream cannot be
        // reached (nothing was sent); one with a body cannot (it is streamed, not kept).
        let bodiless =
            upgrade.is_none() && declared.is_none_or(|n| n == 0) && !noted.transfer_encoding && body.is_end_stream();
        let attempts = if bodiless { pool.len().min(MAX_ATTEMPTS) } else { 1 };
        let mut body = Some(Limited::new(TimeoutBody::new(body, s.body_read_timeout), s.max_body_bytes as usize));
        let (mut tried, mut n_tried) = ([0usize; MAX_ATTEMPTS], 0);
        let mut resp = loop {
            let i = pool.pick(now_ms, &tried[..n_tried]);
            tried[n_tried] = i;
            n_tried += 1;
            let b = pool.get(i);
            let failed = || {
                if pool.failed(i, now_ms()) {
                    tracing::warn!(upstream = %b.authority, "Upstream left out after repeated failures.");
                }
            };
            // hyper-util's client (HTTP/2, upgrades) takes the absolute URI and writes what the
            // protocol needs; our HTTP/1.1 connections write the target as given: origin form
            let pq = if b.base_path.is_empty() {
                http::uri::PathAndQuery::try_from(path_and_query)
            } else {
                http::uri::PathAndQuery::try_from(format!("{}{}", b.base_path, path_and_query))
            };
            let uri = pq.map_err(http::Error::from).and_then(|pq| {
                if self.via_client(upgrade.is_some()) {
                    Uri::builder().scheme(b.scheme.clone()).authority(b.authority.clone()).path_and_query(pq).build()
                } else {
                    Uri::builder().path_and_query(pq).build()
                }
            });
            let Ok(uri) = uri else {
                break error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "request target cannot be forwarded",
                    html,
                );
            };
            let last = n_tried >= attempts;
            let started = pool.start(i);
            // The outgoing request is built inside the call expression and the exchange is
            // awaited where it is made: a named local that a future moved out of keeps its place
            // in this future's state, and every byte of that state is copied as it moves.
            let attempt = if self.via_client(upgrade.is_some()) {
                Box::pin(self.attempt_via_client(outgoing(&mut parts, &mut body, uri, last))).await
            } else {
                // the timeout is the connection's own timer (see `upstream::Conn`)
                match upstream::exchange(
                    &self.inner.connector,
                    &b.origin,
                    &b.idle,
                    s.upstream_timeout,
                    outgoing(&mut parts, &mut body, uri, last),
                )
                .await
                {
                    Ok(resp) => Attempt::Answered(resp),
                    Err(ExchangeError::Connect(e)) => Attempt::NoConnection(e),
                    Err(ExchangeError::Http(e)) => Attempt::Failed(e),
                    Err(ExchangeError::TimedOut) => Attempt::TimedOut,
                }
            };
            drop(started);
            match attempt {
                Attempt::Answered(r) => {
                    pool.succeeded(i);
                    break self.answered(r, upgrade.take());
                }
                Attempt::NoConnection(e) if !last => {
                    failed();
                    tracing::debug!(error = %describe(&*e), upstream = %b.authority, "Upstream unreachable; trying another.");
                }
                Attempt::NoConnection(e) | Attempt::Failed(e) => {
                    failed();
                    break self.failed(&*e, &b.authority, html);
                }
                Attempt::TimedOut => {
                    failed();
                    tracing::warn!(upstream = %b.authority, "Upstream timed out.");
                    break error_response(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway_timeout",
                        "upstream did not answer in time",
                        html,
                    );
                }
            }
        };
        if secure && let Some(v) = &s.hsts {
            resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
        resp
    }

    /// Whether a request goes through hyper-util's client (HTTP/2 upstreams, upgrades) rather
    /// than our HTTP/1.1 connections.
    fn via_client(&self, upgrade: bool) -> bool {
        let s = &self.inner.settings;
        upgrade || s.upstream_h2c || s.upstream_h2
    }

    /// One exchange through hyper-util's client: HTTP/2 upstreams and upgrades (HTTP/1.1
    /// exchanges go over the upstream's own connections, in `forward`). Boxed where it is
    /// awaited: not the common path, so its future is not part of every request's.
    async fn attempt_via_client(&self, out: Request<OutBody>) -> Attempt {
        match tokio::time::timeout(self.inner.settings.upstream_timeout, self.inner.client.request(out)).await {
            Ok(Ok(resp)) => Attempt::Answered(resp.map(UpstreamBody::detached)),
            Ok(Err(e)) if e.is_connect() => Attempt::NoConnection(Box::new(e)),
            Ok(Err(e)) => Attempt::Failed(Box::new(e)),
            Err(_) => Attempt::TimedOut,
        }
    }

    /// The upstream's answer as the client gets it (an upgrade joined into a tunnel).
    fn answered(
        &self,
        mut resp: Response<UpstreamBody>,
        upgrade: Option<(HeaderValue, hyper::upgrade::OnUpgrade)>,
    ) -> Response<ProxyBody> {
        let s = &self.inner.settings;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some((_, client_side)) = upgrade
        {
            let upstream_side = hyper::upgrade::on(&mut resp);
            let (idle, lifetime) = (s.upgrade_idle_timeout, s.upgrade_max_lifetime);
            tokio::spawn(async move {
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((c, u)) => tunnel(TokioIo::new(c), TokioIo::new(u), idle, lifetime).await,
                    Err(e) => tracing::debug!(error = %e, "Upgrade not completed."),
                }
            });
            let (mut parts, body) = resp.into_parts();
            let proto = parts.headers.get(header::UPGRADE).cloned();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(p) = proto {
                parts.headers.insert(header::UPGRADE, p);
                parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            parts.version = http::Version::HTTP_11;
            return Response::from_parts(parts, Either::Left(body));
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // Speak our own protocol version to the client, whatever the upstream used.
        parts.version = http::Version::default();
        Response::from_parts(parts, Either::Left(body))
    }

    /// The answer when the exchange failed.
    fn failed(&self, e: &(dyn StdError + 'static), upstream: &http::uri::Authority, html: bool) -> Response<ProxyBody> {
        if is_body_timeout(e) {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body paused longer than server.body_read_timeout",
                html,
            );
        }
        if caused_by_limit(e) {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body exceeds server.max_body_bytes",
                html,
            );
        }
        tracing::warn!(error = %describe(e), upstream = %upstream, "Upstream request failed.");
        error_response(StatusCode::BAD_GATEWAY, "bad_gateway", &format!("upstream unreachable: {}", describe(e)), html)
    }
}

/// Appends `ip` as text: IPv4 by hand (std's `Display` goes through the formatter's padding
/// machinery, several hundred instructions on every proxied request), IPv6 through `Display`.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if o >= 100 {
                    out.push(b'0' + o / 100);
                }
                if o >= 10 {
                    out.push(b'0' + o / 10 % 10);
                }
                out.push(b'0' + o % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// The request that goes upstream: the client's method, headers (moved on the last attempt,
/// copied before) and body (taken by the first attempt), with `uri`.
fn outgoing(
    parts: &mut http::request::Parts,
    body: &mut Option<Limited<TimeoutBody<RequestBody<Incoming>>>>,
    uri: Uri,
    last: bool,
) -> Request<OutBody> {
    let mut out = Request::new(match body.take() {
        Some(b) => Either::Left(b),
        None => Either::Right(http_body_util::Empty::new()),
    });
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    *out.version_mut() = parts.version;
    *out.headers_mut() = if last { std::mem::take(&mut parts.headers) } else { parts.headers.clone() };
    out
}

/// Copies bytes both ways until either side closes or errs, nothing moves for `idle`, or
/// `lifetime` is over. The bytes are not inspected (a WebSocket's frames are the app's).
async fn tunnel<A, B>(a: A, b: B, idle: std::time::Duration, lifetime: std::time::Duration)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let mut from_a = vec![0u8; 16 * 1024];
    let mut from_b = vec![0u8; 16 * 1024];
    let end = tokio::time::Instant::now() + lifetime;
    loop {
        tokio::select! {
            r = ar.read(&mut from_a) => match r {
                Ok(n) if n > 0 => if bw.write_all(&from_a[..n]).await.is_err() { break },
                _ => break,
            },
            r = br.read(&mut from_b) => match r {
                Ok(n) if n > 0 => if aw.write_all(&from_b[..n]).await.is_err() { break },
                _ => break,
            },
            () = tokio::time::sleep(idle) => {
                tracing::debug!("Upgraded connection idle; closed.");
                break;
            }
            () = tokio::time::sleep_until(end) => {
                tracing::debug!("Upgraded connection reached its lifetime; closed.");
                break;
            }
        }
    }
    let _ = aw.shutdown().await;
    let _ = bw.shutdown().await;
}

fn caused_by_limit(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn describe(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

impl tower::Service<Request<RequestBody<Incoming>>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<Incoming>>) -> Self::Future {
        use futures_util::FutureExt as _;
        let (parts, body) = req.into_parts();
        Box::pin(self.clone().forward(parts, body).map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of an async fn's future, without making one.
    fn future_size3<A, B, C, F: Future>(_: &impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn future_size5<A, B, C, D, E, F: Future>(_: &impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn noted_reads_what_a_lookup_per_question_reads() {
        let cases: &[&[(&str, &[u8])]] = &[
            &[],
            &[("host", b"a"), ("accept", b"text/html,*/*"), ("x-forwarded-for", b"10.0.0.1")],
            &[("accept", b"application/json"), ("accept", b"text/html")],
            &[("content-length", b"12"), ("content-length", b"13"), ("transfer-encoding", b"chunked")],
            &[("content-length", b"twelve")],
            &[("connection", b"keep-alive, Upgrade"), ("upgrade", b"websocket")],
            &[("connection", b"close"), ("upgrade", b"websocket"), ("te", b"trailers")],
            &[
                ("x-forwarded-for", b"1.2.3.4"),
                ("x-forwarded-for", b"\xff\xfe"),
                ("x-forwarded-for", b"5.6.7.8, 9.9.9.9"),
            ],
            &[("x-forwarded-proto", b"https"), ("forwarded", b"for=1.2.3.4")],
            &[("proxy-connection", b"x")],
            &[("keep-alive", b"5")],
            &[("x-client-ip", b"1.1.1.1"), ("cookie", b"a=b")],
            &[("true-client-ip", b"1.1.1.1")],
        ];
        for case in cases {
            let mut h = HeaderMap::new();
            for (name, value) in *case {
                h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
            }
            for chain in [false, true] {
                let mut xff = Vec::new();
                let n = Noted::read(&h, chain, &mut xff);
                let html = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
                assert_eq!(n.html == Some(true), html, "{case:?}");
                let declared = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                assert_eq!(n.content_length.flatten(), declared, "{case:?}");
                assert_eq!(n.host, h.contains_key(header::HOST));
                let wants_upgrade = h.contains_key(header::UPGRADE)
                    && h.get_all(header::CONNECTION)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(','))
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
                assert_eq!(n.upgrade && n.connection_upgrade, wants_upgrade, "{case:?}");
                assert_eq!(n.te, h.contains_key(header::TE));
                assert_eq!(n.transfer_encoding, h.contains_key(header::TRANSFER_ENCODING));
                assert_eq!(n.hop_by_hop, h.keys().any(|k| HOP_BY_HOP.contains(k)), "{case:?}");
                assert_eq!(n.forwarded_proto, h.contains_key(X_FORWARDED_PROTO));
                assert_eq!(n.claims, h.keys().any(|k| CLIENT_CLAIMS.contains(k)), "{case:?}");
                let chained: Vec<&str> = h.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
                let want = if chain { chained.join(", ") } else { String::new() };
                assert_eq!(String::from_utf8(xff).unwrap(), want, "{case:?}");
            }
        }
    }

    #[test]
    fn ip_text_is_what_display_writes() {
        for ip in
            ["0.0.0.0", "10.0.0.1", "127.0.0.1", "9.99.100.255", "203.0.113.7", "::1", "2001:db8::1", "::ffff:10.0.0.1"]
        {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
        // every octet value
        for o in 0..=255u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(o, 0, o, 255 - o));
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    /// A request's future is moved (copied) into its box, and nested futures into their
    /// parent as they start: its size is paid in `memcpy` on every request. Rare paths (a new
    /// connection, hyper-util's client) are boxed where they are awaited to keep it small
    /// (it was 5.6 KiB).
    #[test]
    fn the_per_request_future_stays_small() {
        let forward = future_size3(&ProxyService::forward);
        let exchange = future_size5(&upstream::exchange);
        eprintln!("forward: {forward} bytes, exchange: {exchange} bytes");
        assert!(forward <= 3072, "forward's future is {forward} bytes");
        assert!(exchange <= 1536, "exchange's future is {exchange} bytes");
    }
}
