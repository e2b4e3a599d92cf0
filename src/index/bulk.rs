//! Building a whole index at once from its entries: sort them by key, then derive the trie
//! from the sorted keys.
//!
//! The bytes are the same as inserting every entry into [`IndexBuilder`] in the given order
//! (a trie's shape depends only on its set of keys, and a key's value list only on the order
//! of that key's inserts), but no edge is ever split and nothing is allocated per node: every
//! edge label and value borrows the caller's bytes. A node's edge label is the longest prefix
//! its keys share; its children are the groups of its keys by their next character, each a
//! run of the sorted keys, found by binary search.
//!
//! [`IndexBuilder`] stays the incremental builder (and reports duplicates as they are
//! inserted, which `depmod -w` needs).
//!
//! [`IndexBuilder`]: super::IndexBuilder

use std::cmp::Reverse;

use super::error::IndexError;
use super::trie::{check_entry, NodeId};
use super::write::{checked_layout, to_vec, TrieNodes};
use super::NodeOrder;

/// One insertion: `value` under `key` with `priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkEntry<'a> {
    /// The trie key.
    pub key: &'a [u8],
    /// The value stored under it.
    pub value: &'a [u8],
    /// Its priority.
    pub priority: u32,
}

/// The index file of `entries` (in insertion order) laid out in `order`: byte for byte what
/// inserting them one by one into [`super::IndexBuilder`] and writing it gives, including
/// which error is reported first.
pub fn encode_bulk(entries: &[BulkEntry<'_>], order: NodeOrder) -> Result<Vec<u8>, IndexError> {
    let mut checked = CheckedEntries::with_capacity(entries.len());
    for &entry in entries {
        checked.push(entry)?;
    }
    checked.encode(order)
}

/// Entries in insertion order, each checked as [`super::IndexBuilder::insert`] checks it
/// when it was added; [`CheckedEntries::encode`] then need not check them again.
#[derive(Debug, Default)]
pub struct CheckedEntries<'a> {
    entries: Vec<BulkEntry<'a>>,
}

impl<'a> CheckedEntries<'a> {
    /// No entries yet, with room for `capacity`.
    pub fn with_capacity(capacity: usize) -> Self {
        CheckedEntries {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Appends `entry`, or fails with the error inserting it into an
    /// [`super::IndexBuilder`] gives (and then leaves the entries as they were).
    pub fn push(&mut self, entry: BulkEntry<'a>) -> Result<(), IndexError> {
        check_entry(entry.key, entry.value)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The index file of the entries laid out in `order`, as [`encode_bulk`] gives it.
    pub fn encode(&self, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
        let trie = BulkTrie::build(&self.entries);
        let layout = checked_layout(&trie, order)?;
        Ok(to_vec(&trie, &layout))
    }
}

/// A node: its edge label and ranges of [`BulkTrie::children`] and [`BulkTrie::values`].
#[derive(Debug, Clone, Copy)]
struct BulkNode<'a> {
    prefix: &'a [u8],
    children: (u32, u32),
    values: (u32, u32),
}

/// A trie whose nodes are numbered in pre-order and borrow the entries' bytes.
#[derive(Debug, Default)]
struct BulkTrie<'a> {
    nodes: Vec<BulkNode<'a>>,
    children: Vec<(u8, NodeId)>,
    values: Vec<(u32, &'a [u8])>,
}

/// Keys sorted and deduplicated, each with its range of values in kmod's order.
struct SortedKeys<'a> {
    keys: Vec<&'a [u8]>,
    ranges: Vec<(u32, u32)>,
    values: Vec<(u32, &'a [u8])>,
}

/// The bytes of `key` from `depth` on, eight of them as a big-endian word, padded with NULs.
///
/// Keys hold no NUL (they are checked), so comparing these words compares the keys' bytes
/// from `depth` on, a key that ends first being the smaller one.
fn key_word(key: &[u8], depth: usize) -> u64 {
    let rest = key.get(depth..).unwrap_or_default();
    match rest.first_chunk::<8>() {
        Some(word) => u64::from_be_bytes(*word),
        None => rest
            .iter()
            .zip((0..8).rev())
            .fold(0, |word, (&byte, lane)| {
                word | u64::from(byte) << (8 * lane)
            }),
    }
}

/// The positions of `keys` in ascending order of their bytes (equal keys in any order).
///
/// A most-significant-first radix sort on eight bytes at a time: the keys are sorted by
/// their first word, then each run of keys that agree on it by the next word, and so on.
/// Comparing words is much cheaper than comparing slices, and index keys share long prefixes
/// (`symbol:`, `pci:v0000`). The keys must hold no NUL byte: a run whose word ends in NUL
/// is a run of equal keys.
fn key_order(keys: &[&[u8]]) -> Vec<u32> {
    let mut order: Vec<(u64, u32)> = (0..keys.len() as u32).map(|i| (0, i)).collect();
    // Runs of `order` still to sort: (start, end, depth of the bytes they agree on).
    let mut pending = vec![(0, order.len(), 0)];
    while let Some((start, end, depth)) = pending.pop() {
        let run = &mut order[start..end];
        for item in run.iter_mut() {
            item.0 = key_word(keys[item.1 as usize], depth);
        }
        run.sort_unstable_by_key(|&(word, _)| word);
        let mut at = start;
        for same in run.chunk_by(|a, b| a.0 == b.0) {
            let key_goes_on = same[0].0 & 0xff != 0;
            if same.len() > 1 && key_goes_on {
                pending.push((at, at + same.len(), depth + 8));
            }
            at += same.len();
        }
    }
    order.into_iter().map(|(_, i)| i).collect()
}

fn sorted_keys<'a>(entries: &[BulkEntry<'a>]) -> SortedKeys<'a> {
    let all_keys: Vec<&[u8]> = entries.iter().map(|e| e.key).collect();
    let sorted = key_order(&all_keys);
    let mut keys = Vec::with_capacity(sorted.len());
    let mut ranges = Vec::with_capacity(sorted.len());
    let mut values = Vec::with_capacity(sorted.len());
    let mut group: Vec<(u32, u32, &[u8])> = Vec::new();
    for run in sorted.chunk_by(|&a, &b| all_keys[a as usize] == all_keys[b as usize]) {
        let start = values.len() as u32;
        if let [only] = run {
            let e = &entries[*only as usize];
            values.push((e.priority, e.value));
        } else {
            // kmod's value list: ascending priority, the newest insert first among equals.
            group.clear();
            group.extend(run.iter().map(|&i| {
                let e = &entries[i as usize];
                (e.priority, i, e.value)
            }));
            group.sort_unstable_by_key(|&(priority, i, _)| (priority, Reverse(i)));
            values.extend(group.iter().map(|&(priority, _, value)| (priority, value)));
        }
        keys.push(all_keys[run[0] as usize]);
        ranges.push((start, values.len() as u32 - start));
    }
    SortedKeys {
        keys,
        ranges,
        values,
    }
}

