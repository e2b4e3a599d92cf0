//! Structured round trip: arbitrary inserts are written in both node orders; each file must
//! validate, list exactly the inserted entries in kmod's order, re-encode to the same bytes,
//! and both orders must be the same size.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use depmod_rs::index::{Index, IndexBuilder, IndexError, NodeOrder};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Insert {
    key: Vec<u8>,
    value: Vec<u8>,
    priority: u32,
}

fuzz_target!(|inserts: Vec<Insert>| {
    let mut builder = IndexBuilder::new();
    let mut model: BTreeMap<Vec<u8>, Vec<(u32, Vec<u8>)>> = BTreeMap::new();
    for i in &inserts {
        match builder.insert(&i.key, &i.value, i.priority) {
            Ok(_) => {
                let list = model.entry(i.key.clone()).or_default();
                let at = list.partition_point(|(p, _)| *p < i.priority);
                list.insert(at, (i.priority, i.value.clone()));
            }
            Err(IndexError::BadCharacter { .. } | IndexError::NulByte { .. }) => {
                assert!(i.key.iter().chain(&i.value).any(|&b| b == 0 || b >= 0x80));
            }
            Err(e) => panic!("unexpected insert error: {e}"),
        }
    }
    let expected: Vec<(Vec<u8>, u32, Vec<u8>)> = model
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |(p, v)| (k.clone(), p, v)))
        .collect();
    let pre = builder.to_bytes(NodeOrder::Pre).expect("small index fits");
    let post = builder.to_bytes(NodeOrder::Post).expect("small index fits");
    assert_eq!(pre.len(), post.len());
    for (bytes, order) in [(&pre, NodeOrder::Pre), (&post, NodeOrder::Post)] {
        let index = Index::new(bytes).expect("our output validates");
        let entries = index.entries().expect("lists");
        let got: Vec<(Vec<u8>, u32, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.key.clone(), e.priority, e.value.to_vec()))
            .collect();
        assert_eq!(got, expected);
        let mut again = IndexBuilder::new();
        for e in entries.iter().rev() {
            again.insert(&e.key, e.value, e.priority).expect("ASCII");
        }
        assert_eq!(&again.to_bytes(order).expect("fits"), bytes);
    }
});
