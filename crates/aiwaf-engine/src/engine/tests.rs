//! Engine behaviour, one detector at a time, with time as a parameter.

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use crate::ip::parse_net;
use crate::state::Lists;

const T0: u64 = 1_700_000_000_000;

fn engine(f: impl FnOnce(&mut EngineConfig)) -> (Engine, WafState) {
    let mut c = EngineConfig::default();
    f(&mut c);
    let state = WafState::new(&c);
    (Engine::new(c, IpSet::default()).unwrap(), state)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn get<'a>(client: &str, path: &'a str) -> RequestInfo<'a> {
    RequestInfo {
        client: ip(client),
        method: "GET",
        path,
        content_type: None,
        accept: Some("text/html"),
        sec_fetch_dest: None,
        referer: None,
        query: None,
        headers: &[],
        host: Some("app.test"),
    }
}

fn post_form(client: &str, path: &'static str) -> RequestInfo<'static> {
    RequestInfo {
        client: client.parse().unwrap(),
        method: "POST",
        path,
        content_type: Some("application/x-www-form-urlencoded"),
        accept: None,
        sec_fetch_dest: None,
        referer: None,
        query: None,
        headers: &[],
        host: Some("app.test"),
    }
}

fn detector(i: &Inspection) -> Option<Detector> {
    i.verdict.finding.as_ref().map(|f| f.detector)
}

#[test]
fn rate_limit_follows_the_seed_sequence() {
    let (e, s) = engine(|_| {});
    for n in 1..=20 {
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/page"), T0 + n * 10);
        assert!(i.verdict.is_allow(), "request {n}");
    }
    for n in 21..=40 {
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/page"), T0 + n * 10);
        assert!(matches!(i.verdict.action, Action::RateLimit { retry_after_s: 10 }), "request {n}");
    }
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/page"), T0 + 410);
    assert_eq!(detector(&i), Some(Detector::Flood));
    let ban = i.verdict.ban.expect("flood bans");
    assert_eq!(ban.expires_at, Some(T0 + 410 + 15 * 60 * 1000));
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/page"), T0 + 500);
    assert_eq!(detector(&i), Some(Detector::Blacklist));
    // Another client is unaffected.
    assert!(e.inspect(&s, Mode::Block, &get("10.0.0.2", "/page"), T0 + 500).verdict.is_allow());
}

#[test]
fn rate_window_slides() {
    let (e, s) = engine(|c| c.rate_max = 2);
    for t in [0, 100, 200] {
        e.inspect(&s, Mode::Block, &get("10.0.0.1", "/"), T0 + t);
    }
    // The first two requests leave the window at 10.0 s and 10.1 s.
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/"), T0 + 10_050);
    assert!(matches!(i.verdict.action, Action::RateLimit { .. }));
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/"), T0 + 20_000);
    assert!(i.verdict.is_allow());
}

#[test]
fn ban_ladder_escalates_and_expires() {
    let (e, s) = engine(|c| {
        c.ban_durations = vec![Some(1000), Some(5000), None];
    });
    let probe = |t: u64| e.inspect(&s, Mode::Block, &get("10.0.0.9", "/.env"), t);
    let b1 = probe(T0).verdict.ban.unwrap();
    assert_eq!((b1.offences, b1.expires_at), (1, Some(T0 + 1000)));
    assert_eq!(detector(&probe(T0 + 500)), Some(Detector::Blacklist));
    let b2 = probe(T0 + 1000).verdict.ban.unwrap();
    assert_eq!((b2.offences, b2.expires_at), (2, Some(T0 + 6000)));
    let b3 = probe(T0 + 6000).verdict.ban.unwrap();
    assert_eq!((b3.offences, b3.expires_at), (3, None));
    assert_eq!(detector(&probe(T0 + 10_000_000)), Some(Detector::Blacklist));
}

#[test]
fn detect_mode_reports_but_enforces_nothing() {
    let (e, s) = engine(|_| {});
    let i = e.inspect(&s, Mode::Detect, &get("10.0.0.1", "/.env"), T0);
    assert_eq!(detector(&i), Some(Detector::Keyword));
    assert!(i.verdict.ban.is_none());
    assert_eq!(s.pending_bans(), 0);
    assert!(e.inspect(&s, Mode::Detect, &get("10.0.0.1", "/ok"), T0 + 1).verdict.is_allow());
}

#[test]
fn exempt_ips_and_paths_bypass_detectors() {
    let (e, s) = engine(|c| c.exempt_paths = vec!["/Health".into()]);
    let lists = Lists::new(
        &EngineConfig::default(),
        IpSet::new([parse_net("192.168.0.0/16").unwrap(), parse_net("2001:db8::/32").unwrap()]),
        HashMap::new(),
        vec![],
    );
    s.install_lists(lists, 0, T0);
    for t in 0..100 {
        assert!(e.inspect(&s, Mode::Block, &get("192.168.4.4", "/.env"), T0 + t).verdict.is_allow());
        assert!(e.inspect(&s, Mode::Block, &get("2001:db8::1", "/x.php"), T0 + t).verdict.is_allow());
        assert!(e.inspect(&s, Mode::Block, &get("10.1.1.1", "/health/x.php"), T0 + t).verdict.is_allow());
        assert!(e.inspect(&s, Mode::Block, &get("10.1.1.2", "/admin/.env"), T0 + t).verdict.is_allow());
    }
    // Segment boundary: /healthz is not exempt.
    let i = e.inspect(&s, Mode::Block, &get("10.1.1.3", "/healthz/x.php"), T0);
    assert_eq!(detector(&i), Some(Detector::Keyword));
    // Dot-segments cannot borrow an exemption.
    let i = e.inspect(&s, Mode::Block, &get("10.1.1.4", "/admin/../.env"), T0);
    assert_eq!(detector(&i), Some(Detector::Keyword));
}

#[test]
fn keywords_skip_paths_the_upstream_serves() {
    let (e, s) = engine(|_| {});
    let lists = Lists::new(&EngineConfig::default(), IpSet::default(), HashMap::new(), vec!["profile".into()]);
    s.install_lists(lists, 0, T0);
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/en/profile/"), T0);
    assert_eq!(detector(&i), Some(Detector::Keyword));
    // Once the upstream has served the page, nobody is blocked on it.
    let ctx = e.inspect(&s, Mode::Block, &get("10.0.0.2", "/ok"), T0).context;
    let ctx = RequestContext { path: crate::path::NormalizedPath::new("/en/profile/"), ..ctx };
    assert!(e.observe(&s, Mode::Block, &ctx, 200, 0.01, T0).new_known_path);
    assert!(e.inspect(&s, Mode::Block, &get("10.0.0.3", "/en/profile/"), T0).verdict.is_allow());
    assert!(e.inspect(&s, Mode::Block, &get("10.0.0.3", "/en/Profile/index"), T0).verdict.ban.is_some());
}

/// Makes `path` a page the upstream served as HTML.
fn serve_page(e: &Engine, s: &WafState, path: &str) {
    let ctx = e.context(s, ip("10.255.0.1"), path);
    e.note_html_page(s, &ctx);
}

fn post_from(client: &str, path: &'static str, referer: &'static str) -> RequestInfo<'static> {
    RequestInfo { referer: Some(referer), ..post_form(client, path) }
}

