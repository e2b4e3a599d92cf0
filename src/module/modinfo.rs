//! `.modinfo` strings, split as libkmod's `kmod_elf_get_modinfo_strings` and
//! `kmod_module_get_info` split them.

use super::elf::{ModuleElf, Wanted};
use super::ModinfoEntry;

/// Every `key=value` string of `.modinfo`, in file order.
///
/// Leading NULs are skipped; if one byte or less remains there are no strings. Otherwise
/// the strings are the non-empty runs between NULs (a missing final NUL is tolerated), each
/// split at its first `=`; a string without `=` is a key with an empty value.
pub(crate) fn modinfo(elf: &ModuleElf<'_>) -> Vec<ModinfoEntry> {
    let Some(range) = elf.section(Wanted::Modinfo) else {
        return Vec::new();
    };
    parse_modinfo(elf.bytes(range))
}

/// The values of the entries whose key is `keys[i]`, in file order, for each `i` (nothing
/// else is copied).
pub(crate) fn modinfo_selected(elf: &ModuleElf<'_>, keys: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
    let mut values = vec![Vec::new(); keys.len()];
    let Some(range) = elf.section(Wanted::Modinfo) else {
        return values;
    };
    for s in raw_strings(elf.bytes(range)) {
        // The key is the text before the first `=`: `key` is it exactly when the string is
        // `key` alone or `key=…` (keys hold no `=`), so no string needs to be searched.
        let found = keys.iter().enumerate().find_map(|(slot, key)| {
            // Most strings are told apart by their first byte (a call to `memcmp` is not).
            if s.first() != key.first() {
                return None;
            }
            let rest = s.strip_prefix(*key)?;
            match rest.split_first() {
                None => Some((slot, rest)),
                Some((b'=', value)) => Some((slot, value)),
                Some(_) => None,
            }
        });
        if let Some((slot, value)) = found {
            values[slot].push(value.to_vec());
        }
    }
    values
}

/// The non-empty NUL-separated strings of `.modinfo`, with kmod's leading-NUL rule.
fn raw_strings(mut strings: &[u8]) -> impl Iterator<Item = &[u8]> {
    while strings.len() > 1 && strings[0] == 0 {
        strings = &strings[1..];
    }
    if strings.len() <= 1 {
        strings = &[];
    }
    let mut start = 0;
    let ends = memchr::memchr_iter(0, strings).chain(std::iter::once(strings.len()));
    ends.filter_map(move |end| {
        let s = &strings[start..end];
        start = end + 1;
        (!s.is_empty()).then_some(s)
    })
}

/// Splits raw `.modinfo` contents.
pub fn parse_modinfo(strings: &[u8]) -> Vec<ModinfoEntry> {
    raw_strings(strings)
        .map(|s| match memchr::memchr(b'=', s) {
            Some(eq) => ModinfoEntry {
                key: s[..eq].to_vec(),
                value: s[eq + 1..].to_vec(),
            },
            None => ModinfoEntry {
                key: s.to_vec(),
                value: Vec::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &[u8]) -> Vec<(String, String)> {
        parse_modinfo(raw)
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8(e.key).unwrap(),
                    String::from_utf8(e.value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn splits_on_nul_runs_and_first_equals() {
        assert_eq!(
            pairs(b"\0\0alias=a=b\0\0\0flag\0license=GPL"),
            vec![
                ("alias".into(), "a=b".into()),
                ("flag".into(), String::new()),
                ("license".into(), "GPL".into())
            ]
        );
    }

    #[test]
    fn one_byte_after_padding_is_nothing() {
        assert!(pairs(b"\0\0a").is_empty());
        assert!(pairs(b"a").is_empty());
        assert_eq!(pairs(b"ab"), vec![("ab".into(), String::new())]);
        assert!(pairs(b"").is_empty());
    }
}
