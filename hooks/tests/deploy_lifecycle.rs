//! The lifecycle as a user sees it: event order, the variables scripts get, ApplicationStop
//! from the last successful release, and the bail-out at every event.

use crate::common;

use common::{EVENTS, Env};

fn traced_bundle(env: &Env, name: &str) -> std::path::PathBuf {
    env.bundle(name).traced(&EVENTS, name).build()
}

#[test]
fn events_run_in_codedeploy_order_and_application_stop_is_skipped_on_the_first_deployment() {
    let env = Env::new();
    let v1 = traced_bundle(&env, "v1");
    env.deploy(&v1, &["--application", "shop", "--group", "prod"])
        .expect(0);
    let events: Vec<String> = env
        .trace_lines()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "BeforeInstall",
            "AfterInstall",
            "ApplicationStart",
            "ValidateService"
        ]
    );
    let id = env.last_id();
    let log = env.log(&id);
    assert!(log.contains("ApplicationStop] skipped: no earlier successful deployment"));
    assert!(log.contains("BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic skipped"));

    env.clear_trace();
    let v2 = traced_bundle(&env, "v2");
    env.deploy(&v2, &[]).expect(0);
    let lines = env.trace_lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[0].starts_with("ApplicationStop v1 "), "{lines:?}");
    assert!(lines[1..].iter().all(|l| l.split(' ').nth(1) == Some("v2")));
}

#[test]
fn the_lifecycle_order_holds_whatever_order_the_appspec_lists_the_hooks_in() {
    let env = Env::new();
    let mut reversed = EVENTS;
    reversed.reverse();
    let build = |name: &str| env.bundle(name).traced(&reversed, name).build();
    let v1 = build("v1");
    let appspec = std::fs::read_to_string(v1.join("appspec.yml")).unwrap();
    assert!(
        appspec.find("ValidateService:") < appspec.find("BeforeInstall:"),
        "the appspec must list the hooks out of order for this test to mean anything"
    );
    env.deploy(&v1, &[]).expect(0);
    env.clear_trace();
    env.deploy(&build("v2"), &[]).expect(0);
    let events = env.trace_events();
    assert_eq!(
        events,
        [
            "ApplicationStop v1",
            "BeforeInstall v2",
            "AfterInstall v2",
            "ApplicationStart v2",
            "ValidateService v2"
        ]
    );
}

#[test]
fn scripts_get_the_codedeploy_variables_and_run_in_the_release_directory() {
    let env = Env::new();
    let out = env.path("env.txt");
    let bundle = env
        .bundle("v1")
        .script(
            "AfterInstall",
            "env.sh",
            &format!(
                "echo \"$LIFECYCLE_EVENT|$DEPLOYMENT_ID|$APPLICATION_NAME|$DEPLOYMENT_GROUP_NAME|$DEPLOYMENT_GROUP_ID|$(pwd)\" > '{}'",
                out.display()
            ),
        )
        .build();
    env.deploy(
        &bundle,
        &[
            "--application",
            "shop",
            "--group",
            "prod",
            "--group-id",
            "g-1",
        ],
    )
    .expect(0);
    let id = env.last_id();
    let fields: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .split('|')
        .map(str::to_owned)
        .collect();
    let release = env.root().join("releases").join(&id);
    assert_eq!(
        fields,
        [
            "AfterInstall",
            id.as_str(),
            "shop",
            "prod",
            "g-1",
            release.to_str().unwrap()
        ]
    );
}

/// Deploys a good release, then one that fails in ValidateService with `flags`, expecting
/// `exit`; returns the good release's id.
fn good_then_broken(env: &Env, flags: &[&str], exit: i32) -> String {
    env.deploy(&traced_bundle(env, "good"), &[]).expect(0);
    let good = env.current().unwrap();
    let broken = env
        .bundle("broken")
        .traced(&EVENTS, "broken")
        .script("ValidateService", "fail.sh", "exit 1")
        .build();
    env.deploy(&broken, flags).expect(exit);
    good
}

#[test]
fn application_stop_comes_from_the_last_successful_release_not_the_last_installed_one() {
    let env = Env::new();
    let good = good_then_broken(&env, &[], 1);
    env.clear_trace();
    env.deploy(&traced_bundle(&env, "next"), &[]).expect(0);
    let first = env.trace_lines().remove(0);
    let good_dir = env.root().join("releases").join(&good);
    assert_eq!(
        first.split(' ').take(3).collect::<Vec<_>>(),
        ["ApplicationStop", "good", good_dir.to_str().unwrap()],
        "ApplicationStop must run the last *successful* release's script in its directory"
    );
}

