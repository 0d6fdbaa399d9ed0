use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    // A chunked body: inspected (and so read whole) in block mode, it goes upstream with its
    // length; unread (mode off), chunked as it comes, with no Content-Length.
    let p_off = Proxy::start(&up.url(), ProxyOpts { mode: Some("off"), ..Default::default() });
    for (proxy, framing) in [(&p, "content-length"), (&p_off, "transfer-encoding")] {
        let v = chunked_post(proxy.addr).await;
        assert_eq!(v["body_len"], 11, "{v}");
        let h = v["headers"].as_object().unwrap();
        let names: Vec<&str> =
            h.keys().map(String::as_str).filter(|k| ["content-length", "transfer-encoding"].contains(k)).collect();
        assert_eq!(names, vec![framing], "{v}");
    }
    // An upstream that answers without reading a large body and closes (hyper does, for a body
    // its handler left unread): the answer reaches the client although writing the body failed.
    for (k, proxy) in [&p, &p_off].into_iter().enumerate() {
        let big = Bytes::from(vec![b'a'; 400_000]);
        let r = send_from(
            &format!("127.0.20.{}", 10 + k),
            proxy.addr,
            "POST",
            "/page",
            &[("content-type", "text/plain")],
            big,
        )
        .await;
        assert_eq!((r.status, &r.body[..]), (200, &b"ok /page"[..]), "mode {}", ["block", "off"][k]);
    }
}

/// POSTs `hello world` in two chunks sent apart; the upstream's echo of it.
async fn chunked_post(to: std::net::SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = raw_conn("127.0.20.1", to).await;
    let head = "POST /echo/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(format!("{head}5\r\nhello\r\n").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"6\r\n world\r\n0\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap()
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

/// The proxy's own upstream connections: one kept-alive connection serves sequential requests
/// of every shape (streamed, empty, HEAD, error pages); a response the client walks away from
/// does not poison the next request; an upstream that closes idle connections without saying
/// so never turns into a 502 (the unwritten request goes out on a new connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_stale_ones_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    // off: a plain proxy (40 requests from one address would be rate limited)
    let off = || ProxyOpts { mode: Some("off"), ..Default::default() };
    let p = Proxy::start(&up.url(), off());
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let shapes = ["/page", "/big", "/redirect", "/nf-missing", "/echo?a=1"];
    for k in 0..40 {
        let path = shapes[k % shapes.len()];
        let method = if k % 7 == 3 { "HEAD" } else { "GET" };
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert!([200, 302, 404].contains(&resp.status().as_u16()), "{path}: {}", resp.status());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if path == "/big" && method == "GET" {
            assert_eq!(body.len(), 64 * 32 * 1024);
        }
    }
    assert_eq!(up.conns.load(Ordering::SeqCst), 1, "sequential requests share one upstream connection");

    // the request line the upstream reads is in origin form, its Host the client's (or, from an
    // HTTP/1.0 client without one, the upstream's)
    let r = get("127.0.0.1", p.addr, "/echo/x?a=1&b=2").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["target"], "/echo/x?a=1&b=2");
    let mut s = raw_conn("127.0.0.1", p.addr).await;
    s.write_all(b"GET /echo/old HTTP/1.0\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["target"], "/echo/old");
    assert_eq!(v["headers"]["host"][0], up.addr.to_string());

    // a client that reads the head of a large answer and goes away
    let mut s = raw_conn("127.0.0.1", p.addr).await;
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(s);
    for _ in 0..5 {
        assert_eq!(get("127.0.0.1", p.addr, "/after").await.status, 200);
    }

    // an upstream that closes every connection after one answer, without `Connection: close`
    let (rude, accepted, task) = scripted_upstream(false).await;
    let p2 = Proxy::start(&format!("http://{rude}"), off());
    for k in 0..12 {
        // the upstream's close has arrived (a close racing the next request is the other test's)
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = get("127.0.0.1", p2.addr, &format!("/r{k}")).await;
        assert_eq!(r.status, 200, "request {k} over a connection the upstream had closed");
        assert_eq!(r.body, "ok");
    }
    assert!(accepted.load(Ordering::SeqCst) >= 12);
    task.abort();
}

