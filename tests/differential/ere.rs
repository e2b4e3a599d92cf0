//! Kernel-version patterns (`override MOD KVER DIR`, `external KVER DIR`): a fixed table of
//! POSIX ERE constructs checked against kmod 34.2 and kmod 30, and the random patterns the
//! config cases draw from.

use depmod_rs::internals::PosixRegex;

use crate::support::{self, Compare, Invocation, TempDir};
use crate::tree::{self, CaseTree, Module, Place, Rng};

/// The kernel version of the table (the one of issue 16).
pub const KVER: &str = "6.1.0-56-amd64";

/// (pattern as `regcomp` receives it, whether kmod matches it against [`KVER`], what it
/// shows). Patterns that glibc's `regcomp` rejects never match; the table says which those
/// are (`invalid`).
pub const TABLE: &[(&[u8], bool, &str)] = &[
    // intervals
    (b"6.1.0-56-amd6{,3}4", true, "{,n} is {0,n} (issue 16)"),
    (b"amd6{1}4$", true, "{n}"),
    (b"amd6{2}4", false, "{n} that needs more"),
    (b"a{0}md64", true, "{0} matches the empty string"),
    (b"6{1,}", true, "{n,}"),
    (b"x{,}", true, "{,} is {0,}"),
    (b"-5{0,1}6-", true, "{m,n}"),
    (b"a{1,2}{3}", false, "an interval of an interval"),
    (b"6{32767}", false, "RE_DUP_MAX"),
    (b"6{32768}", false, "invalid: over RE_DUP_MAX"),
    (b"a{2,1}", false, "invalid: min > max"),
    (b"a{1", false, "invalid: unterminated interval"),
    (b"a{", false, "invalid: lone {"),
    (b"{1}6", false, "invalid: interval with nothing to repeat"),
    (b"^.{14}$", true, "the whole version"),
    (b"^.{15}$", false, "one more than the whole version"),
    // bracket expressions
    (b"^[[:digit:]]+\\.[[:digit:]]+", true, "character class"),
    (b"^[[:alpha:]]", false, "character class, no match"),
    (b"[[:nope:]]", false, "invalid: unknown class"),
    (b"[[:space:]]", false, "[:space:]"),
    (b"[^0-9]amd", true, "negated range"),
    (b"[]a]md64", true, "] first in a bracket is literal"),
    (b"[a-]md", true, "- last in a bracket is literal"),
    (b"[[:digit:]-]56", true, "class then literal -"),
    (b"[z-a]", false, "invalid: reversed range"),
    (b"[[.-.]]56", true, "collating symbol"),
    (
        b"[[.hyphen.]]56",
        false,
        "invalid: named collating symbol in the C locale",
    ),
    (b"[[=a=]]md64", true, "equivalence class"),
    (b"[[=x=]]", false, "equivalence class, no match"),
    (b"[", false, "invalid: unterminated bracket"),
    (b"[a", false, "invalid: unterminated bracket"),
    (b"a]", false, "a lone ] is literal"),
    // anchors
    (b"^6\\.1", true, "^"),
    (b"64$", true, "$"),
    (b"^amd", false, "^ elsewhere"),
    (b"^$", false, "empty version only"),
    (b"6$.*", false, "$ in the middle"),
    (b"a^", false, "^ in the middle"),
    (b"(^6)", true, "^ in a group"),
    (b"^*6", false, "invalid: * after ^"),
    (b"4$|^x", true, "anchors in alternatives"),
    // alternation and groups
    (b"^(5\\.10|6\\.1)\\.", true, "alternation in a group"),
    (b"amd64|arm64", true, "top-level alternation"),
    (b"(arm|x86)", false, "alternation, no match"),
    (b"|x", true, "empty alternative"),
    (b"a||b", true, "empty alternative in the middle"),
    (b"(|)", true, "group of empty alternatives"),
    (b"()", true, "empty group"),
    (b"(", false, "invalid: unmatched ("),
    (b")", false, "a lone ) is literal"),
    // escapes (GNU extensions included: glibc's ERE has them)
    (b"6\\.1\\.0", true, "escaped dots"),
    (b"6\\.1\\.1", false, "escaped dots, no match"),
    (b"\\d", true, "\\d is a literal d, not a digit class"),
    (b"\\s", false, "\\s is GNU whitespace"),
    (b"\\w+", true, "\\w is GNU word character"),
    (b"\\<amd", true, "\\< GNU start of word"),
    (b"\\bamd", true, "\\b GNU word boundary"),
    (b"\\Bmd", true, "\\B GNU not a word boundary"),
    (b"\\`6", true, "\\` GNU start of subject"),
    (b"4\\'", true, "\\' GNU end of subject"),
    (b"\\\\", false, "escaped backslash"),
    (b"\\(56\\)", false, "escaped parentheses are literal"),
    (b"\\{", false, "escaped brace is literal"),
    (b"6\\.1\\.0-56-amd64\\$", false, "escaped $ is literal"),
    (
        b"amd6\xe9?4",
        true,
        "a byte >= 0x80 is one character in the C locale",
    ),
    // backreferences (an ERE extension in glibc)
    (b"(6)\\.1\\.0-5\\1", true, "backreference"),
    (b"(6).*\\1", true, "backreference after .*"),
    (b"(a)\\1", false, "backreference, no match"),
    (b"(5)(6)\\2", false, "second group"),
    (b"\\1", false, "invalid: backreference to no group"),
    // repetition operators
    (b"*6", false, "invalid: leading *"),
    (b"+", false, "invalid: lone +"),
    (b"?", false, "invalid: lone ?"),
    (b"**", false, "invalid: lone **"),
    (b"x|*", false, "invalid: * after |"),
    (b"(*)", false, "invalid: * after ("),
    (b"a**", true, "repeated *"),
    (b"a+*", true, "+ then *"),
    (b"6??", true, "repeated ?"),
    // the rest
    (b"*", true, "the old-style wildcard, never compiled"),
    (b".", true, "any character"),
    (b".*", true, "anything"),
    (
        b"6.1.0-56-amd64",
        true,
        "the version itself (dots match any character)",
    ),
    (b"6.1.0-56-amd64-extra", false, "a longer version"),
];

