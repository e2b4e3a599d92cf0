//! `--cache FILE`: every run through the metadata cache — cold, warm, after a module changed,
//! after the cache file was damaged — must write exactly what a run without the cache writes
//! (exit status, stderr and all output files). The cache keeps the records of compressed
//! modules only, so the trees here are mostly `.ko.xz`. A run whose inputs are all unchanged
//! keeps the index files it finds (the run memo): the last tests check when it may and when
//! it must not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use testkit::synth::SynthModule;

const KVER: &str = "5.5.5";

struct Tree {
    root: TempDir,
}

/// Exit status, stderr and the output files of one run.
type Outcome = (Option<i32>, String, BTreeMap<String, Vec<u8>>);

impl Tree {
    fn new() -> Self {
        let tree = Tree {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(tree.moddir()).unwrap();
        std::fs::create_dir_all(tree.root().join("conf")).unwrap();
        tree
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn moddir(&self) -> PathBuf {
        self.root().join("lib/modules").join(KVER)
    }

    /// Writes `module` at `rel`, xz-compressed (with CRC32 checks, as Debian's) when the
    /// name ends in `.xz`.
    fn module(&self, rel: &str, module: &SynthModule) {
        let path = self.moddir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let elf = module.to_elf();
        let bytes = match rel.ends_with(".xz") {
            true => xz(&elf),
            false => elf,
        };
        std::fs::write(path, bytes).unwrap();
    }

    fn cache(&self) -> PathBuf {
        self.root().join("state/depmod.cache")
    }

    /// Runs depmod-rs with `-o` into a fresh directory, with or without the cache.
    fn run(&self, cached: bool) -> Outcome {
        let out = tempfile::tempdir().unwrap();
        self.run_into(out.path(), cached)
    }

    /// A depmod-rs command on the tree with `-o OUT`, with or without the cache; the caller
    /// adds any other option and the kernel version.
    fn command(&self, out: &Path, cached: bool) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_depmod-rs"));
        cmd.env("DEPMOD_RS_CONFIG", "/dev/null");
        cmd.arg("-b")
            .arg(self.root())
            .arg("-C")
            .arg(self.root().join("conf"));
        cmd.arg("-o").arg(out);
        if cached {
            cmd.arg("--cache").arg(self.cache());
        }
        cmd
    }

    /// Runs depmod-rs with `-o OUT`, with or without the cache.
    fn run_into(&self, out: &Path, cached: bool) -> Outcome {
        let result = self.command(out, cached).arg(KVER).output().unwrap();
        (
            result.status.code(),
            String::from_utf8_lossy(&result.stderr).into_owned(),
            output_files(out),
        )
    }

    /// Runs depmod-rs with the cache into `out` and reports whether it took the last walk's
    /// outcome again instead of walking (from its stage timings); the files must be those of
    /// a run without the cache.
    fn run_kept(&self, out: &Path, what: &str) -> bool {
        let result = self
            .command(out, true)
            .arg(KVER)
            .env("DEPMOD_RS_TIMINGS", "1")
            .output()
            .unwrap();
        assert_eq!(result.status.code(), Some(0), "{what}");
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(
            stderr.lines().all(|line| line.starts_with("timing: ")),
            "{what}: {stderr}"
        );
        let (_, _, plain) = self.run(false);
        assert_eq!(output_files(out), plain, "{what}");
        stderr.contains("last walk taken again")
    }

    /// Asserts that a cached run gives what an uncached run gives; returns the outcome.
    fn check(&self, what: &str) -> Outcome {
        let plain = self.run(false);
        let cached = self.run(true);
        assert_eq!(cached, plain, "{what}");
        assert_eq!(plain.0, Some(0), "{what}: {}", plain.1);
        plain
    }
}

/// Every file in the module directory of the output root `out`, by name.
fn output_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(out.join("lib/modules").join(KVER)).unwrap() {
        let entry = entry.unwrap();
        files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    files
}

fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let stream =
        liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32).unwrap();
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn provider(n: usize, alias: &str) -> SynthModule {
    SynthModule::x86_64()
        .with_modinfo("alias", alias)
        .with_modinfo("softdep", format!("pre: user{n}"))
        .with_export(format!("provide_{n}"), Some(0x1000 + n as u32))
}

fn user(n: usize) -> SynthModule {
    SynthModule::x86_64()
        .with_modinfo("alias", format!("usb:v{n:04X}p*"))
        .with_import(format!("provide_{n}"), false, Some(0x1000 + n as u32))
        .with_import("printk", true, None)
}

