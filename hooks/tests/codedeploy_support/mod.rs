//! The real CodeDeploy agent (aws-codedeploy-agent 1.8.1) for tests: its `bin/codedeploy-local`
//! runs a deployment through the agent's own command and hook executors, without the AWS
//! service. The agent's source and docopt come from `../shared/vendor/` beside the checkout, or
//! from `HOOKS_CODEDEPLOY_AGENT` (a directory holding the agent's source) and
//! `HOOKS_CODEDEPLOY_DOCOPT` (docopt.rb's source); Debian's ruby packages are installed with
//! apt-get when missing, so no RubyGems are needed.

pub mod sample;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The Debian packages `bin/codedeploy-local` needs (see shared/vendor/README.md).
const PACKAGES: &[&str] = &[
    "ruby",
    "ruby-aws-sdk-core",
    "ruby-aws-sdk-s3",
    "ruby-zip",
    "ruby-logging",
    "ruby-concurrent",
    "ruby-minitar",
    "ruby-json",
];

/// What the agent requires, as a ruby one-liner: it succeeds when every package is installed.
const REQUIRES: &str = "require 'aws-sdk-core'; require 'aws-sdk-s3'; require 'zip'; \
                        require 'logging'; require 'concurrent'; require 'minitar'; require 'json'";

/// The repository checkout.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Where the agent's and docopt's sources are, and the `RUBYLIB` that runs the agent unpatched.
pub struct AgentSource {
    pub agent: PathBuf,
    pub rubylib: String,
}

/// Installs the ruby packages and unpacks the sources once per test binary; every test of the
/// binary shares them (read-only).
pub fn agent_source() -> &'static AgentSource {
    static SOURCE: OnceLock<AgentSource> = OnceLock::new();
    SOURCE.get_or_init(|| {
        install_ruby();
        let unpacked = repo().join("target/tmp/codedeploy-agent");
        let vendor = repo().join("../shared/vendor");
        let agent = locate(
            "HOOKS_CODEDEPLOY_AGENT",
            &vendor.join("aws-codedeploy-agent.tar.gz"),
            &unpacked.join("agent"),
            "bin/codedeploy-local",
            "the CodeDeploy agent's source (github.com/aws/aws-codedeploy-agent, 1.8.1)",
        );
        let docopt = locate(
            "HOOKS_CODEDEPLOY_DOCOPT",
            &vendor.join("docopt.rb-0.5.0.tar.gz"),
            &unpacked.join("docopt"),
            "lib/docopt.rb",
            "docopt.rb 0.5.0's source (github.com/docopt/docopt.rb, tag v0.5.0)",
        );
        // The agent's vendored gems go on RUBYLIB instead of being activated as gems, so gli
        // (needed only by the daemon's own CLI) is never loaded.
        let mut lib = vec![agent.join("lib"), docopt.join("lib")];
        for gem in [
            "process_manager-0.0.13",
            "simple_pid-0.2.1",
            "codedeploy-commands-1.0.0",
        ] {
            lib.push(agent.join("vendor/gems").join(gem).join("lib"));
        }
        let rubylib = lib
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        AgentSource { agent, rubylib }
    })
}

/// The source directory named by `var`, else `tarball` unpacked into `into` (once; the
/// tarball's single top-level directory is stripped). Panics with what to do when neither.
fn locate(var: &str, tarball: &Path, into: &Path, marker: &str, what: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(var) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join(marker).is_file(),
            "{var}={} has no {marker}: it must name {what}",
            dir.display()
        );
        return dir;
    }
    if into.join(marker).is_file() {
        return into.to_owned();
    }
    assert!(
        tarball.is_file(),
        "{what} is needed to test `hooks run-hook` under the real agent, and neither {var} nor \
         {} exists. Clone or unpack it (for the agent: `git clone \
         https://github.com/aws/aws-codedeploy-agent` and check out 800eb28, agent 1.8.1) and \
         set {var} to its directory",
        tarball.display()
    );
    // Unpacked beside, then renamed: a test binary killed half-way leaves no half tree here.
    let partial = into.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&partial)
        .arg("--strip-components=1")
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {} failed", tarball.display());
    let _ = std::fs::remove_dir_all(into);
    std::fs::rename(&partial, into).unwrap();
    into.to_owned()
}

