//! Arbitrary bytes as an uncompressed module file: reading only the byte ranges depmod needs
//! (`read_module`, with `pread`) must give exactly what mapping and parsing the whole file
//! gives, errors included, under both kmod 30 and kmod 34 rules.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{
    load_image, parse_module_image, read_module, ModuleError, ModuleInfo, ReadOptions,
};
use libfuzzer_sys::fuzz_target;

/// One scratch file per fuzzing process, in memory-backed storage when there is some.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = ["/dev/shm", "/tmp"]
            .iter()
            .map(PathBuf::from)
            .find(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("depmod-rs-fuzz-partial-{}.ko", std::process::id()))
    })
}

fn outcome(result: Result<ModuleInfo, ModuleError>) -> String {
    match result {
        Ok(info) => format!(
            "{:?} {:?} {:?}",
            info.exports.map_err(|e| e.errno()),
            info.modinfo,
            info.imports
        ),
        Err(err) => format!("error {}", err.errno()),
    }
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let opts = ReadOptions {
            version,
            ..ReadOptions::default()
        };
        let partial = outcome(read_module(path, &opts));
        let whole = outcome(
            load_image(path, &opts).and_then(|image| parse_module_image(image.as_bytes(), &opts)),
        );
        assert_eq!(partial, whole, "{version:?}");
    }
});
