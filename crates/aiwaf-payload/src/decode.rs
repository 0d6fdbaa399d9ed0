//! Decoders and normalisers: URL (once, twice, `%uXXXX`), HTML entities, Unicode full-width and circled
//! letters, overlong UTF-8 dots/slashes, NUL removal, SQL comment stripping, shell command-line and path
//! normalisation, and base64. Every function returns a borrowed value when there is nothing to change.

use std::borrow::Cow;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    match char::from_u32(cp) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None => out.push(b'?'),
    }
}

/// Percent-decodes once (`%XX` and `%uXXXX`); `plus` turns `+` into a space. Invalid escapes are kept.
pub fn url_decode(input: &[u8], plus: bool) -> Cow<'_, [u8]> {
    let needs = memchr::memchr(b'%', input).is_some() || (plus && memchr::memchr(b'+', input).is_some());
    if !needs {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (input.get(i + 1).and_then(|&c| hex(c)), input.get(i + 2).and_then(|&c| hex(c)))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = (2..6).map(|k| input.get(i + k).and_then(|&c| hex(c))).collect();
                if let Some(d) = digits {
                    let cp = d.iter().fold(0u32, |acc, &x| acc << 4 | u32::from(x));
                    push_char(&mut out, cp);
                    i += 6;
                    continue;
                }
            }
            out.push(b);
        } else if b == b'+' && plus {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// True if the input holds at least one valid `%XX` escape.
pub fn has_pct_escape(input: &[u8]) -> bool {
    memchr::memchr_iter(b'%', input)
        .any(|i| input.get(i + 1).and_then(|&c| hex(c)).is_some() && input.get(i + 2).and_then(|&c| hex(c)).is_some())
}

const ENTITIES: &[(&str, u32)] = &[
    ("lt", '<' as u32),
    ("gt", '>' as u32),
    ("amp", '&' as u32),
    ("quot", '"' as u32),
    ("apos", '\'' as u32),
    ("nbsp", ' ' as u32),
    ("sol", '/' as u32),
    ("bsol", '\\' as u32),
    ("lpar", '(' as u32),
    ("rpar", ')' as u32),
    ("colon", ':' as u32),
    ("semi", ';' as u32),
    ("equals", '=' as u32),
    ("tab", '\t' as u32),
    ("newline", '\n' as u32),
    ("num", '#' as u32),
    ("period", '.' as u32),
    ("comma", ',' as u32),
    ("excl", '!' as u32),
    ("quest", '?' as u32),
    ("lsqb", '[' as u32),
    ("rsqb", ']' as u32),
    ("lbrack", '[' as u32),
    ("rbrack", ']' as u32),
    ("lcub", '{' as u32),
    ("rcub", '}' as u32),
    ("lbrace", '{' as u32),
    ("rbrace", '}' as u32),
    ("grave", '`' as u32),
    ("dollar", '$' as u32),
    ("percnt", '%' as u32),
    ("plus", '+' as u32),
    ("ast", '*' as u32),
    ("vert", '|' as u32),
    ("verbar", '|' as u32),
];

/// Decodes HTML character references: the common named ones, `&#ddd;` and `&#xhh;` (semicolon optional
/// for numeric references).
pub fn html_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'&', input).is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while i < input.len() {
        if input[i] == b'&'
            && let Some((cp, len)) = entity_at(&input[i..])
        {
            push_char(&mut out, cp);
            i += len;
            changed = true;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(input) }
}

fn entity_at(s: &[u8]) -> Option<(u32, usize)> {
    // s[0] == '&'
    if s.get(1) == Some(&b'#') {
        let (radix, start) = if matches!(s.get(2), Some(b'x' | b'X')) { (16, 3) } else { (10, 2) };
        let mut cp: u32 = 0;
        let mut j = start;
        while j < s.len() && j < start + 10 {
            let d = match (radix, s[j]) {
                (16, c) => hex(c).map(u32::from),
                (_, c @ b'0'..=b'9') => Some(u32::from(c - b'0')),
                _ => None,
            };
            match d {
                Some(d) => cp = cp.saturating_mul(radix).saturating_add(d),
                None => break,
            }
            j += 1;
        }
        if j == start {
            return None;
        }
        if s.get(j) == Some(&b';') {
            j += 1;
        }
        return Some((cp.min(0x10FFFF), j));
    }
    let end = s.iter().take(12).position(|&c| c == b';')?;
    let name = &s[1..end];
    ENTITIES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map(|&(_, cp)| (cp, end + 1))
}

