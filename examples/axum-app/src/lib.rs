//! A small axum app protected by aiwaf: the same [`WafLayer`] that `aiwaf serve` wraps around
//! its proxy, here wrapped around an axum [`Router`].

use std::net::SocketAddr;

use aiwaf_engine::ip::IpSet;
use aiwaf_engine::{Engine, EngineConfig, Mode};
use aiwaf_tower::{Waf, WafLayer};
use axum::Router;
use axum::extract::{ConnectInfo, Path};
use axum::http::StatusCode;
use axum::routing::get;

/// The WAF for the example: default settings, bans kept in memory.
pub fn waf(config: EngineConfig) -> Waf {
    Waf::new(Engine::new(config, IpSet::default()).expect("valid config"), Mode::Block)
}

/// The app: a home page, a contact form and items by UUID, all behind aiwaf.
pub fn app(waf: Waf) -> Router {
    let layer = WafLayer::new(waf).peer_addr_with(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/contact/", get(|| async { "<form method=post>...</form>" }).post(|| async { "thanks" }))
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>| async move {
                if id == "550e8400-e29b-41d4-a716-446655440000" { Ok("item") } else { Err(StatusCode::NOT_FOUND) }
            }),
        )
        .layer(layer)
}

/// Serves the app on `listener` (with peer addresses, which the layer needs).
pub async fn serve(listener: tokio::net::TcpListener, waf: Waf) -> std::io::Result<()> {
    axum::serve(listener, app(waf).into_make_service_with_connect_info::<SocketAddr>()).await
}
