//! Helpers shared by the subcommands: reading an index file, the dump line format.

use std::path::Path;

use depmod_rs::index::Index;

/// Reads a whole index file.
///
/// The file is read into memory rather than mapped: index files are at most a few MB, and a
/// copy cannot fault (SIGBUS) if another process truncates the file while we read it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Validates `bytes` as an index, naming `path` (and the byte offset) in the error.
pub fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<Index<'a>, String> {
    Index::new(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Escapes a key or value for one dump field: `\` → `\\`, TAB → `\t`, LF → `\n`.
pub fn escape(field: &[u8], out: &mut Vec<u8>) {
    for &b in field {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            other => out.push(other),
        }
    }
}

/// Reverses [`escape`]; `None` for a dangling or unknown escape.
pub fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next()? {
            b'\\' => b'\\',
            b't' => b'\t',
            b'n' => b'\n',
            _ => return None,
        });
    }
    Some(out)
}
