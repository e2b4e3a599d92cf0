//! Random tree descriptions from a seed.
//!
//! The dependency graph is built so that kmod stays well-defined on it: imports only point at
//! modules generated earlier (a DAG), symbols exported by several modules come only from
//! modules that import nothing, and at most one deliberate cycle exists whose members import
//! nothing but the ring and such leaf modules. That keeps clear of kmod's cycle-report hang
//! (spec §7.3), which needs two distinct cycles. All names and strings are 7-bit ASCII (kmod 30
//! is undefined on anything else, spec §9.2), and no export is named exactly `__crc_` (§17).

use super::rng::Rng;
use super::spec::{
    Compression, ConfigFile, Location, ModuleContents, ModuleFile, OrderFile, TreeSpec,
};
use crate::synth::{machine, CrcLocation, ElfClass, Endian, SynthModule};

/// What the generator may use. [`Options::default`] enables everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Upper bound on the number of distinct modules (at least 3 are made).
    pub max_modules: usize,
    /// `.ko.xz` and `.ko.zst` files.
    pub compression: bool,
    /// `.ko.gz` files (ignored by Debian's kmod builds, which lack zlib).
    pub gzip: bool,
    /// A deliberate dependency cycle in some trees.
    pub cycles: bool,
    /// Garbage, empty and truncated module files.
    pub malformed: bool,
    /// 32-bit and big-endian modules besides x86-64.
    pub mixed_elf: bool,
    /// depmod.d files (search, override, external, exclude, bad lines).
    pub configs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_modules: 40,
            compression: true,
            gzip: true,
            cycles: true,
            malformed: true,
            mixed_elf: true,
            configs: true,
        }
    }
}

/// A module before it is placed on disk.
struct Logical {
    modname: String,
    /// File base name (may use dashes where the modname has underscores, or a `.suffix`).
    file_base: String,
    /// Directory relative to the module directory, or an external directory.
    dir: Dir,
    /// Imports nothing; the only modules allowed to share an exported symbol.
    leaf: bool,
    module: SynthModule,
}

#[derive(Clone)]
enum Dir {
    Module(String),
    External(usize, String),
}

const SYLLABLES: &[&str] = &[
    "snd", "hda", "usb", "net", "i2c", "core", "phy", "mod", "foo", "bar", "nf", "tun", "xhci",
    "ata", "scsi", "dm", "md", "crc", "aes", "btrfs", "ext", "video", "drm", "a", "x",
];
const SUBDIRS: &[&str] = &[
    "kernel/drivers/net",
    "kernel/drivers/scsi",
    "kernel/drivers/usb/host",
    "kernel/fs",
    "kernel/sound/pci/hda",
    "kernel/net/ipv4",
    "kernel/crypto",
    "kernel/lib",
    "kernel/arch/x86/kernel",
    "kernel",
];
const KVERS: &[&str] = &["4.4.4", "6.1.0-synth-amd64", "5.10.0+", "6.12.7"];
const VMLINUX_SYMBOLS: &[&str] = &[
    "printk",
    "_printk",
    "kmalloc_caches",
    "__fentry__",
    "module_put",
    "mutex_lock",
    "__stack_chk_fail",
    "jiffies",
];

