use std::io::Write;
use std::time::Duration;

use crate::support::*;

/// A day of a small site: readers browsing, and one scanner with a burst of 404s.
fn site_log(day: &str) -> String {
    let mut out = String::new();
    let pages = ["/", "/blog/", "/blog/hello-world/", "/about/", "/contact/", "/static/app.css", "/shop/item-7/"];
    for k in 0..3000u32 {
        let ip = format!("198.51.100.{}", k % 40 + 1);
        let page = pages[(k as usize * 7 + (k as usize / 40)) % pages.len()];
        let (h, m, s) = (k / 3600 % 24, k / 60 % 60, k % 60);
        out.push_str(&format!(
            "{ip} - - [{day}:{h:02}:{m:02}:{s:02} +0000] \"GET {page} HTTP/1.1\" 200 900 \"-\" \"Mozilla/5.0\" 0.0{}\n",
            k % 9 + 1
        ));
    }
    for (k, p) in
        ["/phpmyadmin/", "/pma/index", "/phpmyadmin/setup", "/dbadmin/", "/phpmyadmin/db", "/sqladmin/", "/mysqladmin/"]
            .iter()
            .enumerate()
    {
        out.push_str(&format!(
            "203.0.113.66 - - [{day}:00:30:{:02} +0000] \"GET {p} HTTP/1.1\" 404 150 \"-\" \"zgrab\" 0.002\n",
            k
        ));
    }
    out
}

