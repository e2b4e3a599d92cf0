//! End-to-end runs of the `depmod-rs` binary on small synthetic trees.
//!
//! Where Debian's kmod binaries are available (kmod 34.2 in the reference cache, kmod 30 as
//! `/usr/sbin/depmod`), every scenario is also run through them and every output file, the
//! stderr text and the exit status must be identical. Without them, only the checks that come
//! from the spec run.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use testkit::synth::SynthModule;

const KVER: &str = "4.4.4";

fn ours() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_depmod-rs"));
    cmd.arg0("depmod").env("DEPMOD_RS_CONFIG", "/dev/null");
    cmd
}

fn kmod34() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".cache/depmod-rs/bin/depmod-kmod34");
    path.exists().then_some(path)
}

fn kmod30() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/sbin/depmod");
    let out = Command::new(&path).arg("-V").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .starts_with("kmod version 30")
        .then_some(path)
}

/// A module tree under a temporary root, with an empty config directory.
struct Tree {
    root: TempDir,
}

impl Tree {
    fn new() -> Self {
        let tree = Tree {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(tree.moddir()).unwrap();
        std::fs::create_dir_all(tree.conf()).unwrap();
        tree
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn moddir(&self) -> PathBuf {
        self.root().join("lib/modules").join(KVER)
    }

    fn conf(&self) -> PathBuf {
        self.root().join("conf")
    }

    fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let path = self.moddir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    fn module(&self, rel: &str, module: SynthModule) {
        self.write(rel, module.to_elf());
    }
}

/// What a run produced: exit status, stdout, stderr (paths normalised) and output files.
#[derive(Debug, PartialEq, Eq)]
struct RunResult {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    files: BTreeMap<String, Vec<u8>>,
}

fn collect(out: Output, outdir: &Path, replace: &[(&Path, &str)]) -> RunResult {
    // libkmod's own INFO lines print heap addresses; they carry no information to compare.
    let mut stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| {
            !(l.starts_with("depmod: INFO: ")
                && (l.contains("custom logging function 0x") || l.contains(" context 0x")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut stdout = out.stdout;
    for (from, to) in replace {
        let from = from.to_string_lossy();
        stderr = stderr.replace(from.as_ref(), to);
        stdout = String::from_utf8_lossy(&stdout)
            .replace(from.as_ref(), to)
            .into_bytes();
    }
    let mut files = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(outdir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.")
                && !matches!(
                    name.as_str(),
                    "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
                )
            {
                files.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    RunResult {
        code: out.status.code(),
        stdout,
        stderr,
        files,
    }
}

/// Run ours with `-o` into a fresh directory.
fn run_ours(tree: &Tree, compat: Option<&str>, args: &[&str]) -> RunResult {
    let out_root = tempfile::tempdir().unwrap();
    let mut cmd = ours();
    if let Some(v) = compat {
        cmd.args(["--compat", v]);
    }
    cmd.arg("-b").arg(tree.root()).arg("-C").arg(tree.conf());
    cmd.arg("-o").arg(out_root.path());
    cmd.args(args).arg(KVER);
    let out = cmd.output().unwrap();
    let outdir = out_root.path().join("lib/modules").join(KVER);
    collect(
        out,
        &outdir,
        &[(tree.root(), "ROOT"), (out_root.path(), "OUT")],
    )
}

/// Run kmod 34 with `-o` the same way.
fn run_kmod34(bin: &Path, tree: &Tree, args: &[&str]) -> RunResult {
    let out_root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-b").arg(tree.root()).arg("-C").arg(tree.conf());
    cmd.arg("-o").arg(out_root.path());
    cmd.args(args).arg(KVER);
    let out = cmd.output().unwrap();
    let outdir = out_root.path().join("lib/modules").join(KVER);
    collect(
        out,
        &outdir,
        &[(tree.root(), "ROOT"), (out_root.path(), "OUT")],
    )
}

/// Run kmod 30 (no `-o`) on a copy of the tree; paths are reported as the original's.
fn run_kmod30(bin: &Path, tree: &Tree, args: &[&str]) -> RunResult {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", tree.root().display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut cmd = Command::new(bin);
    cmd.arg("-b").arg(copy.path()).arg("-C").arg(tree.conf());
    cmd.args(args).arg(KVER);
    let out = cmd.output().unwrap();
    let outdir = copy.path().join("lib/modules").join(KVER);
    // kmod 30 writes in place: the outputs show up as the only modules.* files it made.
    collect(
        out,
        &outdir,
        &[(copy.path(), "ROOT"), (tree.root(), "ROOT")],
    )
}

/// Compare ours with every available kmod on `tree`; returns ours (kmod 34 flavour).
fn assert_same_as_kmod(tree: &Tree, args: &[&str]) -> RunResult {
    let ours34 = run_ours(tree, None, args);
    if let Some(bin) = kmod34() {
        let theirs = run_kmod34(&bin, tree, args);
        assert_eq!(
            ours34.code, theirs.code,
            "exit status vs kmod 34: ours {} theirs {}",
            ours34.stderr, theirs.stderr
        );
        assert_eq!(ours34.stderr, theirs.stderr, "stderr vs kmod 34");
        assert_eq!(
            ours34.files.keys().collect::<Vec<_>>(),
            theirs.files.keys().collect::<Vec<_>>(),
            "file set vs kmod 34"
        );
        for (name, bytes) in &theirs.files {
            assert!(ours34.files[name] == *bytes, "{name} differs from kmod 34");
        }
        assert_eq!(ours34.stdout, theirs.stdout, "stdout vs kmod 34");
    }
    if let Some(bin) = kmod30() {
        // kmod 30 has no -m/-o; our run with --compat 30 must match it.
        let ours30 = run_ours(tree, Some("30"), args);
        let theirs = run_kmod30(&bin, tree, args);
        assert_eq!(ours30.code, theirs.code, "exit status vs kmod 30");
        assert_eq!(ours30.stderr, theirs.stderr, "stderr vs kmod 30");
        assert_eq!(
            ours30.files.keys().collect::<Vec<_>>(),
            theirs.files.keys().collect::<Vec<_>>(),
            "file set vs kmod 30"
        );
        for (name, bytes) in &theirs.files {
            assert!(ours30.files[name] == *bytes, "{name} differs from kmod 30");
        }
        assert_eq!(ours30.stdout, theirs.stdout, "stdout vs kmod 30");
    }
    ours34
}

fn x86() -> SynthModule {
    SynthModule::x86_64()
}

/// A tree exercising most rules at once.
fn rich_tree() -> Tree {
    let tree = Tree::new();
    tree.module(
        "kernel/lib/core-a.ko",
        x86()
            .with_export("core_fn", Some(0x1111))
            .with_export("shared_sym", Some(0x2222))
            .with_modinfo("alias", "core-a-alias")
            .with_modinfo("alias", "pci:v00001234d*sv*")
            .with_modinfo("softdep", "pre: core_b"),
    );
    tree.module(
        "kernel/lib/core_b.ko",
        x86()
            .with_export("shared_sym", Some(0x3333))
            .with_export("b_fn", None)
            .with_import("core_fn", false, Some(0x1111))
            .with_modinfo("alias", "o[n-p]e-x")
            .with_modinfo("alias", "bad]bracket")
            .with_modinfo("alias", "x-y")
            .with_modinfo("alias", "x_y")
            .with_modinfo("alias", "late]bad")
            .with_modinfo("weakdep", "core-a"),
    );
    tree.module(
        "kernel/drivers/user.ko",
        x86()
            .with_import("shared_sym", false, Some(0x2222))
            .with_import("b_fn", true, None)
            .with_import("printk", false, Some(1))
            .with_import("missing_weak", true, None)
            .with_modinfo("alias", "devname:user0")
            .with_modinfo("alias", "char-major-10-123"),
    );
    tree.module(
        "kernel/drivers/nodev.ko",
        x86().with_modinfo("alias", "devname:lonely"),
    );
    tree.module(
        "kernel/drivers/blk.ko",
        x86()
            .with_modinfo("alias", "block-major-7-*")
            .with_modinfo("alias", "block-major-8-0")
            .with_modinfo("alias", "devname:blk"),
    );
    tree.module(
        "kernel/drivers/dup.ko",
        x86().with_modinfo("alias", "dup-kernel"),
    );
    tree.module("updates/dup.ko", x86().with_modinfo("alias", "dup-updates"));
    tree.module("kernel/misc/gz.ko.gz", x86());
    tree.write("kernel/misc/garbage.ko", b"not an elf file at all");
    tree.write("kernel/misc/empty.ko", b"");
    tree.write("build/ignored.ko", x86().to_elf());
    tree.write(
        "modules.order",
        "kernel/drivers/user.ko\n#123\nkernel/lib/core_b.ko\nkernel/lib/core-a.ko\nkernel/drivers/user.ko\n",
    );
    tree.write(
        "modules.builtin",
        "kernel/fs/ext4/ext4.ko\n/bad/line.ko\nkernel/crypto/crc32c-generic.ko\n",
    );
    tree.write(
        "modules.builtin.modinfo",
        b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c_generic.alias=crypto-crc32c\0x.alias=a]b\0"
            as &[u8],
    );
    tree
}

#[test]
fn rich_tree_matches_kmod() {
    let tree = rich_tree();
    let result = assert_same_as_kmod(&tree, &[]);
    assert_eq!(result.code, Some(0));
    assert_eq!(result.files.len(), 11);
    let dep = String::from_utf8(result.files["modules.dep"].clone()).unwrap();
    // modules.order puts user first; dup resolves to updates/; garbage and empty stay listed.
    assert!(dep.starts_with("kernel/drivers/user.ko:"), "{dep}");
    assert!(dep.contains("updates/dup.ko:\n"), "{dep}");
    assert!(dep.contains("kernel/misc/garbage.ko:\n"), "{dep}");
    assert!(
        !dep.contains("gz.ko.gz") && !dep.contains("ignored"),
        "{dep}"
    );
    assert!(result
        .stderr
        .contains("depmod: ERROR: failed to load symbols from ROOT/lib/modules/4.4.4/kernel/misc/garbage.ko: Exec format error"));
    assert!(result
        .stderr
        .contains("depmod: WARNING: Unmatched bracket in bad]bracket"));
}

#[test]
fn rich_tree_dry_run_matches_kmod() {
    let tree = rich_tree();
    let result = assert_same_as_kmod(&tree, &["-n"]);
    assert!(result.files.is_empty());
    let stdout = String::from_utf8(result.stdout).unwrap();
    assert!(stdout.contains("# Aliases extracted from modules themselves.\n"));
    assert!(stdout.contains("# Weak dependencies extracted from modules themselves.\n"));
}

#[test]
fn rich_tree_verbose_warn_and_symvers_match_kmod() {
    let tree = rich_tree();
    let symvers = tree.root().join("Module.symvers");
    std::fs::write(
        &symvers,
        "0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\n0x5\tthree_cols\tvmlinux\nzz\tbad\tvmlinux\tEXPORT_SYMBOL\n",
    )
    .unwrap();
    let symvers = symvers.to_str().unwrap().to_string();
    assert_same_as_kmod(&tree, &["-v", "-w", "-e", "-E", &symvers]);
    let sysmap = tree.root().join("System.map");
    std::fs::write(&sysmap, "c0 R __ksymtab_printk\nbroken\nc1 T other\n").unwrap();
    let sysmap = sysmap.to_str().unwrap().to_string();
    assert_same_as_kmod(&tree, &["-e", "-F", &sysmap]);
    assert_same_as_kmod(&tree, &["-e"]);
}

#[test]
fn empty_tree_matches_kmod() {
    let tree = Tree::new();
    let result = assert_same_as_kmod(&tree, &[]);
    assert_eq!(result.files["modules.dep"], b"");
    assert_eq!(result.files["modules.dep.bin"].len(), 12);
    // No modules.builtin: a 0-byte index and a warning.
    assert_eq!(result.files["modules.builtin.bin"], b"");
    assert!(result.stderr.contains("could not open modules.builtin at"));
    assert_eq!(result.files["modules.devname"], b"");
}

#[test]
fn dependency_order_and_modules_order_duplicates_match_kmod() {
    let tree = Tree::new();
    // A chain and a diamond so the LIFO topological index decides the modules.dep order.
    tree.module(
        "kernel/top.ko",
        x86()
            .with_import("fa", false, None)
            .with_import("fb", false, None)
            .with_import("fc", false, None),
    );
    tree.module(
        "kernel/a/fa.ko",
        x86().with_export("fa", None).with_import("fb", false, None),
    );
    tree.module(
        "kernel/b/fb.ko",
        x86().with_export("fb", None).with_import("fd", false, None),
    );
    tree.module(
        "kernel/c/fc.ko",
        x86().with_export("fc", None).with_import("fd", false, None),
    );
    tree.module("kernel/d/fd.ko", x86().with_export("fd", None));
    tree.write(
        "modules.order",
        "kernel/c/fc.ko\nkernel/top.ko\nkernel/a/fa.ko\nkernel/c/fc.ko\n",
    );
    assert_same_as_kmod(&tree, &[]);
}

#[test]
fn corrupted_modules_order_matches_kmod() {
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86());
    tree.module("kernel/b.ko", x86());
    tree.write("modules.order", "kernel/b.ko\nkernel/a.ko");
    let result = assert_same_as_kmod(&tree, &[]);
    assert!(result.stderr.contains("corrupted line misses '\\n'"));
}

#[test]
fn cycles_match_kmod() {
    let tree = Tree::new();
    tree.module(
        "kernel/ca.ko",
        x86().with_export("ca", None).with_import("cb", false, None),
    );
    tree.module(
        "kernel/cb.ko",
        x86().with_export("cb", None).with_import("cc", false, None),
    );
    tree.module(
        "kernel/cc.ko",
        x86().with_export("cc", None).with_import("ca", false, None),
    );
    tree.module(
        "kernel/self.ko",
        x86().with_export("me", None).with_import("me", false, None),
    );
    tree.module("kernel/behind.ko", x86().with_import("ca", false, None));
    tree.write("modules.order", "");
    let result = assert_same_as_kmod(&tree, &[]);
    assert_eq!(result.code, Some(1));
    assert!(result.files.is_empty());
    assert!(result.stderr.contains("modules in dependency cycles!"));
}

#[test]
fn upstream_hang_case_terminates() {
    // kmod loops forever here (spec §7.3); we must stop and report both cycles.
    let tree = Tree::new();
    tree.module(
        "kernel/cya7.ko",
        x86()
            .with_export("cya7", None)
            .with_import("cyb7", false, None)
            .with_import("rr7", false, None),
    );
    tree.module(
        "kernel/cyb7.ko",
        x86()
            .with_export("cyb7", None)
            .with_import("cya7", false, None),
    );
    tree.module(
        "kernel/rr7.ko",
        x86()
            .with_export("rr7", None)
            .with_import("xa7", false, None),
    );
    tree.module(
        "kernel/xa7.ko",
        x86()
            .with_export("xa7", None)
            .with_import("xb7", false, None),
    );
    tree.module(
        "kernel/xb7.ko",
        x86()
            .with_export("xb7", None)
            .with_import("xa7", false, None),
    );
    tree.write("modules.order", "");
    let result = run_ours(&tree, None, &[]);
    assert_eq!(result.code, Some(1));
    assert!(
        result.stderr.contains("Cycle detected: xa7 -> xb7 -> xa7"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("Cycle detected: cya7 -> cyb7 -> cya7"),
        "{}",
        result.stderr
    );
    assert!(result
        .stderr
        .ends_with("depmod: ERROR: Found 4 modules in dependency cycles!\n"));
}

#[test]
fn config_search_override_exclude_match_kmod() {
    let tree = Tree::new();
    for dir in [
        "kernel/crypto",
        "foo",
        "foobar",
        "override",
        "extra",
        "skipme",
    ] {
        tree.module(&format!("{dir}/mod-simple.ko"), x86());
    }
    tree.module("kernel/keep/skipme2/other.ko", x86());
    tree.module("skipme/gone.ko", x86());
    std::fs::write(
        tree.conf().join("a.conf"),
        "search foobar foo built-in\nexclude skipme\n# comment\n  # indented\nbogus line\ninclude x\n",
    )
    .unwrap();
    assert_same_as_kmod(&tree, &["-vv"]);
    std::fs::write(
        tree.conf().join("b.conf"),
        "override mod-simple 4\\.4 override\noverride mod_simple * extra\noverride x 9.9 y\n",
    )
    .unwrap();
    assert_same_as_kmod(&tree, &[]);
}

#[test]
fn non_ascii_alias_is_fatal_like_kmod_34() {
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86().with_modinfo("alias", b"caf\xc3\xa9"));
    let result = run_ours(&tree, None, &[]);
    assert_eq!(result.code, Some(1));
    assert!(result
        .stderr
        .contains("depmod: FATAL: Module index: bad character"));
    // modules.dep, .dep.bin and .alias were published before the failure; nothing after.
    assert_eq!(
        result.files.keys().collect::<Vec<_>>(),
        ["modules.alias", "modules.dep", "modules.dep.bin"]
    );
    if let Some(bin) = kmod34() {
        let theirs = run_kmod34(&bin, &tree, &[]);
        assert_eq!(theirs.code, result.code);
        assert_eq!(theirs.stderr, result.stderr);
        for (name, bytes) in &result.files {
            assert_eq!(&theirs.files[name], bytes, "{name}");
        }
    }
}

#[test]
fn file_list_mode_matches_kmod() {
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86().with_export("fa", None));
    tree.module("kernel/b.ko", x86().with_import("fa", false, None));
    let outside = tempfile::tempdir().unwrap();
    let ext = outside.path().join("ext-mod.ko");
    std::fs::write(&ext, x86().with_import("fa", false, None).to_elf()).unwrap();
    let out_root = tempfile::tempdir().unwrap();
    let a = tree.moddir().join("kernel/a.ko");
    let b = tree.moddir().join("kernel/b.ko");
    let mut cmd = ours();
    cmd.arg("-b")
        .arg(tree.root())
        .arg("-o")
        .arg(out_root.path())
        .arg(KVER);
    cmd.arg(&a).arg(&b).arg(&ext);
    let ours = collect(
        cmd.output().unwrap(),
        &out_root.path().join("lib/modules").join(KVER),
        &[],
    );
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    let dep = String::from_utf8(ours.files["modules.dep"].clone()).unwrap();
    assert!(
        dep.contains(&format!("{}: kernel/a.ko\n", ext.display())),
        "{dep}"
    );
    if let Some(bin) = kmod34() {
        let out2 = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-b")
            .arg(tree.root())
            .arg("-o")
            .arg(out2.path())
            .arg(KVER);
        cmd.arg(&a).arg(&b).arg(&ext);
        let theirs = collect(
            cmd.output().unwrap(),
            &out2.path().join("lib/modules").join(KVER),
            &[],
        );
        assert_eq!(ours.files, theirs.files);
        assert_eq!(ours.stderr, theirs.stderr);
    }
    // Relative paths are fatal.
    let out = ours_cmd_output(&["-b", "/nonexistent", KVER, "relative.ko"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "depmod: FATAL: relative.ko: not absolute path.\n"
    );
}

fn ours_cmd_output(args: &[&str]) -> Output {
    ours().args(args).output().unwrap()
}

/// Command-line behaviour that needs no tree: texts and exit codes as kmod's.
#[test]
fn command_line_errors_match_kmod() {
    let cases: &[&[&str]] = &[
        &["-x"],
        &["--foo"],
        &["-b"],
        &["--basedir"],
        &["--s"],
        &["--all=3"],
        &["abc"],
        &["4"],
        &["-P", "ab", "4.4"],
        &["-h"],
        &["-h", "-x"],
        &["-x", "-h"],
        &["-A", "-n", "4.4"],
        &["-b", "/nonexistent-depmod-rs", "4.4"],
    ];
    for args in cases {
        let out = ours_cmd_output(args);
        if let Some(bin) = kmod34() {
            let theirs = Command::new(&bin).args(*args).output().unwrap();
            assert_eq!(out.status.code(), theirs.status.code(), "{args:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&theirs.stderr),
                "{args:?}"
            );
            // Help text: kmod's, then a section on our extensions.
            let ours_stdout = String::from_utf8_lossy(&out.stdout);
            let theirs_stdout = String::from_utf8_lossy(&theirs.stdout);
            assert!(ours_stdout.starts_with(theirs_stdout.as_ref()), "{args:?}");
            if theirs_stdout.is_empty() {
                assert!(ours_stdout.is_empty(), "{args:?}");
            }
        }
    }
    assert_eq!(ours_cmd_output(&["-x"]).status.code(), Some(1));
    assert_eq!(ours_cmd_output(&["-h"]).status.code(), Some(0));
    let version = ours_cmd_output(&["-V"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("kmod version 34"));
    let version30 = ours_cmd_output(&["--compat", "30", "-V"]);
    assert!(String::from_utf8_lossy(&version30.stdout).starts_with("kmod version 30\n"));
}

#[test]
fn compat_30_deprecated_options_match_kmod_30() {
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86());
    if let Some(bin) = kmod30() {
        let theirs = run_kmod30(&bin, &tree, &["-u", "-q", "--root", "-m"]);
        let ours = run_ours(&tree, Some("30"), &["-u", "-q", "--root", "-m"]);
        assert_eq!(ours.stderr, theirs.stderr);
        assert_eq!(ours.files, theirs.files);
    }
    let out = ours_cmd_output(&["-u"]);
    assert_eq!(out.status.code(), Some(1));
    if let Some(bin) = kmod30() {
        let theirs = Command::new(bin).arg("-h").output().unwrap();
        let ours = ours_cmd_output(&["--compat", "30", "-h"]);
        assert!(ours.stdout.starts_with(&theirs.stdout));
        assert!(!theirs.stdout.is_empty());
    }
}

#[test]
fn moduledir_option_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tree = Tree::new();
    let foobar = tree.root().join("foobar").join(KVER).join("kernel");
    std::fs::create_dir_all(&foobar).unwrap();
    std::fs::write(foobar.join("mod-simple.ko"), x86().to_elf()).unwrap();
    let out = ours()
        .arg("-b")
        .arg(tree.root())
        .args(["-C"])
        .arg(tree.conf())
        .args(["-m", "/foobar", KVER])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dep = tree.root().join("foobar").join(KVER).join("modules.dep");
    assert_eq!(std::fs::read(&dep).unwrap(), b"kernel/mod-simple.ko:\n");
    // 0644 minus the test process umask (022 by default) — never more than 0644.
    let mode = std::fs::metadata(&dep).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o644, 0);
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dep.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !(name == "kernel"
                || name.starts_with("modules.") && !name.contains(&std::process::id().to_string()))
        })
        .collect();
    assert!(leftovers.is_empty());
    let _ = OsStr::new("");
}

/// The kmod testsuite's detect-loop fixture (prebuilt kmod test modules): our stderr must be
/// exactly upstream's `correct.txt`.
#[test]
fn detect_loop_fixture_matches_correct_txt() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kmod-testsuite/rootfs/detect-loop");
    if !fixture.exists() {
        eprintln!("skipped: {} not present", fixture.display());
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let conf = copy.path().join("no-config");
    std::fs::create_dir_all(&conf).unwrap();
    let out = ours()
        .arg("-b")
        .arg(copy.path())
        .arg("-C")
        .arg(&conf)
        .arg(KVER)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected = std::fs::read_to_string(fixture.join("correct.txt")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
    assert_eq!(expected.lines().count(), 5);
}

fn sh_output(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("DEPMOD_RS_CONFIG", "/dev/null")
        .output()
        .unwrap()
}

#[test]
fn umask_applies_to_written_files_like_kmod() {
    use std::os::unix::fs::PermissionsExt;
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86());
    let mut runs = vec![(env!("CARGO_BIN_EXE_depmod-rs").to_string(), "ours")];
    if let Some(bin) = kmod34() {
        runs.push((bin.display().to_string(), "kmod34"));
    }
    let mut modes = Vec::new();
    for (bin, label) in runs {
        let out_root = tempfile::tempdir().unwrap();
        let out = sh_output(&format!(
            "umask 077; exec '{bin}' -b '{}' -C '{}' -o '{}/o' {KVER}",
            tree.root().display(),
            tree.conf().display(),
            out_root.path().display()
        ));
        assert_eq!(out.status.code(), Some(0), "{label}");
        let dir = out_root.path().join("o/lib/modules").join(KVER);
        let file_mode = std::fs::metadata(dir.join("modules.dep"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        modes.push((label, file_mode, dir_mode));
    }
    assert_eq!(modes[0].1, 0o600);
    assert_eq!(modes[0].2, 0o700);
    for (label, file_mode, dir_mode) in &modes[1..] {
        assert_eq!((*file_mode, *dir_mode), (modes[0].1, modes[0].2), "{label}");
    }
}

#[test]
fn quick_mode_skips_up_to_date_trees() {
    let tree = Tree::new();
    tree.module("kernel/a.ko", x86());
    let run = |extra: &[&str]| {
        ours()
            .arg("-b")
            .arg(tree.root())
            .arg("-C")
            .arg(tree.conf())
            .args(extra)
            .arg(KVER)
            .output()
            .unwrap()
    };
    // No modules.dep yet: kmod reports it and does a full run.
    let first = run(&["-A"]);
    assert_eq!(first.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&first.stderr).contains("could not fstatat("));
    let dep = tree.moddir().join("modules.dep");
    assert_eq!(std::fs::read(&dep).unwrap(), b"kernel/a.ko:\n");
    // Up to date: nothing is rewritten even if we remove an output.
    std::fs::remove_file(tree.moddir().join("modules.alias")).unwrap();
    assert_eq!(run(&["-A"]).status.code(), Some(0));
    assert!(!tree.moddir().join("modules.alias").exists());
    // A newer module forces a full run.
    let newer = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let file = std::fs::File::options()
        .write(true)
        .open(tree.moddir().join("kernel/a.ko"))
        .unwrap();
    file.set_modified(newer).unwrap();
    assert_eq!(run(&["-A"]).status.code(), Some(0));
    assert!(tree.moddir().join("modules.alias").exists());
}

#[test]
fn gzip_option_makes_ko_gz_modules() {
    let tree = Tree::new();
    tree.module("kernel/plain.ko", x86());
    let gz = sh_output(&format!(
        "printf '' | gzip -c > /dev/null && cp '{0}/kernel/plain.ko' '{0}/kernel/packed.ko' && gzip '{0}/kernel/packed.ko'",
        tree.moddir().display()
    ));
    assert!(gz.status.success());
    let default = run_ours(&tree, None, &[]);
    assert_eq!(default.files["modules.dep"], b"kernel/plain.ko:\n");
    let with_gzip = run_ours(&tree, None, &["--gzip"]);
    let dep = String::from_utf8(with_gzip.files["modules.dep"].clone()).unwrap();
    assert!(dep.contains("kernel/packed.ko.gz:\n"), "{dep}");
    assert_eq!(with_gzip.code, Some(0), "{}", with_gzip.stderr);
}

/// A small deterministic generator (xorshift) for random trees.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_tree(seed: u64, modules: usize, cyclic: bool) -> Tree {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let tree = Tree::new();
    let dirs = ["kernel/a", "kernel/b/c", "kernel/d", "updates", "extra"];
    let names: Vec<String> = (0..modules)
        .map(|i| {
            let dash = if rng.below(3) == 0 { "-" } else { "_" };
            format!("m{}{dash}{i}", rng.below(1000))
        })
        .collect();
    let mut order = String::new();
    for (i, name) in names.iter().enumerate() {
        let mut m = x86();
        // Exports: own symbol, sometimes a shared one.
        m = m.with_export(format!("sym_{i}"), (rng.below(2) == 0).then_some(i as u32));
        // A symbol exported by several modules (the last in module order owns it); only the
        // first five may export it and only later ones import it, so no cycle can form.
        if i < 5 && rng.below(2) == 0 {
            m = m.with_export("shared_symbol", None);
        }
        // Imports only from lower indices keep the graph acyclic.
        for _ in 0..rng.below(4) {
            if i > 0 {
                let target = rng.below(i as u64);
                m = m.with_import(format!("sym_{target}"), rng.below(6) == 0, None);
            }
        }
        if i >= 5 && rng.below(4) == 0 {
            m = m.with_import("shared_symbol", false, None);
        }
        if cyclic && rng.below(8) == 0 {
            let target = rng.below(modules as u64);
            m = m.with_import(format!("sym_{target}"), false, None);
        }
        if rng.below(3) == 0 {
            m = m.with_import("vmlinux_symbol", false, Some(7));
        }
        for a in 0..rng.below(4) {
            let alias = match rng.below(6) {
                0 => format!("pci:v{:08X}d*sv*", rng.below(1 << 16)),
                1 => format!("of:N*T*Cvendor,dev-{a}"),
                2 => format!("char-major-{}-{}", rng.below(300), rng.below(300)),
                3 => format!("devname:dev/{name}"),
                4 => format!("usb:v[0-9]*p{a}-x"),
                _ => format!("alias-{name}-{a}"),
            };
            m = m.with_modinfo("alias", alias);
        }
        if rng.below(5) == 0 {
            m = m.with_modinfo("softdep", format!("pre: {}", names[0]));
        }
        if rng.below(7) == 0 {
            m = m.with_modinfo("weakdep", "something");
        }
        let dir = dirs[rng.below(dirs.len() as u64) as usize];
        let rel = format!("{dir}/{name}.ko");
        tree.module(&rel, m);
        if rng.below(3) != 0 {
            order.push_str(&rel);
            order.push('\n');
        }
        if rng.below(10) == 0 {
            // A duplicate module elsewhere.
            let other = dirs[rng.below(dirs.len() as u64) as usize];
            tree.module(
                &format!("{other}/{name}.ko"),
                x86().with_modinfo("alias", format!("dup-{i}")),
            );
        }
    }
    // Duplicate order lines to exercise the first/last occurrence rule.
    let lines: Vec<String> = order.lines().map(String::from).collect();
    for _ in 0..3 {
        if !lines.is_empty() {
            order.push_str(&lines[rng.below(lines.len() as u64) as usize]);
            order.push('\n');
        }
    }
    tree.write("modules.order", order);
    tree.write(
        "modules.builtin",
        "kernel/fs/ext4/ext4.ko\nkernel/lib/crc-t10dif.ko\n",
    );
    tree.write(
        "modules.builtin.modinfo",
        b"ext4.alias=fs-ext4\0ext4.alias=ext3\0crc_t10dif.alias=crypto-crct10dif\0" as &[u8],
    );
    tree
}

#[test]
fn random_trees_match_kmod() {
    for seed in 1..=6 {
        let tree = random_tree(seed, 40 + seed as usize * 10, false);
        let result = assert_same_as_kmod(&tree, &[]);
        assert_eq!(result.code, Some(0), "seed {seed}: {}", result.stderr);
    }
}

/// Trees with cycles: where kmod 34 finishes (it may also hang or abort on an internal
/// assertion, spec §7.3), our report must be identical; ours must always finish with status 1.
#[test]
fn random_cyclic_trees_match_kmod_where_it_terminates() {
    let mut compared = 0;
    for seed in 1..=12 {
        let tree = random_tree(100 + seed, 30, true);
        let ours = run_ours(&tree, None, &[]);
        assert!(matches!(ours.code, Some(0) | Some(1)), "seed {seed}");
        let Some(bin) = kmod34() else { continue };
        let out_root = tempfile::tempdir().unwrap();
        let out = Command::new("timeout")
            .arg("5")
            .arg(&bin)
            .arg("-b")
            .arg(tree.root())
            .arg("-C")
            .arg(tree.conf())
            .arg("-o")
            .arg(out_root.path())
            .arg(KVER)
            .output()
            .unwrap();
        if !matches!(out.status.code(), Some(0) | Some(1)) {
            continue; // kmod hung (timeout) or aborted
        }
        let outdir = out_root.path().join("lib/modules").join(KVER);
        let theirs = collect(
            out,
            &outdir,
            &[(tree.root(), "ROOT"), (out_root.path(), "OUT")],
        );
        assert_eq!(ours.code, theirs.code, "seed {seed}");
        assert_eq!(ours.stderr, theirs.stderr, "seed {seed}");
        assert_eq!(ours.files, theirs.files, "seed {seed}");
        compared += 1;
    }
    eprintln!("compared {compared} cyclic trees with kmod 34");
}

#[test]
fn odd_file_names_and_types_match_kmod() {
    let tree = Tree::new();
    tree.module("kernel/.hidden.ko", x86().with_modinfo("alias", "hidden"));
    tree.module("kernel/a.b.ko", x86().with_export("dotted", None));
    tree.module(
        "kernel/uses-dotted.ko",
        x86().with_import("dotted", false, None),
    );
    tree.module("kernel/xz-mod.ko", x86().with_modinfo("alias", "xz-alias"));
    tree.module(
        "kernel/zst_mod.ko",
        x86().with_modinfo("alias", "zst-alias"),
    );
    let dir = tree.moddir();
    let packed = sh_output(&format!(
        "cd '{}/kernel' && xz xz-mod.ko && zstd -q --rm zst_mod.ko && mkfifo fifo.ko && \
         ln -s a.b.ko link.ko && mkdir -p real && ln -s real linked-dir && \
         cp uses-dotted.ko real/in-real.ko && ln -s /nonexistent dangling.txt",
        dir.display()
    ));
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    tree.write(
        "modules.order",
        "kernel/a.b.ko\nkernel/xz-mod.ko\nkernel/uses-dotted.ko\n",
    );
    let result = assert_same_as_kmod(&tree, &[]);
    assert!(
        result.stderr.contains("unsupported file type"),
        "{}",
        result.stderr
    );
}

#[test]
fn file_list_errors_match_kmod() {
    let tree = Tree::new();
    tree.module("kernel/mod-simple.ko", x86());
    let other = tree.root().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("mod_simple.ko"), x86().to_elf()).unwrap();
    let inside = tree.moddir().join("kernel/mod-simple.ko");
    let inside = inside.to_str().unwrap();
    let outside = other.join("mod_simple.ko");
    let outside = outside.to_str().unwrap();
    let missing = tree.root().join("missing.ko");
    let missing = missing.to_str().unwrap();
    let root = tree.root().to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["-b", root, KVER, inside, outside],
        &["-b", root, KVER, inside, inside],
        &["-b", root, KVER, missing],
    ];
    for args in cases {
        let ours34 = ours().args(args).output().unwrap();
        assert_eq!(ours34.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&ours34.stderr).contains("depmod: FATAL: "));
        if let Some(bin) = kmod34() {
            let theirs = Command::new(bin).args(args).output().unwrap();
            assert_eq!(ours34.status.code(), theirs.status.code(), "{args:?}");
            assert_eq!(ours34.stderr, theirs.stderr, "{args:?}");
        }
        if let Some(bin) = kmod30() {
            let ours30 = ours().args(["--compat", "30"]).args(args).output().unwrap();
            let theirs = Command::new(bin).args(args).output().unwrap();
            assert_eq!(ours30.status.code(), theirs.status.code(), "{args:?}");
            assert_eq!(ours30.stderr, theirs.stderr, "{args:?}");
        }
    }
}