/// The table's tree: `af_key` in `kernel/`, `updates/` and `extra/`, and one module in an
/// external directory. `search updates external built-in` makes `updates/` win unless the
/// override matches; the external module is indexed only if the external line matches.
fn table_case(pattern: &[u8]) -> CaseTree {
    let af_key = |dir: &str| {
        let mut m = Module::at(Place::ModuleDir(format!("{dir}/af_key")));
        m.exports.push("af_key_sym".into());
        m.modinfo.push((b"alias".to_vec(), b"net-pf-15".to_vec()));
        m
    };
    let mut user = Module::at(Place::ModuleDir("kernel/user".into()));
    user.imports.push(("af_key_sym".into(), None));
    // depmod.d drops a backslash and keeps the byte after it, so `\\` reaches the pattern
    // as one backslash.
    let escaped: Vec<u8> = pattern
        .iter()
        .flat_map(|&b| if b == b'\\' { vec![b, b] } else { vec![b] })
        .collect();
    let mut config = b"search updates external built-in\noverride af_key ".to_vec();
    config.extend_from_slice(&escaped);
    config.extend_from_slice(b" extra\nexternal ");
    config.extend_from_slice(&escaped);
    config.extend_from_slice(b" @EXT0@\n");
    CaseTree {
        kver: KVER.into(),
        modules: vec![
            af_key("kernel/net/key"),
            af_key("updates"),
            af_key("extra"),
            user,
            Module::at(Place::External(0, "ext_only".into())),
        ],
        externals: 1,
        configs: vec![("kver.conf".into(), config)],
        options: vec!["-vv".into()],
        ..CaseTree::default()
    }
}

/// Runs the table's tree for `pattern`; returns whether kmod 34 and kmod 30 applied the
/// override and the external line, and every difference of depmod-rs from them.
fn check_pattern(pattern: &[u8]) -> ([Option<bool>; 2], Vec<String>) {
    let tmp = TempDir::new("ere");
    let written = match tree::write(&table_case(pattern), &tmp.path().join("root")) {
        Ok(w) => w,
        Err(e) => return ([None, None], vec![format!("cannot write tree: {e}")]),
    };
    let inv = Invocation {
        basedir: written.root.clone(),
        kver: KVER.into(),
        config: vec![written.config_dir.clone()],
        extra: written.options.clone(),
        timeout_secs: Some(30),
        ..Invocation::default()
    };
    let runs = support::run_four(&inv, tmp.path());
    let matched = |o: &support::Outcome| {
        let dep = String::from_utf8_lossy(o.files.get("modules.dep")?).into_owned();
        let override_applied = dep.lines().any(|l| l.starts_with("extra/af_key.ko:"));
        let external_applied = dep.contains("/ext_only.ko:");
        // Both lines carry the same pattern; a disagreement would be a bug in the tree.
        (override_applied == external_applied).then_some(override_applied)
    };
    (
        [matched(&runs.kmod34), matched(&runs.kmod30)],
        runs.differences(Compare::ALL),
    )
}

