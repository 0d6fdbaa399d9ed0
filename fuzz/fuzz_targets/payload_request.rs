//! Payload inspection of arbitrary requests: query, cookies, headers and bodies of every parsed
//! content type (url-encoded, multipart, JSON, XML, text). Never panics; bounded findings.
#![no_main]
use aiwaf_payload::{HeadParts, Inspector, PayloadConfig, Report};
use libfuzzer_sys::fuzz_target;

fn inspector() -> &'static Inspector {
    static I: std::sync::OnceLock<Inspector> = std::sync::OnceLock::new();
    I.get_or_init(|| Inspector::new(PayloadConfig { paranoia: 4, ..Default::default() }).unwrap())
}

const TYPES: [&str; 8] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "application/xml",
    "text/plain",
    "application/vnd.api+json",
    "",
    "multipart/form-data",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let split = rest.len() / 2;
    let (head, body) = rest.split_at(split);
    let text = String::from_utf8_lossy(head);
    let (path, query) = text.split_once('?').map_or((&*text, None), |(p, q)| (p, Some(q)));
    let headers: [(&str, &[u8]); 4] = [("Cookie", head), ("User-Agent", head), ("Referer", body), ("X-Custom", head)];
    let mut report = Report::default();
    inspector().inspect_head(&HeadParts { method: "POST", path, query, headers: &headers }, &mut report);
    let ct = TYPES[usize::from(sel) % TYPES.len()];
    inspector().inspect_body(path, (!ct.is_empty()).then_some(ct), body, sel & 0x80 != 0, &mut report);
    assert!(report.findings.len() <= aiwaf_payload::MAX_FINDINGS);
});
