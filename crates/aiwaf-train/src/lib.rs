//! Offline learning: read access logs (or the stored request log), replay them through the
//! engine's own response phase with the log's timestamps as `now`, ban 404 floods, fit the
//! IsolationForest on the engine's own features, find anomalous clients with attack signs, and
//! learn keywords.
//!
//! Two streaming passes over the input: the first finds 404 floods, collects a uniform sample
//! of feature rows (reservoir) and keyword statistics; the forest is fitted on the sample; the
//! second pass replays again with the model loaded, through the very rule the server applies
//! live. Memory holds per-client state, the sample and per-path statistics, never the log.
//!
//! Nothing is persisted here; the caller (the `aiwaf` binary) writes the outcome.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aiwaf_engine::config::is_browser_auto_path;
use aiwaf_engine::model::TrainingInfo;
use aiwaf_engine::path::tokens;
use aiwaf_engine::{
    Detector, Engine, EngineConfig, Lists, Mode, Model, Observation, RequestContext, RequestInfo, WafState,
};
use aiwaf_forest::{Forest, Params, quantile};
use rayon::prelude::*;
use serde::Serialize;

pub mod json;
pub mod parse;

use parse::{LogFormat, ParseError, parse_line};

/// Size of one read from a log file.
const CHUNK: usize = 4 << 20;
/// Rows kept for fitting (a uniform sample of all rows).
pub const DEFAULT_SAMPLE: usize = 100_000;
/// Fewer usable rows than this: no model is trained.
pub const MIN_ROWS: u64 = 50;
/// Rows scored in parallel at a time in the second pass.
const SCORE_BATCH: usize = 1 << 16;
/// Most distinct paths tracked for keyword learning.
const PATH_CAP: usize = 1_000_000;

/// The log files behind an access-log path: rotations oldest first (`access.log.3.gz`,
/// `access.log.2.gz`, `access.log.1`, then `access.log`). Missing files are left out.
pub fn discover(access_log: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (access_log.parent(), access_log.file_name().and_then(|n| n.to_str())) {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let fname = e.file_name();
                let Some(f) = fname.to_str() else { continue };
                let Some(rest) = f.strip_prefix(name).and_then(|r| r.strip_prefix('.')) else { continue };
                let num = rest.strip_suffix(".gz").unwrap_or(rest);
                if let Ok(n) = num.parse::<u64>() {
                    rotated.push((n, dir.join(f)));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if access_log.is_file() {
        files.push(access_log.to_path_buf());
    }
    files
}

/// A row from the stored request log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// Client.
    pub ip: IpAddr,
    /// ms since the epoch.
    pub ts: u64,
    /// Path (no query).
    pub path: String,
    /// Status.
    pub status: u16,
    /// Seconds.
    pub resp_time_s: f64,
}

/// What to learn from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Access-log files, in order (plain or gzip, detected by content).
    Files(Vec<PathBuf>),
    /// Rows of the stored request log, in time order.
    Rows(Vec<StoredRow>),
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Log format (`Auto`: per file).
    pub format: LogFormat,
    /// Ignore lines older than this (ms since the epoch).
    pub since: Option<u64>,
    /// Forest parameters (contamination from the configuration, seed 42).
    pub params: Params,
    /// Learned keywords to keep (`AIWAF_DYNAMIC_TOP_N`).
    pub top_n: usize,
    /// Rows sampled for fitting.
    pub sample: usize,
    /// Paths storage already knows the upstream serves (never learned from).
    pub known_paths: HashSet<String>,
    /// Wall-clock time of the run (ms since the epoch), for the model's metadata.
    pub now: u64,
    /// Replay the live request phase too (rate and flood, payload, scanner User-Agents,
    /// keywords, probing, honeypot), each ban with the live detector's id.
    pub request_phase: bool,
    /// Record, for this one client, every finding the replay produced (`aiwaf train --explain`).
    pub explain: Option<IpAddr>,
    /// Where the facts are in JSON log lines.
    pub json_fields: json::JsonFields,
    /// Rows with attack signs kept from pass 1 for scoring ([`MAX_KEPT_ROWS`]); more make pass 2
    /// replay the log again.
    pub max_kept_rows: usize,
}

/// One finding of the replay for the client `--explain` asked about.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Explained {
    /// File (or "request log").
    pub source: String,
    /// Line in it (1-based).
    pub line: u64,
    /// ms since the epoch.
    pub ts: u64,
    /// `METHOD TARGET` as logged.
    pub request: String,
    /// Status logged.
    pub status: u16,
    /// `request` (the request phase) or `response` (the response phase).
    pub phase: &'static str,
    /// What live would have done: `block`, `ban`, `rate_limit`, `flag`.
    pub action: &'static str,
    /// Detector id.
    pub detector: &'static str,
    /// Why.
    pub reason: String,
    /// The finding's evidence.
    pub evidence: serde_json::Value,
}

