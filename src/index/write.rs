//! Serialising an [`IndexBuilder`] in kmod's pre-order (kmod ≥ 34) or post-order (kmod ≤ 33)
//! node layout.
//!
//! Encoding is separate from I/O: [`IndexBuilder::prepare`] computes every node's size
//! bottom-up and derives every node's offset from those sizes (no seeks, no patching);
//! [`PreparedIndex`] then emits the nodes in the requested order, to memory or in chunks to a
//! writer.

use std::io::Write;

use super::error::IndexError;
use super::format::{
    FLAG_CHILDREN, FLAG_PREFIX, FLAG_VALUES, HEADER_LEN, MAGIC, MAX_FILE_LEN, VERSION,
};
use super::trie::{IndexBuilder, Node, NodeId};
use super::NodeOrder;

/// The flag bits of a reference to `node`.
fn flags(node: &Node) -> u32 {
    let mut flags = 0;
    if !node.prefix.is_empty() {
        flags |= FLAG_PREFIX;
    }
    if !node.children.is_empty() {
        flags |= FLAG_CHILDREN;
    }
    if !node.values.is_empty() {
        flags |= FLAG_VALUES;
    }
    flags
}

/// Bytes taken by `node` itself (not its children).
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
        for &(_, c) in &nodes[i].children {
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

fn put_u32(out: &mut Vec<u8>, word: u32) {
    out.extend_from_slice(&word.to_be_bytes());
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
        emit(&self.builder.nodes, &self.layout, &mut chunk, |chunk| {
            out.write_all(chunk)
        })?;
        out.flush()
    }

    /// The whole file in memory.
    pub fn to_vec(&self) -> Vec<u8> {
        to_vec(&self.builder.nodes, &self.layout)
    }
}

fn to_vec(nodes: &[Node], layout: &Layout) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(layout.file_len as usize);
    let mut staging = Vec::with_capacity(CHUNK + 4096);
    let result: std::io::Result<()> = emit(nodes, layout, &mut staging, |chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    });
    debug_assert!(result.is_ok());
    debug_assert_eq!(bytes.len() as u64, layout.file_len);
    bytes
}

/// Appends the file to `chunk` node by node, handing it to `flush` whenever it holds
/// [`CHUNK`] bytes or more, and once at the end.
fn emit(
    nodes: &[Node],
    layout: &Layout,
    chunk: &mut Vec<u8>,
    mut flush: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    // Every offset is below file_len ≤ 2^28, so it fits the 28-bit field.
    let reference = |id: NodeId| layout.offset[id as usize] as u32 | flags(&nodes[id as usize]);
    put_u32(chunk, MAGIC);
    put_u32(chunk, VERSION);
    put_u32(chunk, reference(0));
    for &id in &layout.emit_order {
        let node = &nodes[id as usize];
        if !node.prefix.is_empty() {
            chunk.extend_from_slice(&node.prefix);
            chunk.push(0);
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last())
        {
            chunk.push(first);
            chunk.push(last);
            let mut slots = node.children.iter().peekable();
            for ch in first..=last {
                match slots.next_if(|&&(c, _)| c == ch) {
                    Some(&(_, child)) => put_u32(chunk, reference(child)),
                    None => put_u32(chunk, 0),
                }
            }
        }
        if !node.values.is_empty() {
            put_u32(chunk, node.values.len() as u32);
            for v in &node.values {
                put_u32(chunk, v.priority);
                chunk.extend_from_slice(&v.value);
                chunk.push(0);
            }
        }
        if chunk.len() >= CHUNK {
            flush(chunk)?;
            chunk.clear();
        }
    }
    flush(chunk)?;
    chunk.clear();
    Ok(())
}

impl IndexBuilder {
    fn checked_layout(&self, order: NodeOrder) -> Result<Layout, IndexError> {
        let layout = layout(&self.nodes, order);
        if layout.file_len > MAX_FILE_LEN {
            return Err(IndexError::TooLarge {
                size: layout.file_len,
            });
        }
        Ok(layout)
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
        Ok(to_vec(&self.nodes, &self.checked_layout(order)?))
    }

    /// Writes the index file to `out`, in chunks (see [`PreparedIndex::write_to`]).
    pub fn write_to<W: Write>(&self, order: NodeOrder, mut out: W) -> Result<(), IndexError> {
        let layout = self.checked_layout(order)?;
        let mut chunk = Vec::with_capacity(CHUNK + 4096);
        emit(&self.nodes, &layout, &mut chunk, |chunk| {
            out.write_all(chunk)
        })?;
        out.flush()?;
        Ok(())
    }
}
