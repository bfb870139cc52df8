//! What an unpacked bundle holds, path by path: the model the extractor fills in and the link
//! checks read, so neither needs to ask the file system about a tree that starts empty.

use std::path::PathBuf;

/// uid and gid recorded in the bundle.
pub(super) type Owner = Option<(u32, u32)>;

/// What the bundle put at a path inside `dest`. The map of these is the whole truth about
/// `dest`, which starts empty, so no check ever needs to ask the file system.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    File,
    Dir {
        mode: u32,
        owner: Owner,
    },
    /// Created only when the extractor finishes, after its target has been resolved.
    Link {
        target: PathBuf,
        owner: Owner,
        entry: String,
    },
}
