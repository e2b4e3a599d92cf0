//! Arbitrary bytes as `modules.order`: splitting it like kmod's fgets loop and reordering a
//! module list by it must never panic, under kmod 30 and kmod 34 duplicate rules.

#![no_main]

use depmod_rs::compat::KmodVersion;
use depmod_rs::internals::{apply_modules_order, parse_modules_order, OrderFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let OrderFile::Lines(lines) = parse_modules_order(data) else {
        return;
    };
    // Modules named after some of the lines, plus ones never listed.
    let mut names: Vec<Vec<u8>> = lines.iter().step_by(2).map(|l| l.to_vec()).collect();
    names.push(b"kernel/unlisted.ko".to_vec());
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let mut modules = names.clone();
        apply_modules_order(&mut modules, &lines, version, |m| Some(m.as_slice()));
        assert_eq!(modules.len(), names.len(), "reordering keeps every module");
    }
});
