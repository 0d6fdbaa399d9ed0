//! The learned application profile: what it enforces, when, and what it never does.

use aiwaf_payload::{Class, HeadParts, Inspector, Overlay, PayloadConfig, Profile, ProfileConfig, Report, Shape};

const FORM: &str = "application/x-www-form-urlencoded";

struct Site {
    insp: Inspector,
    profile: Profile,
    now: u64,
}

impl Site {
    fn new() -> Site {
        Site::with(ProfileConfig::default())
    }

    fn with(p: ProfileConfig) -> Site {
        let cfg = PayloadConfig { profile: p.clone(), ..PayloadConfig::default() };
        Site { insp: Inspector::new(cfg).unwrap(), profile: Profile::new(p), now: 1_000_000 }
    }

    /// Inspects one request against the profile; returns the report and the shape.
    fn send(&mut self, method: &str, target: &str, body: Option<&str>) -> (Report, Shape) {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let len = body.map(|b| b.len().to_string()).unwrap_or_default();
        let mut headers: Vec<(&str, &[u8])> = vec![("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")];
        if body.is_some() {
            headers.push(("Content-Type", FORM.as_bytes()));
            headers.push(("Content-Length", len.as_bytes()));
        }
        let mut rep = Report::default();
        let mut shape = Shape::default();
        let ov = Overlay::default();
        self.now += 100;
        self.profile.maybe_publish(self.now);
        self.insp.inspect_head_profiled(
            &HeadParts { method, path, query, headers: &headers },
            &ov,
            Some((&self.profile, &mut shape)),
            &mut rep,
        );
        if let Some(b) = body {
            self.insp.inspect_body_profiled(
                path,
                Some(FORM),
                b.as_bytes(),
                false,
                &ov,
                Some((&self.profile, &mut shape)),
                &mut rep,
            );
        }
        (rep, shape)
    }

    /// A request the upstream answered 200: learned when clean (or voted when only the
    /// profile found something), as the engine does.
    fn served(&mut self, client: u64, method: &str, target: &str, body: Option<&str>) -> Report {
        let (rep, shape) = self.send(method, target, body);
        let profile_only = !rep.findings.is_empty() && rep.findings.iter().all(|f| f.class == Class::Profile);
        if rep.findings.is_empty() || profile_only {
            self.profile.learn(&shape, client, profile_only, self.now);
        }
        rep
    }

    /// Teaches the product page and the login form from `n` requests of 10 clients.
    fn teach(&mut self, n: u64) {
        let names = ["Vino Rioja", "Queso Manchego", "Jamón Ibérico", "Aceite de oliva"];
        for i in 0..n {
            let name = names[(i % 4) as usize].replace(' ', "+");
            let t = format!("/shop/product.jsp?id={}&name={name}&qty={}", i % 7 + 1, i % 30 + 1);
            assert!(self.served(i % 10, "GET", &t, None).findings.is_empty(), "{t}");
            let body = format!("login=user{i}&pwd=Secr3t.{i}x&remember=on");
            assert!(self.served(i % 10, "POST", "/shop/login.jsp", Some(&body)).findings.is_empty());
        }
        self.now += 2000;
        self.profile.publish(self.now);
    }
}

fn rules(rep: &Report) -> Vec<&'static str> {
    rep.findings.iter().map(|f| f.rule).collect()
}

fn blocks(site: &Site, rep: &Report) -> bool {
    rep.should_block(site.insp.config())
}