/// A skipped line, for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// File.
    pub source: String,
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub error: &'static str,
    /// The line (cut at 200 bytes).
    pub text: String,
}

/// One input file in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceReport {
    /// Path (or `request log`).
    pub source: String,
    /// Format used.
    pub format: &'static str,
    /// Gzip-compressed.
    pub gzip: bool,
    /// Lines read.
    pub lines: u64,
    /// Lines skipped as malformed.
    pub malformed: u64,
}

/// A ban found by training.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FoundBan {
    /// Client.
    pub ip: IpAddr,
    /// `not_found_flood` or `anomaly`.
    pub detector: &'static str,
    /// Human reason.
    pub reason: String,
    /// Facts (the anomaly's score and features included).
    pub evidence: serde_json::Value,
    /// Log time of the finding (ms since the epoch).
    pub at: u64,
}

/// Model statistics for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelReport {
    /// Trees.
    pub trees: usize,
    /// Rows per tree.
    pub sample_size: usize,
    /// Rows the forest was fitted on.
    pub fitted_rows: u64,
    /// Anomaly threshold.
    pub threshold: f64,
    /// Training score distribution.
    pub score_quantiles: std::collections::BTreeMap<String, f64>,
    /// Rows with attack signs scored above the threshold in the second pass.
    pub anomalous_rows: u64,
    /// Rows with attack signs (the only ones scored in the second pass).
    pub rows_with_signs: u64,
}

/// What a run found.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Report {
    /// Inputs.
    pub sources: Vec<SourceReport>,
    /// Lines read.
    pub lines_read: u64,
    /// Lines skipped (malformed).
    pub lines_skipped: u64,
    /// Lines before `--since`.
    pub lines_too_old: u64,
    /// First few skipped lines.
    pub skipped_samples: Vec<Skipped>,
    /// Rows replayed (parsed lines within `--since`).
    pub rows: u64,
    /// Rows with features (not on exempt paths or from exempt clients).
    pub feature_rows: u64,
    /// Distinct clients.
    pub clients: u64,
    /// Bans by detector.
    pub bans_by_reason: std::collections::BTreeMap<String, u64>,
    /// Bans found.
    pub bans: Vec<FoundBan>,
    /// Keywords learned with their counts in this input.
    pub keywords: Vec<(String, u64)>,
    /// Model statistics (absent when there were too few rows).
    pub model: Option<ModelReport>,
    /// Why no model was trained.
    pub model_skipped: Option<String>,
    /// Wall time of each phase, in milliseconds.
    pub timings_ms: std::collections::BTreeMap<String, u64>,
    /// `--explain IP`: every finding for that client, in log order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explain: Vec<Explained>,
    /// Findings on addresses training never bans (loopback, trusted proxies), with why.
    pub not_banned: Vec<String>,
    /// Things the operator should know about the input (e.g. a log written behind a proxy).
    pub warnings: Vec<String>,
    /// Resolution of the input's timestamps in ms (1000: whole seconds; 0: finer), and what it
    /// means for the rules that time short intervals.
    pub clock_resolution_ms: u64,
    /// What that resolution can and cannot show.
    pub timing: String,
}

/// The few most frequent clients of a stream, in O(1) memory (Misra–Gries): any client with
/// more than 1/(K+1) of the rows is among them, its count a lower bound.
#[derive(Debug, Default)]
struct HeavyHitters {
    slots: Vec<(IpAddr, u64)>,
    total: u64,
}

impl HeavyHitters {
    const K: usize = 8;

    fn add(&mut self, ip: IpAddr) {
        self.total += 1;
        if let Some(s) = self.slots.iter_mut().find(|s| s.0 == ip) {
            s.1 += 1;
        } else if self.slots.len() < Self::K {
            self.slots.push((ip, 1));
        } else {
            for s in &mut self.slots {
                s.1 -= 1;
            }
            self.slots.retain(|s| s.1 > 0);
        }
    }

    /// The client with the largest share, when it made at least `min_share` of at least
    /// `min_rows` rows.
    fn dominant(&self, min_share: f64, min_rows: u64) -> Option<(IpAddr, f64)> {
        let (ip, n) = self.slots.iter().max_by_key(|s| s.1)?;
        let share = *n as f64 / self.total.max(1) as f64;
        (self.total >= min_rows && share >= min_share).then_some((*ip, share))
    }
}

