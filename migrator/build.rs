//! Lists the embedded migration files so messages can name the file a user edits, and tells
//! cargo to rebuild when a migration is added or changed (`sqlx::migrate!` alone does not).

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let mut names: Vec<String> = fs::read_dir("migrations")
        .expect("migrator/migrations must exist")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_files.rs");
    let body = format!("&{names:?}");
    fs::write(out, body).unwrap();
}
