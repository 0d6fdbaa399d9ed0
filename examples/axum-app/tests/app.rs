//! The example app blocks what `aiwaf serve` blocks: one inspection path.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

async fn get(src: &str, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", "x").body(Empty::<Bytes>::new()).unwrap();
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into())
}

#[tokio::test]
async fn the_layer_protects_an_axum_app() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = aiwaf_engine::EngineConfig { rate_max: 5, rate_flood: 8, ..Default::default() };
    tokio::spawn(aiwaf_example_axum::serve(listener, aiwaf_example_axum::waf(config)));
    assert_eq!(get("127.0.50.1", addr, "/").await, (200, "home".into()));
    let (status, body) = get("127.0.50.2", addr, "/.env").await;
    assert_eq!(status, 403);
    assert!(body.contains("\"blocked\":true") && !body.contains(".env"), "{body}");
    assert_eq!(get("127.0.50.2", addr, "/").await.0, 403);
    // Rate limit per client address.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(get("127.0.50.3", addr, "/").await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // UUID enumeration against the app's own 404s.
    for k in 0..5 {
        assert_eq!(get("127.0.50.4", addr, &format!("/items/550e8400-e29b-41d4-a716-44665544100{k}")).await.0, 404);
    }
    assert_eq!(get("127.0.50.4", addr, "/").await.0, 403);
    assert_eq!(get("127.0.50.5", addr, "/items/550e8400-e29b-41d4-a716-446655440000").await.0, 200);
}