/// Whether a token can never be a keyword: numbers, hex and UUID fragments (`4c1d`, `5b8e` —
/// from ids, not attacks).
fn is_id_fragment(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b.is_ascii_digit())
}

/// A run's result: the report, the model and what to store.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Report (bans and keywords included).
    pub report: Report,
    /// The model, unless there were too few rows.
    pub model: Option<Model>,
}

/// Counts bytes read, for progress.
struct Counting<R> {
    inner: R,
    counter: &'static AtomicU64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Bytes of input read so far in this process (for a progress bar).
pub static BYTES_READ: AtomicU64 = AtomicU64::new(0);

fn open(path: &Path) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    drop(f);
    let file = Counting { inner: File::open(path)?, counter: &BYTES_READ };
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 16, file))), true))
    } else {
        Ok((Box::new(file), false))
    }
}

/// A parsed row borrowing its target from the chunk.
struct Row {
    ip: IpAddr,
    ts: u64,
    status: u16,
    resp: f64,
    target: (u32, u32),
    method: (u32, u32),
    referer: (u32, u32),
    user_agent: (u32, u32),
    /// Line number within its chunk (1-based).
    line: u64,
}

struct ParsedChunk {
    rows: Vec<Row>,
    errors: Vec<(u64, ParseError, (usize, usize))>,
    lines: u64,
    /// Text decoded from JSON lines (escapes resolved): spans with [`IN_EXTRA`] point here.
    extra: String,
}

/// Marks a span into [`ParsedChunk::extra`] rather than into the chunk.
const IN_EXTRA: u32 = 1 << 31;

impl ParsedChunk {
    /// The text of a span: in the chunk (`whole`: the chunk as text when it is valid UTF-8 as a
    /// whole, checked once rather than per field) or in the decoded side buffer.
    fn text<'c>(&'c self, chunk: &'c [u8], whole: Option<&'c str>, (a, b): (u32, u32)) -> &'c str {
        if a & IN_EXTRA != 0 {
            self.extra.get((a & !IN_EXTRA) as usize..(b & !IN_EXTRA) as usize).unwrap_or("")
        } else if let Some(w) = whole {
            w.get(a as usize..b as usize).unwrap_or("")
        } else {
            std::str::from_utf8(&chunk[a as usize..b as usize]).unwrap_or("")
        }
    }
}

fn push_extra(extra: &mut String, s: &str) -> (u32, u32) {
    if s.is_empty() {
        return (0, 0);
    }
    let a = extra.len() as u32;
    extra.push_str(s);
    (a | IN_EXTRA, extra.len() as u32 | IN_EXTRA)
}

fn parse_chunk(chunk: &[u8], format: LogFormat, fields: &json::JsonFields) -> ParsedChunk {
    let mut out =
        ParsedChunk { rows: Vec::with_capacity(chunk.len() / 180), errors: Vec::new(), lines: 0, extra: String::new() };
    let mut start = 0;
    while start < chunk.len() {
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |i| start + i);
        let line = &chunk[start..end];
        out.lines += 1;
        if format == LogFormat::Json && !line.iter().all(u8::is_ascii_whitespace) {
            match json::parse_json_line(line, fields) {
                Ok(l) => {
                    let row = Row {
                        ip: aiwaf_engine::ip::canonical(l.ip),
                        ts: l.ts,
                        status: l.status,
                        resp: l.resp_time_s.unwrap_or(0.0),
                        target: push_extra(&mut out.extra, &l.target),
                        method: push_extra(&mut out.extra, &l.method),
                        referer: push_extra(&mut out.extra, &l.referer),
                        user_agent: push_extra(&mut out.extra, &l.user_agent),
                        line: out.lines,
                    };
                    out.rows.push(row);
                }
                Err(e) => out.errors.push((out.lines, e, (start, end))),
            }
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            match parse_line(line, format) {
                Ok((l, _)) => {
                    let span = |s: &str| {
                        let off = s.as_ptr() as usize - chunk.as_ptr() as usize;
                        (off as u32, (off + s.len()) as u32)
                    };
                    out.rows.push(Row {
                        ip: aiwaf_engine::ip::canonical(l.ip),
                        ts: l.ts,
                        status: l.status,
                        resp: l.resp_time_s.unwrap_or(0.0),
                        target: span(l.target),
                        method: span(l.method),
                        referer: if l.referer.is_empty() { (0, 0) } else { span(l.referer) },
                        user_agent: if l.user_agent.is_empty() { (0, 0) } else { span(l.user_agent) },
                        line: out.lines,
                    });
                }
                Err(e) => out.errors.push((out.lines, e, (start, end))),
            }
        } else {
            out.lines -= 1;
        }
        start = end + 1;
    }
    out
}

