use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "test-token-0123456789";

fn admin_proxy(up: &Upstream) -> Proxy {
    Proxy::start(
        &up.url(),
        ProxyOpts {
            env: vec![("AIWAF_ADMIN_TOKEN", TOKEN.into()), ("AIWAF_MIDDLEWARE_LOGGING", "true".into())],
            args: vec!["--admin-listen", "127.0.0.1:0"],
            ..Default::default()
        },
    )
}

async fn api(p: &Proxy, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    send_from("127.0.0.1", p.admin.expect("admin listener"), method, path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_with_auth_and_bad_input() {
    let up = Upstream::start().await;
    let p = admin_proxy(&up);
    let ok = Some(TOKEN);

    // Auth: missing, wrong, right.
    for path in ["/api/v1/blacklist", "/api/v1/stats", "/metrics", "/api/v1/events"] {
        assert_eq!(api(&p, "GET", path, None, None).await.status, 401, "{path}");
        assert_eq!(api(&p, "GET", path, None, Some("wrong")).await.status, 401, "{path}");
        assert_eq!(api(&p, "GET", path, None, ok).await.status, 200, "{path}");
    }
    // The OpenAPI document describes every endpoint.
    let doc = api(&p, "GET", "/api/v1/openapi.json", None, None).await.json();
    for path in
        ["/api/v1/blacklist", "/api/v1/exemptions/{ip_or_cidr}", "/api/v1/train/{id}", "/api/v1/events", "/metrics"]
    {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from openapi.json");
    }

    // Blacklist.
    let r = api(&p, "POST", "/api/v1/blacklist", Some(json!({"ip": "203.0.113.9", "reason": "api", "ttl": "1h"})), ok)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = api(&p, "GET", "/api/v1/blacklist", None, ok).await.json();
    assert_eq!(list[0]["ip"], "203.0.113.9");
    assert!(list[0]["expires_at"].is_string());
    for (body, field) in [
        (json!({"ip": "not-an-ip"}), "ip"),
        (json!({"reason": "x"}), "ip"),
        (json!({"ip": 5}), "ip"),
        (json!({"ip": "10.0.0.1", "ttl": "soon"}), "ttl"),
        (json!(["x"]), "body"),
    ] {
        let r = api(&p, "POST", "/api/v1/blacklist", Some(body.clone()), ok).await;
        assert_eq!((r.status, r.json()["field"].as_str()), (400, Some(field)), "{body}");
    }
    let r = send_from(
        "127.0.0.1",
        p.admin.unwrap(),
        "POST",
        "/api/v1/blacklist",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::from("{oops"),
    )
    .await;
    // A body that does not say it is JSON is refused before it is read (cross-site forms).
    assert_eq!((r.status, r.json()["field"].as_str()), (415, Some("content-type")));
    let r = send_from(
        "127.0.0.1",
        p.admin.unwrap(),
        "POST",
        "/api/v1/blacklist",
        &[("authorization", &format!("Bearer {TOKEN}")), ("content-type", "application/json")],
        Bytes::from("{oops"),
    )
    .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("body")));
    assert_eq!(api(&p, "DELETE", "/api/v1/blacklist/203.0.113.9", None, ok).await.status, 204);
    assert_eq!(api(&p, "DELETE", "/api/v1/blacklist/203.0.113.9", None, ok).await.status, 404);
    assert_eq!(api(&p, "DELETE", "/api/v1/blacklist/nope", None, ok).await.json()["field"], "ip");

    // Exemptions (a CIDR in a path is sent with %2F).
    assert_eq!(
        api(&p, "POST", "/api/v1/exemptions", Some(json!({"ip": "10.20.0.0/16", "reason": "office"})), ok).await.status,
        201
    );
    assert_eq!(api(&p, "POST", "/api/v1/exemptions", Some(json!({"ip": "10.20.0.0/16"})), ok).await.status, 200);
    assert_eq!(
        api(&p, "POST", "/api/v1/exemptions", Some(json!({"ip": "10.0.0.0/99"})), ok).await.json()["field"],
        "ip"
    );
    let list = api(&p, "GET", "/api/v1/exemptions", None, ok).await.json();
    assert_eq!(list[0]["ip"], "10.20.0.0/16");
    assert_eq!(api(&p, "DELETE", "/api/v1/exemptions/10.20.0.0%2F16", None, ok).await.status, 204);
    assert_eq!(api(&p, "DELETE", "/api/v1/exemptions/10.20.0.0%2F16", None, ok).await.status, 404);
    assert_eq!(api(&p, "DELETE", "/api/v1/exemptions/zzz", None, ok).await.status, 400);

    // Keywords.
    let store = aiwaf_store::Store::open(&p.dir).await.unwrap();
    store.add_keywords(&[("phpmyadmin".into(), 4)], 1).await.unwrap();
    assert_eq!(api(&p, "GET", "/api/v1/keywords", None, ok).await.json()[0]["keyword"], "phpmyadmin");
    assert_eq!(api(&p, "DELETE", "/api/v1/keywords/phpmyadmin", None, ok).await.status, 204);
    assert_eq!(api(&p, "DELETE", "/api/v1/keywords/phpmyadmin", None, ok).await.status, 404);

    // Events, with filters and bad filters.
    assert_eq!(get("127.0.90.1", p.addr, "/.env").await.status, 403);
    let evs = async |q: &str| api(&p, "GET", &format!("/api/v1/events{q}"), None, ok).await;
    eventually(Duration::from_secs(2), async || {
        evs("?ip=127.0.90.1").await.json().as_array().is_some_and(|a| !a.is_empty())
    })
    .await
    .unwrap();
    let e = evs("?ip=127.0.90.1&detector=keyword&since=1h&limit=5").await.json();
    assert_eq!(e[0]["evidence"]["keyword"], ".env");
    assert_eq!(evs("?detector=flood").await.json().as_array().unwrap().len(), 0);
    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=x", "limit"),
        ("?since=yesterdayish", "since"),
        ("?ip=1.2.3", "ip"),
        ("?detector=magic", "detector"),
    ] {
        let r = evs(q).await;
        assert_eq!((r.status, r.json()["field"].as_str()), (400, Some(field)), "{q}");
    }

    // Stats and metrics.
    let s = api(&p, "GET", "/api/v1/stats", None, ok).await.json();
    assert!(s["requests"].as_u64().unwrap() >= 1);
    assert_eq!(s["findings_by_detector"]["keyword"], 1);
    let m = api(&p, "GET", "/metrics", None, ok).await.text();
    for name in [
        "aiwaf_requests_total{mode=\"block\"}",
        "aiwaf_findings_total{detector=\"keyword\",mode=\"block\"} 1",
        "aiwaf_decision_seconds_bucket",
        "aiwaf_upstream_seconds_count",
        "aiwaf_anomaly_score_count",
        "aiwaf_store_queue_depth",
        "aiwaf_store_errors_total",
        "aiwaf_clients ",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }

    // Model and training.
    assert_eq!(api(&p, "GET", "/api/v1/model", None, ok).await.status, 404);
    for k in 0..60 {
        get(&format!("127.0.91.{}", k % 10 + 1), p.addr, &format!("/page/{}", k % 5)).await;
    }
    eventually(Duration::from_secs(3), async || store.counts(0).await.unwrap().request_log >= 60).await.unwrap();
    let r = api(&p, "POST", "/api/v1/train", None, ok).await;
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_u64().unwrap();
    let done = eventually(Duration::from_secs(20), async || {
        api(&p, "GET", &format!("/api/v1/train/{id}"), None, ok).await.json()["status"] == "done"
    })
    .await;
    assert!(done.is_some(), "{}", api(&p, "GET", &format!("/api/v1/train/{id}"), None, ok).await.text());
    assert_eq!(api(&p, "GET", "/api/v1/train/999", None, ok).await.status, 404);
    assert_eq!(api(&p, "GET", "/api/v1/train/abc", None, ok).await.json()["field"], "id");
    let loaded =
        eventually(Duration::from_secs(3), async || api(&p, "GET", "/api/v1/model", None, ok).await.status == 200)
            .await;
    assert!(loaded.is_some());
    assert_eq!(api(&p, "GET", "/api/v1/model", None, ok).await.json()["trees"], 100);
}

