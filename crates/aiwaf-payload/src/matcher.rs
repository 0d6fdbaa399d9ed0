//! Compiled matchers: the class prefilter, the regex rules, libinjection fingerprinting, the Log4Shell
//! de-obfuscator and the scanner User-Agent list. `Matcher::scan` inspects one value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::decode;
use crate::report::{Class, Severity};
use crate::rules::{self, Form, UNIX_STRONG, UNIX_WEAK, scope};

/// Longest input handed to libinjection (bounded work).
const LIBINJECTION_MAX: usize = 4096;

/// Static description of a rule that fired.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleMeta {
    pub id: &'static str,
    pub class: Class,
    pub pl: u8,
    pub sev: Severity,
}

struct Compiled {
    meta: RuleMeta,
    form: Form,
    scope: u16,
    re: Regex,
}

/// Per-value scan parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanCtx {
    /// Scope bits of the target.
    pub scope: u16,
    /// Enabled classes (bit per class).
    pub classes: u32,
    /// Rules above this paranoia level do not run.
    pub max_pl: u8,
}

/// One hit: the rule, the matched fragment and the form the rule saw.
pub(crate) struct Hit<'a> {
    pub meta: RuleMeta,
    pub matched: &'a [u8],
    pub seen: &'a [u8],
}

/// All compiled matchers.
pub(crate) struct Matcher {
    prefilter: AhoCorasick,
    prefilter_mask: Vec<u32>,
    rules: Vec<Compiled>,
    scanners: AhoCorasick,
    commands: HashSet<&'static str>,
}

