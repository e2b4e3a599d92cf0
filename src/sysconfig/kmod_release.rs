//! `compat = auto`: the release of the kmod installed on the system, read from what its
//! binary says it is (`kmod --version`, whose first line is `kmod version N` or
//! `kmod version N.M`).
//!
//! The binary is asked rather than the package database, because the binary is what the
//! system's `modprobe` and `depmod` are, whatever installed it; and it is asked each time,
//! because kmod may be upgraded between runs. Nothing is assumed when it cannot be asked:
//! a missing binary, an answer that is not a version, or a release outside 30–34 is an
//! error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::compat::KmodVersion;

/// Where kmod's binary is looked for when the configuration names none: merged-/usr
/// systems first, then bookworm's `/bin`.
pub const KMOD_PATHS: [&str; 2] = ["/usr/bin/kmod", "/bin/kmod"];

/// Why the installed kmod's release is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// No kmod binary was found.
    #[error("no kmod binary found (looked for {})", KMOD_PATHS.join(" and "))]
    NotFound,
    /// The binary could not be run, or failed.
    #[error("could not run {}: {reason}", path.display())]
    Run {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Its answer does not start with `kmod version N`.
    #[error("{} --version printed no kmod version: '{answer}'", path.display())]
    NoVersion {
        /// The binary.
        path: PathBuf,
        /// Its first line.
        answer: String,
    },
    /// A release depmod-rs does not write like.
    #[error("{} is kmod {release}; depmod-rs writes what kmod 30 to 34 write (set compat to one of them)", path.display())]
    Unsupported {
        /// The binary.
        path: PathBuf,
        /// Its release.
        release: String,
    },
}

/// The first line of `kmod --version`, as a kmod release.
pub fn parse_version_line(path: &Path, output: &str) -> Result<KmodVersion, ReleaseError> {
    let first = output.lines().next().unwrap_or("").trim();
    let release = first
        .strip_prefix("kmod version ")
        .map(str::trim)
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| ReleaseError::NoVersion {
            path: path.to_path_buf(),
            answer: first.to_string(),
        })?;
    release.parse().map_err(|_| ReleaseError::Unsupported {
        path: path.to_path_buf(),
        release: release.to_string(),
    })
}

/// The release of the kmod at `path`, or of the first of [`KMOD_PATHS`] that exists.
pub fn installed_release(path: Option<&Path>) -> Result<KmodVersion, ReleaseError> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => KMOD_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(ReleaseError::NotFound)?,
    };
    let output = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|err| ReleaseError::Run {
            path: path.clone(),
            reason: crate::diag::strerror(&err),
        })?;
    if !output.status.success() {
        return Err(ReleaseError::Run {
            path,
            reason: format!("it exited with {}", output.status),
        });
    }
    parse_version_line(&path, &String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let p = Path::new("/bin/kmod");
        let v = |text| parse_version_line(p, text);
        assert_eq!(v("kmod version 30\n+ZSTD +XZ"), Ok(KmodVersion::V30));
        assert_eq!(v("kmod version 34.2\n+ZSTD"), Ok(KmodVersion::V34));
        assert!(matches!(
            v("kmod version 29"),
            Err(ReleaseError::Unsupported { .. })
        ));
        assert!(matches!(
            v("kmod version 35"),
            Err(ReleaseError::Unsupported { .. })
        ));
        assert!(matches!(v("busybox"), Err(ReleaseError::NoVersion { .. })));
        assert!(matches!(v(""), Err(ReleaseError::NoVersion { .. })));
    }

    #[test]
    fn a_missing_binary_is_an_error() {
        let missing = Path::new("/nonexistent/kmod");
        assert!(matches!(
            installed_release(Some(missing)),
            Err(ReleaseError::Run { .. })
        ));
    }
}
