//! aiwaf's storage: the source of truth for bans, exemptions, keywords, events and the request
//! log, in an embedded SQLite database (via sqlx) in the data directory.
//!
//! The request path never touches this crate. It hands [`Record`]s to a bounded channel; the
//! [`writer`] task drains the channel in batches, one transaction per batch. A running server
//! learns about changes (from itself, the CLI or training) by polling [`Store::generation`],
//! which triggers in the schema bump on every change to the lists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use aiwaf_engine::ip::{IpSet, parse_net};
use aiwaf_engine::{BanState, EngineConfig, Lists, Record};
use ipnet::IpNet;
use serde::Serialize;
use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

pub mod audit;
pub mod test_support;
pub mod writer;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "aiwaf.sqlite";

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Bad input (an address, a network).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether the database refused the data itself (a constraint, an encoding), as opposed to
    /// being unreachable: retrying the same records can never succeed.
    pub fn is_data_error(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                sqlx::Error::Database(_)
                    | sqlx::Error::Encode(_)
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
            ) | StoreError::Invalid(_)
        )
    }
}

/// Text as every backend can store it. PostgreSQL rejects NUL in text ("invalid byte sequence
/// for encoding UTF8: 0x00"), so one request for `/a%00b` once stopped all storage; NUL is
/// stored as the four characters `\x00` instead (on every backend, so both read back alike).
pub fn text(s: &str) -> String {
    if s.contains('\0') { s.replace('\0', "\\x00") } else { s.to_owned() }
}

fn lift_key(ip: &str) -> String {
    format!("lifted|{ip}")
}

/// Records that an operator lifted the ban on `ip` at `now` (kept with the training evidence:
/// training consults it before re-creating a ban).
async fn remember_lift(tx: &mut sqlx::Transaction<'_, sqlx::Any>, ip: &str, now: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO aiwaf_training_evidence (key, created_at) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at",
    )
    .bind(lift_key(ip))
    .bind(now as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (the default, in the data directory).
    Sqlite,
    /// PostgreSQL, shared by several instances.
    Postgres,
}

impl Backend {
    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn migrations(backend: Backend) -> Migrator {
    let (m1, m2, m3, m4, m5) = match backend {
        Backend::Sqlite => (
            include_str!("../migrations/sqlite/0001_initial.sql"),
            include_str!("../migrations/sqlite/0002_training.sql"),
            include_str!("../migrations/sqlite/0003_ban_changes.sql"),
            include_str!("../migrations/sqlite/0004_table_prefix.sql"),
            include_str!("../migrations/sqlite/0005_profile.sql"),
        ),
        Backend::Postgres => (
            include_str!("../migrations/postgres/0001_initial.sql"),
            include_str!("../migrations/postgres/0002_training.sql"),
            include_str!("../migrations/postgres/0003_ban_changes.sql"),
            include_str!("../migrations/postgres/0004_table_prefix.sql"),
            include_str!("../migrations/postgres/0005_profile.sql"),
        ),
    };
    let mut m = Migrator::with_migrations(vec![
        Migration::new(1, "initial".into(), MigrationType::Simple, m1.into_sql_str(), false),
        Migration::new(2, "training evidence".into(), MigrationType::Simple, m2.into_sql_str(), false),
        Migration::new(3, "ban changes".into(), MigrationType::Simple, m3.into_sql_str(), false),
        Migration::new(4, "table prefix".into(), MigrationType::Simple, m4.into_sql_str(), false),
        Migration::new(5, "profile".into(), MigrationType::Simple, m5.into_sql_str(), false),
    ]);
    // PostgreSQL: an advisory lock, so instances starting together migrate once.
    m.set_locking(backend == Backend::Postgres);
    m
}

/// Hides the password of a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((cred, host)) => match cred.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://{cred}@{host}"),
            },
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Latest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 5;

/// A blacklist row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BanRow {
    /// Address.
    pub ip: String,
    /// Reason.
    pub reason: String,
    /// Detector (`manual` for operator bans).
    pub detector: String,
    /// Facts behind the ban.
    pub evidence: serde_json::Value,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch; `None` is permanent.
    pub expires_at: Option<i64>,
    /// Offence number.
    pub offences: i64,
}