/// Compressed modules (the ones the cache keeps), one uncompressed user, and broken files
/// of both kinds.
fn build_tree() -> Tree {
    let tree = Tree::new();
    for n in 0..8 {
        tree.module(
            &format!("kernel/p/provider{n}.ko.xz"),
            &provider(n, &format!("pci:v{n:08X}d*")),
        );
        let user_name = match n {
            0 => "kernel/u/user0.ko".to_string(),
            _ => format!("kernel/u/user{n}.ko.xz"),
        };
        tree.module(&user_name, &user(n));
    }
    tree.module("kernel/bad/broken.ko", &SynthModule::x86_64());
    std::fs::write(
        tree.moddir().join("kernel/bad/corrupt.ko.xz"),
        &xz(&SynthModule::x86_64().to_elf())[..40],
    )
    .unwrap();
    std::fs::write(
        tree.moddir().join("kernel/bad/garbage.ko"),
        b"not an ELF file",
    )
    .unwrap();
    tree
}

/// Records are stored only for files whose ctime is older than the racy-file margin.
fn let_files_settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

#[test]
fn cached_runs_match_uncached_runs() {
    let tree = build_tree();
    let before: Vec<_> = walk(tree.root());
    let_files_settle();

    // Cold: creates the cache.
    tree.check("cold");
    let cache = std::fs::read(tree.cache()).expect("cache written");
    assert!(cache.len() > 100);
    let holds = |name: &[u8]| cache.windows(name.len()).any(|w| w == name);
    assert!(
        holds(b"pci:v00000000d*"),
        "compressed modules' records are kept"
    );
    assert!(holds(b"user0.ko"), "uncompressed modules have entries");
    assert!(
        !holds(b"usb:v0000p*"),
        "but no records: they are read again when needed"
    );
    // Only the cache (and its directory) is new in the tree; no temporary file is left.
    let mut after = walk(tree.root());
    after.retain(|p| !before.contains(p));
    assert_eq!(
        after,
        vec![PathBuf::from("state"), PathBuf::from("state/depmod.cache")]
    );

    // Warm: nothing changed, so the cache is not rewritten.
    tree.check("warm");
    assert_eq!(std::fs::read(tree.cache()).unwrap(), cache);

    // A module rewritten with other contents (new alias, same size).
    tree.module("kernel/p/provider3.ko.xz", &provider(3, "pci:v0000000Fd*"));
    tree.check("module rewritten");
    // A module replaced by one with a different export set.
    tree.module("kernel/p/provider5.ko.xz", &provider(9, "pci:v00000005d*"));
    tree.check("exports changed");
    // Rewritten, then its old modification time put back: ctime still tells.
    let path = tree.moddir().join("kernel/p/provider1.ko.xz");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    tree.module("kernel/p/provider1.ko.xz", &provider(1, "pci:v000000AAd*"));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let outcome = tree.check("mtime restored");
    assert!(String::from_utf8_lossy(&outcome.2["modules.alias"]).contains("pci:v000000AAd*"));
    // A module removed, one added.
    std::fs::remove_file(tree.moddir().join("kernel/u/user7.ko.xz")).unwrap();
    tree.module("kernel/u/user9.ko.xz", &user(9));
    tree.check("module removed and added");
    let_files_settle();
    tree.check("settled again");
}

#[test]
fn damaged_caches_are_ignored_and_rebuilt() {
    let tree = build_tree();
    let_files_settle();
    tree.check("cold");
    let good = std::fs::read(tree.cache()).unwrap();
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("trailer cut", good[..good.len() - 1].to_vec()),
        ("byte flipped", {
            let mut b = good.clone();
            b[good.len() / 3] ^= 0xff;
            b
        }),
        ("wrong format version", {
            let mut b = good.clone();
            b[8] = b[8].wrapping_add(1);
            b
        }),
        ("not a cache", b"DMRSCACH but nothing else".to_vec()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(tree.cache(), &bytes).unwrap();
        tree.check(what);
        assert_eq!(
            std::fs::read(tree.cache()).unwrap(),
            good,
            "{what}: rebuilt"
        );
    }
    // A cache written under other reading rules (kmod 30) is not used for kmod 34 runs.
    let out = tempfile::tempdir().unwrap();
    let status = tree
        .command(out.path(), true)
        .args(["--compat", "30"])
        .arg(KVER)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    assert_ne!(std::fs::read(tree.cache()).unwrap(), good);
    tree.check("after a kmod 30 run");
    assert_eq!(std::fs::read(tree.cache()).unwrap(), good);
}