/// Generates the tree for `seed`.
pub fn generate(seed: u64, opts: &Options) -> TreeSpec {
    let mut rng = Rng::new(seed);
    let kver = (*rng.pick(KVERS).unwrap_or(&"4.4.4")).to_string();
    let externals = if opts.configs && rng.chance(30) {
        rng.range(1, 2)
    } else {
        0
    };
    // Now and then a bigger tree, so more names share hash buckets.
    let max = if rng.chance(8) {
        opts.max_modules.max(3) * 8
    } else {
        opts.max_modules.max(3)
    };
    let count = rng.range(3, max);
    let mut logical: Vec<Logical> = (0..count)
        .map(|i| new_logical(&mut rng, i, externals, opts))
        .collect();

    let vmlinux: Vec<(String, u32)> = VMLINUX_SYMBOLS
        .iter()
        .map(|name| (name.to_string(), rng.u32()))
        .collect();
    add_symbols(&mut rng, &mut logical, seed, &vmlinux);
    let has_cycle =
        opts.cycles && count >= 3 && rng.chance(15) && add_cycle(&mut rng, &mut logical);
    for l in &mut logical {
        add_modinfo(&mut rng, l, count);
    }

    let mut modules = Vec::new();
    for (i, l) in logical.iter().enumerate() {
        modules.push(place(&mut rng, l, l.dir.clone(), &l.file_base, opts));
        if rng.chance(15) {
            // A second file with the same module name: in updates/, elsewhere in the tree, or
            // in an external directory; same symbols (the graph stays as designed), different
            // aliases so the winner shows in the outputs.
            let mut copy = l.module.clone();
            copy.modinfo.retain(|(k, _)| k != b"alias");
            copy.modinfo
                .push((b"alias".to_vec(), format!("dupcopy-{i}").into_bytes()));
            let dir = match rng.below(4) {
                0 | 1 => Dir::Module(format!(
                    "updates/{}",
                    pick_str(&mut rng, &["", "drivers", "x"])
                )),
                2 if externals > 0 => Dir::External(rng.below(externals), "dup".into()),
                _ => Dir::Module(pick_str(&mut rng, SUBDIRS).to_string()),
            };
            let base = if rng.chance(50) {
                l.file_base.replace('_', "-")
            } else {
                l.file_base.replace('-', "_")
            };
            let copy = Logical {
                modname: l.modname.clone(),
                file_base: base.clone(),
                dir: dir.clone(),
                leaf: l.leaf,
                module: copy,
            };
            modules.push(place(&mut rng, &copy, dir, &base, opts));
        }
    }
    if opts.malformed && rng.chance(8) {
        modules.push(unterminated_ksymtab_module(&mut rng));
    }
    if opts.malformed && rng.chance(25) {
        modules.push(malformed_module(&mut rng, &logical));
    }

    let order = make_order(&mut rng, &modules);
    let builtin = rng.chance(80).then(|| make_builtin(&mut rng));
    let builtin_modinfo = rng.chance(75).then(|| make_builtin_modinfo(&mut rng));
    let configs = if opts.configs && rng.chance(70) {
        make_configs(&mut rng, &kver, &modules, externals)
    } else {
        Vec::new()
    };
    let mut other_files = vec![("kernel/README".to_string(), b"not a module\n".to_vec())];
    if rng.chance(30) {
        other_files.push(("kernel/lib/helper.o".into(), b"\x7fELF".to_vec()));
    }
    if rng.chance(30) {
        // `build` and `source` directories are never searched.
        let elf = SynthModule::x86_64()
            .with_modinfo("alias", "in-build-dir")
            .to_elf();
        other_files.push(("build/hidden.ko".into(), elf.clone()));
        other_files.push(("kernel/source/hidden2.ko".into(), elf));
    }

    let symlinks = make_symlinks(&mut rng, &modules);
    let (options, symvers, system_map) = make_options(&mut rng, &vmlinux);
    TreeSpec {
        seed,
        options,
        symvers,
        system_map,
        kver,
        modules,
        other_files,
        symlinks,
        order,
        builtin,
        builtin_modinfo,
        configs,
        externals,
        has_cycle,
    }
}

fn pick_str<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items).copied().unwrap_or("")
}

fn new_logical(rng: &mut Rng, i: usize, externals: usize, opts: &Options) -> Logical {
    let parts = rng.range(1, 3);
    let mut words: Vec<&str> = (0..parts).map(|_| pick_str(rng, SYLLABLES)).collect();
    let number = format!("{i}");
    words.push(&number);
    // File names mix dashes and underscores; the module name always has underscores.
    let mut file_base = String::new();
    for (k, w) in words.iter().enumerate() {
        if k > 0 {
            file_base.push(if rng.chance(40) { '-' } else { '_' });
        }
        file_base.push_str(w);
    }
    let modname = file_base.replace('-', "_");
    if rng.chance(4) {
        // Only the part before the first dot names the module (spec §3.3).
        file_base.push_str(".v2");
    }
    let dir = if externals > 0 && rng.chance(12) {
        Dir::External(
            rng.below(externals),
            pick_str(rng, &["", "sub"]).to_string(),
        )
    } else if rng.chance(8) {
        Dir::Module(pick_str(rng, &["updates", "extra", "updates/dkms", "kernel/skipme"]).into())
    } else {
        Dir::Module(pick_str(rng, SUBDIRS).to_string())
    };
    let (class, endian, mach) = if opts.mixed_elf && rng.chance(30) {
        *rng.pick(&[
            (ElfClass::Elf32, Endian::Little, machine::I386),
            (ElfClass::Elf32, Endian::Little, machine::ARM),
            (ElfClass::Elf64, Endian::Big, machine::S390),
            (ElfClass::Elf64, Endian::Big, machine::SPARCV9),
            (ElfClass::Elf32, Endian::Big, machine::MIPS),
            (ElfClass::Elf64, Endian::Little, machine::AARCH64),
            (ElfClass::Elf64, Endian::Big, machine::PPC64),
        ])
        .unwrap_or(&(ElfClass::Elf64, Endian::Little, machine::X86_64))
    } else {
        (ElfClass::Elf64, Endian::Little, machine::X86_64)
    };
    let mut module = SynthModule::new(class, endian, mach);
    if rng.chance(40) {
        module.crc_location = CrcLocation::Section;
    }
    Logical {
        modname,
        file_base,
        dir,
        leaf: rng.chance(25),
        module,
    }
}

