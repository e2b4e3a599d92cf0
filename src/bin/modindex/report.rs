//! A human-readable dump of what depmod reads from a module (`modindex module FILE`).
//!
//! Format, one item per line:
//!
//! ```text
//! modinfo:
//!   alias=pci:v00008086d*
//! exports: 2
//!   0x12345678 sample_export
//! imports: 2
//!   0x01020304 printk
//!   0x0a0b0c0d maybe_there weak
//! ```
//!
//! CRCs use the `0x%08llx` form of `modprobe --show-exports`. Non-UTF-8 bytes are shown
//! as `\xNN`. When kmod would fail to read the exports, the `exports:` line says so with
//! kmod's error text.
//!
//! Besides `modindex module`, the `module_elf` fuzz target includes this file to render every
//! module it manages to parse, so it depends on nothing but the library.

use std::fmt::Write as _;

use depmod_rs::module::ModuleInfo;

/// Renders `info` in the format described in this module's documentation.
pub fn describe(info: &ModuleInfo) -> String {
    let mut out = String::new();
    out.push_str("modinfo:\n");
    for entry in &info.modinfo {
        let _ = writeln!(out, "  {}={}", escape(&entry.key), escape(&entry.value));
    }
    match &info.exports {
        Ok(exports) => {
            let _ = writeln!(out, "exports: {}", exports.len());
            for export in exports {
                let _ = writeln!(out, "  0x{:08x} {}", export.crc, escape(&export.name));
            }
        }
        Err(err) => {
            let _ = writeln!(out, "exports: error: {} ({err})", err.kmod_strerror());
        }
    }
    let _ = writeln!(out, "imports: {}", info.imports.len());
    for import in &info.imports {
        let weak = if import.weak { " weak" } else { "" };
        let _ = writeln!(out, "  0x{:08x} {}{weak}", import.crc, escape(&import.name));
    }
    out
}

/// Bytes as text, with non-UTF-8 bytes and control characters as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                for b in c.to_string().bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmod_rs::module::{Export, Import, ModinfoEntry};

    #[test]
    fn report_lists_every_part() {
        let info = ModuleInfo {
            exports: Ok(vec![Export {
                name: b"foo".to_vec(),
                crc: 0x1234,
            }]),
            modinfo: vec![ModinfoEntry {
                key: b"alias".to_vec(),
                value: b"x\xff".to_vec(),
            }],
            imports: vec![Import {
                name: b"bar".to_vec(),
                crc: 7,
                weak: true,
            }],
        };
        assert_eq!(
            describe(&info),
            "modinfo:\n  alias=x\\xff\nexports: 1\n  0x00001234 foo\nimports: 1\n  0x00000007 bar weak\n"
        );
    }
}
