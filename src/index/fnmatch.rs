//! POSIX `fnmatch(3)` with flags 0, as glibc implements it in the C locale — what libkmod uses
//! to match alias patterns.
//!
//! Supported: `*`, `?`, bracket expressions `[...]` with `!`/`^` negation, ranges, `\` escapes
//! inside and outside brackets, character classes (`[:alpha:]` …), one-character equivalence
//! classes (`[=a=]`) and collating symbols (`[.a.]`). With flags 0, `/` and a leading `.` are
//! ordinary characters. glibc's corner cases are reproduced: a trailing `\` never matches; an
//! unterminated `[` is a literal `[` unless its set matches the character, in which case the
//! whole match fails; an unknown class name fails the match; a `]` right after `[` or `[!` is a
//! member.
//!
//! Matching simulates the pattern as a set of active positions over the subject, so time is
//! O(|pattern| × |subject|) whatever the number of stars.

/// Longest character-class name glibc scans (`CHARCLASS_NAME_MAX`).
const CLASS_NAME_MAX: usize = 2048;

/// Whether `subject` matches `pattern` under `fnmatch(pattern, subject, 0)`.
///
/// Both are treated as C strings: they end at their first NUL, if any.
pub fn fnmatch(pattern: &[u8], subject: &[u8]) -> bool {
    let pattern = until_nul(pattern);
    let subject = until_nul(subject);
    let pat = Pattern(pattern);
    let len = pattern.len();
    let mut active = vec![false; len + 1];
    let mut next = vec![false; len + 1];
    active[0] = true;
    pat.close_stars(&mut active);
    for &ch in subject {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for p in 0..len {
            if !active[p] {
                continue;
            }
            let target = if pattern[p] == b'*' {
                Some(p)
            } else {
                pat.step(p, ch)
            };
            if let Some(q) = target {
                next[q] = true;
                any = true;
            }
        }
        if !any {
            return false;
        }
        pat.close_stars(&mut next);
        std::mem::swap(&mut active, &mut next);
    }
    active[len]
}

fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(end) => &s[..end],
        None => s,
    }
}

/// A pattern, read as a C string: past its end every byte is NUL.
struct Pattern<'p>(&'p [u8]);

