//! What a project declares: `requirements*.txt` (with `-r`/`-c` includes), `pyproject.toml`
//! (PEP 621 dependencies and optional dependencies, Poetry's table) and a lock file. Every
//! requirement is parsed by a PEP 508 parser; what is not a checkable requirement (editable
//! installs, URLs, paths, lines that do not parse) is kept and reported as such, never guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use pep508_rs::{MarkerTree, PackageName, Requirement, VersionOrUrl};
use serde::Serialize;

/// Where a requirement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A dependency (requirements file, `project.dependencies`, Poetry's main table).
    Dependency,
    /// An optional dependency (`project.optional-dependencies`).
    Optional,
    /// A constraint file (`-c`): limits versions, installs nothing.
    Constraint,
}

/// One declared, checkable requirement.
#[derive(Debug, Clone)]
pub struct Declared {
    /// `file:line` (or `pyproject.toml:project.dependencies`).
    pub source: String,
    /// The requirement as written (options such as `--hash` removed).
    pub text: String,
    /// Normalised name.
    pub name: PackageName,
    /// Version specifiers (empty: any version).
    pub specifiers: VersionSpecifiers,
    /// Environment markers (evaluated against the target interpreter).
    pub marker: MarkerTree,
    /// Dependency, optional or constraint.
    pub kind: Kind,
    /// The requirements file and 0-based line, for rewriting (`None`: pyproject).
    pub file_line: Option<(PathBuf, usize)>,
}

/// A line that is not a checkable requirement.
#[derive(Debug, Clone, Serialize)]
pub struct NotCheckable {
    /// `file:line`.
    pub source: String,
    /// The line.
    pub line: String,
    /// Why.
    pub why: String,
}

/// Everything a project declares.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Checkable requirements.
    pub declared: Vec<Declared>,
    /// Lines that are not.
    pub not_checkable: Vec<NotCheckable>,
    /// Versions a lock file pins (normalised name → version).
    pub locked: BTreeMap<String, String>,
}

/// Reads the project at `dir`: every `requirements*.txt` there, `pyproject.toml`, and
/// `poetry.lock` / `uv.lock` / `pdm.lock`.
pub fn read_project(dir: &Path) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    let mut req_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read the project directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("requirements") && n.ends_with(".txt"))
        })
        .collect();
    req_files.sort();
    for f in &req_files {
        if !inputs.files.contains(f) {
            read_requirements(f, Kind::Dependency, &mut inputs, 0)?;
        }
    }
    let pyproject = dir.join("pyproject.toml");
    if pyproject.exists() {
        read_pyproject(&pyproject, &mut inputs)?;
    }
    for lock in ["poetry.lock", "uv.lock", "pdm.lock"] {
        let p = dir.join(lock);
        if p.exists() {
            read_lock(&p, &mut inputs)?;
        }
    }
    Ok(inputs)
}

