//! Issue 11, every numbered case, through the real proxy with default settings, a real upstream,
//! many loopback addresses and realistic asset bursts and timings. Each case failed on the code
//! before the fix; the bots at the end are still caught.

use std::time::Duration;

use bytes::Bytes;

use crate::support::*;

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const FORM: &str = "application/x-www-form-urlencoded";

/// A browser navigation: the page, then its sub-resources, as a browser fetches them.
async fn page_with_assets(src: &str, p: &Proxy, page: &str, assets: usize) -> Vec<u16> {
    let nav = [("accept", BROWSER), ("sec-fetch-dest", "document"), ("user-agent", "Mozilla/5.0 Chrome/131")];
    let mut statuses = vec![send_from(src, p.addr, "GET", page, &nav, Bytes::new()).await.status];
    let mut tasks = Vec::new();
    for k in 0..assets {
        let (src, addr) = (src.to_string(), p.addr);
        let ext = ["js", "css", "png", "woff2", "svg"][k % 5];
        let asset = format!("/static/admin/{k}/file{k}.{ext}");
        tasks.push(tokio::spawn(async move {
            send_from(&src, addr, "GET", &asset, &[("accept", "*/*"), ("sec-fetch-dest", "script")], Bytes::new())
                .await
                .status
        }));
    }
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

async fn post_form(src: &str, p: &Proxy, path: &str, referer: Option<&str>, body: &'static str) -> u16 {
    let mut h = vec![("content-type", FORM), ("accept", BROWSER)];
    if let Some(r) = referer {
        h.push(("referer", r));
    }
    send_from(src, p.addr, "POST", path, &h, Bytes::from_static(body.as_bytes())).await.status
}

/// Cases 1, 5 and 6: admin pages with ~20 assets each, an office of 8 behind one address, 7
/// staff each fetching the missing favicon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_assets_offices_and_favicons() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    // 1. Log in, open Posts, click Add within ~10 s: three pages with 21 assets each.
    for page in ["/admin/", "/admin/blog/post/", "/admin/blog/post/add/"] {
        let s = page_with_assets("127.0.70.1", &p, page, 21).await;
        assert!(s.iter().all(|c| *c == 200), "{page}: {s:?}");
    }
    // The same on a non-exempt part of the site.
    for page in ["/blog/", "/blog/hello/", "/blog/second/"] {
        let s = page_with_assets("127.0.70.2", &p, page, 21).await;
        assert!(s.iter().all(|c| *c == 200), "{page}: {s:?}");
    }
    // 5. Eight colleagues behind one NAT address each read two posts (with assets) within ~12 s.
    let mut tasks = Vec::new();
    for person in 0..8u64 {
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(person * 150)).await;
            let mut out = Vec::new();
            for post in 0..2 {
                let nav = [("accept", BROWSER), ("sec-fetch-dest", "document")];
                out.push(
                    send_from("127.0.71.1", addr, "GET", &format!("/blog/post-{person}-{post}/"), &nav, Bytes::new())
                        .await
                        .status,
                );
                for k in 0..6 {
                    out.push(get("127.0.71.1", addr, &format!("/static/css/site{k}.css")).await.status);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            out
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s.iter().all(|c| *c == 200), "office reader: {s:?}");
    }
    // 6. Seven staff from one address open /admin/ and their browsers ask for the favicon and
    // touch icons the site does not have.
    for k in 0..7 {
        assert_eq!(get("127.0.72.1", p.addr, "/favicon.ico").await.status, 404);
        assert_eq!(get("127.0.72.1", p.addr, "/apple-touch-icon-precomposed.png").await.status, 404);
        let s = page_with_assets("127.0.72.1", &p, "/admin/", 3).await;
        assert!(s.iter().all(|c| *c == 200), "staff {k}: {s:?}");
    }
    assert_eq!(get("127.0.72.1", p.addr, "/blog/").await.status, 200);
    assert!(banned_ips(&p).is_empty(), "{:?}", blacklist(&p));
}

