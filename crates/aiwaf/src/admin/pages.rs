//! The dashboard: server-rendered pages, inline SVG charts, forms with CSRF tokens.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::{Admin, Job, event_filter, model_json, to};
use crate::views::rfc3339;
use aiwaf_tower::now_ms;

type Params = HashMap<String, String>;

pub(super) fn routes() -> axum::Router<Admin> {
    axum::Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/blacklist", get(blacklist))
        .route("/blacklist/add", post(blacklist_add))
        .route("/blacklist/remove", post(blacklist_remove))
        .route("/exemptions", get(exemptions))
        .route("/exemptions/add", post(exemption_add))
        .route("/exemptions/remove", post(exemption_remove))
        .route("/keywords", get(keywords))
        .route("/keywords/remove", post(keyword_remove))
        .route("/events", get(events))
        .route("/requests", get(requests))
        .route("/model", get(model))
        .route("/model/retrain", post(retrain))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1c2330}\
header{background:#1c2330;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header b{margin-right:20px}main{padding:20px;max-width:1200px}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{border-bottom:1px solid #e3e6eb;padding:6px 8px;text-align:left;font-size:14px;vertical-align:top}\
th{background:#eef1f5}.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;padding:12px 16px;border-radius:6px;min-width:130px}\
.card .n{font-size:24px;font-weight:600}form.inline{display:inline}input,button{padding:5px 8px;margin:2px}\
button{background:#2457c5;color:#fff;border:0;border-radius:4px;cursor:pointer}.danger{background:#b3261e}\
pre{white-space:pre-wrap;margin:0;font-size:12px}.muted{color:#6b7380}.err{color:#b3261e}h2{margin-top:28px}";

fn page(title: &str, csrf: &str, body: &str) -> Response {
    let nav = [
        "/",
        "Overview",
        "/blacklist",
        "Blacklist",
        "/exemptions",
        "Exemptions",
        "/keywords",
        "Keywords",
        "/events",
        "Events",
        "/requests",
        "Requests",
        "/model",
        "Model",
    ];
    let mut links = String::new();
    for pair in nav.chunks(2) {
        let _ = write!(links, "<a href=\"{}\">{}</a>", pair[0], pair[1]);
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>aiwaf · {t}</title><style>{STYLE}</style></head>\
         <body><header><b>aiwaf</b>{links}<form class=\"inline\" method=\"post\" action=\"/logout\" style=\"margin-left:auto\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>Sign out</button></form></header>\
         <main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
    .into_response()
}

/// The session's CSRF token, or a redirect to the sign-in page.
fn signed_in(a: &Admin, h: &HeaderMap) -> Result<String, Response> {
    if a.inner.token.is_none() {
        return Ok(a.inner.loopback_csrf.clone());
    }
    a.session(h).map(|(_, csrf)| csrf).ok_or_else(|| to("/login"))
}

/// Checks the form's CSRF token against the session.
fn checked(a: &Admin, h: &HeaderMap, f: &Params) -> Result<(), Response> {
    let csrf = signed_in(a, h)?;
    if f.get("csrf").is_some_and(|c| super::same(c.as_bytes(), csrf.as_bytes())) {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "invalid or missing CSRF token").into_response())
    }
}

async fn login_page(State(a): State<Admin>, Query(q): Query<Params>) -> Response {
    if a.inner.token.is_none() {
        return to("/");
    }
    let err = if q.contains_key("failed") { "<p class=\"err\">Wrong token.</p>" } else { "" };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>aiwaf · sign in</title><style>{STYLE}</style></head>\
         <body><main><h1>aiwaf</h1>{err}<form method=\"post\" action=\"/login\"><label>Admin token \
         <input type=\"password\" name=\"token\" autofocus></label> <button>Sign in</button></form></main></body></html>"
    ))
    .into_response()
}

async fn login(State(a): State<Admin>, Form(f): Form<Params>) -> Response {
    let token = f.get("token").map(String::as_str).unwrap_or("");
    if token.is_empty() || !a.token_ok(token) {
        return to("/login?failed=1");
    }
    let id = match a.new_session() {
        Ok(id) => id,
        Err(e) => return super::internal(format!("no randomness for a session: {e}")),
    };
    let mut r = to("/");
    let cookie = format!("aiwaf_session={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    if let Some((id, _)) = a.session(&h) {
        a.end_session(&id);
    }
    let mut r = to("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("aiwaf_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

const COLORS: &[&str] =
    &["#2457c5", "#d9822b", "#b3261e", "#2e8b57", "#7b3fb5", "#0f8b8d", "#9a6b00", "#c2185b", "#455a64", "#6d4c41"];

/// Blocks per hour over the last 24 hours, stacked by detector, as inline SVG.
fn chart(events: &[aiwaf_store::EventRow], now: i64) -> String {
    let hour = 3_600_000i64;
    let start = now - 24 * hour;
    let mut buckets: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); 24];
    for e in events {
        if e.ts >= start {
            let i = (((e.ts - start) / hour) as usize).min(23);
            *buckets[i].entry(e.detector.clone()).or_default() += 1;
        }
    }
    let detectors: Vec<String> = {
        let mut d: Vec<String> = buckets.iter().flat_map(|b| b.keys().cloned()).collect();
        d.sort();
        d.dedup();
        d
    };
    let max = buckets.iter().map(|b| b.values().sum::<u64>()).max().unwrap_or(0).max(1);
    let (w, h, bw) = (960.0, 220.0, 36.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"blocks per hour\" style=\"background:#fff\">",
        h + 40.0
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = 20.0 + i as f64 * (bw + 4.0);
        let mut y = h;
        for (k, d) in detectors.iter().enumerate() {
            let n = b.get(d).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max as f64 * (h - 20.0);
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {n}</title></rect>",
                COLORS[k % COLORS.len()],
                i,
                esc(d)
            );
        }
        if i % 3 == 0 {
            let _ =
                write!(svg, "<text x=\"{x}\" y=\"{}\" font-size=\"11\" fill=\"#6b7380\">-{}h</text>", h + 14.0, 24 - i);
        }
    }
    for (k, d) in detectors.iter().enumerate() {
        let x = 20.0 + k as f64 * 130.0;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            h + 24.0,
            COLORS[k % COLORS.len()],
            x + 14.0,
            h + 33.0,
            esc(d)
        );
    }
    let _ = write!(svg, "<text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"#6b7380\">max {max}/h</text></svg>", w - 90.0);
    svg
}

