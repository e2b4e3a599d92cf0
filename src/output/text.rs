//! Encoders for the text outputs (§8.2, §8.4, §8.6–§8.8, §8.12).

use super::Resolved;
use crate::{bappend, bmsg};

/// The `modules.dep` line of module `i`, without the newline (also the `.dep.bin` value).
///
/// Allocated at its exact size: on deep trees these lines are tens of megabytes in all.
pub fn dep_line(resolved: &Resolved<'_>, i: usize) -> Vec<u8> {
    let deps = &resolved.dependencies[i];
    let len = resolved.modules[i].output_path.len()
        + 1
        + deps
            .iter()
            .map(|&d| 1 + resolved.modules[d].output_path.len())
            .sum::<usize>();
    let mut line = Vec::with_capacity(len);
    append_dep_line(resolved, i, &mut line);
    line
}

fn append_dep_line(resolved: &Resolved<'_>, i: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&resolved.modules[i].output_path);
    out.push(b':');
    for &d in &resolved.dependencies[i] {
        out.push(b' ');
        out.extend_from_slice(&resolved.modules[d].output_path);
    }
}

/// `modules.dep`: one line per module; 0 bytes without modules.
pub fn modules_dep(resolved: &Resolved<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..resolved.modules.len() {
        append_dep_line(resolved, i, &mut out);
        out.push(b'\n');
    }
    out
}

/// Writes `lines` (the lines of [`modules_dep`], made once for it and `modules.dep.bin`) to
/// `out`, each with its newline, in chunks of about 64 KiB: on deep trees the file is tens
/// of megabytes, and need not exist in memory twice.
pub fn write_dep_lines<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    mut out: impl std::io::Write,
) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let mut chunk = Vec::with_capacity(CHUNK + 4096);
    for line in lines {
        chunk.extend_from_slice(line);
        chunk.push(b'\n');
        if chunk.len() >= CHUNK {
            out.write_all(&chunk)?;
            chunk.clear();
        }
    }
    out.write_all(&chunk)?;
    out.flush()
}

/// The first line of `modules.symbols`.
pub const SYMBOLS_HEADER: &[u8] = b"# Aliases for symbols, used by symbol_request().\n";

/// The first line of `modules.alias`.
pub const ALIAS_HEADER: &[u8] = b"# Aliases extracted from modules themselves.\n";

/// `modules.alias`: header, then `alias <raw> <modname>` per alias.
pub fn modules_alias(resolved: &Resolved<'_>) -> Vec<u8> {
    let mut out = ALIAS_HEADER.to_vec();
    for module in resolved.modules {
        append_alias_lines(&mut out, &module.name, &module.record.aliases);
    }
    out
}

/// Appends one module's lines of `modules.alias`.
pub fn append_alias_lines(out: &mut Vec<u8>, modname: &[u8], aliases: &[Vec<u8>]) {
    for alias in aliases {
        bappend!(*out, "alias ", alias, " ", modname, "\n");
    }
}

/// The length of one module's lines in `modules.alias`.
pub fn alias_lines_len(modname: &[u8], aliases: &[Vec<u8>]) -> u64 {
    aliases
        .iter()
        .map(|alias| (b"alias ".len() + alias.len() + 1 + modname.len() + 1) as u64)
        .sum()
}

/// `modules.softdep`: header, then `softdep <modname> <raw>`.
pub fn modules_softdep(resolved: &Resolved<'_>) -> Vec<u8> {
    let mut out = b"# Soft dependencies extracted from modules themselves.\n".to_vec();
    for module in resolved.modules {
        for value in &module.record.softdeps {
            bappend!(out, "softdep ", module.name, " ", value, "\n");
        }
    }
    out
}

/// `modules.weakdep`: header, then `weakdep <modname> <raw>`.
pub fn modules_weakdep(resolved: &Resolved<'_>) -> Vec<u8> {
    let mut out = b"# Weak dependencies extracted from modules themselves.\n".to_vec();
    for module in resolved.modules {
        for value in &module.record.weakdeps {
            bappend!(out, "weakdep ", module.name, " ", value, "\n");
        }
    }
    out
}

/// `modules.symbols`: header, then `alias symbol:<name> <owner>` in symbol-table order.
pub fn modules_symbols(resolved: &Resolved<'_>) -> Vec<u8> {
    let mut out = SYMBOLS_HEADER.to_vec();
    for (name, owner) in resolved.symbols.iter() {
        bappend!(
            out,
            "alias symbol:",
            name,
            " ",
            resolved.modules[owner].name,
            "\n"
        );
    }
    out
}

/// glibc `sscanf("%u")` on `s`: skips white space, accepts a sign, needs a digit; returns the
/// value (wrapped to 32 bits like the store into `unsigned int`) and the rest.
fn scan_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    let value = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some((value as u32, &s[i..]))
}