#[test]
fn train_bans_learns_writes_a_model_and_never_acts_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, site_log("22/Nov/2026")).unwrap();
    let data = dir.path().join("data");
    let logarg = log.to_str().unwrap();

    // Dry run: a report, nothing written.
    let (code, out, err) = cli_in(&data, None, &["train", "--log", logarg, "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["dry_run"], true);
    // the scanner, found by the live request phase replayed (its `zgrab` User-Agent) before its
    // 404s add up to a flood
    assert_eq!(r["bans_by_reason"], serde_json::json!({"payload": 1}), "{out}");
    assert!(!data.join("model.json").exists());
    assert_eq!(cli_in(&data, None, &["blacklist", "list", "--json"]).1.trim(), "[]");

    let (code, out, err) = cli_in(&data, None, &["train", "--log", logarg, "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["lines_read"], 3007);
    assert_eq!(r["sources"][0]["format"], "combined-rt");
    assert_eq!(r["bans_applied"], serde_json::json!(["203.0.113.66"]));
    let words: Vec<&str> = r["keywords"].as_array().unwrap().iter().map(|k| k[0].as_str().unwrap()).collect();
    assert_eq!(words[0], "phpmyadmin");
    assert!(!words.iter().any(|w| ["blog", "hello", "about", "contact", "shop", "item"].contains(w)), "{words:?}");
    assert!(data.join("model.json").exists());
    let (_, out, _) = cli_in(&data, None, &["blacklist", "list", "--json"]);
    let bans: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(bans[0]["ip"], "203.0.113.66");
    assert_eq!(bans[0]["detector"], "payload");
    assert_eq!(bans[0]["evidence"]["source"], "training");
    let (_, out, _) = cli_in(&data, None, &["keywords", "list", "--json"]);
    assert!(out.contains("phpmyadmin"));

    // The model, described.
    let (code, out, _) = cli_in(&data, None, &["model", "info", "--json"]);
    assert_eq!(code, 0);
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["trees"], 100);
    assert_eq!(m["schema_version"], 1);
    assert_eq!(m["feature_names"][4], "burst_count");
    assert_eq!(m["feature_names"][6], "payload_score");
    assert_eq!(m["rows_used"], 3007);

    // Unban, retrain on the same log: the old finding does not ban again (the seed re-banned).
    assert_eq!(cli_in(&data, None, &["blacklist", "remove", "203.0.113.66"]).0, 0);
    let (_, out, _) = cli_in(&data, None, &["train", "--log", logarg, "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["bans_applied"], serde_json::json!([]));
    assert_eq!(cli_in(&data, None, &["blacklist", "list", "--json"]).1.trim(), "[]");

    // Human output is a summary line.
    let (code, out, _) = cli_in(&data, None, &["train", "--log", logarg, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("read 3007 lines"), "{out}");
}

#[test]
fn access_log_rotations_and_the_request_log_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Nothing to learn from: a clear error.
    let (code, _, err) = cli_in(&data, None, &["train"]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to train on"), "{err}");
    // AIWAF_ACCESS_LOG with a gzipped rotation.
    let log = dir.path().join("access.log");
    std::fs::write(&log, site_log("23/Nov/2026")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(site_log("21/Nov/2026").as_bytes()).unwrap();
    std::fs::write(dir.path().join("access.log.1.gz"), gz.finish().unwrap()).unwrap();
    let out = std::process::Command::new(bin())
        .args(["train", "--json", "--dry-run", "--data-dir"])
        .arg(&data)
        .env("AIWAF_ACCESS_LOG", &log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["lines_read"], 6014);
    assert_eq!(r["sources"][0]["gzip"], true);
    assert!(r["sources"][1]["source"].as_str().unwrap().ends_with("access.log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_fallback_and_model_regenerate() {
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts { env: vec![("AIWAF_MIDDLEWARE_LOGGING", "true".into())], ..Default::default() },
    );
    for k in 0..80 {
        get(&format!("127.0.60.{}", k % 20 + 1), p.addr, &format!("/page/{}", k % 7)).await;
    }
    let store = aiwaf_store::Store::open(&p.dir).await.unwrap();
    eventually(Duration::from_secs(3), async || store.counts(0).await.unwrap().request_log >= 80)
        .await
        .expect("logged");
    let (code, out, err) = p.cli(&["model", "regenerate", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["sources"][0]["source"], "request log");
    assert_eq!(r["rows"], 80);
    assert!(p.dir.join("model.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_new_model() {
    let up = Upstream::start().await;
    // 404 floods and probes would ban first; raise them so only the model can.
    let config = "[not_found]\nthreshold = 1000\n[probing]\nthreshold = 1000\n[uuid]\nthreshold = 1000\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let probe = async |client: &str| {
        for k in 0..12 {
            let r = get(client, p.addr, &format!("/nf/some/deep/unknown/path/probe-{k}/for/a/thing-that-is-not-here"))
                .await;
            if r.status == 403 {
                return true;
            }
        }
        false
    };
    // No model: scanning that stays under the other detectors is not banned.
    assert!(!probe("127.0.61.1").await);
    let (_, out, _) = p.cli(&["diagnose"]);
    assert!(out.contains("anomaly scoring off"), "{out}");
    // Train on a benign day; the server loads the new model without a restart.
    let log = p.dir.join("access.log");
    std::fs::write(&log, site_log("22/Nov/2026")).unwrap();
    let (code, _, err) = p.cli(&["train", "--log", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut n = 1;
    let banned = eventually(Duration::from_secs(5), async || {
        n += 1;
        probe(&format!("127.0.61.{n}")).await
    })
    .await;
    assert!(banned.is_some(), "the new model was not used");
    eventually(Duration::from_secs(2), async || !events(&p, &["--detector", "anomaly"]).is_empty()).await.unwrap();
    let ev = &events(&p, &["--detector", "anomaly"])[0];
    assert!(ev["evidence"]["score"].as_f64().unwrap() > ev["evidence"]["threshold"].as_f64().unwrap());
    assert!(ev["evidence"]["features"]["total_404"].as_f64().unwrap() >= 3.0);
    let (_, out, _) = p.cli(&["diagnose"]);
    assert!(out.contains("anomaly scoring on"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_retraining_in_serve() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, site_log("22/Nov/2026")).unwrap();
    let config = "[model]\nretrain_every = \"1s\"\n".to_string();
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            config: Some(config),
            env: vec![("AIWAF_ACCESS_LOG", log.display().to_string())],
            ..Default::default()
        },
    );
    let model = p.dir.join("model.json");
    let took = eventually(Duration::from_secs(8), async || model.exists()).await;
    assert!(took.is_some(), "no model after scheduled retraining");
    // The server kept serving throughout, and the scanner in the log is banned.
    assert_eq!(get("127.0.62.1", p.addr, "/").await.status, 200);
    eventually(Duration::from_secs(3), async || banned_ips(&p).contains(&"203.0.113.66".to_string())).await.unwrap();
}

/// Issue 13: `aiwaf train --explain IP` says why training would ban an address — each finding
/// with its file and line — and writes nothing.
#[test]
fn train_explain_names_lines_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, site_log("22/Nov/2026")).unwrap();
    let data = dir.path().join("data");
    let logarg = log.to_str().unwrap();
    let (code, out, err) = cli_in(&data, None, &["train", "--log", logarg, "--explain", "203.0.113.66"]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("{logarg}:3001 ")), "{out}");
    assert!(first.contains("GET /phpmyadmin/ -> 404") && first.contains("payload"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("=> training bans 203.0.113.66"), "{out}");
    assert!(!data.join("model.json").exists(), "explain is a dry run");
    let (_, out, _) = cli_in(&data, None, &["train", "--log", logarg, "--explain", "198.51.100.7"]);
    assert!(out.contains("no finding") && out.contains("=> training does not ban 198.51.100.7"), "{out}");
    let (code, _, err) = cli_in(&data, None, &["train", "--log", logarg, "--explain", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("--explain"), "{err}");
}
