//! Interrupted runs: depmod-rs is killed with SIGKILL at random moments while it writes a new
//! set of indexes over an older one. Afterwards every index must be byte-identical to either
//! its complete old or its complete new version; nothing half-written may ever be visible.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{ours, read_outputs, temporaries, x86, Tree, KVER};

/// A tree of `modules` modules with aliases, symbols and dependencies.
fn tree_with(modules: usize) -> Tree {
    let tree = Tree::new();
    for i in 0..modules {
        let mut module = x86()
            .with_export(format!("sym_{i}"), None)
            .with_modinfo("softdep", format!("pre: m{}", i / 2))
            .with_modinfo("weakdep", format!("m{}", i / 5));
        if i > 0 {
            module = module.with_import(format!("sym_{}", i / 3), false, None);
        }
        for a in 0..8 {
            module = module.with_modinfo("alias", format!("pci:v{i:08X}d{a:08X}sv*sd*bc*sc*i*"));
        }
        module = module.with_modinfo("alias", format!("devname:m{i}"));
        module = module.with_modinfo("alias", format!("char-major-10-{i}"));
        tree.module(&format!("kernel/drivers/d{}/m{i}.ko", i % 7), module);
    }
    let builtin: String = (0..modules / 10)
        .map(|i| format!("kernel/b/b{i}.ko\n"))
        .collect();
    tree.write("modules.builtin", builtin);
    let modinfo: Vec<u8> = (0..modules / 10)
        .flat_map(|i| format!("b{i}.alias=builtin-{i}\0").into_bytes())
        .collect();
    tree.write("modules.builtin.modinfo", modinfo);
    tree
}

/// Run ours in place on `root` to completion.
fn run_to_completion(root: &Path, conf: &Path) -> Duration {
    let start = Instant::now();
    let out = ours()
        .arg("-b")
        .arg(root)
        .arg("-C")
        .arg(conf)
        .arg(KVER)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// xorshift64*: a reproducible delay sequence (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn place(moddir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in files {
        std::fs::write(moddir.join(name), bytes).unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_leaves_old_or_new_files() {
    let runs: usize = std::env::var("ROBUSTNESS_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("ROBUSTNESS_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("atomicity: {runs} runs, seed {seed} (ROBUSTNESS_KILL_SEED to repeat)");

    // The old indexes come from a smaller tree; the new ones from the tree being indexed.
    let old_tree = tree_with(40);
    run_to_completion(old_tree.root(), &old_tree.conf());
    let old = read_outputs(&old_tree.moddir());
    let tree = tree_with(400);
    let scratch = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", tree.root().display()))
        .arg(scratch.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let full = run_to_completion(tree.root(), &tree.conf());
    let new = read_outputs(&tree.moddir());
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>()
    );
    let differing = old.iter().filter(|(k, v)| new[*k] != **v).count();
    assert!(
        differing >= 10,
        "old and new must differ to tell them apart"
    );

    let moddir = scratch.path().join("lib/modules").join(KVER);
    let window = (full.as_micros() as u64).max(1000) * 2;
    let mut rng = Rng(seed);
    let (mut all_old, mut all_new, mut mixed, mut leftovers) = (0, 0, 0, 0);
    for run in 0..runs {
        place(&moddir, &old);
        let mut child = ours()
            .arg("-b")
            .arg(scratch.path())
            .arg("-C")
            .arg(tree.conf())
            .arg(KVER)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = read_outputs(&moddir);
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            old.keys().collect::<Vec<_>>(),
            "run {run}"
        );
        let mut saw_old = false;
        let mut saw_new = false;
        for (name, bytes) in &now {
            if *bytes == new[name] && *bytes != old[name] {
                saw_new = true;
            } else if *bytes == old[name] && *bytes != new[name] {
                saw_old = true;
            } else {
                assert!(
                    *bytes == old[name] || *bytes == new[name],
                    "run {run} (seed {seed}): {name} is neither the old nor the new file"
                );
            }
        }
        match (saw_old, saw_new) {
            (true, true) => mixed += 1,
            (_, true) => all_new += 1,
            _ => all_old += 1,
        }
        // A killed run may leave its temporary file behind (as kmod does); clear it.
        for name in temporaries(&moddir) {
            leftovers += 1;
            std::fs::remove_file(moddir.join(name)).unwrap();
        }
    }
    eprintln!(
        "atomicity: full run {full:?}; after kill: {all_old} all old, {mixed} mixed, \
         {all_new} all new; {leftovers} temporaries left by killed runs"
    );
    // The delays must have landed inside the writing phase at least once, or the test proved
    // nothing.
    assert!(mixed + all_new > 0, "no run got as far as writing");

    // A run that is not killed leaves no temporary behind.
    run_to_completion(scratch.path(), &tree.conf());
    assert_eq!(temporaries(&moddir), Vec::<String>::new());
    assert_eq!(read_outputs(&moddir), new);
}
