//! The text of the system configuration: `KEY = VALUE` lines, blank lines and `#` comments.
//!
//! A `#` at the start of a line, or after white space, starts a comment that runs to the
//! end of the line. Keys are `cache`, `compat`, `fsync` and `kmod`; each may be given once.
//! Anything else is an error naming the line.

use std::path::PathBuf;

use crate::compat::KmodVersion;

/// The `compat` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    /// Write what the installed kmod writes (its version read from its `--version`).
    Auto,
    /// Write what this kmod release writes.
    Release(KmodVersion),
}

/// What the configuration file sets; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `cache = DIR`: one cache per kernel version under DIR, for runs on the live system.
    /// `cache = none` leaves it off.
    pub cache: Option<Option<PathBuf>>,
    /// `compat = auto | 30..34`.
    pub compat: Option<Compat>,
    /// `fsync = yes | no`.
    pub fsync: Option<bool>,
    /// `kmod = PATH`: the kmod binary whose version `compat = auto` follows.
    pub kmod: Option<PathBuf>,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not `KEY = VALUE`.
    #[error("expected KEY = VALUE, found '{0}'")]
    Syntax(String),
    /// The key is not one of ours.
    #[error("unknown key '{0}' (known keys: cache, compat, fsync, kmod)")]
    UnknownKey(String),
    /// The value does not suit the key.
    #[error("bad value '{value}' for {key}: expected {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
        /// What the key takes.
        expected: &'static str,
    },
    /// The key was already set on an earlier line.
    #[error("{key} is set twice (first on line {first})")]
    Duplicate {
        /// The key.
        key: &'static str,
        /// The line that set it first.
        first: usize,
    },
}

/// A [`LineError`] with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The line number.
    pub line: usize,
    /// What is wrong with it.
    pub error: LineError,
}

/// The line without its comment, trimmed.
fn strip_comment(line: &str) -> &str {
    let mut previous_blank = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_blank {
            return line[..at].trim();
        }
        previous_blank = c.is_whitespace();
    }
    line.trim()
}

fn absolute_path(key: &'static str, value: &str) -> Result<PathBuf, LineError> {
    match value.starts_with('/') {
        true => Ok(PathBuf::from(value)),
        false => Err(LineError::BadValue {
            key,
            value: value.to_string(),
            expected: "an absolute path",
        }),
    }
}

fn compat(value: &str) -> Result<Compat, LineError> {
    if value == "auto" {
        return Ok(Compat::Auto);
    }
    let numeric = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match value.parse::<KmodVersion>() {
        Ok(version) if numeric => Ok(Compat::Release(version)),
        _ => Err(LineError::BadValue {
            key: "compat",
            value: value.to_string(),
            expected: "auto, 30, 31, 32, 33 or 34",
        }),
    }
}

fn yes_no(key: &'static str, value: &str) -> Result<bool, LineError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(LineError::BadValue {
            key,
            value: value.to_string(),
            expected: "yes or no",
        }),
    }
}

/// Parses the configuration `text`; the first bad line is the error.
pub fn parse(text: &str) -> Result<Settings, BadLine> {
    let mut settings = Settings::default();
    let mut first_lines: Vec<(&'static str, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let bad = |error| BadLine { line, error };
        let content = strip_comment(raw);
        if content.is_empty() {
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return Err(bad(LineError::Syntax(content.to_string())));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(bad(LineError::Syntax(content.to_string())));
        }
        let key: &'static str = match key {
            "cache" => "cache",
            "compat" => "compat",
            "fsync" => "fsync",
            "kmod" => "kmod",
            other => return Err(bad(LineError::UnknownKey(other.to_string()))),
        };
        if let Some(&(_, first)) = first_lines.iter().find(|(k, _)| *k == key) {
            return Err(bad(LineError::Duplicate { key, first }));
        }
        first_lines.push((key, line));
        match key {
            "cache" if value == "none" => settings.cache = Some(None),
            "cache" => settings.cache = Some(Some(absolute_path(key, value).map_err(bad)?)),
            "compat" => settings.compat = Some(compat(value).map_err(bad)?),
            "fsync" => settings.fsync = Some(yes_no(key, value).map_err(bad)?),
            _ => settings.kmod = Some(absolute_path(key, value).map_err(bad)?),
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_comments() {
        let text = "# depmod-rs\n\ncache = /var/cache/depmod-rs  # per kernel\n\
                    compat=auto\n  fsync = no\nkmod = /bin/kmod\n";
        let settings = parse(text).unwrap();
        assert_eq!(
            settings.cache,
            Some(Some(PathBuf::from("/var/cache/depmod-rs")))
        );
        assert_eq!(settings.compat, Some(Compat::Auto));
        assert_eq!(settings.fsync, Some(false));
        assert_eq!(settings.kmod, Some(PathBuf::from("/bin/kmod")));
        assert_eq!(parse("cache = none").unwrap().cache, Some(None));
        assert_eq!(
            parse("compat = 30").unwrap().compat,
            Some(Compat::Release(KmodVersion::V30))
        );
        assert_eq!(parse("").unwrap(), Settings::default());
        // A `#` inside a word is part of it.
        assert_eq!(
            parse("cache = /a#b").unwrap().cache,
            Some(Some(PathBuf::from("/a#b")))
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        let error = |text| parse(text).unwrap_err();
        assert_eq!(
            error("fsync = yes\ncolour = blue"),
            BadLine {
                line: 2,
                error: LineError::UnknownKey("colour".into())
            }
        );
        assert_eq!(error("\n\nfsync = maybe").line, 3);
        assert!(matches!(
            error("compat = 29").error,
            LineError::BadValue { key: "compat", .. }
        ));
        assert!(matches!(
            error("compat = 34x").error,
            LineError::BadValue { .. }
        ));
        assert!(matches!(
            error("cache = var/cache").error,
            LineError::BadValue { key: "cache", .. }
        ));
        assert!(matches!(error("cache").error, LineError::Syntax(_)));
        assert!(matches!(error("cache =").error, LineError::Syntax(_)));
        assert_eq!(
            error("fsync = yes\nfsync = no").error,
            LineError::Duplicate {
                key: "fsync",
                first: 1
            }
        );
    }
}