#[test]
fn application_stop_skips_a_failed_release_left_serving_by_no_rollback() {
    let env = Env::new();
    let good = good_then_broken(&env, &["--no-rollback"], 2);
    let broken_id = env.last_id();
    assert_eq!(
        env.current().as_deref(),
        Some(broken_id.as_str()),
        "the failed release must be the one installed for this test to mean anything"
    );
    env.clear_trace();
    env.deploy(&traced_bundle(&env, "next"), &[]).expect(0);
    let lines = env.trace_lines();
    let good_dir = env.root().join("releases").join(&good);
    assert_eq!(
        lines[0].split(' ').take(3).collect::<Vec<_>>(),
        ["ApplicationStop", "good", good_dir.to_str().unwrap()],
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(" broken ")),
        "no script of the failed release may run: {lines:?}"
    );
}

#[test]
fn skip_application_stop_does_not_run_the_previous_releases_script_and_says_so() {
    let env = Env::new();
    env.deploy(&traced_bundle(&env, "v1"), &[]).expect(0);
    env.clear_trace();
    env.deploy(&traced_bundle(&env, "v2"), &["--skip-application-stop"])
        .expect(0);
    let events = env.trace_events();
    assert_eq!(
        events,
        [
            "BeforeInstall v2",
            "AfterInstall v2",
            "ApplicationStart v2",
            "ValidateService v2"
        ]
    );
    let log = env.log(&env.last_id());
    assert!(
        log.contains("[ApplicationStop] skipped (--skip-application-stop)"),
        "{log}"
    );
}

#[test]
fn a_failing_script_at_each_event_leaves_the_previous_release_serving_with_exit_1() {
    for failing in EVENTS {
        let env = Env::new();
        // v1's ApplicationStop fails only once the flag exists, so v1 deploys cleanly.
        let flag = env.path("fail-stop");
        let v1 = env
            .bundle("v1")
            .traced(&EVENTS, "v1")
            .script(
                "ApplicationStop",
                "maybe_fail.sh",
                &format!("[ ! -e '{}' ]", flag.display()),
            )
            .build();
        env.deploy(&v1, &[]).expect(0);
        let v1_id = env.current().unwrap();
        let mut v2 = env.bundle("v2").traced(&EVENTS, "v2");
        if failing == "ApplicationStop" {
            std::fs::write(&flag, "").unwrap();
        } else {
            v2 = v2.script(failing, "fail.sh", "echo boom >&2; exit 7");
        }
        env.clear_trace();
        let run = env.deploy(&v2.build(), &[]);
        run.expect(1);
        assert!(run.stderr().contains("ScriptFailed"), "{}", run.stderr());
        assert_eq!(env.current().as_deref(), Some(v1_id.as_str()), "{failing}");
        let lines = env.trace_lines();
        // The restore re-runs v1's ApplicationStart and ValidateService last.
        let tail: Vec<String> = lines
            .iter()
            .rev()
            .take(2)
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            tail,
            ["ValidateService v1", "ApplicationStart v1"],
            "{failing}: {lines:?}"
        );
        let history = env.history();
        let last = history.last().unwrap();
        assert_eq!(last["result"], "failed", "{failing}");
        assert_eq!(last["failed_event"], failing, "{failing}");
        assert_eq!(last["restored"], v1_id.as_str(), "{failing}");
        assert!(
            env.log(last["id"].as_str().unwrap()).contains("boom") || failing == "ApplicationStop"
        );
    }
}

#[test]
fn a_first_deployment_that_fails_leaves_nothing_serving_and_exits_1() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .script("ApplicationStart", "fail.sh", "exit 3")
        .build();
    env.deploy(&bundle, &[]).expect(1);
    assert_eq!(env.current(), None);
}

#[test]
fn no_rollback_leaves_the_failed_release_in_place_and_exits_2() {
    let env = Env::new();
    env.deploy(&traced_bundle(&env, "v1"), &[]).expect(0);
    let bundle = env
        .bundle("v2")
        .script("ValidateService", "fail.sh", "exit 1")
        .build();
    env.deploy(&bundle, &["--no-rollback"]).expect(2);
    assert_eq!(env.current(), Some(env.last_id()));
}

#[test]
fn traffic_hooks_run_only_when_a_traffic_switch_is_configured() {
    let env = Env::new();
    let traffic = [
        "BeforeBlockTraffic",
        "AfterBlockTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ];
    let build = |name: &str| {
        env.bundle(name)
            .traced(&traffic, name)
            .traced(&["ApplicationStart"], name)
            .deploy_section("  traffic: true\n")
            .build()
    };
    env.deploy(&build("v1"), &[]).expect(0);
    env.clear_trace();
    env.deploy(&build("v2"), &[]).expect(0);
    let events = env.trace_events();
    assert_eq!(
        events,
        [
            "BeforeBlockTraffic v1",
            "AfterBlockTraffic v1",
            "ApplicationStart v2",
            "BeforeAllowTraffic v2",
            "AfterAllowTraffic v2"
        ]
    );
}
