//! Conformance of `hooks`' compose loader with Docker Compose v2 (`HOOKS_COMPOSE_V2`, which
//! `scripts/compose-v2` installs from PyPI and exports).
//!
//! For every set in the shared corpus (`compose/public/`, merge order in `sets.tsv`), the
//! merge-rule fixtures and the project's own `docker-compose.yml` (alone, and with
//! `production.yml`) the test copies the files into a temporary directory named after the set, runs
//! `docker-compose -f A -f B --profile '*' config` there with a controlled environment, loads the same files
//! with `hooks_compose::load`, and compares the two models after normalising the
//! cosmetic differences listed in [`canonical`]. The checked-in table
//! `tests/data/compose_conformance.tsv` says, per set, `equal`, `differs: <reason>` or
//! `tool-rejects: <reason>`, and the test checks each verdict both ways (an `equal` row must be
//! equal, a `differs` row must really differ, a `tool-rejects` row must be rejected by the tool),
//! so the table cannot go stale.
//!
//! The corpus holds only the compose files, not the build contexts or env files they name.
//! The Compose tool refuses a missing build directory or env file, so the test creates each one
//! it names (empty) in the copy and asks again; both tools then see the same directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hooks_compose::{LoadOptions, load, port_entries, volume_entry};
use serde_yaml::{Mapping, Value};

/// The shared corpus: `HOOKS_SHARED_CORPUS` if set, else `shared/corpus` beside the checkout
/// (`../../../shared` from this crate in the main checkout, one level further up from a worktree
/// under `wt/`).
fn corpus() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOOKS_SHARED_CORPUS") {
        return PathBuf::from(dir);
    }
    let candidates = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../shared/corpus"),
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("compose/public/sets.tsv").is_file())
        .unwrap_or_else(|| {
            panic!("the shared corpus is not at {candidates:?}; set HOOKS_SHARED_CORPUS to its directory")
        })
}

/// Docker Compose v2, whose path `scripts/compose-v2` exports as `HOOKS_COMPOSE_V2`; the test
/// fails (never skips) without it.
fn compose_v2() -> PathBuf {
    std::env::var_os("HOOKS_COMPOSE_V2")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "HOOKS_COMPOSE_V2 does not name Docker Compose v2; run `eval \"$(scripts/compose-v2)\"` first (the test command does)"
            )
        })
}

/// The reference tool's version line.
fn compose_tool() -> String {
    let out = Command::new(compose_v2())
        .arg("version")
        .output()
        .expect("run Docker Compose v2");
    assert!(
        out.status.success(),
        "Docker Compose v2 does not run: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// One row of the verdict table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Equal,
    Differs(String),
    ToolRejects(String),
}

/// The table: set → (extra environment variables, verdict).
fn table() -> BTreeMap<String, (Vec<(String, String)>, Verdict)> {
    let text = include_str!("data/compose_conformance.tsv");
    let mut rows = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let [set, env, verdict] = fields.as_slice() else {
            panic!(
                "compose_conformance.tsv: {line:?} does not have 3 tab-separated fields (set, env, verdict)"
            );
        };
        let env = env
            .split_whitespace()
            .filter(|e| *e != "-")
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("env is K=V pairs");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let verdict = if *verdict == "equal" {
            Verdict::Equal
        } else if let Some(reason) = verdict.strip_prefix("differs: ") {
            Verdict::Differs(reason.to_owned())
        } else if let Some(reason) = verdict.strip_prefix("tool-rejects: ") {
            Verdict::ToolRejects(reason.to_owned())
        } else {
            panic!("compose_conformance.tsv: {set}: unknown verdict {verdict:?}");
        };
        rows.insert(set.to_string(), (env, verdict));
    }
    rows
}

/// What happened for one set.
enum Outcome {
    /// The tool refused the set (its message), and what `hooks` made of it.
    ToolRejects(String, Result<(), String>),
    /// Both loaded it; the canonical YAML of each.
    Compared {
        tool: String,
        ours: Result<String, String>,
    },
}

