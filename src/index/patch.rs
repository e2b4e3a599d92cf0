//! Changing a few entries of an existing pre-order index file without rebuilding it.
//!
//! [`IndexPatch`] opens only the nodes on the paths of the changed keys; every other subtree
//! stays a byte range of the old file. In pre-order a subtree is contiguous, so an unchanged
//! subtree is copied whole, its child references moved by how far the subtree moved (not at
//! all before the first change). Removing values prunes nodes left empty and merges a node
//! left with one child and no values into that child, so the trie keeps the canonical shape
//! [`super::IndexBuilder`] gives the same set of keys: the patched file is byte for byte the
//! file a full build of the new entries writes.
//!
//! Only kmod 34's pre-order layout is patched; a caller falls back to a full build on any
//! [`PatchError`].

use std::borrow::Cow;
use std::io::Write;

use super::format::{
    FLAG_CHILDREN, FLAG_MASK, FLAG_PREFIX, FLAG_VALUES, HEADER_LEN, MAGIC, MAX_FILE_LEN,
    OFFSET_MASK, VERSION,
};
use super::trie::check_entry;
use super::write::reference_flags;
use super::IndexError;

/// The longest key a patch handles (its descent is recursive); longer keys need a full build.
const MAX_PATCH_KEY_LEN: usize = 4096;

/// Why a patch could not be made; the index must then be built in full.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The old file is not a well-formed pre-order index.
    #[error("the old index is not a well-formed pre-order index (at byte {0})")]
    Malformed(usize),
    /// A value to remove is not in the old index.
    #[error("a value to remove is not in the old index")]
    Missing,
    /// A key is longer than a patch handles.
    #[error("a key is longer than a patch handles")]
    KeyTooLong,
    /// A new entry cannot be stored (the full build reports it).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Writing the patched file failed.
    #[error(transparent)]
    Write(#[from] std::io::Error),
}

/// A reference to an unchanged subtree of the old file: where its root node starts, the flags
/// its parent's reference gave, and where the subtree ends.
#[derive(Debug, Clone, Copy)]
struct OldSubtree {
    offset: usize,
    flags: u32,
    end: usize,
}

/// A node of the patched trie: untouched in the old file, or opened.
#[derive(Debug)]
enum PatchNode<'a> {
    Old(OldSubtree),
    Open(Box<OpenNode<'a>>),
}

/// An opened node; values and labels borrow the old file where they came from it.
#[derive(Debug, Default)]
struct OpenNode<'a> {
    prefix: Vec<u8>,
    values: Vec<(u32, Cow<'a, [u8]>)>,
    children: Vec<(u8, PatchNode<'a>)>,
}

/// An index file being patched (see the module documentation).
#[derive(Debug)]
pub struct IndexPatch<'a> {
    old: &'a [u8],
    root: OpenNode<'a>,
}

fn read_u32(old: &[u8], at: usize) -> Result<u32, PatchError> {
    old.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(PatchError::Malformed(at))
}

/// The end of the NUL-terminated string at `at`, within `limit`.
fn string_end(old: &[u8], at: usize, limit: usize) -> Result<usize, PatchError> {
    old.get(at..limit)
        .and_then(|rest| memchr::memchr(0, rest))
        .map(|len| at + len)
        .ok_or(PatchError::Malformed(at))
}

/// The first and last character of the child references at `at`.
fn child_span(old: &[u8], at: usize) -> Result<(u8, u8), PatchError> {
    match old.get(at..at + 2) {
        Some(&[first, last]) if first <= last && last < 128 => Ok((first, last)),
        _ => Err(PatchError::Malformed(at)),
    }
}

/// The parts of one old node: label, child references (absolute), values, and where the
/// node's own bytes end.
struct ParsedNode<'a> {
    prefix: &'a [u8],
    children: Vec<(u8, u32)>,
    values: Vec<(u32, &'a [u8])>,
    end: usize,
}

