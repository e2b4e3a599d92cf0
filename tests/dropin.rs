//! depmod-rs installed as `depmod`: the command lines integrators run, against Debian's kmod.
//!
//! Each test puts a `depmod` symlink to our binary in one directory and a `depmod` wrapper for
//! Debian's kmod 34.2 (reference cache) in another, runs the same command line through `PATH`
//! (so argv[0] is `depmod` for both, as in a shell script) on two copies of the same tree, and
//! compares every output file, stdout, stderr and the exit status. The command lines are the
//! ones the tools use:
//!
//! * dracut, mkinitcpio, initramfs-tools, mkosi: `depmod -a -b STAGING KVER`;
//! * kernel-install, DKMS, Debian's kernel postinst: `depmod -a KVER` (here with `-b`, since
//!   tests do not write `/lib/modules`; the bare form is checked on a missing version);
//! * kbuild's `modules_install`: `depmod -ae -F System.map -b INSTALL_MOD_PATH KVER`.
//!
//! Without kmod 34 the tests fail, unless `DEPMOD_RS_SKIP_REAL=1` (then only our side runs,
//! with the spec-derived checks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use testkit::synth::SynthModule;

const KVER: &str = "6.1.0-dropin";

fn kmod34() -> Option<PathBuf> {
    let cache = match std::env::var_os("DEPMOD_RS_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(&std::env::var_os("HOME")?).join(".cache/depmod-rs"),
    };
    let path = cache.join("bin/depmod-kmod34");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("DEPMOD_RS_SKIP_REAL").is_some_and(|v| v == "1"),
        "kmod 34 is required but missing (run scripts/fetch-references.sh, or set DEPMOD_RS_SKIP_REAL=1 to skip)"
    );
    None
}

/// `depmod` as a command name in a directory of its own.
struct Installed {
    _dir: TempDir,
    bin_dir: PathBuf,
}

/// Runs `command` to completion. The kmod wrapper is a script this process has just written:
/// while another test thread forks, its child holds the write descriptor until it execs, and
/// executing the script then fails with `ETXTBSY`; such a start is tried again.
fn output_of(command: &mut Command) -> Output {
    let mut tries = 0;
    loop {
        match command.output() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.unwrap(),
        }
    }
}

impl Installed {
    /// Our binary, installed as a `depmod` symlink.
    fn ours() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = dir.path().join("sbin");
        std::fs::create_dir(&bin_dir).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_depmod-rs"), bin_dir.join("depmod"))
            .unwrap();
        Installed { _dir: dir, bin_dir }
    }

    /// kmod 34's depmod, through a `depmod` wrapper script.
    fn kmod(wrapper: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = dir.path().join("sbin");
        std::fs::create_dir(&bin_dir).unwrap();
        let script = bin_dir.join("depmod");
        // The reference wrapper runs kmod through its loader with argv[0] `depmod`. A script
        // cannot see the argv[0] it was started with (`$0` is its path), so the caller says
        // which to pass: `depmod` for a PATH lookup, else the script's path.
        let text = std::fs::read_to_string(wrapper).unwrap_or_default();
        let body = if text.contains("--argv0 depmod ") {
            text.replace("--argv0 depmod ", "--argv0 \"${DEPMOD_TEST_ARGV0:-$0}\" ")
        } else {
            format!("#!/bin/sh\nexec '{}' \"$@\"\n", wrapper.display())
        };
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Installed { _dir: dir, bin_dir }
    }

    /// Runs `depmod ARGS` found through PATH, in `cwd`.
    fn run(&self, args: &[&str], cwd: &Path) -> Output {
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("depmod");
        command
            .env("PATH", path)
            .env("DEPMOD_RS_CONFIG", "/dev/null")
            .env("DEPMOD_TEST_ARGV0", "depmod")
            .current_dir(cwd)
            .args(args);
        output_of(&mut command)
    }
}

impl Installed {
    /// Runs `/full/path/to/depmod ARGS`; stderr with that directory shown as `{BIN}`.
    fn run_by_path(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut command = Command::new(self.bin_dir.join("depmod"));
        command.env("DEPMOD_RS_CONFIG", "/dev/null").args(args);
        let out = output_of(&mut command);
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&self.bin_dir.display().to_string(), "{BIN}");
        (out.status.code(), stderr)
    }
}

