//! Building a whole index at once from its entries: sort them by key, then write the trie
//! straight from the sorted keys.
//!
//! The bytes are the same as inserting every entry into [`IndexBuilder`] in the given order
//! (a trie's shape depends only on its set of keys, and a key's value list only on the order
//! of that key's inserts), but no node is ever held in memory: each is written to the file
//! as soon as it is found. A node's edge label is the longest prefix its keys share; its
//! children are the groups of its keys by their next character, each a run of the sorted
//! keys. In kmod 34's pre-order layout a node is written before its children, and each
//! child's reference is filled into its parent's table when the child is written; in the
//! post-order layout of kmod 33 and before, a node is written after its children, whose
//! references it then knows.
//!
//! [`IndexBuilder`] stays the incremental builder (and reports duplicates as they are
//! inserted, which `depmod -w` needs).
//!
//! [`IndexBuilder`]: super::IndexBuilder

use super::error::IndexError;
use super::format::MAX_FILE_LEN;
use super::trie::check_entry;
use super::write::{
    put_child_table, put_header, put_prefix, put_values, reference_flags, set_reference,
};
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
    CheckedEntries::from_entries(entries.iter().copied())?.encode(order)
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

    /// `entries` in insertion order, each checked; fails at the first that
    /// [`CheckedEntries::push`] refuses.
    pub fn from_entries(
        entries: impl IntoIterator<Item = BulkEntry<'a>>,
    ) -> Result<Self, IndexError> {
        let entries = entries.into_iter();
        let mut checked = CheckedEntries::with_capacity(entries.size_hint().0);
        for entry in entries {
            checked.push(entry)?;
        }
        Ok(checked)
    }

    /// Appends `entry`, or fails with the error inserting it into an
    /// [`super::IndexBuilder`] gives (and then leaves the entries as they were).
    pub fn push(&mut self, entry: BulkEntry<'a>) -> Result<(), IndexError> {
        check_entry(entry.key, entry.value)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The index file of the entries laid out in `order`, as [`encode_bulk`] gives it.
    ///
    /// Fails with [`IndexError::TooLarge`] if the file would exceed the 256 MiB that 28-bit
    /// offsets can address.
    pub fn encode(&self, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
        let keys = SortedKeys::new(&self.entries);
        let bytes = match order {
            NodeOrder::Pre => write_preorder(&keys),
            NodeOrder::Post => write_postorder(&keys),
        };
        // Past 28 bits an offset has spilled into a reference's flags: the bytes are dropped.
        let size = bytes.len() as u64;
        if size > MAX_FILE_LEN {
            return Err(IndexError::TooLarge { size });
        }
        Ok(bytes)
    }
}

/// The entries by key: each distinct key with its entries in kmod's value order, and how
/// many leading bytes it shares with the key before it.
struct SortedKeys<'e, 'a> {
    entries: &'e [BulkEntry<'a>],
    /// Positions in `entries` (the second of each pair; the first is scratch space for
    /// sorting), by ascending key; a key's entries by ascending priority, the newest insert
    /// first among equals.
    order: Vec<(u64, u32)>,
    /// Each distinct key, in order (what [`SortedKeys::node`] reads most).
    keys: Vec<&'a [u8]>,
    /// Where each distinct key's entries start in `order`, then `order.len()`.
    starts: Vec<u32>,
    /// For each distinct key, how many leading bytes it shares with the one before it (0 for
    /// the first).
    ///
    /// The trie is the tree of these values: the keys below a node that ends at byte `end`
    /// form a run in which every value after the first is at least `end`, and its children
    /// start exactly where the value is `end`. Finding them scans this array of integers
    /// instead of reading the keys, and the scans of all nodes together read no more
    /// entries than the keys hold bytes.
    shared: Vec<u32>,
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

