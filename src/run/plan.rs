//! The plan of a run: from the options to the kernel version, the directories, the mode
//! (all modules or a file list) and the kernel's own symbols.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use super::input::os_path;
use super::Failed;
use crate::bmsg;
use crate::cli::Options;
use crate::diag::Level;
use crate::diag::{strerror, Diag};
use crate::symvers::{parse_module_symvers, parse_system_map, KernelSymbol};
use crate::sysconfig;
use std::path::PathBuf;

/// `PATH_MAX` on Linux.
const PATH_MAX: usize = 4096;

/// The directories of a run (§1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directories {
    /// `<root>/<moduledir>/<kver>`: where modules and kernel-provided inputs are read.
    pub dirname: Vec<u8>,
    /// `<outroot or root>/<moduledir>/<kver>`: where outputs are written.
    pub outdirname: Vec<u8>,
    /// Whether `-o` was given.
    pub has_outdir: bool,
}

/// Which modules a run indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every module of the tree and its external directories (`-a`, or no file given).
    All,
    /// The module files named on the command line.
    Files(Vec<Vec<u8>>),
}

/// What the options decide before any module is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// The kernel version: the first positional argument, or the running kernel's.
    pub kversion: Vec<u8>,
    /// Where the run reads and writes.
    pub dirs: Directories,
    /// Which modules it indexes.
    pub mode: Mode,
}

/// Plans the run: prints the deprecated-option warnings, checks the kernel version and
/// builds the directories. With `-A`, the mode is [`Mode::All`] (the quick check is made by
/// the caller).
pub fn plan(options: &Options, diag: &Diag) -> Result<RunPlan, Failed> {
    for shown in &options.deprecated {
        diag.warning(bmsg!("Ignored deprecated option ", shown));
    }
    let (kversion, files) = kernel_version_and_files(options, diag)?;
    let dirs = directories(options, &kversion, diag)?;
    let mode = match options.all || options.quick || files.is_empty() {
        true => Mode::All,
        false => Mode::Files(files),
    };
    Ok(RunPlan {
        kversion,
        dirs,
        mode,
    })
}

/// kmod's `sscanf(version, "%u.%u") == 2` check on the first positional argument.
pub fn is_version_number(arg: &[u8]) -> bool {
    fn number(s: &[u8]) -> Option<&[u8]> {
        let mut i = 0;
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            i += 1;
        }
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        (i > start).then(|| &s[i..])
    }
    number(arg)
        .and_then(|rest| rest.strip_prefix(b"."))
        .and_then(number)
        .is_some()
}

/// kmod's `path_make_absolute_cwd`.
fn make_absolute(path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let cwd = std::env::current_dir()
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_default();
    bmsg!(cwd, "/", path)
}

fn kernel_release() -> Option<Vec<u8>> {
    let mut release = std::fs::read("/proc/sys/kernel/osrelease").ok()?;
    while release.last() == Some(&b'\n') {
        release.pop();
    }
    Some(release)
}

/// The kernel version (first positional, checked like kmod, or the running kernel's) and the
/// module files of file-list mode (the other positionals).
fn kernel_version_and_files(
    options: &Options,
    diag: &Diag,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), Failed> {
    let mut positionals = options.positionals.iter();
    let kversion = match positionals.next() {
        Some(arg) if is_version_number(arg) => arg.clone(),
        Some(arg) => {
            diag.error(bmsg!("Bad version passed ", arg));
            return Err(Failed);
        }
        None => kernel_release().ok_or_else(|| {
            diag.fatal("uname() failed: No such file or directory");
            Failed
        })?,
    };
    Ok((kversion, positionals.cloned().collect()))
}

