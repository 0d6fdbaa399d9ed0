//! `aiwaf check-deps`: a Python project's dependencies against what is installed in its
//! interpreter, the package index and known incompatibilities; an upgrade plan that every
//! constraint allows; the upgrade itself through that interpreter's pip.
//!
//! The seed's `check_dependencies` parsed requirements with regexes (`"scikit-learn>=1.0,<2.0"`
//! became a package named `<2.0`), reported its security scan as "not available" exactly when it
//! found something, upgraded through whatever `pip` came first on PATH and dropped constraints
//! and markers when it rewrote `requirements.txt`. Here: PEP 508 / PEP 440 parsers
//! (`pep508_rs`, `pep440_rs`), installed versions from the target interpreter's own
//! `METADATA`, the index's JSON API (with its OSV `vulnerabilities`), compatibility rules as
//! data plus every installed package's `Requires-Dist`, and a rewrite that touches only the
//! version specifier of upgraded lines.
//!
//! Exit codes: 0 clean, 1 findings (vulnerable or incompatible), 2 error, 3 index unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};

pub mod env;
pub mod index;
pub mod inputs;

pub use index::{Index, IndexError, Vulnerability};

/// The built-in compatibility rules.
pub const COMPAT_TOML: &str = include_str!("../compat.toml");

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project directory.
    pub project: PathBuf,
    /// The target interpreter.
    pub python: String,
    /// Package directories to read instead of the interpreter's.
    pub site_packages: Vec<PathBuf>,
    /// Base of the index's JSON API.
    pub index_url: String,
    /// Look up known vulnerabilities of the installed versions.
    pub check_security: bool,
    /// Allow pre-releases in upgrade plans.
    pub pre: bool,
    /// More compatibility rules (TOML files like `compat.toml`).
    pub compat_files: Vec<PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// A compatibility rule (see `compat.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// When this package…
    pub package: String,
    /// …is at a version matching this,
    pub when: String,
    /// …this other package…
    pub other: String,
    /// …must match this.
    pub needs: String,
    /// `error` or `warning`.
    #[serde(default = "error_severity")]
    pub severity: String,
    /// Why, for the report.
    pub why: String,
}

fn error_severity() -> String {
    "error".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

struct CompiledRule {
    rule: Rule,
    package: PackageName,
    when: VersionSpecifiers,
    other: PackageName,
    needs: VersionSpecifiers,
}

fn compile_rules(text: &str, origin: &str) -> anyhow::Result<Vec<CompiledRule>> {
    let f: RuleFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    f.rule
        .into_iter()
        .enumerate()
        .map(|(i, rule)| {
            let err = |what: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("{origin}: rule {}: {what}: {e}", i + 1);
            if rule.severity != "error" && rule.severity != "warning" {
                return Err(err("severity", &"must be error or warning"));
            }
            Ok(CompiledRule {
                package: PackageName::from_str(&rule.package).map_err(|e| err("package", &e))?,
                when: VersionSpecifiers::from_str(&rule.when).map_err(|e| err("when", &e))?,
                other: PackageName::from_str(&rule.other).map_err(|e| err("other", &e))?,
                needs: VersionSpecifiers::from_str(&rule.needs).map_err(|e| err("needs", &e))?,
                rule,
            })
        })
        .collect()
}

/// Counts for the summary line.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Packages declared (checkable).
    pub packages: usize,
    /// Installed at the latest release.
    pub up_to_date: usize,
    /// A newer release exists.
    pub outdated: usize,
    /// Installed version has known vulnerabilities.
    pub vulnerable: usize,
    /// Conflicts of severity error.
    pub incompatible: usize,
    /// Declared, not installed.
    pub not_installed: usize,
    /// Lines that are not checkable requirements.
    pub not_checkable: usize,
}

