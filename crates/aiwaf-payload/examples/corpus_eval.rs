//! Measures the payload inspector on the evaluation corpus (never copied into the repository).
//!
//! Usage: `corpus_eval DIR [--json] [--misses FAMILY_OR_CATEGORY] [--limit N]`, or `corpus_eval -` to
//! inspect requests given as corpus records on stdin, one per line.
//! where DIR holds `crs_tests.jsonl`, `csic2010.jsonl` and `payloads.jsonl`.

use std::collections::BTreeMap;
use std::io::BufRead;

use aiwaf_payload::{HeadParts, Inspector, PayloadConfig, Profile, Report, Shape};
use serde_json::Value;

struct Req {
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn run(insp: &Inspector, r: &Req) -> Report {
    let (path, query) = match r.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.uri.as_str(), None),
    };
    let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let mut rep = Report::default();
    insp.inspect_head(&HeadParts { method: &r.method, path, query, headers: &headers }, &mut rep);
    let ct = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    insp.inspect_body(path, ct.as_deref(), &r.body, false, &mut rep);
    rep
}

/// [`run`] with the learned profile: checks against it and returns the request's shape.
fn run_profiled(insp: &Inspector, profile: &Profile, r: &Req) -> (Report, Shape) {
    let (path, query) = match r.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.uri.as_str(), None),
    };
    let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let mut rep = Report::default();
    let mut shape = Shape::default();
    let ov = aiwaf_payload::Overlay::default();
    insp.inspect_head_profiled(
        &HeadParts { method: &r.method, path, query, headers: &headers },
        &ov,
        Some((profile, &mut shape)),
        &mut rep,
    );
    let ct = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    insp.inspect_body_profiled(path, ct.as_deref(), &r.body, false, &ov, Some((profile, &mut shape)), &mut rep);
    (rep, shape)
}

fn req_of(v: &Value) -> Req {
    let mut headers: Vec<(String, Vec<u8>)> = v["headers"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec())).collect())
        .unwrap_or_default();
    // an HTTP client sends the length of a body it sends (as the proxy would see it)
    let body_len = v["body"].as_str().map_or(0, str::len);
    if body_len > 0 && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        headers.push(("Content-Length".into(), body_len.to_string().into_bytes()));
    }
    Req {
        method: v["method"].as_str().unwrap_or("GET").to_string(),
        uri: v["uri"].as_str().unwrap_or("/").to_string(),
        headers,
        body: v["body"].as_str().unwrap_or("").as_bytes().to_vec(),
    }
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[derive(Default, Clone, Copy)]
struct Tally {
    total: u64,
    hit: u64,
}

impl Tally {
    fn add(&mut self, hit: bool) {
        self.total += 1;
        self.hit += u64::from(hit);
    }
    fn rate(&self) -> f64 {
        if self.total == 0 { 0.0 } else { 100.0 * self.hit as f64 / self.total as f64 }
    }
}