impl Pattern<'_> {
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }

    /// A `*` may match nothing: activate the position after every active star.
    fn close_stars(&self, active: &mut [bool]) {
        for p in 0..self.0.len() {
            if active[p] && self.0[p] == b'*' {
                active[p + 1] = true;
            }
        }
    }

    /// Matches the single-character token at `p` (anything but `*`) against `ch`; returns the
    /// position after the token, or `None` if it does not match.
    fn step(&self, p: usize, ch: u8) -> Option<usize> {
        match self.at(p) {
            b'?' => Some(p + 1),
            b'\\' => {
                let escaped = self.at(p + 1);
                // A trailing backslash never matches.
                (escaped != 0 && escaped == ch).then_some(p + 2)
            }
            b'[' => self.bracket(p, ch),
            literal => (literal == ch).then_some(p + 1),
        }
    }

    /// The bracket expression opening at `open`, against `ch`.
    fn bracket(&self, open: usize, ch: u8) -> Option<usize> {
        let mut p = open + 1;
        let negate = matches!(self.at(p), b'!' | b'^');
        if negate {
            p += 1;
        }
        let mut c = self.at(p);
        p += 1;
        loop {
            // `member`: a plain member character to compare (and maybe start a range), with its
            // "is the start of a range" decision already made (for collating symbols).
            let member: Option<(u8, Option<bool>)>;
            if c == b'\\' {
                let escaped = self.at(p);
                if escaped == 0 {
                    return None;
                }
                p += 1;
                member = Some((escaped, None));
            } else if c == b'[' && self.at(p) == b':' {
                match self.class(&mut p) {
                    ClassParse::NotAClass => member = Some((b'[', None)),
                    ClassParse::Unknown => return None,
                    ClassParse::Class(class) => {
                        if class_contains(class, ch) {
                            return self.skip_rest(p, negate);
                        }
                        c = self.at(p);
                        p += 1;
                        member = None;
                    }
                }
            } else if c == b'[' && self.at(p) == b'=' {
                let start = p;
                let e = self.at(p + 1);
                if e != 0 && self.at(p + 2) == b'=' && self.at(p + 3) == b']' {
                    p += 4;
                    if ch == e {
                        return self.skip_rest(p, negate);
                    }
                    c = self.at(p);
                    p += 1;
                    member = None;
                } else {
                    p = start;
                    member = Some((b'[', None));
                }
            } else if c == 0 {
                // Unterminated: the `[` is an ordinary character.
                return (ch == b'[').then_some(open + 1);
            } else if c == b'[' && self.at(p) == b'.' {
                let symbol = self.collating_symbol(&mut p)?;
                let is_range = self.at(p) == b'-' && self.at(p + 1) != 0;
                member = Some((symbol, Some(is_range)));
            } else {
                member = Some((c, None));
            }

            if let Some((low, range_decided)) = member {
                let is_range = range_decided.unwrap_or_else(|| {
                    self.at(p) == b'-' && self.at(p + 1) != 0 && self.at(p + 1) != b']'
                });
                if !is_range && low == ch {
                    return self.skip_rest(p, negate);
                }
                c = self.at(p);
                p += 1;
                if c == b'-' && self.at(p) != b']' {
                    let mut high = self.at(p);
                    p += 1;
                    if high == b'[' && self.at(p) == b'.' {
                        high = self.collating_symbol(&mut p)?;
                    } else {
                        if high == b'\\' {
                            high = self.at(p);
                            p += 1;
                        }
                        if high == 0 {
                            return None;
                        }
                    }
                    if low <= ch && ch <= high {
                        return self.skip_rest(p, negate);
                    }
                    c = self.at(p);
                    p += 1;
                }
            }
            if c == b']' {
                break;
            }
        }
        // Nothing matched: the set fails unless negated.
        negate.then_some(p)
    }

    /// Parses `[:name:]` with `p` at the `:`; on success `p` is past the `]`.
    fn class(&self, p: &mut usize) -> ClassParse {
        let start = *p;
        let mut q = start;
        loop {
            if q - start == CLASS_NAME_MAX {
                return ClassParse::Unknown;
            }
            q += 1;
            let c = self.at(q);
            if c == b':' && self.at(q + 1) == b']' {
                *p = q + 2;
                return match Class::from_name(&self.0[start + 1..q]) {
                    Some(class) => ClassParse::Class(class),
                    None => ClassParse::Unknown,
                };
            }
            if !is_class_name_char(c) {
                *p = start;
                return ClassParse::NotAClass;
            }
        }
    }

    /// Parses `[.x.]` with `p` at the first `.`; only one-character symbols exist in the C
    /// locale, anything else fails the match.
    fn collating_symbol(&self, p: &mut usize) -> Option<u8> {
        let start = *p;
        let mut q = start;
        loop {
            q += 1;
            let c = self.at(q);
            if c == b'.' && self.at(q + 1) == b']' {
                break;
            }
            if c == 0 {
                return None;
            }
        }
        *p = q + 2;
        (q - start == 2).then(|| self.at(start + 1))
    }

    /// After a member matched: skips to the closing `]` (glibc's own scan, which differs
    /// slightly from the parse above) and applies the negation.
    fn skip_rest(&self, mut p: usize, negate: bool) -> Option<usize> {
        loop {
            let c = self.at(p);
            p += 1;
            match c {
                b']' => break,
                0 => return None,
                b'\\' => {
                    if self.at(p) == 0 {
                        return None;
                    }
                    p += 1;
                }
                b'[' if self.at(p) == b':' => {
                    let start = p;
                    let mut length = 0;
                    loop {
                        p += 1;
                        let c = self.at(p);
                        length += 1;
                        if length == CLASS_NAME_MAX {
                            return None;
                        }
                        if c == b':' && self.at(p + 1) == b']' {
                            p += 2;
                            break;
                        }
                        if !is_class_name_char(c) {
                            p = start;
                            break;
                        }
                    }
                }
                b'[' if self.at(p) == b'=' => {
                    if self.at(p + 1) == 0 {
                        return None;
                    }
                    if self.at(p + 2) != b'=' || self.at(p + 3) != b']' {
                        return None;
                    }
                    p += 4;
                }
                b'[' if self.at(p) == b'.' => loop {
                    p += 1;
                    let c = self.at(p);
                    if c == 0 {
                        return None;
                    }
                    if c == b'.' && self.at(p + 1) == b']' {
                        p += 2;
                        break;
                    }
                },
                _ => {}
            }
        }
        (!negate).then_some(p)
    }
}

