//! Shared helpers for the conformance tests: locating the reference kmod binaries and module
//! trees, running depmod implementations on the same input, and comparing what they wrote.
//!
//! The references come from `scripts/fetch-references.sh` (cache in
//! `${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}`). When they are missing the tests fail, unless
//! `DEPMOD_RS_SKIP_REAL=1` is set.

#![allow(dead_code)] // each test crate uses a different subset

pub mod trie;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Outputs written by kmod 34 (and depmod-rs in its default mode), in kmod's write order.
pub const OUTPUTS_KMOD34: [&str; 11] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// Outputs written by kmod 30: the kmod 34 set without `modules.weakdep`.
pub const OUTPUTS_KMOD30: [&str; 10] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// Files in a module directory that depmod reads but never writes.
pub const INPUTS: [&str; 3] = [
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Root of the reference cache.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEPMOD_RS_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/depmod-rs")
}

/// Whether the user asked to skip everything that needs the real kmod binaries or trees.
pub fn skip_real() -> bool {
    std::env::var("DEPMOD_RS_SKIP_REAL").is_ok_and(|v| v == "1")
}

/// Checks that the cache item `item` (e.g. `kmod34`, `tree-bookworm-amd64`) is ready.
///
/// Returns `false` (after saying so on stderr) when it is missing and `DEPMOD_RS_SKIP_REAL=1`;
/// panics with instructions when it is missing otherwise.
pub fn require(item: &str) -> bool {
    let marker = cache_dir().join(format!("READY-{item}"));
    if marker.exists() {
        return true;
    }
    if skip_real() {
        eprintln!("SKIPPED (DEPMOD_RS_SKIP_REAL=1): reference {item} is not in the cache");
        return false;
    }
    panic!(
        "reference `{item}` is missing from {} — run scripts/fetch-references.sh \
         (or set DEPMOD_RS_SKIP_REAL=1 to skip tests that need real kmod)",
        cache_dir().display()
    );
}

/// Names of all module trees that are complete in the cache.
pub fn cached_trees() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache_dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_prefix("READY-tree-").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A module tree from the cache.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Cache name, e.g. `bookworm-amd64`.
    pub name: String,
    /// The `-b` root: modules are at `root/lib/modules/<kver>`.
    pub root: PathBuf,
    /// Kernel version.
    pub kver: String,
}

/// Opens the cached tree `name`; see [`require`] for what happens when it is missing.
pub fn tree(name: &str) -> Option<Tree> {
    if !require(&format!("tree-{name}")) {
        return None;
    }
    let root = cache_dir().join("trees").join(name);
    let kver = fs::read_to_string(root.join("KVER"))
        .unwrap_or_else(|e| panic!("{}/KVER: {e}", root.display()))
        .trim()
        .to_string();
    Some(Tree {
        name: name.to_string(),
        root,
        kver,
    })
}

/// A depmod implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Debian trixie's kmod 34.2.
    Kmod34,
    /// Debian bookworm's kmod 30.
    Kmod30,
    /// depmod-rs in its default (kmod 34) mode.
    Rs,
    /// depmod-rs with `--compat 30`.
    Rs30,
}

impl Tool {
    /// Program and leading arguments to run this tool.
    fn command(self) -> Command {
        let mut command = self.program();
        // Never the developer's /etc/depmod-rs.conf: built-in defaults only.
        command.env("DEPMOD_RS_CONFIG", "/dev/null");
        command
    }

    /// Program and leading arguments, before the environment is set.
    fn program(self) -> Command {
        match self {
            Tool::Kmod34 => Command::new(cache_dir().join("bin/depmod-kmod34")),
            Tool::Kmod30 => Command::new(cache_dir().join("bin/depmod-kmod30")),
            Tool::Rs => Command::new(depmod_rs_binary()),
            Tool::Rs30 => {
                let mut c = Command::new(depmod_rs_binary());
                c.args(["--compat", "30"]);
                c
            }
        }
    }

    /// Whether this tool behaves like kmod 30 (no `-o`, `-m`, `modules.weakdep`).
    pub fn is_v30(self) -> bool {
        matches!(self, Tool::Kmod30 | Tool::Rs30)
    }

