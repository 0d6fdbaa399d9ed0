//! The cheap first pass over every value: one Aho-Corasick scan over trigger literals (with small
//! context checks so that words inside other words, `*/*` in `Accept` or `://` in URLs do not count)
//! plus a few byte-level checks (function-call shape, a command name after a shell separator). The
//! result is a set of rule groups; a value for which it finds nothing is done.

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// Rule groups a value can trigger (gates for the regex rules and libinjection).
pub(crate) mod group {
    pub const SQLI: u32 = 1 << 0;
    pub const XSS: u32 = 1 << 1;
    pub const TRAVERSAL: u32 = 1 << 2;
    pub const RFI: u32 = 1 << 3;
    pub const CMDI: u32 = 1 << 4;
    pub const SSTI: u32 = 1 << 5;
    pub const XXE: u32 = 1 << 6;
    pub const CRLF: u32 = 1 << 7;
    pub const NOSQLI: u32 = 1 << 8;
    pub const CODE: u32 = 1 << 9;
    pub const SESSION: u32 = 1 << 10;
    /// Session cookie names used as argument names.
    pub const SESSION_NAME: u32 = 1 << 11;
    pub const LDAP: u32 = 1 << 12;
    /// Restricted file names in paths and upload names.
    pub const RESTRICTED: u32 = 1 << 13;
    /// Script extensions in upload names.
    pub const UPLOAD: u32 = 1 << 14;
    /// Protocol checks on values (CR/LF, odd characters).
    pub const PROTOCOL: u32 = 1 << 15;
    /// Attack-tool tokens (User-Agent only).
    pub const SCANNER: u32 = 1 << 16;
}

/// Context check applied to a literal hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// Any occurrence counts.
    Any,
    /// Must not be preceded or followed by an ASCII letter or digit.
    Word,
    /// Must not be preceded by an ASCII letter or digit.
    WordStart,
    /// A word, or glued to a digit/quote before, or followed by an operand (`1or1`, `xAND 1`; not `door,`).
    OpenSide,
    /// `/*` not preceded by `*` (`*/*` in `Accept`).
    CommentOpen,
    /// `:/` or `:\` not followed by `/` (not a URL scheme).
    DrivePath,
    /// `$` followed by a letter, `_`, `{` or `(`.
    Dollar,
    /// `{` followed by something other than `"`, `}` or whitespace (not JSON).
    Brace,
    /// `:{` preceded by a digit (serialized PHP).
    DigitBefore,
    /// `/` followed within a few bytes by a shell glob character (`/bi?/`, `/etc/pa[s]swd`).
    GlobNear,
}

fn parse_lit(s: &'static str) -> (&'static str, Verify) {
    if let Some(w) = s.strip_prefix("w:") {
        (w, Verify::Word)
    } else if let Some(w) = s.strip_prefix("oa:") {
        (w, Verify::OpenSide)
    } else if let Some(w) = s.strip_prefix("ws:") {
        (w, Verify::WordStart)
    } else {
        let v = match s {
            "/*" => Verify::CommentOpen,
            ":/" | ":\\" => Verify::DrivePath,
            "$" => Verify::Dollar,
            "{" => Verify::Brace,
            ":{" => Verify::DigitBefore,
            "/" => Verify::GlobNear,
            _ => Verify::Any,
        };
        (s, v)
    }
}

