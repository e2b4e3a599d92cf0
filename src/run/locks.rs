//! Runs take turns: the locks a run holds on its output directory and its cache file (see
//! [`crate::lock`]).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::input::os_path;
use super::plan::Directories;
use crate::bmsg;
use crate::diag::{Diag, Level};
use crate::lock::{self, Lock};

/// Locks the output directory (see [`crate::lock`]), saying under `-v` when another run
/// holds it.
pub(super) fn lock_output_dir(dirs: &Directories, diag: &Diag) -> Option<Lock> {
    let dir = os_path(&dirs.outdirname);
    lock::lock_directory(&dir, &mut |held: &Path| {
        diag.log(
            Level::Notice,
            &bmsg!(
                "waiting for another depmod run writing into ",
                held.as_os_str().as_bytes()
            ),
        );
    })
}

/// Locks the cache file, so that runs sharing it write it in turn. A cache that cannot be
/// locked is still used: it is written atomically, and a damaged one is ignored.
pub(super) fn lock_cache_file(file: &Path, diag: &Diag) -> Option<Lock> {
    let locked = lock::lock_file(file, &mut |held: &Path| {
        diag.log(
            Level::Notice,
            &bmsg!(
                "waiting for another depmod run using the cache ",
                held.as_os_str().as_bytes()
            ),
        );
    });
    locked.ok()
}
