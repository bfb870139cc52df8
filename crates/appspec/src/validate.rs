//! The CodeDeploy sections: `files`, `permissions` and `hooks`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::diag::{Diag, join};
use super::suggest::{closest, did_you_mean};
use super::{FileMapping, HookScript, LifecycleEvent, ObjectKind, Permission};
use hooks_yaml::{Entry, Node, Resolved};

/// CodeDeploy's ceiling for one script and for a whole event, in seconds.
const MAX_TIMEOUT: u64 = 3600;

/// The mapping entries of a list item, or an error showing the expected shape.
fn item_map<'n>(d: &mut Diag, item: &'n Node, path: &str, shape: &str) -> Option<&'n [Entry]> {
    let entries = item.as_map();
    if entries.is_none() {
        d.error(item.pos, path, format!("got {}; expected a mapping like `{shape}`; write the entry as `- key: value` lines", item.describe()));
    }
    entries
}

/// Reports an unknown key, with a suggestion when it is a typo of an allowed one. Returns the
/// key it was probably meant to be, so a "missing key" error is not added on top.
fn unknown_key(
    d: &mut Diag,
    entry: &Entry,
    path: &str,
    section: &str,
    allowed: &[&'static str],
) -> Option<&'static str> {
    let key = entry.key.as_text().unwrap_or("?");
    let meant = closest(key, allowed);
    d.error(
        entry.key.pos,
        &join(path, key),
        format!(
            "unknown key '{key}' in {section}{}; expected {}; rename or remove it",
            did_you_mean(key, allowed),
            allowed.join(", ")
        ),
    );
    meant
}

