//! What reaches `hooks` from the command line and from a bundle before anything changes: roots,
//! ids, usage errors, paths that leave the bundle, `validate` and `plan` edge cases, and the
//! server's own trouble (read-only or full disks). Real binary, real files; the mount tests
//! need root, as CI has.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{EVENTS, Env, hooks_bin};

fn hooks_in(dir: &Path, args: &[&str]) -> common::Run {
    common::Run(
        Command::new(hooks_bin())
            .args(args)
            .current_dir(dir)
            .env_remove("HOOKS_ROOT")
            .output()
            .unwrap(),
    )
}

#[test]
fn a_relative_root_deploys_and_rolls_back_like_an_absolute_one() {
    let env = Env::new();
    let shared = "  shared:\n    - path: config/app.conf\n      type: file\n";
    let check =
        "cat \"$HOOKS_ROOT/shared/config/app.conf\" > /dev/null\ncat config/app.conf > /dev/null";
    let bundle = |name: &str| {
        env.bundle(name)
            .traced(&EVENTS, name)
            .script("ValidateService", "shared.sh", check)
            .file("config/app.conf", "port: 1\n")
            .deploy_section(shared)
            .build()
    };
    let (v1, v2) = (bundle("v1"), bundle("v2"));
    let dir = env.dir.path();
    for b in [&v1, &v2] {
        hooks_in(
            dir,
            &[
                "deploy",
                "--quiet",
                "--root",
                "./root",
                "--bundle",
                b.to_str().unwrap(),
            ],
        )
        .expect(0);
    }
    let first = env.history()[0]["id"].as_str().unwrap().to_owned();
    hooks_in(dir, &["rollback", "--root", "root"]).expect(0);
    assert_eq!(env.current().as_deref(), Some(first.as_str()));
    // The links are absolute, so they resolve from the release directory too.
    let link = std::fs::read_link(env.root().join("current")).unwrap();
    assert!(
        link.is_absolute() || env.root().join(&link).is_dir(),
        "{link:?}"
    );
    let release = env.root().join("releases").join(&first);
    assert!(
        release.join("config/app.conf").exists(),
        "broken shared link"
    );
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let env = Env::new();
    for args in [
        &["deploy", "--bundel", "x"][..],
        &["deploy"],
        &["rollback", "--to"],
        &["restore"],
        &["frobnicate"],
    ] {
        let run = env.hooks(args);
        run.expect(3);
        assert!(
            run.stderr().contains("error:"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    env.hooks(&["deploy", "--help"]).expect(0);
    env.hooks(&["--version"]).expect(0);
}

#[test]
fn the_system_root_and_a_root_inside_the_bundle_are_refused_before_anything_is_written() {
    let env = Env::new();
    let bundle = env.bundle("v1").traced(&EVENTS, "v1").build();
    let run = env.hooks(&[
        "deploy",
        "--root",
        "/",
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    run.expect(3);
    assert!(
        run.stderr().contains("--root / is refused"),
        "{}",
        run.stderr()
    );
    assert!(!Path::new("/releases").exists() && !Path::new("/current").exists());

    let inside = bundle.join("deploy-root");
    let run = env.hooks(&[
        "deploy",
        "--root",
        inside.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    run.expect(3);
    assert!(
        run.stderr().contains("is inside the bundle directory"),
        "{}",
        run.stderr()
    );
    assert!(!inside.exists(), "the root was created inside the bundle");

    // A `..` after a directory that does not exist yet must not hide that the root lands in
    // the bundle once that directory is created.
    let parent = bundle.parent().unwrap();
    let detour = parent
        .join("not-yet")
        .join("..")
        .join(bundle.file_name().unwrap())
        .join("deploy-root");
    let run = env.hooks(&[
        "deploy",
        "--root",
        detour.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    run.expect(3);
    assert!(
        run.stderr().contains("is inside the bundle directory"),
        "{}",
        run.stderr()
    );
    assert!(!inside.exists(), "the root was created inside the bundle");
    assert!(env.trace_lines().is_empty());
}

#[test]
fn ids_that_are_paths_are_refused_by_rollback_and_logs() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("appspec.yml"), "version: 0.0\nos: linux\n").unwrap();
    std::fs::write(env.path("secret.log"), "not yours").unwrap();
    let before = env.current();
    for args in [
        &["rollback", "--to", outside.to_str().unwrap()][..],
        &["rollback", "--to", "../../outside"],
        &["logs", "../../secret"],
        &["logs", "/etc/passwd"],
    ] {
        let run = env.hooks(args);
        run.expect(3);
        assert!(
            run.stderr().contains("is not a deployment id"),
            "{args:?}: {}",
            run.stderr()
        );
        assert!(!run.stdout().contains("not yours"));
    }
    assert_eq!(env.current(), before);
    assert!(!outside.join("shared").exists());
}

#[test]
fn paths_in_the_appspec_that_leave_the_bundle_exit_3_and_run_nothing() {
    let env = Env::new();
    let victim = env.path("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "mine").unwrap();
    std::fs::set_permissions(
        victim.join("keep.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(env.path("outside.sh"), "#!/bin/sh\ntouch ran-outside\n").unwrap();
    let dest = env.path("www");
    let cases = [
        (
            "hooks:\n  ApplicationStart:\n    - location: ../../outside.sh\n".to_owned(),
            "leaves the bundle",
        ),
        (
            format!(
                "files:\n  - source: ../../victim\n    destination: {}\n",
                dest.display()
            ),
            "leaves the bundle",
        ),
        (
            format!(
                "files:\n  - source: site\n    destination: {}\npermissions:\n  - object: {}\n    mode: 600\n",
                dest.display(),
                victim.display()
            ),
            "is neither inside nor above",
        ),
    ];
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let bundle = env
            .bundle(&format!("b{i}"))
            .traced(&EVENTS, "x")
            .file("site/index.html", "hi")
            .extra(extra)
            .build();
        let run = env.deploy(&bundle, &[]);
        run.expect(3);
        assert!(run.stderr().contains(expected), "{extra}: {}", run.stderr());
        assert!(run.stderr().contains("appspec.yml:"), "{}", run.stderr());
    }
    assert!(env.trace_lines().is_empty(), "a script ran");
    assert!(!dest.exists(), "files were installed");
    let mode = std::fs::metadata(victim.join("keep.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o644
    );
}

#[test]
fn permissions_change_only_what_the_deployment_installed() {
    let env = Env::new();
    let dest = env.path("www");
    std::fs::create_dir_all(&dest).unwrap();
    let theirs = dest.join("theirs.txt");
    std::fs::write(&theirs, "not from the bundle").unwrap();
    std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .file("site/index.html", "hi")
        .extra(&format!(
            "files:\n  - source: site\n    destination: {}\npermissions:\n  - object: {}\n    mode: 600\n",
            dest.display(),
            dest.display()
        ))
        .build();
    env.deploy(&bundle, &[]).expect(0);
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&dest.join("index.html")), 0o600);
    assert_eq!(
        mode(&theirs),
        0o644,
        "a file hooks did not install changed mode"
    );
}

#[test]
fn validate_checks_scripts_takes_a_directory_and_falls_back_to_appspec_yaml() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .traced(&EVENTS, "v1")
        .hook_entry("ValidateService", "scripts/missing.sh")
        .build();
    let run = env.hooks(&["validate", bundle.to_str().unwrap()]);
    run.expect(3);
    assert!(run.stderr().contains("ScriptMissing"), "{}", run.stderr());
    let file = bundle.join("appspec.yml");
    env.hooks(&["validate", file.to_str().unwrap()]).expect(3);

    let good = env.bundle("v2").traced(&EVENTS, "v2").build();
    std::fs::rename(good.join("appspec.yml"), good.join("appspec.yaml")).unwrap();
    let run = hooks_in(&good, &["validate"]);
    run.expect(0);
    assert!(
        run.stdout().contains("appspec.yaml: valid"),
        "{}",
        run.stdout()
    );
    let run = env.hooks(&["validate", env.path("nothing-here").to_str().unwrap()]);
    run.expect(3);
}

#[test]
fn an_oversized_or_utf16_appspec_is_named_as_such() {
    let env = Env::new();
    let big = env.path("big.yml");
    let mut text = String::from("version: 0.0\nos: linux\n");
    while text.len() <= 1 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let run = env.hooks(&["validate", big.to_str().unwrap()]);
    run.expect(3);
    assert!(
        run.stderr().contains("larger than 1024 KiB"),
        "{}",
        run.stderr()
    );

    let utf16 = env.path("utf16.yml");
    let bytes: Vec<u8> = "version: 0.0\nos: linux\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(&utf16, bytes).unwrap();
    let run = env.hooks(&["validate", utf16.to_str().unwrap()]);
    run.expect(3);
    assert!(run.stderr().contains("UTF-16"), "{}", run.stderr());
}

#[test]
fn an_unquoted_leading_zero_mode_warns_with_the_agents_reading() {
    let env = Env::new();
    let bundle = env
        .bundle("v1")
        .extra("files:\n  - source: /\n    destination: /srv/x\npermissions:\n  - object: /srv/x\n    mode: 0644\n")
        .build();
    let run = env.hooks(&["validate", bundle.join("appspec.yml").to_str().unwrap()]);
    run.expect(0);
    assert!(
        run.stderr().contains("applies mode 420"),
        "{}",
        run.stderr()
    );
}

#[test]
fn plan_refuses_an_empty_branch_and_shortens_a_long_one() {
    let env = Env::new();
    let appspec = env.path("appspec.yml");
    std::fs::write(
        &appspec,
        "version: 0.0\nos: linux\nbranch_config:\n  '.*':\n    deploymentGroupName: staging-$BRANCH\n",
    )
    .unwrap();
    let spec = appspec.to_str().unwrap();
    let run = env.hooks(&["plan", "--appspec", spec, "--branch", ""]);
    run.expect(3);
    assert!(
        run.stderr().contains("the branch is empty"),
        "{}",
        run.stderr()
    );

    let long = "feature/".to_owned() + &"x".repeat(120);
    let run = env.hooks(&["plan", "--appspec", spec, "--branch", &long, "--json"]);
    run.expect(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let group = plan["deploymentGroupName"].as_str().unwrap().to_owned();
    assert_eq!(group.len(), 100, "{group}");
    assert!(group.starts_with("staging-feature-xxx"), "{group}");
    // Stable for the same branch, different for another long one.
    let again = env.hooks(&["plan", "--appspec", spec, "--branch", &long, "--json"]);
    assert!(again.stdout().contains(&group));
    let other = long.clone() + "y";
    let run = env.hooks(&["plan", "--appspec", spec, "--branch", &other, "--json"]);
    assert!(!run.stdout().contains(&group), "{}", run.stdout());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", at.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "mount needs root (as CI runs the tests)");
        Self(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_root_is_refused_with_its_reason_not_the_lock_message() {
    let env = Env::new();
    let root = env.path("ro");
    let _mount = Mount::tmpfs(&root, "ro,size=1m");
    let bundle = env.bundle("v1").traced(&EVENTS, "v1").build();
    let run = env.hooks(&[
        "deploy",
        "--root",
        root.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    run.expect(3);
    assert!(
        run.stderr().contains("read-only filesystem"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("wait for it"), "{}", run.stderr());
}

#[test]
fn a_full_disk_fails_with_exit_1_and_keeps_the_serving_release() {
    let env = Env::new();
    let root = env.path("small");
    let _mount = Mount::tmpfs(&root, "size=2m");
    let root_arg = root.to_str().unwrap();
    let v1 = env.bundle("v1").traced(&EVENTS, "v1").build();
    env.hooks(&[
        "deploy",
        "--quiet",
        "--root",
        root_arg,
        "--bundle",
        v1.to_str().unwrap(),
    ])
    .expect(0);
    let serving = std::fs::read_link(root.join("current")).unwrap();
    let big = env
        .bundle("v2")
        .traced(&EVENTS, "v2")
        .file("blob", &"x".repeat(3 << 20))
        .build();
    let run = env.hooks(&[
        "deploy",
        "--quiet",
        "--root",
        root_arg,
        "--bundle",
        big.to_str().unwrap(),
    ]);
    run.expect(1);
    assert!(
        run.stderr().contains("disk under the root is full"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("is still serving"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read_link(root.join("current")).unwrap(), serving);
    assert!(
        !common::entry_names(&root.join("releases"))
            .iter()
            .any(|n| n.ends_with(".partial"))
    );
}

#[test]
fn an_unreachable_s3_names_the_endpoint_without_the_sdks_dump_and_says_what_still_serves() {
    let env = Env::new();
    env.deploy(&env.bundle("v1").traced(&EVENTS, "v1").build(), &[])
        .expect(0);
    let serving = env.current().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let output = Command::new(hooks_bin())
        .args(["deploy", "--quiet", "--bundle", "s3://bucket/app.tar.gz"])
        .args([
            "--s3-endpoint",
            &endpoint,
            "--s3-retries",
            "0",
            "--allow-unverified",
        ])
        .env("HOOKS_ROOT", env.root())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let run = common::Run(output);
    run.expect(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("via endpoint {endpoint}")),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("DispatchFailure("), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "nothing was changed; release {serving} is still serving"
        )),
        "{stderr}"
    );
    assert_eq!(env.current(), Some(serving));
}
