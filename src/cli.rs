//! depmod's command line, parsed the way kmod's glibc `getopt_long` loop sees it (spec §1).
//!
//! A derive-based parser cannot reproduce what scripts rely on here: options are acted on in
//! order (`-h` before a bad option prints help, after it fails), long names may be abbreviated
//! to any unique prefix, the error texts are glibc's and the exit status is 1. So this module
//! is a small `getopt_long` of its own, driven by a table per kmod release.
//!
//! Extensions (long only, never abbreviated so kmod's own abbreviations keep working):
//! `--compat VERSION` and `--gzip`.

use crate::compat::KmodVersion;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run depmod.
    Run(Options),
    /// `-h`: print help (for the given release's option set), exit 0.
    Help(KmodVersion),
    /// `-V`: print the version, exit 0.
    Version(Options),
    /// Bad usage: the messages were collected; exit 1.
    Fail(Vec<Vec<u8>>),
}

/// The options of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `-a`
    pub all: bool,
    /// `-A`
    pub quick: bool,
    /// `-b DIR` (as given; made absolute later).
    pub basedir: Option<Vec<u8>>,
    /// `-m DIR` (kmod 34).
    pub moduledir: Option<Vec<u8>>,
    /// `-o DIR`.
    pub outdir: Option<Vec<u8>>,
    /// `-C PATH`, repeatable.
    pub config: Vec<Vec<u8>>,
    /// `-E FILE`.
    pub symvers: Option<Vec<u8>>,
    /// `-F FILE`.
    pub filesyms: Option<Vec<u8>>,
    /// `-e`.
    pub errsyms: bool,
    /// Number of `-v`.
    pub verbose: u32,
    /// `-n`.
    pub dry_run: bool,
    /// `-P C`.
    pub symbol_prefix: Option<u8>,
    /// `-w`.
    pub warn: bool,
    /// `--compat VERSION`.
    pub compat: KmodVersion,
    /// `--gzip`: treat `.ko.gz` files as modules.
    pub gzip: bool,
    /// `--cache FILE`: read and update a module metadata cache there (see `docs/architecture.md`).
    pub cache: Option<Vec<u8>>,
    /// `--fsync`: flush each index to disk before its rename, and the directory after.
    pub fsync: bool,
    /// `cache = DIR` of the system configuration: runs on the live system keep one cache
    /// per kernel version there (see [`crate::sysconfig::cache`]); `--cache` wins.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Deprecated options seen (kmod 30 warns about them), as printed: `-u`, `--quiet`, ...
    pub deprecated: Vec<Vec<u8>>,
    /// Non-option arguments: the kernel version, then module files.
    pub positionals: Vec<Vec<u8>>,
}