fn signal(i: &Inspection) -> bool {
    i.verdict.is_allow() && detector(i) == Some(Detector::Honeypot)
}

#[test]
fn honeypot_rules() {
    let (e, s) = engine(|_| {});
    serve_page(&e, &s, "/contact/");
    // One form POST with no GET is a signal, not a ban; five are a ban.
    for n in 1..=4 {
        assert!(signal(&e.inspect(&s, Mode::Block, &post_form("10.0.0.1", "/contact/"), T0 + n)), "{n}");
    }
    let i = e.inspect(&s, Mode::Block, &post_form("10.0.0.1", "/contact/"), T0 + 5);
    assert_eq!(detector(&i), Some(Detector::Honeypot));
    assert!(i.verdict.ban.is_some());
    // GET then POST too fast: a signal.
    e.inspect(&s, Mode::Block, &get("10.0.0.2", "/contact/"), T0);
    assert!(signal(&e.inspect(&s, Mode::Block, &post_form("10.0.0.2", "/contact/"), T0 + 300)));
    // A human: GET, read for 5 s, POST; XHR polling in between does not reset the clock.
    e.inspect(&s, Mode::Block, &get("10.0.0.3", "/contact/"), T0);
    let poll = RequestInfo { accept: Some("application/json"), ..get("10.0.0.3", "/api/poll") };
    e.inspect(&s, Mode::Block, &poll, T0 + 4800);
    let i = e.inspect(&s, Mode::Block, &post_form("10.0.0.3", "/contact/"), T0 + 5000);
    assert!(i.verdict.is_allow() && i.verdict.finding.is_none());
    // A form kept open for 20 minutes is still fine (the seed banned after 300 s).
    e.inspect(&s, Mode::Block, &get("10.0.0.4", "/contact/"), T0);
    let i = e.inspect(&s, Mode::Block, &post_form("10.0.0.4", "/contact/"), T0 + 1_200_000);
    assert!(i.verdict.finding.is_none());
    // JSON API posts are not form posts.
    let api = RequestInfo { content_type: Some("application/json"), ..post_form("10.0.0.5", "/api/items") };
    assert!(e.inspect(&s, Mode::Block, &api, T0).verdict.finding.is_none());
    // After form_memory the GET is forgotten: a signal again.
    e.inspect(&s, Mode::Block, &get("10.0.0.6", "/contact/"), T0);
    assert!(signal(&e.inspect(&s, Mode::Block, &post_form("10.0.0.6", "/contact/"), T0 + 3_600_001)));
}

