//! The system configuration of depmod-rs: `/etc/depmod-rs.conf`, or the file named by
//! `DEPMOD_RS_CONFIG`.
//!
//! It sets what integrators cannot pass on the command lines they run (`depmod KVER`,
//! `depmod -a KVER`):
//!
//! | key | values | effect | command line that overrides it |
//! |---|---|---|---|
//! | `cache` | `DIR` or `none` | runs on the live system's modules keep one cache per kernel version under DIR ([`cache`]) | `--cache FILE` |
//! | `compat` | `auto` or `30`..`34` | which kmod release to write like; `auto` asks the installed kmod ([`kmod_release`]) | `--compat` |
//! | `fsync` | `yes` or `no` | as `--fsync` | `--fsync` |
//! | `kmod` | `PATH` | the kmod binary `compat = auto` asks (default `/usr/bin/kmod`, else `/bin/kmod`) | |
//!
//! A missing file is no configuration (built-in defaults: kmod 34, no cache, no fsync), as
//! is an empty `DEPMOD_RS_CONFIG`. A file that exists but cannot be read, or has a bad line,
//! is an error that names the file (and line): depmod-rs then exits with status 1, as for a
//! bad option, and writes nothing.

pub mod cache;
pub mod kmod_release;
pub mod parse;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cli::Options;
use crate::compat::KmodVersion;
pub use parse::{BadLine, Compat, LineError, Settings};

/// The configuration file read when `DEPMOD_RS_CONFIG` is not set.
pub const DEFAULT_PATH: &str = "/etc/depmod-rs.conf";
/// The environment variable naming another configuration file.
pub const PATH_VARIABLE: &str = "DEPMOD_RS_CONFIG";

/// Why the system configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A line is wrong.
    #[error("{}:{}: {}", path.display(), bad.line, bad.error)]
    Line {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong with it.
        bad: BadLine,
    },
    /// `compat = auto`, and the installed kmod's release cannot be told.
    #[error("{}: compat = auto: {error}", path.display())]
    Auto {
        /// The file.
        path: PathBuf,
        /// Why.
        error: kmod_release::ReleaseError,
    },
}

/// A configuration file and what it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it sets.
    pub settings: Settings,
}

/// The configuration file to read: `DEPMOD_RS_CONFIG` if set (none if it is empty), else
/// [`DEFAULT_PATH`].
pub fn config_path(variable: Option<OsString>) -> Option<PathBuf> {
    match variable {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(PathBuf::from(value)),
        None => Some(PathBuf::from(DEFAULT_PATH)),
    }
}

/// Reads the configuration at `path`; `Ok(None)` when there is no file there.
pub fn load(path: &Path) -> Result<Option<SystemConfig>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                reason: crate::diag::strerror(&err),
            })
        }
    };
    let text = String::from_utf8(bytes).map_err(|err| ConfigError::Read {
        path: path.to_path_buf(),
        reason: format!(
            "not UTF-8 text (at byte {})",
            err.utf8_error().valid_up_to()
        ),
    })?;
    let settings = parse::parse(&text).map_err(|bad| ConfigError::Line {
        path: path.to_path_buf(),
        bad,
    })?;
    Ok(Some(SystemConfig {
        path: path.to_path_buf(),
        settings,
    }))
}

impl SystemConfig {
    /// The options a command line starts from: the built-in defaults with this file's
    /// settings applied. `compat = auto` asks the installed kmod, unless the command line
    /// chooses a release itself (`compat_on_command_line`).
    pub fn defaults(&self, compat_on_command_line: bool) -> Result<Options, ConfigError> {
        let settings = &self.settings;
        let compat = match settings.compat {
            // The command line chooses: the installed kmod need not be asked.
            Some(Compat::Auto) if compat_on_command_line => KmodVersion::DEFAULT,
            None => KmodVersion::DEFAULT,
            Some(Compat::Release(version)) => version,
            Some(Compat::Auto) => kmod_release::installed_release(settings.kmod.as_deref())
                .map_err(|error| ConfigError::Auto {
                    path: self.path.clone(),
                    error,
                })?,
        };
        let options = Options {
            compat,
            fsync: settings.fsync.unwrap_or(false),
            cache_dir: settings.cache.clone().flatten(),
            ..Options::default()
        };
        Ok(options)
    }
}

/// The options a command line with arguments `args` starts from, from the configuration
/// file the environment names (see [`config_path`]).
pub fn command_line_defaults(args: &[Vec<u8>]) -> Result<Options, ConfigError> {
    let Some(path) = config_path(std::env::var_os(PATH_VARIABLE)) else {
        return Ok(Options::default());
    };
    match load(&path)? {
        Some(config) => config.defaults(crate::cli::compat_on_command_line(args)),
        None => Ok(Options::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_file() {
        assert_eq!(config_path(None), Some(PathBuf::from(DEFAULT_PATH)));
        assert_eq!(config_path(Some("".into())), None);
        assert_eq!(
            config_path(Some("/tmp/x.conf".into())),
            Some(PathBuf::from("/tmp/x.conf"))
        );
    }

    #[test]
    fn missing_unreadable_and_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(&tmp.path().join("none.conf")), Ok(None));
        let error = load(tmp.path()).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        let file = tmp.path().join("bad.conf");
        std::fs::write(&file, "fsync = yes\ncompat = 29\n").unwrap();
        let error = load(&file).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}:2: bad value '29' for compat: expected auto, 30, 31, 32, 33 or 34",
                file.display()
            )
        );
    }

    #[test]
    fn settings_become_defaults() {
        let config = SystemConfig {
            path: PathBuf::from("/x.conf"),
            settings: parse::parse("compat = 30\nfsync = yes\ncache = /c").unwrap(),
        };
        let options = config.defaults(false).unwrap();
        assert_eq!(options.compat, KmodVersion::V30);
        assert!(options.fsync);
        assert_eq!(options.cache_dir, Some(PathBuf::from("/c")));
        // A failing `auto` is not consulted when the command line chooses.
        let auto = SystemConfig {
            path: PathBuf::from("/x.conf"),
            settings: parse::parse("compat = auto\nkmod = /nonexistent/kmod").unwrap(),
        };
        assert!(auto.defaults(true).is_ok());
        assert!(matches!(
            auto.defaults(false),
            Err(ConfigError::Auto { .. })
        ));
    }
}