impl Default for KmodVersion {
    fn default() -> Self {
        KmodVersion::DEFAULT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HasArg {
    No,
    Required,
}

#[derive(Debug, Clone, Copy)]
struct LongOpt {
    name: &'static str,
    has_arg: HasArg,
    val: char,
}

const fn long(name: &'static str, has_arg: HasArg, val: char) -> LongOpt {
    LongOpt { name, has_arg, val }
}

/// Our extension options; matched by exact name only. `'\u{1}'` = compat, `'\u{2}'` = gzip,
/// `'\u{3}'` = cache, `'\u{4}'` = fsync.
const EXTENSIONS: [LongOpt; 4] = [
    long("compat", HasArg::Required, '\u{1}'),
    long("gzip", HasArg::No, '\u{2}'),
    long("cache", HasArg::Required, '\u{3}'),
    long("fsync", HasArg::No, '\u{4}'),
];

fn long_table(version: KmodVersion) -> Vec<LongOpt> {
    use HasArg::*;
    if version.has_moduledir() {
        vec![
            long("all", No, 'a'),
            long("quick", No, 'A'),
            long("basedir", Required, 'b'),
            long("moduledir", Required, 'm'),
            long("outdir", Required, 'o'),
            long("config", Required, 'C'),
            long("symvers", Required, 'E'),
            long("filesyms", Required, 'F'),
            long("errsyms", No, 'e'),
            long("verbose", No, 'v'),
            long("show", No, 'n'),
            long("dry-run", No, 'n'),
            long("symbol-prefix", Required, 'P'),
            long("warn", No, 'w'),
            long("version", No, 'V'),
            long("help", No, 'h'),
        ]
    } else {
        let mut table = vec![
            long("all", No, 'a'),
            long("quick", No, 'A'),
            long("basedir", Required, 'b'),
        ];
        // kmod 30 has no --outdir; depmod-rs keeps it as an extension in every mode.
        table.push(long("outdir", Required, 'o'));
        table.extend([
            long("config", Required, 'C'),
            long("symvers", Required, 'E'),
            long("filesyms", Required, 'F'),
            long("errsyms", No, 'e'),
            long("unresolved-error", No, 'u'),
            long("quiet", No, 'q'),
            long("root", No, 'r'),
            long("verbose", No, 'v'),
            long("show", No, 'n'),
            long("dry-run", No, 'n'),
            long("symbol-prefix", Required, 'P'),
            long("warn", No, 'w'),
            long("map", No, 'm'),
            long("version", No, 'V'),
            long("help", No, 'h'),
        ]);
        table
    }
}

fn short_spec(version: KmodVersion) -> &'static str {
    if version.has_moduledir() {
        "aAb:m:o:C:E:F:evnP:wVh"
    } else {
        "aAb:o:C:E:F:euqrvnP:wmVh"
    }
}

/// Every option the parser accepts for `version`: short option letters and long names
/// (including the extensions). Used to keep the documentation in step with the parser.
pub fn accepted_options(version: KmodVersion) -> (Vec<char>, Vec<&'static str>) {
    let shorts = short_spec(version).chars().filter(|&c| c != ':').collect();
    let longs = long_table(version)
        .iter()
        .chain(EXTENSIONS.iter())
        .map(|o| o.name)
        .collect();
    (shorts, longs)
}

fn short_has_arg(spec: &str, c: u8) -> Option<HasArg> {
    let bytes = spec.as_bytes();
    let pos = bytes.iter().position(|&b| b == c && b != b':')?;
    Some(if bytes.get(pos + 1) == Some(&b':') {
        HasArg::Required
    } else {
        HasArg::No
    })
}

/// Whether the command line chooses a kmod release with a valid `--compat`.
pub fn compat_on_command_line(args: &[Vec<u8>]) -> bool {
    prescan_compat(args).is_some()
}

/// Find `--compat` before the real parse: it decides which option table applies. Invalid
/// values are reported by the real parse.
fn prescan_compat(args: &[Vec<u8>]) -> Option<KmodVersion> {
    let mut version = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == b"--" {
            break;
        }
        if let Some(value) = arg.strip_prefix(b"--compat=") {
            if let Some(v) = parse_compat(value) {
                version = Some(v);
            }
        } else if arg == b"--compat" {
            if let Some(v) = args.get(i + 1).and_then(|v| parse_compat(v)) {
                version = Some(v);
            }
            i += 1;
        }
        i += 1;
    }
    version
}

fn parse_compat(value: &[u8]) -> Option<KmodVersion> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Parse `args` (without `argv[0]`); `argv0` prefixes getopt's messages as glibc does.
pub fn parse(argv0: &[u8], args: &[Vec<u8>]) -> Command {
    parse_with(argv0, args, Options::default())
}

