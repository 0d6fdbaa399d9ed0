//! Command line: `aiwaf serve | blacklist | exempt | keywords | reset | logging | events | diagnose`.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aiwaf_engine::ip::parse_net;
use aiwaf_store::{EventFilter, ResetScope, Store};
use aiwaf_tower::now_ms;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, Overrides, parse_upstream};
use crate::views::{self, rfc3339};

#[derive(Parser, Debug)]
#[command(name = "aiwaf", version, about = "A self-learning web application firewall")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Data directory (holds the SQLite database) [default: ./aiwaf-data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: ./aiwaf.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the reverse proxy in front of an upstream web app.
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port)
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Upstream base URL, e.g. http://127.0.0.1:8000
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// block: enforce; detect: record would-blocks only; off: plain proxy
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
        /// Retrain the anomaly model in-process at this interval (e.g. 24h)
        #[arg(long, value_name = "DURATION")]
        retrain_every: Option<String>,
        /// Share per-client state with other instances through Redis (redis://HOST:PORT)
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
        /// Serve the admin API, /metrics and the dashboard on this address (token: AIWAF_ADMIN_TOKEN)
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
        /// Allow the admin listener without a token when it binds a loopback address
        #[arg(long)]
        admin_insecure_loopback: bool,
        /// Write one JSON line per block to this file (size-rotated)
        #[arg(long, value_name = "PATH")]
        audit_log: Option<PathBuf>,
        /// Write an access log (nginx combined + request time; size-rotated) that `aiwaf train` reads
        #[arg(long, value_name = "PATH")]
        access_log: Option<PathBuf>,
        /// Access log format: combined (default) or json
        #[arg(long, value_name = "FORMAT")]
        access_log_format: Option<String>,
        /// Serve HTTPS with this PEM certificate chain (repeatable: one per --tls-key, chosen by SNI)
        #[arg(long, value_name = "FILE")]
        tls_cert: Vec<PathBuf>,
        /// PEM private key of the --tls-cert at the same position
        #[arg(long, value_name = "FILE")]
        tls_key: Vec<PathBuf>,
        /// Proxy worker threads, each serving its connections (default: one per CPU)
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Learn from access logs: ban 404 floods and anomalous clients, train the model, learn keywords.
    Train {
        /// Access log to read (repeatable); default: AIWAF_ACCESS_LOG and its rotations, else the request log
        #[arg(long = "log", value_name = "PATH")]
        logs: Vec<PathBuf>,
        /// Log format
        #[arg(long, default_value = "auto", value_parser = ["auto", "combined", "combined-rt", "apache-d", "json"])]
        format: String,
        /// JSON logs: where each fact is, e.g. `ip=client_ip,time=ts,user_agent=request.headers.User-Agent.0`
        /// (names separated by `|` are tried in order; nginx, Caddy and Traefik names are known)
        #[arg(long, value_name = "FACT=NAME,...")]
        json_fields: Option<String>,
        /// Only lines newer than this (e.g. 7d)
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Report what would be banned and learned; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object
        #[arg(long)]
        json: bool,
        /// Why would training ban this address: every finding of the replay for it, with file and
        /// line (implies --dry-run)
        #[arg(long, value_name = "IP")]
        explain: Option<String>,
    },
    /// The anomaly model.
    Model {
        #[command(subcommand)]
        action: ModelCmd,
    },
    /// Banned clients.
    Blacklist {
        #[command(subcommand)]
        action: BlacklistCmd,
    },
    /// Exempt addresses and networks (never inspected, never banned).
    Exempt {
        #[command(subcommand)]
        action: ExemptCmd,
    },
    /// Learned keywords.
    Keywords {
        #[command(subcommand)]
        action: KeywordsCmd,
    },
    /// Clear the blacklist, exemptions and learned keywords.
    Reset {
        /// Only the blacklist
        #[arg(long, conflicts_with_all = ["exemptions_only", "keywords_only"])]
        blacklist_only: bool,
        /// Only the exemptions
        #[arg(long, conflicts_with = "keywords_only")]
        exemptions_only: bool,
        /// Only the learned keywords
        #[arg(long)]
        keywords_only: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The request logger.
    Logging {
        #[command(subcommand)]
        action: LoggingCmd,
    },
    /// Why requests were blocked: the stored block events.
    Events {
        /// Only this client
        #[arg(long)]
        ip: Option<String>,
        /// Only this detector (e.g. keyword, flood, honeypot)
        #[arg(long)]
        detector: Option<String>,
        /// Only this request id (from the X-Aiwaf-Request-Id header)
        #[arg(long)]
        request_id: Option<String>,
        /// Only events newer than this (e.g. 1h)
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// At most this many, newest first
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON array
        #[arg(long)]
        json: bool,
    },
    /// Which payload detectors fired on which routes and targets (run in detect mode first),
    /// with a suggested exclusion for each.
    PayloadReport {
        /// Only events newer than this
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        since: String,
        /// At most this many rows
        #[arg(long, default_value_t = 30)]
        limit: usize,
        /// One JSON array
        #[arg(long)]
        json: bool,
    },
    /// Check configuration, data dir, schema, upstream and model.
    Diagnose,
    /// A Python project's dependencies: installed vs latest, known vulnerabilities,
    /// incompatibilities, and an upgrade plan every constraint allows (exit 0 clean, 1
    /// findings, 2 error, 3 index unreachable).
    CheckDeps(CheckDepsArgs),
}

