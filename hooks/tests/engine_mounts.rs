//! Anonymous volumes, tmpfs mounts and configs on the real Docker engine: a container writes to
//! its tmpfs and its anonymous volume and reads its configs (through `docker exec`); a changed
//! config file recreates the service, whose new container has the old anonymous volume's data
//! and a fresh tmpfs; an unchanged one keeps the same container; `down --volumes` removes the
//! anonymous volume.

use crate::engine_support;

use std::process::Command;
use std::time::Duration;

use engine_support::TestProject;

const DEADLINE: Duration = Duration::from_secs(60);

fn compose_file(name: &str) -> String {
    format!(
        r#"services:
  app:
    build: ./ctx-app
    image: {name}-app:latest
    command: ["serve", "/etc/app.conf"]
    volumes:
      - /data
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 1m
    tmpfs: /run/t
    configs:
      - source: app
        target: /etc/app.conf
      - source: inline
        target: /etc/inline/inline.conf
        mode: 0400
      - source: app
        target: /etc/owned.conf
        uid: "1000"
        gid: "33"
        mode: 0440
configs:
  app:
    file: ./app.conf
  inline:
    content: "inline=1"
"#
    )
}

/// `docker exec ID /helper ARGS…`: (success, output).
fn exec(id: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(["exec", id, "/helper"])
        .args(args)
        .output()
        .expect("run docker exec");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn write(id: &str, file: &str, text: &str) {
    let (ok, out) = exec(id, &["write", file, text]);
    assert!(ok, "writing {file} in the container: {out}");
}

fn cat(id: &str, file: &str) -> String {
    let (ok, out) = exec(id, &["cat", file]);
    assert!(ok, "reading {file} in the container: {out}");
    out
}

/// The container's mounts: target → (type, volume name).
fn mounts(project: &TestProject, id: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let (_, inspect) = project.inspect(id);
    inspect
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.destination.unwrap_or_default(),
                (m.typ.unwrap_or_default(), m.name.unwrap_or_default()),
            )
        })
        .collect()
}

fn volume_exists(project: &TestProject, name: &str) -> bool {
    project
        .engine
        .block_on(project.engine.docker().inspect_volume(name))
        .is_ok()
}

#[test]
fn tmpfs_anonymous_volume_and_configs_in_the_container_and_a_changed_config_recreates_it() {
    let project = TestProject::new("mounts", &["app"]);
    project.write("docker-compose.yml", &compose_file(&project.name));
    project.write("app.conf", "version=1");
    let report = project.up(DEADLINE).expect("first up");
    assert_eq!(report.recreated, ["app"]);
    let first = project.containers()["app"].clone();

    assert_eq!(cat(&first, "/etc/app.conf"), "version=1");
    assert_eq!(cat(&first, "/etc/inline/inline.conf"), "inline=1");
    // Copied configs get their mode and owner (a bind mount could not change them).
    assert_eq!(
        exec(&first, &["mode", "/etc/inline/inline.conf"]).1.trim(),
        "400 0:0"
    );
    assert_eq!(
        exec(&first, &["mode", "/etc/owned.conf"]).1.trim(),
        "440 1000:33"
    );
    assert_eq!(cat(&first, "/etc/owned.conf"), "version=1");
    let (ok, out) = exec(&first, &["write", "/etc/app.conf", "changed"]);
    assert!(!ok, "the file config is mounted read-only: {out}");
    write(&first, "/data/kept", "written before the recreate");
    write(&first, "/scratch/gone", "memory only");
    write(&first, "/run/t/gone", "memory only");
    let before = mounts(&project, &first);
    let (kind, volume) = before["/data"].clone();
    assert_eq!(kind, "volume");
    assert!(
        volume.len() == 64,
        "an engine-named anonymous volume: {before:?}"
    );
    assert_eq!(before["/scratch"].0, "tmpfs");
    let (_, inspect) = project.inspect(&first);
    let host = inspect.host_config.unwrap();
    assert!(host.tmpfs.unwrap().contains_key("/run/t"), "the tmpfs key");
    let scratch = host
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.target.as_deref() == Some("/scratch"));
    let size = scratch.and_then(|m| m.tmpfs_options?.size_bytes);
    assert_eq!(size, Some(1 << 20), "tmpfs size 1m");

    let again = project.up(DEADLINE).expect("second up");
    assert!(again.recreated.is_empty(), "nothing changed: {again:?}");
    assert_eq!(project.containers()["app"], first, "same container");

    project.write("app.conf", "version=2");
    let changed = project.up(DEADLINE).expect("up after the config changed");
    assert_eq!(
        changed.recreated,
        ["app"],
        "a changed config file recreates"
    );
    let second = project.containers()["app"].clone();
    assert_ne!(second, first);
    assert_eq!(cat(&second, "/etc/app.conf"), "version=2");
    assert_eq!(cat(&second, "/etc/owned.conf"), "version=2");
    assert_eq!(
        cat(&second, "/data/kept"),
        "written before the recreate",
        "the new container took over the anonymous volume"
    );
    assert_eq!(mounts(&project, &second)["/data"].1, volume);
    for scratch in ["/scratch/gone", "/run/t/gone"] {
        let (ok, _) = exec(&second, &["cat", scratch]);
        assert!(!ok, "{scratch}: a tmpfs starts empty in every container");
    }

    // Start-first: the new container shares the volume with the old one, then keeps it.
    let start_first = compose_file(&project.name).replace(
        "    tmpfs: /run/t\n",
        "    tmpfs: /run/t\n    deploy:\n      update_config:\n        order: start-first\n",
    );
    project.write("docker-compose.yml", &start_first);
    project.write("app.conf", "version=3");
    let changed = project.up(DEADLINE).expect("start-first up");
    assert_eq!(changed.recreated, ["app"]);
    let third = project.containers()["app"].clone();
    assert_ne!(third, second);
    assert_eq!(cat(&third, "/etc/app.conf"), "version=3");
    assert_eq!(cat(&third, "/data/kept"), "written before the recreate");
    assert_eq!(mounts(&project, &third)["/data"].1, volume);

    let status = Command::new(env!("CARGO_BIN_EXE_hooks"))
        .args(["compose", "down", "--volumes", "-p", &project.name, "-f"])
        .arg(project.path("docker-compose.yml"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(project.containers().is_empty());
    assert!(
        !volume_exists(&project, &volume),
        "down --volumes removes the anonymous volume"
    );
}
