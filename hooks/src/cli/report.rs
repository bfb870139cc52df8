//! What the read-only commands print: `status`, `history`, `logs`, `lock`, `validate`.

mod services;

use std::io::Write;
use std::path::Path;

use hooks_core::release::history::{self, Deployment};
use hooks_core::release::{History, Layout};

/// `hooks validate [FILE|DIR]`: the appspec, and the scripts it names, checked as a deployment
/// would check them before changing anything.
pub fn validate(file: &Path) -> i32 {
    let file = match appspec_to_validate(file) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("hooks: {error}");
            return 3;
        }
    };
    let file = file.as_path();
    match hooks_appspec::load(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!(
                    "{}:{}:{}: warning: {}: {}",
                    w.file.display(),
                    w.line,
                    w.column,
                    w.key_path,
                    w.message
                );
            }
            let bundle = file.parent().unwrap_or(Path::new("."));
            let problems = hooks_core::lifecycle::preflight::check_scripts(&loaded.spec, bundle);
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{}: {problem}", file.display());
                }
                return 3;
            }
            println!(
                "{}: valid{}",
                file.display(),
                if loaded.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" with {} warning(s)", loaded.warnings.len())
                }
            );
            0
        }
        Err(error) => {
            eprintln!("{error}");
            3
        }
    }
}

/// A directory means the bundle root holding the appspec; the default name falls back to
/// `appspec.yaml`, as a deployment does.
fn appspec_to_validate(given: &Path) -> Result<std::path::PathBuf, String> {
    if given.is_dir() {
        return hooks_appspec::find_in(given).ok_or_else(|| {
            format!(
                "{} holds no appspec.yml or appspec.yaml; give the bundle's root directory or the file",
                given.display()
            )
        });
    }
    if !given.exists()
        && given == Path::new("appspec.yml")
        && let Some(found) = hooks_appspec::find_in(Path::new("."))
    {
        return Ok(found);
    }
    Ok(given.to_owned())
}

fn deployments(root: &Path) -> Result<Vec<Deployment>, i32> {
    History::new(Layout::new(root).history_file())
        .deployments()
        .map_err(|e| {
            eprintln!(
                "hooks: cannot read the history under {}: {e}",
                root.display()
            );
            1
        })
}

/// `hooks status [--json]`.
pub fn status(root: &Path, json: bool) -> i32 {
    let layout = Layout::new(root);
    let all = match deployments(root) {
        Ok(all) => all,
        Err(code) => return code,
    };
    // A root served through `hooks promote`/`swap` has no `current` link: its current build
    // is the target of the last successful promotion.
    let current = layout.current_release().or_else(|| {
        all.iter()
            .rev()
            .find(|d| {
                d.kind == history::Kind::Promote && d.result == Some(history::Result::Success)
            })
            .and_then(|d| d.target.clone())
    });
    let previous = all
        .iter()
        .rev()
        .filter(|d| d.result == Some(history::Result::Success) && !d.bad)
        .map(|d| d.release().to_owned())
        .find(|r| Some(r) != current.as_ref() && layout.release_dir(r).is_dir());
    let last = all.last();
    if json {
        let value = serde_json::json!({
            "root": root,
            "current": current,
            "previous": previous,
            "last": last,
            "last_state": last.map(|d| result_word(&layout, d)),
            "running": services::running(root),
        });
        println!("{value:#}");
    } else {
        println!("root:     {}", root.display());
        println!(
            "current:  {}",
            current.as_deref().unwrap_or("(nothing deployed)")
        );
        println!("previous: {}", previous.as_deref().unwrap_or("(none)"));
        match last {
            Some(d) => println!(
                "last:     {} {} {}{}",
                d.id,
                result_word(&layout, d),
                d.ended_at.as_deref().unwrap_or(&d.started_at),
                d.failed_event
                    .as_ref()
                    .map(|e| format!(" (failed in {e})"))
                    .unwrap_or_default()
            ),
            None => println!("last:     (no deployment yet)"),
        }
        services::print_running(&services::running(root));
    }
    0
}

/// The result of `d`, or for one without a result whether it still runs: its process holds
/// the lock (`in progress`), a `hooks run-hook` step let go of it between two CodeDeploy events
/// (`in progress (between events)`), or the process died (`interrupted`: the next deployment
/// recovers it).
fn result_word(layout: &Layout, d: &Deployment) -> &'static str {
    if let Some(result) = d.result {
        return result.as_str();
    }
    match hooks_core::release::lock::read_holder(&layout.lock_file()) {
        Some(holder) if holder.deployment_id == d.id && holder.is_running() => "in progress",
        Some(holder) if holder.deployment_id == d.id && holder.released => {
            "in progress (between events)"
        }
        _ => "interrupted",
    }
}

