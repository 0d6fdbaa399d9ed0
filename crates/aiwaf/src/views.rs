//! The JSON shapes of stored rows, shared by the CLI's `--json` output and the admin API, so
//! both always describe a ban, an event or the model the same way.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use aiwaf_engine::Model;
use aiwaf_store::{BanRow, EventRow, ExemptionRow, KeywordRow};
use serde_json::{Value, json};

/// RFC 3339 text for a millisecond timestamp.
/// RFC 3339 up to the year 9999 (its limit); later times — a ban for `10000y` — show as the
/// last representable second with a `+`, never a panic.
pub fn rfc3339(ms: i64) -> String {
    const MAX_MS: i64 = 253_402_300_799_000; // 9999-12-31T23:59:59Z
    if ms > MAX_MS {
        return "9999-12-31T23:59:59Z+".to_string();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// Evidence for people: epoch-millisecond times (`*_at` keys) as RFC 3339.
pub fn readable_times(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, x)| {
                let x = match x.as_i64() {
                    Some(ms) if k.ends_with("_at") && ms > 1_000_000_000_000 => serde_json::Value::String(rfc3339(ms)),
                    _ => readable_times(x),
                };
                (k.clone(), x)
            })
            .collect(),
        serde_json::Value::Array(a) => a.iter().map(readable_times).collect(),
        other => other.clone(),
    }
}

/// A blacklist row; `active` is judged at `now` (ms).
pub fn ban(r: &BanRow, now: i64) -> Value {
    json!({"ip": r.ip, "reason": r.reason, "detector": r.detector, "offences": r.offences,
        "created_at": rfc3339(r.created_at), "expires_at": r.expires_at.map(rfc3339),
        "active": r.expires_at.is_none_or(|e| e > now), "evidence": r.evidence})
}

/// An exemption row.
pub fn exemption(r: &ExemptionRow) -> Value {
    json!({"ip": r.net, "reason": r.reason, "created_at": rfc3339(r.created_at), "expires_at": null})
}

/// A learned keyword.
pub fn keyword(r: &KeywordRow) -> Value {
    json!({"keyword": r.keyword, "count": r.count, "updated_at": rfc3339(r.updated_at)})
}

/// A block event.
pub fn event(e: &EventRow) -> Value {
    json!({"request_id": e.request_id, "ts": rfc3339(e.ts), "ip": e.ip, "method": e.method, "path": e.path,
        "detector": e.detector, "action": e.action, "reason": e.reason, "evidence": e.evidence, "mode": e.mode})
}

/// The model file at `path`.
pub fn model(path: &Path, m: &Model) -> Value {
    let f = m.file();
    json!({
        "path": path.display().to_string(),
        "schema_version": f.schema_version,
        "feature_names": f.feature_names,
        "trees": f.forest.trees.len(),
        "sample_size": f.forest.sample_size,
        "threshold": f.forest.threshold,
        "trained_at": rfc3339(f.training.trained_at as i64),
        "rows_used": f.training.rows_used,
        "fitted_rows": f.training.fitted_rows,
        "clients": f.training.clients,
        "contamination": f.training.contamination,
        "seed": f.training.seed,
        "sources": f.training.sources,
        "score_quantiles": f.training.score_quantiles,
    })
}

/// Which payload detectors fired on which routes and targets, from stored payload events: the
/// input for exclusions. Routes are the first two path segments (`/api/orders/…` →
/// `/api/orders/`). Returns rows sorted by count, each with a suggested exclusion.
pub fn payload_report(events: &[aiwaf_store::EventRow]) -> Vec<serde_json::Value> {
    use std::collections::BTreeMap;
    /// (route, detector, target) → (findings, in blocked requests, clients).
    type Groups = BTreeMap<(String, String, String), (u64, u64, std::collections::BTreeSet<String>)>;
    let mut groups = Groups::new();
    for e in events.iter().filter(|e| e.detector == "payload") {
        let path = e.path.split('?').next().unwrap_or("/");
        let route: String = {
            let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
            if segs.is_empty() { "/".into() } else { format!("/{}/", segs.join("/")) }
        };
        let blocked = matches!(e.action.as_str(), "block" | "ban");
        let Some(findings) = e.evidence["findings"].as_array() else { continue };
        for f in findings {
            let class = f["class"].as_str().unwrap_or("?").to_string();
            let target = f["target"].as_str().unwrap_or("?").to_string();
            let g = groups.entry((route.clone(), class, target)).or_default();
            g.0 += 1;
            g.1 += u64::from(blocked);
            g.2.insert(e.ip.clone());
        }
    }
    let mut rows: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|((route, class, target), (n, blocked, clients))| {
            serde_json::json!({
                "route": route, "detector": class, "target": target, "findings": n, "in_blocked_requests": blocked,
                "clients": clients.len(),
                "exclusion": format!(
                    "[[payload.exclusions]]\npath_prefix = \"{route}\"\ndetectors = [\"{class}\"]\ntargets = [\"{target}\"]"
                ),
            })
        })
        .collect();
    rows.sort_by(|a, b| b["findings"].as_u64().cmp(&a["findings"].as_u64()));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_report_groups_by_route_detector_and_target() {
        let ev = |ip: &str, path: &str, action: &str, findings: serde_json::Value| aiwaf_store::EventRow {
            id: 0,
            request_id: "r".into(),
            ts: 0,
            ip: ip.into(),
            method: "POST".into(),
            path: path.into(),
            detector: "payload".into(),
            action: action.into(),
            reason: String::new(),
            evidence: serde_json::json!({ "findings": findings }),
            mode: "detect".into(),
        };
        let xss = serde_json::json!([{"class": "xss", "target": "body.content"}]);
        let rows = payload_report(&[
            ev("10.0.0.1", "/admin/posts/7/change/", "would_block", xss.clone()),
            ev("10.0.0.2", "/admin/posts/9/change/?x=1", "would_block", xss),
            ev("10.0.0.3", "/search?q=1", "block", serde_json::json!([{"class": "sqli", "target": "query.q"}])),
        ]);
        assert_eq!(rows[0]["route"], "/admin/posts/");
        assert_eq!((rows[0]["findings"].as_u64(), rows[0]["clients"].as_u64()), (Some(2), Some(2)));
        assert!(rows[0]["exclusion"].as_str().unwrap().contains("targets = [\"body.content\"]"));
        assert_eq!(rows[1]["route"], "/search/");
    }

    #[test]
    fn far_future_and_evidence_times_are_readable() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z+");
        let v = serde_json::json!({"banned_at": 1_700_000_000_000i64, "offences": 2, "inner": {"expires_at": null}});
        let r = readable_times(&v);
        assert_eq!(r["banned_at"], "2023-11-14T22:13:20Z");
        assert_eq!(r["offences"], 2);
    }
}
