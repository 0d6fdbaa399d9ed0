use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_response_format_and_the_why() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let r = get("127.0.30.1", p.addr, "/.env").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.headers["content-type"], "application/json");
    let id = r.headers["x-aiwaf-request-id"].to_str().unwrap().to_string();
    let j = r.json();
    assert_eq!((j["blocked"].as_bool(), j["request_id"].as_str()), (Some(true), Some(id.as_str())));
    let r = send_from("127.0.30.1", p.addr, "GET", "/", &[("accept", "text/html,*/*")], Bytes::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().contains(r.headers["x-aiwaf-request-id"].to_str().unwrap()));
    // The page says how long the ban lasts, and nothing an attacker could tune to.
    assert!(r.text().contains("The block ends in about 15 minutes"), "{}", r.text());
    assert!(!r.text().contains(".env") && !r.text().to_lowercase().contains("keyword"), "{}", r.text());
    assert_eq!(r.headers["retry-after"], "900");
    // "Why was I blocked?" — answered from the request id alone.
    eventually(Duration::from_secs(2), async || !events(&p, &["--request-id", &id]).is_empty()).await.unwrap();
    let ev = &events(&p, &["--request-id", &id])[0];
    assert_eq!(ev["ip"], "127.0.30.1");
    assert_eq!(ev["detector"], "keyword");
    assert_eq!(ev["action"], "ban");
    assert_eq!(ev["evidence"]["keyword"], ".env");
    assert_eq!(ev["path"], "/.env");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_survive_a_restart() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOpts { dir: Some(dir.path().join("data")), ..Default::default() };
    let mut p = Proxy::start(&up.url(), opts.clone());
    assert_eq!(get("127.0.31.1", p.addr, "/wp-login.php").await.status, 403);
    assert_eq!(p.terminate(), Some(0));
    let p = Proxy::start(&up.url(), opts);
    assert_eq!(get("127.0.31.1", p.addr, "/").await.status, 403);
    assert_eq!(get("127.0.31.2", p.addr, "/").await.status, 200);
    let b = &blacklist(&p)[0];
    assert_eq!(
        (b["ip"].as_str(), b["detector"].as_str(), b["offences"].as_i64()),
        (Some("127.0.31.1"), Some("keyword"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_unban_applies_to_a_running_server_within_a_second() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    assert_eq!(get("127.0.32.1", p.addr, "/.git/HEAD").await.status, 403);
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["127.0.32.1"]).await.unwrap();
    let (code, out, _) = p.cli(&["blacklist", "remove", "127.0.32.1"]);
    assert_eq!(code, 0);
    assert!(out.contains("Unbanned"));
    let took = eventually(Duration::from_secs(1), async || get("127.0.32.1", p.addr, "/").await.status == 200).await;
    println!("CLI unban applied after {took:?}");
    assert!(took.is_some(), "unban not applied within 1 s");
    // A second offence escalates: the next ban is longer (1 h after 15 min).
    assert_eq!(get("127.0.32.1", p.addr, "/.git/HEAD").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_offenders_get_longer_bans() {
    let up = Upstream::start().await;
    let config = "[bans]\ndurations = [\"1s\", \"1h\"]\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    assert_eq!(get("127.0.33.1", p.addr, "/.env").await.status, 403);
    eventually(Duration::from_secs(3), async || get("127.0.33.1", p.addr, "/").await.status == 200)
        .await
        .expect("first ban expires");
    assert_eq!(get("127.0.33.1", p.addr, "/.env").await.status, 403);
    eventually(Duration::from_secs(2), async || blacklist(&p).first().is_some_and(|b| b["offences"] == 2))
        .await
        .unwrap();
    let b = &blacklist(&p)[0];
    let created = humantime::parse_rfc3339(b["created_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(b["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.duration_since(created).unwrap().as_secs(), 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_mode_blocks_nothing_and_records_everything() {
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts { mode: Some("detect"), env: vec![("AIWAF_RATE_MAX", "3".into())], ..Default::default() },
    );
    assert_eq!(get("127.0.34.1", p.addr, "/.env").await.status, 200);
    for _ in 0..5 {
        assert_eq!(get("127.0.34.2", p.addr, "/").await.status, 200);
    }
    eventually(Duration::from_secs(2), async || events(&p, &[]).len() >= 3).await.unwrap();
    let evs = events(&p, &[]);
    assert!(evs.iter().any(|e| e["action"] == "would_ban" && e["detector"] == "keyword" && e["mode"] == "detect"));
    assert!(evs.iter().any(|e| e["action"] == "would_rate_limit"));
    assert!(blacklist(&p).is_empty(), "detect mode must not ban");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_is_a_plain_proxy() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts { mode: Some("off"), ..Default::default() });
    for _ in 0..50 {
        assert_eq!(get("127.0.35.1", p.addr, "/.env").await.status, 200);
    }
    assert!(events(&p, &[]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logging_follows_the_cli() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let (_, out, _) = p.cli(&["logging", "status"]);
    assert!(out.contains("disabled"), "{out}");
    assert_eq!(p.cli(&["logging", "enable"]).0, 0);
    let store = aiwaf_store::Store::open(&p.dir).await.unwrap();
    let count = async || store.counts(0).await.unwrap().request_log;
    eventually(Duration::from_secs(2), async || {
        get("127.0.36.1", p.addr, "/logged").await;
        count().await > 0
    })
    .await
    .expect("requests logged after `aiwaf logging enable`");
    let (_, out, _) = p.cli(&["logging", "status"]);
    assert!(out.contains("enabled"), "{out}");
    assert_eq!(p.cli(&["logging", "disable"]).0, 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = count().await;
    get("127.0.36.1", p.addr, "/not-logged").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count().await, before);
    let (code, out, _) = p.cli(&["logging", "clear"]);
    assert_eq!(code, 0);
    assert!(out.contains("Deleted"));
    assert_eq!(count().await, 0);
}

#[test]
fn reset_asks_and_refuses_without_a_tty() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = cli_in(dir.path(), None, &["blacklist", "add", "10.0.0.1"]);
    assert_eq!(code, 0);
    let (code, _, err) = cli_in(dir.path(), None, &["reset"]);
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    let (_, out, _) = cli_in(dir.path(), None, &["blacklist", "list"]);
    assert!(out.contains("10.0.0.1"));
    let (code, _, _) = cli_in(dir.path(), None, &["reset", "--blacklist-only", "--yes"]);
    assert_eq!(code, 0);
    let (_, out, _) = cli_in(dir.path(), None, &["blacklist", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn bad_configuration_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aiwaf.toml");
    std::fs::write(&cfg, "[rate_limit]\nmax = 5\nflod = 10\n").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flod"), "{err}");
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--data-dir"])
        .arg(dir.path())
        .env("AIWAF_RATE_FLOOD", "many")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AIWAF_RATE_FLOOD"));
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--threads", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn diagnose_reports_and_fails_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = Command::new(bin())
        .args(["diagnose", "--data-dir"])
        .arg(dir.path())
        .env("AIWAF_UPSTREAM", format!("http://{dead}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[ok  ] schema version"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("anomaly scoring off"), "{text}");
    let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(bin())
        .args(["diagnose", "--data-dir"])
        .arg(dir.path())
        .env("AIWAF_UPSTREAM", format!("http://{}", live.local_addr().unwrap()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Issue 11: the block page is the operator's own template; an upload over the limit gets a page
/// in a browser (as nginx answers), JSON for API clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_page_template_and_413_page() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("blocked.html");
    std::fs::write(&tpl, "<html><h1>Nope: {{title}}</h1><p>{{retry}}</p><small>{{request_id}}</small></html>").unwrap();
    let config = format!("[server]\nblock_page = \"{}\"\nmax_body_bytes = 1000\n", tpl.display());
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let browser = [("accept", "text/html,application/xhtml+xml")];
    let r = send_from("127.0.36.1", p.addr, "GET", "/.env", &browser, Bytes::new()).await;
    assert_eq!(r.status, 403);
    let id = r.headers["x-aiwaf-request-id"].to_str().unwrap();
    assert_eq!(
        r.text(),
        format!(
            "<html><h1>Nope: Access blocked</h1><p>The block ends in about 15 minutes.</p><small>{id}</small></html>"
        )
    );
    let r = send_from("127.0.36.2", p.addr, "POST", "/upload", &browser, Bytes::from(vec![b'x'; 5000])).await;
    assert_eq!(r.status, 413);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().contains("larger than this site accepts"), "{}", r.text());
    let r = send_from("127.0.36.3", p.addr, "POST", "/upload", &[], Bytes::from(vec![b'x'; 5000])).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (413, Some("payload_too_large")));
    // A template without the request id refuses to start, naming the key.
    std::fs::write(&tpl, "<html>blocked</html>").unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, format!("[server]\nblock_page = \"{}\"\n", tpl.display())).unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"];
    let (code, _, err) = cli_in(dir.path(), Some(&conf), &args);
    assert_ne!(code, 0);
    assert!(err.contains("server.block_page"), "{err}");
}

/// Issue 10 and 11: operator input never panics (a ban for 10000 years lists fine), a CLI run
/// where there is no database says where it looked, a bad detector name lists the good ones,
/// and a closed pipe ends the CLI quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_papercuts() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let (code, _, err) = p.cli(&["blacklist", "add", "203.0.113.77", "--ttl", "10000y", "--reason", "x"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = p.cli(&["blacklist", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("203.0.113.77") && out.contains("9999-12-31"), "{out}");
    let (code, _, err) = p.cli(&["events", "--detector", "nosuch"]);
    assert_ne!(code, 0);
    assert!(err.contains("nosuch") && err.contains("keyword") && err.contains("payload"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, err) = cli_in(&elsewhere.path().join("nothing-here"), None, &["blacklist", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("no aiwaf database at") && err.contains("nothing-here"), "{err}");
    assert!(!elsewhere.path().join("nothing-here").exists(), "a read must not create a data dir");
    // `aiwaf events | head -c 1`: no panic message when the reader goes away.
    let mut cmd = Command::new(bin());
    cmd.args(["diagnose", "--data-dir"]).arg(&p.dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