/// An exemption row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemptionRow {
    /// Address or CIDR network.
    pub net: String,
    /// Reason.
    pub reason: String,
    /// ms since the epoch.
    pub created_at: i64,
}

/// A learned keyword.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeywordRow {
    /// The word.
    pub keyword: String,
    /// How often training saw it in attack traffic.
    pub count: i64,
    /// ms since the epoch.
    pub updated_at: i64,
}

/// A stored block event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// Request id.
    pub request_id: String,
    /// ms since the epoch.
    pub ts: i64,
    /// Client.
    pub ip: String,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Detector.
    pub detector: String,
    /// Action taken.
    pub action: String,
    /// Reason.
    pub reason: String,
    /// Facts.
    pub evidence: serde_json::Value,
    /// Mode.
    pub mode: String,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this client.
    pub ip: Option<String>,
    /// Only this detector.
    pub detector: Option<String>,
    /// Only this request.
    pub request_id: Option<String>,
    /// Not older than this (ms since the epoch).
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// What `aiwaf reset` clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    /// Blacklist, exemptions and keywords.
    All,
    /// Only the blacklist.
    Blacklist,
    /// Only the exemptions.
    Exemptions,
    /// Only the learned keywords.
    Keywords,
}

/// Row counts for reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Active bans.
    pub active_bans: i64,
    /// Exemptions.
    pub exemptions: i64,
    /// Learned keywords.
    pub keywords: i64,
    /// Stored events.
    pub events: i64,
    /// Request log rows.
    pub request_log: i64,
    /// Known-good paths.
    pub known_paths: i64,
}

/// Handle on the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    path: PathBuf,
    url: String,
}

