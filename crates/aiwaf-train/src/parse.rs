//! Access-log lines: nginx/apache "combined", with or without a trailing request time.
//!
//! `IP - user [10/Oct/2000:13:55:36 -0700] "GET /path?q HTTP/1.1" 200 2326 "referer" "agent" [TIME]`
//! where TIME is nginx `$request_time` (seconds, `0.123`), `response-time=0.123` (the seed's
//! format), or apache `%D` (microseconds, `123456`). IPv4 and IPv6, any method. A hand-written
//! byte parser: the hot loop of training.

use std::net::IpAddr;

use memchr::memchr;

/// Log format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Decide per file from its first lines.
    Auto,
    /// Plain combined: no request time (the feature is 0).
    Combined,
    /// Combined plus a request time in seconds (`$request_time` or `response-time=S`).
    CombinedRt,
    /// Combined plus apache `%D` microseconds.
    ApacheD,
    /// One JSON object per line (nginx `escape=json`, Caddy, Traefik; see [`crate::json`]).
    Json,
}

impl LogFormat {
    /// Name as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Combined => "combined",
            LogFormat::CombinedRt => "combined-rt",
            LogFormat::ApacheD => "apache-d",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "combined" => Ok(LogFormat::Combined),
            "combined-rt" => Ok(LogFormat::CombinedRt),
            "apache-d" => Ok(LogFormat::ApacheD),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format `{s}` (auto, combined, combined-rt, apache-d, json)")),
        }
    }
}

/// One parsed line, borrowing the request target from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLine<'a> {
    /// Client address.
    pub ip: IpAddr,
    /// Time (ms since the epoch, UTC).
    pub ts: u64,
    /// Request method.
    pub method: &'a str,
    /// Request target (path and query).
    pub target: &'a str,
    /// Status.
    pub status: u16,
    /// Request time in seconds, when the format has one.
    pub resp_time_s: Option<f64>,
    /// `Referer` as logged (`-` or empty when none).
    pub referer: &'a str,
    /// `User-Agent` as logged.
    pub user_agent: &'a str,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// No client address.
    Address,
    /// No `[time]`, or a time that does not parse.
    Time,
    /// No quoted request line, or one that is not `METHOD TARGET PROTOCOL`.
    Request,
    /// No 3-digit status.
    Status,
    /// The format requires a request time and the line has none.
    RequestTime,
    /// Not a JSON object (JSON logs).
    Json,
}

impl ParseError {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Address => "no client address",
            ParseError::Time => "no valid [time]",
            ParseError::Request => "no valid \"METHOD TARGET PROTOCOL\" request",
            ParseError::Status => "no valid status",
            ParseError::RequestTime => "no request time for this format",
            ParseError::Json => "not a JSON object",
        }
    }
}

fn month(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `10/Oct/2000:13:55:36 -0700` to ms since the epoch (UTC).
pub fn parse_time(b: &[u8]) -> Option<u64> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' || b[17] != b':' {
        return None;
    }
    let d = digits(&b[0..2])?;
    let m = month(&b[3..6])?;
    let y = digits(&b[7..11])?;
    let (hh, mm, ss) = (digits(&b[12..14])?, digits(&b[15..17])?, digits(&b[18..20])?);
    if !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut secs = days_from_civil(i64::from(y), m, d) * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    let zone = &b[20..];
    if zone.len() >= 6 && zone[0] == b' ' && (zone[1] == b'+' || zone[1] == b'-') {
        let zh = digits(&zone[2..4])?;
        let zm = digits(&zone[4..6])?;
        let off = i64::from(zh * 3600 + zm * 60);
        secs -= if zone[1] == b'+' { off } else { -off };
    }
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// The end of a quoted field starting after its opening quote (skips `\"`).
fn closing_quote(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let q = i + memchr(b'"', &b[i..])?;
        if q > from && b[q - 1] == b'\\' {
            i = q + 1;
            continue;
        }
        return Some(q);
    }
}