#[test]
fn a_learned_route_blocks_tampering() {
    let mut s = Site::new();
    s.teach(60);
    assert_eq!(s.profile.rules().len(), 2);
    // the learned shape passes
    let (ok, _) = s.send("GET", "/shop/product.jsp?id=3&name=Vino+Rioja&qty=2", None);
    assert!(ok.findings.is_empty(), "{:?}", ok.findings);
    // a renamed argument
    let (r, _) = s.send("GET", "/shop/product.jsp?idA=3&name=Vino+Rioja&qty=2", None);
    assert_eq!(rules(&r), ["profile.unknown_param"]);
    assert!(blocks(&s, &r));
    assert_eq!(r.findings[0].target, "query.idA");
    // a character that changes parsing, where there never was one (no rule would fire on it)
    let (r, _) = s.send("GET", "/shop/product.jsp?id=3%2F&name=Vino+Rioja&qty=2", None);
    assert_eq!(rules(&r), ["profile.value_chars"]);
    assert!(blocks(&s, &r), "{:?}", r.findings);
    assert!(r.findings[0].decoded.contains("new characters: /"), "{}", r.findings[0].decoded);
    // letters in a field that only ever held numbers
    let (r, _) = s.send("GET", "/shop/product.jsp?id=3&name=Vino+Rioja&qty=two", None);
    assert_eq!(rules(&r), ["profile.value_chars"]);
    assert!(blocks(&s, &r));
    // a value far longer than any learned
    let long = "1".repeat(200);
    let (r, _) = s.send("GET", &format!("/shop/product.jsp?id=3&name=Vino&qty={long}"), None);
    assert_eq!(rules(&r), ["profile.value_length"]);
    assert!(blocks(&s, &r));
    // the form: a new argument in the body
    let (r, _) = s.send("POST", "/shop/login.jsp", Some("login=ann&pwd=Secr3t.1x&remember=on&admin=1"));
    assert_eq!(rules(&r), ["profile.unknown_param"]);
    assert_eq!(r.findings[0].target, "body.admin");
    // a method the route never saw: a sign, not a block on its own
    let (r, _) = s.send("PUT", "/shop/product.jsp?id=3&name=Vino&qty=2", None);
    assert_eq!(rules(&r), ["profile.method"]);
    assert!(!blocks(&s, &r));
}