/// [`parse`], starting from `defaults` (the system configuration's settings, see
/// [`crate::sysconfig`]) instead of the built-in defaults: the command line overrides them.
/// Their `compat` also decides which option table applies, unless `--compat` is given.
pub fn parse_with(argv0: &[u8], args: &[Vec<u8>], defaults: Options) -> Command {
    let version = prescan_compat(args).unwrap_or(defaults.compat);
    let table = long_table(version);
    let spec = short_spec(version);
    let mut options = Options {
        compat: version,
        ..defaults
    };
    let fail = |msg: Vec<u8>| Command::Fail(vec![msg]);
    let getopt_msg = |text: &[u8]| -> Vec<u8> {
        let mut m = argv0.to_vec();
        m.extend_from_slice(b": ");
        m.extend_from_slice(text);
        m
    };

    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == b"--" {
            options.positionals.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix(b"--") {
            let (name, inline) = match body.iter().position(|&b| b == b'=') {
                Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
                None => (body, None),
            };
            let found = match EXTENSIONS.iter().find(|o| o.name.as_bytes() == name) {
                Some(o) => *o,
                None => match lookup_long(&table, name) {
                    Ok(o) => o,
                    Err(LongLookup::Unknown) => {
                        return fail(getopt_msg(
                            &[b"unrecognized option '", arg.as_slice(), b"'"].concat(),
                        ));
                    }
                    Err(LongLookup::Ambiguous(names)) => {
                        let mut text = [
                            b"option '",
                            arg.as_slice(),
                            b"' is ambiguous; possibilities:",
                        ]
                        .concat();
                        for n in names {
                            text.extend_from_slice(format!(" '--{n}'").as_bytes());
                        }
                        return fail(getopt_msg(&text));
                    }
                },
            };
            let value = match (found.has_arg, inline) {
                (HasArg::No, Some(_)) => {
                    return fail(getopt_msg(
                        format!("option '--{}' doesn't allow an argument", found.name).as_bytes(),
                    ));
                }
                (HasArg::No, None) => None,
                (HasArg::Required, Some(v)) => Some(v.to_vec()),
                (HasArg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => {
                        return fail(getopt_msg(
                            format!("option '--{}' requires an argument", found.name).as_bytes(),
                        ));
                    }
                },
            };
            let shown = format!("--{}", found.name).into_bytes();
            if let Some(done) = apply(&mut options, found.val, value, shown) {
                return done;
            }
            continue;
        }
        if arg.len() > 1 && arg[0] == b'-' {
            let mut j = 1;
            while j < arg.len() {
                let c = arg[j];
                j += 1;
                let Some(has_arg) = short_has_arg(spec, c) else {
                    return fail(getopt_msg(
                        &[b"invalid option -- '", &[c][..], b"'"].concat(),
                    ));
                };
                let value = match has_arg {
                    HasArg::No => None,
                    HasArg::Required if j < arg.len() => {
                        let v = arg[j..].to_vec();
                        j = arg.len();
                        Some(v)
                    }
                    HasArg::Required => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => {
                            return fail(getopt_msg(
                                &[b"option requires an argument -- '", &[c][..], b"'"].concat(),
                            ));
                        }
                    },
                };
                if let Some(done) = apply(&mut options, c as char, value, vec![b'-', c]) {
                    return done;
                }
            }
            continue;
        }
        options.positionals.push(arg.clone());
    }
    Command::Run(options)
}

