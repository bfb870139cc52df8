//! The loaded project: reading each file, interpolating, normalising, merging, then the
//! project-wide steps (profiles, `env_file`, relative paths, the project name).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::error::{ComposeError, KeyPath, Location};
use super::interpolate::{Unset, interpolate_value, key_name};
use super::values::scalar_string;
use super::{LoadOptions, dotenv, merge, normalize, schema};

/// A merged, interpolated and normalised compose project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project name (`com.docker.compose.project`).
    pub name: String,
    /// The first file's directory, against which relative paths were resolved.
    pub working_dir: PathBuf,
    /// The files, in merge order.
    pub files: Vec<PathBuf>,
    /// The merged model: `services`, `networks`, `volumes`, `secrets`, `configs` and
    /// extension (`x-`) keys, every service in long syntax.
    pub model: Mapping,
    /// Things the Compose tool would warn about (unset variables, an obsolete `version`).
    pub warnings: Vec<String>,
}

impl Project {
    /// The names of the enabled services, in the order the files define them.
    pub fn service_names(&self) -> Vec<String> {
        self.section("services").keys().map(key_name).collect()
    }

    /// One service's merged definition.
    pub fn service(&self, name: &str) -> Option<&Mapping> {
        self.model.get("services")?.get(name)?.as_mapping()
    }

    /// A top-level section (`services`, `networks`, ...), empty when absent.
    pub fn section(&self, key: &str) -> Mapping {
        self.model
            .get(key)
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    }

