//! Random module trees (`testkit::testgen`), one per seed: depmod-rs vs kmod 34 (with `-o`)
//! and depmod-rs --compat 30 vs kmod 30 (in place), all outputs, stderr, stdout, exit status.
//!
//! `DEPMOD_RS_SEEDS=N` sets the number of seeds (default 30), `DEPMOD_RS_SEED_BASE` the first
//! one (default 1); `DEPMOD_RS_SEED=S` runs only seed S. A failure names the seed, so
//! `DEPMOD_RS_SEED=S DEPMOD_RS_KEEP_TMP=1 cargo test --test conformance generated` reproduces it
//! and keeps the tree for inspection.

use testkit::testgen::{self, Options};

use crate::support::{self, env_u64, Compare, Invocation, TempDir};

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("DEPMOD_RS_SEED") {
        return vec![seed];
    }
    let count = env_u64("DEPMOD_RS_SEEDS").unwrap_or(30);
    let base = env_u64("DEPMOD_RS_SEED_BASE").unwrap_or(1);
    (base..base + count).collect()
}

/// kmod finishes these small trees in milliseconds; anything near this means it hangs.
const TIMEOUT_SECS: u64 = 30;

/// Checks one seed; returns its problems (empty when everything agrees).
fn check_seed(seed: u64) -> Vec<String> {
    let spec = testgen::generate(seed, &Options::default());
    let tmp = TempDir::new(&format!("seed-{seed}"));
    let root = tmp.path().join("root");
    let tree = match testgen::write_tree(&spec, &root) {
        Ok(tree) => tree,
        Err(e) => return vec![format!("cannot write tree: {e}")],
    };
    let base = Invocation {
        basedir: tree.root.clone(),
        kver: tree.kver.clone(),
        config: vec![tree.config_dir.clone()],
        extra: tree.options.clone(),
        timeout_secs: Some(TIMEOUT_SECS),
        ..Invocation::default()
    };
    let runs = support::run_four(&base, tmp.path());
    let (kmod34, kmod30) = (&runs.kmod34, &runs.kmod30);

    let mut problems = Vec::new();
    for reference in [kmod34, kmod30] {
        if reference.status.is_none() {
            problems.push(format!(
                "{} did not finish in {TIMEOUT_SECS} s: the generator made an input kmod \
                 hangs on",
                reference.tool.label()
            ));
        }
    }
    // A planned cycle may vanish (a ring member excluded or in an unconfigured external
    // directory), but an unplanned failure means the generator's DAG rules broke.
    if !spec.has_cycle && kmod34.status != Some(0) {
        problems.push(format!(
            "kmod 34 failed ({:?}) on a tree planned without cycles",
            kmod34.status
        ));
    }
    problems.extend(runs.differences(Compare {
        // -n writes to stdout only.
        file_set: !tree.options.iter().any(|o| o == "-n"),
        ..Compare::ALL
    }));
    if !problems.is_empty() {
        problems.insert(0, spec.summary());
    }
    problems
}

#[test]
fn generated_trees() {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    let seeds = seeds();
    let failures = support::check_seeds_in_parallel(&seeds, check_seed);
    if failures.is_empty() {
        eprintln!(
            "{} generated trees agree with kmod 34 and kmod 30",
            seeds.len()
        );
        return;
    }
    panic!(
        "{}",
        support::failure_report("generated trees", seeds.len(), &failures)
    );
}