/// Issue 11: webhooks and logout endpoints never answered a GET with a page, so there is no
/// form to time; the timer is per page, so people behind one address keep their own.
#[test]
fn honeypot_times_pages_not_addresses() {
    let (e, s) = engine(|_| {});
    serve_page(&e, &s, "/contact/");
    serve_page(&e, &s, "/blog/");
    // A webhook: urlencoded POSTs to an endpoint never served as a page, retried fast.
    for n in 0..20 {
        let i = e.inspect(&s, Mode::Block, &post_form("10.1.0.1", "/paypal/ipn"), T0 + n * 100);
        assert!(i.verdict.finding.is_none(), "webhook post {n}");
    }
    // Office NAT: Alice opens the contact form (and its 20 assets); Bob opens it 6.6 s later;
    // Alice sends at 7 s.
    e.inspect(&s, Mode::Block, &get("10.1.0.2", "/contact/"), T0);
    for k in 0..20 {
        e.inspect(&s, Mode::Block, &get("10.1.0.2", &format!("/static/c{k}.css")), T0 + k);
    }
    e.inspect(&s, Mode::Block, &get("10.1.0.2", "/contact/"), T0 + 6600);
    let i = e.inspect(&s, Mode::Block, &post_from("10.1.0.2", "/contact/send", "http://app.test/contact/"), T0 + 7000);
    assert!(i.verdict.finding.is_none(), "Alice is timed from her own GET: {:?}", i.verdict.finding);
    // Bob sends 10 s later: his own GET is still there.
    let i = e.inspect(&s, Mode::Block, &post_from("10.1.0.2", "/contact/send", "/contact/"), T0 + 17_000);
    assert!(i.verdict.finding.is_none());
    // Someone opening another page just before does not shorten anyone's timer.
    e.inspect(&s, Mode::Block, &get("10.1.0.3", "/contact/"), T0);
    e.inspect(&s, Mode::Block, &get("10.1.0.3", "/blog/"), T0 + 6600);
    let i = e.inspect(&s, Mode::Block, &post_from("10.1.0.3", "/contact/", "https://app.test/contact/?x=1"), T0 + 7000);
    assert!(i.verdict.finding.is_none());
    // A cross-site Referer is not this site's page: the POST target is timed instead.
    let i = e.inspect(&s, Mode::Block, &post_from("10.1.0.4", "/contact/", "https://evil.example/contact/"), T0);
    assert!(signal(&i));
    // A form bot posting again and again without GETs is banned on its fifth post.
    let bans: Vec<bool> = (0..6)
        .map(|n| e.inspect(&s, Mode::Block, &post_form("10.1.0.9", "/contact/"), T0 + n * 200).verdict.ban.is_some())
        .collect();
    assert_eq!(bans, [false, false, false, false, true, false]);
}

fn observe_n(e: &Engine, s: &WafState, client: &str, path: &str, status: u16, n: u64, t0: u64) -> Vec<Observation> {
    (0..n)
        .map(|k| {
            let i = e.inspect(s, Mode::Block, &get(client, path), t0 + k * 100);
            e.observe(s, Mode::Block, &i.context, status, 0.01, t0 + k * 100)
        })
        .collect()
}

#[test]
fn not_found_flood_bans_on_the_sixth() {
    let (e, s) = engine(|_| {});
    let paths = ["/a", "/b", "/c", "/d", "/e", "/f"];
    for (k, p) in paths.iter().enumerate() {
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", p), T0 + k as u64 * 1000);
        let o = e.observe(&s, Mode::Block, &i.context, 404, 0.01, T0 + k as u64 * 1000);
        assert_eq!(o.ban.is_some(), k == 5, "404 number {}", k + 1);
        if k == 5 {
            assert_eq!(o.finding.unwrap().detector, Detector::NotFoundFlood);
        }
    }
    // Browser auto-requests never count (seven favicon misses from one office address).
    let (e, s) = engine(|_| {});
    for k in 0..7u64 {
        let p = if k % 2 == 0 { "/favicon.ico" } else { "/apple-touch-icon-precomposed.png" };
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.9", p), T0 + k * 100);
        assert!(e.observe(&s, Mode::Block, &i.context, 404, 0.01, T0 + k * 100).ban.is_none());
    }
    // Spread over more than the window: no ban.
    let (e, s) = engine(|_| {});
    for k in 0..10u64 {
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.2", "/gone"), T0 + k * 15_000);
        assert!(e.observe(&s, Mode::Block, &i.context, 404, 0.01, T0 + k * 15_000).ban.is_none());
    }
}

#[test]
fn extension_probing_bans_on_the_third() {
    let (e, s) = engine(|c| c.static_keywords.clear());
    let obs: Vec<Observation> = ["/setup.asp", "/admin.asp", "/login.asp"]
        .iter()
        .enumerate()
        .map(|(k, p)| observe_n(&e, &s, "10.0.0.1", p, 404, 1, T0 + k as u64 * 100).remove(0))
        .collect();
    assert!(obs[0].ban.is_none() && obs[1].ban.is_none());
    assert_eq!(obs[2].finding.as_ref().unwrap().detector, Detector::ExtensionProbe);
    // The same missing page asked for again and again is one probe, not many.
    let obs = observe_n(&e, &s, "10.0.0.3", "/setup.asp", 404, 5, T0);
    assert!(obs.iter().all(|o| o.ban.is_none()));
    // 404s on other paths do not count as probes.
    let obs = observe_n(&e, &s, "10.0.0.2", "/missing.html", 404, 3, T0);
    assert!(obs.iter().all(|o| o.ban.is_none()));
}

