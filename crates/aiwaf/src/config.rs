//! Configuration: defaults, then `aiwaf.toml`, then the seed's `AIWAF_*` environment names,
//! then command-line flags. Unknown keys and bad values refuse to start, naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aiwaf_engine::ip::parse_net;
use aiwaf_engine::{EngineConfig, Mode};
use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// A duration in a file: a number of seconds or text such as `"15m"`, `"1h 30m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

fn parse_duration(key: &str, v: &str) -> Result<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            bail!("{key}: `{v}` is not a valid duration");
        }
        return Duration::try_from_secs_f64(secs).with_context(|| format!("{key}: `{v}` is too long a duration"));
    }
    humantime::parse_duration(v).with_context(|| format!("{key}: `{v}` is not a valid duration (e.g. 10s, 15m, 24h)"))
}

fn duration(key: &str, v: &DurationValue) -> Result<Duration> {
    match v {
        DurationValue::Seconds(s) => parse_duration(key, &s.to_string()),
        DurationValue::Text(t) => parse_duration(key, t),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// A ban ladder entry: a duration or `permanent`.
fn ban_step(key: &str, v: &str) -> Result<Option<u64>> {
    if v.trim().eq_ignore_ascii_case("permanent") {
        return Ok(None);
    }
    Ok(Some(ms(parse_duration(key, v)?)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    rate_limit: RateSection,
    #[serde(default)]
    bans: BanSection,
    #[serde(default)]
    exemptions: ExemptSection,
    #[serde(default)]
    keywords: KeywordSection,
    #[serde(default)]
    probing: ProbingSection,
    #[serde(default)]
    not_found: NotFoundSection,
    #[serde(default)]
    honeypot: HoneypotSection,
    #[serde(default)]
    uuid: UuidSection,
    #[serde(default)]
    logging: LoggingSection,
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    anomaly: AnomalySection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    admin: AdminSection,
    payload: Option<aiwaf_engine::payload::PayloadConfig>,
    #[serde(default)]
    login: LoginSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    detectors: DetectorsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectorsSection {
    /// Detectors switched off (`detectors.off = ["honeypot"]`).
    off: Option<Vec<String>>,
}

/// Detector names (`keyword`, `rate_limit`, …, as in events) to detectors.
fn detectors(key: &str, names: &[String]) -> Result<Vec<aiwaf_engine::Detector>> {
    names
        .iter()
        .map(|n| {
            let n = n.trim().to_ascii_lowercase().replace('-', "_");
            aiwaf_engine::Detector::ALL.iter().copied().find(|d| d.as_str() == n).with_context(|| {
                let known: Vec<&str> = aiwaf_engine::Detector::ALL.iter().map(|d| d.as_str()).collect();
                format!("{key}: unknown detector `{n}` (one of {})", known.join(", "))
            })
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    certificates: Option<Vec<TlsPairEntry>>,
    redirect_listen: Option<String>,
    hsts: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsPairEntry {
    cert: PathBuf,
    key: PathBuf,
}

/// TLS termination (`[tls]`, `--tls-cert` / `--tls-key`).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Certificate pairs; empty means plain HTTP.
    pub certificates: Vec<crate::tls::CertPair>,
    /// `tls.redirect_listen`: a plain-HTTP listener that answers every request with a 308 to https.
    pub redirect_listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginSection {
    paths: Option<Vec<String>>,
    max: Option<u32>,
    flood: Option<u32>,
    window: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    listen: Option<String>,
    audit_log: Option<PathBuf>,
    audit_log_max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    redis_url: Option<String>,
    key_prefix: Option<String>,
    on_backend_error: Option<String>,
    backend_timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalySection {
    min_hits: Option<u32>,
    window: Option<DurationValue>,
    min_404: Option<u32>,
    min_burst: Option<u32>,
    min_keyword_hits: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    path_prefix: String,
    upstreams: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    upstream: Option<String>,
    upstreams: Option<Vec<String>>,
    balance: Option<String>,
    max_fails: Option<u32>,
    fail_timeout: Option<DurationValue>,
    routes: Option<Vec<RouteEntry>>,
    mode: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    client_ip_header: Option<String>,
    upstream_timeout: Option<DurationValue>,
    connect_timeout: Option<DurationValue>,
    header_read_timeout: Option<DurationValue>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<u64>,
    shutdown_grace: Option<DurationValue>,
    client_capacity: Option<u64>,
    threads: Option<usize>,
    ipv6_prefix: Option<u8>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<u32>,
    body_read_timeout: Option<DurationValue>,
    h2_max_concurrent_streams: Option<u32>,
    upgrade_idle_timeout: Option<DurationValue>,
    upstream_protocol: Option<String>,
    upstream_ca: Option<PathBuf>,
    upgrade_max_lifetime: Option<DurationValue>,
    block_page: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    channel_capacity: Option<usize>,
    retention: Option<DurationValue>,
    reload_interval: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateSection {
    window: Option<DurationValue>,
    max: Option<u32>,
    flood: Option<u32>,
    asset_prefixes: Option<Vec<String>>,
    asset_extensions: Option<Vec<String>>,
    asset_max: Option<u32>,
    asset_flood: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanSection {
    durations: Option<Vec<String>>,
    offence_memory: Option<DurationValue>,
    payload_hits: Option<u32>,
    payload_window: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptSection {
    ips: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    builtin_paths: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordSection {
    #[serde(rename = "static")]
    static_keywords: Option<Vec<String>>,
    allowed: Option<Vec<String>>,
    dynamic_top_n: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbingSection {
    file_extensions: Option<Vec<String>>,
    threshold: Option<u32>,
    window: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotFoundSection {
    threshold: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoneypotSection {
    min_form_time: Option<DurationValue>,
    form_memory: Option<DurationValue>,
    min_hits: Option<u32>,
    window: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UuidSection {
    window: Option<DurationValue>,
    threshold: Option<i32>,
    not_found_weight: Option<i32>,
    malformed_weight: Option<i32>,
    success_decay: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggingSection {
    requests: Option<bool>,
    access_log: Option<PathBuf>,
    write_access_log: Option<bool>,
    access_log_format: Option<String>,
    access_log_max_bytes: Option<u64>,
    access_log_keep: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    path: Option<PathBuf>,
    contamination: Option<f64>,
    retrain_every: Option<DurationValue>,
}

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Whole upstream exchange up to response headers.
    pub upstream_timeout: Duration,
    /// TCP connect to the upstream.
    pub connect_timeout: Duration,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// How long in-flight requests get on shutdown.
    pub shutdown_grace: Duration,
    /// Proxy worker threads, each a single-threaded runtime (`None`: one per CPU; see `workers.rs`).
    pub threads: Option<usize>,
    /// Connections open at once, in total (then new ones are closed at once).
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one `ipv6_prefix`).
    pub max_connections_per_ip: u32,
    /// Longest gap between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// An upgraded connection (WebSocket) with no bytes either way for this long is closed.
    pub upgrade_idle_timeout: Duration,
    /// An upgraded connection is closed after this long, busy or not.
    pub upgrade_max_lifetime: Duration,
    /// `tls.hsts`: the `Strict-Transport-Security` value added to answers over TLS (e.g.
    /// `max-age=31536000`); absent: none.
    pub hsts: Option<http::HeaderValue>,
    /// `server.upstream_protocol`: `http1` (default) or `h2c` (HTTP/2 with prior knowledge:
    /// gRPC and other HTTP/2-only upstreams) for `http://`; `h2` offers HTTP/2 by ALPN to an
    /// `https://` upstream.
    pub upstream_h2c: bool,
    /// `server.upstream_protocol = "h2"`: ALPN h2 (then http/1.1) to an `https://` upstream.
    pub upstream_h2: bool,
    /// `server.upstream_ca`: PEM certificates an `https://` upstream's chain must lead to (a
    /// private CA); absent: the Mozilla roots.
    pub upstream_ca: Option<PathBuf>,
    /// `server.balance`: how a pool of upstreams shares requests.
    pub balance: Balance,
    /// `server.max_fails`: failed attempts (no connection, timeout) within `fail_timeout` that
    /// take an upstream out of its pool for `fail_timeout` (0: never).
    pub max_fails: u32,
    /// `server.fail_timeout`.
    pub fail_timeout: Duration,
}

/// How a pool shares requests among its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// To the one with the fewest requests in flight.
    LeastConnections,
}

/// A path prefix served by a pool of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `path_prefix`, e.g. `/api/`.
    pub path_prefix: String,
    /// Its upstreams.
    pub upstreams: Vec<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Config file read, if any.
    pub file: Option<PathBuf>,
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `server.upstream`.
    pub upstream: Option<String>,
    /// `server.upstreams`: more upstreams in the same pool as `upstream`.
    pub upstreams: Vec<String>,
    /// `[[server.routes]]`: path prefixes served by pools of their own (longest prefix wins).
    pub routes: Vec<Route>,
    /// `server.mode`.
    pub mode: Mode,
    /// `storage.data_dir`.
    pub data_dir: PathBuf,
    /// `storage.database_url` / `AIWAF_DATABASE_URL` / `--database-url`: `sqlite://PATH` or
    /// `postgres://…`; absent means SQLite in the data directory.
    pub database_url: Option<String>,
    /// `state.redis_url` / `AIWAF_REDIS_URL` / `--redis-url`: shared per-client state.
    pub redis_url: Option<String>,
    /// `state.on_backend_error`: what a request gets when shared state is unreachable.
    pub fail_open: bool,
    /// `state.backend_timeout`: longest a request waits on shared state.
    pub backend_timeout: Duration,
    /// `state.key_prefix`: prefix of every Redis key.
    pub key_prefix: String,
    /// `admin.listen` / `--admin-listen`: the admin API, metrics and dashboard.
    pub admin_listen: Option<SocketAddr>,
    /// `AIWAF_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `--admin-insecure-loopback`: no token, loopback only.
    pub admin_insecure_loopback: bool,
    /// `admin.audit_log` / `--audit-log`: JSON lines, one per block.
    pub audit_log: Option<PathBuf>,
    /// `admin.audit_log_max_bytes`: rotation size (10 MiB).
    pub audit_log_max_bytes: u64,
    /// Storage channel capacity.
    pub channel_capacity: usize,
    /// How long events and request-log rows are kept.
    pub retention: Duration,
    /// How often a running server checks storage for changes.
    pub reload_interval: Duration,
    /// Detector settings.
    pub engine: EngineConfig,
    /// `exemptions.ips` / `AIWAF_EXEMPT_IPS`.
    pub exempt_ips: Vec<IpNet>,
    /// Proxy settings.
    pub proxy: ProxySettings,
    /// `[tls]`: certificates, redirect listener, HSTS.
    pub tls: TlsSettings,
    /// `server.block_page`: the HTML shown to blocked browsers (read at start).
    pub block_page: Option<String>,
    /// `logging.requests` / `AIWAF_MIDDLEWARE_LOGGING` (the stored switch wins once set).
    pub request_logging: bool,
    /// `logging.access_log` / `AIWAF_ACCESS_LOG`: the access log training reads (nginx's, or
    /// this proxy's own when `write_access_log`).
    pub access_log: Option<PathBuf>,
    /// `logging.write_access_log` / `--access-log PATH`: `serve` writes `access_log` itself.
    pub write_access_log: bool,
    /// `logging.access_log_format` / `--access-log-format`: `combined` (default) or `json`.
    pub access_log_format: crate::access_log::Format,
    /// `logging.access_log_max_bytes`: rotation size (100 MiB).
    pub access_log_max_bytes: u64,
    /// `logging.access_log_keep`: rotated files kept (5).
    pub access_log_keep: u32,
    /// `model.path` / `AIWAF_MODEL_PATH`.
    pub model_path: Option<PathBuf>,
    /// `model.contamination` / `AIWAF_AI_CONTAMINATION`.
    pub contamination: f64,
    /// `model.retrain_every` / `--retrain-every`: scheduled retraining inside `serve`.
    pub retrain_every: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            upstream: None,
            upstreams: Vec::new(),
            routes: Vec::new(),
            mode: Mode::Block,
            data_dir: PathBuf::from("./aiwaf-data"),
            database_url: None,
            redis_url: None,
            fail_open: true,
            backend_timeout: Duration::from_millis(50),
            key_prefix: "aiwaf:".into(),
            admin_listen: None,
            admin_token: None,
            admin_insecure_loopback: false,
            audit_log: None,
            audit_log_max_bytes: 10 * 1024 * 1024,
            channel_capacity: 16_384,
            retention: Duration::from_secs(30 * 86_400),
            reload_interval: Duration::from_millis(250),
            engine: EngineConfig::default(),
            exempt_ips: Vec::new(),
            tls: TlsSettings::default(),
            proxy: ProxySettings {
                upstream_timeout: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(30),
                max_header_bytes: 64 * 1024,
                max_body_bytes: 100 * 1024 * 1024,
                shutdown_grace: Duration::from_secs(10),
                threads: None,
                max_connections: 10_000,
                max_connections_per_ip: 256,
                body_read_timeout: Duration::from_secs(30),
                h2_max_concurrent_streams: 128,
                upgrade_idle_timeout: Duration::from_secs(300),
                upgrade_max_lifetime: Duration::from_secs(24 * 3600),
                hsts: None,
                upstream_h2c: false,
                upstream_h2: false,
                upstream_ca: None,
                balance: Balance::RoundRobin,
                max_fails: 3,
                fail_timeout: Duration::from_secs(10),
            },
            block_page: None,
            request_logging: false,
            access_log: None,
            write_access_log: false,
            access_log_format: crate::access_log::Format::Combined,
            access_log_max_bytes: 100 << 20,
            access_log_keep: 5,
            model_path: None,
            contamination: 0.05,
            retrain_every: None,
        }
    }
}

/// Command-line values that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--admin-insecure-loopback`.
    pub admin_insecure_loopback: bool,
    /// `--audit-log`.
    pub audit_log: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `--mode`.
    pub mode: Option<String>,
    /// `--retrain-every`.
    pub retrain_every: Option<String>,
    /// `serve --access-log PATH`: write this access log (and train from it).
    pub access_log: Option<PathBuf>,
    /// `serve --access-log-format`.
    pub access_log_format: Option<String>,
    /// `serve --tls-cert` (repeatable, paired with `--tls-key` in order).
    pub tls_cert: Vec<PathBuf>,
    /// `serve --tls-key`.
    pub tls_key: Vec<PathBuf>,
    /// `--threads`.
    pub threads: Option<usize>,
}

/// A list from the environment: a JSON array or comma-separated text.
fn env_list(key: &str, v: &str) -> Result<Vec<String>> {
    let t = v.trim();
    if t.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(t).with_context(|| format!("{key}: not a JSON array of strings"));
    }
    Ok(t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
}

fn env_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => bail!("{key}: `{v}` is not a boolean (true/false)"),
    }
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim().parse::<T>().map_err(|_| anyhow::anyhow!("{key}: `{v}` is not a valid number"))
}

fn nets(key: &str, items: &[String]) -> Result<Vec<IpNet>> {
    items.iter().map(|s| parse_net(s).map_err(|e| anyhow::anyhow!("{key}: {e}"))).collect()
}

fn extensions(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|e| {
            let e = e.trim().to_lowercase();
            if e.starts_with('.') { e } else { format!(".{e}") }
        })
        .collect()
}

impl Config {
    /// A configuration from TOML text and an environment (no files, no flags): what the config
    /// fuzz target drives. Errors name the key.
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let mut c = Config::default();
        c.apply_file(text)?;
        c.apply_env(env)?;
        c.validate()?;
        Ok(c)
    }

    /// Loads the configuration. `env` looks up environment variables (a parameter so tests
    /// need not touch the process environment).
    pub fn load(over: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let mut c = Config::default();
        let file = over.config.clone().or_else(|| env("AIWAF_CONFIG").map(PathBuf::from)).or_else(|| {
            let p = PathBuf::from("aiwaf.toml");
            p.exists().then_some(p)
        });
        if let Some(path) = &file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            c.apply_file(&text).with_context(|| format!("invalid config file {}", path.display()))?;
            c.file = Some(path.clone());
        }
        c.apply_env(env)?;
        if let Some(v) = &over.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = &over.database_url {
            c.database_url = Some(v.clone());
        }
        if let Some(v) = &over.redis_url {
            c.redis_url = Some(v.clone());
        }
        if let Some(v) = &over.admin_listen {
            c.admin_listen = Some(v.parse().with_context(|| format!("--admin-listen: `{v}` is not an address"))?);
        }
        c.admin_insecure_loopback |= over.admin_insecure_loopback;
        if let Some(v) = &over.audit_log {
            c.audit_log = Some(v.clone());
        }
        if let Some(v) = &over.listen {
            c.listen = v.parse().with_context(|| format!("--listen: `{v}` is not an address like 127.0.0.1:8080"))?;
        }
        if let Some(v) = &over.upstream {
            c.upstream = Some(v.clone());
        }
        if let Some(v) = &over.mode {
            c.mode = v.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
        }
        if let Some(v) = &over.retrain_every {
            c.retrain_every = Some(parse_duration("--retrain-every", v)?);
        }
        if let Some(v) = &over.access_log {
            c.access_log = Some(v.clone());
            c.write_access_log = true;
        }
        if over.tls_cert.len() != over.tls_key.len() {
            bail!(
                "--tls-cert and --tls-key come in pairs: got {} certificate(s) and {} key(s)",
                over.tls_cert.len(),
                over.tls_key.len()
            );
        }
        if !over.tls_cert.is_empty() {
            c.tls.certificates = over
                .tls_cert
                .iter()
                .zip(&over.tls_key)
                .map(|(cert, key)| crate::tls::CertPair { cert: cert.clone(), key: key.clone() })
                .collect();
        }
        if let Some(v) = &over.access_log_format {
            c.access_log_format =
                crate::access_log::Format::parse(v).map_err(|e| anyhow::anyhow!("--access-log-format: {e}"))?;
        }
        if let Some(v) = over.threads {
            c.proxy.threads = Some(v);
        }
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, text: &str) -> Result<()> {
        let f: FileConfig = toml::from_str(text)?;
        let e = &mut self.engine;
        let s = f.server;
        if let Some(v) = s.listen {
            self.listen = v.parse().with_context(|| format!("server.listen: `{v}` is not an address"))?;
        }
        if let Some(v) = s.upstream {
            self.upstream = Some(v);
        }
        if let Some(v) = s.upstreams {
            self.upstreams = v;
        }
        if let Some(v) = &s.balance {
            self.proxy.balance = match v.as_str() {
                "round_robin" => Balance::RoundRobin,
                "least_connections" => Balance::LeastConnections,
                _ => bail!("server.balance must be \"round_robin\" or \"least_connections\", got {v:?}"),
            };
        }
        if let Some(v) = s.max_fails {
            self.proxy.max_fails = v;
        }
        if let Some(v) = &s.fail_timeout {
            self.proxy.fail_timeout = duration("server.fail_timeout", v)?;
        }
        if let Some(routes) = s.routes {
            self.routes = routes
                .into_iter()
                .map(|r| {
                    if !r.path_prefix.starts_with('/') {
                        bail!("server.routes: path_prefix `{}` must start with /", r.path_prefix);
                    }
                    if r.upstreams.is_empty() {
                        bail!("server.routes: `{}` has no upstreams", r.path_prefix);
                    }
                    Ok(Route { path_prefix: r.path_prefix, upstreams: r.upstreams })
                })
                .collect::<Result<_>>()?;
        }
        if let Some(v) = s.mode {
            self.mode = v.parse().map_err(|err| anyhow::anyhow!("server.mode: {err}"))?;
        }
        if let Some(v) = s.trusted_proxies {
            e.trusted_proxies = nets("server.trusted_proxies", &v)?;
        }
        if let Some(v) = s.client_ip_header {
            e.client_ip_header = v.parse().map_err(|err| anyhow::anyhow!("server.client_ip_header: {err}"))?;
        }
        if let Some(v) = &s.upstream_timeout {
            self.proxy.upstream_timeout = duration("server.upstream_timeout", v)?;
        }
        if let Some(v) = &s.connect_timeout {
            self.proxy.connect_timeout = duration("server.connect_timeout", v)?;
        }
        if let Some(v) = &s.header_read_timeout {
            self.proxy.header_read_timeout = duration("server.header_read_timeout", v)?;
        }
        if let Some(v) = s.max_header_bytes {
            self.proxy.max_header_bytes = v;
        }
        if let Some(v) = s.max_body_bytes {
            self.proxy.max_body_bytes = v;
        }
        if let Some(v) = &s.shutdown_grace {
            self.proxy.shutdown_grace = duration("server.shutdown_grace", v)?;
        }
        if let Some(v) = s.client_capacity {
            e.client_capacity = v;
        }
        if let Some(v) = s.ipv6_prefix {
            e.ipv6_prefix = v;
        }
        if let Some(v) = s.max_connections {
            self.proxy.max_connections = v;
        }
        if let Some(v) = s.max_connections_per_ip {
            self.proxy.max_connections_per_ip = v;
        }
        if let Some(v) = &s.body_read_timeout {
            self.proxy.body_read_timeout = duration("server.body_read_timeout", v)?;
        }
        if let Some(list) = f.tls.certificates {
            self.tls.certificates =
                list.into_iter().map(|p| crate::tls::CertPair { cert: p.cert, key: p.key }).collect();
        }
        if let Some(v) = &f.tls.redirect_listen {
            self.tls.redirect_listen = Some(
                v.parse().with_context(|| format!("tls.redirect_listen: `{v}` is not an address like 0.0.0.0:80"))?,
            );
        }
        if let Some(v) = &f.tls.hsts {
            let hv =
                http::HeaderValue::from_str(v.trim()).ok().filter(|_| v.trim().starts_with("max-age=")).with_context(
                    || format!("tls.hsts: `{v}` is not a Strict-Transport-Security value like max-age=31536000"),
                )?;
            self.proxy.hsts = Some(hv);
        }
        if let Some(v) = &s.upstream_protocol {
            (self.proxy.upstream_h2c, self.proxy.upstream_h2) = match v.as_str() {
                "http1" => (false, false),
                "h2c" => (true, false),
                "h2" => (false, true),
                _ => bail!(
                    "server.upstream_protocol must be \"http1\", \"h2c\" (http://) or \"h2\" (https://), got {v:?}"
                ),
            };
        }
        if let Some(v) = &s.upstream_ca {
            self.proxy.upstream_ca = Some(v.clone());
        }
        if let Some(v) = &s.upgrade_idle_timeout {
            self.proxy.upgrade_idle_timeout = duration("server.upgrade_idle_timeout", v)?;
        }
        if let Some(v) = &s.upgrade_max_lifetime {
            self.proxy.upgrade_max_lifetime = duration("server.upgrade_max_lifetime", v)?;
        }
        if let Some(v) = s.h2_max_concurrent_streams {
            self.proxy.h2_max_concurrent_streams = v;
        }
        if let Some(p) = s.block_page {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("server.block_page: cannot read `{}`", p.display()))?;
            if !text.contains("{{request_id}}") {
                bail!(
                    "server.block_page: `{}` has no {{{{request_id}}}} placeholder (people need it to report a mistake)",
                    p.display()
                );
            }
            self.block_page = Some(text);
        }
        if let Some(v) = s.threads {
            self.proxy.threads = Some(v);
        }
        let st = f.storage;
        if let Some(v) = st.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = st.database_url {
            self.database_url = Some(v);
        }
        if let Some(v) = f.state.redis_url {
            self.redis_url = Some(v);
        }
        if let Some(v) = f.state.key_prefix {
            self.key_prefix = v;
        }
        if let Some(v) = f.admin.listen {
            self.admin_listen = Some(v.parse().with_context(|| format!("admin.listen: `{v}` is not an address"))?);
        }
        if let Some(v) = f.admin.audit_log {
            self.audit_log = Some(v);
        }
        if let Some(v) = f.admin.audit_log_max_bytes {
            self.audit_log_max_bytes = v;
        }
        if let Some(v) = f.state.on_backend_error {
            self.fail_open = match v.as_str() {
                "open" => true,
                "closed" => false,
                other => bail!("state.on_backend_error: `{other}` is not `open` or `closed`"),
            };
        }
        if let Some(v) = &f.state.backend_timeout {
            self.backend_timeout = duration("state.backend_timeout", v)?;
        }
        if let Some(v) = st.channel_capacity {
            self.channel_capacity = v;
        }
        if let Some(v) = &st.retention {
            self.retention = duration("storage.retention", v)?;
        }
        if let Some(v) = &st.reload_interval {
            self.reload_interval = duration("storage.reload_interval", v)?;
        }
        if let Some(v) = &f.rate_limit.window {
            e.rate_window_ms = ms(duration("rate_limit.window", v)?);
        }
        if let Some(v) = f.rate_limit.max {
            e.rate_max = v;
        }
        if let Some(v) = f.rate_limit.flood {
            e.rate_flood = v;
        }
        if let Some(v) = f.rate_limit.asset_prefixes {
            if let Some(bad) = v.iter().find(|p| !p.starts_with('/')) {
                bail!("rate_limit.asset_prefixes: `{bad}` must start with /");
            }
            e.asset_prefixes = v.iter().map(|p| p.to_lowercase()).collect();
        }
        if let Some(v) = f.rate_limit.asset_extensions {
            e.asset_extensions = extensions(v);
        }
        if let Some(v) = f.rate_limit.asset_max {
            e.asset_rate_max = v;
        }
        if let Some(v) = f.rate_limit.asset_flood {
            e.asset_rate_flood = v;
        }
        if let Some(v) = f.bans.durations {
            e.ban_durations = v.iter().map(|d| ban_step("bans.durations", d)).collect::<Result<_>>()?;
        }
        if let Some(v) = &f.bans.offence_memory {
            e.offence_memory_ms = ms(duration("bans.offence_memory", v)?);
        }
        if let Some(v) = f.bans.payload_hits {
            e.payload_ban_hits = v;
        }
        if let Some(v) = &f.bans.payload_window {
            e.payload_ban_window_ms = ms(duration("bans.payload_window", v)?);
        }
        if let Some(off) = &f.detectors.off {
            e.detectors_off = detectors("detectors.off", off)?;
        }
        if let Some(p) = f.payload {
            e.payload = p;
        }
        if let Some(v) = f.login.paths {
            if let Some(bad) = v.iter().find(|p| !p.starts_with('/')) {
                bail!("login.paths: `{bad}` must start with /");
            }
            e.login_paths = v;
        }
        if let Some(v) = f.login.max {
            e.login_rate_max = v;
        }
        if let Some(v) = f.login.flood {
            e.login_rate_flood = v;
        }
        if let Some(v) = &f.login.window {
            e.login_rate_window_ms = ms(duration("login.window", v)?);
        }
        if let Some(v) = f.exemptions.ips {
            self.exempt_ips = nets("exemptions.ips", &v)?;
        }
        if let Some(v) = f.exemptions.paths {
            e.exempt_paths = v;
        }
        if let Some(v) = f.exemptions.builtin_paths {
            e.builtin_exempt_paths = v;
        }
        if let Some(v) = f.keywords.static_keywords {
            e.static_keywords = v;
        }
        if let Some(v) = f.keywords.allowed {
            e.allowed_path_keywords = v;
        }
        if let Some(v) = f.keywords.dynamic_top_n {
            e.dynamic_top_n = v;
        }
        if let Some(v) = f.probing.file_extensions {
            e.file_extensions = extensions(v);
        }
        if let Some(v) = f.probing.threshold {
            e.extension_threshold = v;
        }
        if let Some(v) = &f.probing.window {
            e.window_ms = ms(duration("probing.window", v)?);
        }
        if let Some(v) = f.not_found.threshold {
            e.not_found_threshold = v;
        }
        if let Some(v) = &f.honeypot.min_form_time {
            e.min_form_time_ms = ms(duration("honeypot.min_form_time", v)?);
        }
        if let Some(v) = &f.honeypot.form_memory {
            e.form_memory_ms = ms(duration("honeypot.form_memory", v)?);
        }
        if let Some(v) = f.honeypot.min_hits {
            e.honeypot_min_hits = v;
        }
        if let Some(v) = &f.honeypot.window {
            e.honeypot_window_ms = ms(duration("honeypot.window", v)?);
        }
        let u = f.uuid;
        if let Some(v) = &u.window {
            e.uuid_window_ms = ms(duration("uuid.window", v)?);
        }
        if let Some(v) = u.threshold {
            e.uuid_threshold = v;
        }
        if let Some(v) = u.not_found_weight {
            e.uuid_not_found_weight = v;
        }
        if let Some(v) = u.malformed_weight {
            e.uuid_malformed_weight = v;
        }
        if let Some(v) = u.success_decay {
            e.uuid_success_decay = v;
        }
        if let Some(v) = f.logging.requests {
            self.request_logging = v;
        }
        if let Some(v) = f.logging.access_log {
            self.access_log = Some(v);
        }
        if let Some(v) = f.logging.write_access_log {
            self.write_access_log = v;
        }
        if let Some(v) = &f.logging.access_log_format {
            self.access_log_format =
                crate::access_log::Format::parse(v).map_err(|e| anyhow::anyhow!("logging.access_log_format: {e}"))?;
        }
        if let Some(v) = f.logging.access_log_max_bytes {
            anyhow::ensure!(v >= 4096, "logging.access_log_max_bytes must be >= 4096, got {v}");
            self.access_log_max_bytes = v;
        }
        if let Some(v) = f.logging.access_log_keep {
            anyhow::ensure!((1..=100).contains(&v), "logging.access_log_keep must be 1..=100, got {v}");
            self.access_log_keep = v;
        }
        if let Some(v) = f.model.path {
            self.model_path = Some(v);
        }
        if let Some(v) = f.model.contamination {
            self.contamination = v;
        }
        if let Some(v) = &f.model.retrain_every {
            self.retrain_every = Some(duration("model.retrain_every", v)?);
        }
        let a = f.anomaly;
        if let Some(v) = a.min_hits {
            e.anomaly_min_hits = v;
        }
        if let Some(v) = &a.window {
            e.anomaly_window_ms = ms(duration("anomaly.window", v)?);
        }
        if let Some(v) = a.min_404 {
            e.anomaly_min_404 = v;
        }
        if let Some(v) = a.min_burst {
            e.anomaly_min_burst = v;
        }
        if let Some(v) = a.min_keyword_hits {
            e.anomaly_min_keyword_hits = v;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let e = &mut self.engine;
        if let Some(v) = get("AIWAF_RATE_WINDOW") {
            e.rate_window_ms = ms(parse_duration("AIWAF_RATE_WINDOW", &v)?);
        }
        if let Some(v) = get("AIWAF_DETECTORS_OFF") {
            e.detectors_off = detectors("AIWAF_DETECTORS_OFF", &env_list("AIWAF_DETECTORS_OFF", &v)?)?;
        }
        if let Some(v) = get("AIWAF_RATE_MAX") {
            e.rate_max = num("AIWAF_RATE_MAX", &v)?;
        }
        if let Some(v) = get("AIWAF_RATE_FLOOD") {
            e.rate_flood = num("AIWAF_RATE_FLOOD", &v)?;
        }
        if let Some(v) = get("AIWAF_MIN_FORM_TIME") {
            e.min_form_time_ms = ms(parse_duration("AIWAF_MIN_FORM_TIME", &v)?);
        }
        if let Some(v) = get("AIWAF_WINDOW_SECONDS") {
            e.window_ms = ms(parse_duration("AIWAF_WINDOW_SECONDS", &v)?);
        }
        if let Some(v) = get("AIWAF_FILE_EXTENSIONS") {
            e.file_extensions = extensions(env_list("AIWAF_FILE_EXTENSIONS", &v)?);
        }
        if let Some(v) = get("AIWAF_EXEMPT_PATHS") {
            e.exempt_paths = env_list("AIWAF_EXEMPT_PATHS", &v)?;
        }
        if let Some(v) = get("AIWAF_EXEMPT_IPS") {
            self.exempt_ips = nets("AIWAF_EXEMPT_IPS", &env_list("AIWAF_EXEMPT_IPS", &v)?)?;
        }
        if let Some(v) = get("AIWAF_DYNAMIC_TOP_N") {
            e.dynamic_top_n = num("AIWAF_DYNAMIC_TOP_N", &v)?;
        }
        if let Some(v) = get("AIWAF_MALICIOUS_KEYWORDS") {
            e.static_keywords = env_list("AIWAF_MALICIOUS_KEYWORDS", &v)?;
        }
        if let Some(v) = get("AIWAF_ALLOWED_PATH_KEYWORDS") {
            e.allowed_path_keywords = env_list("AIWAF_ALLOWED_PATH_KEYWORDS", &v)?;
        }
        if let Some(v) = get("AIWAF_TRUSTED_PROXIES") {
            e.trusted_proxies = nets("AIWAF_TRUSTED_PROXIES", &env_list("AIWAF_TRUSTED_PROXIES", &v)?)?;
        }
        if let Some(v) = get("AIWAF_CLIENT_IP_HEADER") {
            e.client_ip_header = v.parse().map_err(|err| anyhow::anyhow!("AIWAF_CLIENT_IP_HEADER: {err}"))?;
        }
        if let Some(v) = get("AIWAF_MIDDLEWARE_LOGGING") {
            self.request_logging = env_bool("AIWAF_MIDDLEWARE_LOGGING", &v)?;
        }
        if let Some(v) = get("AIWAF_ACCESS_LOG") {
            self.access_log = Some(PathBuf::from(v));
        }
        if let Some(v) = get("AIWAF_MODEL_PATH") {
            self.model_path = Some(PathBuf::from(v));
        }
        if let Some(v) = get("AIWAF_AI_CONTAMINATION") {
            self.contamination = num("AIWAF_AI_CONTAMINATION", &v)?;
        }
        if let Some(v) = get("AIWAF_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("AIWAF_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("AIWAF_REDIS_URL") {
            self.redis_url = Some(v);
        }
        if let Some(v) = get("AIWAF_ADMIN_TOKEN") {
            self.admin_token = Some(v);
        }
        if let Some(v) = get("AIWAF_UPSTREAM") {
            self.upstream = Some(v);
        }
        if let Some(v) = get("AIWAF_LISTEN") {
            self.listen = v.parse().with_context(|| format!("AIWAF_LISTEN: `{v}` is not an address"))?;
        }
        if let Some(v) = get("AIWAF_MODE") {
            self.mode = v.parse().map_err(|err| anyhow::anyhow!("AIWAF_MODE: {err}"))?;
        }
        if let Some(v) = get("AIWAF_THREADS") {
            self.proxy.threads = Some(num("AIWAF_THREADS", &v)?);
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.engine.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if self.proxy.threads == Some(0) {
            bail!("server.threads / AIWAF_THREADS / --threads must be at least 1");
        }
        if self.tls.certificates.is_empty() && (self.tls.redirect_listen.is_some() || self.proxy.hsts.is_some()) {
            bail!("tls.redirect_listen and tls.hsts need certificates: [[tls.certificates]] or --tls-cert/--tls-key");
        }
        if self.write_access_log && self.access_log.is_none() {
            bail!("logging.write_access_log needs logging.access_log (the file to write), or pass --access-log PATH");
        }
        let p = &self.proxy;
        if p.max_connections == 0 || p.max_connections_per_ip == 0 {
            bail!("server.max_connections and server.max_connections_per_ip must be at least 1");
        }
        if p.h2_max_concurrent_streams == 0 {
            bail!("server.h2_max_concurrent_streams must be at least 1");
        }
        for (key, d) in [
            ("server.header_read_timeout", p.header_read_timeout),
            ("server.body_read_timeout", p.body_read_timeout),
            ("server.upgrade_idle_timeout", p.upgrade_idle_timeout),
            ("server.upgrade_max_lifetime", p.upgrade_max_lifetime),
        ] {
            if d.is_zero() || d > Duration::from_secs(86_400) {
                bail!("{key} must be between 1ms and 24h, got {d:?}");
            }
        }
        if !(0.0..=0.5).contains(&self.contamination) {
            bail!("model.contamination / AIWAF_AI_CONTAMINATION must be between 0 and 0.5, got {}", self.contamination);
        }
        if self.channel_capacity == 0 {
            bail!("storage.channel_capacity must be at least 1");
        }
        if self.reload_interval.is_zero() || self.reload_interval > Duration::from_secs(1) {
            bail!("storage.reload_interval must be between 1ms and 1s (CLI changes must apply within a second)");
        }
        if let Some(u) = &self.upstream {
            parse_upstream(u)?;
        }
        for u in self.upstreams.iter().chain(self.routes.iter().flat_map(|r| r.upstreams.iter())) {
            parse_upstream(u).context("server.upstreams / server.routes")?;
        }
        if let Some(u) = &self.database_url
            && !(u.starts_with("sqlite:") || u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            bail!("storage.database_url / AIWAF_DATABASE_URL: expected sqlite://PATH or postgres://…");
        }
        if let Some(u) = &self.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            bail!("state.redis_url / AIWAF_REDIS_URL: expected redis://HOST:PORT");
        }
        if let Some(addr) = self.admin_listen
            && self.admin_token.is_none()
            && !(self.admin_insecure_loopback && addr.ip().is_loopback())
        {
            bail!(
                "admin listener on {addr} needs AIWAF_ADMIN_TOKEN (or bind loopback and pass --admin-insecure-loopback)"
            );
        }
        if self.backend_timeout.is_zero() {
            bail!("state.backend_timeout must be positive");
        }
        if self.retrain_every.is_some_and(|d| d < Duration::from_secs(1)) {
            bail!("model.retrain_every / --retrain-every must be at least 1s");
        }
        Ok(())
    }

    /// The model file: `model.path`, else `DATA_DIR/model.json`.
    pub fn model_path(&self) -> PathBuf {
        self.model_path.clone().unwrap_or_else(|| self.data_dir.join("model.json"))
    }
}

/// Parses and checks an upstream URL: `http://host:port[/base]`.
pub fn parse_upstream(u: &str) -> Result<http::Uri> {
    let uri: http::Uri = u.parse().with_context(|| format!("upstream: `{u}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => bail!("upstream: scheme `{other}` is not supported (use http:// or https://)"),
        None => bail!("upstream: `{u}` needs a scheme, e.g. http://127.0.0.1:8000"),
    }
    if uri.authority().is_none() {
        bail!("upstream: `{u}` has no host");
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_text(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        Config::from_toml(text, env)
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = format!("{:#}", load_text("[rate_limit]\nmaxx = 3\n", &no_env).unwrap_err());
        assert!(err.contains("maxx"), "{err}");
        let err = format!("{:#}", load_text("[ratelimit]\n", &no_env).unwrap_err());
        assert!(err.contains("ratelimit"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = format!("{:#}", load_text("[honeypot]\nmin_form_time = \"soon\"\n", &no_env).unwrap_err());
        assert!(err.contains("honeypot.min_form_time"), "{err}");
        let err = format!("{:#}", load_text("[server]\ntrusted_proxies = [\"10.0.0.0/99\"]\n", &no_env).unwrap_err());
        assert!(err.contains("server.trusted_proxies"), "{err}");
        let err = format!("{:#}", load_text("[server]\nclient_ip_header = \"X-Client\"\n", &no_env).unwrap_err());
        assert!(err.contains("server.client_ip_header") && err.contains("X-Client"), "{err}");
        let c = load_text("[server]\nclient_ip_header = \"CF-Connecting-IP\"\n", &no_env).unwrap();
        assert_eq!(c.engine.client_ip_header, aiwaf_engine::ip::ClientIpHeader::CfConnectingIp);
        let env = |k: &str| (k == "AIWAF_RATE_MAX").then(|| "lots".to_string());
        let err = format!("{:#}", load_text("", &env).unwrap_err());
        assert!(err.contains("AIWAF_RATE_MAX"), "{err}");
        let err = format!("{:#}", load_text("[rate_limit]\nmax = 50\n", &no_env).unwrap_err());
        assert!(err.contains("rate_limit.flood"), "{err}");
    }

    #[test]
    fn detectors_off() {
        let c = load_text("[detectors]\noff = [\"honeypot\", \"uuid-tamper\"]\n", &no_env).unwrap();
        assert_eq!(c.engine.detectors_off, [aiwaf_engine::Detector::Honeypot, aiwaf_engine::Detector::UuidTamper]);
        let env = |k: &str| (k == "AIWAF_DETECTORS_OFF").then(|| r#"["payload"]"#.to_string());
        assert_eq!(load_text("", &env).unwrap().engine.detectors_off, [aiwaf_engine::Detector::Payload]);
        let err = format!("{:#}", load_text("[detectors]\noff = [\"magic\"]\n", &no_env).unwrap_err());
        assert!(err.contains("detectors.off") && err.contains("magic") && err.contains("honeypot"), "{err}");
    }

    #[test]
    fn payload_section() {
        let text = "[payload]\nparanoia = 2\nthreshold = 7\n[[payload.exclusions]]\npath_prefix = \"/admin/posts/\"\n\
                    detectors = [\"xss\"]\ntargets = [\"body.content\"]\n[bans]\npayload_hits = 5\n";
        let c = load_text(text, &no_env).unwrap();
        assert_eq!((c.engine.payload.paranoia, c.engine.payload.threshold, c.engine.payload_ban_hits), (2, 7, 5));
        assert_eq!(c.engine.payload.exclusions[0].targets, ["body.content"]);
        let err = format!("{:#}", load_text("[payload]\nparanoia = 9\n", &no_env).unwrap_err());
        assert!(err.contains("payload.paranoia"), "{err}");
        let err = format!("{:#}", load_text("[payload]\nparanoya = 2\n", &no_env).unwrap_err());
        assert!(err.contains("paranoya"), "{err}");
    }

    #[test]
    fn file_then_env_with_seed_names() {
        let text = r#"
            [rate_limit]
            window = "30s"
            max = 5
            flood = 10
            [bans]
            durations = ["1m", "permanent"]
            [probing]
            file_extensions = ["php", ".ASPX"]
        "#;
        let env = |k: &str| match k {
            "AIWAF_RATE_MAX" => Some("7".to_string()),
            "AIWAF_EXEMPT_PATHS" => Some(r#"["/health", "/static/"]"#.to_string()),
            "AIWAF_EXEMPT_IPS" => Some("10.0.0.0/8, 192.168.1.1".to_string()),
            "AIWAF_MIN_FORM_TIME" => Some("0.5".to_string()),
            "AIWAF_MIDDLEWARE_LOGGING" => Some("True".to_string()),
            _ => None,
        };
        let c = load_text(text, &env).unwrap();
        assert_eq!(c.engine.rate_window_ms, 30_000);
        assert_eq!(c.engine.rate_max, 7);
        assert_eq!(c.engine.rate_flood, 10);
        assert_eq!(c.engine.ban_durations, vec![Some(60_000), None]);
        assert_eq!(c.engine.file_extensions, [".php", ".aspx"]);
        assert_eq!(c.engine.exempt_paths, ["/health", "/static/"]);
        assert_eq!(c.exempt_ips.len(), 2);
        assert_eq!(c.engine.min_form_time_ms, 500);
        assert!(c.request_logging);
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = load_text("", &no_env).unwrap();
        let e = &c.engine;
        assert_eq!((e.rate_window_ms, e.rate_max, e.rate_flood), (10_000, 20, 40));
        assert_eq!((e.min_form_time_ms, e.window_ms, e.dynamic_top_n), (1000, 60_000, 10));
        assert_eq!(e.file_extensions, [".php", ".asp", ".jsp"]);
        assert_eq!(c.contamination, 0.05);
        assert!(!c.request_logging);
        assert!(e.trusted_proxies.is_empty());
    }

    #[test]
    fn threads_from_file_env_and_flag() {
        assert_eq!(load_text("", &no_env).unwrap().proxy.threads, None);
        assert_eq!(load_text("[server]\nthreads = 3\n", &no_env).unwrap().proxy.threads, Some(3));
        let env = |k: &str| (k == "AIWAF_THREADS").then(|| "2".to_string());
        assert_eq!(load_text("[server]\nthreads = 3\n", &env).unwrap().proxy.threads, Some(2));
        let err = format!("{:#}", load_text("[server]\nthreads = 0\n", &no_env).unwrap_err());
        assert!(err.contains("server.threads"), "{err}");
        let over = Overrides { threads: Some(1), data_dir: Some(PathBuf::from("/nonexistent")), ..Default::default() };
        assert_eq!(Config::load(&over, &env).unwrap().proxy.threads, Some(1));
    }

    #[test]
    fn upstream_pools_and_routes() {
        let c = load_text(
            "[server]\nupstream = \"http://127.0.0.1:8001\"\nupstreams = [\"http://127.0.0.1:8002\"]\n\
             balance = \"least_connections\"\nmax_fails = 2\nfail_timeout = \"5s\"\n\
             [[server.routes]]\npath_prefix = \"/api/\"\nupstreams = [\"https://api.internal\"]\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.upstreams, ["http://127.0.0.1:8002"]);
        assert_eq!(
            (c.proxy.balance, c.proxy.max_fails, c.proxy.fail_timeout),
            (Balance::LeastConnections, 2, Duration::from_secs(5))
        );
        assert_eq!(c.routes[0].path_prefix, "/api/");
        for (bad, key) in [
            ("[server]\nbalance = \"random\"\n", "server.balance"),
            ("[server]\nupstreams = [\"ftp://x\"]\n", "server.upstreams"),
            ("[[server.routes]]\npath_prefix = \"api\"\nupstreams = [\"http://x\"]\n", "server.routes"),
            ("[[server.routes]]\npath_prefix = \"/api/\"\nupstreams = []\n", "server.routes"),
        ] {
            let err = format!("{:#}", load_text(bad, &no_env).unwrap_err());
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn upstream_must_be_http_or_https() {
        assert!(parse_upstream("http://127.0.0.1:8000").is_ok());
        assert!(parse_upstream("https://app.internal").is_ok());
        assert!(parse_upstream("ftp://x").is_err());
        assert!(parse_upstream("127.0.0.1:8000").is_err());
        assert!(parse_upstream("https://").is_err());
    }
}