fn class_literals() -> Vec<(Class, Vec<&'static str>)> {
    vec![
        (
            Class::Sqli,
            vec![
                "'",
                "\"",
                "`",
                "union",
                "select",
                "sleep",
                "benchmark",
                "waitfor",
                " or ",
                " and ",
                "||",
                "&&",
                "xor",
                "--",
                "/*",
                "#",
                ";",
                "extractvalue",
                "updatexml",
                "information_schema",
                "outfile",
                "dumpfile",
                "load_file",
                "infile",
                "char(",
                "chr(",
                "@@",
                "having",
                "order by",
                "group by",
                "xp_",
                "sp_",
                "exec",
                "0x",
                "sys",
                "pg_",
                "sqlite",
                "mysql",
                "concat",
                "drop",
                "insert",
                "delete",
                "update",
                "truncate",
                "declare",
                "%00",
                "master",
                "all_",
                "user_tab",
                "dba_",
                "msys",
                "utl_",
                "dbms_",
                "openrowset",
                "opendatasource",
                "openquery",
                "lo_",
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
                "or 1",
                "or true",
                "and 1",
                "::",
                "and",
                "or",
                "like",
                "regexp",
                "rlike",
                "(",
            ],
        ),
        (
            Class::Xss,
            vec![
                "<",
                "script",
                "\"",
                "'",
                "`",
                "alert",
                "prompt",
                "confirm",
                "eval",
                "document",
                "window",
                "innerhtml",
                "outerhtml",
                "insertadjacent",
                "fromcharcode",
                "expression",
                "-moz-binding",
                "behavior",
                "@import",
                "data",
                "settimeout",
                "setinterval",
                "atob",
                "location",
                "constructor",
                "import(",
                "function",
                "onerror",
                "onload",
                "onunload",
                "onmouse",
                "onclick",
                "ondblclick",
                "onfocus",
                "onblur",
                "onkey",
                "onsubmit",
                "onchange",
                "oninput",
                "ontoggle",
                "onbegin",
                "onend",
                "onstart",
                "onanimation",
                "ontransition",
                "onpointer",
                "ontouch",
                "ondrag",
                "ondrop",
                "oncopy",
                "oncut",
                "onpaste",
                "onplay",
                "onpause",
                "onshow",
                "onselect",
                "oninvalid",
                "onreset",
                "onsearch",
                "onabort",
                "onauxclick",
                "oncontextmenu",
                "onhashchange",
                "onmessage",
                "onresize",
                "onscroll",
                "onwheel",
                "onbefore",
                "onpage",
                "onpopstate",
                "onreadystatechange",
                "onafterprint",
                "onloadstart",
                "onloadend",
                "onprogress",
                "oncanplay",
                "ondurationchange",
                "onvolumechange",
                "onseek",
                "onwaiting",
                "onstorage",
                "onbounce",
                "onfinish",
                "onactivate",
                "onfilterchange",
                "onpropertychange",
                "onrepeat",
                "onform",
                "self[",
                "top[",
                "parent[",
                "frames[",
                "globalthis[",
                "url(",
            ],
        ),
        (
            Class::Traversal,
            vec![
                "..",
                "etc/",
                "passwd",
                "shadow",
                "proc/",
                "boot.ini",
                "win.ini",
                "system.ini",
                "system32",
                "winnt",
                "inetpub",
                "var/",
                "://",
                ".ssh",
                ".htaccess",
                ".htpasswd",
                "web.config",
                "wp-config",
                ".git",
                ".svn",
                ".bash",
                ".aws",
                ".docker",
                "windows",
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
                "%system",
                "%windir",
                "%comspec",
                "%userprofile",
                "%appdata",
            ],
        ),
        (
            Class::Rfi,
            vec![
                "://",
                "169.254",
                "metadata",
                "kubernetes",
                "100.100.100.200",
                "data:",
                "localhost",
                "127.",
                "instance-data",
            ],
        ),
        (
            Class::Cmdi,
            vec![
                ";",
                "|",
                "&",
                "`",
                "$(",
                "${",
                "$ifs",
                "\n",
                "<(",
                ">(",
                "bin/",
                "/dev/",
                "cmd",
                "powershell",
                "pwsh",
                "invoke-",
                "iex",
                "iwr",
                "irm",
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
                "convert",
                "download",
                "base64string",
                "-enc",
                "%comspec",
                "for /",
                "if exist",
                "if not",
                "if defined",
                "if errorlevel",
                "for ",
                "if ",
                "$shell",
                "$bash",
                "${shell",
                "$0",
                "c:/windows",
                "c:\\windows",
                "$[",
                "$((",
                "$'",
                "{",
            ],
        ),
        (
            Class::Ssti,
            vec![
                "{{",
                "{%",
                "${",
                "#{",
                "<%",
                "%>",
                "*{",
                "@(",
                "__",
                "{#",
                "<#",
                "#set",
                "#foreach",
                "$class",
                "freemarker",
                "{php}",
                "$ex",
                "[[",
                "*",
            ],
        ),
        (Class::Xxe, vec!["<!", "xi:include", "xmlns:xi"]),
        (Class::CodeInjection, vec!["<!--"]),
        (Class::Crlf, vec!["\r", "\n"]),
        (Class::Nosqli, vec!["$", "db.", "this.", "||", "return", "sleep"]),
        (
            Class::CodeInjection,
            vec![
                "<?",
                "(",
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
                "org.",
                "com.",
                "sun.",
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
                "process",
                "mainmodule",
                "constructor",
                "console",
                "__proto__",
                "prototype",
                "while",
                "for",
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
                "qx",
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
                "php",
                "phtml",
                "pht",
                "phar",
                "pgif",
                "shtml",
                "htaccess",
                "user.ini",
                "asp",
                "jsp",
                "sess_",
            ],
        ),
        (Class::SessionFixation, vec![".cookie", "http-equiv", "set-cookie", "sessionid", "sessid", "cfid", "cftoken"]),
        (Class::Ldapi, vec!["*)", ")(", "(|", "(&", "(!"]),
        (
            Class::Protocol,
            vec![
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
                "~",
                "/.",
                "web.config",
                "app.config",
                "wp-config",
                "entries",
                "info.php",
                "test.php",
            ],
        ),
    ]
}

