//! Runs the criterion bench's requests a fixed number of times, for instruction counts under
//! callgrind (repeatable where wall-clock time is not):
//! `valgrind --tool=callgrind target/release/examples/inspect_count CASE N` with CASE
//! `get_no_query`, `get_query`, `csic_like` or `json_1k`; divide `Ir` by N.

use aiwaf_payload::{HeadParts, Inspector, PayloadConfig, Report};
use std::hint::black_box;

#[path = "../benches/support/cases.rs"]
mod cases;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("get_no_query", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let insp = Inspector::new(PayloadConfig::default()).expect("config");
    let headers = cases::headers();
    let form = cases::CSIC_FORM;
    let json = cases::json_1k();
    let mut findings = 0usize;
    for _ in 0..n {
        let mut r = Report::default();
        match case {
            "csic_like" => {
                insp.inspect_head(
                    black_box(&HeadParts {
                        method: "POST",
                        path: cases::CSIC_PATH,
                        query: Some(cases::CSIC_QUERY),
                        headers: &headers,
                    }),
                    &mut r,
                );
                insp.inspect_body(
                    cases::CSIC_PATH,
                    Some("application/x-www-form-urlencoded"),
                    black_box(form),
                    false,
                    &mut r,
                );
            }
            "get_query" => insp.inspect_head(
                black_box(&HeadParts {
                    method: "GET",
                    path: "/shop/items",
                    query: Some(cases::GET_QUERY),
                    headers: &headers,
                }),
                &mut r,
            ),
            "json_1k" => {
                insp.inspect_body("/api/orders", Some("application/json"), black_box(json.as_bytes()), false, &mut r)
            }
            _ => insp.inspect_head(
                black_box(&HeadParts { method: "GET", path: "/", query: None, headers: &headers }),
                &mut r,
            ),
        }
        findings += r.findings.len();
    }
    println!("{case} x{n}: {findings} findings");
}
