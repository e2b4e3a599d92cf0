//! Times reading every module of a tree, single-threaded, next to `cat` and `xz -dc`/
//! `zstd -dc` of the same files.
//!
//! ```text
//! cargo run --release --example module_read_bench -- DIR [DIR…]
//! ```
//!
//! Each DIR is searched recursively for `.ko`, `.ko.xz`, `.ko.zst` and `.ko.gz` files.
//! The page cache is warmed first; every timing is the best of three runs, shown as wall
//! time and as CPU time (user + system, from `/proc/self/stat`; for the tools, of the child
//! processes), which is steadier on a busy machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use depmod_rs::module::{read_module, ReadOptions};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect(&path, out);
        } else {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                out.push(path);
            }
        }
    }
}

/// CPU time used so far by this process and by its waited-for children, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime is field 14 overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = |v: &[u64]| Duration::from_millis(v.iter().sum::<u64>() * 10);
    if fields.len() < 4 {
        return (Duration::ZERO, Duration::ZERO);
    }
    (ticks(&fields[0..2]), ticks(&fields[2..4]))
}

/// A wall-clock and CPU-time measurement.
#[derive(Clone, Copy, Default)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

impl Timing {
    fn show(self) -> String {
        format!(
            "{:7.3} s wall {:7.3} s CPU",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64()
        )
    }
}

/// Runs `tool ARGS FILE…` over all files (in batches) with output discarded.
fn run_tool(tool: &str, args: &[&str], files: &[PathBuf]) -> Timing {
    let before = cpu_times().1;
    let start = Instant::now();
    for batch in files.chunks(500) {
        let status = Command::new(tool)
            .args(args)
            .args(batch)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(status.success(), "{tool} failed");
    }
    Timing {
        wall: start.elapsed(),
        cpu: cpu_times().1.saturating_sub(before),
    }
}

fn best_of_three(mut f: impl FnMut() -> Timing) -> Timing {
    let runs: Vec<Timing> = (0..3).map(|_| f()).collect();
    Timing {
        wall: runs.iter().map(|t| t.wall).min().unwrap_or_default(),
        cpu: runs.iter().map(|t| t.cpu).min().unwrap_or_default(),
    }
}

fn main() {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        eprintln!("usage: module_read_bench DIR [DIR…]");
        std::process::exit(2);
    }
    let opts = ReadOptions::default();
    for dir in dirs {
        let mut files = Vec::new();
        collect(&dir, &mut files);
        files.sort();
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let xz = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "xz"))
            .count();
        let zst = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "zst"))
            .count();

        let cat = best_of_three(|| run_tool("cat", &[], &files));
        let mut failures = 0;
        let ours = best_of_three(|| {
            failures = 0;
            let before = cpu_times().0;
            let start = Instant::now();
            for file in &files {
                match read_module(file, &opts) {
                    Ok(info) => {
                        std::hint::black_box(info);
                    }
                    Err(_) => failures += 1,
                }
            }
            Timing {
                wall: start.elapsed(),
                cpu: cpu_times().0.saturating_sub(before),
            }
        });
        println!(
            "{}: {} modules ({:.0} MB on disk), {failures} unreadable",
            dir.display(),
            files.len(),
            bytes as f64 / 1e6
        );
        println!("  depmod-rs read_module, 1 thread: {}", ours.show());
        println!("  cat of all files:                {}", cat.show());
        if xz > 0 {
            let xz_files: Vec<PathBuf> = files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "xz"))
                .cloned()
                .collect();
            let t = best_of_three(|| run_tool("xz", &["-dc", "-T1"], &xz_files));
            println!("  xz -dc -T1 of the .xz files:     {}", t.show());
        }
        if zst > 0 {
            let zst_files: Vec<PathBuf> = files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "zst"))
                .cloned()
                .collect();
            let t = best_of_three(|| run_tool("zstd", &["-dcq", "-T1"], &zst_files));
            println!("  zstd -dc of the .zst files:      {}", t.show());
        }
    }
}
