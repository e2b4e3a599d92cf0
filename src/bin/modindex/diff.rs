//! `modindex diff A.bin B.bin`: what a reader of the two indexes would see differently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use depmod_rs::compat::KmodVersion;
use depmod_rs::OutputFile;

use super::common::{escape, open, read_file};

/// Compare two index files by content, blind to node layout (exit 0 same, 1 differ, 2 error).
///
/// Both files are decoded to their (key, priority, value) entries; the node order (kmod 34's
/// pre-order or kmod 33's post-order), node sharing and file offsets do not matter. Printed:
/// `-KEY<TAB>PRIORITY<TAB>VALUE` for an entry only in A, `+...` for one only in B, and
/// `~KEY<TAB>value order differs` when a key holds the same values in another order (libkmod
/// returns the first value of an exact lookup, so the order is part of the content). Fields
/// are escaped as by `modindex dump`. This is the check to run before swapping one depmod for
/// another: the same tree must give no output.
///
/// Given two directories, every file depmod writes is compared: `.bin` indexes by content as
/// above (each difference line prefixed with the file name), text files byte for byte, and a
/// file present on one side only is reported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first index file (or module directory).
    a: PathBuf,
    /// The second index file (or module directory).
    b: PathBuf,
    /// Print nothing; only set the exit status.
    #[arg(short, long)]
    quiet: bool,
}

/// A key's values in stored order: (priority, value).
type Values = Vec<(u32, Vec<u8>)>;

/// One difference between two indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The entry is only in the first index.
    Removed(Vec<u8>, u32, Vec<u8>),
    /// The entry is only in the second index.
    Added(Vec<u8>, u32, Vec<u8>),
    /// The key holds the same entries in another order.
    Reordered(Vec<u8>),
}

impl Difference {
    /// The line printed for this difference, with its newline.
    pub fn line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Difference::Removed(key, priority, value) | Difference::Added(key, priority, value) => {
                out.push(if matches!(self, Difference::Removed(..)) {
                    b'-'
                } else {
                    b'+'
                });
                escape(key, &mut out);
                out.push(b'\t');
                out.extend_from_slice(priority.to_string().as_bytes());
                out.push(b'\t');
                escape(value, &mut out);
            }
            Difference::Reordered(key) => {
                out.push(b'~');
                escape(key, &mut out);
                out.extend_from_slice(b"\tvalue order differs");
            }
        }
        out.push(b'\n');
        out
    }
}

fn grouped(bytes: &[u8], path: &std::path::Path) -> Result<BTreeMap<Vec<u8>, Values>, String> {
    let index = open(path, bytes)?;
    let entries = index
        .entries()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut by_key: BTreeMap<Vec<u8>, Values> = BTreeMap::new();
    for entry in entries {
        by_key
            .entry(entry.key)
            .or_default()
            .push((entry.priority, entry.value.to_vec()));
    }
    Ok(by_key)
}

/// The differences between two index images, in key order.
pub fn compare(
    a: &[u8],
    a_path: &std::path::Path,
    b: &[u8],
    b_path: &std::path::Path,
) -> Result<Vec<Difference>, String> {
    let old = grouped(a, a_path)?;
    let new = grouped(b, b_path)?;
    let empty = Values::new();
    let mut keys: Vec<&Vec<u8>> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut differences = Vec::new();
    for key in keys {
        let before = old.get(key).unwrap_or(&empty);
        let after = new.get(key).unwrap_or(&empty);
        if before == after {
            continue;
        }
        let mut only_before = before.clone();
        let mut only_after = Vec::new();
        for value in after {
            match only_before.iter().position(|v| v == value) {
                Some(found) => {
                    only_before.remove(found);
                }
                None => only_after.push(value.clone()),
            }
        }
        if only_before.is_empty() && only_after.is_empty() {
            differences.push(Difference::Reordered(key.clone()));
            continue;
        }
        for (priority, value) in only_before {
            differences.push(Difference::Removed(key.clone(), priority, value));
        }
        for (priority, value) in only_after {
            differences.push(Difference::Added(key.clone(), priority, value));
        }
    }
    Ok(differences)
}