/// Folds full-width forms (U+FF01..U+FF5E) and circled letters to ASCII, ideographic space to a space,
/// overlong UTF-8 `.`/`/`/`\` (`C0 AE`, `C0 AF`, `E0 80 AE`, ...) to ASCII, and removes NUL bytes.
pub fn fold(input: &[u8]) -> Cow<'_, [u8]> {
    let interesting =
        input.iter().any(|&b| b == 0 || b == 0xC0 || b == 0xC1 || b == 0xE0 || b == 0xE2 || b == 0xE3 || b == 0xEF);
    if !interesting {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let b1 = input.get(i + 1).copied().unwrap_or(0);
        let b2 = input.get(i + 2).copied().unwrap_or(0);
        match b {
            0 => {
                i += 1;
                continue;
            }
            0xC0 | 0xC1 if (0x80..0xC0).contains(&b1) => {
                // overlong 2-byte encoding of an ASCII char
                out.push(((b & 0x01) << 6) | (b1 & 0x3F));
                i += 2;
                continue;
            }
            0xE0 if b1 == 0x80 && (0x80..0xC0).contains(&b2) => {
                out.push(b2 & 0x3F);
                i += 3;
                continue;
            }
            0xEF if (b1 == 0xBC || b1 == 0xBD) && (0x80..0xC0).contains(&b2) => {
                let cp = 0xF000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F);
                if (0xFF01..=0xFF5E).contains(&cp) {
                    out.push((cp - 0xFEE0) as u8);
                    i += 3;
                    continue;
                }
            }
            0xE2 if (b1 == 0x92 || b1 == 0x93) && (0x80..0xC0).contains(&b2) => {
                let cp = 0x2000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F);
                if (0x24B6..=0x24CF).contains(&cp) {
                    out.push(b'a' + (cp - 0x24B6) as u8);
                    i += 3;
                    continue;
                }
                if (0x24D0..=0x24E9).contains(&cp) {
                    out.push(b'a' + (cp - 0x24D0) as u8);
                    i += 3;
                    continue;
                }
            }
            0xE2 if b1 == 0x88 && (b2 == 0x95 || b2 == 0x96) => {
                // division slash / set minus
                out.push(if b2 == 0x95 { b'/' } else { b'\\' });
                i += 3;
                continue;
            }
            0xE3 if b1 == 0x80 && b2 == 0x80 => {
                out.push(b' ');
                i += 3;
                continue;
            }
            _ => {}
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// Decodes JavaScript/JSON-style escapes: `\uXXXX`, `\u{X..}` and `\xXX`. Other backslashes are kept.
pub fn js_unescape(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', input).is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while i < input.len() {
        if input[i] == b'\\' {
            let kind = input.get(i + 1).copied();
            let (digits, skip) = match kind {
                Some(b'u' | b'U') if input.get(i + 2) == Some(&b'{') => {
                    let end = input[i + 3..].iter().take(7).position(|&c| c == b'}');
                    match end {
                        Some(e) if e > 0 => (&input[i + 3..i + 3 + e], e + 4),
                        _ => (&input[0..0], 0),
                    }
                }
                Some(b'u' | b'U') if i + 6 <= input.len() => (&input[i + 2..i + 6], 6),
                Some(b'x' | b'X') if i + 4 <= input.len() => (&input[i + 2..i + 4], 4),
                _ => (&input[0..0], 0),
            };
            if skip > 0 && digits.iter().all(|&c| hex(c).is_some()) {
                let cp = digits.iter().fold(0u32, |acc, &c| acc << 4 | u32::from(hex(c).unwrap_or(0)));
                push_char(&mut out, cp.min(0x10FFFF));
                i += skip;
                changed = true;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(input) }
}

/// Bytes that make [`normalize`] do work: `%`, `&`, NUL and the lead bytes [`fold`] rewrites.
static NEEDS_DECODE: [bool; 256] = {
    let mut t = [false; 256];
    t[b'%' as usize] = true;
    t[b'&' as usize] = true;
    t[b'\\' as usize] = true;
    t[0] = true;
    t[0xC0] = true;
    t[0xC1] = true;
    t[0xE0] = true;
    t[0xE2] = true;
    t[0xE3] = true;
    t[0xEF] = true;
    t
};

/// Full normalisation of a value the parser already decoded once: up to three rounds of URL decoding,
/// HTML entity decoding and folding, until nothing changes.
pub fn normalize(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| NEEDS_DECODE[b as usize]) {
        return Cow::Borrowed(input);
    }
    let mut cur: Cow<'_, [u8]> = Cow::Borrowed(input);
    for _ in 0..3 {
        let next: Vec<u8> = {
            let a = url_decode(&cur, false);
            let b = html_decode(&a);
            let c = fold(&b);
            let d = js_unescape(&c);
            if matches!((&a, &b, &c, &d), (Cow::Borrowed(_), Cow::Borrowed(_), Cow::Borrowed(_), Cow::Borrowed(_))) {
                break;
            }
            d.into_owned()
        };
        if next.as_slice() == &*cur {
            break;
        }
        cur = Cow::Owned(next);
    }
    cur
}

