//! A validated, zero-copy view of an index file.
//!
//! [`Index::new`] checks the whole structure once (header, every reachable node, every string
//! and count, the tree property), so the lookups never meet malformed data; they still return
//! `Result` and re-check bounds as they decode, so no input can make them panic.

use super::error::ReadError;
use super::format::{
    CHILD_MAX, FLAG_CHILDREN, FLAG_MASK, FLAG_PREFIX, FLAG_VALUES, HEADER_LEN, MAGIC, MAX_FILE_LEN,
    MAX_KEY_LEN, OFFSET_MASK, VERSION_MAJOR,
};
use super::NodeOrder;

/// Allowed total key bytes (Σ key length × value count) per byte of file, plus a constant.
const KEY_BYTES_PER_FILE_BYTE: u64 = 32;
const KEY_BYTES_SLACK: u64 = 1 << 20;

/// One value of a key: what libkmod's lookups return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value<'a> {
    /// The priority (module index for most kmod indexes).
    pub priority: u32,
    /// The value bytes, without the terminating NUL.
    pub value: &'a [u8],
}

/// One stored `(key, priority, value)` triple, as listed by [`Index::entries`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry<'a> {
    /// The full key.
    pub key: Vec<u8>,
    /// The value's priority.
    pub priority: u32,
    /// The value bytes, without the terminating NUL.
    pub value: &'a [u8],
}

/// A read-only, validated view of an index file held in memory.
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    bytes: &'a [u8],
    root: u32,
}

/// A decoded node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) offset: usize,
    pub(crate) prefix: &'a [u8],
    /// `first..=last` child range, or `None` without children.
    pub(crate) range: Option<(u8, u8)>,
    children_at: usize,
    pub(crate) value_count: u32,
    /// Where the values start; for a node without values, where the node ends.
    values_at: usize,
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, ReadError> {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(ReadError::Truncated { at })
}

/// The NUL-terminated string at `at` and the offset just past its NUL.
fn read_cstr(bytes: &[u8], at: usize) -> Result<(&[u8], usize), ReadError> {
    let rest = bytes.get(at..).ok_or(ReadError::Truncated { at })?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(ReadError::UnterminatedString { at })?;
    Ok((&rest[..len], at + len + 1))
}

/// An iterator over a node's values, in stored order.
pub(crate) struct Values<'a> {
    bytes: &'a [u8],
    at: usize,
    remaining: u32,
}

impl<'a> Iterator for Values<'a> {
    type Item = Result<Value<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = read_u32(self.bytes, self.at).and_then(|priority| {
            let (value, next) = read_cstr(self.bytes, self.at + 4)?;
            self.at = next;
            Ok(Value { priority, value })
        });
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

impl<'a> Node<'a> {
    /// The child reference word for character `ch` and where it is stored, if `ch` is in range.
    fn child_slot(&self, bytes: &[u8], ch: u8) -> Result<Option<(u32, usize)>, ReadError> {
        match self.range {
            Some((first, last)) if (first..=last).contains(&ch) => {
                let at = self.children_at + 4 * usize::from(ch - first);
                Ok(Some((read_u32(bytes, at)?, at)))
            }
            _ => Ok(None),
        }
    }
}

impl<'a> Index<'a> {
    /// Validates `bytes` as an index file and returns a view of it.
    ///
    /// Checks: length ≥ 12 and < 256 MiB, magic, major version 2, then every node reachable
    /// from the root: no unknown flag, offsets inside the node area, non-empty NUL-terminated
    /// prefixes, `first <= last < 128`, child tables and values inside the file, value counts
    /// that the remaining bytes can hold, NUL-terminated values, every node referenced once
    /// (no loops, no sharing), keys at most [`MAX_KEY_LEN`] bytes, and the keys of all values
    /// together at most 32 times the file size plus 1 MiB (real indexes use about 1×), which
    /// keeps [`Index::entries`] and the wildcard lookups linear in the file size. Validation
    /// itself is linear in time and memory.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ReadError> {
        let index = Index::from_known(bytes)?;
        index.validate()?;
        Ok(index)
    }