/// The positions `0..count` (second of each pair) in ascending order of their keys, which
/// `key` gives (equal keys in any order).
///
/// A most-significant-first radix sort on eight bytes at a time: the keys are sorted by
/// their first word, then each run of keys that agree on it by the next word, and so on.
/// Comparing words is much cheaper than comparing slices, and index keys share long prefixes
/// (`symbol:`, `pci:v0000`). The keys must hold no NUL byte: a run whose word ends in NUL
/// is a run of equal keys.
fn key_order<'k>(count: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<(u64, u32)> {
    let mut order: Vec<(u64, u32)> = (0..count as u32).map(|i| (0, i)).collect();
    // Runs of `order` still to sort: (start, end, depth of the bytes they agree on).
    let mut pending = vec![(0, order.len(), 0)];
    while let Some((start, end, depth)) = pending.pop() {
        let run = &mut order[start..end];
        for item in run.iter_mut() {
            item.0 = key_word(key(item.1 as usize), depth);
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
    order
}

impl<'e, 'a> SortedKeys<'e, 'a> {
    /// The keys of `entries`, which have been checked ([`CheckedEntries`]).
    fn new(entries: &'e [BulkEntry<'a>]) -> Self {
        let mut order = key_order(entries.len(), |i| entries[i].key);
        let mut keys = Vec::with_capacity(entries.len());
        let mut starts = Vec::with_capacity(entries.len() + 1);
        let mut shared = Vec::with_capacity(entries.len());
        let mut previous: Option<&[u8]> = None;
        for (at, &(_, i)) in order.iter().enumerate() {
            let key = entries[i as usize].key;
            let common = previous.map_or(0, |previous| common_prefix_len(previous, key));
            if previous.is_some_and(|previous| common == previous.len() && common == key.len()) {
                continue;
            }
            keys.push(key);
            starts.push(at as u32);
            shared.push(common as u32);
            previous = Some(key);
        }
        starts.push(order.len() as u32);
        // kmod's value list: ascending priority, the newest insert first among equals.
        for run in starts.windows(2) {
            let run = &mut order[run[0] as usize..run[1] as usize];
            if run.len() > 1 {
                for item in run.iter_mut() {
                    let priority = entries[item.1 as usize].priority;
                    item.0 = u64::from(priority) << 32 | u64::from(u32::MAX - item.1);
                }
                run.sort_unstable_by_key(|&(word, _)| word);
            }
        }
        SortedKeys {
            entries,
            order,
            keys,
            starts,
            shared,
        }
    }

    /// How many distinct keys there are.
    fn len(&self) -> usize {
        self.shared.len()
    }

    /// The `k`th distinct key.
    fn key(&self, k: usize) -> &'a [u8] {
        self.keys[k]
    }

    /// The entries of the `k`th distinct key, in kmod's value order.
    fn values(&self, k: usize) -> impl ExactSizeIterator<Item = &BulkEntry<'a>> {
        let run = self.starts[k] as usize..self.starts[k + 1] as usize;
        self.order[run]
            .iter()
            .map(|&(_, i)| &self.entries[i as usize])
    }

    /// About the size of the file: every key and value once, with room for the rest. Only a
    /// hint for the capacity of the output.
    fn size_hint(&self) -> usize {
        let bytes: usize = self
            .entries
            .iter()
            .map(|e| e.key.len() + e.value.len() + 16)
            .sum();
        bytes + 64
    }

    /// The node made of the distinct keys `lo..hi`, which share their first `depth` bytes;
    /// `groups` is left holding its children.
    ///
    /// The root's label is always empty; below it, a node's label runs as far as all its keys
    /// agree: a lone key's whole rest, else the least that neighbours share. A key that ends
    /// there holds the node's values; the others go to the children by their next byte.
    fn node(&self, lo: usize, hi: usize, depth: usize, groups: &mut Vec<Group>) -> NodeShape<'a> {
        // Below the root, every node's keys share at least the byte that leads to it.
        let root = depth == 0;
        let end = match hi - lo {
            _ if root => 0,
            1 => self.key(lo).len(),
            _ => self.shared[lo + 1..hi].iter().copied().min().unwrap_or(0) as usize,
        };
        let mut next = lo;
        let mut value_key = None;
        if next < hi && self.key(next).len() == end {
            value_key = Some(next);
            next += 1;
        }
        groups.clear();
        while next < hi {
            let len = 1 + self.shared[next + 1..hi]
                .iter()
                .take_while(|&&n| n as usize != end)
                .count();
            groups.push(Group {
                byte: self.key(next)[end],
                lo: next,
                hi: next + len,
            });
            next += len;
        }
        let prefix = match lo < hi {
            true => &self.key(lo)[depth..end],
            false => &[],
        };
        NodeShape {
            prefix,
            end,
            value_key,
        }
    }
}

/// A child of a node: the distinct keys `lo..hi`, whose byte after the node's label is
/// `byte`.
struct Group {
    byte: u8,
    lo: usize,
    hi: usize,
}

/// What a node holds besides its children.
#[derive(Clone, Copy)]
struct NodeShape<'a> {
    /// Its edge label.
    prefix: &'a [u8],
    /// Where its label ends in its keys.
    end: usize,
    /// The distinct key whose values it holds.
    value_key: Option<usize>,
}

impl NodeShape<'_> {
    /// The flag bits of a reference to the node.
    fn flags(&self, has_children: bool) -> u32 {
        reference_flags(
            !self.prefix.is_empty(),
            has_children,
            self.value_key.is_some(),
        )
    }
}

/// Where the root's reference goes: the header's third word.
const ROOT_REFERENCE: usize = 8;

/// The file's header, with the root's reference still zero (filled in when the root is
/// written), in a buffer with room for about the whole file.
fn header(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    put_header(&mut out, 0);
    out
}

/// Appends the values of the distinct key `k`, if there is one.
fn put_key_values(out: &mut Vec<u8>, keys: &SortedKeys<'_, '_>, k: Option<usize>) {
    if let Some(k) = k {
        put_values(
            out,
            keys.values(k).map(|entry| (entry.priority, entry.value)),
        );
    }
}