fn host_or_net(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

impl Store {
    /// Opens (creating if needed) `DATA_DIR/aiwaf.sqlite` and applies migrations.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        Store::connect(None, data_dir).await
    }

    /// Opens `database_url` (`sqlite://PATH` or `postgres://…`), or the SQLite file in the data
    /// directory when absent, and applies migrations.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url, path) = match database_url {
            None => (Backend::Sqlite, None, data_dir.join(DB_FILE)),
            Some(u) if u.starts_with("sqlite:") => {
                let p = u.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let p = p.split('?').next().unwrap_or(p);
                (Backend::Sqlite, None, PathBuf::from(p))
            }
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                (Backend::Postgres, Some(u.to_string()), PathBuf::from(redact_url(u)))
            }
            Some(u) => {
                return Err(StoreError::Invalid(format!(
                    "database URL `{}` is neither sqlite://PATH nor postgres://…",
                    redact_url(u)
                )));
            }
        };
        let err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open { path: path.clone(), source: e };
        let url = match url {
            Some(u) => u,
            None => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(Box::new(e)))?;
                }
                let abs = std::path::absolute(&path).map_err(|e| err(Box::new(e)))?;
                format!("sqlite://{}?mode=rwc", abs.display())
            }
        };
        let mut options = AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 8 });
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = options.acquire_timeout(Duration::from_secs(5)).connect(&url).await.map_err(|e| err(Box::new(e)))?;
        migrations(backend).run(&pool).await.map_err(|e| err(Box::new(e)))?;
        Ok(Store { pool, backend, path, url })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection URL (PostgreSQL only, for LISTEN).
    pub fn url(&self) -> Option<&str> {
        (self.backend == Backend::Postgres).then_some(self.url.as_str())
    }

    /// The database file (SQLite) or the redacted URL (PostgreSQL), for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The channel PostgreSQL notifies on every change (`None` for SQLite).
    pub async fn notify_channel(&self) -> Result<Option<String>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&self.pool).await?;
        Ok(Some(format!("aiwaf_changes_{schema}")))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Highest applied migration.
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
        Ok(v.unwrap_or(0))
    }

    /// Change counter: grows whenever bans, exemptions, keywords or settings change.
    pub async fn generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM aiwaf_meta WHERE key = 'generation'").fetch_one(&self.pool).await?)
    }

    /// Where the stored lists are: the generation (any change), the lists generation (exemptions,
    /// keywords, settings) and the last logged blacklist change. Read before a reload.
    pub async fn marks(&self) -> Result<Marks> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key, value FROM aiwaf_meta WHERE key IN ('generation', 'lists_generation')")
                .fetch_all(&self.pool)
                .await?;
        let get = |k: &str| rows.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
        let last_ban_change: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM aiwaf_ban_changes").fetch_one(&self.pool).await?;
        Ok(Marks { generation: get("generation"), lists_generation: get("lists_generation"), last_ban_change })
    }

    /// The addresses whose bans changed after change `after`, and the last change read; `None`
    /// when the log no longer reaches back to `after` (pruned) or holds more than `limit`
    /// changes since: a full reload is due then.
    pub async fn ban_changes_since(&self, after: i64, limit: u32) -> Result<Option<(i64, Vec<String>)>> {
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(id) FROM aiwaf_ban_changes").fetch_one(&self.pool).await?;
        if oldest.is_some_and(|o| o > after + 1) {
            return Ok(None);
        }
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, ip FROM aiwaf_ban_changes WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
        if rows.len() > limit as usize {
            return Ok(None);
        }
        let last = rows.last().map_or(after, |r| r.0);
        let mut ips: Vec<String> = rows.into_iter().map(|r| r.1).collect();
        ips.sort_unstable();
        ips.dedup();
        Ok(Some((last, ips)))
    }

    /// The stored ban of each address (as `load_lists` would read it), or `None` when it has none
    /// (lifted, or forgotten as an offence).
    pub async fn bans_of(
        &self,
        ips: &[String],
        config: &EngineConfig,
        now: u64,
    ) -> Result<Vec<(IpAddr, Option<BanState>)>> {
        let horizon = now.saturating_sub(config.offence_memory_ms) as i64;
        let mut out = Vec::with_capacity(ips.len());
        for chunk in ips.chunks(200) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT ip, reason, detector, created_at, expires_at, offences FROM aiwaf_blacklist \
                 WHERE (expires_at IS NULL OR expires_at > $1 OR created_at >= $2) AND ip IN ({})",
                marks.join(", ")
            );
            // only numbered placeholders are formatted in; the addresses are bound
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now as i64).bind(horizon);
            for ip in chunk {
                q = q.bind(ip.as_str());
            }
            let mut found: HashMap<IpAddr, BanState> = HashMap::with_capacity(chunk.len());
            for r in q.fetch_all(&self.pool).await? {
                if let Some((ip, ban)) = ban_row(&r)? {
                    found.insert(ip, ban);
                }
            }
            for ip in chunk {
                if let Ok(ip) = IpAddr::from_str(ip) {
                    out.push((ip, found.remove(&ip)));
                }
            }
        }
        Ok(out)
    }

    /// Reads the lists the request path needs: active bans and bans still counted as previous
    /// offences, exemptions, and learned keywords by count.
    pub async fn load_lists(&self, config: &EngineConfig, now: u64) -> Result<Lists> {
        let horizon = now.saturating_sub(config.offence_memory_ms) as i64;
        let rows = sqlx::query(
            "SELECT ip, reason, detector, created_at, expires_at, offences FROM aiwaf_blacklist \
             WHERE expires_at IS NULL OR expires_at > $1 OR created_at >= $2",
        )
        .bind(now as i64)
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?;
        let mut bans = HashMap::with_capacity(rows.len());
        for r in rows {
            if let Some((ip, ban)) = ban_row(&r)? {
                bans.insert(ip, ban);
            }
        }
        let exemptions = IpSet::new(self.exemptions().await?.iter().filter_map(|e| parse_net(&e.net).ok()));
        let learned: Vec<String> =
            sqlx::query_scalar("SELECT keyword FROM aiwaf_keywords ORDER BY count DESC, keyword LIMIT $1")
                .bind(config.dynamic_top_n as i64)
                .fetch_all(&self.pool)
                .await?;
        Ok(Lists::new(config, exemptions, bans, learned))
    }

    /// Known-good paths, most recent first.
    pub async fn known_paths(&self, limit: u64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT path FROM aiwaf_known_paths ORDER BY last_ok_at DESC LIMIT $1")
            .bind(limit.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Blacklist rows; expired ones only with `include_expired`.
    pub async fn blacklist(&self, include_expired: bool, now: u64) -> Result<Vec<BanRow>> {
        let rows = sqlx::query(
            "SELECT ip, reason, detector, evidence, created_at, expires_at, offences FROM aiwaf_blacklist \
             WHERE $1 OR expires_at IS NULL OR expires_at > $2 ORDER BY created_at DESC, ip",
        )
        .bind(include_expired)
        .bind(now as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BanRow {
                    ip: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    detector: r.try_get(2)?,
                    evidence: serde_json::from_str(&r.try_get::<String, _>(3)?).unwrap_or_default(),
                    created_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    offences: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Operator ban: replaces any existing entry for the address. Refused for exempt addresses.
    pub async fn add_ban(&self, ip: IpAddr, reason: &str, expires_at: Option<u64>, now: u64) -> Result<()> {
        let ip = aiwaf_engine::ip::canonical(ip);
        let exempt = IpSet::new(self.exemptions().await?.iter().filter_map(|e| parse_net(&e.net).ok()));
        if exempt.contains(ip) {
            return Err(StoreError::Invalid(format!("{ip} is exempt; remove the exemption first")));
        }
        sqlx::query(
            "INSERT INTO aiwaf_blacklist (ip, reason, detector, evidence, created_at, expires_at, offences) \
             VALUES ($1, $2, 'manual', '{}', $3, $4, 1) \
             ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, detector = excluded.detector, \
             evidence = excluded.evidence, created_at = excluded.created_at, expires_at = excluded.expires_at, \
             offences = aiwaf_blacklist.offences + 1",
        )
        .bind(ip.to_string())
        .bind(reason)
        .bind(now as i64)
        .bind(expires_at.map(|e| e.min(i64::MAX as u64) as i64))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a ban (and its offence history). Returns whether it existed.
    ///
    /// An operator's unban is remembered (`now`), so training never re-creates the ban from
    /// evidence older than the decision to lift it.
    pub async fn remove_ban(&self, ip: IpAddr, now: u64) -> Result<bool> {
        let ip = aiwaf_engine::ip::canonical(ip);
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM aiwaf_blacklist WHERE ip = $1").bind(ip.to_string()).execute(&mut *tx).await?;
        if r.rows_affected() > 0 {
            remember_lift(&mut tx, &ip.to_string(), now).await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Exemptions, oldest first.
    pub async fn exemptions(&self) -> Result<Vec<ExemptionRow>> {
        let rows = sqlx::query("SELECT net, reason, created_at FROM aiwaf_exemptions ORDER BY created_at, net")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(ExemptionRow { net: r.try_get(0)?, reason: r.try_get(1)?, created_at: r.try_get(2)? }))
            .collect()
    }

    /// Adds an exemption and lifts bans on the addresses it covers. Returns whether the
    /// exemption is new, and the bans it lifted.
    pub async fn add_exemption(&self, net: IpNet, reason: &str, now: u64) -> Result<(bool, Vec<String>)> {
        let key = host_or_net(net);
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "INSERT INTO aiwaf_exemptions (net, reason, created_at) VALUES ($1, $2, $3) ON CONFLICT (net) DO NOTHING",
        )
        .bind(&key)
        .bind(reason)
        .bind(now as i64)
        .execute(&mut *tx)
        .await?;
        let banned: Vec<String> = sqlx::query_scalar("SELECT ip FROM aiwaf_blacklist").fetch_all(&mut *tx).await?;
        let mut lifted = Vec::new();
        for ip in banned {
            if IpAddr::from_str(&ip).is_ok_and(|a| net.contains(&a)) {
                sqlx::query("DELETE FROM aiwaf_blacklist WHERE ip = $1").bind(&ip).execute(&mut *tx).await?;
                remember_lift(&mut tx, &ip, now).await?;
                lifted.push(ip);
            }
        }
        tx.commit().await?;
        Ok((r.rows_affected() > 0, lifted))
    }

    /// Removes an exemption. Returns whether it existed.
    pub async fn remove_exemption(&self, net: IpNet) -> Result<bool> {
        let r = sqlx::query("DELETE FROM aiwaf_exemptions WHERE net = $1")
            .bind(host_or_net(net))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Learned keywords by count.
    pub async fn keywords(&self) -> Result<Vec<KeywordRow>> {
        let rows = sqlx::query("SELECT keyword, count, updated_at FROM aiwaf_keywords ORDER BY count DESC, keyword")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(KeywordRow { keyword: r.try_get(0)?, count: r.try_get(1)?, updated_at: r.try_get(2)? }))
            .collect()
    }

    /// Adds to keyword counts (training).
    pub async fn add_keywords(&self, counts: &[(String, u64)], now: u64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (k, c) in counts {
            sqlx::query(
                "INSERT INTO aiwaf_keywords (keyword, count, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (keyword) DO UPDATE SET count = aiwaf_keywords.count + excluded.count, updated_at = excluded.updated_at",
            )
            .bind(k.to_lowercase())
            .bind(*c as i64)
            .bind(now as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a learned keyword. Returns whether it existed.
    pub async fn remove_keyword(&self, word: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM aiwaf_keywords WHERE keyword = $1")
            .bind(word.trim().to_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Clears lists. Returns the number of rows removed.
    pub async fn reset(&self, scope: ResetScope) -> Result<u64> {
        let tables: &[&'static str] = match scope {
            ResetScope::All => {
                &["DELETE FROM aiwaf_blacklist", "DELETE FROM aiwaf_exemptions", "DELETE FROM aiwaf_keywords"]
            }
            ResetScope::Blacklist => &["DELETE FROM aiwaf_blacklist"],
            ResetScope::Exemptions => &["DELETE FROM aiwaf_exemptions"],
            ResetScope::Keywords => &["DELETE FROM aiwaf_keywords"],
        };
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for sql in tables {
            n += sqlx::query(*sql).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The stored request-logging switch (`None`: not set, the configuration decides).
    pub async fn request_logging(&self) -> Result<Option<bool>> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM aiwaf_settings WHERE key = 'request_logging'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.map(|v| v == "true"))
    }

    /// Sets the request-logging switch; running servers follow within a second.
    pub async fn set_request_logging(&self, on: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO aiwaf_settings (key, value) VALUES ('request_logging', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(if on { "true" } else { "false" })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The payload changes made at run time, as stored (JSON; `None`: none made).
    pub async fn payload_overlay(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM aiwaf_settings WHERE key = 'payload_overlay'")
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Stores the payload changes (JSON the caller validated); running servers follow within a
    /// second (the settings table bumps the generation and notifies).
    pub async fn set_payload_overlay(&self, json: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO aiwaf_settings (key, value) VALUES ('payload_overlay', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(text(json))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The saved application profile (JSON), if any.
    pub async fn profile(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM aiwaf_profile WHERE key = 'default'")
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Saves the application profile (JSON), replacing the saved one.
    pub async fn save_profile(&self, json: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO aiwaf_profile (key, value, updated_at) VALUES ('default', $1, $2)              ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(text(json))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the request log. Returns the number of rows removed.
    pub async fn clear_request_log(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM aiwaf_request_log").execute(&self.pool).await?.rows_affected())
    }

    /// Row counts.
    pub async fn counts(&self, now: u64) -> Result<Counts> {
        let one = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        Ok(Counts {
            active_bans: one("SELECT COUNT(*) FROM aiwaf_blacklist WHERE expires_at IS NULL OR expires_at > $1")
                .bind(now as i64)
                .fetch_one(&self.pool)
                .await?,
            exemptions: one("SELECT COUNT(*) FROM aiwaf_exemptions").fetch_one(&self.pool).await?,
            keywords: one("SELECT COUNT(*) FROM aiwaf_keywords").fetch_one(&self.pool).await?,
            events: one("SELECT COUNT(*) FROM aiwaf_events").fetch_one(&self.pool).await?,
            request_log: one("SELECT COUNT(*) FROM aiwaf_request_log").fetch_one(&self.pool).await?,
            known_paths: one("SELECT COUNT(*) FROM aiwaf_known_paths").fetch_one(&self.pool).await?,
        })
    }

    /// Stored events, newest first.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT id, request_id, ts, ip, method, path, detector, action, reason, evidence, mode FROM aiwaf_events \
             WHERE ($1 IS NULL OR ip = $1) AND ($2 IS NULL OR detector = $2) AND ($3 IS NULL OR request_id = $3) \
             AND ($4 IS NULL OR ts >= $4) ORDER BY ts DESC, id DESC LIMIT $5",
        )
        .bind(&f.ip)
        .bind(&f.detector)
        .bind(&f.request_id)
        .bind(f.since)
        .bind(if f.limit <= 0 { 100 } else { f.limit })
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get(0)?,
                    request_id: r.try_get(1)?,
                    ts: r.try_get(2)?,
                    ip: r.try_get(3)?,
                    method: r.try_get(4)?,
                    path: r.try_get(5)?,
                    detector: r.try_get(6)?,
                    action: r.try_get(7)?,
                    reason: r.try_get(8)?,
                    evidence: serde_json::from_str(&r.try_get::<String, _>(9)?).unwrap_or_default(),
                    mode: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// Writes a batch of records in one transaction. Returns the highest ban sequence number
    /// written (0 when the batch held no ban).
    ///
    /// A detector's ban never shortens or replaces a ban still in force (the first reason
    /// stays, as in the seed); it replaces an expired one, carrying the offence count.
    pub async fn write_batch(&self, records: &[Record]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut max_seq = 0;
        // Exempt addresses are never banned, even when the exemption arrived after the ban
        // was decided but before it was written.
        let exempt = if records.iter().any(|r| matches!(r, Record::Ban(_))) {
            let nets: Vec<String> = sqlx::query_scalar("SELECT net FROM aiwaf_exemptions").fetch_all(&mut *tx).await?;
            IpSet::new(nets.iter().filter_map(|n| parse_net(n).ok()))
        } else {
            IpSet::default()
        };
        for rec in records {
            match rec {
                Record::Event(e) => {
                    sqlx::query(
                        "INSERT INTO aiwaf_events (request_id, ts, ip, method, path, detector, action, reason, evidence, mode) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(text(&e.request_id))
                    .bind(e.ts as i64)
                    .bind(e.ip.to_string())
                    .bind(text(&e.method))
                    .bind(text(&e.path))
                    .bind(e.detector.as_str())
                    .bind(e.action)
                    .bind(text(&e.reason))
                    .bind(e.evidence.to_string())
                    .bind(e.mode)
                    .execute(&mut *tx)
                    .await?;
                }
                Record::Ban(b) => {
                    max_seq = max_seq.max(b.seq);
                    if exempt.contains(b.ip) {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO aiwaf_blacklist (ip, reason, detector, evidence, created_at, expires_at, offences) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, detector = excluded.detector, \
                         evidence = excluded.evidence, created_at = excluded.created_at, \
                         expires_at = excluded.expires_at, offences = CASE WHEN excluded.offences > aiwaf_blacklist.offences + 1 THEN excluded.offences ELSE aiwaf_blacklist.offences + 1 END \
                         WHERE aiwaf_blacklist.expires_at IS NOT NULL AND aiwaf_blacklist.expires_at <= excluded.created_at",
                    )
                    .bind(b.ip.to_string())
                    .bind(text(&b.reason))
                    .bind(b.detector.as_str())
                    .bind(b.evidence.to_string())
                    .bind(b.created_at as i64)
                    .bind(b.expires_at.map(|e| e.min(i64::MAX as u64) as i64))
                    .bind(b.offences as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                Record::Request(r) => {
                    sqlx::query(
                        "INSERT INTO aiwaf_request_log (request_id, ts, ip, method, path, query, status, response_time_ms, \
                         user_agent, referer, content_length, blocked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(text(&r.request_id))
                    .bind(r.ts as i64)
                    .bind(r.ip.to_string())
                    .bind(text(&r.method))
                    .bind(text(&r.path))
                    .bind(text(&r.query))
                    .bind(r.status as i64)
                    .bind(r.response_time_ms)
                    .bind(text(&r.user_agent))
                    .bind(text(&r.referer))
                    .bind(r.content_length.map(|c| c.min(i64::MAX as u64) as i64))
                    .bind(r.blocked)
                    .execute(&mut *tx)
                    .await?;
                }
                Record::KnownPath { path, at } => {
                    sqlx::query(
                        "INSERT INTO aiwaf_known_paths (path, last_ok_at) VALUES ($1, $2) \
                         ON CONFLICT (path) DO UPDATE SET last_ok_at = excluded.last_ok_at",
                    )
                    .bind(text(path))
                    .bind(*at as i64)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(max_seq)
    }

    /// Request-log rows, newest first: (ts, ip, method, path, query, status, ms, user agent, blocked).
    #[allow(clippy::type_complexity)] // A row, read once for display.
    pub async fn requests(
        &self,
        ip: Option<&str>,
        path_contains: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(i64, String, String, String, String, i64, f64, String, bool)>> {
        let like = path_contains.map(|p| format!("%{}%", p.replace('%', "")));
        let rows = sqlx::query(
            "SELECT ts, ip, method, path, query, status, response_time_ms, user_agent, blocked FROM aiwaf_request_log \
             WHERE ($1 IS NULL OR ip = $1) AND ($2 IS NULL OR path LIKE $2) ORDER BY ts DESC, id DESC LIMIT $3",
        )
        .bind(ip)
        .bind(like)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let blocked: bool = r.try_get::<bool, _>(8).or_else(|_| r.try_get::<i64, _>(8).map(|v| v != 0))?;
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                    blocked,
                ))
            })
            .collect()
    }

    /// Applies a ban found by training, once per finding: returns false when this finding was
    /// acted on by an earlier run, when the address is exempt, or when a ban is already in
    /// force. The ban starts `now` and follows the ladder in `config`.
    #[allow(clippy::too_many_arguments)] // The fields of one ban.
    pub async fn apply_training_ban(
        &self,
        ip: IpAddr,
        detector: &str,
        reason: &str,
        evidence: &serde_json::Value,
        finding_at: u64,
        config: &EngineConfig,
        now: u64,
    ) -> Result<bool> {
        let ip = aiwaf_engine::ip::canonical(ip);
        let mut tx = self.pool.begin().await?;
        let key = format!("{ip}|{detector}|{finding_at}");
        let fresh = sqlx::query(
            "INSERT INTO aiwaf_training_evidence (key, created_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key)
        .bind(now as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        // Evidence from before an operator lifted a ban on this address never re-creates it.
        let lifted_at: Option<i64> =
            sqlx::query_scalar("SELECT created_at FROM aiwaf_training_evidence WHERE key = $1")
                .bind(lift_key(&ip.to_string()))
                .fetch_optional(&mut *tx)
                .await?;
        if lifted_at.is_some_and(|t| finding_at as i64 <= t) {
            tx.commit().await?;
            return Ok(false);
        }
        if !fresh {
            tx.rollback().await?;
            return Ok(false);
        }
        let nets: Vec<String> = sqlx::query_scalar("SELECT net FROM aiwaf_exemptions").fetch_all(&mut *tx).await?;
        if IpSet::new(nets.iter().filter_map(|n| parse_net(n).ok())).contains(ip) {
            tx.commit().await?;
            return Ok(false);
        }
        let prior = sqlx::query("SELECT created_at, expires_at, offences FROM aiwaf_blacklist WHERE ip = $1")
            .bind(ip.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let mut offences = 1u32;
        if let Some(r) = prior {
            let created: i64 = r.try_get(0)?;
            let expires: Option<i64> = r.try_get(1)?;
            if expires.is_none_or(|e| e > now as i64) {
                tx.commit().await?;
                return Ok(false);
            }
            if now.saturating_sub(created.max(0) as u64) <= config.offence_memory_ms {
                offences = r.try_get::<i64, _>(2)?.clamp(0, u32::MAX as i64 - 1) as u32 + 1;
            }
        }
        let expires_at = config.ban_duration(offences).map(|d| now.saturating_add(d).min(i64::MAX as u64) as i64);
        sqlx::query(
            "INSERT INTO aiwaf_blacklist (ip, reason, detector, evidence, created_at, expires_at, offences) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, \
             detector = excluded.detector, evidence = excluded.evidence, created_at = excluded.created_at, \
             expires_at = excluded.expires_at, offences = excluded.offences",
        )
        .bind(ip.to_string())
        .bind(reason)
        .bind(detector)
        .bind(evidence.to_string())
        .bind(now as i64)
        .bind(expires_at)
        .bind(offences as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Lifts bans on addresses covered by `exempt` (training does this first, as the seed did).
    pub async fn unban_exempt(&self, exempt: &IpSet) -> Result<Vec<String>> {
        let banned: Vec<String> = sqlx::query_scalar("SELECT ip FROM aiwaf_blacklist").fetch_all(&self.pool).await?;
        let mut lifted = Vec::new();
        for ip in banned {
            if IpAddr::from_str(&ip).is_ok_and(|a| exempt.contains(a)) {
                sqlx::query("DELETE FROM aiwaf_blacklist WHERE ip = $1").bind(&ip).execute(&self.pool).await?;
                lifted.push(ip);
            }
        }
        Ok(lifted)
    }

    /// The stored request log since `since` (ms), in time order, without requests aiwaf
    /// itself answered (its own blocks must not teach the model).
    pub async fn request_log_rows(&self, since: u64) -> Result<Vec<(String, i64, String, i64, f64)>> {
        let rows = sqlx::query(
            "SELECT ip, ts, path, status, response_time_ms FROM aiwaf_request_log WHERE ts >= $1 AND NOT blocked ORDER BY ts, id",
        )
        .bind(since as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get::<f64, _>(4)? / 1000.0)))
            .collect()
    }

    /// Retention: drops events and request-log rows older than `keep_ms`, bans that expired
    /// before the offence memory, and known paths beyond `known_cap`. Returns rows removed.
    pub async fn purge(&self, now: u64, keep_ms: u64, offence_memory_ms: u64, known_cap: u64) -> Result<u64> {
        let old = now.saturating_sub(keep_ms) as i64;
        let forgotten = now.saturating_sub(offence_memory_ms) as i64;
        let mut n = 0;
        n += sqlx::query("DELETE FROM aiwaf_events WHERE ts < $1").bind(old).execute(&self.pool).await?.rows_affected();
        n += sqlx::query("DELETE FROM aiwaf_request_log WHERE ts < $1")
            .bind(old)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query(
            "DELETE FROM aiwaf_blacklist WHERE expires_at IS NOT NULL AND expires_at < $1 AND created_at < $2",
        )
        .bind(now as i64)
        .bind(forgotten)
        .execute(&self.pool)
        .await?
        .rows_affected();
        // the change log only needs to reach back to the slowest reloader (a second or so; one
        // that falls further behind reloads everything)
        n += sqlx::query("DELETE FROM aiwaf_ban_changes WHERE id < (SELECT MAX(id) FROM aiwaf_ban_changes) - 100000")
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query(
            "DELETE FROM aiwaf_known_paths WHERE path NOT IN (SELECT path FROM aiwaf_known_paths ORDER BY last_ok_at DESC LIMIT $1)",
        )
        .bind(known_cap.min(i64::MAX as u64) as i64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }
}

/// `SELECT ip, reason, detector, created_at, expires_at, offences` as a ban (an address that
/// does not parse is skipped).
fn ban_row(r: &sqlx::any::AnyRow) -> Result<Option<(IpAddr, BanState)>> {
    let ip: String = r.try_get(0)?;
    let Ok(ip) = IpAddr::from_str(&ip) else {
        return Ok(None);
    };
    Ok(Some((
        ip,
        BanState {
            reason: r.try_get(1)?,
            detector: r.try_get(2)?,
            created_at: r.try_get::<i64, _>(3)?.max(0) as u64,
            expires_at: r.try_get::<Option<i64>, _>(4)?.map(|e| e.max(0) as u64),
            offences: r.try_get::<i64, _>(5)?.clamp(0, u32::MAX as i64) as u32,
        },
    )))
}

/// Where the stored lists are (see [`Store::marks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Marks {
    /// Bumped by any change a running server must see.
    pub generation: i64,
    /// Bumped by changes to exemptions, keywords and settings (a full reload).
    pub lists_generation: i64,
    /// The last logged blacklist change.
    pub last_ban_change: i64,
}

#[cfg(test)]
mod tests;
