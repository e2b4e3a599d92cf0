//! `modindex verify DIR`: are the indexes in a module directory current?

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use depmod_rs::compat::KmodVersion;
use depmod_rs::OutputFile;

use super::diff::compare;
use super::pipeline::{run_into_scratch, PipelineOptions, TreeLocation};
use super::verify;

/// Check an index file, or whether the indexes of a module directory are current.
///
/// With a file (`modules.*.bin`): validate it structurally (exit 0 valid, 2 not); see below.
///
/// With a module directory (`/lib/modules/KVER`, or `-b ROOT KVER`): run depmod on the
/// modules there, writing into a scratch directory, and compare every file depmod writes with
/// the one in the directory. Exit 0 when all are identical (current), 1 when any differs or is
/// missing (stale; each is listed), 2 on error. For a differing `.bin` index the listing says
/// whether only the node layout differs (an index written by another kmod release) or the
/// entries do. depmod's own warnings about the tree appear on stderr.
///
/// File check: the header and every node, string, count and reference (no loops), then the
/// node order and whether the file is exactly what kmod would write for its entries.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An index file, a module directory, or (with -b) a kernel version.
    path: PathBuf,
    /// Root of the tree: PATH is then the kernel version, as for depmod -b ROOT KVER.
    #[arg(short = 'b', long = "basedir", value_name = "ROOT")]
    basedir: Option<PathBuf>,
    /// Expect the output of this kmod release (30 to 34).
    #[arg(long, default_value = "34", value_name = "VERSION")]
    compat: KmodVersion,
    /// depmod configuration file or directory (repeatable; default: depmod's own).
    #[arg(short = 'C', long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Treat .ko.gz files as modules.
    #[arg(long)]
    gzip: bool,
}

/// How one output file compares with the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Current,
    Missing,
    /// Same entries, different bytes (node layout of another release).
    LayoutOnly,
    Differs(usize),
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    if args.basedir.is_none() && args.path.is_file() {
        return verify::run(verify::Args { file: args.path });
    }
    let location = TreeLocation::from_args(args.basedir.as_deref(), &args.path, args.compat)?;
    let dir = location.module_dir();
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let options = PipelineOptions {
        compat: args.compat,
        config: args.config,
        gzip: args.gzip,
    };
    let (_scratch, expected_dir) = run_into_scratch(&location, &options)?;
    let mut stale = 0;
    for file in OutputFile::sequence(args.compat) {
        let status = check(file, &dir, &expected_dir)?;
        let text = match &status {
            Status::Current => continue,
            Status::Missing => "missing".to_string(),
            Status::LayoutOnly => {
                "differs: same entries, node layout of another kmod release".to_string()
            }
            Status::Differs(0) => "differs".to_string(),
            Status::Differs(n) => format!("differs: {n} entries added, removed or reordered"),
        };
        stale += 1;
        println!("{}: {text}", dir.join(file.name()).display());
    }
    if stale == 0 {
        println!("{}: current (kmod {} output)", dir.display(), args.compat);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{}: {stale} stale file(s); run depmod", dir.display());
        Ok(ExitCode::from(1))
    }
}

fn check(file: OutputFile, dir: &Path, expected_dir: &Path) -> Result<Status, String> {
    let expected_path = expected_dir.join(file.name());
    let expected =
        std::fs::read(&expected_path).map_err(|e| format!("{}: {e}", expected_path.display()))?;
    let actual_path = dir.join(file.name());
    let actual = match std::fs::read(&actual_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::Missing),
        Err(e) => return Err(format!("{}: {e}", actual_path.display())),
    };
    if actual == expected {
        return Ok(Status::Current);
    }
    if !file.is_index() || expected.is_empty() || actual.is_empty() {
        return Ok(Status::Differs(0));
    }
    match compare(&actual, &actual_path, &expected, &expected_path) {
        Ok(d) if d.is_empty() => Ok(Status::LayoutOnly),
        Ok(d) => Ok(Status::Differs(d.len())),
        // An unreadable index is simply not current.
        Err(_) => Ok(Status::Differs(0)),
    }
}
