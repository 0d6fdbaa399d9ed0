//! TLS termination with rustls (the `ring` provider: no OpenSSL, no crypto of our own).
//!
//! Certificates come in PEM pairs (chain, key). The one a client gets is chosen by SNI: the
//! first pair whose end-entity certificate is valid for the name the client asked for (checked
//! with webpki, so wildcards follow the usual rules), else the first pair. TLS 1.2 and 1.3
//! only; ALPN offers `h2` and `http/1.1`. The files are watched: when one changes, all pairs
//! are reloaded and swapped in for new handshakes; connections already open keep theirs; a pair
//! that does not load (half-written file, key that does not match) is reported and the ones in
//! force stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// One certificate chain and its key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    leaf: CertificateDer<'static>,
}

/// The certificates in force.
pub struct Certs {
    list: Vec<Loaded>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certs({})", self.list.len())
    }
}

/// Reads every pair; the error names the file and what is wrong with it.
pub fn load(pairs: &[CertPair]) -> Result<Certs> {
    if pairs.is_empty() {
        bail!("no certificate: pass --tls-cert FILE --tls-key FILE (or [[tls.certificates]])");
    }
    let provider = rustls::crypto::ring::default_provider();
    let mut list = Vec::with_capacity(pairs.len());
    for p in pairs {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p.cert)
            .with_context(|| format!("cannot read the certificate {}", p.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: not a PEM certificate chain", p.cert.display()))?;
        let Some(leaf) = chain.first().cloned() else {
            bail!("{}: no certificate in the file", p.cert.display());
        };
        let key = PrivateKeyDer::from_pem_file(&p.key)
            .with_context(|| format!("{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1)", p.key.display()))?;
        let ck = CertifiedKey::from_der(chain, key, &provider)
            .with_context(|| format!("{} does not go with {}", p.key.display(), p.cert.display()))?;
        webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| anyhow::anyhow!("{}: the certificate does not parse: {e}", p.cert.display()))?;
        list.push(Loaded { key: Arc::new(ck), leaf });
    }
    Ok(Certs { list })
}

/// Picks the certificate by SNI; swapped on reload.
#[derive(Debug)]
pub struct Resolver {
    certs: ArcSwap<Certs>,
}

impl Resolver {
    /// A resolver over loaded certificates.
    pub fn new(certs: Certs) -> Arc<Resolver> {
        Arc::new(Resolver { certs: ArcSwap::from_pointee(certs) })
    }

    /// New handshakes use `certs` from now on.
    pub fn install(&self, certs: Certs) {
        self.certs.store(Arc::new(certs));
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = sni.and_then(|n| ServerName::try_from(n).ok()) {
            for c in &certs.list {
                let ok = webpki::EndEntityCert::try_from(&c.leaf)
                    .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok());
                if ok {
                    return Some(c.key.clone());
                }
            }
        }
        certs.list.first().map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The server configuration: TLS 1.3 and 1.2, ALPN h2 then http/1.1, certificates by SNI.
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The client configuration for an `https://` upstream: TLS 1.3 and 1.2, the Mozilla roots
/// (webpki-roots) or only the certificates of `ca` (`server.upstream_ca`, PEM: a private CA).
/// (ALPN is set by the connector: h2 only with `server.upstream_protocol = "h2"`.)
pub fn upstream_client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("server.upstream_ca: cannot read {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("server.upstream_ca: {} is not PEM", path.display()))?;
                roots.add(cert).with_context(|| {
                    format!("server.upstream_ca: a certificate in {} is not usable", path.display())
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!("server.upstream_ca: no certificate in {}", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(pairs: &[CertPair]) -> Stamps {
    let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    pairs.iter().flat_map(|p| [stamp(&p.cert), stamp(&p.key)]).collect()
}

/// Reloads the certificates when a file changes (checked every `every`).
pub fn watch(resolver: Arc<Resolver>, pairs: Vec<CertPair>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = stamps(&pairs);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamps(&pairs);
            if now == seen {
                continue;
            }
            match load(&pairs) {
                Ok(c) => {
                    resolver.install(c);
                    seen = now;
                    tracing::info!(certificates = pairs.len(), "TLS certificates reloaded.");
                }
                // a half-written file is retried on the next tick; the certificates in force stay
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "TLS certificates not reloaded; keeping those in force.")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str, sans: &[&str]) -> CertPair {
        let c = rcgen::generate_simple_self_signed(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        CertPair { cert, key }
    }

    #[test]
    fn sni_picks_the_matching_certificate_else_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", &["a.test"]);
        let b = pair(dir.path(), "b", &["*.b.test"]);
        let certs = load(&[a.clone(), b.clone()]).unwrap();
        let leaf_b = certs.list[1].leaf.clone();
        let leaf_a = certs.list[0].leaf.clone();
        let r = Resolver::new(certs);
        let is = |sni: Option<&str>, leaf: &CertificateDer<'_>| r.pick(sni).unwrap().cert[0] == *leaf;
        assert!(is(Some("a.test"), &leaf_a));
        assert!(is(Some("www.b.test"), &leaf_b), "wildcard");
        assert!(is(Some("other.test"), &leaf_a), "no match: the first");
        assert!(is(None, &leaf_a), "no SNI: the first");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", &["a.test"]);
        let b = pair(dir.path(), "b", &["b.test"]);
        let mismatched = CertPair { cert: a.cert.clone(), key: b.key.clone() };
        let e = format!("{:#}", load(&[mismatched]).unwrap_err());
        assert!(e.contains("does not go with"), "{e}");
        std::fs::write(dir.path().join("junk.crt"), "not pem").unwrap();
        let e =
            format!("{:#}", load(&[CertPair { cert: dir.path().join("junk.crt"), key: a.key.clone() }]).unwrap_err());
        assert!(e.contains("junk.crt"), "{e}");
        let e = format!("{:#}", load(&[CertPair { cert: dir.path().join("missing.crt"), key: a.key }]).unwrap_err());
        assert!(e.contains("missing.crt"), "{e}");
        assert!(load(&[]).is_err());
    }
}