/// Work left in the pre-order construction: the sorted keys `lo..hi`, which share their
/// first `depth` bytes, become the node referenced from `slot` of `children`.
struct Pending {
    lo: usize,
    hi: usize,
    depth: usize,
    slot: Option<usize>,
}

/// How many leading bytes `a` and `b` share, compared eight at a time.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let mut at = 0;
    while at + 8 <= len {
        let x = u64::from_ne_bytes(a[at..at + 8].try_into().unwrap_or_default());
        let y = u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        if x != y {
            let differ = (x ^ y).to_le();
            return at + (differ.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..len]
        .iter()
        .zip(&b[at..len])
        .take_while(|(x, y)| x == y)
        .count()
}

/// For each sorted key, how many leading bytes it shares with the one before it (0 for the
/// first).
///
/// The trie is the tree of these values: the keys below a node that ends at byte `end` form
/// a run in which every value after the first is at least `end`, and its children start
/// exactly where the value is `end`. Finding them scans this array of integers instead of
/// reading the keys, and the scans of all nodes together read no more entries than the keys
/// hold bytes.
fn shared_with_previous(keys: &[&[u8]]) -> Vec<u32> {
    let mut shared = Vec::with_capacity(keys.len());
    shared.extend(keys.first().map(|_| 0));
    shared.extend(
        keys.windows(2)
            .map(|pair| common_prefix_len(pair[0], pair[1]) as u32),
    );
    shared
}

impl<'a> BulkTrie<'a> {
    /// The trie of `entries`, which have been checked ([`CheckedEntries`]). Nodes are
    /// numbered in pre-order.
    fn build(entries: &[BulkEntry<'a>]) -> Self {
        let SortedKeys {
            keys,
            ranges,
            values,
        } = sorted_keys(entries);
        let shared = shared_with_previous(&keys);
        let mut trie = BulkTrie {
            nodes: Vec::with_capacity(keys.len() * 2),
            children: Vec::with_capacity(keys.len() * 2),
            values,
        };
        let mut stack = vec![Pending {
            lo: 0,
            hi: keys.len(),
            depth: 0,
            slot: None,
        }];
        let mut groups: Vec<Pending> = Vec::new();
        while let Some(Pending {
            lo,
            hi,
            depth,
            slot,
        }) = stack.pop()
        {
            let id = trie.nodes.len() as NodeId;
            if let Some(slot) = slot {
                trie.children[slot].1 = id;
            }
            // The root's label is always empty; below it, a node's label runs as far as all
            // its keys agree: a lone key's whole rest, else the least that neighbours share.
            let end = match slot {
                None => 0,
                Some(_) if hi - lo == 1 => keys[lo].len(),
                Some(_) => shared[lo + 1..hi].iter().copied().min().unwrap_or(0) as usize,
            };
            let mut next = lo;
            let mut node_values = (0, 0);
            if next < hi && keys[next].len() == end {
                node_values = ranges[next];
                next += 1;
            }
            let first_child = trie.children.len() as u32;
            groups.clear();
            while next < hi {
                let ch = keys[next][end];
                let len = 1 + shared[next + 1..hi]
                    .iter()
                    .take_while(|&&n| n as usize != end)
                    .count();
                groups.push(Pending {
                    lo: next,
                    hi: next + len,
                    depth: end + 1,
                    slot: Some(trie.children.len()),
                });
                trie.children.push((ch, 0));
                next += len;
            }
            trie.nodes.push(BulkNode {
                prefix: keys.get(lo).map_or(&[][..], |key| &key[depth..end]),
                children: (first_child, trie.children.len() as u32 - first_child),
                values: node_values,
            });
            stack.extend(groups.drain(..).rev());
        }
        trie
    }
}

impl TrieNodes for BulkTrie<'_> {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn prefix(&self, id: NodeId) -> &[u8] {
        self.nodes[id as usize].prefix
    }
    fn children(&self, id: NodeId) -> &[(u8, NodeId)] {
        let (start, len) = self.nodes[id as usize].children;
        &self.children[start as usize..(start + len) as usize]
    }
    fn value_count(&self, id: NodeId) -> usize {
        self.nodes[id as usize].values.1 as usize
    }
    fn values(&self, id: NodeId) -> impl Iterator<Item = (u32, &[u8])> {
        let (start, len) = self.nodes[id as usize].values;
        self.values[start as usize..(start + len) as usize]
            .iter()
            .copied()
    }
    fn numbered_in_preorder(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys over a small alphabet of 1..=127, so that long shared prefixes and duplicates are
    /// common, of lengths around the eight-byte word.
    fn keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let byte = prop_oneof![Just(1u8), Just(b'a'), Just(b'b'), Just(0x7fu8), 1u8..=0x7f];
        proptest::collection::vec(proptest::collection::vec(byte, 0..20), 0..60)
    }

    proptest! {
        /// The radix order sorts the keys as comparing the slices does.
        #[test]
        fn key_order_sorts_like_slices(keys in keys()) {
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let order = key_order(&keys);
            let mut seen: Vec<u32> = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..keys.len() as u32).collect::<Vec<_>>());
            let by_radix: Vec<&[u8]> = order.iter().map(|&i| keys[i as usize]).collect();
            let mut by_slice = keys.clone();
            by_slice.sort_unstable();
            prop_assert_eq!(by_radix, by_slice);
        }
    }

    proptest! {
        /// The word-at-a-time prefix length is the byte-by-byte one.
        #[test]
        fn common_prefix_len_counts_like_bytes(a in keys(), b in keys()) {
            for (x, y) in a.iter().zip(&b) {
                let naive = x.iter().zip(y).take_while(|(p, q)| p == q).count();
                prop_assert_eq!(common_prefix_len(x, y), naive);
                prop_assert_eq!(common_prefix_len(x, x), x.len());
            }
        }

        /// Over keys that share prefixes longer than a word, the bulk trie gives the bytes of
        /// inserting one by one, in both layouts.
        #[test]
        fn long_shared_prefixes_encode_like_inserting(keys in keys()) {
            let entries: Vec<BulkEntry<'_>> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| BulkEntry { key, value: &key[..key.len() / 2], priority: i as u32 % 3 })
                .collect();
            let mut builder = crate::index::IndexBuilder::new();
            for e in &entries {
                builder.insert(e.key, e.value, e.priority).unwrap();
            }
            for order in [NodeOrder::Pre, NodeOrder::Post] {
                prop_assert_eq!(encode_bulk(&entries, order).unwrap(), builder.to_bytes(order).unwrap());
            }
        }
    }

    #[test]
    fn shared_prefixes_longer_than_a_word() {
        let keys: Vec<&[u8]> = vec![
            b"symbol:abcdefgh2",
            b"symbol:abcdefgh",
            b"symbol:abcdefgh1",
            b"symbol:",
            b"",
            b"symbol:abcdefgh",
        ];
        let sorted: Vec<&[u8]> = key_order(&keys).iter().map(|&i| keys[i as usize]).collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
    }
}