#[test]
fn admin_listener_refuses_to_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("AIWAF_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AIWAF_ADMIN_TOKEN"));
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
            "--admin-listen",
            "0.0.0.0:0",
            "--admin-insecure-loopback",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("AIWAF_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "insecure mode is for loopback only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_sign_in_csrf_and_audit_log() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let audit_arg: &'static str = Box::leak(audit.display().to_string().into_boxed_str());
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            env: vec![("AIWAF_ADMIN_TOKEN", TOKEN.into())],
            args: vec!["--admin-listen", "127.0.0.1:0", "--audit-log", audit_arg],
            ..Default::default()
        },
    );
    let admin = p.admin.unwrap();
    // Not signed in: to the sign-in page.
    let r = send_from("127.0.0.1", admin, "GET", "/", &[], Bytes::new()).await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/login"));
    // A wrong token fails; the right one sets a strict, HttpOnly session cookie.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = send_from("127.0.0.1", admin, "POST", "/login", &form, Bytes::from("token=nope")).await;
    assert_eq!(r.headers["location"], "/login?failed=1");
    let r = send_from("127.0.0.1", admin, "POST", "/login", &form, Bytes::from(format!("token={TOKEN}"))).await;
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let page = send_from("127.0.0.1", admin, "GET", "/exemptions", &[("cookie", &session)], Bytes::new()).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = page.text();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    // A form without the CSRF token is refused; with it, the exemption is added.
    let h = [("cookie", session.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let r =
        send_from("127.0.0.1", admin, "POST", "/exemptions/add", &h, Bytes::from("ip=10.9.0.0%2F16&reason=x")).await;
    assert_eq!(r.status, 403);
    let body = format!("ip=10.9.0.0%2F16&reason=office&csrf={csrf}");
    let r = send_from("127.0.0.1", admin, "POST", "/exemptions/add", &h, Bytes::from(body)).await;
    assert_eq!(r.status, 303);
    let html = send_from("127.0.0.1", admin, "GET", "/exemptions", &[("cookie", &session)], Bytes::new()).await.text();
    assert!(html.contains("10.9.0.0/16") && html.contains("office"));
    // Every page renders; the overview has its chart.
    for path in ["/", "/blacklist", "/keywords", "/events", "/requests", "/model"] {
        let r = send_from("127.0.0.1", admin, "GET", path, &[("cookie", &session)], Bytes::new()).await;
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(get("127.0.92.1", p.addr, "/wp-login.php").await.status, 403);
    let ev = eventually(Duration::from_secs(2), async || {
        send_from("127.0.0.1", admin, "GET", "/events", &[("cookie", &session)], Bytes::new())
            .await
            .text()
            .contains("127.0.92.1")
    })
    .await;
    assert!(ev.is_some());
    let overview = send_from("127.0.0.1", admin, "GET", "/", &[("cookie", &session)], Bytes::new()).await.text();
    assert!(overview.contains("<svg"));
    // The audit log: one JSON line per block.
    let lines = eventually(Duration::from_secs(2), async || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.contains("127.0.92.1"))
    })
    .await;
    assert!(lines.is_some());
    let line: Value = serde_json::from_str(std::fs::read_to_string(&audit).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!((line["client"].as_str(), line["detector"].as_str()), (Some("127.0.92.1"), Some("keyword")));
    // Sign out ends the session.
    let body = format!("csrf={csrf}");
    send_from("127.0.0.1", admin, "POST", "/logout", &h, Bytes::from(body)).await;
    let r = send_from("127.0.0.1", admin, "GET", "/", &[("cookie", &session)], Bytes::new()).await;
    assert_eq!(r.status, 303);
}

/// One raw HTTP/1.1 request (exact headers, no defaults); returns status and body.
async fn raw(to: std::net::SocketAddr, head: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    let req = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Issue 10: `--admin-insecure-loopback` was open to any web page the operator visited (CSRF
/// token "none", `text/plain` JSON accepted, no Host or Origin check: DNS rebinding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_loopback_admin_refuses_other_sites() {
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts { args: vec!["--admin-listen", "127.0.0.1:0", "--admin-insecure-loopback"], ..Default::default() },
    );
    let a = p.admin.expect("admin listener");
    let host = format!("Host: 127.0.0.1:{}", a.port());
    // The operator's own browser works.
    let (status, _) = raw(a, &format!("GET /api/v1/stats HTTP/1.1\r\n{host}"), "").await;
    assert_eq!(status, 200);
    // A rebound name is refused.
    let (status, _) = raw(a, "GET /api/v1/stats HTTP/1.1\r\nHost: evil.example:9090", "").await;
    assert_eq!(status, 403);
    // A cross-site form posting text/plain "JSON" is refused; so is a foreign Origin.
    let ban = r#"{"ip": "203.0.113.1"}"#;
    let (status, _) =
        raw(a, &format!("POST /api/v1/blacklist HTTP/1.1\r\n{host}\r\nContent-Type: text/plain"), ban).await;
    assert_eq!(status, 415);
    let (status, _) = raw(
        a,
        &format!(
            "POST /api/v1/blacklist HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nOrigin: http://evil.example"
        ),
        ban,
    )
    .await;
    assert_eq!(status, 403);
    assert!(banned_ips(&p).is_empty());
    // The dashboard's forms carry a random CSRF token, not "none".
    let (status, page) = raw(a, &format!("GET /blacklist HTTP/1.1\r\n{host}"), "").await;
    assert_eq!(status, 200);
    let token = page.split("name=\"csrf\" value=\"").nth(1).and_then(|t| t.split('"').next()).unwrap();
    assert_eq!(token.len(), 32, "{token}");
    assert_ne!(token, "none");
    let (status, _) = raw(
        a,
        &format!("POST /blacklist/remove HTTP/1.1\r\n{host}\r\nContent-Type: application/x-www-form-urlencoded"),
        "ip=203.0.113.1&csrf=none",
    )
    .await;
    assert_eq!(status, 403);
    // The API with JSON from the operator's own origin works.
    let (status, _) = raw(
        a,
        &format!("POST /api/v1/blacklist HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nOrigin: http://127.0.0.1:{}", a.port()),
        ban,
    )
    .await;
    assert!(status == 200 || status == 201, "{status}");
}

/// Issue 12: payload exclusions and detector modes changed through the admin API apply to the
/// running proxy at once, without a restart, and can be taken back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_policy_changes_apply_without_restart() {
    let up = Upstream::start().await;
    let p = admin_proxy(&up);
    let ok = Some(TOKEN);
    let to = p.addr;
    let sqli = "/search?q=%27+or+%271%27%3D%271";
    let xss = "/search?c=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    // one fresh address per attempt: repeated payload blocks would ban the sender
    assert_eq!(get("127.0.9.1", to, sqli).await.status, 403);

    let ex = json!({"path_prefix": "/search", "detectors": ["sqli"], "targets": ["query.q"]});
    let r = api(&p, "POST", "/api/v1/payload/exclusions", Some(ex.clone()), ok).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get("127.0.9.2", to, sqli).await.status, 200, "the exclusion is in force at once");
    assert_eq!(get("127.0.9.3", to, "/other?q=%27+or+%271%27%3D%271").await.status, 403, "only under /search");
    assert_eq!(api(&p, "POST", "/api/v1/payload/exclusions", Some(ex.clone()), ok).await.status, 200, "no duplicate");
    let pol = api(&p, "GET", "/api/v1/payload/policy", None, ok).await.json();
    assert_eq!(pol["runtime"]["exclusions"].as_array().map(Vec::len), Some(1), "{pol}");
    assert_eq!(pol["in_force"], pol["runtime"]);

    for (body, field) in [
        (json!({"path_prefix": "search"}), "path_prefix"),
        (json!({"path_prefix": "/x", "detectors": ["nope"]}), "detectors"),
    ] {
        let r = api(&p, "POST", "/api/v1/payload/exclusions", Some(body.clone()), ok).await;
        assert_eq!((r.status, r.json()["field"].as_str()), (400, Some(field)), "{body}: {}", r.text());
    }
    let r = api(&p, "PUT", "/api/v1/payload/policy", Some(json!({"detectors": {"bogus": "off"}})), ok).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        api(&p, "POST", "/api/v1/payload/exclusions", Some(json!({"path_prefix": "/x"})), None).await.status,
        401
    );

    // XSS to detect-only: passes, and the finding is still recorded
    assert_eq!(get("127.0.9.4", to, xss).await.status, 403);
    let r =
        api(&p, "PUT", "/api/v1/payload/policy", Some(json!({"exclusions": [ex], "detectors": {"xss": "detect"}})), ok)
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get("127.0.9.5", to, xss).await.status, 200);

    // taken back: both block again
    assert_eq!(api(&p, "DELETE", "/api/v1/payload/exclusions/0", None, ok).await.status, 204);
    assert_eq!(api(&p, "DELETE", "/api/v1/payload/exclusions/0", None, ok).await.status, 404);
    assert_eq!(get("127.0.9.6", to, sqli).await.status, 403);
    assert_eq!(api(&p, "PUT", "/api/v1/payload/policy", Some(json!({})), ok).await.status, 200);
    assert_eq!(get("127.0.9.7", to, xss).await.status, 403);
    let doc = api(&p, "GET", "/api/v1/openapi.json", None, None).await.json();
    assert!(doc["paths"].get("/api/v1/payload/policy").is_some());
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Issue 10: a new ban is applied by reading that ban, not every ban. Bans made by the server
/// itself and by the CLI are read incrementally (the full list is read once, at start); a CLI
/// ban is enforced and its removal lifted within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_reload_incrementally() {
    let up = Upstream::start().await;
    let p = admin_proxy(&up);
    for k in 1..=20 {
        assert_eq!(get(&format!("127.0.92.{k}"), p.addr, "/.env").await.status, 403);
    }
    let (code, _, err) = p.cli(&["blacklist", "add", "127.0.93.1"]);
    assert_eq!(code, 0, "{err}");
    let banned = eventually(Duration::from_secs(2), async || get("127.0.93.1", p.addr, "/").await.status == 403).await;
    assert!(banned.is_some(), "a CLI ban was not applied");
    let (code, _, err) = p.cli(&["blacklist", "remove", "127.0.93.1"]);
    assert_eq!(code, 0, "{err}");
    let lifted = eventually(Duration::from_secs(2), async || get("127.0.93.1", p.addr, "/").await.status == 200).await;
    assert!(lifted.is_some(), "a lifted ban still applies");
    let m = api(&p, "GET", "/metrics", None, Some(TOKEN)).await.text();
    let full = metric(&m, "aiwaf_lists_reloads_total{kind=\"full\"}");
    let incremental = metric(&m, "aiwaf_lists_reloads_total{kind=\"incremental\"}");
    assert_eq!(full, 1, "the whole list was read again:\n{m}");
    assert!(incremental >= 2, "{m}");
    // an exemption is another list: read in full
    let (code, _, err) = p.cli(&["exempt", "add", "127.0.94.0/24"]);
    assert_eq!(code, 0, "{err}");
    let full_again = eventually(Duration::from_secs(2), async || {
        let m = api(&p, "GET", "/metrics", None, Some(TOKEN)).await.text();
        metric(&m, "aiwaf_lists_reloads_total{kind=\"full\"}") == 2
    })
    .await;
    assert!(full_again.is_some());
}