    /// Files this tool must write.
    pub fn outputs(self) -> &'static [&'static str] {
        if self.is_v30() {
            &OUTPUTS_KMOD30
        } else {
            &OUTPUTS_KMOD34
        }
    }

    /// Short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Kmod34 => "kmod 34",
            Tool::Kmod30 => "kmod 30",
            Tool::Rs => "depmod-rs",
            Tool::Rs30 => "depmod-rs --compat 30",
        }
    }

    /// The reference kmod a depmod-rs mode is compared against.
    pub fn reference(self) -> Tool {
        if self.is_v30() {
            Tool::Kmod30
        } else {
            Tool::Kmod34
        }
    }
}

/// The depmod-rs binary under test. `DEPMOD_RS_BIN` overrides it, which is how the harness is
/// validated against the reference binaries themselves (`scripts/kmod-as-depmod-rs.sh`).
pub fn depmod_rs_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("DEPMOD_RS_BIN") {
        return PathBuf::from(bin);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_depmod-rs"))
}

/// What one depmod run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which implementation ran.
    pub tool: Tool,
    /// Command line, for reports.
    pub command: String,
    /// Exit code (`None` if killed by a signal or timed out).
    pub status: Option<i32>,
    /// Stdout bytes.
    pub stdout: Vec<u8>,
    /// Stderr with run-specific paths replaced by placeholders.
    pub stderr: Vec<u8>,
    /// Every `modules.*` file written (inputs excluded), by name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Permission bits of those files (kmod 30/34: 0644 & ~umask).
    pub modes: BTreeMap<String, u32>,
}

/// How to run depmod on an input.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `-b` root.
    pub basedir: PathBuf,
    /// Kernel version argument.
    pub kver: String,
    /// `-C` arguments (each run gets at least one, so the host's depmod.d never leaks in).
    pub config: Vec<PathBuf>,
    /// Further arguments placed before the version (e.g. `-m /foobar`, `-e`).
    pub extra: Vec<String>,
    /// Module directory relative to the root (`lib/modules` unless `-m` is used).
    pub moduledir: Option<String>,
    /// Pass `-o OUTDIR` (a fresh directory per run) instead of writing into the tree.
    pub outdir: Option<PathBuf>,
    /// Seconds after which the run is killed (kmod has inputs on which it never ends).
    pub timeout_secs: Option<u64>,
}

impl Invocation {
    /// Directory the outputs land in.
    pub fn output_dir(&self) -> PathBuf {
        let moduledir = self.moduledir.as_deref().unwrap_or("lib/modules");
        let moduledir = moduledir.trim_start_matches('/');
        self.outdir
            .as_deref()
            .unwrap_or(&self.basedir)
            .join(moduledir)
            .join(&self.kver)
    }
}

/// Removes every generated `modules.*` file from `dir` (inputs stay), so the next run starts clean.
pub fn clean_outputs(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_output_name(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// kmod's temporary files (`modules.alias.<pid>.<usec>.<sec>`, left behind by a FATAL) get a
/// fixed name so that two runs compare; depmod-rs may use any suffix after `modules.<name>.`
/// that kmod would not write as a real output.
pub fn normalize_temp_name(name: &str) -> String {
    if OUTPUTS_KMOD34.contains(&name) {
        return name.to_string();
    }
    for out in OUTPUTS_KMOD34 {
        if let Some(rest) = name.strip_prefix(out) {
            if rest.starts_with('.') && !rest.starts_with(".bin") {
                return format!("{out}.<temporary>");
            }
        }
    }
    name.to_string()
}

fn is_output_name(name: &str) -> bool {
    // Also catches kmod's temporary files (`modules.dep.<pid>.<usec>.<sec>`) left by a FATAL.
    name.starts_with("modules.") && !INPUTS.contains(&name)
}

/// Collects every generated `modules.*` file in `dir`.
pub fn collect_outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_output_name(&name) && entry.path().is_file() {
                let bytes = fs::read(entry.path())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                files.insert(normalize_temp_name(&name), bytes);
            }
        }
    }
    files
}

/// Permission bits of every generated `modules.*` file in `dir`.
pub fn collect_modes(dir: &Path) -> BTreeMap<String, u32> {
    use std::os::unix::fs::PermissionsExt;
    let mut modes = BTreeMap::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let (true, Ok(meta)) = (is_output_name(&name), entry.metadata()) {
                modes.insert(
                    normalize_temp_name(&name),
                    meta.permissions().mode() & 0o7777,
                );
            }
        }
    }
    modes
}

