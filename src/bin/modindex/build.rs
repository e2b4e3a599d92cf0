//! `modindex build --order pre|post`: dump lines on stdin → index file on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::ValueEnum;
use depmod_rs::index::{IndexBuilder, NodeOrder};

use super::common::unescape;

/// Build an index from `KEY<TAB>PRIORITY<TAB>VALUE` lines (the `dump` format) on stdin and
/// write it to stdout. Lines are inserted last to first, so the value order of a dump is
/// reproduced exactly: `modindex dump F | modindex build --order O` gives F back byte for byte
/// when F was written in order O.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node layout: `pre` (kmod 34 and later) or `post` (kmod 33 and earlier).
    #[arg(long, value_enum)]
    order: Order,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Order {
    Pre,
    Post,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| format!("stdin: {e}"))?;
    let mut lines: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    if !body.is_empty() {
        for (number, line) in body.split(|&b| b == b'\n').enumerate() {
            lines.push(parse_line(line).ok_or_else(|| {
                format!(
                    "stdin:{}: expected KEY<TAB>PRIORITY<TAB>VALUE, got {:?}",
                    number + 1,
                    String::from_utf8_lossy(line)
                )
            })?);
        }
    }
    let mut builder = IndexBuilder::new();
    for (key, priority, value) in lines.iter().rev() {
        builder
            .insert(key, value, *priority)
            .map_err(|e| format!("stdin: {e}"))?;
    }
    let order = match args.order {
        Order::Pre => NodeOrder::Pre,
        Order::Post => NodeOrder::Post,
    };
    let bytes = builder.to_bytes(order).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn parse_line(line: &[u8]) -> Option<(Vec<u8>, u32, Vec<u8>)> {
    let mut fields = line.splitn(3, |&b| b == b'\t');
    let key = unescape(fields.next()?)?;
    let priority = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let value = unescape(fields.next()?)?;
    Some((key, priority, value))
}
