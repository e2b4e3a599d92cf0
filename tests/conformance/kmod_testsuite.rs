//! kmod's own `test-depmod` scenarios (spec §14), run outside kmod's LD_PRELOAD harness: each
//! scenario is copied to a temp dir and run as `depmod -b S -C S/etc/depmod.d [options] 4.4.4`.
//!
//! Every implementation runs on the same prepared copy, one after the other, so absolute paths
//! (external modules, messages) are identical. depmod-rs is compared with the real kmod on all
//! outputs, stderr, stdout and exit status; upstream's `correct-*` files are a second opinion.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, Compare, Invocation, Outcome, TempDir, Tool};

const KVER: &str = "4.4.4";

/// Where the fixtures live (read-only; copied before use): `DEPMOD_RS_KMOD_TESTSUITE`, else
/// `../shared/kmod-testsuite/rootfs` beside the checkout, else `/work/shared/...`.
fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEPMOD_RS_KMOD_TESTSUITE") {
        return PathBuf::from(dir);
    }
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/kmod-testsuite/rootfs"),
        PathBuf::from("/work/shared/kmod-testsuite/rootfs"),
    ];
    candidates
        .iter()
        .find(|d| d.is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

/// One upstream test case.
struct Scenario {
    /// Upstream test name (`testsuite/test-depmod.c`).
    test: &'static str,
    /// Fixture directory under `rootfs/`.
    fixture: &'static str,
    /// Whether kmod 30 can run it (no `-o`, `-m`).
    in_v30: bool,
    /// Extra options; `{S}` is replaced by the scenario copy's path.
    options: &'static [&'static str],
    /// `-m` value, if any (for locating outputs).
    moduledir: Option<&'static str>,
    /// `-o` under the scenario copy, if any.
    outdir: Option<&'static str>,
    /// Upstream's expectations: (file under the copy, generated file name). `stderr` compares stderr.
    correct: &'static [(&'static str, &'static str)],
    /// The lowest kmod release the upstream test exists in.
    since: u32,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        test: "depmod_modules_order_for_compressed",
        fixture: "modules-order-compressed",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.alias", "modules.alias")],
        since: 30,
    },
    Scenario {
        test: "depmod_modules_outdir",
        fixture: "modules-outdir",
        in_v30: false,
        options: &["-o", "{S}/outdir"],
        moduledir: None,
        outdir: Some("outdir"),
        correct: &[
            ("correct-modules.dep", "modules.dep"),
            ("correct-modules.alias", "modules.alias"),
        ],
        since: 31,
    },
    Scenario {
        test: "depmod_search_order_simple",
        fixture: "search-order-simple",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.dep", "modules.dep")],
        since: 30,
    },
    Scenario {
        test: "depmod_another_moddir",
        fixture: "another-moddir",
        in_v30: false,
        options: &["-m", "/foobar"],
        moduledir: Some("/foobar"),
        outdir: None,
        correct: &[("correct-modules.dep", "modules.dep")],
        since: 34,
    },
    Scenario {
        test: "depmod_another_moddir_relative",
        fixture: "another-moddir",
        in_v30: false,
        options: &["-m", "foobar2"],
        moduledir: Some("foobar2"),
        outdir: None,
        correct: &[("correct-modules.dep", "modules.dep")],
        since: 34,
    },
    Scenario {
        test: "depmod_search_order_same_prefix",
        fixture: "search-order-same-prefix",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.dep", "modules.dep")],
        since: 30,
    },
    Scenario {
        test: "depmod_detect_loop",
        fixture: "detect-loop",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("correct.txt", "stderr")],
        since: 30,
    },
    Scenario {
        test: "depmod_search_order_external_first",
        fixture: "search-order-external-first",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.dep", "modules.dep")],
        since: 30,
    },
    Scenario {
        test: "depmod_search_order_external_last",
        fixture: "search-order-external-last",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.dep", "modules.dep")],
        since: 30,
    },
    Scenario {
        test: "depmod_search_order_override",
        fixture: "search-order-override",
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[("lib/modules/4.4.4/correct-modules.dep", "modules.dep")],
        since: 30,
    },
    Scenario {
        test: "depmod_check_weakdep",
        fixture: "check-weakdep",
        // kmod 30 runs it fine (it just writes no modules.weakdep), so compare there too.
        in_v30: true,
        options: &[],
        moduledir: None,
        outdir: None,
        correct: &[(
            "lib/modules/4.4.4/correct-modules.weakdep",
            "modules.weakdep",
        )],
        since: 33,
    },
];

/// Upstream keeps `/lib/modules/external` in the configs and redirects it with LD_PRELOAD.
const EXTERNAL_PATH: &str = "/lib/modules/external";

/// Copies the fixture and applies upstream's setup steps; returns the copy's path.
fn prepare(fixture: &str, tmp: &TempDir) -> PathBuf {
    let src = fixtures_dir().join(fixture);
    assert!(
        src.is_dir(),
        "kmod testsuite fixture {} is missing (set DEPMOD_RS_KMOD_TESTSUITE, or \
         DEPMOD_RS_SKIP_REAL=1 to skip)",
        src.display()
    );
    let dest = tmp.path().join(fixture);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dest)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cp -a {} failed", src.display());
    // The copy must be writable even if the fixtures are read-only.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&dest)
        .status();

    let external = dest.join("lib/modules/external");
    let external_abs = external.to_string_lossy().into_owned();
    let conf = dest.join("etc/depmod.d/external.conf");
    if let Ok(text) = fs::read_to_string(&conf) {
        fs::write(&conf, text.replace(EXTERNAL_PATH, &external_abs)).expect("rewrite conf");
    }
    for correct in walk_files(&dest) {
        let name = correct
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("correct")) {
            if let Ok(text) = fs::read_to_string(&correct) {
                let rewritten = text.replace(EXTERNAL_PATH, &external_abs);
                fs::write(&correct, rewritten).expect("rewrite expectation");
            }
        }
    }
    if fixture == "modules-order-compressed" {
        // upstream scripts/setup-rootfs.sh
        let base = dest.join("lib/modules/4.4.4/kernel/drivers");
        compress(&base.join("block/cciss.ko"), &["gzip"]);
        compress(&base.join("scsi/scsi_mod.ko"), &["xz"]);
        compress(&base.join("scsi/hpsa.ko"), &["zstd", "-q", "--rm"]);
    }
    dest
}