/// One replayed request, handed to a pass.
struct Seen<'a> {
    /// The row's index in the replay (the same row in both passes).
    row: u64,
    ts: u64,
    ctx: &'a RequestContext,
    status: u16,
    obs: &'a Observation,
    /// The request phase's verdict, when it ran.
    verdict: Option<&'a aiwaf_engine::Verdict>,
    /// The line it came from.
    logged: &'a Logged<'a>,
}

/// A row with attack signs waiting to be scored (pass 2), with its line when it is explained.
struct ScoredRow {
    ip: IpAddr,
    path: String,
    features: aiwaf_engine::Features,
    ts: u64,
    line: Option<Box<Explained>>,
}

/// Rows with attack signs kept from pass 1 for scoring (about 150 bytes each): beyond this,
/// pass 2 replays the log again instead.
pub const MAX_KEPT_ROWS: usize = 100_000;

/// The row to score for a replayed line with attack signs, with its line when it is explained.
fn scored_row(engine: &Engine, opts: &Options, s: &Seen<'_>, f: aiwaf_engine::Features) -> ScoredRow {
    let line = opts.explain.filter(|ip| engine.client_key(*ip) == s.ctx.client).map(|_| {
        Box::new(Explained {
            source: s.logged.source.to_string(),
            line: s.logged.line,
            ts: s.ts,
            request: format!("{} {}", s.logged.method, s.logged.target),
            status: s.status,
            phase: "model",
            action: "",
            detector: "anomaly",
            reason: String::new(),
            evidence: serde_json::Value::Null,
        })
    });
    ScoredRow { ip: s.ctx.client, path: s.ctx.path.once.clone(), features: f, ts: s.ts, line }
}

/// One log line's facts.
struct Logged<'a> {
    source: &'a str,
    line: u64,
    ip: IpAddr,
    ts: u64,
    method: &'a str,
    target: &'a str,
    status: u16,
    resp: f64,
    referer: &'a str,
    user_agent: &'a str,
}

