//! Generates a deterministic nginx access log for training benchmarks and demos.
//!
//! `gen-log --lines 1000000 [--format combined-rt|combined|apache-d|seed] [--seed 1] > access.log`
//!
//! Traffic: a few thousand readers browsing a site (pages, assets, the odd broken link, slow
//! report pages), plus scanners probing for admin tools and config files, flooders, and
//! UUID enumerators — about 3 % of lines are hostile.

use std::io::{BufWriter, Write};

struct Rng(aiwaf_forest::SplitMix64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.next() % n
    }
    fn unit(&mut self) -> f64 {
        self.0.unit()
    }
}

const PAGES: &[&str] = &[
    "/",
    "/blog/",
    "/blog/2024/05/hello-world/",
    "/blog/2025/01/rust-and-waf/",
    "/about/",
    "/contact/",
    "/products/",
    "/products/widget-3000/",
    "/products/widget-4000/?color=blue",
    "/search?q=widget",
    "/en/profile/",
    "/static/css/app.css",
    "/static/js/app.js",
    "/static/img/logo.png",
    "/api/items?page=2",
    "/api/cart",
];
const PROBES: &[&str] = &[
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/.env",
    "/.git/config",
    "/admin.php",
    "/config.php.bak",
    "/backup.zip",
    "/xmlrpc.php",
    "/wp-admin/setup-config.php",
    "/cgi-bin/test.cgi",
    "/server-status",
    "/actuator/env",
    "/dbadmin/",
    "/shell.php",
    "/upload.jsp",
    "/login.asp",
];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn main() -> std::io::Result<()> {
    let mut lines: u64 = 100_000;
    let mut format = "combined-rt".to_string();
    let mut seed = 1u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--lines" => lines = args[i + 1].parse().expect("--lines N"),
            "--format" => format = args[i + 1].clone(),
            "--seed" => seed = args[i + 1].parse().expect("--seed N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let mut rng = Rng(aiwaf_forest::SplitMix64::from_state(seed));
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let start: u64 = 1_795_392_000; // 2026-11-23 00:00:00 UTC
    let span = 86_400.0;
    let readers = 5_000u64;
    for n in 0..lines {
        let t = start + (n as f64 / lines as f64 * span) as u64;
        let roll = rng.below(1000);
        let (ip, target, status, rt): (String, String, u16, f64) = if roll < 15 {
            // Scanners: a few dozen addresses, probing.
            let s = rng.below(40);
            let p = PROBES[rng.below(PROBES.len() as u64) as usize];
            (format!("203.0.113.{s}"), p.to_string(), 404, 0.002 + rng.unit() * 0.01)
        } else if roll < 25 {
            // Flooders hammering one page.
            (format!("198.18.0.{}", rng.below(8)), "/search?q=x".into(), 200, 0.01)
        } else if roll < 30 {
            // UUID enumeration.
            let id = format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                rng.next() as u32,
                rng.below(65536),
                rng.below(4096),
                rng.below(4096),
                rng.next() & 0xffff_ffff_ffff
            );
            (format!("192.0.2.{}", rng.below(10)), format!("/api/orders/{id}"), 404, 0.004)
        } else {
            let r = rng.below(readers);
            let ip = if r.is_multiple_of(10) {
                format!("2001:db8:{:x}::{:x}", r / 256, r % 256)
            } else {
                format!("10.{}.{}.{}", r / 65536, (r / 256) % 256, r % 254 + 1)
            };
            let p = PAGES[rng.below(PAGES.len() as u64) as usize];
            let (target, status) = if rng.below(200) == 0 {
                ("/old-page/".to_string(), 404)
            } else {
                (p.to_string(), if p == "/contact/" && rng.below(3) == 0 { 302 } else { 200 })
            };
            let rt = if target.starts_with("/static/") {
                0.001 + rng.unit() * 0.004
            } else {
                0.02 + rng.unit() * rng.unit() * 1.5
            };
            (ip, target, status, rt)
        };
        let days = (t / 86_400) as i64;
        let secs = t % 86_400;
        let (y, m, d) = civil(days);
        let method = if target == "/contact/" && status == 302 { "POST" } else { "GET" };
        write!(
            w,
            "{ip} - - [{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000] \"{method} {target} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\"",
            MONTHS[(m - 1) as usize],
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            200 + rng.below(20_000),
        )?;
        match format.as_str() {
            "combined-rt" => writeln!(w, " {rt:.3}")?,
            "apache-d" => writeln!(w, " {}", (rt * 1e6) as u64)?,
            // The format aiwaf 0.1.9.1.6's trainer requires.
            "seed" => writeln!(w, " response-time={rt:.3}")?,
            _ => writeln!(w)?,
        }
    }
    w.flush()
}