fn compress(file: &Path, command: &[&str]) {
    let ok = Command::new(command[0])
        .args(&command[1..])
        .arg(file)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} {} failed", command.join(" "), file.display());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn invocation(s: &Scenario, root: &Path) -> Invocation {
    let root_str = root.to_string_lossy();
    Invocation {
        basedir: root.to_path_buf(),
        kver: KVER.into(),
        config: vec![root.join("etc/depmod.d")],
        extra: s
            .options
            .iter()
            .map(|o| o.replace("{S}", &root_str))
            .collect(),
        moduledir: s.moduledir.map(str::to_string),
        outdir: None, // -o is passed through `extra` exactly as upstream does
        timeout_secs: Some(60),
    }
}

/// Output directory of a scenario run (with `-o` given in the options).
fn output_dir(s: &Scenario, root: &Path) -> PathBuf {
    let mut inv = invocation(s, root);
    if let Some(out) = s.outdir {
        inv.outdir = Some(root.join(out));
    }
    inv.output_dir()
}

fn run_scenario(tool: Tool, s: &Scenario, root: &Path) -> Outcome {
    let inv = invocation(s, root);
    let out_dir = output_dir(s, root);
    support::clean_outputs(&out_dir);
    let mut outcome = support::run(tool, &inv);
    // `run` collected from the default location; use the scenario's real output directory.
    outcome.files = support::collect_outputs(&out_dir);
    outcome.modes = support::collect_modes(&out_dir);
    outcome
}

/// Checks `outcome` against the upstream expectations of the scenario.
fn check_correct(s: &Scenario, root: &Path, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    for (correct, generated) in s.correct {
        let expected = fs::read(root.join(correct))
            .unwrap_or_else(|e| panic!("{}: {e}", root.join(correct).display()));
        let expected = upstream_expectation(s, expected);
        let actual = if *generated == "stderr" {
            Some(&outcome.stderr)
        } else {
            outcome.files.get(*generated)
        };
        match actual {
            Some(a) if *a == expected => {}
            Some(a) => problems.push(format!(
                "{}: {generated} != upstream {correct}: {}",
                outcome.tool.label(),
                support::describe_difference(generated, &expected, a)
            )),
            None => problems.push(format!("{}: no {generated}", outcome.tool.label())),
        }
    }
    problems
}

/// Upstream's expectation adjusted to Debian's builds: they have no zlib, so the gzip-compressed
/// `cciss.ko.gz` is not a module there, while upstream (built with zlib) expects its aliases.
fn upstream_expectation(s: &Scenario, expected: Vec<u8>) -> Vec<u8> {
    if s.fixture != "modules-order-compressed" {
        return expected;
    }
    expected
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.ends_with(b" cciss\n"))
        .flatten()
        .copied()
        .collect()
}

fn check_scenario(s: &Scenario) -> Vec<String> {
    let tmp = TempDir::new(&format!("kmodtest-{}", s.test));
    let root = prepare(s.fixture, &tmp);
    let mut problems = Vec::new();
    let mut pairs = vec![(Tool::Kmod34, Tool::Rs)];
    if s.in_v30 {
        pairs.push((Tool::Kmod30, Tool::Rs30));
    }
    for (reference_tool, subject_tool) in pairs {
        let reference = run_scenario(reference_tool, s, &root);
        let subject = run_scenario(subject_tool, s, &root);
        let version = if reference_tool.is_v30() { 30 } else { 34 };
        if s.since <= version {
            for p in check_correct(s, &root, &reference) {
                problems.push(format!("reference disagrees with upstream: {p}"));
            }
            problems.extend(check_correct(s, &root, &subject));
        }
        for d in support::differences(&reference, &subject, Compare::ALL) {
            problems.push(format!(
                "{} vs {}: {d}",
                subject.tool.label(),
                reference.tool.label()
            ));
        }
    }
    problems
}

fn assert_scenario(test: &str) {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    if support::skip_real() && !fixtures_dir().is_dir() {
        eprintln!("SKIPPED (DEPMOD_RS_SKIP_REAL=1): no kmod testsuite fixtures");
        return;
    }
    let s = SCENARIOS
        .iter()
        .find(|s| s.test == test)
        .unwrap_or_else(|| panic!("no scenario {test}"));
    let problems = check_scenario(s);
    assert!(
        problems.is_empty(),
        "{test} ({}): {} problem(s):\n{}",
        s.fixture,
        problems.len(),
        problems.join("\n")
    );
}

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                assert_scenario(stringify!($name));
            }
        )*
    };
}

scenario_tests!(
    depmod_modules_order_for_compressed,
    depmod_modules_outdir,
    depmod_search_order_simple,
    depmod_another_moddir,
    depmod_another_moddir_relative,
    depmod_search_order_same_prefix,
    depmod_detect_loop,
    depmod_search_order_external_first,
    depmod_search_order_external_last,
    depmod_search_order_override,
    depmod_check_weakdep,
);

/// Every scenario in the table has a test.
#[test]
fn all_scenarios_have_tests() {
    assert_eq!(SCENARIOS.len(), 11);
}
