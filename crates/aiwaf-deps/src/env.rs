//! The target environment: which interpreter, where its packages are, what is installed there
//! (`*.dist-info/METADATA`, read directly) and the values its environment markers see.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, PackageName, Requirement};

/// Asks the interpreter for its package directories and marker values, as one JSON object.
const QUERY: &str = r#"
import json, os, platform, sys, sysconfig
def ver(v):
    s = "%d.%d.%d" % (v.major, v.minor, v.micro)
    if v.releaselevel != "final":
        s += v.releaselevel[0] + str(v.serial)
    return s
paths = [sysconfig.get_paths().get(k) for k in ("purelib", "platlib")] + [p for p in sys.path if p]
print(json.dumps({
    "executable": sys.executable,
    "paths": [p for p in paths if p],
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": ver(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"#;

/// One installed distribution.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The name as its metadata spells it.
    pub display_name: String,
    /// Its version.
    pub version: Version,
    /// Its `Requires-Dist` entries that parse.
    pub requires: Vec<Requirement>,
}

/// The interpreter's view.
#[derive(Debug)]
pub struct Environment {
    /// The interpreter as given (what pip is run with).
    pub python: String,
    /// Its `sys.executable`.
    pub executable: String,
    /// Marker values.
    pub markers: MarkerEnvironment,
    /// Installed distributions by normalised name (first on the path wins, as for Python).
    pub installed: BTreeMap<PackageName, Installed>,
}

/// Runs `python` to learn its paths and markers; `site_packages` (when given) replaces the
/// paths it reports.
pub fn probe(python: &str, site_packages: &[PathBuf]) -> anyhow::Result<Environment> {
    let out = std::process::Command::new(python)
        .args(["-c", QUERY])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run the interpreter `{python}`: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "the interpreter `{python}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("the interpreter `{python}` did not answer with JSON: {e}"))?;
    let m = &v["markers"];
    let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
    let values: Vec<String> = [
        "implementation_name",
        "implementation_version",
        "os_name",
        "platform_machine",
        "platform_python_implementation",
        "platform_release",
        "platform_system",
        "platform_version",
        "python_full_version",
        "python_version",
        "sys_platform",
    ]
    .iter()
    .map(|k| s(k))
    .collect();
    let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: &values[0],
        implementation_version: &values[1],
        os_name: &values[2],
        platform_machine: &values[3],
        platform_python_implementation: &values[4],
        platform_release: &values[5],
        platform_system: &values[6],
        platform_version: &values[7],
        python_full_version: &values[8],
        python_version: &values[9],
        sys_platform: &values[10],
    })
    .map_err(|e| anyhow::anyhow!("the interpreter's version is not PEP 440: {e}"))?;
    let paths: Vec<PathBuf> = if site_packages.is_empty() {
        v["paths"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(PathBuf::from)).collect()
    } else {
        site_packages.to_vec()
    };
    let executable = v["executable"].as_str().unwrap_or(python).to_string();
    Ok(Environment { python: python.to_string(), executable, markers, installed: scan(&paths) })
}

/// Distributions in these directories (`*.dist-info/METADATA`, `*.egg-info/PKG-INFO`).
pub fn scan(paths: &[PathBuf]) -> BTreeMap<PackageName, Installed> {
    let mut found = BTreeMap::new();
    for dir in paths {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let meta = if name.ends_with(".dist-info") {
                e.join("METADATA")
            } else if name.ends_with(".egg-info") {
                if e.is_dir() { e.join("PKG-INFO") } else { e.clone() }
            } else {
                continue;
            };
            if let Some((n, inst)) = read_metadata(&meta) {
                found.entry(n).or_insert(inst);
            }
        }
    }
    found
}

/// Name, version and `Requires-Dist` of one metadata file (RFC 822 headers up to the body).
fn read_metadata(path: &Path) -> Option<(PackageName, Installed)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (mut name, mut version, mut requires) = (None, None, Vec::new());
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "Name" => name = Some(v.to_string()),
            "Version" => version = Version::from_str(v).ok(),
            "Requires-Dist" => {
                if let Ok(r) = Requirement::from_str(v) {
                    requires.push(r);
                }
            }
            _ => {}
        }
    }
    let display_name = name?;
    let n = PackageName::from_str(&display_name).ok()?;
    Some((n, Installed { display_name, version: version?, requires }))
}
