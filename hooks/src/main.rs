//! The `hooks` command line: parsing and printing only; the work is in the library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{agent, ci, compose, deploy, history, proc, publish, report, restore, services, systemd};
use hooks_core::presenter::ColorChoice;

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
    Deploy(deploy::DeployArgs),
    /// Pack a bundle directory reproducibly and upload it to S3 (for CI).
    ///
    /// Prints the bundle's s3:// URL. Exit codes: 0 published, 1 upload failed, 3 invalid
    /// input.
    ///
    /// Example: hooks publish build/bundle --to s3://builds/app/ --group production --commit
    /// "$GITHUB_SHA" --branch main --signing-key ci-signing.pem
    Publish(publish::PublishArgs),
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
        output: deploy::OutputArgs,
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
    Proc(proc::ProcCommand),
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
    Agent(agent::AgentArgs),
    /// Docker compose files, read the way the Compose tool reads them.
    #[command(subcommand)]
    Compose(compose::ComposeCommand),
    /// Run the built-in supervisor in the foreground (what `hooks deploy` starts detached when
    /// none runs), or show / stop the running one. Exit 0 done, 1 failed.
    ///
    /// Example: hooks supervise --status --root /srv/app
    Supervise(services::SuperviseArgs),
    /// Point <root>/bin/prod at the one build in <root>/binaries/ whose name holds COMMIT,
    /// restart the instances one after the other with a health check after each, and on the
    /// first failure point it back and restart every instance. Exit 0 promoted, 1 rolled
    /// back, 2 rollback failed, 3 nothing changed: no or several matching builds
    /// (candidates listed), or a systemd manager the services need does not answer; 4 a
    /// deployment holds the lock.
    ///
    /// Example: hooks promote 1a2b3c4 --instances 1,2 --root /srv/app
    Promote(services::PromoteArgs),
    /// Put NEW in place of CURRENT (kept as CURRENT.previous) and restart the instances;
    /// on failure put CURRENT back. Exit codes as promote.
    ///
    /// Example: hooks swap --new server_new --current server --root /srv/app
    Swap(services::SwapArgs),
    /// Render or install systemd template units for deploy.services, or print sudoers lines.
    #[command(subcommand)]
    Systemd(systemd::SystemdCommand),
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
        Command::Deploy(args) => deploy::run(&cli.root, args, cli.color, cli.verbose),
        Command::Publish(args) => publish::run(args),
        Command::Agent(args) => agent::run(&cli.root, args),
        Command::Validate { file } => report::validate(&file),
        Command::Status { json } => report::status(&cli.root, json),
        Command::Lock { json } => report::lock(&cli.root, json),
        Command::History {
            action: Some(HistoryCommand::Diff { a, b, json }),
            ..
        } => history::diff(&cli.root, &a, &b, json),
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
        Command::Proc(command) => proc::proc(command),
        Command::Compose(command) => compose::compose(&cli.root, command),
        Command::Plan(args) => ci::plan(&args),
        Command::RunHook(args) => ci::run_hook(&cli.root, &args),
        Command::Supervise(args) => services::supervise(&cli.root, args),
        Command::Promote(args) => services::promote(&cli.root, args),
        Command::Swap(args) => services::swap(&cli.root, args),
        Command::Systemd(command) => systemd::systemd(&cli.root, command),
        Command::WaitFor {
            target,
            timeout,
            interval,
        } => proc::wait_for(&target, timeout, interval),
        Command::Restore {
            backup,
            database_url_file,
            yes,
            wait,
        } => restore::restore(&cli.root, &backup, database_url_file.as_deref(), yes, wait),
        Command::Rollback {
            to,
            wait,
            ignore_migrations,
            output,
        } => deploy::rollback(
            &cli.root,
            deploy::RollbackRequest {
                to,
                ignore_migrations,
                wait,
                output,
            },
            cli.color,
            cli.verbose,
        ),
    };
    ExitCode::from(code as u8)
}
