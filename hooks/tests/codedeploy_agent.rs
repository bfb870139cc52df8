//! `hooks run-hook` under the real CodeDeploy agent (aws-codedeploy-agent 1.8.1, its
//! `bin/codedeploy-local`), with the project's own sample bundle (`scripts/build-bundle`) and
//! root `appspec.yml`, in both revision kinds the workflow can use: a local `.tgz` and an S3
//! object published by `hooks publish` to the test S3 server. Each kind goes through two good
//! revisions, one whose ValidateService script fails, one whose ApplicationStart script fails,
//! and a redeploy of the good one; after each step the agent's exit status, `hooks status`,
//! `hooks history`, `current`, the service's health and the release it runs from are checked.

use crate::codedeploy_support;
use crate::s3_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{free_port, hooks_bin, stdout_of};
use codedeploy_support::sample::{Service, sample_bundle};
use codedeploy_support::{AgentRun, Instance, repo};

/// A copy of `bundle` whose `deploy/scripts/NAME` fails with a message on stderr, and a
/// `REVISION` file naming the variant.
fn variant(bundle: &Path, out: &Path, name: &str, failing: Option<&str>) -> PathBuf {
    let dir = out.join(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(bundle)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.join("REVISION"), format!("{name}\n")).unwrap();
    if let Some(script) = failing {
        std::fs::write(
            dir.join("deploy/scripts").join(script),
            format!("#!/bin/sh\necho \"{name}: {script} refuses this release\" >&2\nexit 7\n"),
        )
        .unwrap();
    }
    dir
}

/// `dir` with its appspec listing deploy/scripts/validate.sh itself in ValidateService, as an
/// appspec written for the agent alone would, instead of its run-hook wrapper.
fn unwrapped(dir: PathBuf) -> PathBuf {
    let appspec = dir.join("appspec.yml");
    let text = std::fs::read_to_string(&appspec).unwrap();
    let changed = text.replace(
        "- location: deploy/codedeploy/validate.sh",
        "- location: deploy/scripts/validate.sh",
    );
    assert_ne!(
        text, changed,
        "appspec.yml lists no deploy/codedeploy/validate.sh"
    );
    std::fs::write(&appspec, changed).unwrap();
    dir
}

/// How revisions reach the agent.
enum Revisions {
    /// `.tgz` files on the instance's disk.
    LocalTgz,
    /// `hooks publish` to this bucket on the test S3 server.
    S3 { endpoint: String, bucket: String },
}

impl Revisions {
    /// The agent's `--bundle-location` for the bundle directory `dir`.
    fn publish(&self, dir: &Path) -> String {
        match self {
            Self::LocalTgz => {
                let tgz = dir.with_extension("tgz");
                // gzip -1: the default level takes ~10 s for a debug build's bundle.
                let status = Command::new("tar")
                    .args(["-I", "gzip -1", "-cf"])
                    .arg(&tgz)
                    .arg("-C")
                    .arg(dir)
                    .arg(".")
                    .status()
                    .unwrap();
                assert!(status.success());
                tgz.display().to_string()
            }
            Self::S3 { endpoint, bucket } => {
                let out = s3_hooks()
                    .arg("publish")
                    .arg(dir)
                    .args([
                        "--to",
                        &format!("s3://{bucket}/sample/"),
                        "--s3-endpoint",
                        endpoint,
                    ])
                    .output()
                    .unwrap();
                stdout_of(&out)
            }
        }
    }
}

/// Test credentials for the local S3 server (it accepts any), no ambient AWS configuration.
const S3_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn s3_hooks() -> Command {
    let mut cmd = Command::new(hooks_bin());
    cmd.env_remove("AWS_PROFILE").env_remove("AWS_ENDPOINT_URL");
    cmd.envs(S3_ENV);
    cmd
}

