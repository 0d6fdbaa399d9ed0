//! Helpers for tests that need real database servers (used by this crate's tests and the
//! `aiwaf` end-to-end tests).
//!
//! A test asks for a service URL; when its variable (`AIWAF_TEST_POSTGRES_URL`,
//! `AIWAF_TEST_REDIS_URL`) is unset it is skipped with a printed reason, unless
//! `AIWAF_REQUIRE_SERVICES=1`, which turns the skip into a failure (CI sets it).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Executor;

/// The service URL in `var`, or `None` after printing why the test is skipped. Panics when the
/// variable is unset and `AIWAF_REQUIRE_SERVICES=1`.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var("AIWAF_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("{test}: {var} is not set but AIWAF_REQUIRE_SERVICES=1");
            }
            println!("skipped {test}: {var} is not set");
            None
        }
    }
}

/// Creates a fresh schema in the PostgreSQL database at `base` and returns a URL whose
/// connections use it, so tests run in parallel and twice in a row without seeing each other.
pub async fn isolated_postgres_url(base: &str, tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    sqlx::any::install_default_drivers();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let schema = format!(
        "aiwaf_t_{}_{}_{}_{}",
        tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_lowercase(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    );
    let pool = sqlx::AnyPool::connect(base).await.unwrap_or_else(|e| panic!("cannot connect to {base}: {e}"));
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
