//! What a blocked client sees: a small styled page for browsers, a small JSON body for
//! everyone else. Neither names the detector, the keyword or the timing — that is what an
//! attacker would tune against; it all goes to the event, found by the request id shown here.

use aiwaf_engine::{Detector, Verdict};
use http::StatusCode;

/// The default page. Placeholders: `{{status}}`, `{{title}}`, `{{message}}`, `{{request_id}}`,
/// `{{retry}}` (how long, as text; empty when not applicable).
pub const DEFAULT_TEMPLATE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{status}} {{title}}</title>
<style>
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f6f8;color:#1f2430}
main{max-width:34rem;margin:12vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .75rem}p{margin:.5rem 0}.id{margin-top:1.5rem;font-size:.85rem;color:#5b6270}
code{background:#eef0f3;padding:.1rem .35rem;border-radius:4px}
</style></head>
<body><main><h1>{{title}}</h1><p>{{message}}</p><p>{{retry}}</p>
<p class="id">If you think this is a mistake, contact the site's administrator and quote this reference:
<code>{{request_id}}</code></p></main></body></html>
"#;

/// The public face of a verdict: status, title, message and, for bans and rate limits, how
/// long (seconds; `None` for a permanent ban or a single blocked request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Face {
    /// HTTP status.
    pub status: StatusCode,
    /// Short title.
    pub title: &'static str,
    /// One sentence, free of detection details.
    pub message: &'static str,
    /// Seconds until the client may try again, when known.
    pub retry_after_s: Option<u64>,
    /// Whether the client is banned (then `retry_after_s: None` means permanently).
    pub banned: bool,
}

/// The face of a blocking verdict at `now` (ms since the epoch).
pub fn face(verdict: &Verdict, now: u64) -> Face {
    let detector = verdict.finding.as_ref().map(|f| f.detector);
    if let aiwaf_engine::Action::RateLimit { retry_after_s } = verdict.action {
        return Face {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too many requests",
            message: "You are sending requests faster than this site allows. Please wait a moment.",
            retry_after_s: Some(retry_after_s),
            banned: false,
        };
    }
    let until = match (&verdict.ban, detector) {
        (Some(b), _) => Some(b.expires_at),
        (None, Some(Detector::Blacklist)) => verdict.finding.as_ref().map(|f| f.evidence["expires_at"].as_u64()),
        _ => None,
    };
    match until {
        Some(until) => Face {
            status: StatusCode::FORBIDDEN,
            title: "Access blocked",
            message: "Requests from your address are blocked by this site's firewall.",
            retry_after_s: until.map(|u| u.saturating_sub(now).div_ceil(1000).max(1)),
            banned: true,
        },
        None => Face {
            status: StatusCode::FORBIDDEN,
            title: "Request blocked",
            message: "This request was blocked by this site's firewall.",
            retry_after_s: None,
            banned: false,
        },
    }
}

/// How long, for people: "about 15 minutes".
pub fn human_duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0..60 => plural(secs.max(1), "second"),
        60..3600 => plural(secs.div_ceil(60), "minute"),
        3600..86_400 => plural(secs.div_ceil(3600), "hour"),
        _ => plural(secs.div_ceil(86_400), "day"),
    }
}

/// Renders `template` for `face`.
pub fn render(template: &str, face: &Face, request_id: &str) -> String {
    let retry = match (face.retry_after_s, face.banned) {
        (Some(s), true) => format!("The block ends in about {}.", human_duration(s)),
        (None, true) => "The block does not expire on its own.".to_string(),
        (Some(s), false) => format!("Try again in about {}.", human_duration(s)),
        (None, false) => String::new(),
    };
    template
        .replace("{{status}}", face.status.as_str())
        .replace("{{title}}", face.title)
        .replace("{{message}}", face.message)
        .replace("{{retry}}", &retry)
        .replace("{{request_id}}", &escape_html(request_id))
}

/// Escapes text for HTML.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiwaf_engine::{Action, Ban, Finding};
    use serde_json::json;

    fn finding(d: Detector) -> Finding {
        Finding { detector: d, reason: "Keyword block: .env".into(), evidence: json!({"keyword": ".env"}) }
    }

    #[test]
    fn faces_say_how_long_and_never_why() {
        let now = 1_000_000;
        let ban = Ban {
            ip: "10.0.0.1".parse().unwrap(),
            detector: Detector::Keyword,
            reason: "Keyword block: .env".into(),
            evidence: json!({}),
            created_at: now,
            expires_at: Some(now + 900_000),
            offences: 1,
            seq: 1,
        };
        let v = Verdict { action: Action::Block, finding: Some(finding(Detector::Keyword)), ban: Some(ban) };
        let f = face(&v, now);
        assert_eq!((f.status, f.retry_after_s, f.banned), (StatusCode::FORBIDDEN, Some(900), true));
        let page = render(DEFAULT_TEMPLATE, &f, "abc123");
        assert!(page.contains("about 15 minutes") && page.contains("abc123"));
        assert!(!page.contains(".env") && !page.contains("Keyword"));
        // A stored permanent ban.
        let bl = Finding { detector: Detector::Blacklist, reason: "x".into(), evidence: json!({"expires_at": null}) };
        let f = face(&Verdict { action: Action::Block, finding: Some(bl), ban: None }, now);
        assert_eq!((f.banned, f.retry_after_s), (true, None));
        assert!(render(DEFAULT_TEMPLATE, &f, "r").contains("does not expire"));
        let f = face(&Verdict { action: Action::RateLimit { retry_after_s: 7 }, finding: None, ban: None }, now);
        assert_eq!((f.status, f.retry_after_s), (StatusCode::TOO_MANY_REQUESTS, Some(7)));
        assert_eq!(human_duration(86_400 * 2), "2 days");
        assert_eq!(escape_html("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
