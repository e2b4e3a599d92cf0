//! depmod.d configuration (spec §2): which files are read, and what their lines mean.
//!
//! Parsing is split from I/O: [`parse_config_text`] turns one file's bytes into directives and
//! diagnostics; [`load_config`] finds the files, sorts them by basename and folds them into a
//! [`Config`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::bmsg;
use crate::compat::KmodVersion;
use crate::diag::{strerror, Diag};

/// One entry of the `search` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchEntry {
    /// `built-in`: the priority of modules no other entry matches.
    BuiltIn,
    /// `external`: the priority of modules in `external` directories.
    External,
    /// A subdirectory of the module directory.
    Path(Vec<u8>),
}

/// The folded configuration. Lists are in kmod's order: each directive pushes onto the head, so
/// they are in *reverse* textual order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The search list (head first).
    pub search: Vec<SearchEntry>,
    /// Override entries `SUBDIR/MODNAME` (head first).
    pub overrides: Vec<Vec<u8>>,
    /// External directories (head first).
    pub externals: Vec<Vec<u8>>,
    /// Names never entered or read during the walk.
    pub excludes: Vec<Vec<u8>>,
}

/// The default configuration directories for `version` (§2.1).
pub fn default_config_dirs(version: KmodVersion) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if version.has_distconfdir() {
        dirs.push(PathBuf::from("/usr/lib/depmod.d"));
    }
    dirs.push(PathBuf::from("/lib/depmod.d"));
    dirs
}

/// Join physical lines into logical lines as kmod's `freadline_wrapped` does. Each item is the
/// logical line (cut at its first NUL, as C sees it) and the physical line number it ended on.
/// kmod 34's rules; see `logical_lines_for`.
pub fn logical_lines(data: &[u8]) -> Vec<(Vec<u8>, u32)> {
    logical_lines_for(data, KmodVersion::DEFAULT)
}

/// [`logical_lines`] under the rules of `version`, which differ only for a backslash at the
/// very end of the data ([`KmodVersion::drops_backslash_at_eof`]).
pub fn logical_lines_for(data: &[u8], version: KmodVersion) -> Vec<(Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut physical: u32 = 0;
    let mut pending: u32 = 0;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        i += 1;
        match b {
            b'\n' => {
                pending += 1;
                physical += pending;
                pending = 0;
                out.push((c_string(&line), physical));
                line.clear();
            }
            b'\\' => match data.get(i) {
                Some(b'\n') => {
                    pending += 1;
                    i += 1;
                }
                None if version.drops_backslash_at_eof() => {}
                // `(char)EOF`
                None => line.push(0xFF),
                Some(&next) => {
                    line.push(next);
                    i += 1;
                }
            },
            other => line.push(other),
        }
    }
    if !line.is_empty() {
        physical += pending + 1;
        out.push((c_string(&line), physical));
    }
    out
}

fn c_string(bytes: &[u8]) -> Vec<u8> {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => bytes[..nul].to_vec(),
        None => bytes.to_vec(),
    }
}

/// Whether a kernel-version pattern from `override`/`external` matches `kversion`, by kmod's
/// rule (`cfg_kernel_matches`): the literal `*` matches everything; anything else is a POSIX
/// extended regex (`REG_EXTENDED | REG_NOSUB`, compiled and run by the C library's
/// `regcomp`/`regexec`, see `posix_regex`), matched unanchored against the kernel
/// version as given on the command line. A pattern that does not compile never matches.
/// Both strings end at their first NUL byte, as C strings do.
pub fn kernel_matches(pattern: &[u8], kversion: &[u8]) -> bool {
    let pattern = pattern.split(|&b| b == 0).next().unwrap_or_default();
    pattern == b"*" || crate::posix_regex::matches(pattern, kversion)
}

/// Parse one config file's contents into `config`, reporting bad lines like kmod.
/// `file_name` is the path as kmod prints it. kmod 34's rules; see `parse_config_text_for`.
pub fn parse_config_text(
    config: &mut Config,
    data: &[u8],
    file_name: &[u8],
    kversion: &[u8],
    diag: &Diag,
) {
    parse_config_text_for(
        config,
        data,
        file_name,
        kversion,
        KmodVersion::DEFAULT,
        diag,
    );
}

/// [`parse_config_text`] under the rules of `version`.
pub fn parse_config_text_for(
    config: &mut Config,
    data: &[u8],
    file_name: &[u8],
    kversion: &[u8],
    version: KmodVersion,
    diag: &Diag,
) {
    // The lists are kept head first, and every new entry goes to the head. Inserting at index 0
    // is quadratic on a config with millions of entries, so work on reversed lists (new
    // entries pushed at the end) and restore the order afterwards.
    reverse_lists(config);
    parse_config_lines(config, data, file_name, kversion, version, diag);
    reverse_lists(config);
}

/// Reverses every list of `config` (head first ⇄ head last).
fn reverse_lists(config: &mut Config) {
    config.search.reverse();
    config.overrides.reverse();
    config.externals.reverse();
    config.excludes.reverse();
}

