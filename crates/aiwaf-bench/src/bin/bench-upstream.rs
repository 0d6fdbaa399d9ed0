//! A tiny, fast upstream for proxy benchmarks: answers every request with a small 200 page,
//! or with the status in a `/status/NNN` path. Usage: `bench-upstream 127.0.0.1:0` (prints
//! the bound address on its first line).

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = req
        .uri()
        .path()
        .strip_prefix("/status/")
        .and_then(|s| s.get(..3)?.parse::<u16>().ok())
        .and_then(|s| hyper::StatusCode::from_u16(s).ok())
        .unwrap_or(hyper::StatusCode::OK);
    let mut r =
        Response::new(Full::new(Bytes::from_static(b"<!doctype html><title>ok</title><p>hello from upstream</p>\n")));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "text/html".parse().expect("static"));
    Ok(r)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let threads = std::env::var("BENCH_UPSTREAM_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let _ = writeln!(std::io::stdout(), "bench-upstream listening on http://{}", listener.local_addr()?);
        let _ = std::io::stdout().flush();
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    })
}
