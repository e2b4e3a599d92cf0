//! The in-memory trie depmod builds before writing an index: kmod's insertion and value rules.

use super::error::IndexError;
use super::format::MAX_KEY_LEN;

/// Position of a node in [`IndexBuilder`]'s arena.
pub(crate) type NodeId = u32;

/// One value stored under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredValue {
    pub(crate) priority: u32,
    pub(crate) value: Box<[u8]>,
}

/// A trie node: the rest of its edge label, its values, and its children by first character.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// Edge label after the character that selects this node in its parent (empty at the root).
    pub(crate) prefix: Vec<u8>,
    /// Values in kmod's order: ascending priority, newest first among equal priorities.
    pub(crate) values: Vec<StoredValue>,
    /// Children sorted by ascending character (always < 128).
    pub(crate) children: Vec<(u8, NodeId)>,
}

/// An in-memory compressed (Patricia) trie of `(key, value, priority)` entries, built with
/// kmod's rules and written with [`IndexBuilder::write_to`] in either node order.
///
/// The trie's shape depends only on the set of keys, and each key's value list only on the
/// sequence of inserts under that key, so the bytes do not depend on how inserts for different
/// keys interleave.
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    pub(crate) nodes: Vec<Node>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// kmod 34's `index__checkstring`, extended to NUL: the first byte outside 1..=127.
fn check_string(string: &[u8]) -> Result<(), IndexError> {
    match first_bad_byte(string) {
        None => Ok(()),
        Some(0) => Err(IndexError::NulByte {
            string: string.to_vec(),
        }),
        Some(byte) => Err(IndexError::BadCharacter {
            byte,
            string: string.to_vec(),
        }),
    }
}

/// The first byte of `string` outside 1..=127, if any.
///
/// Eight bytes are tested at a time; only a word that holds a bad byte (or the tail shorter
/// than a word) is scanned byte by byte, which finds the same byte as
/// [`first_bad_byte_bytewise`].
fn first_bad_byte(string: &[u8]) -> Option<u8> {
    let mut words = string.chunks_exact(8);
    for word in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        if word_has_bad_byte(u64::from_le_bytes(bytes)) {
            return first_bad_byte_bytewise(word);
        }
    }
    first_bad_byte_bytewise(words.remainder())
}

/// Whether one of the eight bytes of `word` is 0 or ≥ 0x80.
///
/// `(w & 0x7f..) + 0x7f..` sets a byte's high bit exactly when its low seven bits are not all
/// zero (no carry crosses bytes, as each sum is below 0x100); a byte is good when that bit is
/// set and its own high bit is clear.
fn word_has_bad_byte(word: u64) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let nonzero_low7 = (word & LOW7) + LOW7;
    (nonzero_low7 & !word & HIGH) != HIGH
}

/// [`first_bad_byte`] one byte at a time.
fn first_bad_byte_bytewise(string: &[u8]) -> Option<u8> {
    string.iter().copied().find(|&b| b == 0 || b >= 0x80)
}

/// Checks one entry as [`IndexBuilder::insert`] does before storing it: the key, then
/// the value, must be bytes in 1..=127, and the key must not be too long.
pub fn check_entry(key: &[u8], value: &[u8]) -> Result<(), IndexError> {
    check_string(key)?;
    check_string(value)?;
    if key.len() > MAX_KEY_LEN {
        return Err(IndexError::KeyTooLong { len: key.len() });
    }
    Ok(())
}

impl IndexBuilder {
    /// An empty trie: just the root.
    pub fn new() -> Self {
        IndexBuilder {
            nodes: vec![Node::default()],
        }
    }

    /// Whether nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].values.is_empty()
    }

    /// Inserts `value` with `priority` under `key`, with kmod's value-list rules: the list is
    /// kept in ascending priority, a new value goes before the first existing value of equal or
    /// higher priority (so among equal priorities the newest comes first), and duplicates are
    /// kept.
    ///
    /// Returns `Ok(true)` when `value` was already present under `key` — kmod's
    /// `index_add_value` compares the value only, not the priority — which is what `depmod -w`
    /// warns about.
    ///
    /// Bytes must be in 1..=127: a byte ≥ 0x80 gives [`IndexError::BadCharacter`] (kmod 34's
    /// FATAL; the key is checked before the value), a NUL gives [`IndexError::NulByte`]. Empty
    /// keys and values are allowed (the empty key lives on the root).
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<bool, IndexError> {
        check_entry(key, value)?;
        let node = self.node_for_key(key);
        Ok(add_value(
            &mut self.nodes[node as usize].values,
            value.into(),
            priority,
        ))
    }

    /// [`IndexBuilder::insert`] taking the value by move, so that large values (dependency
    /// lines) are not copied.
    pub fn insert_owned(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        priority: u32,
    ) -> Result<bool, IndexError> {
        check_entry(key, &value)?;
        let node = self.node_for_key(key);
        Ok(add_value(
            &mut self.nodes[node as usize].values,
            value.into_boxed_slice(),
            priority,
        ))
    }

    /// Finds or creates the node where `key` ends, splitting an edge when the key leaves it.
    fn node_for_key(&mut self, key: &[u8]) -> NodeId {
        let mut current: NodeId = 0;
        let mut rest = key;
        loop {
            let prefix = &self.nodes[current as usize].prefix;
            let common = prefix.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < prefix.len() {
                self.split(current, common);
            }
            rest = &rest[common..];
            let Some((&ch, tail)) = rest.split_first() else {
                return current;
            };
            let children = &self.nodes[current as usize].children;
            match children.binary_search_by_key(&ch, |&(c, _)| c) {
                Ok(slot) => {
                    current = children[slot].1;
                    rest = tail;
                }
                Err(slot) => {
                    let leaf = self.push_node(Node {
                        prefix: tail.to_vec(),
                        ..Node::default()
                    });
                    self.nodes[current as usize]
                        .children
                        .insert(slot, (ch, leaf));
                    return leaf;
                }
            }
        }
    }

    /// Splits `node` after `keep` prefix bytes: a new child takes the rest of the prefix (minus
    /// its first byte, which becomes the child's slot), the values and the children.
    fn split(&mut self, node: NodeId, keep: usize) {
        let old = &mut self.nodes[node as usize];
        let mut tail = old.prefix.split_off(keep);
        let slot = tail.remove(0);
        let moved = Node {
            prefix: tail,
            values: std::mem::take(&mut old.values),
            children: std::mem::take(&mut old.children),
        };
        let child = self.push_node(moved);
        self.nodes[node as usize].children = vec![(slot, child)];
    }

    fn push_node(&mut self, node: Node) -> NodeId {
        let id = NodeId::try_from(self.nodes.len()).unwrap_or(NodeId::MAX);
        self.nodes.push(node);
        id
    }
}