/// Replays the input once through `engine` with a fresh `state`; calls `visit` per row.
/// `payload_scores` (row, score), sorted by row: the request phase's payload scores, for a
/// replay without the request phase (the `payload_score` feature).
#[allow(clippy::too_many_arguments)] // One replay's inputs.
fn replay(
    engine: &Engine,
    state: &WafState,
    input: &Input,
    opts: &Options,
    report: Option<&mut Report>,
    payload_scores: &[(u64, u32)],
    visit: &mut dyn FnMut(Seen<'_>),
) -> io::Result<()> {
    let mut local = Report::default();
    let report = report.unwrap_or(&mut local);
    let mut one = |l: Logged<'_>, report: &mut Report| {
        if opts.since.is_some_and(|s| l.ts < s) {
            report.lines_too_old += 1;
            return;
        }
        report.rows += 1;
        if !l.ts.is_multiple_of(1000) && state.clock_resolution_ms() != 0 {
            state.set_clock_resolution_ms(0);
        }
        let (path, query) = match l.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (l.target, None),
        };
        // The request phase, as live (rate and flood from the log's timestamps, payload
        // inspection of the path and query, scanner User-Agents, keywords, probing, the form
        // honeypot), with what a log line holds: no body, no Accept, `Referer` and `User-Agent`.
        // The log knows what live cannot yet: the site served this path. A path it serves is
        // no probe (keywords are never judged on known paths).
        if opts.request_phase && (200..300).contains(&l.status) && path.len() > 1 {
            let once = crate::normalized_once(path);
            if !state.is_known_path(&once) {
                state.seed_known_paths(std::iter::once(once.as_str()));
            }
        }
        let row = report.rows;
        let (verdict, mut ctx) = if opts.request_phase {
            let ua = [("User-Agent", l.user_agent.as_bytes())];
            let headers: &[(&str, &[u8])] = if l.user_agent.is_empty() || l.user_agent == "-" { &[] } else { &ua };
            let referer = Some(l.referer).filter(|r| !r.is_empty() && *r != "-");
            // A log has no Content-Type: a POST is taken as a form submission, which the honeypot
            // only judges when its page was served to GETs as a page (a JSON API never is).
            let form = matches!(l.method, "POST" | "PUT").then_some("application/x-www-form-urlencoded");
            let info = RequestInfo {
                client: l.ip,
                method: l.method,
                path,
                content_type: form,
                accept: None,
                sec_fetch_dest: None,
                referer,
                host: None,
                query,
                headers,
            };
            let insp = engine.inspect(state, Mode::Block, &info, l.ts);
            (Some(insp.verdict), insp.context)
        } else {
            (None, engine.context(state, l.ip, path))
        };
        if let Ok(i) = payload_scores.binary_search_by_key(&row, |&(r, _)| r) {
            let mut r = aiwaf_engine::payload::Report::default();
            r.score = payload_scores[i].1;
            ctx.payload = Some(Box::new(r));
        }
        // a page a browser reads: where forms live, for the honeypot's "POST without its GET"
        if l.method == "GET" && (200..300).contains(&l.status) && !engine.is_asset(&ctx.path.once) {
            engine.note_html_page(state, &ctx);
        }
        let obs = engine.replay(state, &ctx, l.status, l.resp, l.ts);
        if opts.explain.is_some_and(|ip| engine.client_key(ip) == ctx.client) {
            let mut add = |phase: &'static str, action: &'static str, f: &aiwaf_engine::Finding| {
                report.explain.push(Explained {
                    source: l.source.to_string(),
                    line: l.line,
                    ts: l.ts,
                    request: format!("{} {}", l.method, l.target),
                    status: l.status,
                    phase,
                    action,
                    detector: f.detector.as_str(),
                    reason: f.reason.clone(),
                    evidence: f.evidence.clone(),
                })
            };
            // after its ban, each request of the client is blocked as banned: the ban says it once
            if let Some(v) = &verdict
                && let Some(f) = v.finding.as_ref().filter(|f| f.detector != Detector::Blacklist)
            {
                let action = match (v.ban.is_some(), v.action) {
                    (true, _) => "ban",
                    (false, aiwaf_engine::Action::Allow) => "flag",
                    (false, aiwaf_engine::Action::RateLimit { .. }) => "rate_limit",
                    _ => "block",
                };
                add("request", action, f);
            }
            if let Some(f) = &obs.finding {
                add("response", "finding", f);
            }
        }
        visit(Seen { row, ts: l.ts, ctx: &ctx, status: l.status, obs: &obs, verdict: verdict.as_ref(), logged: &l });
    };
    match input {
        Input::Rows(rows) => {
            report.sources.push(SourceReport {
                source: "request log".into(),
                format: "stored",
                gzip: false,
                lines: rows.len() as u64,
                malformed: 0,
            });
            report.lines_read += rows.len() as u64;
            for (i, r) in rows.iter().enumerate() {
                let l = Logged {
                    source: "request log",
                    line: i as u64 + 1,
                    ip: r.ip,
                    ts: r.ts,
                    method: "GET",
                    target: &r.path,
                    status: r.status,
                    resp: r.resp_time_s,
                    referer: "",
                    user_agent: "",
                };
                one(l, report);
            }
        }
        Input::Files(files) => {
            for path in files {
                let (mut reader, gzip) = open(path)?;
                let name = path.display().to_string();
                let mut format = opts.format;
                let mut src = SourceReport { source: name.clone(), format: "", gzip, lines: 0, malformed: 0 };
                let mut carry: Vec<u8> = Vec::new();
                let mut eof = false;
                while !eof {
                    // Read a batch: one chunk per core, each ending at a newline.
                    let mut chunks: Vec<Vec<u8>> = Vec::new();
                    while chunks.len() < rayon::current_num_threads().max(2) && !eof {
                        let mut buf = std::mem::take(&mut carry);
                        let have = buf.len();
                        buf.resize(have + CHUNK, 0);
                        let mut filled = have;
                        while filled < buf.len() {
                            let n = reader.read(&mut buf[filled..])?;
                            if n == 0 {
                                eof = true;
                                break;
                            }
                            filled += n;
                        }
                        buf.truncate(filled);
                        if !eof {
                            match memchr::memrchr(b'\n', &buf) {
                                Some(i) => {
                                    carry = buf[i + 1..].to_vec();
                                    buf.truncate(i + 1);
                                }
                                None => {
                                    carry = buf;
                                    continue;
                                }
                            }
                        }
                        if !buf.is_empty() {
                            chunks.push(buf);
                        }
                    }
                    if format == LogFormat::Auto
                        && let Some(first) = chunks.first()
                    {
                        format = parse::detect_format(first.split(|&b| b == b'\n'));
                    }
                    let parsed: Vec<ParsedChunk> =
                        chunks.par_iter().map(|c| parse_chunk(c, format, &opts.json_fields)).collect();
                    for (chunk, p) in chunks.iter().zip(parsed) {
                        for (line_no, err, (s, e)) in &p.errors {
                            if report.skipped_samples.len() < 5 {
                                let text = String::from_utf8_lossy(&chunk[*s..(*e).min(*s + 200)]).into_owned();
                                report.skipped_samples.push(Skipped {
                                    source: name.clone(),
                                    line: src.lines + line_no,
                                    error: err.as_str(),
                                    text,
                                });
                            }
                        }
                        src.lines += p.lines;
                        src.malformed += p.errors.len() as u64;
                        let whole = std::str::from_utf8(chunk).ok();
                        for r in &p.rows {
                            let text = |span: (u32, u32)| p.text(chunk, whole, span);
                            let l = Logged {
                                source: &name,
                                line: src.lines - p.lines + r.line,
                                ip: r.ip,
                                ts: r.ts,
                                method: text(r.method),
                                target: Some(text(r.target)).filter(|t| !t.is_empty()).unwrap_or("/"),
                                status: r.status,
                                resp: r.resp,
                                referer: text(r.referer),
                                user_agent: text(r.user_agent),
                            };
                            one(l, report);
                        }
                    }
                }
                src.format = format.as_str();
                report.lines_read += src.lines;
                report.lines_skipped += src.malformed;
                report.sources.push(src);
            }
        }
    }
    Ok(())
}