/// Trigger literals per group. `w:` = whole word, `ws:` = word start.
fn literals() -> Vec<(u32, &'static [&'static str])> {
    use group::*;
    vec![
        (
            SQLI,
            &[
                "'",
                "\"",
                "`",
                "w:union",
                "w:select",
                "e-308",
                "sleep",
                "benchmark",
                "waitfor",
                "oa:or",
                "oa:and",
                "oa:xor",
                "w:not",
                "w:having",
                "||",
                "&&",
                "--",
                "/*",
                "#",
                "extractvalue",
                "updatexml",
                "information_schema",
                "outfile",
                "dumpfile",
                "load_file",
                "infile",
                "@@",
                "order by",
                "group by",
                "xp_",
                "sp_",
                "w:exec",
                "w:execute",
                "0x",
                "sysobjects",
                "syscolumns",
                "sysusers",
                "sys.",
                "pg_",
                "sqlite",
                "mysql.",
                "concat",
                "w:drop",
                "w:insert",
                "w:delete",
                "w:update",
                "w:truncate",
                "w:declare",
                "w:alter",
                "w:create",
                "w:shutdown",
                "master.",
                "all_tab",
                "all_users",
                "user_tab",
                "dba_",
                "msys",
                "utl_",
                "dbms_",
                "openrowset",
                "opendatasource",
                "openquery",
                "lo_import",
                "lo_export",
                "()",
                "geometry",
                "polygon",
                "linestring",
                "multipoint",
                "exp(",
                "floor(",
                "name_const",
                "json_keys",
                "gtid",
                "randomblob",
                "unhex",
                "from_base64",
                "cast(",
                "convert(",
                "::",
                "w:rlike",
                "w:regexp",
                "w:limit",
                "w:set",
                "==",
                "w:from",
                "<=>",
                "->",
                "#>",
                "@>",
                "<@",
                "w:immediate",
                "w:analyse",
                "w:values",
                "msdasql",
                "sqloledb",
                "northwind",
                "w:except",
                "w:is",
                "w:procedure",
                "ws:in (",
                "ws:in(",
                "w:when",
                "w:then",
            ],
        ),
        (
            XSS,
            &[
                "<",
                "script",
                "\"",
                "'",
                "`",
                "w:alert",
                "w:prompt",
                "w:confirm",
                "w:eval",
                "document",
                "window.",
                "window[",
                "w:window",
                "innerhtml",
                "outerhtml",
                "insertadjacent",
                "fromcharcode",
                "expression",
                "-moz-binding",
                "behavior",
                "@import",
                "data:",
                "settimeout",
                "setinterval",
                "atob",
                "btoa",
                "w:location",
                "constructor",
                "import(",
                "w:function",
                "ws:onerror",
                "ws:onload",
                "ws:onunload",
                "ws:onmouse",
                "ws:onclick",
                "ws:ondblclick",
                "ws:onfocus",
                "ws:onblur",
                "ws:onkey",
                "ws:onsubmit",
                "ws:onchange",
                "ws:oninput",
                "ws:ontoggle",
                "ws:onbegin",
                "ws:onend",
                "ws:onstart",
                "ws:onanimation",
                "ws:ontransition",
                "ws:onpointer",
                "ws:ontouch",
                "ws:ondrag",
                "ws:ondrop",
                "ws:oncopy",
                "ws:oncut",
                "ws:onpaste",
                "ws:onplay",
                "ws:onpause",
                "ws:onshow",
                "ws:onselect",
                "ws:oninvalid",
                "ws:onreset",
                "ws:onsearch",
                "ws:onabort",
                "ws:onauxclick",
                "ws:oncontextmenu",
                "ws:onhashchange",
                "ws:onmessage",
                "ws:onresize",
                "ws:onscroll",
                "ws:onwheel",
                "ws:onbefore",
                "ws:onpage",
                "ws:onpopstate",
                "ws:onreadystatechange",
                "ws:onafterprint",
                "ws:onloadstart",
                "ws:onloadend",
                "ws:onprogress",
                "ws:oncanplay",
                "ws:ondurationchange",
                "ws:onvolumechange",
                "ws:onseek",
                "ws:onwaiting",
                "ws:onstorage",
                "ws:onbounce",
                "ws:onfinish",
                "ws:onactivate",
                "ws:onfilterchange",
                "ws:onpropertychange",
                "ws:onrepeat",
                "ws:onform",
                "ws:onfocusin",
                "ws:onfocusout",
                "ws:onerror",
                "self[",
                "document",
                "settimeout",
                "url(",
                "noscript",
                "dialog",
                "xmp",
                "plaintext",
                "noembed",
                "listing",
                "<",
                "top[",
                "parent[",
                "frames[",
                "globalthis[",
                "url(",
                "srcdoc",
                "formaction",
                "xlink:href",
                "http-equiv",
                "{{",
                "\t",
                "\n",
            ],
        ),
        (
            TRAVERSAL,
            &[
                "..",
                "etc/",
                "etc\\",
                "passwd",
                "shadow",
                "proc/",
                "sys/",
                "boot.ini",
                "win.ini",
                "system.ini",
                "system32",
                "winnt",
                "inetpub",
                "var/",
                ".ssh",
                ".htaccess",
                ".htpasswd",
                "web.config",
                "wp-config",
                ".git/",
                ".svn",
                ".bash",
                ".aws",
                ".docker",
                "windows/",
                "windows\\",
                "localsettings",
                ".ds_store",
                ".zsh",
                "_history",
                ".npmrc",
                ".netrc",
                ".pgpass",
                "usr/",
                "bin/",
                "dev/",
                "tmp/",
                "root/",
                "home/",
                ":/",
                ":\\",
                "%system",
                "%windir",
                "%comspec",
                "%userprofile",
                "%appdata",
                "php://",
                "file:",
                "expect://",
                "zip://",
                "phar://",
                "glob://",
                "compress.",
                "zlib://",
                "rar://",
                "ogg://",
                "ssh2",
                "input://",
                "jar:",
                "netdoc:",
                "data://",
            ],
        ),
        (
            RFI,
            &[
                "://",
                "http:",
                "https:",
                "169.254",
                "metadata",
                "kubernetes",
                "100.100.100.200",
                "data:",
                "localhost",
                "loopback",
                "127.",
                "instance-data",
                "localtest.me",
                "lvh.me",
                "nip.io",
                "sslip.io",
                "docker.internal",
                "containers.internal",
                "@",
                "0x7f",
                "2130706433",
                "017700000001",
                "0177.",
                "[::",
                "0.0.0.0",
            ],
        ),
        (
            CMDI,
            &[
                "~+",
                "~-",
                "`",
                "$(",
                "${",
                "$ifs",
                "<(",
                ">(",
                "bin/",
                "/dev/",
                "w:cmd",
                "cmd.",
                "powershell",
                "pwsh",
                "invoke-",
                "w:iex",
                "w:iwr",
                "w:irm",
                "start-",
                "new-",
                "get-",
                "set-",
                "remove-",
                "copy-",
                "out-",
                "add-",
                "stop-",
                "restart-",
                "convertto-",
                "convertfrom-",
                "downloadstring",
                "downloadfile",
                "base64string",
                "-enc",
                "%comspec",
                "for /",
                "for %",
                "if exist",
                "if not",
                "if defined",
                "if errorlevel",
                "if /i",
                "if %",
                "w:if",
                "$shell",
                "$bash",
                "${shell",
                "$0",
                "c:/windows",
                "c:\\windows",
                "$[",
                "/",
                "() {",
                "(){",
                "``",
                "iwmi",
                "wmic",
                "win32_",
                "$((",
                "$'",
                "{",
                "$@",
                "$*",
            ],
        ),
        (
            SSTI,
            &[
                "{{",
                "{%",
                "${",
                "#{",
                "<%",
                "%>",
                "*{",
                "@(",
                "{#",
                "<#",
                "#set",
                "#foreach",
                "$class",
                "freemarker",
                "{php}",
                "$ex",
                "[[",
                "__class",
                "__mro",
                "__subclasses",
                "__globals",
                "__builtins",
                "__init",
                "__import",
                "__base",
                "__dict",
                "__getattribute",
                "__reduce",
                "__code",
                "__func",
                "__${",
                "{",
            ],
        ),
        (XXE, &["<!", "xi:include", "xmlns:xi"]),
        (CRLF, &["\r", "\n", "http/"]),
        (NOSQLI, &["$", "db.", "this.", "||", "w:return", "sleep"]),
        (
            CODE,
            &[
                "<!--",
                "_$$",
                "w:system",
                "w:exec",
                "w:passthru",
                "w:shell_exec",
                "w:assert",
                "infinity",
                "[php]",
                "php]",
                "unserialize_",
                "apc.",
                "sodium",
                "zend_",
                "posix",
                "pcntl",
                "stream_socket",
                "socket_",
                "curl_",
                "openssl",
                "gethostby",
                "dns_get",
                "imap_",
                "ldap_",
                "ftp_",
                "ssh2_",
                "apache_",
                "call_user",
                "func_get",
                "ini_",
                "mb_ereg",
                "fsockopen",
                "highlight",
                "show_source",
                "php_",
                "<?",
                "$",
                "::",
                "java",
                "runtime",
                "processbuilder",
                "transformer",
                "closure",
                "factory",
                "templatesimpl",
                "xmldecoder",
                "org.apache",
                "org.springframework",
                "org.hibernate",
                "org.omg",
                "com.opensymphony",
                "javax",
                "bsh.",
                "com.sun",
                "com.alibaba",
                "com.mchange",
                "sun.misc",
                "sun.reflect",
                "sun.rmi",
                "ysoserial",
                "ro0ab",
                "kztaau",
                "cs7qaf",
                "aced0005",
                "h4siaaaaaaaa",
                "\u{ac}",
                "ognl",
                "%{",
                "#_memberaccess",
                "classloader",
                "#{",
                "#context",
                "#request",
                "#application",
                "#session",
                "#attr",
                "#parameters",
                "child_process",
                "w:process",
                "mainmodule",
                "constructor",
                "console",
                "__proto__",
                "prototype",
                "while(",
                "while (",
                "for(",
                "for (",
                "@{",
                "kernel",
                "open3",
                "%x{",
                "instance_eval",
                "class_eval",
                "module_eval",
                "constantize",
                "objectspace",
                "marshal",
                "__import__",
                "subprocess",
                "pickle",
                "commands.",
                "w:qx",
                "erb.",
                ":{",
                "@type",
                "allow_url",
                "auto_prepend",
                "auto_append",
                "disable_",
                "open_basedir",
                "safe_mode",
                "suhosin",
                "mbstring",
                "pcre.",
                "zend.",
                "opcache",
                "session.",
                "display_",
                "log_errors",
                "error_",
                "expose_php",
                "file_uploads",
                "short_open_tag",
                "include_path",
                "register_globals",
                "magic_quotes",
                "enable_dl",
                "user_ini",
                "phar.",
                "assert.",
                "max_execution",
                "memory_limit",
                "post_max",
                "upload_",
                "sendmail",
                "cgi.",
                "fastcgi",
                "mail.",
                "output_handler",
                "html_errors",
                "variables_order",
                "extension_dir",
                "xdebug",
                "=>",
                "popen",
                "<<<",
            ],
        ),
        (UPLOAD, &["php", "pht", "phar", "pgif", "shtml", "htaccess", "user.ini", "asp", "jsp", "cgi", "sess_"]),
        (SESSION, &[".cookie", "http-equiv", "set-cookie", "w:cookie"]),
        (SESSION_NAME, &["sessionid", "sessid", "cfid", "cftoken", "sid", "session", "sess"]),
        (LDAP, &["*)", ")(", "(|", "(&", "(!", ")|", ")&", ") (", ")\t("]),
        (
            RESTRICTED,
            &[
                ".bak",
                ".backup",
                ".bkp",
                ".old",
                ".orig",
                ".sav",
                ".sw",
                ".tmp",
                ".temp",
                ".inc",
                ".cnf",
                ".conf",
                ".ini",
                ".log",
                ".sql",
                ".mdb",
                ".dist",
                ".copy",
                "passwd",
                ".pem",
                ".key",
                ".env",
                ".kdbx",
                ".ovpn",
                ".db",
                ".rdb",
                ".sqlite",
                ".dbf",
                ".frm",
                ".myd",
                ".myi",
                ".ibd",
                ".pfx",
                ".p12",
                ".jks",
                ".keystore",
                ".dump",
                "/proc/",
                "shadow",
                "_vti_",
                "vti_txt",
                "_cti_pvt",
                "_private",
                "iisadm",
                "iissamples",
                "iishelp",
                "msadc",
                "scripts/tools",
                "printers",
                "cfide/",
                "websphere",
                "exampleswebapp",
                "webapp/examples",
                "samples/",
                "servlet/",
                ".htr",
                ".ida",
                ".idq",
                ".htw",
                ".printer",
                ".stm",
                ".btr",
                ".nsf",
                "sudoers",
                "~",
                "/.",
                "web.config",
                "app.config",
                "wp-config",
                "entries",
                "info.php",
                "test.php",
                ".zip",
                ".tar",
                ".gz",
                ".rar",
                ".7z",
                ".db",
                ".sqlite",
                ".cfg",
                ".yml",
                ".yaml",
                ".ds_store",
                ".class",
                ".java",
                ".jar",
                ".war",
                ".rdb",
                ".dump",
                ".orig",
                ".lock",
                ".txt",
                ".properties",
                ".xml",
                ".json",
                ".nsf",
                ".mdf",
                ".ldf",
                ".pfx",
                ".p12",
                ".crt",
                ".csr",
            ],
        ),
    ]
}