/// `sscanf(value, "<prefix>%u-%u")` yielding both numbers.
fn scan_major_minor(value: &[u8], prefix: &[u8]) -> Option<(u32, u32)> {
    let rest = value.strip_prefix(prefix)?;
    let (major, rest) = scan_u32(rest)?;
    let rest = rest.strip_prefix(b"-")?;
    let (minor, _) = scan_u32(rest)?;
    Some((major, minor))
}

/// `modules.devname` and the errors for devnames without a device number (§8.12).
pub fn modules_devname(resolved: &Resolved<'_>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for module in resolved.modules {
        match devname_line(&module.name, &module.record.aliases) {
            None => {}
            Some(Ok(line)) => {
                if out.is_empty() {
                    out.extend_from_slice(b"# Device nodes to trigger on-demand module loading.\n");
                }
                out.extend_from_slice(&line);
            }
            Some(Err(error)) => errors.push(error),
        }
    }
    (out, errors)
}

/// What one module gives `modules.devname`: nothing (no `devname:` alias), its line, or the
/// error kmod prints when the major and minor numbers are missing.
pub fn devname_line(modname: &[u8], aliases: &[Vec<u8>]) -> Option<Result<Vec<u8>, Vec<u8>>> {
    let mut devname: Option<&[u8]> = None;
    let mut device: Option<(u8, u32, u32)> = None;
    for alias in aliases {
        if let Some(name) = alias.strip_prefix(b"devname:") {
            devname = Some(name);
        } else if let Some((major, minor)) = scan_major_minor(alias, b"char-major-") {
            device = Some((b'c', major, minor));
        } else if let Some((major, minor)) = scan_major_minor(alias, b"block-major-") {
            device = Some((b'b', major, minor));
        }
        if devname.is_some() && device.is_some() {
            break;
        }
    }
    let devname = devname?;
    Some(match device {
        Some((kind, major, minor)) => Ok(bmsg!(
            modname,
            " ",
            devname,
            " ",
            [kind],
            format!("{major}:{minor}\n")
        )),
        None => Err(bmsg!(
            "Module '",
            modname,
            "' has devname (",
            devname,
            ") but lacks major and minor information. Ignoring."
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NO_SYMBOLS;
    use crate::record::{GraphModule, ModuleRecord};

    fn module(name: &str, aliases: &[&str]) -> GraphModule {
        GraphModule {
            name: name.as_bytes().to_vec(),
            output_path: format!("kernel/{name}.ko").into_bytes(),
            record: ModuleRecord {
                aliases: aliases.iter().map(|a| a.as_bytes().to_vec()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn resolved(modules: &[GraphModule]) -> Resolved<'_> {
        Resolved {
            modules,
            dependencies: &[],
            symbols: &NO_SYMBOLS,
        }
    }

    #[test]
    fn devname_rules() {
        let modules = [
            module(
                "fuse",
                &["devname:fuse", "char-major-10-229", "devname:late"],
            ),
            module(
                "loop",
                &[
                    "block-major-7-*",
                    "devname:loop-control",
                    "char-major-10-237",
                ],
            ),
            module("nodev", &["devname:foo"]),
            module("plain", &["pci:v*"]),
            module("signs", &["char-major- +4-  -1junk", "devname:x"]),
        ];
        let r = resolved(&modules);
        let (text, errors) = modules_devname(&r);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "# Device nodes to trigger on-demand module loading.\n\
             fuse fuse c10:229\n\
             loop loop-control c10:237\n\
             signs x c4:4294967295\n"
        );
        assert_eq!(
            errors,
            vec![b"Module 'nodev' has devname (foo) but lacks major and minor information. Ignoring.".to_vec()]
        );
    }

    #[test]
    fn empty_devname_is_zero_bytes() {
        assert!(modules_devname(&resolved(&[])).0.is_empty());
    }

    #[test]
    fn empty_outputs() {
        let r = resolved(&[]);
        assert!(modules_dep(&r).is_empty());
        assert_eq!(
            modules_alias(&r),
            b"# Aliases extracted from modules themselves.\n"
        );
        assert_eq!(
            modules_symbols(&r),
            b"# Aliases for symbols, used by symbol_request().\n"
        );
    }

    #[test]
    fn dep_lines() {
        let modules = [module("a", &[]), module("b", &[]), module("c", &[])];
        let dependencies = [vec![2, 1], vec![], vec![]];
        let r = Resolved {
            dependencies: &dependencies,
            ..resolved(&modules)
        };
        assert_eq!(
            modules_dep(&r),
            b"kernel/a.ko: kernel/c.ko kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\n"
        );
    }
}