/// What the text after the user agent says about the request time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trailer {
    /// Nothing.
    None,
    /// Seconds (`0.123` or `response-time=0.123`).
    Seconds(f64),
    /// An integer: apache `%D` microseconds.
    Integer(u64),
}

fn trailer(rest: &[u8]) -> Trailer {
    let text = std::str::from_utf8(rest).unwrap_or("");
    for tok in text.split_ascii_whitespace() {
        if let Some(v) = tok.strip_prefix("response-time=") {
            if let Ok(s) = v.parse::<f64>() {
                return Trailer::Seconds(s);
            }
        } else if tok.contains('.') {
            if let Ok(s) = tok.parse::<f64>() {
                return Trailer::Seconds(s);
            }
        } else if let Ok(n) = tok.parse::<u64>() {
            return Trailer::Integer(n);
        }
    }
    Trailer::None
}

/// Parses one line (without its newline) in `format` (`Auto` reads any trailer).
pub fn parse_line(line: &[u8], format: LogFormat) -> Result<(LogLine<'_>, Trailer), ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = memchr(b' ', line).ok_or(ParseError::Address)?;
    let ip_text = std::str::from_utf8(&line[..sp]).map_err(|_| ParseError::Address)?;
    let ip: IpAddr = ip_text.parse().map_err(|_| ParseError::Address)?;
    let open = sp + memchr(b'[', &line[sp..]).ok_or(ParseError::Time)?;
    let close = open + memchr(b']', &line[open..]).ok_or(ParseError::Time)?;
    let ts = parse_time(&line[open + 1..close]).ok_or(ParseError::Time)?;
    let rest = &line[close + 1..];
    if rest.len() < 2 || rest[0] != b' ' || rest[1] != b'"' {
        return Err(ParseError::Request);
    }
    let req_start = close + 3;
    let req_end = closing_quote(line, req_start).ok_or(ParseError::Request)?;
    let request = std::str::from_utf8(&line[req_start..req_end]).map_err(|_| ParseError::Request)?;
    let mut parts = request.split(' ');
    let method = parts
        .next()
        .filter(|m| !m.is_empty() && m.bytes().all(|c| c.is_ascii_uppercase()))
        .ok_or(ParseError::Request)?;
    let target = parts.next().filter(|t| !t.is_empty()).ok_or(ParseError::Request)?;
    let after = &line[req_end + 1..];
    if after.len() < 4 || after[0] != b' ' {
        return Err(ParseError::Status);
    }
    let status = digits(&after[1..4]).filter(|s| (100..=599).contains(s)).ok_or(ParseError::Status)? as u16;
    // Skip bytes, referer and agent: the trailer is what follows the second quoted field.
    let mut pos = req_end + 5;
    let mut quoted = 0;
    let mut fields = ["", ""];
    while quoted < 2 {
        match memchr(b'"', &line[pos.min(line.len())..]) {
            Some(q) => {
                let startq = pos + q + 1;
                let endq = closing_quote(line, startq).ok_or(ParseError::Request)?;
                fields[quoted] = std::str::from_utf8(&line[startq..endq]).unwrap_or("");
                pos = endq + 1;
                quoted += 1;
            }
            None => break,
        }
    }
    let [referer, user_agent] = fields;
    let tail = if quoted == 2 { trailer(&line[pos.min(line.len())..]) } else { Trailer::None };
    let resp_time_s = match (format, tail) {
        (LogFormat::Combined, _) => None,
        (LogFormat::CombinedRt, Trailer::Seconds(s)) => Some(s),
        (LogFormat::CombinedRt, _) => return Err(ParseError::RequestTime),
        (LogFormat::ApacheD, Trailer::Integer(us)) => Some(us as f64 / 1e6),
        (LogFormat::ApacheD, _) => return Err(ParseError::RequestTime),
        (LogFormat::Auto, Trailer::Seconds(s)) => Some(s),
        (LogFormat::Auto, Trailer::Integer(us)) => Some(us as f64 / 1e6),
        (LogFormat::Auto, Trailer::None) => None,
        (LogFormat::Json, _) => return Err(ParseError::Json),
    };
    Ok((LogLine { ip, ts, method, target, status, resp_time_s, referer, user_agent }, tail))
}