    /// The merged model as YAML, in the shape `docker compose config` prints: the project
    /// `name` first, then the sections, keys sorted, and every `$` in a value written `$$` so
    /// the output is itself a valid compose file.
    pub fn to_yaml(&self) -> String {
        let mut out = Mapping::new();
        out.insert("name".into(), self.name.as_str().into());
        for (key, value) in sorted(escape_dollars(Value::Mapping(self.model.clone())))
            .as_mapping()
            .into_iter()
            .flatten()
        {
            out.insert(key.clone(), value.clone());
        }
        serde_yaml::to_string(&out).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn escape_dollars(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('$', "$$")),
        Value::Mapping(map) => map
            .into_iter()
            .map(|(k, v)| (k, escape_dollars(v)))
            .collect::<Mapping>()
            .into(),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(escape_dollars).collect()),
        other => other,
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Mapping(map) => {
            let mut entries: Vec<(Value, Value)> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by_key(|(k, _)| key_name(k));
            Value::Mapping(entries.into_iter().collect())
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Loads and merges the files of `options`; see [`super::load`].
pub fn load(options: &LoadOptions) -> Result<Project, ComposeError> {
    let first = options.files.first().ok_or(ComposeError::NoFiles)?;
    let first = std::path::absolute(first).map_err(|source| ComposeError::Read {
        file: first.clone(),
        source,
    })?;
    let working_dir = first.parent().map(Path::to_path_buf).unwrap_or_default();
    let env = environment(options, &working_dir)?;
    let mut unset = Unset::new();
    let mut warnings = Vec::new();
    let mut model = Mapping::new();
    for file in &options.files {
        let document = read_document(file, &env, &mut unset)?;
        merge::merge_file(&mut model, document, file)?;
    }
    warnings.extend(
        unset
            .iter()
            .map(|name| format!("the {name} variable is not set; defaulting to a blank string")),
    );
    if model.remove("version").is_some() {
        warnings.push("the top-level `version` is obsolete and ignored".to_owned());
    }
    let top_name = model.remove("name").and_then(|v| scalar_string(&v));
    let name = project_name(options, &env, top_name, &working_dir, first.as_path())?;
    let merged = merged_label(&options.files);
    let relocate = |error| relocate(error, &merged, &options.files);
    apply_profiles(&mut model, options, &env, &merged).map_err(relocate)?;
    schema::check_references(&model, &merged).map_err(relocate)?;
    let services = model.get_mut("services").and_then(Value::as_mapping_mut);
    for (service_name, service) in services.into_iter().flatten() {
        let at = KeyPath::root().key("services").key(&key_name(service_name));
        let Value::Mapping(service) = service else {
            continue;
        };
        finish_service(service, &env, &working_dir, &merged, &at).map_err(relocate)?;
    }
    super::mounts::drop_unused(&mut model);
    for section in ["networks", "volumes", "secrets", "configs"] {
        let entries = model.get_mut(section).and_then(Value::as_mapping_mut);
        for (key, entry) in entries.into_iter().flatten() {
            if entry.is_null() {
                *entry = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(entry) = entry else {
                continue;
            };
            if let Some(Value::String(path)) = entry.get_mut("file") {
                *path = resolve(&working_dir, path, &env);
            }
            // An external resource is looked up by its key unless it names another.
            let external = entry.get("external").is_some_and(is_true);
            if external && !entry.contains_key("name") {
                entry.insert("name".into(), key.clone());
            }
        }
    }
    Ok(Project {
        name,
        working_dir,
        files: options.files.clone(),
        model,
        warnings,
    })
}

/// How errors about the merged model name their source: `a.yml+b.yml` (a value there may come
/// from any of the files).
fn merged_label(files: &[PathBuf]) -> PathBuf {
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    PathBuf::from(names.join("+"))
}

/// Points an error about the merged model at the last file (in merge order) that writes the
/// value, with its line and column; keeps the `a.yml+b.yml` label when none does.
fn relocate(error: ComposeError, label: &Path, files: &[PathBuf]) -> ComposeError {
    match error {
        ComposeError::Invalid {
            at,
            message,
            expected,
        } if at.file == label => {
            let at = files
                .iter()
                .rev()
                .map(|file| Location::new(file, &at.path))
                .find(|located| located.position.is_some())
                .unwrap_or(at);
            ComposeError::Invalid {
                at,
                message,
                expected,
            }
        }
        other => other,
    }
}

/// The variables for interpolation: the project's `.env` file, overridden by the given
/// environment (the process environment wins, as with the Compose tool).
fn environment(
    options: &LoadOptions,
    working_dir: &Path,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let dotenv_file = working_dir.join(".env");
    let mut env = if dotenv_file.is_file() {
        dotenv::read(&dotenv_file, &options.environment)?
    } else {
        BTreeMap::new()
    };
    env.extend(options.environment.clone());
    Ok(env)
}

/// One file: parsed, `<<` merge keys applied, interpolated, checked and normalised.
fn read_document(
    file: &Path,
    env: &BTreeMap<String, String>,
    unset: &mut Unset,
) -> Result<Mapping, ComposeError> {
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Read {
        file: file.to_owned(),
        source,
    })?;
    let syntax = |message: String| ComposeError::Syntax {
        file: file.to_owned(),
        message,
    };
    let mut value: Value = serde_yaml::from_str(&text).map_err(|e| syntax(e.to_string()))?;
    apply_merge_keys(&mut value).map_err(|e| syntax(e.to_string()))?;
    let root = KeyPath::root();
    let mut document = match value {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        _ => {
            return Err(ComposeError::invalid(
                file,
                &root,
                "the document is not a mapping",
                "a mapping with `services:` at the top",
            ));
        }
    };
    for (key, value) in document.iter_mut() {
        interpolate_value(value, env, unset, file, &root.key(&key_name(key)))?;
    }
    schema::check_document(&document, file)?;
    if let Some(Value::Mapping(services)) = document.get_mut("services") {
        for (name, service) in services.iter_mut() {
            let at = root.key("services").key(&key_name(name));
            let target = match service {
                Value::Tagged(tagged) => &mut tagged.value,
                other => other,
            };
            if let Value::Mapping(service) = target {
                normalize::service(service, file, &at)?;
            }
        }
    }
    Ok(document)
}

/// Applies `<<` merge keys until none is left (a merged mapping may bring its own `<<`).
fn apply_merge_keys(value: &mut Value) -> Result<(), serde_yaml::Error> {
    for _ in 0..32 {
        value.apply_merge()?;
        if !has_merge_key(value) {
            break;
        }
    }
    Ok(())
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map.contains_key("<<") || map.values().any(has_merge_key),
        Value::Sequence(items) => items.iter().any(has_merge_key),
        Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}

/// `-p`, then `COMPOSE_PROJECT_NAME`, then the top-level `name:`, else the first file's
/// directory name made valid.
fn project_name(
    options: &LoadOptions,
    env: &BTreeMap<String, String>,
    top_name: Option<String>,
    working_dir: &Path,
    first: &Path,
) -> Result<String, ComposeError> {
    let explicit = [
        (options.project_name.clone(), "-p"),
        (
            env.get("COMPOSE_PROJECT_NAME").cloned(),
            "COMPOSE_PROJECT_NAME",
        ),
        (top_name, "the top-level `name`"),
    ];
    for (candidate, origin) in explicit {
        if let Some(name) = candidate.filter(|n| !n.is_empty()) {
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                return Err(ComposeError::invalid(
                    first,
                    &KeyPath::root().key("name"),
                    format!("the project name {name:?} from {origin} is not valid"),
                    "lowercase letters, digits, '-' and '_', starting with a letter or digit",
                ));
            }
            return Ok(name);
        }
    }
    let dir = working_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = dir
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    let name = name.trim_start_matches(['-', '_']).to_owned();
    if name.is_empty() {
        return Err(ComposeError::invalid(
            first,
            &KeyPath::root(),
            format!("no project name can be made from the directory name {dir:?}"),
            "a project name; pass one with -p NAME or set `name:` in the file",
        ));
    }
    Ok(name)
}

/// Removes the services whose profiles are all inactive; `*` activates every profile.
/// `COMPOSE_PROFILES` (comma-separated) is used when no profile was given.
fn apply_profiles(
    model: &mut Mapping,
    options: &LoadOptions,
    env: &BTreeMap<String, String>,
    file: &Path,
) -> Result<(), ComposeError> {
    let mut active: BTreeSet<String> = options.profiles.iter().cloned().collect();
    if active.is_empty()
        && let Some(list) = env.get("COMPOSE_PROFILES")
    {
        active.extend(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    let Some(Value::Mapping(services)) = model.get_mut("services") else {
        return Ok(());
    };
    let mut disabled = BTreeMap::new();
    services.retain(|name, service| {
        let profiles: Vec<String> = service
            .get("profiles")
            .and_then(Value::as_sequence)
            .map(|p| p.iter().filter_map(scalar_string).collect())
            .unwrap_or_default();
        let enabled = profiles.is_empty()
            || active.contains("*")
            || profiles.iter().any(|p| active.contains(p));
        if !enabled {
            disabled.insert(key_name(name), profiles.join(", "));
        }
        enabled
    });
    for (name, service) in services.iter() {
        let deps = service.get("depends_on").and_then(Value::as_mapping);
        for (dep, spec) in deps.into_iter().flatten() {
            let required = spec.get("required").and_then(Value::as_bool) != Some(false);
            if let Some(profiles) = disabled.get(&key_name(dep))
                && required
            {
                let at = KeyPath::root()
                    .key("services")
                    .key(&key_name(name))
                    .key("depends_on")
                    .key(&key_name(dep));
                return Err(ComposeError::invalid(
                    file,
                    &at,
                    format!(
                        "{} is only enabled by the profile(s) {profiles}",
                        key_name(dep)
                    ),
                    "an enabled service; activate one of its profiles with --profile",
                ));
            }
        }
    }
    Ok(())
}

/// Project-level steps on one merged service: `env_file` folded into `environment`, variables
/// without a value taken from the environment, relative paths made absolute, `depends_on`
/// defaults filled in.
fn finish_service(
    service: &mut Mapping,
    env: &BTreeMap<String, String>,
    dir: &Path,
    file: &Path,
    at: &KeyPath,
) -> Result<(), ComposeError> {
    let mut environment = Mapping::new();
    if let Some(Value::Sequence(env_files)) = service.remove("env_file") {
        for (i, entry) in env_files.iter().enumerate() {
            let (path, required) = match entry {
                Value::Mapping(m) => (
                    m.get("path").and_then(scalar_string),
                    m.get("required").and_then(Value::as_bool) != Some(false),
                ),
                other => (scalar_string(other), true),
            };
            let Some(path) = path else {
                return Err(ComposeError::invalid(
                    file,
                    &at.key("env_file").index(i),
                    "no path",
                    "a path or a mapping with path and required",
                ));
            };
            let path = PathBuf::from(resolve(dir, &path, env));
            if !path.is_file() && !required {
                continue;
            }
            if !path.is_file() {
                return Err(ComposeError::invalid(
                    file,
                    &at.key("env_file").index(i),
                    format!("the env file {} does not exist", path.display()),
                    "an existing file (paths are relative to the first compose file's directory), or `required: false`",
                ));
            }
            for (k, v) in dotenv::read(&path, env)? {
                environment.insert(k.into(), v.into());
            }
        }
    }
    if let Some(Value::Mapping(own)) = service.remove("environment") {
        environment.extend(own);
    }
    from_environment(&mut environment, env);
    if !environment.is_empty() {
        service.insert("environment".into(), Value::Mapping(environment));
    }
    if let Some(Value::Mapping(build)) = service.get_mut("build") {
        if let Some(Value::String(context)) = build.get_mut("context")
            && !is_remote(context)
        {
            *context = resolve(dir, context, env);
        }
        if let Some(Value::Mapping(args)) = build.get_mut("args") {
            from_environment(args, env);
            // An argument without a value that the environment does not set is not passed, so
            // the Dockerfile's `ARG` default applies (as with Compose v2).
            args.retain(|_, v| !v.is_null());
        }
        if build
            .get("args")
            .and_then(Value::as_mapping)
            .is_some_and(Mapping::is_empty)
        {
            build.remove("args");
        }
    }
    // `develop.watch` paths are relative to the project directory, like bind sources.
    if let Some(Value::Sequence(watch)) =
        service.get_mut("develop").and_then(|d| d.get_mut("watch"))
    {
        for rule in watch.iter_mut() {
            if let Some(Value::String(path)) = rule.get_mut("path") {
                *path = resolve(dir, path, env);
            }
        }
    }
    coerce_numbers(service);
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        for volume in volumes.iter_mut() {
            let is_bind = volume.get("type").and_then(Value::as_str) == Some("bind");
            if let Some(Value::String(source)) = volume.get_mut("source")
                && is_bind
            {
                *source = resolve(dir, source, env);
            }
        }
    }
    if let Some(Value::Mapping(deps)) = service.get_mut("depends_on") {
        for (_, spec) in deps.iter_mut() {
            if !spec.is_mapping() {
                *spec = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(spec) = spec {
                if !spec.contains_key("condition") {
                    spec.insert("condition".into(), "service_started".into());
                }
                if !spec.contains_key("required") {
                    spec.insert("required".into(), true.into());
                }
            }
        }
    }
    Ok(())
}

/// Entries without a value (`- NAME`) take the variable's value when it is set.
fn from_environment(map: &mut Mapping, env: &BTreeMap<String, String>) {
    for (key, value) in map.iter_mut() {
        if value.is_null()
            && let Some(found) = env.get(&key_name(key))
        {
            *value = found.as_str().into();
        }
    }
}

/// `external: true`, written as a boolean or (after interpolation) as a string.
fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Numbers the specification types as numbers even when written as strings (`cpus: '0.5'`).
fn coerce_numbers(service: &mut Mapping) {
    fn to_float(value: &mut Value) {
        if let Value::String(s) = value
            && let Ok(n) = s.parse::<f64>()
        {
            *value = n.into();
        }
    }
    if let Some(cpus) = service.get_mut("cpus") {
        to_float(cpus);
    }
    if let Some(Value::Mapping(resources)) = service
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
    {
        for (_, limits) in resources.iter_mut() {
            if let Some(cpus) = limits.get_mut("cpus") {
                to_float(cpus);
            }
        }
    }
}

/// A build context that is a URL (git or http) rather than a directory.
fn is_remote(context: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "github.com/",
        "ssh://",
    ]
    .iter()
    .any(|prefix| context.starts_with(prefix))
}

/// `path` made absolute against `dir` (`~` is the `HOME` of the environment), with `.` and
/// `..` removed lexically as the Compose tool does. Windows paths are left as written.
pub fn resolve(dir: &Path, path: &str, env: &BTreeMap<String, String>) -> String {
    if path.as_bytes().get(1) == Some(&b':') || path.starts_with('\\') {
        return path.to_owned();
    }
    let joined = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = env.get("HOME").cloned().unwrap_or_default();
            PathBuf::from(format!("{home}{rest}"))
        }
        _ => dir.join(path),
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}
