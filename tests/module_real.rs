//! Real Debian kernel module trees read exactly as Debian's kmod reads them.
//!
//! The truth comes from Debian's own binaries and binutils, never from this crate:
//!
//! * modinfo: `/usr/sbin/modinfo -0 FILE…` (kmod 30) — every `.modinfo` entry in order;
//! * exports: `modprobe --show-exports FILE` (kmod 30, and kmod 34 on a sample);
//! * imports: `nm -u -p` (undefined symbols in `.symtab` order, weak or not) combined with
//!   `modprobe --show-modversions FILE` (the `__versions` table) by kmod's documented rule.
//!
//! Trees come from the reference cache (`$DEPMOD_RS_CACHE` or `~/.cache/depmod-rs`, filled by
//! `scripts/fetch-references.sh`). A missing tree fails the test unless
//! `DEPMOD_RS_SKIP_REAL=1`. `DEPMOD_RS_REAL_STRIDE=N` checks every Nth module of the trees
//! that are sampled (default 4); bookworm-amd64 is always checked in full.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{read_module, Export, Import, ModinfoEntry, ModuleInfo, ReadOptions};

const MODINFO_KMOD30: &str = "/usr/sbin/modinfo";
const MODPROBE_KMOD30: &str = "/usr/sbin/modprobe";

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEPMOD_RS_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/depmod-rs")
}

fn skipping() -> bool {
    std::env::var("DEPMOD_RS_SKIP_REAL").is_ok_and(|v| v == "1")
}

fn stride() -> usize {
    std::env::var("DEPMOD_RS_REAL_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4)
}

/// Every module file of a cached tree, sorted, or `None` (with a message) when skipping.
fn tree_modules(name: &str) -> Option<Vec<PathBuf>> {
    let cache = cache_dir();
    let ready = cache.join(format!("READY-tree-{name}"));
    let tree = cache.join("trees").join(name);
    let present = ready.exists() && tree.join("KVER").exists();
    if !present || !Path::new(MODPROBE_KMOD30).exists() {
        if skipping() {
            eprintln!("module_real: tree {name} or kmod missing, skipped (DEPMOD_RS_SKIP_REAL=1)");
            return None;
        }
        panic!(
            "reference tree {name} missing under {} (run scripts/fetch-references.sh, or set \
             DEPMOD_RS_SKIP_REAL=1 to skip)",
            cache.display()
        );
    }
    let kver = std::fs::read_to_string(tree.join("KVER")).expect("KVER readable");
    let root = tree.join("lib/modules").join(kver.trim());
    let mut modules = Vec::new();
    collect_modules(&root, &mut modules);
    modules.sort();
    assert!(
        modules.len() > 1000,
        "{name}: only {} modules found",
        modules.len()
    );
    Some(modules)
}

fn collect_modules(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("readdir");
        let path = entry.path();
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            collect_modules(&path, out);
        } else {
            let name = entry.file_name();
            let name = name.as_bytes();
            let is_module = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|suffix| name.ends_with(suffix.as_bytes()));
            if is_module {
                out.push(path);
            }
        }
    }
}

/// Runs `job` on every item with one worker per core, keeping the input order.
fn parallel_map<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = items.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&job).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

