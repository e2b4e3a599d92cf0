//! Arbitrary bytes as `Module.symvers`, with and without a `-P` symbol prefix: parsing must
//! never panic.

#![no_main]

use depmod_rs::symvers::parse_module_symvers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for prefix in [None, Some(b'_')] {
        let mut errors = Vec::new();
        let _ = parse_module_symvers(data, b"Module.symvers", prefix, &mut errors);
    }
});
