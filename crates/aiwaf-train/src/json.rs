//! JSON access logs: one object per line, as nginx `log_format … escape=json`, Caddy and
//! Traefik write them (and `aiwaf serve --access-log-format json`). Each fact is looked up
//! under a list of names (dotted paths into nested objects, `.0` into arrays), the first
//! present wins; the lists are configurable (`aiwaf train --json-fields ip=client,…`). Numbers
//! may be JSON numbers or text (nginx writes every variable as a string).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::parse::ParseError;

/// Where each fact is in a JSON line: candidate names, first present wins.
#[derive(Debug, Clone)]
pub struct JsonFields {
    /// Client address.
    pub ip: Vec<String>,
    /// Time: nginx `time_local` text, RFC 3339 text, or Unix seconds/milliseconds.
    pub time: Vec<String>,
    /// Method.
    pub method: Vec<String>,
    /// Request target (path and query).
    pub target: Vec<String>,
    /// A whole request line `METHOD TARGET PROTOCOL` (when method/target are not apart).
    pub request: Vec<String>,
    /// Status.
    pub status: Vec<String>,
    /// Request time in seconds.
    pub seconds: Vec<String>,
    /// Request time in nanoseconds (Traefik's `Duration`).
    pub nanoseconds: Vec<String>,
    /// `Referer`.
    pub referer: Vec<String>,
    /// `User-Agent`.
    pub user_agent: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for JsonFields {
    /// nginx (`$remote_addr`, `$time_local`/`$time_iso8601`/`$msec`, `$request_method`,
    /// `$request_uri`, `$status`, `$request_time`, `$http_referer`, `$http_user_agent`), Caddy
    /// (`request.remote_ip`, `ts`, `request.uri`, `duration`, `request.headers.User-Agent.0`),
    /// Traefik (`ClientHost`, `StartUTC`, `RequestMethod`, `RequestPath`, `DownstreamStatus`,
    /// `Duration`, `request_User-Agent`) and this proxy's own JSON log.
    fn default() -> Self {
        JsonFields {
            ip: names(&[
                "remote_addr",
                "client_ip",
                "ClientHost",
                "request.client_ip",
                "request.remote_ip",
                "remote_ip",
                "ip",
            ]),
            time: names(&[
                "ts_ms",
                "time_local",
                "time_iso8601",
                "msec",
                "ts",
                "StartUTC",
                "time",
                "timestamp",
                "@timestamp",
            ]),
            method: names(&["request_method", "RequestMethod", "request.method", "method"]),
            target: names(&["request_uri", "RequestPath", "request.uri", "uri", "path"]),
            request: names(&["request"]),
            status: names(&["status", "DownstreamStatus", "response.status", "status_code"]),
            seconds: names(&["request_time", "duration", "response_time"]),
            nanoseconds: names(&["Duration"]),
            referer: names(&["http_referer", "referer", "request.headers.Referer.0", "request_Referer"]),
            user_agent: names(&[
                "http_user_agent",
                "user_agent",
                "request.headers.User-Agent.0",
                "request_User-Agent",
                "useragent",
            ]),
        }
    }
}

impl JsonFields {
    /// Applies `fact=name[|name…],…` overrides (facts: ip, time, method, target, request,
    /// status, seconds, nanoseconds, referer, user_agent); the names given replace the defaults.
    pub fn with_overrides(mut self, spec: &str) -> Result<JsonFields, String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (fact, list) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected FACT=NAME"))?;
            let list: Vec<String> = list.split('|').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if list.is_empty() {
                return Err(format!("`{part}`: no field name"));
            }
            let slot = match fact.trim() {
                "ip" => &mut self.ip,
                "time" => &mut self.time,
                "method" => &mut self.method,
                "target" => &mut self.target,
                "request" => &mut self.request,
                "status" => &mut self.status,
                "seconds" => &mut self.seconds,
                "nanoseconds" => &mut self.nanoseconds,
                "referer" => &mut self.referer,
                "user_agent" => &mut self.user_agent,
                other => {
                    return Err(format!(
                        "unknown fact `{other}` (ip, time, method, target, request, status, seconds, nanoseconds, referer, user_agent)"
                    ));
                }
            };
            *slot = list;
        }
        Ok(self)
    }
}

