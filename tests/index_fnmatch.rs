//! Differential test: our `fnmatch` against the C library's `fnmatch(3)` with flags 0.
//!
//! The test process never calls `setlocale`, so libc runs in the C locale, as libkmod's
//! callers (modprobe, udev) do for matching purposes.

use std::ffi::CString;

use depmod_rs::index::fnmatch;
use proptest::prelude::*;

fn libc_fnmatch(pattern: &[u8], subject: &[u8]) -> bool {
    let p = CString::new(pattern).expect("no NUL");
    let s = CString::new(subject).expect("no NUL");
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    unsafe { libc::fnmatch(p.as_ptr(), s.as_ptr(), 0) == 0 }
}

/// Pattern pieces that exercise every branch of bracket parsing.
fn pattern_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "a", "b", "c", "z", "-", "]", "[", "!", "^", "*", "?", "\\", ":", ".", "=", "/", "_",
            "A", "0", " ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::sample::select(vec![
            "[:alpha:]", "[:digit:]", "[:upper:]", "[:lower:]", "[:space:]", "[:punct:]",
            "[:xdigit:]", "[:alnum:]", "[:blank:]", "[:cntrl:]", "[:graph:]", "[:print:]",
            "[:nope:]", "[:", ":]", "[=a=]", "[=", "=]", "[.a.]", "[.-.]", "[.ab.]", "[.", ".]",
            "a-c", "]-a", "a-]", "[!", "[^", "[]", "[!]", "\\]", "\\-",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => (1u8..=255).prop_map(|b| vec![b]),
    ]
}

fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(pattern_token(), 0..8).prop_map(|parts| parts.concat())
}

fn subject() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"abcz-][!^:.=/_A0 \\*?".to_vec()),
            1 => 1u8..=255,
        ],
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn matches_libc(pattern in pattern(), subject in subject()) {
        prop_assert_eq!(
            fnmatch(&pattern, &subject),
            libc_fnmatch(&pattern, &subject),
            "pattern {:?} subject {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&subject)
        );
    }

    /// Subjects built to match: every pattern character, with wildcards and sets filled in.
    #[test]
    fn matches_libc_on_near_matches(pattern in pattern(), fill in subject()) {
        let mut subject = Vec::new();
        let mut fill = fill.into_iter().cycle();
        for &b in &pattern {
            match b {
                b'*' | b'?' | b'[' | b']' | b'\\' => subject.extend(fill.next()),
                other => subject.push(other),
            }
        }
        prop_assert_eq!(
            fnmatch(&pattern, &subject),
            libc_fnmatch(&pattern, &subject),
            "pattern {:?} subject {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&subject)
        );
    }
}

#[test]
fn fixed_corner_cases_match_libc() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"[[.a.]-]", b"a"),
        (b"[[.a.]-]", b"-"),
        (b"[a[:b]c]", b"c"),
        (b"[a[:digit:]", b"a"),
        (b"[!a", b"[!a"),
        (b"[]", b"]"),
        (b"[]", b"[]"),
        (b"[!]]", b"a"),
        (b"[a-\\]]", b"b"),
        (b"[\\", b"[\\"),
        (b"*[", b"x["),
        (b"[[=a=]b]", b"a"),
        (b"[[=a]", b"="),
        (
            b"usb:v*p*d*dc*dsc*dp*ic*isc*ip*in*",
            b"usb:v1d6bp0002d0515dc09dsc00dp00ic09isc00ip00in00",
        ),
    ];
    for &(p, s) in cases {
        assert_eq!(
            fnmatch(p, s),
            libc_fnmatch(p, s),
            "pattern {:?} subject {:?}",
            String::from_utf8_lossy(p),
            String::from_utf8_lossy(s)
        );
    }
}
