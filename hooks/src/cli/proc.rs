//! `hooks proc`, `hooks wait-for` (the helpers hook scripts call) and `hooks compose`.

use std::time::Duration;

use hooks_runtime::detached::{self, StartOptions, StopOptions, StopOutcome};
use hooks_runtime::health::{self, Target, WaitOptions};

use crate::ProcCommand;

/// `hooks proc start|stop`: exit 0 done, 1 failed.
pub fn proc(command: ProcCommand) -> i32 {
    match command {
        ProcCommand::Start {
            pidfile,
            log,
            settle,
            command,
        } => {
            let mut options = StartOptions::new(&pidfile, command);
            options.log_file = log;
            match detached::start_settled(&options, Duration::from_secs_f64(settle.max(0.0))) {
                Ok(pid) => {
                    println!("started pid {pid} (pidfile {})", pidfile.display());
                    0
                }
                Err(error) => {
                    eprintln!("hooks proc start: {error}");
                    1
                }
            }
        }
        ProcCommand::Stop {
            pidfile,
            timeout,
            signal,
        } => {
            let mut options = StopOptions::new(&pidfile, Duration::from_secs(timeout));
            match detached::parse_signal(&signal) {
                Ok(signal) => options.signal = signal,
                Err(error) => {
                    eprintln!("hooks proc stop: {error}");
                    return 1;
                }
            }
            match detached::stop(&options) {
                Ok(StopOutcome::Exited { pid, waited }) => {
                    println!("pid {pid} exited after {:.2} s", waited.as_secs_f64());
                    0
                }
                Ok(StopOutcome::Killed { pid, waited }) => {
                    println!(
                        "pid {pid} did not exit within {timeout} s; killed after {:.2} s",
                        waited.as_secs_f64()
                    );
                    0
                }
                Ok(StopOutcome::NotRunning { stale_pid }) => {
                    match stale_pid {
                        Some(pid) => {
                            println!("not running (stale pid {pid} in {})", pidfile.display())
                        }
                        None => println!("not running ({} absent)", pidfile.display()),
                    }
                    0
                }
                Err(error) => {
                    eprintln!("hooks proc stop: {error}");
                    1
                }
            }
        }
    }
}

/// `hooks wait-for TARGET`: exit 0 answered, 1 deadline passed, 3 bad target.
pub fn wait_for(target: &str, timeout: u64, interval: f64) -> i32 {
    let target = match Target::parse(target) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("hooks wait-for: {error}");
            return 3;
        }
    };
    let mut options = WaitOptions::new(target, Duration::from_secs(timeout));
    options.interval = Duration::from_secs_f64(interval.max(0.01));
    match health::wait_for(&options) {
        Ok(success) => {
            println!(
                "{} answered after {} attempt(s) in {:.2} s: {}",
                options.target,
                success.attempts,
                success.elapsed.as_secs_f64(),
                success.answer
            );
            0
        }
        Err(error) => {
            eprintln!("hooks wait-for: {error}");
            1
        }
    }
}

/// Loads the compose files the way every `hooks compose` command does; prints warnings, and
/// the error (exit 3) when the files are invalid.
fn load_project(
    files: Vec<std::path::PathBuf>,
    project_name: Option<String>,
    profiles: Vec<String>,
) -> Result<hooks_compose::Project, i32> {
    use hooks_compose::{LoadOptions, load};
    let files = if files.is_empty() {
        let cwd = std::env::current_dir().unwrap_or_default();
        let compose_file = std::env::var("COMPOSE_FILE").ok();
        let separator = std::env::var("COMPOSE_PATH_SEPARATOR").ok();
        let found = hooks_compose::default_files(
            &cwd,
            true,
            compose_file.as_deref().map(|f| (f, separator.as_deref())),
        );
        match found {
            Ok(found) => {
                for warning in &found.warnings {
                    eprintln!("warning: {warning}");
                }
                found.files
            }
            Err(error) => {
                eprintln!("{error}");
                return Err(3);
            }
        }
    } else {
        files
    };
    let options = LoadOptions {
        files,
        project_name,
        environment: std::env::vars().collect(),
        profiles,
    };
    match load(&options) {
        Ok(project) => {
            for warning in &project.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(project)
        }
        Err(error) => {
            eprintln!("{error}");
            Err(3)
        }
    }
}

/// `hooks compose config` (exit 0 printed, 3 invalid files) and `up|down|ps|logs` on the
/// Engine API (exit codes from `EngineError::exit_code`).
pub fn compose(root: &std::path::Path, command: crate::ComposeCommand) -> i32 {
    use crate::ComposeCommand as C;
    use hooks_journal::log::DeploymentLog;
    use hooks_runtime::engine::{self, Engine, UpOptions};
    let (C::Config { project }
    | C::Up { project, .. }
    | C::Down { project, .. }
    | C::Ps { project }
    | C::Logs { project, .. }) = &command;
    let project = match load_project(
        project.files.clone(),
        project.project_name.clone(),
        project.profiles.clone(),
    ) {
        Ok(project) => project,
        Err(code) => return code,
    };
    if let C::Config { .. } = command {
        // Printing the model needs no engine.
        print!("{}", project.to_yaml());
        return 0;
    }
    let log = DeploymentLog::terminal_only();
    let result = Engine::connect().and_then(|engine| match command {
        C::Up {
            images,
            timeout,
            build,
            remove_orphans,
            ..
        } => {
            let options = UpOptions {
                state_dir: root.join("compose"),
                images,
                deadline: Duration::from_secs(timeout),
                build,
                remove_orphans,
            };
            engine::up(&engine, &project, &options, &log).map(|report| {
                println!(
                    "recreated: [{}]; unchanged: [{}]",
                    report.recreated.join(", "),
                    report.unchanged.join(", ")
                );
            })
        }
        C::Down { volumes, .. } => engine::down(&engine, &project.name, volumes, &log),
        C::Ps { .. } => engine::ps(&engine, &project.name).map(|rows| {
            println!(
                "{:<32} {:<16} {:<12} {:<10} STATUS",
                "NAME", "SERVICE", "ID", "STATE"
            );
            for row in rows {
                println!(
                    "{:<32} {:<16} {:<12} {:<10} {}",
                    row.name,
                    row.service,
                    &row.id[..row.id.len().min(12)],
                    row.state,
                    row.status
                );
            }
        }),
        C::Logs { tail, service, .. } => {
            engine::logs(&engine, &project, service.as_deref(), tail, &log)
        }
        C::Config { .. } => unreachable!("printed above"),
    });
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("hooks compose: {}", log.redact(&error.to_string()));
            error.exit_code()
        }
    }
}
