//! The bake window (`deploy.bake`): after ValidateService succeeded, its checks keep running at
//! an interval for a while, and a failure inside the window fails the deployment like a failing
//! ValidateService, so the previous release is restored. A release that breaks a few seconds
//! after its switch (a leak, a lost connection, a cache that fills) is caught before it counts
//! as the last good one.

use std::time::{Duration, Instant};

use hooks_appspec::LifecycleEvent;

use super::activate::Activation;
use super::events::StepFailure;
use crate::release::kept::Release;
use hooks_journal::progress::Progress;

/// How often a bake window looks whether a signal asked the deployment to stop.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

impl Activation<'_, '_> {
    /// Runs ValidateService of `release` every `deploy.bake_interval` until `deploy.bake` has
    /// passed since now. Nothing to do without `deploy.bake`.
    pub fn bake(&mut self, release: &Release) -> Result<(), StepFailure> {
        let Some(window) = release.spec.deploy.bake else {
            return Ok(());
        };
        let interval = release.spec.deploy.bake_interval;
        let log = self.runner.log;
        log.line(
            "bake",
            &format!(
                "==> bake window: ValidateService every {:.1} s for {:.1} s",
                interval.as_secs_f64(),
                window.as_secs_f64()
            ),
        );
        let started = Instant::now();
        log.progress(Progress::StepStarted {
            event: None,
            step: "bake".to_owned(),
        });
        let result = self.bake_checks(release, window, interval, started);
        log.progress(Progress::StepFinished {
            event: None,
            step: "bake".to_owned(),
            duration: started.elapsed(),
            error: result.as_ref().err().map(|f| f.message.clone()),
            detail: result
                .as_ref()
                .ok()
                .map(|checks| format!("{checks} checks")),
        });
        result.map(|_| ())
    }

    /// The checks of [`Self::bake`]; returns how many ran.
    fn bake_checks(
        &mut self,
        release: &Release,
        window: Duration,
        interval: Duration,
        started: Instant,
    ) -> Result<usize, StepFailure> {
        let log = self.runner.log;
        let end = started + window;
        let mut checks = 0;
        loop {
            let next = (Instant::now() + interval).min(end);
            while Instant::now() < next {
                if super::interrupt::requested() {
                    return Err(StepFailure {
                        event: LifecycleEvent::ValidateService,
                        script: None,
                        code: super::script::INTERRUPTED,
                        message: "stopped by a signal to hooks during the bake window".to_owned(),
                    });
                }
                std::thread::sleep(SIGNAL_POLL.min(next.saturating_duration_since(Instant::now())));
            }
            if Instant::now() >= end {
                break;
            }
            checks += 1;
            if let Err(failure) = self.event(LifecycleEvent::ValidateService, release) {
                let elapsed = started.elapsed().as_secs_f64();
                log.line(
                    "bake",
                    &format!("<== bake window FAILED at check {checks}, {elapsed:.1} s after ValidateService"),
                );
                return Err(StepFailure {
                    message: format!(
                        "in the bake window, {elapsed:.1} s after ValidateService succeeded: {}",
                        failure.message
                    ),
                    ..failure
                });
            }
        }
        log.line(
            "bake",
            &format!(
                "<== bake window passed: {checks} checks in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(checks)
    }
}
