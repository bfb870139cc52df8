//! Every real-world appspec of the shared corpus gets the verdict that was reviewed by hand in
//! `tests/data/appspec_verdicts.tsv` (valid | warnings | invalid, and a phrase the first
//! message must contain, so a rejection names the real problem).
//!
//! `HOOKS_PRINT_VERDICTS=1` prints the current verdicts as TSV rows, to help review a change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/appspec_verdicts.tsv"
);

/// What `hooks` says about one file.
struct Verdict {
    kind: &'static str,
    first_message: String,
}

fn judge(path: &Path) -> Verdict {
    match hooks_appspec::load(path) {
        Ok(loaded) if loaded.warnings.is_empty() => Verdict {
            kind: "valid",
            first_message: String::new(),
        },
        Ok(loaded) => Verdict {
            kind: "warnings",
            first_message: loaded.warnings[0].to_string(),
        },
        Err(err) => Verdict {
            kind: "invalid",
            first_message: err.to_string().lines().next().unwrap_or("").to_owned(),
        },
    }
}

/// The corpus lives in `shared/` beside the checkout (`<checkout>/../shared`); a git worktree
/// sits one level deeper, so the nearest ancestor holding `shared/corpus/appspec` is used.
fn corpus_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared/corpus/appspec"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/corpus/appspec beside any parent of {}; the corpus test needs the \
                 project's shared/ folder next to the checkout",
                manifest.display()
            )
        })
}

fn corpus_files() -> Vec<(String, PathBuf)> {
    let corpus = corpus_dir();
    let mut files = Vec::new();
    for folder in ["public", "non_ec2"] {
        let dir = corpus.join(folder);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} is unreadable: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                files.push((format!("{folder}/{name}"), path));
            }
        }
    }
    files.sort();
    files
}

/// Rows of the reviewed table: file → (verdict, expected substring of the first message).
fn expected() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(TABLE).expect("verdict table");
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(cols.len() >= 3, "malformed row in {TABLE}: {line}");
            (cols[0].to_owned(), (cols[1].to_owned(), cols[2].to_owned()))
        })
        .collect()
}

#[test]
fn corpus_verdicts_match_the_reviewed_table() {
    let files = corpus_files();
    assert!(files.len() >= 114, "corpus shrank: {} files", files.len());
    let table = expected();
    let print = std::env::var_os("HOOKS_PRINT_VERDICTS").is_some();
    let mut diff = String::new();
    for (name, path) in &files {
        let got = judge(path);
        if print {
            println!("{name}\t{}\t{}", got.kind, got.first_message);
        }
        match table.get(name) {
            None => writeln!(diff, "{name}: not in the table (got {})", got.kind).unwrap(),
            Some((kind, phrase))
                if kind != got.kind || !got.first_message.contains(phrase.as_str()) =>
            {
                writeln!(
                    diff,
                    "{name}:\n    expected {kind} containing {phrase:?}\n    got      {} {:?}",
                    got.kind, got.first_message
                )
                .unwrap()
            }
            Some(_) => {}
        }
    }
    for name in table.keys() {
        if !files.iter().any(|(n, _)| n == name) {
            writeln!(diff, "{name}: in the table but not in the corpus").unwrap();
        }
    }
    assert!(
        diff.is_empty(),
        "corpus verdicts differ from {TABLE}:\n{diff}"
    );
}

#[test]
fn every_rejection_in_the_table_names_a_phrase() {
    for (name, (kind, phrase)) in expected() {
        assert!(
            matches!(kind.as_str(), "valid" | "warnings" | "invalid"),
            "{name}: unknown verdict {kind}"
        );
        assert!(
            kind == "valid" || !phrase.is_empty(),
            "{name}: a {kind} verdict needs the expected phrase"
        );
    }
}
