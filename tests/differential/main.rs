//! Differential testing: the same mutated inputs fed to Debian's kmod 34.2, kmod 30 and
//! depmod-rs (default mode and `--compat 30`), comparing every output file, stderr, stdout
//! and the exit status.
//!
//! Input kinds, one test each:
//!
//! * `config_files` — random depmod.d files: every command, missing and extra arguments,
//!   separators, comments, continuations, kernel-version patterns drawn from POSIX ERE
//!   syntax ([`ere`]), lines around the line buffer's sizes, odd bytes;
//! * `modules_order`, `modules_builtin`, `modules_builtin_modinfo` — slices of the real
//!   trees' files, mutated ([`mutate`]);
//! * `module_symvers`, `system_map` — files in the kernel's formats naming the tree's
//!   symbols, mutated, read with `-E` / `-F`;
//! * `module_modinfo` — `.modinfo` strings: aliases with brackets and wildcards, unbalanced
//!   brackets, device aliases, very long values, strings without `=`.
//!
//! `ere` also checks a table of ERE constructs, and the pattern of issue 16, against both kmods.
//!
//! Each case is a seed. `DEPMOD_RS_DIFF_CASES=N` runs N cases per kind (default: a few
//! dozen, for CI), from seed `DEPMOD_RS_DIFF_SEED` (default 1) on; `DEPMOD_RS_DIFF_CASE=S`
//! runs only seed S. A failure names the seed and kind, so
//! `DEPMOD_RS_DIFF_CASE=S DEPMOD_RS_KEEP_TMP=1 cargo test --release --test differential KIND`
//! reproduces it and keeps the tree. The references come from `scripts/fetch-references.sh`;
//! missing references fail the tests unless `DEPMOD_RS_SKIP_REAL=1`.

#[path = "../support/mod.rs"]
mod support;

mod ere;
mod inputs;
mod mutate;
mod tree;

use std::collections::BTreeMap;
use std::sync::Mutex;

use support::{env_u64, Compare, Invocation, Outcome, TempDir};
use tree::{CaseTree, Rng};

/// These trees take kmod milliseconds; anything near this is a hang.
const TIMEOUT_SECS: u64 = 30;

/// One kind of input.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Config,
    Order,
    Builtin,
    BuiltinModinfo,
    Symvers,
    SystemMap,
    Modinfo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Config => "config_files",
            Kind::Order => "modules_order",
            Kind::Builtin => "modules_builtin",
            Kind::BuiltinModinfo => "modules_builtin_modinfo",
            Kind::Symvers => "module_symvers",
            Kind::SystemMap => "system_map",
            Kind::Modinfo => "module_modinfo",
        }
    }

    /// Cases in a default run: configs get more, as they hold the regex patterns.
    fn default_cases(self) -> u64 {
        match self {
            Kind::Config => 120,
            _ => 40,
        }
    }

    fn generate(self, rng: &mut Rng) -> CaseTree {
        match self {
            Kind::Config => inputs::config_case(rng),
            Kind::Order => inputs::order_case(rng),
            Kind::Builtin => inputs::builtin_case(rng),
            Kind::BuiltinModinfo => inputs::builtin_modinfo_case(rng),
            Kind::Symvers => inputs::symvers_case(rng),
            Kind::SystemMap => inputs::system_map_case(rng),
            Kind::Modinfo => inputs::modinfo_case(rng),
        }
    }

    /// The generator for `seed` of this kind (kinds with the same seed differ).
    fn rng(self, seed: u64) -> Rng {
        Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self as u64 + 1) << 56)
    }
}

fn seeds(kind: Kind) -> Vec<u64> {
    if let Some(seed) = env_u64("DEPMOD_RS_DIFF_CASE") {
        return vec![seed];
    }
    let count = env_u64("DEPMOD_RS_DIFF_CASES").unwrap_or(kind.default_cases());
    let base = env_u64("DEPMOD_RS_DIFF_SEED").unwrap_or(1);
    (base..base + count).collect()
}