/// One declared package.
#[derive(Debug, Serialize)]
pub struct PackageReport {
    /// Normalised name.
    pub name: String,
    /// Where it is declared (`source: requirement`).
    pub declared: Vec<String>,
    /// Installed version.
    pub installed: Option<String>,
    /// Latest release on the index.
    pub latest: Option<String>,
    /// Version a lock file pins.
    pub locked: Option<String>,
    /// `up_to_date`, `outdated`, `ahead`, `not_installed`, `not_on_index`.
    pub status: &'static str,
    /// Known vulnerabilities of the installed version (with `--check-security`).
    pub vulnerabilities: Vec<Vulnerability>,
}

/// Something installed that a requirement or rule does not allow.
#[derive(Debug, Serialize, PartialEq)]
pub struct Conflict {
    /// The package whose version does not fit.
    pub package: String,
    /// Its installed version (`None`: missing).
    pub installed: Option<String>,
    /// Who requires it (`project (file:line)`, `pandas 2.0.3`, `rule`).
    pub required_by: String,
    /// The requirement.
    pub requirement: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Why.
    pub why: String,
}

/// A planned upgrade.
#[derive(Debug, Serialize, PartialEq)]
pub struct Upgrade {
    /// Package.
    pub name: String,
    /// From.
    pub from: String,
    /// To: the highest release every constraint allows.
    pub to: String,
    /// Newer releases skipped, and why.
    pub skipped: Vec<String>,
    /// Installed packages the new release needs newer (pip upgrades them along).
    pub also: Vec<String>,
}

/// An outdated package no release of which can be installed now.
#[derive(Debug, Serialize, PartialEq)]
pub struct Blocked {
    /// Package.
    pub name: String,
    /// Installed.
    pub installed: String,
    /// Latest.
    pub latest: String,
    /// Why each newer release is excluded (the latest first).
    pub why: Vec<String>,
}

/// The upgrade plan.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    /// Upgrades.
    pub upgrades: Vec<Upgrade>,
    /// Blocked packages.
    pub blocked: Vec<Blocked>,
    /// The exact command that performs the upgrades.
    pub command: Option<Vec<String>>,
}

/// The whole report (`--format json` prints it as one object).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The project directory.
    pub project: String,
    /// The interpreter.
    pub python: String,
    /// Its Python version.
    pub python_version: String,
    /// The index.
    pub index: String,
    /// Files read.
    pub files: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// Declared packages, by name.
    pub packages: Vec<PackageReport>,
    /// Conflicts between what is installed and what is required.
    pub conflicts: Vec<Conflict>,
    /// Lines that are not checkable.
    pub not_checkable: Vec<inputs::NotCheckable>,
    /// The upgrade plan.
    pub plan: Plan,
}

impl Report {
    /// 0 clean, 1 findings (vulnerable or incompatible).
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary.vulnerable > 0 || self.summary.incompatible > 0)
    }
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The index could not be reached (exit code 3).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Anything else (exit code 2).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CheckError {
    /// The process exit code for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckError::Index(IndexError::Unreachable { .. }) => 3,
            _ => 2,
        }
    }
}

