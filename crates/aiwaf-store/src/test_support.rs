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
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let schema = format!(
        "aiwaf_t_{}_{}_{}_{}",
        now.as_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_lowercase(),
    );
    let pool = sqlx::AnyPool::connect(base).await.unwrap_or_else(|e| panic!("cannot connect to {base}: {e}"));
    // Tidy up after earlier runs: schemas of test runs older than an hour.
    let old: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'aiwaf_t_%'")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    for name in old {
        let secs = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if secs.is_none_or(|s| s + 3600 < now.as_secs()) {
            let _ = pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))).await;
        }
    }
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