enum LongLookup {
    Unknown,
    Ambiguous(Vec<&'static str>),
}

fn lookup_long(table: &[LongOpt], name: &[u8]) -> Result<LongOpt, LongLookup> {
    if let Some(exact) = table.iter().find(|o| o.name.as_bytes() == name) {
        return Ok(*exact);
    }
    let matches: Vec<&LongOpt> = table
        .iter()
        .filter(|o| !name.is_empty() && o.name.as_bytes().starts_with(name))
        .collect();
    match matches.as_slice() {
        [] => Err(LongLookup::Unknown),
        [first, rest @ ..] => {
            if rest
                .iter()
                .all(|o| o.val == first.val && o.has_arg == first.has_arg)
            {
                Ok(**first)
            } else {
                Err(LongLookup::Ambiguous(
                    matches.iter().map(|o| o.name).collect(),
                ))
            }
        }
    }
}

/// Apply one option; returns a final command for `-h`, `-V` and errors.
fn apply(
    options: &mut Options,
    val: char,
    value: Option<Vec<u8>>,
    shown: Vec<u8>,
) -> Option<Command> {
    let value = value.unwrap_or_default();
    match val {
        'a' => options.all = true,
        'A' => options.quick = true,
        'b' => options.basedir = Some(value),
        'm' if options.compat.has_moduledir() => options.moduledir = Some(value),
        'o' => options.outdir = Some(value),
        'C' => options.config.push(value),
        'E' => options.symvers = Some(value),
        'F' => options.filesyms = Some(value),
        'e' => options.errsyms = true,
        'v' => options.verbose += 1,
        'n' => options.dry_run = true,
        'P' => {
            if value.len() != 1 {
                return Some(Command::Fail(vec![
                    b"depmod: FATAL: -P only takes a single char".to_vec(),
                ]));
            }
            options.symbol_prefix = Some(value[0]);
        }
        'w' => options.warn = true,
        'h' => return Some(Command::Help(options.compat)),
        'V' => return Some(Command::Version(options.clone())),
        'u' | 'q' | 'r' | 'm' => options.deprecated.push(shown),
        '\u{1}' => match parse_compat(&value) {
            Some(v) => options.compat = v,
            None => {
                return Some(Command::Fail(vec![[
                    b"depmod: ERROR: unsupported kmod version '".as_slice(),
                    &value,
                    b"' for --compat (supported: 30, 31, 32, 33, 34)",
                ]
                .concat()]))
            }
        },
        '\u{2}' => options.gzip = true,
        '\u{3}' => options.cache = Some(value),
        '\u{4}' => options.fsync = true,
        _ => {}
    }
    None
}

/// kmod's help text for `version`, with `program` as the program name, followed by a section on
/// our extensions (kmod's lines come first and are unchanged).
pub fn help_text(version: KmodVersion, program: &str) -> String {
    let mut text = format!(
        "Usage:\n\t{program} -[aA] [options] [forced_version]\n\n\
         If no arguments (except options) are given, \"depmod -a\" is assumed\n\n\
         depmod will output a dependency list suitable for the modprobe utility.\n\n\
         Options:\n\
         \t-a, --all            Probe all modules\n\
         \t-A, --quick          Only does the work if there's a new module\n\
         \t-e, --errsyms        Report not supplied symbols\n\
         \t-n, --show           Write the dependency file on stdout only\n\
         \t-P, --symbol-prefix  Architecture symbol prefix\n\
         \t-C, --config=PATH    Read configuration from PATH\n\
         \t-v, --verbose        Enable verbose mode\n\
         \t-w, --warn           Warn on duplicates\n\
         \t-V, --version        show version\n\
         \t-h, --help           show this help\n\n\
         The following options are useful for people managing distributions:\n"
    );
    if version.has_moduledir() {
        text.push_str(
            "\t-b, --basedir=DIR    Root path (default: /).\n\
             \t-m, --moduledir=DIR  Module directory (default: /lib/modules).\n\
             \t-o, --outdir=DIR     Output root path (default: same as <basedir>).\n",
        );
    } else {
        text.push_str("\t-b, --basedir=DIR    Use an image of a module tree.\n");
    }
    text.push_str(
        "\t-F, --filesyms=FILE  Use the file instead of the\n\
         \t                     current kernel symbols.\n\
         \t-E, --symvers=FILE   Use Module.symvers file to check\n\
         \t                     symbol versions.\n",
    );
    text.push_str(
        "\ndepmod-rs extensions:\n\
         \t--compat=VERSION     Behave and write like kmod VERSION (30-34, default 34).\n\
         \t--gzip               Treat .ko.gz files as modules (kmod built with zlib).\n\
         \t--cache=FILE         Keep what was read from the modules in FILE: later runs\n\
         \t                     read only changed modules, and keep the index files\n\
         \t                     when no input changed (off unless given).\n\
         \t--fsync              Flush each index to disk before it replaces the old one.\n\n\
         Writes modules.dep, modules.alias, modules.softdep, modules.weakdep (kmod 33+),\n\
         modules.symbols, modules.devname and the .bin indexes into\n\
         <outdir or basedir>/<moduledir>/<version>, each byte-identical to kmod's.\n\
         Exit status: 0 on success (unreadable modules are reported and skipped),\n\
         1 on bad usage, a dependency cycle or a fatal error.\n\
         Manual: depmod-rs(8).\n",
    );
    text
}

/// The `-V` text: kmod's two lines (so scripts parsing them keep working), then our own.
pub fn version_text(options: &Options) -> String {
    let zlib = if options.gzip { "+ZLIB" } else { "-ZLIB" };
    let (release, features) = match options.compat {
        KmodVersion::V30 => ("30", format!("+ZSTD +XZ {zlib} +LIBCRYPTO -EXPERIMENTAL")),
        KmodVersion::V34 => ("34.2", format!("+ZSTD +XZ {zlib} +OPENSSL")),
        other => (
            match other {
                KmodVersion::V31 => "31",
                KmodVersion::V32 => "32",
                _ => "33",
            },
            format!("+ZSTD +XZ {zlib} +OPENSSL"),
        ),
    };
    format!(
        "kmod version {release}\n{features}\ndepmod-rs {} (output of kmod {release})\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn run(list: &[&str]) -> Options {
        match parse(b"depmod", &args(list)) {
            Command::Run(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn failure(list: &[&str]) -> String {
        match parse(b"depmod", &args(list)) {
            Command::Fail(m) => String::from_utf8(m.concat()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bundled_and_attached_arguments() {
        let o = run(&[
            "-ae",
            "-Ffile",
            "-C",
            "a",
            "-Cb",
            "--basedir=x",
            "6.1.0",
            "-v",
            "-vv",
        ]);
        assert!(o.all && o.errsyms);
        assert_eq!(o.filesyms.as_deref(), Some(&b"file"[..]));
        assert_eq!(o.config, args(&["a", "b"]));
        assert_eq!(o.basedir.as_deref(), Some(&b"x"[..]));
        assert_eq!(o.positionals, args(&["6.1.0"]));
        assert_eq!(o.verbose, 3);
    }

    #[test]
    fn glibc_messages() {
        assert_eq!(failure(&["-x"]), "depmod: invalid option -- 'x'");
        assert_eq!(failure(&["--foo"]), "depmod: unrecognized option '--foo'");
        assert_eq!(
            failure(&["-b"]),
            "depmod: option requires an argument -- 'b'"
        );
        assert_eq!(
            failure(&["--basedir"]),
            "depmod: option '--basedir' requires an argument"
        );
        assert_eq!(
            failure(&["--s"]),
            "depmod: option '--s' is ambiguous; possibilities: '--symvers' '--show' '--symbol-prefix'"
        );
        assert_eq!(
            failure(&["--all=3"]),
            "depmod: option '--all' doesn't allow an argument"
        );
        assert_eq!(
            failure(&["-P", "ab"]),
            "depmod: FATAL: -P only takes a single char"
        );
    }

    #[test]
    fn options_act_in_order() {
        assert!(matches!(
            parse(b"depmod", &args(&["-h", "-x"])),
            Command::Help(_)
        ));
        assert!(matches!(
            parse(b"depmod", &args(&["-x", "-h"])),
            Command::Fail(_)
        ));
        // kmod's own abbreviations keep working despite the --compat extension.
        assert_eq!(run(&["--c", "x"]).config, args(&["x"]));
        assert!(run(&["--dry"]).dry_run);
    }

    #[test]
    fn compat_30_option_set() {
        let o = run(&["--compat", "30", "-m", "-u", "--quiet"]);
        assert_eq!(o.compat, KmodVersion::V30);
        assert_eq!(o.moduledir, None);
        assert_eq!(o.deprecated, args(&["-m", "-u", "--quiet"]));
        assert_eq!(failure(&["-u"]), "depmod: invalid option -- 'u'");
        assert_eq!(
            run(&["-m", "/foo"]).moduledir.as_deref(),
            Some(&b"/foo"[..])
        );
    }

    #[test]
    fn defaults_are_overridden_by_the_command_line() {
        let defaults = Options {
            compat: KmodVersion::V30,
            fsync: false,
            ..Options::default()
        };
        let parsed = |list: &[&str]| match parse_with(b"depmod", &args(list), defaults.clone()) {
            Command::Run(o) => o,
            other => panic!("{other:?}"),
        };
        let o = parsed(&["-m"]);
        assert_eq!((o.compat, o.deprecated), (KmodVersion::V30, args(&["-m"])));
        let o = parsed(&["--compat", "34", "--fsync", "-m", "/x"]);
        assert_eq!(o.compat, KmodVersion::V34);
        assert!(o.fsync);
        assert_eq!(o.moduledir.as_deref(), Some(&b"/x"[..]));
        assert!(compat_on_command_line(&args(&["--compat=31"])));
        assert!(!compat_on_command_line(&args(&["--compat=29", "-a"])));
    }

    #[test]
    fn double_dash_ends_options() {
        assert_eq!(run(&["--", "-a"]).positionals, args(&["-a"]));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any argument list parses to some command without panicking, and a plain run keeps
        /// every non-option argument in order.
        #[test]
        fn parse_never_panics(args in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..12), 0..8)) {
            let _ = parse(b"depmod", &args);
        }

        #[test]
        fn positionals_keep_their_order(words in proptest::collection::vec("[a-z0-9.]{1,8}", 0..5)) {
            let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            match parse(b"depmod", &args) {
                Command::Run(options) => prop_assert_eq!(options.positionals, args),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