fn run(program: &str, args: &[&OsStr]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// `modinfo -0` over many files: the `.modinfo` entries of each, keyed by path.
fn kmod_modinfo(modules: &[PathBuf]) -> HashMap<PathBuf, Vec<ModinfoEntry>> {
    let batches: Vec<&[PathBuf]> = modules.chunks(300).collect();
    let outputs = parallel_map(&batches, |batch| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("-0")];
        args.extend(batch.iter().map(|p| p.as_os_str()));
        run(MODINFO_KMOD30, &args).stdout
    });
    let mut result: HashMap<PathBuf, Vec<ModinfoEntry>> = HashMap::new();
    let mut current: Option<PathBuf> = None;
    for record in outputs.iter().flat_map(|o| o.split(|&b| b == 0)) {
        if let Some(path) = record.strip_prefix(b"filename:       ") {
            let path = PathBuf::from(OsStr::from_bytes(path));
            result.entry(path.clone()).or_default();
            current = Some(path);
            continue;
        }
        if record.is_empty() || record.starts_with(b"parm:           ") {
            continue;
        }
        let Some(path) = &current else { continue };
        let (key, value) = match record.iter().position(|&b| b == b'=') {
            Some(eq) => (&record[..eq], &record[eq + 1..]),
            None => (record, &b""[..]),
        };
        result.entry(path.clone()).or_default().push(ModinfoEntry {
            key: key.to_vec(),
            value: value.to_vec(),
        });
    }
    // kmod appends signature details after the .modinfo strings.
    const SIGNATURE_KEYS: [&[u8]; 5] = [
        b"sig_id",
        b"signer",
        b"sig_key",
        b"sig_hashalgo",
        b"signature",
    ];
    for entries in result.values_mut() {
        while entries
            .last()
            .is_some_and(|e| SIGNATURE_KEYS.contains(&e.key.as_slice()))
        {
            entries.pop();
        }
    }
    result
}

/// Our modinfo without `parm`/`parmtype`, which modinfo prints in its own format.
fn comparable_modinfo(info: &ModuleInfo) -> Vec<ModinfoEntry> {
    info.modinfo
        .iter()
        .filter(|e| e.key != b"parm" && e.key != b"parmtype")
        .cloned()
        .collect()
}

/// `0x%08x\tname` lines.
fn parse_crc_lines(stdout: &[u8]) -> Vec<(u64, Vec<u8>)> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let tab = line.iter().position(|&b| b == b'\t').expect("tab");
            let crc = std::str::from_utf8(&line[2..tab]).expect("hex");
            (
                u64::from_str_radix(crc, 16).expect("crc"),
                line[tab + 1..].to_vec(),
            )
        })
        .collect()
}

/// What kmod's `modprobe --show-exports` says: the export list, or the strerror of a
/// failure (`None` for "no symbols", which depmod treats as an empty list).
enum KmodExports {
    List(Vec<Export>),
    Failed(String),
}

fn kmod_exports(modprobe: &str, module: &Path) -> KmodExports {
    let out = run(
        modprobe,
        &[OsStr::new("--show-exports"), module.as_os_str()],
    );
    if out.status.success() {
        let list = parse_crc_lines(&out.stdout)
            .into_iter()
            .map(|(crc, name)| Export { name, crc })
            .collect();
        return KmodExports::List(list);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr
        .trim_end()
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .to_string();
    if reason == "No such file or directory" || reason == "No data available" {
        KmodExports::List(Vec::new())
    } else {
        KmodExports::Failed(reason)
    }
}

/// `__versions` as kmod lists it (empty when the module has none).
fn kmod_versions(module: &Path) -> Vec<(u64, Vec<u8>)> {
    let out = run(
        MODPROBE_KMOD30,
        &[OsStr::new("--show-modversions"), module.as_os_str()],
    );
    if out.status.success() {
        parse_crc_lines(&out.stdout)
    } else {
        Vec::new()
    }
}

/// Undefined symbols in `.symtab` order from `nm -u -p`, with their weakness, for many
/// uncompressed ELF files at once, keyed by path.
fn nm_undefined(elfs: &[PathBuf]) -> HashMap<PathBuf, Vec<(Vec<u8>, bool)>> {
    let batches: Vec<&[PathBuf]> = elfs.chunks(200).collect();
    let outputs = parallel_map(&batches, |batch| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("-u"), OsStr::new("-p")];
        args.extend(batch.iter().map(|p| p.as_os_str()));
        let out = run("nm", &args);
        assert!(out.status.success(), "nm failed");
        out.stdout
    });
    let mut result: HashMap<PathBuf, Vec<(Vec<u8>, bool)>> = HashMap::new();
    let mut current: Option<PathBuf> = None;
    for line in outputs.iter().flat_map(|o| o.split(|&b| b == b'\n')) {
        if line.is_empty() {
            continue;
        }
        if line[0] != b' ' && line.ends_with(b":") {
            let path = PathBuf::from(OsStr::from_bytes(&line[..line.len() - 1]));
            result.entry(path.clone()).or_default();
            current = Some(path);
            continue;
        }
        let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let (Some(kind), Some(name), Some(path)) = (fields.next(), fields.next(), &current) else {
            continue;
        };
        let weak = kind == b"w" || kind == b"v";
        result
            .entry(path.clone())
            .or_default()
            .push((name.to_vec(), weak));
    }
    if elfs.len() == 1 {
        // nm prints no file header for a single file.
        let single: Vec<(Vec<u8>, bool)> = outputs
            .iter()
            .flat_map(|o| o.split(|&b| b == b'\n'))
            .filter_map(|line| {
                let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
                let kind = fields.next()?;
                let name = fields.next()?;
                Some((name.to_vec(), kind == b"w" || kind == b"v"))
            })
            .collect();
        result.insert(elfs[0].clone(), single);
    }
    result
}