/// Reads `files:`; a missing or empty section installs nothing.
pub(crate) fn files(d: &mut Diag, node: &Node) -> Vec<FileMapping> {
    const KEYS: &[&str] = &["source", "destination"];
    let mut out = Vec::new();
    for (i, item) in d
        .list(node, "files", "{source, destination} entries")
        .iter()
        .enumerate()
    {
        let path = format!("files[{i}]");
        let Some(entries) = item_map(d, item, &path, "- source: /  destination: /srv/app") else {
            continue;
        };
        let (mut source, mut destination) = (None, None);
        let mut present: Vec<&str> = Vec::new();
        for entry in entries {
            let key = entry.key.as_text().unwrap_or("?");
            let key_path = join(&path, key);
            match key {
                "source" => {
                    present.push("source");
                    source = d.string(&entry.value, &key_path, "a path inside the bundle ('/' for all of it)");
                    if source.as_deref().is_some_and(leaves_bundle) {
                        d.error(entry.value.pos, &key_path, format!(
                            "'{}' leaves the bundle through '..'; a source is a path inside the bundle ('/' for all of it); remove the '..'",
                            source.take().unwrap_or_default()
                        ));
                    }
                    if source.as_deref().is_some_and(|s| s.contains('*')) {
                        d.warn(
                            entry.value.pos,
                            &key_path,
                            "the source contains '*', but CodeDeploy copies the path literally (no wildcards), so it looks for a file named with a '*'; name a file or a directory",
                        );
                    }
                }
                "destination" => {
                    present.push("destination");
                    destination = d
                        .string(&entry.value, &key_path, "an absolute path on the server")
                        .and_then(|dest| absolute(d, &entry.value, &key_path, dest));
                }
                // The agent ignores every other key of a files entry, so an appspec it deploys
                // must not be refused here: each is a warning saying what happens instead.
                "overwrite" => d.warn(
                    entry.key.pos,
                    &key_path,
                    "`overwrite` is not an AppSpec key and is ignored (by the agent too); what happens to existing files is set by the \
                     top-level `file_exists_behavior` (DISALLOW by default, OVERWRITE or RETAIN); remove it and set \
                     `file_exists_behavior: OVERWRITE` at the top level if that is what you want",
                ),
                "owner" | "group" | "mode" => d.warn(
                    entry.key.pos,
                    &key_path,
                    format!("'{key}' is not a files key and is ignored (by the agent too); set it in a `permissions:` entry (object: DESTINATION, {key}: …)"),
                ),
                // A misspelt required key leaves the entry without it, which the agent refuses
                // too: one error, at the typo.
                _ if closest(key, KEYS).is_some() => {
                    present.extend(unknown_key(d, entry, &path, "a files entry", KEYS));
                }
                _ => {
                    d.warn(
                        entry.key.pos,
                        &key_path,
                        format!(
                            "unknown key '{key}' in a files entry{} is ignored (by the agent too); expected {}; rename or remove it",
                            did_you_mean(key, KEYS),
                            KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        for key in KEYS {
            if !present.contains(key) {
                d.error(
                    item.pos,
                    &join(&path, key),
                    format!(
                        "the key is missing; expected both source and destination; add `{key}:`"
                    ),
                );
            }
        }
        if let (Some(source), Some(destination)) = (source, destination) {
            out.push(FileMapping {
                source,
                destination,
            });
        }
    }
    out
}

/// Server paths must be absolute Linux paths; Windows paths get a word of their own.
fn absolute(d: &mut Diag, node: &Node, path: &str, value: String) -> Option<PathBuf> {
    if value.starts_with('/') {
        return Some(PathBuf::from(value));
    }
    let windows = value.contains('\\') || value.get(1..2) == Some(":");
    let why = if windows {
        " (it is a Windows path; hooks deploys to Linux)"
    } else {
        ""
    };
    d.error(node.pos, path, format!("'{value}' is not an absolute path{why}; expected a path starting with '/'; write the full path on the server"));
    None
}

/// Reads `permissions:`, applied by the Install step after files are copied.
pub(crate) fn permissions(d: &mut Diag, node: &Node) -> Vec<(Permission, hooks_yaml::Pos)> {
    const KEYS: &[&str] = &[
        "object", "pattern", "except", "owner", "group", "mode", "type",
    ];
    let mut out = Vec::new();
    for (i, item) in d
        .list(node, "permissions", "permission entries")
        .iter()
        .enumerate()
    {
        let path = format!("permissions[{i}]");
        let Some(entries) = item_map(d, item, &path, "- object: /srv/app  owner: app  mode: 755")
        else {
            continue;
        };
        let mut perm = Permission {
            object: PathBuf::new(),
            pattern: "**".into(),
            except: Vec::new(),
            kinds: Vec::new(),
            owner: None,
            group: None,
            mode: None,
        };
        let mut present: Vec<&str> = Vec::new();
        let mut object_pos = item.pos;
        let mut ok = true;
        for entry in entries {
            let key = entry.key.as_text().unwrap_or("?");
            let key_path = join(&path, key);
            let value = &entry.value;
            let before = d.error_count();
            match key {
                "object" => {
                    present.push("object");
                    object_pos = value.pos;
                    if let Some(object) = d.string(value, &key_path, "an absolute path on the server") {
                        perm.object = absolute(d, value, &key_path, object).unwrap_or_default();
                    }
                }
                "pattern" => perm.pattern = d.string(value, &key_path, "a glob such as `**` or `*.sh`").unwrap_or_default(),
                "except" => perm.except = strings(d, value, &key_path, "globs"),
                "owner" => perm.owner = d.string(value, &key_path, "a user name"),
                "group" => perm.group = d.string(value, &key_path, "a group name"),
                "mode" => perm.mode = mode(d, value, &key_path),
                "type" => perm.kinds = kinds(d, value, &key_path),
                "acls" | "context" => d.error(
                    entry.key.pos,
                    &key_path,
                    format!("'{key}' ({}) is not supported by hooks; expected only object, pattern, except, type, owner, group, mode; remove it and set it from an AfterInstall script", if key == "acls" { "POSIX ACLs" } else { "SELinux context" }),
                ),
                _ => present.extend(unknown_key(d, entry, &path, "a permissions entry", KEYS)),
            }
            ok &= d.error_count() == before;
        }
        if !present.contains(&"object") {
            d.error(item.pos, &join(&path, "object"), "the key is missing; expected the installed path the entry applies to; add `object: /path`");
        } else if ok {
            out.push((perm, object_pos));
        }
    }
    out
}

/// Whether a path relative to the bundle root climbs out of it (`../x`, `a/../../x`). The
/// agent joins even a leading `/` to the bundle root, so only `..` can leave it; links that
/// lead outside are refused when the bundle is unpacked.
pub(crate) fn leaves_bundle(path: &str) -> bool {
    let mut depth = 0usize;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// `path` with `.` and `..` resolved lexically (absolute paths only: `..` at `/` stays at `/`).
pub fn lexically_clean(path: &std::path::Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for part in path.components() {
        match part {
            std::path::Component::Normal(name) => clean.push(name),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    clean
}

/// The agent applies `permissions:` only to what `files:` installed; an object outside every
/// destination would change modes of files this deployment did not install.
pub(crate) fn permissions_inside_files(
    d: &mut Diag,
    files: &[FileMapping],
    permissions: &[(Permission, hooks_yaml::Pos)],
) {
    for (i, (permission, pos)) in permissions.iter().enumerate() {
        let object = lexically_clean(&permission.object);
        // `object: /` with a pattern is common: it selects every installed path below it.
        let inside = files.iter().any(|f| {
            let destination = lexically_clean(&f.destination);
            object.starts_with(&destination) || destination.starts_with(&object)
        });
        if !inside {
            let destinations: Vec<String> = files
                .iter()
                .map(|f| f.destination.display().to_string())
                .collect();
            d.error(*pos, &format!("permissions[{i}].object"), format!(
                "{} is neither inside nor above any `files:` destination ({}); permissions apply only to what `files:` installs (as with the CodeDeploy agent), so this entry would change nothing the deployment installed; point it at a destination, or change those modes from an AfterInstall script",
                permission.object.display(),
                if destinations.is_empty() { "there is no files: section".to_owned() } else { destinations.join(", ") }
            ));
        }
    }
}

fn strings(d: &mut Diag, node: &Node, path: &str, what: &str) -> Vec<String> {
    let items = d.list(node, path, what);
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| d.string(item, &format!("{path}[{i}]"), "a string"))
        .collect()
}

fn kinds(d: &mut Diag, node: &Node, path: &str) -> Vec<ObjectKind> {
    let mut out = Vec::new();
    for (i, item) in d
        .list(node, path, "`file` / `directory`")
        .iter()
        .enumerate()
    {
        match item.as_text() {
            Some("file") => out.push(ObjectKind::File),
            Some("directory") => out.push(ObjectKind::Directory),
            _ => d.error(
                item.pos,
                &format!("{path}[{i}]"),
                format!(
                    "{} is not an object type{}; expected file or directory; write one of them",
                    item.describe(),
                    did_you_mean(item.as_text().unwrap_or(""), &["file", "directory"])
                ),
            ),
        }
    }
    out
}

/// `mode`: one to four octal digits, as CodeDeploy takes them (`755`, `0644`, `4755`).
fn mode(d: &mut Diag, node: &Node, path: &str) -> Option<u32> {
    let Some(scalar) = node.as_scalar().filter(|_| !node.is_null()) else {
        d.error(
            node.pos,
            path,
            format!(
                "got {}{}; expected 1 to 4 octal digits such as 755; write the mode",
                node.describe(),
                d.null_hint(node.pos)
            ),
        );
        return None;
    };
    let text = scalar.text.as_str();
    let octal = |t: &str| !t.is_empty() && t.bytes().all(|b| (b'0'..=b'7').contains(&b));
    // YAML 1.1, which the CodeDeploy agent's parser (Ruby's Psych) follows, reads an unquoted
    // `0644` as the octal integer 420; the agent then takes that number's decimal digits as the
    // mode. hooks does what the agent does, and says so.
    let agent_text = match u32::from_str_radix(text, 8) {
        Ok(value) if !scalar.quoted && text.len() > 1 && text.starts_with('0') && octal(text) => {
            value.to_string()
        }
        _ => text.to_owned(),
    };
    if agent_text != text {
        let plain = text.trim_start_matches('0');
        let plain = if plain.is_empty() { "0" } else { plain };
        if agent_text.len() > 4 || !octal(&agent_text) {
            d.error(node.pos, path, format!("unquoted {text} is the octal number {agent_text} in YAML 1.1 (the CodeDeploy agent's reading), and the agent refuses the mode {agent_text}; write `mode: {plain}` or `mode: \"{text}\"`"));
            return None;
        }
        d.warn(node.pos, path, format!("unquoted {text} is the octal number {agent_text} in YAML 1.1, so the CodeDeploy agent applies mode {agent_text}, and so does hooks; for mode {text} write `mode: {plain}` or `mode: \"{text}\"`"));
    }
    if agent_text.len() > 4 || !octal(&agent_text) {
        d.error(node.pos, path, format!("'{text}' is not a file mode; expected 1 to 4 octal digits such as 755 or 0640; write the mode in octal"));
        return None;
    }
    u32::from_str_radix(&agent_text, 8).ok()
}

/// Reads `hooks:`: lifecycle event → list of scripts.
pub(crate) fn hooks(d: &mut Diag, node: &Node) -> BTreeMap<LifecycleEvent, Vec<HookScript>> {
    let mut out: BTreeMap<LifecycleEvent, Vec<HookScript>> = BTreeMap::new();
    if node.is_null() {
        return out;
    }
    let Some(entries) = node.as_map() else {
        d.error(node.pos, "hooks", format!("got {}; expected a mapping of lifecycle event to scripts; write `hooks:` then `  EVENT:` lines", node.describe()));
        return out;
    };
    let scriptable: Vec<&str> = LifecycleEvent::ALL
        .iter()
        .filter(|e| e.is_scriptable())
        .map(|e| e.name())
        .collect();
    for entry in entries {
        let name = entry.key.as_text().unwrap_or("?");
        let path = join("hooks", name);
        let event = match LifecycleEvent::from_name(name) {
            Some(event) if event.is_scriptable() => event,
            Some(event) => {
                d.error(entry.key.pos, &path, reserved(event));
                continue;
            }
            None => {
                d.error(
                    entry.key.pos,
                    &path,
                    format!(
                        "unknown hook '{name}'{}; expected one of {}; rename it",
                        did_you_mean(name, &scriptable),
                        scriptable.join(", ")
                    ),
                );
                continue;
            }
        };
        let (scripts, explicit_total) = scripts(d, &entry.value, &path);
        // Defaults (3600 s each) are not counted: scripts without a timeout usually finish fast,
        // and warning about every event with two scripts would bury real findings.
        if explicit_total > MAX_TIMEOUT {
            d.warn(
                entry.key.pos,
                &path,
                format!("the scripts' timeouts add up to {explicit_total} s, but CodeDeploy stops an event after {MAX_TIMEOUT} s; lower them so they fit in one hour"),
            );
        }
        out.entry(event).or_default().extend(scripts);
    }
    out
}

fn reserved(event: LifecycleEvent) -> String {
    let (does, instead) = match event {
        LifecycleEvent::DownloadBundle => ("downloads the revision", "BeforeInstall"),
        LifecycleEvent::Install => (
            "copies the files: section into place",
            "BeforeInstall or AfterInstall",
        ),
        LifecycleEvent::BlockTraffic => (
            "takes the server out of the load balancer",
            "BeforeBlockTraffic or AfterBlockTraffic",
        ),
        _ => (
            "puts the server back into the load balancer",
            "BeforeAllowTraffic or AfterAllowTraffic",
        ),
    };
    format!(
        "'{event}' cannot run scripts: the agent performs it itself (it {does}); expected a scriptable event; move the scripts to {instead}"
    )
}

/// The scripts of one event and the sum of the timeouts they state explicitly.
fn scripts(d: &mut Diag, node: &Node, path: &str) -> (Vec<HookScript>, u64) {
    if node.is_null() {
        d.error(node.pos, path, format!("no scripts are listed for this event{}; expected a list of `- location: SCRIPT`; add a script or remove the event", d.null_hint(node.pos)));
        return (Vec::new(), 0);
    }
    if node.as_map().is_some() {
        d.error(
            node.pos,
            path,
            "got one mapping; expected a list of scripts; put `- ` before `location:`",
        );
        return (Vec::new(), 0);
    }
    let (mut out, mut explicit_total) = (Vec::new(), 0);
    for (i, item) in d.list(node, path, "scripts").iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if let Some(script) = script(d, item, &item_path) {
            if item.get("timeout").is_some() {
                explicit_total += script.timeout.as_secs();
            }
            out.push(script);
        }
    }
    (out, explicit_total)
}

fn script(d: &mut Diag, item: &Node, path: &str) -> Option<HookScript> {
    const KEYS: &[&str] = &["location", "timeout", "runas"];
    let entries = item_map(d, item, path, "- location: scripts/start.sh  timeout: 300")?;
    let before = d.error_count();
    let mut script = HookScript {
        location: String::new(),
        timeout: Duration::from_secs(MAX_TIMEOUT),
        runas: None,
    };
    let mut present: Vec<&str> = Vec::new();
    for entry in entries {
        let key = entry.key.as_text().unwrap_or("?");
        let key_path = join(path, key);
        match key {
            "location" => {
                present.push("location");
                if let Some(location) = d.string(&entry.value, &key_path, "the path of a script in the bundle") {
                    if leaves_bundle(&location) {
                        d.error(entry.value.pos, &key_path, format!(
                            "'{location}' leaves the bundle through '..'; a script's location is relative to the bundle root; put the script in the bundle and name it from there"
                        ));
                    }
                    script.location = location_of(d, &entry.value, &key_path, &location);
                }
            }
            "timeout" => {
                if let Some(timeout) = timeout(d, &entry.value, &key_path) {
                    script.timeout = timeout;
                }
            }
            "runas" => script.runas = d.string(&entry.value, &key_path, "a user name"),
            "commands" | "command" | "script" | "run" => d.error(
                entry.key.pos,
                &key_path,
                format!("'{key}' is not a hook key: CodeDeploy runs one script file per entry, not inline commands; expected location, timeout, runas; put the commands in a script in the bundle and name it in `location:`"),
            ),
            _ => present.extend(unknown_key(d, entry, path, "a hook script entry", KEYS)),
        }
    }
    if !present.contains(&"location") {
        d.error(item.pos, &join(path, "location"), "the key is missing; expected the path of the script in the bundle; add `location: scripts/NAME.sh`");
    }
    (d.error_count() == before).then_some(script)
}

/// The agent joins the location to the unpacked bundle, so a leading `/` still means "inside
/// the bundle"; it is dropped here so consumers can join it to the release directory.
fn location_of(d: &mut Diag, node: &Node, path: &str, location: &str) -> String {
    let name = location.rsplit('/').next().unwrap_or(location);
    if name.starts_with('.') && !name[1..].contains('.') && name.len() <= 5 {
        d.warn(node.pos, path, format!("the script name '{name}' is only an extension, which looks like a placeholder; name the script file"));
    }
    location.trim_start_matches('/').to_owned()
}

fn timeout(d: &mut Diag, node: &Node, path: &str) -> Option<Duration> {
    let seconds = match node.resolve() {
        Some(Resolved::Int(n)) => n,
        Some(Resolved::Str(s)) if s.parse::<i64>().is_ok() => {
            d.warn(
                node.pos,
                path,
                format!(
                    "timeout is quoted (\"{s}\"); write it as a number of seconds without quotes"
                ),
            );
            s.parse().unwrap_or_default()
        }
        _ => {
            d.error(node.pos, path, format!("got {}; expected a whole number of seconds from 1 to {MAX_TIMEOUT}; write e.g. `timeout: 300`", node.describe()));
            return None;
        }
    };
    if seconds > MAX_TIMEOUT as i64 {
        d.error(node.pos, path, format!("{seconds} is over CodeDeploy's limit; expected 1..={MAX_TIMEOUT} seconds; lower the timeout or split the script"));
        return None;
    }
    if seconds <= 0 {
        d.error(node.pos, path, format!("{seconds} is not a positive number of seconds; expected 1..={MAX_TIMEOUT}; give the time the script may take"));
        return None;
    }
    Some(Duration::from_secs(seconds as u64))
}
