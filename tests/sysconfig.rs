//! The system configuration (`DEPMOD_RS_CONFIG`, default `/etc/depmod-rs.conf`).
//!
//! * A bad file (unknown key, bad value, unreadable) is one error naming the file and line,
//!   exits as kmod does for a bad option, and writes nothing.
//! * `compat = auto` follows the installed kmod's `--version`.
//! * `cache = DIR`: a plain `depmod-rs -a KVER` on a copy of the trixie `.ko.xz` tree under
//!   `/lib/modules` (the live system's place; needs root), after one module was added,
//!   writes kmod 34's bytes through the cache; a staging run (`-b DIR`) adds no cache file;
//!   a cache file or directory that others can write is not used and not written, and the
//!   output is still kmod's.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use depmod_rs::module::Compression;
use support::TempDir;
use testkit::synth::{compress, SynthModule};

fn depmod_rs(config: &Path) -> Command {
    let mut cmd = Command::new(support::depmod_rs_binary());
    cmd.env("DEPMOD_RS_CONFIG", config);
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every `modules.*` output directly in `dir` (inputs left out), by name.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") && !support::INPUTS.contains(&name.as_str()) {
            files.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

/// A small tree to run on: one module.
fn small_tree(tmp: &TempDir) -> PathBuf {
    let root = tmp.path().join("root");
    let dir = root.join("lib/modules/6.1.0-test");
    std::fs::create_dir_all(&dir).unwrap();
    let module = SynthModule::x86_64().with_modinfo("alias", "pci:v1234d*");
    std::fs::write(dir.join("a.ko"), module.to_elf()).unwrap();
    root
}

/// kmod's exit status for a bad option (1 in every release; asked of kmod 34 when present).
fn kmod_bad_option_status() -> i32 {
    let kmod34 = support::cache_dir().join("bin/depmod-kmod34");
    match kmod34.exists() {
        true => Command::new(kmod34)
            .arg("--no-such-option")
            .output()
            .unwrap()
            .status
            .code()
            .unwrap(),
        false => 1,
    }
}

#[test]
fn bad_configuration_is_one_error_naming_the_file_and_line_and_writes_nothing() {
    let tmp = TempDir::new("sysconfig-bad");
    let root = small_tree(&tmp);
    let conf_d = support::empty_config_dir(&tmp);
    let expected_status = kmod_bad_option_status();
    let file = tmp.path().join("depmod-rs.conf");
    let cases: [(&str, Option<&str>, String); 4] = [
        (
            "unknown key",
            Some("# ok\ncache = /var/cache/x\ncolour = blue\n"),
            format!(
                "depmod: ERROR: {}:3: unknown key 'colour' (known keys: cache, compat, fsync, kmod)\n",
                file.display()
            ),
        ),
        (
            "bad value",
            Some("fsync = sometimes\n"),
            format!(
                "depmod: ERROR: {}:1: bad value 'sometimes' for fsync: expected yes or no\n",
                file.display()
            ),
        ),
        (
            "bad compat",
            Some("\ncompat = 29\n"),
            format!(
                "depmod: ERROR: {}:2: bad value '29' for compat: expected auto, 30, 31, 32, 33 or 34\n",
                file.display()
            ),
        ),
        // A directory where the file should be: it exists and cannot be read (root reads
        // any file whatever its mode, so a mode would not do).
        (
            "unreadable file",
            None,
            format!("depmod: ERROR: {}: Is a directory\n", file.display()),
        ),
    ];
    for (what, text, message) in cases {
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir(&file);
        match text {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::create_dir(&file).unwrap(),
        }
        let out_root = tmp.path().join("out");
        // In place and with -o: neither writes anything.
        for with_outdir in [false, true] {
            let mut cmd = depmod_rs(&file);
            cmd.arg("-b").arg(&root).arg("-C").arg(&conf_d);
            if with_outdir {
                cmd.arg("-o").arg(&out_root);
            }
            let out = cmd.arg("6.1.0-test").output().unwrap();
            assert_eq!(out.status.code(), Some(expected_status), "{what}");
            assert_eq!(stderr(&out), message, "{what}");
            assert!(out.stdout.is_empty(), "{what}");
            assert!(
                outputs(&root.join("lib/modules/6.1.0-test")).is_empty(),
                "{what}: nothing written in place"
            );
            assert!(!out_root.exists(), "{what}: no output directory created");
        }
    }
}

#[test]
fn a_missing_or_empty_configuration_is_no_configuration() {
    let tmp = TempDir::new("sysconfig-none");
    let root = small_tree(&tmp);
    let conf_d = support::empty_config_dir(&tmp);
    for config in [tmp.path().join("missing.conf"), PathBuf::from("/dev/null")] {
        let out = depmod_rs(&config)
            .arg("-b")
            .arg(&root)
            .arg("-C")
            .arg(&conf_d)
            .arg("6.1.0-test")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        // The built-in default: kmod 34's files, modules.weakdep among them.
        assert!(outputs(&root.join("lib/modules/6.1.0-test")).contains_key("modules.weakdep"));
    }
}

/// `depmod-rs -V`'s first line under `compat = auto` with `kmod = KMOD`.
fn version_line_with_auto(tmp: &TempDir, kmod: &Path) -> (Option<i32>, String, String) {
    let file = tmp.path().join("auto.conf");
    std::fs::write(&file, format!("compat = auto\nkmod = {}\n", kmod.display())).unwrap();
    let out = depmod_rs(&file).arg("-V").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("").to_string();
    (out.status.code(), first, stderr(&out))
}

#[test]
fn compat_auto_follows_the_installed_kmod() {
    if !support::require("kmod30") || !support::require("kmod34") {
        return;
    }
    let tmp = TempDir::new("sysconfig-auto");
    for tool in ["depmod-kmod30", "depmod-kmod34"] {
        let kmod = support::cache_dir().join("bin").join(tool);
        let theirs = Command::new(&kmod).arg("--version").output().unwrap();
        let theirs = String::from_utf8_lossy(&theirs.stdout);
        let (status, ours, err) = version_line_with_auto(&tmp, &kmod);
        assert_eq!(status, Some(0), "{err}");
        assert_eq!(Some(ours.as_str()), theirs.lines().next(), "{tool}");
    }
    // --compat wins, and then the kmod binary is not even asked.
    let file = tmp.path().join("auto-missing.conf");
    std::fs::write(&file, "compat = auto\nkmod = /nonexistent/kmod\n").unwrap();
    let out = depmod_rs(&file)
        .args(["--compat", "30", "-V"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kmod version 30\n"));
    // Without it, an unknown kmod release is an error, not a guess.
    let (status, _, err) = version_line_with_auto(&tmp, Path::new("/nonexistent/kmod"));
    assert_eq!(status, Some(1));
    assert!(
        err.contains("compat = auto: could not run /nonexistent/kmod"),
        "{err}"
    );
}

/// A copy of a cached tree under `/lib/modules`, removed on drop.
struct LiveTree {
    dir: PathBuf,
    kver: String,
    /// Whether `/lib/modules` itself was made here (a container may have none).
    made_parent: bool,
}

impl LiveTree {
    fn new(tree: &support::Tree, label: &str) -> LiveTree {
        let kver = format!("{}-{label}-{}", tree.kver, std::process::id());
        let dir = Path::new("/lib/modules").join(&kver);
        let _ = std::fs::remove_dir_all(&dir);
        let made_parent = !Path::new("/lib/modules").exists();
        std::fs::create_dir_all("/lib/modules").unwrap();
        support::link_copy(&tree.root.join("lib/modules").join(&tree.kver), &dir);
        LiveTree {
            dir,
            kver,
            made_parent,
        }
    }
}

impl Drop for LiveTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_parent {
            let _ = std::fs::remove_dir("/lib/modules");
        }
    }
}

fn added_module() -> Vec<u8> {
    let module = SynthModule::x86_64()
        .with_modinfo("alias", "usb:v1D6Bp0104d*")
        .with_export("sysconfig_added_symbol", Some(0x0bad_cafe));
    compress(&module.to_elf(), Compression::Xz).unwrap()
}

/// kmod 34 over the live tree, into a fresh output root.
fn kmod34_outputs(tmp: &TempDir, kver: &str) -> BTreeMap<String, Vec<u8>> {
    let out = tmp.path().join("kmod34-out");
    let _ = std::fs::remove_dir_all(&out);
    let done = Command::new(support::cache_dir().join("bin/depmod-kmod34"))
        .arg("-o")
        .arg(&out)
        .args(["-a", kver])
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    outputs(&out.join("lib/modules").join(kver))
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn configured_cache_on_the_live_tree() {
    if !support::require("kmod34") {
        return;
    }
    let Some(tree) = support::tree("trixie-amd64") else {
        return;
    };
    assert!(
        is_root(),
        "this test runs depmod on /lib/modules and needs root (CI runs as root)"
    );
    let tmp = TempDir::new("sysconfig-cache");
    let cache_dir = tmp.path().join("cache");
    let config = tmp.path().join("depmod-rs.conf");
    std::fs::write(
        &config,
        format!("cache = {}\ncompat = 34\n", cache_dir.display()),
    )
    .unwrap();
    let live = LiveTree::new(&tree, "sysconfig");
    let cache_file = cache_dir.join(format!("{}.cache", live.kver));
    // The copy's links changed every ctime: let them settle so the cache trusts them.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let plain = |extra: &[&str]| {
        let out = depmod_rs(&config)
            .args(extra)
            .args(["-a", &live.kver])
            .env("DEPMOD_RS_TIMINGS", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    plain(&[]);
    assert!(cache_file.is_file(), "the first run stores the cache");

    // One module added, as a DKMS install does; the re-run goes through the cache.
    let extra = live.dir.join("updates/dkms");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("sysconfig_added.ko.xz"), added_module()).unwrap();
    let timings = plain(&[]);
    assert!(timings.contains("timing: check cache"), "{timings}");
    let expected = kmod34_outputs(&tmp, &live.kver);
    assert!(String::from_utf8_lossy(&expected["modules.dep"]).contains("sysconfig_added.ko.xz"));
    assert_eq!(
        outputs(&live.dir),
        expected,
        "a plain run through the configured cache writes kmod 34's bytes"
    );

    // A staging run (-b DIR) never uses the directory.
    let listing = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let staging = tmp.path().join("staging");
    support::link_copy(&tree.root, &staging);
    let out = depmod_rs(&config)
        .arg("-b")
        .arg(&staging)
        .arg(&tree.kver)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listing(), before, "a staging run adds no cache file");

    // Writable by others: neither used nor written, and the output is still kmod 34's.
    let cases: [(&str, &Path, u32); 2] = [
        ("directory", &cache_dir, 0o777),
        ("file", &cache_file, 0o666),
    ];
    for (what, path, mode) in cases {
        let old_mode = std::fs::metadata(path).unwrap().mode() & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::write(extra.join("sysconfig_added.ko.xz"), added_module()).unwrap();
        let stored = std::fs::read(&cache_file).unwrap();
        let stored_key = std::fs::metadata(&cache_file).unwrap().ino();
        let verbose = plain(&["-v"]);
        assert!(
            verbose.contains(&format!(
                "depmod: NOTICE: not using the cache {}",
                cache_file.display()
            )),
            "{what}: {verbose}"
        );
        assert!(!verbose.contains("timing: check cache"), "{what}");
        assert_eq!(std::fs::read(&cache_file).unwrap(), stored, "{what}");
        assert_eq!(std::fs::metadata(&cache_file).unwrap().ino(), stored_key);
        assert_eq!(outputs(&live.dir), expected, "{what}");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(old_mode)).unwrap();
    }
    // Owned by another user: the same.
    std::os::unix::fs::chown(&cache_file, Some(65534), None).unwrap();
    let verbose = plain(&["-v"]);
    assert!(verbose.contains("belongs to uid 65534"), "{verbose}");
    assert_eq!(outputs(&live.dir), expected);
}
