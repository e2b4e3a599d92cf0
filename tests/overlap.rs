//! Overlapping runs over one tree: a run starts, a module is added, a second run starts.
//! Whatever the timing, the files left must be those one run over the final tree writes.
//!
//! The first run is caught in the middle: it is stopped (`SIGSTOP`) while it reads the
//! modules of the trixie `.ko.xz` tree (about 1.7 s of reading), the module is added, the
//! second run is started and let finish (or report, under `-v`, that it waits for the first),
//! and only then is the first run continued. Without the lock the first run, which saw the
//! tree without the new module, publishes last and leaves a stale index every time; with it,
//! the second run waits and reads the final tree.
//!
//! The same again with both runs sharing one `--cache` file, which must stay usable.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use depmod_rs::module::Compression;
use support::{link_copy, TempDir};
use testkit::synth::{compress, SynthModule};

/// Trials per variant. Each catches the race deterministically; two show it is not luck.
const TRIALS: usize = 2;

/// The module added between the two starts: it exports a symbol and has an alias, so it
/// shows up in every index.
fn added_module() -> Vec<u8> {
    let module = SynthModule::x86_64()
        .with_modinfo("alias", "pci:v0000BEEFd0000CAFEsv*sd*bc*sc*i*")
        .with_modinfo("license", "GPL")
        .with_export("overlap_added_symbol", Some(0x1234_5678));
    compress(&module.to_elf(), Compression::Xz).expect("compress")
}

/// Every regular file directly in `dir`, by name (module subdirectories are left out).
fn top_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read output dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            let bytes = std::fs::read(entry.path()).expect("read output");
            files.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
        }
    }
    files
}

struct Setup {
    work: TempDir,
    tree: support::Tree,
    conf: PathBuf,
    /// What one run over the final tree leaves.
    expected: BTreeMap<String, Vec<u8>>,
}

impl Setup {
    fn new() -> Option<Setup> {
        let tree = support::tree("trixie-amd64")?;
        let work = TempDir::new("overlap");
        let conf = support::empty_config_dir(&work);
        let setup = Setup {
            work,
            tree,
            conf,
            expected: BTreeMap::new(),
        };
        let root = setup.fresh_root("reference");
        setup.add_module(&root);
        let status = setup
            .command(&root, None)
            .arg(&setup.tree.kver)
            .status()
            .expect("run depmod-rs");
        assert!(status.success(), "reference run failed");
        let expected = top_files(&setup.moddir(&root));
        assert!(
            String::from_utf8_lossy(&expected["modules.dep"]).contains("overlap_added.ko.xz"),
            "the reference run indexes the added module"
        );
        Some(Setup { expected, ..setup })
    }

    fn moddir(&self, root: &Path) -> PathBuf {
        root.join("lib/modules").join(&self.tree.kver)
    }

    /// A hard-linked copy of the tree (outputs are replaced by rename, never written
    /// through, so the shared inodes stay untouched).
    fn fresh_root(&self, name: &str) -> PathBuf {
        let root = self.work.path().join(name);
        link_copy(&self.tree.root, &root);
        root
    }

    fn add_module(&self, root: &Path) {
        let dir = self.moddir(root).join("extra");
        std::fs::create_dir_all(&dir).expect("create extra");
        std::fs::write(dir.join("overlap_added.ko.xz"), added_module()).expect("add module");
    }

    fn command(&self, root: &Path, cache: Option<&Path>) -> Command {
        let mut cmd = Command::new(support::depmod_rs_binary());
        cmd.arg("-b").arg(root).arg("-C").arg(&self.conf);
        if let Some(cache) = cache {
            cmd.arg("--cache").arg(cache);
        }
        cmd.env("DEPMOD_RS_CONFIG", "/dev/null");
        cmd
    }

