//! Reading the kernel-provided input files of the module directory (`modules.order`,
//! `modules.builtin`, `modules.builtin.modinfo`) the way kmod's `dfdopen` does.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::bmsg;
use crate::diag::{strerror, HeldMessages};

/// A path from raw bytes.
pub(crate) fn os_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes.to_vec()))
}

/// Reads the input file `name` of the directory `dirname`; a failure is a warning held in
/// `messages`, in kmod's words, and gives `None`.
pub(crate) fn read_input(
    dirname: &[u8],
    name: &str,
    messages: &mut HeldMessages,
) -> Option<Vec<u8>> {
    let dir = os_path(dirname);
    if let Err(err) = std::fs::metadata(&dir).and_then(|m| {
        if m.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(20))
        }
    }) {
        messages.warning(bmsg!(
            "could not open directory ",
            dirname,
            ": ",
            strerror(&err)
        ));
        return None;
    }
    match std::fs::read(dir.join(name)) {
        Ok(data) => Some(data),
        Err(err) => {
            messages.warning(bmsg!(
                "could not open ",
                name,
                " at ",
                dirname,
                ": ",
                strerror(&err)
            ));
            None
        }
    }
}
