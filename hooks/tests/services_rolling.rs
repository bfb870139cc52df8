//! Rolling restarts of the real sample service under the built-in supervisor: a good
//! deployment, one whose instance 2 fails its health check (every instance back on the old
//! build, exit 1), `hooks rollback`, and a rollback whose target cannot start (exit 2).

use crate::common;
use crate::services_support;

use common::Env;
use services_support::*;

#[test]
fn three_instances_roll_forward_back_and_fail_to_roll_back() {
    let env = Env::new();
    let _supervisor = Supervisor(&env);
    let good = database(&env.path("good.db"), true);
    let empty = database(&env.path("empty.db"), false);
    let base = free_ports(3);
    let ports = [base, base + 1, base + 2];
    let all_good = [good.clone(), good.clone(), good.clone()];

    let v1 = service_bundle(&env, "v1", "v1", base, &all_good, "");
    env.deploy(&v1, &[]).expect(0);
    let v1_id = env.current().unwrap();
    assert_eq!(ports.map(version), ["v1"; 3]);
    let first = status(&env);
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first
            .iter()
            .all(|(_, pid, release)| pid.is_some() && *release == v1_id),
        "{first:?}"
    );

    // Instance 2 of v2 reads a database without the schema: its /health answers 503.
    let v2 = service_bundle(
        &env,
        "v2",
        "v2",
        base,
        &[good.clone(), empty, good.clone()],
        "",
    );
    let run = env.deploy(&v2, &[]);
    run.expect(1);
    let v2_id = env.last_id();
    let log = env.log(&v2_id);
    assert!(
        log.contains("sample@2") && log.contains("HTTP 503"),
        "{log}"
    );
    assert!(
        log.contains("last lines of"),
        "the failure shows the instance's log: {log}"
    );
    assert_eq!(env.current().as_deref(), Some(v1_id.as_str()));
    assert_eq!(ports.map(version), ["v1"; 3]);
    let after = status(&env);
    assert!(
        after.iter().all(|(_, _, release)| *release == v1_id),
        "{after:?}"
    );
    // Restarted on the old build, not left alone: every pid changed.
    for ((key, before, _), (_, now, _)) in first.iter().zip(&after) {
        assert_ne!(before, now, "{key} was not restarted on the previous build");
    }

    let v3 = service_bundle(&env, "v3", "v3", base, &all_good, "");
    env.deploy(&v3, &[]).expect(0);
    let v3_id = env.current().unwrap();
    assert_eq!(ports.map(version), ["v3"; 3]);

    env.hooks(&["rollback"]).expect(0);
    assert_eq!(env.current().as_deref(), Some(v1_id.as_str()));
    assert_eq!(ports.map(version), ["v1"; 3]);

    // v3 cannot start any more: its configuration is gone. The rollback to it fails, v1 is
    // restored as a failed deployment would restore it (exit 1), and v3 is marked bad.
    std::fs::remove_dir_all(env.root().join("releases").join(&v3_id).join("config")).unwrap();
    env.hooks(&["rollback", "--to", &v3_id]).expect(1);
    assert_eq!(env.current().as_deref(), Some(v1_id.as_str()));
    assert_eq!(ports.map(version), ["v1"; 3]);
    let history = env.history();
    let v3 = history.iter().find(|d| d["id"] == v3_id.as_str()).unwrap();
    assert_eq!(v3["bad"], true, "{v3}");
}
