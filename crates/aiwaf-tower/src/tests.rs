//! The layer around a toy inner service.

use std::convert::Infallible;
use std::net::SocketAddr;

use aiwaf_engine::ip::IpSet;
use aiwaf_engine::{EngineConfig, Record};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

use super::*;

type Inner = tower::util::BoxCloneService<Request<()>, Response<Full<Bytes>>, Infallible>;

fn inner() -> Inner {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Request<()>| async move {
        let status = if req.uri().path().starts_with("/missing") { 404 } else { 200 };
        let mut r = Response::new(Full::new(Bytes::from_static(b"upstream")));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
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

fn req(peer: &str, path: &str, accept: &str) -> Request<()> {
    let mut r = Request::builder().uri(path).header("accept", accept).body(()).unwrap();
    r.extensions_mut().insert(PeerAddr(SocketAddr::new(peer.parse().unwrap(), 5555)));
    r
}

async fn send(svc: &mut WafService<Inner>, r: Request<()>) -> (u16, HeaderMap, String) {
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
    assert_eq!(json["reason"], "Keyword block: .env");
    let id = headers[REQUEST_ID_HEADER].to_str().unwrap().to_string();
    assert_eq!(json["request_id"], id.as_str());
    let recs = drain(&mut rx);
    assert!(recs.iter().any(|r| matches!(r, Record::Ban(b) if b.detector == aiwaf_engine::Detector::Keyword)));
    assert!(recs.iter().any(|r| matches!(r, Record::Event(e) if e.request_id == id && e.action == "ban")));
    // Banned now, and a browser gets HTML.
    let (status, headers, body) = send(&mut svc, req("10.0.0.1", "/", "text/html")).await;
    assert_eq!(status, 403);
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("blocked by aiwaf"));
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