/// Runs `tool` as described by `inv` and collects what it wrote.
///
/// Outputs already in the output directory are removed first. Occurrences of the output root in
/// stderr are replaced with `<OUT>` so runs into different `-o` directories compare equal.
pub fn run(tool: Tool, inv: &Invocation) -> Outcome {
    let out_dir = inv.output_dir();
    clean_outputs(&out_dir);
    let mut cmd = tool.command();
    cmd.arg("-b").arg(&inv.basedir);
    if let Some(outdir) = &inv.outdir {
        cmd.arg("-o").arg(outdir);
    }
    for c in &inv.config {
        cmd.arg("-C").arg(c);
    }
    cmd.args(&inv.extra);
    cmd.arg(&inv.kver);
    cmd.env("LC_ALL", "C");
    let command = format!("{cmd:?}");
    let output = run_with_timeout(cmd, inv.timeout_secs)
        .unwrap_or_else(|e| panic!("cannot run {}: {e} ({command})", tool.label()));
    let mut stderr = without_address_lines(&output.stderr);
    if let Some(outdir) = &inv.outdir {
        stderr = replace_bytes(&stderr, outdir.as_os_str().as_encoded_bytes(), b"<OUT>");
    }
    Outcome {
        tool,
        command,
        status: output.status,
        stdout: output.stdout,
        stderr,
        files: collect_outputs(&out_dir),
        modes: collect_modes(&out_dir),
    }
}