fn read_optional(path: &std::path::Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Compares two module directories file by file; returns the report lines.
fn compare_dirs(a: &std::path::Path, b: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let mut lines = Vec::new();
    // kmod 34 writes every file older releases do, plus modules.weakdep.
    for file in OutputFile::sequence(KmodVersion::V34) {
        let name = file.name();
        let (pa, pb) = (a.join(name), b.join(name));
        match (read_optional(&pa)?, read_optional(&pb)?) {
            (None, None) => {}
            (Some(_), None) => lines.push(format!("{name}: only in {}\n", a.display()).into()),
            (None, Some(_)) => lines.push(format!("{name}: only in {}\n", b.display()).into()),
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if name.ends_with(".bin") && !x.is_empty() && !y.is_empty() => {
                for d in compare(&x, &pa, &y, &pb)? {
                    let mut line = format!("{name}: ").into_bytes();
                    line.extend_from_slice(&d.line());
                    lines.push(line);
                }
            }
            (Some(_), Some(_)) => lines.push(format!("{name}: differs\n").into()),
        }
    }
    Ok(lines)
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    if args.a.is_dir() && args.b.is_dir() {
        let lines = compare_dirs(&args.a, &args.b)?;
        if !args.quiet {
            std::io::stdout()
                .lock()
                .write_all(&lines.concat())
                .map_err(|e| format!("stdout: {e}"))?;
        }
        return Ok(if lines.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let a = read_file(&args.a)?;
    let b = read_file(&args.b)?;
    let differences = compare(&a, &args.a, &b, &args.b)?;
    if !args.quiet {
        let mut out = Vec::new();
        for d in &differences {
            out.extend_from_slice(&d.line());
        }
        std::io::stdout()
            .lock()
            .write_all(&out)
            .map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmod_rs::index::{IndexBuilder, NodeOrder};
    use std::path::Path;

    fn build(entries: &[(&str, u32, &str)], order: NodeOrder) -> Vec<u8> {
        let mut builder = IndexBuilder::new();
        for (key, priority, value) in entries {
            builder
                .insert(key.as_bytes(), value.as_bytes(), *priority)
                .unwrap();
        }
        builder.to_bytes(order).unwrap()
    }

    fn diff(a: &[u8], b: &[u8]) -> Vec<Difference> {
        compare(a, Path::new("a"), b, Path::new("b")).unwrap()
    }

    #[test]
    fn node_order_is_invisible() {
        let entries = [
            ("abc", 1, "x"),
            ("abd", 0, "y"),
            ("b", 2, "z"),
            ("b", 3, "w"),
        ];
        let pre = build(&entries, NodeOrder::Pre);
        let post = build(&entries, NodeOrder::Post);
        assert_ne!(pre, post);
        assert!(diff(&pre, &post).is_empty());
    }

    #[test]
    fn added_removed_and_reordered() {
        let a = build(
            &[("k", 1, "one"), ("k", 1, "two"), ("gone", 0, "v")],
            NodeOrder::Pre,
        );
        let b = build(
            &[("k", 1, "two"), ("k", 1, "one"), ("new", 4, "w")],
            NodeOrder::Pre,
        );
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![
                Difference::Removed(b"gone".to_vec(), 0, b"v".to_vec()),
                Difference::Reordered(b"k".to_vec()),
                Difference::Added(b"new".to_vec(), 4, b"w".to_vec()),
            ]
        );
        assert_eq!(d[0].line(), b"-gone\t0\tv\n");
        assert_eq!(d[1].line(), b"~k\tvalue order differs\n");
    }

    #[test]
    fn priority_change_is_a_difference() {
        let a = build(&[("k", 1, "v")], NodeOrder::Pre);
        let b = build(&[("k", 2, "v")], NodeOrder::Post);
        assert_eq!(diff(&a, &b).len(), 2);
    }
}
