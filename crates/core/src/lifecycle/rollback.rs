//! `hooks rollback [--to ID]`: re-activate a kept release by hand, through the same steps as a
//! deployment, and mark the release it replaces as bad so it is never chosen again.

use std::path::PathBuf;
use std::time::Duration;

use crate::release::history::{self, Kind, Record};
use crate::release::{History, Layout};

use super::ending::Ending;
use super::outcome::Outcome;
use super::recovery::begin;
use super::script::Grace;
use super::session::{current_user, hooks_env, new_deployment_id, open_log, with_activation};
use crate::release::kept::load_release;
use hooks_journal::progress::{Progress, ProgressSink, RunKind};

/// What the operator asked for.
pub struct RollbackOptions {
    /// The deployment root (`--root`).
    pub root: PathBuf,
    /// The release to re-activate; default: the newest good release other than `current`.
    pub to: Option<String>,
    /// How long to wait for another deployment's lock (zero: fail at once).
    pub wait: Duration,
    /// Kill and output-pipe grace periods for the scripts.
    pub grace: Grace,
    /// Stream the log to stdout as well as the file (when `progress` is `None`).
    pub echo: bool,
    /// Roll back even when the database has migrations the target does not know
    /// (`--ignore-migrations`); see [`super::migration_guard`].
    pub ignore_migrations: bool,
    /// Where progress events and log lines go instead of raw lines on stdout (a presenter).
    pub progress: Option<std::sync::Arc<dyn ProgressSink>>,
}

