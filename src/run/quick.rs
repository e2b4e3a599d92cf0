//! The quick check of `-A`: whether every module is older than `modules.dep`, so that the
//! run can stop before it starts.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::input::os_path;
use crate::bmsg;
use crate::diag::{strerror, Diag};
use crate::discover::has_module_extension;

/// `depfile_up_to_date_dir`: true if no module file is newer (in seconds) than `mtime`.
fn modules_up_to_date(dir: &Path, mtime: i64, gzip: bool, fd: u32, diag: &Diag) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if matches!(name, b"." | b".." | b"build" | b"source") {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(name));
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) => {
                diag.error(bmsg!(
                    "fstatat(",
                    fd.to_string(),
                    ", ",
                    name,
                    "): ",
                    strerror(&err)
                ));
                continue;
            }
        };
        if meta.is_dir() {
            if !modules_up_to_date(&path, mtime, gzip, fd + 1, diag) {
                return false;
            }
        } else if meta.is_file() {
            if has_module_extension(name, gzip) && meta.mtime() > mtime {
                return false;
            }
        } else {
            diag.error(bmsg!(
                "unsupported file type ",
                path.as_os_str().as_bytes(),
                ": ",
                format!("{:o}", meta.mode() & 0o170000)
            ));
        }
    }
    true
}

/// `depfile_up_to_date`: whether `-A` may skip the run.
pub(super) fn depfile_up_to_date(dirname: &[u8], gzip: bool, diag: &Diag) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = os_path(dirname);
    if let Err(err) = std::fs::read_dir(&dir) {
        diag.error(bmsg!(
            "could not open directory ",
            dirname,
            ": ",
            strerror(&err)
        ));
        return false;
    }
    let meta = match std::fs::metadata(dir.join("modules.dep")) {
        Ok(meta) => meta,
        Err(err) => {
            diag.error(bmsg!(
                "could not fstatat(",
                dirname,
                ", modules.dep): ",
                strerror(&err)
            ));
            return false;
        }
    };
    // kmod's directory descriptors start at 3 (see `discover`).
    modules_up_to_date(&dir, meta.mtime(), gzip, 3, diag)
}