#[derive(Args, Debug)]
struct CheckDepsArgs {
    /// The project directory (requirements*.txt, pyproject.toml, lock files)
    #[arg(default_value = ".")]
    path: PathBuf,
    /// The project's interpreter: installed versions, markers and pip come from it
    #[arg(long, default_value = "python3")]
    python: String,
    /// Read installed packages from this directory instead of the interpreter's (repeatable)
    #[arg(long, value_name = "DIR")]
    site_packages: Vec<PathBuf>,
    /// table or json
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Look up known vulnerabilities (OSV) of the installed versions
    #[arg(long)]
    check_security: bool,
    /// Run `PYTHON -m pip install` for the planned upgrades, then check again
    #[arg(long)]
    upgrade: bool,
    /// Print the plan and the exact command; change nothing
    #[arg(long)]
    dry_run: bool,
    /// After upgrading, rewrite the version specifiers of the upgraded lines in the
    /// requirements files (a `.backup` of each first)
    #[arg(long)]
    update_requirements: bool,
    /// Base URL of the package index's JSON API
    #[arg(long, default_value = "https://pypi.org", value_name = "URL")]
    index_url: String,
    /// Allow pre-releases in the plan
    #[arg(long)]
    pre: bool,
    /// More compatibility rules (TOML, like the built-in table; repeatable)
    #[arg(long, value_name = "FILE")]
    compat: Vec<PathBuf>,
    /// Seconds to wait for each answer of the index
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

/// `aiwaf check-deps`: no storage, no configuration; its own exit codes.
fn check_deps(a: &CheckDepsArgs) -> Result<ExitCode> {
    let opts = aiwaf_deps::Options {
        project: a.path.clone(),
        python: a.python.clone(),
        site_packages: a.site_packages.clone(),
        index_url: a.index_url.clone(),
        check_security: a.check_security,
        pre: a.pre,
        compat_files: a.compat.clone(),
        timeout: std::time::Duration::from_secs_f64(a.timeout.clamp(0.1, 600.0)),
        concurrency: 8,
        progress: a.format == "table" && std::io::stderr().is_terminal(),
    };
    let actions = aiwaf_deps::Actions {
        json: a.format == "json",
        upgrade: a.upgrade,
        dry_run: a.dry_run,
        update_requirements: a.update_requirements,
    };
    let code = aiwaf_deps::run(&opts, &actions, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    Ok(ExitCode::from(code))
}

#[derive(Subcommand, Debug)]
enum ModelCmd {
    /// Show the model: schema, features, trees, threshold, training metadata.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Retrain from the stored request log.
    Regenerate {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BlacklistCmd {
    /// List active bans.
    List {
        /// One JSON array
        #[arg(long)]
        json: bool,
        /// Include expired bans still counted as previous offences
        #[arg(long)]
        all: bool,
    },
    /// Ban a client.
    Add {
        ip: String,
        #[arg(long, default_value = "Manual ban")]
        reason: String,
        /// Ban length (e.g. 30m, 24h); permanent when absent
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Lift a ban.
    Remove { ip: String },
}

#[derive(Subcommand, Debug)]
enum ExemptCmd {
    /// List exemptions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Exempt an address or CIDR network (lifts its bans).
    Add {
        #[arg(value_name = "IP|CIDR")]
        net: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an exemption.
    Remove {
        #[arg(value_name = "IP|CIDR")]
        net: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeywordsCmd {
    /// List learned keywords with their counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget a learned keyword.
    Remove { word: String },
}

#[derive(Subcommand, Debug)]
enum LoggingCmd {
    /// Show whether request logging is on and how many rows are stored.
    Status,
    /// Turn request logging on (running servers follow within a second).
    Enable,
    /// Turn request logging off.
    Disable,
    /// Delete the stored request log.
    Clear,
}

fn parse_ip(s: &str) -> Result<IpAddr> {
    s.trim().parse::<IpAddr>().map(aiwaf_engine::ip::canonical).with_context(|| format!("`{s}` is not an IP address"))
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// A training report: one JSON object, or the summary for humans.
/// `aiwaf train --explain IP`: the findings of the replay for one client, then whether it would
/// be banned and why.
fn print_explain(report: &serde_json::Value, ip: std::net::IpAddr) {
    let rows = report["explain"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("{ip}: no finding in {} lines read", report["lines_read"]);
    }
    for r in &rows {
        println!(
            "{}:{}  {}  {} -> {}  [{} {}] {}: {}",
            r["source"].as_str().unwrap_or("?"),
            r["line"],
            views::rfc3339(r["ts"].as_i64().unwrap_or(0)),
            r["request"].as_str().unwrap_or(""),
            r["status"],
            r["phase"].as_str().unwrap_or(""),
            r["action"].as_str().unwrap_or(""),
            r["detector"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        );
    }
    let ban = report["bans"].as_array().and_then(|b| b.iter().find(|b| b["ip"].as_str() == Some(&ip.to_string())));
    match ban {
        Some(b) => println!(
            "=> training bans {ip}: {} ({})",
            b["reason"].as_str().unwrap_or(""),
            b["detector"].as_str().unwrap_or("")
        ),
        None => match report["not_banned"]
            .as_array()
            .and_then(|n| n.iter().filter_map(|v| v.as_str()).find(|v| v.starts_with(&format!("{ip} "))))
        {
            Some(why) => println!("=> not banned: {why}"),
            None => println!("=> training does not ban {ip}"),
        },
    }
}

fn print_report(report: &serde_json::Value, json: bool) -> Result<()> {
    if json {
        print_json(report)
    } else {
        println!("{}", crate::train::summary(report));
        Ok(())
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// The async runtime; `threads` sizes its workers (default: one per CPU).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    Ok(b.enable_all().build()?)
}

fn env_lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Entry point of the `aiwaf` binary; returns the exit code.
pub fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // `aiwaf diagnose | head`: a closed pipe ends a CLI command quietly, as it does any
        // Unix tool (never the server, which must survive clients that hang up).
        sigpipe::reset();
    }
    run(cli, &env_lookup)
}

/// Runs one command line (`args[0]` is the program name) with settings looked up in `env`
/// instead of the process environment: the Python package's management commands call the
/// CLI this way, with the project's `AIWAF_*` settings. A usage error is an `Err` carrying
/// clap's message (`--help` and `--version` print and succeed).
pub fn run_args<I, T>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => anyhow::bail!("{}", e.render().to_string().trim_end()),
    };
    run(cli, env)
}

fn run(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<ExitCode> {
    let mut over = Overrides {
        config: cli.global.config.clone(),
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
        ..Default::default()
    };
    if let Command::Serve {
        listen,
        upstream,
        mode,
        retrain_every,
        redis_url,
        admin_listen,
        admin_insecure_loopback,
        audit_log,
        access_log,
        access_log_format,
        tls_cert,
        tls_key,
        threads,
    } = &cli.command
    {
        over.listen = listen.clone();
        over.upstream = upstream.clone();
        over.mode = mode.clone();
        over.retrain_every = retrain_every.clone();
        over.redis_url = redis_url.clone();
        over.admin_listen = admin_listen.clone();
        over.admin_insecure_loopback = *admin_insecure_loopback;
        over.audit_log = audit_log.clone();
        over.access_log = access_log.clone();
        over.access_log_format = access_log_format.clone();
        over.tls_cert = tls_cert.clone();
        over.tls_key = tls_key.clone();
        over.threads = *threads;
    }
    if let Command::Diagnose = cli.command {
        return runtime(None)?.block_on(diagnose(&over, env));
    }
    if let Command::CheckDeps(a) = &cli.command {
        return check_deps(a);
    }
    let config = Config::load(&over, env)?;
    check_data_dir(&cli.command, &config)?;
    // `serve`: connections are served by the proxy's own worker threads (`workers.rs`, sized by
    // `threads`); this runtime runs the accept loop, storage, reloads and the admin listener
    let rt = runtime(if matches!(cli.command, Command::Serve { .. }) { Some(1) } else { None })?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve { .. } => crate::serve::run(config).await.map(|()| ExitCode::SUCCESS),
            Command::Diagnose | Command::CheckDeps(_) => unreachable!("handled above"),
            other => {
                let store = Store::connect(config.database_url.as_deref(), &config.data_dir).await?;
                let code = run_command(other, &store, &config).await;
                store.close().await;
                code
            }
        }
    })
}

/// Whether a command only reads stored data (and so needs a database that exists).
fn reads_only(cmd: &Command) -> bool {
    match cmd {
        Command::Blacklist { action } => matches!(action, BlacklistCmd::List { .. }),
        Command::Exempt { action } => matches!(action, ExemptCmd::List { .. }),
        Command::Keywords { action } => matches!(action, KeywordsCmd::List { .. }),
        Command::Logging { action } => matches!(action, LoggingCmd::Status),
        Command::Events { .. } | Command::PayloadReport { .. } => true,
        _ => false,
    }
}

/// A CLI run in another directory used to create an empty `./aiwaf-data` and report "No banned
/// clients". Reading from a database that does not exist is an error naming where it looked;
/// writing to a new one says so.
fn check_data_dir(cmd: &Command, config: &Config) -> Result<()> {
    if config.database_url.is_some() || matches!(cmd, Command::Serve { .. } | Command::Diagnose) {
        return Ok(());
    }
    let db = config.data_dir.join(aiwaf_store::DB_FILE);
    if db.exists() {
        return Ok(());
    }
    let whence = match &config.file {
        Some(f) => format!("data dir from {}", f.display()),
        None => "the default data dir, relative to the current directory".to_string(),
    };
    if reads_only(cmd) {
        anyhow::bail!(
            "no aiwaf database at {} ({whence}). Run this where `aiwaf serve` runs, or pass the same \
             --data-dir / --config / AIWAF_DATA_DIR / --database-url it uses",
            db.display()
        );
    }
    eprintln!("note: creating a new aiwaf database at {} ({whence})", db.display());
    Ok(())
}

async fn run_command(cmd: Command, store: &Store, config: &Config) -> Result<ExitCode> {
    let now = now_ms();
    match cmd {
        Command::Blacklist { action } => match action {
            BlacklistCmd::List { json, all } => {
                let rows = store.blacklist(all, now).await?;
                if json {
                    print_json(&json!(rows.iter().map(|r| views::ban(r, now as i64)).collect::<Vec<_>>()))?;
                } else if rows.is_empty() {
                    println!("No banned clients.");
                } else {
                    let body: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.ip.clone(),
                                r.detector.clone(),
                                r.expires_at.map_or("permanent".into(), rfc3339),
                                r.offences.to_string(),
                                r.reason.clone(),
                            ]
                        })
                        .collect();
                    table(&["IP", "DETECTOR", "EXPIRES", "OFFENCES", "REASON"], &body);
                }
            }
            BlacklistCmd::Add { ip, reason, ttl } => {
                let ip = parse_ip(&ip)?;
                let expires = match ttl {
                    Some(t) => {
                        let d = humantime::parse_duration(&t)
                            .with_context(|| format!("--ttl: `{t}` is not a duration (e.g. 30m, 24h)"))?;
                        Some(now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                    }
                    None => None,
                };
                store.add_ban(ip, &reason, expires, now).await?;
                match expires {
                    Some(e) => println!("Banned {ip} until {} ({reason}).", rfc3339(e as i64)),
                    None => println!("Banned {ip} permanently ({reason})."),
                }
            }
            BlacklistCmd::Remove { ip } => {
                let ip = parse_ip(&ip)?;
                if store.remove_ban(ip, now).await? {
                    println!("Unbanned {ip}.");
                } else {
                    println!("{ip} was not banned.");
                }
            }
        },
        Command::Exempt { action } => match action {
            ExemptCmd::List { json } => {
                let rows = store.exemptions().await?;
                if json {
                    print_json(&json!(rows.iter().map(views::exemption).collect::<Vec<_>>()))?;
                } else if rows.is_empty() && config.exempt_ips.is_empty() {
                    println!("No exemptions.");
                } else {
                    let mut body: Vec<Vec<String>> =
                        rows.iter().map(|r| vec![r.net.clone(), rfc3339(r.created_at), r.reason.clone()]).collect();
                    body.extend(
                        config
                            .exempt_ips
                            .iter()
                            .map(|n| vec![n.to_string(), "(config)".into(), "exemptions.ips".into()]),
                    );
                    table(&["IP/CIDR", "CREATED", "REASON"], &body);
                }
            }
            ExemptCmd::Add { net, reason } => {
                let n = parse_net(&net).map_err(anyhow::Error::msg)?;
                let (new, lifted) = store.add_exemption(n, &reason, now).await?;
                if new {
                    println!("Exempted {n}.");
                } else {
                    println!("{n} is already exempt.");
                }
                if !lifted.is_empty() {
                    println!("Lifted {} ban(s): {}.", lifted.len(), lifted.join(", "));
                }
            }
            ExemptCmd::Remove { net } => {
                let n = parse_net(&net).map_err(anyhow::Error::msg)?;
                if store.remove_exemption(n).await? {
                    println!("Removed exemption {n}.");
                } else {
                    println!("{n} was not exempt.");
                }
            }
        },
        Command::Keywords { action } => match action {
            KeywordsCmd::List { json } => {
                let rows = store.keywords().await?;
                if json {
                    print_json(&json!(rows.iter().map(views::keyword).collect::<Vec<_>>()))?;
                } else if rows.is_empty() {
                    println!("No learned keywords.");
                } else {
                    let top = config.engine.dynamic_top_n;
                    let body: Vec<Vec<String>> = rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            vec![
                                r.keyword.clone(),
                                r.count.to_string(),
                                if i < top { "yes".into() } else { "no".into() },
                            ]
                        })
                        .collect();
                    table(&["KEYWORD", "COUNT", "IN FORCE"], &body);
                }
            }
            KeywordsCmd::Remove { word } => {
                if store.remove_keyword(&word).await? {
                    println!("Removed keyword {word}.");
                } else {
                    println!("{word} is not a learned keyword.");
                }
            }
        },
        Command::Reset { blacklist_only, exemptions_only, keywords_only, yes } => {
            let (scope, what) = if blacklist_only {
                (ResetScope::Blacklist, "the blacklist")
            } else if exemptions_only {
                (ResetScope::Exemptions, "all exemptions")
            } else if keywords_only {
                (ResetScope::Keywords, "all learned keywords")
            } else {
                (ResetScope::All, "the blacklist, all exemptions and all learned keywords")
            };
            if !yes {
                if !std::io::stdin().is_terminal() {
                    eprintln!("error: refusing to delete {what} without confirmation; pass --yes");
                    return Ok(ExitCode::from(1));
                }
                eprint!("Delete {what} in {}? [y/N] ", store.path().display());
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    println!("Nothing deleted.");
                    return Ok(ExitCode::from(1));
                }
            }
            let n = store.reset(scope).await?;
            println!("Deleted {n} rows ({what}).");
        }
        Command::Logging { action } => match action {
            LoggingCmd::Status => {
                let stored = store.request_logging().await?;
                let on = stored.unwrap_or(config.request_logging);
                let source = if stored.is_some() { "set by `aiwaf logging`" } else { "from configuration" };
                let rows = store.counts(now).await?.request_log;
                println!("Request logging: {} ({source})", if on { "enabled" } else { "disabled" });
                println!("Stored requests: {rows}");
                println!("Database: {}", store.path().display());
            }
            LoggingCmd::Enable => {
                store.set_request_logging(true).await?;
                println!("Request logging enabled.");
            }
            LoggingCmd::Disable => {
                store.set_request_logging(false).await?;
                println!("Request logging disabled.");
            }
            LoggingCmd::Clear => {
                let n = store.clear_request_log().await?;
                println!("Deleted {n} request log rows.");
            }
        },
        Command::PayloadReport { since, limit, json } => {
            let d =
                humantime::parse_duration(&since).with_context(|| format!("--since: `{since}` is not a duration"))?;
            let since = Some(now.saturating_sub(d.as_millis() as u64) as i64);
            let filter = EventFilter { detector: Some("payload".into()), since, limit: 100_000, ..Default::default() };
            let mut rows = views::payload_report(&store.events(&filter).await?);
            rows.truncate(limit);
            if json {
                print_json(&json!(rows))?;
            } else if rows.is_empty() {
                println!("No payload findings in that window.");
            } else {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r["route"].as_str().unwrap_or("").to_string(),
                            r["detector"].as_str().unwrap_or("").to_string(),
                            r["target"].as_str().unwrap_or("").to_string(),
                            r["findings"].to_string(),
                            r["clients"].to_string(),
                        ]
                    })
                    .collect();
                table(&["route", "detector", "target", "findings", "clients"], &body);
                println!("\nTo exclude what you have checked is legitimate, add to aiwaf.toml, e.g.:\n");
                println!("{}", rows[0]["exclusion"].as_str().unwrap_or(""));
            }
        }
        Command::Events { ip, detector, request_id, since, limit, json } => {
            if let Some(d) = &detector
                && !aiwaf_engine::Detector::ALL.iter().any(|x| x.as_str() == d)
            {
                let names: Vec<&str> = aiwaf_engine::Detector::ALL.iter().map(|x| x.as_str()).collect();
                anyhow::bail!("--detector: `{d}` is not a detector (one of: {})", names.join(", "));
            }
            let since = match since {
                Some(s) => {
                    let d =
                        humantime::parse_duration(&s).with_context(|| format!("--since: `{s}` is not a duration"))?;
                    Some(now.saturating_sub(d.as_millis() as u64) as i64)
                }
                None => None,
            };
            let rows = store.events(&EventFilter { ip, detector, request_id, since, limit }).await?;
            if json {
                print_json(&json!(rows.iter().map(views::event).collect::<Vec<_>>()))?;
            } else if rows.is_empty() {
                println!("No events.");
            } else {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|e| {
                        vec![
                            rfc3339(e.ts),
                            e.ip.clone(),
                            e.action.clone(),
                            e.detector.clone(),
                            format!("{} {}", e.method, e.path),
                            e.reason.clone(),
                            e.request_id.clone(),
                        ]
                    })
                    .collect();
                table(&["TIME", "IP", "ACTION", "DETECTOR", "REQUEST", "REASON", "REQUEST ID"], &body);
            }
        }
        Command::Train { logs, format, json_fields, since, dry_run, json, explain } => {
            let json_fields = match json_fields {
                Some(spec) => aiwaf_train::json::JsonFields::default()
                    .with_overrides(&spec)
                    .map_err(|e| anyhow::anyhow!("--json-fields: {e}"))?,
                None => Default::default(),
            };
            let explain = match explain {
                Some(s) => Some(
                    s.parse::<std::net::IpAddr>()
                        .map_err(|_| anyhow::anyhow!("--explain: `{s}` is not an IP address"))?,
                ),
                None => None,
            };
            let since = match since {
                Some(s) => {
                    Some(humantime::parse_duration(&s).with_context(|| format!("--since: `{s}` is not a duration"))?)
                }
                None => None,
            };
            let req = crate::train::Request {
                source: crate::train::Source::Auto(logs),
                format: format.parse().map_err(anyhow::Error::msg)?,
                since,
                dry_run: dry_run || explain.is_some(),
                progress: !json,
                explain,
                json_fields,
            };
            let report = crate::train::run(config, store, &req).await?;
            match explain {
                Some(ip) if !json => print_explain(&report, ip),
                _ => print_report(&report, json)?,
            }
        }
        Command::Model { action } => match action {
            ModelCmd::Info { json } => {
                let path = config.model_path();
                if !path.exists() {
                    eprintln!("no model at {} (anomaly scoring is off); run `aiwaf train`", path.display());
                    return Ok(ExitCode::from(1));
                }
                let m = crate::train::load_model(&path)?;
                let f = m.file();
                let v = views::model(&path, &m);
                if json {
                    print_json(&v)?;
                } else {
                    println!("model:          {}", path.display());
                    println!("schema version: {}", f.schema_version);
                    println!("features:       {}", f.feature_names.join(", "));
                    println!("trees:          {} (sample size {})", f.forest.trees.len(), f.forest.sample_size);
                    println!("threshold:      {:.4} (contamination {})", f.forest.threshold, f.training.contamination);
                    println!("trained at:     {}", rfc3339(f.training.trained_at as i64));
                    println!(
                        "rows used:      {} ({} fitted, {} clients)",
                        f.training.rows_used, f.training.fitted_rows, f.training.clients
                    );
                    let q: Vec<String> =
                        f.training.score_quantiles.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
                    println!("scores:         {}", q.join(" "));
                    println!("sources:        {}", f.training.sources.join(", "));
                }
            }
            ModelCmd::Regenerate { json } => {
                let req = crate::train::Request {
                    source: crate::train::Source::RequestLog,
                    format: aiwaf_train::parse::LogFormat::Auto,
                    since: None,
                    dry_run: false,
                    progress: !json,
                    explain: None,
                    json_fields: Default::default(),
                };
                print_report(&crate::train::run(config, store, &req).await?, json)?;
            }
        },
        Command::Serve { .. } | Command::Diagnose | Command::CheckDeps(_) => unreachable!("dispatched earlier"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiwaf diagnose`: a readable report; exit 1 when something is wrong.
async fn diagnose(over: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<ExitCode> {
    let mut problems = 0;
    let mut line = |ok: Option<bool>, what: &str, detail: String| {
        let tag = match ok {
            Some(true) => "ok  ",
            Some(false) => {
                problems += 1;
                "FAIL"
            }
            None => "info",
        };
        println!("[{tag}] {what}: {detail}");
    };
    println!("aiwaf {} diagnose", env!("CARGO_PKG_VERSION"));
    let config = match Config::load(over, env) {
        Ok(c) => {
            let src = c
                .file
                .as_ref()
                .map_or("defaults and environment (no config file)".to_string(), |f| f.display().to_string());
            line(Some(true), "configuration", src);
            c
        }
        Err(e) => {
            line(Some(false), "configuration", format!("{e:#}"));
            println!("\n1 problem found.");
            return Ok(ExitCode::from(1));
        }
    };
    let e = &config.engine;
    line(None, "mode", config.mode.as_str().to_string());
    line(
        None,
        "rate limit",
        format!("{} requests / {}s (429), {} (ban)", e.rate_max, e.rate_window_ms as f64 / 1000.0, e.rate_flood),
    );
    line(
        None,
        "trusted proxies",
        if e.trusted_proxies.is_empty() {
            "none (forwarding headers are ignored; the TCP peer is the client)".into()
        } else {
            e.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        },
    );
    let dir = &config.data_dir;
    let writable = std::fs::create_dir_all(dir).is_ok() && {
        let probe = dir.join(".aiwaf-write-test");
        let ok = std::fs::write(&probe, b"ok").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    };
    line(
        Some(writable),
        "data dir",
        format!("{} ({})", dir.display(), if writable { "writable" } else { "not writable" }),
    );
    match Store::connect(config.database_url.as_deref(), dir).await {
        Ok(store) => {
            line(Some(true), "storage backend", format!("{} ({})", store.backend().as_str(), store.path().display()));
            let version = store.schema_version().await.unwrap_or(-1);
            line(
                Some(version == aiwaf_store::SCHEMA_VERSION),
                "schema version",
                format!("{version} (this build: {})", aiwaf_store::SCHEMA_VERSION),
            );
            match store.counts(now_ms()).await {
                Ok(c) => line(
                    Some(true),
                    "database",
                    format!(
                        "{}: {} active bans, {} exemptions, {} learned keywords, {} events, {} logged requests",
                        store.path().display(),
                        c.active_bans,
                        c.exemptions,
                        c.keywords,
                        c.events,
                        c.request_log
                    ),
                ),
                Err(err) => line(Some(false), "database", format!("{err}")),
            }
            let logging = store.request_logging().await.ok().flatten().unwrap_or(config.request_logging);
            line(None, "request logging", if logging { "enabled".into() } else { "disabled".into() });
            store.close().await;
        }
        Err(err) => line(Some(false), "database", format!("{err}")),
    }
    match &config.upstream {
        None => line(None, "upstream", "not configured (set server.upstream or AIWAF_UPSTREAM to check it)".into()),
        Some(u) => match parse_upstream(u) {
            Err(err) => line(Some(false), "upstream", format!("{err:#}")),
            Ok(uri) => {
                let host = uri.host().unwrap_or("");
                let port = uri.port_u16().unwrap_or(80);
                let reachable = (host, port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)));
                match reachable {
                    Some(Ok(_)) => line(Some(true), "upstream", format!("{u} accepts connections")),
                    Some(Err(err)) => line(Some(false), "upstream", format!("{u} is unreachable: {err}")),
                    None => line(Some(false), "upstream", format!("{u}: cannot resolve {host}")),
                }
            }
        },
    }
    match &config.redis_url {
        None => line(
            None,
            "shared state",
            "local to this process (set state.redis_url to share it between instances)".into(),
        ),
        Some(url) => {
            let policy = if config.fail_open { "open" } else { "closed" };
            let ping = async {
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await
            };
            match tokio::time::timeout(Duration::from_secs(2), ping).await {
                Ok(Ok(_)) => line(
                    Some(true),
                    "shared state",
                    format!("redis {} answers (on_backend_error = {policy})", aiwaf_store::redact_url(url)),
                ),
                Ok(Err(e)) => line(
                    Some(false),
                    "shared state",
                    format!("redis {}: {e} (requests fail {policy})", aiwaf_store::redact_url(url)),
                ),
                Err(_) => line(
                    Some(false),
                    "shared state",
                    format!("redis {}: no answer in 2 s (requests fail {policy})", aiwaf_store::redact_url(url)),
                ),
            }
        }
    }
    let model_path = config.model_path();
    if model_path.exists() {
        match crate::train::load_model(&model_path) {
            Ok(m) => line(
                Some(true),
                "model",
                format!(
                    "{}: {} trees, threshold {:.3}, trained {} on {} rows: anomaly scoring on",
                    model_path.display(),
                    m.file().forest.trees.len(),
                    m.threshold(),
                    rfc3339(m.file().training.trained_at as i64),
                    m.file().training.rows_used
                ),
            ),
            Err(e) => line(Some(false), "model", format!("{e:#}")),
        }
    } else {
        line(None, "model", format!("none at {}: anomaly scoring off (run `aiwaf train`)", model_path.display()));
    }
    match &config.access_log {
        Some(p) => {
            let files = aiwaf_train::discover(p);
            line(None, "access log", format!("{} ({} file(s) with rotations)", p.display(), files.len()));
        }
        None => line(None, "access log", "not configured (training falls back to the request log)".into()),
    }
    if problems == 0 {
        println!("\nNo problems found.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{problems} problem(s) found.");
        Ok(ExitCode::from(1))
    }
}
