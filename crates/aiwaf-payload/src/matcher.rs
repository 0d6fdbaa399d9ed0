//! Compiled matchers: the class prefilter, the regex rules, libinjection fingerprinting, the Log4Shell
//! de-obfuscator and the scanner User-Agent list. `Matcher::scan` inspects one value.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::bytes::{Regex, RegexBuilder};

use crate::decode;
use crate::prefilter::{self, Prefilter, group};
use crate::report::{Class, Severity};
use crate::rules::{self, Form, UNIX_STRONG, UNIX_TOOLS, UNIX_TOOLS_ALONE, UNIX_TOOLS_FLAGGED, UNIX_WEAK, scope};

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
    group: u32,
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
    prefilter: Prefilter,
    rules: Vec<Compiled>,
    scanners: AhoCorasick,
    commands: Vec<u128>,
    /// [`UNIX_TOOLS_ALONE`] names, sorted: a command line even alone.
    tools: Vec<u128>,
}

impl Matcher {
    pub(crate) fn new() -> Result<Matcher, String> {
        let prefilter = Prefilter::new()?;
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
                group: rule_group(d.id, d.class),
                form: d.form,
                scope: d.scope,
                re,
            });
        }
        let scanners = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(rules::SCANNER_TOKENS)
            .map_err(|e| format!("scanner tokens: {e}"))?;
        let mut commands: Vec<u128> = UNIX_STRONG
            .split('|')
            .chain(UNIX_WEAK.split('|'))
            .chain(UNIX_TOOLS.split('|'))
            .chain(UNIX_TOOLS_FLAGGED.split('|'))
            .filter(|c| !c.contains(['[', '\\', '+']) && c.len() <= 16)
            .map(|c| pack_word(c.as_bytes()))
            .collect();
        commands.sort_unstable();
        commands.dedup();
        let mut tools: Vec<u128> = UNIX_TOOLS_ALONE
            .split('|')
            .filter(|c| !c.contains(['[', '\\', '+']) && c.len() <= 16)
            .map(|c| pack_word(c.as_bytes()))
            .collect();
        tools.sort_unstable();
        Ok(Matcher { prefilter, rules, scanners, commands, tools })
    }

    /// Rule groups a value triggers in this scope (the cheap first pass).
    fn groups_of(&self, text: &[u8], sc: u16) -> u32 {
        let mut g = self.prefilter.literal_groups(text, sc & (scope::PATH | scope::FILE | scope::UA) != 0);
        // one branch-free pass tells whether the shape checks below can find anything at all
        let bytes = text.iter().fold(0u8, |acc, &b| acc | prefilter::BYTE_CLASS[b as usize]);
        if bytes & prefilter::PAREN != 0
            && g & (group::SQLI | group::CODE) != group::SQLI | group::CODE
            && prefilter::has_call(text)
        {
            g |= group::SQLI | group::CODE;
        }
        if g & group::CMDI == 0
            && ((bytes & prefilter::BLANK != 0 && (self.first_word_is_command(text) || cd_to_dir(text)))
                || (text.len() <= 16 && text.first().is_some_and(u8::is_ascii_alphabetic) && self.is_tool(text))
                || (bytes & prefilter::SEPARATOR != 0
                    && prefilter::words_after_separators(text, &mut |w| self.is_command(w))))
        {
            g |= group::CMDI;
        }
        // quotes, backslashes, carets and `$` inside words hide command names from the checks
        // above: look again at the shell form when there are any
        if g & group::CMDI == 0 && bytes & prefilter::EVASION != 0 && sc & scope::UA == 0 {
            let sh = decode::shell_form(text);
            if self.first_word_is_command(&sh)
                || prefilter::words_after_separators(&sh, &mut |w| self.is_command(w))
                || self.obfuscated_command(text).is_some()
            {
                g |= group::CMDI;
            }
        }
        if sc & scope::VALUES == 0 {
            g &= !group::RFI;
        }
        if sc & (scope::PATH | scope::FILE) == 0 {
            g &= !group::RESTRICTED;
        }
        if sc & scope::FILE == 0 {
            g &= !group::UPLOAD;
        }
        if sc & scope::NAMES == 0 {
            g &= !group::SESSION_NAME;
        }
        g
    }

    fn is_command(&self, w: &[u8]) -> bool {
        if w.len() > 16 {
            return false;
        }
        let mut buf = [0u8; 16];
        let lw = &mut buf[..w.len()];
        lw.copy_from_slice(w);
        lw.make_ascii_lowercase();
        let lw = lw.strip_suffix(b".exe").unwrap_or(lw);
        lw.starts_with(b"python") || self.commands.binary_search(&pack_word(lw)).is_ok() || tool_family(lw)
    }

    /// A tool name (see [`UNIX_TOOLS_ALONE`]): a command line even with nothing after it.
    fn is_tool(&self, w: &[u8]) -> bool {
        // lower-cased on the stack: this runs for short query values on the request path
        let mut buf = [0u8; 32];
        let Some(lw) = buf.get_mut(..w.len()) else { return false };
        lw.copy_from_slice(w);
        lw.make_ascii_lowercase();
        tool_family(lw) || self.tools.binary_search(&pack_word(lw)).is_ok()
    }

    /// A command name written with characters the shell drops inside a word (`c$@at`,
    /// `""p""y""thon3`, `who\ami`, `uname$u`): no word of prose does that. Returns the word.
    fn obfuscated_command<'t>(&self, text: &'t [u8]) -> Option<&'t [u8]> {
        let is_sep = |b: &u8| {
            b.is_ascii_whitespace()
                || matches!(b, b';' | b'|' | b'&' | b'`' | b'(' | b')' | b'{' | b'}' | b',' | b'<' | b'>' | b'=')
        };
        text.split(is_sep).find(|tok| {
            let quote = |b: &u8| matches!(b, b'\'' | b'"');
            let start = tok.iter().position(|b| !quote(b)).unwrap_or(tok.len());
            let end = tok.iter().rposition(|b| !quote(b)).map_or(start, |e| e + 1);
            let inner = &tok[start..end.max(start)];
            inner.len() >= 3
                && inner.len() <= 64
                && inner.iter().any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'^' | b'$'))
                && inner.iter().any(u8::is_ascii_alphabetic)
                && {
                    let sh = decode::shell_form(inner);
                    let word = sh.rsplit(|&b| b == b'/').next().unwrap_or(&sh);
                    let word = &word[..word
                        .iter()
                        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_' || *b == b'.'))
                        .unwrap_or(word.len())];
                    let word = word.strip_suffix(b".exe").unwrap_or(word);
                    !word.is_empty() && word.len() < inner.len() && self.is_command(word)
                }
        })
    }

    fn first_word_is_command(&self, text: &[u8]) -> bool {
        let t = text.trim_ascii_start();
        let mut buf = [0u8; 16];
        let mut n = 0;
        for &b in t.iter().take(40) {
            if matches!(b, b'\'' | b'"' | b'\\' | b'^') {
                continue;
            }
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                // a command word is followed by blanks or a shell operator, not by `,`/`.`/`/`
                if !(b.is_ascii_whitespace() || matches!(b, b';' | b'|' | b'&' | b'<' | b'>' | b'`' | b'$')) {
                    return false;
                }
                break;
            }
            if n == buf.len() {
                return false;
            }
            buf[n] = b;
            n += 1;
        }
        // a lone word (`id`, `time`) is not a command line
        let rest = t.get(n..).unwrap_or_default().trim_ascii();
        n > 0 && if rest.is_empty() { self.is_tool(&buf[..n]) } else { self.is_command(&buf[..n]) }
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
        let gates = self.groups_of(text, ctx.scope);
        if gates == 0 {
            return;
        }
        if gates & group::SCANNER != 0
            && ctx.scope & scope::UA != 0
            && ctx.classes & Class::Scanner.bit() != 0
            && let Some(m) = self.scanners.find(text)
        {
            emit(Hit {
                meta: RuleMeta { id: "scanner.user_agent", class: Class::Scanner, pl: 1, sev: Severity::Critical },
                matched: &text[m.start()..m.end()],
                seen: text,
            });
        }
        let mut sql: Option<Vec<u8>> = None;
        let mut shell: Option<Vec<u8>> = None;
        let mut path: Option<Vec<u8>> = None;
        for r in &self.rules {
            // a User-Agent is a header too, but a rule that leaves UAs out means it
            if gates & r.group == 0
                || ctx.classes & r.meta.class.bit() == 0
                || r.scope & ctx.scope == 0
                || (ctx.scope & scope::UA != 0 && r.scope & scope::UA == 0)
                || r.meta.pl > ctx.max_pl
            {
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
        if gates & group::CMDI != 0
            && ctx.classes & Class::Cmdi.bit() != 0
            && ctx.scope & scope::UA == 0
            && ctx.max_pl >= 1
            && let Some(word) = self.obfuscated_command(text)
        {
            emit(Hit {
                meta: RuleMeta { id: "cmdi.obfuscated_command", class: Class::Cmdi, pl: 1, sev: Severity::Critical },
                matched: word,
                seen: text,
            });
        }
        if gates & group::SQLI != 0
            && ctx.classes & Class::Sqli.bit() != 0
            && !nested
            && (ctx.scope & scope::PATH == 0 || has_quote(text))
        {
            let input = &text[..text.len().min(LIBINJECTION_MAX)];
            let fp = catch_unwind(AssertUnwindSafe(|| {
                let r = libinjectionrs::detect_sqli(input);
                r.is_injection().then(|| r.fingerprint.map(|f| f.to_string()).unwrap_or_default())
            }));
            if let Ok(Some(fp)) = fp
                && sqli_fingerprint_plausible(&fp, text)
            {
                let matched = format!("fingerprint {fp}");
                emit(Hit {
                    meta: RuleMeta { id: "sqli.fingerprint", class: Class::Sqli, pl: 1, sev: Severity::Critical },
                    matched: matched.as_bytes(),
                    seen: text,
                });
            }
        }
        if gates & group::XSS != 0
            && ctx.classes & Class::Xss.bit() != 0
            && !nested
            && memchr::memchr2(b'<', b'=', text).is_some()
        {
            let input = &text[..text.len().min(LIBINJECTION_MAX)];
            // an XML declaration or processing instruction (`<?xml version="1.0"?>`) is a bogus
            // comment to an HTML parser: judged without it
            let stripped = strip_processing_instructions(input);
            let xss = (memchr::memchr2(b'<', b'=', &stripped).is_some())
                .then(|| catch_unwind(AssertUnwindSafe(|| libinjectionrs::detect_xss(&stripped).is_injection())));
            if xss.is_some_and(|r| r.unwrap_or(false)) {
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
    // "while (foo) is bar": a T-SQL control word before a parenthesis, in prose with nothing that
    // could close a string or end a statement
    if fp.starts_with("T(")
        && !text.iter().any(|&b| matches!(b, b'\'' | b'"' | b'`' | b';' | b'=' | b'#'))
        && memchr::memmem::find(text, b"--").is_none()
        && memchr::memmem::find(text, b"/*").is_none()
    {
        return false;
    }
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
        if t[i] == b'}'
            && let Some(s) = start
        {
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

/// The prefilter group that gates a rule.
fn rule_group(id: &str, class: Class) -> u32 {
    match id {
        "php.upload_name" => group::UPLOAD,
        "session.id_in_args" => group::SESSION_NAME,
        "protocol.restricted_file" | "protocol.legacy_probe" => group::RESTRICTED,
        _ => match class {
            Class::Sqli => group::SQLI,
            Class::Xss => group::XSS,
            Class::Traversal => group::TRAVERSAL,
            Class::Rfi => group::RFI,
            Class::Cmdi => group::CMDI,
            Class::Ssti => group::SSTI,
            Class::Xxe => group::XXE,
            Class::Crlf => group::CRLF,
            Class::Nosqli => group::NOSQLI,
            Class::CodeInjection => group::CODE,
            Class::SessionFixation => group::SESSION,
            Class::Ldapi => group::LDAP,
            Class::Protocol => group::PROTOCOL,
            Class::Log4shell | Class::Scanner | Class::Profile => 0,
        },
    }
}

/// `cd` to an absolute, parent or home directory (`cd /`, `cd ../..`, `cd ~`): the shell-syntax
/// rules judge where it stands.
fn cd_to_dir(text: &[u8]) -> bool {
    memchr::memmem::find_iter(text, b"cd ").any(|i| {
        (i == 0 || !text[i - 1].is_ascii_alphanumeric())
            && text[i + 3..].iter().find(|b| **b != b' ').is_some_and(|b| matches!(b, b'/' | b'.' | b'~'))
    })
}

/// The text without `<?…?>` processing instructions whose insides hold no tag.
fn strip_processing_instructions(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memmem::find(text, b"<?").is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = memchr::memmem::find(rest, b"<?") {
        let after = &rest[i + 2..];
        match memchr::memmem::find(after, b"?>") {
            Some(j) if !after[..j].contains(&b'<') && !after[..j].contains(&b'>') => {
                out.extend_from_slice(&rest[..i]);
                rest = &after[j + 2..];
            }
            _ => {
                out.extend_from_slice(&rest[..i + 2]);
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest);
    std::borrow::Cow::Owned(out)
}

/// Tool families named by prefix in [`UNIX_TOOLS`] (`ansible-playbook`, `chef-client`, `aa-disable`).
fn tool_family(lw: &[u8]) -> bool {
    [&b"ansible-"[..], b"chef-", b"aa-"].iter().any(|p| lw.len() > p.len() && lw.starts_with(p))
}

/// A word of at most 16 bytes as an integer (for a fast sorted lookup).
fn pack_word(w: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = w.len().min(16);
    buf[..n].copy_from_slice(&w[..n]);
    u128::from_be_bytes(buf)
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[test]
    fn ordinary_values_trigger_no_rule_group() {
        let m = Matcher::new().expect("matcher");
        let headers: [&[u8]; 9] = [
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            b"https://shop.example/tienda1/publico/productos.jsp",
            b"shop.example",
            b"gzip, deflate, br",
            b"en-US,en;q=0.5",
            b"08C8DCD89400C53A4F6F4C6029663578",
            b"GA1.2.123.456",
        ];
        for v in headers {
            assert_eq!(m.groups_of(v, scope::HEADER), 0, "{}", String::from_utf8_lossy(v));
        }
        for v in ["08C8DCD89400C53A4F6F4C6029663578", "GA1.2.123.456", "JSESSIONID", "_ga", "csrftoken"] {
            assert_eq!(m.groups_of(v.as_bytes(), scope::COOKIE), 0, "{v}");
        }
        for v in ["order", "items", "SKU-0001", "Blue cotton shirt size 3", "ana@example.com", "id", "precio", "nombre"]
        {
            assert_eq!(m.groups_of(v.as_bytes(), scope::BNAME), 0, "{v}");
        }
    }
}
