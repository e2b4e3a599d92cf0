//! The floor for reading a compressed module tree: decode every module under DIR with the
//! decoder depmod-rs uses, on all cores (largest files first), and do nothing else.
//! Prints the wall time in milliseconds; `scripts/bench.sh` compares depmod-rs against it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{decompress, detect};
use rayon::prelude::*;

fn collect(dir: &Path, out: &mut Vec<(u64, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&path, out),
            Ok(t) if t.is_file() => {
                let name = path.to_string_lossy();
                if name.ends_with(".ko.xz") || name.ends_with(".ko.zst") {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push((size, path));
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: decode_floor DIR");
        std::process::exit(2);
    };
    let start = Instant::now();
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let decoded: u64 = files
        .par_iter()
        .map(|(_, path)| {
            let Ok(input) = std::fs::read(path) else {
                return 0;
            };
            let format = detect(&input, KmodVersion::DEFAULT, false);
            decompress(format, &input, KmodVersion::DEFAULT, false, 1 << 30)
                .map(|image| image.len() as u64)
                .unwrap_or(0)
        })
        .sum();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "{ms:.0} ms  {} files  {} MB decoded",
        files.len(),
        decoded >> 20
    );
}
