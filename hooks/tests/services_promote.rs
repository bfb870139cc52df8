//! `hooks promote COMMIT` and `hooks swap` on real processes: builds kept by commit under
//! `binaries/`, the `bin/prod` link, rolling restarts, switching back on failure (exit 1),
//! a previous build that cannot come back (exit 2), and ambiguous or missing commits.

use crate::common;
use crate::services_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Env;
use services_support::*;

const GOOD1: &str = "main_abcd1111aaaa";
const GOOD2: &str = "main_abcd2222bbbb";
const BAD: &str = "main_dead3333cccc";

/// A root with two good builds and one that exits at once, an appspec running `bin/prod` as
/// two instances, and their configs.
fn promote_root(env: &Env) -> u16 {
    let root = env.root();
    let db = database(&env.path("db.sqlite"), true);
    let base = free_ports(2);
    std::fs::create_dir_all(root.join("binaries")).unwrap();
    std::fs::create_dir_all(root.join("config")).unwrap();
    for build in [GOOD1, GOOD2] {
        std::fs::copy(sample_service(), root.join("binaries").join(build)).unwrap();
    }
    write_exec(
        &root.join("binaries").join(BAD),
        "#!/bin/sh\necho 'cannot open database password=hunter2' >&2\nexit 1\n",
    );
    for i in 0..2u16 {
        std::fs::write(
            root.join(format!("config/instance-{}.yml", i + 1)),
            format!(
                "listen: 127.0.0.1:{}\ndatabase_url_file: {}\n",
                base + i,
                db.display()
            ),
        )
        .unwrap();
    }
    std::fs::write(
        root.join("appspec.yml"),
        format!("version: 0.0\nos: linux\ndeploy:\n  services:\n    - name: api\n      command: bin/prod\n      instances: 2\n      config_path: config/instance-%i.yml\n      listen: 127.0.0.1:{base}\n      health: {{path: /health, interval: 100ms, deadline: 5s}}\n      drain: 5s\n"),
    )
    .unwrap();
    base
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn prod(env: &Env) -> String {
    std::fs::read_link(env.root().join("bin/prod"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn promote_rolls_forward_refuses_ambiguity_and_switches_back_on_failure() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let base = promote_root(&env);

    env.hooks(&["promote", "abcd1111"]).expect(0);
    assert_eq!(prod(&env), format!("../binaries/{GOOD1}"));
    let first = status(&env);
    assert!(
        first
            .iter()
            .all(|(_, pid, release)| pid.is_some() && release == GOOD1),
        "{first:?}"
    );
    assert_eq!(version(base), version(base + 1));

    let ambiguous = env.hooks(&["promote", "abcd"]);
    ambiguous.expect(3);
    assert!(
        ambiguous.stderr().contains(GOOD1) && ambiguous.stderr().contains(GOOD2),
        "{}",
        ambiguous.stderr()
    );
    let missing = env.hooks(&["promote", "ffff9999"]);
    missing.expect(3);
    assert!(
        missing.stderr().contains("no build") && missing.stderr().contains(BAD),
        "{}",
        missing.stderr()
    );
    assert_eq!(
        prod(&env),
        format!("../binaries/{GOOD1}"),
        "a refused promotion changes nothing"
    );

    // Only instance 2 moves to the second build.
    env.hooks(&["promote", "abcd2222", "--instances", "2"])
        .expect(0);
    let partial = status(&env);
    assert_eq!(partial[0], first[0], "instance 1 was not to be restarted");
    assert_eq!(partial[1].2, GOOD2);

    // The bad build fails on instance 1: the link goes back and every instance restarts.
    let failed = env.hooks(&["promote", "dead3333"]);
    failed.expect(1);
    assert!(
        failed.stderr().contains("api@1") && failed.stderr().contains("password=[REDACTED]"),
        "{}",
        failed.stderr()
    );
    assert!(
        !failed.stderr().contains("hunter2"),
        "a secret reached the output"
    );
    assert_eq!(prod(&env), format!("../binaries/{GOOD2}"));
    let after = status(&env);
    assert!(
        after.iter().all(|(_, _, release)| release == GOOD2),
        "{after:?}"
    );
    assert_ne!(
        after[1].1, partial[1].1,
        "instance 2 was restarted on the previous build"
    );

    // With the previous build gone, nothing can come back: exit 2.
    std::fs::remove_file(env.root().join("binaries").join(GOOD2)).unwrap();
    env.hooks(&["promote", "dead3333"]).expect(2);
}

#[test]
fn swap_puts_server_new_in_place_and_back_on_failure() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let root = env.root();
    let base = promote_root(&env);
    let appspec = std::fs::read_to_string(root.join("appspec.yml")).unwrap();
    std::fs::write(
        root.join("appspec.yml"),
        appspec.replace("bin/prod", "server"),
    )
    .unwrap();
    std::fs::copy(sample_service(), root.join("server_new")).unwrap();
    env.hooks(&["swap", "--new", "server_new", "--current", "server"])
        .expect(0);
    assert!(root.join("server").exists() && !root.join("server_new").exists());
    assert_eq!(version(base), version(base + 1));

    let size = std::fs::metadata(root.join("server")).unwrap().len();
    write_exec(&root.join("server_new"), "#!/bin/sh\nexit 3\n");
    env.hooks(&["swap", "--new", "server_new", "--current", "server"])
        .expect(1);
    assert_eq!(
        std::fs::metadata(root.join("server")).unwrap().len(),
        size,
        "the previous server is back"
    );
    version(base);
}

#[test]
fn promote_after_a_killed_deployment_recovers_from_it_first() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    promote_root(&env);
    let started = env.path("script.pid");
    let stuck = env
        .bundle("stuck")
        .script(
            "BeforeInstall",
            "stuck.sh",
            &format!(
                "echo $$ > '{}.tmp'\nmv '{0}.tmp' '{0}'\nexec sleep 600",
                started.display()
            ),
        )
        .build();
    let mut deployment = env.spawn_deploy(&stuck, std::process::Stdio::null());
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the deployment's script to start",
        || started.is_file(),
    );
    let script: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    deployment.kill().unwrap();
    deployment.wait().unwrap();
    assert!(
        common::alive(script),
        "the killed deployment's script runs on"
    );

    // The promotion takes the lock as a deployment would: the orphaned script is stopped and
    // the killed deployment recorded as interrupted, not forgotten.
    let run = env.hooks(&["promote", "abcd1111"]);
    run.expect(0);
    assert!(
        run.stderr().contains("stopped script process group"),
        "{}",
        run.stderr()
    );
    assert!(!common::alive(script));
    assert_eq!(
        env.history()[0]["result"],
        "interrupted",
        "{:?}",
        env.history()
    );
    assert_eq!(prod(&env), format!("../binaries/{GOOD1}"));
}
