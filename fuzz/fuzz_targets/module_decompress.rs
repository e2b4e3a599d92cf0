//! Arbitrary bytes through the decode path a module file takes: magic detection, then the
//! xz/zstd/gzip decoder with a small output cap, then the ELF reader. Must never panic.

#![no_main]

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{decompress, detect, parse_module_image, Compression, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let opts = ReadOptions {
            version,
            gzip: true,
            max_image_size: 4 << 20,
        };
        let format = detect(data, version, opts.gzip);
        if format == Compression::None {
            continue;
        }
        if let Ok(image) = decompress(format, data, version, opts.gzip, opts.max_image_size) {
            assert!(image.len() as u64 <= opts.max_image_size);
            let _ = parse_module_image(&image, &opts);
        }
    }
});
