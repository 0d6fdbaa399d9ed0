//! Golden tests on small generated logs: formats, gzip, rotations, malformed lines, bans,
//! keywords, determinism.

use std::io::Write;

use aiwaf_engine::ip::IpSet;

use super::*;

const DAY: &str = "23/Nov/2026";

fn line(ip: &str, sec: u32, method: &str, target: &str, status: u16, tail: &str) -> String {
    format!(
        "{ip} - - [{DAY}:10:{:02}:{:02} +0000] \"{method} {target} HTTP/1.1\" {status} 512 \"-\" \"Mozilla/5.0\"{tail}\n",
        sec / 60 % 60,
        sec % 60
    )
}

/// A small site: 30 readers browsing, one scanner probing for admin tools.
fn site_log(tail: &dyn Fn(u32) -> String) -> String {
    let mut out = String::new();
    let pages = ["/", "/blog/", "/blog/hello-world/", "/about/", "/contact/", "/static/app.css"];
    for sec in 0..600u32 {
        let reader = sec % 30;
        let page = pages[(sec as usize * 7 + reader as usize) % pages.len()];
        out.push_str(&line(&format!("198.51.100.{}", reader + 1), sec, "GET", page, 200, &tail(sec)));
        if sec % 97 == 0 {
            out.push_str(&line(&format!("198.51.100.{}", reader + 1), sec, "GET", "/old-link/", 404, &tail(sec)));
        }
    }
    for k in 0..12u32 {
        // Distinct paths: a 404 flood counts distinct paths (a reader retrying one is not a scan).
        let target = [
            "/phpmyadmin/index",
            "/phpmyadmin/setup",
            "/dbadmin/login",
            "/backup/site",
            "/phpmyadmin/config",
            "/phpmyadmin/scripts",
            "/dbadmin/setup",
            "/backup/db",
            "/phpmyadmin/sql",
            "/dbadmin/index",
            "/backup/old",
            "/phpmyadmin/tmp",
        ][k as usize];
        out.push_str(&line("203.0.113.66", 300 + k, "GET", target, 404, &tail(300 + k)));
    }
    out
}

fn opts() -> Options {
    Options {
        format: LogFormat::Auto,
        since: None,
        params: Params::default(),
        top_n: 10,
        sample: DEFAULT_SAMPLE,
        known_paths: HashSet::new(),
        now: 1_795_000_000_000,
    }
}

fn run(files: Vec<PathBuf>, o: &Options) -> Outcome {
    let config = EngineConfig::default();
    let engine = Engine::new(config.clone(), IpSet::default()).unwrap();
    train(&engine, &Lists::empty(&config), &Input::Files(files), o).unwrap()
}

#[test]
fn nginx_request_time_log_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    std::fs::write(&p, site_log(&|s| format!(" 0.0{}", s % 9 + 1))).unwrap();
    let out = run(vec![p], &opts());
    let r = &out.report;
    assert_eq!(r.sources[0].format, "combined-rt");
    assert_eq!((r.lines_read, r.lines_skipped), (619, 0));
    assert_eq!(r.clients, 31);
    // The scanner: twelve 404s in twelve seconds.
    let flood: Vec<_> = r.bans.iter().filter(|b| b.detector == "not_found_flood").collect();
    assert_eq!(flood.len(), 1);
    assert_eq!(flood[0].ip.to_string(), "203.0.113.66");
    // Readers' occasional broken link never bans anyone.
    assert!(r.bans.iter().all(|b| b.ip.to_string() == "203.0.113.66"), "{:?}", r.bans);
    // Learned from the scanner's paths; nothing from the site's own vocabulary.
    let words: Vec<&str> = r.keywords.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(words[0], "phpmyadmin");
    assert!(words.contains(&"dbadmin") && words.contains(&"backup"), "{words:?}");
    for legit in ["blog", "hello", "world", "about", "contact", "static", "link"] {
        assert!(!words.contains(&legit), "learned {legit}");
    }
    let m = out.model.expect("enough rows for a model");
    assert_eq!(m.file().forest.trees.len(), 100);
    assert!(r.model.as_ref().unwrap().threshold > 0.0);
}

#[test]
fn gzip_rotations_oldest_first_and_multi_member() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("access.log");
    std::fs::write(&base, line("192.0.2.3", 30, "GET", "/newest", 200, " 0.010")).unwrap();
    std::fs::write(dir.path().join("access.log.1"), line("192.0.2.2", 20, "GET", "/middle", 200, " 0.010")).unwrap();
    // Two gzip members in one file, as `cat a.gz b.gz` or some rotators produce.
    let mut gz = Vec::new();
    for text in [
        line("192.0.2.1", 10, "GET", "/oldest", 200, " 0.010"),
        line("192.0.2.1", 11, "POST", "/oldest2", 200, " 0.010"),
    ] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        gz.extend(e.finish().unwrap());
    }
    std::fs::write(dir.path().join("access.log.2.gz"), gz).unwrap();
    std::fs::write(dir.path().join("access.log.10.gz"), b"").unwrap();
    std::fs::write(dir.path().join("unrelated.log"), b"x").unwrap();
    let files = discover(&base);
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["access.log.10.gz", "access.log.2.gz", "access.log.1", "access.log"]);
    let out = run(files, &opts());
    assert_eq!(out.report.lines_read, 4);
    assert!(out.report.sources[1].gzip && !out.report.sources[2].gzip);
    assert_eq!(out.report.sources[1].lines, 2);
    assert!(out.model.is_none(), "4 rows are too few");
    assert!(out.report.model_skipped.is_some());
}