/// The compiled first pass.
pub(crate) struct Prefilter {
    main: Lits,
    aux: Lits,
}

impl Prefilter {
    pub(crate) fn new() -> Result<Prefilter, String> {
        let aux_groups = group::SCANNER | group::RESTRICTED | group::UPLOAD;
        let mut all = literals();
        all.push((group::SCANNER, crate::rules::SCANNER_TOKENS));
        let (aux, main): (Vec<_>, Vec<_>) = all.into_iter().partition(|(g, _)| g & aux_groups != 0);
        Ok(Prefilter { main: Lits::new(main)?, aux: Lits::new(aux)? })
    }

    /// Groups triggered by literals in `text`; the path/file-name/User-Agent literals only run where they
    /// apply (`aux` = the scope includes a path, a file name or the User-Agent).
    pub(crate) fn literal_groups(&self, text: &[u8], aux: bool) -> u32 {
        let g = self.main.groups(text);
        if aux { g | self.aux.groups(text) } else { g }
    }
}

/// One automaton over trigger literals with their groups and context checks.
struct Lits {
    ac: aho_corasick::dfa::DFA,
    info: Vec<(u32, Verify)>,
}

impl Lits {
    fn new(lists: Vec<(u32, &'static [&'static str])>) -> Result<Lits, String> {
        let mut pats: Vec<&'static str> = Vec::new();
        let mut info: Vec<(u32, Verify)> = Vec::new();
        for (g, words) in lists {
            for &w in words {
                let (p, v) = parse_lit(w);
                if let Some(i) = pats.iter().zip(&info).position(|(q, (_, qv))| q.eq_ignore_ascii_case(p) && *qv == v) {
                    info[i].0 |= g;
                } else {
                    pats.push(p);
                    info.push((g, v));
                }
            }
        }
        let ac = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .build(&pats)
            .map_err(|e| format!("prefilter: {e}"))?;
        Ok(Lits { ac, info })
    }

    /// One overlapping pass: a hand-rolled loop over the DFA's transitions (the generic overlapping
    /// iterator costs several times more per byte), reporting every literal that ends at each position.
    fn groups(&self, text: &[u8]) -> u32 {
        let dfa = &self.ac;
        let Ok(mut sid) = dfa.start_state(Anchored::No) else { return 0 };
        let mut mask = 0u32;
        for (i, &b) in text.iter().enumerate() {
            sid = dfa.next_state(Anchored::No, sid, b);
            if !dfa.is_special(sid) || !dfa.is_match(sid) {
                continue;
            }
            for k in 0..dfa.match_len(sid) {
                let pid = dfa.match_pattern(sid, k);
                let (g, v) = self.info[pid.as_usize()];
                if g & !mask == 0 {
                    continue;
                }
                let end = i + 1;
                let start = end - dfa.pattern_len(pid);
                if verify(v, text, start, end) {
                    mask |= g;
                }
            }
        }
        mask
    }
}