impl Matcher {
    pub(crate) fn new() -> Result<Matcher, String> {
        let mut lits: Vec<&'static str> = Vec::new();
        let mut masks: Vec<u32> = Vec::new();
        for (class, words) in class_literals() {
            for w in words {
                if let Some(i) = lits.iter().position(|l| *l == w) {
                    masks[i] |= class.bit();
                } else {
                    lits.push(w);
                    masks.push(class.bit());
                }
            }
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&lits)
            .map_err(|e| format!("prefilter: {e}"))?;
        let mut rules = Vec::new();
        for d in rules::rule_defs() {
            let re = RegexBuilder::new(d.pattern)
                .case_insensitive(true)
                .unicode(false)
                .dot_matches_new_line(true)
                .size_limit(64 << 20)
                .dfa_size_limit(16 << 20)
                .build()
                .map_err(|e| format!("rule {}: {e}", d.id))?;
            rules.push(Compiled {
                meta: RuleMeta { id: d.id, class: d.class, pl: d.pl, sev: d.sev },
                form: d.form,
                scope: d.scope,
                re,
            });
        }
        let scanners = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(rules::SCANNER_TOKENS)
            .map_err(|e| format!("scanner tokens: {e}"))?;
        let commands = UNIX_STRONG.split('|').chain(UNIX_WEAK.split('|')).filter(|c| !c.contains('[')).collect();
        Ok(Matcher { prefilter, prefilter_mask: masks, rules, scanners, commands })
    }

    fn classes_of(&self, text: &[u8]) -> u32 {
        let mut mask = 0u32;
        for m in self.prefilter.find_overlapping_iter(text) {
            mask |= self.prefilter_mask[m.pattern().as_usize()];
        }
        mask
    }

    fn first_word_is_command(&self, text: &[u8]) -> bool {
        let t = text.trim_ascii_start();
        let end = t.iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')).unwrap_or(t.len());
        if end == 0 || end > 16 {
            return false;
        }
        let w = t[..end].to_ascii_lowercase();
        std::str::from_utf8(&w).is_ok_and(|w| self.commands.contains(w) || w.starts_with("python"))
    }

