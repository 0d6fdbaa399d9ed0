//! `aiwaf check-deps` end to end, without the internet: a local index on 127.0.0.1 serving
//! recorded JSON (tests/index), a fake site-packages with METADATA files, and a stand-in
//! interpreter that answers the environment query with the real `python3` and "installs" by
//! rewriting METADATA.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves tests/index on 127.0.0.1:0 (HTTP/1.1, one request per connection); returns its URL.
async fn index_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/index");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
                let file = match parts.as_slice() {
                    ["pypi", name, "json"] => Some(format!("{name}.json")),
                    ["pypi", name, version, "json"] => Some(format!("{name}-{version}.json")),
                    _ => None,
                };
                let body = file.and_then(|f| std::fs::read(dir.join(f.to_lowercase())).ok());
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"{\"message\": \"Not Found\"}".to_vec()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

fn metadata(site: &Path, name: &str, version: &str, requires: &[&str]) {
    let d = site.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
    std::fs::create_dir_all(&d).unwrap();
    let mut m = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for r in requires {
        m.push_str(&format!("Requires-Dist: {r}\n"));
    }
    m.push_str("\nLong description.\nRequires-Dist: not-a-header\n");
    std::fs::write(d.join("METADATA"), m).unwrap();
}

struct World {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    site: PathBuf,
    python: PathBuf,
    pip_log: PathBuf,
}

/// A project, its installed packages and its stand-in interpreter.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    let site = tmp.path().join("site-packages");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        project.join("requirements.txt"),
        "# the web app\n\
         Django>=4.2 ; python_version >= \"3.8\"  # web framework\n\
         requests==2.31.0\n\
         -r requirements-data.txt\n\
         -e ./localpkg\n\
         git+https://github.com/example/tool.git#egg=tool\n\
         internal-lib==1.0\n\
         missingpkg>=1\n",
    )
    .unwrap();
    std::fs::write(
        project.join("requirements-data.txt"),
        "numpy>=1.21\n\
         pandas==2.0.3\n\
         scikit-learn>=1.0,<2.0\n\
         flask[async]==3.0.0 \\\n    --hash=sha256:0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"site\"\nversion = \"1\"\ndependencies = [\"requests>=2.28\", \"numpy>=1.21\"]\n\
         [project.optional-dependencies]\ndev = [\"pytest>=7\"]\n",
    )
    .unwrap();
    metadata(&site, "numpy", "1.26.4", &[]);
    metadata(&site, "pandas", "2.0.3", &["numpy<2,>=1.22.4", "python-dateutil>=2.8.2"]);
    metadata(&site, "python-dateutil", "2.9.0", &[]);
    metadata(&site, "scikit-learn", "1.3.0", &["numpy>=1.17.3", "joblib>=1.1.1"]);
    metadata(&site, "joblib", "1.3.2", &[]);
    metadata(&site, "requests", "2.31.0", &[]);
    metadata(&site, "Django", "4.2.7", &["asgiref<4,>=3.6.0"]);
    metadata(&site, "asgiref", "3.7.2", &[]);
    metadata(&site, "Flask", "3.0.0", &["asgiref>=3.2; extra == \"async\""]);
    metadata(&site, "internal-lib", "1.0", &[]);
    // The stand-in interpreter: the environment query goes to the real python3; `-m pip install
    // NAME==VERSION…` is logged and rewrites the fake METADATA.
    let python = tmp.path().join("python");
    let pip_log = tmp.path().join("pip.log");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = \"-c\" ]; then exec python3 \"$@\"; fi\n\
             echo \"$@\" >> '{log}'\n\
             shift 3\n\
             for spec in \"$@\"; do\n\
               name=${{spec%%==*}}; ver=${{spec##*==}}\n\
               for m in '{site}'/*.dist-info/METADATA; do\n\
                 if grep -qi \"^Name: $name$\" \"$m\" || grep -qi \"^Name: $(echo $name | tr - _)$\" \"$m\"; then\n\
                   sed -i \"s/^Version: .*/Version: $ver/\" \"$m\"\n\
                 fi\n\
               done\n\
             done\n",
            log = pip_log.display(),
            site = site.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&python).status().unwrap();
    World { _tmp: tmp, project, site, python, pip_log }
}

fn run(w: &World, index: &str, act: aiwaf_deps::Actions, security: bool) -> (u8, String, String) {
    let opts = aiwaf_deps::Options {
        project: w.project.clone(),
        python: w.python.display().to_string(),
        site_packages: vec![w.site.clone()],
        index_url: index.to_string(),
        check_security: security,
        pre: false,
        compat_files: vec![],
        timeout: std::time::Duration::from_secs(5),
        concurrency: 4,
        progress: false,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = aiwaf_deps::run(&opts, &act, &mut out, &mut err);
    let out = String::from_utf8(out).unwrap();
    // machine-specific parts of the output, for golden comparisons
    let out = out
        .replace(&w.project.display().to_string(), "{project}")
        .replace(&w.python.display().to_string(), "{python}")
        .replace(index, "{index}");
    (code, out, String::from_utf8(err).unwrap())
}

/// The index, on a runtime of its own (the command under test runs its own).
fn serve_index() -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = rt.block_on(index_server());
    (rt, url)
}

fn python_version(out: &str) -> String {
    out.split("Python: {python} (").nth(1).and_then(|r| r.split(')').next()).unwrap_or("").to_string()
}