/// Cases 2, 3 and 4: fast submits, the form timer per page (office NAT, two tabs), webhooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_fast_submits_shared_addresses_and_webhooks() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    // 2. A password manager submits the contact form 0.7 s after it loaded.
    page_with_assets("127.0.73.1", &p, "/contact/", 4).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(post_form("127.0.73.1", &p, "/contact/", Some("http://app.test/contact/"), "name=a&msg=b").await, 200);
    // ... a Log out button (a POST) clicked 0.98 s after landing ...
    page_with_assets("127.0.73.2", &p, "/account/", 4).await;
    tokio::time::sleep(Duration::from_millis(980)).await;
    assert_eq!(post_form("127.0.73.2", &p, "/accounts/logout/", Some("http://app.test/account/"), "csrf=x").await, 200);
    // ... two clicks on "+" in a cart 0.7 s apart (post, redirect, page again).
    page_with_assets("127.0.73.3", &p, "/cart/", 4).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(post_form("127.0.73.3", &p, "/cart/add/", Some("http://app.test/cart/"), "item=7&qty=1").await, 200);
        page_with_assets("127.0.73.3", &p, "/cart/", 2).await;
    }
    // 3. One office address: Alice opens the contact form; Bob opens it 6.6 s later (simulated
    // by order: Bob's GET lands 0.4 s before Alice sends); Alice sends, then Bob.
    page_with_assets("127.0.74.1", &p, "/contact/", 4).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    page_with_assets("127.0.74.1", &p, "/contact/", 4).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(post_form("127.0.74.1", &p, "/contact/", Some("http://app.test/contact/"), "from=alice").await, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(post_form("127.0.74.1", &p, "/contact/", Some("http://app.test/contact/"), "from=bob").await, 200);
    // One person, two tabs: opens the form twice, sends from the first tab after a while.
    page_with_assets("127.0.74.2", &p, "/contact/", 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    page_with_assets("127.0.74.2", &p, "/contact/", 2).await;
    assert_eq!(post_form("127.0.74.2", &p, "/contact/", Some("http://app.test/contact/"), "tab=1").await, 200);
    // 4. Webhooks: urlencoded POSTs with no GET and no Referer, and their retries.
    for k in 0..8 {
        let src = ["127.0.75.1", "127.0.75.2", "127.0.75.3"][k % 3];
        for hook in ["/paypal/ipn/", "/twilio/sms/", "/slack/commands/"] {
            assert_eq!(post_form(src, &p, hook, None, "payment_status=Completed&txn_id=61E67681CH3238416").await, 200);
        }
    }
    assert!(banned_ips(&p).is_empty(), "{:?}", blacklist(&p));
}

/// Cases 7 and 10: a pasted link with a trailing `)`, a big upload from a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pasted_links_and_uploads() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    assert_eq!(get("127.0.76.1", p.addr, &format!("/items/{KNOWN_UUID})")).await.status, 404);
    assert_eq!(get("127.0.76.1", p.addr, &format!("/items/{KNOWN_UUID}")).await.status, 200);
    // A 12 MiB photo from a browser (the old 10 MiB default answered 413 with raw JSON).
    let photo = Bytes::from(vec![0xffu8; 12 * 1024 * 1024]);
    let h = [("content-type", "image/jpeg"), ("accept", BROWSER)];
    assert_eq!(send_from("127.0.76.2", p.addr, "POST", "/echo/upload", &h, photo).await.status, 200);
    assert!(banned_ips(&p).is_empty());
}