/// One parsed JSON line (owned: JSON text may hold escapes).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonLine {
    /// Client address.
    pub ip: IpAddr,
    /// ms since the epoch.
    pub ts: u64,
    /// Method.
    pub method: String,
    /// Target.
    pub target: String,
    /// Status.
    pub status: u16,
    /// Request time, seconds.
    pub resp_time_s: Option<f64>,
    /// Referer (empty: none).
    pub referer: String,
    /// User-Agent (empty: none).
    pub user_agent: String,
}

fn lookup<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn first<'v>(v: &'v serde_json::Value, names: &[String]) -> Option<&'v serde_json::Value> {
    names
        .iter()
        .find_map(|n| lookup(v, n).filter(|x| !x.is_null() && x.as_str() != Some("") && x.as_str() != Some("-")))
}

fn text(v: &serde_json::Value) -> Option<Cow<'_, str>> {
    match v {
        serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
        serde_json::Value::Array(a) => a.first().and_then(text),
        _ => None,
    }
}

fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// RFC 3339 (`2026-12-01T10:00:00.123+01:00`, `Z`, or no zone: UTC) to ms since the epoch.
fn rfc3339(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { std::str::from_utf8(b.get(r)?).ok()?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = std::str::from_utf8(&b[start..i]).ok()?;
        let f3: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = f3.parse().ok()?;
    }
    let offset_min = match b.get(i) {
        None | Some(b'Z') | Some(b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6).unwrap_or(0);
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = crate::parse::days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    u64::try_from(secs * 1000 + ms).ok()
}

fn time(v: &serde_json::Value) -> Option<u64> {
    if let serde_json::Value::String(s) = v {
        let s = s.trim().trim_start_matches('[').trim_end_matches(']');
        if let Some(t) = crate::parse::parse_time(s.as_bytes()) {
            return Some(t);
        }
        if let Some(t) = rfc3339(s) {
            return Some(t);
        }
    }
    let n = number(v)?;
    // Unix seconds (nginx $msec, Caddy ts) or milliseconds
    if n > 1e12 {
        Some(n as u64)
    } else if n > 0.0 {
        Some((n * 1000.0).round() as u64)
    } else {
        None
    }
}

/// Parses one JSON line.
pub fn parse_json_line(line: &[u8], f: &JsonFields) -> Result<JsonLine, ParseError> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|_| ParseError::Json)?;
    if !v.is_object() {
        return Err(ParseError::Json);
    }
    let ip = first(&v, &f.ip)
        .and_then(text)
        .and_then(|t| {
            let t = t.trim();
            // `[::1]:port`, `1.2.3.4:port` (Traefik's ClientAddr style) or a bare address
            t.parse::<IpAddr>().ok().or_else(|| t.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        })
        .ok_or(ParseError::Address)?;
    let ts = first(&v, &f.time).and_then(time).ok_or(ParseError::Time)?;
    let (method, target) = match (first(&v, &f.method).and_then(text), first(&v, &f.target).and_then(text)) {
        (Some(m), Some(t)) => (m.into_owned(), t.into_owned()),
        _ => {
            let line = first(&v, &f.request).and_then(text).ok_or(ParseError::Request)?;
            let mut parts = line.split(' ');
            let m = parts.next().filter(|m| !m.is_empty()).ok_or(ParseError::Request)?.to_string();
            let t = parts.next().filter(|t| !t.is_empty()).ok_or(ParseError::Request)?.to_string();
            (m, t)
        }
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_uppercase()) || target.is_empty() {
        return Err(ParseError::Request);
    }
    let status =
        first(&v, &f.status).and_then(number).filter(|s| (100.0..=599.0).contains(s)).ok_or(ParseError::Status)? as u16;
    let resp_time_s = first(&v, &f.seconds)
        .and_then(number)
        .or_else(|| first(&v, &f.nanoseconds).and_then(number).map(|ns| ns / 1e9))
        .filter(|s| *s >= 0.0);
    let referer = first(&v, &f.referer).and_then(text).map(Cow::into_owned).unwrap_or_default();
    let user_agent = first(&v, &f.user_agent).and_then(text).map(Cow::into_owned).unwrap_or_default();
    Ok(JsonLine { ip, ts, method, target, status, resp_time_s, referer, user_agent })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> JsonLine {
        parse_json_line(s.as_bytes(), &JsonFields::default()).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn nginx_escape_json() {
        // log_format json escape=json '{"time_local":"$time_local","remote_addr":"$remote_addr",…}'
        let l = parse(
            r#"{"time_local":"01/Dec/2026:10:00:00 +0100","remote_addr":"203.0.113.7","request_method":"GET","request_uri":"/search?q=a\"b","status":"200","body_bytes_sent":"512","request_time":"0.042","http_referer":"","http_user_agent":"Mozilla/5.0 \"x\""}"#,
        );
        assert_eq!((l.ip.to_string().as_str(), l.ts), ("203.0.113.7", 1_796_115_600_000));
        assert_eq!((l.method.as_str(), l.target.as_str(), l.status), ("GET", "/search?q=a\"b", 200));
        assert_eq!(l.resp_time_s, Some(0.042));
        assert_eq!((l.referer.as_str(), l.user_agent.as_str()), ("", "Mozilla/5.0 \"x\""));
    }

    #[test]
    fn caddy_and_traefik() {
        let caddy = parse(
            r#"{"level":"info","ts":1764579600.25,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"2001:db8::7","remote_port":"5000","proto":"HTTP/2.0","method":"POST","host":"x","uri":"/login?next=/","headers":{"User-Agent":["curl/8.5"],"Referer":["https://x/"]}},"duration":0.0031,"size":12,"status":403}"#,
        );
        assert_eq!((caddy.ip.to_string().as_str(), caddy.ts, caddy.status), ("2001:db8::7", 1_764_579_600_250, 403));
        assert_eq!((caddy.method.as_str(), caddy.target.as_str()), ("POST", "/login?next=/"));
        assert_eq!((caddy.user_agent.as_str(), caddy.referer.as_str()), ("curl/8.5", "https://x/"));
        assert_eq!(caddy.resp_time_s, Some(0.0031));
        let traefik = parse(
            r#"{"ClientHost":"198.51.100.4","StartUTC":"2026-12-01T09:00:00.5Z","RequestMethod":"GET","RequestPath":"/.env","DownstreamStatus":404,"Duration":1500000,"request_User-Agent":"zgrab/0.x"}"#,
        );
        assert_eq!((traefik.ts, traefik.status, traefik.resp_time_s), (1_796_115_600_500, 404, Some(0.0015)));
        assert_eq!(traefik.user_agent, "zgrab/0.x");
    }

    #[test]
    fn request_line_field_offsets_and_overrides() {
        let l = parse(
            r#"{"ip":"10.0.0.1","time":"2026-12-01T11:00:00+01:00","request":"DELETE /api/x HTTP/1.1","status":204}"#,
        );
        assert_eq!((l.method.as_str(), l.target.as_str(), l.ts), ("DELETE", "/api/x", 1_796_119_200_000));
        let f = JsonFields::default().with_overrides("ip=client.addr, status=code|st").unwrap();
        let l = parse_json_line(
            br#"{"client":{"addr":"192.0.2.9"},"time":1764579600,"method":"GET","uri":"/","st":"301"}"#,
            &f,
        )
        .unwrap();
        assert_eq!((l.ip.to_string().as_str(), l.status), ("192.0.2.9", 301));
        assert!(JsonFields::default().with_overrides("colour=red").is_err());
        for bad in [&b"not json"[..], b"[1,2]", br#"{"remote_addr":"x"}"#, br#"{"remote_addr":"1.2.3.4","ts":1}"#] {
            assert!(parse_json_line(bad, &JsonFields::default()).is_err());
        }
    }
}
