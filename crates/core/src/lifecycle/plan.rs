//! The deployment plan: what a deployment does with each CodeDeploy lifecycle event, as one
//! table in execution order, like the agent's `mapping_between_hooks_and_deployments`.
//!
//! `hooks deploy`, a restore and `hooks rollback`, `hooks run-hook` under the agent,
//! `hooks deploy --dry-run`, the presenters' step names and crash recovery all read this table
//! instead of spelling the order out, so they cannot drift apart. Adding a lifecycle event is one
//! row here plus, if it has a built-in step, its entry in [`super::builtins`].
//!
//! [`LifecycleEvent`] stays the appspec's vocabulary (names, what may carry scripts); this table
//! is what a deployment does with it. Its `traffic` and `scripts` columns repeat
//! [`LifecycleEvent::is_traffic`] and [`LifecycleEvent::is_scriptable`] so the table reads on its
//! own; a test keeps them equal.

use hooks_appspec::LifecycleEvent;

/// Which release an event runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The release of the last fully successful deployment: it is the one serving, so only it
    /// knows how to stop itself and take itself out of traffic. Without one the event is skipped.
    Previous,
    /// The release being deployed.
    New,
}

/// The built-in step of the `deploy:` extension that runs in an event, before its scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No built-in step: the event runs only the user's scripts, if it may have any.
    None,
    /// Fetch, unpack and validate the bundle into `releases/<id>`. `hooks deploy` does it before
    /// anything else (`deploy/download.rs`), so bad input stops nothing; under the agent,
    /// `hooks run-hook` adopts the agent's unpacked revision.
    Download,
    /// Link `deploy.shared`, copy `files:`, apply `permissions:` (see
    /// [`super::activate::Activation::install`]).
    Install,
    /// `deploy.migrate`: a backup if migrations are pending, then the migration.
    Migrate,
    /// `deploy.compose` up, then the rolling restart of `deploy.services`.
    Services,
    /// Every `deploy.services` instance passes its health check.
    Health,
}

impl Step {
    /// The name presenters show for the step, `None` for [`Step::None`].
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Download => Some("download"),
            Self::Install => Some("install"),
            Self::Migrate => Some("migrate"),
            Self::Services => Some("services"),
            Self::Health => Some("health"),
        }
    }
}

/// What a deployment does in one lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The event.
    pub event: LifecycleEvent,
    /// The release it runs on.
    pub revision: Revision,
    /// Part of a traffic switch: runs only when the release it runs on sets `deploy.traffic`.
    pub traffic: bool,
    /// May carry user scripts; the agent performs the others itself.
    pub scripts: bool,
    /// The built-in step that runs before the scripts.
    pub builtin: Step,
    /// `current` is switched to the new release right after this event, so the start events
    /// (and everything after them) see it as the serving release.
    pub switch_after: bool,
    /// Part of a restore, which makes an older, already installed release serve again: it is
    /// re-installed (its `files:` replace those of the release it displaces) and restarted,
    /// but neither migrated nor put through its install hooks a second time.
    pub restore: bool,
    /// A failure at this event means the new release had already started (its
    /// ApplicationStart had begun), so going back first stops it: it may hold what the
    /// restored release needs (a port, a pidfile).
    pub started: bool,
}

/// One thing the plan does: an event, or the switch of `current` between two events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Run this row's event.
    Event(&'static Row),
    /// Switch `current` to the release being activated.
    Switch,
}

// One argument per column, so each row of the table reads as one line.
#[allow(clippy::too_many_arguments)]
const fn entry(
    event: LifecycleEvent,
    revision: Revision,
    traffic: bool,
    scripts: bool,
    builtin: Step,
    switch_after: bool,
    restore: bool,
    started: bool,
) -> Row {
    Row {
        event,
        revision,
        traffic,
        scripts,
        builtin,
        switch_after,
        restore,
        started,
    }
}

