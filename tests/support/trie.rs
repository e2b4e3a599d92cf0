//! An independent, minimal reader for kmod's `.bin` trie indexes (spec §9), used only to explain
//! differences between two index files. It deliberately shares no code with the library's index
//! module, so a bug there cannot hide itself here.

use std::fmt::Write as _;

/// One value stored in the trie: its key, priority and value string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full key (concatenated edge labels).
    pub key: Vec<u8>,
    /// Priority stored with the value.
    pub priority: u32,
    /// Value bytes (without the terminating NUL).
    pub value: Vec<u8>,
}

const MAGIC: u32 = 0xB007_F457;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDS: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Decodes every entry of an index, in trie order (node before children, children by character).
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new()); // the 0-byte builtin indexes written when the input is missing
    }
    let magic = be32(bytes, 0)?;
    if magic != MAGIC {
        return Err(format!("bad magic {magic:#010x}"));
    }
    let version = be32(bytes, 4)?;
    if version >> 16 != 2 {
        return Err(format!("unsupported version {version:#010x}"));
    }
    let root = be32(bytes, 8)?;
    let mut entries = Vec::new();
    let mut key = Vec::new();
    walk(bytes, root, &mut key, &mut entries, 0)?;
    Ok(entries)
}

fn be32(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at {at}"))
}

fn cstr(bytes: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let rest = bytes
        .get(at..)
        .ok_or_else(|| format!("string past end at {at}"))?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("unterminated string at {at}"))?;
    Ok((&rest[..len], at + len + 1))
}

fn walk(
    bytes: &[u8],
    reference: u32,
    key: &mut Vec<u8>,
    out: &mut Vec<Entry>,
    depth: usize,
) -> Result<(), String> {
    if depth > 8192 {
        return Err("trie too deep (loop?)".into());
    }
    if reference & !OFFSET_MASK == 0 {
        return Ok(()); // a node with no prefix, children or values: nothing to read
    }
    let mut at = (reference & OFFSET_MASK) as usize;
    if at < 12 || at >= bytes.len() {
        return Err(format!("node offset {at} out of range"));
    }
    let key_len = key.len();
    if reference & FLAG_PREFIX != 0 {
        let (prefix, next) = cstr(bytes, at)?;
        key.extend_from_slice(prefix);
        at = next;
    }
    let mut children = Vec::new();
    if reference & FLAG_CHILDS != 0 {
        let first = *bytes.get(at).ok_or("truncated children")?;
        let last = *bytes.get(at + 1).ok_or("truncated children")?;
        if first > last {
            return Err(format!("children range {first}..{last} at {at}"));
        }
        at += 2;
        for c in first..=last {
            let child = be32(bytes, at)?;
            at += 4;
            if child != 0 {
                children.push((c, child));
            }
        }
    }
    if reference & FLAG_VALUES != 0 {
        let count = be32(bytes, at)?;
        at += 4;
        for _ in 0..count {
            let priority = be32(bytes, at)?;
            let (value, next) = cstr(bytes, at + 4)?;
            out.push(Entry {
                key: key.clone(),
                priority,
                value: value.to_vec(),
            });
            at = next;
        }
    }
    for (c, child) in children {
        key.push(c);
        walk(bytes, child, key, out, depth + 1)?;
        key.pop();
    }
    key.truncate(key_len);
    Ok(())
}

fn show(e: Option<&Entry>) -> String {
    match e {
        None => "<none>".into(),
        Some(e) => format!(
            "{:?} -> {:?} (priority {})",
            String::from_utf8_lossy(&e.key),
            String::from_utf8_lossy(&e.value),
            e.priority
        ),
    }
}

/// Explains how two index files differ in content: the first differing entry, or that the content
/// is the same and only the layout differs.
pub fn describe_difference(expected: &[u8], actual: &[u8]) -> String {
    let (e, a) = match (decode(expected), decode(actual)) {
        (Ok(e), Ok(a)) => (e, a),
        (Err(err), _) => return format!("; expected file does not decode: {err}"),
        (_, Err(err)) => return format!("; actual file does not decode: {err}"),
    };
    if e == a {
        return format!(
            "; same {} entries, different layout (node order or offsets)",
            e.len()
        );
    }
    let i = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let mut out = String::new();
    let _ = write!(
        out,
        "; {} vs {} entries; first differing entry #{i}:\n    expected: {}\n    actual:   {}",
        e.len(),
        a.len(),
        show(e.get(i)),
        show(a.get(i))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_index_has_no_entries() {
        let bytes = [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12];
        assert_eq!(decode(&bytes), Ok(vec![]));
    }
}