#[test]
fn uuid_tamper_scores() {
    let (e, s) = engine(|_| {});
    let good = "/items/550e8400-e29b-41d4-a716-446655440000";
    // A real UUID served many times never counts.
    assert!(observe_n(&e, &s, "10.0.0.1", good, 200, 15, T0).iter().all(|o| o.ban.is_none()));
    // Four misses are tolerated, the fifth bans.
    let obs = observe_n(&e, &s, "10.0.0.2", good, 404, 5, T0);
    assert!(obs[..4].iter().all(|o| o.ban.is_none()));
    assert_eq!(obs[4].finding.as_ref().unwrap().detector, Detector::UuidTamper);
    // One malformed UUID is a typo, not a ban (issue 11); three within the window are tampering.
    let obs = observe_n(&e, &s, "10.0.0.3", "/items/550e8400-e29b-41d4-a716-4466554400zz", 404, 3, T0);
    assert!(obs[0].ban.is_none() && obs[1].ban.is_none());
    assert_eq!(obs[2].finding.as_ref().unwrap().detector, Detector::UuidTamper);
    // A pasted link that kept its closing parenthesis is the UUID itself, not a malformed one.
    let obs = observe_n(&e, &s, "10.0.0.5", "/items/550e8400-e29b-41d4-a716-446655440001)", 404, 1, T0);
    assert!(obs[0].ban.is_none());
    assert_eq!(crate::path::uuid_shape("/items/550e8400-e29b-41d4-a716-446655440001)"), UuidShape::Valid);
    // Successes decay the score: miss, hit, miss, hit... never bans (5 misses stay under the
    // 404-flood threshold of 6).
    let (e, s) = engine(|_| {});
    for k in 0..10u64 {
        let status = if k % 2 == 0 { 404 } else { 200 };
        assert!(observe_n(&e, &s, "10.0.0.4", good, status, 1, T0 + k * 100)[0].ban.is_none());
    }
}

#[test]
fn stored_bans_block_and_unban_takes_effect() {
    let (e, s) = engine(|_| {});
    let mut bans = HashMap::new();
    bans.insert(
        ip("10.0.0.7"),
        BanState { reason: "manual".into(), detector: "manual".into(), created_at: T0, expires_at: None, offences: 1 },
    );
    s.install_lists(Lists::new(e.config(), IpSet::default(), bans, vec![]), 0, T0);
    assert_eq!(detector(&e.inspect(&s, Mode::Block, &get("10.0.0.7", "/"), T0)), Some(Detector::Blacklist));
    // A local ban, then a snapshot that holds it, then an unban (a snapshot without it).
    let b = e.inspect(&s, Mode::Block, &get("10.0.0.8", "/.git/config"), T0).verdict.ban.unwrap();
    assert_eq!(s.pending_bans(), 1);
    s.install_lists(Lists::empty(e.config()), b.seq - 1, T0 + 10);
    assert_eq!(detector(&e.inspect(&s, Mode::Block, &get("10.0.0.8", "/"), T0 + 20)), Some(Detector::Blacklist));
    s.install_lists(Lists::empty(e.config()), b.seq, T0 + 30);
    assert!(e.inspect(&s, Mode::Block, &get("10.0.0.8", "/"), T0 + 40).verdict.is_allow());
    assert!(e.inspect(&s, Mode::Block, &get("10.0.0.7", "/"), T0 + 40).verdict.is_allow());
}

#[test]
fn client_table_is_bounded() {
    let (e, s) = engine(|c| c.client_capacity = 1000);
    for k in 0..20_000u32 {
        let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + k));
        let req = RequestInfo { client: addr, ..get("10.0.0.1", "/") };
        e.inspect(&s, Mode::Block, &req, T0 + k as u64);
    }
    assert!(s.client_count() <= 1100, "{} clients kept", s.client_count());
}

fn benign_model() -> std::sync::Arc<crate::Model> {
    let rows: Vec<Vec<f64>> = (0..3000u64)
        .map(|k| {
            let r = (k * 2_654_435_761) % 1000;
            vec![
                5.0 + (r % 25) as f64,
                0.0,
                0.01 + (r % 30) as f64 / 100.0,
                if r % 10 == 0 { -1.0 } else { 0.0 },
                (r % 6) as f64,
                if r % 50 == 0 { 1.0 } else { 0.0 },
            ]
        })
        .collect();
    let forest = aiwaf_forest::Forest::fit(&rows, &aiwaf_forest::Params::default()).unwrap();
    let info = crate::model::TrainingInfo {
        trained_at: T0,
        sources: vec!["test".into()],
        rows_used: rows.len() as u64,
        clients: 1,
        contamination: 0.05,
        seed: 42,
        fitted_rows: rows.len() as u64,
        score_quantiles: Default::default(),
    };
    std::sync::Arc::new(crate::Model::new(forest, info))
}

#[test]
fn anomaly_model_bans_with_attack_signs_only() {
    let (e, s) = engine(|c| c.not_found_threshold = 1000);
    s.set_model(Some(benign_model()));
    // A scanner: long unknown paths, one 404 after another.
    let mut banned_at = None;
    for k in 0..10u64 {
        let path = format!("/some/very/long/probe/path/number/{k}/that/does/not/exist");
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", &path), T0 + k * 200);
        if !i.verdict.is_allow() {
            break;
        }
        let o = e.observe(&s, Mode::Block, &i.context, 404, 0.005, T0 + k * 200);
        // Scored once attack signs show (the third 404 on).
        assert_eq!(o.score.is_some(), k >= 2);
        if let Some(f) = o.finding {
            assert_eq!(f.detector, Detector::Anomaly);
            assert!(f.evidence["features"]["total_404"].as_f64().unwrap() >= 3.0);
            banned_at = Some(k);
            break;
        }
    }
    // Attack signs start at the third 404; three anomalous requests with signs ban, before the
    // sixth 404 (when the 404-flood detector would have).
    assert!(banned_at.is_some_and(|k| (4..=5).contains(&k)), "{banned_at:?}");
    // A slow, long page that the model finds odd but that shows no attack sign is never banned
    // (the seed's bundled model banned any request slower than 5.64 s).
    for k in 0..20u64 {
        let i = e.inspect(
            &s,
            Mode::Block,
            &get("10.0.0.2", "/reports/annual/2025/full-export-with-all-the-details"),
            T0 + k * 3000,
        );
        let o = e.observe(&s, Mode::Block, &i.context, 200, 12.0, T0 + k * 3000);
        assert!(o.ban.is_none());
    }
}

