//! `modindex module FILE`: what depmod reads out of one module file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{read_module, ModuleError, ReadOptions};

use super::report::describe;

/// Print what depmod reads from one module: modinfo entries, exports, imports.
///
/// The file may be plain or compressed (xz, zstd, gzip), of any ELF class and byte order.
/// Exports are listed with their CRC, imports with their CRC and weak flag.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module file (.ko, .ko.xz, .ko.zst, .ko.gz).
    file: PathBuf,
    /// Read with the rules of this kmod release (30 to 34).
    #[arg(long, default_value = "34", value_name = "VERSION")]
    compat: KmodVersion,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let opts = ReadOptions {
        version: args.compat,
        ..ReadOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_module_command(&args.file, &opts, &mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Why `modindex module` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The module could not be read (kmod would print "failed to load symbols …").
    #[error("{0}")]
    Module(#[from] ModuleError),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Write(#[from] io::Error),
}

/// Reads the module at `path` and writes [`describe`]'s report to `out`.
pub fn run_module_command(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let info = read_module(path, opts)?;
    out.write_all(describe(&info).as_bytes())?;
    Ok(())
}