/// Build `dirname` and `outdirname` (§1.3).
fn directories(options: &Options, kversion: &[u8], diag: &Diag) -> Result<Directories, Failed> {
    let root = options
        .basedir
        .as_deref()
        .map(make_absolute)
        .unwrap_or_default();
    let out_root = options.outdir.as_deref().map(make_absolute);
    let moduledir: &[u8] = match (&options.moduledir, options.compat.has_moduledir()) {
        (Some(dir), true) => dir,
        _ => b"/lib/modules",
    };
    // The module directory is always relative to the root.
    let start = moduledir
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(moduledir.len());
    let moduledir = &moduledir[start..];
    let dirname = bmsg!(root, "/", moduledir, "/", kversion);
    if dirname.len() >= PATH_MAX {
        diag.error(bmsg!("Bad directory ", dirname, ": path too long"));
        return Err(Failed);
    }
    let out_base = out_root.as_deref().unwrap_or(&root);
    let outdirname = bmsg!(out_base, "/", moduledir, "/", kversion);
    if outdirname.len() >= PATH_MAX {
        diag.error(bmsg!("Bad directory ", outdirname, ": path too long"));
        return Err(Failed);
    }
    Ok(Directories {
        dirname,
        outdirname,
        has_outdir: out_root.is_some(),
    })
}

/// The kernel's own symbols from `-E`/`-F`, and whether `-e` reports unknown symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelSymbols {
    /// The symbols (`-E` wins over `-F`), if either was given.
    pub symbols: Option<Vec<KernelSymbol>>,
    /// Whether the symbols came from `-E` (`Module.symvers`, with CRCs to compare).
    pub with_crcs: bool,
    /// Whether `-e` stays on (it needs `-E` or `-F`).
    pub print_unknown: bool,
}

/// Reads `-E`/`-F`: the kernel's own symbols.
pub fn kernel_symbols(options: &Options, diag: &Diag) -> Result<KernelSymbols, Failed> {
    let source = match (&options.symvers, &options.filesyms) {
        (Some(file), _) => Some((file, true)),
        (None, Some(file)) => Some((file, false)),
        (None, None) => None,
    };
    let Some((file, is_symvers)) = source else {
        if options.errsyms {
            diag.warning("-e needs -E or -F");
        }
        return Ok(KernelSymbols::default());
    };
    let data = std::fs::read(OsStr::from_bytes(file)).map_err(|err| {
        diag.fatal(bmsg!("could not load ", file, ": ", strerror(&err)));
        Failed
    })?;
    let mut errors = Vec::new();
    let symbols = if is_symvers {
        parse_module_symvers(&data, file, options.symbol_prefix, &mut errors)
    } else {
        parse_system_map(&data, file, options.symbol_prefix, &mut errors)
    };
    for e in errors {
        diag.error(e);
    }
    Ok(KernelSymbols {
        symbols: Some(symbols),
        with_crcs: is_symvers,
        print_unknown: options.errsyms,
    })
}

/// The cache file of the run: `--cache FILE`, else, for a run on the live system that
/// writes, the configured cache directory's file for this kernel version — when it is
/// private to this user (see [`crate::sysconfig::cache`]; otherwise `-v` says why not).
pub(super) fn cache_file(options: &Options, plan: &RunPlan, diag: &Diag) -> Option<PathBuf> {
    if let Some(file) = &options.cache {
        return Some(os_path(file));
    }
    let dir = options.cache_dir.as_deref()?;
    if options.dry_run || !sysconfig::cache::is_live_run(options) {
        return None;
    }
    let file = sysconfig::cache::cache_file(dir, &plan.kversion)?;
    match sysconfig::cache::check_private(&file) {
        Ok(()) => Some(file),
        Err(why) => {
            let message = format!("not using the cache {}: {why}", file.display());
            diag.log(Level::Notice, message.as_bytes());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_check() {
        assert!(is_version_number(b"6.1.0-13-amd64"));
        assert!(is_version_number(b"4.4"));
        assert!(is_version_number(b" 4.-4"));
        assert!(!is_version_number(b"abc"));
        assert!(!is_version_number(b"4"));
        assert!(!is_version_number(b"4."));
        assert!(!is_version_number(b"4.x"));
    }
}