/// The pattern from issue 16 on a tree with `af_key` in `updates/` and `extra/`: kmod
/// matches `{,3}` as `{0,3}` and indexes `extra/af_key.ko`, and so must depmod-rs.
#[test]
fn issue_16_interval_without_minimum() {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    let (matched, problems) = check_pattern(b"6.1.0-56-amd6{,3}4");
    assert_eq!(matched, [Some(true), Some(true)], "kmod did not match");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every row of [`TABLE`]: kmod 34 and kmod 30 match as the table says, and depmod-rs
/// writes the same files and messages (`-vv` shows the INFO line of each miss).
#[test]
fn ere_constructs_match_like_kmod() {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    let rows: Vec<u64> = (0..TABLE.len() as u64).collect();
    let failures = support::check_seeds_in_parallel(&rows, |row| {
        let (pattern, expected, what) = TABLE[row as usize];
        let shown = String::from_utf8_lossy(pattern).into_owned();
        let mut problems = Vec::new();
        let (matched, differences) = check_pattern(pattern);
        if matched != [Some(expected); 2] {
            problems.push(format!(
                "kmod 34 / kmod 30 matched {matched:?}, the table says {expected}"
            ));
        }
        let invalid = PosixRegex::new(pattern).is_err() && pattern != b"*";
        if invalid != what.starts_with("invalid") {
            problems.push(format!("regcomp rejects it: {invalid}"));
        }
        problems.extend(differences);
        problems
            .into_iter()
            .map(|p| format!("{shown:?} ({what}): {p}"))
            .collect()
    });
    let failures: Vec<String> = failures.into_iter().flat_map(|(_, p)| p).collect();
    assert!(
        failures.is_empty(),
        "{} problems in {} patterns:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

/// Atoms for random patterns.
const ATOMS: &[&str] = &[
    ".",
    "a",
    "d",
    "6",
    "-",
    "\\.",
    "\\-",
    "[0-9]",
    "[^0-9]",
    "[[:digit:]]",
    "[[:alpha:]]",
    "[[:alnum:]_]",
    "[[=a=]]",
    "[[.-.]]",
    "[]a]",
    "[a-]",
    "()",
    "(|)",
    "\\w",
    "\\W",
    "\\<",
    "\\>",
    "\\b",
    "\\B",
    "\\`",
    "\\'",
    "\\d",
    "\\1",
    "\\2",
    "^",
    "$",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    "|",
    "\\",
    "[z-a]",
    "[[:nope:]]",
    "[[.hyphen.]]",
    "\u{e9}",
    "+",
    "*",
    "?",
];

/// Quantifiers, intervals included (bounds small enough that nesting stays cheap).
const QUANTIFIERS: &[&str] = &[
    "?", "*", "+", "{0}", "{1}", "{2}", "{,3}", "{1,}", "{0,2}", "{2,1}", "{,}", "{1", "{a}",
    "{32768}", "??", "*?", "+*",
];

/// A random kernel-version pattern: mostly `kver` rewritten with ERE constructs (so that it
/// matches about half of the time), else a random string of ERE syntax, else a table row.
pub fn random_pattern(rng: &mut Rng, kver: &str) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => derived_pattern(rng, kver),
        6..=7 => {
            let mut p = String::new();
            for _ in 0..rng.range(1, 8) {
                p.push_str(rng.pick(ATOMS).expect("non-empty"));
                if rng.chance(30) {
                    p.push_str(rng.pick(QUANTIFIERS).expect("non-empty"));
                }
            }
            p.into_bytes()
        }
        8 => rng.pick(TABLE).expect("non-empty").0.to_vec(),
        _ => rng
            .pick(&["*", ".*", "4.4", "6\\.", "^6\\.1\\.", "nomatch", "*x", "**"])
            .expect("non-empty")
            .as_bytes()
            .to_vec(),
    }
}

fn derived_pattern(rng: &mut Rng, kver: &str) -> Vec<u8> {
    let chars: Vec<char> = kver.chars().collect();
    // A substring of the version, so the match is unanchored on one side or both.
    let start = if rng.chance(30) {
        rng.below(chars.len())
    } else {
        0
    };
    let end = if rng.chance(30) {
        rng.range(start, chars.len())
    } else {
        chars.len()
    };
    let mut out = String::new();
    if start == 0 && rng.chance(30) {
        out.push('^');
    }
    let mut intervals = 0;
    for &c in &chars[start..end] {
        let piece = match rng.below(20) {
            0 => ".".to_string(),
            1 if c.is_ascii_digit() => "[[:digit:]]".to_string(),
            2 if c.is_ascii_alphabetic() => "[[:alpha:]]".to_string(),
            3 => format!("[{c}]"),
            4 => format!("[^{}]", if c == 'x' { 'y' } else { 'x' }),
            5 => format!("[[={c}=]]"),
            6 => format!("({c}|z)"),
            7 if c != '.' => format!("\\{c}"),
            8 => format!("[[.{c}.]]"),
            9 if c == '.' => "\\.".to_string(),
            10 => {
                // A wrong character: the pattern no longer matches there.
                let wrong = if c == 'q' { 'r' } else { 'q' };
                wrong.to_string()
            }
            11 => format!("({c})"),
            _ => c.to_string(),
        };
        out.push_str(&piece);
        if rng.chance(12) {
            let q = rng.pick(QUANTIFIERS).expect("non-empty");
            if q.starts_with('{') {
                if intervals >= 2 {
                    continue;
                }
                intervals += 1;
            }
            out.push_str(q);
        }
    }
    if rng.chance(10) {
        out.push_str("\\1");
    }
    if end == chars.len() && rng.chance(30) {
        out.push('$');
    }
    if rng.chance(10) {
        out = format!(
            "{out}|{}",
            rng.pick(&["x86", "^$", "", "(", "arm"]).expect("non-empty")
        );
    }
    out.into_bytes()
}