fn run_set(dir: &Path, files: &[&str], extra: &[(String, String)]) -> Outcome {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert("HOME".into(), dir.display().to_string());
    env.extend(extra.iter().cloned());
    let mut tool_output = None;
    for _attempt in 0..20 {
        let mut command = Command::new(compose_v2());
        for file in files {
            command.arg("-f").arg(file);
        }
        // `config` lists the services of every profile, as hooks' `*` does.
        let out = command
            .args(["--profile", "*", "config"])
            .current_dir(dir)
            .env_clear()
            .envs(&env)
            .output()
            .expect("run Docker Compose v2");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            tool_output = Some(Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
            break;
        }
        let root = dir.parent().unwrap_or(dir);
        if !create_missing(&stderr, root) {
            tool_output = Some(Err(stderr.trim().to_owned()));
            break;
        }
    }
    let options = LoadOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        project_name: None,
        environment: env,
        // The tool's `config` lists every service whatever its profiles.
        profiles: vec!["*".into()],
    };
    let tool = match tool_output.expect("the tool kept asking for missing files") {
        Ok(tool) => tool,
        Err(why) => {
            return Outcome::ToolRejects(why, load(&options).map(drop).map_err(|e| e.to_string()));
        }
    };
    let tool: Value = serde_yaml::from_str(&tool).expect("the tool prints YAML");
    let ours = load(&options).map_err(|e| e.to_string()).map(|project| {
        let value: Value = serde_yaml::from_str(&project.to_yaml()).expect("to_yaml prints YAML");
        to_text(&canonical(value))
    });
    Outcome::Compared {
        tool: to_text(&canonical(tool)),
        ours,
    }
}

