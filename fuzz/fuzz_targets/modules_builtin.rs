//! Arbitrary bytes as `modules.builtin`: parsing must never panic.

#![no_main]

use depmod_rs::builtin::parse_modules_builtin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut diagnostics = Vec::new();
    let keys = parse_modules_builtin(data, &mut diagnostics);
    // Each key comes from one line: there can be no more keys than lines.
    assert!(keys.len() <= data.split(|&b| b == b'\n').count());
});
