//! The inputs of each kind of case, from a seed: depmod.d files, the text files of real
//! trees (mutated), `Module.symvers`, `System.map`, and module `.modinfo` contents.

use std::fs;
use std::sync::OnceLock;

use crate::ere;
use crate::mutate::{self, Format};
use crate::support;
use crate::tree::{crc_of, CaseTree, Module, Place, Rng};

/// `modules.order` and `modules.builtin` are read with `fgets` into a `PATH_MAX` buffer.
const LINES: Format = Format {
    terminator: b'\n',
    buffer: 4096,
};
/// `Module.symvers` and `System.map` are read with `fgets` into 10240 bytes.
const LONG_LINES: Format = Format {
    terminator: b'\n',
    buffer: 10240,
};
/// `modules.builtin.modinfo` fields are flushed at 4096 bytes.
const RECORDS: Format = Format {
    terminator: 0,
    buffer: 4096,
};
/// depmod.d lines are read into a buffer of 256 bytes that doubles as it fills.
const CONFIG_LINE: Format = Format {
    terminator: b'\n',
    buffer: 256,
};

/// The text inputs of one real tree, split into records.
pub struct RealTree {
    /// Kernel version of the tree.
    pub kver: String,
    /// `modules.order` lines.
    pub order: Vec<Vec<u8>>,
    /// `modules.builtin` lines.
    pub builtin: Vec<Vec<u8>>,
    /// `modules.builtin.modinfo` records.
    pub builtin_modinfo: Vec<Vec<u8>>,
}

/// The real trees the text inputs come from: the ones `scripts/fetch-references.sh` always
/// fetches, so that a seed names the same case on every machine whatever else is cached.
pub const REAL_TREES: &[&str] = &[
    "bookworm-amd64",
    "trixie-amd64",
    "bookworm-i386",
    "bookworm-s390x",
    "bookworm-arm64",
    "bookworm-armhf",
];

/// Whether every tree of [`REAL_TREES`] is in the cache (see `support::require`).
pub fn require_real_trees() -> bool {
    REAL_TREES
        .iter()
        .all(|name| support::require(&format!("tree-{name}")))
}

/// The trees of [`REAL_TREES`] (read once).
pub fn real_trees() -> &'static [RealTree] {
    static TREES: OnceLock<Vec<RealTree>> = OnceLock::new();
    TREES.get_or_init(|| {
        REAL_TREES
            .iter()
            .filter_map(|name| support::tree(name))
            .map(|t| {
                let dir = t.root.join("lib/modules").join(&t.kver);
                let read = |name: &str| fs::read(dir.join(name)).unwrap_or_default();
                RealTree {
                    order: mutate::split(&read("modules.order"), b'\n'),
                    builtin: mutate::split(&read("modules.builtin"), b'\n'),
                    builtin_modinfo: mutate::split(&read("modules.builtin.modinfo"), 0),
                    kver: t.kver,
                }
            })
            .filter(|t| t.order.len() > 20 && t.builtin.len() > 20)
            .collect()
    })
}

fn slice(rng: &mut Rng, records: &[Vec<u8>], min: usize, max: usize) -> Vec<Vec<u8>> {
    let n = rng.range(min, max).min(records.len());
    let start = rng.below(records.len() - n + 1);
    records[start..start + n].to_vec()
}

/// Symbols every tree's modules import from vmlinux (listed in `Module.symvers` and
/// `System.map` when those are used).
const VMLINUX: &[&str] = &[
    "printk",
    "_printk",
    "kmalloc_caches",
    "kfree",
    "mutex_lock",
    "__fentry__",
    "module_layout",
    "__x86_return_thunk",
];