#[test]
fn malformed_lines_are_counted_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut text = site_log(&|_| " 0.050".into());
    text.insert_str(0, "this is not a log line\n");
    text.push_str("1.2.3.4 - - [99/Xyz/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" 0.1\n");
    text.push('\n');
    std::fs::write(&p, text).unwrap();
    let out = run(vec![p], &opts());
    let r = &out.report;
    assert_eq!(r.lines_skipped, 2);
    assert_eq!(r.lines_read, 621);
    assert_eq!(r.skipped_samples[0].line, 1);
    assert_eq!(r.skipped_samples[0].error, "no client address");
    assert_eq!(r.skipped_samples[1].line, 621);
    assert_eq!(r.skipped_samples[1].error, "no valid [time]");
    assert_eq!(r.rows, 619);
}

#[test]
fn apache_microseconds_ipv6_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access_log");
    let text: String = (0..100u32).map(|s| line("2001:db8::9", s, "HEAD", "/", 200, " 1500")).collect();
    std::fs::write(&p, text).unwrap();
    let out = run(vec![p.clone()], &opts());
    assert_eq!(out.report.sources[0].format, "apache-d");
    assert_eq!(out.report.clients, 1);
    let since = 1_795_428_000_000 + 50_000; // 23 Nov 2026 10:00:50 UTC
    let out = run(vec![p], &Options { since: Some(since), ..opts() });
    assert_eq!((out.report.rows, out.report.lines_too_old), (50, 50));
}

#[test]
fn deterministic_models() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    std::fs::write(&p, site_log(&|s| format!(" 0.{:03}", s % 400))).unwrap();
    let a = run(vec![p.clone()], &opts()).model.unwrap();
    let b = run(vec![p], &opts()).model.unwrap();
    assert_eq!(a.to_json(), b.to_json());
}

#[test]
fn stored_request_log_input() {
    let config = EngineConfig::default();
    let engine = Engine::new(config.clone(), IpSet::default()).unwrap();
    let rows: Vec<StoredRow> = (0..10u64)
        .map(|k| StoredRow {
            ip: "10.9.9.9".parse().unwrap(),
            ts: 1_000_000 + k * 500,
            path: format!("/nf/{k}"),
            status: 404,
            resp_time_s: 0.01,
        })
        .collect();
    let out = train(&engine, &Lists::empty(&config), &Input::Rows(rows), &opts()).unwrap();
    assert_eq!(out.report.bans_by_reason.get("not_found_flood"), Some(&1));
    assert_eq!(out.report.sources[0].source, "request log");
}

/// Issue 11: gunicorn behind the proxy logs every request from 127.0.0.1. Training saw one
/// client, banned it (health checks then got 403) and learned `favicon`, `robots` and UUID
/// fragments. Now loopback and trusted proxies are never banned, the operator is told the log
/// is written behind a proxy, and browser paths and id fragments are never keywords.
#[test]
fn a_log_written_behind_a_proxy_bans_nobody_and_learns_no_site_words() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gunicorn.log");
    let mut out = String::new();
    let mut t = 0u32;
    for k in 0..300u32 {
        let order = format!("/orders/{:08x}-4c1d-5b8e-a716-4466554400{:02}/", k * 7919, k % 100);
        for (path, status) in [
            ("/", 200),
            ("/favicon.ico", 404),
            ("/robots.txt", 404),
            ("/apple-touch-icon-precomposed.png", 404),
            (order.as_str(), if k % 3 == 0 { 404 } else { 200 }),
        ] {
            t += 1;
            out.push_str(&line("127.0.0.1", t / 4, "GET", path, status, " 0.004"));
        }
    }
    std::fs::write(&p, out).unwrap();
    let r = run(vec![p], &opts()).report;
    assert!(r.bans.is_empty(), "{:?}", r.bans);
    assert!(r.not_banned.iter().any(|n| n.starts_with("127.0.0.1 (loopback)")), "{:?}", r.not_banned);
    assert!(r.warnings.iter().any(|w| w.contains("behind a proxy") && w.contains("127.0.0.1")), "{:?}", r.warnings);
    let words: Vec<&str> = r.keywords.iter().map(|(k, _)| k.as_str()).collect();
    for never in ["favicon", "robots", "apple", "touch", "precomposed", "4c1d", "5b8e", "a716"] {
        assert!(!words.contains(&never), "learned {never}: {words:?}");
    }
}
