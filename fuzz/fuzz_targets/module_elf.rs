//! Arbitrary bytes as an already-decompressed module image: parsing must never panic, under
//! both kmod 30 and kmod 34 rules.

#![no_main]

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{parse_module_image, ReadOptions};
use libfuzzer_sys::fuzz_target;

/// `modindex module`'s report, which renders everything that was read.
#[path = "../../src/bin/modindex/report.rs"]
mod report;

fuzz_target!(|data: &[u8]| {
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let opts = ReadOptions {
            version,
            ..ReadOptions::default()
        };
        if let Ok(info) = parse_module_image(data, &opts) {
            // Touch everything that was read.
            let _ = report::describe(&info);
        }
    }
});