/// SQL form: `/* */` comments become a space (MySQL `/*! */` keeps its content), `--`/`#` line comments
/// are dropped, whitespace is compressed, ASCII lower-cased.
pub fn sql_form(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut last_space = false;
    while i < input.len() {
        let b = input[i];
        if b == b'/' && input.get(i + 1) == Some(&b'*') {
            let keep = input.get(i + 2) == Some(&b'!');
            let end = memchr::memmem::find(&input[i + 2..], b"*/").map(|p| i + 2 + p);
            if keep {
                // skip "/*!" and optional version digits, keep content
                let mut j = i + 3;
                while j < input.len() && input[j].is_ascii_digit() {
                    j += 1;
                }
                let stop = end.unwrap_or(input.len());
                for &c in &input[j.min(stop)..stop] {
                    out.push(c.to_ascii_lowercase());
                }
            }
            if !last_space {
                out.push(b' ');
                last_space = true;
            }
            i = end.map(|e| e + 2).unwrap_or(input.len());
            continue;
        }
        if (b == b'-' && input.get(i + 1) == Some(&b'-')) || b == b'#' {
            let end = memchr::memchr(b'\n', &input[i..]).map(|p| i + p).unwrap_or(input.len());
            if !last_space {
                out.push(b' ');
                last_space = true;
            }
            i = end;
            continue;
        }
        if b.is_ascii_whitespace() || b == 0x0b {
            if !last_space {
                out.push(b' ');
                last_space = true;
            }
        } else {
            out.push(b.to_ascii_lowercase());
            last_space = false;
        }
        i += 1;
    }
    out
}

