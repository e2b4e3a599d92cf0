//! A clap description of depmod-rs's command line, for the manual page and shell completions.
//!
//! The real parser is [`depmod_rs::cli`], a `getopt_long` of its own (clap cannot reproduce kmod's
//! option handling). This description mirrors it option for option; a test checks that every
//! option the parser accepts, in every `--compat` mode, appears here, so the two cannot drift.

use clap::{Arg, ArgAction, Command, ValueHint};

/// What depmod does, for the manual page.
const LONG_ABOUT: &str = "\
depmod-rs reads a tree of kernel modules (/lib/modules/VERSION by default), finds the symbols \
each module exports and uses, and writes the index files that modprobe, modinfo and udev read: \
modules.dep and modules.dep.bin (what each module needs loaded first), modules.alias and \
modules.alias.bin (device, file system and other aliases), modules.softdep, modules.weakdep, \
modules.symbols and modules.symbols.bin (symbol_request() aliases), modules.builtin.bin, \
modules.builtin.alias.bin and modules.devname. Every file is byte for byte what kmod's depmod \
writes for the same input: kmod 34 by default, an earlier release with --compat.

It is a drop-in replacement: installed as depmod (a copy or a symlink) it accepts the same \
options, prints the same messages with the same depmod: prefix, and exits with the same status \
(0 on success, including modules that could not be read; 1 on bad usage, a dependency cycle or \
a fatal error).

With no module files after VERSION, the whole tree is scanned (-a is implied). With module \
files, only those are indexed (each must be an absolute path). Configuration is read from \
depmod.d directories (/etc/depmod.d, /run/depmod.d, /usr/local/lib/depmod.d, /usr/lib/depmod.d, \
/lib/depmod.d) unless -C is given: search, override, exclude and external lines decide which of \
several modules with the same name wins.

Every file is written to a temporary name and renamed into place, so readers never see a \
half-written index. A run that writes holds an advisory lock (flock) on its output directory from \
before the tree is read until its files are published: overlapping runs take turns, and the later \
one reads the final tree (with -v it says that it waits).

SYSTEM CONFIGURATION: /etc/depmod-rs.conf, or the file named by the environment variable \
DEPMOD_RS_CONFIG (empty: none), sets defaults that the command line overrides. It holds \
KEY = VALUE lines; a # at the start of a line or after a blank starts a comment. A missing file \
is no configuration. A bad line, or a file that exists but cannot be read, is an error naming the \
file and line: depmod-rs then exits with status 1, as for a bad option, and writes nothing. Keys: \
cache = DIR (or none): runs on the live system's modules (no -b, or -b /; no -o, no -m; not -n) \
keep one cache per kernel version in DIR/VERSION.cache and use it as --cache does; staging runs \
(-b DIR) never use it. The cache is used only when DIR and the file belong to the running user \
and neither group nor others can write them; otherwise it is ignored, and left alone (-v says \
why). --cache FILE overrides it. compat = auto | 30 | 31 | 32 | 33 | 34: which kmod release to \
write like; auto runs the installed kmod's --version (kmod = PATH, default /usr/bin/kmod, else \
/bin/kmod) and fails with an error when that does not name a release from 30 to 34; --compat \
overrides it. fsync = yes | no: as --fsync (which overrides no). The Debian package ships \
cache = /var/cache/depmod-rs and compat = auto.";