/// Creates the build directory or env file a tool error names, if it lies inside `root` (the
/// temporary directory); false when the error is something else.
fn create_missing(stderr: &str, root: &Path) -> bool {
    if let Some(rest) = stderr.split("build path ").nth(1)
        && let Some((path, _)) = rest.split_once(" either does not exist")
    {
        return Path::new(path).starts_with(root) && std::fs::create_dir_all(path).is_ok();
    }
    if let Some(rest) = stderr.split("Couldn't find env file: ").nth(1) {
        let path = Path::new(rest.lines().next().unwrap_or_default().trim());
        if !path.starts_with(root) {
            return false;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        return std::fs::write(path, "").is_ok();
    }
    // v2: `env file PATH not found: stat PATH: no such file or directory`.
    if let Some(rest) = stderr.split("env file ").nth(1)
        && let Some((path, _)) = rest.split_once(" not found")
    {
        let path = Path::new(path);
        if !path.starts_with(root) {
            return false;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        return std::fs::write(path, "").is_ok();
    }
    false
}

/// Removes the differences that are cosmetic or by design between Compose v2's output and ours
/// (several of these rules date from docker-compose 1.29 and are harmless against v2):
/// - `version` and `name` are dropped, and so are top-level `x-` extension keys;
/// - v2's derived engine names (`<project>_<key>`), its implicit `default` network and each
///   service's plain attachment to it are dropped, as are `external: false`, a build's default
///   `dockerfile: Dockerfile`, a secret's default target `/run/secrets/<name>`, a volume's
///   `consistency` (no effect on Linux) and a trailing `/` of an absolute bind source;
/// - memory sizes compare in bytes, and a string healthcheck test as `[CMD-SHELL, test]`;
/// - `null` and `{}` are the same for network/volume definitions and a service's networks;
/// - `depends_on` entries lose `required: true` (the default, unknown to 1.29);
/// - environment, labels and build args compare as strings (1.29 keeps YAML numbers);
/// - ports and volumes are compared in long syntax without defaults (1.29 prints some short
///   forms), sorted (1.29 sorts ports by target and volumes by text; order has no effect);
/// - a service's secrets and configs are sorted by source, and `build.cache_from` and
///   `profiles` are sorted (1.29 merges them as sorted sets; their order has no effect);
/// - `extra_hosts` compare as a sorted list of `host:address` (1.29 prints a mapping);
/// - an empty `environment` is the same as none (1.29 prints `{}` for an empty env_file).
fn canonical(value: Value) -> Value {
    let Value::Mapping(mut top) = value else {
        return value;
    };
    top.remove("version");
    let project = top
        .remove("name")
        .and_then(|n| n.as_str().map(str::to_owned))
        .unwrap_or_default();
    top.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(Value::Mapping(entries)) = top.get_mut(section) {
            for (key, entry) in entries.iter_mut() {
                if entry.is_null() {
                    *entry = Value::Mapping(Mapping::new());
                }
                if let Value::Mapping(entry) = entry
                    && entry.get("external") == Some(&Value::Bool(false))
                {
                    entry.remove("external");
                }
                // v2 prints the engine name it derives, `<project>_<key>`.
                let derived = format!("{project}_{}", to_scalar(key));
                if let Value::Mapping(entry) = entry
                    && entry.get("name").and_then(Value::as_str) == Some(derived.as_str())
                {
                    entry.remove("name");
                }
            }
        }
    }
    if let Some(Value::Mapping(services)) = top.get_mut("services") {
        for (_, service) in services.iter_mut() {
            if let Value::Mapping(service) = service {
                canonical_service(service);
            }
        }
    }
    // v2 writes out the implicit `default` network (and each service's attachment to it).
    if let Some(Value::Mapping(networks)) = top.get_mut("networks") {
        if networks.get("default") == Some(&Value::Mapping(Mapping::new())) {
            networks.remove("default");
        }
        if networks.is_empty() {
            top.remove("networks");
        }
    }
    sorted(Value::Mapping(top))
}

fn canonical_service(service: &mut Mapping) {
    for key in ["environment", "labels"] {
        stringify_values(service.get_mut(key));
    }
    if service.get("environment") == Some(&Value::Mapping(Mapping::new())) {
        service.remove("environment");
    }
    // v2 prints a string test in its exec form (the engine takes either).
    if let Some(test) = service
        .get_mut("healthcheck")
        .and_then(|h| h.get_mut("test"))
        && let Value::String(line) = test
    {
        *test = Value::Sequence(vec!["CMD-SHELL".into(), line.clone().into()]);
    }
    // v2 prints sizes in bytes.
    if let Some(Value::Mapping(resources)) = service
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
    {
        for (_, limits) in resources.iter_mut() {
            if let Some(memory) = limits.get_mut("memory") {
                *memory = Value::String(bytes(&to_scalar(memory)));
            }
        }
    }
    if let Some(Value::Sequence(secrets)) = service.get_mut("secrets") {
        for secret in secrets.iter_mut() {
            let default = format!("/run/secrets/{}", to_scalar(&secret["source"]));
            if let Value::Mapping(secret) = secret {
                remove_if(secret, "target", &default);
            }
        }
    }
    if let Some(Value::Mapping(resources)) = service
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
    {
        // 1.29 turns some `cpus` strings into numbers and leaves others.
        for (_, limits) in resources.iter_mut() {
            if let Some(cpus) = limits.get_mut("cpus")
                && let Some(n) = to_scalar(cpus).parse::<f64>().ok()
            {
                *cpus = n.into();
            }
        }
    }
    if let Some(hosts) = service.get_mut("extra_hosts") {
        let mut list: Vec<String> = match hosts {
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| format!("{}:{}", to_scalar(k), to_scalar(v)))
                .collect(),
            Value::Sequence(items) => items
                .iter()
                .map(|i| to_scalar(i).replacen('=', ":", 1))
                .collect(),
            _ => Vec::new(),
        };
        list.sort();
        *hosts = Value::Sequence(list.into_iter().map(Value::String).collect());
    }
    if let Some(build) = service.get_mut("build") {
        stringify_values(build.get_mut("args"));
        if let Some(Value::Sequence(cache_from)) = build.get_mut("cache_from") {
            cache_from.sort_by_key(to_text);
        }
    }
    if let Some(Value::Mapping(networks)) = service.get_mut("networks") {
        for (_, network) in networks.iter_mut() {
            if network.is_null() {
                *network = Value::Mapping(Mapping::new());
            }
        }
    }
    if let Some(Value::Mapping(networks)) = service.get("networks")
        && networks.len() == 1
        && networks.get("default") == Some(&Value::Mapping(Mapping::new()))
    {
        service.remove("networks");
    }
    if let Some(Value::Mapping(build)) = service.get_mut("build") {
        remove_if(build, "dockerfile", "Dockerfile");
    }
    if let Some(Value::Mapping(deps)) = service.get_mut("depends_on") {
        for (_, dep) in deps.iter_mut() {
            if let Value::Mapping(dep) = dep
                && dep.get("required") == Some(&Value::Bool(true))
            {
                dep.remove("required");
            }
        }
    }
    if let Some(Value::Sequence(ports)) = service.get_mut("ports") {
        let mut out: Vec<Value> = ports
            .iter()
            .flat_map(|p| port_entries(p).expect("a port both tools accepted"))
            .map(|mut p| {
                let map = p.as_mapping_mut().expect("long syntax");
                remove_if(map, "mode", "ingress");
                remove_if(map, "protocol", "tcp");
                sorted(p)
            })
            .collect();
        out.sort_by_key(to_text);
        *ports = out;
    }
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        let mut out: Vec<Value> = volumes
            .iter()
            .flat_map(|v| volume_entry(v).expect("a volume both tools accepted"))
            .map(|mut v| {
                let map = v.as_mapping_mut().expect("long syntax");
                if map.get("read_only") == Some(&Value::Bool(false)) {
                    map.remove("read_only");
                }
                // v2 drops the consistency (it has no effect on Linux).
                map.remove("consistency");
                // v2 leaves an absolute bind source as written, hooks cleans it.
                if let Some(Value::String(source)) = map.get_mut("source")
                    && source.len() > 1
                {
                    *source = source.trim_end_matches('/').to_owned();
                }
                for nested in ["bind", "volume"] {
                    if let Some(Value::Mapping(inner)) = map.get_mut(nested) {
                        inner.remove("create_host_path");
                        if inner.is_empty() {
                            map.remove(nested);
                        }
                    }
                }
                v
            })
            .collect();
        out.sort_by_key(|v| to_text(&v["target"]));
        *volumes = out;
    }
    if let Some(Value::Sequence(profiles)) = service.get_mut("profiles") {
        profiles.sort_by_key(to_text);
    }
    for key in ["secrets", "configs"] {
        if let Some(Value::Sequence(items)) = service.get_mut(key) {
            items.sort_by_key(|i| to_text(&i["source"]));
        }
    }
}