/// kmod's `index_add_value`: returns whether `value` was already in the list.
fn add_value(values: &mut Vec<StoredValue>, value: Box<[u8]>, priority: u32) -> bool {
    let duplicate = values.iter().any(|v| v.value == value);
    let at = values.partition_point(|v| v.priority < priority);
    // Most keys hold one value: grow one at a time while the list is short rather than to
    // Vec's minimum of four; longer lists (many duplicates of one key) grow geometrically.
    if values.len() < 4 {
        values.reserve_exact(1);
    }
    values.insert(at, StoredValue { priority, value });
    duplicate
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes biased towards the ones the check cares about: 0, 0x7f, 0x80 and 0xff.
    fn edge_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => 1u8..=0x7f,
            1 => Just(0u8),
            1 => Just(0x7fu8),
            1 => Just(0x80u8),
            1 => 0x81u8..=0xff,
        ]
    }

    proptest! {
        /// The word-at-a-time scan finds the same first bad byte as the bytewise one.
        #[test]
        fn first_bad_byte_matches_bytewise(string in proptest::collection::vec(edge_byte(), 0..40)) {
            prop_assert_eq!(first_bad_byte(&string), first_bad_byte_bytewise(&string));
        }

        /// One bad byte anywhere in an otherwise clean string is found.
        #[test]
        fn single_bad_byte_is_found(
            len in 1usize..40,
            at in 0usize..40,
            bad in prop_oneof![Just(0u8), 0x80u8..=0xff],
        ) {
            let mut string = vec![b'a'; len];
            string[at % len] = bad;
            prop_assert_eq!(first_bad_byte(&string), Some(bad));
        }
    }

    #[test]
    fn every_byte_value_in_every_lane() {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                let mut word = [0x41u8; 8];
                word[lane] = byte;
                let expected = (byte == 0 || byte >= 0x80).then_some(byte);
                assert_eq!(
                    first_bad_byte(&word),
                    expected,
                    "byte {byte:#x} lane {lane}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_of(b: &IndexBuilder, key: &[u8]) -> Vec<(u32, Vec<u8>)> {
        // Walk the trie by hand to find the node for `key`.
        let mut node = 0usize;
        let mut rest = key;
        loop {
            let n = &b.nodes[node];
            assert!(rest.starts_with(&n.prefix));
            rest = &rest[n.prefix.len()..];
            match rest.split_first() {
                None => {
                    return n
                        .values
                        .iter()
                        .map(|v| (v.priority, v.value.to_vec()))
                        .collect()
                }
                Some((&c, tail)) => {
                    node = n.children.iter().find(|x| x.0 == c).unwrap().1 as usize;
                    rest = tail;
                }
            }
        }
    }

    #[test]
    fn values_sorted_by_priority_newest_first_among_ties() {
        let mut b = IndexBuilder::new();
        assert!(!b.insert(b"k", b"a", 5).unwrap());
        assert!(!b.insert(b"k", b"b", 1).unwrap());
        assert!(!b.insert(b"k", b"c", 5).unwrap());
        assert!(b.insert(b"k", b"a", 9).unwrap());
        assert_eq!(
            values_of(&b, b"k"),
            vec![
                (1, b"b".to_vec()),
                (5, b"c".to_vec()),
                (5, b"a".to_vec()),
                (9, b"a".to_vec())
            ]
        );
    }

    #[test]
    fn split_keeps_values_on_the_longer_key() {
        let mut b = IndexBuilder::new();
        b.insert(b"once", b"x", 0).unwrap();
        b.insert(b"on", b"y", 1).unwrap();
        b.insert(b"one", b"z", 2).unwrap();
        assert_eq!(values_of(&b, b"once"), vec![(0, b"x".to_vec())]);
        assert_eq!(values_of(&b, b"on"), vec![(1, b"y".to_vec())]);
        assert_eq!(values_of(&b, b"one"), vec![(2, b"z".to_vec())]);
        assert_eq!(b.nodes[0].children.len(), 1);
    }

    #[test]
    fn refuses_non_ascii_and_nul() {
        let mut b = IndexBuilder::new();
        let e = b.insert(b"ok", b"caf\xc3\xa9", 0).unwrap_err();
        assert!(matches!(e, IndexError::BadCharacter { byte: 0xc3, .. }));
        assert_eq!(
            e.kmod_message(),
            b"Module index: bad character '\xc3'=0xc3 - only 7-bit ASCII is supported:\ncaf\xc3\xa9\n"
        );
        assert!(matches!(
            b.insert(b"a\0b", b"", 0),
            Err(IndexError::NulByte { .. })
        ));
        assert!(b.is_empty());
    }
}