fn parse_node(
    old: &[u8],
    offset: usize,
    flags: u32,
    limit: usize,
) -> Result<ParsedNode<'_>, PatchError> {
    let mut at = offset;
    let mut prefix: &[u8] = &[];
    if flags & FLAG_PREFIX != 0 {
        let end = string_end(old, at, limit)?;
        prefix = &old[at..end];
        at = end + 1;
    }
    let mut children = Vec::new();
    if flags & FLAG_CHILDREN != 0 {
        let (first, last) = child_span(old, at)?;
        at += 2;
        for ch in first..=last {
            let reference = read_u32(old, at)?;
            at += 4;
            if reference != 0 {
                children.push((ch, reference));
            }
        }
    }
    let mut values = Vec::new();
    if flags & FLAG_VALUES != 0 {
        let count = read_u32(old, at)? as usize;
        at += 4;
        for _ in 0..count {
            let priority = read_u32(old, at)?;
            let end = string_end(old, at + 4, limit)?;
            values.push((priority, &old[at + 4..end]));
            at = end + 1;
        }
    }
    if at > limit {
        return Err(PatchError::Malformed(at));
    }
    Ok(ParsedNode {
        prefix,
        children,
        values,
        end: at,
    })
}

/// Opens the old node `subtree`: its children become old subtrees, each ending where the next
/// one starts (the last where `subtree` ends).
fn open(old: &[u8], subtree: OldSubtree) -> Result<OpenNode<'_>, PatchError> {
    let parsed = parse_node(old, subtree.offset, subtree.flags, subtree.end)?;
    let mut children = Vec::with_capacity(parsed.children.len());
    let mut start = parsed.end;
    for (i, &(ch, reference)) in parsed.children.iter().enumerate() {
        let offset = (reference & OFFSET_MASK) as usize;
        let end = match parsed.children.get(i + 1) {
            Some(&(_, next)) => (next & OFFSET_MASK) as usize,
            None => subtree.end,
        };
        if offset != start || end <= offset {
            return Err(PatchError::Malformed(offset));
        }
        children.push((
            ch,
            PatchNode::Old(OldSubtree {
                offset,
                flags: reference & FLAG_MASK,
                end,
            }),
        ));
        start = end;
    }
    if start != subtree.end {
        return Err(PatchError::Malformed(start));
    }
    Ok(OpenNode {
        prefix: parsed.prefix.to_vec(),
        values: parsed
            .values
            .into_iter()
            .map(|(p, v)| (p, Cow::Borrowed(v)))
            .collect(),
        children,
    })
}

/// `node`, opened if it was not.
fn opened<'n, 'a>(
    old: &'a [u8],
    node: &'n mut PatchNode<'a>,
) -> Result<&'n mut OpenNode<'a>, PatchError> {
    if let PatchNode::Old(subtree) = *node {
        *node = PatchNode::Open(Box::new(open(old, subtree)?));
    }
    match node {
        PatchNode::Open(open) => Ok(open),
        PatchNode::Old(_) => unreachable!("opened above"),
    }
}

impl<'a> IndexPatch<'a> {
    /// Starts a patch of the index file `old`, which must be in pre-order.
    pub fn new(old: &'a [u8]) -> Result<Self, PatchError> {
        if read_u32(old, 0)? != MAGIC || read_u32(old, 4)? != VERSION {
            return Err(PatchError::Malformed(0));
        }
        let root = read_u32(old, 8)?;
        if (root & OFFSET_MASK) as usize != HEADER_LEN || old.len() as u64 > MAX_FILE_LEN {
            return Err(PatchError::Malformed(8));
        }
        let root = open(
            old,
            OldSubtree {
                offset: HEADER_LEN,
                flags: root & FLAG_MASK,
                end: old.len(),
            },
        )?;
        Ok(IndexPatch { old, root })
    }