/// [`parse_config_text`] on lists held in reverse (head last).
fn parse_config_lines(
    config: &mut Config,
    data: &[u8],
    file_name: &[u8],
    kversion: &[u8],
    version: KmodVersion,
    diag: &Diag,
) {
    for (line, line_no) in logical_lines_for(data, version) {
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let mut tokens = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|t| !t.is_empty());
        let Some(cmd) = tokens.next() else { continue };
        let where_ = bmsg!(file_name, b":", line_no.to_string());
        let bad_line = || {
            diag.error(bmsg!(
                where_,
                ": ignoring bad line starting with '",
                cmd,
                "'"
            ));
        };
        match cmd {
            b"search" => {
                for token in tokens {
                    let entry = match token {
                        b"built-in" => SearchEntry::BuiltIn,
                        b"external" => SearchEntry::External,
                        path => SearchEntry::Path(path.to_vec()),
                    };
                    config.search.push(entry);
                }
            }
            b"override" => {
                let (Some(modname), Some(kver), Some(subdir)) =
                    (tokens.next(), tokens.next(), tokens.next())
                else {
                    bad_line();
                    continue;
                };
                if !kernel_matches(kver, kversion) {
                    diag.info(bmsg!(where_, ": override kernel did not match ", kver));
                    continue;
                }
                config.overrides.push(bmsg!(subdir, b"/", modname));
            }
            b"external" => {
                let (Some(kver), Some(dir)) = (tokens.next(), tokens.next()) else {
                    bad_line();
                    continue;
                };
                if !kernel_matches(kver, kversion) {
                    diag.info(bmsg!(where_, ": external directory did not match ", kver));
                    continue;
                }
                config.externals.push(dir.to_vec());
            }
            b"exclude" => {
                for token in tokens {
                    config.excludes.push(token.to_vec());
                }
            }
            b"include" | b"make_map_files" => {
                diag.info(bmsg!(where_, ": command ", cmd, " not implemented yet"));
            }
            _ => bad_line(),
        }
    }
}

/// A config file chosen for reading, with the basename it is sorted and deduplicated by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The basename used for ordering.
    pub name: Vec<u8>,
    /// The path opened (and printed in messages).
    pub path: PathBuf,
}

fn insert_sorted(files: &mut Vec<ConfigFile>, file: ConfigFile) {
    match files.binary_search_by(|f| f.name.as_slice().cmp(&file.name)) {
        Ok(_) => {} // an earlier search path already supplied this basename
        Err(pos) => files.insert(pos, file),
    }
}

