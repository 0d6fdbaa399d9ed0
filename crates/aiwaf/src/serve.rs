//! `aiwaf serve`: the listener, the WAF layer around the proxy, and the background tasks
//! (storage writer, lists reloader, retention).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aiwaf_engine::Engine;
use aiwaf_engine::ip::IpSet;
use aiwaf_store::writer::{self, WriterStats};
use aiwaf_store::{Marks, Store};
use aiwaf_tower::{Connection, ForConnection, Waf, WafLayer, now_ms};
use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

use crate::config::{Config, parse_upstream};
use crate::proxy::ProxyService;

/// Reads the lists and the logging switch from storage into the running WAF.
pub async fn reload(store: &Store, waf: &Waf, stats: &WriterStats, config: &Config) -> Result<()> {
    stats.full_reloads.fetch_add(1, Ordering::Relaxed);
    // Read the persisted mark first: everything up to it is in the snapshot read after it.
    let persisted = stats.persisted_ban_seq.load(Ordering::SeqCst);
    let now = now_ms();
    let lists = store.load_lists(waf.engine().config(), now).await?;
    waf.state().install_lists(lists, persisted, now);
    let logging = store.request_logging().await?.unwrap_or(config.request_logging);
    waf.set_request_logging(logging);
    // run-time payload changes: a stored document that no longer parses (written by another
    // version, edited by hand) is reported and the changes in force stay
    match store.payload_overlay().await?.map(|j| serde_json::from_str::<aiwaf_engine::payload::Overlay>(&j)) {
        None => {
            waf.state().set_payload_overlay(aiwaf_engine::payload::Overlay::default());
        }
        Some(Ok(o)) => match o.validate() {
            Ok(()) => {
                if waf.state().set_payload_overlay(o) {
                    tracing::info!("Payload exclusions and detector modes changed at run time are in force.");
                }
            }
            Err(e) => tracing::error!(error = %e, "Stored payload changes are invalid; keeping those in force."),
        },
        Some(Err(e)) => tracing::error!(error = %e, "Stored payload changes do not parse; keeping those in force."),
    }
    Ok(())
}

/// Applies the blacklist changes logged after `after` to the running WAF, without reading the
/// other bans; returns the last change applied, or `None` when only a full reload can catch up
/// (the log was pruned past `after`, or holds too many changes).
pub async fn reload_bans(store: &Store, waf: &Waf, stats: &WriterStats, after: i64) -> Result<Option<i64>> {
    // The persisted mark first: every ban written by then is in the log read after it.
    let persisted = stats.persisted_ban_seq.load(Ordering::SeqCst);
    let Some((last, ips)) = store.ban_changes_since(after, 10_000).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let changed = store.bans_of(&ips, waf.engine().config(), now).await?;
    let lists = waf.state().lists().with_bans(changed);
    waf.state().install_lists(lists, persisted, now);
    stats.incremental_reloads.fetch_add(1, Ordering::Relaxed);
    Ok(Some(last))
}