/// A raw TCP upstream on 127.0.0.1 port 0: each connection it accepts is handed to `serve`
/// in a task of its own. Returns its address and its accept task.
async fn raw_upstream<F, Fut>(serve: F) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    (addr, task)
}

/// Reads from `s` into `buf` until a request head is in: the head (lower-cased), where it ends in
/// `buf` (what follows stays there) and its `Content-Length`. `None` when the connection ends first.
async fn read_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize, Option<usize>)> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match s.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()));
    Some((head, end, len))
}

/// Reads one whole request (head, and body by `Content-Length`) off the front of `buf`, reading
/// `s` as needed; `None` when the connection ends first.
async fn read_request(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let (_, end, len) = read_head(s, buf).await?;
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < end + len.unwrap_or(0) {
        match s.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
    buf.drain(..end + len.unwrap_or(0));
    Some(())
}

/// A raw upstream that answers a POST at once, before its body is in, with its own reason
/// phrase ("200 Started Early"), goes on reading the body to its end (a full-duplex server),
/// then ends the answer with the byte count.
async fn early_answer_upstream() -> std::net::SocketAddr {
    raw_upstream(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = Vec::new();
        let Some((_, end, len)) = read_head(&mut s, &mut buf).await else { return };
        let len = len.expect("the proxy sends a length or the test fails here");
        let early = b"HTTP/1.1 200 Started Early\r\ntransfer-encoding: chunked\r\n\r\n8\r\nstarted\n\r\n";
        if s.write_all(early).await.is_err() {
            return;
        }
        let mut got = buf.len() - end;
        let mut chunk = [0u8; 16 * 1024];
        while got < len {
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => got += n,
                _ => return,
            }
        }
        let tail = format!("got {got}\n");
        let _ = s.write_all(format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len()).as_bytes()).await;
    })
    .await
    .0
}

/// An upstream that answers before the request body is in and reads the rest afterwards gets
/// all of the body (it is not abandoned once an answer came), the client gets the whole answer,
/// and the upstream's own reason phrase. 300 KB, more than the sockets buffer between them, so
/// the answer arrives while the body is still going up, in mode off (streamed) and block
/// (inspected, then sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_gets_the_whole_body_and_the_reason_phrase() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = early_answer_upstream().await;
    for mode in ["off", "block"] {
        let p = Proxy::start(&format!("http://{up}"), ProxyOpts { mode: Some(mode), ..Default::default() });
        let mut s = raw_conn("127.0.24.1", p.addr).await;
        let body = vec![b'a'; 300_000];
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        for piece in body.chunks(16 * 1024) {
            s.write_all(piece).await.unwrap();
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("mode {mode}: no complete answer"))
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 Started Early\r\n"), "mode {mode}: {answer}");
        assert!(answer.contains("started\n") && answer.contains("got 300000\n"), "mode {mode}: {answer}");
    }
}

/// A raw upstream that answers the first request on each connection ("ok") and then closes it
/// without saying so: at once, or (`read_next`) after reading the next request, unanswered (an
/// upstream whose keep-alive timer fires as that request arrives). Returns its address, the
/// connections it accepted and its task.
async fn scripted_upstream(read_next: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    let (addr, task) = raw_upstream(move |mut c| {
        a.fetch_add(1, Ordering::SeqCst);
        async move {
            use tokio::io::AsyncWriteExt;
            let mut buf = Vec::new();
            for k in 0..if read_next { 2 } else { 1 } {
                if read_request(&mut c, &mut buf).await.is_none() {
                    return;
                }
                if k == 0 {
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                }
            }
        }
    })
    .await;
    (addr, accepted, task)
}

