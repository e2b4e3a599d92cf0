//! Odd and malformed modules read as Debian's kmod 30 and kmod 34.2 read them.
//!
//! Each case is a synthetic module (often patched after writing). For both kmod releases the
//! test asks the real binaries what they read and compares with this crate:
//!
//! * exports: `modprobe --show-exports` (list, or the strerror of the failure);
//! * modinfo: `modinfo -0`;
//! * imports: whether `depmod` makes the module depend on a fixed exporter, compared with
//!   whether our imports name one of the exporter's symbols.
//!
//! kmod 30 is `/usr/sbin/*`; kmod 34 comes from the reference cache. Missing binaries fail
//! the test unless `DEPMOD_RS_SKIP_REAL=1`.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{read_module, Export, ModinfoEntry, ModuleError, ReadOptions};
use testkit::synth::{machine, CrcLocation, ElfClass, Endian, SynthModule};

const KVER: &str = "1.0.0-test";

/// One kmod release's tools.
struct Kmod {
    version: KmodVersion,
    modprobe: PathBuf,
    modinfo: PathBuf,
    depmod: PathBuf,
}

fn kmods() -> Option<Vec<Kmod>> {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cache = std::env::var_os("DEPMOD_RS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/depmod-rs"));
    let bin = cache.join("bin");
    let all = vec![
        Kmod {
            version: KmodVersion::V30,
            modprobe: "/usr/sbin/modprobe".into(),
            modinfo: "/usr/sbin/modinfo".into(),
            depmod: "/usr/sbin/depmod".into(),
        },
        Kmod {
            version: KmodVersion::V34,
            modprobe: bin.join("modprobe-kmod34"),
            modinfo: bin.join("modinfo-kmod34"),
            depmod: bin.join("depmod-kmod34"),
        },
    ];
    let missing: Vec<_> = all
        .iter()
        .flat_map(|k| [&k.modprobe, &k.modinfo, &k.depmod])
        .filter(|p| !p.exists())
        .collect();
    if missing.is_empty() {
        return Some(all);
    }
    if std::env::var("DEPMOD_RS_SKIP_REAL").is_ok_and(|v| v == "1") {
        eprintln!("module_kmod_edges: kmod binaries missing, skipped (DEPMOD_RS_SKIP_REAL=1)");
        return None;
    }
    panic!("kmod reference binaries missing: {missing:?} (set DEPMOD_RS_SKIP_REAL=1 to skip)");
}

fn opts(version: KmodVersion) -> ReadOptions {
    // Debian's builds have no zlib.
    ReadOptions {
        version,
        gzip: false,
        ..ReadOptions::default()
    }
}

/// What `modprobe --show-exports` printed: the list, or the failure's strerror. A missing
/// export section ("no symbols") is an empty list, as depmod treats it.
#[derive(Debug, PartialEq, Eq)]
enum Exports {
    List(Vec<(u64, Vec<u8>)>),
    Failed(String),
    /// kmod hit one of its `assert`s and aborted (Debian builds keep assertions); there is no
    /// behaviour to reproduce, ours just has to be defined.
    Aborted,
}

fn kmod_exports(kmod: &Kmod, file: &Path) -> Exports {
    let out = Command::new(&kmod.modprobe)
        .arg("--show-exports")
        .arg(file)
        .output()
        .expect("modprobe runs");
    if out.status.success() {
        let list = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let (crc, name) = line.split_once('\t').expect("crc<TAB>name");
                let crc = u64::from_str_radix(crc.trim_start_matches("0x"), 16).expect("hex");
                (crc, name.as_bytes().to_vec())
            })
            .collect();
        return Exports::List(list);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Assertion") {
        return Exports::Aborted;
    }
    assert!(
        stderr.contains("could not get symbols"),
        "unexpected modprobe failure: {stderr}"
    );
    let reason = stderr.trim_end().rsplit(": ").next().unwrap_or_default();
    match reason {
        "No such file or directory" | "No data available" => Exports::List(Vec::new()),
        other => Exports::Failed(other.to_string()),
    }
}