#[test]
fn look_alikes_of_tampering_pass() {
    let mut s = Site::new();
    s.teach(60);
    // tracking parameters any link may carry
    let (r, _) =
        s.send("GET", "/shop/product.jsp?id=3&name=Vino&qty=2&utm_source=news&fbclid=IwAR2x&gclid=Cj0K&_=1712", None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // a subset of the arguments, in another order
    let (r, _) = s.send("GET", "/shop/product.jsp?qty=2&id=3", None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // letters of another script in a field of letters; a longer name within the learned bounds
    let (r, _) = s.send("GET", "/shop/product.jsp?id=3&name=Cr%C3%A8me+br%C3%BBl%C3%A9e&qty=2", None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // routes never learned are not checked at all
    let (r, _) = s.send("GET", "/blog/post?slug=hello-world&anything=1", None);
    assert!(r.findings.is_empty());
    // numeric path segments share one route
    assert_eq!(aiwaf_payload::route_key("/Item/12345/Edit"), "/item/{}/edit");
    assert_eq!(aiwaf_payload::route_key("/o/6f1c2a9e-0b7d-4c1e-9a33-5b1d2c3e4f50"), "/o/{}");
}

#[test]
fn nothing_is_enforced_before_enough_clients_and_requests() {
    // many requests from few clients
    let mut s = Site::new();
    for i in 0..200 {
        s.served(i % 3, "GET", &format!("/a?id={}", i % 9), None);
    }
    s.now += 2000;
    s.profile.publish(s.now);
    assert_eq!(s.profile.rules().len(), 0);
    let (r, _) = s.send("GET", "/a?id=1%27&x=1", None);
    assert!(rules(&r).iter().all(|r| !r.starts_with("profile.")), "{:?}", r.findings);
    // few requests from many clients
    let mut s = Site::new();
    for i in 0..30 {
        s.served(i, "GET", &format!("/a?id={}", i % 9), None);
    }
    s.profile.publish(s.now + 5000);
    assert_eq!(s.profile.rules().len(), 0);
}

#[test]
fn a_field_still_changing_is_not_enforced() {
    let mut s = Site::new();
    // every few requests the comment field brings a character it never had: free text
    let texts = ["hello", "hi there", "ok, thanks", "great!", "why?", "a-b", "x_y", "see: this", "50%", "(note)"];
    for i in 0..100u64 {
        // the k-th text first appears at request 10·k: new characters until the end
        let t = texts[if i % 2 == 0 { (i as usize / 10) % texts.len() } else { i as usize % 3 }];
        let body = format!("text={}", t.replace(' ', "+").replace('%', "%25"));
        s.served(i % 20, "POST", "/comment", Some(&body));
    }
    s.profile.publish(s.now + 5000);
    let summary = s.profile.summary(10);
    let text = summary[0].params.iter().find(|p| p.name == "text").unwrap();
    assert!(!text.enforced, "{text:?}");
    let (r, _) = s.send("POST", "/comment", Some("text=it%27s+fine"));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn a_new_field_is_learned_once_enough_clients_send_it() {
    let mut s = Site::with(ProfileConfig { relearn_clients: 5, ..ProfileConfig::default() });
    s.teach(60);
    let t = "/shop/product.jsp?id=3&name=Vino&qty=2&color=red";
    // one client, many times: never learned
    for _ in 0..20 {
        let r = s.served(1, "GET", t, None);
        assert_eq!(rules(&r), ["profile.unknown_param"]);
    }
    s.now += 2000;
    s.profile.publish(s.now);
    assert_eq!(rules(&s.send("GET", t, None).0), ["profile.unknown_param"]);
    // five clients: learned (the site added a field)
    for c in 100..105 {
        s.served(c, "GET", t, None);
    }
    s.now += 2000;
    s.profile.publish(s.now);
    assert!(s.send("GET", t, None).0.findings.is_empty());
}

#[test]
fn a_request_with_another_finding_never_teaches() {
    let mut s = Site::with(ProfileConfig { relearn_clients: 2, ..ProfileConfig::default() });
    s.teach(60);
    let t = "/shop/product.jsp?id=3&name=Vino&qty=2&q=1%27%20OR%20%271%27%3D%271";
    for c in 100..150 {
        let r = s.served(c, "GET", t, None);
        assert!(r.findings.iter().any(|f| f.class == Class::Sqli));
    }
    s.now += 2000;
    s.profile.publish(s.now);
    let (r, _) = s.send("GET", "/shop/product.jsp?id=3&name=Vino&qty=2&q=1", None);
    assert_eq!(rules(&r), ["profile.unknown_param"], "the payload's argument was not learned");
}

#[test]
fn json_arrays_share_a_name_and_bounds_hold() {
    let mut s = Site::with(ProfileConfig { max_routes: 3, max_params: 4, ..ProfileConfig::default() });
    for i in 0..40 {
        s.served(i, "GET", &format!("/r{i}?a=1"), None);
    }
    assert_eq!(s.profile.routes(), 3, "bounded; new routes replace routes not yet enforced");
    // a route with more names than max_params is never closed
    for i in 0..100 {
        s.served(i % 10, "GET", &format!("/r0?a=1&b=2&c=3&d=4&e{}=5", i % 3), None);
    }
    s.profile.publish(s.now + 5000);
    let (r, _) = s.send("GET", "/r0?a=1&zzz=1", None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let summary = s.profile.summary(10);
    assert!(summary.iter().any(|x| x.route == "/r0" && x.enforced && !x.names_closed));
}

#[test]
fn export_and_import_keep_what_was_learned() {
    let mut s = Site::new();
    s.teach(60);
    let saved = s.profile.export();
    let text = serde_json::to_string(&saved).unwrap();
    let mut t = Site::new();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(t.profile.import(&back, t.now).unwrap(), 2);
    let (r, _) = t.send("GET", "/shop/product.jsp?idA=3", None);
    assert_eq!(rules(&r), ["profile.unknown_param"]);
    assert!(t.profile.import(&serde_json::json!({"version": 9}), 0).is_err());
    // forgetting a route stops its enforcement
    assert!(t.profile.forget(Some("/shop/product.jsp"), t.now));
    let (r, _) = t.send("GET", "/shop/product.jsp?idA=3", None);
    assert!(r.findings.is_empty());
}

#[test]
fn the_profile_can_be_set_to_detect_or_off() {
    let mut s = Site::new();
    s.teach(60);
    let mut detect = PayloadConfig::default();
    detect.detectors.insert("profile".into(), aiwaf_payload::DetectorMode::Detect);
    let insp = Inspector::new(detect).unwrap();
    let mut rep = Report::default();
    let mut shape = Shape::default();
    insp.inspect_head_profiled(
        &HeadParts { method: "GET", path: "/shop/product.jsp", query: Some("idA=1"), headers: &[] },
        &Overlay::default(),
        Some((&s.profile, &mut shape)),
        &mut rep,
    );
    assert_eq!(rules(&rep), ["profile.unknown_param"]);
    assert!(rep.findings[0].shadow && !rep.should_block(insp.config()));
    // off: no finding, nothing collected
    let mut ov = Overlay::default();
    ov.detectors.insert("profile".into(), aiwaf_payload::DetectorMode::Off);
    let mut rep = Report::default();
    let mut shape = Shape::default();
    s.insp.inspect_head_profiled(
        &HeadParts { method: "GET", path: "/shop/product.jsp", query: Some("idA=1"), headers: &[] },
        &ov,
        Some((&s.profile, &mut shape)),
        &mut rep,
    );
    assert!(rep.findings.is_empty() && shape.is_empty());
}

#[test]
fn bad_settings_are_named() {
    let cfg = PayloadConfig {
        profile: ProfileConfig { min_samples: 1, ..ProfileConfig::default() },
        ..PayloadConfig::default()
    };
    assert!(Inspector::new(cfg).unwrap_err().contains("payload.profile.min_samples"));
}

#[test]
fn json_bodies_are_learned_by_flattened_name() {
    let s = Site::new();
    let send = |body: &str| {
        let mut rep = Report::default();
        let mut shape = Shape::default();
        let ov = Overlay::default();
        s.insp.inspect_head_profiled(
            &HeadParts { method: "POST", path: "/api/cart", query: None, headers: &[] },
            &ov,
            Some((&s.profile, &mut shape)),
            &mut rep,
        );
        s.insp.inspect_body_profiled(
            "/api/cart",
            Some("application/json"),
            body.as_bytes(),
            false,
            &ov,
            Some((&s.profile, &mut shape)),
            &mut rep,
        );
        (rep, shape)
    };
    for i in 0..60u64 {
        let body = format!(r#"{{"items": [{{"id": {i}, "qty": 2}}, {{"id": 7, "qty": 1}}], "gift": false}}"#);
        let (rep, shape) = send(&body);
        assert!(rep.findings.is_empty(), "{:?}", rep.findings);
        assert_eq!(shape.len(), 5);
        s.profile.learn(&shape, i % 12, false, 1_000_000 + i);
    }
    s.profile.publish(2_000_000);
    let (rep, _) = send(r#"{"items": [{"id": 1, "qty": 2}, {"id": 2, "qty": 1}, {"id": 3, "qty": 9}], "gift": true}"#);
    assert!(rep.findings.is_empty(), "more array items are the same names: {:?}", rep.findings);
    let (rep, _) = send(r#"{"items": [{"id": "1 or 1", "qty": 2}], "gift": false}"#);
    assert_eq!(rules(&rep), ["profile.value_chars"]);
    assert_eq!(rep.findings[0].target, "body.items[0].id");
    let (rep, _) = send(r#"{"items": [{"id": 1, "qty": 2, "price": 0}], "gift": false}"#);
    assert_eq!(rules(&rep), ["profile.unknown_param"]);
}

#[test]
fn steady_traffic_of_a_learned_route_is_not_learned_again() {
    let mut s = Site::new();
    s.teach(60);
    let count = |s: &Site| s.profile.summary(10).iter().find(|r| r.route == "/shop/product.jsp").unwrap().samples;
    let before = count(&s);
    for i in 0..100u64 {
        let r = s.served(i % 10, "GET", &format!("/shop/product.jsp?id={}&name=Vino+Rioja&qty=3", i % 7 + 1), None);
        assert!(r.findings.is_empty());
    }
    assert_eq!(count(&s), before, "nothing new: no shard lock, no count");
    // something not yet enforced is still learned
    s.served(1, "GET", "/shop/product.jsp?id=1&name=Vino&qty=3&utm_source=x", None);
    assert_eq!(count(&s), before, "tracking parameters are not arguments");
    s.served(1, "GET", "/shop/other.jsp?id=1", None);
    assert_eq!(s.profile.routes(), 3);
}

#[test]
fn a_full_profile_makes_room_but_keeps_enforced_routes() {
    let mut s = Site::with(ProfileConfig { max_routes: 40, ..ProfileConfig::default() });
    s.teach(60);
    // a flood of one-off routes (slugs, junk from a catch-all app)
    for i in 0..2000u64 {
        s.served(i % 50, "GET", &format!("/blog/post-number-{i}-x?ref=a"), None);
    }
    assert!(s.profile.routes() <= 40);
    s.profile.publish(s.now + 5000);
    let (r, _) = s.send("GET", "/shop/product.jsp?idA=3&name=Vino&qty=2", None);
    assert_eq!(rules(&r), ["profile.unknown_param"], "enforced routes are never evicted");
    // and a route that shows up late is still learned
    let before = s.profile.summary(100).len();
    s.served(1, "GET", "/api/late?x=1", None);
    assert!(s.profile.summary(100).iter().any(|x| x.route == "/api/late"), "{before}");
}
