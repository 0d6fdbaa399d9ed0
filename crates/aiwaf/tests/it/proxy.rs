use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_method_path_query_headers_and_bodies() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let body = Bytes::from(vec![b'a'; 300_000]);
    let r = send_from(
        "127.0.20.1",
        p.addr,
        "PUT",
        "/echo/x?q=1&b=%20two",
        &[
            ("x-custom", "yes"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["method"], "PUT");
    assert_eq!(j["path"], "/echo/x");
    assert_eq!(j["query"], "q=1&b=%20two");
    assert_eq!(j["body_len"], 300_000);
    let h = &j["headers"];
    assert_eq!(h["x-custom"][0], "yes");
    assert_eq!(h["host"][0], "app.test");
    assert_eq!(h["x-forwarded-for"][0], "127.0.20.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert!(h.get("x-drop-me").is_none(), "headers named in Connection are hop-by-hop");
    assert!(h.get("x-aiwaf-request-id").is_some());
    // Hop-by-hop headers from the upstream are dropped too; the request id is added.
    assert!(!r.headers.contains_key("x-hop"));
    assert!(r.headers.contains_key("x-aiwaf-request-id"));
    // A streamed 2 MiB response arrives whole.
    let r = get("127.0.20.1", p.addr, "/big").await;
    assert_eq!((r.status, r.body.len()), (200, 64 * 32 * 1024));
    // Redirects pass through untouched.
    let r = get("127.0.20.1", p.addr, "/redirect").await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (302, "/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_thread_serves_and_blocks() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts { args: vec!["--threads", "1"], ..Default::default() });
    assert_eq!(get("127.0.21.1", p.addr, "/").await.status, 200);
    assert_eq!(get("127.0.21.1", p.addr, "/.env").await.status, 403);
    assert_eq!(up.hits(), 1, "the blocked request never reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_on_both_sides() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    for k in 0..10 {
        let req = hyper::Request::get(format!("/page/{k}")).header("host", "x").body(Full::new(Bytes::new())).unwrap();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_11);
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(b, format!("ok /page/{k}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_quick_502() {
    // Bind and drop a listener to get a port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p = Proxy::start(&format!("http://{dead}"), ProxyOpts::default());
    let t = Instant::now();
    let r = get("127.0.21.1", p.addr, "/").await;
    assert_eq!(r.status, 502);
    assert!(t.elapsed() < Duration::from_secs(3));
    let j = r.json();
    assert_eq!(j["error"], "bad_gateway");
    assert!(j["detail"].as_str().unwrap().contains("upstream unreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_timeouts() {
    let up = Upstream::start().await;
    let config = "[server]\nmax_body_bytes = 1000\nupstream_timeout = \"500ms\"\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let r = send_from("127.0.22.1", p.addr, "POST", "/echo", &[], Bytes::from(vec![b'x'; 5000])).await;
    assert_eq!(r.status, 413);
    let r = send_from("127.0.22.1", p.addr, "POST", "/echo", &[], Bytes::from(vec![b'x'; 500])).await;
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let r = get("127.0.22.1", p.addr, "/slow").await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_millis(1400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let up = Upstream::start().await;
    let mut p = Proxy::start(&up.url(), ProxyOpts::default());
    let addr = p.addr;
    let slow = tokio::spawn(async move { get("127.0.23.1", addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = tokio::task::spawn_blocking(move || p.terminate()).await.unwrap();
    assert_eq!(code, Some(0));
    let r = slow.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slow done"));
}
