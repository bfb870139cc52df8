//! The `hooks` command line: parsing and printing only; the work is in the library.

mod ci;
mod cli_agent;
mod cli_history;
mod cli_s3;
mod helpers;
mod report;
mod services_cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use hooks_core::lifecycle::deploy::{self, DeployOptions, Outcome};
use hooks_core::lifecycle::rollback::{self, RollbackOptions};
use hooks_core::lifecycle::script::Grace;
use hooks_core::presenter::{ColorChoice, Presenter, Request};
use hooks_journal::progress::RunKind;

/// CodeDeploy-style deployments for servers you run yourself.
///
/// Exit codes of `deploy` and `rollback`: 0 deployed; 1 failed and the previous release is
/// serving again (or nothing had changed); 2 failed and the previous release could not be
/// restored (or --no-rollback); 3 invalid input found before any change; 4 another deployment
/// holds the lock. Usage errors (an unknown flag, a missing argument) exit 3 for every command.
#[derive(Parser)]
#[command(name = "hooks", version, about, long_about)]
struct Cli {
    /// Deployment root holding releases/, current, shared/, logs/, history, backups/, lock.
    #[arg(
        long,
        global = true,
        env = "HOOKS_ROOT",
        default_value = "/var/lib/hooks"
    )]
    root: PathBuf,
    /// Colour human output of deploy and rollback: auto (on a terminal, unless NO_COLOR is
    /// set), always (even with NO_COLOR), never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// deploy and rollback: stream the full timestamped log (what logs/<id>.log gets) besides
    /// the short progress lines.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy a bundle: unpack it as a new release and run its appspec's lifecycle.
    ///
    /// Example: hooks deploy --bundle ./build/app.tgz --root /srv/app --group production
    /// Example: hooks deploy --bundle s3://builds/app/<sha256>.tar.gz --trusted-key ci.pub
    /// Example: hooks deploy --bundle ./build/app.tgz --root /srv/app --dry-run
    /// Example: hooks deploy --bundle ./build/app.tgz --root /srv/app --json > events.jsonl
    Deploy(DeployArgs),
    /// Pack a bundle directory reproducibly and upload it to S3 (for CI).
    ///
    /// Prints the bundle's s3:// URL. Exit codes: 0 published, 1 upload failed, 3 invalid
    /// input.
    ///
    /// Example: hooks publish build/bundle --to s3://builds/app/ --group production --commit
    /// "$GITHUB_SHA" --branch main --signing-key ci-signing.pem
    Publish(cli_s3::PublishArgs),
    /// Check an appspec file without deploying (exit 0 valid, 3 invalid).
    ///
    /// Example: hooks validate appspec.yml
    Validate {
        /// The appspec to check.
        #[arg(default_value = "appspec.yml")]
        file: PathBuf,
    },
    /// Show the serving release, the previous good one, the last result, and what runs: each
    /// service instance (supervisor, systemd) and compose container with the release it runs.
    ///
    /// Example: hooks status --root /srv/app --json
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List past deployments, oldest first; `history diff A B` compares two of them.
    ///
    /// Example: hooks history --root /srv/app -n 10
    /// Example: hooks history diff d-20261123-101500-1a2b d-20261124-093000-3c4d --json
    History {
        #[arg(long)]
        json: bool,
        /// Only the newest N deployments.
        #[arg(short = 'n', long = "last", value_name = "N")]
        last: Option<usize>,
        #[command(subcommand)]
        action: Option<HistoryCommand>,
    },
    /// Re-activate a kept release (default: the newest good one before `current`) and mark
    /// the replaced release as bad.
    ///
    /// Refused (exit 3, nothing changed) when the database has migrations the target release
    /// does not know, unless each is marked `-- hooks: compatible`: the message names them
    /// and the backup `hooks restore` can put back.
    ///
    /// Example: hooks rollback --root /srv/app --to d-20261123-101500-1a2b
    /// Example: hooks rollback --root /srv/app --json | jq -c 'select(.type == "result")'
    Rollback {
        /// Deployment id of the release to re-activate.
        #[arg(long)]
        to: Option<String>,
        /// Roll back even when the database has migrations the target does not know.
        #[arg(long)]
        ignore_migrations: bool,
        /// Wait this many seconds for a running deployment's lock.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Put a database backup back (taken before migrations, under <root>/backups/).
    ///
    /// Stop the service first for SQLite. Without --yes, only says what it would do.
    ///
    /// Example: hooks restore d-20261123-101500-1a2b.sqlite --yes
    Restore {
        /// A file name in <root>/backups/, or a path.
        backup: PathBuf,
        /// The file holding the database URL (default: the serving release's
        /// deploy.migrate.database_url_file).
        #[arg(long)]
        database_url_file: Option<PathBuf>,
        /// Really restore.
        #[arg(long)]
        yes: bool,
        /// Wait this many seconds for a running deployment's lock (a restore takes it, so
        /// no migration runs while the database is replaced).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Start or stop a detached process from a hook script (tribist's server.sh).
    #[command(subcommand)]
    Proc(ProcCommand),
    /// Wait until an HTTP URL answers 2xx or a TCP port accepts a connection.
    ///
    /// Exits 0 when it does, 1 with the last error when the deadline passes, 3 for a target
    /// that is neither http://HOST:PORT/PATH nor HOST:PORT.
    ///
    /// Example: hooks wait-for http://127.0.0.1:8080/health --timeout 30
    WaitFor {
        /// http://HOST[:PORT]/PATH or HOST:PORT.
        target: String,
        /// Seconds to wait in all.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Seconds between attempts.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Print the CodeDeploy deployment group (and its configs) appspec.yml's branch_config
    /// gives a branch.
    ///
    /// Keys are regular expressions matched against the whole branch (or --config-name),
    /// ignoring case, in file order; the first match wins. Exit codes: 0 there is something to
    /// deploy; 5 the branch has no deployment (a `~` key, or no key matches); 3 invalid appspec,
    /// or $PR_NUMBER used without --pr.
    ///
    /// Example: hooks plan --branch feature/login --pr 42 --json
    Plan(ci::PlanArgs),
    /// The hook script of the real CodeDeploy agent: runs the built-in steps of
    /// $LIFECYCLE_EVENT for $DEPLOYMENT_ID with the same code as `hooks deploy` (a no-op under
    /// `hooks deploy` itself). Point appspec hooks at deploy/codedeploy/run-hook, which calls it.
    ///
    /// Exit codes: 0 done or nothing to do; 1 a built-in step failed (recorded in the history);
    /// 3 not run by the agent or invalid revision; 4 lock held past --wait.
    ///
    /// Example (as the agent runs it): LIFECYCLE_EVENT=AfterInstall DEPLOYMENT_ID=d-ABC
    /// DEPLOYMENT_GROUP_NAME=production DEPLOYMENT_GROUP_ID=1234 hooks run-hook
    RunHook(ci::RunHookArgs),
    /// Pull mode: watch a group's LATEST pointer in S3 and deploy each new one once, under the
    /// same lock as `hooks deploy`; write the outcome to PREFIX/<group>/status/<id>.json.
    ///
    /// Runs until SIGTERM or SIGINT (a deployment in progress finishes first). A failed or
    /// refused pointer is not retried until it changes. State: <root>/agent/state.json.
    ///
    /// Example: hooks agent --pointer s3://builds/app/production/LATEST --root /srv/app
    Agent(cli_agent::AgentArgs),
    /// Docker compose files, read the way the Compose tool reads them.
    #[command(subcommand)]
    Compose(ComposeCommand),
    /// Run the built-in supervisor in the foreground (what `hooks deploy` starts detached when
    /// none runs), or show / stop the running one. Exit 0 done, 1 failed.
    ///
    /// Example: hooks supervise --status --root /srv/app
    Supervise(services_cli::SuperviseArgs),
    /// Point <root>/bin/prod at the one build in <root>/binaries/ whose name holds COMMIT,
    /// restart the instances one after the other with a health check after each, and on the
    /// first failure point it back and restart every instance. Exit 0 promoted, 1 rolled
    /// back, 2 rollback failed, 3 nothing changed: no or several matching builds
    /// (candidates listed), or a systemd manager the services need does not answer; 4 a
    /// deployment holds the lock.
    ///
    /// Example: hooks promote 1a2b3c4 --instances 1,2 --root /srv/app
    Promote(services_cli::PromoteArgs),
    /// Put NEW in place of CURRENT (kept as CURRENT.previous) and restart the instances;
    /// on failure put CURRENT back. Exit codes as promote.
    ///
    /// Example: hooks swap --new server_new --current server --root /srv/app
    Swap(services_cli::SwapArgs),
    /// Render or install systemd template units for deploy.services, or print sudoers lines.
    #[command(subcommand)]
    Systemd(services_cli::SystemdCommand),
    /// Show who holds the deployment lock: its pid, deployment id, start and running event.
    /// Exit 0 free, 4 held. Only reads the holder's record; the lock is never taken or broken.
    ///
    /// Example: hooks lock --root /srv/app --json
    Lock {
        #[arg(long)]
        json: bool,
    },
    /// Print a deployment's log (default: the newest), or a service's own output.
    ///
    /// Example: hooks logs d-20261123-101500-1a2b --tail 50; hooks logs -f (the running
    /// deployment); hooks logs --service api@1 --tail 20 -f
    Logs {
        /// Deployment id.
        id: Option<String>,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Keep printing the log as the deployment writes it, until it has finished (with
        /// --service: until interrupted).
        #[arg(short = 'f', long)]
        follow: bool,
        /// The output of a service of the serving release instead (`NAME` or
        /// `NAME@INSTANCE`): supervisor log files, systemd's journal, or compose containers.
        #[arg(long, value_name = "NAME[@I]", conflicts_with = "id")]
        service: Option<String>,
    },
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Compare two deployments: bundle sha256, commit, per compose service image id and config
    /// hash, secret names with content hashes (never values), migrations, who/when/duration.
    ///
    /// A and B are deployment ids; `current` and `previous` (the newest good release before
    /// it) are accepted too. Exit 0 compared, 3 unknown id.
    ///
    /// Example: hooks history diff previous current --root /srv/app
    Diff {
        /// The first deployment: an id, `current` or `previous`.
        a: String,
        /// The second deployment, compared with the first.
        b: String,
        /// Print the whole comparison as JSON (fields in the README, "Release ledger").
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProcCommand {
    /// Start CMD detached (own session, stdin from /dev/null, output appended to --log) and
    /// write its pid to --pidfile. Refuses when the pidfile names a running process; fails
    /// (exit 1, with the end of its log) when CMD exits within --settle seconds.
    ///
    /// Example: hooks proc start --pidfile run/app.pid --log run/app.log -- bin/app --port 8080
    Start {
        #[arg(long)]
        pidfile: PathBuf,
        /// Output file (default: PIDFILE.log).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds the process must keep running before it counts as started; one that exits
        /// sooner fails the start (exit 1) with the end of its log. 0 returns at once.
        #[arg(long, default_value_t = 0.5)]
        settle: f64,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Send SIGTERM (or --signal) to the process in --pidfile, wait up to --timeout seconds,
    /// then SIGKILL. Nothing running is not an error.
    ///
    /// Example: hooks proc stop --pidfile run/app.pid --timeout 30
    Stop {
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Signal name or number, e.g. TERM, INT, QUIT.
        #[arg(long, default_value = "TERM")]
        signal: String,
    },
}

#[derive(Subcommand)]
enum ComposeCommand {
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
struct ComposeProject {
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

#[derive(clap::Args)]
struct DeployArgs {
    /// A directory, .tar, .tar.gz/.tgz or .zip holding appspec.yml at its root, or
    /// s3://BUCKET/KEY[?versionId=V].
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    s3: cli_s3::DeployS3Args,
    /// APPLICATION_NAME given to hook scripts.
    #[arg(long, default_value = "hooks-app")]
    application: String,
    /// DEPLOYMENT_GROUP_NAME given to hook scripts.
    #[arg(long, default_value = "default")]
    group: String,
    /// DEPLOYMENT_GROUP_ID given to hook scripts (default: the group name).
    #[arg(long)]
    group_id: Option<String>,
    /// On failure, leave everything as it is instead of restoring the previous release.
    #[arg(long)]
    no_rollback: bool,
    /// Do not run the previous release's ApplicationStop scripts (e.g. when they are broken).
    #[arg(long)]
    skip_application_stop: bool,
    /// Wait this many seconds for another deployment's lock instead of exiting 4.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// Seconds between SIGTERM and SIGKILL when a script times out.
    #[arg(long, default_value_t = 5)]
    kill_grace: u64,
    #[command(flatten)]
    output: OutputArgs,
    /// Check everything a deployment checks before changing anything (fetch, digest, appspec,
    /// scripts, users, shared paths, migrations) and print the plan; change nothing. Exit 0
    /// it would deploy, 3 it would be refused or the bundle could not be fetched.
    #[arg(long, conflicts_with = "json")]
    dry_run: bool,
}

/// How deploy and rollback show their progress.
#[derive(clap::Args)]
struct OutputArgs {
    /// No progress output, only the final result on stderr (the log file gets everything).
    #[arg(long)]
    quiet: bool,
    /// One JSON object per line on stdout for each event's start and end and the final result
    /// (fields: see the README); human output goes to stderr.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    fn presenter(&self, kind: RunKind, color: ColorChoice, verbose: bool) -> Presenter {
        Presenter::new(
            kind,
            Request {
                json: self.json,
                quiet: self.quiet,
                verbose,
                color,
            },
        )
    }
}

fn main() -> ExitCode {
    // aws-config warns once per credential provider it tries, with debug dumps of the
    // metadata service's answers; the S3 error that follows says what was tried and what to do.
    // Colour only for a person at a terminal: the agent's and the supervisor's stderr go to the
    // journal or a log file, where escape codes are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aws_config=error")),
        )
        .init();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap's usage errors exit 2, which deploy and rollback use for "restoring failed
            // too": a typo must not page anyone. Help and --version go to stdout, exit 0.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 3 } else { 0 });
        }
    };
    // Scripts run inside the release directory, so a relative root would resolve against the
    // wrong directory there; fix it once, here.
    cli.root = match std::path::absolute(&cli.root) {
        Ok(root) => root,
        Err(e) => {
            eprintln!("hooks: cannot use the root {}: {e}", cli.root.display());
            return ExitCode::from(3);
        }
    };
    let changes_a_root = matches!(&cli.command, Command::Deploy(args) if !args.dry_run)
        || matches!(cli.command, Command::Rollback { .. });
    if changes_a_root && let Err(e) = hooks_core::lifecycle::interrupt::enable() {
        eprintln!("hooks: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    let code = match cli.command {
        Command::Deploy(args) => run_deploy(&cli.root, args, cli.color, cli.verbose),
        Command::Publish(args) => cli_s3::run_publish(args),
        Command::Agent(args) => cli_agent::run(&cli.root, args),
        Command::Validate { file } => report::validate(&file),
        Command::Status { json } => report::status(&cli.root, json),
        Command::Lock { json } => report::lock(&cli.root, json),
        Command::History {
            action: Some(HistoryCommand::Diff { a, b, json }),
            ..
        } => cli_history::diff(&cli.root, &a, &b, json),
        Command::History { json, last, .. } => report::history(&cli.root, json, last),
        Command::Logs {
            id,
            tail,
            follow,
            service,
        } => report::logs(
            &cli.root,
            &report::LogsRequest {
                service: service.as_deref(),
                id: id.as_deref(),
                tail,
                follow,
            },
        ),
        Command::Proc(command) => helpers::proc(command),
        Command::Compose(command) => helpers::compose(&cli.root, command),
        Command::Plan(args) => ci::plan(&args),
        Command::RunHook(args) => ci::run_hook(&cli.root, &args),
        Command::Supervise(args) => services_cli::supervise(&cli.root, args),
        Command::Promote(args) => services_cli::promote(&cli.root, args),
        Command::Swap(args) => services_cli::swap(&cli.root, args),
        Command::Systemd(command) => services_cli::systemd(&cli.root, command),
        Command::WaitFor {
            target,
            timeout,
            interval,
        } => helpers::wait_for(&target, timeout, interval),
        Command::Restore {
            backup,
            database_url_file,
            yes,
            wait,
        } => report::restore(
            &cli.root,
            &backup,
            database_url_file.as_deref(),
            yes,
            Duration::from_secs(wait),
        ),
        Command::Rollback {
            to,
            wait,
            ignore_migrations,
            output,
        } => {
            let presenter = output.presenter(RunKind::Rollback, cli.color, cli.verbose);
            let outcome = rollback::rollback(&RollbackOptions {
                root: cli.root.clone(),
                to,
                ignore_migrations,
                wait: Duration::from_secs(wait),
                grace: Grace::default(),
                echo: false,
                progress: presenter.sink(),
            });
            finish(&cli.root, &presenter, &outcome)
        }
    };
    ExitCode::from(code as u8)
}

/// The presenter's closing lines, and the CLI's own summary where they do not replace it.
fn finish(root: &std::path::Path, presenter: &Presenter, outcome: &Outcome) -> i32 {
    if presenter.finish(outcome) {
        report::outcome(root, outcome)
    } else {
        outcome.exit_code()
    }
}

fn run_deploy(root: &std::path::Path, args: DeployArgs, color: ColorChoice, verbose: bool) -> i32 {
    let presenter = args.output.presenter(RunKind::Deploy, color, verbose);
    let source = match cli_s3::open_bundle(&args.bundle, &args.s3, args.output.quiet) {
        Ok(source) => source,
        Err(error) => {
            let outcome = Outcome::Invalid {
                id: None,
                error: error.to_string(),
            };
            return finish(root, &presenter, &outcome);
        }
    };
    let options = DeployOptions {
        root: root.to_owned(),
        application: args.application,
        group_id: args.group_id.unwrap_or_else(|| args.group.clone()),
        group: args.group,
        no_rollback: args.no_rollback,
        skip_application_stop: args.skip_application_stop,
        wait: Duration::from_secs(args.wait),
        limits: hooks_bundle::Limits::default(),
        grace: Grace {
            kill: Duration::from_secs(args.kill_grace),
            ..Grace::default()
        },
        echo: false,
        progress: presenter.sink(),
    };
    if args.dry_run {
        return match hooks_core::lifecycle::dry_run::dry_run(source.as_ref(), &options) {
            Ok(plan) => {
                for line in plan {
                    println!("{line}");
                }
                0
            }
            Err(outcome) => report::outcome(root, &outcome),
        };
    }
    let outcome = deploy::deploy(source.as_ref(), &options);
    finish(root, &presenter, &outcome)
}
