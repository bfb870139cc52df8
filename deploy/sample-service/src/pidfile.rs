//! The PID file: written crash-safely once we listen, removed on a clean exit.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A PID file this process wrote; [`PidFile::remove`] deletes it if it is still ours.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes our pid beside `path`, fsyncs it, renames it over `path` and fsyncs the
    /// directory, so a reader sees either the old file or the complete new one.
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let shown = path.display();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            format!("pid_file {shown} names no file; give a file path such as run/sample.pid")
        })?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let result = (|| {
            fs::create_dir_all(dir)?;
            let mut f = File::create(&tmp)?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write pid_file {shown}: {e}; fix the directory's permissions or choose another path")
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    /// Removes the file unless another process has replaced it meanwhile (during a
    /// hand-off the new instance writes the same path before the old one exits).
    pub fn remove(self) {
        let ours = std::process::id().to_string();
        match fs::read_to_string(&self.path) {
            Ok(content) if content.trim() == ours => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), "cannot remove pid file: {e}");
                }
            }
            Ok(_) => tracing::info!(
                path = %self.path.display(),
                "pid file now belongs to another process; leaving it"
            ),
            Err(_) => {}
        }
    }
}
