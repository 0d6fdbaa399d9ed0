//! Storage round trips on a temporary SQLite database.

use std::net::IpAddr;
use std::sync::Arc;

use aiwaf_engine::{Ban, Detector, EngineConfig, Event, Record};
use serde_json::json;

use super::*;

/// Stores to run a test against: SQLite always, PostgreSQL when `AIWAF_TEST_POSTGRES_URL` is set.
async fn stores(test: &str) -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vec![(Store::open(dir.path()).await.unwrap(), dir)];
    if let Some(base) = test_support::service_url("AIWAF_TEST_POSTGRES_URL", test) {
        let url = test_support::isolated_postgres_url(&base, test).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(Some(&url), dir.path()).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        v.push((store, dir));
    }
    v
}

const T0: u64 = 1_700_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ban(addr: &str, at: u64, expires: Option<u64>, offences: u32, seq: u64) -> Record {
    Record::Ban(Ban {
        ip: ip(addr),
        detector: Detector::Flood,
        reason: format!("flood #{offences}"),
        evidence: json!({"count": 41}),
        created_at: at,
        expires_at: expires,
        offences,
        seq,
    })
}

#[tokio::test]
async fn migrates_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    store.add_ban(ip("10.0.0.1"), "manual test", None, T0).await.unwrap();
    store.close().await;
    let store = Store::open(dir.path()).await.unwrap();
    let rows = store.blacklist(false, T0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].ip.as_str(), rows[0].detector.as_str()), ("10.0.0.1", "manual"));
}

#[tokio::test]
async fn detector_bans_keep_active_entries_and_replace_expired_ones() {
    for (store, _dir) in stores("bans").await {
        detector_bans(store).await;
    }
}

async fn detector_bans(store: Store) {
    let g0 = store.generation().await.unwrap();
    assert_eq!(store.write_batch(&[ban("10.0.0.2", T0, Some(T0 + 1000), 1, 7)]).await.unwrap(), 7);
    assert!(store.generation().await.unwrap() > g0);
    // Still active: a second ban does not replace it.
    store.write_batch(&[ban("10.0.0.2", T0 + 500, Some(T0 + 9000), 2, 8)]).await.unwrap();
    let rows = store.blacklist(false, T0 + 600).await.unwrap();
    assert_eq!((rows[0].reason.as_str(), rows[0].expires_at), ("flood #1", Some((T0 + 1000) as i64)));
    // Expired: replaced, offence count carried.
    store.write_batch(&[ban("10.0.0.2", T0 + 2000, Some(T0 + 5000), 2, 9)]).await.unwrap();
    let rows = store.blacklist(true, T0 + 2100).await.unwrap();
    assert_eq!((rows[0].offences, rows[0].expires_at), (2, Some((T0 + 5000) as i64)));
    // The lists snapshot remembers the expired ban as a previous offence.
    let lists = store.load_lists(&EngineConfig::default(), T0 + 10_000).await.unwrap();
    let b = &lists.bans[&ip("10.0.0.2")];
    assert!(!b.active(T0 + 10_000));
    assert_eq!(b.offences, 2);
}

#[tokio::test]
async fn exemptions_lift_bans_and_cidrs_work() {
    for (store, _dir) in stores("exemptions").await {
        exemptions(store).await;
    }
}

async fn exemptions(store: Store) {
    store.write_batch(&[ban("10.1.2.3", T0, None, 1, 1), ban("2001:db8::5", T0, None, 1, 2)]).await.unwrap();
    assert!(store.add_exemption(parse_net("10.0.0.0/8").unwrap(), "office", T0).await.unwrap().0);
    assert!(!store.add_exemption(parse_net("10.0.0.0/8").unwrap(), "again", T0).await.unwrap().0);
    assert!(store.add_exemption(parse_net("2001:db8::/32").unwrap(), "v6", T0).await.unwrap().0);
    assert!(store.blacklist(true, T0).await.unwrap().is_empty());
    store.write_batch(&[ban("192.0.2.1", T0, None, 1, 3), ban("192.0.2.200", T0, None, 1, 4)]).await.unwrap();
    let (new, lifted) = store.add_exemption(parse_net("192.0.2.0/25").unwrap(), "lab", T0).await.unwrap();
    assert!(new);
    assert_eq!(lifted, ["192.0.2.1"], "exempt add says which bans it lifted");
    let lists = store.load_lists(&EngineConfig::default(), T0).await.unwrap();
    assert!(lists.exemptions.contains(ip("10.200.0.1")));
    assert!(lists.exemptions.contains(ip("2001:db8::99")));
    assert!(store.add_ban(ip("10.9.9.9"), "x", None, T0).await.is_err());
    assert!(store.remove_exemption(parse_net("10.0.0.0/8").unwrap()).await.unwrap());
    assert_eq!(store.exemptions().await.unwrap().len(), 2);
}

