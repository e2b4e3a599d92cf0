//! Inputs on which kmod is undefined, fatal or does not terminate (spec §7.3, §9.2, §17), kept out
//! of the random trees and checked here one by one: against kmod where its behaviour is defined
//! and deterministic, and against the documented depmod-rs behaviour where it is not.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use testkit::synth::SynthModule;

use crate::support::{self, Compare, Invocation, Outcome, TempDir, Tool};

const KVER: &str = "4.4.4";

/// Writes `modules` (file name bytes, module) under `root/lib/modules/4.4.4/kernel/`.
fn write_modules(root: &Path, modules: &[(&[u8], SynthModule)]) {
    let dir = root.join("lib/modules").join(KVER).join("kernel");
    fs::create_dir_all(&dir).expect("create module dir");
    for (name, module) in modules {
        fs::write(dir.join(OsStr::from_bytes(name)), module.to_elf()).expect("write module");
    }
    fs::create_dir_all(root.join("etc/depmod.d")).expect("create config dir");
}

fn invocation(root: &Path, timeout_secs: u64) -> Invocation {
    Invocation {
        basedir: root.to_path_buf(),
        kver: KVER.into(),
        config: vec![root.join("etc/depmod.d")],
        timeout_secs: Some(timeout_secs),
        ..Invocation::default()
    }
}

fn module_exporting(export: &str, imports: &[&str]) -> SynthModule {
    let mut m = SynthModule::x86_64().with_export(export, None);
    for import in imports {
        m = m.with_import(import, false, None);
    }
    m
}

/// §7.3: a root examined first that lies downstream of one cycle and reaches another makes kmod
/// loop forever. depmod-rs must terminate, fail like a cycle does (exit 1, nothing written) and
/// report the cycles.
#[test]
fn cycle_report_hang_input_terminates() {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    let tmp = TempDir::new("hazard-cycle-hang");
    let root = tmp.path().join("root");
    // cya7 <-> cyb7, cya7 -> rr7, rr7 -> xa7, xa7 <-> xb7 (no modules.order: hash order puts
    // rr7 first among the roots).
    write_modules(
        &root,
        &[
            (b"cya7.ko", module_exporting("s_cya", &["s_cyb", "s_rr"])),
            (b"cyb7.ko", module_exporting("s_cyb", &["s_cya"])),
            (b"rr7.ko", module_exporting("s_rr", &["s_xa"])),
            (b"xa7.ko", module_exporting("s_xa", &["s_xb"])),
            (b"xb7.ko", module_exporting("s_xb", &["s_xa"])),
        ],
    );
    // The input really is the documented hang (otherwise this test checks nothing special).
    let kmod = support::run(Tool::Kmod34, &invocation(&root, 3));
    assert_eq!(
        kmod.status,
        None,
        "kmod 34 was expected to hang on this input but finished: {:?}\n{}",
        kmod.status,
        String::from_utf8_lossy(&kmod.stderr)
    );
    for tool in [Tool::Rs, Tool::Rs30] {
        let rs = support::run(tool, &invocation(&root, 30));
        let stderr = String::from_utf8_lossy(&rs.stderr);
        assert_eq!(rs.status, Some(1), "{}: {stderr}", tool.label());
        assert!(
            rs.files.is_empty(),
            "{} wrote {:?} despite the cycles",
            tool.label(),
            rs.files.keys()
        );
        assert!(
            stderr.contains("depmod: ERROR: Cycle detected: ")
                && stderr.contains("modules in dependency cycles!"),
            "{} did not report the cycles:\n{stderr}",
            tool.label()
        );
    }
}

fn non_ascii_tree(root: &Path, file_name: &[u8], alias: &[u8]) {
    let alias_module = SynthModule::x86_64()
        .with_modinfo("alias", alias)
        .with_modinfo("alias", "plain-alias");
    write_modules(
        root,
        &[
            (
                b"first.ko",
                SynthModule::x86_64().with_modinfo("alias", "first"),
            ),
            (file_name, alias_module),
            (
                b"last.ko",
                SynthModule::x86_64().with_modinfo("alias", "last"),
            ),
        ],
    );
}

fn compare_with_kmod34(root: &Path) -> (Outcome, Outcome) {
    let mut kmod = support::run(Tool::Kmod34, &invocation(root, 30));
    let mut rs = support::run(Tool::Rs, &invocation(root, 30));
    // kmod leaves the temporary file of the index it was writing; whether depmod-rs removes
    // its own is not part of the output contract, so those are not compared.
    for o in [&mut kmod, &mut rs] {
        o.files.retain(|name, _| !name.ends_with(".<temporary>"));
    }
    let diffs = support::differences(
        &kmod,
        &rs,
        Compare {
            file_set: false, // a FATAL leaves a partial set (and a temporary file)
            ..Compare::ALL
        },
    );
    support::assert_no_differences("non-ASCII input", &kmod, &rs, &diffs);
    (kmod, rs)
}

/// depmod-rs refuses non-ASCII index strings in every mode, kmod 30's undefined behaviour
/// included (compat.rs `non_ascii_is_fatal`): exit 1 with kmod 34's FATAL message.
fn assert_compat30_refuses(root: &Path, kmod34: &Outcome) {
    let rs30 = support::run(Tool::Rs30, &invocation(root, 30));
    assert_eq!(
        rs30.status,
        Some(1),
        "depmod-rs --compat 30 accepted non-ASCII input:\n{}",
        String::from_utf8_lossy(&rs30.stderr)
    );
    let fatal = |o: &Outcome| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.starts_with("depmod: FATAL: Module index: bad character"))
            .map(str::to_string)
    };
    assert!(fatal(kmod34).is_some(), "kmod 34 gave no FATAL");
    assert_eq!(fatal(&rs30), fatal(kmod34), "FATAL message differs");
}

/// §9.2: kmod 34 stops with a FATAL at the first non-ASCII index key or value; files published
/// before it stay. A non-ASCII alias fails in `modules.alias.bin`.
#[test]
fn non_ascii_alias_is_fatal_like_kmod34() {
    if !support::require("kmod34") {
        return;
    }
    let tmp = TempDir::new("hazard-non-ascii-alias");
    let root = tmp.path().join("root");
    non_ascii_tree(&root, b"middle.ko", b"caf\xc3\xa9-alias");
    let (kmod, _) = compare_with_kmod34(&root);
    assert_eq!(kmod.status, Some(1), "kmod 34 accepted a non-ASCII alias");
    assert_compat30_refuses(&root, &kmod);
}

/// §4.1, §9.2: a non-ASCII module file name orders modules by kmod 34's signed hash tail, and
/// `modules.dep` is published before the FATAL in `modules.dep.bin`.
#[test]
fn non_ascii_module_name_is_fatal_like_kmod34() {
    if !support::require("kmod34") {
        return;
    }
    let tmp = TempDir::new("hazard-non-ascii-name");
    let root = tmp.path().join("root");
    // A 3-byte name whose last byte is ≥ 0x80 takes the signed branch of the hash tail.
    non_ascii_tree(&root, b"ne\xe9.ko", b"ascii-alias");
    let (kmod, _) = compare_with_kmod34(&root);
    assert_eq!(
        kmod.status,
        Some(1),
        "kmod 34 accepted a non-ASCII module name"
    );
    assert_compat30_refuses(&root, &kmod);
}
