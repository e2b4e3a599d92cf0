//! Arbitrary bytes as an index file: validation, listing and lookups (also exact lookups
//! without validation) must never panic, and a file that validates must list and look up
//! without error.
#![no_main]

use depmod_rs::index::{annotate::annotate, Index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Use the tail of the input as the query, so lookups explore the file's own keys.
    let split = data
        .len()
        .saturating_sub(data.last().map_or(0, |&n| usize::from(n % 32)));
    let (file, query) = data.split_at(split);
    // Lookups in a file whose validation is skipped must not panic either.
    if let Ok(known) = Index::from_known(file) {
        let _ = known.lookup_exact(query);
    }
    let Ok(index) = Index::new(file) else {
        return;
    };
    index.entries().expect("a validated index lists");
    index
        .lookup_exact(query)
        .expect("a validated index looks up");
    index
        .lookup_wild(query)
        .expect("a validated index looks up");
    index.node_order().expect("a validated index has a layout");
    annotate(&index).expect("a validated index annotates");
});
