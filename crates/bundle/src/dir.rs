//! Directory bundles: copied entry by entry through the same checks as an archive, so a
//! symlink in the source tree that leaves it is refused just like one in a tarball.

use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::extract::Extractor;
use super::{BundleError, UnpackOptions, UnpackReport};

/// Copies the tree under `src` into `dest`; see [`super::BundleSource::unpack_with`].
pub(super) fn copy(
    src: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    bundle: &str,
) -> Result<UnpackReport, BundleError> {
    let mut ex = Extractor::new(dest, bundle, opts)?;
    // Depth-first with an explicit stack: a deep tree cannot overflow ours.
    let mut pending = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let dir = src.join(&rel_dir);
        let io_err = |e| BundleError::Io {
            path: dir.clone(),
            context: "reading the bundle directory".into(),
            source: e,
        };
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err)?
            .map(|c| c.map(|c| c.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        // Sorted, so the same tree always unpacks (and fails) the same way.
        children.sort();
        for child in children.into_iter().rev() {
            let rel = rel_dir.join(&child);
            let path = src.join(&rel);
            let name = rel.to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&path).map_err(|e| BundleError::Io {
                path: path.clone(),
                context: "reading the bundle directory".into(),
                source: e,
            })?;
            let Some(rel_checked) = ex.begin(&name, &rel)? else {
                continue;
            };
            let owner = Some((meta.uid(), meta.gid()));
            let kind = meta.file_type();
            if kind.is_dir() {
                ex.dir(&name, rel_checked, meta.mode(), owner)?;
                pending.push(rel);
            } else if kind.is_file() {
                let mut file = File::open(&path).map_err(|e| BundleError::Io {
                    path: path.clone(),
                    context: "opening a bundle file".into(),
                    source: e,
                })?;
                let mtime: Option<SystemTime> = meta.modified().ok();
                ex.file(
                    &name,
                    rel_checked,
                    (meta.mode(), owner, mtime),
                    meta.len(),
                    &mut file,
                )?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| BundleError::Io {
                    path: path.clone(),
                    context: "reading a symlink".into(),
                    source: e,
                })?;
                ex.symlink(&name, rel_checked, &target, owner)?;
            } else {
                let what = if kind.is_fifo() {
                    "fifo"
                } else if kind.is_socket() {
                    "socket"
                } else if kind.is_char_device() {
                    "character device"
                } else {
                    "block device"
                };
                return Err(ex.special(&name, what));
            }
        }
    }
    ex.finish()
}