/// Shell command-line form: lower-case, quotes, `^` and backslashes removed, `$IFS`/`${IFS}` and tabs
/// to spaces, `$@`/`$*` and empty `''` removed, newlines to `;`, whitespace compressed.
pub fn shell_form(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut last_space = false;
    while i < input.len() {
        let b = input[i];
        let rest = &input[i..];
        if b == b'$' {
            if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"${ifs}") {
                i += 6;
                if !last_space {
                    out.push(b' ');
                    last_space = true;
                }
                continue;
            }
            if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"$ifs") {
                i += 4;
                if !last_space {
                    out.push(b' ');
                    last_space = true;
                }
                continue;
            }
            if matches!(rest.get(1), Some(b'@' | b'*' | b'!' | b'-')) {
                i += 2;
                continue;
            }
            // `c$u` / `c${u}at`: an unset variable glued to a word expands to nothing
            if out.last().is_some_and(u8::is_ascii_alphanumeric) {
                let (name_start, braced) = if rest.get(1) == Some(&b'{') { (2, true) } else { (1, false) };
                let n = rest[name_start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
                if n > 0 && n <= 8 && (!braced || rest.get(name_start + n) == Some(&b'}')) {
                    i += name_start + n + usize::from(braced);
                    continue;
                }
            }
        }
        match b {
            b'\'' | b'"' | b'^' | b'\\' => {}
            b'\n' | b'\r' => {
                out.push(b';');
                last_space = false;
            }
            c if c.is_ascii_whitespace() || c == 0x0b => {
                if !last_space {
                    out.push(b' ');
                    last_space = true;
                }
            }
            c => {
                out.push(c.to_ascii_lowercase());
                last_space = false;
            }
        }
        i += 1;
    }
    out
}

/// Path form: `\` to `/`, repeated `/` collapsed, `/./` removed, lower-cased.
pub fn path_form(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    for &b in input {
        let c = if b == b'\\' { b'/' } else { b.to_ascii_lowercase() };
        if c == b'/' {
            if out.last() == Some(&b'/') {
                continue;
            }
            if out.ends_with(b"/.") {
                out.pop();
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Decodes a value that clearly is base64: length >= 16, only the (standard or URL-safe) alphabet with
/// optional padding, decoding to at least 90% printable text. Returns `None` otherwise.
pub fn base64_text(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = {
        let mut end = input.len();
        while end > 0 && input[end - 1] == b'=' {
            end -= 1;
        }
        &input[..end]
    };
    if trimmed.len() < 16 || input.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    // all-hex tokens (session ids, hashes) are not base64 text; neither is anything outside the alphabet
    if trimmed.iter().all(u8::is_ascii_hexdigit) || !trimmed.iter().all(|&c| b64_val(c).is_some()) {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in trimmed {
        acc = acc << 6 | u32::from(b64_val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let printable =
        out.iter().filter(|&&b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t' || b == b'\r').count();
    let letters = out.iter().filter(|b| b.is_ascii_alphabetic()).count();
    (printable * 10 >= out.len() * 9 && letters * 3 >= out.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url() {
        assert_eq!(&*url_decode(b"a%27b+c", true), b"a'b c");
        assert_eq!(&*url_decode(b"%u003cx", false), b"<x");
        assert_eq!(&*url_decode(b"%zz%", false), b"%zz%");
        assert!(matches!(url_decode(b"plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn normalize_layers() {
        assert_eq!(&*normalize(b"%253Cscript%253E"), b"<script>");
        assert_eq!(&*normalize(b"&lt;script&#62;&#x3c;"), b"<script><");
        assert_eq!(&*normalize("＜ｓｃｒｉｐｔ＞".as_bytes()), b"<script>");
        assert_eq!(&*normalize(b"%c0%ae%c0%ae%c0%af"), b"../");
        assert_eq!(&*normalize(b"a\0b"), b"ab");
        assert_eq!(&*normalize(b"c\\u006fnsole \\x41\\u{62}"), b"console Ab");
        assert_eq!(&*normalize(b"C:\\users\\x"), b"C:\\users\\x");
    }

    #[test]
    fn forms() {
        assert_eq!(sql_form(b"UNION/**/SELECT  1 -- x"), b"union select 1 ");
        assert_eq!(sql_form(b"/*!50000UNION*/ SELECT"), b"union select");
        assert_eq!(shell_form(b"c'a't${IFS}/etc/pa\\sswd"), b"cat /etc/passwd");
        assert_eq!(path_form(b"..\\..//./etc"), b"../../etc");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_text(b"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==").unwrap(), b"<script>alert(1)</script>");
        assert!(base64_text(b"08C8DCD89400C53A4F6F4C6029663578").is_none());
        assert!(base64_text(b"short").is_none());
    }
}