/// Collect the config files from `paths` (files or directories) in kmod's order (§2.1).
pub fn list_config_files(paths: &[PathBuf], diag: &Diag) -> Vec<ConfigFile> {
    let mut files = Vec::new();
    for path in paths {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if !meta.is_dir() {
            let bytes = path.as_os_str().as_bytes();
            let name = match bytes.iter().rposition(|&b| b == b'/') {
                Some(slash) => bytes[slash + 1..].to_vec(),
                None => bytes.to_vec(),
            };
            insert_sorted(
                &mut files,
                ConfigFile {
                    name,
                    path: path.clone(),
                },
            );
            continue;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(err) => {
                diag.error(bmsg!(
                    "files list ",
                    path.as_os_str().as_bytes(),
                    ": ",
                    strerror(&err)
                ));
                continue;
            }
        };
        let dir = path.as_os_str().as_bytes();
        for entry in entries.flatten() {
            let name = entry.file_name().into_vec();
            if name.first() == Some(&b'.') {
                continue;
            }
            if name.len() < 6 || !name.ends_with(b".conf") {
                diag.info(bmsg!("All cfg files need .conf: ", dir, "/", name));
                continue;
            }
            let full = path.join(OsStr::from_bytes(&name));
            match std::fs::metadata(&full) {
                Err(_) => {
                    diag.error(bmsg!("Cannot stat directory entry: ", dir, name));
                    continue;
                }
                Ok(meta) if meta.is_dir() => {
                    diag.error(bmsg!(
                        "Directories inside directories are not supported: ",
                        dir,
                        "/",
                        name
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            let joined = PathBuf::from(OsString::from_vec(bmsg!(dir, "/", name)));
            insert_sorted(&mut files, ConfigFile { name, path: joined });
        }
    }
    files
}

/// Read and fold every config file from `paths` (§2) under the rules of `version`, then add
/// the implicit `updates` search entry when no `search` line was seen.
pub fn load_config(
    paths: &[PathBuf],
    kversion: &[u8],
    version: KmodVersion,
    diag: &Diag,
) -> Config {
    let mut config = Config::default();
    for file in list_config_files(paths, diag) {
        let shown = file.path.as_os_str().as_bytes();
        match std::fs::read(&file.path) {
            Ok(data) => parse_config_text_for(&mut config, &data, shown, kversion, version, diag),
            Err(err) => diag.error(bmsg!("file parse ", shown, ": ", strerror(&err))),
        }
    }
    if config.search.is_empty() {
        config.search.push(SearchEntry::Path(b"updates".to_vec()));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, kversion: &str) -> Config {
        let mut config = Config::default();
        parse_config_text(
            &mut config,
            text.as_bytes(),
            b"test.conf",
            kversion.as_bytes(),
            &Diag::new(0),
        );
        config
    }

    #[test]
    fn search_lines_push_onto_the_head() {
        let config = parse("search updates built-in\nsearch extra external\n", "6.1.0");
        assert_eq!(
            config.search,
            vec![
                SearchEntry::External,
                SearchEntry::Path(b"extra".to_vec()),
                SearchEntry::BuiltIn,
                SearchEntry::Path(b"updates".to_vec()),
            ]
        );
    }

    #[test]
    fn override_and_external_match_unanchored_regex() {
        let config = parse(
            "override mod-simple 4.4 override\nexternal 9\\.9 /ext\nexternal * /any\n",
            "5.4.4-x",
        );
        assert_eq!(config.overrides, vec![b"override/mod-simple".to_vec()]);
        assert_eq!(config.externals, vec![b"/any".to_vec()]);
    }

    #[test]
    fn continuation_and_line_numbers() {
        let lines = logical_lines(b"search a \\\n b\n\n# c\nx\\y\n");
        assert_eq!(
            lines,
            vec![
                (b"search a  b".to_vec(), 2),
                (b"".to_vec(), 3),
                (b"# c".to_vec(), 4),
                (b"xy".to_vec(), 5)
            ]
        );
        assert_eq!(logical_lines(b"tail"), vec![(b"tail".to_vec(), 1)]);
    }

    #[test]
    fn backslash_at_end_of_file() {
        // kmod 34 drops it; kmod 30 stores the EOF after it as 0xFF.
        assert_eq!(
            logical_lines(b"a\nx\\"),
            vec![(b"a".to_vec(), 1), (b"x".to_vec(), 2)]
        );
        assert_eq!(logical_lines(b"a\n\\"), vec![(b"a".to_vec(), 1)]);
        assert_eq!(
            logical_lines_for(b"a\nx\\", KmodVersion::V30),
            vec![(b"a".to_vec(), 1), (b"x\xff".to_vec(), 2)]
        );
        assert_eq!(
            logical_lines_for(b"a\n\\", KmodVersion::V30),
            vec![(b"a".to_vec(), 1), (b"\xff".to_vec(), 2)]
        );
    }

    #[test]
    fn kernel_patterns() {
        assert!(kernel_matches(b"*", b"anything"));
        assert!(kernel_matches(b"^6\\.1", b"6.1.0-13-amd64"));
        assert!(!kernel_matches(b"^6\\.2", b"6.1.0-13-amd64"));
        // An invalid regex never matches.
        assert!(!kernel_matches(b"(", b"("));
        // glibc accepts `{,n}` as `{0,n}`; the pattern from issue 16.
        assert!(kernel_matches(b"6.1.0-56-amd6{,3}4", b"6.1.0-56-amd64"));
        // C strings: `*` followed by a NUL is the old-style wildcard.
        assert!(kernel_matches(b"*\0(", b"x"));
        assert!(kernel_matches(b"*", b""));
    }

    #[test]
    fn a_file_path_is_listed_under_its_basename() {
        let tmp = std::env::temp_dir().join(format!("depmod-rs-cfgfile-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("custom.txt");
        std::fs::write(&file, "search x\n").unwrap();
        let files = list_config_files(&[file.clone(), tmp.join("missing")], &Diag::new(0));
        assert_eq!(
            files,
            vec![ConfigFile {
                name: b"custom.txt".to_vec(),
                path: file
            }]
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn excludes_and_bad_lines() {
        let config = parse(
            "exclude a b\n  # indented comment is a bad line\nbogus\n",
            "1.0",
        );
        assert_eq!(config.excludes, vec![b"b".to_vec(), b"a".to_vec()]);
        assert!(config.search.is_empty());
        let config = parse("override onlyone\n", "1.0");
        assert!(config.overrides.is_empty());
    }

    #[test]
    fn files_sorted_by_basename_first_dir_wins() {
        let tmp = std::env::temp_dir().join(format!("depmod-rs-cfg-{}", std::process::id()));
        let (one, two) = (tmp.join("one"), tmp.join("two"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(&two).unwrap();
        std::fs::write(one.join("b.conf"), "search one\n").unwrap();
        std::fs::write(two.join("b.conf"), "search two\n").unwrap();
        std::fs::write(two.join("a.conf"), "search a\n").unwrap();
        std::fs::write(two.join("skip.txt"), "search skip\n").unwrap();
        let files = list_config_files(&[one.clone(), two.clone()], &Diag::new(0));
        let names: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(names, vec![two.join("a.conf"), one.join("b.conf")]);
        let config = load_config(&[one, two], b"1.0", KmodVersion::DEFAULT, &Diag::new(0));
        assert_eq!(
            config.search,
            vec![
                SearchEntry::Path(b"one".to_vec()),
                SearchEntry::Path(b"a".to_vec())
            ]
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
