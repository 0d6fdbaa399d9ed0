//! Engine settings: plain data with the seed's defaults.
//!
//! Every duration is in milliseconds. The binary turns `aiwaf.toml`, `AIWAF_*` environment
//! variables and flags into an [`EngineConfig`]; embedders build one directly.

use ipnet::IpNet;

/// What the WAF does with a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Block and ban as the detectors decide.
    Block,
    /// Inspect everything, block nothing, record every would-block verdict.
    Detect,
    /// No inspection at all (a plain proxy, used for benchmarks).
    Off,
}

impl Mode {
    /// Lower-case name as used on the command line and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Detect => "detect",
            Mode::Off => "off",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "block" => Ok(Mode::Block),
            "detect" => Ok(Mode::Detect),
            "off" => Ok(Mode::Off),
            other => Err(format!("unknown mode `{other}` (expected block, detect or off)")),
        }
    }
}

/// The seed's static keyword list (`AIWAF_MALICIOUS_KEYWORDS` default), `conflg` included.
pub const DEFAULT_STATIC_KEYWORDS: &[&str] =
    &[".php", "xmlrpc", "wp-", ".env", ".git", ".bak", "conflg", "shell", "filemanager"];

/// The seed's built-in exempt prefixes (login and admin pages).
pub const BUILTIN_EXEMPT_PATHS: &[&str] =
    &["/admin/login/", "/admin/", "/login/", "/accounts/login/", "/auth/login/", "/signin/"];

/// Login pages among the seed's built-in exempt prefixes (the login rate limit applies to them).
pub const DEFAULT_LOGIN_PATHS: &[&str] = &["/admin/login/", "/login/", "/accounts/login/", "/auth/login/", "/signin/"];

/// Path prefixes served as static assets by common frameworks (Django, Rails, most SPAs).
pub const DEFAULT_ASSET_PREFIXES: &[&str] = &["/static/", "/media/", "/assets/"];

/// File extensions of static assets a page loads.
pub const DEFAULT_ASSET_EXTENSIONS: &[&str] = &[
    ".js", ".mjs", ".css", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".avif", ".bmp", ".woff",
    ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3", ".ogg", ".wav",
];

/// Paths browsers and crawlers request on their own (nobody typed them): never a 404-flood
/// count, never keyword-blocked, never learned. Prefixes; matched on the normalised path.
pub const BROWSER_AUTO_PATHS: &[&str] = &[
    "/favicon.ico",
    "/favicon.png",
    "/favicon.svg",
    "/apple-touch-icon",
    "/android-chrome-",
    "/mstile-",
    "/robots.txt",
    "/sitemap.xml",
    "/.well-known/",
    "/browserconfig.xml",
    "/manifest.json",
    "/site.webmanifest",
    "/manifest.webmanifest",
    "/ads.txt",
    "/app-ads.txt",
    "/humans.txt",
    "/security.txt",
];

/// The two bytes after the leading `/` of each of [`BROWSER_AUTO_PATHS`] (all are longer).
const AUTO_PATH_KEYS: [[u8; 2]; BROWSER_AUTO_PATHS.len()] = {
    let mut keys = [[0u8; 2]; BROWSER_AUTO_PATHS.len()];
    let mut i = 0;
    while i < keys.len() {
        let p = BROWSER_AUTO_PATHS[i].as_bytes();
        keys[i] = [p[1], p[2]];
        i += 1;
    }
    keys
};