/// glibc only scans `a`..=`y` as class-name characters (its test is `c < 'a' || c >= 'z'`).
fn is_class_name_char(c: u8) -> bool {
    (b'a'..=b'y').contains(&c)
}

enum ClassParse {
    NotAClass,
    Unknown,
    Class(Class),
}

#[derive(Clone, Copy)]
enum Class {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl Class {
    fn from_name(name: &[u8]) -> Option<Class> {
        Some(match name {
            b"alnum" => Class::Alnum,
            b"alpha" => Class::Alpha,
            b"blank" => Class::Blank,
            b"cntrl" => Class::Cntrl,
            b"digit" => Class::Digit,
            b"graph" => Class::Graph,
            b"lower" => Class::Lower,
            b"print" => Class::Print,
            b"punct" => Class::Punct,
            b"space" => Class::Space,
            b"upper" => Class::Upper,
            b"xdigit" => Class::Xdigit,
            _ => return None,
        })
    }
}

/// C-locale `<ctype.h>` membership (bytes ≥ 0x80 belong to no class).
fn class_contains(class: Class, ch: u8) -> bool {
    match class {
        Class::Alnum => ch.is_ascii_alphanumeric(),
        Class::Alpha => ch.is_ascii_alphabetic(),
        Class::Blank => ch == b' ' || ch == b'\t',
        Class::Cntrl => ch.is_ascii_control(),
        Class::Digit => ch.is_ascii_digit(),
        Class::Graph => ch.is_ascii_graphic(),
        Class::Lower => ch.is_ascii_lowercase(),
        Class::Print => ch.is_ascii_graphic() || ch == b' ',
        Class::Punct => ch.is_ascii_punctuation(),
        Class::Space => matches!(ch, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
        Class::Upper => ch.is_ascii_uppercase(),
        Class::Xdigit => ch.is_ascii_hexdigit(),
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn basics() {
        assert!(fnmatch(b"pci:v*d*", b"pci:v00008086d00001234"));
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(!fnmatch(b"a?c", b"ac"));
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[!a-c]x", b"bx"));
        assert!(fnmatch(b"[^a-c]x", b"dx"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"\\*", b"*"));
        assert!(!fnmatch(b"\\*", b"a"));
        assert!(!fnmatch(b"a\\", b"a"));
        assert!(fnmatch(b"*/.x", b"a/.x"));
        assert!(fnmatch(b"[[:digit:]]", b"7"));
        assert!(!fnmatch(b"[[:nope:]]", b"7"));
        assert!(fnmatch(b"[a", b"[a"));
        assert!(!fnmatch(b"[a", b"a"));
        assert!(fnmatch(b"", b""));
        assert!(!fnmatch(b"", b"a"));
        assert!(fnmatch(b"*", b""));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b".to_vec();
        let subject = vec![b'a'; 5000];
        assert!(!fnmatch(&pattern, &subject));
    }
}