/// Joins `\` continuations; yields (first line index, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (start, mut acc) = cur.take().unwrap_or((i, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            acc.push_str(head);
            acc.push(' ');
            cur = Some((start, acc));
        } else {
            acc.push_str(line);
            out.push((start, acc));
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

/// A comment starts at `#` at the line start or after whitespace (a URL fragment keeps it).
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Per-requirement options (`--hash=…`, `--config-settings …`) removed.
fn strip_options(line: &str) -> &str {
    match line.find(" --").or_else(|| line.find("\t--")) {
        Some(i) => &line[..i],
        None => line,
    }
}

fn read_requirements(path: &Path, kind: Kind, inputs: &mut Inputs, depth: usize) -> anyhow::Result<()> {
    if depth > 16 {
        anyhow::bail!("{}: includes nested more than 16 deep (a cycle?)", path.display());
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if inputs.files.iter().any(|f| f.canonicalize().ok().as_ref() == Some(&canonical)) {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    inputs.files.push(path.to_path_buf());
    let base = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("requirements.txt").to_string();
    for (i, raw) in logical_lines(&text) {
        let line = strip_comment(&raw).trim();
        if line.is_empty() {
            continue;
        }
        let source = format!("{name}:{}", i + 1);
        let not = |why: &str| NotCheckable { source: source.clone(), line: line.to_string(), why: why.to_string() };
        if let Some(rest) = option_value(line, &["-r", "--requirement"]) {
            read_requirements(&base.join(rest), kind, inputs, depth + 1)?;
            continue;
        }
        if let Some(rest) = option_value(line, &["-c", "--constraint"]) {
            read_requirements(&base.join(rest), Kind::Constraint, inputs, depth + 1)?;
            continue;
        }
        if option_value(line, &["-e", "--editable"]).is_some() {
            inputs.not_checkable.push(not("editable install"));
            continue;
        }
        if line.starts_with('-') {
            // global options: --index-url, --find-links, --pre, --trusted-host, …
            continue;
        }
        let req_text = strip_options(line).trim();
        if req_text.contains("://") && !req_text.contains('@') || req_text.starts_with('.') || req_text.starts_with('/')
        {
            inputs.not_checkable.push(not("a URL or path, not a package from the index"));
            continue;
        }
        match Requirement::<pep508_rs::VerbatimUrl>::from_str(req_text) {
            Ok(r) => push_requirement(inputs, r, req_text, source, kind, Some((path.to_path_buf(), i))),
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                inputs.not_checkable.push(not(&format!("not a PEP 508 requirement: {first}")));
            }
        }
    }
    Ok(())
}

/// `-r file` / `-rfile` / `--requirement=file` / `--requirement file`.
fn option_value<'a>(line: &'a str, names: &[&str]) -> Option<&'a str> {
    for n in names {
        if let Some(rest) = line.strip_prefix(n) {
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            if n.starts_with("--") && !(rest.starts_with(' ') || rest.starts_with('\t') || line.contains('=')) {
                continue;
            }
            let v = rest.trim();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

fn push_requirement(
    inputs: &mut Inputs,
    r: Requirement<pep508_rs::VerbatimUrl>,
    text: &str,
    source: String,
    kind: Kind,
    file_line: Option<(PathBuf, usize)>,
) {
    let specifiers = match r.version_or_url {
        None => VersionSpecifiers::empty(),
        Some(VersionOrUrl::VersionSpecifier(s)) => s,
        Some(VersionOrUrl::Url(_)) => {
            inputs.not_checkable.push(NotCheckable {
                source,
                line: text.to_string(),
                why: "installed from a URL, not from the index".into(),
            });
            return;
        }
    };
    inputs.declared.push(Declared {
        source,
        text: text.to_string(),
        name: r.name,
        specifiers,
        marker: r.marker,
        kind,
        file_line,
    });
}

fn read_pyproject(path: &Path, inputs: &mut Inputs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not valid TOML: {e}", path.display()))?;
    inputs.files.push(path.to_path_buf());
    let mut add = |list: &toml::Value, kind: Kind, where_: &str| {
        for v in list.as_array().into_iter().flatten() {
            let Some(s) = v.as_str() else { continue };
            let source = format!("pyproject.toml:{where_}");
            match Requirement::<pep508_rs::VerbatimUrl>::from_str(s) {
                Ok(r) => push_requirement(inputs, r, s, source, kind, None),
                Err(e) => inputs.not_checkable.push(NotCheckable {
                    source,
                    line: s.to_string(),
                    why: format!("not a PEP 508 requirement: {}", e.to_string().lines().next().unwrap_or("")),
                }),
            }
        }
    };
    if let Some(project) = doc.get("project").and_then(|p| p.as_table()) {
        if let Some(deps) = project.get("dependencies") {
            add(deps, Kind::Dependency, "project.dependencies");
        }
        if let Some(opt) = project.get("optional-dependencies").and_then(|o| o.as_table()) {
            for (group, deps) in opt {
                add(deps, Kind::Optional, &format!("project.optional-dependencies.{group}"));
            }
        }
    }
    let poetry =
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("dependencies")).and_then(|d| d.as_table());
    for (name, spec) in poetry.into_iter().flatten() {
        if name.eq_ignore_ascii_case("python") {
            continue;
        }
        let source = "pyproject.toml:tool.poetry.dependencies".to_string();
        let (constraint, optional) = match spec {
            toml::Value::String(s) => (Some(s.clone()), false),
            toml::Value::Table(t) => (
                t.get("version").and_then(|v| v.as_str()).map(String::from),
                t.get("optional").and_then(|v| v.as_bool()).unwrap_or(false),
            ),
            _ => (None, false),
        };
        let Some(constraint) = constraint else {
            inputs.not_checkable.push(NotCheckable {
                source,
                line: format!("{name} = {spec}"),
                why: "a path, URL or git dependency".into(),
            });
            continue;
        };
        let text = match poetry_to_pep440(&constraint) {
            Some(c) => format!("{name}{c}"),
            None => {
                inputs.not_checkable.push(NotCheckable {
                    source,
                    line: format!("{name} = \"{constraint}\""),
                    why: "a Poetry constraint this checker cannot translate".into(),
                });
                continue;
            }
        };
        let kind = if optional { Kind::Optional } else { Kind::Dependency };
        match Requirement::<pep508_rs::VerbatimUrl>::from_str(&text) {
            Ok(r) => push_requirement(inputs, r, &text, source, kind, None),
            Err(e) => inputs.not_checkable.push(NotCheckable {
                source,
                line: text.clone(),
                why: format!("not a valid constraint: {}", e.to_string().lines().next().unwrap_or("")),
            }),
        }
    }
    Ok(())
}

/// Poetry's `^1.2`, `~1.2`, `*`, `1.2.3` and comma lists as PEP 440 specifiers.
fn poetry_to_pep440(c: &str) -> Option<String> {
    let mut out = Vec::new();
    for part in c.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "*" {
            continue;
        }
        if let Some(v) = part.strip_prefix('^') {
            let nums: Vec<u64> = v.trim().split('.').map(|n| n.parse().ok()).collect::<Option<_>>()?;
            let first = nums.iter().position(|n| *n != 0).unwrap_or(nums.len().saturating_sub(1));
            let mut upper: Vec<u64> = nums[..=first.min(nums.len() - 1)].to_vec();
            *upper.last_mut()? += 1;
            let upper: Vec<String> = upper.iter().map(u64::to_string).collect();
            out.push(format!(">={},<{}", v.trim(), upper.join(".")));
        } else if let Some(v) = part.strip_prefix('~').filter(|v| !v.starts_with('=')) {
            let nums: Vec<u64> = v.trim().split('.').map(|n| n.parse().ok()).collect::<Option<_>>()?;
            let keep = if nums.len() >= 2 { 2 } else { 1 };
            let mut upper = nums[..keep].to_vec();
            *upper.last_mut()? += 1;
            let upper: Vec<String> = upper.iter().map(u64::to_string).collect();
            out.push(format!(">={},<{}", v.trim(), upper.join(".")));
        } else if part.starts_with(|ch: char| ch.is_ascii_digit()) {
            out.push(format!("=={part}"));
        } else {
            out.push(part.to_string());
        }
    }
    Some(out.join(","))
}

fn read_lock(path: &Path, inputs: &mut Inputs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not valid TOML: {e}", path.display()))?;
    inputs.files.push(path.to_path_buf());
    for p in doc.get("package").and_then(|p| p.as_array()).into_iter().flatten() {
        if let (Some(n), Some(v)) = (p.get("name").and_then(|n| n.as_str()), p.get("version").and_then(|v| v.as_str()))
            && let Ok(n) = PackageName::from_str(n)
        {
            inputs.locked.insert(n.to_string(), v.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_constraints() {
        assert_eq!(poetry_to_pep440("^1.2.3").unwrap(), ">=1.2.3,<2");
        assert_eq!(poetry_to_pep440("^0.2.3").unwrap(), ">=0.2.3,<0.3");
        assert_eq!(poetry_to_pep440("~1.2.3").unwrap(), ">=1.2.3,<1.3");
        assert_eq!(poetry_to_pep440("*").unwrap(), "");
        assert_eq!(poetry_to_pep440("1.4").unwrap(), "==1.4");
        assert_eq!(poetry_to_pep440(">=1,<2").unwrap(), ">=1,<2");
    }

    #[test]
    fn poetry_table_and_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[tool.poetry.dependencies]\npython = \"^3.10\"\ndjango = \"^4.2\"\nrequests = { version = \"~2.31\", optional = true }\n\
             mylib = { path = \"../mylib\" }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("poetry.lock"),
            "[[package]]\nname = \"Django\"\nversion = \"4.2.7\"\n\n[[package]]\nname = \"requests\"\nversion = \"2.31.0\"\n",
        )
        .unwrap();
        let i = read_project(dir.path()).unwrap();
        let got: Vec<(String, String, Kind)> =
            i.declared.iter().map(|d| (d.name.to_string(), d.specifiers.to_string(), d.kind)).collect();
        assert_eq!(
            got,
            [
                ("django".to_string(), ">=4.2, <5".to_string(), Kind::Dependency),
                ("requests".to_string(), ">=2.31, <2.32".to_string(), Kind::Optional),
            ]
        );
        assert_eq!(i.not_checkable.len(), 1, "the path dependency: {:?}", i.not_checkable);
        assert_eq!(i.locked.get("django").map(String::as_str), Some("4.2.7"));
        assert_eq!(i.locked.get("requests").map(String::as_str), Some("2.31.0"));
    }

    #[test]
    fn comments_continuations_and_options() {
        assert_eq!(strip_comment("pkg==1 # pinned"), "pkg==1 ");
        assert_eq!(strip_comment("git+https://x/y#egg=z"), "git+https://x/y#egg=z");
        assert_eq!(strip_options("flask==3.0.0 --hash=sha256:abc"), "flask==3.0.0");
        let l = logical_lines("a>=1 \\\n  ,<2\nb");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].0, 0);
        assert_eq!(option_value("-r base.txt", &["-r", "--requirement"]), Some("base.txt"));
        assert_eq!(option_value("--requirement=base.txt", &["-r", "--requirement"]), Some("base.txt"));
        assert_eq!(option_value("-rbase.txt", &["-r", "--requirement"]), Some("base.txt"));
        assert_eq!(option_value("requests", &["-r", "--requirement"]), None);
    }
}
