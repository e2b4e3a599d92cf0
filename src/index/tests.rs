//! Unit tests against the verified vectors of the kmod reference (§16.2 of
//! `kmod-depmod.md`): the expected bytes below are assembled from that description, not from
//! our writer.

use super::*;

/// A tiny assembler for expected index bytes.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn word(mut self, w: u32) -> Self {
        self.0.extend_from_slice(&w.to_be_bytes());
        self
    }
    fn text(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(s);
        self.0.push(0);
        self
    }
    fn range(mut self, first: u8, last: u8) -> Self {
        self.0.push(first);
        self.0.push(last);
        self
    }
    fn zeros(mut self, words: usize) -> Self {
        self.0.extend(std::iter::repeat_n(0u8, 4 * words));
        self
    }
    fn header(self, root: u32) -> Self {
        self.word(0xB007_F457).word(0x0002_0001).word(root)
    }
    /// A value list.
    fn values(mut self, values: &[(u32, &[u8])]) -> Self {
        self = self.word(values.len() as u32);
        for &(p, v) in values {
            self = self.word(p).text(v);
        }
        self
    }
}

/// §16.2: aliases of module `a` (idx 0): `ab`, `on-ce`, `o[n-p]e`; of `b` (idx 1): `ab`, `ate`.
fn two_module_builder() -> IndexBuilder {
    let mut b = IndexBuilder::new();
    for (alias, module, idx) in [
        (&b"ab"[..], &b"a"[..], 0),
        (b"on-ce", b"a", 0),
        (b"o[n-p]e", b"a", 0),
        (b"ab", b"b", 1),
        (b"ate", b"b", 1),
    ] {
        let key = crate::names::normalize_alias(alias).unwrap();
        b.insert(&key, module, idx).unwrap();
    }
    b
}

fn two_module_pre() -> Vec<u8> {
    Bytes::default()
        .header(0x2000_000C)
        // 0x00C root: 'a'..'o'
        .range(b'a', b'o')
        .word(0x2000_004A)
        .zeros(13)
        .word(0x2000_00B4)
        // 0x04A "a": 'b'..'t'
        .range(b'b', b't')
        .word(0x4000_0098)
        .zeros(17)
        .word(0xC000_00A8)
        // 0x098 "ab"
        .values(&[(0, b"a"), (1, b"b")])
        // 0x0A8 "ate"
        .text(b"e")
        .values(&[(1, b"b")])
        // 0x0B4 "o": '['..'n'
        .range(b'[', b'n')
        .word(0xC000_0106)
        .zeros(18)
        .word(0xC000_0116)
        // 0x106 "o[n-p]e"
        .text(b"n-p]e")
        .values(&[(0, b"a")])
        // 0x116 "on_ce"
        .text(b"_ce")
        .values(&[(0, b"a")])
        .0
}

fn two_module_post() -> Vec<u8> {
    Bytes::default()
        .header(0x2000_00E6)
        // 0x00C "ab"
        .values(&[(0, b"a"), (1, b"b")])
        // 0x01C "ate"
        .text(b"e")
        .values(&[(1, b"b")])
        // 0x028 "a"
        .range(b'b', b't')
        .word(0x4000_000C)
        .zeros(17)
        .word(0xC000_001C)
        // 0x076 "o[n-p]e"
        .text(b"n-p]e")
        .values(&[(0, b"a")])
        // 0x086 "on_ce"
        .text(b"_ce")
        .values(&[(0, b"a")])
        // 0x094 "o"
        .range(b'[', b'n')
        .word(0xC000_0076)
        .zeros(18)
        .word(0xC000_0086)
        // 0x0E6 root
        .range(b'a', b'o')
        .word(0x2000_0028)
        .zeros(13)
        .word(0x2000_0094)
        .0
}

#[test]
fn spec_vector_two_modules_pre_order() {
    let expected = two_module_pre();
    assert_eq!(expected.len(), 292);
    assert_eq!(
        two_module_builder().to_bytes(NodeOrder::Pre).unwrap(),
        expected
    );
}

#[test]
fn spec_vector_two_modules_post_order() {
    let expected = two_module_post();
    assert_eq!(expected.len(), 292);
    assert_eq!(
        two_module_builder().to_bytes(NodeOrder::Post).unwrap(),
        expected
    );
}

#[test]
fn empty_index_is_the_header_in_both_orders() {
    let expected = Bytes::default().header(0x0000_000C).0;
    let b = IndexBuilder::new();
    assert!(b.is_empty());
    assert_eq!(b.to_bytes(NodeOrder::Pre).unwrap(), expected);
    assert_eq!(b.to_bytes(NodeOrder::Post).unwrap(), expected);
    let index = Index::new(&expected).unwrap();
    assert!(index.entries().unwrap().is_empty());
    assert_eq!(index.lookup_exact(b"").unwrap(), None);
    assert!(index.lookup_wild(b"x").unwrap().is_empty());
}

#[test]
fn one_symbol_index() {
    let mut b = IndexBuilder::new();
    b.insert(b"symbol:dummy_export", b"scsi_mod", 1).unwrap();
    let leaf = |bytes: Bytes| {
        bytes
            .text(b"ymbol:dummy_export")
            .values(&[(1, b"scsi_mod")])
    };
    let pre = leaf(
        Bytes::default()
            .header(0x2000_000C)
            .range(b's', b's')
            .word(0xC000_0012),
    )
    .0;
    let post = leaf(Bytes::default().header(0x2000_0030))
        .range(b's', b's')
        .word(0xC000_000C)
        .0;
    assert_eq!(b.to_bytes(NodeOrder::Pre).unwrap(), pre);
    assert_eq!(b.to_bytes(NodeOrder::Post).unwrap(), post);
}

