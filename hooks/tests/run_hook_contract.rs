//! The contract of `hooks run-hook`: driven as the CodeDeploy agent drives hook scripts, a
//! deployment of the sample bundle ends in the same state as `hooks deploy` of the same bundle:
//! the same current release, shared links, SQLite schema (through the bundle's own migrator)
//! and history.
//!
//! The agent emulator below does the part of aws-codedeploy-agent's hook executor that decides
//! that state: it unpacks the revision into
//! `<deployment-root>/<group-id>/<deployment-id>/deployment-archive`, copies `files:`, and runs
//! every script of every event in order, one process each, in its own process group, with stdin
//! closed, in the agent's own working directory (not the revision); ApplicationStop comes from
//! the previous revision's directory. It clears the environment down to the agent's variables,
//! which the real agent does not (it passes its whole environment): that, failing scripts and
//! the agent's own retention are covered by `codedeploy_agent.rs`, which runs the real agent.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hooks_appspec::{self as appspec, LifecycleEvent};

use crate::codedeploy_support;

use crate::common::{free_port, hooks_bin};
use codedeploy_support::sample::{Service, sample_bundle};

/// What the CodeDeploy agent does on an instance, reduced to what hook scripts can observe.
struct Agent {
    deployment_root: PathBuf,
    /// The agent's working directory, which its scripts inherit.
    home: PathBuf,
    /// The server's /etc/default/hooks.
    defaults: PathBuf,
    application: &'static str,
    group: &'static str,
    group_id: &'static str,
    /// The last revision installed: the agent takes ApplicationStop from it.
    last_installed: Option<PathBuf>,
}

impl Agent {
    fn deploy(&mut self, bundle: &Path, id: &str) -> Result<(), String> {
        if let Some(previous) = self.last_installed.clone() {
            self.event(LifecycleEvent::ApplicationStop, &previous, id)?;
        }
        // DownloadBundle: the revision unpacked under the deployment root.
        let archive = self
            .deployment_root
            .join(self.group_id)
            .join(id)
            .join("deployment-archive");
        std::fs::create_dir_all(&archive).unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", bundle.display()))
            .arg(&archive)
            .status()
            .unwrap();
        assert!(copied.success());
        self.event(LifecycleEvent::BeforeInstall, &archive, id)?;
        // Install: files: copied by the agent (a directory source copies its contents).
        let spec = appspec::load(&archive.join("appspec.yml")).unwrap().spec;
        for mapping in &spec.files {
            std::fs::create_dir_all(&mapping.destination).unwrap();
            let source = archive.join(&mapping.source);
            let from = if source.is_dir() {
                format!("{}/.", source.display())
            } else {
                source.display().to_string()
            };
            Command::new("cp")
                .arg("-a")
                .arg(from)
                .arg(&mapping.destination)
                .status()
                .unwrap();
        }
        self.last_installed = Some(archive.clone());
        for event in [
            LifecycleEvent::AfterInstall,
            LifecycleEvent::ApplicationStart,
            LifecycleEvent::ValidateService,
        ] {
            self.event(event, &archive, id)?;
        }
        Ok(())
    }

