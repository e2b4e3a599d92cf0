//! Arbitrary bytes as `modules.builtin`: parsing must never panic.

#![no_main]

use depmod_rs::internals::parse_modules_builtin;
use depmod_rs::internals::{fgets_chunks, PATH_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut diagnostics = Vec::new();
    let keys = parse_modules_builtin(data, &mut diagnostics);
    // Each key comes from one fgets chunk (a line, or a 4095-byte piece of a longer one), as
    // kmod reads the file: there can be no more keys than chunks.
    assert!(keys.len() <= fgets_chunks(data, PATH_MAX).len());
});