/// A tree of real module paths (a few consecutive `modules.order` lines of a real tree),
/// each a synthetic module that exports a symbol and imports from earlier ones and from
/// vmlinux, some with disagreeing CRCs. The real `modules.order` lines are returned too.
fn real_path_tree(rng: &mut Rng, real: &RealTree) -> (CaseTree, Vec<Vec<u8>>) {
    let window = slice(rng, &real.order, 3, 7);
    let mut modules: Vec<Module> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for line in &window {
        let text = String::from_utf8_lossy(line);
        let rel = text.trim_end().trim_end_matches(".ko");
        let modname = rel.rsplit('/').next().unwrap_or(rel).replace('-', "_");
        let mut m = Module::at(Place::ModuleDir(rel.to_string()));
        m.exports.push(format!("{modname}_sym"));
        if rng.chance(25) {
            m.exports.push("shared_sym".into());
        }
        for earlier in &names {
            if rng.chance(40) {
                let crc = crc_of(&format!("{earlier}_sym"));
                m.imports
                    .push((format!("{earlier}_sym"), vary_crc(rng, crc)));
            }
        }
        if rng.chance(20) {
            m.imports.push(("shared_sym".into(), None));
        }
        for sym in VMLINUX {
            if rng.chance(40) {
                m.imports
                    .push((sym.to_string(), vary_crc(rng, crc_of(sym))));
            }
        }
        m.modinfo
            .push((b"alias".to_vec(), format!("{modname}-alias").into_bytes()));
        names.push(modname);
        modules.push(m);
    }
    // No cycles (kmod's cycle report can hang): a module keeps its import of `shared_sym`
    // only if every exporter of it comes earlier.
    let exporters: Vec<usize> = (0..modules.len())
        .filter(|&i| modules[i].exports.iter().any(|e| e == "shared_sym"))
        .collect();
    for (i, m) in modules.iter_mut().enumerate() {
        if exporters.iter().any(|&e| e >= i) {
            m.imports.retain(|(s, _)| s != "shared_sym");
        }
    }
    let mut case = CaseTree {
        kver: real.kver.clone(),
        modules,
        ..CaseTree::default()
    };
    case.module_dir_files
        .push(("modules.order".into(), window.concat()));
    if rng.chance(60) {
        let builtin = slice(rng, &real.builtin, 3, 12).concat();
        case.module_dir_files
            .push(("modules.builtin".into(), builtin));
    }
    if rng.chance(60) {
        let modinfo = slice(rng, &real.builtin_modinfo, 5, 30).concat();
        case.module_dir_files
            .push(("modules.builtin.modinfo".into(), modinfo));
    }
    (case, window)
}

fn vary_crc(rng: &mut Rng, crc: u32) -> Option<u32> {
    match rng.below(10) {
        0 => None,
        1 => Some(crc ^ 1),
        _ => Some(crc),
    }
}

fn set_file(case: &mut CaseTree, name: &str, data: Vec<u8>) {
    case.module_dir_files.retain(|(n, _)| n != name);
    case.module_dir_files.push((name.into(), data));
}

fn common_options(rng: &mut Rng, case: &mut CaseTree) {
    if rng.chance(20) {
        case.options.push("-w".into());
    }
    if rng.chance(10) {
        case.options.push("-v".into());
    }
    if rng.chance(5) {
        case.options.push("-n".into());
    }
}

fn pick_real(rng: &mut Rng) -> &'static RealTree {
    rng.pick(real_trees()).expect("the real trees are required")
}

/// A mutated `modules.order` (real lines around the tree's modules).
pub fn order_case(rng: &mut Rng) -> CaseTree {
    let real = pick_real(rng);
    let (mut case, window) = real_path_tree(rng, real);
    let mut lines = slice(rng, &real.order, 0, 6);
    lines.extend(window);
    lines.extend(slice(rng, &real.order, 0, 6));
    rng.shuffle(&mut lines[..]);
    let data = mutate::mutate(rng, &lines, &real.order, LINES);
    set_file(&mut case, "modules.order", data);
    common_options(rng, &mut case);
    case
}

