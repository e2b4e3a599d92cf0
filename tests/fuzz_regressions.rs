//! Inputs the fuzzers found, kept as regression tests: each must parse without a panic and
//! give the result kmod's rules imply.

use depmod_rs::internals::parse_modules_builtin;

/// `modules.builtin` with lines longer than kmod's 4095-byte `fgets` buffer. kmod reads such a
/// line as several chunks, each parsed as a line of its own, so there can be more keys than
/// `\n`-terminated lines (the fuzz target's old invariant was wrong, not the parser).
#[test]
fn modules_builtin_long_lines_are_read_in_fgets_chunks() {
    let raw = include_bytes!("fuzz_regressions/modules_builtin-long-lines.bin");
    // Parsing stops after the first key with a byte >= 0x80 (inserting it is fatal).
    let mut diagnostics = Vec::new();
    let keys = parse_modules_builtin(raw, &mut diagnostics);
    if let Some((_, before)) = keys.split_last() {
        assert!(before.iter().all(|k| k.is_ascii()));
    }
    // With those bytes made ASCII the whole file is parsed, a chunk at a time.
    let data: Vec<u8> = raw
        .iter()
        .map(|&b| if b >= 0x80 { b'x' } else { b })
        .collect();
    let mut diagnostics = Vec::new();
    let keys = parse_modules_builtin(&data, &mut diagnostics);
    let chunks = depmod_rs::internals::fgets_chunks(&data, depmod_rs::internals::PATH_MAX);
    assert!(keys.len() <= chunks.len());
    assert!(keys.len() > data.split(|&b| b == b'\n').count());
}