    /// Scans one value (already decoded once by its parser, and length-limited by the caller).
    pub(crate) fn scan(&self, raw: &[u8], ctx: ScanCtx, emit: &mut dyn FnMut(Hit<'_>)) {
        if raw.is_empty() {
            return;
        }
        let protocol_on = ctx.classes & Class::Protocol.bit() != 0;
        if protocol_on && ctx.scope & scope::BODY == 0 && memchr::memchr(0, raw).is_some() {
            emit(Hit {
                meta: RuleMeta { id: "protocol.nul_byte", class: Class::Protocol, pl: 1, sev: Severity::Critical },
                matched: b"\\0",
                seen: raw,
            });
        }
        if protocol_on && ctx.scope & (scope::QVAL | scope::BVAL | scope::PATH) != 0 && decode::has_pct_escape(raw) {
            emit(Hit {
                meta: RuleMeta {
                    id: "protocol.multiple_encoding",
                    class: Class::Protocol,
                    pl: 1,
                    sev: Severity::Critical,
                },
                matched: raw,
                seen: raw,
            });
        }
        let text = decode::normalize(raw);
        self.scan_text(&text, ctx, emit, false);
        if text.len() >= 16 && ctx.scope & scope::PATH == 0 && !text.iter().any(|b| b.is_ascii_whitespace()) {
            // the value itself, or the last `=`-separated part of it
            let cand = match memchr::memrchr(b'=', text.trim_ascii_end().strip_suffix(b"==").unwrap_or(&text)) {
                Some(p) if p + 1 < text.len() && p > 0 && text[..p].iter().all(|b| b.is_ascii_alphanumeric()) => {
                    &text[p + 1..]
                }
                _ => &text[..],
            };
            if let Some(dec) = decode::base64_text(cand) {
                let dec = decode::normalize(&dec).into_owned();
                self.scan_text(&dec, ctx, emit, true);
            }
        }
    }

    fn scan_text(&self, text: &[u8], ctx: ScanCtx, emit: &mut dyn FnMut(Hit<'_>), nested: bool) {
        if ctx.scope & scope::UA != 0 && ctx.classes & Class::Scanner.bit() != 0 {
            if let Some(m) = self.scanners.find(text) {
                emit(Hit {
                    meta: RuleMeta { id: "scanner.user_agent", class: Class::Scanner, pl: 1, sev: Severity::Critical },
                    matched: &text[m.start()..m.end()],
                    seen: text,
                });
            }
        }
        let mut mask = self.classes_of(text);
        if self.first_word_is_command(text) {
            mask |= Class::Cmdi.bit();
        }
        if ctx.scope & scope::PATH != 0 {
            mask |= Class::Traversal.bit();
        }
        mask &= ctx.classes;
        if mask == 0 {
            return;
        }
        let mut sql: Option<Vec<u8>> = None;
        let mut shell: Option<Vec<u8>> = None;
        let mut path: Option<Vec<u8>> = None;
        for r in &self.rules {
            if mask & r.meta.class.bit() == 0 || r.scope & ctx.scope == 0 || r.meta.pl > ctx.max_pl {
                continue;
            }
            let form: &[u8] = match r.form {
                Form::Text => text,
                Form::Sql => sql.get_or_insert_with(|| decode::sql_form(text)),
                Form::Shell => shell.get_or_insert_with(|| decode::shell_form(text)),
                Form::Path => path.get_or_insert_with(|| decode::path_form(text)),
            };
            if let Some(m) = r.re.find(form) {
                emit(Hit { meta: r.meta, matched: m.as_bytes(), seen: form });
            }
        }
        if mask & Class::Sqli.bit() != 0 && !nested && (ctx.scope & scope::PATH == 0 || has_quote(text)) {
            let input = &text[..text.len().min(LIBINJECTION_MAX)];
            let fp = catch_unwind(AssertUnwindSafe(|| {
                let r = libinjectionrs::detect_sqli(input);
                r.is_injection().then(|| r.fingerprint.map(|f| f.to_string()).unwrap_or_default())
            }));
            if let Ok(Some(fp)) = fp {
                if sqli_fingerprint_plausible(&fp, text) {
                    let matched = format!("fingerprint {fp}");
                    emit(Hit {
                        meta: RuleMeta { id: "sqli.fingerprint", class: Class::Sqli, pl: 1, sev: Severity::Critical },
                        matched: matched.as_bytes(),
                        seen: text,
                    });
                }
            }
        }
        if mask & Class::Xss.bit() != 0 && !nested && memchr::memchr2(b'<', b'=', text).is_some() {
            let input = &text[..text.len().min(LIBINJECTION_MAX)];
            let xss = catch_unwind(AssertUnwindSafe(|| libinjectionrs::detect_xss(input).is_injection()));
            if xss.unwrap_or(false) {
                emit(Hit {
                    meta: RuleMeta { id: "xss.fingerprint", class: Class::Xss, pl: 1, sev: Severity::Critical },
                    matched: input,
                    seen: text,
                });
            }
        }
        if ctx.classes & Class::Log4shell.bit() != 0 && memchr::memmem::find(text, b"${").is_some() {
            let flat = log4j_flatten(text);
            let lower = flat.to_ascii_lowercase();
            if let Some(p) = memchr::memmem::find(&lower, b"${jndi:") {
                emit(Hit {
                    meta: RuleMeta { id: "log4shell.jndi", class: Class::Log4shell, pl: 1, sev: Severity::Critical },
                    matched: &flat[p..flat.len().min(p + 80)],
                    seen: &flat,
                });
            } else if let Some(p) = find_lookup(&lower) {
                emit(Hit {
                    meta: RuleMeta { id: "log4shell.lookup", class: Class::Log4shell, pl: 1, sev: Severity::Critical },
                    matched: &flat[p..flat.len().min(p + 80)],
                    seen: &flat,
                });
            }
        }
    }
}

fn has_quote(t: &[u8]) -> bool {
    t.iter().any(|&b| b == b'\'' || b == b'"' || b == b'`')
}

/// Drops libinjection fingerprints that are known to be noisy on ordinary text.
fn sqli_fingerprint_plausible(fp: &str, text: &[u8]) -> bool {
    // A bare word list with a trailing comment marker ("n&1c", "sc") needs a quote or a keyword-ish operator.
    let has_special = text.iter().any(|&b| {
        matches!(
            b,
            b'\''
                | b'"'
                | b'`'
                | b'('
                | b')'
                | b'='
                | b';'
                | b'#'
                | b'-'
                | b'/'
                | b'@'
                | b'|'
                | b'&'
                | b'<'
                | b'>'
                | b'*'
        )
    });
    has_special || fp.contains('U') || fp.contains('E') || fp.contains('k')
}

const LOOKUPS: &[&[u8]] = &[
    b"${ctx:",
    b"${env:",
    b"${sys:",
    b"${java:",
    b"${main:",
    b"${date:",
    b"${base64:",
    b"${marker:",
    b"${bundle:",
    b"${k8s:",
    b"${docker:",
    b"${spring:",
    b"${web:",
    b"${log4j:",
    b"${event:",
    b"${sd:",
    b"${map:",
    b"${jvmrunargs:",
    b"${lower:",
    b"${upper:",
    b"${hostname",
    b"${::-",
];

fn find_lookup(lower: &[u8]) -> Option<usize> {
    LOOKUPS.iter().filter_map(|l| memchr::memmem::find(lower, l)).min()
}

/// Resolves Log4j-style nested lookups that only obfuscate: `${lower:x}`/`${upper:x}` → x,
/// `${anything:-x}` → x (bounded rounds).
fn log4j_flatten(text: &[u8]) -> Cow<'_, [u8]> {
    let mut cur: Cow<'_, [u8]> = Cow::Borrowed(text);
    for _ in 0..16 {
        let Some(changed) = flatten_once(&cur) else { break };
        cur = Cow::Owned(changed);
    }
    cur
}

fn flatten_once(t: &[u8]) -> Option<Vec<u8>> {
    // find an innermost ${...}
    let mut start = None;
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'$' && t.get(i + 1) == Some(&b'{') {
            start = Some(i);
            i += 2;
            continue;
        }
        if t[i] == b'}' {
            if let Some(s) = start {
                let inner = &t[s + 2..i];
                let lower = inner.to_ascii_lowercase();
                let repl: Option<&[u8]> = if let Some(p) = memchr::memmem::find(inner, b":-") {
                    Some(&inner[p + 2..])
                } else if lower.starts_with(b"lower:") || lower.starts_with(b"upper:") {
                    Some(&inner[6..])
                } else {
                    None
                };
                if let Some(r) = repl {
                    let mut out = Vec::with_capacity(t.len());
                    out.extend_from_slice(&t[..s]);
                    out.extend_from_slice(r);
                    out.extend_from_slice(&t[i + 1..]);
                    return Some(out);
                }
                start = None;
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log4j() {
        let f = log4j_flatten(b"${${lower:j}ndi:ldap://x}");
        assert_eq!(&*f, b"${jndi:ldap://x}");
        let f = log4j_flatten(b"${${::-j}${::-n}${::-d}${::-i}:rmi://x}");
        assert_eq!(&*f, b"${jndi:rmi://x}");
        let f = log4j_flatten(b"${${env:NaN:-j}ndi${env:NaN:-:}ldap://x}");
        assert_eq!(&*f, b"${jndi:ldap://x}");
    }

    #[test]
    fn rules_compile() {
        assert!(Matcher::new().is_ok());
    }
}