    /// One trial; returns what is wrong with the files left, if anything.
    fn trial(&self, n: usize, shared_cache: bool) -> Result<(), String> {
        let root = self.fresh_root(&format!("trial-{shared_cache}-{n}"));
        let cache = shared_cache.then(|| root.join("depmod.cache"));
        let kver = &self.tree.kver;

        let mut first = self
            .command(&root, cache.as_deref())
            .arg(kver)
            .stderr(Stdio::null())
            .spawn()
            .expect("start first run");
        // Well into its reading of the modules (discovery takes a few tens of milliseconds).
        std::thread::sleep(Duration::from_millis(400));
        signal(&first, libc::SIGSTOP);

        self.add_module(&root);
        let log = root.join("second.log");
        let mut second = self
            .command(&root, cache.as_deref())
            .arg("-v")
            .arg(kver)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start second run");
        let second_done = wait_until_done_or_waiting(&mut second, &log);
        signal(&first, libc::SIGCONT);
        let first_status = first.wait().expect("wait first");
        let second_status = match second_done {
            Some(status) => status,
            None => second.wait().expect("wait second"),
        };
        if !first_status.success() || !second_status.success() {
            return Err(format!("exit status {first_status} / {second_status}"));
        }

        let left = top_files(&self.moddir(&root));
        let mut wrong: Vec<String> = Vec::new();
        for (name, bytes) in &self.expected {
            match left.get(name) {
                None => wrong.push(format!("{name} missing")),
                Some(found) if found != bytes => wrong.push(format!("{name} differs")),
                Some(_) => {}
            }
        }
        wrong.extend(
            left.keys()
                .filter(|name| !self.expected.contains_key(*name))
                .map(|name| format!("{name} is extra")),
        );
        if let Some(cache) = &cache {
            wrong.extend(check_cache(self, &root, cache));
        }
        match wrong.is_empty() {
            true => Ok(()),
            false => Err(wrong.join(", ")),
        }
    }
}

/// A third run through the shared cache must leave the same files, and the cache must be
/// one it can use.
fn check_cache(setup: &Setup, root: &Path, cache: &Path) -> Vec<String> {
    let bytes = std::fs::read(cache).expect("cache written");
    let settings = depmod_rs::internals::cache::ReadSettings {
        version: depmod_rs::compat::KmodVersion::V34,
        gzip: false,
    };
    let mut wrong = Vec::new();
    if depmod_rs::internals::cache::ModuleCache::from_bytes(bytes, settings).is_none() {
        wrong.push("the shared cache does not load".to_string());
    }
    let out = setup.work.path().join("third");
    let _ = std::fs::remove_dir_all(&out);
    let status = setup
        .command(root, Some(cache))
        .arg("-o")
        .arg(&out)
        .arg(&setup.tree.kver)
        .status()
        .expect("third run");
    let files = top_files(&out.join("lib/modules").join(&setup.tree.kver));
    let outputs_match = setup
        .expected
        .iter()
        .filter(|(name, _)| files.contains_key(*name) || !is_input(name))
        .all(|(name, bytes)| files.get(name) == Some(bytes));
    if !status.success() || !outputs_match {
        wrong.push("a run through the shared cache writes other files".to_string());
    }
    wrong
}

/// The files of the tree that depmod reads rather than writes.
fn is_input(name: &str) -> bool {
    support::INPUTS.contains(&name) || !name.starts_with("modules.")
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child, which has not been waited for.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// Waits until `child` exits (its status) or its `-v` log says it waits for the lock (`None`).
fn wait_until_done_or_waiting(child: &mut Child, log: &Path) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("waiting for another depmod") {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the second run neither finished nor waited within 120 s");
}

fn run_trials(shared_cache: bool) {
    let Some(setup) = Setup::new() else {
        return;
    };
    let failures: Vec<String> = (0..TRIALS)
        .filter_map(|n| {
            setup
                .trial(n, shared_cache)
                .err()
                .map(|e| format!("trial {n}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {TRIALS} trials left files no single run over the final tree writes:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn overlapping_runs_leave_the_final_trees_files() {
    run_trials(false);
}

#[test]
fn overlapping_runs_sharing_a_cache_leave_the_final_trees_files() {
    run_trials(true);
}