/// A case whose module-directory file `name` is a mutated slice of `min..=max` records of
/// the real tree's `records`.
fn real_file_case(
    rng: &mut Rng,
    name: &str,
    records: fn(&RealTree) -> &[Vec<u8>],
    (min, max): (usize, usize),
    format: Format,
) -> CaseTree {
    let real = pick_real(rng);
    let (mut case, _) = real_path_tree(rng, real);
    let pool = records(real);
    let slice = slice(rng, pool, min, max);
    let data = mutate::mutate(rng, &slice, pool, format);
    set_file(&mut case, name, data);
    common_options(rng, &mut case);
    case
}

/// A mutated `modules.builtin`.
pub fn builtin_case(rng: &mut Rng) -> CaseTree {
    real_file_case(rng, "modules.builtin", |t| &t.builtin, (3, 30), LINES)
}

/// A mutated `modules.builtin.modinfo`.
pub fn builtin_modinfo_case(rng: &mut Rng) -> CaseTree {
    let name = "modules.builtin.modinfo";
    real_file_case(rng, name, |t| &t.builtin_modinfo, (5, 60), RECORDS)
}

/// Sometimes `-P _`: symbols that start with `_` (some vmlinux ones) lose it, and the
/// `Module.symvers` and `System.map` names get a `_` prefix to be stripped.
fn maybe_prefix(rng: &mut Rng, case: &mut CaseTree) -> &'static str {
    if !rng.chance(15) {
        return "";
    }
    case.options.extend(["-P".to_string(), "_".to_string()]);
    "_"
}

/// A mutated `Module.symvers` (the vmlinux symbols and some of the modules' own, in the
/// kernel's format, some with other CRCs) passed with `-E`.
pub fn symvers_case(rng: &mut Rng) -> CaseTree {
    let real = pick_real(rng);
    let (mut case, _) = real_path_tree(rng, real);
    let prefix = maybe_prefix(rng, &mut case);
    let mut names: Vec<String> = VMLINUX.iter().map(|s| s.to_string()).collect();
    names.extend(case.modules.iter().flat_map(|m| m.exports.clone()));
    let mut lines = Vec::new();
    for name in &names {
        let crc = vary_crc(rng, crc_of(name)).unwrap_or(0);
        let (owner, kind) = if VMLINUX.contains(&name.as_str()) || rng.chance(30) {
            ("vmlinux", "EXPORT_SYMBOL")
        } else {
            ("drivers/x/y", "EXPORT_SYMBOL_GPL")
        };
        let namespace = if rng.chance(20) {
            "CRYPTO_INTERNAL"
        } else {
            ""
        };
        lines.push(
            format!("{crc:#010x}\t{prefix}{name}\t{owner}\t{kind}\t{namespace}\n").into_bytes(),
        );
    }
    let pool = lines.clone();
    case.symvers = Some(mutate::mutate(rng, &lines, &pool, LONG_LINES));
    if rng.chance(85) {
        case.options.push("-e".into());
    }
    case.options
        .extend(["-E".to_string(), "@ROOT@/Module.symvers".to_string()]);
    common_options(rng, &mut case);
    case
}

/// A mutated `System.map` (vmlinux `__ksymtab_` entries and other symbols) passed with `-F`.
pub fn system_map_case(rng: &mut Rng) -> CaseTree {
    let real = pick_real(rng);
    let (mut case, _) = real_path_tree(rng, real);
    let prefix = maybe_prefix(rng, &mut case);
    let mut lines = vec![b"ffffffff81000000 T _stext\n".to_vec()];
    for (k, name) in VMLINUX.iter().enumerate() {
        let kind = *rng.pick(&["r", "R", "T", "t", "D"]).expect("non-empty");
        let symbol = match rng.below(6) {
            0 => format!("{prefix}{name}"),
            1 => format!("__kstrtab_{name}"),
            _ => format!("{prefix}__ksymtab_{name}"),
        };
        lines.push(format!("ffffffff82{k:06x} {kind} {symbol}\n").into_bytes());
    }
    let pool = lines.clone();
    case.system_map = Some(mutate::mutate(rng, &lines, &pool, LONG_LINES));
    if rng.chance(85) {
        case.options.push("-e".into());
    }
    case.options
        .extend(["-F".to_string(), "@ROOT@/System.map".to_string()]);
    common_options(rng, &mut case);
    case
}

