//! `modindex dump FILE.bin`: every stored value as `KEY<TAB>PRIORITY<TAB>VALUE`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use depmod_rs::index::annotate::annotate;

use super::common::{escape, open, read_file};

/// Print every stored value, one `KEY<TAB>PRIORITY<TAB>VALUE` line each, in trie order
/// (a key's values in stored order). `\`, TAB and newline in keys and values are written as
/// `\\`, `\t` and `\n`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index file.
    file: PathBuf,
    /// Instead, print an annotated hex dump: every byte of the file with its meaning.
    #[arg(long)]
    annotate: bool,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let bytes = read_file(&args.file)?;
    let index = open(&args.file, &bytes)?;
    if args.annotate {
        let text = annotate(&index).map_err(|e| format!("{}: {e}", args.file.display()))?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let entries = index
        .entries()
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for entry in entries {
        escape(&entry.key, &mut out);
        out.push(b'\t');
        out.extend_from_slice(entry.priority.to_string().as_bytes());
        out.push(b'\t');
        escape(entry.value, &mut out);
        out.push(b'\n');
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(|e| format!("stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
