//! libkmod's lookups: exact (`index_mm_search`) and wildcard (`index_mm_searchwild`).

use super::error::ReadError;
use super::fnmatch::fnmatch;
use super::read::{Index, Node, Value};

/// The part of `s` before its first NUL: what a C string holding `s` would contain.
fn c_string(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(end) => &s[..end],
        None => s,
    }
}

/// libkmod's `add_value` on a result list: insert before the first value whose priority is
/// greater than or equal (so later additions come first among equal priorities).
fn add_result<'a>(out: &mut Vec<Value<'a>>, value: Value<'a>) {
    let at = out.partition_point(|v| v.priority < value.priority);
    out.insert(at, value);
}

impl<'a> Index<'a> {
    /// Exact lookup, as libkmod's `index_mm_search` (used for `modules.dep.bin` and
    /// `modules.builtin.bin`): the first (lowest-priority) value stored under exactly `key`.
    ///
    /// `key` is used as given (up to its first NUL, as a C string would be).
    pub fn lookup_exact(&self, key: &[u8]) -> Result<Option<Value<'a>>, ReadError> {
        let mut rest = c_string(key);
        let mut node = self.root()?;
        loop {
            match rest.strip_prefix(node.prefix) {
                Some(after) => rest = after,
                None => return Ok(None),
            }
            let Some((&ch, tail)) = rest.split_first() else {
                return self.values(&node).next().transpose();
            };
            match self.child(&node, ch)? {
                Some(child) => node = child,
                None => return Ok(None),
            }
            rest = tail;
        }
    }

    /// Wildcard lookup, as libkmod's `index_mm_searchwild` (used for `modules.alias.bin`,
    /// `modules.symbols.bin` and `modules.builtin.alias.bin`): every value of every stored key
    /// that, read as an `fnmatch(3)` pattern, matches `query`; merged as libkmod merges them
    /// (ascending priority, among equal priorities the value added last first).
    ///
    /// The query is used as given (up to its first NUL). libkmod's callers pass it through
    /// `alias_normalize` first (`kmod_module_new_from_lookup`); do the same with
    /// [`crate::names::normalize_alias`] to reproduce `modprobe`.
    pub fn lookup_wild(&self, query: &[u8]) -> Result<Vec<Value<'a>>, ReadError> {
        let mut out = Vec::new();
        let mut key = c_string(query);
        let mut node = self.root()?;
        loop {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    self.match_subtree(node, j, None, &key[j.min(key.len())..], &mut out)?;
                    return Ok(out);
                }
                if key.get(j) != Some(&ch) {
                    return Ok(out);
                }
            }
            key = &key[node.prefix.len()..];
            for wildcard in [b'*', b'?', b'['] {
                if let Some(child) = self.child(&node, wildcard)? {
                    self.match_subtree(child, 0, Some(wildcard), key, &mut out)?;
                }
            }
            let Some((&ch, tail)) = key.split_first() else {
                for value in self.values(&node) {
                    add_result(&mut out, value?);
                }
                return Ok(out);
            };
            match self.child(&node, ch)? {
                Some(child) => node = child,
                None => return Ok(out),
            }
            key = tail;
        }
    }

    /// libkmod's `index_mm_searchwild_all`: walks the subtree under `start` (whose pattern text
    /// begins with `edge`, if any, then `start.prefix[skip..]`), children before the node
    /// itself, and adds the values of every node whose accumulated pattern matches `subject`.
    fn match_subtree(
        &self,
        start: Node<'a>,
        skip: usize,
        edge: Option<u8>,
        subject: &[u8],
        out: &mut Vec<Value<'a>>,
    ) -> Result<(), ReadError> {
        enum Step<'a> {
            Enter(Node<'a>, usize, Option<u8>),
            Leave(Node<'a>, usize),
        }
        let mut pattern: Vec<u8> = Vec::new();
        let mut stack = vec![Step::Enter(start, skip, edge)];
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(node, skip, edge) => {
                    let before = pattern.len();
                    pattern.extend(edge);
                    pattern.extend_from_slice(node.prefix.get(skip..).unwrap_or_default());
                    stack.push(Step::Leave(node, before));
                    for (ch, child) in self.children(&node)?.into_iter().rev() {
                        stack.push(Step::Enter(child, 0, Some(ch)));
                    }
                }
                Step::Leave(node, before) => {
                    if node.value_count > 0 && fnmatch(&pattern, subject) {
                        for value in self.values(&node) {
                            add_result(out, value?);
                        }
                    }
                    pattern.truncate(before);
                }
            }
        }
        Ok(())
    }
}
