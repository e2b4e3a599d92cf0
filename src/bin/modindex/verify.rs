//! `modindex verify FILE.bin`: full structural validation.

use std::path::PathBuf;
use std::process::ExitCode;

use depmod_rs::index::{IndexBuilder, NodeOrder};

use super::common::{open, read_file};

/// Validate the whole file (header, every node, string, count and reference; no loops) and
/// report its node order and whether it is exactly what kmod would write for its entries.
/// Exit 0 if the structure is valid, 2 if not.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index file.
    file: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let bytes = read_file(&args.file)?;
    let index = open(&args.file, &bytes)?;
    let in_file = |e| format!("{}: {e}", args.file.display());
    let entries = index.entries().map_err(in_file)?;
    let order = index.node_order().map_err(in_file)?;
    let layout = match order {
        Some(NodeOrder::Pre) => "pre-order (kmod >= 34)",
        Some(NodeOrder::Post) => "post-order (kmod <= 33)",
        None => "neither kmod node order",
    };
    let mut rebuilt = IndexBuilder::new();
    let mut encodable = true;
    for e in entries.iter().rev() {
        encodable &= rebuilt.insert(&e.key, e.value, e.priority).is_ok();
    }
    let canonical =
        encodable && order.is_some_and(|o| rebuilt.to_bytes(o).is_ok_and(|again| again == bytes));
    println!(
        "{}: valid, {} bytes, {} values, {layout}, {}",
        args.file.display(),
        bytes.len(),
        entries.len(),
        if canonical {
            "identical to kmod's encoding of its entries"
        } else {
            "NOT identical to kmod's encoding of its entries"
        }
    );
    Ok(ExitCode::SUCCESS)
}
