//! Errors from reading a module, each mapped to the errno text kmod prints for it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain ELF (or anything without a known magic): read as is.
    None,
    /// zstd (`28 B5 2F FD`).
    Zstd,
    /// xz (`FD 37 7A 58 5A 00`).
    Xz,
    /// gzip (`1F 8B`).
    Gzip,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
        })
    }
}

/// Why a module (or its export list) could not be read.
///
/// Every variant carries the file it concerns when one is known (`parse_module_image`
/// works on bytes and leaves it empty; `read_module` fills it in).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    /// Opening, reading or mapping the file failed.
    #[error("{}{source}", at(.path))]
    Io {
        /// The module file.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The file is shorter than the 6 bytes kmod reads to detect compression (`EINVAL`).
    #[error("{}file is shorter than 6 bytes", at(.path))]
    TooShort {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// No ELF magic, or not more than `EI_NIDENT` bytes (`ENOEXEC`).
    #[error("{}not an ELF file", at(.path))]
    NotElf {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// The image is not longer than its ELF header (`EINVAL`).
    #[error("{}ELF file truncated inside its header", at(.path))]
    Truncated {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// A header field kmod validates has a value it rejects (`EINVAL`).
    #[error("{}invalid ELF file: {reason}", at(.path))]
    Invalid {
        /// The module file.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: &'static str,
    },
    /// The section header table does not fit in the file (`EINVAL`).
    #[error("{}section header table lies outside the file", at(.path))]
    SectionOutOfRange {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// The section-name string table is missing, out of range, empty or not NUL-terminated
    /// (`EINVAL`).
    #[error("{}invalid section-name string table", at(.path))]
    BadStringTable {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// `__ksymtab_strings` does not end with NUL (kmod 34: `EINVAL`, "failed to load
    /// symbols").
    #[error("{}__ksymtab_strings does not end with NUL", at(.path))]
    UnterminatedExportStrings {
        /// The module file.
        path: Option<PathBuf>,
    },
    /// The compressed stream is corrupt or truncated (`EINVAL`).
    #[error("{}{format}: {message}", at(.path))]
    Decompress {
        /// The module file.
        path: Option<PathBuf>,
        /// The compression format.
        format: Compression,
        /// The decoder's message.
        message: String,
    },
    /// Decompressing would exceed [`ReadOptions::max_image_size`](super::ReadOptions)
    /// (reported as `ENOMEM`, which is what kmod gets when such an allocation fails).
    #[error("{}{format}: decompressed image exceeds {limit} bytes", at(.path))]
    TooLarge {
        /// The module file.
        path: Option<PathBuf>,
        /// The compression format.
        format: Compression,
        /// The limit that was hit.
        limit: u64,
    },
    /// The file is compressed in a format this configuration does not decode (kmod 33+
    /// built without it: `ENOSYS`).
    #[error("{}{format} compression is not supported", at(.path))]
    UnsupportedCompression {
        /// The module file.
        path: Option<PathBuf>,
        /// The compression format.
        format: Compression,
    },
}

/// `"<path>: "` or nothing.
fn at(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

const EINVAL: i32 = 22;
const ENOEXEC: i32 = 8;
const ENOMEM: i32 = 12;
const ENOSYS: i32 = 38;
const EIO: i32 = 5;

impl ModuleError {
    /// Wraps an I/O error.
    pub fn io(path: Option<&Path>, source: io::Error) -> Self {
        ModuleError::Io {
            path: path.map(Path::to_path_buf),
            source: Arc::new(source),
        }
    }

    /// The file this error concerns, if known.
    pub fn path(&self) -> Option<&Path> {
        self.path_slot_ref().as_deref()
    }

    /// The same error, naming `path` as the file it concerns.
    pub fn with_path(mut self, path: &Path) -> Self {
        *self.path_slot() = Some(path.to_path_buf());
        self
    }

    fn path_slot(&mut self) -> &mut Option<PathBuf> {
        match self {
            ModuleError::Io { path, .. }
            | ModuleError::TooShort { path }
            | ModuleError::NotElf { path }
            | ModuleError::Truncated { path }
            | ModuleError::Invalid { path, .. }
            | ModuleError::SectionOutOfRange { path }
            | ModuleError::BadStringTable { path }
            | ModuleError::UnterminatedExportStrings { path }
            | ModuleError::Decompress { path, .. }
            | ModuleError::TooLarge { path, .. }
            | ModuleError::UnsupportedCompression { path, .. } => path,
        }
    }

    fn path_slot_ref(&self) -> &Option<PathBuf> {
        match self {
            ModuleError::Io { path, .. }
            | ModuleError::TooShort { path }
            | ModuleError::NotElf { path }
            | ModuleError::Truncated { path }
            | ModuleError::Invalid { path, .. }
            | ModuleError::SectionOutOfRange { path }
            | ModuleError::BadStringTable { path }
            | ModuleError::UnterminatedExportStrings { path }
            | ModuleError::Decompress { path, .. }
            | ModuleError::TooLarge { path, .. }
            | ModuleError::UnsupportedCompression { path, .. } => path,
        }
    }

    /// The errno kmod reports for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            ModuleError::Io { source, .. } => source.raw_os_error().unwrap_or(EIO),
            ModuleError::NotElf { .. } => ENOEXEC,
            ModuleError::TooLarge { .. } => ENOMEM,
            ModuleError::UnsupportedCompression { .. } => ENOSYS,
            ModuleError::TooShort { .. }
            | ModuleError::Truncated { .. }
            | ModuleError::Invalid { .. }
            | ModuleError::SectionOutOfRange { .. }
            | ModuleError::BadStringTable { .. }
            | ModuleError::UnterminatedExportStrings { .. }
            | ModuleError::Decompress { .. } => EINVAL,
        }
    }

    /// The strerror text kmod prints for this failure, e.g. "Invalid argument" or
    /// "Exec format error" (glibc's wording).
    pub fn kmod_strerror(&self) -> &'static str {
        strerror(self.errno())
    }
}

/// glibc's `strerror` text for the errnos a module read can produce.
pub fn strerror(errno: i32) -> &'static str {
    match errno {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        4 => "Interrupted system call",
        5 => "Input/output error",
        6 => "No such device or address",
        8 => "Exec format error",
        9 => "Bad file descriptor",
        11 => "Resource temporarily unavailable",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        14 => "Bad address",
        16 => "Device or resource busy",
        19 => "No such device",
        20 => "Not a directory",
        21 => "Is a directory",
        22 => "Invalid argument",
        23 => "Too many open files in system",
        24 => "Too many open files",
        27 => "File too large",
        36 => "File name too long",
        38 => "Function not implemented",
        40 => "Too many levels of symbolic links",
        61 => "No data available",
        75 => "Value too large for defined data type",
        116 => "Stale file handle",
        _ => "Unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_texts_match_kmod_messages() {
        assert_eq!(
            ModuleError::NotElf { path: None }.kmod_strerror(),
            "Exec format error"
        );
        assert_eq!(
            ModuleError::UnterminatedExportStrings { path: None }.kmod_strerror(),
            "Invalid argument"
        );
        let missing = ModuleError::io(None, io::Error::from_raw_os_error(2));
        assert_eq!(missing.kmod_strerror(), "No such file or directory");
    }

    #[test]
    fn display_names_the_file() {
        let err = ModuleError::NotElf { path: None }.with_path(Path::new("/m/a.ko"));
        assert_eq!(err.to_string(), "/m/a.ko: not an ELF file");
        assert_eq!(err.path(), Some(Path::new("/m/a.ko")));
    }
}
