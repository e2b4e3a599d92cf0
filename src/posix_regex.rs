//! POSIX extended regular expressions through the C library's `regcomp`/`regexec`.
//!
//! kmod matches the kernel-version field of `override` and `external` lines with the C
//! library's regex engine (spec §2.2). No other engine agrees with glibc's on every pattern
//! (intervals such as `{,3}`, bracket expressions, equivalence classes, backreferences, what
//! counts as invalid), so depmod-rs calls the same functions with the same flags instead of
//! reimplementing them. The result is exactly what kmod gets on the machine depmod-rs runs on.
//!
//! Patterns and subjects are C strings: everything from the first NUL byte on is ignored, as
//! kmod, which only ever sees the part before it, would ignore it. Neither kmod nor depmod-rs
//! calls `setlocale`, so both run in the "C" locale, where every byte is one character.
//!
//! Cost: the C library's compiler can take time and memory exponential in the nesting of
//! intervals (`((a{1,100}){1,100}){1,100}`). kmod has the same exposure, and depmod.d is
//! root's configuration; no limit is imposed, since any limit would make a pattern kmod
//! accepts behave differently here. See `docs/robustness.md`.

use std::ffi::{c_char, CStr, CString};
use std::fmt;

/// A pattern the C library's `regcomp` rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression ({code}): {message}")]
pub struct CompileError {
    /// The `REG_*` error code `regcomp` returned.
    pub code: i32,
    /// The C library's text for it (`regerror`), e.g. `Unmatched ( or \(`.
    pub message: String,
}

/// A compiled POSIX extended regular expression (`REG_EXTENDED | REG_NOSUB`), freed with
/// `regfree` when dropped.
pub struct PosixRegex {
    // Boxed so the compiled state never moves after `regcomp` filled it in.
    compiled: Box<libc::regex_t>,
}

/// The bytes before the first NUL: what a C function receiving `bytes` sees.
fn c_string(bytes: &[u8]) -> CString {
    let end = memchr::memchr(0, bytes).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("no NUL before `end`")
}

impl PosixRegex {
    /// Compiles `pattern` (up to its first NUL byte) as kmod does: extended syntax, no
    /// sub-match reporting.
    pub fn new(pattern: &[u8]) -> Result<Self, CompileError> {
        let pattern = c_string(pattern);
        // SAFETY: `regex_t` is a plain C struct (pointers, sizes, flags) for which all-zero
        // bytes are a valid value.
        let mut compiled: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `compiled` is valid for writes of a `regex_t`, `pattern` is NUL-terminated.
        let code = unsafe {
            libc::regcomp(
                &mut *compiled,
                pattern.as_ptr(),
                libc::REG_EXTENDED | libc::REG_NOSUB,
            )
        };
        if code != 0 {
            // A failed `regcomp` releases what it allocated (kmod does not call `regfree`
            // then either), so the buffer is dropped without `regfree`.
            let message = error_message(code, &*compiled);
            return Err(CompileError { code, message });
        }
        Ok(PosixRegex { compiled })
    }

    /// Whether the expression matches anywhere in `subject` (up to its first NUL byte):
    /// `regexec` with no flags, so `^` and `$` anchor at the ends of `subject`.
    pub fn is_match(&self, subject: &[u8]) -> bool {
        let subject = c_string(subject);
        // SAFETY: `compiled` holds a successfully compiled expression; with `nmatch == 0` the
        // match array is not touched.
        let code = unsafe {
            libc::regexec(
                &*self.compiled,
                subject.as_ptr(),
                0,
                std::ptr::null_mut(),
                0,
            )
        };
        code == 0
    }
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: `compiled` was filled in by a successful `regcomp` and is freed only here.
        unsafe { libc::regfree(&mut *self.compiled) };
    }
}

impl fmt::Debug for PosixRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosixRegex").finish_non_exhaustive()
    }
}

fn error_message(code: i32, compiled: *const libc::regex_t) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its length; `regerror` NUL-terminates what it writes.
    unsafe { libc::regerror(code, compiled, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: `regerror` wrote a NUL-terminated string into `buf` (truncated if need be).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether `pattern` matches `subject` by kmod's rule: compile, run unanchored, and treat a
/// pattern that does not compile as no match.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    PosixRegex::new(pattern).is_ok_and(|re| re.is_match(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_syntax_unanchored() {
        assert!(matches(b"6\\.1", b"x6.1y"));
        assert!(matches(b"a{,3}4", b"amd64"));
        assert!(matches(b"^6\\.1\\.0-(56|57)-amd64$", b"6.1.0-57-amd64"));
        assert!(!matches(b"^6\\.2", b"6.1.0"));
        assert!(matches(b"", b"anything"));
    }

    #[test]
    fn invalid_patterns_report_the_c_library_error() {
        let err = PosixRegex::new(b"(").unwrap_err();
        assert_eq!(err.code, libc::REG_EPAREN);
        assert!(!err.message.is_empty());
        assert!(!matches(b"(", b"("));
        assert!(PosixRegex::new(b"a{2,1}").is_err());
        assert!(PosixRegex::new(b"[[:nope:]]").is_err());
    }

    #[test]
    fn nul_ends_pattern_and_subject() {
        // The pattern is `^a$` (the rest is never seen), the subject is `a`.
        assert!(matches(b"^a$\0(", b"a\0bc"));
        assert!(!matches(b"^a$", b"ab\0"));
    }

    #[test]
    fn bytes_are_characters_in_the_c_locale() {
        assert!(matches(b"^\xe9.$", b"\xe9x"));
        assert!(matches(b"^.$", b"\xff"));
    }
}