fn normalized_once(path: &str) -> String {
    aiwaf_engine::path::NormalizedPath::new(path).once
}

fn training_state(config: &EngineConfig, lists: &Lists) -> WafState {
    let mut cfg = config.clone();
    cfg.client_capacity = cfg.client_capacity.max(2_000_000);
    // the learned profile is the live server's (a log has no bodies and no verdicts to learn from)
    cfg.payload.profile.enabled = false;
    let state = WafState::new(&cfg);
    state.install_lists(lists.clone(), 0, 0);
    // whole seconds until a timestamp with a fraction shows otherwise (combined logs never do)
    state.set_clock_resolution_ms(1000);
    state
}

/// What a log's timestamp resolution can and cannot show (the report's `timing`).
fn timing_note(resolution_ms: u64, config: &EngineConfig) -> String {
    if resolution_ms == 0 {
        return "timestamps finer than a second: every rule is timed as live".to_string();
    }
    format!(
        "timestamps in whole seconds: a form POST logged in its page GET's second or the next is \
         counted as faster than {:.0} s (live: {:.0} s), so a 1.5 s person and a 0.5 s bot look \
         alike; {} such posts within the window make a ban, one never does. Rates and floods are \
         counted per second as live.",
        (config.min_form_time_ms + resolution_ms) as f64 / 1000.0,
        config.min_form_time_ms as f64 / 1000.0,
        config.honeypot_min_hits,
    )
}

