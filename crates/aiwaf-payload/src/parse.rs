//! Bounded parsers that split a request into named targets: query strings and urlencoded forms, cookies,
//! multipart bodies, JSON documents and XML documents. Parsers call a sink per target and never fail:
//! they report malformed input to the caller instead.

use crate::decode::url_decode;
use std::borrow::Cow;

/// Sink for (name, value, had `=`) pairs.
pub(crate) type ArgSink<'s> = dyn FnMut(Cow<'_, [u8]>, Cow<'_, [u8]>, bool) + 's;
/// Sink for (element, attribute, value) XML targets.
pub(crate) type XmlSink<'s> = dyn FnMut(&[u8], Option<&[u8]>, &[u8]) + 's;

/// Splits `a=b&c&d=e` into decoded (name, value, had_eq) pairs, calling `f` for each (at most `limit`).
/// Returns the number of pairs not visited because of the limit.
pub(crate) fn urlencoded(input: &[u8], limit: usize, f: &mut ArgSink<'_>) -> usize {
    let mut seen = 0usize;
    let mut dropped = 0usize;
    for part in input.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        if seen >= limit {
            dropped += 1;
            continue;
        }
        seen += 1;
        match memchr::memchr(b'=', part) {
            Some(p) => f(url_decode(&part[..p], true), url_decode(&part[p + 1..], true), true),
            None => f(url_decode(part, true), Cow::Borrowed(&[][..]), false),
        }
    }
    dropped
}

/// Splits a `Cookie` header into (name, value) pairs.
pub(crate) fn cookies(input: &[u8], f: &mut dyn FnMut(&[u8], &[u8])) {
    for part in input.split(|&b| b == b';') {
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        match memchr::memchr(b'=', part) {
            Some(p) => f(part[..p].trim_ascii(), part[p + 1..].trim_ascii()),
            None => f(b"", part),
        }
    }
}

/// Extracts a parameter (e.g. `boundary`) from a header value like `multipart/form-data; boundary=x`.
pub(crate) fn header_param<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"'))
    })
}

/// One multipart part as seen by the sink.
pub(crate) struct Part<'a> {
    pub name: &'a [u8],
    pub filename: Option<&'a [u8]>,
    pub content: &'a [u8],
    pub headers: &'a [u8],
}

fn disposition_param<'a>(headers: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    // find `key="..."` or key=token in the Content-Disposition line (case-insensitive key)
    let lower = headers.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&lower[from..], key) {
        let at = from + p;
        from = at + key.len();
        let prev_ok = at == 0 || matches!(lower[at - 1], b' ' | b';' | b'\t');
        if !prev_ok || lower.get(at + key.len()) != Some(&b'=') {
            continue;
        }
        let v = &headers[at + key.len() + 1..];
        if v.first() == Some(&b'"') {
            let end = memchr::memchr(b'"', &v[1..]).map(|e| e + 1).unwrap_or(v.len());
            return Some(&v[1..end]);
        }
        let end = v.iter().position(|&b| matches!(b, b';' | b'\r' | b'\n' | b' ')).unwrap_or(v.len());
        return Some(&v[..end]);
    }
    None
}

/// Walks a multipart body. Returns Err(()) if the body does not look like multipart with this boundary.
pub(crate) fn multipart(body: &[u8], boundary: &str, limit: usize, f: &mut dyn FnMut(Part<'_>)) -> Result<usize, ()> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(());
    }
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let positions: Vec<usize> = finder.find_iter(body).take(limit + 2).collect();
    if positions.is_empty() {
        return Err(());
    }
    let mut dropped = 0;
    for (n, w) in positions.windows(2).enumerate() {
        if n >= limit {
            dropped += 1;
            continue;
        }
        let mut part = &body[w[0] + delim.len()..w[1]];
        part = part.strip_prefix(b"\r\n").or_else(|| part.strip_prefix(b"\n")).unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").or_else(|| part.strip_suffix(b"\n")).unwrap_or(part);
        let (headers, content) = match memchr::memmem::find(part, b"\r\n\r\n") {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match memchr::memmem::find(part, b"\n\n") {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => (part, &b""[..]),
            },
        };
        let name = disposition_param(headers, b"name").unwrap_or(b"");
        let filename = disposition_param(headers, b"filename");
        f(Part { name, filename, content, headers });
    }
    Ok(dropped)
}

/// Walks XML: text nodes and attribute values with the element name. Returns Err(()) when the document
/// is clearly not XML or ends inside a tag (unless `truncated`).
pub(crate) fn xml(body: &[u8], limit: usize, f: &mut XmlSink<'_>) -> Result<usize, ()> {
    let start = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body).trim_ascii_start();
    if start.first() != Some(&b'<') {
        return Err(());
    }
    let mut i = body.len() - start.len();
    let mut current: &[u8] = b"";
    let mut seen = 0usize;
    let mut dropped = 0usize;
    let mut emit = |elem: &[u8], attr: Option<&[u8]>, v: &[u8], f: &mut XmlSink<'_>| {
        if v.trim_ascii().is_empty() {
            return;
        }
        if seen >= limit {
            dropped += 1;
        } else {
            seen += 1;
            f(elem, attr, v);
        }
    };
    while i < body.len() {
        if body[i] != b'<' {
            let end = memchr::memchr(b'<', &body[i..]).map(|p| i + p).unwrap_or(body.len());
            emit(current, None, &body[i..end], f);
            i = end;
            continue;
        }
        let rest = &body[i..];
        if rest.starts_with(b"<!--") {
            i = memchr::memmem::find(rest, b"-->").map(|p| i + p + 3).ok_or(())?;
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            let end = memchr::memmem::find(rest, b"]]>").ok_or(())?;
            emit(current, None, &rest[9..end], f);
            i += end + 3;
            continue;
        }
        if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            // declarations: skip to the matching '>' (DOCTYPE internal subsets use brackets)
            let mut depth = 0i32;
            let mut j = 1;
            loop {
                match rest.get(j) {
                    None => return Err(()),
                    Some(b'[') => depth += 1,
                    Some(b']') => depth -= 1,
                    Some(b'>') if depth <= 0 => break,
                    _ => {}
                }
                j += 1;
            }
            i += j + 1;
            continue;
        }
        // a tag
        let end = memchr::memchr(b'>', rest).ok_or(())?;
        let tag = &rest[1..end];
        let tag = tag.strip_suffix(b"/").unwrap_or(tag);
        if let Some(t) = tag.strip_prefix(b"/") {
            let _ = t;
        } else {
            let name_end = tag.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(tag.len());
            current = &tag[..name_end];
            let mut a = &tag[name_end..];
            while let Some(eq) = memchr::memchr(b'=', a) {
                let aname = a[..eq].trim_ascii();
                let v = a[eq + 1..].trim_ascii_start();
                let Some(&q) = v.first() else { break };
                if q != b'"' && q != b'\'' {
                    let vend = v.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(v.len());
                    emit(current, Some(aname), &v[..vend], f);
                    a = &v[vend..];
                    continue;
                }
                let vend = memchr::memchr(q, &v[1..]).map(|p| p + 1).unwrap_or(v.len());
                emit(current, Some(aname), &v[1..vend], f);
                a = v.get(vend + 1..).unwrap_or(&[]);
            }
        }
        i += end + 1;
    }
    Ok(dropped)
}