/// Exports and imports, as a DAG over the generation order.
fn add_symbols(rng: &mut Rng, logical: &mut [Logical], seed: u64, vmlinux: &[(String, u32)]) {
    // Symbols several leaf modules export; their owner depends on the final module order.
    let shared: Vec<String> = (0..rng.range(0, 3))
        .map(|k| format!("shared_sym_{k}"))
        .collect();
    // (symbol, CRC of its last exporter) for everything exported so far.
    let mut available: Vec<(String, Option<u32>)> = Vec::new();
    let modversions_tree = rng.chance(60);
    for l in logical.iter_mut() {
        let modversions = modversions_tree && rng.chance(90);
        let mut exports: Vec<String> = (0..rng.range(0, 4))
            .map(|k| format!("{}_fn{k}", l.modname))
            .collect();
        if l.leaf {
            for s in &shared {
                if rng.chance(50) {
                    exports.push(s.clone());
                }
            }
        }
        if !l.leaf {
            let wanted = rng.range(0, 5);
            for _ in 0..wanted {
                // The importer usually agrees with the exporter's CRC (checked with -E).
                let (name, known_crc) = if !available.is_empty() && rng.chance(75) {
                    let (sym, crc) = available[rng.below(available.len())].clone();
                    // A leading dot (PPC64 function descriptors) is stripped before lookup.
                    if rng.chance(5) {
                        (format!(".{sym}"), crc)
                    } else {
                        (sym, crc)
                    }
                } else if rng.chance(70) {
                    let (sym, crc) = rng.pick(vmlinux).cloned().unwrap_or_default();
                    (sym, Some(crc))
                } else {
                    (format!("unknown_sym_{seed}_{}", rng.below(1000)), None)
                };
                let weak = rng.chance(15);
                let crc = modversions.then(|| match known_crc {
                    Some(crc) if rng.chance(85) => crc,
                    _ => rng.u32(),
                });
                if !l
                    .module
                    .imports
                    .iter()
                    .any(|imp| imp.name == name.as_bytes())
                {
                    l.module = l.module.clone().with_import(name, weak, crc);
                }
            }
        }
        if modversions {
            l.module = l
                .module
                .clone()
                .with_extra_version("module_layout", rng.u32());
        }
        for name in exports {
            let crc = modversions.then(|| rng.u32());
            l.module = l.module.clone().with_export(&name, crc);
            available.retain(|(s, _)| *s != name);
            available.push((name, crc));
        }
    }
}