/// The in-place plan, one row per lifecycle event, in execution order.
#[rustfmt::skip]
pub const PLAN: &[Row] = {
    use LifecycleEvent::*;
    use Revision::{New, Previous};
    &[
        //    event               revision  traffic scripts builtin          switch restore started
        entry(BeforeBlockTraffic, Previous, true,   true,   Step::None,      false, false,  false),
        entry(BlockTraffic,       Previous, true,   false,  Step::None,      false, false,  false),
        entry(AfterBlockTraffic,  Previous, true,   true,   Step::None,      false, false,  false),
        entry(ApplicationStop,    Previous, false,  true,   Step::None,      false, false,  false),
        entry(DownloadBundle,     New,      false,  false,  Step::Download,  false, false,  false),
        entry(BeforeInstall,      New,      false,  true,   Step::None,      false, false,  false),
        entry(Install,            New,      false,  false,  Step::Install,   false, true,   false),
        entry(AfterInstall,       New,      false,  true,   Step::Migrate,   true,  false,  false),
        entry(ApplicationStart,   New,      false,  true,   Step::Services,  false, true,   true),
        entry(ValidateService,    New,      false,  true,   Step::Health,    false, true,   true),
        entry(BeforeAllowTraffic, New,      true,   true,   Step::None,      false, false,  true),
        entry(AllowTraffic,       New,      true,   false,  Step::None,      false, false,  true),
        entry(AfterAllowTraffic,  New,      true,   true,   Step::None,      false, false,  true),
    ]
};

/// The row of `event`.
pub fn row(event: LifecycleEvent) -> &'static Row {
    PLAN.iter()
        .find(|row| row.event == event)
        .unwrap_or_else(|| panic!("{event} has no row in the deployment plan"))
}

impl Row {
    /// Whether the event has anything for `hooks` to run: scripts or a built-in step. The
    /// others (BlockTraffic, AllowTraffic) are the load balancer's calls the agent makes.
    pub fn has_work(&self) -> bool {
        self.scripts || self.builtin != Step::None
    }
}

/// An in-place deployment, stage by stage: every event, and the switch where it happens.
pub fn in_place() -> impl Iterator<Item = Stage> {
    PLAN.iter().flat_map(|row| {
        std::iter::once(Stage::Event(row)).chain(row.switch_after.then_some(Stage::Switch))
    })
}

/// A restore, stage by stage: the restore events, with the switch where the in-place plan has
/// it, so the restored release starts as the serving one.
pub fn restore() -> impl Iterator<Item = Stage> {
    PLAN.iter().flat_map(|row| {
        row.restore
            .then_some(Stage::Event(row))
            .into_iter()
            .chain(row.switch_after.then_some(Stage::Switch))
    })
}

/// What the CodeDeploy agent does itself just before the scriptable `event`: the stages after
/// the previous scriptable event. `hooks run-hook` runs once per scriptable event, so it does
/// their built-in work (and the switch) at the start of `event`.
pub fn before_under_agent(event: LifecycleEvent) -> Vec<Stage> {
    let mut pending = Vec::new();
    for stage in in_place() {
        match stage {
            Stage::Event(row) if row.event == event => return pending,
            Stage::Event(row) if row.scripts => pending.clear(),
            other => pending.push(other),
        }
    }
    pending
}

