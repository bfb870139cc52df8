//! The pidfile: its format, crash-safe writing, and whether the process it names still runs.

use super::DetachedError;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The contents of a pidfile.
#[derive(Debug, Clone, Copy)]
pub(super) struct PidRecord {
    pub pid: u32,
    pub start_time: Option<u64>,
}

/// Reads a pidfile; `None` when it does not exist.
pub(super) fn read_pidfile(path: &Path) -> Result<Option<PidRecord>, DetachedError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DetachedError::Io {
                path: path.to_owned(),
                action: "read the pidfile",
                source,
            });
        }
    };
    let bad = |line: usize, problem: String| DetachedError::BadPidfile {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((index, first)) = lines.next() else {
        return Err(bad(1, "expected a process id, found an empty file".into()));
    };
    let pid = match first.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            return Err(bad(
                index + 1,
                format!("expected a process id, found `{}`", first.trim()),
            ));
        }
    };
    let mut start_time = None;
    for (index, line) in lines {
        let value = line
            .trim()
            .strip_prefix("starttime=")
            .and_then(|v| v.parse::<u64>().ok());
        match value {
            Some(value) => start_time = Some(value),
            None => {
                return Err(bad(
                    index + 1,
                    format!("expected `starttime=NUMBER`, found `{}`", line.trim()),
                ));
            }
        }
    }
    Ok(Some(PidRecord { pid, start_time }))
}

/// Writes the record `hooks proc stop` reads into a pidfile's replacement (mode 0644, set when
/// it was created: readable by monitoring and by the operator's `kill $(head -n1 FILE)`).
pub(super) fn write_record(mut file: &fs::File, pid: u32, start_time: u64) -> io::Result<()> {
    file.write_all(format!("{pid}\nstarttime={start_time}\n").as_bytes())
}

pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

pub(super) fn remove_pidfile(path: &Path) -> Result<(), DetachedError> {
    match fs::remove_file(path) {
        Ok(()) => {
            hooks_journal::durable::sync_dir(parent_dir(path)).map_err(|source| DetachedError::Io {
                path: path.to_owned(),
                action: "sync the removal of",
                source,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DetachedError::Io {
            path: path.to_owned(),
            action: "remove the pidfile",
            source,
        }),
    }
}

/// Whether the process a pidfile names is still the one that was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    Alive,
    /// No such process, or only its zombie.
    Gone,
    /// The pid now belongs to a process started at another time.
    Reused,
}

pub(super) fn probe(record: &PidRecord) -> Liveness {
    match proc_stat(record.pid) {
        None => Liveness::Gone,
        Some(stat) if matches!(stat.state, 'Z' | 'X' | 'x') => Liveness::Gone,
        Some(stat) if record.start_time.is_some_and(|t| t != stat.start_time) => Liveness::Reused,
        Some(_) => Liveness::Alive,
    }
}

/// The two fields of `/proc/PID/stat` this module needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProcStat {
    /// Field 3: R, S, D, Z, ...
    pub state: char,
    /// Field 22: clock ticks after boot when the process started; unique per pid together with it.
    pub start_time: u64,
}

pub(super) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// The command line of a process for messages, or `?` when it is gone or hidden.
pub(super) fn command_line(pid: u32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) if !bytes.is_empty() => {
            let args: Vec<String> = bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.join(" ")
        }
        _ => "?".to_owned(),
    }
}