/// kmod's import list built from independent sources (§5.3b): undefined symbols with the
/// CRC of their first `__versions` entry, then the unmatched entries.
fn expected_imports(undefined: &[(Vec<u8>, bool)], versions: &[(u64, Vec<u8>)]) -> Vec<Import> {
    let mut visited = vec![false; versions.len()];
    let mut out = Vec::new();
    for (name, weak) in undefined {
        let crc = match versions.iter().position(|(_, n)| n == name) {
            Some(i) => {
                visited[i] = true;
                versions[i].0
            }
            None => 0,
        };
        out.push(Import {
            name: name.clone(),
            crc,
            weak: *weak,
        });
    }
    for (i, (crc, name)) in versions.iter().enumerate() {
        if !visited[i] {
            out.push(Import {
                name: name.clone(),
                crc: *crc,
                weak: false,
            });
        }
    }
    out
}

/// A plain ELF copy of `module` for nm (decompressing with the xz/zstd CLIs when needed).
fn plain_elf(module: &Path, scratch: &Path, index: usize) -> PathBuf {
    let name = module.as_os_str().as_bytes();
    let tool = if name.ends_with(b".xz") {
        "xz"
    } else if name.ends_with(b".zst") {
        "zstd"
    } else {
        return module.to_path_buf();
    };
    let out = run(tool, &[OsStr::new("-dc"), module.as_os_str()]);
    assert!(out.status.success(), "{tool} -dc {}", module.display());
    // File names repeat across directories; number the copies instead.
    let target = scratch.join(format!("{index}.ko"));
    std::fs::File::create(&target)
        .and_then(|mut f| f.write_all(&out.stdout))
        .expect("scratch write");
    target
}

/// Compares one module's reading with kmod's; returns the differences found.
fn check_module(
    module: &Path,
    opts: &ReadOptions,
    modinfo: &HashMap<PathBuf, Vec<ModinfoEntry>>,
    undefined: &HashMap<PathBuf, Vec<(Vec<u8>, bool)>>,
    symbols: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = module.display();
    let info = match read_module(module, opts) {
        Ok(info) => info,
        Err(err) => return vec![format!("{shown}: read failed: {err}")],
    };
    match modinfo.get(module) {
        Some(expected) if *expected == comparable_modinfo(&info) => {}
        Some(_) => problems.push(format!("{shown}: modinfo differs from modinfo -0")),
        None => problems.push(format!("{shown}: modinfo printed nothing")),
    }
    if !symbols {
        return problems;
    }
    match (kmod_exports(MODPROBE_KMOD30, module), &info.exports) {
        (KmodExports::List(expected), Ok(ours)) if expected == *ours => {}
        (KmodExports::Failed(reason), Err(err)) if reason == err.kmod_strerror() => {}
        _ => problems.push(format!(
            "{shown}: exports differ from modprobe --show-exports"
        )),
    }
    let Some(nm) = undefined.get(module) else {
        problems.push(format!("{shown}: nm printed nothing"));
        return problems;
    };
    let expected = expected_imports(nm, &kmod_versions(module));
    if expected != info.imports {
        problems.push(format!(
            "{shown}: imports differ from nm -u -p + modprobe --show-modversions"
        ));
    }
    problems
}

