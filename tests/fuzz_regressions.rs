//! Inputs the fuzzers found, kept as regression tests: each must parse without a panic and
//! give the result kmod's rules imply.

use depmod_rs::internals::parse_modules_builtin;

/// `modules.builtin` with lines longer than kmod's 4095-byte `fgets` buffer. kmod reads such a
/// line as several chunks, each parsed as a line of its own, so there can be more keys than
/// `\n`-terminated lines (the fuzz target's old invariant was wrong, not the parser).
#[test]
fn modules_builtin_long_lines_are_read_in_fgets_chunks() {
    let data = include_bytes!("fuzz_regressions/modules_builtin-long-lines.bin");
    let mut diagnostics = Vec::new();
    let keys = parse_modules_builtin(data, &mut diagnostics);
    let chunks = depmod_rs::internals::fgets_chunks(data, depmod_rs::internals::PATH_MAX);
    assert!(keys.len() <= chunks.len());
    assert!(keys.len() > data.split(|&b| b == b'\n').count());
}