/// Turns 1–3 non-leaf modules into a ring; returns whether a cycle was made.
fn add_cycle(rng: &mut Rng, logical: &mut [Logical]) -> bool {
    let candidates: Vec<usize> = (0..logical.len()).filter(|&i| !logical[i].leaf).collect();
    if candidates.is_empty() {
        return false;
    }
    let len = rng.range(1, 3.min(candidates.len()));
    let mut members = candidates;
    rng.shuffle(&mut members);
    members.truncate(len);
    let leaf_symbols: Vec<Vec<u8>> = logical
        .iter()
        .filter(|l| l.leaf)
        .flat_map(|l| l.module.exports.iter().map(|e| e.name.clone()))
        .collect();
    let owned_by_others = |logical: &[Logical], name: &[u8]| {
        logical
            .iter()
            .filter(|l| !l.leaf)
            .any(|l| l.module.exports.iter().any(|e| e.name == name))
    };
    for &m in &members {
        // Keep only imports that cannot lead back into the ring: leaf and vmlinux symbols.
        let imports = logical[m].module.imports.clone();
        let kept = imports
            .into_iter()
            .filter(|imp| {
                let bare = imp.name.strip_prefix(b".").unwrap_or(&imp.name);
                leaf_symbols.iter().any(|s| s == bare) || !owned_by_others(logical, bare)
            })
            .collect();
        logical[m].module.imports = kept;
    }
    for (t, &m) in members.iter().enumerate() {
        let next = members[(t + 1) % members.len()];
        let sym = format!("ring_{}_{t}", logical[next].modname);
        logical[next].module = logical[next].module.clone().with_export(&sym, None);
        logical[m].module = logical[m].module.clone().with_import(&sym, false, None);
    }
    true
}

fn random_alias(rng: &mut Rng) -> String {
    let n = rng.below(0x10000);
    match rng.below(16) {
        0 => format!("pci:v0000{n:04X}d*sv*sd*bc*sc*i*"),
        1 => format!("usb:v{n:04X}p*d*dc*dsc*dp*ic*isc*ip*in*"),
        2 => "of:N*T*Cvendor,chip-x".to_string(),
        3 => format!("acpi*:ABCD{n:04X}:*"),
        4 => format!("platform:dev-{}", n % 7),
        5 => "x-y_z".to_string(),
        6 => format!("i2c:chip[0-9]{}", n % 3),
        7 => "weird[abc".to_string(), // unmatched: text only, WARNING for the .bin
        8 => "odd]x-y".to_string(),
        9 => "?x*-q".to_string(),
        10 => "o[n-p]e".to_string(),
        11 => format!("fs-ext{}", n % 5),
        12 => format!("char-major-{}-{}", n % 300, n % 17),
        13 => format!("block-major-{}-*", n % 260),
        14 => format!("symbol:fake_{}", n % 9),
        _ => format!("net-pf-{}-proto-{}", n % 40, n % 5),
    }
}

fn add_modinfo(rng: &mut Rng, l: &mut Logical, count: usize) {
    let mut info: Vec<(String, String)> = Vec::new();
    if rng.chance(70) {
        info.push(("license".into(), "GPL".into()));
    }
    for _ in 0..rng.range(0, 5) {
        let alias = random_alias(rng);
        if rng.chance(10) {
            // The same alias twice, and its dash/underscore twin (duplicates in the .bin).
            info.push(("alias".into(), alias.clone()));
            info.push(("alias".into(), alias.replace('-', "_")));
        }
        info.push(("alias".into(), alias));
    }
    if rng.chance(10) {
        // devname: with or without major/minor, in either order, possibly repeated.
        let dev = format!("devname:dev/{}", l.modname.replace('_', "-"));
        let major = format!(
            "{}-major-{}-{}",
            pick_str(rng, &["char", "block", "char"]),
            rng.below(256),
            rng.below(256)
        );
        let mut pair = vec![dev];
        if rng.chance(80) {
            pair.push(major);
        }
        if rng.chance(50) {
            pair.reverse();
        }
        if rng.chance(20) {
            pair.push("devname:late".into());
        }
        for a in pair {
            info.push(("alias".into(), a));
        }
    }
    if rng.chance(1) {
        // Longer than kmod's 4095-byte key buffer: truncated in the .bin, whole in the text.
        let long = format!("long-{}", "x-".repeat(2100 + rng.below(100)));
        info.push(("alias".into(), long));
    }
    if rng.chance(15) {
        let other = format!("mod_{}", rng.below(count));
        info.push(("softdep".into(), format!("pre: {other} post: crc32c")));
    }
    if rng.chance(10) {
        info.push(("weakdep".into(), format!("helper-{}", rng.below(count))));
    }
    if rng.chance(30) {
        info.push(("depends".into(), "ignored,by-depmod".into()));
        info.push(("vermagic".into(), "6.1.0 SMP mod_unload modversions".into()));
        info.push(("import_ns".into(), "USB_STORAGE".into()));
    }
    rng.shuffle(&mut info[..]);
    for (k, v) in info {
        l.module = l.module.clone().with_modinfo(k, v);
    }
}

