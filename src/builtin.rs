//! Parsing the kernel's built-in module lists (spec §10): `modules.builtin` lines and
//! `modules.builtin.modinfo` records, into the entries of the two builtin `.bin` indexes.

use crate::bmsg;
use crate::fgets::{fgets_chunks, PATH_MAX};
use crate::names::{modname_from_path, normalize_alias};

/// A message produced while parsing, with kmod's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinDiagnostic {
    /// An `ERROR:` line.
    Error(Vec<u8>),
    /// A `WARNING:` line.
    Warning(Vec<u8>),
}

/// The keys of `modules.builtin.bin` (each with value `""`, priority 0), in file order.
/// A line whose first byte is not a letter is reported and skipped; the line keeps its newline,
/// so a basename without `.` ends up with `\n` in its key, as in kmod. Parsing stops after a
/// key with a byte >= 0x80, whose insertion into the index is fatal.
pub fn parse_modules_builtin(
    data: &[u8],
    diagnostics: &mut Vec<BuiltinDiagnostic>,
) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut previous: Vec<u8> = Vec::new();
    for line in fgets_chunks(data, PATH_MAX) {
        if !line.first().is_some_and(|b| b.is_ascii_alphabetic()) {
            diagnostics.push(BuiltinDiagnostic::Error(bmsg!(
                "Invalid modules.builtin line: ",
                line
            )));
            continue;
        }
        let key = modname_from_path(line);
        // kmod's path_to_modname fails on an empty basename and leaves its buffer untouched.
        let basename_empty = line.last() == Some(&b'/');
        if basename_empty {
            keys.push(previous.clone());
            continue;
        }
        let fatal = !key.is_ascii();
        previous = key.clone();
        keys.push(key);
        if fatal {
            // Inserting this key stops the run (a byte >= 0x80, spec §9.2); kmod inserts as it
            // reads, so it never reports the lines after it.
            break;
        }
    }
    keys
}

/// One entry of `modules.builtin.alias.bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinAlias {
    /// The normalised alias (the key).
    pub alias: Vec<u8>,
    /// The module name exactly as written in the file (the value).
    pub modname: Vec<u8>,
}

/// A reader over `modules.builtin.modinfo` mimicking kmod's `fgetc` loops.
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
}

const FIELD_MAX: usize = 4096;