/// Listens for PostgreSQL change notifications and wakes the reloader; reconnects with backoff
/// (and wakes the reloader after reconnecting, to resync what was missed).
async fn listen_for_changes(url: String, channel: String, wake: Arc<tokio::sync::Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut l) => match l.listen(&channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    wake.notify_one();
                    loop {
                        match l.try_recv().await {
                            Ok(Some(_)) => wake.notify_one(),
                            Ok(None) => {
                                tracing::warn!("Change notifications interrupted; reconnecting.");
                                wake.notify_one();
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "Change notifications lost; reconnecting.");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; retrying."),
            },
            Err(e) => tracing::warn!(error = %e, "Cannot connect for change notifications; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The model file's identity: modification time and length.
type Stamp = Option<(std::time::SystemTime, u64)>;

/// Loads the model when its file appeared or changed; a bad file is logged and the model in
/// force stays. Returns the stamp of what is now loaded.
fn load_model_if_changed(waf: &Waf, path: &std::path::Path, seen: Stamp) -> Stamp {
    let stamp = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    if stamp == seen {
        return seen;
    }
    let Some(_) = stamp else {
        if waf.state().model().is_some() {
            tracing::warn!(path = %path.display(), "Model file removed; anomaly scoring off.");
            waf.state().set_model(None);
        }
        return None;
    };
    match crate::train::load_model(path) {
        Ok(m) => {
            tracing::info!(path = %path.display(), trees = m.file().forest.trees.len(), threshold = m.threshold(), "Model loaded.");
            waf.state().set_model(Some(Arc::new(m)));
        }
        Err(e) => tracing::error!(error = %format!("{e:#}"), "Model not loaded; keeping the one in force."),
    }
    stamp
}

/// `:PORT` for redirect targets, empty for 443.
fn local_port_suffix(port: u16) -> String {
    if port == 443 { String::new() } else { format!(":{port}") }
}

/// The plain-HTTP listener of `tls.redirect_listen`: every request gets a 308 to the same host
/// (without its port) and target on https.
async fn redirect_to_https(listener: TcpListener, port_suffix: String) {
    let port_suffix: Arc<str> = port_suffix.into();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let port_suffix = port_suffix.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(h, |(n, _)| n))
                    .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b)))
                    .unwrap_or("localhost")
                    .to_string();
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
                let port_suffix = port_suffix.clone();
                async move {
                    let location = format!("https://{host}{port_suffix}{target}");
                    let resp = http::Response::builder()
                        .status(http::StatusCode::PERMANENT_REDIRECT)
                        .header(http::header::LOCATION, location)
                        .header(http::header::CONTENT_LENGTH, "0")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("static parts");
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The WAF with its storage and background tasks running: what `aiwaf serve` and the Python
/// package (one per worker process) put in front of requests.
pub struct Running {
    /// The storage.
    pub store: Store,
    /// The WAF every adapter drives.
    pub waf: Waf,
    /// The storage writer's counters.
    pub stats: Arc<WriterStats>,
    writer: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the background tasks, lets the writer drain what is queued (10 s at most) and
    /// closes the storage. Every other clone of the [`Waf`] must be gone already, or the
    /// writer waits for it until the deadline.
    pub async fn stop(self) {
        let Running { store, waf, stats: _, writer, tasks } = self;
        stop_tasks(tasks).await;
        save_profile(&store, &waf).await;
        drop(waf);
        // Every sender is gone now: the writer drains the channel and ends.
        if tokio::time::timeout(Duration::from_secs(10), writer).await.is_err() {
            tracing::warn!("Storage writer did not finish in time; some records may be lost.");
        }
        store.close().await;
    }

    /// Stops everything now without waiting for the writer to drain (flush first when records
    /// matter) and closes the storage: for an embedder whose [`Waf`] clones outlive it.
    pub async fn abort(self) {
        let Running { store, waf, stats: _, writer, tasks } = self;
        stop_tasks(tasks.into_iter().chain(std::iter::once(writer)).collect()).await;
        save_profile(&store, &waf).await;
        store.close().await;
    }
}

/// Saves the learned profile (logged, never fatal); nothing when the profile is off or nothing
/// was learned since start (a saved profile that did not load is not overwritten with nothing).
pub async fn save_profile(store: &Store, waf: &Waf) {
    let p = waf.state().profile();
    if !p.config().enabled || p.changes() == 0 {
        return;
    }
    let json = waf.state().profile().export().to_string();
    if let Err(e) = store.save_profile(&json, now_ms() as i64).await {
        tracing::warn!(error = %e, "Saving the learned profile failed; it is kept in memory.");
    }
}

/// Reads the saved profile into the WAF (a profile that does not parse is reported and the
/// server learns anew).
async fn load_profile(store: &Store, waf: &Waf) -> Result<()> {
    let Some(json) = store.profile().await.context("cannot read the learned profile from storage")? else {
        return Ok(());
    };
    let restored = serde_json::from_str::<serde_json::Value>(&json)
        .map_err(|e| e.to_string())
        .and_then(|v| waf.state().profile().import(&v, now_ms()));
    match restored {
        Ok(n) => tracing::info!(routes = n, "Learned profile restored."),
        Err(e) => tracing::warn!(error = %e, "The saved profile was not read; learning anew."),
    }
    Ok(())
}

/// Aborts background tasks and waits until they are gone.
async fn stop_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Opens the storage, builds the WAF and starts the background tasks (storage writer, lists
/// reloader, change listener, retention, scheduled retraining).
pub async fn start(config: &Config) -> Result<Running> {
    let store = Store::connect(config.database_url.as_deref(), &config.data_dir).await?;
    let engine = Engine::new(config.engine.clone(), IpSet::new(config.exempt_ips.iter().copied()))
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let (tx, rx) = mpsc::channel(config.channel_capacity);
    let stats = Arc::new(WriterStats::default());
    let audit = match &config.audit_log {
        Some(p) => Some(
            aiwaf_store::audit::AuditLog::open(p.clone(), config.audit_log_max_bytes, 5)
                .with_context(|| format!("cannot open the audit log {}", p.display()))?,
        ),
        None => None,
    };
    let writer = writer::spawn_with_audit(store.clone(), rx, stats.clone(), audit);
    let shared = match &config.redis_url {
        Some(url) => Some(aiwaf_tower::Shared {
            redis: aiwaf_tower::shared::RedisWindows::new(url, config.backend_timeout, &config.key_prefix)
                .map_err(anyhow::Error::msg)?,
            fail_open: config.fail_open,
        }),
        None => None,
    };
    let waf = Waf::with_shared(engine, config.mode, Some(tx), shared);
    let marks = store.marks().await.context("cannot read the lists from storage")?;
    reload(&store, &waf, &stats, config).await.context("cannot read the lists from storage")?;
    let known = store.known_paths(config.engine.known_path_capacity).await?;
    waf.state().seed_known_paths(known.iter().map(String::as_str));
    if waf.state().profile().config().enabled {
        load_profile(&store, &waf).await?;
    }
    let model_path = config.model_path();
    let mut model_stamp = load_model_if_changed(&waf, &model_path, None);

    // PostgreSQL: changes made by any instance (or the CLI) are pushed at once.
    let wake = Arc::new(tokio::sync::Notify::new());
    let change_listener = match (store.url(), store.notify_channel().await?) {
        (Some(url), Some(channel)) => Some(tokio::spawn(listen_for_changes(url.to_string(), channel, wake.clone()))),
        _ => None,
    };
    let reloader = {
        let (store, waf, stats, config, wake) =
            (store.clone(), waf.clone(), stats.clone(), config.clone(), wake.clone());
        tokio::spawn(async move {
            let mut seen = marks;
            let mut last_full = Instant::now();
            let mut tick = tokio::time::interval(config.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                let pushed = tokio::select! {
                    _ = tick.tick() => false,
                    _ = wake.notified() => true,
                };
                model_stamp = load_model_if_changed(&waf, &model_path, model_stamp);
                let now_marks = match store.marks().await {
                    Ok(m) => m,
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, "Storage unreachable; serving with the last lists.");
                        }
                        failing = true;
                        continue;
                    }
                };
                // Expiry needs no change in storage, so resync now and then regardless.
                let resync = failing || last_full.elapsed() >= Duration::from_secs(30);
                if !pushed && !resync && now_marks.generation == seen.generation {
                    continue;
                }
                // Only bans changed: apply those. Anything else (or a log that no longer
                // reaches back): read everything.
                let mut full = resync || now_marks.lists_generation != seen.lists_generation;
                let mut outcome = Ok(());
                if !full {
                    match reload_bans(&store, &waf, &stats, seen.last_ban_change).await {
                        Ok(Some(last)) => {
                            seen = Marks { last_ban_change: last, ..now_marks };
                        }
                        Ok(None) => full = true,
                        Err(e) => outcome = Err(e),
                    }
                }
                if full && outcome.is_ok() {
                    outcome = reload(&store, &waf, &stats, &config).await;
                    if outcome.is_ok() {
                        seen = now_marks;
                        last_full = Instant::now();
                    }
                }
                match outcome {
                    Ok(()) => {
                        if failing {
                            tracing::info!("Storage reachable again.");
                        }
                        failing = false;
                    }
                    Err(e) => {
                        failing = true;
                        tracing::error!(error = %e, "Reloading lists failed; serving with the last lists.");
                    }
                }
            }
        })
    };
    let janitor = {
        let (store, config) = (store.clone(), config.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let e = &config.engine;
                match store
                    .purge(now_ms(), config.retention.as_millis() as u64, e.offence_memory_ms, e.known_path_capacity)
                    .await
                {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "Retention purge."),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Retention purge failed."),
                }
            }
        })
    };

    let retrainer = config.retrain_every.map(|every| {
        let (store, config) = (store.clone(), config.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let req = crate::train::Request::unattended();
                match crate::train::run(&config, &store, &req).await {
                    Ok(r) => tracing::info!(summary = %crate::train::summary(&r), "Scheduled retraining done."),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "Scheduled retraining failed."),
                }
            }
        })
    });

    // The learned profile is saved once a minute when it changed (and when the server stops).
    let profiler = waf.state().profile().config().enabled.then(|| {
        let (store, waf) = (store.clone(), waf.clone());
        tokio::spawn(async move {
            let every = Duration::from_secs(60);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut saved = waf.state().profile().changes();
            loop {
                tick.tick().await;
                let now = waf.state().profile().changes();
                if now != saved {
                    save_profile(&store, &waf).await;
                    saved = now;
                }
            }
        })
    });

    waf.set_block_page(config.block_page.clone());
    waf.set_body_read_timeout(config.proxy.body_read_timeout);
    // the proxy answers 413 to a longer declared body: the body phase does not wait for it
    waf.set_refused_body_bytes(config.proxy.max_body_bytes);
    let mut tasks = vec![reloader, janitor];
    tasks.extend(profiler);
    tasks.extend(change_listener);
    tasks.extend(retrainer);
    Ok(Running { store, waf, stats, writer, tasks })
}