fn our_exports(file: &Path, version: KmodVersion) -> Exports {
    let to_list =
        |list: Vec<Export>| Exports::List(list.into_iter().map(|e| (e.crc, e.name)).collect());
    let fail = |e: ModuleError| Exports::Failed(e.kmod_strerror().to_string());
    match read_module(file, &opts(version)) {
        Ok(info) => match info.exports {
            Ok(list) => to_list(list),
            Err(e) => fail(e),
        },
        Err(e) => fail(e),
    }
}

fn kmod_modinfo(kmod: &Kmod, file: &Path) -> Vec<ModinfoEntry> {
    let out = Command::new(&kmod.modinfo)
        .arg("-0")
        .arg(file)
        .output()
        .expect("modinfo runs");
    out.stdout
        .split(|&b| b == 0)
        .filter(|r| !r.is_empty() && !r.starts_with(b"filename:") && !r.starts_with(b"parm:"))
        .map(|r| match r.iter().position(|&b| b == b'=') {
            Some(eq) => ModinfoEntry {
                key: r[..eq].to_vec(),
                value: r[eq + 1..].to_vec(),
            },
            None => ModinfoEntry {
                key: r.to_vec(),
                value: Vec::new(),
            },
        })
        .collect()
}

fn our_modinfo(file: &Path, version: KmodVersion) -> Vec<ModinfoEntry> {
    read_module(file, &opts(version))
        .map(|i| i.modinfo)
        .unwrap_or_default()
}

/// The exporter every dependency case links against.
fn exporter() -> SynthModule {
    SynthModule::x86_64()
        .with_export("sym_a", Some(0x1111))
        .with_export("sym_b", Some(0x2222))
        .with_export("sym_c", Some(0x3333))
}

/// Whether kmod's depmod makes `b.ko` depend on the exporter `a.ko`.
fn kmod_depends(kmod: &Kmod, module: &[u8]) -> bool {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("lib/modules").join(KVER).join("kernel");
    std::fs::create_dir_all(&dir).expect("tree");
    std::fs::write(dir.join("a.ko"), exporter().to_elf()).expect("a.ko");
    std::fs::write(dir.join("b.ko"), module).expect("b.ko");
    let config = root.path().join("no-config");
    std::fs::create_dir(&config).expect("config dir");
    let out = Command::new(&kmod.depmod)
        .arg("-b")
        .arg(root.path())
        .arg("-C")
        .arg(&config)
        .arg(KVER)
        .output()
        .expect("depmod runs");
    assert!(out.status.success(), "depmod failed: {out:?}");
    let dep = std::fs::read_to_string(
        root.path()
            .join("lib/modules")
            .join(KVER)
            .join("modules.dep"),
    )
    .expect("modules.dep");
    dep.lines()
        .find(|l| l.starts_with("kernel/b.ko:"))
        .expect("b.ko listed")
        .contains("kernel/a.ko")
}

/// Whether our reading of `module` names one of the exporter's symbols.
fn we_depend(file: &Path, version: KmodVersion) -> bool {
    let exported: Vec<Vec<u8>> = exporter().exports.into_iter().map(|e| e.name).collect();
    read_module(file, &opts(version))
        .map(|info| info.imports.iter().any(|i| exported.contains(&i.name)))
        .unwrap_or(false)
}

/// Runs every comparison for one case; returns a description of each disagreement.
fn compare(kmods: &[Kmod], case: &str, bytes: &[u8], check_deps: bool) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{case}.ko"));
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write case");
    let mut problems = Vec::new();
    for kmod in kmods {
        let v = kmod.version;
        let (theirs, ours) = (kmod_exports(kmod, &file), our_exports(&file, v));
        if theirs == Exports::Aborted {
            eprintln!("module_kmod_edges: {case}: kmod {v} aborts on an assertion; ours: {ours:?}");
            continue;
        }
        if theirs != ours {
            problems.push(format!(
                "{case} v{v}: exports kmod {theirs:?} ours {ours:?}"
            ));
        }
        let (theirs, ours) = (kmod_modinfo(kmod, &file), our_modinfo(&file, v));
        let strip_sig = |mut e: Vec<ModinfoEntry>| {
            e.retain(|x| !x.key.starts_with(b"sig"));
            e
        };
        if strip_sig(theirs.clone()) != ours {
            problems.push(format!(
                "{case} v{v}: modinfo kmod {theirs:?} ours {ours:?}"
            ));
        }
        if check_deps {
            let (theirs, ours) = (kmod_depends(kmod, bytes), we_depend(&file, v));
            if theirs != ours {
                problems.push(format!("{case} v{v}: dependency kmod {theirs} ours {ours}"));
            }
        }
    }
    problems
}