#[tokio::test]
async fn keywords_settings_events_and_reset() {
    for (store, _dir) in stores("keywords").await {
        keywords_settings_events(store).await;
    }
}

async fn keywords_settings_events(store: Store) {
    store.add_keywords(&[("phpmyadmin".into(), 5), ("backup".into(), 9)], T0).await.unwrap();
    store.add_keywords(&[("phpmyadmin".into(), 7)], T0).await.unwrap();
    let kws = store.keywords().await.unwrap();
    assert_eq!((kws[0].keyword.as_str(), kws[0].count), ("phpmyadmin", 12));
    let lists = store.load_lists(&EngineConfig { dynamic_top_n: 1, ..Default::default() }, T0).await.unwrap();
    assert_eq!(lists.learned, ["phpmyadmin"]);
    assert!(store.remove_keyword("BACKUP").await.unwrap());

    assert_eq!(store.request_logging().await.unwrap(), None);
    store.set_request_logging(true).await.unwrap();
    assert_eq!(store.request_logging().await.unwrap(), Some(true));

    let ev = Record::Event(Event {
        request_id: "r1".into(),
        ts: T0,
        ip: ip("10.0.0.3"),
        method: "GET".into(),
        path: "/.env".into(),
        detector: Detector::Keyword,
        action: "block",
        reason: "Keyword block: .env".into(),
        evidence: json!({"keyword": ".env"}),
        mode: "block",
    });
    store.write_batch(&[ev]).await.unwrap();
    let evs =
        store.events(&EventFilter { ip: Some("10.0.0.3".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(evs[0].evidence["keyword"], ".env");
    assert!(
        store
            .events(&EventFilter { detector: Some("flood".into()), limit: 10, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );

    store.add_ban(ip("10.0.0.4"), "x", None, T0).await.unwrap();
    assert_eq!(store.reset(ResetScope::Keywords).await.unwrap(), 1);
    assert_eq!(store.blacklist(false, T0).await.unwrap().len(), 1);
    store.reset(ResetScope::All).await.unwrap();
    assert!(store.blacklist(true, T0).await.unwrap().is_empty());
}

#[tokio::test]
async fn writer_batches_and_reports_persisted_bans() {
    for (store, _dir) in stores("writer").await {
        writer_batches(store).await;
    }
}

async fn writer_batches(store: Store) {
    let stats = Arc::new(writer::WriterStats::default());
    let (tx, rx) = tokio::sync::mpsc::channel(100);
    let handle = writer::spawn(store.clone(), rx, stats.clone());
    for k in 0..50u64 {
        tx.send(ban(&format!("10.0.1.{k}"), T0, None, 1, k + 1)).await.unwrap();
    }
    drop(tx);
    handle.await.unwrap();
    assert_eq!(stats.persisted_ban_seq.load(std::sync::atomic::Ordering::SeqCst), 50);
    assert_eq!(store.counts(T0).await.unwrap().active_bans, 50);
}

#[tokio::test]
async fn training_bans_apply_once_per_finding_and_escalate() {
    for (store, _dir) in stores("training").await {
        training_bans(store).await;
    }
}

async fn training_bans(store: Store) {
    let cfg = EngineConfig::default();
    let a = ip("203.0.113.5");
    let apply = |at: u64, now: u64| {
        let store = store.clone();
        let cfg = cfg.clone();
        async move {
            store.apply_training_ban(a, "not_found_flood", "Training: 404s", &json!({}), at, &cfg, now).await.unwrap()
        }
    };
    let early = T0 - 5_000;
    assert!(apply(early, T0).await);
    let b = &store.blacklist(false, T0).await.unwrap()[0];
    assert_eq!((b.offences, b.expires_at), (1, Some((T0 + 15 * 60_000) as i64)));
    // Re-training on the same logs: the finding was acted on already.
    assert!(!apply(early, T0 + 3_600_000).await);
    // An operator's unban sticks against old evidence, even a finding no run acted on yet
    // (issue 11: training from the request log re-banned an office the operator had lifted).
    store.remove_ban(a, T0 + 1_000).await.unwrap();
    assert!(!apply(early, T0 + 7_200_000).await);
    assert!(!apply(early + 500, T0 + 7_200_000).await);
    // A new finding bans again; a later one while it is active does nothing; after expiry the
    // next one escalates.
    assert!(apply(T0 + 7_000_000, T0 + 7_200_000).await);
    assert!(!apply(T0 + 7_100_000, T0 + 7_300_000).await);
    assert!(apply(T0 + 8_900_000, T0 + 9_000_000).await);
    let b = &store.blacklist(false, T0 + 9_000_000).await.unwrap()[0];
    assert_eq!(b.offences, 2);
    assert_eq!(b.expires_at, Some((T0 + 9_000_000 + 3_600_000) as i64));
}

#[tokio::test]
async fn postgres_migrates_from_empty_and_reports_its_backend() {
    let Some(base) = test_support::service_url("AIWAF_TEST_POSTGRES_URL", "postgres_migrates") else { return };
    let url = test_support::isolated_postgres_url(&base, "migrate").await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(Some(&url), dir.path()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert!(!store.path().display().to_string().contains("password"));
    store.close().await;
    // Migrating again is a no-op.
    let store = Store::connect(Some(&url), dir.path()).await.unwrap();
    assert_eq!(store.generation().await.unwrap(), 0);
    store.add_ban(ip("10.1.1.1"), "x", None, T0).await.unwrap();
    assert!(store.generation().await.unwrap() > 0);
    assert!(Store::connect(Some("mysql://x"), dir.path()).await.is_err());
    assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
}

/// Issue 10: one request for `/a%00b` once stopped all storage on PostgreSQL (the batch was
/// refused and retried forever). Any bytes in any text field are now stored escaped, and a
/// record the database still refuses is dropped and counted, never blocking the ones after it.
#[test]
fn poison_records_never_block_the_writer() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stores = rt.block_on(stores("poison"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    let strategy = (bytes.clone(), bytes.clone(), bytes.clone(), bytes);
    let case = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&strategy, |(path, query, header, reason)| {
            let k = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = format!("/a\0b{}", String::from_utf8_lossy(&path));
            let query = String::from_utf8_lossy(&query).into_owned();
            let header = String::from_utf8_lossy(&header).into_owned();
            let reason = format!("\0{}", String::from_utf8_lossy(&reason));
            for (store, _) in &stores {
                rt.block_on(poison_case(store.clone(), k, &path, &query, &header, &reason));
            }
            Ok(())
        })
        .unwrap();
}

async fn poison_case(store: Store, k: u64, path: &str, query: &str, header: &str, reason: &str) {
    let stats = Arc::new(writer::WriterStats::default());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let handle = writer::spawn(store.clone(), rx, stats.clone());
    let at = T0 + k;
    tx.send(Record::KnownPath { path: path.into(), at }).await.unwrap();
    tx.send(Record::Request(aiwaf_engine::RequestEntry {
        request_id: format!("p{k}"),
        ts: at,
        ip: ip("10.9.0.1"),
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        status: 200,
        response_time_ms: 1.0,
        user_agent: header.into(),
        referer: header.into(),
        content_length: None,
        blocked: false,
    }))
    .await
    .unwrap();
    tx.send(Record::Event(Event {
        request_id: format!("p{k}"),
        ts: at,
        ip: ip("10.9.0.1"),
        method: "GET".into(),
        path: path.into(),
        detector: Detector::Keyword,
        action: "block",
        reason: reason.into(),
        evidence: json!({"path": path, "query": query, "header": header}),
        mode: "block",
    }))
    .await
    .unwrap();
    // The ban made after the poison must be stored.
    let banned = format!("10.9.{}.{}", (k / 250) % 250, k % 250 + 1);
    tx.send(ban(&banned, at, None, 1, k + 1)).await.unwrap();
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(20), handle).await.expect("writer finished").unwrap();
    let rows = store.blacklist(true, at).await.unwrap();
    assert!(rows.iter().any(|r| r.ip == banned), "ban after a poison record not stored ({:?})", store.backend());
    let evs = store.events(&EventFilter { request_id: Some(format!("p{k}")), limit: 5, ..Default::default() }).await;
    let evs = evs.unwrap();
    assert_eq!(evs.len(), 1, "event with odd bytes is stored escaped, not dropped");
    assert!(!evs[0].path.contains('\0'));
    assert_eq!(stats.poisoned.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// Incremental reloads: every blacklist change is logged by address; the other lists bump
/// their own generation; applying the changes to a snapshot gives what a full load gives.
#[tokio::test]
async fn ban_changes_replay_to_the_full_snapshot() {
    for (store, _dir) in stores("ban_changes").await {
        ban_changes(store).await;
    }
}

async fn ban_changes(store: Store) {
    let config = EngineConfig::default();
    let m0 = store.marks().await.unwrap();
    let before = store.load_lists(&config, T0).await.unwrap();
    store.write_batch(&[ban("10.7.0.1", T0, None, 1, 1), ban("10.7.0.2", T0, Some(T0 + 60_000), 1, 2)]).await.unwrap();
    store.add_ban(ip("2001:db8::7"), "manual", None, T0).await.unwrap();
    assert!(store.remove_ban(ip("10.7.0.1"), T0).await.unwrap());
    let m1 = store.marks().await.unwrap();
    assert!(m1.generation > m0.generation && m1.last_ban_change > m0.last_ban_change);
    assert_eq!(m1.lists_generation, m0.lists_generation, "bans alone do not call for a full reload");
    let (last, ips) = store.ban_changes_since(m0.last_ban_change, 100).await.unwrap().unwrap();
    assert_eq!(last, m1.last_ban_change);
    assert_eq!(ips, ["10.7.0.1", "10.7.0.2", "2001:db8::7"]);
    let changed = store.bans_of(&ips, &config, T0 + 1).await.unwrap();
    let applied = before.with_bans(changed);
    let full = store.load_lists(&config, T0 + 1).await.unwrap();
    let mut a: Vec<_> = applied.bans.iter().map(|(k, v)| (*k, v.clone())).collect();
    let mut f: Vec<_> = full.bans.iter().map(|(k, v)| (*k, v.clone())).collect();
    a.sort_by_key(|x| x.0);
    f.sort_by_key(|x| x.0);
    assert_eq!(a, f);
    assert!(!applied.bans.contains_key(&ip("10.7.0.1")), "a lifted ban is removed");
    // nothing new: an empty batch at the same mark; too many: a full reload is due
    assert_eq!(store.ban_changes_since(last, 100).await.unwrap(), Some((last, vec![])));
    assert_eq!(store.ban_changes_since(m0.last_ban_change, 2).await.unwrap(), None);
    // other lists bump their generation
    store.add_exemption(parse_net("192.0.2.0/24").unwrap(), "lab", T0).await.unwrap();
    assert!(store.marks().await.unwrap().lists_generation > m1.lists_generation);
    // a log pruned past the mark: a full reload is due
    store.purge(T0, u64::MAX, 0, 1000).await.unwrap();
    for k in 0..5u64 {
        store.add_ban(ip(&format!("10.8.0.{k}")), "x", None, T0).await.unwrap();
    }
    sqlx::query("DELETE FROM aiwaf_ban_changes WHERE id <= (SELECT MAX(id) FROM aiwaf_ban_changes) - 2")
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(store.ban_changes_since(last, 100).await.unwrap(), None);
}

#[tokio::test]
async fn the_profile_is_saved_and_read_back_without_bumping_generations() {
    for (store, _dir) in stores("profile").await {
        assert_eq!(store.profile().await.unwrap(), None);
        let g0 = store.generation().await.unwrap();
        store.save_profile(r#"{"version": 1, "routes": {}}"#, T0 as i64).await.unwrap();
        store.save_profile(r#"{"version": 1, "routes": {"/a": {}}}"#, T0 as i64 + 1).await.unwrap();
        assert_eq!(store.profile().await.unwrap().as_deref(), Some(r#"{"version": 1, "routes": {"/a": {}}}"#));
        assert_eq!(store.generation().await.unwrap(), g0, "saving the profile makes no server reload");
    }
}
