//! `modindex diff`, `verify DIR` and `graph` on trees indexed by Debian's real kmod.
//!
//! kmod 34.2 (reference cache) and kmod 30 (`/usr/sbin/depmod`) write the indexes; the tools
//! must read them as the same content (diff), as current (verify) and as the graph that
//! modules.dep describes. Tests that need a kmod binary fail when it is absent, unless
//! `DEPMOD_RS_SKIP_REAL=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::synth::SynthModule;

const KVER: &str = "5.10.0-test";

fn modindex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modindex"))
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

fn require(found: Option<PathBuf>, what: &str) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            std::env::var_os("DEPMOD_RS_SKIP_REAL").is_some_and(|v| v == "1"),
            "{what} is required but missing (run scripts/fetch-references.sh, or set DEPMOD_RS_SKIP_REAL=1 to skip)"
        );
        eprintln!("SKIPPED (DEPMOD_RS_SKIP_REAL=1): {what} not available");
    }
    found
}

/// A small tree with symbol dependencies, aliases, builtin files and an empty config dir.
fn small_tree(root: &Path) -> PathBuf {
    let dir = root.join("lib/modules").join(KVER);
    let put = |rel: &str, module: SynthModule| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, module.to_elf()).unwrap();
    };
    put(
        "kernel/base.ko",
        SynthModule::x86_64()
            .with_export("base_fn", Some(1))
            .with_export("base_other", Some(2)),
    );
    put(
        "kernel/mid.ko",
        SynthModule::x86_64()
            .with_export("mid_fn", Some(3))
            .with_import("base_fn", false, Some(1))
            .with_modinfo("alias", "pci:v00001234d*sv*sd*bc*sc*i*"),
    );
    put(
        "kernel/top.ko",
        SynthModule::x86_64()
            .with_import("mid_fn", false, Some(3))
            .with_import("base_other", false, Some(2))
            .with_modinfo("alias", "usb:v1234p*d*dc*dsc*dp*ic*isc*ip*in*")
            .with_modinfo("alias", "devname:topdev")
            .with_modinfo("alias", "char-major-99-1"),
    );
    put(
        "kernel/alone.ko",
        SynthModule::x86_64().with_modinfo("alias", "fs-alone"),
    );
    std::fs::write(dir.join("modules.builtin"), "kernel/x/builtin_one.ko\n").unwrap();
    std::fs::write(
        dir.join("modules.builtin.modinfo"),
        b"builtin_one.alias=b-one\0".as_slice(),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf")).unwrap();
    dir
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Index files kmod 30 and kmod 34 wrote for the same tree.
fn kmod30_and_kmod34(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let k30 = require(kmod30(), "kmod 30")?;
    let k34 = require(kmod34(), "kmod 34")?;
    let dir = small_tree(root);
    let out34 = root.join("out34");
    let mut cmd = Command::new(k34);
    cmd.arg("-C")
        .arg(root.join("conf"))
        .arg("-b")
        .arg(root)
        .arg("-o")
        .arg(&out34)
        .arg(KVER);
    assert!(run(cmd).status.success());
    let mut cmd = Command::new(k30);
    cmd.arg("-C")
        .arg(root.join("conf"))
        .arg("-b")
        .arg(root)
        .arg(KVER);
    assert!(run(cmd).status.success());
    Some((dir, out34.join("lib/modules").join(KVER)))
}

const BIN_FILES: [&str; 5] = [
    "modules.dep.bin",
    "modules.alias.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

#[test]
fn diff_sees_kmod30_and_kmod34_indexes_as_equal() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir30, dir34)) = kmod30_and_kmod34(tmp.path()) else {
        return;
    };
    for name in BIN_FILES {
        let a = std::fs::read(dir30.join(name)).unwrap();
        let b = std::fs::read(dir34.join(name)).unwrap();
        assert_ne!(a, b, "{name}: the layouts should differ");
        let mut cmd = modindex();
        cmd.arg("diff").arg(dir30.join(name)).arg(dir34.join(name));
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    // Whole directories: every file the same but kmod 30's missing modules.weakdep.
    let mut cmd = modindex();
    cmd.arg("diff").arg(&dir30).arg(&dir34);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("modules.weakdep: only in {}\n", dir34.display())
    );
}