async fn overview(State(a): State<Admin>, h: HeaderMap) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let stats = a.stats().await.unwrap_or_default();
    let now = now_ms() as i64;
    let f = aiwaf_store::EventFilter { since: Some(now - 24 * 3_600_000), limit: 10_000, ..Default::default() };
    let events = a.inner.store.events(&f).await.unwrap_or_default();
    let mut body = String::from("<div class=\"cards\">");
    for (k, label) in [
        ("requests", "requests"),
        ("blocked", "blocked (403)"),
        ("rate_limited", "rate limited (429)"),
        ("bans", "bans"),
        ("would_block", "would-block (detect)"),
        ("clients_tracked", "clients tracked"),
    ] {
        let _ = write!(
            body,
            "<div class=\"card\"><div class=\"n\">{}</div><div class=\"muted\">{label}</div></div>",
            stats[k]
        );
    }
    let _ = write!(
        body,
        "<div class=\"card\"><div class=\"n\">{}</div><div class=\"muted\">active bans</div></div></div>",
        stats["counts"]["active_bans"]
    );
    let _ = write!(body, "<h2>Blocks in the last 24 hours, by detector</h2>{}", chart(&events, now));
    body.push_str("<h2>Findings since start, by detector</h2><table><tr><th>detector</th><th>count</th></tr>");
    if let Some(m) = stats["findings_by_detector"].as_object() {
        for (d, n) in m {
            let _ = write!(body, "<tr><td>{}</td><td>{n}</td></tr>", esc(d));
        }
    }
    let _ = write!(
        body,
        "</table><p class=\"muted\">mode {} · storage {} · shared state {} · model {}</p>",
        stats["mode"].as_str().unwrap_or(""),
        stats["store"]["backend"].as_str().unwrap_or(""),
        stats["shared_state"].as_str().unwrap_or("local"),
        if stats["model_loaded"].as_bool().unwrap_or(false) { "loaded" } else { "none" }
    );
    page("Overview", &csrf, &body)
}

