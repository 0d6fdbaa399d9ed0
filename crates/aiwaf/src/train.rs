//! `aiwaf train`, `aiwaf model regenerate` and scheduled retraining: run the trainer and apply
//! its outcome (model file written atomically, bans once per finding, keywords added).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aiwaf_engine::ip::IpSet;
use aiwaf_engine::path::tokens;
use aiwaf_engine::{Engine, Model};
use aiwaf_store::Store;
use aiwaf_tower::now_ms;
use aiwaf_train::parse::LogFormat;
use aiwaf_train::{Input, Options, StoredRow};
use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::config::Config;

/// Where training reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--log` files, or the configured access log and its rotations, or (when there are
    /// none) the stored request log.
    Auto(Vec<PathBuf>),
    /// Only the stored request log (`model regenerate`).
    RequestLog,
}

/// A training request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Input.
    pub source: Source,
    /// Log format.
    pub format: LogFormat,
    /// Only lines newer than this.
    pub since: Option<Duration>,
    /// Report only; write nothing.
    pub dry_run: bool,
    /// Show a progress bar (on a TTY).
    pub progress: bool,
    /// Report every finding for this client (`--explain IP`; implies a dry run).
    pub explain: Option<std::net::IpAddr>,
    /// Where the facts are in JSON log lines (`--json-fields`).
    pub json_fields: aiwaf_train::json::JsonFields,
}