/// Issue 10: IPv6 clients were keyed per /128, so anyone holding a /64 had 2^64 fresh
/// identities. Windows and bans are now per prefix (default /64); exemptions keep their CIDRs.
#[test]
fn ipv6_clients_share_limits_and_bans_per_prefix() {
    let (e, s) = engine(|c| c.rate_max = 5);
    for n in 0..5u64 {
        let addr = format!("2001:db8:7:1::{:x}", n + 1);
        assert!(e.inspect(&s, Mode::Block, &get(&addr, "/page"), T0 + n).verdict.is_allow());
    }
    let i = e.inspect(&s, Mode::Block, &get("2001:db8:7:1:ffff::9", "/page"), T0 + 10);
    assert!(matches!(i.verdict.action, Action::RateLimit { .. }), "a sixth address in the /64 is over the limit");
    assert!(e.inspect(&s, Mode::Block, &get("2001:db8:7:2::1", "/page"), T0 + 11).verdict.is_allow());
    // A ban reaches the whole prefix.
    let i = e.inspect(&s, Mode::Block, &get("2001:db8:9:1::1", "/.env"), T0 + 20);
    assert_eq!(i.verdict.ban.as_ref().map(|b| b.ip), Some(ip("2001:db8:9:1::")));
    let i = e.inspect(&s, Mode::Block, &get("2001:db8:9:1::abcd", "/"), T0 + 30);
    assert_eq!(detector(&i), Some(Detector::Blacklist));
    // An operator's ban on one address of a prefix holds for that address only.
    s.add_pending_ban(
        ip("2001:db8:5::7"),
        crate::state::BanState {
            reason: "manual".into(),
            detector: "manual".into(),
            created_at: T0,
            expires_at: None,
            offences: 1,
        },
    );
    assert_eq!(detector(&e.inspect(&s, Mode::Block, &get("2001:db8:5::7", "/"), T0 + 40)), Some(Detector::Blacklist));
    assert!(e.inspect(&s, Mode::Block, &get("2001:db8:5::8", "/"), T0 + 41).verdict.is_allow());
    // With /128 every address is its own client.
    let (e, s) = engine(|c| c.ipv6_prefix = 128);
    e.inspect(&s, Mode::Block, &get("2001:db8:9:1::1", "/.env"), T0);
    assert!(e.inspect(&s, Mode::Block, &get("2001:db8:9:1::2", "/"), T0 + 1).verdict.is_allow());
}

/// Issue 11: an admin page loads ~20 scripts and styles; the rate limit counts what a person
/// does (pages, API calls), not what their browser fetches.
#[test]
fn assets_and_browser_auto_requests_are_not_rate_limited_or_keyword_blocked() {
    let (e, s) = engine(|_| {});
    let mut t = T0;
    for page in 0..3 {
        t += 1000;
        assert!(e.inspect(&s, Mode::Block, &get("10.2.0.1", "/admin/blog/post/add/"), t).verdict.is_allow());
        for k in 0..20 {
            let asset = format!("/static/admin/js/file{page}_{k}.js");
            let i = e.inspect(&s, Mode::Block, &get("10.2.0.1", &asset), t + k);
            assert!(i.verdict.finding.is_none(), "asset {asset}: {:?}", i.verdict.finding);
        }
        let img = e.inspect(&s, Mode::Block, &get("10.2.0.1", "/uploads/photo.webp"), t + 30);
        assert!(img.verdict.is_allow());
    }
    // Assets have their own, larger budget (a gallery loads hundreds of images)...
    let (e, s) = engine(|_| {});
    for k in 0..300u64 {
        let img = format!("/media/gallery/{k}.webp");
        assert!(e.inspect(&s, Mode::Block, &get("10.2.0.8", &img), T0 + k * 5).verdict.is_allow(), "image {k}");
    }
    // ... but the same file again and again is a flood, under the page limits.
    let css = |k: u64| e.inspect(&s, Mode::Block, &get("10.2.0.9", "/static/css/site.css"), T0 + k * 40);
    for k in 0..20 {
        assert!(css(k).verdict.is_allow(), "asset request {k}");
    }
    assert!(matches!(css(20).verdict.action, Action::RateLimit { .. }));
    let mut last = css(21);
    for k in 22..=40 {
        last = css(k);
    }
    assert_eq!(detector(&last), Some(Detector::Flood));
    assert!(last.verdict.finding.unwrap().reason.contains("one asset"));
    // A flood of pages is still a flood.
    let (e, s) = engine(|_| {});
    let mut last = e.inspect(&s, Mode::Block, &get("10.2.0.2", "/page"), T0);
    for k in 1..41 {
        last = e.inspect(&s, Mode::Block, &get("10.2.0.2", "/page"), T0 + k);
    }
    assert_eq!(detector(&last), Some(Detector::Flood));
    // Learned keywords never block a browser's own requests.
    let (e, s) = engine(|_| {});
    s.install_lists(
        Lists::new(e.config(), IpSet::default(), [], vec!["favicon".into(), "robots".into(), "apple".into()]),
        0,
        T0,
    );
    for p in ["/favicon.ico", "/robots.txt", "/apple-touch-icon.png", "/.well-known/security.txt"] {
        assert!(e.inspect(&s, Mode::Block, &get("10.2.0.3", p), T0).verdict.finding.is_none(), "{p}");
    }
    assert!(e.inspect(&s, Mode::Block, &get("10.2.0.4", "/robots-admin"), T0).verdict.ban.is_some());
}

