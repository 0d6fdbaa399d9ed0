//! The JSON audit log: one line per block or would-block, size-rotated (`audit.log`,
//! `audit.log.1`, … `audit.log.5`). Written by the batch writer, off the request path.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use aiwaf_engine::Event;

/// A size-rotated JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    out: Option<BufWriter<File>>,
    size: u64,
}

impl AuditLog {
    /// Opens (appending) `path`; rotates past `max_bytes`, keeping `keep` old files.
    pub fn open(path: PathBuf, max_bytes: u64, keep: u32) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = f.metadata()?.len();
        Ok(AuditLog { path, max_bytes: max_bytes.max(1024), keep: keep.max(1), out: Some(BufWriter::new(f)), size })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut o) = self.out.take() {
            o.flush()?;
        }
        for n in (1..self.keep).rev() {
            let from = PathBuf::from(format!("{}.{n}", self.path.display()));
            if from.exists() {
                std::fs::rename(&from, format!("{}.{}", self.path.display(), n + 1))?;
            }
        }
        std::fs::rename(&self.path, format!("{}.1", self.path.display()))?;
        let f = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.out = Some(BufWriter::new(f));
        self.size = 0;
        Ok(())
    }

    /// Appends one event.
    pub fn write(&mut self, e: &Event) -> std::io::Result<()> {
        let line = serde_json::json!({
            "ts": e.ts,
            "request_id": e.request_id,
            "client": e.ip.to_string(),
            "method": e.method,
            "path": e.path,
            "detector": e.detector.as_str(),
            "action": e.action,
            "mode": e.mode,
            "reason": e.reason,
            "score": e.evidence.get("score").or_else(|| e.evidence.pointer("/finding/score")),
            "evidence": e.evidence,
        })
        .to_string();
        if self.size + line.len() as u64 + 1 > self.max_bytes && self.size > 0 {
            self.rotate()?;
        }
        if let Some(o) = &mut self.out {
            o.write_all(line.as_bytes())?;
            o.write_all(b"\n")?;
        }
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(path.clone(), 2048, 2).unwrap();
        let e = Event {
            request_id: "r".into(),
            ts: 1,
            ip: "10.0.0.1".parse().unwrap(),
            method: "GET".into(),
            path: "/.env".into(),
            detector: aiwaf_engine::Detector::Keyword,
            action: "ban",
            reason: "Keyword block: .env".into(),
            evidence: serde_json::json!({"keyword": ".env", "padding": "x".repeat(300)}),
            mode: "block",
        };
        for _ in 0..20 {
            log.write(&e).unwrap();
        }
        log.flush().unwrap();
        assert!(path.exists());
        assert!(dir.path().join("audit.log.1").exists());
        assert!(dir.path().join("audit.log.2").exists());
        assert!(!dir.path().join("audit.log.3").exists());
        let first = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        assert_eq!(v["detector"], "keyword");
        assert_eq!(v["client"], "10.0.0.1");
        assert!(std::fs::metadata(&path).unwrap().len() <= 2048);
    }
}