#[test]
fn diff_reports_a_changed_index() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir30, dir34)) = kmod30_and_kmod34(tmp.path()) else {
        return;
    };
    // kmod 34 indexes a tree where one alias changed.
    let changed = tmp.path().join("changed");
    small_tree(&changed);
    let moddir = changed.join("lib/modules").join(KVER);
    std::fs::write(
        moddir.join("kernel/mid.ko"),
        SynthModule::x86_64()
            .with_export("mid_fn", Some(3))
            .with_import("base_fn", false, Some(1))
            .with_modinfo("alias", "pci:v00005678d*sv*sd*bc*sc*i*")
            .to_elf(),
    )
    .unwrap();
    let mut cmd = Command::new(kmod34().unwrap());
    cmd.arg("-C")
        .arg(changed.join("conf"))
        .arg("-b")
        .arg(&changed)
        .arg(KVER);
    assert!(run(cmd).status.success());
    let mut cmd = modindex();
    cmd.arg("diff")
        .arg(dir30.join("modules.alias.bin"))
        .arg(moddir.join("modules.alias.bin"));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("-pci:v00001234d*sv*sd*bc*sc*i*\t"), "{text}");
    assert!(text.contains("+pci:v00005678d*sv*sd*bc*sc*i*\t"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let mut cmd = modindex();
    cmd.arg("diff")
        .arg("-q")
        .arg(dir34.join("modules.alias.bin"))
        .arg(moddir.join("modules.alias.bin"));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    // A file that is no index is an error.
    let mut cmd = modindex();
    cmd.arg("diff")
        .arg(dir34.join("modules.dep"))
        .arg(dir34.join("modules.dep.bin"));
    assert_eq!(run(cmd).status.code(), Some(2));
}

#[test]
fn verify_accepts_kmods_own_indexes_and_lists_stale_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir30, _)) = kmod30_and_kmod34(tmp.path()) else {
        return;
    };
    let conf = tmp.path().join("conf");
    let verify = |dir: &Path, compat: &str| {
        let mut cmd = modindex();
        cmd.arg("verify")
            .arg("--compat")
            .arg(compat)
            .arg("-C")
            .arg(&conf)
            .arg(dir);
        run(cmd)
    };
    // kmod 30 wrote in place: current for --compat 30, not for 34 (layout and weakdep).
    assert_eq!(verify(&dir30, "30").status.code(), Some(0));
    let out = verify(&dir30, "34");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("modules.weakdep: missing"), "{text}");
    assert!(
        text.contains("modules.dep.bin: differs: same entries"),
        "{text}"
    );
    // kmod 34 in place: current; -b ROOT KVER names the same directory.
    let mut cmd = Command::new(kmod34().unwrap());
    cmd.arg("-C").arg(&conf).arg("-b").arg(tmp.path()).arg(KVER);
    assert!(run(cmd).status.success());
    assert_eq!(verify(&dir30, "34").status.code(), Some(0));
    let mut cmd = modindex();
    cmd.arg("verify")
        .arg("-C")
        .arg(&conf)
        .arg("-b")
        .arg(tmp.path())
        .arg(KVER);
    assert_eq!(run(cmd).status.code(), Some(0));
    // A new module makes modules.dep and the others stale.
    std::fs::write(
        dir30.join("kernel/new.ko"),
        SynthModule::x86_64()
            .with_modinfo("alias", "new-thing")
            .to_elf(),
    )
    .unwrap();
    let out = verify(&dir30, "34");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("modules.dep: differs"), "{text}");
    assert!(
        text.contains("modules.alias.bin: differs: 1 entries"),
        "{text}"
    );
    assert!(!text.contains("modules.builtin.bin"), "{text}");
    // Not a module directory at all.
    let mut cmd = modindex();
    cmd.arg("verify").arg(tmp.path().join("nonexistent"));
    assert_eq!(run(cmd).status.code(), Some(2));
}

#[test]
fn graph_edges_follow_symbols() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir30, _)) = kmod30_and_kmod34(tmp.path()) else {
        return;
    };
    let mut cmd = modindex();
    cmd.args(["graph", "--format", "json", "--module", "top"])
        .arg(&dir30);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains(r#"{"from": "top", "to": "mid", "symbols": ["mid_fn"], "inferred": false}"#),
        "{json}"
    );
    assert!(
        json.contains(
            r#"{"from": "top", "to": "base", "symbols": ["base_other"], "inferred": false}"#
        ),
        "{json}"
    );
    assert!(
        json.contains(
            r#"{"from": "mid", "to": "base", "symbols": ["base_fn"], "inferred": false}"#
        ),
        "{json}"
    );
    assert!(!json.contains("alone"), "{json}");
    // Without the module files: only what modules.dep implies.
    let mut cmd = modindex();
    cmd.args(["graph", "--no-symbols", "--module", "top"])
        .arg(dir30.join("modules.dep"));
    let dot = String::from_utf8(run(cmd).stdout).unwrap();
    assert!(dot.contains("\"top\" -> \"mid\" [style=dashed];"), "{dot}");
    assert!(dot.contains("\"mid\" -> \"base\" [style=dashed];"), "{dot}");
    assert!(!dot.contains("\"top\" -> \"base\""), "{dot}");
}