    /// One event: every script of the revision's appspec, each in its own process.
    fn event(&self, event: LifecycleEvent, archive: &Path, id: &str) -> Result<(), String> {
        let spec = appspec::load(&archive.join("appspec.yml")).unwrap().spec;
        for script in spec.scripts(event) {
            let output = Command::new(archive.join(&script.location))
                .current_dir(&self.home)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("LIFECYCLE_EVENT", event.name())
                .env("DEPLOYMENT_ID", id)
                .env("APPLICATION_NAME", self.application)
                .env("DEPLOYMENT_GROUP_NAME", self.group)
                .env("DEPLOYMENT_GROUP_ID", self.group_id)
                .env("HOOKS_DEFAULTS", &self.defaults)
                .stdin(Stdio::null())
                .process_group(0)
                .output()
                .unwrap();
            if !output.status.success() {
                return Err(format!(
                    "{event} {} failed ({}):\n{}\n{}",
                    script.location,
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        Ok(())
    }
}

/// Every path under `dir` with its kind and content; link targets with the root replaced.
fn tree(dir: &Path, root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap().display().to_string();
                format!(
                    "link {}",
                    target.replace(&root.display().to_string(), "<root>")
                )
            } else if meta.is_dir() {
                stack.push(path);
                "dir".to_owned()
            } else {
                format!("file {:x}", fxhash(&std::fs::read(&path).unwrap()))
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Tables, indexes and applied migrations of the sample database, read with Python's sqlite3.
fn schema(root: &Path) -> String {
    let db = root.join("shared/data/sample.db");
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select type,name,sql from sqlite_master order by name').fetchall()); print(c.execute('select version,success from _sqlx_migrations order by version').fetchall())")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn history(root: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(hooks_bin())
        .args(["history", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn run_hook_under_the_agent_ends_like_hooks_deploy() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let bundle = sample_bundle(work.path(), port);

    // The reference: two `hooks deploy` runs of the bundle.
    let engine_root = work.path().join("engine");
    let engine_service = Service(engine_root.clone());
    for _ in 0..2 {
        let out = Command::new(hooks_bin())
            .args([
                "deploy",
                "--quiet",
                "--application",
                "sample",
                "--group",
                "production",
            ])
            .arg("--root")
            .arg(&engine_root)
            .arg("--bundle")
            .arg(&bundle)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let engine_history = history(&engine_root);
    let last_log = std::fs::read_to_string(engine_root.join(format!(
        "logs/{}.log",
        engine_history[1]["id"].as_str().unwrap()
    )))
    .unwrap();
    assert!(
        last_log.contains("running under `hooks deploy`") && last_log.contains("nothing to do"),
        "the wrapper must be a no-op under hooks deploy:\n{last_log}"
    );
    drop(engine_service);

    // The same bundle, twice, through the agent emulator.
    let agent_root = work.path().join("agent");
    let agent_service = Service(agent_root.clone());
    let defaults = work.path().join("default-hooks");
    std::fs::write(&defaults, format!("HOOKS_ROOT={}\n", agent_root.display())).unwrap();
    let home = work.path().join("agent-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut agent = Agent {
        deployment_root: work.path().join("deployment-root"),
        home,
        defaults,
        application: "sample",
        group: "production",
        group_id: "4d7f0e2a-group",
        last_installed: None,
    };
    agent.deploy(&bundle, "d-FIRST0001").unwrap();
    agent.deploy(&bundle, "d-SECOND002").unwrap();

    // Same serving release, linked to the same shared files.
    let current = std::fs::read_link(agent_root.join("current")).unwrap();
    assert!(current.ends_with("releases/d-SECOND002"), "{current:?}");
    assert_eq!(
        tree(&agent_root.join("current/"), &agent_root),
        tree(&engine_root.join("current/"), &engine_root)
    );
    let shared = |root: &Path| -> Vec<(String, String)> {
        tree(&root.join("shared"), root)
            .into_iter()
            .filter(|(path, _)| !path.starts_with("run/") && !path.starts_with("data/"))
            .collect()
    };
    assert_eq!(shared(&agent_root), shared(&engine_root));
    // The same schema, created by the bundle's migrator.
    let schema_agent = schema(&agent_root);
    assert!(schema_agent.contains("CREATE TABLE"), "{schema_agent}");
    assert_eq!(schema_agent, schema(&engine_root));
    // The same history: two successful deployments of the group.
    let agent_history = history(&agent_root);
    let summary = |h: &[serde_json::Value]| -> Vec<(String, String, String, String)> {
        h.iter()
            .map(|d| {
                let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                (s("kind"), s("result"), s("application"), s("group"))
            })
            .collect()
    };
    assert_eq!(summary(&agent_history), summary(&engine_history));
    assert_eq!(agent_history[1]["id"], "d-SECOND002");
    // One copy of each revision: the agent's archive is a link to the release.
    let archive = agent
        .deployment_root
        .join("4d7f0e2a-group/d-SECOND002/deployment-archive");
    assert_eq!(
        std::fs::read_link(&archive).unwrap(),
        agent_root.join("releases/d-SECOND002")
    );
    // The service of the second deployment is the one serving.
    let status = Command::new(hooks_bin())
        .args([
            "wait-for",
            &format!("http://127.0.0.1:{port}/health"),
            "--timeout",
            "10",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    drop(agent_service);
}