/// Runs the proxy until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<()> {
    let texts: Vec<String> = config.upstream.iter().chain(config.upstreams.iter()).cloned().collect();
    anyhow::ensure!(
        !texts.is_empty(),
        "no upstream: pass --upstream URL (or server.upstream / server.upstreams / AIWAF_UPSTREAM)"
    );
    let upstreams = texts.iter().map(|u| parse_upstream(u)).collect::<Result<Vec<_>>>()?;
    let routes = config
        .routes
        .iter()
        .map(|r| {
            Ok((r.path_prefix.clone(), r.upstreams.iter().map(|u| parse_upstream(u)).collect::<Result<Vec<_>>>()?))
        })
        .collect::<Result<Vec<_>>>()?;
    let upstream_text = texts.join(", ");
    let running = start(&config).await?;
    let (store, waf, stats) = (running.store.clone(), running.waf.clone(), running.stats.clone());
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let trusted = IpSet::new(config.engine.trusted_proxies.iter().copied());
    let access_log = match (&config.access_log, config.write_access_log) {
        (Some(path), true) => Some(
            crate::access_log::AccessLog::start(
                path.clone(),
                config.access_log_format,
                config.access_log_max_bytes,
                config.access_log_keep,
                config.channel_capacity,
            )
            .with_context(|| format!("cannot open the access log {}", path.display()))?,
        ),
        _ => None,
    };
    waf.set_expose_client(access_log.is_some());
    let service = crate::access_log::AccessLogLayer::new(access_log).layer(
        WafLayer::new(waf.clone()).layer(ProxyService::new(&upstreams, &routes, trusted, config.proxy.clone())?),
    );
    let limits = crate::conn::ConnLimits::new(
        config.proxy.max_connections,
        config.proxy.max_connections_per_ip,
        config.engine.ipv6_prefix,
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(crate::timer::PooledTimer)
        .header_read_timeout(config.proxy.header_read_timeout)
        .max_buf_size(config.proxy.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.proxy.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.proxy.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(config.proxy.header_read_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    let sniff_limit = config.proxy.header_read_timeout;
    // TLS: certificates loaded now (a bad file refuses to start), then watched for changes
    let (tls, cert_watch) = if config.tls.certificates.is_empty() {
        (None, None)
    } else {
        let certs = crate::tls::load(&config.tls.certificates)?;
        let resolver = crate::tls::Resolver::new(certs);
        let cfg = crate::tls::server_config(resolver.clone())?;
        let watch = crate::tls::watch(resolver, config.tls.certificates.clone(), Duration::from_secs(2));
        (Some(tokio_rustls::TlsAcceptor::from(cfg)), Some(watch))
    };
    let redirect_task = match config.tls.redirect_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (tls.redirect_listen)"))?;
            let https_port = local_port_suffix(local.port());
            let bound = l.local_addr()?;
            Some((bound, tokio::spawn(redirect_to_https(l, https_port))))
        }
        None => None,
    };
    let admin_task = match config.admin_listen {
        Some(addr) => {
            let admin = crate::admin::Admin::new(
                config.admin_token.clone(),
                store.clone(),
                waf.clone(),
                config.clone(),
                stats.clone(),
                limits.clone(),
            );
            let l = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (admin)"))?;
            let _ = writeln!(std::io::stdout(), "aiwaf admin on http://{}", l.local_addr()?);
            let router = admin.router();
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(l, router).await {
                    tracing::error!(error = %e, "Admin listener failed.");
                }
            }))
        }
        None => None,
    };
    let workers = crate::workers::Workers::start(crate::workers::count(config.proxy.threads))
        .context("cannot start the proxy's worker threads")?;
    // One shutdown signal per worker: a watched connection checks its signal on every poll under
    // the signal's lock, which one signal for all would make both workers fight over.
    let graceful: Vec<GracefulShutdown> = (0..workers.len()).map(|_| GracefulShutdown::new()).collect();
    // Scripts and tests read this line to learn the bound address.
    println!(
        "aiwaf listening on {}://{local} -> {upstream_text} (mode {}, data dir {})",
        if tls.is_some() { "https" } else { "http" },
        config.mode.as_str(),
        config.data_dir.display()
    );
    tracing::info!(
        listen = %local,
        upstream = %upstream_text,
        mode = config.mode.as_str(),
        storage = store.backend().as_str(),
        shared_state = if config.redis_url.is_some() { "redis" } else { "local" },
        "Serving."
    );
    if let Some((bound, _)) = &redirect_task {
        println!("aiwaf redirecting http://{bound} to https");
    }

    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                // Limits count the TCP peer: a trusted proxy in front holds many connections, so
                // give it an exemption-sized budget through `server.max_connections_per_ip`.
                let guard = match limits.admit(peer.ip()) {
                    Ok(g) => g,
                    Err(why) => {
                        let n = limits.refused();
                        if n.is_power_of_two() {
                            tracing::warn!(peer = %peer, reason = ?why, refused = n, "Connection limit reached; connection closed.");
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // handed to a worker: taken off this runtime's I/O driver, put on the worker's
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accepted connection could not be handed to a worker.");
                        continue;
                    }
                };
                // the peer and TLS are the connection's: set on its copy of the stack, once
                let mut svc = service.clone();
                svc.for_connection(Connection { peer, secure: tls.is_some() });
                let acceptor = tls.clone();
                let builder = builder.clone();
                let worker = workers.pick();
                let watcher = graceful[worker].watcher();
                let limits = limits.clone();
                workers.spawn_on(worker, async move {
                    let _guard = guard;
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "Accepted connection could not be registered.");
                            return;
                        }
                    };
                    let ended = match acceptor {
                        None => {
                            // The protocol sniff has the header timeout too: a silent socket is closed.
                            if !crate::conn::sniff(&stream, sniff_limit).await {
                                limits.count_timeout();
                                return;
                            }
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), InPlace::new(svc));
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            // The handshake has the header timeout: a silent or slow client is closed.
                            let stream = match tokio::time::timeout(sniff_limit, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed.");
                                    return;
                                }
                                Err(_) => {
                                    limits.count_timeout();
                                    return;
                                }
                            };
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), InPlace::new(svc));
                            watcher.watch(conn.into_owned()).await
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "Connection ended with an error.");
                    }
                });
            }
            _ = &mut signal => break,
        }
    }
    tracing::info!("Shutting down: no new connections, finishing in-flight requests.");
    drop(listener);
    let finished = futures_util::future::join_all(graceful.into_iter().map(GracefulShutdown::shutdown));
    if tokio::time::timeout(config.proxy.shutdown_grace, finished).await.is_err() {
        tracing::warn!("Shutdown grace period over; closing remaining connections.");
    }
    // the workers stop; connections still open after the grace period are dropped with them
    let _ = tokio::task::spawn_blocking(move || drop(workers)).await;
    if let Some(w) = cert_watch {
        w.abort();
    }
    if let Some((_, t)) = redirect_task {
        t.abort();
    }
    if let Some(t) = admin_task {
        t.abort();
        let _ = t.await;
    }
    drop(service);
    drop(waf);
    drop(store);
    drop(stats);
    running.stop().await;
    let _ = writeln!(std::io::stdout(), "aiwaf stopped");
    Ok(())
}