fn place(rng: &mut Rng, l: &Logical, dir: Dir, base: &str, opts: &Options) -> ModuleFile {
    let compression = match rng.below(20) {
        0..=2 if opts.compression => Compression::Xz,
        3..=5 if opts.compression => Compression::Zstd,
        6 if opts.gzip => Compression::Gzip,
        _ => Compression::None,
    };
    let join = |d: &str| {
        if d.is_empty() {
            base.to_string()
        } else {
            format!("{}/{base}", d.trim_end_matches('/'))
        }
    };
    let location = match dir {
        Dir::Module(d) => Location::ModuleDir(join(&d)),
        Dir::External(n, d) => Location::External(n, join(&d)),
    };
    ModuleFile {
        location,
        compression,
        contents: ModuleContents::Elf(l.module.clone()),
    }
}

fn malformed_module(rng: &mut Rng, logical: &[Logical]) -> ModuleFile {
    let contents = match rng.below(4) {
        0 => Vec::new(),
        1 => b"this is not an ELF file\n".to_vec(),
        2 => b"\x7fEL".to_vec(),
        _ => {
            let elf = logical
                .first()
                .map(|l| l.module.to_elf())
                .unwrap_or_else(|| SynthModule::x86_64().to_elf());
            let cut = rng.range(16, elf.len().saturating_sub(1).max(16));
            elf[..cut.min(elf.len())].to_vec()
        }
    };
    ModuleFile {
        location: Location::ModuleDir(format!("kernel/broken/broken_{}", rng.below(100))),
        compression: Compression::None,
        contents: ModuleContents::Raw(contents),
    }
}

/// A module whose `__ksymtab_strings` lacks its final NUL and which has no `__crc_` symbols, so
/// kmod reads its exports from that section: kmod 30 counts the unterminated tail as a name,
/// kmod 34 rejects the section (spec §13 #14).
fn unterminated_ksymtab_module(rng: &mut Rng) -> ModuleFile {
    let n = rng.below(100);
    let mut module = SynthModule::x86_64().with_modinfo("alias", format!("tailtest-{n}"));
    module.ksymtab_strings_override =
        Some(format!("\0tail_sym_a_{n}\0tail_sym_b_{n}").into_bytes());
    ModuleFile {
        location: Location::ModuleDir(format!("kernel/tail/tail_{n}")),
        compression: Compression::None,
        contents: ModuleContents::Elf(module),
    }
}

fn make_order(rng: &mut Rng, modules: &[ModuleFile]) -> Option<OrderFile> {
    if rng.chance(12) {
        return None;
    }
    let mut lines: Vec<String> = modules
        .iter()
        .filter_map(|m| match &m.location {
            Location::ModuleDir(p) => Some(format!("{p}.ko")),
            Location::External(..) => None,
        })
        .filter(|_| rng.chance(85))
        .collect();
    rng.shuffle(&mut lines);
    let dups: Vec<String> = lines.iter().filter(|_| rng.chance(10)).cloned().collect();
    for d in dups {
        let at = rng.below(lines.len() + 1);
        lines.insert(at, d);
    }
    for _ in 0..rng.range(0, 3) {
        let junk = match rng.below(3) {
            0 => format!("#{}", rng.below(3000)),
            1 => "kernel/missing/nothere.ko".to_string(),
            _ => "kernel/lib/helper.o".to_string(),
        };
        let at = rng.below(lines.len() + 1);
        lines.insert(at, junk);
    }
    if rng.chance(3) {
        lines.clear();
    }
    if rng.chance(2) {
        // A line that does not fit kmod's PATH_MAX buffer counts as corrupt: no sorting at all.
        let at = rng.below(lines.len() + 1);
        lines.insert(at, format!("kernel/{}.ko", "d/".repeat(2100)));
    }
    Some(OrderFile {
        final_newline: lines.is_empty() || !rng.chance(8),
        lines,
    })
}

