//! File-list mode (§3.6): the modules named on the command line.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::{DiscoveredModule, Registry};
use crate::bmsg;
use crate::diag::{strerror, Diag};

/// Why file-list mode stopped (each is a kmod FATAL).
#[derive(Debug, thiserror::Error)]
pub enum FileListError {
    /// A path not starting with `/`.
    #[error("{}: not absolute path.", String::from_utf8_lossy(.0))]
    NotAbsolute(Vec<u8>),
    /// The file cannot be stat'ed, or clashes with another by name.
    #[error("could not create module {}: {}", String::from_utf8_lossy(.0), .1)]
    CreateModule(Vec<u8>, String),
    /// The same path twice.
    #[error("could not add module {}: File exists", String::from_utf8_lossy(.0))]
    AddModule(Vec<u8>),
}

impl FileListError {
    /// The message as raw bytes (paths need not be UTF-8).
    pub fn message(&self) -> Vec<u8> {
        match self {
            FileListError::NotAbsolute(p) => bmsg!(p, ": not absolute path."),
            FileListError::CreateModule(p, e) => bmsg!("could not create module ", p, ": ", e),
            FileListError::AddModule(p) => bmsg!("could not add module ", p, ": File exists"),
        }
    }
}

/// Register the modules named on the command line (§3.6).
pub fn from_file_list(
    paths: &[Vec<u8>],
    dirname: &[u8],
    version: crate::compat::KmodVersion,
    diag: &Diag,
) -> Result<Registry, FileListError> {
    let mut registry = Registry::default();
    for path in paths {
        if path.first() != Some(&b'/') {
            return Err(FileListError::NotAbsolute(path.clone()));
        }
        if let Err(err) = std::fs::metadata(OsStr::from_bytes(path)) {
            return Err(FileListError::CreateModule(path.clone(), strerror(&err)));
        }
        let module = DiscoveredModule::new(path.clone(), dirname);
        if module.modname.is_empty() {
            return Err(FileListError::CreateModule(
                path.clone(),
                "No such file or directory".into(),
            ));
        }
        if let Err(existing_path) = registry.add_unique(module.clone()) {
            if existing_path == module.path {
                diag.error(bmsg!("hash_add_unique ", module.modname, ": File exists"));
                return Err(FileListError::AddModule(path.clone()));
            }
            // Debian's kmod 30 prints libkmod's messages with their source location.
            let location: &[u8] = if version == crate::compat::KmodVersion::V30 {
                b"../libkmod/libkmod-module.c:428 kmod_module_new_from_path() "
            } else {
                b""
            };
            diag.error(bmsg!(
                location,
                "kmod_module '",
                module.modname,
                "' already exists with different path: new-path='",
                module.path,
                "' old-path='",
                existing_path,
                "'"
            ));
            return Err(FileListError::CreateModule(
                path.clone(),
                "File exists".into(),
            ));
        }
    }
    Ok(registry)
}
