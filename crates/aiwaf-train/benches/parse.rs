//! Access-log parsing throughput on one core (MB/s):
//! `cargo bench -p aiwaf-train --bench parse`.

use std::hint::black_box;

use aiwaf_train::parse::{LogFormat, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn sample(n: usize) -> Vec<u8> {
    let targets = ["/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/wp-login.php"];
    let mut out = String::new();
    for k in 0..n {
        let ip = if k % 10 == 0 {
            format!("2001:db8::{:x}", k % 4096)
        } else {
            format!("10.{}.{}.{}", k % 200, k % 250, k % 254 + 1)
        };
        out.push_str(&format!(
            "{ip} - - [23/Nov/2026:{:02}:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" {} {} \"https://example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\" 0.{:03}\n",
            k / 3600 % 24,
            k / 60 % 60,
            k % 60,
            targets[k % targets.len()],
            if k % 17 == 0 { 404 } else { 200 },
            200 + k % 20_000,
            k % 1000
        ));
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let buf = sample(20_000);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("combined_rt_lines", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for line in buf.split(|&c| c == b'\n') {
                if parse_line(black_box(line), LogFormat::CombinedRt).is_ok() {
                    ok += 1;
                }
            }
            assert_eq!(ok, 20_000);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