/// Picks a format from a file's first lines.
pub fn detect_format<'a>(lines: impl Iterator<Item = &'a [u8]>) -> LogFormat {
    let mut lines = lines.filter(|l| !l.iter().all(u8::is_ascii_whitespace)).peekable();
    if lines.peek().is_some_and(|l| l.trim_ascii_start().starts_with(b"{")) {
        return LogFormat::Json;
    }
    let (mut secs, mut ints, mut none) = (0, 0, 0);
    for line in lines.take(200) {
        match parse_line(line, LogFormat::Auto) {
            Ok((_, Trailer::Seconds(_))) => secs += 1,
            Ok((_, Trailer::Integer(_))) => ints += 1,
            Ok((_, Trailer::None)) => none += 1,
            Err(_) => {}
        }
    }
    if secs >= ints && secs >= none && secs > 0 {
        LogFormat::CombinedRt
    } else if ints > none {
        LogFormat::ApacheD
    } else {
        LogFormat::Combined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_RT: &str = r#"203.0.113.7 - - [23/Nov/2026:10:15:02 +0100] "GET /blog/?page=2 HTTP/1.1" 200 5120 "https://example.com/" "Mozilla/5.0 (X11; Linux) \"quoted\" thing" 0.042"#;

    #[test]
    fn parses_each_format() {
        let (l, _) = parse_line(NGINX_RT.as_bytes(), LogFormat::Auto).unwrap();
        assert_eq!(l.ip.to_string(), "203.0.113.7");
        assert_eq!(l.ts, 1_795_425_302_000);
        assert_eq!((l.method, l.target, l.status, l.resp_time_s), ("GET", "/blog/?page=2", 200, Some(0.042)));
        let seed = r#"10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "POST /login HTTP/1.1" 403 12 "-" "curl/8" response-time=1.500"#;
        assert_eq!(parse_line(seed.as_bytes(), LogFormat::CombinedRt).unwrap().0.resp_time_s, Some(1.5));
        let apache = r#"2001:db8::5 - bob [01/Jan/2025:00:00:00 -0500] "DELETE /x HTTP/1.0" 404 0 "-" "-" 250000"#;
        let (l, _) = parse_line(apache.as_bytes(), LogFormat::ApacheD).unwrap();
        assert_eq!((l.ip.to_string().as_str(), l.resp_time_s, l.ts), ("2001:db8::5", Some(0.25), 1_735_707_600_000));
        let plain = r#"192.0.2.1 - - [01/Jan/2025:00:00:00 +0000] "HEAD / HTTP/1.1" 200 0 "-" "x""#;
        assert_eq!(parse_line(plain.as_bytes(), LogFormat::Combined).unwrap().0.resp_time_s, None);
        assert_eq!(parse_line(plain.as_bytes(), LogFormat::CombinedRt).unwrap_err(), ParseError::RequestTime);
    }

    #[test]
    fn malformed_lines_say_why() {
        let cases = [
            ("garbage", ParseError::Address),
            ("1.2.3.4 - - no time", ParseError::Time),
            (r#"1.2.3.4 - - [01/Foo/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#, ParseError::Time),
            (r#"1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "-" 400 0 "-" "-""#, ParseError::Request),
            (r#"1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" abc 1 "-" "-""#, ParseError::Status),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line.as_bytes(), LogFormat::Auto).unwrap_err(), want, "{line}");
        }
    }

    #[test]
    fn detects_formats() {
        let rt = [NGINX_RT.as_bytes()];
        assert_eq!(detect_format(rt.into_iter()), LogFormat::CombinedRt);
        let d = [r#"1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-" 1234"#.as_bytes()];
        assert_eq!(detect_format(d.into_iter()), LogFormat::ApacheD);
        let c = [r#"1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#.as_bytes()];
        assert_eq!(detect_format(c.into_iter()), LogFormat::Combined);
    }
}