/// An upstream whose keep-alive timer closes a connection just as the proxy writes the next
/// request on it (simulated: the second request on every connection is read, then the
/// connection is closed unanswered). A bodiless GET after a second of idleness is sent again on
/// a new connection; a POST with a body is not replayed (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_lost_to_an_upstream_keep_alive_close_is_replayed_when_safe() {
    let (addr, accepted, task) = scripted_upstream(true).await;
    let p = Proxy::start(&format!("http://{addr}"), ProxyOpts { mode: Some("off"), ..Default::default() });
    assert_eq!(get("127.0.0.1", p.addr, "/first").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get("127.0.0.1", p.addr, "/second").await;
    assert_eq!(r.status, 200, "a GET on a connection the upstream closed is sent again");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "once more, on a new connection");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let post =
        send_from("127.0.0.1", p.addr, "POST", "/form", &[("content-type", "text/plain")], Bytes::from_static(b"a=1"))
            .await;
    assert_eq!(post.status, 502, "a request with a body is never sent twice");
    task.abort();
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
    // one worker: idle upstream connections are kept per worker, and this test counts reuse
    let config = "[server]\nmax_body_bytes = 1000\nupstream_timeout = \"500ms\"\nthreads = 1\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let r = send_from("127.0.22.1", p.addr, "POST", "/echo", &[], Bytes::from(vec![b'x'; 5000])).await;
    assert_eq!(r.status, 413);
    let r = send_from("127.0.22.1", p.addr, "POST", "/echo", &[], Bytes::from(vec![b'x'; 500])).await;
    assert_eq!(r.status, 200);
    // A body declared far over the limit and never sent: 413 at once (block mode's body phase
    // used to wait for it, then answer 408 after the body timeout).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = raw_conn("127.0.22.2", p.addr).await;
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nx").await.unwrap();
        let mut buf = [0u8; 64];
        let n =
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("an answer at once").unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&buf[..n]));
    }
    let t = Instant::now();
    let r = get("127.0.22.1", p.addr, "/slow").await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_millis(1400));

    // The timeout is a timer of the upstream connection, moved forward per request: one that
    // went off while its connection sat idle still times the next request on that connection.
    assert_eq!(get("127.0.22.1", p.addr, "/echo").await.status, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = up.conns.load(Ordering::SeqCst);
    assert_eq!(get("127.0.22.1", p.addr, "/echo").await.status, 200);
    assert_eq!(up.conns.load(Ordering::SeqCst), before, "the idle connection is reused");
    let t = Instant::now();
    assert_eq!(get("127.0.22.1", p.addr, "/slow").await.status, 504);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(1400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let up = Upstream::start().await;
    let mut p = Proxy::start(&up.url(), ProxyOpts::default());
    let addr = p.addr;
    // two connections: on two workers where there are two (each worker has its own signal)
    let slow: Vec<_> = ["127.0.23.1", "127.0.23.2"]
        .into_iter()
        .map(|src| tokio::spawn(async move { get(src, addr, "/slow").await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = tokio::task::spawn_blocking(move || p.terminate()).await.unwrap();
    assert_eq!(code, Some(0));
    for s in slow {
        let r = s.await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "slow done"));
    }
}

/// A raw TCP connection from `src` (no request sent).
async fn raw_conn(src: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server has closed `s` (EOF or reset) within `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // e.g. a 408 before the close
        }
    }
}

/// Issue 10, reproduced: silent connections (the protocol sniff had no timeout) were held
/// forever, and nothing capped connections per address. Now silent, partial-preface and
/// half-sent-header connections are closed within the header timeout, one address cannot hold
/// more than its share, and other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed_and_capped() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start().await;
    let config = "[server]\nheader_read_timeout = \"1s\"\nmax_connections_per_ip = 40\n";
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config.into()), ..Default::default() });
    let mut held = Vec::new();
    // 100 silent connections from one address: 40 admitted, the rest closed at once.
    for _ in 0..100 {
        held.push(raw_conn("127.0.31.1", p.addr).await);
    }
    let mut closed_at_once = 0;
    for s in held.iter_mut().skip(40) {
        if closed_within(s, Duration::from_millis(300)).await {
            closed_at_once += 1;
        }
    }
    assert_eq!(closed_at_once, 60, "connections over the per-address cap must be closed");
    // Partial HTTP/2 preface and partial HTTP/1 head from other addresses.
    let mut partial = Vec::new();
    for i in 0..20 {
        let mut s = raw_conn(&format!("127.0.32.{}", i + 1), p.addr).await;
        let bytes: &[u8] = if i % 2 == 0 { b"PRI * HTTP/2.0\r\n" } else { b"GET / HTTP/1.1\r\nHost: a" };
        s.write_all(bytes).await.unwrap();
        partial.push(s);
    }
    // Legitimate requests are served meanwhile.
    let t = Instant::now();
    for i in 0..10 {
        assert_eq!(get(&format!("127.0.33.{}", i + 1), p.addr, "/").await.status, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(2));
    // Everything silent or half-sent is closed within the header timeout (1 s, plus slack).
    for s in held.iter_mut().take(40).chain(partial.iter_mut()) {
        assert!(closed_within(s, Duration::from_secs(3)).await, "a silent connection was kept open");
    }
    // An idle keep-alive connection is closed too.
    let mut s = raw_conn("127.0.34.1", p.addr).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(4)).await, "idle keep-alive connection kept open");
    // The address that held 40 gets its budget back.
    assert_eq!(get("127.0.31.1", p.addr, "/").await.status, 200);
}

/// A client that sends its headers and then trickles (or stops sending) its body is answered
/// 408 once it pauses longer than `server.body_read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let config = "[server]\nbody_read_timeout = \"500ms\"\n";
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config.into()), ..Default::default() });
    let mut s = raw_conn("127.0.35.1", p.addr).await;
    let t = Instant::now();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nhalf",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("answered").unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// Issue 16: `serve` writes an access log — one line per request, blocked ones included, with
