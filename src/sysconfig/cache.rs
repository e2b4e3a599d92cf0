//! `cache = DIR`: which runs use a cache under DIR, the file each kernel version gets, and
//! the check that nobody else could have written it.
//!
//! The cache decides which index files a run keeps and which module records it trusts, so
//! what modprobe later reads depends on it. It is therefore used only when the directory and
//! the file (if it exists yet) belong to the user running depmod and neither is writable by
//! group or others; a symlink in either place is refused too. Otherwise the run goes on
//! without a cache, and says why under `-v`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a configured cache is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPrivate {
    /// The path is a symlink, or not a directory (file) as it should be.
    #[error("{} is not a {}", path.display(), if *dir { "directory" } else { "regular file" })]
    WrongType {
        /// The path.
        path: PathBuf,
        /// Whether a directory was expected.
        dir: bool,
    },
    /// Someone else owns it.
    #[error("{} belongs to uid {owner}, not {user}", path.display())]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The running user.
        user: u32,
    },
    /// Group or others may write it.
    #[error("{} is writable by group or others (mode {mode:o})", path.display())]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It could not be examined (or the directory created).
    #[error("{}: {reason}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Whether a run works on the live system's own modules, the only runs that use the
/// configured cache: no `-b` (or a `-b` that is `/` itself), no `-o`, no `-m`. Staging runs
/// (`-b DIR`, as initramfs builders make them) never do.
pub fn is_live_run(options: &crate::cli::Options) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let root_is_live = match &options.basedir {
        None => true,
        Some(dir) => std::fs::canonicalize(std::ffi::OsStr::from_bytes(dir))
            .is_ok_and(|dir| dir == Path::new("/")),
    };
    root_is_live && options.outdir.is_none() && options.moduledir.is_none()
}

/// The cache file of kernel version `kversion` under `dir`: `DIR/KVERSION.cache`. `None`
/// when the version cannot be a file name (it is empty, or contains `/` or NUL).
pub fn cache_file(dir: &Path, kversion: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if kversion.is_empty() || kversion.contains(&b'/') || kversion.contains(&0) {
        return None;
    }
    let mut name = kversion.to_vec();
    name.extend_from_slice(b".cache");
    Some(dir.join(std::ffi::OsStr::from_bytes(&name)))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() }
}

fn check(path: &Path, meta: &std::fs::Metadata, dir: bool) -> Result<(), NotPrivate> {
    let right_type = match dir {
        true => meta.file_type().is_dir(),
        false => meta.file_type().is_file(),
    };
    if !right_type {
        return Err(NotPrivate::WrongType {
            path: path.to_path_buf(),
            dir,
        });
    }
    let user = effective_uid();
    if meta.uid() != user {
        return Err(NotPrivate::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(NotPrivate::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn io_error(path: &Path, err: &std::io::Error) -> NotPrivate {
    NotPrivate::Io {
        path: path.to_path_buf(),
        reason: crate::diag::strerror(err),
    }
}

/// Checks that `file` and its directory are private to the running user, creating the
/// directory (mode 0755) when it is missing. A missing file is fine: it will be created
/// by this user.
pub fn check_private(file: &Path) -> Result<(), NotPrivate> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|err| io_error(dir, &err))?;
            std::fs::symlink_metadata(dir).map_err(|err| io_error(dir, &err))?
        }
        Err(err) => return Err(io_error(dir, &err)),
    };
    check(dir, &dir_meta, true)?;
    match std::fs::symlink_metadata(file) {
        Ok(meta) => check(file, &meta, false),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(file, &err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn cache_file_names() {
        let dir = Path::new("/var/cache/depmod-rs");
        assert_eq!(
            cache_file(dir, b"6.1.0-13-amd64"),
            Some(dir.join("6.1.0-13-amd64.cache"))
        );
        assert_eq!(cache_file(dir, b"6.1/../../etc"), None);
        assert_eq!(cache_file(dir, b""), None);
    }

    #[test]
    fn live_runs() {
        use crate::cli::Options;
        assert!(is_live_run(&Options::default()));
        let with = |basedir: &str| Options {
            basedir: Some(basedir.as_bytes().to_vec()),
            ..Options::default()
        };
        assert!(is_live_run(&with("/")));
        assert!(is_live_run(&with("/usr/..")));
        assert!(!is_live_run(&with("/tmp")));
        assert!(!is_live_run(&with("/nonexistent")));
        let outdir = Options {
            outdir: Some(b"/tmp/x".to_vec()),
            ..Options::default()
        };
        assert!(!is_live_run(&outdir));
    }

    #[test]
    fn writable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sub/k.cache");
        assert_eq!(check_private(&file), Ok(()), "the directory is created");
        let mode = std::fs::metadata(tmp.path().join("sub")).unwrap().mode();
        assert_eq!(mode & 0o022, 0);
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            check_private(&file),
            Err(NotPrivate::Writable { .. })
        ));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(
            tmp.path().join("sub"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(matches!(
            check_private(&file),
            Err(NotPrivate::Writable { .. })
        ));
    }

    #[test]
    fn a_symlinked_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("real"), b"").unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("k.cache")).unwrap();
        assert!(matches!(
            check_private(&tmp.path().join("k.cache")),
            Err(NotPrivate::WrongType { dir: false, .. })
        ));
    }
}