fn is_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric())
}

fn verify(v: Verify, t: &[u8], s: usize, e: usize) -> bool {
    let before = if s > 0 { t.get(s - 1) } else { None };
    let after = t.get(e);
    match v {
        Verify::Any => true,
        Verify::Word => !is_alnum(before) && !is_alnum(after),
        Verify::WordStart => !is_alnum(before),
        Verify::OpenSide => {
            let word_end = !after.is_some_and(|b| b.is_ascii_alphanumeric());
            (word_end && !before.is_some_and(|b| b.is_ascii_alphanumeric()))
                || before.is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b')' | b'`'))
                || (word_end
                    && t[e..]
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        .is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b'(' | b'`' | b'@')))
        }
        Verify::CommentOpen => before != Some(&b'*') || after == Some(&b'*') || after == Some(&b'!'),
        Verify::DrivePath => after.is_some_and(|&b| b != b'/'),
        Verify::Dollar => after.is_some_and(|&b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'{' | b'(' | b'[')),
        Verify::Brace => after.is_some_and(|&b| b != b'"' && b != b'}' && !b.is_ascii_whitespace()),
        Verify::DigitBefore => before.is_some_and(|b| b.is_ascii_digit()),
        Verify::GlobNear => {
            let w = &t[e..t.len().min(e + 12)];
            let w = &w[..w.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(w.len())];
            w.iter()
                .enumerate()
                .skip(1)
                .any(|(k, &b)| matches!(b, b'?' | b'*' | b'[') && w[k - 1].is_ascii_alphabetic())
                || w.first().is_some_and(|&b| b == b'?' || b == b'[')
        }
    }
}