/// Re-activates a kept release. Exit codes as `hooks deploy`: 0 done; 1 the target did not come
/// up and the release serving before serves again (the target is marked bad); 2 that restore
/// failed too; 3 no such release; 4 locked.
pub fn rollback(options: &RollbackOptions) -> Outcome {
    let layout = Layout::new(&options.root);
    let id = new_deployment_id();
    let (mut lock, recovery) = match begin(&layout, &id, options.wait) {
        Ok(begun) => begun,
        Err(outcome) => return outcome,
    };
    super::interrupt::arm();
    let started = super::recovery::started_release(&layout, &lock);
    let history = History::new(layout.history_file());
    let current = layout.current_release();
    let target = match choose_target(&layout, &history, current.as_deref(), options.to.as_deref()) {
        Ok(target) => target,
        Err(error) => {
            return Outcome::Invalid {
                id: None,
                error: error.to_string(),
            };
        }
    };
    let target = match load_release(&layout, &target) {
        Ok(release) => release,
        Err(error) => {
            return Outcome::Invalid {
                id: None,
                error: error.to_string(),
            };
        }
    };
    let replaced = current
        .as_deref()
        .and_then(|c| load_release(&layout, c).ok());
    let guard = match super::migration_guard::check(
        &layout,
        &history,
        &target,
        replaced.as_ref(),
        Some(&lock.record()),
    ) {
        Ok(super::migration_guard::Verdict::Refused(_)) | Err(_) if options.ignore_migrations => {
            Some("migration guard overridden by --ignore-migrations".to_owned())
        }
        Ok(super::migration_guard::Verdict::Refused(error)) | Err(error) => {
            return Outcome::Invalid { id: None, error };
        }
        Ok(super::migration_guard::Verdict::Clear(unknown)) if !unknown.is_empty() => {
            Some(format!(
                "the database has migrations {} does not know, all marked `-- hooks: compatible`: {}",
                target.id,
                unknown
                    .iter()
                    .map(|u| format!("{} {}", u.version, u.description))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        Ok(_) => None,
    };
    let log = match open_log(&layout, &id, options.echo, options.progress.as_ref()) {
        Ok(log) => log,
        Err(e) => {
            return Outcome::Invalid {
                id: None,
                error: format!("cannot write the log: {e}"),
            };
        }
    };
    for note in recovery {
        log.line("recovery", &note);
    }
    let _ = history.append(&Record::Started {
        id: id.clone(),
        kind: Kind::Rollback,
        application: String::new(),
        group: String::new(),
        bundle: format!("releases/{}", target.id),
        user: current_user(),
        pid: std::process::id(),
        started_at: hooks_journal::now(),
        target: Some(target.id.clone()),
    });
    log.line(
        "rollback",
        &format!(
            "rollback {id}: {} -> {}",
            current.as_deref().unwrap_or("(nothing serving)"),
            target.id
        ),
    );
    if let Some(note) = guard {
        log.line("rollback", &note);
    }
    log.progress(Progress::Started {
        id: id.clone(),
        kind: RunKind::Rollback,
        source: format!("releases/{}", target.id),
        target: Some(target.id.clone()),
        log: layout.log_file(&id).display().to_string(),
    });
    let notifier = target
        .spec
        .deploy
        .notify
        .as_ref()
        .and_then(|c| crate::notify::Notifier::start(c, &layout.shared_dir(), &log));
    let notify = |event: &'static str, error: Option<String>, code: Option<i32>| {
        if let Some(notifier) = &notifier {
            let mut e = crate::notify::Event::new(event, "rollback", &id, &target.id);
            e.previous = current.clone();
            e.error = error.map(|t| log.redact(&t));
            e.exit_code = code;
            notifier.send(e);
        }
    };
    notify("started", None, None);
    let mut env = vec![("DEPLOYMENT_ID".to_owned(), id.clone())];
    env.extend(hooks_env(&layout));
    let (outcome, result_kind, error) = with_activation(
        &layout,
        &log,
        &mut lock,
        &id,
        env,
        options.grace,
        |activation| {
            if let Some(interrupted) = &started {
                super::recovery::stop_started(activation, interrupted);
            }
            let result = activation
                .restore(&target, replaced.as_ref())
                .and_then(|()| activation.bake(&target));
            match result {
                Ok(()) => {
                    if let Some(replaced) = &current {
                        let _ = history.append(&Record::MarkedBad {
                            id: replaced.clone(),
                            at: hooks_journal::now(),
                            reason: format!("replaced by rollback {id} to {}", target.id),
                        });
                        log.line(
                            "rollback",
                            &format!(
                                "release {replaced} marked bad: it will not be restored again"
                            ),
                        );
                    }
                    (
                        Outcome::Deployed { id: id.clone() },
                        history::Result::Success,
                        None,
                    )
                }
                Err(failure) => {
                    super::interrupt::begin_restore();
                    let text = format!("{}: {failure}", failure.code);
                    log.line(
                        "rollback",
                        &format!("rollback to {} FAILED: {text}", target.id),
                    );
                    // The same rule as a failing deployment: the release that served before serves
                    // again, and the target that failed is never chosen again. A signal to hooks says
                    // nothing about the target, so it is not marked.
                    let interrupted = failure.code == super::script::INTERRUPTED;
                    if !interrupted {
                        let _ = history.append(&Record::MarkedBad {
                            id: target.id.clone(),
                            at: hooks_journal::now(),
                            reason: format!("rollback {id} to it failed: {text}"),
                        });
                    }
                    let restoring = std::time::Instant::now();
                    log.progress(Progress::RollbackStarted {
                        to: replaced.as_ref().map(|r| r.id.clone()),
                    });
                    let back = match &replaced {
                        Some(replaced) => {
                            log.line(
                                "rollback",
                                &format!("restoring {}, which was serving before", replaced.id),
                            );
                            activation
                                .restore(replaced, Some(&target))
                                .map(|()| Some(replaced.id.clone()))
                                .map_err(|e| format!("{}: {e}", e.code))
                        }
                        // A release served but its appspec cannot be read: it cannot be restored, and
                        // `current` is not taken from it.
                        None if current.is_some() => Err(format!(
                            "the release {} that served before has an appspec hooks cannot read, so it cannot be restored",
                            current.as_deref().unwrap_or_default()
                        )),
                        None => {
                            activation.stop_best_effort(&target);
                            crate::release::switch::clear_current(&layout)
                                .map(|()| None)
                                .map_err(|e| format!("cannot remove `current`: {e}"))
                        }
                    };
                    log.progress(Progress::RollbackFinished {
                        restored: back.as_ref().ok().cloned().flatten(),
                        duration: restoring.elapsed(),
                        error: back.as_ref().err().cloned(),
                    });
                    match back {
                        Ok(restored) => {
                            log.line(
                                "rollback",
                                &match &restored {
                                    Some(r) => format!("release {r} is serving again"),
                                    None => "nothing served before the rollback: `current` removed"
                                        .to_owned(),
                                },
                            );
                            (
                                Outcome::Failed {
                                    id: id.clone(),
                                    failure: format!("rollback to {}: {text}", target.id),
                                    restored,
                                },
                                if interrupted {
                                    history::Result::Interrupted
                                } else {
                                    history::Result::Failed
                                },
                                Some(text),
                            )
                        }
                        Err(restore) => (
                            Outcome::NotRestored {
                                id: id.clone(),
                                failure: format!("rollback to {}: {text}", target.id),
                                restore: restore.clone(),
                            },
                            history::Result::FailedNotRestored,
                            Some(format!("{text}; restore: {restore}")),
                        ),
                    }
                }
            }
        },
    );
    let _ = history.append(
        &Ending {
            // As deploy and run-hook record theirs: a script's message may quote a secret.
            error: error.map(|e| log.redact(&e)),
            ..Ending::new(result_kind)
        }
        .record(&id),
    );
    log.line(
        "rollback",
        &format!("rollback {id} finished: {}", result_kind.as_str()),
    );
    log.sync();
    let failure = match &outcome {
        Outcome::Failed { failure, .. } | Outcome::NotRestored { failure, .. } => {
            Some(failure.clone())
        }
        _ => None,
    };
    let event = if failure.is_none() {
        "rolled_back"
    } else {
        "failed"
    };
    notify(event, failure, Some(outcome.exit_code()));
    if let Some(notifier) = notifier {
        notifier.finish();
        log.sync();
    }
    outcome
}

/// Why no release can be rolled back to; nothing was changed.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    /// The history could not be read.
    #[error("cannot read the history: {0}")]
    History(#[source] std::io::Error),
    /// `--to` is not a deployment id.
    #[error(transparent)]
    BadId(#[from] crate::release::layout::RootError),
    /// `--to` names the serving release.
    #[error("release {id} is already current")]
    AlreadyCurrent {
        /// The release asked for.
        id: String,
    },
    /// `--to` names a release not on this server.
    #[error(
        "release {id} is not kept on this server; kept releases: {}",
        if kept.is_empty() { "none".to_owned() } else { kept.join(", ") }
    )]
    NotKept {
        /// The release asked for.
        id: String,
        /// The deployments whose releases are kept, oldest first.
        kept: Vec<String>,
    },
    /// No successful, not-bad release other than the current one is kept.
    #[error(
        "no earlier good release to roll back to (see `hooks history`); pass --to ID to choose one"
    )]
    NoGoodRelease,
}

/// The release to go back to: the one asked for, or the newest good one that is not current.
fn choose_target(
    layout: &Layout,
    history: &History,
    current: Option<&str>,
    asked: Option<&str>,
) -> Result<String, TargetError> {
    let deployments = history.deployments().map_err(TargetError::History)?;
    let kept: Vec<String> = deployments
        .iter()
        .filter(|d| d.kind == Kind::Deploy && layout.release_dir(&d.id).is_dir())
        .map(|d| d.id.clone())
        .collect();
    if let Some(asked) = asked {
        crate::release::layout::check_id(asked)?;
        if Some(asked) == current {
            return Err(TargetError::AlreadyCurrent {
                id: asked.to_owned(),
            });
        }
        if !layout.release_dir(asked).is_dir() {
            return Err(TargetError::NotKept {
                id: asked.to_owned(),
                kept,
            });
        }
        return Ok(asked.to_owned());
    }
    deployments
        .iter()
        .rev()
        .filter(|d| d.result == Some(history::Result::Success) && !d.bad)
        .map(|d| d.release().to_owned())
        .find(|r| Some(r.as_str()) != current && layout.release_dir(r).is_dir())
        .ok_or(TargetError::NoGoodRelease)
}
