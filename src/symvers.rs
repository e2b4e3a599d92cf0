//! Kernel symbol sources for `-E Module.symvers` and `-F System.map` (spec §6.4): symbols owned
//! by vmlinux, which satisfy references without creating dependencies.

use crate::bmsg;
use crate::fgets::{fgets_chunks, fgets_raw_chunks};

/// A symbol provided by the kernel image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// The name after the `-P` prefix rule.
    pub name: Vec<u8>,
    /// The CRC (0 from System.map).
    pub crc: u64,
}

/// Apply kmod's prefix rule: drop the first byte if it is the `-P` character.
pub fn strip_prefix(name: &[u8], prefix: Option<u8>) -> &[u8] {
    match (prefix, name.first()) {
        (Some(p), Some(&first)) if p == first => &name[1..],
        _ => name,
    }
}

/// The bytes before the first NUL: what kmod's C string functions see of a line that `fgets`
/// read (it stores NULs like any other byte, see [`fgets_raw_chunks`]).
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// glibc `strtoull(s, &end, 16)`: the value (saturated), whether the whole string was
/// consumed, and whether it overflowed (which sets `errno` to `ERANGE`).
fn strtoull_hex(s: &[u8]) -> (u64, bool, bool) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits_start = if s.len() >= i + 3
        && s[i] == b'0'
        && (s[i + 1] | 0x20) == b'x'
        && s[i + 2].is_ascii_hexdigit()
    {
        i + 2
    } else {
        i
    };
    let mut j = digits_start;
    let mut value: u64 = 0;
    let mut overflow = false;
    while j < s.len() && s[j].is_ascii_hexdigit() {
        let d = (s[j] as char).to_digit(16).unwrap_or(0) as u64;
        match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        j += 1;
    }
    if j == digits_start {
        // no digits: end pointer is the start of the string
        return (0, s.is_empty(), false);
    }
    if overflow {
        value = u64::MAX;
    } else if negative {
        value = value.wrapping_neg();
    }
    (value, j == s.len(), overflow)
}

/// Parse `Module.symvers`: lines with at least 3 tab/space separated columns whose third is
/// exactly `vmlinux` (so a 3-column line, whose third token keeps its newline, never counts).
/// Bad CRCs give kmod's `Invalid symbol version` error line (returned in `errors`).
pub fn parse_module_symvers(
    data: &[u8],
    file_name: &[u8],
    prefix: Option<u8>,
    errors: &mut Vec<Vec<u8>>,
) -> Vec<KernelSymbol> {
    let mut symbols = Vec::new();
    // kmod prints %m, i.e. a stale errno: on Debian's kmod 30 and 34 it is the ENOENT left by
    // libkmod's start-up probing, until a CRC overflows strtoull, which leaves ERANGE (kmod
    // never resets errno).
    let mut errno: &str = "No such file or directory";
    for (n, line) in fgets_chunks(data, 10240).into_iter().enumerate() {
        let mut tokens = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|t| !t.is_empty());
        let (Some(ver), Some(sym), Some(where_)) = (tokens.next(), tokens.next(), tokens.next())
        else {
            continue;
        };
        if where_ != b"vmlinux" {
            continue;
        }
        let (crc, complete, overflow) = strtoull_hex(ver);
        if overflow {
            errno = "Numerical result out of range";
        }
        if !complete {
            errors.push(bmsg!(
                file_name,
                ":",
                (n + 1).to_string(),
                " Invalid symbol version ",
                ver,
                ": ",
                errno
            ));
            continue;
        }
        symbols.push(KernelSymbol {
            name: strip_prefix(sym, prefix).to_vec(),
            crc,
        });
    }
    symbols
}

/// Parse `System.map`: the text after the second space, minus one `-P` character, if it starts
/// with `__ksymtab_`. Lines with fewer than two spaces give kmod's `invalid line` error.
///
/// Lines are C strings to kmod, ending at a NUL, with one exception it inherits from C: the
/// byte after the second space is compared with the `-P` character, which is NUL when `-P` is
/// not given, so a NUL there is skipped and the bytes `fgets` stored after it are read on.
pub fn parse_system_map(
    data: &[u8],
    file_name: &[u8],
    prefix: Option<u8>,
    errors: &mut Vec<Vec<u8>>,
) -> Vec<KernelSymbol> {
    const KSYMTAB: &[u8] = b"__ksymtab_";
    let mut symbols = Vec::new();
    for (n, chunk) in fgets_raw_chunks(data, 10240).into_iter().enumerate() {
        let line = c_str(chunk);
        let third = line.iter().position(|&b| b == b' ').and_then(|first| {
            let rest = &line[first + 1..];
            rest.iter()
                .position(|&b| b == b' ')
                .map(|second| &chunk[first + 1 + second + 1..])
        });
        let Some(text) = third else {
            errors.push(bmsg!(
                file_name,
                ":",
                (n + 1).to_string(),
                ": invalid line: ",
                line
            ));
            continue;
        };
        let text = c_str(strip_prefix(text, Some(prefix.unwrap_or(0))));
        let Some(name) = text.strip_prefix(KSYMTAB) else {
            continue;
        };
        let name = match name.iter().position(|&b| b == b'\n') {
            Some(nl) => &name[..nl],
            None => name,
        };
        symbols.push(KernelSymbol {
            name: name.to_vec(),
            crc: 0,
        });
    }
    symbols
}

