//! Arbitrary bytes as `System.map`, with and without a `-P` symbol prefix: parsing must never
//! panic.

#![no_main]

use depmod_rs::symvers::parse_system_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for prefix in [None, Some(b'_')] {
        let mut errors = Vec::new();
        let _ = parse_system_map(data, b"System.map", prefix, &mut errors);
    }
});
