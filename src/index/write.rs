//! Serialising a trie in kmod's pre-order (kmod ≥ 34) or post-order (kmod ≤ 33) node
//! layout.
//!
//! Encoding is separate from I/O: [`IndexBuilder::prepare`] computes every node's size
//! bottom-up and derives every node's offset from those sizes (no seeks, no patching);
//! [`PreparedIndex`] then emits the nodes in the requested order, to memory or in chunks to a
//! writer. (The bulk builder, [`super::bulk`], writes its nodes as it finds them and needs
//! no layout; it shares the functions here that append a node's pieces.)

use std::io::Write;

use super::error::IndexError;
use super::format::{
    FLAG_CHILDREN, FLAG_PREFIX, FLAG_VALUES, HEADER_LEN, MAGIC, MAX_FILE_LEN, VERSION,
};
use super::trie::{IndexBuilder, Node, NodeId};
use super::NodeOrder;

/// The flag bits of a reference to `id`.
fn flags(nodes: &[Node], id: NodeId) -> u32 {
    let node = &nodes[id as usize];
    reference_flags(
        !node.prefix.is_empty(),
        !node.children.is_empty(),
        !node.values.is_empty(),
    )
}

/// Bytes taken by `id` itself (not its children).
fn node_size(node: &Node) -> u64 {
    let mut size = 0u64;
    if !node.prefix.is_empty() {
        size += node.prefix.len() as u64 + 1;
    }
    if let (Some(first), Some(last)) = (node.children.first(), node.children.last()) {
        size += 2 + 4 * (u64::from(last.0 - first.0) + 1);
    }
    if !node.values.is_empty() {
        size += 4;
        size += node
            .values
            .iter()
            .map(|v| 4 + v.value.len() as u64 + 1)
            .sum::<u64>();
    }
    size
}

/// Node ids in pre-order: a node, then its children's subtrees by ascending character.
fn preorder(nodes: &[Node]) -> Vec<NodeId> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<NodeId> = vec![0];
    while let Some(id) = stack.pop() {
        order.push(id);
        stack.extend(nodes[id as usize].children.iter().rev().map(|&(_, c)| c));
    }
    order
}

/// Where every node goes: its offset, and the order in which nodes are emitted.
struct Layout {
    offset: Vec<u64>,
    emit_order: Vec<NodeId>,
    file_len: u64,
}

/// [`layout`], failing with [`IndexError::TooLarge`] if the file would exceed the 256 MiB
/// that 28-bit offsets can address.
fn checked_layout(nodes: &[Node], order: NodeOrder) -> Result<Layout, IndexError> {
    let layout = layout(nodes, order);
    if layout.file_len > MAX_FILE_LEN {
        return Err(IndexError::TooLarge {
            size: layout.file_len,
        });
    }
    Ok(layout)
}

fn layout(nodes: &[Node], order: NodeOrder) -> Layout {
    let pre = preorder(nodes);
    let size: Vec<u64> = nodes.iter().map(node_size).collect();
    // Subtree totals, children before parents (reverse pre-order).
    let mut total = size.clone();
    for &id in pre.iter().rev() {
        let sum: u64 = nodes[id as usize]
            .children
            .iter()
            .map(|&(_, c)| total[c as usize])
            .sum();
        total[id as usize] += sum;
    }
    // Each subtree occupies a contiguous range; children's subtrees follow each other in
    // ascending character order, after the node itself (pre-order) or before it (post-order).
    let mut subtree_start = vec![0u64; nodes.len()];
    let mut offset = vec![0u64; nodes.len()];
    subtree_start[0] = HEADER_LEN as u64;
    for &id in &pre {
        let i = id as usize;
        let (own, mut next_child) = match order {
            NodeOrder::Pre => (subtree_start[i], subtree_start[i] + size[i]),
            NodeOrder::Post => (subtree_start[i] + total[i] - size[i], subtree_start[i]),
        };
        offset[i] = own;
        for &(_, c) in &nodes[id as usize].children {
            subtree_start[c as usize] = next_child;
            next_child += total[c as usize];
        }
    }
    let emit_order = match order {
        NodeOrder::Pre => pre,
        NodeOrder::Post => {
            let mut post = pre;
            // Post-order = pre-order of the mirrored tree, reversed; equivalently sort by offset.
            post.sort_unstable_by_key(|&id| offset[id as usize]);
            post
        }
    };
    Layout {
        offset,
        emit_order,
        file_len: HEADER_LEN as u64 + total[0],
    }
}

/// Appends `word` big-endian, as every integer of the format is stored.
fn put_u32(out: &mut Vec<u8>, word: u32) {
    out.extend_from_slice(&word.to_be_bytes());
}

// The pieces of a node, shared with the bulk builder (`super::bulk`); the patcher
// (`super::patch`) shares the reference flags.

/// The flag bits of a reference to a node with (or without) a label, children and values.
pub(super) fn reference_flags(prefix: bool, children: bool, values: bool) -> u32 {
    let mut flags = 0;
    if prefix {
        flags |= FLAG_PREFIX;
    }
    if children {
        flags |= FLAG_CHILDREN;
    }
    if values {
        flags |= FLAG_VALUES;
    }
    flags
}

/// Appends the file's header: magic, version and the root's reference.
pub(super) fn put_header(out: &mut Vec<u8>, root_reference: u32) {
    put_u32(out, MAGIC);
    put_u32(out, VERSION);
    put_u32(out, root_reference);
}

/// Writes a reference at `at` (a child table's slot, or the header's root reference).
pub(super) fn set_reference(out: &mut [u8], at: usize, reference: u32) {
    out[at..at + 4].copy_from_slice(&reference.to_be_bytes());
}

