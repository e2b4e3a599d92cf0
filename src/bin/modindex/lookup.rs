//! `modindex lookup FILE.bin KEY`: what libkmod returns for KEY.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use depmod_rs::names::normalize_alias;

use super::common::{open, read_file};

/// Print the values libkmod finds for KEY, one per line; exit 0 if found, 1 if not, 2 on error.
///
/// The kind of lookup follows the file name, as in libkmod: wildcard (fnmatch patterns as keys,
/// every matching value) for modules.alias.bin, modules.symbols.bin and
/// modules.builtin.alias.bin; exact (the first value) for modules.dep.bin and
/// modules.builtin.bin. KEY is normalised as `modprobe` does (`-` → `_` outside brackets)
/// unless `--raw` is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index file.
    file: PathBuf,
    /// The key, alias or symbol to look up.
    key: String,
    /// Exact lookup, whatever the file name.
    #[arg(long, conflicts_with = "wild")]
    exact: bool,
    /// Wildcard lookup, whatever the file name.
    #[arg(long)]
    wild: bool,
    /// Use KEY as given, without alias normalisation.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Wild,
}

fn kind_from_name(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    if ["alias.bin", "symbols.bin"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        Some(Kind::Wild)
    } else if ["dep.bin", "builtin.bin"].iter().any(|s| name.ends_with(s)) {
        Some(Kind::Exact)
    } else {
        None
    }
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let kind = if args.exact {
        Kind::Exact
    } else if args.wild {
        Kind::Wild
    } else {
        kind_from_name(&args.file).ok_or_else(|| {
            format!(
                "{}: cannot tell the lookup kind from the file name; use --exact or --wild",
                args.file.display()
            )
        })?
    };
    let key = if args.raw {
        args.key.as_bytes().to_vec()
    } else {
        match normalize_alias(args.key.as_bytes()) {
            Ok(key) => key,
            Err(e) => {
                // libkmod refuses such a name before any lookup: nothing is found.
                eprintln!("modindex: invalid alias {:?}: {e}", args.key);
                return Ok(ExitCode::from(1));
            }
        }
    };
    let bytes = read_file(&args.file)?;
    let index = open(&args.file, &bytes)?;
    let in_file = |e| format!("{}: {e}", args.file.display());
    let values: Vec<&[u8]> = match kind {
        Kind::Exact => index
            .lookup_exact(&key)
            .map_err(in_file)?
            .map(|v| v.value)
            .into_iter()
            .collect(),
        Kind::Wild => index
            .lookup_wild(&key)
            .map_err(in_file)?
            .into_iter()
            .map(|v| v.value)
            .collect(),
    };
    let mut out = Vec::new();
    for value in &values {
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(|e| format!("stdout: {e}"))?;
    Ok(if values.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