#[test]
fn no_cache_without_the_option() {
    let tree = build_tree();
    let before = walk(tree.root());
    tree.run(false);
    assert_eq!(walk(tree.root()), before);
}

/// Every path under `root`, relative and sorted.
fn walk(root: &Path) -> Vec<PathBuf> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                visit(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(root, root, &mut out);
    out.sort();
    out
}

/// The same tree without unreadable modules, and with the files kmod 34 warns about when
/// they are missing: its runs print nothing, so they may keep a memo.
fn clean_tree() -> Tree {
    let tree = Tree::new();
    for name in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        std::fs::write(tree.moddir().join(name), "").unwrap();
    }
    for n in 0..6 {
        tree.module(
            &format!("kernel/p/provider{n}.ko.xz"),
            &provider(n, &format!("pci:v{n:08X}d*")),
        );
        tree.module(&format!("kernel/u/user{n}.ko"), &user(n));
    }
    tree
}

/// The inode of an output file, which tells a kept file from a rewritten one.
fn inode(out: &Path, name: &str) -> u64 {
    file_inode(&out.join("lib/modules").join(KVER).join(name))
}

/// The index file's inode and birth time: a rewritten file can be given the inode number
/// the file it replaced had just freed, but not also that file's birth time (where the
/// filesystem records one; a run may change a kept file's change time).
fn identity(out: &Path, name: &str) -> (u64, Option<std::time::SystemTime>) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(out.join("lib/modules").join(KVER).join(name)).unwrap();
    (meta.ino(), meta.created().ok())
}

fn file_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn unchanged_inputs_keep_the_index_files() {
    let tree = clean_tree();
    let out = tree.root().join("out");
    let_files_settle();
    let reference = tree.run(false);
    assert_eq!(reference.1, "", "a silent run");
    let cold = tree.run_into(&out, true);
    assert_eq!(cold, reference, "cold");
    let written = inode(&out, "modules.dep");

    // Nothing changed: the files are kept, with a fresh modification time.
    let before = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(tree.run_into(&out, true), reference, "warm");
    assert_eq!(inode(&out, "modules.dep"), written, "kept");
    let dep = out.join("lib/modules").join(KVER).join("modules.dep");
    let touched = std::fs::metadata(&dep).unwrap().modified().unwrap();
    assert!(touched >= before, "modification time set by the kept run");

    // A module replaced by a copy of itself (a reinstalled package): still kept.
    let path = tree.moddir().join("kernel/u/user2.ko");
    let copy = tree.moddir().join("kernel/u/user2.ko.new");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::rename(&copy, &path).unwrap();
    let compressed = tree.moddir().join("kernel/p/provider2.ko.xz");
    std::fs::copy(&compressed, &copy).unwrap();
    std::fs::rename(&copy, &compressed).unwrap();
    assert_eq!(tree.run_into(&out, true), reference, "same contents");
    assert_eq!(
        inode(&out, "modules.dep"),
        written,
        "kept after a reinstall"
    );
    let_files_settle();
    assert_eq!(tree.run_into(&out, true), reference, "settled again");
    assert_eq!(inode(&out, "modules.dep"), written);

    // An uncompressed module rewritten in place (same inode, same directory listing) with
    // one more alias: only the alias files are rewritten, equal to an uncached run's.
    tree.module(
        "kernel/u/user3.ko",
        &user(3).with_modinfo("alias", "usb:vFFFFp*"),
    );
    let expected = tree.run(false);
    let alias_index = identity(&out, "modules.alias.bin");
    let cache_file = file_inode(&tree.cache());
    assert_eq!(tree.run_into(&out, true), expected, "alias added");
    assert!(String::from_utf8_lossy(&expected.2["modules.alias"]).contains("usb:vFFFFp*"));
    assert_eq!(
        inode(&out, "modules.dep"),
        written,
        "alias added: modules.dep kept"
    );
    assert_ne!(
        identity(&out, "modules.alias.bin"),
        alias_index,
        "alias added: modules.alias.bin rewritten"
    );
    // Only the memo changed in the cache: it was written in place, and is whole (the next
    // run keeps every file).
    assert_eq!(
        file_inode(&tree.cache()),
        cache_file,
        "memo written in place"
    );
    let alias_index = inode(&out, "modules.alias.bin");
    assert_eq!(tree.run_into(&out, true), expected, "alias added, again");
    assert_eq!(inode(&out, "modules.alias.bin"), alias_index, "kept");
    // And back: the alias removed.
    tree.module("kernel/u/user3.ko", &user(3));
    let expected = tree.run(false);
    assert_eq!(tree.run_into(&out, true), expected, "alias removed");
    assert_eq!(
        inode(&out, "modules.dep"),
        written,
        "alias removed: modules.dep kept"
    );

    // Every change below must be seen: the files are rebuilt, equal to an uncached run.
    let mut last = identity(&out, "modules.dep");
    let mut changed = |what: &str, tree: &Tree| {
        let expected = tree.run(false);
        let outcome = tree.run_into(&out, true);
        assert_eq!(outcome, expected, "{what}");
        let now = identity(&out, "modules.dep");
        assert_ne!(now, last, "{what}: rebuilt");
        last = now;
        expected
    };

    // A module whose imports now give it another dependency.
    tree.module(
        "kernel/u/user3.ko",
        &user(3).with_import("provide_1", false, Some(0x1001)),
    );
    changed("dependencies changed", &tree);
    // A compressed module with other exports.
    tree.module("kernel/p/provider4.ko.xz", &provider(7, "pci:v00000004d*"));
    changed("compressed module's exports", &tree);
    // A module added to an existing directory, one removed from another.
    tree.module("kernel/u/user9.ko", &user(9));
    changed("module added", &tree);
    std::fs::remove_file(tree.moddir().join("kernel/p/provider5.ko.xz")).unwrap();
    changed("module removed", &tree);
    // modules.builtin appears, then changes.
    std::fs::write(tree.moddir().join("modules.builtin"), "kernel/x/a.ko\n").unwrap();
    changed("modules.builtin added", &tree);
    std::fs::write(tree.moddir().join("modules.builtin"), "kernel/x/b.ko\n").unwrap();
    changed("modules.builtin changed", &tree);
    // modules.order reorders the modules.
    std::fs::write(
        tree.moddir().join("modules.order"),
        "kernel/u/user1.ko\nkernel/p/provider0.ko\n",
    )
    .unwrap();
    changed("modules.order", &tree);
    // A configuration that excludes a directory.
    std::fs::write(tree.root().join("conf/x.conf"), "exclude u\n").unwrap();
    changed("configuration", &tree);
    std::fs::remove_file(tree.root().join("conf/x.conf")).unwrap();
    changed("configuration removed", &tree);

    // The index files themselves damaged or removed.
    let alias = out.join("lib/modules").join(KVER).join("modules.alias");
    let mut bytes = std::fs::read(&alias).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&alias, &bytes).unwrap();
    changed("modules.alias damaged", &tree);
    std::fs::remove_file(
        out.join("lib/modules")
            .join(KVER)
            .join("modules.symbols.bin"),
    )
    .unwrap();
    changed("modules.symbols.bin removed", &tree);

    // A run with other options writes other files.
    let status = tree
        .command(&out, true)
        .args(["--compat", "30"])
        .arg(KVER)
        .status()
        .unwrap();
    assert!(status.success());
    changed("after a --compat 30 run", &tree);
}

