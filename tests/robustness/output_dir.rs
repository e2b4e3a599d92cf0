//! The output directory fights back: read-only, full, symlinks planted under the names depmod
//! writes, a directory in the way, odd umasks. Real file systems (tmpfs mounts) stand in for
//! the faults, so the same kernel errors reach depmod-rs and kmod alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{assert_same, read_outputs, temporaries, x86, Program, RunResult, Tree, KVER};

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// Mount a tmpfs of `size` bytes, or `None` (with a note) where mounting is not allowed.
    fn tmpfs(size: usize) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Mount { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Fill the file system, then free `free` bytes again, so that only that much is left.
    fn fill_leaving(&self, free: u64) {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", filler.display()))
            .args(["bs=4096", "status=none"])
            .status();
        let len = std::fs::metadata(&filler).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap();
        file.set_len(len.saturating_sub(free)).unwrap();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

/// Copy the tree's root into `dest`.
fn copy_tree(tree: &Tree, dest: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", tree.root().display()))
        .arg(dest)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Run `program` in place on the tree at `root`.
fn run_at(program: Program, root: &Path, conf: &Path) -> Option<RunResult> {
    let mut cmd = program.command()?;
    cmd.arg("-b").arg(root).arg("-C").arg(conf).arg(KVER);
    let out = cmd.output().unwrap();
    let moddir = root.join("lib/modules").join(KVER);
    Some(crate::harness::collect(out, &moddir, &[(root, "ROOT")]))
}

/// A tree big enough that its indexes do not fit in a few pages.
fn bigger_tree() -> Tree {
    let tree = Tree::new();
    for i in 0..40 {
        let mut module = x86().with_export(format!("sym_{i}"), None);
        for a in 0..40 {
            module = module.with_modinfo("alias", format!("pci:v{i:08X}d{a:08X}sv*sd*bc*sc*i*"));
        }
        tree.module(&format!("kernel/drivers/m{i}.ko"), module);
    }
    tree
}

/// The programs to compare: ours with each kmod that is available.
fn pairs() -> Vec<(Program, Program)> {
    let mut pairs = vec![
        (Program::Ours, Program::Kmod34),
        (Program::Ours30, Program::Kmod30),
    ];
    pairs.retain(|(_, kmod)| kmod.command().is_some());
    pairs
}

#[test]
fn read_only_output_directory_matches_kmod() {
    let tree = bigger_tree();
    let mut results = Vec::new();
    for program in [
        Program::Ours,
        Program::Kmod34,
        Program::Ours30,
        Program::Kmod30,
    ] {
        if program.command().is_none() {
            continue;
        }
        let Some(mount) = Mount::tmpfs(8 << 20) else {
            return;
        };
        copy_tree(&tree, mount.path());
        mount.remount_read_only();
        let result = run_at(program, mount.path(), &tree.conf()).unwrap();
        assert_ne!(result.code, Some(101), "{}", result.stderr);
        assert!(result.files.is_empty(), "nothing can be written");
        results.push((program, result));
    }
    let ours = &results[0].1;
    assert!(
        ours.stderr.contains("Read-only file system"),
        "{}",
        ours.stderr
    );
    for (ours_program, kmod) in pairs() {
        let find = |p| &results.iter().find(|(q, _)| *q == p).unwrap().1;
        assert_same(find(ours_program), find(kmod), kmod);
    }
}

/// Every output file: its bytes after a complete run of `program` on `tree`.
fn complete_outputs(program: Program, tree: &Tree) -> BTreeMap<String, Vec<u8>> {
    crate::harness::run_in_copy(program, tree, &[])
        .unwrap()
        .files
}

#[test]
fn full_output_directory_keeps_old_files_and_matches_kmod() {
    let old_tree = Tree::new();
    let new_tree = bigger_tree();
    for (ours_program, kmod) in pairs() {
        let old = complete_outputs(ours_program, &old_tree);
        let new = complete_outputs(ours_program, &new_tree);
        let mut compared = Vec::new();
        for program in [ours_program, kmod] {
            let Some(mount) = Mount::tmpfs(4 << 20) else {
                return;
            };
            // The old indexes are in place, then the tree grows and the disk fills up.
            copy_tree(&old_tree, mount.path());
            run_at(ours_program, mount.path(), &old_tree.conf()).unwrap();
            copy_tree(&new_tree, mount.path());
            mount.fill_leaving(16 * 1024);
            let result = run_at(program, mount.path(), &new_tree.conf()).unwrap();
            let moddir = mount.path().join("lib/modules").join(KVER);
            if matches!(program, Program::Ours | Program::Ours30) {
                for (name, bytes) in read_outputs(&moddir) {
                    assert!(
                        Some(&bytes) == old.get(&name) || Some(&bytes) == new.get(&name),
                        "{program:?}: {name} is neither the old nor the new file"
                    );
                }
                assert_eq!(temporaries(&moddir), Vec::<String>::new());
                assert!(
                    result.stderr.contains("No space left on device"),
                    "{}",
                    result.stderr
                );
            }
            compared.push(result);
        }
        // Same message and status; kmod 34.2 and 30 write through stdio and check for errors
        // before the final flush, so they rename a truncated file into place. depmod-rs keeps
        // the old file (checked above); only status and stderr are compared.
        assert_eq!(compared[0].code, compared[1].code, "{kmod:?}");
        assert_eq!(compared[0].stderr, compared[1].stderr, "{kmod:?}");
    }
}

#[test]
fn planted_symlink_under_final_name_is_replaced_not_followed() {
    let tree = Tree::new();
    for program in [
        Program::Ours,
        Program::Kmod34,
        Program::Ours30,
        Program::Kmod30,
    ] {
        let Some(mut cmd) = program.command() else {
            continue;
        };
        let root = tempfile::tempdir().unwrap();
        copy_tree(&tree, root.path());
        let victim_dir = tempfile::tempdir().unwrap();
        let victim = victim_dir.path().join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        let moddir = root.path().join("lib/modules").join(KVER);
        for name in ["modules.dep", "modules.alias.bin", "modules.devname"] {
            std::os::unix::fs::symlink(&victim, moddir.join(name)).unwrap();
        }
        let out = cmd
            .arg("-b")
            .arg(root.path())
            .arg("-C")
            .arg(tree.conf())
            .arg(KVER)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{program:?}");
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"precious\n",
            "{program:?}"
        );
        for name in ["modules.dep", "modules.alias.bin", "modules.devname"] {
            let meta = std::fs::symlink_metadata(moddir.join(name)).unwrap();
            assert!(
                meta.file_type().is_file(),
                "{program:?}: {name} is a regular file now"
            );
        }
    }
}

#[test]
fn planted_symlink_under_temporary_name_is_not_written_through() {
    use depmod_rs::internals::{PublishError, Publisher};
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let publisher = Publisher::new(dir.path().to_path_buf());
    // A symlink, to an existing file and to a missing one, where the temporary will go.
    std::os::unix::fs::symlink(&victim, publisher.temp_path("modules.dep")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("created"),
        publisher.temp_path("modules.alias"),
    )
    .unwrap();
    for name in ["modules.dep", "modules.alias"] {
        let err = publisher.publish(name, b"new contents\n").unwrap_err();
        assert!(matches!(err, PublishError::CreateTemp(_)), "{err:?}");
        let message = String::from_utf8_lossy(err.message()).into_owned();
        assert!(message.ends_with("File exists"), "{message}");
        assert!(
            !dir.path().join(name).exists(),
            "{name} must not be published"
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(!outside.path().join("created").exists());
}

#[test]
fn directory_in_place_of_an_index_matches_kmod() {
    let tree = Tree::new();
    std::fs::create_dir_all(tree.moddir().join("modules.symbols/inner")).unwrap();
    let result = crate::harness::assert_same_as_kmod(&tree, &[]);
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    assert!(result.stderr.contains("renameat("), "{}", result.stderr);
}

#[test]
fn file_modes_follow_umask_like_kmod() {
    use std::os::unix::fs::PermissionsExt;
    let tree = Tree::new();
    for (umask, expected) in [
        ("022", 0o644),
        ("077", 0o600),
        ("000", 0o644),
        ("027", 0o640),
    ] {
        for program in [
            Program::Ours,
            Program::Kmod34,
            Program::Ours30,
            Program::Kmod30,
        ] {
            let Some(cmd) = program.command() else {
                continue;
            };
            let root = tempfile::tempdir().unwrap();
            copy_tree(&tree, root.path());
            let script = format!(
                "umask {umask}; exec \"$@\" -b '{}' -C '{}' {KVER}",
                root.path().display(),
                tree.conf().display()
            );
            let mut args: Vec<String> = vec![cmd.get_program().to_string_lossy().into_owned()];
            args.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
            let status = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .arg("sh")
                .args(&args)
                .status()
                .unwrap();
            assert!(status.success(), "{program:?}");
            let moddir = root.path().join("lib/modules").join(KVER);
            for name in read_outputs(&moddir).keys() {
                let mode = std::fs::metadata(moddir.join(name))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777;
                assert_eq!(
                    mode, expected,
                    "{program:?} umask {umask}: {name} has {mode:o}"
                );
            }
        }
    }
}

#[test]
fn fsync_option_writes_the_same_files() {
    let tree = bigger_tree();
    let plain = crate::harness::run_in_copy(Program::Ours, &tree, &[]).unwrap();
    let synced = crate::harness::run_in_copy(Program::Ours, &tree, &["--fsync"]).unwrap();
    assert_eq!(synced.code, Some(0), "{}", synced.stderr);
    assert_eq!(plain, synced);
    assert!(synced.temporaries.is_empty());
}

/// Directory entries of `dir` (for "nothing else was left behind" checks).
#[allow(dead_code)]
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names
}
