//! Files and directories that cannot be read. Tests run as root, for whom permission bits do
//! not apply, so these runs drop to the unprivileged `nobody` user with `setpriv` (util-linux);
//! where that is impossible the test says so and passes without checking.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{collect, Program, RunResult, Tree, KVER};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether we can run commands as `nobody`.
fn can_drop_privileges() -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether `nobody` can read (and so reach) `path`.
fn nobody_can_read(path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-r",
        ])
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run `program` as `nobody` on a copy of `tree` whose module directory `nobody` may write,
/// after `prepare` has taken permissions away inside it.
fn run_as_nobody(program: Program, tree: &Tree, prepare: &dyn Fn(&Path)) -> Option<RunResult> {
    let cmd = program.command()?;
    let mut executable = PathBuf::from(cmd.get_program());
    // Our binary sits in the build directory, which `nobody` cannot enter when the checkout
    // lives under a private directory: run a copy from a world-readable one instead.
    let _copy_dir =
        if !nobody_can_read(&executable) && matches!(program, Program::Ours | Program::Ours30) {
            let dir = tempfile::tempdir().unwrap();
            chmod(dir.path(), 0o755);
            let copy = dir.path().join("depmod-rs");
            std::fs::copy(&executable, &copy).unwrap();
            chmod(&copy, 0o755);
            executable = copy;
            Some(dir)
        } else {
            None
        };
    // The kmod 34 wrapper lives under root's home, which `nobody` may not enter.
    if !nobody_can_read(&executable) {
        eprintln!("{program:?} cannot be run as nobody here; not compared");
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", tree.root().display()))
        .arg(root.path())
        .status()
        .unwrap();
    assert!(ok.success());
    chmod(root.path(), 0o755);
    let moddir = root.path().join("lib/modules").join(KVER);
    let ok = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&moddir)
        .status()
        .unwrap();
    assert!(ok.success());
    chmod(&tree.conf(), 0o755);
    prepare(&moddir);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&executable)
        .args(cmd.get_args())
        .arg("-b")
        .arg(root.path())
        .arg("-C")
        .arg(tree.conf())
        .arg(KVER)
        .output()
        .unwrap();
    let result = collect(out, &moddir, &[(root.path(), "ROOT")]);
    // Give the files back so the temporary directory can be removed.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+rwx")
        .arg(root.path())
        .status();
    Some(result)
}

#[test]
fn unreadable_module_file_and_directory_match_kmod() {
    if !can_drop_privileges() {
        eprintln!("skipped: cannot run as nobody (setpriv missing or not root)");
        return;
    }
    let tree = Tree::new();
    tree.module(
        "kernel/secret.ko",
        crate::harness::x86().with_modinfo("alias", "secret"),
    );
    tree.module("kernel/closed/inner.ko", crate::harness::x86());
    tree.write("modules.order", "kernel/good.ko\nkernel/user.ko\n");
    let prepare = |moddir: &Path| {
        chmod(&moddir.join("kernel/secret.ko"), 0o000);
        chmod(&moddir.join("kernel/closed"), 0o000);
        chmod(&moddir.join("modules.order"), 0o000);
    };
    let ours = run_as_nobody(Program::Ours, &tree, &prepare).unwrap();
    assert_ne!(ours.code, Some(101), "{}", ours.stderr);
    ours.assert_good_indexed();
    assert!(
        ours.stderr.contains("secret.ko") && ours.stderr.contains("Permission denied"),
        "{}",
        ours.stderr
    );
    for (ours_program, kmod) in [
        (Program::Ours, Program::Kmod34),
        (Program::Ours30, Program::Kmod30),
    ] {
        let Some(theirs) = run_as_nobody(kmod, &tree, &prepare) else {
            continue;
        };
        let ours = run_as_nobody(ours_program, &tree, &prepare).unwrap();
        crate::harness::assert_same(&ours, &theirs, kmod);
    }
}