/// True if some `(` follows an identifier that starts with a letter, `_` or `$`, a comment or a closing
/// bracket (a function call shape).
pub(crate) fn has_call(t: &[u8]) -> bool {
    for p in memchr::memchr_iter(b'(', t) {
        let mut j = p;
        while j > 0 && matches!(t[j - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
            j -= 1;
        }
        // skip a `/**/` comment between name and parenthesis
        if j >= 2 && t[j - 1] == b'/' && t[j - 2] == b'*' {
            return true;
        }
        // `(...)(...)`, `[...](...)`: an expression called as a function
        if j > 0 && matches!(t[j - 1], b')' | b']' | b'}') {
            return true;
        }
        let end = j;
        while j > 0 && (t[j - 1].is_ascii_alphanumeric() || t[j - 1] == b'_' || t[j - 1] == b'$') {
            j -= 1;
        }
        if j < end && (t[j].is_ascii_alphabetic() || t[j] == b'_' || t[j] == b'$') {
            return true;
        }
    }
    false
}

/// [`BYTE_CLASS`] bit: `(`.
pub(crate) const PAREN: u8 = 1;
/// [`BYTE_CLASS`] bit: a shell separator (`;`, `|`, `&`, CR, LF, `` ` ``, `(`, `{`).
pub(crate) const SEPARATOR: u8 = 2;
/// [`BYTE_CLASS`] bit: whitespace or a shell operator that can end a command word.
pub(crate) const BLANK: u8 = 4;

/// [`BYTE_CLASS`] bit: a character the shell drops inside a word (`'`, `"`, `\\`, `^`, `$`).
pub(crate) const EVASION: u8 = 8;

/// Per-byte class bits, OR-ed over a value in one pass to skip shape checks that cannot match.
pub(crate) static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let seps = b";|&\n\r`({";
    let mut i = 0;
    while i < seps.len() {
        t[seps[i] as usize] |= SEPARATOR;
        i += 1;
    }
    t[b'(' as usize] |= PAREN;
    let blanks = b" \t\n\r\x0b\x0c;|&<>`$";
    let mut i = 0;
    while i < blanks.len() {
        t[blanks[i] as usize] |= BLANK;
        i += 1;
    }
    let ev = b"'\"\\^$";
    let mut i = 0;
    while i < ev.len() {
        t[ev[i] as usize] |= EVASION;
        i += 1;
    }
    t
};