#[test]
fn edge_inputs_match_kmod() {
    let tree = Tree::new();
    let long_alias = format!("long-{}", "a".repeat(5000));
    tree.module(
        "kernel/edge.ko",
        x86()
            .with_modinfo("alias", &long_alias)
            .with_modinfo("alias", "[unclosed")
            .with_modinfo("softdep", "pre:\tfoo  post: bar")
            .with_modinfo("alias", "char-major-1-2")
            .with_modinfo("alias", "devname:first")
            .with_modinfo("alias", "devname:second"),
    );
    tree.module(
        "kernel/other.ko",
        x86().with_modinfo("alias", "block-major-8-*"),
    );
    // A NUL inside a line, a blank line, and a line naming an unknown module.
    tree.write(
        "modules.order",
        b"kernel/other.ko\n\nkernel/no\0such.ko\nkernel/edge.ko\n" as &[u8],
    );
    let long_field = format!("big.alias={}\0", "b".repeat(5000));
    let mut modinfo = b"ext4.alias=fs-ext4\0noequals\0ext4.alias=lost\0".to_vec();
    modinfo.extend_from_slice(long_field.as_bytes());
    modinfo.extend_from_slice(b"m.alias=[x\0.alias=nomod\0m.\0m.alias=\0tail.alias=end");
    tree.write("modules.builtin.modinfo", modinfo);
    tree.write(
        "modules.builtin",
        "kernel/fs/noext\nkernel/fs/ext4.ko\nkernel/fs/ext4.ko\n1bad\nkernel/dir/\n",
    );
    std::fs::write(
        tree.conf().join("x.conf"),
        "search \\\nupdates \\\n built-in\n\t\nexclude\\ build2\n",
    )
    .unwrap();
    assert_same_as_kmod(&tree, &["-w"]);
    assert_same_as_kmod(&tree, &["-n"]);
}