/// The documented deviation this outcome shows, if any: kmod 30's non-ASCII index strings.
/// kmod 34.2 stops with a FATAL at the first byte >= 0x80 in an index key or value; kmod 30's
/// check never fires (signed `char`) and it indexes out of bounds, which is undefined
/// behaviour. depmod-rs refuses such strings in every mode, with kmod 34's message
/// (docs/robustness.md).
fn non_ascii_deviation(kmod34: &Outcome, rs30: &Outcome) -> bool {
    let fatal = |o: &Outcome| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.starts_with("depmod: FATAL: Module index: bad character"))
            .map(str::to_string)
    };
    kmod34.status == Some(1)
        && rs30.status == Some(1)
        && fatal(kmod34).is_some()
        && fatal(kmod34) == fatal(rs30)
}

/// The outcome of a case on which kmod's behaviour is undefined: nothing is compared, but
/// both depmod-rs modes must finish.
fn undefined_in_kmod(
    summary: String,
    runs: &support::Runs,
    mut deviations: Vec<&'static str>,
    why: &'static str,
) -> (Vec<String>, Vec<&'static str>) {
    let mut problems: Vec<String> = [&runs.rs, &runs.rs30]
        .iter()
        .filter(|o| o.status.is_none())
        .map(|o| format!("{} did not finish", o.tool.label()))
        .collect();
    if !problems.is_empty() {
        problems.insert(0, summary);
    }
    deviations.push(why);
    (problems, deviations)
}

const UNSET_BUILTIN_KEY: &str = "kmod reads an unset key for a first modules.builtin line \
     with an empty basename (undefined behaviour)";

/// Whether the first `modules.builtin` line kmod accepts (its first byte a letter) has an
/// empty basename (it ends in `/`: a last line without newline, or a 4095-byte `fgets`
/// chunk). kmod's `path_to_modname` then leaves the key buffer untouched, and for the first
/// line that buffer was never written: kmod inserts whatever the stack held.
fn first_builtin_key_is_unset(data: &[u8]) -> bool {
    depmod_rs::internals::fgets_chunks(data, depmod_rs::internals::PATH_MAX)
        .into_iter()
        .find(|line| line.first().is_some_and(u8::is_ascii_alphabetic))
        .is_some_and(|line| line.last() == Some(&b'/'))
}

const ALIAS_OVERFLOW: &str = "kmod overflows its alias buffer on a bracket expression \
     reaching byte 4095 (undefined behaviour)";

/// Whether an `alias=` string of `module` makes kmod's `alias_normalize` write past its
/// 4096-byte buffer: it copies a bracket expression without checking the length, so a `[`
/// before byte 4095 whose `]` is at byte 4095 or later (or, unclosed, whose string ends at
/// byte 4097 or later) overflows the stack buffer.
fn overflows_kmod_alias_buffer(module: &tree::Module) -> bool {
    let raw: Vec<u8> = module
        .modinfo
        .iter()
        .flat_map(|(k, v)| [&k[..], b"=", &v[..], b"\0"].concat())
        .collect();
    raw.split(|&b| b == 0)
        .filter_map(|s| s.strip_prefix(b"alias="))
        .any(|alias| {
            let mut i = 0;
            while i < 4095 && i < alias.len() {
                match alias[i] {
                    b']' => return false,
                    b'[' => match alias[i..].iter().position(|&b| b == b']') {
                        Some(close) if i + close >= 4095 => return true,
                        Some(close) => i += close,
                        None => return alias.len() >= 4097,
                    },
                    _ => {}
                }
                i += 1;
            }
            false
        })
}