#[test]
fn table_report_golden() {
    let (_rt, index) = serve_index();
    let w = world();
    let (code, out, err) = run(&w, &index, aiwaf_deps::Actions::default(), true);
    let out = out.replace(&format!("({})", python_version(&out)), "(3.x)");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/table.txt");
    if std::env::var_os("AIWAF_BLESS").is_some() {
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(out, std::fs::read_to_string(&golden).unwrap(), "stderr: {err}");
    assert_eq!(code, 1, "a vulnerable installed version is a finding");
}

#[test]
fn json_report_golden_and_the_seeds_broken_cases() {
    let (_rt, index) = serve_index();
    let w = world();
    let act = aiwaf_deps::Actions { json: true, ..Default::default() };
    let (code, out, err) = run(&w, &index, act, true);
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    v["python_version"] = "3.x".into();
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    if std::env::var_os("AIWAF_BLESS").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    }
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
    assert_eq!(v, want);
    assert_eq!(code, 1);
    let names: Vec<&str> = v["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    // the seed's regex made `"scikit-learn>=1.0,<2.0"` a package named `<2.0`
    assert!(names.contains(&"scikit-learn") && !names.iter().any(|n| n.contains('<')), "{names:?}");
    // the seed reported "not available" exactly when its scan found something
    let requests = v["packages"].as_array().unwrap().iter().find(|p| p["name"] == "requests").unwrap();
    assert_eq!(requests["vulnerabilities"][0]["id"], "GHSA-9wx4-h78v-vm56");
    assert_eq!(requests["vulnerabilities"][0]["fixed_in"][0], "2.32.0");
    // without the security scan: no finding, exit 0
    let (code, _, _) = run(&w, &index, act, false);
    assert_eq!(code, 0);
}

#[test]
fn unreachable_index_is_a_clear_error_with_its_own_exit_code() {
    let w = world();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, out, err) = run(&w, &format!("http://{closed}"), aiwaf_deps::Actions::default(), false);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.starts_with("error: cannot reach the package index at http://127.0.0.1:"), "{err}");
    assert!(!err.contains("panicked") && out.is_empty(), "{err}");
    // a bad interpreter is an error too (2), not a traceback
    let mut w2 = world();
    w2.python = PathBuf::from("/nonexistent/python3");
    let (code, _, err) = run(&w2, "http://127.0.0.1:9", aiwaf_deps::Actions::default(), false);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot run the interpreter"), "{err}");
}

#[test]
fn upgrade_runs_the_interpreters_pip_and_rewrites_only_specifiers() {
    let (_rt, index) = serve_index();
    let w = world();
    let before = std::fs::read_to_string(w.project.join("requirements.txt")).unwrap();
    // a dry run prints the exact command and changes nothing
    let dry = aiwaf_deps::Actions { dry_run: true, update_requirements: true, ..Default::default() };
    let (_, _, err) = run(&w, &index, dry, false);
    assert!(err.contains(&format!("dry run: would run {} -m pip install django==5.1", w.python.display())), "{err}");
    assert!(!w.pip_log.exists());
    assert_eq!(std::fs::read_to_string(w.project.join("requirements.txt")).unwrap(), before);
    let act = aiwaf_deps::Actions { upgrade: true, update_requirements: true, ..Default::default() };
    let (code, out, err) = run(&w, &index, act, false);
    assert_eq!(code, 0, "{out}{err}");
    let pip = std::fs::read_to_string(&w.pip_log).unwrap();
    assert_eq!(
        pip.trim(),
        "-m pip install django==5.1 flask==3.0.3 pandas==2.2.3 requests==2.32.3 scikit-learn==1.5.1"
    );
    let req = std::fs::read_to_string(w.project.join("requirements.txt")).unwrap();
    assert_eq!(std::fs::read_to_string(w.project.join("requirements.txt.backup")).unwrap(), before);
    assert_eq!(
        req,
        "# the web app\n\
         Django>=5.1 ; python_version >= \"3.8\"  # web framework\n\
         requests==2.32.3\n\
         -r requirements-data.txt\n\
         -e ./localpkg\n\
         git+https://github.com/example/tool.git#egg=tool\n\
         internal-lib==1.0\n\
         missingpkg>=1\n"
    );
    let data = std::fs::read_to_string(w.project.join("requirements-data.txt")).unwrap();
    assert_eq!(
        data,
        "numpy>=1.21\n\
         pandas==2.2.3\n\
         scikit-learn>=1.5.1,<2.0\n\
         flask[async]==3.0.3 \\\n    --hash=sha256:0123456789abcdef\n"
    );
    // checked again after the upgrade: those are up to date now
    let after = out.split("aiwaf check-deps:").nth(2).expect("a second report");
    assert!(after.contains("scikit-learn  1.5.1"), "{after}");
    assert!(err.contains("rewrote"), "{err}");
}

#[test]
fn incompatibilities_from_metadata_and_rules() {
    let (_rt, index) = serve_index();
    let w = world();
    std::fs::remove_dir_all(w.site.join("numpy-1.26.4.dist-info")).unwrap();
    metadata(&w.site, "numpy", "2.0.0", &[]);
    metadata(&w.site, "celery", "5.3.0", &["kombu<6.0,>=5.3.0", "pytz; python_version < \"3.0\""]);
    let act = aiwaf_deps::Actions { json: true, ..Default::default() };
    let (code, out, _) = run(&w, &index, act, false);
    assert_eq!(code, 1, "incompatible is a finding");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let conflicts: Vec<(String, String, String)> = v["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["package"].as_str().unwrap().into(),
                c["required_by"].as_str().unwrap().into(),
                c["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        conflicts,
        [
            ("kombu".to_string(), "celery 5.3.0".to_string(), "error".to_string()),
            ("numpy".into(), "pandas 2.0.3".into(), "error".into()),
            ("pandas".into(), "numpy 2.0.0 (compatibility rule)".into(), "error".into()),
        ],
        "{out}"
    );
    assert_eq!(v["summary"]["incompatible"], 3);
}