fn with_query<'a>(client: &str, path: &'a str, query: &'a str) -> RequestInfo<'a> {
    RequestInfo { query: Some(query), ..get(client, path) }
}

/// Issue 12: payload inspection in the request phases. One payload request is a block (with
/// every finding in the evidence), repeat senders are banned, clean traffic costs nothing.
#[test]
fn payload_blocks_explains_and_bans_repeat_senders() {
    let (e, s) = engine(|_| {});
    let clean = e.inspect(&s, Mode::Block, &with_query("10.3.0.1", "/search", "q=select+a+product"), T0);
    assert!(clean.verdict.finding.is_none() && clean.context.payload.is_none());
    let i = e.inspect(&s, Mode::Block, &with_query("10.3.0.2", "/item", "id=1%27%20OR%20%271%27%3D%271"), T0);
    assert_eq!(i.verdict.action, Action::Block);
    let f = i.verdict.finding.as_ref().unwrap();
    assert_eq!(f.detector, Detector::Payload);
    assert!(f.reason.contains("query.id"), "{}", f.reason);
    assert!(f.evidence["score"].as_u64().unwrap() >= 5);
    assert!(f.evidence["findings"][0]["rule"].as_str().unwrap().starts_with("sqli"), "{}", f.evidence);
    assert!(i.verdict.ban.is_none(), "one payload request is not a ban");
    // The third within the window bans.
    e.inspect(&s, Mode::Block, &with_query("10.3.0.2", "/item", "id=1+union+select+password+from+users"), T0 + 1);
    let i = e.inspect(&s, Mode::Block, &with_query("10.3.0.2", "/x", "q=<script>alert(1)</script>"), T0 + 2);
    assert_eq!(i.verdict.ban.as_ref().map(|b| b.detector), Some(Detector::Payload));
    // Detect mode records, never bans.
    let (e, s) = engine(|_| {});
    for k in 0..5 {
        let i = e.inspect(&s, Mode::Detect, &with_query("10.3.0.3", "/i", "id=1'+or+'1'='1"), T0 + k);
        assert!(i.verdict.ban.is_none());
    }
    // Payload inspection runs on exempt login paths too.
    let (e, s) = engine(|_| {});
    let i = e.inspect(&s, Mode::Block, &with_query("10.3.0.4", "/admin/login/", "next=' or 1=1--"), T0);
    assert_eq!(detector(&i), Some(Detector::Payload));
}

#[test]
fn payload_in_the_body_phase() {
    let (e, s) = engine(|_| {});
    let post = RequestInfo { method: "POST", content_type: Some("application/json"), ..get("10.3.1.1", "/api/run") };
    let mut i = e.inspect(&s, Mode::Block, &post, T0);
    assert!(i.verdict.is_allow() && i.context.wants_body);
    let v = e.inspect_body(
        &s,
        Mode::Block,
        &mut i.context,
        "/api/run",
        Some("application/json"),
        br#"{"cmd": "ls; cat /etc/passwd"}"#,
        false,
        T0,
    );
    assert_eq!(v.action, Action::Block, "{v:?}");
    assert!(v.finding.unwrap().evidence["findings"].to_string().contains("body.cmd"));
    // A rich-text field with <b> and an Irish name passes.
    let mut i = e.inspect(&s, Mode::Block, &RequestInfo { client: ip("10.3.1.2"), ..post }, T0);
    let body = br#"{"name": "O'Brien", "bio": "<b>Hello</b> I like SQL tutorials: select a product"}"#;
    let v = e.inspect_body(&s, Mode::Block, &mut i.context, "/api/run", Some("application/json"), body, false, T0);
    assert!(v.is_allow(), "{v:?}");
    // Binary uploads are not bodies to inspect.
    let png = RequestInfo { content_type: Some("image/png"), ..post };
    assert!(!e.wants_body(&png));
    assert!(!e.wants_body(&get("10.3.1.3", "/")));
}

/// Issue 10: login pages are exempt (never lock out a legitimate login) but password guessing
/// against them is now slowed: 10 POSTs a minute, then 429; 20 are a ban.
#[test]
fn login_pages_have_their_own_rate_limit() {
    let (e, s) = engine(|_| {});
    let login = |t: u64| {
        e.inspect(&s, Mode::Block, &RequestInfo { method: "POST", ..post_form("10.4.0.1", "/admin/login/") }, T0 + t)
    };
    for k in 0..10 {
        assert!(login(k * 100).verdict.is_allow(), "attempt {k}");
    }
    let v = login(1_000).verdict;
    assert!(matches!(v.action, Action::RateLimit { retry_after_s } if (55..=60).contains(&retry_after_s)), "{v:?}");
    let mut last = login(1_010);
    for k in 12..=20 {
        last = login(1_000 + k * 10);
    }
    assert_eq!(detector(&last), Some(Detector::Flood));
    assert!(last.verdict.ban.is_some());
    // GETs of the login page and other exempt pages are not counted.
    for k in 0..30 {
        assert!(e.inspect(&s, Mode::Block, &get("10.4.0.2", "/admin/login/"), T0 + k).verdict.is_allow());
    }
    // It can be turned off.
    let (e, s) = engine(|c| c.login_rate_max = 0);
    for k in 0..30 {
        let i = e.inspect(&s, Mode::Block, &post_form("10.4.0.3", "/accounts/login/"), T0 + k);
        assert!(i.verdict.is_allow());
    }
}

