//! Arbitrary bytes as `modules.builtin.modinfo` (NUL-separated `module.key=value` records):
//! parsing must never panic.

#![no_main]

use depmod_rs::internals::parse_builtin_modinfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut diagnostics = Vec::new();
    let _ = parse_builtin_modinfo(data, &mut diagnostics);
});