/// The symbols kmod adds after loading either file (`depmod_add_fake_syms`).
pub const FAKE_SYMBOLS: [&[u8]; 3] = [b"__this_module", b"_GLOBAL_OFFSET_TABLE_", b"TOC."];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symvers_needs_four_columns() {
        let mut errors = Vec::new();
        let data = b"0x1234\tfoo\tvmlinux\tEXPORT_SYMBOL\n0x5\tbar\tvmlinux\n0x6\tbaz\tdrivers/x\tEXPORT_SYMBOL\nzz\tbad\tvmlinux\tEXPORT_SYMBOL\n";
        let syms = parse_module_symvers(data, b"Module.symvers", None, &mut errors);
        assert_eq!(
            syms,
            vec![KernelSymbol {
                name: b"foo".to_vec(),
                crc: 0x1234
            }]
        );
        assert_eq!(
            errors,
            vec![b"Module.symvers:4 Invalid symbol version zz: No such file or directory".to_vec()]
        );
    }

    #[test]
    fn system_map_ksymtab_only() {
        let mut errors = Vec::new();
        let data =
            b"c0294200 R __ksymtab_devfs_alloc\nc0294200 T printk\nbroken\nc0 R ___ksymtab_pref\n";
        let syms = parse_system_map(data, b"System.map", Some(b'_'), &mut errors);
        let names: Vec<_> = syms.iter().map(|s| s.name.clone()).collect();
        // With -P _, "__ksymtab_devfs_alloc" loses one '_' and no longer matches.
        assert_eq!(names, vec![b"pref".to_vec()]);
        assert_eq!(
            errors,
            vec![b"System.map:3: invalid line: broken\n".to_vec()]
        );
    }

    #[test]
    fn strtoull_rules() {
        assert_eq!(strtoull_hex(b"0x1f"), (0x1f, true, false));
        assert_eq!(strtoull_hex(b"1F"), (0x1f, true, false));
        assert_eq!(strtoull_hex(b"0x"), (0, false, false));
        assert!(!strtoull_hex(b"12g").1);
        assert_eq!(strtoull_hex(b"0x1ffffffffffffffff"), (u64::MAX, true, true));
    }

    #[test]
    fn symvers_errno_after_an_overflow() {
        let mut errors = Vec::new();
        let data = b"zz\ta\tvmlinux\tX\n0x1ffffffffffffffff\tb\tvmlinux\tX\nyy\tc\tvmlinux\tX\n\
                     0x1\0\td\tvmlinux\tX\n";
        let syms = parse_module_symvers(data, b"M", None, &mut errors);
        assert_eq!(
            errors,
            vec![
                b"M:1 Invalid symbol version zz: No such file or directory".to_vec(),
                b"M:3 Invalid symbol version yy: Numerical result out of range".to_vec(),
            ]
        );
        // The overflowing CRC is still complete; the line cut by a NUL has too few tokens.
        assert_eq!(syms.len(), 1);
        assert_eq!(syms[0].crc, u64::MAX);
    }

    #[test]
    fn system_map_lines_are_c_strings() {
        let mut errors = Vec::new();
        let data = b"1 R \0__ksymtab_after_nul\n1\0 R __ksymtab_cut\n1 R __ksymtab_a\0b\n";
        let syms = parse_system_map(data, b"S", None, &mut errors);
        let names: Vec<_> = syms.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, vec![b"after_nul".to_vec(), b"a".to_vec()]);
        assert_eq!(errors, vec![b"S:2: invalid line: 1".to_vec()]);
        // With -P the NUL is not the prefix character and ends the text.
        let syms = parse_system_map(b"1 R \0__ksymtab_x\n", b"S", Some(b'_'), &mut errors);
        assert!(syms.is_empty());
    }
}