    /// A view of `bytes` with only the header checked, for a few lookups in a file already
    /// known to be well formed (one whose digest matched that of a file this crate wrote):
    /// validating every node would cost more than the lookups. The lookups stay
    /// bounds-checked and end within the length of the key, so on damaged bytes they give an
    /// error or a wrong answer, never a panic or a loop.
    pub fn from_known(bytes: &'a [u8]) -> Result<Self, ReadError> {
        if bytes.len() < HEADER_LEN {
            return Err(ReadError::TooShort { len: bytes.len() });
        }
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(ReadError::FileTooLarge { len: bytes.len() });
        }
        let magic = read_u32(bytes, 0)?;
        if magic != MAGIC {
            return Err(ReadError::BadMagic { found: magic });
        }
        let major = read_u32(bytes, 4)? >> 16;
        if major != VERSION_MAJOR {
            return Err(ReadError::BadVersion { major });
        }
        Ok(Index {
            bytes,
            root: read_u32(bytes, 8)?,
        })
    }

    /// The raw file bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes the node referenced by `reference` (stored at file offset `at`).
    pub(crate) fn node(&self, reference: u32, at: usize) -> Result<Node<'a>, ReadError> {
        let bytes = self.bytes;
        if reference & FLAG_MASK & !(FLAG_PREFIX | FLAG_VALUES | FLAG_CHILDREN) != 0 {
            return Err(ReadError::UnknownFlag { at, reference });
        }
        let offset = (reference & OFFSET_MASK) as usize;
        let has_content = reference & FLAG_MASK != 0;
        // A node without any part is empty; it may sit at the very end (the empty index).
        if offset < HEADER_LEN || offset > bytes.len() || (has_content && offset == bytes.len()) {
            return Err(ReadError::OffsetOutOfRange { at, reference });
        }
        let mut p = offset;
        let mut prefix: &[u8] = &[];
        if reference & FLAG_PREFIX != 0 {
            let (s, next) = read_cstr(bytes, p)?;
            if s.is_empty() {
                return Err(ReadError::EmptyPrefix { at: offset });
            }
            prefix = s;
            p = next;
        }
        let mut range = None;
        let mut children_at = p;
        if reference & FLAG_CHILDREN != 0 {
            let (first, last) = match bytes.get(p..p + 2) {
                Some(&[f, l]) => (f, l),
                _ => return Err(ReadError::Truncated { at: p }),
            };
            if first > last || last >= CHILD_MAX {
                return Err(ReadError::BadChildRange { at: p, first, last });
            }
            children_at = p + 2;
            p = children_at + 4 * (usize::from(last - first) + 1);
            if p > bytes.len() {
                return Err(ReadError::Truncated { at: children_at });
            }
            range = Some((first, last));
        }
        let mut value_count = 0;
        let mut values_at = p;
        if reference & FLAG_VALUES != 0 {
            value_count = read_u32(bytes, p)?;
            values_at = p + 4;
            // Each value takes at least 5 bytes: priority and NUL.
            if value_count as usize > (bytes.len() - values_at) / 5 {
                return Err(ReadError::BadValueCount {
                    at: p,
                    count: value_count,
                });
            }
        }
        Ok(Node {
            offset,
            prefix,
            range,
            children_at,
            value_count,
            values_at,
        })
    }

    /// The root node.
    pub(crate) fn root(&self) -> Result<Node<'a>, ReadError> {
        self.node(self.root, 8)
    }

    /// The child of `node` for character `ch`, if any.
    pub(crate) fn child(&self, node: &Node<'a>, ch: u8) -> Result<Option<Node<'a>>, ReadError> {
        match node.child_slot(self.bytes, ch)? {
            Some((reference, at)) if reference & OFFSET_MASK != 0 => {
                self.node(reference, at).map(Some)
            }
            // kmod treats a reference whose offset is 0 as "no child", whatever its flags.
            _ => Ok(None),
        }
    }

    /// The children of `node` with their characters, ascending.
    pub(crate) fn children(&self, node: &Node<'a>) -> Result<Vec<(u8, Node<'a>)>, ReadError> {
        let mut out = Vec::new();
        if let Some((first, last)) = node.range {
            for ch in first..=last {
                if let Some(child) = self.child(node, ch)? {
                    out.push((ch, child));
                }
            }
        }
        Ok(out)
    }

    /// The values of `node` in stored order.
    pub(crate) fn values(&self, node: &Node<'a>) -> Values<'a> {
        Values {
            bytes: self.bytes,
            at: node.values_at,
            remaining: node.value_count,
        }
    }

    /// Where `node`'s bytes end.
    fn node_end(&self, node: &Node<'a>) -> Result<usize, ReadError> {
        let mut values = self.values(node);
        for value in values.by_ref() {
            value?;
        }
        Ok(values.at)
    }

    /// Visits every reachable node once (explicit stack, no recursion).
    fn validate(&self) -> Result<(), ReadError> {
        let mut seen = vec![0u64; self.bytes.len() / 64 + 1];
        // Σ key length × values: the bytes `entries()` allocates for keys, and a bound on the
        // pattern text wildcard lookups match. Real indexes stay near 1× the file size; a hostile
        // file could make it quadratic, so it is capped.
        let key_budget = KEY_BYTES_PER_FILE_BYTE * self.bytes.len() as u64 + KEY_BYTES_SLACK;
        let mut key_bytes = 0u64;
        let mut stack = vec![(self.root()?, 0usize)];
        while let Some((node, parent_key_len)) = stack.pop() {
            let word = &mut seen[node.offset / 64];
            let bit = 1u64 << (node.offset % 64);
            if *word & bit != 0 {
                return Err(ReadError::SharedNode {
                    at: node.offset,
                    node: node.offset,
                });
            }
            *word |= bit;
            let key_len = parent_key_len + node.prefix.len();
            if key_len > MAX_KEY_LEN {
                return Err(ReadError::KeyTooLong { at: node.offset });
            }
            key_bytes += key_len as u64 * u64::from(node.value_count);
            if key_bytes > key_budget {
                return Err(ReadError::KeysTooLarge {
                    at: node.offset,
                    budget: key_budget,
                });
            }
            self.node_end(&node)?;
            for (_, child) in self.children(&node)? {
                stack.push((child, key_len + 1));
            }
        }
        Ok(())
    }

    /// Every stored value with its full key, in trie order: a node's own values (in stored
    /// order), then its children's subtrees by ascending character — the order of
    /// `modprobe -c`/`index_mm_dump`.
    pub fn entries(&self) -> Result<Vec<Entry<'a>>, ReadError> {
        let mut out = Vec::new();
        let mut key = Vec::new();
        // (node, key length before this node's edge character, edge character)
        let mut stack = vec![(self.root()?, 0usize, None::<u8>)];
        while let Some((node, base, edge)) = stack.pop() {
            key.truncate(base);
            key.extend(edge);
            key.extend_from_slice(node.prefix);
            for value in self.values(&node) {
                let value = value?;
                out.push(Entry {
                    key: key.clone(),
                    priority: value.priority,
                    value: value.value,
                });
            }
            let here = key.len();
            for (ch, child) in self.children(&node)?.into_iter().rev() {
                stack.push((child, here, Some(ch)));
            }
        }
        Ok(out)
    }

    /// Checks how the nodes are laid out: whether they tile the area after the header with no
    /// gap or overlap, and in which of kmod's orders. Returns `None` when the layout is neither
    /// kmod's pre-order nor its post-order (a valid index for readers, but not one kmod wrote).
    /// A single-node index is reported as [`NodeOrder::Pre`]; both orders give the same bytes.
    pub fn node_order(&self) -> Result<Option<NodeOrder>, ReadError> {
        // Collect (offset, end) in pre-order and in post-order of the logical tree.
        let mut pre = Vec::new();
        let mut post = Vec::new();
        let mut stack = vec![(self.root()?, false)];
        while let Some((node, children_done)) = stack.pop() {
            let span = (node.offset, self.node_end(&node)?);
            if children_done {
                post.push(span);
                continue;
            }
            pre.push(span);
            stack.push((node, true));
            for (_, child) in self.children(&node)?.into_iter().rev() {
                stack.push((child, false));
            }
        }
        let tiles = |spans: &[(usize, usize)]| {
            let mut at = HEADER_LEN;
            for &(start, end) in spans {
                if start != at {
                    return false;
                }
                at = end;
            }
            at == self.bytes.len()
        };
        Ok(if tiles(&pre) {
            Some(NodeOrder::Pre)
        } else if tiles(&post) {
            Some(NodeOrder::Post)
        } else {
            None
        })
    }
}
