//! The layer around a toy inner service.

use std::convert::Infallible;
use std::net::SocketAddr;

use aiwaf_engine::ip::IpSet;
use aiwaf_engine::{EngineConfig, Record};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

use super::*;

type Body = http_body_util::Full<Bytes>;
type Inner = tower::util::BoxCloneService<Request<RequestBody<Body>>, Response<Full<Bytes>>, Infallible>;

/// The app behind the layer: 404 under `/missing`, otherwise 200 with the body it received
/// (so tests see that the body phase passes the whole body on) and the request id it was given
/// in `x-seen-id`.
fn inner() -> Inner {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Request<RequestBody<Body>>| async move {
        let status = if req.uri().path().starts_with("/missing") { 404 } else { 200 };
        let seen = req.headers().get(X_AIWAF_REQUEST_ID).cloned();
        let got = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body = if got.is_empty() { Bytes::from_static(b"upstream") } else { got };
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(id) = seen {
            r.headers_mut().insert("x-seen-id", id);
        }
        Ok::<_, Infallible>(r)
    }))
}

fn setup(mode: Mode, f: impl FnOnce(&mut EngineConfig)) -> (WafService<Inner>, mpsc::Receiver<Record>) {
    let mut c = EngineConfig::default();
    f(&mut c);
    let (tx, rx) = mpsc::channel(1000);
    let waf = Waf::with_sink(Engine::new(c, IpSet::default()).unwrap(), mode, Some(tx));
    (WafLayer::new(waf).layer(inner()), rx)
}

fn req(peer: &str, path: &str, accept: &str) -> Request<Body> {
    let mut r = Request::builder().uri(path).header("accept", accept).body(Body::default()).unwrap();
    r.extensions_mut().insert(PeerAddr(SocketAddr::new(peer.parse().unwrap(), 5555)));
    r
}

async fn send(svc: &mut WafService<Inner>, r: Request<Body>) -> (u16, HeaderMap, String) {
    let resp = svc.ready().await.unwrap().call(r).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn drain(rx: &mut mpsc::Receiver<Record>) -> Vec<Record> {
    let mut v = Vec::new();
    while let Ok(r) = rx.try_recv() {
        v.push(r);
    }
    v
}

#[tokio::test]
async fn blocks_with_json_or_html_and_records_why() {
    let (mut svc, mut rx) = setup(Mode::Block, |_| {});
    let (status, headers, body) = send(&mut svc, req("10.0.0.1", "/.env", "*/*")).await;
    assert_eq!(status, 403);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["blocked"], true);
    assert_eq!(json["reason"], "Access blocked");
    let id = headers[REQUEST_ID_HEADER].to_str().unwrap().to_string();
    assert_eq!(json["request_id"], id.as_str());
    let recs = drain(&mut rx);
    assert!(recs.iter().any(|r| matches!(r, Record::Ban(b) if b.detector == aiwaf_engine::Detector::Keyword)));
    assert!(recs.iter().any(|r| matches!(r, Record::Event(e) if e.request_id == id && e.action == "ban")));
    // Banned now, and a browser gets HTML.
    let (status, headers, body) = send(&mut svc, req("10.0.0.1", "/", "text/html")).await;
    assert_eq!(status, 403);
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("Access blocked") && !body.contains(".env"));
    // Others pass, and get a request id too.
    let (status, headers, body) = send(&mut svc, req("10.0.0.2", "/", "*/*")).await;
    assert_eq!((status, body.as_str()), (200, "upstream"));
    assert!(headers.contains_key(REQUEST_ID_HEADER));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (mut svc, _rx) = setup(Mode::Block, |c| {
        c.rate_max = 3;
        c.rate_flood = 100;
    });
    for _ in 0..3 {
        assert_eq!(send(&mut svc, req("10.0.0.1", "/", "*/*")).await.0, 200);
    }
    let (status, headers, _) = send(&mut svc, req("10.0.0.1", "/", "*/*")).await;
    assert_eq!(status, 429);
    let retry: u64 = headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry));
}

#[tokio::test]
async fn detect_mode_passes_and_records_would_block() {
    let (mut svc, mut rx) = setup(Mode::Detect, |_| {});
    let (status, _, body) = send(&mut svc, req("10.0.0.1", "/.env", "*/*")).await;
    assert_eq!((status, body.as_str()), (200, "upstream"));
    let recs = drain(&mut rx);
    assert!(recs.iter().any(|r| matches!(r, Record::Event(e) if e.action == "would_ban" && e.mode == "detect")));
    assert!(!recs.iter().any(|r| matches!(r, Record::Ban(_))));
}

