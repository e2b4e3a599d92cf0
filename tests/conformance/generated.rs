//! Random module trees (`testkit::testgen`), one per seed: depmod-rs vs kmod 34 (with `-o`)
//! and depmod-rs --compat 30 vs kmod 30 (in place), all outputs, stderr, stdout, exit status.
//!
//! `DEPMOD_RS_SEEDS=N` sets the number of seeds (default 30), `DEPMOD_RS_SEED_BASE` the first
//! one (default 1); `DEPMOD_RS_SEED=S` runs only seed S. A failure names the seed, so
//! `DEPMOD_RS_SEED=S DEPMOD_RS_KEEP_TMP=1 cargo test --test conformance generated` reproduces it
//! and keeps the tree for inspection.

use testkit::testgen::{self, Options};

use crate::support::{self, Compare, Invocation, TempDir, Tool};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

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
    let with_outdir = |tool: Tool, out: &str| {
        let inv = Invocation {
            outdir: Some(tmp.path().join(out)),
            ..base.clone()
        };
        support::run(tool, &inv)
    };
    // The -o runs first: the in-place runs leave their outputs in the tree.
    let kmod34 = with_outdir(Tool::Kmod34, "out-kmod34");
    let rs = with_outdir(Tool::Rs, "out-rs");
    let kmod30 = support::run(Tool::Kmod30, &base);
    let rs30 = support::run(Tool::Rs30, &base);

    let mut problems = Vec::new();
    for reference in [&kmod34, &kmod30] {
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
    for (reference, subject) in [(&kmod34, &rs), (&kmod30, &rs30)] {
        let what = Compare {
            // -n writes to stdout only.
            file_set: !tree.options.iter().any(|o| o == "-n"),
            ..Compare::ALL
        };
        for d in support::differences(reference, subject, what) {
            problems.push(format!(
                "{} vs {}: {d}",
                subject.tool.label(),
                reference.tool.label()
            ));
        }
    }
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
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let chunks: Vec<Vec<u64>> = (0..workers)
        .map(|w| seeds.iter().copied().skip(w).step_by(workers).collect())
        .collect();
    let mut failures: Vec<(u64, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&seed| (seed, check_seed(seed)))
                        .filter(|(_, problems)| !problems.is_empty())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![(u64::MAX, vec!["worker panicked".into()])])
            })
            .collect()
    });
    failures.sort_by_key(|(seed, _)| *seed);
    if failures.is_empty() {
        eprintln!(
            "{} generated trees agree with kmod 34 and kmod 30",
            seeds.len()
        );
        return;
    }
    let mut report = format!(
        "{} of {} generated trees differ; failing seeds: {:?}\n",
        failures.len(),
        seeds.len(),
        failures.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
    for (seed, problems) in &failures {
        // One line per seed: its first difference, to see at a glance how many kinds there are.
        let first = problems.get(1).map_or("", String::as_str);
        let first: String = first.lines().take(3).collect::<Vec<_>>().join(" | ");
        report.push_str(&format!("  seed {seed}: {}\n", truncate(&first, 300)));
    }
    for (seed, problems) in failures.iter().take(5) {
        report.push_str(&format!("\n=== seed {seed}\n{}\n", problems.join("\n")));
    }
    panic!("{report}");
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
