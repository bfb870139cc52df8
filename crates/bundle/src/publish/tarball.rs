//! The reproducible tarball: the manifest's files in byte order of their paths, with fixed
//! mtimes and owners, so the same input gives the same sha256 on any machine.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use glob::{MatchOptions, Pattern};
use sha2::{Digest, Sha256};

/// Modification time of every entry: 2000-01-01T00:00:00Z, or `SOURCE_DATE_EPOCH` when set.
const FIXED_MTIME: u64 = 946_684_800;

/// Why a manifest could not be used; the text names the file and, where known, the line and
/// column or the bad glob.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{}: cannot read the manifest: {source}", file.display())]
    Unreadable {
        /// The manifest file.
        file: PathBuf,
        /// The read's error.
        source: io::Error,
    },
    /// The file is not YAML with `include:` and `exclude:` lists.
    #[error(
        "{}{}: {source}; expected `include:` and `exclude:` lists of globs",
        file.display(),
        at.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default()
    )]
    Malformed {
        /// The manifest file.
        file: PathBuf,
        /// Line and column of the problem, when the parser knows them.
        at: Option<(usize, usize)>,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// An `include:` or `exclude:` entry is not a glob.
    #[error("{}: {key}: '{glob}' is not a valid glob: {source}", file.display())]
    BadGlob {
        /// The manifest file.
        file: PathBuf,
        /// `include` or `exclude`.
        key: &'static str,
        /// The entry as written.
        glob: String,
        /// What is wrong with it.
        source: glob::PatternError,
    },
}

/// Which files go in the bundle: a YAML file with `include:` and `exclude:` lists of globs,
/// relative to the bundle directory (`*` stays within a path component, `**` crosses them).
/// Without a manifest everything but `.git` is shipped.
#[derive(Debug, Clone)]
pub struct Manifest {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            include: vec![Pattern::new("**").expect("valid glob")],
            exclude: vec![Pattern::new(".git").expect("valid glob")],
        }
    }
}

impl Manifest {
    /// Reads a manifest; errors name the file, the line and column or the bad glob.
    pub fn load(file: &Path) -> Result<Self, ManifestError> {
        let text = fs::read_to_string(file).map_err(|source| ManifestError::Unreadable {
            file: file.to_path_buf(),
            source,
        })?;
        let parsed: ManifestFile =
            serde_yaml::from_str(&text).map_err(|source| ManifestError::Malformed {
                file: file.to_path_buf(),
                at: source.location().map(|l| (l.line(), l.column())),
                source,
            })?;
        let compile = |key: &'static str, globs: &[String]| {
            globs
                .iter()
                .map(|g| {
                    Pattern::new(g.trim_end_matches('/')).map_err(|source| ManifestError::BadGlob {
                        file: file.to_path_buf(),
                        key,
                        glob: g.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut include = compile("include", &parsed.include)?;
        if include.is_empty() {
            include = Manifest::default().include;
        }
        let mut exclude = compile("exclude", &parsed.exclude)?;
        exclude.extend(Manifest::default().exclude);
        Ok(Self { include, exclude })
    }

    fn matches(patterns: &[Pattern], rel: &str) -> bool {
        let opts = MatchOptions {
            require_literal_separator: true,
            ..MatchOptions::new()
        };
        patterns.iter().any(|p| p.matches_with(rel, opts))
    }

    /// A path is shipped when it matches an include and neither it nor a parent matches an
    /// exclude (so `exclude: [tests]` drops the whole directory).
    fn excluded(&self, rel: &str) -> bool {
        Self::matches(&self.exclude, rel)
    }

    fn included(&self, rel: &str) -> bool {
        Self::matches(&self.include, rel)
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Tarball {
    /// sha256 of the .tar.gz bytes, lowercase hex.
    pub sha256: String,
    /// Size of the .tar.gz in bytes.
    pub size: u64,
    /// Regular files and symlinks shipped.
    pub files: u64,
}

enum Item {
    Dir(PathBuf, String),
    File(PathBuf, String),
    Link(PathBuf, String),
}

/// Walks `dir` in sorted order; a directory is listed only when something under it is.
fn walk(dir: &Path, rel: &str, manifest: &Manifest, out: &mut Vec<Item>) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if manifest.excluded(&child_rel) {
            continue;
        }
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            let before = out.len();
            out.push(Item::Dir(path.clone(), child_rel.clone()));
            walk(&path, &child_rel, manifest, out)?;
            if out.len() == before + 1 && !manifest.included(&child_rel) {
                out.pop();
            }
        } else if manifest.included(&child_rel) {
            if meta.file_type().is_symlink() {
                out.push(Item::Link(path, child_rel));
            } else if meta.is_file() {
                out.push(Item::File(path, child_rel));
            }
        }
    }
    Ok(())
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    // setuid/setgid never travel: the server decides privileges, not the bundle.
    header.set_mode(mode & 0o1777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(0);
    header
}

/// Writes the .tar.gz of `dir` filtered by `manifest` into `out`.
pub fn build(dir: &Path, manifest: &Manifest, out: File) -> io::Result<Tarball> {
    use std::os::unix::fs::PermissionsExt;
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FIXED_MTIME);
    let mut items = Vec::new();
    walk(dir, "", manifest, &mut items)?;
    let writer = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        written: 0,
    };
    // No file name and a fixed mtime in the gzip header, so it depends on content only.
    let gz = GzBuilder::new()
        .mtime(0)
        .write(writer, Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut files = 0;
    for item in &items {
        match item {
            Item::Dir(path, rel) => {
                let mode = fs::metadata(path)?.permissions().mode();
                let mut h = header(tar::EntryType::Directory, mode, mtime);
                tar.append_data(&mut h, format!("{rel}/"), io::empty())?;
            }
            Item::File(path, rel) => {
                let file = File::open(path)?;
                let meta = file.metadata()?;
                let mut h = header(tar::EntryType::Regular, meta.permissions().mode(), mtime);
                h.set_size(meta.len());
                tar.append_data(&mut h, rel, file)?;
                files += 1;
            }
            Item::Link(path, rel) => {
                let target = fs::read_link(path)?;
                let mut h = header(tar::EntryType::Symlink, 0o777, mtime);
                tar.append_link(&mut h, rel, target)?;
                files += 1;
            }
        }
    }
    let gz = tar.into_inner()?;
    let mut writer = gz.finish()?;
    writer.flush()?;
    writer
        .inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(Tarball {
        sha256: hex::encode(writer.hasher.finalize()),
        size: writer.written,
        files,
    })
}