/// How one case came out: its problems (empty when explained), and the documented
/// deviations it showed.
fn check_case(kind: Kind, seed: u64) -> (Vec<String>, Vec<&'static str>) {
    let case = kind.generate(&mut kind.rng(seed));
    let summary = format!(
        "{} case {seed}: kver {}, {} modules, options {:?}, files {:?}, configs {:?}",
        kind.name(),
        case.kver,
        case.modules.len(),
        case.options,
        case.module_dir_files
            .iter()
            .map(|(n, d)| format!("{n} ({} bytes)", d.len()))
            .collect::<Vec<_>>(),
        case.configs
            .iter()
            .map(|(n, d)| format!("{n}: {:?}", String::from_utf8_lossy(d)))
            .collect::<Vec<_>>(),
    );
    let tmp = TempDir::new(&format!("diff-{}-{seed}", kind.name()));
    let written = match tree::write(&case, &tmp.path().join("root")) {
        Ok(w) => w,
        Err(e) => return (vec![summary, format!("cannot write tree: {e}")], Vec::new()),
    };
    let inv = Invocation {
        basedir: written.root.clone(),
        kver: case.kver.clone(),
        config: vec![written.config_dir.clone()],
        extra: written.options.clone(),
        timeout_secs: Some(TIMEOUT_SECS),
        ..Invocation::default()
    };
    let mut runs = support::run_four(&inv, tmp.path());
    let mut deviations = Vec::new();
    // kmod leaves the temporary file of the index it was writing when a FATAL stops it;
    // depmod-rs removes its own (docs/robustness.md). The rest must still agree.
    for o in [
        &mut runs.kmod34,
        &mut runs.rs,
        &mut runs.kmod30,
        &mut runs.rs30,
    ] {
        let before = o.files.len();
        o.files.retain(|name, _| !name.ends_with(".<temporary>"));
        o.modes.retain(|name, _| !name.ends_with(".<temporary>"));
        if o.files.len() != before && matches!(o.tool, support::Tool::Kmod34) {
            deviations.push("kmod 34 leaves its temporary file after a FATAL");
        }
    }
    let what = Compare {
        file_set: !written.options.iter().any(|o| o == "-n"),
        ..Compare::ALL
    };
    if case
        .module_dir_files
        .iter()
        .any(|(name, data)| name == "modules.builtin" && first_builtin_key_is_unset(data))
    {
        // kmod reads its uninitialised key buffer; depmod-rs must still finish.
        return undefined_in_kmod(summary, &runs, deviations, UNSET_BUILTIN_KEY);
    }
    if case.modules.iter().any(overflows_kmod_alias_buffer) {
        // kmod 34.2 crashed in testing; depmod-rs must still finish.
        return undefined_in_kmod(summary, &runs, deviations, ALIAS_OVERFLOW);
    }
    let [v34, v30] = runs.pair_differences(what);
    let mut problems = Vec::new();
    if runs.kmod34.status.is_none() {
        problems.push(format!("kmod 34 did not finish in {TIMEOUT_SECS} s"));
    }
    problems.extend(v34);
    if !v30.is_empty() {
        if non_ascii_deviation(&runs.kmod34, &runs.rs30) {
            // kmod 30 may exit 0, crash or loop here: nothing of its run is compared.
            deviations.push("kmod 30 indexes non-ASCII strings (undefined behaviour)");
        } else {
            if runs.kmod30.status.is_none() {
                problems.push(format!("kmod 30 did not finish in {TIMEOUT_SECS} s"));
            }
            problems.extend(v30);
        }
    }
    if !problems.is_empty() {
        problems.insert(0, summary);
    }
    (problems, deviations)
}

fn run_kind(kind: Kind) {
    if !support::require("kmod34") || !support::require("kmod30") {
        return;
    }
    if !matches!(kind, Kind::Config) && !inputs::require_real_trees() {
        return;
    }
    let seeds = seeds(kind);
    let deviations: Mutex<BTreeMap<&str, usize>> = Mutex::default();
    let with_deviations = Mutex::new(0usize);
    let start = std::time::Instant::now();
    let failures = support::check_seeds_in_parallel(&seeds, |seed| {
        let (problems, found) = check_case(kind, seed);
        if problems.is_empty() && !found.is_empty() {
            *with_deviations.lock().unwrap() += 1;
        }
        for d in found {
            *deviations.lock().unwrap().entry(d).or_default() += 1;
        }
        problems
    });
    let deviations = deviations.into_inner().unwrap();
    let explained = with_deviations.into_inner().unwrap();
    eprintln!(
        "differential {}: {} cases in {:.1} s: {} identical, {} explained by documented \
         deviations {:?}, {} unexplained",
        kind.name(),
        seeds.len(),
        start.elapsed().as_secs_f64(),
        seeds.len() - explained - failures.len(),
        explained,
        deviations,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        support::failure_report(&format!("{} cases", kind.name()), seeds.len(), &failures)
    );
}

#[test]
fn config_files() {
    run_kind(Kind::Config);
}

#[test]
fn modules_order() {
    run_kind(Kind::Order);
}

#[test]
fn modules_builtin() {
    run_kind(Kind::Builtin);
}

#[test]
fn modules_builtin_modinfo() {
    run_kind(Kind::BuiltinModinfo);
}

#[test]
fn module_symvers() {
    run_kind(Kind::Symvers);
}

#[test]
fn system_map() {
    run_kind(Kind::SystemMap);
}

#[test]
fn module_modinfo() {
    run_kind(Kind::Modinfo);
}