/// `detectors_off`: a switched-off detector makes no finding (the Django adapter turns on only
/// the detectors of the middleware classes listed); the others and the blacklist still work.
#[test]
fn switched_off_detectors_make_no_finding() {
    let (e, s) = engine(|c| {
        c.detectors_off = vec![Detector::Keyword, Detector::RateLimit, Detector::NotFoundFlood, Detector::Payload]
    });
    // no keyword (or payload) block on /.env, and 40 requests within the window: no 429 ...
    for n in 0..40u64 {
        let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/.env"), T0 + n);
        assert!(i.verdict.is_allow(), "request {n}: {:?}", i.verdict);
        // ... nor a 404-flood ban
        assert!(e.observe(&s, Mode::Block, &i.context, 404, 0.01, T0 + n).ban.is_none());
    }
    // ... but the flood (a detector still on) bans the 41st, and the ban is enforced
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/"), T0 + 41);
    assert_eq!(detector(&i), Some(Detector::Flood));
    assert!(i.verdict.ban.is_some());
    let i = e.inspect(&s, Mode::Block, &get("10.0.0.1", "/"), T0 + 42);
    assert_eq!(detector(&i), Some(Detector::Blacklist));
    // payload off: no inspector at all
    let (e, _) = engine(|c| c.detectors_off = vec![Detector::Payload]);
    assert!(e.payload_config().is_none() && !e.wants_headers());
    // the blacklist cannot be switched off
    let (e, s) = engine(|c| c.detectors_off = vec![Detector::Blacklist, Detector::Keyword]);
    s.add_pending_ban(
        ip("10.0.0.2"),
        crate::state::BanState {
            created_at: T0,
            expires_at: None,
            offences: 1,
            reason: "t".into(),
            detector: "manual".into(),
        },
    );
    assert_eq!(detector(&e.inspect(&s, Mode::Block, &get("10.0.0.2", "/"), T0)), Some(Detector::Blacklist));
}

/// The learned profile through the engine's phases: learned from requests answered 2xx/3xx
/// with no finding (never from a 404), enforced once mature; a block by the profile alone is
/// never a ban; a fresh address cannot vote a change in, clients with a history can.
#[test]
fn the_profile_is_learned_from_answers_and_enforced() {
    let (e, s) = engine(|c| {
        c.payload.profile.min_samples = 20;
        c.payload.profile.min_clients = 5;
        c.payload.profile.relearn_clients = 3;
        // the rate limit is not what this test is about
        c.rate_max = 10_000;
        c.rate_flood = 20_000;
    });
    let mut t = T0;
    let serve = |client: &str, path: &'static str, query: &'static str, status: u16, t: u64| {
        let i = e.inspect(&s, Mode::Block, &with_query(client, path, query), t);
        if i.verdict.is_allow() {
            e.observe(&s, Mode::Block, &i.context, status, 0.01, t);
        }
        i
    };
    // 404s teach nothing
    for k in 0..40u64 {
        t += 10;
        serve(&format!("10.9.0.{}", k % 8), "/p", "id=1", 404, t);
    }
    s.profile().publish(t + 5000);
    assert_eq!(s.profile().rules().len(), 0);
    for k in 0..40u64 {
        t += 10;
        serve(&format!("10.9.0.{}", k % 8), "/p", "id=1", 200, t);
    }
    t += 2000;
    s.profile().publish(t);
    assert_eq!(s.profile().rules().len(), 1);
    let i = serve("10.9.1.1", "/p", "id=1&debug=1", 200, t);
    assert_eq!(i.verdict.action, Action::Block);
    let f = i.verdict.finding.as_ref().unwrap();
    assert_eq!(f.evidence["findings"][0]["rule"], "profile.unknown_param", "{}", f.evidence);
    // blocked by the profile alone, again and again: never a ban
    for _ in 0..5 {
        t += 10;
        assert!(serve("10.9.1.1", "/p", "id=1&debug=1", 200, t).verdict.ban.is_none());
    }
    // fresh addresses cannot vote the argument in
    for k in 0..10u64 {
        t += 10;
        serve(&format!("10.9.2.{k}"), "/p", "id=1&debug=1", 200, t);
    }
    t += 2000;
    s.profile().publish(t);
    assert_eq!(serve("10.9.3.1", "/p", "id=1&debug=1", 200, t).verdict.action, Action::Block);
    // clients with a history of clean requests can (the site added the argument)
    for k in 0..3u64 {
        let c = format!("10.9.4.{k}");
        for _ in 0..3 {
            t += 10;
            serve(&c, "/p", "id=2", 200, t);
        }
        t += 10;
        serve(&c, "/p", "id=1&debug=1", 200, t);
    }
    t += 2000;
    s.profile().publish(t);
    assert!(serve("10.9.3.2", "/p", "id=1&debug=1", 200, t).verdict.is_allow());
}