fn lines(path: &std::path::Path) -> impl Iterator<Item = Value> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: corpus_eval DIR [--json] [--misses FAMILY]"));
    let json = args.iter().any(|a| a == "--json");
    let misses = args.iter().position(|a| a == "--misses").and_then(|i| args.get(i + 1)).cloned();
    let limit: usize = args
        .iter()
        .position(|a| a == "--limit")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let insp = Inspector::new(PayloadConfig::default()).expect("default config");
    let cfg = insp.config().clone();
    if dir.as_os_str() == "-" {
        // probe mode: one request per stdin line, as a corpus record ({"method", "uri", "headers", "body"})
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            let rep = run(&insp, &req_of(&v));
            println!("block={} score={} {:#?}", rep.should_block(&cfg), rep.score, rep.findings);
        }
        return;
    }
    let mut shown = 0usize;
    let mut show = |label: &str, key: &str, r: &Req, rep: &Report| {
        if misses.as_deref().is_some_and(|m| key.contains(m)) && shown < limit {
            shown += 1;
            let body: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
            let hdrs: Vec<String> = r
                .headers
                .iter()
                .filter(|(k, _)| !["host", "accept", "connection"].contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v).chars().take(100).collect::<String>()))
                .collect();
            println!(
                "[{label}] {key} {} {} {:?} body={body:?} score={} {}",
                r.method,
                r.uri.chars().take(200).collect::<String>(),
                hdrs,
                rep.score,
                rep.summary()
            );
        }
    };

    // CRS
    let mut crs_attack: BTreeMap<String, Tally> = BTreeMap::new();
    let mut crs_benign: BTreeMap<String, Tally> = BTreeMap::new();
    let mut crs_by_pl: BTreeMap<u64, Tally> = BTreeMap::new();
    for v in lines(&dir.join("crs_tests.jsonl")) {
        if v["side"] != "request" {
            continue;
        }
        let fam = v["family"].as_str().unwrap_or("?").to_string();
        let r = req_of(&v);
        let rep = run(&insp, &r);
        let blocked = rep.should_block(&cfg);
        let key = format!("{fam} {}", v["rule_id"]);
        if v["expect"] == "attack" {
            if let Some(pl) = v["paranoia_level"].as_u64().filter(|p| *p <= 2) {
                crs_by_pl.entry(pl).or_default().add(blocked);
                crs_attack.entry(fam).or_default().add(blocked);
                if !blocked {
                    show("miss", &key, &r, &rep);
                }
            }
        } else {
            crs_benign.entry(fam).or_default().add(blocked);
            if blocked {
                show("fp", &format!("benign {key}"), &r, &rep);
            }
        }
    }
    // CSIC
    let mut csic_att = Tally::default();
    let mut csic_norm = Tally::default();
    for v in lines(&dir.join("csic2010.jsonl")) {
        let r = req_of(&v);
        let rep = run(&insp, &r);
        let blocked = rep.should_block(&cfg);
        if v["expect"] == "attack" {
            csic_att.add(blocked);
            if !blocked {
                show("miss", "csic-anomalous", &r, &rep);
            }
        } else {
            csic_norm.add(blocked);
            if blocked {
                show("fp", "csic-normal", &r, &rep);
            }
        }
    }
    // CSIC with the learned profile: every other normal request teaches it (each from its own
    // client, learned when clean, as a 200 would be), then the other half and the anomalous
    // requests are judged (and the clean ones learned, as live)
    let profile = Profile::new(cfg.profile.clone());
    let csic: Vec<Value> = lines(&dir.join("csic2010.jsonl")).collect();
    let mut client = 0u64;
    let mut now = 1_000_000u64;
    let learn = |rep: &Report, shape: &Shape, client: u64, now: u64| {
        let profile_only = rep.findings.iter().all(|f| f.class == aiwaf_payload::Class::Profile);
        if rep.findings.is_empty() || profile_only {
            profile.learn(shape, client, !rep.findings.is_empty(), now);
        }
    };
    for v in csic.iter().filter(|v| v["expect"] != "attack").step_by(2) {
        let r = req_of(v);
        let (rep, shape) = run_profiled(&insp, &profile, &r);
        client += 1;
        now += 10;
        learn(&rep, &shape, client, now);
    }
    profile.publish(now);
    let mut pcsic_att = Tally::default();
    let mut pcsic_norm = Tally::default();
    let mut normal_seen = 0usize;
    for v in &csic {
        let attack = v["expect"] == "attack";
        if !attack {
            normal_seen += 1;
            if normal_seen % 2 == 1 {
                continue;
            }
        }
        let r = req_of(v);
        let (rep, shape) = run_profiled(&insp, &profile, &r);
        client += 1;
        now += 10;
        let blocked = rep.should_block(&cfg);
        if attack {
            pcsic_att.add(blocked);
            if !blocked {
                show("miss", "profiled-csic-anomalous", &r, &rep);
            }
        } else {
            pcsic_norm.add(blocked);
            if blocked {
                show("fp", "profiled-csic-normal", &r, &rep);
            }
            learn(&rep, &shape, client, now);
        }
    }
    // payloads
    let mut pay: BTreeMap<String, Tally> = BTreeMap::new();
    for v in lines(&dir.join("payloads.jsonl")) {
        let cat = v["category"].as_str().unwrap_or("?").to_string();
        let p = v["payload"].as_str().unwrap_or("");
        let ua = ("User-Agent".to_string(), b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0".to_vec());
        let q =
            Req { method: "GET".into(), uri: format!("/search?q={}", pct(p)), headers: vec![ua.clone()], body: vec![] };
        let b = Req {
            method: "POST".into(),
            uri: "/submit".into(),
            headers: vec![ua, ("Content-Type".into(), b"application/x-www-form-urlencoded".to_vec())],
            body: format!("q={}", pct(p)).into_bytes(),
        };
        let r1 = run(&insp, &q);
        let r2 = run(&insp, &b);
        let hit = r1.should_block(&cfg) || r2.should_block(&cfg);
        pay.entry(cat.clone()).or_default().add(hit);
        let attack = v["expect"] == "attack";
        if attack != hit {
            show(if attack { "miss" } else { "fp" }, &format!("payload:{cat}"), &q, &r1);
        }
    }

    let excluded = |f: &str| f.contains("-911-") || f.contains("-949-") || f.contains("-999-");
    let not_payload = |f: &str| excluded(f) || f.contains("-920-") || f.contains("-921-") || f.contains("-922-");
    let sum = |m: &BTreeMap<String, Tally>, pred: &dyn Fn(&str) -> bool| {
        m.iter()
            .filter(|(k, _)| pred(k))
            .fold(Tally::default(), |a, (_, t)| Tally { total: a.total + t.total, hit: a.hit + t.hit })
    };
    let all_attack = sum(&crs_attack, &|f| !excluded(f));
    let payload_attack = sum(&crs_attack, &|f| !not_payload(f));
    let benign = sum(&crs_benign, &|f| !excluded(f));
    if json {
        let fam = |m: &BTreeMap<String, Tally>| -> serde_json::Map<String, Value> {
            m.iter()
                .map(|(k, t)| (k.clone(), serde_json::json!({"total": t.total, "detected": t.hit, "rate": t.rate()})))
                .collect()
        };
        let out = serde_json::json!({
            "crs_attack_by_family": fam(&crs_attack),
            "crs_benign_by_family": fam(&crs_benign),
            "crs_attack_overall": {"total": all_attack.total, "detected": all_attack.hit, "rate": all_attack.rate()},
            "crs_attack_payload_families": {"total": payload_attack.total, "detected": payload_attack.hit, "rate": payload_attack.rate()},
            "crs_must_not_fire": {"total": benign.total, "fired": benign.hit, "rate": benign.rate()},
            "csic_anomalous": {"total": csic_att.total, "detected": csic_att.hit, "rate": csic_att.rate()},
            "csic_normal": {"total": csic_norm.total, "false_positive": csic_norm.hit, "rate": csic_norm.rate()},
            "csic_profiled_anomalous": {"total": pcsic_att.total, "detected": pcsic_att.hit, "rate": pcsic_att.rate()},
            "csic_profiled_normal_held_out": {"total": pcsic_norm.total, "false_positive": pcsic_norm.hit, "rate": pcsic_norm.rate()},
            "payloads": fam(&pay),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    println!("{:<52} {:>6} {:>8} {:>7}", "CRS attack (PL1-2, request side)", "total", "detected", "rate");
    for (k, t) in &crs_attack {
        println!("{k:<52} {:>6} {:>8} {:>6.1}%", t.total, t.hit, t.rate());
    }
    println!(
        "{:<52} {:>6} {:>8} {:>6.1}%",
        "= overall (excl. 911/949)",
        all_attack.total,
        all_attack.hit,
        all_attack.rate()
    );
    println!(
        "{:<52} {:>6} {:>8} {:>6.1}%",
        "= payload families (excl. 911/920/921/922)",
        payload_attack.total,
        payload_attack.hit,
        payload_attack.rate()
    );
    for (pl, t) in &crs_by_pl {
        println!(
            "{:<52} {:>6} {:>8} {:>6.1}%",
            format!("= tests written for paranoia level {pl}"),
            t.total,
            t.hit,
            t.rate()
        );
    }
    println!();
    println!("{:<52} {:>6} {:>8} {:>7}", "CRS must-not-fire", "total", "fired", "rate");
    for (k, t) in &crs_benign {
        println!("{k:<52} {:>6} {:>8} {:>6.1}%", t.total, t.hit, t.rate());
    }
    println!("{:<52} {:>6} {:>8} {:>6.1}%", "= overall (excl. 911/949/999)", benign.total, benign.hit, benign.rate());
    println!();
    println!("{:<52} {:>6} {:>8} {:>6.1}%", "CSIC anomalous detected", csic_att.total, csic_att.hit, csic_att.rate());
    println!(
        "{:<52} {:>6} {:>8} {:>6.2}%",
        "CSIC normal false positives",
        csic_norm.total,
        csic_norm.hit,
        csic_norm.rate()
    );
    println!(
        "{:<52} {:>6} {:>8} {:>6.1}%",
        "CSIC anomalous, profile learned from half the normal",
        pcsic_att.total,
        pcsic_att.hit,
        pcsic_att.rate()
    );
    println!(
        "{:<52} {:>6} {:>8} {:>6.2}%",
        "CSIC normal (other half), profile learned",
        pcsic_norm.total,
        pcsic_norm.hit,
        pcsic_norm.rate()
    );
    println!();
    println!("{:<52} {:>6} {:>8} {:>7}", "payloads (query or form) by category", "total", "detected", "rate");
    for (k, t) in &pay {
        println!("{k:<52} {:>6} {:>8} {:>6.1}%", t.total, t.hit, t.rate());
    }
}