    /// Removes every value equal to `value` with `priority` under `key`; fails with
    /// [`PatchError::Missing`] if there is none.
    pub fn remove(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<(), PatchError> {
        if key.len() > MAX_PATCH_KEY_LEN {
            return Err(PatchError::KeyTooLong);
        }
        remove(self.old, &mut self.root, key, value, priority)
    }

    /// Inserts `value` with `priority` under `key` with [`super::IndexBuilder::insert`]'s
    /// rules (before existing values of equal or higher priority).
    pub fn insert(&mut self, key: &[u8], value: &'a [u8], priority: u32) -> Result<(), PatchError> {
        check_entry(key, value)?;
        if key.len() > MAX_PATCH_KEY_LEN {
            return Err(PatchError::KeyTooLong);
        }
        insert(self.old, &mut self.root, key, value, priority)
    }

    /// The patched index file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PatchError> {
        let mut out = Vec::with_capacity(self.size()? as usize);
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the patched index file to `out`, in order (untouched subtrees in large pieces,
    /// the rest in small ones: a file wants a buffer), and returns its length.
    pub fn write_to(&self, out: impl Write) -> Result<u64, PatchError> {
        let size = self.size()?;
        let mut out = Emitter { out, pos: 0 };
        out.put(&MAGIC.to_be_bytes())?;
        out.put(&VERSION.to_be_bytes())?;
        out.put(&(HEADER_LEN as u32 | open_flags(&self.root)).to_be_bytes())?;
        emit_open(self.old, &self.root, &mut out)?;
        debug_assert_eq!(out.pos, size);
        Ok(out.pos)
    }

    /// The length of the patched file.
    fn size(&self) -> Result<u64, PatchError> {
        let size = HEADER_LEN as u64 + open_size(&self.root);
        match size > MAX_FILE_LEN {
            true => Err(IndexError::TooLarge { size }.into()),
            false => Ok(size),
        }
    }
}

/// A writer and the number of bytes written to it (the next byte's file offset).
struct Emitter<W> {
    out: W,
    pos: u64,
}

impl<W: Write> Emitter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), PatchError> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn insert<'a>(
    old: &'a [u8],
    node: &mut OpenNode<'a>,
    key: &[u8],
    value: &'a [u8],
    priority: u32,
) -> Result<(), PatchError> {
    let common = common_prefix(&node.prefix, key);
    if common < node.prefix.len() {
        // Split: the node keeps the shared part; a new child takes the rest of it.
        let mut tail = node.prefix.split_off(common);
        let slot = tail.remove(0);
        let moved = OpenNode {
            prefix: tail,
            values: std::mem::take(&mut node.values),
            children: std::mem::take(&mut node.children),
        };
        node.children = vec![(slot, PatchNode::Open(Box::new(moved)))];
    }
    let rest = &key[common..];
    let Some((&ch, tail)) = rest.split_first() else {
        let at = node.values.partition_point(|(p, _)| *p < priority);
        node.values.insert(at, (priority, Cow::Borrowed(value)));
        return Ok(());
    };
    match node.children.binary_search_by_key(&ch, |(c, _)| *c) {
        Ok(slot) => {
            let child = opened(old, &mut node.children[slot].1)?;
            insert(old, child, tail, value, priority)
        }
        Err(slot) => {
            let leaf = OpenNode {
                prefix: tail.to_vec(),
                values: vec![(priority, Cow::Borrowed(value))],
                children: Vec::new(),
            };
            node.children
                .insert(slot, (ch, PatchNode::Open(Box::new(leaf))));
            Ok(())
        }
    }
}

fn remove<'a>(
    old: &'a [u8],
    node: &mut OpenNode<'a>,
    key: &[u8],
    value: &[u8],
    priority: u32,
) -> Result<(), PatchError> {
    let rest = key
        .strip_prefix(&node.prefix[..])
        .ok_or(PatchError::Missing)?;
    let Some((&ch, tail)) = rest.split_first() else {
        let before = node.values.len();
        node.values
            .retain(|(p, v)| !(*p == priority && v.as_ref() == value));
        return match node.values.len() < before {
            true => Ok(()),
            false => Err(PatchError::Missing),
        };
    };
    let slot = node
        .children
        .binary_search_by_key(&ch, |(c, _)| *c)
        .map_err(|_| PatchError::Missing)?;
    let child = opened(old, &mut node.children[slot].1)?;
    remove(old, child, tail, value, priority)?;
    // Keep the canonical shape: no empty leaf, no value-less node with a single child.
    if child.values.is_empty() {
        match child.children.len() {
            0 => {
                node.children.remove(slot);
            }
            1 => {
                let (ch, only) = child.children.pop().expect("one child");
                let mut only = match only {
                    PatchNode::Old(subtree) => open(old, subtree)?,
                    PatchNode::Open(node) => *node,
                };
                child.prefix.push(ch);
                child.prefix.append(&mut only.prefix);
                child.values = only.values;
                child.children = only.children;
            }
            _ => {}
        }
    }
    Ok(())
}

fn open_flags(node: &OpenNode<'_>) -> u32 {
    reference_flags(
        !node.prefix.is_empty(),
        !node.children.is_empty(),
        !node.values.is_empty(),
    )
}

fn flags_of(node: &PatchNode<'_>) -> u32 {
    match node {
        PatchNode::Old(subtree) => subtree.flags,
        PatchNode::Open(open) => open_flags(open),
    }
}

/// Bytes taken by the open node itself.
fn own_size(node: &OpenNode<'_>) -> u64 {
    let mut size = 0;
    if !node.prefix.is_empty() {
        size += node.prefix.len() as u64 + 1;
    }
    if let (Some(first), Some(last)) = (node.children.first(), node.children.last()) {
        size += 2 + 4 * (u64::from(last.0 - first.0) + 1);
    }
    if !node.values.is_empty() {
        size += 4 + node
            .values
            .iter()
            .map(|(_, v)| 4 + v.len() as u64 + 1)
            .sum::<u64>();
    }
    size
}