impl Request {
    /// An unattended run on the configured sources (the scheduler, the dashboard's "retrain now").
    pub fn unattended() -> Request {
        Request {
            source: Source::Auto(Vec::new()),
            format: LogFormat::Auto,
            since: None,
            dry_run: false,
            progress: false,
            explain: None,
            json_fields: Default::default(),
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move the model into {}", path.display()))?;
    Ok(())
}

/// Takes the data dir's training lock, or says another run holds it.
pub fn lock(data_dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("train.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("another training run is in progress (it holds {}); try again when it ends", path.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Loads and checks a model file.
pub fn load_model(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Model::from_json(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs training and applies the outcome (unless `dry_run`). Returns the report as JSON.
pub async fn run(config: &Config, store: &Store, req: &Request) -> Result<serde_json::Value> {
    // One run at a time per data dir (CLI, scheduler and dashboard may all start one): the
    // lock is held until this run has written its model and bans.
    let _lock = if req.dry_run { None } else { Some(lock(&config.data_dir)?) };
    let started = Instant::now();
    let now = now_ms();
    let engine = Engine::new(config.engine.clone(), IpSet::new(config.exempt_ips.iter().copied()))
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let since_ms = req.since.map(|d| now.saturating_sub(d.as_millis() as u64));

    // The seed's housekeeping first: exempt addresses are unbanned, exempt paths teach nothing.
    let mut unbanned = Vec::new();
    let mut removed_keywords = Vec::new();
    if !req.dry_run {
        let mut exempt = IpSet::new(config.exempt_ips.iter().copied());
        for e in store.exemptions().await? {
            if let Ok(n) = aiwaf_engine::ip::parse_net(&e.net) {
                exempt.insert(n);
            }
        }
        unbanned = store.unban_exempt(&exempt).await?;
        let exempt_words: HashSet<String> = config
            .engine
            .exempt_paths
            .iter()
            .flat_map(|p| tokens(&p.to_lowercase()).map(String::from).collect::<Vec<_>>())
            .collect();
        for w in exempt_words {
            if store.remove_keyword(&w).await? {
                removed_keywords.push(w);
            }
        }
    }
    let lists = store.load_lists(&config.engine, now).await?;

    let files = match &req.source {
        Source::Auto(logs) if !logs.is_empty() => {
            for l in logs {
                if !l.is_file() {
                    bail!("--log {}: no such file", l.display());
                }
            }
            logs.clone()
        }
        Source::Auto(_) => config.access_log.as_deref().map(aiwaf_train::discover).unwrap_or_default(),
        Source::RequestLog => Vec::new(),
    };
    let input = if files.is_empty() {
        let from = since_ms.unwrap_or(now.saturating_sub(30 * 86_400_000));
        let rows: Vec<StoredRow> = store
            .request_log_rows(from)
            .await?
            .into_iter()
            .filter_map(|(ip, ts, path, status, secs)| {
                Some(StoredRow {
                    ip: IpAddr::from_str(&ip).ok()?,
                    ts: ts.max(0) as u64,
                    path,
                    status: u16::try_from(status).ok()?,
                    resp_time_s: secs,
                })
            })
            .collect();
        if rows.is_empty() {
            bail!(
                "nothing to train on: pass --log FILE, set AIWAF_ACCESS_LOG (logging.access_log), \
                 or enable the request log with `aiwaf logging enable`"
            );
        }
        Input::Rows(rows)
    } else {
        Input::Files(files)
    };
    let total_bytes: u64 = match &input {
        Input::Files(f) => f.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum(),
        Input::Rows(_) => 0,
    };
    let opts = Options {
        format: req.format,
        since: since_ms,
        params: aiwaf_forest::Params { contamination: config.contamination, ..Default::default() },
        top_n: config.engine.dynamic_top_n,
        sample: aiwaf_train::DEFAULT_SAMPLE,
        known_paths: store.known_paths(config.engine.known_path_capacity).await?.into_iter().collect(),
        now,
        request_phase: true,
        explain: req.explain,
        json_fields: req.json_fields.clone(),
        max_kept_rows: aiwaf_train::MAX_KEPT_ROWS,
    };

    let bar = (req.progress && total_bytes > 0 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes * 2);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} training [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
            )
            .expect("valid template"),
        );
        b
    });
    let start_bytes = aiwaf_train::BYTES_READ.load(Ordering::Relaxed);
    let ticker = bar.clone().map(|b| {
        tokio::spawn(async move {
            loop {
                b.set_position(aiwaf_train::BYTES_READ.load(Ordering::Relaxed) - start_bytes);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let outcome = tokio::task::spawn_blocking(move || aiwaf_train::train(&engine, &lists, &input, &opts))
        .await
        .context("training task failed")?
        .context("reading the logs failed")?;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let model_path = config.model_path();
    let mut applied = Vec::new();
    if !req.dry_run {
        if let Some(m) = &outcome.model {
            write_atomic(&model_path, &m.to_json())?;
        }
        for b in &outcome.report.bans {
            if store.apply_training_ban(b.ip, b.detector, &b.reason, &b.evidence, b.at, &config.engine, now).await? {
                applied.push(b.ip.to_string());
            }
        }
        store.add_keywords(&outcome.report.keywords, now).await?;
    }
    let mut report = serde_json::to_value(&outcome.report)?;
    let o = report.as_object_mut().expect("the report is an object");
    o.insert("dry_run".into(), json!(req.dry_run));
    o.insert("model_path".into(), json!(outcome.model.as_ref().map(|_| model_path.display().to_string())));
    o.insert("bans_applied".into(), json!(applied));
    o.insert("keywords_removed".into(), json!(removed_keywords));
    o.insert("unbanned_exempt".into(), json!(unbanned));
    o.insert("elapsed_ms".into(), json!(started.elapsed().as_millis() as u64));
    Ok(report)
}

/// The one-line (and a few more) summary for humans.
pub fn summary(r: &serde_json::Value) -> String {
    let g = |k: &str| r[k].as_u64().unwrap_or(0);
    let mut s = format!(
        "read {} lines ({} skipped as malformed, {} older than --since) from {} source(s); {} clients; ",
        g("lines_read"),
        g("lines_skipped"),
        g("lines_too_old"),
        r["sources"].as_array().map_or(0, |a| a.len()),
        g("clients"),
    );
    let bans: Vec<String> = r["bans_by_reason"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
        .unwrap_or_default();
    s += &format!("bans found: {}", if bans.is_empty() { "none".into() } else { bans.join(", ") });
    if !r["dry_run"].as_bool().unwrap_or(false) {
        s += &format!(" ({} applied)", r["bans_applied"].as_array().map_or(0, |a| a.len()));
    }
    let kws: Vec<String> = r["keywords"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| Some(format!("{}×{}", k[0].as_str()?, k[1].as_u64()?))).collect())
        .unwrap_or_default();
    s += &format!("; keywords: {}", if kws.is_empty() { "none".into() } else { kws.join(" ") });
    match (&r["model"], &r["model_skipped"]) {
        (m, _) if m.is_object() => {
            s += &format!(
                "; model: {} trees on {} rows, threshold {:.3}, {} anomalous rows",
                m["trees"],
                m["fitted_rows"],
                m["threshold"].as_f64().unwrap_or(0.0),
                m["anomalous_rows"]
            );
            if let Some(p) = r["model_path"].as_str() {
                s += &format!(" -> {p}");
            }
        }
        (_, why) => s += &format!("; no model: {}", why.as_str().unwrap_or("")),
    }
    s += &format!("; {} ms", g("elapsed_ms"));
    if r["dry_run"].as_bool().unwrap_or(false) {
        s += " (dry run: nothing written)";
    }
    if let Some(a) = r["not_banned"].as_array().filter(|a| !a.is_empty()) {
        for x in a {
            s += &format!("\n  not banned: {}", x.as_str().unwrap_or(""));
        }
    }
    if let Some(t) = r["timing"].as_str().filter(|t| !t.is_empty()) {
        s += &format!("\n  timing: {t}");
    }
    if let Some(a) = r["warnings"].as_array().filter(|a| !a.is_empty()) {
        for x in a {
            s += &format!("\n  warning: {}", x.as_str().unwrap_or(""));
        }
    }
    if let Some(samples) = r["skipped_samples"].as_array().filter(|a| !a.is_empty()) {
        for x in samples {
            s += &format!(
                "\n  skipped {}:{}: {}: {}",
                x["source"].as_str().unwrap_or(""),
                x["line"],
                x["error"].as_str().unwrap_or(""),
                x["text"].as_str().unwrap_or("")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    /// Issue 10: two runs at once (CLI, scheduler, dashboard) shared one temporary file.
    #[test]
    fn one_training_run_at_a_time_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = super::lock(dir.path()).unwrap();
        let err = format!("{:#}", super::lock(dir.path()).unwrap_err());
        assert!(err.contains("another training run is in progress"), "{err}");
        drop(held);
        assert!(super::lock(dir.path()).is_ok());
        // Temporary files never collide.
        let p = dir.path().join("model.json");
        super::write_atomic(&p, b"a").unwrap();
        super::write_atomic(&p, b"b").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"b");
    }
}