/// Cases 8 and 9: training on the app's own log (written behind the proxy: every line from
/// 127.0.0.1) and on aiwaf's request log after the operator lifted a ban.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_on_the_sites_own_logs() {
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts { env: vec![("AIWAF_MIDDLEWARE_LOGGING", "true".into())], ..Default::default() },
    );
    let log = p.dir.join("gunicorn.log");
    let mut text = String::new();
    for k in 0..400u32 {
        let (path, status) = match k % 5 {
            0 => ("/favicon.ico".to_string(), 404),
            1 => ("/robots.txt".to_string(), 404),
            2 => ("/apple-touch-icon.png".to_string(), 404),
            3 => (format!("/orders/{:08x}-4c1d-5b8e-a716-4466554400{:02}/", k * 7919, k % 100), 404),
            _ => ("/blog/".to_string(), 200),
        };
        text.push_str(&format!(
            "127.0.0.1 - - [22/Nov/2026:10:{:02}:{:02} +0000] \"GET {path} HTTP/1.1\" {status} 512 \"-\" \"Mozilla/5.0\" 0.004\n",
            k / 60 % 60,
            k % 60
        ));
    }
    std::fs::write(&log, text).unwrap();
    let (code, out, err) = p.cli(&["train", "--log", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("behind a proxy") && out.contains("not banned: 127.0.0.1"), "{out}");
    assert!(banned_ips(&p).is_empty(), "{:?}", blacklist(&p));
    let (_, kws, _) = p.cli(&["keywords", "list"]);
    for never in ["favicon", "robots", "apple", "touch", "4c1d", "5b8e"] {
        assert!(!kws.contains(never), "learned {never}: {kws}");
    }
    // A fresh browser's automatic requests and a new order whose id holds `4c1d` pass.
    assert_eq!(get("127.0.77.1", p.addr, "/favicon.ico").await.status, 404);
    assert_eq!(get("127.0.77.1", p.addr, "/robots.txt").await.status, 200);
    assert_eq!(get("127.0.77.1", p.addr, "/orders/9f3e4c1d-5b8e-4e2a-a716-446655440000/").await.status, 200);
    // 9. An office address banned live (a 404 flood), lifted by the operator, then training on
    // aiwaf's own request log: the lifted ban is not re-created.
    for k in 0..6 {
        get("127.0.78.1", p.addr, &format!("/nf/old-link-{k}")).await;
    }
    eventually(Duration::from_secs(3), async || banned_ips(&p).contains(&"127.0.78.1".to_string())).await.unwrap();
    let (code, _, err) = p.cli(&["blacklist", "remove", "127.0.78.1"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.cli(&["model", "regenerate"]);
    assert_eq!(code, 0, "{err}");
    assert!(!banned_ips(&p).contains(&"127.0.78.1".to_string()), "{:?}", blacklist(&p));
}

/// The bots among the people: form bots, flooders, scanners and UUID enumerators are still
/// caught with the same default settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_still_caught() {
    let up = Upstream::start().await;
    let p = Proxy::start(&up.url(), ProxyOpts::default());
    page_with_assets("127.0.79.9", &p, "/contact/", 1).await;
    // A form bot posting again and again without fetching the form.
    let mut last = 0;
    for _ in 0..6 {
        last = post_form("127.0.79.1", &p, "/contact/", None, "name=buy&msg=cheap+pills").await;
    }
    assert_eq!(last, 403, "form bot");
    // A flooder.
    let mut codes = Vec::new();
    for k in 0..45 {
        codes.push(get("127.0.79.2", p.addr, &format!("/blog/?page={k}")).await.status);
    }
    assert_eq!(*codes.last().unwrap(), 403, "flooder: {codes:?}");
    // A scanner.
    for probe in ["/.env", "/wp-login.php", "/.git/config"] {
        get("127.0.79.3", p.addr, probe).await;
    }
    assert_eq!(get("127.0.79.3", p.addr, "/").await.status, 403, "scanner");
    // A UUID enumerator.
    for k in 0..5 {
        get("127.0.79.4", p.addr, &format!("/items/550e8400-e29b-41d4-a716-44665544100{k}")).await;
    }
    assert_eq!(get("127.0.79.4", p.addr, "/").await.status, 403, "uuid enumerator");
    eventually(Duration::from_secs(3), async || banned_ips(&p).len() >= 4).await.expect("four bots banned");
}