#[test]
fn runs_with_unreadable_modules_are_never_kept() {
    let tree = build_tree();
    let out = tree.root().join("out");
    let_files_settle();
    let reference = tree.run(false);
    assert!(reference.1.contains("ERROR"), "{}", reference.1);
    let mut inodes = Vec::new();
    for _ in 0..3 {
        assert_eq!(tree.run_into(&out, true), reference);
        inodes.push(inode(&out, "modules.dep"));
    }
    inodes.dedup();
    assert_eq!(inodes.len(), 3, "every run rewrote the files: {inodes:?}");
}

#[test]
fn the_last_walk_is_taken_again_only_while_it_holds() {
    let tree = clean_tree();
    let order: Vec<String> = (0..6)
        .flat_map(|n| {
            [
                format!("kernel/u/user{n}.ko"),
                format!("kernel/p/provider{n}.ko"),
            ]
        })
        .collect();
    let write_order = |lines: &[String]| {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        std::fs::write(tree.moddir().join("modules.order"), text).unwrap();
    };
    write_order(&order);
    let out = tree.root().join("out");
    let_files_settle();
    assert!(!tree.run_kept(&out, "cold"), "a cold run walks");
    assert!(tree.run_kept(&out, "warm"), "nothing changed");

    // Replaced through a rename: the directory changed but lists the same names.
    let tmp = tree.moddir().join("kernel/p/.provider2.tmp");
    std::fs::write(&tmp, xz(&provider(2, "pci:v000000EEd*").to_elf())).unwrap();
    std::fs::rename(&tmp, tree.moddir().join("kernel/p/provider2.ko.xz")).unwrap();
    assert!(tree.run_kept(&out, "replaced"), "same names, same walk");
    assert!(
        tree.run_kept(&out, "replaced, again"),
        "still the same walk"
    );

    // Every other change of what the walk finds, or of the order, means walking again.
    let mut reversed = order.clone();
    reversed.reverse();
    write_order(&reversed);
    assert!(!tree.run_kept(&out, "modules.order changed"));
    assert!(tree.run_kept(&out, "modules.order kept"));
    tree.module("kernel/p/provider6.ko.xz", &provider(6, "pci:v00000006d*"));
    assert!(!tree.run_kept(&out, "module added"));
    std::fs::remove_file(tree.moddir().join("kernel/u/user1.ko")).unwrap();
    assert!(!tree.run_kept(&out, "module removed"));
    tree.module("kernel/new/user7.ko", &user(7));
    assert!(!tree.run_kept(&out, "directory added"));
    std::fs::rename(
        tree.moddir().join("kernel/u/user2.ko"),
        tree.moddir().join("kernel/new/user2.ko"),
    )
    .unwrap();
    assert!(!tree.run_kept(&out, "module moved"));
    std::fs::rename(
        tree.moddir().join("kernel/u/user3.ko"),
        tree.moddir().join("kernel/u/user3.ko.tmp"),
    )
    .unwrap();
    assert!(!tree.run_kept(&out, "module renamed away"));
    assert!(tree.run_kept(&out, "after the changes, nothing changed"));
    std::fs::write(tree.root().join("conf/extra.conf"), "exclude p\n").unwrap();
    assert!(!tree.run_kept(&out, "configuration changed"));
    let_files_settle();
    assert!(tree.run_kept(&out, "settled"));
}