/// The last event the agent runs scripts for, with or without a traffic switch: where a
/// deployment under the agent has succeeded.
pub fn last_under_agent(traffic: bool) -> LifecycleEvent {
    PLAN.iter()
        .rev()
        .find(|row| row.scripts && (traffic || !row.traffic))
        .map(|row| row.event)
        .expect("the plan has events with scripts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleEvent::*;

    fn events(stages: impl Iterator<Item = Stage>) -> Vec<String> {
        stages
            .map(|stage| match stage {
                Stage::Event(row) => row.event.name().to_owned(),
                Stage::Switch => "switch".to_owned(),
            })
            .collect()
    }

    #[test]
    fn the_order_is_the_codedeploy_in_place_order() {
        let order: Vec<LifecycleEvent> = PLAN.iter().map(|row| row.event).collect();
        assert_eq!(
            order,
            [
                BeforeBlockTraffic,
                BlockTraffic,
                AfterBlockTraffic,
                ApplicationStop,
                DownloadBundle,
                BeforeInstall,
                Install,
                AfterInstall,
                ApplicationStart,
                ValidateService,
                BeforeAllowTraffic,
                AllowTraffic,
                AfterAllowTraffic,
            ]
        );
        // Comparisons of events (`>=`) elsewhere rely on the enum's order being this one.
        assert_eq!(order, LifecycleEvent::ALL);
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn exactly_the_block_traffic_hooks_and_application_stop_run_on_the_previous_release() {
        let previous: Vec<LifecycleEvent> = PLAN
            .iter()
            .filter(|row| row.revision == Revision::Previous)
            .map(|row| row.event)
            .collect();
        assert_eq!(
            previous,
            [
                BeforeBlockTraffic,
                BlockTraffic,
                AfterBlockTraffic,
                ApplicationStop
            ]
        );
    }

    #[test]
    fn the_switch_follows_after_install_and_only_it() {
        let switches: Vec<LifecycleEvent> = PLAN
            .iter()
            .filter(|row| row.switch_after)
            .map(|row| row.event)
            .collect();
        assert_eq!(switches, [AfterInstall]);
        let stages = events(in_place());
        let at = stages.iter().position(|s| s == "switch").unwrap();
        assert_eq!(stages[at - 1], "AfterInstall");
        assert_eq!(stages[at + 1], "ApplicationStart");
        assert_eq!(stages.len(), PLAN.len() + 1);
    }

    #[test]
    fn a_restore_installs_switches_starts_and_validates() {
        assert_eq!(
            events(restore()),
            ["Install", "switch", "ApplicationStart", "ValidateService"]
        );
    }

    #[test]
    fn scripts_and_traffic_agree_with_the_appspec_vocabulary() {
        for row in PLAN {
            assert_eq!(row.scripts, row.event.is_scriptable(), "{}", row.event);
            assert_eq!(row.traffic, row.event.is_traffic(), "{}", row.event);
        }
        let unscriptable: Vec<LifecycleEvent> = PLAN
            .iter()
            .filter(|row| !row.scripts)
            .map(|row| row.event)
            .collect();
        assert_eq!(
            unscriptable,
            [BlockTraffic, DownloadBundle, Install, AllowTraffic]
        );
    }

    #[test]
    fn the_new_release_counts_as_started_from_application_start_on() {
        for row in PLAN {
            assert_eq!(row.started, row.event >= ApplicationStart, "{}", row.event);
        }
    }

    #[test]
    fn each_built_in_step_has_one_event() {
        let steps: Vec<(LifecycleEvent, &str)> = PLAN
            .iter()
            .filter_map(|row| Some((row.event, row.builtin.name()?)))
            .collect();
        assert_eq!(
            steps,
            [
                (DownloadBundle, "download"),
                (Install, "install"),
                (AfterInstall, "migrate"),
                (ApplicationStart, "services"),
                (ValidateService, "health"),
            ]
        );
    }

    #[test]
    fn every_event_has_one_row() {
        for event in LifecycleEvent::ALL {
            assert_eq!(row(event).event, event);
            assert_eq!(PLAN.iter().filter(|row| row.event == event).count(), 1);
        }
    }

    #[test]
    fn under_the_agent_run_hook_catches_up_on_what_the_agent_did_itself() {
        let before = |event| events(before_under_agent(event).into_iter());
        assert_eq!(before(BeforeInstall), ["DownloadBundle"]);
        assert_eq!(before(AfterInstall), ["Install"]);
        assert_eq!(before(ApplicationStart), ["switch"]);
        assert_eq!(before(AfterBlockTraffic), ["BlockTraffic"]);
        assert_eq!(before(AfterAllowTraffic), ["AllowTraffic"]);
        for event in [
            BeforeBlockTraffic,
            ApplicationStop,
            ValidateService,
            BeforeAllowTraffic,
        ] {
            assert!(before(event).is_empty(), "{event}");
        }
    }

    #[test]
    fn under_the_agent_the_last_scripted_event_ends_the_deployment() {
        assert_eq!(last_under_agent(false), ValidateService);
        assert_eq!(last_under_agent(true), AfterAllowTraffic);
    }
}