/// Issue 13: models carry the payload score as a seventh feature; a model trained before it
/// (six features) still loads and scores on its six; anything else is refused.
#[test]
fn models_with_six_or_seven_features_load() {
    let six = benign_model();
    assert_eq!(six.file().feature_names.len(), 6);
    let back = crate::Model::from_json(&six.to_json()).unwrap();
    let x = [20.0, 0.0, 0.1, 0.0, 1.0, 0.0, 10.0];
    assert_eq!(back.score(&x), six.score(&x), "scored on the first six");
    // a site's log: now and then a request with a small payload score
    let rows: Vec<Vec<f64>> = (0..500u64)
        .map(|k| vec![(k % 30) as f64, 0.0, 0.1, 0.0, (k % 5) as f64, 0.0, if k % 50 == 0 { 2.0 } else { 0.0 }])
        .collect();
    let forest = aiwaf_forest::Forest::fit(&rows, &aiwaf_forest::Params::default()).unwrap();
    let seven = crate::Model::new(forest, six.file().training.clone());
    assert_eq!(seven.file().feature_names.last().map(String::as_str), Some("payload_score"));
    let back = crate::Model::from_json(&seven.to_json()).unwrap();
    // a payload score makes the same request more anomalous to a model that never saw one
    let clean = [20.0, 0.0, 0.1, 0.0, 1.0, 0.0, 0.0];
    assert!(back.score(&x) > back.score(&clean), "{} vs {}", back.score(&x), back.score(&clean));
    // names out of order or a width that is neither six nor seven: refused
    let mut v: serde_json::Value = serde_json::from_slice(&seven.to_json()).unwrap();
    v["feature_names"][6] = "other".into();
    assert!(crate::Model::from_json(v.to_string().as_bytes()).is_err());
    let mut v: serde_json::Value = serde_json::from_slice(&six.to_json()).unwrap();
    v["feature_names"].as_array_mut().unwrap().pop();
    assert!(crate::Model::from_json(v.to_string().as_bytes()).is_err());
}

/// Issue 13: replaying a log with whole-second timestamps, a POST in its GET's second or the
/// next is "faster than 2 s" (live: 1 s) and five of them ban; a POST two logged seconds later
/// is not a signal; with an exact clock the live bound holds.
#[test]
fn honeypot_widens_its_bounds_for_a_whole_second_clock() {
    let (e, s) = engine(|_| {});
    s.set_clock_resolution_ms(1000);
    serve_page(&e, &s, "/contact/");
    let mut last = None;
    for k in 0..5u64 {
        let t = T0 + k * 60_000;
        e.inspect(&s, Mode::Block, &get("10.0.7.1", "/contact/"), t);
        // logged one second after its GET
        last = Some(e.inspect(&s, Mode::Block, &post_form("10.0.7.1", "/contact/"), t + 1000));
        if k < 4 {
            assert!(signal(last.as_ref().unwrap()), "{k}");
        }
    }
    let last = last.unwrap();
    assert_eq!(detector(&last), Some(Detector::Honeypot));
    assert!(last.verdict.ban.is_some(), "five signals ban");
    assert_eq!(last.verdict.finding.as_ref().unwrap().evidence["min_form_time_s"], 2.0);
    // two logged seconds: a person could have taken 1.1 s or 2.9 s; not a signal
    e.inspect(&s, Mode::Block, &get("10.0.7.2", "/contact/"), T0);
    assert!(e.inspect(&s, Mode::Block, &post_form("10.0.7.2", "/contact/"), T0 + 2000).verdict.finding.is_none());
    // an exact clock: one second after the GET is a person
    s.set_clock_resolution_ms(0);
    e.inspect(&s, Mode::Block, &get("10.0.7.3", "/contact/"), T0);
    assert!(e.inspect(&s, Mode::Block, &post_form("10.0.7.3", "/contact/"), T0 + 1000).verdict.finding.is_none());
}

/// A request whose profile findings fill the report must not hide a payload among the dropped
/// findings: it is not "profile only" (no free probing, no vote), and repeat senders are banned.
#[test]
fn profile_findings_cannot_hide_a_payload() {
    let (e, s) = engine(|c| {
        c.payload.profile.min_samples = 20;
        c.payload.profile.min_clients = 5;
        c.rate_max = 10_000;
        c.rate_flood = 20_000;
    });
    let mut t = T0;
    for k in 0..40u64 {
        t += 10;
        let i = e.inspect(&s, Mode::Block, &with_query(&format!("10.9.8.{}", k % 8), "/p", "id=1"), t);
        e.observe(&s, Mode::Block, &i.context, 200, 0.01, t);
    }
    s.profile().publish(t + 2000);
    let mut q: String = (0..40).map(|k| format!("x{k}=1&")).collect();
    q.push_str("id=1%27%20union%20select%20password%20from%20users--");
    let q: &'static str = Box::leak(q.into_boxed_str());
    let mut banned = false;
    for k in 0..3u64 {
        let i = e.inspect(&s, Mode::Block, &with_query("10.9.9.1", "/p", q), t + 3000 + k);
        assert_eq!(i.verdict.action, Action::Block);
        banned |= i.verdict.ban.is_some();
    }
    assert!(banned, "a payload sender is banned even behind forty profile findings");
}