/// the client address the WAF decided on, the status the client got, the bytes sent and the
/// request time — in the format `aiwaf train` reads, so the proxy learns from its own traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_is_written_and_training_reads_it() {
    let up = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("logs").join("access.log");
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            dir: Some(dir.clone()),
            config: Some(format!(
                "[logging]\naccess_log = {:?}\nwrite_access_log = true\n\n[server]\ntrusted_proxies = [\"127.0.6.0/24\"]\n",
                log.display().to_string()
            )),
            ..Default::default()
        },
    );
    assert_eq!(get("127.0.5.1", p.addr, "/page?x=1").await.status, 200);
    assert_eq!(get("127.0.5.2", p.addr, "/.env").await.status, 403);
    let r = send_from(
        "127.0.6.1",
        p.addr,
        "GET",
        "/via-proxy",
        &[
            ("x-forwarded-for", "198.51.100.23"),
            ("user-agent", "Mozilla/5.0 \"quoted\""),
            ("referer", "https://a.test/"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let lines = || std::fs::read_to_string(&log).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>();
    eventually(Duration::from_secs(5), async || lines().len() >= 3).await.expect("three lines within a flush");
    let all = lines();
    let find =
        |needle: &str| all.iter().find(|l| l.contains(needle)).cloned().unwrap_or_else(|| panic!("{needle}: {all:?}"));
    let ok = find("/page?x=1");
    assert!(ok.starts_with("127.0.5.1 - - ["), "{ok}");
    assert!(ok.contains("\"GET /page?x=1 HTTP/1.1\" 200 "), "{ok}");
    let blocked = find("/.env");
    assert!(blocked.starts_with("127.0.5.2 ") && blocked.contains("\" 403 "), "{blocked}");
    let proxied = find("/via-proxy");
    assert!(proxied.starts_with("198.51.100.23 "), "the client the WAF decided on: {proxied}");
    assert!(proxied.contains("\"https://a.test/\" \"Mozilla/5.0 \\x22quoted\\x22\""), "{proxied}");
    let secs: f64 = proxied.rsplit(' ').next().unwrap().parse().expect("request time last");
    assert!((0.0..5.0).contains(&secs));

    // the same file, read by training (its configured access log), every line parsed
    let cfg = dir.join("aiwaf.toml");
    let (code, out, err) = cli_in(&dir, Some(&cfg), &["train", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["lines_read"], all.len(), "{out}");
    assert_eq!(r["lines_skipped"], 0, "{out}");
}

/// A WebSocket-style upstream on a raw socket: answers the upgrade with 101, then echoes.
async fn echo_upgrade_upstream() -> std::net::SocketAddr {
    raw_upstream(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = Vec::new();
        let Some((h, end, _)) = read_head(&mut s, &mut buf).await else { return };
        if !(h.contains("upgrade: websocket") && h.contains("connection: upgrade")) {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
            .await;
        // bytes that came with the handshake are the tunnel's first
        if s.write_all(&buf[end..]).await.is_err() {
            return;
        }
        let mut chunk = [0u8; 1024];
        loop {
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => {
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    })
    .await
    .0
}

async fn ws_handshake(src: &str, to: std::net::SocketAddr, path: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Issue 16: WebSocket upgrades pass through after the handshake went through the WAF; a
/// blocked handshake gets no tunnel; an idle tunnel is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through_after_the_waf() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = echo_upgrade_upstream().await;
    let p = Proxy::start(
        &format!("http://{up}"),
        ProxyOpts { config: Some("[server]\nupgrade_idle_timeout = \"1s\"\n".into()), ..Default::default() },
    );
    let (mut s, head) = ws_handshake("127.0.7.1", p.addr, "/chat").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"second frame", &[0u8, 255, 1, 2][..]] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut got)).await.expect("echo in time").unwrap();
        assert_eq!(got, msg);
    }
    // idle for longer than upgrade_idle_timeout: closed
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.expect("closed when idle");
    assert_eq!(n.unwrap_or(0), 0);

    // the handshake is a request like any other: an attack in it is blocked, no tunnel
    let (_s, head) =
        ws_handshake("127.0.7.2", p.addr, "/chat?room=1%27%20union%20select%20password%20from%20users--").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_s, head) = ws_handshake("127.0.7.3", p.addr, "/.env").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}