impl Stream<'_> {
    fn at_eof(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn getc(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    /// kmod's `flush_stream`: skip to `end`, stopping also at NUL.
    fn flush(&mut self, end: u8) {
        while let Some(c) = self.getc() {
            if c == end || c == 0 {
                break;
            }
        }
    }

    /// kmod's `flush_stream_to`: read up to `end`/NUL/EOF into a 4096-byte field. Returns the
    /// field if it ended at `end`, else an empty field.
    fn read_to(&mut self, end: u8, diagnostics: &mut Vec<BuiltinDiagnostic>) -> Vec<u8> {
        let mut field = Vec::new();
        let last = loop {
            let c = self.getc();
            match c {
                None => break None,
                Some(c) if c == end || c == 0 => break Some(c),
                // The buffer is full: kmod has consumed this byte without storing it.
                Some(c) if field.len() == FIELD_MAX => break Some(c),
                Some(c) => field.push(c),
            }
        };
        if field.len() == FIELD_MAX {
            diagnostics.push(BuiltinDiagnostic::Warning(bmsg!(
                "Could not flush stream: 28. Partial content: ",
                field
            )));
            field.pop();
        }
        if last == Some(end) {
            field
        } else {
            Vec::new()
        }
    }
}

/// The entries of `modules.builtin.alias.bin`, in insertion order (§10.2). Parsing stops after
/// an entry with a byte >= 0x80, whose insertion into the index is fatal.
pub fn parse_builtin_modinfo(
    data: &[u8],
    diagnostics: &mut Vec<BuiltinDiagnostic>,
) -> Vec<BuiltinAlias> {
    let mut entries = Vec::new();
    let mut stream = Stream { data, pos: 0 };
    while !stream.at_eof() {
        let modname = stream.read_to(b'.', diagnostics);
        if modname.is_empty() {
            continue;
        }
        let key = stream.read_to(b'=', diagnostics);
        if key != b"alias" {
            stream.flush(0);
            continue;
        }
        let value = stream.read_to(0, diagnostics);
        if value.is_empty() {
            continue;
        }
        match normalize_alias(&value) {
            Ok(alias) => {
                let fatal = !alias.is_ascii() || !modname.is_ascii();
                entries.push(BuiltinAlias { alias, modname });
                if fatal {
                    // As in parse_modules_builtin: inserting it is fatal, later records unread.
                    break;
                }
            }
            Err(_) => diagnostics.push(BuiltinDiagnostic::Warning(bmsg!(
                "Unmatched bracket in ",
                value
            ))),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lines() {
        let mut diags = Vec::new();
        let keys = parse_modules_builtin(
            b"kernel/fs/ext4/ext4.ko\n/abs/x.ko\nkernel/a-b.ko\nkernel/noext\n\n",
            &mut diags,
        );
        assert_eq!(
            keys,
            vec![b"ext4".to_vec(), b"a_b".to_vec(), b"noext\n".to_vec()]
        );
        assert_eq!(
            diags,
            vec![
                BuiltinDiagnostic::Error(b"Invalid modules.builtin line: /abs/x.ko\n".to_vec()),
                BuiltinDiagnostic::Error(b"Invalid modules.builtin line: \n".to_vec()),
            ]
        );
    }

    #[test]
    fn parsing_stops_at_the_first_fatal_string() {
        let mut diags = Vec::new();
        let keys = parse_modules_builtin(b"\nkernel/caf\xc3\xa9.ko\n\nkernel/b.ko\n", &mut diags);
        assert_eq!(keys, vec![b"caf\xc3\xa9".to_vec()]);
        assert_eq!(
            diags.len(),
            1,
            "only the line before it is reported: {diags:?}"
        );
        let mut diags = Vec::new();
        let data = b"a.alias=x[\0m\xe9.alias=y\0b.alias=z]\0c.alias=w\0";
        let entries = parse_builtin_modinfo(data, &mut diags);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].modname, b"m\xe9");
        assert_eq!(diags.len(), 1, "{diags:?}");
    }

    #[test]
    fn modinfo_records() {
        let mut diags = Vec::new();
        let data = b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c.alias=crypto-crc32c\0bad.alias=a]b\0x.alias=\0";
        let entries = parse_builtin_modinfo(data, &mut diags);
        let pairs: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|e| (&e.alias[..], &e.modname[..]))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (&b"fs_ext4"[..], &b"ext4"[..]),
                (&b"crypto_crc32c"[..], &b"crc32c"[..])
            ]
        );
        assert_eq!(
            diags,
            vec![BuiltinDiagnostic::Warning(
                b"Unmatched bracket in a]b".to_vec()
            )]
        );
    }

    #[test]
    fn record_without_equals_eats_the_next_one() {
        let mut diags = Vec::new();
        let data = b"m.noequals\0m.alias=lost\0n.alias=kept\0";
        let entries = parse_builtin_modinfo(data, &mut diags);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].alias, b"kept");
    }

    #[test]
    fn record_without_dot_is_dropped() {
        let mut diags = Vec::new();
        let entries = parse_builtin_modinfo(b"nodot\0m.alias=x\0", &mut diags);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].modname, b"m");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..6000)) {
            let mut diagnostics = Vec::new();
            let _ = parse_modules_builtin(&data, &mut diagnostics);
            let _ = parse_builtin_modinfo(&data, &mut diagnostics);
            let _ = crate::order::parse_modules_order(&data);
            let _ = crate::config::logical_lines(&data);
            let _ = crate::symvers::parse_module_symvers(&data, b"f", Some(b'_'), &mut Vec::new());
            let _ = crate::symvers::parse_system_map(&data, b"f", None, &mut Vec::new());
        }
    }
}