/// A staging tree the way an initramfs builder lays it out.
fn staging_tree(root: &Path) {
    let dir = root.join("lib/modules").join(KVER);
    let put = |rel: &str, module: SynthModule| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, module.to_elf()).unwrap();
    };
    put(
        "kernel/drivers/scsi/scsi_mod.ko",
        SynthModule::x86_64()
            .with_export("scsi_add_host", Some(0x11))
            .with_import("printk", false, Some(0x22)),
    );
    put(
        "kernel/drivers/scsi/sd_mod.ko",
        SynthModule::x86_64()
            .with_import("scsi_add_host", false, Some(0x11))
            .with_import("printk", false, Some(0x22))
            .with_modinfo("alias", "scsi:t-0x00*")
            .with_modinfo("softdep", "pre: crc-t10dif"),
    );
    put(
        "kernel/drivers/ata/ahci.ko",
        SynthModule::x86_64()
            .with_import("scsi_add_host", false, Some(0x11))
            .with_import("not_in_kernel", false, Some(0x33))
            .with_modinfo("alias", "pci:v*d*sv*sd*bc01sc06i01*"),
    );
    put(
        "kernel/drivers/block/loop.ko",
        SynthModule::x86_64()
            .with_modinfo("alias", "devname:loop-control")
            .with_modinfo("alias", "char-major-10-237")
            .with_modinfo("alias", "block-major-7-*"),
    );
    put(
        "updates/dkms/extra.ko",
        SynthModule::x86_64()
            .with_import("scsi_add_host", false, Some(0x11))
            .with_modinfo("weakdep", "loop"),
    );
    std::fs::write(
        dir.join("modules.order"),
        "kernel/drivers/scsi/scsi_mod.ko\nkernel/drivers/scsi/sd_mod.ko\nkernel/drivers/ata/ahci.ko\n",
    )
    .unwrap();
    std::fs::write(dir.join("modules.builtin"), "kernel/lib/crc32c.ko\n").unwrap();
    std::fs::write(
        dir.join("modules.builtin.modinfo"),
        b"crc32c.alias=crypto-crc32c\0".as_slice(),
    )
    .unwrap();
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap_or_default(),
                );
            }
        }
    }
    found
}

/// Runs `args` (with `{ROOT}` replaced by each side's tree) through both installs, each on its
/// own copy of the tree made by `make_tree`, and compares everything.
fn compare(
    args: &[&str],
    make_tree: impl Fn(&Path),
) -> Option<(Output, BTreeMap<PathBuf, Vec<u8>>)> {
    let ours_root = tempfile::tempdir().unwrap();
    make_tree(ours_root.path());
    let root_arg = |root: &Path| -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{ROOT}", &root.display().to_string()))
            .collect()
    };
    let ours_args = root_arg(ours_root.path());
    let ours_refs: Vec<&str> = ours_args.iter().map(String::as_str).collect();
    let ours = Installed::ours().run(&ours_refs, ours_root.path());
    let ours_files = files(ours_root.path());
    let normalise = |text: &[u8], root: &Path| {
        String::from_utf8_lossy(text).replace(&root.display().to_string(), "{ROOT}")
    };
    if let Some(wrapper) = kmod34() {
        let theirs_root = tempfile::tempdir().unwrap();
        make_tree(theirs_root.path());
        let theirs_args = root_arg(theirs_root.path());
        let theirs_refs: Vec<&str> = theirs_args.iter().map(String::as_str).collect();
        let theirs = Installed::kmod(&wrapper).run(&theirs_refs, theirs_root.path());
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        assert_eq!(
            normalise(&ours.stderr, ours_root.path()),
            normalise(&theirs.stderr, theirs_root.path()),
            "{args:?}"
        );
        // Help is kmod's text followed by a section on our extensions; anything else is equal.
        if args.contains(&"-h") {
            assert!(ours.stdout.starts_with(&theirs.stdout), "{args:?}");
        } else {
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{args:?}"
            );
        }
        let theirs_files = files(theirs_root.path());
        assert_eq!(
            ours_files.keys().collect::<Vec<_>>(),
            theirs_files.keys().collect::<Vec<_>>(),
            "{args:?}"
        );
        for (name, bytes) in &ours_files {
            assert!(
                theirs_files[name] == *bytes,
                "{args:?}: {} differs",
                name.display()
            );
        }
    }
    Some((ours, ours_files))
}

fn written(files: &BTreeMap<PathBuf, Vec<u8>>, name: &str) -> String {
    let path = Path::new("lib/modules").join(KVER).join(name);
    String::from_utf8_lossy(&files[&path]).into_owned()
}

#[test]
fn initramfs_builders_depmod_a_b_staging_kver() {
    let (out, files) = compare(&["-a", "-b", "{ROOT}", KVER], staging_tree).unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dep = written(&files, "modules.dep");
    assert!(
        dep.contains("kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko\n"),
        "{dep}"
    );
    assert!(files.contains_key(
        &Path::new("lib/modules")
            .join(KVER)
            .join("modules.alias.bin")
    ));
}