fn hidden(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

async fn blacklist(State(a): State<Admin>, h: HeaderMap, Query(q): Query<Params>) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = now_ms();
    let rows = a.inner.store.blacklist(false, now).await.unwrap_or_default();
    let search = q.get("q").cloned().unwrap_or_default();
    let mut body = format!(
        "<form method=\"post\" action=\"/blacklist/add\">{}<input name=\"ip\" placeholder=\"IP address\" required>\
         <input name=\"reason\" placeholder=\"reason\"><input name=\"ttl\" placeholder=\"ttl e.g. 24h (empty: permanent)\">\
         <button>Ban</button></form><form method=\"get\" action=\"/blacklist\"><input name=\"q\" value=\"{}\" placeholder=\"search\">\
         <button>Search</button></form>",
        hidden(&csrf),
        esc(&search)
    );
    if let Some(e) = q.get("error") {
        let _ = write!(body, "<p class=\"err\">{}</p>", esc(e));
    }
    body.push_str(
        "<table><tr><th>IP</th><th>detector</th><th>reason</th><th>expires</th><th>offences</th><th></th></tr>",
    );
    for r in rows.iter().filter(|r| search.is_empty() || r.ip.contains(&search) || r.reason.contains(&search)) {
        let _ = write!(
            body,
            "<tr><td>{ip}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/blacklist/remove\">{}\
             <input type=\"hidden\" name=\"ip\" value=\"{ip}\"><button class=\"danger\">Unban</button></form></td></tr>",
            esc(&r.detector),
            esc(&r.reason),
            r.expires_at.map_or("permanent".into(), rfc3339),
            r.offences,
            hidden(&csrf),
            ip = esc(&r.ip)
        );
    }
    body.push_str("</table>");
    page("Blacklist", &csrf, &body)
}

async fn blacklist_add(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    let fail = |m: &str| to(&format!("/blacklist?error={}", url_escape(m)));
    let Ok(ip) = f.get("ip").map(|s| s.trim()).unwrap_or("").parse::<std::net::IpAddr>() else {
        return fail("not an IP address");
    };
    let now = now_ms();
    let expires = match f.get("ttl").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) => Some(now + d.as_millis() as u64),
            Err(_) => return fail("ttl is not a duration"),
        },
        None => None,
    };
    let reason = f.get("reason").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("Manual ban (dashboard)");
    match a.inner.store.add_ban(ip, reason, expires, now).await {
        Ok(()) => to("/blacklist"),
        Err(e) => fail(&e.to_string()),
    }
}