/// The depmod-rs command line as a clap [`Command`] (for documentation only; parse with
/// [`depmod_rs::cli::parse`]).
pub fn depmod_command() -> Command {
    let flag = |name: &'static str, short: char, help: &'static str| {
        Arg::new(name)
            .short(short)
            .long(name)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    let path = |name: &'static str, short: char, value: &'static str, help: &'static str| {
        Arg::new(name)
            .short(short)
            .long(name)
            .value_name(value)
            .action(ArgAction::Set)
            .help(help)
    };
    let deprecated = |name: &'static str, short: Option<char>| {
        let arg = Arg::new(name)
            .long(name)
            .action(ArgAction::SetTrue)
            .hide(true)
            .help(
                "Accepted and ignored with a warning under --compat 30 to 33; an error in kmod 34",
            );
        match short {
            Some(c) => arg.short(c),
            None => arg,
        }
    };
    Command::new("depmod-rs")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Generate modules.dep and the module index files, byte-identical to kmod's depmod")
        .long_about(LONG_ABOUT)
        .override_usage("depmod-rs [-aA] [OPTIONS] [VERSION] [MODULE_FILE...]")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args([
            flag("all", 'a', "Scan every module under the module directory (the default when no module files are given)"),
            flag("quick", 'A', "Do nothing if no module file is newer than modules.dep; otherwise as -a"),
            path("basedir", 'b', "DIR", "Root of the tree: read modules from DIR/lib/modules/VERSION and write the indexes there (made absolute from the current directory)")
                .value_hint(ValueHint::DirPath),
            path("moduledir", 'm', "DIR", "Module directory below the root, instead of /lib/modules (kmod 34; with --compat 30 to 33, -m is the ignored --map)")
                .value_hint(ValueHint::DirPath),
            path("outdir", 'o', "DIR", "Write the indexes under DIR/lib/modules/VERSION instead of the root (inputs are still read from the root)")
                .value_hint(ValueHint::DirPath),
            path("config", 'C', "PATH", "Read depmod.d configuration from PATH, a file or a directory, instead of the default directories (repeatable)")
                .action(ArgAction::Append)
                .value_hint(ValueHint::AnyPath),
            path("symvers", 'E', "FILE", "Check the CRCs of imported symbols against this Module.symvers (with -e, report mismatches)")
                .value_hint(ValueHint::FilePath),
            path("filesyms", 'F', "FILE", "Take the kernel's own symbols from this System.map (used when -E is not given)")
                .value_hint(ValueHint::FilePath),
            flag("errsyms", 'e', "Report symbols that neither a module nor the kernel (-E or -F) provides, and CRC mismatches"),
            flag("verbose", 'v', "Print each dependency as it is found (on stdout); -vv adds INFO, -vvv DEBUG messages")
                .action(ArgAction::Count),
            flag("show", 'n', "Write modules.dep and the other text files to stdout instead of the module directory; no .bin files")
                .visible_alias("dry-run"),
            path("symbol-prefix", 'P', "CHAR", "Ignore this one-character prefix on symbol names (architectures whose symbols start with _)"),
            flag("warn", 'w', "Warn about duplicate entries in the indexes"),
            flag("version", 'V', "Print the version (kmod's two lines, then depmod-rs's) and exit"),
            flag("help", 'h', "Print kmod's usage text followed by depmod-rs's extensions, and exit"),
            Arg::new("compat")
                .long("compat")
                .value_name("VERSION")
                .value_parser(["30", "31", "32", "33", "34"])
                .help("Behave and write exactly like kmod VERSION (30 to 34; default 34): .bin node layout, modules.weakdep, modules.order duplicates, accepted options"),
            Arg::new("gzip")
                .long("gzip")
                .action(ArgAction::SetTrue)
                .help("Treat .ko.gz files as modules, as a kmod built with zlib does (Debian's is not)"),
            Arg::new("fsync")
                .long("fsync")
                .action(ArgAction::SetTrue)
                .help("Flush each index file to disk before it replaces the old one, and the directory at the end (off by default, as in kmod; see docs/robustness.md)"),
            Arg::new("cache")
                .long("cache")
                .value_name("FILE")
                .value_hint(ValueHint::FilePath)
                .help("Keep what was read from the modules in FILE: later runs read only the modules that changed, and keep the index files when no input changed (off unless given; see docs/performance.md)"),
            deprecated("unresolved-error", Some('u')),
            deprecated("quiet", Some('q')),
            deprecated("root", Some('r')),
            deprecated("map", None),
            Arg::new("kernel-version")
                .value_name("VERSION")
                .help("Kernel version to index (default: the running kernel's, from uname); must look like N.N"),
            Arg::new("module-files")
                .value_name("MODULE_FILE")
                .num_args(0..)
                .value_hint(ValueHint::FilePath)
                .help("Index only these module files (absolute paths) instead of the whole tree"),
        ])
        .after_help(
            "Typical uses:\n  \
             depmod-rs -a                      index the running kernel's modules\n  \
             depmod-rs -a 6.1.0-13-amd64       index another installed kernel\n  \
             depmod-rs -b /tmp/staging 6.1.0   index a staging tree (initramfs builders)\n  \
             depmod-rs -ae -F System.map -b /tmp/inst 6.1.0   as kbuild's modules_install\n\n\
             Exit status: 0 on success, 1 on bad usage, a dependency cycle or a fatal error.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmod_rs::cli::accepted_options;
    use depmod_rs::compat::KmodVersion;

    #[test]
    fn every_parser_option_is_described() {
        let command = depmod_command();
        let shorts: Vec<char> = command.get_arguments().filter_map(Arg::get_short).collect();
        let longs: Vec<&str> = command
            .get_arguments()
            .flat_map(|a| {
                a.get_long()
                    .into_iter()
                    .chain(a.get_all_aliases().unwrap_or_default())
            })
            .collect();
        for version in [
            KmodVersion::V30,
            KmodVersion::V31,
            KmodVersion::V32,
            KmodVersion::V33,
            KmodVersion::V34,
        ] {
            let (parser_shorts, parser_longs) = accepted_options(version);
            for c in parser_shorts {
                assert!(
                    shorts.contains(&c),
                    "-{c} (kmod {version}) is not described"
                );
            }
            for name in parser_longs {
                assert!(
                    longs.contains(&name),
                    "--{name} (kmod {version}) is not described"
                );
            }
        }
    }

    #[test]
    fn description_has_no_options_the_parser_lacks() {
        let (mut shorts, mut longs) = accepted_options(KmodVersion::V34);
        let (shorts30, longs30) = accepted_options(KmodVersion::V30);
        shorts.extend(shorts30);
        longs.extend(longs30);
        for arg in depmod_command().get_arguments() {
            if let Some(c) = arg.get_short() {
                assert!(shorts.contains(&c), "-{c} is described but not parsed");
            }
            if let Some(name) = arg.get_long() {
                assert!(
                    longs.contains(&name),
                    "--{name} is described but not parsed"
                );
            }
        }
    }

    #[test]
    fn description_is_valid() {
        depmod_command().debug_assert();
    }
}