#[test]
fn relative_basedir_from_the_staging_parent() {
    // mkinitcpio and dracut pass the staging directory as they got it, sometimes relative.
    let (out, _) = compare(&["-a", "-b", ".", KVER], staging_tree).unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn kernel_install_and_dkms_depmod_a_kver() {
    // `depmod -a KVER`, rooted where the test may write.
    let (out, files) = compare(&["-a", "-b", "{ROOT}", KVER], staging_tree).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(written(&files, "modules.weakdep").contains("weakdep extra loop\n"));
    // The bare form reads /lib/modules/KVER: a version that is not installed fails the same way.
    let (out, _) = compare(&["-a", "0.0.0-not-installed"], |_| {}).unwrap();
    assert_eq!(out.status.code(), Some(1));
    // And -A (quick) on a tree whose indexes are up to date does nothing, as kmod.
    let (out, _) = compare(&["-A", "-b", "{ROOT}", KVER], |root| {
        staging_tree(root);
        let status = Installed::ours().run(&["-a", "-b", &root.display().to_string(), KVER], root);
        assert!(status.status.success());
    })
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// kbuild's `scripts/depmod.sh`: -e with the kernel's System.map reports what no module and
/// no kernel symbol provides.
#[test]
fn kbuild_depmod_ae_f_system_map() {
    let tree_with_map = |root: &Path| {
        staging_tree(root);
        std::fs::write(
            root.join("System.map"),
            "ffffffff81000000 T _text\n\
             ffffffff810a0000 T printk\n\
             ffffffff810b0000 T __ksymtab_printk\n\
             ffffffff810c0000 D jiffies\n",
        )
        .unwrap();
    };
    let (out, _) = compare(
        &["-ae", "-F", "{ROOT}/System.map", "-b", "{ROOT}", KVER],
        tree_with_map,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs unknown symbol not_in_kernel"),
        "{stderr}"
    );
    assert!(!stderr.contains("needs unknown symbol printk"), "{stderr}");
    // The relative form kbuild uses from the build directory.
    let (out, _) = compare(&["-ae", "-F", "System.map", "-b", ".", KVER], tree_with_map).unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// Messages keep kmod's `depmod:` prefix; getopt errors name argv[0] as the shell ran it.
#[test]
fn messages_name_depmod() {
    let (out, _) = compare(&["-x"], |_| {}).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "depmod: invalid option -- 'x'\n"
    );
    let (out, _) = compare(&["-b", "{ROOT}", "not-a-version"], |_| {}).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "depmod: ERROR: Bad version passed not-a-version\n"
    );
    let (out, _) = compare(&["-h"], |_| {}).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Usage:\n\tdepmod -[aA]"));
}

/// On a terminal, a long run shows a progress line on stderr and erases it at the end; off a
/// terminal, stderr stays exactly kmod's (checked by every comparison above).
#[test]
fn progress_line_only_on_a_terminal() {
    let Some(home) = std::env::var_os("HOME") else {
        return;
    };
    // A compressed tree takes long enough to read (seconds) for the line to appear.
    let tree = Path::new(&home).join(".cache/depmod-rs/trees/trixie-amd64");
    let script = Path::new("/usr/bin/script");
    if !tree.join("KVER").exists() || !script.exists() {
        eprintln!("skipping: needs the trixie-amd64 tree and script(1)");
        return;
    }
    let kver = std::fs::read_to_string(tree.join("KVER")).unwrap();
    let kver = kver.trim();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("lib/modules")).unwrap();
    std::fs::create_dir_all(root.path().join("conf")).unwrap();
    let copied = Command::new("cp")
        .arg("-al")
        .arg(tree.join("lib/modules").join(kver))
        .arg(root.path().join("lib/modules"))
        .status()
        .unwrap();
    assert!(copied.success());
    let command = format!(
        "DEPMOD_RS_CONFIG=/dev/null '{}' -C '{}' -b '{}' {kver}",
        env!("CARGO_BIN_EXE_depmod-rs"),
        root.path().join("conf").display(),
        root.path().display()
    );
    // script(1) runs the command with a pseudo-terminal as stdin, stdout and stderr.
    let started = std::time::Instant::now();
    let on_tty = Command::new(script)
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(on_tty.status.success());
    let text = String::from_utf8_lossy(&on_tty.stdout);
    // On a machine fast enough to read the tree within the delay, there is nothing to show.
    if started.elapsed() > depmod_rs::internals::DELAY * 3 {
        assert!(text.contains("depmod-rs: reading modules "), "{text:?}");
    }
    assert!(text.is_empty() || text.ends_with("\r\u{1b}[K"), "{text:?}");
    // Off a terminal: nothing.
    let piped = Command::new("sh").args(["-c", &command]).output().unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    // Verbose runs print their own lines to the terminal; no progress line then.
    let verbose = Command::new(script)
        .args([
            "-q",
            "-e",
            "-c",
            &format!("{command} -v >/dev/null"),
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&verbose.stdout).contains("reading modules"));
}

/// Run by its full path (as from a unit file or a script with a fixed path), getopt's
/// messages name that path, as glibc's do for kmod.
#[test]
fn getopt_messages_name_the_full_path() {
    let ours = Installed::ours();
    let (code, stderr) = ours.run_by_path(&["-x"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "{BIN}/depmod: invalid option -- 'x'\n");
    let Some(wrapper) = kmod34() else { return };
    let theirs = Installed::kmod(&wrapper);
    for args in [
        &["-x"][..],
        &["--basedir"],
        &["--s"],
        &["-b", "/nonexistent", "4.4"],
    ] {
        assert_eq!(ours.run_by_path(args), theirs.run_by_path(args), "{args:?}");
    }
}