/// Installs Debian's ruby and the libraries the agent loads, unless they are there already.
fn install_ruby() {
    let ready = || {
        Command::new("ruby")
            .args(["-e", REQUIRES])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend_from_slice(PACKAGES);
    // A fresh machine has no package lists yet: update only when the install cannot proceed.
    if !apt(&install) {
        assert!(apt(&["update", "-q"]), "apt-get update failed");
        assert!(
            apt(&install),
            "apt-get install {} failed",
            PACKAGES.join(" ")
        );
    }
    assert!(ready(), "ruby still cannot load: {REQUIRES}");
}

/// One instance: the agent's configuration file, deployment root and logs in a directory.
pub struct Instance {
    pub dir: PathBuf,
    pub deployment_group_id: String,
    /// Variables given to the agent's process (and so to every hook script it starts).
    pub env: Vec<(String, String)>,
}

/// What one `codedeploy-local` run did.
pub struct AgentRun {
    pub output: Output,
    /// The deployment id the agent generated (`d-XXXXXXXXX-local`).
    pub id: String,
}

impl AgentRun {
    /// The agent's exit status and output, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "codedeploy-local exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status.code(),
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// Whether the agent reported the deployment as successful.
    pub fn succeeded(&self) -> bool {
        self.output.status.success()
            && String::from_utf8_lossy(&self.output.stdout).contains("Local deployment successful")
    }
}

impl Instance {
    /// An instance under `dir`; `s3_endpoint` becomes the agent's `:s3_endpoint_override:`.
    /// `max_revisions` is the agent's own retention of deployment folders.
    pub fn new(dir: &Path, s3_endpoint: Option<&str>, max_revisions: u32) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let conf = format!(
            "---\n:log_aws_wire: false\n:log_dir: '{d}/agent-log'\n:pid_dir: '{d}/agent-pid'\n\
             :program_name: codedeploy-agent\n:root_dir: '{d}/deployment-root'\n:verbose: false\n\
             :wait_between_runs: 1\n:proxy_uri:\n:max_revisions: {max_revisions}\n\
             :s3_endpoint_override: {}\n",
            s3_endpoint.unwrap_or(""),
            d = dir.display(),
        );
        std::fs::write(dir.join("codedeployagent.yml"), conf).unwrap();
        Self {
            dir: dir.to_owned(),
            deployment_group_id: "4d7f0e2a-hooks-group".to_owned(),
            env: Vec::new(),
        }
    }

    /// The agent's deployment root (`:root_dir:`).
    pub fn deployment_root(&self) -> PathBuf {
        self.dir.join("deployment-root")
    }

    /// `<deployment-root>/<group-id>/<id>`: the agent's folder of one deployment.
    pub fn deployment_dir(&self, id: &str) -> PathBuf {
        self.deployment_root()
            .join(&self.deployment_group_id)
            .join(id)
    }

    /// Runs `codedeploy-local` on a revision: `location` is a local file or `s3://BUCKET/KEY`,
    /// `kind` the agent's bundle type (`tgz`, `tar`, `zip`, `directory`).
    pub fn deploy(&self, location: &str, kind: &str) -> AgentRun {
        let source = agent_source();
        let home = self.dir.join("agent-home");
        std::fs::create_dir_all(&home).unwrap();
        let output = Command::new("ruby")
            .arg(source.agent.join("bin/codedeploy-local"))
            .args(["--bundle-location", location, "--type", kind])
            .args(["--deployment-group", &self.deployment_group_id])
            .args(["--deployment-group-name", "production"])
            .args(["--application-name", "hooks-sample"])
            .arg("--agent-configuration-file")
            .arg(self.dir.join("codedeployagent.yml"))
            // The agent's hook scripts inherit its working directory.
            .current_dir(&home)
            .env("RUBYLIB", &source.rubylib)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Starting to execute deployment from within folder "))
            .and_then(|folder| folder.trim().rsplit('/').next())
            .unwrap_or_else(|| panic!("the agent printed no deployment folder:\n{stdout}"))
            .to_owned();
        AgentRun { output, id }
    }

    /// The agent's own log of the deployment's scripts (`logs/scripts.log`).
    pub fn scripts_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.deployment_dir(id).join("logs/scripts.log"))
            .unwrap_or_default()
    }
}
