//! Criterion benches: an empty GET, a GET with a listing's query, a typical CSIC-like request (also checked against a learned
//! profile and collected for learning), a ~1 KiB JSON body.

use aiwaf_payload::{HeadParts, Inspector, Overlay, PayloadConfig, Profile, Report, Shape};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[path = "support/cases.rs"]
mod cases;

fn bench(c: &mut Criterion) {
    let insp = Inspector::new(PayloadConfig::default()).expect("config");
    let headers = cases::headers();
    c.bench_function("get_no_query", |b| {
        b.iter(|| {
            let mut r = Report::default();
            insp.inspect_head(
                black_box(&HeadParts { method: "GET", path: "/", query: None, headers: &headers }),
                &mut r,
            );
            r
        })
    });
    c.bench_function("get_query", |b| {
        b.iter(|| {
            let mut r = Report::default();
            insp.inspect_head(
                black_box(&HeadParts {
                    method: "GET",
                    path: "/shop/items",
                    query: Some(cases::GET_QUERY),
                    headers: &headers,
                }),
                &mut r,
            );
            r
        })
    });
    let form = cases::CSIC_FORM;
    c.bench_function("csic_like", |b| {
        b.iter(|| {
            let mut r = Report::default();
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
            r
        })
    });
    // the same request on a route the profile enforces: checked and collected
    let profile = Profile::new(insp.config().profile.clone());
    let ov = Overlay::default();
    let profiled = |r: &mut Report, shape: &mut Shape| {
        insp.inspect_head_profiled(
            black_box(&HeadParts {
                method: "POST",
                path: cases::CSIC_PATH,
                query: Some(cases::CSIC_QUERY),
                headers: &headers,
            }),
            &ov,
            Some((&profile, &mut *shape)),
            r,
        );
        insp.inspect_body_profiled(
            cases::CSIC_PATH,
            Some("application/x-www-form-urlencoded"),
            black_box(form),
            false,
            &ov,
            Some((&profile, shape)),
            r,
        );
    };
    for client in 0..100 {
        let (mut r, mut shape) = (Report::default(), Shape::default());
        profiled(&mut r, &mut shape);
        profile.learn(&shape, client, false, 1_000 + client);
    }
    profile.publish(1_000_000);
    assert_eq!(profile.rules().len(), 1);
    c.bench_function("csic_like_profiled", |b| {
        b.iter(|| {
            let (mut r, mut shape) = (Report::default(), Shape::default());
            profiled(&mut r, &mut shape);
            (r, shape)
        })
    });
    let json = cases::json_1k();
    c.bench_function("json_1k", |b| {
        b.iter(|| {
            let mut r = Report::default();
            insp.inspect_body("/api/orders", Some("application/json"), black_box(json.as_bytes()), false, &mut r);
            r
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