fn open_size(node: &OpenNode<'_>) -> u64 {
    own_size(node) + node.children.iter().map(|(_, c)| size_of(c)).sum::<u64>()
}

fn size_of(node: &PatchNode<'_>) -> u64 {
    match node {
        PatchNode::Old(subtree) => (subtree.end - subtree.offset) as u64,
        PatchNode::Open(open) => open_size(open),
    }
}

fn emit_open<W: Write>(
    old: &[u8],
    node: &OpenNode<'_>,
    out: &mut Emitter<W>,
) -> Result<(), PatchError> {
    // The first child's subtree follows the node's own bytes.
    let mut at = out.pos + own_size(node);
    if !node.prefix.is_empty() {
        out.put(&node.prefix)?;
        out.put(&[0])?;
    }
    if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last()) {
        out.put(&[first, last])?;
        let mut slots = node.children.iter().peekable();
        for ch in first..=last {
            match slots.next_if(|(c, _)| *c == ch) {
                Some((_, child)) => {
                    out.put(&(at as u32 | flags_of(child)).to_be_bytes())?;
                    at += size_of(child);
                }
                None => out.put(&0u32.to_be_bytes())?,
            }
        }
    }
    if !node.values.is_empty() {
        out.put(&(node.values.len() as u32).to_be_bytes())?;
        for (priority, value) in &node.values {
            out.put(&priority.to_be_bytes())?;
            out.put(value)?;
            out.put(&[0])?;
        }
    }
    for (_, child) in &node.children {
        match child {
            PatchNode::Old(subtree) => copy_moved(old, *subtree, out)?,
            PatchNode::Open(open) => emit_open(old, open, out)?,
        }
    }
    Ok(())
}

/// Writes the old `subtree` to `out`, its child references moved by the distance it moved:
/// the bytes between child tables are written as they are, each table with its references
/// rewritten.
///
/// Only the child tables are read: each node is reached through its parent's reference, so
/// values need not be skipped over. Nodes are visited depth first, which in a pre-order
/// file is ascending offset order; an offset that does not ascend, or a table that does not
/// lie after the previous one, is malformed (and the visit cannot loop).
fn copy_moved<W: Write>(
    old: &[u8],
    subtree: OldSubtree,
    out: &mut Emitter<W>,
) -> Result<(), PatchError> {
    let bytes = old
        .get(subtree.offset..subtree.end)
        .ok_or(PatchError::Malformed(subtree.offset))?;
    let moved = out.pos as i64 - subtree.offset as i64;
    if moved == 0 {
        return out.put(bytes);
    }
    // Everything before this offset of the old file has been written.
    let mut written = subtree.offset;
    let mut stack = vec![(subtree.offset, subtree.flags)];
    let mut previous = None;
    while let Some((offset, flags)) = stack.pop() {
        if previous.is_some_and(|previous| offset <= previous) || offset >= subtree.end {
            return Err(PatchError::Malformed(offset));
        }
        previous = Some(offset);
        if flags & FLAG_CHILDREN == 0 {
            continue;
        }
        let mut cursor = offset;
        if flags & FLAG_PREFIX != 0 {
            cursor = string_end(old, cursor, subtree.end)? + 1;
        }
        let (first, last) = child_span(old, cursor)?;
        cursor += 2;
        let table_end = cursor + 4 * (usize::from(last - first) + 1);
        if cursor < written || table_end > subtree.end {
            return Err(PatchError::Malformed(cursor));
        }
        out.put(&old[written..cursor])?;
        let first_child = stack.len();
        for slot in (cursor..table_end).step_by(4) {
            let reference = read_u32(old, slot)?;
            if reference == 0 {
                out.put(&0u32.to_be_bytes())?;
                continue;
            }
            let target = (reference & OFFSET_MASK) as i64 + moved;
            if !(0..=i64::from(OFFSET_MASK)).contains(&target) {
                return Err(PatchError::Malformed(slot));
            }
            let flags = reference & FLAG_MASK;
            out.put(&(target as u32 | flags).to_be_bytes())?;
            stack.push(((reference & OFFSET_MASK) as usize, flags));
        }
        stack[first_child..].reverse();
        written = table_end;
    }
    out.put(&old[written..subtree.end])
}