/// Checks a tree: modinfo of every module, symbols of every `stride`-th module.
fn check_tree(name: &str, stride: usize) {
    let Some(modules) = tree_modules(name) else {
        return;
    };
    let opts = ReadOptions {
        version: KmodVersion::V30,
        gzip: false,
        ..ReadOptions::default()
    };
    let modinfo = kmod_modinfo(&modules);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let sampled: Vec<PathBuf> = modules.iter().step_by(stride).cloned().collect();
    // nm needs plain ELF: decompress the sample with the xz/zstd tools, then map the
    // results back to the module paths.
    let numbered: Vec<(usize, &PathBuf)> = sampled.iter().enumerate().collect();
    let plain: Vec<PathBuf> = parallel_map(&numbered, |(i, m)| plain_elf(m, scratch.path(), *i));
    let by_plain = nm_undefined(&plain);
    let undefined: HashMap<PathBuf, Vec<(Vec<u8>, bool)>> = sampled
        .iter()
        .zip(&plain)
        .filter_map(|(m, p)| by_plain.get(p).map(|u| (m.clone(), u.clone())))
        .collect();
    let indexed: Vec<(usize, &PathBuf)> = modules.iter().enumerate().collect();
    let problems: Vec<String> = parallel_map(&indexed, |(i, module)| {
        check_module(module, &opts, &modinfo, &undefined, i % stride == 0)
    })
    .into_iter()
    .flatten()
    .collect();
    let checked = modules.len().div_ceil(stride);
    eprintln!(
        "module_real: {name}: modinfo of {} modules, symbols of {checked}, {} problems",
        modules.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{name}: {} problems, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn bookworm_amd64_every_module() {
    check_tree("bookworm-amd64", 1);
}

#[test]
fn trixie_amd64_xz() {
    check_tree("trixie-amd64", stride());
}

#[test]
fn bookworm_i386_32_bit() {
    check_tree("bookworm-i386", stride());
}

#[test]
fn bookworm_s390x_big_endian() {
    check_tree("bookworm-s390x", stride());
}

#[test]
fn bookworm_other_architectures() {
    for name in [
        "bookworm-arm64",
        "bookworm-armhf",
        "bookworm-mips64el",
        "bookworm-ppc64el",
    ] {
        check_tree(name, stride() * 2);
    }
}

/// kmod 34's rules (section lookup, strictness) give the same results on real modules:
/// compare with trixie's `modprobe --show-exports` on a sample of the xz tree.
#[test]
fn trixie_amd64_exports_match_kmod34() {
    let Some(modules) = tree_modules("trixie-amd64") else {
        return;
    };
    let modprobe34 = cache_dir().join("bin/modprobe-kmod34");
    let modprobe34 = modprobe34.to_str().expect("utf-8 cache path").to_string();
    let opts = ReadOptions {
        version: KmodVersion::V34,
        gzip: false,
        ..ReadOptions::default()
    };
    let sample: Vec<&PathBuf> = modules.iter().step_by(stride() * 4).collect();
    let problems: Vec<String> = parallel_map(&sample, |module| {
        let ours = read_module(module, &opts).map(|i| i.exports);
        match (kmod_exports(&modprobe34, module), ours) {
            (KmodExports::List(expected), Ok(Ok(list))) if expected == list => None,
            (KmodExports::Failed(reason), Ok(Err(err))) if reason == err.kmod_strerror() => None,
            _ => Some(module.display().to_string()),
        }
    })
    .into_iter()
    .flatten()
    .collect();
    eprintln!(
        "module_real: trixie-amd64 vs kmod 34: {} modules, {} differ",
        sample.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "exports differ for: {problems:?}");
}