/// Does the check.
pub async fn check(opts: &Options) -> Result<Report, CheckError> {
    let inputs = inputs::read_project(&opts.project)?;
    let envi = env::probe(&opts.python, &opts.site_packages)?;
    let mut rules = compile_rules(COMPAT_TOML, "built-in compat.toml")?;
    for f in &opts.compat_files {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        rules.extend(compile_rules(&text, &f.display().to_string())?);
    }
    let index = Index::new(&opts.index_url, opts.timeout)?;
    let applies = |d: &inputs::Declared| d.marker.evaluate(&envi.markers, &[]);
    // declared packages (dependencies and optional ones; constraints only constrain)
    let mut names: BTreeSet<PackageName> = BTreeSet::new();
    for d in inputs.declared.iter().filter(|d| d.kind != inputs::Kind::Constraint && applies(d)) {
        names.insert(d.name.clone());
    }
    // the index, concurrently
    let bar = progress(opts.progress, names.len() as u64);
    let fetched: Vec<(PackageName, Result<Option<index::Project>, IndexError>)> =
        futures_util::stream::iter(names.iter().cloned().map(|n| {
            let index = index.clone();
            let bar = bar.clone();
            async move {
                let r = index.project(n.as_ref()).await;
                if let Some(b) = &bar {
                    b.inc(1);
                }
                (n, r)
            }
        }))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut projects: BTreeMap<PackageName, Option<index::Project>> = BTreeMap::new();
    for (n, r) in fetched {
        projects.insert(n, r?);
    }
    // vulnerabilities of what is installed
    let mut vulns: BTreeMap<PackageName, Vec<Vulnerability>> = BTreeMap::new();
    if opts.check_security {
        let wanted: Vec<(PackageName, Version)> = names
            .iter()
            .filter(|n| projects.get(*n).is_some_and(Option::is_some))
            .filter_map(|n| envi.installed.get(n).map(|i| (n.clone(), i.version.clone())))
            .collect();
        let got: Vec<(PackageName, Result<Vec<Vulnerability>, IndexError>)> =
            futures_util::stream::iter(wanted.into_iter().map(|(n, v)| {
                let index = index.clone();
                async move {
                    let r = index.vulnerabilities(n.as_ref(), &v).await;
                    (n, r)
                }
            }))
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        for (n, r) in got {
            let r = r?;
            if !r.is_empty() {
                vulns.insert(n, r);
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    let mut summary =
        Summary { packages: names.len(), not_checkable: inputs.not_checkable.len(), ..Default::default() };
    let mut packages = Vec::new();
    for n in &names {
        let declared: Vec<String> =
            inputs.declared.iter().filter(|d| &d.name == n).map(|d| format!("{}: {}", d.source, d.text)).collect();
        let installed = envi.installed.get(n);
        let project = projects.get(n).cloned().flatten();
        let latest = project.as_ref().and_then(|p| p.latest.clone());
        let status = match (installed, &project, &latest) {
            (None, _, _) => "not_installed",
            (Some(_), None, _) => "not_on_index",
            (Some(_), Some(_), None) => "not_on_index",
            (Some(i), Some(_), Some(l)) if i.version < *l => "outdated",
            (Some(i), Some(_), Some(l)) if i.version > *l => "ahead",
            _ => "up_to_date",
        };
        match status {
            "not_installed" => summary.not_installed += 1,
            "outdated" => summary.outdated += 1,
            "up_to_date" | "ahead" => summary.up_to_date += 1,
            _ => {}
        }
        let v = vulns.get(n).cloned().unwrap_or_default();
        if !v.is_empty() {
            summary.vulnerable += 1;
        }
        packages.push(PackageReport {
            name: n.to_string(),
            declared,
            installed: installed.map(|i| i.version.to_string()),
            latest: latest.map(|l| l.to_string()),
            locked: inputs.locked.get(n.as_ref()).cloned(),
            status,
            vulnerabilities: v,
        });
    }
    let conflicts = conflicts(&inputs, &envi, &rules);
    summary.incompatible = conflicts.iter().filter(|c| c.severity == "error").count();
    let plan = plan(&names, &inputs, &envi, &rules, &projects, &index, opts).await?;
    let python_version = envi.markers.python_full_version().to_string();
    Ok(Report {
        project: opts.project.display().to_string(),
        python: envi.python.clone(),
        python_version,
        index: index.base().to_string(),
        files: inputs.files.iter().map(|f| f.strip_prefix(&opts.project).unwrap_or(f).display().to_string()).collect(),
        summary,
        packages,
        conflicts,
        not_checkable: inputs.not_checkable.clone(),
        plan,
    })
}

fn progress(on: bool, n: u64) -> Option<indicatif::ProgressBar> {
    (on && n > 0).then(|| {
        let b = indicatif::ProgressBar::new(n);
        b.set_style(
            indicatif::ProgressStyle::with_template("checking the index {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

/// What is installed against what the project, the installed packages and the rules require.
fn conflicts(inputs: &inputs::Inputs, envi: &env::Environment, rules: &[CompiledRule]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for d in inputs.declared.iter().filter(|d| d.marker.evaluate(&envi.markers, &[])) {
        match envi.installed.get(&d.name) {
            Some(i) if !d.specifiers.contains(&i.version) => out.push(Conflict {
                package: d.name.to_string(),
                installed: Some(i.version.to_string()),
                required_by: format!("project ({})", d.source),
                requirement: d.text.clone(),
                severity: "error".into(),
                why: format!("{} {} is installed; the project asks for {}", d.name, i.version, d.specifiers),
            }),
            _ => {}
        }
    }
    for (name, inst) in &envi.installed {
        for r in &inst.requires {
            if !r.marker.evaluate(&envi.markers, &[]) {
                continue;
            }
            let spec = match &r.version_or_url {
                Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => s.clone(),
                _ => VersionSpecifiers::empty(),
            };
            let by = format!("{} {}", inst.display_name, inst.version);
            match envi.installed.get(&r.name) {
                None => out.push(Conflict {
                    package: r.name.to_string(),
                    installed: None,
                    required_by: by,
                    requirement: r.to_string(),
                    severity: "error".into(),
                    why: format!("{name} needs {} and it is not installed", r.name),
                }),
                Some(i) if !spec.contains(&i.version) => out.push(Conflict {
                    package: r.name.to_string(),
                    installed: Some(i.version.to_string()),
                    required_by: by,
                    requirement: r.to_string(),
                    severity: "error".into(),
                    why: format!("{name} {} requires {}{spec}", inst.version, r.name),
                }),
                _ => {}
            }
        }
    }
    for c in rules {
        if let (Some(p), Some(o)) = (envi.installed.get(&c.package), envi.installed.get(&c.other))
            && c.when.contains(&p.version)
            && !c.needs.contains(&o.version)
        {
            out.push(Conflict {
                package: c.other.to_string(),
                installed: Some(o.version.to_string()),
                required_by: format!("{} {} (compatibility rule)", c.package, p.version),
                requirement: format!("{}{}", c.other, c.needs),
                severity: c.rule.severity.clone(),
                why: c.rule.why.clone(),
            });
        }
    }
    out
}

/// Why `cand` of `name` cannot be installed now (empty: it can).
fn reasons_against(
    name: &PackageName,
    cand: &Version,
    inputs: &inputs::Inputs,
    envi: &env::Environment,
    rules: &[CompiledRule],
) -> Vec<String> {
    let mut why = Vec::new();
    for d in inputs.declared.iter().filter(|d| &d.name == name && d.marker.evaluate(&envi.markers, &[])) {
        // An exact pin in a requirements file records the current choice (the upgrade rewrites
        // it); a range, a pyproject entry or a constraint file limits the upgrade.
        let pin = d.kind == inputs::Kind::Dependency
            && d.file_line.is_some()
            && d.specifiers.len() == 1
            && d.specifiers.iter().all(|s| *s.operator() == pep440_rs::Operator::Equal);
        if !pin && !d.specifiers.contains(cand) {
            why.push(format!("{} asks for {}", d.source, d.text));
        }
    }
    for (other, inst) in &envi.installed {
        if other == name {
            continue;
        }
        for r in inst.requires.iter().filter(|r| &r.name == name && r.marker.evaluate(&envi.markers, &[])) {
            if let Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) = &r.version_or_url
                && !s.contains(cand)
            {
                why.push(format!("{} {} requires {}{s}", inst.display_name, inst.version, r.name));
            }
        }
    }
    for c in rules {
        if &c.package == name
            && c.when.contains(cand)
            && let Some(o) = envi.installed.get(&c.other)
            && !c.needs.contains(&o.version)
        {
            why.push(format!(
                "{} {} is installed and {}{} needs {}{} ({})",
                c.other, o.version, name, c.when, c.other, c.needs, c.rule.why
            ));
        }
        if &c.other == name
            && !c.needs.contains(cand)
            && let Some(p) = envi.installed.get(&c.package)
            && c.when.contains(&p.version)
        {
            why.push(format!("{} {} needs {}{} ({})", c.package, p.version, name, c.needs, c.rule.why));
        }
    }
    why
}

/// The requirements of a release that what is installed does not meet (markers evaluated,
/// extras not requested): pip upgrades those along. (Something not installed is installed.)
fn unmet_requirements(requires: &[String], envi: &env::Environment) -> Vec<String> {
    let mut out = Vec::new();
    for r in requires {
        let Ok(req) = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(r) else { continue };
        if !req.marker.evaluate(&envi.markers, &[]) {
            continue;
        }
        if let (Some(pep508_rs::VersionOrUrl::VersionSpecifier(spec)), Some(inst)) =
            (&req.version_or_url, envi.installed.get(&req.name))
            && !spec.contains(&inst.version)
        {
            out.push(format!("{} {} -> {}{spec}", req.name, inst.version, req.name));
        }
    }
    out
}

async fn plan(
    names: &BTreeSet<PackageName>,
    inputs: &inputs::Inputs,
    envi: &env::Environment,
    rules: &[CompiledRule],
    projects: &BTreeMap<PackageName, Option<index::Project>>,
    index: &Index,
    opts: &Options,
) -> Result<Plan, IndexError> {
    let mut plan = Plan::default();
    for n in names {
        let (Some(inst), Some(Some(project))) = (envi.installed.get(n), projects.get(n)) else { continue };
        let pre_ok = opts.pre || inst.version.any_prerelease();
        let newer: Vec<(&Version, bool)> = project
            .releases
            .iter()
            .rev()
            .filter(|(v, _)| **v > inst.version && (pre_ok || !v.any_prerelease()))
            .map(|(v, y)| (v, *y))
            .collect();
        if newer.is_empty() {
            continue;
        }
        let mut skipped = Vec::new();
        let mut chosen = None;
        let mut also = Vec::new();
        let mut vuln_checks = 0;
        for (v, yanked) in &newer {
            if *yanked {
                skipped.push(format!("{v}: yanked"));
                continue;
            }
            let why = reasons_against(n, v, inputs, envi, rules);
            if !why.is_empty() {
                skipped.push(format!("{v}: {}", why.join("; ")));
                continue;
            }
            // the release itself: known vulnerabilities, and what it requires of what is installed
            if vuln_checks < 5 {
                vuln_checks += 1;
                let rel = index.release(n.as_ref(), v).await?;
                if !rel.vulnerabilities.is_empty() {
                    let ids: Vec<&str> = rel.vulnerabilities.iter().map(|x| x.id.as_str()).collect();
                    skipped.push(format!("{v}: known vulnerable ({})", ids.join(", ")));
                    continue;
                }
                // pip brings these along; said in the plan
                also = unmet_requirements(&rel.requires_dist, envi);
            }
            chosen = Some((*v).clone());
            break;
        }
        match chosen {
            Some(to) => plan.upgrades.push(Upgrade {
                name: n.to_string(),
                from: inst.version.to_string(),
                to: to.to_string(),
                skipped,
                also,
            }),
            None => plan.blocked.push(Blocked {
                name: n.to_string(),
                installed: inst.version.to_string(),
                latest: newer[0].0.to_string(),
                why: skipped,
            }),
        }
    }
    if !plan.upgrades.is_empty() {
        let mut cmd = vec![envi.python.clone(), "-m".into(), "pip".into(), "install".into()];
        cmd.extend(plan.upgrades.iter().map(|u| format!("{}=={}", u.name, u.to)));
        plan.command = Some(cmd);
    }
    Ok(plan)
}

/// The report for people.
pub fn render_table(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "aiwaf check-deps: {}", r.project);
    let _ = writeln!(s, "Python: {} ({})  index: {}", r.python, r.python_version, r.index);
    let _ = writeln!(s, "files: {}", if r.files.is_empty() { "none found".into() } else { r.files.join(", ") });
    let m = &r.summary;
    let _ = writeln!(
        s,
        "\n{} packages: {} up to date, {} outdated, {} vulnerable, {} incompatible, {} not installed; {} lines not checkable",
        m.packages, m.up_to_date, m.outdated, m.vulnerable, m.incompatible, m.not_installed, m.not_checkable
    );
    if !r.packages.is_empty() {
        let w = r.packages.iter().map(|p| p.name.len()).max().unwrap_or(7).max(7);
        let _ = writeln!(s, "\n{:<w$}  {:<10}  {:<10}  {:<13}  DECLARED", "PACKAGE", "INSTALLED", "LATEST", "STATUS");
        for p in &r.packages {
            let _ = writeln!(
                s,
                "{:<w$}  {:<10}  {:<10}  {:<13}  {}",
                p.name,
                p.installed.as_deref().unwrap_or("-"),
                p.latest.as_deref().unwrap_or("-"),
                p.status.replace('_', " "),
                p.declared.join("; ")
            );
        }
    }
    let vulnerable: Vec<&PackageReport> = r.packages.iter().filter(|p| !p.vulnerabilities.is_empty()).collect();
    if !vulnerable.is_empty() {
        let _ = writeln!(s, "\nVulnerable:");
        for p in vulnerable {
            for v in &p.vulnerabilities {
                let aliases = if v.aliases.is_empty() { String::new() } else { format!(" ({})", v.aliases.join(", ")) };
                let fixed = if v.fixed_in.is_empty() {
                    "no fixed release".into()
                } else {
                    format!("fixed in {}", v.fixed_in.join(", "))
                };
                let _ = writeln!(
                    s,
                    "  {} {}  {}{}: {} — {}",
                    p.name,
                    p.installed.as_deref().unwrap_or("?"),
                    v.id,
                    aliases,
                    v.summary,
                    fixed
                );
            }
        }
    }
    if !r.conflicts.is_empty() {
        let _ = writeln!(s, "\nIncompatible:");
        for c in &r.conflicts {
            let _ = writeln!(
                s,
                "  [{}] {} {}: {} requires {} — {}",
                c.severity,
                c.package,
                c.installed.as_deref().unwrap_or("(not installed)"),
                c.required_by,
                c.requirement,
                c.why
            );
        }
    }
    let missing: Vec<&PackageReport> = r.packages.iter().filter(|p| p.status == "not_installed").collect();
    if !missing.is_empty() {
        let _ = writeln!(s, "\nNot installed:");
        for p in missing {
            let _ = writeln!(s, "  {} ({})", p.name, p.declared.join("; "));
        }
    }
    if !r.not_checkable.is_empty() {
        let _ = writeln!(s, "\nNot checkable:");
        for n in &r.not_checkable {
            let _ = writeln!(s, "  {}  {}  ({})", n.source, n.line, n.why);
        }
    }
    if !r.plan.upgrades.is_empty() || !r.plan.blocked.is_empty() {
        let _ = writeln!(s, "\nUpgrade plan:");
        for u in &r.plan.upgrades {
            let _ = writeln!(s, "  {} {} -> {}", u.name, u.from, u.to);
            for k in &u.skipped {
                let _ = writeln!(s, "      skipped {k}");
            }
            for k in &u.also {
                let _ = writeln!(s, "      pip upgrades along: {k}");
            }
        }
        for b in &r.plan.blocked {
            let _ = writeln!(s, "  {} {}: blocked (latest {})", b.name, b.installed, b.latest);
            for k in &b.why {
                let _ = writeln!(s, "      {k}");
            }
        }
        if let Some(c) = &r.plan.command {
            let _ = writeln!(s, "\nCommand: {}", c.join(" "));
        }
    }
    s
}

/// Rewrites the version specifier of `name`'s requirement on a requirements line for `to`,
/// keeping extras, markers, options and comments: an exact pin becomes `==to`; otherwise the
/// lower bounds become `>=to` and the other clauses stay. `None`: nothing to rewrite (no
/// specifier, or not this package).
pub fn rewrite_line(line: &str, name: &PackageName, to: &Version) -> Option<String> {
    let start = line.len() - line.trim_start().len();
    let body = &line[start..];
    let name_end =
        body.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))).unwrap_or(body.len());
    if PackageName::from_str(&body[..name_end]).ok().as_ref() != Some(name) {
        return None;
    }
    let mut i = name_end;
    let rest = &body[i..];
    let ws = rest.len() - rest.trim_start().len();
    if rest[ws..].starts_with('[') {
        i += ws + rest[ws..].find(']')? + 1;
    }
    let tail = &body[i..];
    // (a line continued with `\` ends there; its options are on the next line)
    let continued = tail.trim_end().strip_suffix('\\').map(|t| t.len());
    let end = [tail.find(';'), tail.find(" #"), tail.find(" --"), tail.find("\t--"), continued]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(tail.len());
    let spec_text = &tail[..end];
    let trimmed = spec_text.trim();
    if trimmed.is_empty() {
        return None;
    }
    let old = VersionSpecifiers::from_str(trimmed).ok()?;
    let clauses: Vec<String> = old.iter().map(ToString::to_string).collect();
    let new = if clauses.len() == 1 && clauses[0].starts_with("==") && !clauses[0].starts_with("===") {
        format!("=={to}")
    } else {
        let mut kept = vec![format!(">={to}")];
        for c in old.iter() {
            let op = c.operator().to_string();
            if matches!(op.as_str(), "<" | "<=" | "!=") && c.contains(to) {
                kept.push(c.to_string());
            }
        }
        kept.join(",")
    };
    // keep the spacing around the specifier as written
    let lead = &spec_text[..spec_text.len() - spec_text.trim_start().len()];
    let trail = &spec_text[spec_text.trim_end().len()..];
    Some(format!("{}{}{lead}{new}{trail}{}", &line[..start], &body[..i], &tail[end..]))
}

/// Rewrites the requirements files for the upgrades done, after writing `FILE.backup` of each
/// file it changes. Returns the lines changed (`file:line: old -> new`).
pub fn update_requirements(project: &Path, upgrades: &[Upgrade]) -> anyhow::Result<Vec<String>> {
    let inputs = inputs::read_project(project)?;
    let mut by_file: BTreeMap<PathBuf, Vec<(usize, PackageName, Version)>> = BTreeMap::new();
    for u in upgrades {
        let (Ok(n), Ok(v)) = (PackageName::from_str(&u.name), Version::from_str(&u.to)) else { continue };
        for d in inputs.declared.iter().filter(|d| d.name == n) {
            if let Some((f, line)) = &d.file_line {
                by_file.entry(f.clone()).or_default().push((*line, n.clone(), v.clone()));
            }
        }
    }
    let mut changed = Vec::new();
    for (file, edits) in by_file {
        let text = std::fs::read_to_string(&file)?;
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut any = false;
        for (i, n, v) in edits {
            let Some(old) = lines.get(i).cloned() else { continue };
            if let Some(new) = rewrite_line(&old, &n, &v)
                && new != old
            {
                changed.push(format!("{}:{}: {} -> {}", file.display(), i + 1, old.trim(), new.trim()));
                lines[i] = new;
                any = true;
            }
        }
        if any {
            let backup = PathBuf::from(format!("{}.backup", file.display()));
            std::fs::copy(&file, &backup)
                .map_err(|e| anyhow::anyhow!("cannot write the backup {}: {e}", backup.display()))?;
            let mut out = lines.join("\n");
            if text.ends_with('\n') {
                out.push('\n');
            }
            std::fs::write(&file, out).map_err(|e| anyhow::anyhow!("cannot rewrite {}: {e}", file.display()))?;
        }
    }
    Ok(changed)
}

/// What `check-deps` does after checking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actions {
    /// Print JSON instead of the table.
    pub json: bool,
    /// Run the plan's command.
    pub upgrade: bool,
    /// Print the command; run nothing.
    pub dry_run: bool,
    /// After upgrading, rewrite the requirements files' specifiers of upgraded lines.
    pub update_requirements: bool,
}

/// The whole command: check, print, and (when asked) upgrade, rewrite and check again.
/// Returns the exit code (0 clean, 1 findings, 2 error, 3 index unreachable).
pub fn run(opts: &Options, act: &Actions, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "error: cannot start a runtime: {e}");
            return 2;
        }
    };
    let print = |r: &Report, out: &mut dyn std::io::Write| {
        let _ = if act.json {
            writeln!(out, "{}", serde_json::to_string_pretty(r).unwrap_or_default())
        } else {
            write!(out, "{}", render_table(r))
        };
    };
    let report = match rt.block_on(check(opts)) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return e.exit_code();
        }
    };
    print(&report, out);
    let Some(cmd) = report.plan.command.clone().filter(|_| act.upgrade || act.dry_run) else {
        return report.exit_code();
    };
    if act.dry_run || !act.upgrade {
        let _ = writeln!(err, "dry run: would run {}", cmd.join(" "));
        return report.exit_code();
    }
    let _ = writeln!(err, "running {}", cmd.join(" "));
    match std::process::Command::new(&cmd[0]).args(&cmd[1..]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let _ = writeln!(err, "error: pip failed ({s}); requirements files left as they were");
            return 2;
        }
        Err(e) => {
            let _ = writeln!(err, "error: cannot run {}: {e}", cmd[0]);
            return 2;
        }
    }
    if act.update_requirements {
        match update_requirements(&opts.project, &report.plan.upgrades) {
            Ok(lines) => {
                for l in lines {
                    let _ = writeln!(err, "rewrote {l}");
                }
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e:#}");
                return 2;
            }
        }
    }
    let _ = writeln!(err, "checking again after the upgrade");
    match rt.block_on(check(opts)) {
        Ok(r) => {
            print(&r, out);
            r.exit_code()
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::from_str(s).unwrap()
    }

    fn n(s: &str) -> PackageName {
        PackageName::from_str(s).unwrap()
    }

    #[test]
    fn rewrite_keeps_extras_markers_comments_and_upper_bounds() {
        let cases = [
            ("requests==2.31.0", "requests", "2.32.3", Some("requests==2.32.3")),
            (
                "Django>=4.2 ; python_version >= \"3.10\"  # web",
                "django",
                "5.1",
                Some("Django>=5.1 ; python_version >= \"3.10\"  # web"),
            ),
            ("scikit-learn>=1.0,<2.0", "scikit-learn", "1.5.1", Some("scikit-learn>=1.5.1,<2.0")),
            ("flask[async]==3.0.0 --hash=sha256:abc", "flask", "3.0.3", Some("flask[async]==3.0.3 --hash=sha256:abc")),
            ("  numpy ~= 1.21", "numpy", "1.26.4", Some("  numpy >=1.26.4")),
            ("flask[async]==3.0.0 \\", "flask", "3.0.3", Some("flask[async]==3.0.3 \\")),
            ("requests", "requests", "2.32.3", None),
            ("pandas==2.0", "numpy", "2.0", None),
        ];
        for (line, name, to, want) in cases {
            assert_eq!(rewrite_line(line, &n(name), &v(to)).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn builtin_rules_compile() {
        let r = compile_rules(COMPAT_TOML, "compat.toml").unwrap();
        assert!(r.len() >= 4);
        assert!(compile_rules("[[rule]]\npackage='a'\nwhen='>=1'\nother='b'\nneeds='bogus'\nwhy='x'\n", "t").is_err());
    }
}