fn write_cert(dir: &std::path::Path, sans: &[&str]) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let (cert, key) = (dir.join("site.crt"), dir.join("site.key"));
    // write the key first: the watcher may see the pair between the two writes and must cope
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    std::fs::write(&cert, c.cert.pem()).unwrap();
    (cert, key, c.cert.der().to_vec())
}

async fn tls_connect(
    to: std::net::SocketAddr,
    sni: &str,
    trust: &[u8],
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(trust.to_vec())).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.8.1:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(to).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp).await
}

/// Issue 16: `serve` terminates TLS (rustls): HTTP/1.1 and HTTP/2 by ALPN, the WAF in force,
/// `X-Forwarded-Proto: https` and HSTS, certificates picked by SNI and reloaded when the files
/// change, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_alpn_and_certificate_reload() {
    use http_body_util::BodyExt;
    let up = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, der1) = write_cert(tmp.path(), &["localhost", "site.test"]);
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            config: Some(format!(
                "[tls]\nhsts = \"max-age=31536000\"\n[[tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            )),
            ..Default::default()
        },
    );
    // HTTP/1.1 over TLS
    let tls = tls_connect(p.addr, "site.test", &der1, &[b"http/1.1"]).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/echo/x?q=1").header("host", "site.test").body(Full::new(Bytes::new())).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("strict-transport-security").unwrap(), "max-age=31536000");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"][0], "https", "{v}");
    let req = http::Request::get("/search?q=%27%20union%20select%20password%20from%20users--")
        .header("host", "site.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send.ready().await.unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 403, "the WAF works over TLS");

    // HTTP/2 by ALPN
    let tls = tls_connect(p.addr, "localhost", &der1, &[b"h2", b"http/1.1"]).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/echo/h2").body(Full::new(Bytes::new())).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!((resp.status(), resp.version()), (http::StatusCode::OK, http::Version::HTTP_2));

    // a plain-HTTP client on the TLS port gets no HTTP answer in clear text
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.map_or(0, |r| r.unwrap_or(0));
        assert!(!buf[..n].starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    }
    let (_c2, _k2, der2) = write_cert(tmp.path(), &["reloaded.test"]);
    let reloaded = eventually(Duration::from_secs(10), async || {
        tls_connect(p.addr, "reloaded.test", &der2, &[b"http/1.1"]).await.is_ok()
    })
    .await;
    assert!(reloaded.is_some(), "the new certificate is served without a restart");
    assert!(tls_connect(p.addr, "site.test", &der1, &[b"http/1.1"]).await.is_err(), "the old one is gone");
}