/// Whether a normalised path is one browsers or crawlers fetch by themselves.
pub fn is_browser_auto_path(normalized: &str) -> bool {
    // most paths start like none of them: turned away on their first two bytes
    let b = normalized.as_bytes();
    if b.len() < 3 || !AUTO_PATH_KEYS.contains(&[b[1], b[2]]) {
        return false;
    }
    BROWSER_AUTO_PATHS.iter().any(|p| {
        normalized.starts_with(p)
            && (p.ends_with('/') || p.ends_with('-') || *p == "/apple-touch-icon" || normalized.len() == p.len())
    })
}

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// All engine settings. Defaults are the seed's (`aiwaf` 0.1.9.1.6) where it had one.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Proxies whose forwarding headers are believed (default: none).
    pub trusted_proxies: Vec<IpNet>,
    /// The one header trusted proxies set to name the client (`X-Forwarded-For`).
    pub client_ip_header: crate::ip::ClientIpHeader,
    /// IPv6 clients are counted and banned per prefix of this length (64).
    pub ipv6_prefix: u8,
    /// `AIWAF_RATE_WINDOW` (10 s).
    pub rate_window_ms: u64,
    /// `AIWAF_RATE_MAX` (20): more requests than this in the window get 429.
    pub rate_max: u32,
    /// `AIWAF_RATE_FLOOD` (40): more requests than this in the window get banned.
    pub rate_flood: u32,
    /// `AIWAF_WINDOW_SECONDS` (60 s): window of the 404 and extension-probe counters.
    pub window_ms: u64,
    /// 404s on non-exempt paths within `window_ms` that ban a client (6).
    pub not_found_threshold: u32,
    /// `AIWAF_FILE_EXTENSIONS` (`.php`, `.asp`, `.jsp`).
    pub file_extensions: Vec<String>,
    /// 404s on probed extensions within `window_ms` that ban a client (3).
    pub extension_threshold: u32,
    /// `AIWAF_MIN_FORM_TIME` (1 s).
    pub min_form_time_ms: u64,
    /// How long a GET is remembered for the honeypot (1 h; the seed's 300 s banned slow humans).
    pub form_memory_ms: u64,
    /// Honeypot signals (a form POST too fast after, or without, a GET of its page) within
    /// `honeypot_window_ms` that ban a client (5): one fast submit is a person with a password
    /// manager; five are a bot.
    pub honeypot_min_hits: u32,
    /// Window for counting honeypot signals (10 min).
    pub honeypot_window_ms: u64,
    /// Path prefixes of static assets (`/static/`, `/media/`, `/assets/`): a page's sub-resources
    /// are not counted by the rate limit, which counts what a person does, not what a browser
    /// fetches.
    pub asset_prefixes: Vec<String>,
    /// File extensions of static assets (same treatment as `asset_prefixes`).
    pub asset_extensions: Vec<String>,
    /// Asset requests (and browser auto-requests) per client allowed within the rate window
    /// (300): their own budget, fifteen times the page budget (a gallery page loads hundreds),
    /// then 429. The same asset path is held to the page limits (`rate_max`, `rate_flood`):
    /// a browser fetches a file once per page load.
    pub asset_rate_max: u32,
    /// Asset requests within the rate window that ban the client (600).
    pub asset_rate_flood: u32,
    /// UUID-tamper scoring window (60 s).
    pub uuid_window_ms: u64,
    /// UUID-tamper score that bans (5).
    pub uuid_threshold: i32,
    /// Weight of a 404 on a well-formed UUID (1).
    pub uuid_not_found_weight: i32,
    /// Weight of a 404 on a malformed near-UUID (2: the seed's 5 banned on one mistyped link).
    pub uuid_malformed_weight: i32,
    /// Score removed by a 2xx answer on a UUID path (2).
    pub uuid_success_decay: i32,
    /// `AIWAF_EXEMPT_PATHS`, added to the built-in ones.
    pub exempt_paths: Vec<String>,
    /// Whether the seed's built-in login/admin prefixes are exempt (true).
    pub builtin_exempt_paths: bool,
    /// `AIWAF_MALICIOUS_KEYWORDS`.
    pub static_keywords: Vec<String>,
    /// Words never used as keywords (`AIWAF_ALLOWED_PATH_KEYWORDS`).
    pub allowed_path_keywords: Vec<String>,
    /// `AIWAF_DYNAMIC_TOP_N` (10): learned keywords in force.
    pub dynamic_top_n: usize,
    /// Ban ladder for repeat offenders; `None` is permanent (15 min, 1 h, 24 h, permanent).
    pub ban_durations: Vec<Option<u64>>,
    /// How long an expired ban still counts as a previous offence (30 days).
    pub offence_memory_ms: u64,
    /// Maximum number of clients whose state is kept in memory (100 000).
    pub client_capacity: u64,
    /// Maximum number of upstream-confirmed paths kept in memory (100 000).
    pub known_path_capacity: u64,
    /// Login pages (prefixes): exempt from keywords, learning and the honeypot (never lock out
    /// a legitimate login), but password guessing is slowed by the login rate limit.
    pub login_paths: Vec<String>,
    /// Login POSTs per client allowed within `login_rate_window_ms` (10; 0 turns it off), then 429.
    pub login_rate_max: u32,
    /// Login POSTs within the window that ban the client (20).
    pub login_rate_flood: u32,
    /// Window of the login rate limit (60 s).
    pub login_rate_window_ms: u64,
    /// Payload inspection: targets, decoding, detectors, paranoia, threshold, exclusions.
    pub payload: aiwaf_payload::PayloadConfig,
    /// Blocked payload requests from one client within `payload_ban_window_ms` that ban it (3):
    /// one false positive is a blocked request, never a ban.
    pub payload_ban_hits: u32,
    /// Window for counting blocked payload requests (10 min).
    pub payload_ban_window_ms: u64,
    /// Anomalous requests (with attack signs) within `anomaly_window_ms` that ban a client (3).
    pub anomaly_min_hits: u32,
    /// Window for counting anomalous requests (60 s).
    pub anomaly_window_ms: u64,
    /// Attack sign: 404s in the feature window at least this (3).
    pub anomaly_min_404: u32,
    /// Attack sign: requests in the preceding 10 s at least this (30).
    pub anomaly_min_burst: u32,
    /// Attack sign: static keyword hits at least this (1).
    pub anomaly_min_keyword_hits: u32,
    /// Detectors switched off: they make no finding (the Django adapter turns on only the
    /// detectors of the middleware classes a project lists). The blacklist is always enforced.
    pub detectors_off: Vec<crate::Detector>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            trusted_proxies: Vec::new(),
            client_ip_header: crate::ip::ClientIpHeader::XForwardedFor,
            ipv6_prefix: 64,
            rate_window_ms: 10 * SECOND,
            rate_max: 20,
            rate_flood: 40,
            window_ms: 60 * SECOND,
            not_found_threshold: 6,
            file_extensions: vec![".php".into(), ".asp".into(), ".jsp".into()],
            extension_threshold: 3,
            min_form_time_ms: SECOND,
            form_memory_ms: HOUR,
            honeypot_min_hits: 5,
            honeypot_window_ms: 10 * MINUTE,
            asset_prefixes: DEFAULT_ASSET_PREFIXES.iter().map(|s| s.to_string()).collect(),
            asset_extensions: DEFAULT_ASSET_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            asset_rate_max: 300,
            asset_rate_flood: 600,
            uuid_window_ms: 60 * SECOND,
            uuid_threshold: 5,
            uuid_not_found_weight: 1,
            uuid_malformed_weight: 2,
            uuid_success_decay: 2,
            exempt_paths: Vec::new(),
            builtin_exempt_paths: true,
            static_keywords: DEFAULT_STATIC_KEYWORDS.iter().map(|s| s.to_string()).collect(),
            allowed_path_keywords: Vec::new(),
            dynamic_top_n: 10,
            ban_durations: vec![Some(15 * MINUTE), Some(HOUR), Some(24 * HOUR), None],
            offence_memory_ms: 30 * 24 * HOUR,
            client_capacity: 100_000,
            known_path_capacity: 100_000,
            login_paths: DEFAULT_LOGIN_PATHS.iter().map(|s| s.to_string()).collect(),
            login_rate_max: 10,
            login_rate_flood: 20,
            login_rate_window_ms: 60 * SECOND,
            payload: aiwaf_payload::PayloadConfig::default(),
            payload_ban_hits: 3,
            payload_ban_window_ms: 10 * MINUTE,
            anomaly_min_hits: 3,
            anomaly_window_ms: 60 * SECOND,
            anomaly_min_404: 3,
            anomaly_min_burst: 30,
            anomaly_min_keyword_hits: 1,
            detectors_off: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// Checks relations between settings; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_window_ms == 0 {
            return Err("rate_limit.window must be positive".into());
        }
        if self.rate_max == 0 {
            return Err("rate_limit.max must be at least 1".into());
        }
        if self.rate_flood < self.rate_max {
            return Err(format!(
                "rate_limit.flood ({}) must be at least rate_limit.max ({})",
                self.rate_flood, self.rate_max
            ));
        }
        if self.window_ms == 0 {
            return Err("probing.window must be positive".into());
        }
        if self.not_found_threshold == 0 || self.extension_threshold == 0 {
            return Err("not_found.threshold and probing.threshold must be at least 1".into());
        }
        if self.uuid_threshold <= 0 {
            return Err("uuid.threshold must be positive".into());
        }
        if self.ban_durations.is_empty() {
            return Err("bans.durations must name at least one duration".into());
        }
        self.payload.validate()?;
        if self.asset_rate_max == 0 || self.asset_rate_flood < self.asset_rate_max {
            return Err(format!(
                "rate_limit.asset_flood ({}) must be at least rate_limit.asset_max ({}), which must be at least 1",
                self.asset_rate_flood, self.asset_rate_max
            ));
        }
        if self.login_rate_max > 0 && self.login_rate_flood < self.login_rate_max {
            return Err(format!(
                "login.flood ({}) must be at least login.max ({})",
                self.login_rate_flood, self.login_rate_max
            ));
        }
        if self.login_rate_window_ms == 0 {
            return Err("login.window must be positive".into());
        }
        if self.payload_ban_hits == 0 {
            return Err("payload.ban_hits must be at least 1".into());
        }
        if self.honeypot_min_hits == 0 {
            return Err("honeypot.min_hits must be at least 1".into());
        }
        if self.honeypot_window_ms == 0 {
            return Err("honeypot.window must be positive".into());
        }
        if self.anomaly_min_hits == 0 {
            return Err("anomaly.min_hits must be at least 1".into());
        }
        if !(16..=128).contains(&self.ipv6_prefix) {
            return Err(format!("server.ipv6_prefix ({}) must be between 16 and 128", self.ipv6_prefix));
        }
        if self.client_capacity == 0 {
            return Err("server.client_capacity must be at least 1".into());
        }
        Ok(())
    }

    /// Whether a feature vector shows attack signs (the seed's guard against banning heavy but
    /// honest users on the model's word alone); a payload finding is one.
    pub fn attack_signs(&self, x: &crate::features::Features) -> bool {
        x[1] >= f64::from(self.anomaly_min_keyword_hits)
            || x[5] >= f64::from(self.anomaly_min_404)
            || x[4] >= f64::from(self.anomaly_min_burst)
            || x[6] > 0.0
    }

    /// Ban length for the `offence`-th offence (1-based); `None` is permanent.
    pub fn ban_duration(&self, offence: u32) -> Option<u64> {
        let idx = (offence.max(1) as usize - 1).min(self.ban_durations.len() - 1);
        self.ban_durations[idx]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule without the quick rejection on the first two bytes.
    fn plain(normalized: &str) -> bool {
        BROWSER_AUTO_PATHS.iter().any(|p| {
            normalized.starts_with(p)
                && (p.ends_with('/') || p.ends_with('-') || *p == "/apple-touch-icon" || normalized.len() == p.len())
        })
    }

    #[test]
    fn browser_auto_paths() {
        let mut cases: Vec<String> =
            ["/", "/f", "/fa", "/en/profile/", "/favicon.icox", "/robots.txt/x", "/.well-known"]
                .map(String::from)
                .to_vec();
        for p in BROWSER_AUTO_PATHS {
            cases.extend([p.to_string(), format!("{p}x"), format!("{p}/"), p[..p.len() - 1].to_string()]);
        }
        for c in &cases {
            assert_eq!(is_browser_auto_path(c), plain(c), "{c}");
        }
        assert!(is_browser_auto_path("/favicon.ico") && is_browser_auto_path("/.well-known/security.txt"));
        assert!(is_browser_auto_path("/apple-touch-icon-precomposed.png"));
        assert!(!is_browser_auto_path("/favicon.icox") && !is_browser_auto_path("/en/profile/"));
    }
}