/// hyper's view of a connection's tower service, called in place. hyper-util's
/// `TowerToHyperService` clones the whole service stack for every request (hyper's `call` takes
/// `&self`): for this stack, reference counts on state both workers share, bumped and dropped
/// per layer per request. A connection's requests are called one at a time from its own task,
/// so its instance is borrowed for the call; the services are always ready, and one that is not
/// is driven to readiness on a clone, as hyper-util does.
struct InPlace<S>(std::cell::RefCell<S>);

impl<S> InPlace<S> {
    fn new(svc: S) -> InPlace<S> {
        InPlace(std::cell::RefCell::new(svc))
    }
}

impl<S, R> hyper::service::Service<R> for InPlace<S>
where
    S: tower::Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, tower::util::Oneshot<S, R>>;

    fn call(&self, req: R) -> Self::Future {
        use futures_util::future::Either;
        let mut svc = self.0.borrow_mut();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match svc.poll_ready(&mut cx) {
            std::task::Poll::Ready(Ok(())) => Either::Left(svc.call(req)),
            // not ready (or failing): a clone is driven to readiness, or to its error
            _ => Either::Right(svc.clone().oneshot(req)),
        }
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::*;

    /// `tls.redirect_listen`: every plain-HTTP request is sent to the same host and target on
    /// https, at the TLS listener's port (none for 443); a hostile Host falls back to localhost.
    #[tokio::test]
    async fn redirects_to_https_keeping_host_and_target() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(redirect_to_https(l, local_port_suffix(8443)));
        for (host, target, want) in [
            ("app.test:8080", "/a/b?x=1", "https://app.test:8443/a/b?x=1"),
            ("app.test", "/", "https://app.test:8443/"),
            ("evil.test/\"><script>", "/", "https://localhost:8443/"),
        ] {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let req = http::Request::get(target)
                .header("host", http::HeaderValue::from_bytes(host.as_bytes()).unwrap())
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), http::StatusCode::PERMANENT_REDIRECT);
            assert_eq!(resp.headers()[http::header::LOCATION], want, "{host}");
        }
        assert_eq!(local_port_suffix(443), "");
        task.abort();
    }
}
