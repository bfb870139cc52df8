//! Shared by the engine tests: the real engine (never a mock), a static helper binary built
//! once per test run, and a project directory that removes everything it created on drop.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use hooks_compose::{LoadOptions, Project, load};
use hooks_journal::log::DeploymentLog;
use hooks_runtime::engine::{self, Engine, EngineError, UpOptions, UpReport};

/// Connects to the engine the test command started; a missing engine fails the test loudly.
pub fn engine() -> Engine {
    Engine::connect().unwrap_or_else(|e| {
        panic!(
            "these tests need a Docker engine: {e}\nrun them through scripts/test, or first: eval \"$(scripts/docker-engine start /tmp/hooks-docker)\""
        )
    })
}

/// The helper program (see helper.rs), compiled static so it runs in `FROM scratch`.
pub fn helper_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-helper");
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join(format!("helper-{}", std::process::id()));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine_support/helper.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let status = std::process::Command::new(rustc)
            .args([
                "--edition",
                "2024",
                "-O",
                "-C",
                "target-feature=+crt-static",
            ])
            .args(["--target", "x86_64-unknown-linux-gnu", "-o"])
            .arg(&out)
            .arg(&source)
            .status()
            .expect("running rustc");
        assert!(status.success(), "building the static helper failed");
        out
    })
}

/// A compose project in a temporary directory, with a unique name; `Drop` removes its
/// containers, networks, volumes and images.
pub struct TestProject {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub engine: Engine,
    pub log: DeploymentLog,
    pub images: Vec<String>,
}

impl TestProject {
    /// A project named after the test, with a build context `ctx-<service>` for each service.
    pub fn new(test: &str, services: &[&str]) -> TestProject {
        let dir = tempfile::tempdir().unwrap();
        // HOOKS_TEST_PREFIX keeps the names of parallel runs on one shared engine apart.
        let prefix = std::env::var("HOOKS_TEST_PREFIX").unwrap_or_default();
        let name = format!("{prefix}hooks-test-{test}-{}", std::process::id());
        let mut images = Vec::new();
        for service in services {
            let ctx = dir.path().join(format!("ctx-{service}"));
            std::fs::create_dir_all(&ctx).unwrap();
            std::fs::copy(helper_binary(), ctx.join("helper")).unwrap();
            std::fs::write(ctx.join("Dockerfile"), dockerfile(&name, "1")).unwrap();
            images.push(format!("{name}-{service}:latest"));
        }
        TestProject {
            dir,
            name,
            engine: engine(),
            log: DeploymentLog::terminal_only(),
            images,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// Loads the project's docker-compose.yml with the compose loader.
    pub fn load(&self) -> Project {
        load(&LoadOptions {
            files: vec![self.path("docker-compose.yml")],
            project_name: Some(self.name.clone()),
            environment: Default::default(),
            profiles: Vec::new(),
        })
        .expect("the test's compose file loads")
    }

    /// `up`, building images only when missing.
    pub fn up(&self, deadline: Duration) -> Result<UpReport, EngineError> {
        self.up_loading(deadline, Vec::new())
    }

    /// `up`, loading these image tarballs first.
    pub fn up_loading(
        &self,
        deadline: Duration,
        images: Vec<PathBuf>,
    ) -> Result<UpReport, EngineError> {
        let options = UpOptions {
            state_dir: self.path("root/compose"),
            images,
            deadline,
            build: false,
            remove_orphans: false,
        };
        engine::up(&self.engine, &self.load(), &options, &self.log)
    }

    /// Service name → container id of the project's containers.
    pub fn containers(&self) -> std::collections::BTreeMap<String, String> {
        engine::ps(&self.engine, &self.name)
            .unwrap()
            .into_iter()
            .map(|row| (row.service, row.id))
            .collect()
    }

    /// `docker inspect` of a container, as JSON text.
    pub fn inspect(&self, id: &str) -> (String, bollard::models::ContainerInspectResponse) {
        let inspect = self
            .engine
            .block_on(self.engine.docker().inspect_container(id, None))
            .unwrap();
        (serde_json::to_string(&inspect).unwrap(), inspect)
    }

    pub fn volume_exists(&self, key: &str) -> bool {
        let name = format!("{}_{key}", self.name);
        self.engine
            .block_on(self.engine.docker().inspect_volume(&name))
            .is_ok()
    }
}

/// The Dockerfile of a test image, labelled with the project so `Drop` finds every image the
/// test built (old versions too); `version` changes the image id.
pub fn dockerfile(project: &str, version: &str) -> String {
    format!(
        "FROM scratch\nCOPY helper /helper\nLABEL test.project={project} test.version={version}\nENTRYPOINT [\"/helper\"]\n"
    )
}

impl Drop for TestProject {
    fn drop(&mut self) {
        let _ = engine::down(&self.engine, &self.name, true, &self.log);
        let docker = self.engine.docker();
        let filters = std::collections::HashMap::from([(
            "label",
            vec![format!("test.project={}", self.name)],
        )]);
        let list = bollard::query_parameters::ListImagesOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let ids: Vec<String> = self
            .engine
            .block_on(docker.list_images(Some(list)))
            .unwrap_or_default()
            .into_iter()
            .map(|image| image.id)
            .collect();
        // Newest first, so children go before their parents. `noprune`: an unlabelled parent
        // layer (the `COPY helper` step every test image shares) must survive, or another
        // test building in parallel loses the cached layer it is building on ("failed to get
        // digest"); every labelled layer is in `ids` and removed here.
        for image in self.images.iter().chain(&ids) {
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
                .force(true)
                .noprune(true)
                .build();
            let _ = self
                .engine
                .block_on(docker.remove_image(image, Some(options), None));
        }
    }
}