async fn blacklist_remove(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    if let Some(ip) = f.get("ip").and_then(|s| s.parse().ok()) {
        let _ = a.inner.store.remove_ban(ip, now_ms()).await;
    }
    to("/blacklist")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn exemptions(State(a): State<Admin>, h: HeaderMap, Query(q): Query<Params>) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let rows = a.inner.store.exemptions().await.unwrap_or_default();
    let search = q.get("q").cloned().unwrap_or_default();
    let mut body = format!(
        "<form method=\"post\" action=\"/exemptions/add\">{}<input name=\"ip\" placeholder=\"IP or CIDR\" required>\
         <input name=\"reason\" placeholder=\"reason\"><button>Exempt</button></form>\
         <form method=\"get\" action=\"/exemptions\"><input name=\"q\" value=\"{}\" placeholder=\"search\"><button>Search</button></form>",
        hidden(&csrf),
        esc(&search)
    );
    if let Some(e) = q.get("error") {
        let _ = write!(body, "<p class=\"err\">{}</p>", esc(e));
    }
    body.push_str("<table id=\"exemptions\"><tr><th>IP / CIDR</th><th>reason</th><th>created</th><th></th></tr>");
    for r in rows.iter().filter(|r| search.is_empty() || r.net.contains(&search) || r.reason.contains(&search)) {
        let _ = write!(
            body,
            "<tr><td>{net}</td><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/exemptions/remove\">{}\
             <input type=\"hidden\" name=\"ip\" value=\"{net}\"><button class=\"danger\">Remove</button></form></td></tr>",
            esc(&r.reason),
            rfc3339(r.created_at),
            hidden(&csrf),
            net = esc(&r.net)
        );
    }
    body.push_str("</table>");
    for n in &a.inner.config.exempt_ips {
        let _ = write!(body, "<p class=\"muted\">{} (from configuration)</p>", esc(&n.to_string()));
    }
    page("Exemptions", &csrf, &body)
}

async fn exemption_add(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    let net = match aiwaf_engine::ip::parse_net(f.get("ip").map(String::as_str).unwrap_or("")) {
        Ok(n) => n,
        Err(e) => return to(&format!("/exemptions?error={}", url_escape(&e))),
    };
    let reason = f.get("reason").map(|s| s.trim()).unwrap_or("");
    match a.inner.store.add_exemption(net, reason, now_ms()).await {
        Ok(_) => to("/exemptions"),
        Err(e) => to(&format!("/exemptions?error={}", url_escape(&e.to_string()))),
    }
}

async fn exemption_remove(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    if let Ok(n) = aiwaf_engine::ip::parse_net(f.get("ip").map(String::as_str).unwrap_or("")) {
        let _ = a.inner.store.remove_exemption(n).await;
    }
    to("/exemptions")
}

async fn keywords(State(a): State<Admin>, h: HeaderMap) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let rows = a.inner.store.keywords().await.unwrap_or_default();
    let top = a.inner.config.engine.dynamic_top_n;
    let mut body = String::from("<table><tr><th>keyword</th><th>count</th><th>in force</th><th></th></tr>");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            body,
            "<tr><td>{k}</td><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/keywords/remove\">{}\
             <input type=\"hidden\" name=\"word\" value=\"{k}\"><button class=\"danger\">Forget</button></form></td></tr>",
            r.count,
            if i < top { "yes" } else { "no" },
            hidden(&csrf),
            k = esc(&r.keyword)
        );
    }
    body.push_str("</table>");
    page("Learned keywords", &csrf, &body)
}

async fn keyword_remove(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    if let Some(w) = f.get("word") {
        let _ = a.inner.store.remove_keyword(w).await;
    }
    to("/keywords")
}

async fn events(State(a): State<Admin>, h: HeaderMap, Query(q): Query<Params>) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/events\"><input name=\"ip\" value=\"{}\" placeholder=\"IP\">\
         <input name=\"detector\" value=\"{}\" placeholder=\"detector\"><input name=\"request_id\" value=\"{}\" placeholder=\"request id\">\
         <input name=\"since\" value=\"{}\" placeholder=\"since e.g. 1h\"><button>Filter</button></form>",
        esc(q.get("ip").map(String::as_str).unwrap_or("")),
        esc(q.get("detector").map(String::as_str).unwrap_or("")),
        esc(q.get("request_id").map(String::as_str).unwrap_or("")),
        esc(q.get("since").map(String::as_str).unwrap_or("")),
    );
    let mut q2 = q.clone();
    q2.entry("limit".into()).or_insert_with(|| "200".into());
    let rows = match event_filter(&q2) {
        Ok(f) => a.inner.store.events(&f).await.unwrap_or_default(),
        Err(_) => {
            body.push_str("<p class=\"err\">Invalid filter.</p>");
            Vec::new()
        }
    };
    body.push_str("<table id=\"events\"><tr><th>time</th><th>client</th><th>action</th><th>detector</th><th>request</th><th>why</th></tr>");
    for e in &rows {
        let evidence = serde_json::to_string_pretty(&crate::views::readable_times(&e.evidence)).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}<br><span class=\"muted\">{}</span></td>\
             <td>{}<details><summary>evidence</summary><pre>{}</pre></details></td></tr>",
            rfc3339(e.ts),
            esc(&e.ip),
            esc(&e.action),
            esc(&e.detector),
            esc(&e.method),
            esc(&e.path),
            esc(&e.request_id),
            esc(&e.reason),
            esc(&evidence)
        );
    }
    body.push_str("</table>");
    page("Events", &csrf, &body)
}

