//! Serialising an [`IndexBuilder`] in kmod's pre-order (kmod ≥ 34) or post-order (kmod ≤ 33)
//! node layout.
//!
//! Encoding is separate from I/O: [`encode`] computes every node's size bottom-up, derives
//! every node's offset from those sizes (no seeks, no patching), and appends the nodes to a
//! `Vec<u8>` in the requested order. [`IndexBuilder::write_to`] then hands the bytes to a writer.

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

/// The whole index file for `builder` in `order`.
pub(crate) fn encode(builder: &IndexBuilder, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
    let nodes = &builder.nodes;
    let layout = layout(nodes, order);
    if layout.file_len > MAX_FILE_LEN {
        return Err(IndexError::TooLarge {
            size: layout.file_len,
        });
    }
    // Every offset is below file_len ≤ 2^28, so it fits the 28-bit field.
    let reference = |id: NodeId| layout.offset[id as usize] as u32 | flags(&nodes[id as usize]);

    let mut out = Vec::with_capacity(layout.file_len as usize);
    put_u32(&mut out, MAGIC);
    put_u32(&mut out, VERSION);
    put_u32(&mut out, reference(0));
    for &id in &layout.emit_order {
        debug_assert_eq!(out.len() as u64, layout.offset[id as usize]);
        let node = &nodes[id as usize];
        if !node.prefix.is_empty() {
            out.extend_from_slice(&node.prefix);
            out.push(0);
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last())
        {
            out.push(first);
            out.push(last);
            let mut slots = node.children.iter().peekable();
            for ch in first..=last {
                match slots.next_if(|&&(c, _)| c == ch) {
                    Some(&(_, child)) => put_u32(&mut out, reference(child)),
                    None => put_u32(&mut out, 0),
                }
            }
        }
        if !node.values.is_empty() {
            put_u32(&mut out, node.values.len() as u32);
            for v in &node.values {
                put_u32(&mut out, v.priority);
                out.extend_from_slice(&v.value);
                out.push(0);
            }
        }
    }
    debug_assert_eq!(out.len() as u64, layout.file_len);
    Ok(out)
}

impl IndexBuilder {
    /// The index file, byte for byte as kmod writes it in `order`.
    ///
    /// Fails with [`IndexError::TooLarge`] if the file would exceed the 256 MiB that 28-bit
    /// offsets can address.
    pub fn to_bytes(&self, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
        encode(self, order)
    }

    /// Writes the index file to `out` (one `write_all`; wrap files in nothing, the bytes are
    /// already assembled in memory).
    pub fn write_to<W: Write>(&self, order: NodeOrder, mut out: W) -> Result<(), IndexError> {
        let bytes = encode(self, order)?;
        out.write_all(&bytes)?;
        out.flush()?;
        Ok(())
    }
}