/// Issue 12: the learned application profile through the real server — learned from answered
/// requests of several addresses, enforced, shown by the admin API, kept across a restart,
/// forgotten on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_profile_is_enforced_shown_kept_and_forgotten() {
    let up = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let opts = ProxyOpts {
        env: vec![("AIWAF_ADMIN_TOKEN", TOKEN.into())],
        args: vec!["--admin-listen", "127.0.0.1:0"],
        config: Some("[payload.profile]\nmin_samples = 20\nmin_clients = 5\n".into()),
        dir: Some(tmp.path().join("data")),
        ..Default::default()
    };
    let mut p = Proxy::start(&up.url(), opts.clone());
    let ok = Some(TOKEN);
    for k in 0..25u32 {
        let r = get(&format!("127.0.20.{}", k % 5 + 1), p.addr, &format!("/shop/item?id={}&color=red", k + 1)).await;
        assert_eq!(r.status, 200);
    }
    // what is learned is put in force at most a second later
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tampered = "/shop/item?id=7&color=red&debug=true";
    assert_eq!(get("127.0.21.1", p.addr, tampered).await.status, 403);
    assert_eq!(get("127.0.21.2", p.addr, "/shop/item?id=7%2F&color=red").await.status, 403);
    assert_eq!(get("127.0.21.3", p.addr, "/shop/item?id=8&color=blue").await.status, 200);
    let prof = api(&p, "GET", "/api/v1/profile", None, ok).await.json();
    assert_eq!(prof["routes_enforced"], 1, "{prof}");
    let route = &prof["routes"][0];
    assert_eq!((route["route"].as_str(), route["enforced"].as_bool()), (Some("/shop/item"), Some(true)), "{prof}");
    assert!(route["params"].as_array().unwrap().iter().any(|x| x["name"] == "id" && x["enforced"] == true));
    let ev = api(&p, "GET", "/api/v1/events?ip=127.0.21.1", None, ok).await.json();
    assert!(ev.to_string().contains("profile.unknown_param"), "{ev}");

    // kept across a restart (saved when the server stops)
    assert_eq!(p.terminate(), Some(0));
    let mut p = Proxy::start(&up.url(), opts.clone());
    assert_eq!(get("127.0.21.4", p.addr, tampered).await.status, 403);

    // forgotten: passes again
    assert_eq!(api(&p, "DELETE", "/api/v1/profile", None, ok).await.status, 400);
    assert_eq!(api(&p, "DELETE", "/api/v1/profile?route=/shop/item", None, ok).await.status, 204);
    assert_eq!(api(&p, "DELETE", "/api/v1/profile?route=/shop/item", None, ok).await.status, 404);
    assert_eq!(get("127.0.21.5", p.addr, tampered).await.status, 200);
    assert_eq!(api(&p, "GET", "/api/v1/profile", None, None).await.status, 401);
    p.terminate();
}