async fn requests(State(a): State<Admin>, h: HeaderMap, Query(q): Query<Params>) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ip = q.get("ip").filter(|s| !s.is_empty());
    let path = q.get("path").filter(|s| !s.is_empty());
    let mut body = format!(
        "<form method=\"get\" action=\"/requests\"><input name=\"ip\" value=\"{}\" placeholder=\"IP\">\
         <input name=\"path\" value=\"{}\" placeholder=\"path contains\"><button>Search</button></form>",
        esc(ip.map(String::as_str).unwrap_or("")),
        esc(path.map(String::as_str).unwrap_or(""))
    );
    let rows = a.inner.store.requests(ip.map(String::as_str), path.map(String::as_str), 200).await.unwrap_or_default();
    if rows.is_empty() {
        body.push_str("<p class=\"muted\">No logged requests (turn the request log on with <code>aiwaf logging enable</code>).</p>");
    }
    body.push_str(
        "<table><tr><th>time</th><th>client</th><th>request</th><th>status</th><th>ms</th><th>agent</th></tr>",
    );
    for (ts, ip, m, p, qs, status, ms, ua, blocked) in &rows {
        let target = if qs.is_empty() { p.clone() } else { format!("{p}?{qs}") };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}{}</td><td>{:.1}</td><td class=\"muted\">{}</td></tr>",
            rfc3339(*ts),
            esc(ip),
            esc(m),
            esc(&target),
            status,
            if *blocked { " (aiwaf)" } else { "" },
            ms,
            esc(ua)
        );
    }
    body.push_str("</table>");
    page("Request log", &csrf, &body)
}

async fn model(State(a): State<Admin>, h: HeaderMap, Query(q): Query<Params>) -> Response {
    let csrf = match signed_in(&a, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut body = match model_json(&a) {
        Some(m) => format!("<pre>{}</pre>", esc(&serde_json::to_string_pretty(&m).unwrap_or_default())),
        None => "<p>No model loaded: anomaly scoring is off.</p>".into(),
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/model/retrain\">{}<button>Retrain now</button></form>",
        hidden(&csrf)
    );
    if let Some(id) = q.get("job").and_then(|j| j.parse::<u64>().ok()) {
        match a.job(id) {
            Some(Job::Running { .. }) => {
                let _ = write!(body, "<p>Training run {id} is running. Reload this page to follow it.</p>");
            }
            Some(Job::Done { report, .. }) => {
                let _ = write!(body, "<p>Training run {id} finished: {}</p>", esc(&crate::train::summary(&report)));
            }
            Some(Job::Failed { error, .. }) => {
                let _ = write!(body, "<p class=\"err\">Training run {id} failed: {}</p>", esc(&error));
            }
            None => {}
        }
    }
    page("Anomaly model", &csrf, &body)
}

async fn retrain(State(a): State<Admin>, h: HeaderMap, Form(f): Form<Params>) -> Response {
    if let Err(r) = checked(&a, &h, &f) {
        return r;
    }
    let id = a.start_training();
    to(&format!("/model?job={id}"))
}
