//! `hooks compose`: the compose files read the way the Compose tool reads them, and the
//! project's containers driven through the Docker Engine API. Arguments and printing; the work
//! is in `hooks_compose` and `hooks_runtime::engine`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;

/// `hooks compose config|up|down|ps|logs`.
#[derive(Subcommand)]
pub enum ComposeCommand {
    /// Print the merged, interpolated model of one or more compose files (exit 0, or 3 with
    /// FILE:LINE:COLUMN and the key for a bad file).
    ///
    /// Example: hooks compose config -f docker-compose.yml -f production.yml
    Config {
        #[command(flatten)]
        project: ComposeProject,
    },
    /// Create or update the project's containers through the Docker Engine API: only services
    /// whose config (image id, secret file contents included) changed are recreated, each must
    /// become running/healthy within --timeout, else the previous containers are put back.
    ///
    /// Exit codes: 0 up; 1 failed, previous containers running again; 2 failed and restoring
    /// them failed too; 3 bad input (compose file, missing secret file or image) before any change.
    ///
    /// Example: hooks compose up -f docker-compose.yml -f production.yml --root /srv/app
    Up {
        #[command(flatten)]
        project: ComposeProject,
        /// Image tarballs (`docker save` output) to load first.
        #[arg(long = "image-tar")]
        images: Vec<PathBuf>,
        /// Seconds each recreated service may take to become running/healthy.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Build `build:` services even when their image exists (else only missing images).
        #[arg(long)]
        build: bool,
        /// Remove containers of services that are no longer in the files, once every other
        /// service is ready (without it they are only named).
        #[arg(long)]
        remove_orphans: bool,
    },
    /// Remove the project's containers and networks; named and anonymous volumes only with
    /// --volumes.
    ///
    /// Example: hooks compose down -f docker-compose.yml
    Down {
        #[command(flatten)]
        project: ComposeProject,
        /// Remove the project's named volumes and its containers' anonymous volumes too (their
        /// data is lost), like `docker compose down -v`.
        #[arg(long)]
        volumes: bool,
    },
    /// List the project's containers.
    ///
    /// Example: hooks compose ps -p hitsave
    Ps {
        #[command(flatten)]
        project: ComposeProject,
    },
    /// Print the last lines of the project's containers' output (secrets redacted).
    ///
    /// Example: hooks compose logs -f docker-compose.yml --tail 50 api
    Logs {
        #[command(flatten)]
        project: ComposeProject,
        /// Lines per container.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Only this service.
        service: Option<String>,
    },
}

/// Which compose project a command acts on.
#[derive(clap::Args)]
pub struct ComposeProject {
    /// Compose files in merge order (default: docker-compose.yml).
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Project name (else COMPOSE_PROJECT_NAME, the top-level `name:`, the directory).
    #[arg(short = 'p', long = "project-name")]
    project_name: Option<String>,
    /// Profiles to enable (else COMPOSE_PROFILES).
    #[arg(long = "profile")]
    profiles: Vec<String>,
}

/// Loads the compose files the way every `hooks compose` command does; prints warnings, and
/// the error (exit 3) when the files are invalid.
fn load_project(
    files: Vec<PathBuf>,
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
pub fn compose(root: &Path, command: ComposeCommand) -> i32 {
    use ComposeCommand as C;
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