/// Alias shapes: real ones (from `modules.builtin.modinfo`) and odd ones.
fn random_alias(rng: &mut Rng, real: &RealTree) -> Vec<u8> {
    let mut alias = match rng.below(12) {
        0..=4 => {
            let record = rng.pick(&real.builtin_modinfo).cloned().unwrap_or_default();
            let text = record.strip_suffix(b"\0").unwrap_or(&record);
            match text.iter().position(|&b| b == b'=') {
                Some(eq) => text[eq + 1..].to_vec(),
                None => text.to_vec(),
            }
        }
        5 => b"a[b-c]d-e_f".to_vec(),
        6 => b"unbalanced[x".to_vec(),
        7 => b"close]only".to_vec(),
        8 => b"pci:v*d*sv*sd*bc0Csc03i30*".to_vec(),
        9 => rng
            .pick(&[
                &b"devname:snd/seq"[..],
                b"char-major-116-1",
                b"block-major-8-*",
                b"char-major- 10-+229junk",
                b"devname:",
            ])
            .expect("non-empty")
            .to_vec(),
        10 => b"[[]]-[-]".to_vec(),
        _ => Vec::new(),
    };
    if rng.chance(10) {
        let want = mutate::boundary_length(rng, RECORDS);
        let grow = want.saturating_sub(alias.len());
        alias.extend(std::iter::repeat_n(b'x', grow));
    }
    if rng.chance(5) {
        alias.extend(std::iter::repeat_n(b'y', 70_000));
    }
    if rng.chance(10) {
        let pos = rng.below(alias.len() + 1);
        let byte = *rng.pick(b"[]*?-_\\ \t=.\x7f\x80\xff").expect("non-empty");
        alias.insert(pos, byte);
    }
    alias
}

/// Modules whose `.modinfo` holds random aliases, softdeps, weakdeps, device aliases, keys
/// without `=` and empty strings.
pub fn modinfo_case(rng: &mut Rng) -> CaseTree {
    let real = pick_real(rng);
    let (mut case, _) = real_path_tree(rng, real);
    let names: Vec<String> = case
        .modules
        .iter()
        .filter_map(|m| match &m.place {
            Place::ModuleDir(rel) => rel.rsplit('/').next().map(str::to_string),
            Place::External(..) => None,
        })
        .collect();
    for m in &mut case.modules {
        m.modinfo.clear();
        for _ in 0..rng.range(0, 8) {
            let (key, value): (&[u8], Vec<u8>) = match rng.below(12) {
                0..=5 => (b"alias", random_alias(rng, real)),
                6 => (b"softdep", {
                    let other = rng.pick(&names).cloned().unwrap_or_default();
                    format!("pre: {other} post: x-y").into_bytes()
                }),
                7 => (
                    b"weakdep",
                    rng.pick(&names).cloned().unwrap_or_default().into_bytes(),
                ),
                8 => (b"license", b"GPL".to_vec()),
                // A string without `=` before this one: the key holds the NUL.
                9 => (b"noequals\0alias", random_alias(rng, real)),
                10 => (b"\0\0alias", random_alias(rng, real)),
                _ => (b"Alias", random_alias(rng, real)),
            };
            m.modinfo.push((key.to_vec(), value));
        }
    }
    common_options(rng, &mut case);
    case
}

