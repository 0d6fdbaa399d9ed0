//! Run: `cargo run -p aiwaf-example-axum -- 127.0.0.1:3000`, then try `/` and `/.env`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("example app on http://{}", listener.local_addr()?);
    aiwaf_example_axum::serve(listener, aiwaf_example_axum::waf(Default::default())).await
}