/// Drops the INFO lines in which libkmod (shown from `-vv` on) prints heap addresses of its
/// context and logging function: they differ from run to run and depmod-rs has no such objects.
pub fn without_address_lines(stderr: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stderr.len());
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let address = text.starts_with("depmod: INFO: ")
            && (text.contains("custom logging function 0x") || text.contains(" context 0x"));
        if !address {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The four runs compared on one tree.
#[derive(Debug, Clone)]
pub struct Runs {
    /// kmod 34.2 with `-o`.
    pub kmod34: Outcome,
    /// depmod-rs with `-o`.
    pub rs: Outcome,
    /// kmod 30 in place.
    pub kmod30: Outcome,
    /// depmod-rs --compat 30 in place.
    pub rs30: Outcome,
}

/// Runs kmod 34 and depmod-rs, each into its own `-o` directory under `scratch`, then kmod 30
/// and depmod-rs --compat 30 (which have no `-o` to match) in the tree itself. All four see
/// the same tree, configuration and paths, so their messages compare byte for byte.
pub fn run_four(base: &Invocation, scratch: &Path) -> Runs {
    let with_outdir = |tool: Tool, out: &str| {
        let inv = Invocation {
            outdir: Some(scratch.join(out)),
            ..base.clone()
        };
        run(tool, &inv)
    };
    // The -o runs first: the in-place runs leave their outputs in the tree.
    let kmod34 = with_outdir(Tool::Kmod34, "out-kmod34");
    let rs = with_outdir(Tool::Rs, "out-rs");
    let kmod30 = run(Tool::Kmod30, base);
    let rs30 = run(Tool::Rs30, base);
    Runs {
        kmod34,
        rs,
        kmod30,
        rs30,
    }
}

impl Runs {
    /// (reference, subject) for each depmod-rs mode.
    pub fn pairs(&self) -> [(&Outcome, &Outcome); 2] {
        [(&self.kmod34, &self.rs), (&self.kmod30, &self.rs30)]
    }

    /// The differences of depmod-rs from kmod 34 and of depmod-rs --compat 30 from kmod 30,
    /// each labelled with both tools.
    pub fn pair_differences(&self, what: Compare) -> [Vec<String>; 2] {
        self.pairs().map(|(reference, subject)| {
            differences(reference, subject, what)
                .into_iter()
                .map(|d| {
                    format!(
                        "{} vs {}: {d}",
                        subject.tool.label(),
                        reference.tool.label()
                    )
                })
                .collect()
        })
    }

    /// Every difference of each depmod-rs mode from its reference, labelled with both.
    pub fn differences(&self, what: Compare) -> Vec<String> {
        self.pair_differences(what).concat()
    }
}

/// Output of a process that may have been killed after a timeout.
pub struct Finished {
    /// Exit code, `None` when killed.
    pub status: Option<i32>,
    /// Stdout bytes.
    pub stdout: Vec<u8>,
    /// Stderr bytes.
    pub stderr: Vec<u8>,
}

fn run_with_timeout(mut cmd: Command, timeout_secs: Option<u64>) -> std::io::Result<Finished> {
    use std::process::Stdio;
    let Some(secs) = timeout_secs else {
        let out = cmd.output()?;
        return Ok(Finished {
            status: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        });
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(Finished {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Replaces every occurrence of `from` in `haystack` with `to`.
pub fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// What to compare between two outcomes.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Compare stderr byte for byte.
    pub stderr: bool,
    /// Compare stdout byte for byte.
    pub stdout: bool,
    /// Compare the exit status.
    pub status: bool,
    /// Require a successful run to write exactly its kmod version's file set (off for `-n`).
    pub file_set: bool,
}

impl Compare {
    /// Everything.
    pub const ALL: Compare = Compare {
        stderr: true,
        stdout: true,
        status: true,
        file_set: true,
    };
}

/// Compares `actual` against `expected`; returns a human-readable list of differences (empty when
/// they agree). The file set must be the same, every file byte-identical, and each side must
/// have written exactly the files its kmod version writes (when it succeeded).
pub fn differences(expected: &Outcome, actual: &Outcome, what: Compare) -> Vec<String> {
    let mut diffs = Vec::new();
    if what.status && expected.status != actual.status {
        diffs.push(format!(
            "exit status: {} {:?}, {} {:?}",
            expected.tool.label(),
            expected.status,
            actual.tool.label(),
            actual.status
        ));
    }
    for outcome in [expected, actual] {
        if what.file_set && outcome.status == Some(0) {
            let names: Vec<&str> = outcome.files.keys().map(String::as_str).collect();
            if names != sorted(outcome.tool.outputs()) {
                diffs.push(format!(
                    "{} wrote {:?}, expected exactly {:?}",
                    outcome.tool.label(),
                    names,
                    sorted(outcome.tool.outputs())
                ));
            }
        }
    }
    let names: std::collections::BTreeSet<&String> =
        expected.files.keys().chain(actual.files.keys()).collect();
    for name in names {
        match (expected.files.get(name), actual.files.get(name)) {
            (Some(e), Some(a)) if e == a => {}
            (Some(e), Some(a)) => {
                diffs.push(format!("{name}: {}", describe_difference(name, e, a)))
            }
            (Some(_), None) => diffs.push(format!("{name}: missing from {}", actual.tool.label())),
            (None, Some(_)) => diffs.push(format!(
                "{name}: written by {} but not by {}",
                actual.tool.label(),
                expected.tool.label()
            )),
            (None, None) => {}
        }
    }
    for (name, mode) in &expected.modes {
        match actual.modes.get(name) {
            Some(m) if m != mode => {
                diffs.push(format!("{name}: mode {m:o}, expected {mode:o}"));
            }
            _ => {}
        }
    }
    if what.stdout && expected.stdout != actual.stdout {
        diffs.push(format!(
            "stdout: {}",
            describe_difference("stdout", &expected.stdout, &actual.stdout)
        ));
    }
    if what.stderr && expected.stderr != actual.stderr {
        let (line, e, a) = first_differing_line(&expected.stderr, &actual.stderr);
        let show = |l: Option<String>| l.map_or("<end>".to_string(), |l| format!("{l:?}"));
        diffs.push(format!(
            "stderr differs at line {line} ({} vs {} lines):\n    expected: {}\n    actual:   {}",
            expected.stderr.split(|&b| b == b'\n').count() - 1,
            actual.stderr.split(|&b| b == b'\n').count() - 1,
            show(e),
            show(a),
        ));
        if std::env::var("DEPMOD_RS_SHOW_STDERR").is_ok_and(|v| v == "1") {
            diffs.push(format!(
                "stderr of {}:\n{}stderr of {}:\n{}",
                expected.tool.label(),
                head(&expected.stderr, 200),
                actual.tool.label(),
                head(&actual.stderr, 200)
            ));
        }
    }
    diffs
}

fn sorted(names: &[&'static str]) -> Vec<&'static str> {
    let mut v = names.to_vec();
    v.sort_unstable();
    v
}

fn head(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.lines().take(lines) {
        let _ = writeln!(out, "  {line}");
    }
    if text.lines().count() > lines {
        let _ = writeln!(out, "  … ({} lines)", text.lines().count());
    }
    out
}

/// Describes how `actual` differs from `expected`: sizes, first differing byte offset, and the
/// first differing line (text) or entry (`.bin`, decoded by [`trie`]).
pub fn describe_difference(name: &str, expected: &[u8], actual: &[u8]) -> String {
    let offset = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let mut out = format!(
        "differ at byte {offset} (expected {} bytes, got {})",
        expected.len(),
        actual.len()
    );
    if name.ends_with(".bin") {
        out.push_str(&trie::describe_difference(expected, actual));
    } else {
        let (line_no, e, a) = first_differing_line(expected, actual);
        let _ = write!(
            out,
            "; first differing line {line_no}:\n    expected: {}\n    actual:   {}",
            e.map_or("<end of file>".into(), |l| format!("{l:?}")),
            a.map_or("<end of file>".into(), |l| format!("{l:?}")),
        );
    }
    out
}

/// 1-based number of the first line that differs, with both versions of it.
pub fn first_differing_line<'a>(
    expected: &'a [u8],
    actual: &'a [u8],
) -> (usize, Option<String>, Option<String>) {
    let mut e = expected.split_inclusive(|&b| b == b'\n');
    let mut a = actual.split_inclusive(|&b| b == b'\n');
    let mut n = 1;
    loop {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => {
                let show = |l: Option<&[u8]>| l.map(|l| String::from_utf8_lossy(l).into_owned());
                return (n, show(x), show(y));
            }
        }
    }
}

/// Panics with a readable report when `diffs` is not empty.
pub fn assert_no_differences(
    context: &str,
    expected: &Outcome,
    actual: &Outcome,
    diffs: &[String],
) {
    if diffs.is_empty() {
        return;
    }
    let mut msg = format!(
        "{context}: {} differs from {} in {} way(s)\n  reference: {}\n  subject:   {}\n",
        actual.tool.label(),
        expected.tool.label(),
        diffs.len(),
        expected.command,
        actual.command
    );
    for d in diffs {
        let _ = writeln!(msg, "- {d}");
    }
    panic!("{msg}");
}

/// The value of the environment variable `name` as a number, if it is set and parses.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `check` on every seed, spread over up to four threads; returns the seeds whose
/// check reported problems, in seed order.
pub fn check_seeds_in_parallel<F>(seeds: &[u64], check: F) -> Vec<(u64, Vec<String>)>
where
    F: Fn(u64) -> Vec<String> + Sync,
{
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let check = &check;
    let mut failures: Vec<(u64, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    seeds
                        .iter()
                        .copied()
                        .skip(w)
                        .step_by(workers)
                        .map(|seed| (seed, check(seed)))
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
    failures
}

/// A report of failing seeds: one line per seed (its first difference, to see at a glance
/// how many kinds there are), then the full problems of the first five. Each seed's first
/// problem is taken to be its summary.
pub fn failure_report(what: &str, total: usize, failures: &[(u64, Vec<String>)]) -> String {
    let mut report = format!(
        "{} of {total} {what} differ; failing seeds: {:?}\n",
        failures.len(),
        failures.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
    for (seed, problems) in failures {
        let first = problems.get(1).map_or("", String::as_str);
        let first: String = first.lines().take(3).collect::<Vec<_>>().join(" | ");
        let _ = writeln!(report, "  seed {seed}: {}", truncate(&first, 300));
    }
    for (seed, problems) in failures.iter().take(5) {
        let _ = write!(report, "\n=== seed {seed}\n{}\n", problems.join("\n"));
    }
    report
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

/// A temporary directory under the cargo target dir, removed on drop unless
/// `DEPMOD_RS_KEEP_TMP=1` (then its path is printed for inspection).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory whose name starts with `label`.
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conformance");
        fs::create_dir_all(&base).expect("create target tmp dir");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("DEPMOD_RS_KEEP_TMP").is_ok_and(|v| v == "1") {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Copies the directory tree `from` to `to` with hard links (`cp -al`), falling back to a plain
/// copy across file systems.
pub fn link_copy(from: &Path, to: &Path) {
    let linked = Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    if !linked {
        let _ = fs::remove_dir_all(to);
        let ok = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cp -a {} {} failed", from.display(), to.display());
    }
}

/// An empty directory to pass as `-C`, so no host configuration is read.
pub fn empty_config_dir(tmp: &TempDir) -> PathBuf {
    let dir = tmp.path().join("empty-depmod.d");
    fs::create_dir_all(&dir).expect("create empty config dir");
    dir
}
