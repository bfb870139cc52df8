//! `hooks deploy` and `hooks rollback`: arguments, the presenter they ask for, and the closing
//! lines; the work is `hooks_core::lifecycle`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hooks_core::lifecycle::deploy::{self, DeployOptions, Outcome};
use hooks_core::lifecycle::rollback::{self, RollbackOptions};
use hooks_core::lifecycle::script::Grace;
use hooks_core::presenter::{ColorChoice, Presenter, Request};
use hooks_core::release::Layout;
use hooks_journal::progress::RunKind;

use super::s3::DeployS3Args;

/// `hooks deploy` arguments.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// A directory, .tar, .tar.gz/.tgz or .zip holding appspec.yml at its root, or
    /// s3://BUCKET/KEY[?versionId=V].
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    s3: DeployS3Args,
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
    pub dry_run: bool,
}

/// How deploy and rollback show their progress.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// No progress output, only the final result on stderr (the log file gets everything).
    #[arg(long)]
    quiet: bool,
    /// One JSON object per line on stdout for each event's start and end and the final result
    /// (fields: see the README); human output goes to stderr.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    /// The presenter these flags ask for.
    pub fn presenter(&self, kind: RunKind, color: ColorChoice, verbose: bool) -> Presenter {
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

/// The presenter's closing lines, and the CLI's own summary where they do not replace it.
pub fn finish(root: &Path, presenter: &Presenter, outcome: &Outcome) -> i32 {
    if presenter.finish(outcome) {
        outcome_line(root, outcome)
    } else {
        outcome.exit_code()
    }
}

/// `hooks deploy`, or with `--dry-run` the plan it would follow.
pub fn run(root: &Path, args: DeployArgs, color: ColorChoice, verbose: bool) -> i32 {
    let presenter = args.output.presenter(RunKind::Deploy, color, verbose);
    let open = hooks_bundle::OpenOptions {
        s3: args.s3.options(!args.output.quiet),
        verification: &|| args.s3.verification(),
    };
    let source = match hooks_bundle::open(&args.bundle, &open) {
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
            Err(outcome) => outcome_line(root, &outcome),
        };
    }
    let outcome = deploy::deploy(source.as_ref(), &options);
    finish(root, &presenter, &outcome)
}

/// `hooks rollback`.
pub fn rollback(root: &Path, options: RollbackRequest, color: ColorChoice, verbose: bool) -> i32 {
    let presenter = options.output.presenter(RunKind::Rollback, color, verbose);
    let outcome = rollback::rollback(&RollbackOptions {
        root: root.to_owned(),
        to: options.to,
        ignore_migrations: options.ignore_migrations,
        wait: Duration::from_secs(options.wait),
        grace: Grace::default(),
        echo: false,
        progress: presenter.sink(),
    });
    finish(root, &presenter, &outcome)
}

/// What `hooks rollback` was asked.
pub struct RollbackRequest {
    /// `--to`: the release to re-activate.
    pub to: Option<String>,
    /// `--ignore-migrations`.
    pub ignore_migrations: bool,
    /// `--wait`, in seconds.
    pub wait: u64,
    /// `--quiet`, `--json`.
    pub output: OutputArgs,
}

/// Prints the end of a deployment and returns its exit code.
pub fn outcome_line(root: &Path, outcome: &Outcome) -> i32 {
    let layout = Layout::new(root);
    match outcome {
        Outcome::Deployed { id } => eprintln!(
            "hooks: {id} succeeded; current -> releases/{} (log: {})",
            layout.current_release().unwrap_or_default(),
            layout.log_file(id).display()
        ),
        Outcome::Failed {
            id,
            failure,
            restored,
        } => eprintln!(
            "hooks: {id} failed: {failure}\nhooks: {} (log: {})",
            match restored {
                Some(previous) => format!("the previous release {previous} is serving again"),
                None => match layout.current_release() {
                    Some(serving) =>
                        format!("nothing was changed; release {serving} is still serving"),
                    None => "nothing had been serving before; nothing was left running".to_owned(),
                },
            },
            layout.log_file(id).display()
        ),
        Outcome::NotRestored {
            id,
            failure,
            restore,
        } => eprintln!(
            "hooks: {id} failed: {failure}\nhooks: the previous release was NOT restored: {restore}\nhooks: current -> {} (log: {})",
            layout.current_release().unwrap_or_else(|| "(none)".into()),
            layout.log_file(id).display()
        ),
        Outcome::Invalid { error, .. } => {
            eprintln!("hooks: invalid input, nothing was changed:\n{error}")
        }
        Outcome::Locked { error } => eprintln!("hooks: {error}"),
    }
    outcome.exit_code()
}