fn json(root: &Path, command: &str) -> serde_json::Value {
    let out = Command::new(hooks_bin())
        .args([command, "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hooks {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a step must leave behind.
struct Expect {
    succeeded: bool,
    /// (event, script) recorded as the failure.
    failed: Option<(&'static str, &'static str)>,
    /// Whether `/health` answers afterwards (from the step's own release).
    serving: bool,
    /// The failing script is listed in the appspec without a wrapper: the agent runs it itself,
    /// so `hooks` learns of the failure from the agent's log at the next deployment.
    unwrapped: bool,
}

/// A deployment made: its id, and the result and failure its record must end with.
struct Done {
    id: String,
    result: &'static str,
    failed: Option<(&'static str, &'static str)>,
}

/// One scenario on one instance.
struct Scenario {
    instance: Instance,
    root: PathBuf,
    port: u16,
    revisions: Revisions,
    /// Every deployment so far: its id and the result it must keep.
    done: Vec<Done>,
}

impl Scenario {
    fn deploy(&mut self, location: &str, expect: Expect) -> String {
        let started = std::time::Instant::now();
        let run = self.instance.deploy(location, "tgz");
        eprintln!(
            "codedeploy-local {location}: {} in {:.1} s",
            run.id,
            started.elapsed().as_secs_f64()
        );
        let id = run.id.clone();
        self.check(&run, location, &expect);
        self.done.push(Done {
            id: id.clone(),
            result: if expect.succeeded {
                "success"
            } else {
                "failed"
            },
            failed: expect.failed,
        });
        id
    }

    fn check(&self, run: &AgentRun, location: &str, expect: &Expect) {
        let id = &run.id;
        let context = || {
            format!(
                "{}\n--- agent scripts.log\n{}",
                run.text(),
                self.instance.scripts_log(id)
            )
        };
        assert_eq!(
            run.succeeded(),
            expect.succeeded,
            "deployment {id}:\n{}",
            context()
        );

        // History: one record per deployment in agent order; earlier ones keep their result.
        let history = json(&self.root, "history");
        let records = history.as_array().unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut expected_ids: Vec<&str> = self.done.iter().map(|d| d.id.as_str()).collect();
        expected_ids.push(id);
        assert_eq!(ids, expected_ids, "{}", context());
        let last = records.last().unwrap();
        let result = match (expect.succeeded, expect.unwrapped) {
            (true, _) => serde_json::json!("success"),
            // "in progress" until the next deployment reads the agent's log.
            (false, true) => serde_json::Value::Null,
            (false, false) => serde_json::json!("failed"),
        };
        assert_eq!(
            last["result"],
            result,
            "history of {id}: {last:#}\n{}",
            context()
        );
        let failure = |failed: Option<(&str, &str)>| match failed {
            Some((e, s)) => (serde_json::json!(e), serde_json::json!(s)),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let recorded = if expect.unwrapped {
            None
        } else {
            expect.failed
        };
        assert_eq!(
            (last["failed_event"].clone(), last["failed_script"].clone()),
            failure(recorded),
            "{last:#}"
        );
        // Item 3: the bundle column names this deployment's revision, not the previous one.
        let bundle = last["bundle"].as_str().unwrap();
        match &self.revisions {
            Revisions::S3 { .. } => assert!(bundle.starts_with(location), "{bundle} vs {location}"),
            Revisions::LocalTgz => {
                let own = format!(
                    "{}/{id}/deployment-archive",
                    self.instance.deployment_group_id
                );
                assert!(
                    bundle.contains(&own),
                    "bundle of {id} is {bundle}, expected its own {own}"
                );
            }
        }
        // Item 1: earlier failures are failures with their event and script (not
        // "interrupted"), also the one the agent's log told about.
        for (record, done) in records.iter().zip(&self.done) {
            assert_eq!(record["result"], done.result, "{record:#}");
            assert_eq!(
                (
                    record["failed_event"].clone(),
                    record["failed_script"].clone()
                ),
                failure(done.failed),
                "{record:#}"
            );
        }

        // Status: the last deployment and where current points.
        let status = json(&self.root, "status");
        assert_eq!(status["last"]["id"], id.as_str(), "{status:#}");
        assert_eq!(status["last"]["result"], result, "{status:#}");
        assert_eq!(status["current"], id.as_str(), "{status:#}");
        let current = std::fs::read_link(self.root.join("current")).unwrap();
        assert_eq!(current, Path::new("releases").join(id), "current");

        // Item 2: `hooks logs ID` has the scripts' output and the failure reason.
        let logs = Command::new(hooks_bin())
            .args(["logs", id, "--root"])
            .arg(&self.root)
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&logs.stdout);
        if expect.unwrapped {
            let agent_log = self
                .instance
                .deployment_dir(id)
                .join("logs/scripts.log")
                .display()
                .to_string();
            assert!(
                logs.contains(&agent_log),
                "the log must name {agent_log}:\n{logs}"
            );
            assert!(
                self.instance
                    .scripts_log(id)
                    .contains("refuses this release")
            );
        } else if let Some((event, script)) = expect.failed {
            assert!(
                logs.contains(&format!(
                    "{} refuses this release",
                    script.rsplit('/').next().unwrap()
                )) && logs.contains(event)
                    && logs.contains("FAILED"),
                "hooks logs {id} lacks the script's output or the failure:\n{logs}"
            );
        } else {
            assert!(
                logs.contains("answered after"),
                "validate.sh's output:\n{logs}"
            );
        }

        // The service: healthy and running from this deployment's release, or not answering.
        let health = format!("http://127.0.0.1:{}/health", self.port);
        if expect.serving {
            let ok = Command::new(hooks_bin())
                .args(["wait-for", &health, "--timeout", "10"])
                .status()
                .unwrap();
            assert!(ok.success(), "{health} does not answer after {id}");
            self.assert_runs_from(id);
        } else {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
                "something still listens on {} after {id}",
                self.port
            );
        }
    }

    /// Item 4: the service's binary and its CONFIG_PATH are under `<root>/releases/<id>`, a path
    /// that outlives the agent's deployment folder.
    fn assert_runs_from(&self, id: &str) {
        let pidfile = self.root.join("shared/run/service.pid");
        // `hooks proc start` writes the pid on the first line (its start time on the next).
        let text = std::fs::read_to_string(&pidfile).unwrap();
        let pid = text.lines().next().unwrap_or_default().trim().to_owned();
        let release = self.root.join("releases").join(id);
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .unwrap_or_else(|e| panic!("pid {pid:?} from {}: {e}", pidfile.display()));
        assert_eq!(
            exe,
            release.join("bin/sample-service"),
            "the service's binary"
        );
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let config = environ
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"CONFIG_PATH="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("the service has CONFIG_PATH");
        assert_eq!(
            Path::new(&config),
            release.join("config/service.yml"),
            "CONFIG_PATH must name the release, not the agent's deployment-archive"
        );
        assert!(Path::new(&config).is_file());
    }
}

/// The whole scenario through `revisions`.
fn scenario(revisions: Revisions) {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = std::time::Instant::now();
    let bundle = sample_bundle(work.path(), port);
    eprintln!(
        "sample bundle built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let root = work.path().join("root");
    let _service = Service(root.clone());
    let endpoint = match &revisions {
        Revisions::S3 { endpoint, .. } => Some(endpoint.as_str()),
        Revisions::LocalTgz => None,
    };
    // The agent keeps 2 deployment folders here (5 by default), so the test sees it delete
    // the folders of revisions whose service may still run.
    let mut instance = Instance::new(&work.path().join("instance"), endpoint, 2);
    let defaults = work.path().join("default-hooks");
    std::fs::write(&defaults, format!("HOOKS_ROOT={}\n", root.display())).unwrap();
    // Item 5: the agent passes its whole environment to scripts. hooks' settings under the
    // agent come from /etc/default/hooks (HOOKS_DEFAULTS here) only: these must be ignored.
    let decoy = work.path().join("decoy-root");
    let decoy_bin = work.path().join("decoy-hooks");
    std::fs::write(&decoy_bin, "#!/bin/sh\necho decoy hooks ran >&2\nexit 99\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&decoy_bin)
        .status()
        .unwrap();
    instance.env = vec![
        ("HOOKS_DEFAULTS".into(), defaults.display().to_string()),
        ("HOOKS_ROOT".into(), decoy.display().to_string()),
        ("HOOKS_BIN".into(), decoy_bin.display().to_string()),
        ("HOOKS_ENGINE_PID".into(), "1".into()),
    ];
    if endpoint.is_some() {
        instance
            .env
            .extend(S3_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    let dirs = [
        variant(&bundle, work.path(), "r1", None),
        variant(&bundle, work.path(), "r2", None),
        variant(&bundle, work.path(), "r3", Some("validate.sh")),
        variant(&bundle, work.path(), "r4", Some("start.sh")),
        unwrapped(variant(&bundle, work.path(), "r5", Some("validate.sh"))),
    ];
    // Packed and uploaded at once: each takes seconds, mostly waiting for the S3 server.
    let [r1, r2, r3, r4, r5] = std::thread::scope(|scope| {
        let revisions = &revisions;
        dirs.each_ref()
            .map(|dir| scope.spawn(move || revisions.publish(dir)))
            .map(|handle| handle.join().unwrap())
    });
    eprintln!(
        "revisions ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut s = Scenario {
        instance,
        root: root.clone(),
        port,
        revisions,
        done: Vec::new(),
    };
    let good = || Expect {
        succeeded: true,
        failed: None,
        serving: true,
        unwrapped: false,
    };
    s.deploy(&r1, good());
    s.deploy(&r2, good());
    // The agent does not roll back: r3's service, started in ApplicationStart, keeps running.
    s.deploy(
        &r3,
        Expect {
            succeeded: false,
            failed: Some(("ValidateService", "deploy/scripts/validate.sh")),
            serving: true,
            unwrapped: false,
        },
    );
    // ApplicationStop (from r3, the last installed revision) stopped r3's service.
    s.deploy(
        &r4,
        Expect {
            succeeded: false,
            failed: Some(("ApplicationStart", "deploy/scripts/start.sh")),
            serving: false,
            unwrapped: false,
        },
    );
    // A failing script the agent runs itself: "in progress" until the next deployment's first
    // run-hook reads the agent's log (checked with the redeploy below).
    s.deploy(
        &r5,
        Expect {
            succeeded: false,
            failed: Some(("ValidateService", "deploy/scripts/validate.sh")),
            serving: true,
            unwrapped: true,
        },
    );
    let r6 = s.deploy(&r2, good());
    // Each release once, the agent's deployment folders mostly gone, the service unaffected.
    let release = s.root.join("releases").join(&r6);
    assert_eq!(
        std::fs::read_to_string(release.join("REVISION")).unwrap(),
        "r2\n"
    );
    let first = &s.done[0].id;
    assert!(
        !s.instance.deployment_dir(first).exists(),
        "the agent kept {first}'s folder; max_revisions did not apply"
    );
    assert!(!decoy.exists(), "the agent's HOOKS_ROOT was used");
}

#[test]
fn sample_bundle_under_the_real_agent_from_local_tgz_files() {
    scenario(Revisions::LocalTgz);
}

#[test]
fn sample_bundle_under_the_real_agent_from_s3_revisions() {
    // The agent downloads through its `:s3_endpoint_override:` from the test S3 server, which
    // scripts/test starts (HOOKS_TEST_S3_ENDPOINT; the test fails and says how when missing).
    scenario(Revisions::S3 {
        endpoint: s3_support::endpoint(),
        bucket: s3_support::bucket(),
    });
}

/// Item 5 where the whole scenario cannot show it: without a defaults file, settings inherited
/// from the agent's environment are dropped too (the root falls back to /var/lib/hooks), and
/// the scripts change into the release itself even when reached through the agent's link.
#[test]
fn env_sh_ignores_the_agents_hooks_variables_and_enters_the_release() {
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("releases/d-1");
    std::fs::create_dir_all(release.join("deploy/codedeploy")).unwrap();
    std::fs::copy(
        repo().join("deploy/codedeploy/env.sh"),
        release.join("deploy/codedeploy/env.sh"),
    )
    .unwrap();
    let probe = release.join("deploy/codedeploy/probe.sh");
    std::fs::write(
        &probe,
        "#!/bin/sh\n. \"$(dirname \"$0\")/env.sh\"\n\
         echo \"root=${HOOKS_ROOT:-} marker=${HOOKS_ENGINE_PID:-} pwd=$PWD bundle=$bundle\"\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&probe)
        .status()
        .unwrap();
    let archive = work.path().join("deployment-archive");
    std::os::unix::fs::symlink(&release, &archive).unwrap();
    let run = |marker: &str| {
        let out = Command::new(archive.join("deploy/codedeploy/probe.sh"))
            .env("HOOKS_DEFAULTS", work.path().join("no-such-defaults"))
            .env("HOOKS_ROOT", "/decoy")
            .env("HOOKS_ENGINE_PID", marker)
            .output()
            .unwrap();
        stdout_of(&out)
    };
    let release = std::fs::canonicalize(&release).unwrap();
    let archive = std::fs::canonicalize(work.path())
        .unwrap()
        .join("deployment-archive");
    assert_eq!(
        run("1"),
        format!(
            "root= marker= pwd={} bundle={}",
            release.display(),
            archive.display()
        )
    );
    // Started by `hooks deploy` (the marker is the parent's pid): its settings stay.
    let parent = std::process::id().to_string();
    assert!(run(&parent).starts_with(&format!("root=/decoy marker={parent} ")));
}
