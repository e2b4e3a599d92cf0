//! kmod's naming rules: module names from file paths and alias normalisation.
//!
//! Both work on raw bytes: paths and aliases need not be UTF-8.

use std::borrow::Cow;

/// The longest name kmod keeps (`PATH_MAX - 1`); longer input is truncated.
pub const MAX_NAME_LEN: usize = 4095;

/// The module name kmod derives from a path (`path_to_modname`): the basename up to its first
/// `.`, at most [`MAX_NAME_LEN`] bytes, with every `-` turned into `_`.
///
/// ```
/// assert_eq!(depmod_rs::names::modname_from_path(b"kernel/x/foo-bar.ko.xz"), b"foo_bar");
/// assert_eq!(depmod_rs::names::modname_from_path(b"a.b.ko"), b"a");
/// ```
pub fn modname_from_path(path: &[u8]) -> Vec<u8> {
    let base = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    };
    normalize_modname(base)
}

/// kmod's `modname_normalize`: copy up to the first `.` or NUL (at most [`MAX_NAME_LEN`] bytes),
/// turning `-` into `_`.
pub fn normalize_modname(name: &[u8]) -> Vec<u8> {
    name.iter()
        .take(MAX_NAME_LEN)
        .take_while(|&&b| b != b'.' && b != 0)
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// Why an alias could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// A `]` without an opening `[`, or a `[` that is never closed.
    #[error("unmatched bracket")]
    UnmatchedBracket,
}

/// kmod's `alias_normalize`: `-` becomes `_` outside `[...]` groups; group contents are copied
/// verbatim. An unmatched bracket is an error. The result is truncated at [`MAX_NAME_LEN`] bytes;
/// the input ends at its first NUL, if any.
///
/// ```
/// use depmod_rs::names::normalize_alias;
/// assert_eq!(normalize_alias(b"on-ce").unwrap(), b"on_ce");
/// assert_eq!(normalize_alias(b"o[n-p]e-x").unwrap(), b"o[n-p]e_x");
/// assert!(normalize_alias(b"a]b").is_err());
/// assert!(normalize_alias(b"a[b").is_err());
/// ```
pub fn normalize_alias(alias: &[u8]) -> Result<Vec<u8>, AliasError> {
    normalize_alias_cow(alias).map(Cow::into_owned)
}

/// [`normalize_alias`], borrowing from `alias` when normalising changes no byte (most
/// aliases have no `-` outside brackets), so that nothing is allocated for them.
///
/// ```
/// use std::borrow::Cow;
/// use depmod_rs::names::normalize_alias_cow;
/// assert!(matches!(normalize_alias_cow(b"pci:v*d*"), Ok(Cow::Borrowed(b"pci:v*d*"))));
/// assert_eq!(normalize_alias_cow(b"on-ce").unwrap().as_ref(), b"on_ce");
/// ```
pub fn normalize_alias_cow(alias: &[u8]) -> Result<Cow<'_, [u8]>, AliasError> {
    let end = memchr::memchr(0, alias).unwrap_or(alias.len());
    let alias = &alias[..end];
    // Every byte maps to one byte, so the result is the first `MAX_NAME_LEN` bytes with the
    // dashes outside brackets turned into underscores (a bracket group may be cut short).
    let len = alias.len().min(MAX_NAME_LEN);
    let mut out = Cow::Borrowed(&alias[..len]);
    let mut i = 0;
    while let Some(found) = memchr::memchr3(b'-', b'[', b']', &out[i..]) {
        i += found;
        match out[i] {
            b'-' => out.to_mut()[i] = b'_',
            b']' => return Err(AliasError::UnmatchedBracket),
            // A group's closing bracket is looked for in the whole alias, past the cut too.
            _ => {
                let close =
                    memchr::memchr(b']', &alias[i..]).ok_or(AliasError::UnmatchedBracket)?;
                i += close;
            }
        }
        i += 1;
        if i >= len {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modname_rules() {
        assert_eq!(modname_from_path(b"/lib/modules/x/foo-bar.ko"), b"foo_bar");
        assert_eq!(modname_from_path(b"noext"), b"noext");
        assert_eq!(modname_from_path(b"dir.d/x-y"), b"x_y");
        assert_eq!(modname_from_path(b"dir/.hidden.ko"), b"");
    }

    #[test]
    fn alias_rules() {
        assert_eq!(normalize_alias(b"pci:v*d*").unwrap(), b"pci:v*d*");
        assert_eq!(normalize_alias(b"a-[-]-b").unwrap(), b"a_[-]_b");
        assert_eq!(normalize_alias(b"").unwrap(), b"");
        assert_eq!(normalize_alias(b"x]"), Err(AliasError::UnmatchedBracket));
    }

    /// The rule as kmod states it, byte by byte.
    fn normalize_alias_bytewise(alias: &[u8]) -> Result<Vec<u8>, AliasError> {
        let end = alias.iter().position(|&b| b == 0).unwrap_or(alias.len());
        let alias = &alias[..end];
        let mut out = Vec::new();
        let mut i = 0;
        while i < alias.len() && out.len() < MAX_NAME_LEN {
            match alias[i] {
                b'-' => out.push(b'_'),
                b']' => return Err(AliasError::UnmatchedBracket),
                b'[' => {
                    let close = alias[i..]
                        .iter()
                        .position(|&b| b == b']')
                        .ok_or(AliasError::UnmatchedBracket)?;
                    let group = &alias[i..=i + close];
                    let room = MAX_NAME_LEN - out.len();
                    out.extend_from_slice(&group[..group.len().min(room)]);
                    i += close;
                }
                b => out.push(b),
            }
            i += 1;
        }
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn alias_rule_matches_the_bytewise_rule(
            alias in proptest::collection::vec(
                proptest::sample::select(&b"ab-[]\0*"[..]), 0..(MAX_NAME_LEN + 40)),
        ) {
            proptest::prop_assert_eq!(normalize_alias(&alias), normalize_alias_bytewise(&alias));
        }
    }

    #[test]
    fn alias_truncates_at_max_len() {
        let long = vec![b'a'; MAX_NAME_LEN + 10];
        assert_eq!(normalize_alias(&long).unwrap().len(), MAX_NAME_LEN);
    }
}