#[tokio::test]
async fn off_mode_inspects_nothing() {
    let (mut svc, mut rx) = setup(Mode::Off, |_| {});
    for _ in 0..50 {
        assert_eq!(send(&mut svc, req("10.0.0.1", "/.env", "*/*")).await.0, 200);
    }
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn response_phase_bans_after_404_flood() {
    let (mut svc, mut rx) = setup(Mode::Block, |_| {});
    for k in 0..6 {
        assert_eq!(send(&mut svc, req("10.0.0.1", &format!("/missing/{k}"), "*/*")).await.0, 404);
    }
    assert_eq!(send(&mut svc, req("10.0.0.1", "/", "*/*")).await.0, 403);
    let recs = drain(&mut rx);
    assert!(recs.iter().any(|r| matches!(r, Record::Ban(b) if b.detector == aiwaf_engine::Detector::NotFoundFlood)));
}

#[tokio::test]
async fn full_channel_drops_and_counts_instead_of_waiting() {
    let (tx, _rx) = mpsc::channel(1);
    let waf = Waf::with_sink(Engine::new(EngineConfig::default(), IpSet::default()).unwrap(), Mode::Block, Some(tx));
    waf.set_request_logging(true);
    let mut svc = WafLayer::new(waf.clone()).layer(inner());
    for _ in 0..5 {
        send(&mut svc, req("10.0.0.1", "/", "*/*")).await;
    }
    assert!(waf.dropped_records() >= 3);
}

fn post(peer: &str, path: &str, ctype: &str, body: &'static [u8]) -> Request<Body> {
    let mut r = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", ctype)
        .body(Body::new(Bytes::from_static(body)))
        .unwrap();
    r.extensions_mut().insert(PeerAddr(SocketAddr::new(peer.parse().unwrap(), 5555)));
    r
}

/// Issue 12: the body phase inspects the first bytes of a body and passes the whole body on.
#[tokio::test]
async fn body_phase_blocks_payloads_and_passes_clean_bodies_whole() {
    let (mut svc, mut rx) = setup(Mode::Block, |_| {});
    let (status, _, body) = send(
        &mut svc,
        post(
            "10.0.0.1",
            "/comment",
            "application/x-www-form-urlencoded",
            b"name=Tom&text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        ),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let recs = drain(&mut rx);
    let ev = recs
        .iter()
        .find_map(|r| match r {
            Record::Event(e) => Some(e),
            _ => None,
        })
        .expect("an event");
    assert_eq!((ev.detector, ev.action), (Detector::Payload, "block"));
    assert!(ev.evidence["findings"].to_string().contains("body.text"), "{}", ev.evidence);
    // A clean JSON body reaches the app byte for byte.
    let clean: &[u8] = br#"{"name": "O'Brien", "note": "select a product, then pay"}"#;
    let (status, _, body) = send(&mut svc, post("10.0.0.2", "/api/orders", "application/json", clean)).await;
    assert_eq!((status, body.as_bytes()), (200, clean));
    // A body over the inspection limit is inspected by its prefix and still passed whole.
    let (mut svc, _rx) = setup(Mode::Block, |c| c.payload.max_body_bytes = 16);
    let long: &[u8] = b"a=0123456789abcdefghijklmnopqrstuvwxyz&b=fine";
    let (status, _, body) = send(&mut svc, post("10.0.0.3", "/f", "application/x-www-form-urlencoded", long)).await;
    assert_eq!((status, body.as_bytes()), (200, long));
}

/// With or without a body phase, the app sees the request id the client gets back, the client
/// address goes on the response when asked for, and the response phase runs (a known path is
/// recorded once its first 200 is seen).
#[tokio::test]
async fn request_id_client_and_response_phase_on_both_paths() {
    let (mut svc, mut rx) = setup(Mode::Block, |_| {});
    svc.waf.set_expose_client(true);
    let mut ids = Vec::new();
    for (r, path) in [
        (req("10.0.1.1", "/shop/items?page=2", "text/html"), "/shop/items"),
        (post("10.0.1.2", "/shop/cart", "application/x-www-form-urlencoded", b"item=7&qty=2"), "/shop/cart"),
    ] {
        let resp = svc.ready().await.unwrap().call(r).await.unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers().get(REQUEST_ID_HEADER).expect("id on the response").clone();
        assert_eq!(resp.headers().get("x-seen-id"), Some(&id), "the app saw the same id");
        assert!(resp.extensions().get::<ClientAddr>().is_some(), "client address exposed");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if path == "/shop/cart" {
            assert_eq!(&body[..], b"item=7&qty=2", "the body passed whole");
        }
        let recs = drain(&mut rx);
        assert!(
            recs.iter().any(|r| matches!(r, Record::KnownPath { path: p, .. } if p.as_str() == path)),
            "response phase ran for {path}"
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

/// Issue 10: every blocked request of a banned client wrote an event row. Now they are counted
/// and sampled: 1st, 2nd, 4th, 8th…, with the count in the evidence.
#[tokio::test]
async fn a_banned_clients_requests_are_counted_not_each_stored() {
    let (mut svc, mut rx) = setup(Mode::Block, |_| {});
    assert_eq!(send(&mut svc, req("10.0.0.9", "/.env", "*/*")).await.0, 403);
    drain(&mut rx);
    for _ in 0..100 {
        assert_eq!(send(&mut svc, req("10.0.0.9", "/", "*/*")).await.0, 403);
    }
    let counts: Vec<u64> = drain(&mut rx)
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => e.evidence["blocked_requests"].as_u64(),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(svc.waf.counters().get(Counter::Blocked), 101);
}

/// Issue 10: with shared windows, the response phase (404 windows) runs off the response path:
/// a 404 is answered at once even when Redis accepts connections and never answers. (A 404 on
/// an asset needs no request-phase windows, so only the response phase talks to Redis here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_never_holds_a_response_back() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let timeout = std::time::Duration::from_secs(2);
    let redis = shared::RedisWindows::new(&format!("redis://{addr}"), timeout, "t:").unwrap();
    let engine = Engine::new(EngineConfig::default(), IpSet::default()).unwrap();
    let waf = Waf::with_shared(engine, Mode::Block, None, Some(Shared { redis, fail_open: true }));
    let mut svc = WafLayer::new(waf.clone()).layer(inner());
    let t = std::time::Instant::now();
    let (status, _, _) = send(&mut svc, req("10.9.0.1", "/missing/app.css", "text/css")).await;
    assert_eq!(status, 404);
    assert!(t.elapsed() < std::time::Duration::from_millis(500), "answered after {:?}", t.elapsed());
    // the response phase did go to Redis, in a task of its own: it gives up after the timeout
    let failed = async {
        while waf.shared().unwrap().redis.failures.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(timeout * 2, failed).await.expect("the background call timed out and was counted");
}

#[test]
fn request_ids_are_the_prefix_and_sequence_in_twenty_hex_digits() {
    let waf = Waf::with_sink(Engine::new(EngineConfig::default(), IpSet::default()).unwrap(), Mode::Block, None);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let id = waf.next_request_id();
        let id = id.to_str().unwrap();
        assert_eq!(id.len(), 20, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        // the top 32 bits are the process's prefix, the low 48 the sequence (as u128 formatting)
        let v = u128::from_str_radix(id, 16).unwrap();
        assert_eq!((v >> 48) as u32, waf.inner.id_prefix, "{id}");
        assert!(seen.insert(v), "{id} drawn twice");
    }
    // the next sequence number written where the formula puts it
    let n = waf.inner.counters.next_sequence() + 1;
    let id = waf.next_request_id();
    assert_eq!(id.to_str().unwrap(), format!("{:020x}", (u128::from(waf.inner.id_prefix) << 48) | u128::from(n)));
}

#[test]
fn byte_chunk_cuts_copies_from_one_chunk_until_it_is_full() {
    let mut c = ByteChunk::default();
    let a = c.cut(b"abc", 8);
    let b = c.cut(b"defg", 8);
    assert_eq!((&a[..], &b[..]), (&b"abc"[..], &b"defg"[..]));
    // the second string follows the first in the same chunk
    assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(3));
    // two bytes left: a three-byte string starts a new chunk; a longer-than-chunk one fits too
    let d = c.cut(b"hij", 8);
    assert_ne!(d.as_ptr(), a.as_ptr().wrapping_add(7));
    assert_eq!(&c.cut(&[7u8; 20], 8)[..], &[7u8; 20][..]);
    drop((a, b));
    assert_eq!(&d[..], b"hij", "a cut string outlives the others of its chunk");
}