/// Kernel versions for config cases (each satisfies kmod's `%u.%u`).
const KVERS: &[&str] = &[
    ere::KVER,
    "4.4.4",
    "5.10.0-28-cloud-amd64",
    "6.12.38+deb13-amd64",
    "3.2",
    "6.1.0-56-amd64.x",
];

/// Module names, subdirectories and search entries the config lines refer to.
const MODNAMES: &[&str] = &["af_key", "af-key", "foo-bar", "foo_bar", "user", "nosuch"];
const SUBDIRS: &[&str] = &[
    "extra",
    "updates",
    "updates/dkms",
    "weird",
    "kernel/net/key",
    "kernel",
    "",
    "extra/",
    "nosuch",
];
const SEARCH: &[&str] = &[
    "updates",
    "extra",
    "built-in",
    "external",
    "weird",
    "updates/dkms",
    "kernel",
    "Built-in",
    "extra/",
    "/abs",
];
const EXTERNAL_DIRS: &[&str] = &[
    "@EXT0@",
    "@EXT1@",
    "@EXT0@/",
    "@EXT1@//",
    "/nonexistent/dir",
    "ext0",
    "@ROOT@/lib/modules",
];

/// The config cases' tree: `af_key` in several places (module directory and externals),
/// `foo-bar` under two spellings, a user of both, and a directory to exclude.
fn config_tree(rng: &mut Rng) -> CaseTree {
    let exporting = |place: Place, sym: &str, alias: &str| {
        let mut m = Module::at(place);
        m.exports.push(sym.into());
        m.modinfo
            .push((b"alias".to_vec(), alias.as_bytes().to_vec()));
        m
    };
    let md = |rel: &str| Place::ModuleDir(rel.into());
    let mut user = Module::at(md("kernel/user"));
    user.imports.push(("af_key_sym".into(), None));
    user.imports.push(("foo_sym".into(), None));
    CaseTree {
        kver: rng.pick(KVERS).expect("non-empty").to_string(),
        modules: vec![
            exporting(md("kernel/net/key/af_key"), "af_key_sym", "in-kernel"),
            exporting(md("updates/af_key"), "af_key_sym", "in-updates"),
            exporting(md("extra/af_key"), "af_key_sym", "in-extra"),
            exporting(md("updates/dkms/af_key"), "af_key_sym", "in-dkms"),
            exporting(md("weird/af-key"), "af_key_sym", "in-weird"),
            exporting(md("kernel/drivers/foo-bar"), "foo_sym", "foo-kernel"),
            exporting(md("extra/foo_bar"), "foo_sym", "foo-extra"),
            user,
            exporting(md("kernel/skipme/skipped"), "skipped_sym", "skipped"),
            exporting(Place::External(0, "af_key".into()), "af_key_sym", "in-ext0"),
            exporting(
                Place::External(0, "sub/foo-bar".into()),
                "foo_sym",
                "foo-ext0",
            ),
            exporting(Place::External(1, "ext_only".into()), "ext_sym", "ext1"),
        ],
        externals: 2,
        ..CaseTree::default()
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items).expect("non-empty")
}