/// Runs the two passes. `lists` holds the exemptions (and keywords) in force.
pub fn train(engine: &Engine, lists: &Lists, input: &Input, opts: &Options) -> io::Result<Outcome> {
    let config = engine.config();
    let mut report = Report::default();
    let mut sample: Vec<Vec<f64>> = Vec::new();
    let mut seen_rows: u64 = 0;
    // Seeded: the same input gives the same sample and model.
    let mut rng = aiwaf_forest::SplitMix64::from_state(opts.params.seed);
    let mut bans: HashMap<IpAddr, FoundBan> = HashMap::new();
    let mut ok_paths: HashSet<String> = HashSet::new();
    // Failed paths per client: keywords are learned from the clients training bans only.
    let mut err_paths: HashMap<IpAddr, Vec<String>> = HashMap::new();
    let mut err_total = 0usize;

    // Pass 1: 404 floods, the sample, path statistics.
    let clock = std::time::Instant::now();
    let lap = |report: &mut Report, name: &str| {
        report.timings_ms.insert(name.to_string(), clock.elapsed().as_millis() as u64);
    };
    let state = training_state(config, lists);
    let mut heavy = HeavyHitters::default();
    // the request phase's payload scores by row, for pass 2 (which replays the response phase only)
    let mut payload_scores: Vec<(u64, u32)> = Vec::new();
    // the rows with attack signs, in order: when they are few (the usual case) the model scores
    // them after the fit and the log is not replayed a second time
    let mut kept: Option<Vec<ScoredRow>> = Some(Vec::new());
    replay(engine, &state, input, opts, Some(&mut report), &[], &mut |s: Seen<'_>| {
        heavy.add(s.ctx.client);
        if let Some(r) = s.ctx.payload.as_ref().filter(|r| r.score > 0) {
            payload_scores.push((s.row, r.score));
        }
        if let Some(rows) = kept.as_mut()
            && let Some(f) = s.obs.features.filter(|f| config.attack_signs(f))
        {
            if rows.len() >= opts.max_kept_rows {
                kept = None;
            } else {
                rows.push(scored_row(engine, opts, &s, f));
            }
        }
        if let Some(f) = &s.obs.features {
            seen_rows += 1;
            if sample.len() < opts.sample {
                sample.push(f.to_vec());
            } else {
                let j = (rng.next() % seen_rows) as usize;
                if j < opts.sample {
                    sample[j] = f.to_vec();
                }
            }
        }
        if let Some(ban) = s.verdict.and_then(|v| v.ban.as_ref()) {
            bans.entry(s.ctx.client).or_insert_with(|| FoundBan {
                ip: s.ctx.client,
                detector: ban.detector.as_str(),
                reason: format!("Training: {}", ban.reason),
                evidence: serde_json::json!({"source": "training", "finding": ban.evidence}),
                at: s.ts,
            });
        }
        if let Some(f) = &s.obs.finding
            && f.detector == Detector::NotFoundFlood
        {
            bans.entry(s.ctx.client).or_insert_with(|| FoundBan {
                ip: s.ctx.client,
                detector: "not_found_flood",
                reason: format!("Training: {}", f.reason),
                evidence: serde_json::json!({"source": "training", "finding": f.evidence}),
                at: s.ts,
            });
        }
        if !s.ctx.exempt && !is_browser_auto_path(&s.ctx.path.once) {
            let p = &s.ctx.path.once;
            if (200..400).contains(&s.status) {
                if ok_paths.len() < PATH_CAP || ok_paths.contains(p) {
                    ok_paths.insert(p.clone());
                }
            } else if s.status >= 400 && s.status != 429 && err_total < PATH_CAP {
                let list = err_paths.entry(s.ctx.client).or_default();
                if list.len() < 64 {
                    list.push(p.clone());
                    err_total += 1;
                }
            }
        }
    })?;
    report.feature_rows = seen_rows;
    report.clients = state.client_count();
    if let Some((ip, share)) = heavy.dominant(0.5, 200) {
        report.warnings.push(format!(
            "one address ({ip}) made at least {:.0}% of the {} requests: this log is probably written behind a proxy. \
             Add the proxy to server.trusted_proxies (its X-Forwarded-For then names the client) or train on the proxy's own log",
            share * 100.0,
            report.rows
        ));
    }
    report.clock_resolution_ms = state.clock_resolution_ms();
    report.timing = timing_note(report.clock_resolution_ms, config);
    drop(state);
    lap(&mut report, "1_replay");

    // The forest, then pass 2 with the live anomaly rule.
    let mut model = None;
    if seen_rows < MIN_ROWS {
        report.model_skipped = Some(format!("{seen_rows} usable rows; at least {MIN_ROWS} are needed"));
    } else {
        let forest = Forest::fit(&sample, &opts.params).map_err(|e| io::Error::other(e.to_string()))?;
        lap(&mut report, "2_fit");
        let mut scores = forest.score_many(&sample);
        let mut quantiles = std::collections::BTreeMap::new();
        for q in [0.5, 0.9, 0.95, 0.99, 1.0] {
            quantiles.insert(format!("p{}", (q * 100.0) as u32), quantile(&mut scores, q));
        }
        let info = TrainingInfo {
            trained_at: opts.now,
            sources: report.sources.iter().map(|s| s.source.clone()).collect(),
            rows_used: seen_rows,
            clients: report.clients,
            contamination: opts.params.contamination,
            seed: opts.params.seed,
            fitted_rows: sample.len() as u64,
            score_quantiles: quantiles.clone(),
        };
        let m = Model::new(forest, info);
        // Features come from a sequential replay (per-client state); scoring is pure, so a batch
        // is scored in parallel and then judged in order by the server's own anomaly rule.
        let state = training_state(config, lists);
        let threshold = m.threshold();
        let mut anomalous_rows = 0u64;
        let mut rows_with_signs = 0u64;
        let mut batch: Vec<ScoredRow> = Vec::with_capacity(SCORE_BATCH);
        let mut explained: Vec<Explained> = Vec::new();
        let mut flush = |batch: &mut Vec<ScoredRow>| {
            let rows: Vec<&[f64]> = batch.iter().map(|r| &r.features[..]).collect();
            let scores = m.file().forest.score_many(&rows);
            rows_with_signs += scores.len() as u64;
            for (r, score) in batch.drain(..).zip(scores) {
                let ScoredRow { ip, path, features: f, ts, line } = r;
                if score > threshold {
                    anomalous_rows += 1;
                }
                let judged = engine.judge_anomaly(&state, ip, &path, &f, score, threshold, ts);
                // `--explain`: every scored row of the client, the model's judgment with it
                if let Some(mut e) = line.map(|b| *b) {
                    e.action = if judged.is_some() {
                        "ban"
                    } else if score > threshold {
                        "anomalous"
                    } else {
                        "normal"
                    };
                    e.reason = match &judged {
                        Some(finding) => finding.reason.clone(),
                        None => format!("anomaly score {score:.3} (threshold {threshold:.3})"),
                    };
                    e.evidence = serde_json::json!({"score": score, "threshold": threshold, "features": f.to_vec(),
                        "feature_names": aiwaf_engine::FEATURE_NAMES});
                    explained.push(e);
                }
                if let Some(finding) = judged {
                    bans.entry(ip).or_insert_with(|| FoundBan {
                        ip,
                        detector: "anomaly",
                        reason: format!("Training: {}", finding.reason),
                        evidence: serde_json::json!({"source": "training", "finding": finding.evidence}),
                        at: ts,
                    });
                }
            }
        };
        // The request phase's bans were found in pass 1; scoring needs the response phase only.
        let scoring = Options {
            format: opts.format,
            since: opts.since,
            params: opts.params,
            top_n: opts.top_n,
            sample: opts.sample,
            known_paths: HashSet::new(),
            now: opts.now,
            request_phase: false,
            explain: None,
            json_fields: opts.json_fields.clone(),
            max_kept_rows: 0,
        };
        match kept.take() {
            Some(rows) => {
                for r in rows {
                    batch.push(r);
                    if batch.len() == SCORE_BATCH {
                        flush(&mut batch);
                    }
                }
            }
            None => replay(engine, &state, input, &scoring, None, &payload_scores, &mut |s: Seen<'_>| {
                // Only rows with attack signs can count towards a ban; the rest need no score.
                if let Some(f) = s.obs.features.filter(|f| config.attack_signs(f)) {
                    batch.push(scored_row(engine, opts, &s, f));
                    if batch.len() == SCORE_BATCH {
                        flush(&mut batch);
                        lap(&mut report, "3_replay_scored");
                    }
                }
            })?,
        }
        flush(&mut batch);
        lap(&mut report, "3_replay_scored");
        if !explained.is_empty() {
            // the model's judgments beside each line's other findings, in log order
            report.explain.extend(explained);
            report.explain.sort_by_key(|e| (e.ts, e.line));
        }
        report.model = Some(ModelReport {
            trees: m.file().forest.trees.len(),
            sample_size: m.file().forest.sample_size,
            fitted_rows: sample.len() as u64,
            threshold: m.threshold(),
            score_quantiles: quantiles,
            anomalous_rows,
            rows_with_signs,
        });
        model = Some(m);
    }
    // Never a ban on loopback (health checks, the app's own calls) or on a trusted proxy (it
    // speaks for every client behind it); nor are keywords learned from them.
    bans.retain(|ip, b| {
        let why = if ip.is_loopback() {
            "loopback"
        } else if engine.is_trusted_proxy(*ip) {
            "a trusted proxy"
        } else {
            return true;
        };
        report.not_banned.push(format!("{ip} ({why}): {}", b.reason));
        false
    });
    // Keywords: tokens of the paths that banned clients failed on and that were never served,
    // minus every token of a served path (the site's own vocabulary), static keywords and
    // allowed words. A broken link that honest readers hit teaches nothing.
    let served_vocab: HashSet<&str> = ok_paths.iter().flat_map(|p| tokens(p)).collect();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let failed = bans.keys().filter_map(|ip| err_paths.get(ip)).flatten();
    for p in failed {
        if ok_paths.contains(p) || opts.known_paths.contains(p) {
            continue;
        }
        let n = 1;
        let mut per_path: HashSet<&str> = HashSet::new();
        for t in tokens(p) {
            if served_vocab.contains(t)
                || t.chars().all(|c| c.is_ascii_digit())
                || is_id_fragment(t)
                || config.static_keywords.iter().any(|k| k == t)
                || config.allowed_path_keywords.iter().any(|a| a.eq_ignore_ascii_case(t))
                || !per_path.insert(t)
            {
                continue;
            }
            *counts.entry(t.to_string()).or_default() += n;
        }
    }
    let mut learned: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c >= 2).collect();
    learned.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    learned.truncate(opts.top_n);
    report.keywords = learned;

    let mut bans: Vec<FoundBan> = bans.into_values().collect();
    bans.sort_by(|a, b| a.detector.cmp(b.detector).then(a.ip.cmp(&b.ip)));
    for b in &bans {
        *report.bans_by_reason.entry(b.detector.to_string()).or_default() += 1;
    }
    report.bans = bans;
    Ok(Outcome { report, model })
}

#[cfg(test)]
mod tests;
