//! Runs the criterion bench's requests a fixed number of times, for instruction counts under
//! callgrind (repeatable where wall-clock time is not):
//! `valgrind --tool=callgrind target/release/examples/inspect_count CASE N` with CASE
//! `get_no_query`, `csic_like` or `json_1k`; divide `Ir` by N.

use aiwaf_payload::{HeadParts, Inspector, PayloadConfig, Report};
use std::hint::black_box;

const UA: &[u8] =
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("get_no_query", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let insp = Inspector::new(PayloadConfig::default()).expect("config");
    let headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"shop.example"),
        ("User-Agent", UA),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Cookie", b"JSESSIONID=08C8DCD89400C53A4F6F4C6029663578; _ga=GA1.2.123.456"),
        ("Referer", b"https://shop.example/tienda1/publico/productos.jsp"),
    ];
    let form = b"modo=registro&login=natiuk&password=perjura&nombre=Ahmed&apellidos=Moreno+Undurraga&email=lag%40xavipetit.lu&dni=39499084B&direccion=Plza.+Promesas%2C+123%2C+";
    let mut json = String::from("{\"order\":{\"id\":\"A-1029\",\"items\":[");
    for i in 0..12 {
        json.push_str(&format!(
            "{{\"sku\":\"SKU-{i:04}\",\"name\":\"Blue cotton shirt size {i}\",\"qty\":{i},\"price\":19.99}},"
        ));
    }
    json.push_str(
        "{\"sku\":\"END\"}],\"customer\":{\"email\":\"ana@example.com\",\"note\":\"Leave at the door, thanks!\"}}}",
    );
    let mut findings = 0usize;
    for _ in 0..n {
        let mut r = Report::default();
        match case {
            "csic_like" => {
                insp.inspect_head(
                    black_box(&HeadParts {
                        method: "POST",
                        path: "/tienda1/publico/anadir.jsp",
                        query: Some("id=2&nombre=Jam%F3n+Ib%E9rico&precio=85&cantidad=18&B1=A%F1adir+al+carrito"),
                        headers: &headers,
                    }),
                    &mut r,
                );
                insp.inspect_body(
                    "/tienda1/publico/anadir.jsp",
                    Some("application/x-www-form-urlencoded"),
                    black_box(form),
                    false,
                    &mut r,
                );
            }
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