/// The file in kmod 34's pre-order layout: each node, then its children's subtrees by
/// ascending character.
///
/// Nodes are written as they are found, depth first; a node's child table is written with
/// empty slots, and each child fills its slot when it is written.
fn write_preorder(keys: &SortedKeys<'_, '_>) -> Vec<u8> {
    let mut out = header(keys.size_hint());
    // Nodes to write: the distinct keys lo..hi, their depth, and where their reference goes.
    let mut stack = vec![(0, keys.len(), 0, ROOT_REFERENCE)];
    let mut groups = Vec::new();
    while let Some((lo, hi, depth, reference_at)) = stack.pop() {
        let node = keys.node(lo, hi, depth, &mut groups);
        let reference = out.len() as u32 | node.flags(!groups.is_empty());
        set_reference(&mut out, reference_at, reference);
        put_prefix(&mut out, node.prefix);
        if let (Some(first), Some(last)) = (groups.first(), groups.last()) {
            let (first, last) = (first.byte, last.byte);
            let table = put_child_table(&mut out, first, last);
            let slot = |byte: u8| table + 4 * usize::from(byte - first);
            let children = groups.iter().rev();
            stack.extend(children.map(|g| (g.lo, g.hi, node.end + 1, slot(g.byte))));
        }
        put_key_values(&mut out, keys, node.value_key);
    }
    out
}

/// Work in the post-order walk.
enum Step<'a> {
    /// Find the node of the distinct keys `lo..hi` at `depth`, reached by `byte`.
    Visit {
        lo: usize,
        hi: usize,
        depth: usize,
        byte: u8,
    },
    /// Write the node, whose children's references start at `children` in the list of
    /// written nodes.
    Write {
        node: NodeShape<'a>,
        byte: u8,
        children: usize,
    },
}

/// The file in the post-order layout of kmod 33 and before: each node's children's subtrees
/// by ascending character, then the node.
///
/// Each node is written once its children are, from their references, which wait on a stack
/// until then.
fn write_postorder(keys: &SortedKeys<'_, '_>) -> Vec<u8> {
    let mut out = header(keys.size_hint());
    let (lo, hi, depth, byte) = (0, keys.len(), 0, 0);
    let mut steps = vec![Step::Visit {
        lo,
        hi,
        depth,
        byte,
    }];
    // The byte and reference of each node written whose parent is not yet.
    let mut written: Vec<(u8, u32)> = Vec::new();
    let mut groups = Vec::new();
    while let Some(step) = steps.pop() {
        match step {
            Step::Visit {
                lo,
                hi,
                depth,
                byte,
            } => {
                let node = keys.node(lo, hi, depth, &mut groups);
                let children = written.len();
                steps.push(Step::Write {
                    node,
                    byte,
                    children,
                });
                steps.extend(groups.iter().rev().map(|g| Step::Visit {
                    lo: g.lo,
                    hi: g.hi,
                    depth: node.end + 1,
                    byte: g.byte,
                }));
            }
            Step::Write {
                node,
                byte,
                children,
            } => {
                let reference = out.len() as u32 | node.flags(written.len() > children);
                put_prefix(&mut out, node.prefix);
                if let (Some(&(first, _)), Some(&(last, _))) =
                    (written[children..].first(), written[children..].last())
                {
                    let table = put_child_table(&mut out, first, last);
                    for &(child, child_reference) in &written[children..] {
                        let slot = table + 4 * usize::from(child - first);
                        set_reference(&mut out, slot, child_reference);
                    }
                }
                put_key_values(&mut out, keys, node.value_key);
                written.truncate(children);
                written.push((byte, reference));
            }
        }
    }
    if let Some(&(_, root)) = written.first() {
        set_reference(&mut out, ROOT_REFERENCE, root);
    }
    out
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
            let order: Vec<u32> = key_order(keys.len(), |i| keys[i]).iter().map(|&(_, i)| i).collect();
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

    /// A file past the 28-bit offsets is refused with the size the incremental builder
    /// reports, in both layouts.
    #[test]
    fn too_large_is_refused_like_the_builder() {
        let big = vec![b'v'; 90 << 20];
        let entries: Vec<BulkEntry<'_>> = [&b"a"[..], b"b", b"c"]
            .into_iter()
            .map(|key| BulkEntry {
                key,
                value: &big,
                priority: 0,
            })
            .collect();
        let mut builder = crate::index::IndexBuilder::new();
        for e in &entries {
            builder.insert(e.key, e.value, e.priority).unwrap();
        }
        for order in [NodeOrder::Pre, NodeOrder::Post] {
            let (IndexError::TooLarge { size: bulk }, IndexError::TooLarge { size: one_by_one }) = (
                encode_bulk(&entries, order).unwrap_err(),
                builder.to_bytes(order).unwrap_err(),
            ) else {
                panic!("not refused as too large");
            };
            assert_eq!(bulk, one_by_one);
        }
    }

    /// No entries: a root with nothing, as the builder writes it.
    #[test]
    fn empty_index_is_a_bare_root() {
        let builder = crate::index::IndexBuilder::new();
        for order in [NodeOrder::Pre, NodeOrder::Post] {
            assert_eq!(
                encode_bulk(&[], order).unwrap(),
                builder.to_bytes(order).unwrap()
            );
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
        let sorted: Vec<&[u8]> = key_order(keys.len(), |i| keys[i])
            .iter()
            .map(|&(_, i)| keys[i as usize])
            .collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
    }
}