/// `hooks history [--json] [-n N]`.
pub fn history(root: &Path, json: bool, last: Option<usize>) -> i32 {
    let layout = Layout::new(root);
    let mut all = match deployments(root) {
        Ok(all) => all,
        Err(code) => return code,
    };
    if let Some(n) = last {
        all.drain(..all.len().saturating_sub(n));
    }
    if json {
        println!("{:#}", serde_json::json!(all));
        return 0;
    }
    println!(
        "{:<26} {:<8} {:<20} {:<24} {:<16} BUNDLE",
        "ID", "KIND", "RESULT", "STARTED", "FAILED EVENT"
    );
    for d in &all {
        println!(
            "{:<26} {:<8} {:<20} {:<24} {:<16} {}{}",
            d.id,
            format!("{:?}", d.kind).to_lowercase(),
            result_word(&layout, d),
            d.started_at,
            d.failed_event.as_deref().unwrap_or("-"),
            d.bundle,
            if d.bad { " [bad]" } else { "" }
        );
    }
    0
}

/// `hooks lock [--json]`: who holds the deployment lock. Exit 0 free, 4 held. It only reads
/// the holder's record: it never takes, breaks or waits for the lock.
pub fn lock(root: &Path, json: bool) -> i32 {
    let layout = Layout::new(root);
    let last = hooks_core::release::lock::read_holder(&layout.lock_file());
    let held = last.as_ref().filter(|h| h.is_running());
    if json {
        let value = serde_json::json!({
            "held": held.is_some(),
            "holder": held,
            "last_holder": last,
        });
        println!("{value:#}");
    } else {
        match (held, &last) {
            (Some(holder), _) => println!(
                "held by {holder}{}",
                holder
                    .event
                    .as_ref()
                    .map(|e| format!(", running {e}"))
                    .unwrap_or_default()
            ),
            (None, Some(last)) => println!("free (last held by {last})"),
            (None, None) => println!("free (never taken under {})", root.display()),
        }
    }
    if held.is_some() { 4 } else { 0 }
}

/// What `hooks logs` prints.
pub struct LogsRequest<'a> {
    /// A service's own output instead of a deployment's log: `NAME` or `NAME@INSTANCE`.
    pub service: Option<&'a str>,
    /// The deployment (default: the newest).
    pub id: Option<&'a str>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Keep printing what the deployment writes until it has finished.
    pub follow: bool,
}

/// `hooks logs [ID] [--tail N] [-f]`.
pub fn logs(root: &Path, request: &LogsRequest<'_>) -> i32 {
    if let Some(service) = request.service {
        return services::service_logs(root, service, request.tail, request.follow);
    }
    let layout = Layout::new(root);
    let id = match request.id {
        Some(id) => {
            if let Err(e) = hooks_core::release::layout::check_id(id) {
                eprintln!("hooks: {e}");
                return 3;
            }
            id.to_owned()
        }
        None => match deployments(root).map(|all| all.last().map(|d| d.id.clone())) {
            Ok(Some(id)) => id,
            Ok(None) => {
                eprintln!("hooks: no deployment yet under {}", root.display());
                return 1;
            }
            Err(code) => return code,
        },
    };
    let path = layout.log_file(&id);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("hooks: no log for {id} at {}: {e}", path.display());
            return 1;
        }
    };
    let shown = match request.tail {
        Some(n) => last_lines(&text, n),
        None => &text[..],
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(shown);
    let _ = out.flush();
    if request.follow {
        follow(root, &id, &path, text.len() as u64, &mut out);
    }
    0
}

/// The last `n` lines of `text` (all of it when it has fewer).
fn last_lines(text: &[u8], n: usize) -> &[u8] {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n.saturating_sub(1))
        .map(|(i, _)| i + 1)
        .filter(|_| n > 0)
        .unwrap_or(if n == 0 { text.len() } else { 0 });
    &text[start..]
}

/// Prints what is appended to the log from `offset` on, until the deployment has a result in
/// the history (or its process is gone) and nothing more is written.
fn follow(root: &Path, id: &str, path: &Path, mut offset: u64, out: &mut impl std::io::Write) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return;
    };
    let mut buffer = Vec::new();
    loop {
        let running = still_running(root, id);
        buffer.clear();
        if file.seek(SeekFrom::Start(offset)).is_ok() && file.read_to_end(&mut buffer).is_ok() {
            offset += buffer.len() as u64;
            let _ = out.write_all(&buffer);
            let _ = out.flush();
        }
        if !running && buffer.is_empty() {
            return;
        }
        // A log grows line by line while scripts run; a fifth of a second feels live.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Whether deployment `id` has no result yet and runs: its first process is alive, or it is
/// `in progress` as `hooks status` says, which includes a deployment under the CodeDeploy
/// agent between two events, when no process of it runs.
fn still_running(root: &Path, id: &str) -> bool {
    let Ok(all) = deployments(root) else {
        return false;
    };
    let Some(deployment) = all.iter().find(|d| d.id == id) else {
        return false;
    };
    deployment.result.is_none()
        && (Path::new(&format!("/proc/{}", deployment.pid)).exists()
            || result_word(&Layout::new(root), deployment).starts_with("in progress"))
}