/// Issue 16: `server.upstream_protocol = "h2c"` speaks HTTP/2 to the upstream, so an
/// HTTP/2-only (gRPC-style) upstream works end to end: `TE: trailers` reaches it, its trailers
/// reach the client, and the WAF still judges every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_passes_trailers() {
    use http_body_util::BodyExt;
    // an HTTP/2-only upstream: echoes the request's protocol and TE, answers with trailers
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let info = format!(
                        "{:?} te={}",
                        req.version(),
                        req.headers().get("te").and_then(|v| v.to_str().ok()).unwrap_or("-")
                    );
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
                        vec![Ok(http_body::Frame::data(Bytes::from(info))), Ok(http_body::Frame::trailers(trailers))];
                    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let p = Proxy::start(
        &format!("http://{up}"),
        ProxyOpts { config: Some("[server]\nupstream_protocol = \"h2c\"\n".into()), ..Default::default() },
    );
    // the client speaks h2c (prior knowledge) to the proxy, as gRPC clients do
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.9.9:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(p.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("http://app.test/pkg.Service/Method")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    assert_eq!(&body[..], b"HTTP/2.0 te=trailers", "{:?}", String::from_utf8_lossy(&body));
    assert_eq!(trailers.and_then(|t| t.get("grpc-status").cloned()).unwrap(), "0");
    // the WAF judges requests to an h2c upstream like any other
    let req = http::Request::get("http://app.test/search?q=%27%20union%20select%20password%20from%20users--")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 403);
}

/// A TLS upstream on 127.0.0.1 whose certificate (for `127.0.0.1`) is signed by a private CA;
/// it answers with the protocol it was spoken to in. Returns its address and the CA's PEM.
async fn tls_upstream() -> (std::net::SocketAddr, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else { return };
                let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let info = format!("{:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(info))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, ca.pem())
}

/// Issue 16: an `https://` upstream. Its certificate is checked (against `server.upstream_ca`
/// here, the Mozilla roots by default): trusted → served over TLS, HTTP/1.1 by default or
/// HTTP/2 by ALPN with `upstream_protocol = "h2"`; not trusted → 502, never a clear-text retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_and_spoken_to_over_tls() {
    let (up, ca_pem) = tls_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let url = format!("https://{up}");
    for (protocol, want) in [("http1", "HTTP/1.1 /echo/tls"), ("h2", "HTTP/2.0 /echo/tls")] {
        let p = Proxy::start(
            &url,
            ProxyOpts {
                config: Some(format!(
                    "[server]\nupstream_ca = {:?}\nupstream_protocol = {protocol:?}\n",
                    ca.display().to_string()
                )),
                ..Default::default()
            },
        );
        let r = get("127.0.9.20", p.addr, "/echo/tls").await;
        assert_eq!((r.status, r.text()), (200, want.to_string()), "{protocol}");
        assert_eq!(get("127.0.9.21", p.addr, "/?q=%27%20union%20select%20password%20from%20users--").await.status, 403);
    }
    // the default roots do not know the private CA: 502, nothing sent in clear text
    let p = Proxy::start(&url, ProxyOpts::default());
    assert_eq!(get("127.0.9.22", p.addr, "/echo/tls").await.status, 502);
}

