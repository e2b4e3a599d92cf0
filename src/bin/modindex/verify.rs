//! `modindex verify FILE.bin`: full structural validation.

use std::path::PathBuf;
use std::process::ExitCode;

use depmod_rs::index::{IndexBuilder, NodeOrder};

use super::common::{open, read_file};

/// Validate the whole file structurally (exit 0 valid, 2 not).
///
/// Checks the header and every node, string, count and reference (no loops), then reports
/// the node order and whether the file is exactly what kmod would write for its entries.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index file.
    pub file: PathBuf,
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