#[test]
fn reads_the_spec_vectors_in_both_orders() {
    for bytes in [two_module_pre(), two_module_post()] {
        let index = Index::new(&bytes).unwrap();
        let entries: Vec<(Vec<u8>, u32, Vec<u8>)> = index
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.priority, e.value.to_vec()))
            .collect();
        let owned = |k: &[u8], p, v: &[u8]| (k.to_vec(), p, v.to_vec());
        assert_eq!(
            entries,
            vec![
                owned(b"ab", 0, b"a"),
                owned(b"ab", 1, b"b"),
                owned(b"ate", 1, b"b"),
                owned(b"o[n-p]e", 0, b"a"),
                owned(b"on_ce", 0, b"a"),
            ]
        );
        let exact = index.lookup_exact(b"ab").unwrap().unwrap();
        assert_eq!((exact.priority, exact.value), (0, &b"a"[..]));
        assert_eq!(index.lookup_exact(b"a").unwrap(), None);
        assert_eq!(index.lookup_exact(b"o[n-p]e").unwrap().unwrap().value, b"a");
        let wild = |q: &[u8]| -> Vec<Vec<u8>> {
            index
                .lookup_wild(q)
                .unwrap()
                .iter()
                .map(|v| v.value.to_vec())
                .collect()
        };
        assert_eq!(wild(b"ab"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(wild(b"one"), vec![b"a".to_vec()]);
        assert_eq!(wild(b"ope"), vec![b"a".to_vec()]);
        assert_eq!(wild(b"oqe"), Vec::<Vec<u8>>::new());
        assert_eq!(wild(b"on_ce"), vec![b"a".to_vec()]);
        assert_eq!(wild(b"at"), Vec::<Vec<u8>>::new());
    }
    assert_eq!(
        Index::new(&two_module_pre()).unwrap().node_order().unwrap(),
        Some(NodeOrder::Pre)
    );
    assert_eq!(
        Index::new(&two_module_post())
            .unwrap()
            .node_order()
            .unwrap(),
        Some(NodeOrder::Post)
    );
}

#[test]
fn wildcard_results_merge_like_libkmod() {
    // Two patterns match; values of equal priority come out newest-added first.
    let mut b = IndexBuilder::new();
    b.insert(b"x*", b"m1", 3).unwrap();
    b.insert(b"x?z", b"m2", 3).unwrap();
    b.insert(b"x?z", b"m0", 1).unwrap();
    b.insert(b"xyz", b"m3", 3).unwrap();
    let bytes = b.to_bytes(NodeOrder::Pre).unwrap();
    let index = Index::new(&bytes).unwrap();
    let got: Vec<(u32, &[u8])> = index
        .lookup_wild(b"xyz")
        .unwrap()
        .iter()
        .map(|v| (v.priority, v.value))
        .collect();
    // libkmod visits '*' subtree (x*), then '?' subtree (x?z: m0, m2), then exact xyz (m3);
    // each addition goes before existing values of equal priority.
    assert_eq!(
        got,
        vec![(1, &b"m0"[..]), (3, b"m3"), (3, b"m2"), (3, b"m1")]
    );
}

#[test]
fn header_errors_are_typed() {
    assert_eq!(
        Index::new(b"short").unwrap_err(),
        ReadError::TooShort { len: 5 }
    );
    let mut bad = two_module_pre();
    bad[0] = 0;
    assert!(matches!(Index::new(&bad), Err(ReadError::BadMagic { .. })));
    let mut bad = two_module_pre();
    bad[5] = 3;
    assert_eq!(
        Index::new(&bad).unwrap_err(),
        ReadError::BadVersion { major: 3 }
    );
}

#[test]
fn loops_and_bad_offsets_are_refused() {
    // Make root's 'a' slot point back at the root itself.
    let mut looped = two_module_pre();
    looped[0x0E..0x12].copy_from_slice(&0x2000_000Cu32.to_be_bytes());
    let err = Index::new(&looped).unwrap_err();
    assert!(
        matches!(err, ReadError::SharedNode { node: 12, .. }),
        "{err:?}"
    );

    let mut outside = two_module_pre();
    outside[0x0E..0x12].copy_from_slice(&0x2000_FFFFu32.to_be_bytes());
    assert_eq!(
        Index::new(&outside).unwrap_err(),
        ReadError::OffsetOutOfRange {
            at: 0x0E,
            reference: 0x2000_FFFF
        }
    );

    let mut range = two_module_pre();
    range[0x0C] = 0x80;
    assert!(matches!(
        Index::new(&range),
        Err(ReadError::BadChildRange { at: 0x0C, .. })
    ));
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    for bytes in [two_module_pre(), two_module_post()] {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            if let Ok(index) = Index::new(cut) {
                let _ = index.entries();
                let _ = index.lookup_wild(b"ab");
            }
        }
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut copy = bytes.clone();
                copy[at] ^= flip;
                if let Ok(index) = Index::new(&copy) {
                    let _ = index.entries();
                    let _ = index.lookup_exact(b"ab");
                    let _ = index.lookup_wild(b"on_ce");
                    let _ = index.node_order();
                }
            }
        }
    }
}

#[test]
fn too_large_index_is_refused() {
    // 3 keys with ~90 MiB values each exceed the 28-bit offset range.
    let mut b = IndexBuilder::new();
    let big = vec![b'v'; 90 << 20];
    for key in [&b"a"[..], b"b", b"c"] {
        b.insert(key, &big, 0).unwrap();
    }
    let err = b.to_bytes(NodeOrder::Pre).unwrap_err();
    assert!(matches!(err, IndexError::TooLarge { .. }), "{err}");
}
