//! Real Debian kernel module trees: depmod-rs vs kmod 34 (with `-o`) and depmod-rs --compat 30
//! vs kmod 30 (in place, on a hard-linked copy of the tree, as kmod 30 has no `-o`).

use crate::support::{self, trie, Compare, Invocation, Outcome, TempDir, Tool, Tree};

/// kmod needs at most ~10 s per tree even on a loaded machine; a run this long is a hang.
const TIMEOUT_SECS: u64 = 600;

/// Runs all four implementations on `tree` and returns every difference found.
fn check_tree(tree: &Tree) -> Vec<String> {
    let tmp = TempDir::new(&format!("tree-{}", tree.name));
    let config = support::empty_config_dir(&tmp);
    let mut problems = Vec::new();

    // kmod 34 and depmod-rs write into separate output directories; the tree is only read.
    let with_outdir = |tool: Tool, out: &str| {
        let inv = Invocation {
            basedir: tree.root.clone(),
            kver: tree.kver.clone(),
            config: vec![config.clone()],
            outdir: Some(tmp.path().join(out)),
            timeout_secs: Some(TIMEOUT_SECS),
            ..Invocation::default()
        };
        support::run(tool, &inv)
    };
    let kmod34 = with_outdir(Tool::Kmod34, "out-kmod34");
    let rs = with_outdir(Tool::Rs, "out-rs");

    // kmod 30 has no -o: both v30 runs write into the same hard-linked copy, one after the other.
    let copy = tmp.path().join("root");
    support::link_copy(&tree.root, &copy);
    let in_place = Invocation {
        basedir: copy,
        kver: tree.kver.clone(),
        config: vec![config.clone()],
        timeout_secs: Some(TIMEOUT_SECS),
        ..Invocation::default()
    };
    let kmod30 = support::run(Tool::Kmod30, &in_place);
    let rs30 = support::run(Tool::Rs30, &in_place);

    problems.extend(reference_sanity(&kmod34, &kmod30));
    for (reference, subject) in [(&kmod34, &rs), (&kmod30, &rs30)] {
        for d in support::differences(reference, subject, Compare::ALL) {
            problems.push(format!(
                "{} vs {}: {d}",
                subject.tool.label(),
                reference.tool.label()
            ));
        }
    }
    problems
}

/// The references must succeed quietly and agree with each other where they are documented to
/// (reference-setup.md): identical text files, `.bin` files with the same content. This guards the
/// harness itself: a broken run or collection step shows up here first.
fn reference_sanity(kmod34: &Outcome, kmod30: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    for o in [kmod34, kmod30] {
        if o.status != Some(0) {
            problems.push(format!(
                "reference {} failed ({:?}): {}",
                o.tool.label(),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        if o.files.len() != o.tool.outputs().len() {
            problems.push(format!(
                "reference {} wrote {:?}",
                o.tool.label(),
                o.files.keys()
            ));
        }
    }
    // The trie reader used for .bin reports must itself be right: every modules.dep line is
    // the value of one modules.dep.bin entry.
    for o in [kmod34, kmod30] {
        if let (Some(dep), Some(bin)) = (o.files.get("modules.dep"), o.files.get("modules.dep.bin"))
        {
            let mut lines: Vec<&[u8]> = dep
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let mut values: Vec<Vec<u8>> = match trie::decode(bin) {
                Ok(entries) => entries.into_iter().map(|e| e.value).collect(),
                Err(e) => {
                    problems.push(format!(
                        "{}: modules.dep.bin does not decode: {e}",
                        o.tool.label()
                    ));
                    continue;
                }
            };
            lines.sort_unstable();
            values.sort_unstable();
            if lines.len() != values.len()
                || lines.iter().zip(&values).any(|(l, v)| *l != v.as_slice())
            {
                problems.push(format!(
                    "{}: decoded modules.dep.bin ({} values) does not match modules.dep ({} lines)",
                    o.tool.label(),
                    values.len(),
                    lines.len()
                ));
            }
        }
    }
    for name in support::OUTPUTS_KMOD30 {
        let (Some(a), Some(b)) = (kmod34.files.get(name), kmod30.files.get(name)) else {
            continue;
        };
        if name.ends_with(".bin") {
            match (trie::decode(a), trie::decode(b)) {
                (Ok(x), Ok(y)) if x == y => {}
                (x, y) => problems.push(format!(
                    "references disagree on the content of {name}: {}",
                    match (x, y) {
                        (Ok(_), Ok(_)) => trie::describe_difference(a, b),
                        (Err(e), _) | (_, Err(e)) => format!("decode error {e}"),
                    }
                )),
            }
        } else if a != b {
            problems.push(format!(
                "references disagree on {name}: {}",
                support::describe_difference(name, a, b)
            ));
        }
    }
    problems
}

fn assert_tree_conforms(name: &str) {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    let Some(tree) = support::tree(name) else {
        return;
    };
    let problems = check_tree(&tree);
    assert!(
        problems.is_empty(),
        "tree {name} ({}): {} problem(s):\n{}",
        tree.kver,
        problems.len(),
        problems.join("\n")
    );
}

macro_rules! tree_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_tree_conforms($name);
            }
        )*
        /// Trees every run must have.
        const REQUIRED: &[&str] = &[$($name),*];
    };
}

tree_tests! {
    tree_bookworm_amd64 => "bookworm-amd64",
    tree_trixie_amd64 => "trixie-amd64",
    tree_bookworm_i386 => "bookworm-i386",
    tree_bookworm_s390x => "bookworm-s390x",
    tree_bookworm_arm64 => "bookworm-arm64",
    tree_bookworm_armhf => "bookworm-armhf",
    tree_bookworm_arm64_zst => "bookworm-arm64-zst",
}

/// Any further trees in the cache (optional architectures).
#[test]
fn tree_others_in_cache() {
    if support::skip_real() && !support::cache_dir().exists() {
        return;
    }
    let mut failures = Vec::new();
    for name in support::cached_trees() {
        if REQUIRED.contains(&name.as_str()) {
            continue;
        }
        if let Err(e) = std::panic::catch_unwind(|| assert_tree_conforms(&name)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| format!("tree {name} failed"));
            failures.push(msg);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
