//! Every file and directory `hooks` creates under `<root>` has the mode the README's "On disk"
//! section lists, set when it is created: secrets (database backups, the database URL seeded
//! from the bundle) 0600 in 0700, logs, history and lock readable by the group only.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Env;

/// The expected mode of a path relative to the root, by its first components; `None` for
/// what the bundle itself decides (release contents).
fn expected(relative: &Path) -> Option<u32> {
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(match parts.as_slice() {
        [] | ["releases"] | ["shared"] | ["shared", "config"] => 0o755,
        ["releases", _, ..] => return None,
        ["shared", "config", "database_url"] => 0o600,
        ["logs"] | ["installed"] => 0o750,
        ["logs", _] | ["installed", _] | ["history"] | ["lock"] | ["lock.holder"] => 0o640,
        ["backups"] => 0o700,
        ["backups", _] => 0o600,
        other => panic!("{other:?} has no expected mode: add it here and to the README"),
    })
}

#[test]
fn every_file_under_the_root_has_its_documented_mode() {
    let env = Env::new();
    let migrator = Path::new(common::hooks_bin()).with_file_name("migrator");
    assert!(
        migrator.is_file(),
        "run cargo test --workspace, which builds the migrator"
    );
    let database = env.path("app.db");
    let bundle = |name: &str, migrations: &[&str]| {
        let mut builder = env
            .bundle(name)
            .file(
                "config/database_url",
                &format!("sqlite://{}?mode=rwc", database.display()),
            )
            .file("site/index.html", name)
            .extra(&format!(
                "files:\n  - source: site\n    destination: {}\n",
                env.path("www").display()
            ))
            .deploy_section(
                "  shared:\n    - config/database_url\n  migrate:\n    migrator: bin/migrator\n    database_url_file: config/database_url\n",
            );
        for (i, table) in migrations.iter().enumerate() {
            builder = builder.file(
                &format!("migrations/{:04}_{table}.sql", i + 1),
                &format!("CREATE TABLE {table} (id TEXT);\n"),
            );
        }
        let dir = builder.build();
        let wrapper = dir.join("bin/migrator");
        std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec '{}' --source \"$(dirname \"$0\")/../migrations\" \"$@\"\n",
                migrator.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A bundle's files are world-readable, as CI builds them.
        std::fs::set_permissions(
            dir.join("config/database_url"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        dir
    };
    env.deploy(&bundle("v1", &["items"]), &[]).expect(0);
    // A pending migration: a backup is taken first.
    env.deploy(&bundle("v2", &["items", "tags"]), &[]).expect(0);
    assert_eq!(common::entry_names(&env.root().join("backups")).len(), 1);

    let root = env.root();
    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.file_type().is_symlink() {
            continue;
        }
        let relative = path.strip_prefix(&root).unwrap().to_owned();
        let Some(mode) = expected(&relative) else {
            continue;
        };
        let actual = metadata.mode() & 0o7777;
        if actual != mode {
            wrong.push(format!(
                "{}: {actual:o}, expected {mode:o}",
                relative.display()
            ));
        }
        checked.push(relative.display().to_string());
        if metadata.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for must in [
        "backups",
        "shared/config/database_url",
        "history",
        "lock.holder",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not found: {checked:?}"
        );
    }
}