/// Appends a node's label (if any) and its NUL.
pub(super) fn put_prefix(out: &mut Vec<u8>, prefix: &[u8]) {
    if !prefix.is_empty() {
        out.extend_from_slice(prefix);
        out.push(0);
    }
}

/// Appends a child table for the characters `first..=last`, every slot zero, and returns
/// where its slots start.
pub(super) fn put_child_table(out: &mut Vec<u8>, first: u8, last: u8) -> usize {
    out.push(first);
    out.push(last);
    let table = out.len();
    out.resize(table + 4 * (usize::from(last - first) + 1), 0);
    table
}

/// Appends a node's value list: its count, then each `(priority, value)` and a NUL.
pub(super) fn put_values<'v>(
    out: &mut Vec<u8>,
    values: impl ExactSizeIterator<Item = (u32, &'v [u8])>,
) {
    put_u32(out, values.len() as u32);
    for (priority, value) in values {
        put_u32(out, priority);
        out.extend_from_slice(value);
        out.push(0);
    }
}

/// Bytes gathered before they are handed to the writer.
const CHUNK: usize = 64 * 1024;

/// An index whose layout is computed and whose size is known to fit the format: writing it
/// can then fail only on I/O.
#[derive(Debug)]
pub struct PreparedIndex {
    builder: IndexBuilder,
    layout: Layout,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("file_len", &self.file_len)
            .finish_non_exhaustive()
    }
}

impl PreparedIndex {
    /// Size of the index file in bytes.
    pub fn len(&self) -> u64 {
        self.layout.file_len
    }

    /// Whether the file is empty (never: it has at least its header and root).
    pub fn is_empty(&self) -> bool {
        self.layout.file_len == 0
    }

    /// Writes the file to `out` in chunks of 64 KiB, so that a large index (a deep tree's
    /// `modules.dep.bin`) never exists twice in memory.
    pub fn write_to<W: Write>(&self, mut out: W) -> std::io::Result<()> {
        let mut chunk = Vec::with_capacity(CHUNK + 4096);
        emit(
            self.builder.nodes.as_slice(),
            &self.layout,
            &mut chunk,
            CHUNK,
            |chunk| write_chunk(&mut out, chunk),
        )?;
        out.flush()
    }

    /// The whole file in memory.
    pub fn to_vec(&self) -> Vec<u8> {
        to_vec(self.builder.nodes.as_slice(), &self.layout)
    }
}

fn to_vec(nodes: &[Node], layout: &Layout) -> Vec<u8> {
    // Emitted straight into the file's buffer: no chunk is ever handed on.
    let mut bytes = Vec::with_capacity(layout.file_len as usize);
    let result: std::io::Result<()> = emit(nodes, layout, &mut bytes, usize::MAX, |_| Ok(()));
    debug_assert!(result.is_ok());
    debug_assert_eq!(bytes.len() as u64, layout.file_len);
    bytes
}

/// Appends the file to `chunk` node by node, handing it to `flush` (which empties it)
/// whenever it holds `flush_at` bytes or more, and once at the end.
fn emit(
    nodes: &[Node],
    layout: &Layout,
    chunk: &mut Vec<u8>,
    flush_at: usize,
    mut flush: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    // Every offset is below file_len ≤ 2^28, so it fits the 28-bit field.
    let reference = |id: NodeId| layout.offset[id as usize] as u32 | flags(nodes, id);
    put_header(chunk, reference(0));
    for &id in &layout.emit_order {
        let node = &nodes[id as usize];
        put_prefix(chunk, &node.prefix);
        let children = &node.children;
        if let (Some(&(first, _)), Some(&(last, _))) = (children.first(), children.last()) {
            // Each child's reference in its slot (most slots of a child table are empty).
            let table = put_child_table(chunk, first, last);
            for &(ch, child) in children {
                set_reference(chunk, table + 4 * usize::from(ch - first), reference(child));
            }
        }
        if !node.values.is_empty() {
            put_values(
                chunk,
                node.values.iter().map(|v| (v.priority, &v.value[..])),
            );
        }
        if chunk.len() >= flush_at {
            flush(chunk)?;
        }
    }
    flush(chunk)
}

/// Hands `chunk` to `out` and empties it.
fn write_chunk(out: &mut impl Write, chunk: &mut Vec<u8>) -> std::io::Result<()> {
    out.write_all(chunk)?;
    chunk.clear();
    Ok(())
}

impl IndexBuilder {
    fn checked_layout(&self, order: NodeOrder) -> Result<Layout, IndexError> {
        checked_layout(self.nodes.as_slice(), order)
    }

    /// Lays the index out in `order` for writing later.
    ///
    /// Fails with [`IndexError::TooLarge`] if the file would exceed the 256 MiB that 28-bit
    /// offsets can address.
    pub fn prepare(self, order: NodeOrder) -> Result<PreparedIndex, IndexError> {
        let layout = self.checked_layout(order)?;
        Ok(PreparedIndex {
            builder: self,
            layout,
        })
    }

    /// The index file, byte for byte as kmod writes it in `order`.
    ///
    /// Fails with [`IndexError::TooLarge`] if the file would exceed the 256 MiB that 28-bit
    /// offsets can address.
    pub fn to_bytes(&self, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
        Ok(to_vec(self.nodes.as_slice(), &self.checked_layout(order)?))
    }

    /// Writes the index file to `out`, in chunks (see [`PreparedIndex::write_to`]).
    pub fn write_to<W: Write>(&self, order: NodeOrder, mut out: W) -> Result<(), IndexError> {
        let layout = self.checked_layout(order)?;
        let mut chunk = Vec::with_capacity(CHUNK + 4096);
        emit(self.nodes.as_slice(), &layout, &mut chunk, CHUNK, |chunk| {
            write_chunk(&mut out, chunk)
        })?;
        out.flush()?;
        Ok(())
    }
}