fn make_builtin(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..rng.range(0, 12) {
        let line = match rng.below(12) {
            0 => format!("_bad/start{k}.ko\n"), // not alphabetic: an ERROR line
            1 => "\n".to_string(),
            2 => format!("kernel/noext{k}\n"), // no dot: the newline joins the key
            _ => format!(
                "kernel/{}/bi-{}_{k}.ko\n",
                pick_str(rng, &["drivers", "fs", "net"]),
                pick_str(rng, SYLLABLES)
            ),
        };
        out.extend_from_slice(line.as_bytes());
        if rng.chance(10) {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out
}

fn make_builtin_modinfo(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..rng.range(0, 15) {
        let module = format!("bi_{}", k % 5);
        let record = match rng.below(12) {
            0 => format!("{module}.license=GPL"),
            1 => format!("{module}.file=kernel/{module}"),
            2 => format!("{module}.flagwithoutvalue"), // no '=': eats the next record too
            3 => ".alias=nomodule".to_string(),
            4 => format!("{module}.alias="),
            5 => format!("{module}.alias=bad[bracket"),
            6 => format!("{module}-dash.alias=dash-mod-{k}"),
            _ => format!("{module}.alias={}", random_alias(rng)),
        };
        out.extend_from_slice(record.as_bytes());
        out.push(0);
    }
    if !out.is_empty() && rng.chance(10) {
        out.pop(); // no final NUL
    }
    out
}

fn make_configs(
    rng: &mut Rng,
    kver: &str,
    modules: &[ModuleFile],
    externals: usize,
) -> Vec<ConfigFile> {
    let mut configs = Vec::new();
    let mut tokens: Vec<String> = ["updates", "extra", "built-in", "kernel/drivers", "kernel"]
        .iter()
        .filter(|_| rng.chance(60))
        .map(|s| s.to_string())
        .collect();
    if externals > 0 {
        tokens.push("external".into());
    }
    rng.shuffle(&mut tokens);
    if !tokens.is_empty() {
        let split = rng.below(tokens.len() + 1);
        let mut text = format!("# search order\nsearch {}\n", tokens[..split].join(" "));
        if split < tokens.len() {
            text.push_str(&format!("search {}\n", tokens[split..].join(" ")));
        }
        configs.push(ConfigFile {
            name: "00-search.conf".into(),
            text,
        });
    }
    for n in 0..externals {
        let pattern = match rng.below(5) {
            0 => "*".to_string(),
            1 => kver.replace('.', "\\."),
            2 => kver.chars().take(3).collect(), // unanchored partial match
            3 => "9\\.9".to_string(),            // does not match
            _ => "(".to_string(),                // does not compile: does not match
        };
        configs.push(ConfigFile {
            name: format!("10-external{n}.conf"),
            text: format!("external {pattern} @EXT{n}@\n"),
        });
    }
    // Override one module that has copies in several places.
    let mut dup_dirs: Vec<(String, String)> = Vec::new();
    for m in modules {
        if let Location::ModuleDir(p) = &m.location {
            if let Some((dir, base)) = p.rsplit_once('/') {
                dup_dirs.push((dir.to_string(), base.to_string()));
            }
        }
    }
    if let Some((dir, base)) = rng.pick(&dup_dirs).cloned() {
        if rng.chance(60) {
            let name = base.split('.').next().unwrap_or(&base).to_string();
            let kpat = pick_str(rng, &["*", "4.4", "6\\.", "nomatch"]).to_string();
            configs.push(ConfigFile {
                name: "20-override.conf".into(),
                text: format!("override {name} {kpat} {dir}\n"),
            });
        }
    }
    if rng.chance(40) {
        configs.push(ConfigFile {
            name: "30-exclude.conf".into(),
            text: "exclude skipme\nexclude nothing-here\n".into(),
        });
    }
    if rng.chance(25) {
        configs.push(ConfigFile {
            name: "40-odd.conf".into(),
            text: "bogus line here\n  # indented comment is a bad line\ninclude /etc/x\n\
                   search \\\n  extra\n\noverride onlytwo fields\n"
                .into(),
        });
    }
    if rng.chance(8) {
        // Reported and skipped: "could not open directory".
        configs.push(ConfigFile {
            name: "50-missing-external.conf".into(),
            text: "external * /nonexistent/depmod-rs-testgen/ext\n".into(),
        });
    }
    if rng.chance(15) {
        configs.push(ConfigFile {
            name: "notes.txt".into(),
            text: "search nowhere\n".into(),
        });
    }
    configs
}

/// A link to a module file (found under the link's own name) and sometimes a dangling link.
/// Directory links are not made: one pointing upwards would make kmod recurse forever.
fn make_symlinks(rng: &mut Rng, modules: &[ModuleFile]) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let in_kernel: Vec<String> = modules
        .iter()
        .filter_map(|m| match &m.location {
            Location::ModuleDir(p) if p.starts_with("kernel/") => {
                Some(format!("{p}.ko{}", m.compression.suffix()))
            }
            _ => None,
        })
        .collect();
    if let Some(target) = rng.pick(&in_kernel) {
        if rng.chance(10) {
            // Relative to kernel/, where the link lives.
            let target = target.trim_start_matches("kernel/").to_string();
            links.push(("kernel/linked-module.ko".to_string(), target));
        }
    }
    if rng.chance(5) {
        links.push(("kernel/dangling.ko".to_string(), "nowhere.ko".to_string()));
    }
    links
}

/// Command-line options, and the `Module.symvers` / `System.map` files some of them read.
fn make_options(
    rng: &mut Rng,
    vmlinux: &[(String, u32)],
) -> (Vec<String>, Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut options: Vec<String> = Vec::new();
    let mut symvers = None;
    let mut system_map = None;
    if rng.chance(15) {
        options.push("-w".into());
    }
    match rng.below(100) {
        0..=14 => {
            options.extend(["-e", "-E", "@ROOT@/Module.symvers"].map(String::from));
            symvers = Some(make_symvers(rng, vmlinux));
        }
        15..=22 => {
            options.extend(["-e", "-F", "@ROOT@/System.map"].map(String::from));
            system_map = Some(make_system_map(rng, vmlinux));
        }
        23..=26 => options.push("-e".into()), // without -E/-F: a warning, then off
        _ => {}
    }
    if rng.chance(8) {
        options.push("-n".into());
    }
    if rng.chance(8) {
        options.push("-v".into());
    }
    if rng.chance(4) {
        options.push("-a".into());
    }
    (options, symvers, system_map)
}

fn make_symvers(rng: &mut Rng, vmlinux: &[(String, u32)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, crc) in vmlinux {
        match rng.below(12) {
            // Three columns: the newline sticks to "vmlinux", so the line is skipped.
            0 => out.push_str(&format!(
                "{crc:#010x}	{name}	vmlinux
"
            )),
            1 => out.push_str(&format!(
                "0xZZ{crc:x}	{name}	vmlinux	EXPORT_SYMBOL
"
            )),
            2 => out.push_str(&format!(
                "{crc:#010x}	{name}	drivers/foo	EXPORT_SYMBOL
"
            )),
            3 => {} // absent: an unknown symbol
            _ => out.push_str(&format!(
                "{crc:#010x}	{name}	vmlinux	EXPORT_SYMBOL_GPL	
"
            )),
        }
    }
    out.into_bytes()
}

fn make_system_map(rng: &mut Rng, vmlinux: &[(String, u32)]) -> Vec<u8> {
    let mut out = String::from(
        "ffffffff81000000 T _stext
",
    );
    for (k, (name, _)) in vmlinux.iter().enumerate() {
        match rng.below(8) {
            0 => out.push_str(&format!(
                "ffffffff8100{k:04x} T {name}
"
            )),
            1 => out.push_str(
                "badline
",
            ), // fewer than two spaces: an ERROR line
            2 => {}
            _ => out.push_str(&format!(
                "ffffffff8200{k:04x} r __ksymtab_{name}
"
            )),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let opts = Options::default();
        for seed in 0..20 {
            assert_eq!(generate(seed, &opts), generate(seed, &opts));
        }
    }

    #[test]
    fn seeds_give_different_trees() {
        let opts = Options::default();
        assert_ne!(generate(1, &opts), generate(2, &opts));
    }

    #[test]
    fn everything_is_ascii() {
        let opts = Options::default();
        for seed in 0..50 {
            let spec = generate(seed, &opts);
            for m in &spec.modules {
                if let ModuleContents::Elf(elf) = &m.contents {
                    for (k, v) in &elf.modinfo {
                        assert!(k.is_ascii() && v.is_ascii(), "seed {seed}");
                    }
                    for e in &elf.exports {
                        assert!(e.name.is_ascii() && e.name != b"", "seed {seed}");
                    }
                }
            }
        }
    }
}