#[test]
fn the_last_walk_covers_external_directories() {
    let tree = clean_tree();
    let external = tree.root().join("external");
    let write = |rel: &str, module: &SynthModule| {
        let path = external.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, module.to_elf()).unwrap();
    };
    write("sub/extra1.ko", &user(1).with_modinfo("alias", "usb:vE1p*"));
    std::fs::write(
        tree.root().join("conf/external.conf"),
        format!(
            "external * {}\nsearch external built-in\n",
            external.display()
        ),
    )
    .unwrap();
    let out = tree.root().join("out");
    let_files_settle();
    assert!(!tree.run_kept(&out, "cold"));
    assert!(tree.run_kept(&out, "warm"));
    // Rewritten in place: the directory is unchanged, the module is read again.
    write("sub/extra1.ko", &user(1).with_modinfo("alias", "usb:vE2p*"));
    assert!(tree.run_kept(&out, "external module rewritten"));
    write("sub/extra2.ko", &user(2));
    assert!(!tree.run_kept(&out, "external module added"));
    assert!(tree.run_kept(&out, "nothing changed since"));
    std::fs::remove_dir_all(external.join("sub")).unwrap();
    assert!(!tree.run_kept(&out, "external directory removed"));
}

#[test]
fn kept_runs_print_what_the_run_they_keep_printed() {
    // Without modules.builtin, kmod 34 warns twice; a run that keeps the files warns alike.
    let tree = clean_tree();
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        std::fs::remove_file(tree.moddir().join(name)).unwrap();
    }
    let out = tree.root().join("out");
    let_files_settle();
    let reference = tree.run(false);
    assert!(reference.1.contains("WARNING"), "{}", reference.1);
    assert_eq!(tree.run_into(&out, true), reference, "cold");
    let written = identity(&out, "modules.dep");
    assert_eq!(tree.run_into(&out, true), reference, "warm");
    assert_eq!(identity(&out, "modules.dep"), written, "kept");
    // Messages are not taken over by an alias update: a run with messages rebuilds.
    tree.module(
        "kernel/u/user3.ko",
        &user(3).with_modinfo("alias", "usb:vFFFFp*"),
    );
    let expected = tree.run(false);
    assert_eq!(tree.run_into(&out, true), expected, "alias added");
    assert_ne!(identity(&out, "modules.dep"), written, "rebuilt");
    let written = inode(&out, "modules.dep");
    assert_eq!(tree.run_into(&out, true), expected, "alias added, again");
    assert_eq!(inode(&out, "modules.dep"), written, "kept again");
    // The messages change with the inputs: modules.builtin back, one warning less.
    std::fs::write(tree.moddir().join("modules.builtin"), "").unwrap();
    let expected = tree.run(false);
    assert_ne!(expected.1, reference.1);
    assert_eq!(tree.run_into(&out, true), expected, "modules.builtin back");
    assert_eq!(
        tree.run_into(&out, true),
        expected,
        "modules.builtin back, again"
    );
}
