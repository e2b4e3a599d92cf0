//! Arbitrary bytes as `modules.order`: splitting it like kmod's fgets loop and reordering a
//! module list by it must never panic, under kmod 30 and kmod 34 duplicate rules, and the
//! one-sort order the run uses must be kmod's two steps (hash order, then the file's).

#![no_main]

use std::collections::HashSet;

use depmod_rs::compat::KmodVersion;
use depmod_rs::internals::{
    apply_modules_order, module_order, parse_modules_order, permute, sort_hash_order,
    ModulesOrder, OrderFile, MODULE_BUCKETS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_modules_order(data);
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let order = ModulesOrder::new(data.to_vec(), version);
        let OrderFile::Lines(lines) = &parsed else {
            assert!(order.corrupted_line().is_some(), "a corrupted file is said to be");
            continue;
        };
        // Modules named after some of the lines, plus one never listed; names are unique,
        // as the run's are.
        let mut seen = HashSet::new();
        let mut names: Vec<Vec<u8>> = lines
            .iter()
            .step_by(2)
            .map(|l| l.to_vec())
            .chain([b"kernel/unlisted.ko".to_vec()])
            .filter(|name| seen.insert(name.clone()))
            .collect();
        let mut expected = names.clone();
        sort_hash_order(&mut expected, MODULE_BUCKETS, |m| m.as_slice());
        apply_modules_order(&mut expected, lines, version, |m| Some(m.as_slice()));
        assert_eq!(expected.len(), names.len(), "reordering keeps every module");
        let placing = module_order(&names, |m| m.as_slice(), |m| order.line_of(m));
        permute(&mut names, &placing);
        assert_eq!(names, expected, "one sort gives kmod's order");
    }
});