/// One logical config line's tokens.
fn config_tokens(rng: &mut Rng, kver: &str) -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    let mut push = |t: &[u8]| tokens.push(t.to_vec());
    match rng.below(100) {
        0..=24 => {
            push(b"override");
            let fields = if rng.chance(85) { 3 } else { rng.below(5) };
            let all = [
                pick(rng, MODNAMES).as_bytes().to_vec(),
                ere::random_pattern(rng, kver),
                pick(rng, SUBDIRS).as_bytes().to_vec(),
                b"trailing".to_vec(),
            ];
            for t in all.iter().take(fields) {
                push(t);
            }
        }
        25..=39 => {
            push(b"external");
            let fields = if rng.chance(85) { 2 } else { rng.below(4) };
            let all = [
                ere::random_pattern(rng, kver),
                pick(rng, EXTERNAL_DIRS).as_bytes().to_vec(),
                b"trailing".to_vec(),
            ];
            for t in all.iter().take(fields) {
                push(t);
            }
        }
        40..=59 => {
            push(b"search");
            for _ in 0..rng.below(5) {
                push(pick(rng, SEARCH).as_bytes());
            }
        }
        60..=69 => {
            push(b"exclude");
            for _ in 0..rng.below(4) {
                push(
                    pick(
                        rng,
                        &["skipme", "build", "weird", "sub", "af_key.ko", "dkms"],
                    )
                    .as_bytes(),
                );
            }
        }
        70..=74 => {
            push(pick(rng, &["include", "make_map_files"]).as_bytes());
            push(b"/etc/other");
        }
        75..=79 => push(pick(rng, &["#", "# a comment", "#search extra"]).as_bytes()),
        80..=89 => {
            push(
                pick(
                    rng,
                    &[
                        "Override",
                        "search:",
                        "externals",
                        "overide",
                        "x",
                        "\\",
                        "#",
                    ],
                )
                .as_bytes(),
            );
            push(b"extra");
        }
        _ => {}
    }
    tokens
}

/// One depmod.d file: lines of random directives, separators, comments, continuations, long
/// lines around the line buffer's sizes, and odd bytes.
fn config_text(rng: &mut Rng, kver: &str) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.range(1, 10) {
        let tokens = config_tokens(rng, kver);
        let mut line = Vec::new();
        if rng.chance(8) {
            line.extend_from_slice(pick(rng, &[" ", "\t", "  "]).as_bytes());
        }
        for (i, token) in tokens.iter().enumerate() {
            if i > 0 {
                let sep = pick(rng, &[" ", " ", " ", "\t", "  ", " \t ", "\\\n", " \\\n\t"]);
                line.extend_from_slice(sep.as_bytes());
            }
            line.extend_from_slice(token);
        }
        if rng.chance(8) {
            line.extend_from_slice(pick(rng, &[" ", "\t", " # trailing", "\r", "\\"]).as_bytes());
        }
        line.push(b'\n');
        lines.push(line);
    }
    if rng.chance(15) {
        // A line whose length is around the line buffer's sizes (256, 512, 1024, …): pad a
        // trailing token.
        let at = rng.below(lines.len());
        let line = &mut lines[at];
        line.pop();
        let want = 256usize << rng.below(5);
        let want = (want + rng.range(0, 4)).saturating_sub(2);
        if line.len() + 1 < want {
            line.push(b' ');
            line.resize(want, b'p');
        }
        line.push(b'\n');
    }
    if rng.chance(20) {
        // Line edits and odd bytes; depmod.d is read by getc, so there is no fgets split.
        let pool = lines.clone();
        mutate::edit_records(rng, &mut lines, &pool, CONFIG_LINE, 3);
    }
    let mut text = lines.concat();
    if rng.chance(8) {
        text.pop(); // no final newline
    }
    if rng.chance(3) {
        text.push(b'\\'); // a backslash at the end of the file
    }
    text
}

/// Random depmod.d files (several, sorted by name) on [`config_tree`].
pub fn config_case(rng: &mut Rng) -> CaseTree {
    let mut case = config_tree(rng);
    let mut names = [
        "00-base.conf",
        "10-a.conf",
        "50-more.conf",
        "zz.conf",
        "a.conf",
        "notes.txt",
        ".hidden.conf",
        ".conf",
    ];
    rng.shuffle(&mut names[..]);
    for name in names.iter().take(rng.range(1, 3)) {
        let text = config_text(rng, &case.kver);
        case.configs.push((name.to_string(), text));
    }
    if rng.chance(5) {
        case.config_subdirs.push("dir.conf".into());
    }
    if rng.chance(50) {
        case.options.push("-vv".into());
    } else if rng.chance(10) {
        case.options.push("-v".into());
    }
    if rng.chance(5) {
        case.options.push("-n".into());
    }
    case
}