static SEPARATOR_TABLE: [bool; 256] = {
    let mut t = [false; 256];
    let seps = b";|&\n\r`({";
    let mut i = 0;
    while i < seps.len() {
        t[seps[i] as usize] = true;
        i += 1;
    }
    t
};

/// Calls `f` with the word that follows each shell separator (`;`, `|`, `&`, newline, `` ` ``, `(`),
/// skipping blanks, opening brackets/quotes and a leading `/bin/`-style directory. Stops when `f`
/// returns true.
pub(crate) fn words_after_separators(t: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    for (i, &b) in t.iter().enumerate() {
        if !SEPARATOR_TABLE[b as usize] {
            continue;
        }
        let mut j = i + 1;
        while j < t.len()
            && matches!(t[j], b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'(' | b'\'' | b'"' | b'\\' | b'|' | b'&' | b';')
        {
            j += 1;
        }
        let rest = &t[j..];
        // `/usr/bin/cat`: take the part after the last slash of the first token
        let tok_end = rest
            .iter()
            .take(64)
            .position(|c| c.is_ascii_whitespace() || matches!(c, b';' | b'|' | b'&' | b')' | b'<' | b'>' | b'`'))
            .unwrap_or(rest.len().min(64));
        let tok = &rest[..tok_end];
        let word_start = match tok.iter().rposition(|&c| c == b'/') {
            Some(s) if tok.first() == Some(&b'/') || tok.starts_with(b"bin/") || tok.starts_with(b"usr/") => j + s + 1,
            _ => j,
        };
        let w = &t[word_start..];
        let end = w
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'.'))
            .unwrap_or(w.len());
        if end > 0 && end <= 16 && f(&w[..end]) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_values_trigger_nothing() {
        let p = Prefilter::new().expect("prefilter");
        for v in [
            &b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"[..],
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            b"https://shop.example/tienda1/publico/productos.jsp",
            b"08C8DCD89400C53A4F6F4C6029663578",
            b"gzip, deflate, br",
        ] {
            let g = p.literal_groups(v, false) & !group::RFI;
            assert_eq!(g, 0, "{}", String::from_utf8_lossy(v));
            assert!(!has_call(v));
        }
        assert!(has_call(b"sleep(5)"));
        assert!(has_call(b"a=char (65)"));
        assert!(!has_call(b"Mozilla/5.0 (X11)"));
    }

    #[test]
    fn separators() {
        let mut seen = Vec::new();
        words_after_separators(b"a; /usr/bin/cat x|id&&`uname`", &mut |w| {
            seen.push(String::from_utf8_lossy(w).into_owned());
            false
        });
        assert_eq!(seen, ["cat", "id", "uname"]);
    }
}