/// `512M`, `1g`, `1073741824` → bytes, as text.
fn bytes(text: &str) -> String {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (digits, factor) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        _ => (lower, 1),
    };
    digits
        .parse::<u64>()
        .map(|n| (n * factor).to_string())
        .unwrap_or_else(|_| text.to_owned())
}

fn to_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => to_text(other).trim_end().to_owned(),
    }
}

fn remove_if(map: &mut Mapping, key: &str, default: &str) {
    if map.get(key).and_then(Value::as_str) == Some(default) {
        map.remove(key);
    }
}

fn stringify_values(value: Option<&mut Value>) {
    if let Some(Value::Mapping(map)) = value {
        for (_, v) in map.iter_mut() {
            match v {
                Value::Number(n) => *v = Value::String(n.to_string()),
                Value::Bool(b) => *v = Value::String(b.to_string()),
                _ => {}
            }
        }
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Mapping(map) => {
            let mut entries: Vec<(Value, Value)> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by_key(|(k, _)| to_text(k));
            Value::Mapping(entries.into_iter().collect())
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn to_text(value: &Value) -> String {
    serde_yaml::to_string(value).expect("YAML prints")
}

/// The lines where the two outputs part, for a readable failure: after the common beginning,
/// the next lines of each.
fn difference(tool: &str, ours: &str) -> String {
    let common = tool
        .lines()
        .zip(ours.lines())
        .take_while(|(a, b)| a == b)
        .count();
    let only = |a: &str, _: &str| -> Vec<String> {
        let start = common.saturating_sub(3);
        a.lines().skip(start).take(12).map(String::from).collect()
    };
    format!(
        "the tool's output from the first difference:\n  {}\nours:\n  {}",
        only(tool, ours).join("\n  "),
        only(ours, tool).join("\n  ")
    )
}

/// One set of files to compare: where it lives, and its files in merge order.
struct Set {
    name: String,
    dir: PathBuf,
    files: Vec<String>,
    /// Copy the whole directory (fixtures carry `.env` and env files), not only `files`.
    copy_all: bool,
}

/// The merge-rule fixtures, `v2-classes` (the shell words, path cleaning and unused volume
/// cases where hooks used to differ from Compose v2) and `mounts` (anonymous and tmpfs volumes,
/// the tmpfs key, configs from files, content and the environment).
const FIXTURES: &[(&str, &[&str])] = &[
    ("merge", &["compose.yaml", "override.yaml"]),
    ("reset", &["compose.yaml", "override.yaml"]),
    ("v2-classes", &["compose.yaml", "override.yaml"]),
    ("interpolation", &["compose.yaml"]),
    ("paths", &["compose.yaml", "sub/override.yaml"]),
    ("profiles", &["compose.yaml"]),
    ("mounts", &["compose.yaml", "override.yaml"]),
];

/// The project's own stack: local development alone, and production merged over it. Only the
/// compose files are copied (build contexts are created empty, bind mounts and secret files
/// are not read by `config`), so the comparison is about the model, not the checkout.
const PROJECT_SETS: &[(&str, &[&str])] = &[
    ("development", &["docker-compose.yml"]),
    ("production", &["docker-compose.yml", "production.yml"]),
];

/// The public sets, the fixtures, and the project's own `docker-compose.yml` alone and with
/// `production.yml`.
fn sets() -> Vec<Set> {
    let public = corpus().join("compose/public");
    let list = std::fs::read_to_string(public.join("sets.tsv")).expect("sets.tsv");
    let mut sets: Vec<Set> = list
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            Set {
                name: fields[0].to_owned(),
                dir: public.join(fields[0]),
                files: fields[1].split(',').map(String::from).collect(),
                copy_all: false,
            }
        })
        .collect();
    assert_eq!(sets.len(), 20, "the corpus has 20 public sets");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose");
    sets.extend(FIXTURES.iter().map(|(name, files)| Set {
        name: format!("fixture/{name}"),
        dir: fixtures.join(name),
        files: files.iter().map(|f| f.to_string()).collect(),
        copy_all: true,
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, files) in PROJECT_SETS {
        sets.push(Set {
            name: format!("project/{name}"),
            dir: root.clone(),
            files: files.iter().map(|f| f.to_string()).collect(),
            copy_all: false,
        });
    }
    sets
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

#[test]
fn every_set_matches_the_compose_tool_or_the_table_says_why() {
    let version = compose_tool();
    let table = table();
    let sets = sets();
    let mut failures = Vec::new();
    for set in &sets {
        let Some((env, verdict)) = table.get(&set.name) else {
            failures.push(format!("{}: no row in compose_conformance.tsv", set.name));
            continue;
        };
        let temp = tempfile::tempdir().expect("tempdir");
        // The copy keeps the set's name, which becomes the project name for both tools.
        let dir = temp
            .path()
            .join(set.name.rsplit('/').next().unwrap_or_default());
        if set.copy_all {
            copy_dir(&set.dir, &dir);
        } else {
            std::fs::create_dir(&dir).expect("set dir");
            for file in &set.files {
                std::fs::copy(set.dir.join(file), dir.join(file)).expect("copy set file");
            }
        }
        let files: Vec<&str> = set.files.iter().map(String::as_str).collect();
        let set = set.name.as_str();
        let outcome = run_set(&dir, &files, env);
        let problem = match (&outcome, verdict) {
            // The project's own files must load in hooks whatever the installed tool says.
            (Outcome::ToolRejects(_, Err(e)), Verdict::ToolRejects(_))
                if set.starts_with("project/") =>
            {
                Some(format!("hooks rejects the project's own files: {e}"))
            }
            (Outcome::ToolRejects(..), Verdict::ToolRejects(_)) => None,
            (Outcome::ToolRejects(why, _), _) => Some(format!("the tool rejects it: {why}")),
            (Outcome::Compared { .. }, Verdict::ToolRejects(_)) => {
                Some("the table says the tool rejects it, but it accepts it".to_owned())
            }
            (
                Outcome::Compared {
                    tool,
                    ours: Ok(ours),
                },
                Verdict::Equal,
            ) if tool != ours => Some(format!("differs:\n{}", difference(tool, ours))),
            (Outcome::Compared { ours: Err(e), .. }, Verdict::Equal) => {
                Some(format!("hooks rejects it: {e}"))
            }
            (
                Outcome::Compared {
                    tool,
                    ours: Ok(ours),
                },
                Verdict::Differs(_),
            ) if tool == ours => {
                Some("the table says it differs, but the models are equal".to_owned())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            failures.push(format!("{set} (table: {verdict:?}): {problem}"));
        }
        if std::env::var_os("COMPOSE_CONFORMANCE_SHOW").is_some() {
            match &outcome {
                Outcome::ToolRejects(why, ours) => {
                    eprintln!("== {set}: tool rejects: {why}\n   hooks: {ours:?}")
                }
                Outcome::Compared { ours: Err(e), .. } => eprintln!("== {set}: hooks rejects: {e}"),
                Outcome::Compared {
                    tool,
                    ours: Ok(ours),
                } if tool == ours => {
                    eprintln!("== {set}: equal")
                }
                Outcome::Compared {
                    tool,
                    ours: Ok(ours),
                } => {
                    eprintln!("== {set}: differs\n{}", difference(tool, ours))
                }
            }
        }
    }
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    for row in table.keys() {
        assert!(
            names.contains(&row.as_str()),
            "compose_conformance.tsv: {row} is no set (any more)"
        );
    }
    assert!(
        failures.is_empty(),
        "{version}: {} set(s) disagree with compose_conformance.tsv:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