/// Misconfigurations of the upstream's TLS refuse to start, naming the setting.
#[test]
fn upstream_tls_misconfiguration_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for (upstream, config, want) in [
        (
            "https://127.0.0.1:9",
            format!("[server]\nupstream_ca = {:?}\n", junk.display().to_string()),
            "server.upstream_ca",
        ),
        ("https://127.0.0.1:9", "[server]\nupstream_protocol = \"h2c\"\n".to_string(), "server.upstream_protocol"),
        ("http://127.0.0.1:9", "[server]\nupstream_protocol = \"h2\"\n".to_string(), "server.upstream_protocol"),
    ] {
        let cfg = tmp.path().join("aiwaf.toml");
        std::fs::write(&cfg, &config).unwrap();
        let out = std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--upstream", upstream, "--data-dir"])
            .arg(tmp.path().join("data"))
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {err}");
        assert!(err.contains(want), "{config}: {err}");
    }
}

/// Issue 13: a JSON access log (this proxy's `access_log_format = "json"`, nginx `escape=json`
/// style) is recognised by training without being told, every line parsed, the blocked prober
/// found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_is_read_by_training() {
    let up = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("access.json");
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            dir: Some(dir.clone()),
            config: Some(format!(
                "[logging]\naccess_log = {:?}\nwrite_access_log = true\naccess_log_format = \"json\"\n",
                log.display().to_string()
            )),
            ..Default::default()
        },
    );
    for k in 1..=3 {
        assert_eq!(get(&format!("127.0.5.{k}"), p.addr, "/page?x=1").await.status, 200);
    }
    assert_eq!(get("127.0.5.9", p.addr, "/.env").await.status, 403);
    let n = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    eventually(Duration::from_secs(5), async || n() >= 4).await.expect("four lines within a flush");
    let cfg = dir.join("aiwaf.toml");
    let (code, out, err) = cli_in(&dir, Some(&cfg), &["train", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["sources"][0]["format"], "json", "{out}");
    assert_eq!((r["lines_read"].as_u64(), r["lines_skipped"].as_u64()), (Some(n() as u64), Some(0)), "{out}");
    assert_eq!(r["clients"], 4, "{out}");
}

/// Issue 16: several upstreams. A pool shares requests in turn; an upstream that cannot be
/// reached costs no request that can be sent again (no body), and after `max_fails` it is left
/// out, so requests with a body no longer meet it either; `[[server.routes]]` sends a path
/// prefix to a pool of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_pools_balance_fail_over_and_route() {
    let (a, b, api) = (Upstream::start().await, Upstream::start().await, Upstream::start().await);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p = Proxy::start(
        &a.url(),
        ProxyOpts {
            config: Some(format!(
                "[server]\nupstreams = [{:?}, \"http://{dead}\"]\nmax_fails = 2\nfail_timeout = \"30s\"\n\
                 [[server.routes]]\npath_prefix = \"/api/\"\nupstreams = [{:?}]\n",
                b.url(),
                api.url()
            )),
            ..Default::default()
        },
    );
    for k in 0..30 {
        let r = get(&format!("127.0.40.{}", k % 20 + 1), p.addr, "/page").await;
        assert_eq!(r.status, 200, "request {k}: {}", r.text());
    }
    assert_eq!(a.hits() + b.hits(), 30);
    assert!(a.hits() >= 10 && b.hits() >= 10, "shared: {} / {}", a.hits(), b.hits());
    let before = (a.hits(), b.hits());
    for k in 0..5 {
        assert_eq!(get(&format!("127.0.41.{}", k + 1), p.addr, "/api/items?page=2").await.status, 200);
    }
    assert_eq!(api.hits(), 5, "the /api/ route has a pool of its own");
    assert_eq!((a.hits(), b.hits()), before);
    // the dead upstream is left out now: requests with a body (never retried) all reach a live one
    for k in 0..6 {
        let r = send_from(
            &format!("127.0.42.{}", k + 1),
            p.addr,
            "POST",
            "/echo/form",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from_static(b"name=blue+shoes"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