// ---- byte patching helpers (little-endian ELF64 unless stated) ----

fn put_u16(elf: &mut [u8], at: usize, v: u16) {
    elf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(elf: &mut [u8], at: usize, v: u32) {
    elf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(elf: &mut [u8], at: usize, v: u64) {
    elf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
const SH_NAME: usize = 0;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;
const SYM_SIZE: usize = 24;
const ST_NAME: usize = 0;
const ST_INFO: usize = 4;
const ST_SHNDX: usize = 6;
const ST_VALUE: usize = 8;

fn importer() -> SynthModule {
    SynthModule::x86_64()
        .with_modinfo("license", "GPL")
        .with_import("sym_a", false, Some(0x1111))
        .with_import("unrelated", false, None)
        .with_extra_version("module_layout", 0x4242)
}

/// All cases: (name, bytes, whether to compare dependencies through depmod).
fn cases() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut cases = Vec::new();
    let mut add = |name, bytes, deps| cases.push((name, bytes, deps));

    // --- exports ---
    let mut m = SynthModule::x86_64().with_modinfo("license", "GPL");
    m.ksymtab_strings_override = Some(b"\0\0first\0\0second".to_vec());
    add("ksymtab_unterminated", m.to_elf(), false);
    m.ksymtab_strings_override = Some(b"\0\0first\0\0second\0".to_vec());
    add("ksymtab_padding", m.to_elf(), false);
    m.ksymtab_strings_override = Some(b"\0\0x".to_vec());
    add("ksymtab_one_byte", m.to_elf(), false);
    add(
        "ksymtab_no_crc",
        SynthModule::x86_64()
            .with_export("e1", None)
            .with_export("e2", None)
            .to_elf(),
        false,
    );
    let mut m = SynthModule::x86_64()
        .with_export("e1", Some(0xabcd))
        .with_export("e2", Some(0x1234_5678));
    m.crc_location = CrcLocation::Section;
    add("crc_in_section", m.to_elf(), false);
    {
        let (mut elf, layout) = m.to_elf_with_layout();
        let kcrctab = layout.section("___kcrctab").unwrap().header_offset;
        put_u64(&mut elf, kcrctab + SH_SIZE, 2);
        add("crc_section_too_small", elf, false);
        let (mut elf, layout) = m.to_elf_with_layout();
        let symtab = layout.section(".symtab").unwrap().data_offset;
        put_u64(&mut elf, symtab + 2 * SYM_SIZE + ST_VALUE, 100);
        add("crc_offset_past_section", elf, false);
        let (mut elf, layout) = m.to_elf_with_layout();
        let symtab = layout.section(".symtab").unwrap().data_offset;
        put_u16(&mut elf, symtab + SYM_SIZE + ST_SHNDX, 60);
        add("crc_section_index_past_table", elf, false);
    }
    let m = SynthModule::x86_64()
        .with_export("e1", Some(7))
        .with_import("sym_a", false, None);
    {
        let (mut elf, layout) = m.to_elf_with_layout();
        let symtab = layout.section(".symtab").unwrap().data_offset;
        put_u32(&mut elf, symtab + 2 * SYM_SIZE + ST_NAME, 0xffff);
        add("st_name_out_of_range", elf, true);
        let (mut elf, layout) = m.to_elf_with_layout();
        let symtab = layout.section(".symtab").unwrap().header_offset;
        let size = layout.section(".symtab").unwrap().size as u64;
        put_u64(&mut elf, symtab + SH_SIZE, size - 1);
        add("symtab_size_not_multiple", elf, true);
    }
    // An export named exactly by a string that runs past .strtab into the next section.
    {
        let m = SynthModule::x86_64().with_export("tail", Some(9));
        let (mut elf, layout) = m.to_elf_with_layout();
        let strtab = layout.section(".strtab").unwrap();
        // Drop the final NUL of .strtab from its size: the C string still ends in the file.
        put_u64(
            &mut elf,
            strtab.header_offset + SH_SIZE,
            strtab.size as u64 - 1,
        );
        add("strtab_without_final_nul", elf, false);
    }

    // --- section lookup ---
    {
        let m = SynthModule::x86_64()
            .with_modinfo("alias", "first")
            .with_section(".modinfo", b"alias=second\0");
        add("duplicate_modinfo", m.to_elf(), false);
        let (mut elf, layout) = m.to_elf_with_layout();
        let first = layout.section(".modinfo").unwrap().header_offset;
        put_u64(&mut elf, first + SH_OFFSET, 1 << 40);
        add("duplicate_modinfo_first_out_of_range", elf, false);
        let (mut elf, layout) = m.to_elf_with_layout();
        let first = layout.section(".modinfo").unwrap().header_offset;
        put_u64(&mut elf, first + SH_OFFSET, 0);
        put_u64(&mut elf, first + SH_SIZE, 8);
        add("modinfo_at_offset_zero", elf, false);
    }
    {
        let (mut elf, layout) = importer().with_export("x", Some(1)).to_elf_with_layout();
        let shstrtab = layout.section(".shstrtab").unwrap().header_offset;
        put_u32(&mut elf, shstrtab + SH_NAME, 0x7fff_ffff);
        add("shstrtab_own_name_out_of_range", elf, true);
    }

    // --- modinfo splitting ---
    {
        let m = SynthModule::x86_64()
            .with_section(".modinfo", b"\0\0alias=a=b\0\0\0flag\0=v\0license=GPL");
        add("modinfo_odd_strings", m.to_elf(), false);
        let m = SynthModule::x86_64().with_section(".modinfo", b"\0\0a");
        add("modinfo_single_byte", m.to_elf(), false);
    }

    // --- imports (through depmod) ---
    add("plain_import", importer().to_elf(), true);
    add(
        "weak_import",
        SynthModule::x86_64()
            .with_import("sym_b", true, Some(0x2222))
            .to_elf(),
        true,
    );
    add(
        "import_without_versions",
        SynthModule::x86_64()
            .with_import("sym_c", false, None)
            .to_elf(),
        true,
    );
    add(
        "no_symtab",
        {
            let mut m = importer();
            m.symtab = false;
            m.to_elf()
        },
        true,
    );
    for (name, machine_id) in [
        ("register_sparc", machine::SPARCV9),
        ("register_x86", machine::X86_64),
    ] {
        let m = SynthModule::new(ElfClass::Elf64, Endian::Little, machine_id)
            .with_import("sym_a", false, None);
        let (mut elf, layout) = m.to_elf_with_layout();
        let symtab = layout.section(".symtab").unwrap().data_offset;
        elf[symtab + SYM_SIZE + ST_INFO] = (1 << 4) | 13; // GLOBAL, STT_REGISTER
        add(name, elf, true);
    }
    {
        let m = importer();
        let (mut elf, layout) = m.to_elf_with_layout();
        let versions = layout.section("__versions").unwrap();
        put_u64(
            &mut elf,
            versions.header_offset + SH_SIZE,
            versions.size as u64 - 8,
        );
        add("versions_size_not_multiple", elf, true);
    }
    {
        // module_layout's name fills its whole 56-byte field: unterminated, never matched.
        let long = "m".repeat(56);
        let m = SynthModule::x86_64()
            .with_import("sym_a", false, Some(0x1111))
            .with_extra_version(long, 1);
        add("versions_unterminated_unvisited", m.to_elf(), true);
    }

    // --- invalid files ---
    add("empty", Vec::new(), false);
    add("five_bytes", b"\x7fELF\x02".to_vec(), false);
    add(
        "sixteen_byte_elf",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
        false,
    );
    add("not_elf", vec![b'x'; 200], false);
    let good = importer().to_elf();
    let mut bad = good.clone();
    bad[4] = 3;
    add("bad_class", bad, false);
    let mut bad = good.clone();
    bad[5] = 0;
    add("bad_data_encoding", bad, false);
    add("header_only", good[..64].to_vec(), false);
    let mut bad = good.clone();
    put_u16(&mut bad, 58, 40);
    add("bad_shentsize", bad, false);
    let mut bad = good.clone();
    put_u64(&mut bad, 40, good.len() as u64);
    add("section_table_past_end", bad, false);
    let mut bad = good.clone();
    put_u16(&mut bad, 62, 200);
    add("shstrndx_past_table", bad, false);
    {
        let (mut elf, layout) = importer().to_elf_with_layout();
        let shstrtab = layout.section(".shstrtab").unwrap();
        let last = shstrtab.data_offset + shstrtab.size - 1;
        elf[last] = b'x';
        add("shstrtab_unterminated", elf, false);
    }
    cases
}

#[test]
fn malformed_and_odd_modules_read_like_kmod() {
    let Some(kmods) = kmods() else { return };
    let all = cases();
    let mut problems = Vec::new();
    for (name, bytes, deps) in &all {
        problems.extend(compare(&kmods, name, bytes, *deps));
    }
    eprintln!(
        "module_kmod_edges: {} cases × {} kmod releases, {} disagreements",
        all.len(),
        kmods.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "disagreements:\n{}",
        problems.join("\n")
    );
}

/// Compressed files, including formats and streams kmod releases treat differently.
#[test]
fn compressed_modules_read_like_kmod() {
    let Some(kmods) = kmods() else { return };
    let elf = importer()
        .with_modinfo("alias", "compressed")
        .with_export("packed", Some(5))
        .to_elf();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.ko");
    std::fs::write(&plain, &elf).expect("write");
    let tool = |args: &[&str]| -> Vec<u8> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .arg(OsStr::new(&plain))
            .output()
            .expect("compressor runs");
        assert!(out.status.success(), "{args:?}");
        out.stdout
    };
    let xz = tool(&["xz", "-c", "--check=crc32"]);
    let zst = tool(&["zstd", "-q", "-c"]);
    let gz = tool(&["gzip", "-c"]);
    // zstd from a pipe has no content size in its frame header.
    let zst_streamed = {
        let mut child = Command::new("zstd")
            .args(["-q", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("zstd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&elf)
            .expect("feed");
        child.wait_with_output().expect("zstd output").stdout
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("xz", xz.clone()),
        ("zst", zst.clone()),
        ("gz", gz.clone()),
        ("zst_no_content_size", zst_streamed.clone()),
        ("xz_truncated", xz[..xz.len() - 10].to_vec()),
        ("zst_truncated", zst[..zst.len() / 2].to_vec()),
        (
            "zst_streamed_truncated",
            zst_streamed[..zst_streamed.len() - 3].to_vec(),
        ),
        ("xz_concatenated", [xz.clone(), xz.clone()].concat()),
        ("xz_padded", [xz.clone(), vec![0; 8]].concat()),
        (
            "xz_trailing_garbage",
            [xz.clone(), b"junk".to_vec()].concat(),
        ),
        (
            "zst_trailing_garbage",
            [zst.clone(), b"junk".to_vec()].concat(),
        ),
    ];
    let mut corrupt = xz.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    cases.push(("xz_corrupt", corrupt));
    let mut problems = Vec::new();
    for (name, bytes) in &cases {
        problems.extend(compare(&kmods, name, bytes, false));
    }
    assert!(
        problems.is_empty(),
        "disagreements:\n{}",
        problems.join("\n")
    );
}
