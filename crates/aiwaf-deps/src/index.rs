//! The package index's JSON API: `BASE/pypi/NAME/json` (releases, latest version, yanked
//! files) and `BASE/pypi/NAME/VERSION/json` (that release's `vulnerabilities`, OSV entries).
//! HTTPS with the Mozilla roots (webpki-roots), plain HTTP for a local mirror; every request
//! has a timeout; an index that cannot be reached is an error of its own kind.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pep440_rs::Version;
use serde::Serialize;

/// Why the index gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// No connection, a timeout, or a server error: the index is not usable now.
    #[error("cannot reach the package index at {url}: {why}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What happened.
        why: String,
    },
    /// An answer that is not the JSON API's.
    #[error("{url}: unexpected answer: {why}")]
    Invalid {
        /// The URL.
        url: String,
        /// What was wrong.
        why: String,
    },
}

/// What the index knows of a project.
#[derive(Debug, Clone)]
pub struct Project {
    /// `info.version`: the latest release.
    pub latest: Option<Version>,
    /// Every release that has files: version → yanked (all its files are).
    pub releases: BTreeMap<Version, bool>,
}

/// One known vulnerability of a release.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Vulnerability {
    /// OSV id (`GHSA-…`, `PYSEC-…`).
    pub id: String,
    /// Other ids (CVE).
    pub aliases: Vec<String>,
    /// One-line summary.
    pub summary: String,
    /// Versions that fix it.
    pub fixed_in: Vec<String>,
}

/// What the index says of one release.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Known vulnerabilities.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Its requirements, as written.
    pub requires_dist: Vec<String>,
}

/// The index client.
#[derive(Clone)]
pub struct Index {
    base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl Index {
    /// A client for the JSON API under `base` (e.g. `https://pypi.org`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Index> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let base = base.trim_end_matches('/').to_string();
        http::Uri::from_str(&format!("{base}/pypi/x/json"))
            .map_err(|e| anyhow::anyhow!("--index-url `{base}` is not a URL: {e}"))?;
        Ok(Index { base, client, timeout })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<Option<serde_json::Value>, IndexError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |why: String| IndexError::Unreachable { url: url.clone(), why };
        let uri = http::Uri::from_str(&url).map_err(|e| unreachable(e.to_string()))?;
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, concat!("aiwaf-check-deps/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| unreachable(e.to_string()))?;
        let fetch = async {
            let resp = self.client.request(req).await.map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status();
            if status == http::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status.is_server_error() {
                return Err(unreachable(format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(IndexError::Invalid { url: url.clone(), why: format!("HTTP {status}") });
            }
            let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
            serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| IndexError::Invalid { url: url.clone(), why: format!("not JSON: {e}") })
        };
        match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => Err(unreachable(format!("no answer within {} s", self.timeout.as_secs_f64()))),
        }
    }

    /// A project's releases (`None`: not on the index).
    pub async fn project(&self, name: &str) -> Result<Option<Project>, IndexError> {
        let Some(v) = self.get(&format!("/pypi/{name}/json")).await? else { return Ok(None) };
        let latest = v["info"]["version"].as_str().and_then(|s| Version::from_str(s).ok());
        let mut releases = BTreeMap::new();
        for (ver, files) in v["releases"].as_object().into_iter().flatten() {
            let Ok(ver) = Version::from_str(ver) else { continue };
            let files = files.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if files.is_empty() {
                continue;
            }
            let yanked = files.iter().all(|f| f["yanked"].as_bool().unwrap_or(false));
            releases.insert(ver, yanked);
        }
        Ok(Some(Project { latest, releases }))
    }

    /// The known vulnerabilities of one release (empty when the index lists none).
    pub async fn vulnerabilities(&self, name: &str, version: &Version) -> Result<Vec<Vulnerability>, IndexError> {
        Ok(self.release(name, version).await?.vulnerabilities)
    }

    /// One release: its known vulnerabilities and its `Requires-Dist` (`info.requires_dist`).
    pub async fn release(&self, name: &str, version: &Version) -> Result<Release, IndexError> {
        let Some(v) = self.get(&format!("/pypi/{name}/{version}/json")).await? else { return Ok(Release::default()) };
        let strings = |x: &serde_json::Value| -> Vec<String> {
            x.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
        };
        let requires_dist = strings(&v["info"]["requires_dist"]);
        let vulnerabilities = v["vulnerabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["withdrawn"].is_null())
            .map(|x| Vulnerability {
                id: x["id"].as_str().unwrap_or("?").to_string(),
                aliases: strings(&x["aliases"]),
                summary: x["summary"]
                    .as_str()
                    .or_else(|| x["details"].as_str())
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
                fixed_in: strings(&x["fixed_in"]),
            })
            .collect();
        Ok(Release { vulnerabilities, requires_dist })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
