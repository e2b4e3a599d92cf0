//! Running depmod-rs and Debian's kmod 34.2 / kmod 30 on the same synthetic tree and comparing
//! what they did: exit status, stderr (paths normalised), and every `modules.*` file written.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use testkit::synth::SynthModule;

/// The kernel version every tree uses.
pub const KVER: &str = "4.4.4";

/// Our binary, named `depmod` so messages carry the same program name as kmod's.
pub fn ours() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_depmod-rs"));
    cmd.arg0("depmod").env("DEPMOD_RS_CONFIG", "/dev/null");
    cmd
}

/// Debian trixie's kmod 34.2 depmod from the reference cache, if present.
pub fn kmod34() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".cache/depmod-rs/bin/depmod-kmod34");
    path.exists().then_some(path)
}

/// Debian bookworm's kmod 30 depmod (installed as `/usr/sbin/depmod`), if present.
pub fn kmod30() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/sbin/depmod");
    let out = Command::new(&path).arg("-V").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .starts_with("kmod version 30")
        .then_some(path)
}

/// A plain x86-64 module.
pub fn x86() -> SynthModule {
    SynthModule::x86_64()
}

/// A module tree under a temporary root, with an empty config directory. Every tree starts
/// with one good module, `kernel/good.ko`, that must be indexed whatever else is broken.
pub struct Tree {
    root: TempDir,
}

impl Tree {
    /// A tree holding only `kernel/good.ko` (alias `good-alias`, exports `good_sym`).
    pub fn new() -> Self {
        let tree = Tree {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(tree.moddir()).unwrap();
        std::fs::create_dir_all(tree.conf()).unwrap();
        tree.module(
            "kernel/good.ko",
            x86()
                .with_modinfo("alias", "good-alias")
                .with_export("good_sym", None),
        );
        tree.module("kernel/user.ko", x86().with_import("good_sym", false, None));
        tree
    }

    /// The root given to `-b`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `<root>/lib/modules/<KVER>`.
    pub fn moddir(&self) -> PathBuf {
        self.root().join("lib/modules").join(KVER)
    }

    /// The directory given to `-C`.
    pub fn conf(&self) -> PathBuf {
        self.root().join("conf")
    }

    /// Write `data` at `rel` under the module directory.
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let path = self.moddir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    /// Write a config file into the `-C` directory.
    pub fn config(&self, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.conf().join(name), data).unwrap();
    }

    /// Write `module` at `rel`.
    pub fn module(&self, rel: &str, module: SynthModule) {
        self.write(rel, module.to_elf());
    }
}

/// What a run produced.
#[derive(Debug, PartialEq, Eq)]
pub struct RunResult {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Names in the output directory shaped like a temporary `modules.X.<pid>.<usec>.<sec>`.
    pub temporaries: Vec<String>,
}

impl RunResult {
    /// `modules.dep` as text (empty if it was not written).
    pub fn dep(&self) -> String {
        self.files
            .get("modules.dep")
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default()
    }

    /// The good modules of [`Tree::new`] are in `modules.dep`, with their dependency.
    pub fn assert_good_indexed(&self) {
        let dep = self.dep();
        assert!(
            dep.contains("kernel/good.ko:\n"),
            "good.ko missing from modules.dep:\n{dep}\nstderr:\n{}",
            self.stderr
        );
        assert!(
            dep.contains("kernel/user.ko: kernel/good.ko\n"),
            "user.ko's dependency missing:\n{dep}"
        );
        let alias = self.files.get("modules.alias").cloned().unwrap_or_default();
        assert!(String::from_utf8_lossy(&alias).contains("alias good-alias good\n"));
    }
}

/// Normalise stderr and read the outputs in `outdir`.
pub fn collect(out: Output, outdir: &Path, replace: &[(&Path, &str)]) -> RunResult {
    // libkmod's own INFO lines print heap addresses; they carry no information to compare.
    let mut stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| {
            !(l.starts_with("depmod: INFO: ")
                && (l.contains("custom logging function 0x") || l.contains(" context 0x")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for (from, to) in replace {
        stderr = stderr.replace(from.to_string_lossy().as_ref(), to);
    }
    let stderr = mask_temporary_names(&stderr);
    RunResult {
        code: out.status.code(),
        stdout: out.stdout,
        stderr,
        files: read_outputs(outdir),
        temporaries: temporaries(outdir),
    }
}

/// Temporary names carry the pid and the time: `modules.dep.1234.56789.1700000000` becomes
/// `modules.dep.TMP` wherever it appears in `text`.
pub fn mask_temporary_names(text: &str) -> String {
    const PREFIX: &str = "modules.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at + PREFIX.len()]);
        rest = &rest[at + PREFIX.len()..];
        // `<name>.<n>.<n>.<n>`, the name made of lowercase letters and dots.
        let run = rest
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'.')
            .count();
        if run < 2 || rest.as_bytes()[run - 1] != b'.' {
            continue;
        }
        if let Some(len) = three_numbers_len(&rest[run..]) {
            out.push_str(&rest[..run - 1]);
            out.push_str(".TMP");
            rest = &rest[run + len..];
        }
    }
    out.push_str(rest);
    out
}

/// Length of a leading `<digits>.<digits>.<digits>` in `text`.
fn three_numbers_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut len = 0;
    for part in 0..3 {
        if part > 0 {
            if bytes.get(len) != Some(&b'.') {
                return None;
            }
            len += 1;
        }
        let digits = bytes[len..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        len += digits;
    }
    Some(len)
}

#[test]
fn temporary_names_are_masked() {
    assert_eq!(
        mask_temporary_names("x /d/modules.dep.bin.12.345.1700000000: y modules.dep.1.2 modules."),
        "x /d/modules.dep.bin.TMP: y modules.dep.1.2 modules."
    );
}

/// Whether `name` looks like a temporary file of an index write: `modules.X.<n>.<n>.<n>`.
pub fn is_temporary(name: &str) -> bool {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    name.starts_with("modules.")
        && parts.len() == 4
        && parts[..3]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Every temporary-looking name in `dir`.
pub fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| is_temporary(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `modules.*` files depmod writes (not the inputs it reads) in `dir`.
pub fn read_outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.")
                && !matches!(
                    name.as_str(),
                    "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
                )
                && !is_temporary(&name)
                && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            {
                files.insert(name, std::fs::read(entry.path()).unwrap_or_default());
            }
        }
    }
    files
}

/// Which program to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// depmod-rs (kmod 34 rules).
    Ours,
    /// depmod-rs `--compat 30`.
    Ours30,
    /// Debian's kmod 34.2.
    Kmod34,
    /// Debian's kmod 30.
    Kmod30,
}

impl Program {
    /// A command for this program, or `None` if its binary is not available.
    pub fn command(self) -> Option<Command> {
        match self {
            Program::Ours => Some(ours()),
            Program::Ours30 => {
                let mut cmd = ours();
                cmd.args(["--compat", "30"]);
                Some(cmd)
            }
            Program::Kmod34 => kmod34().map(Command::new),
            Program::Kmod30 => kmod30().map(Command::new),
        }
    }
}

/// Copy `tree` to a fresh root and run `program` in place there (no `-o`, as kmod 30 must).
/// Returns `None` if the program is not available.
pub fn run_in_copy(program: Program, tree: &Tree, args: &[&str]) -> Option<RunResult> {
    let mut cmd = program.command()?;
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", tree.root().display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    cmd.arg("-b").arg(copy.path()).arg("-C").arg(tree.conf());
    cmd.args(args).arg(KVER);
    let out = cmd.output().unwrap();
    let outdir = copy.path().join("lib/modules").join(KVER);
    Some(collect(
        out,
        &outdir,
        &[(copy.path(), "ROOT"), (tree.root(), "ROOT")],
    ))
}

/// How a scenario is compared with kmod.
#[derive(Clone, Copy)]
pub struct Compare {
    /// Compare with kmod 34.2 (ours with default rules).
    pub kmod34: bool,
    /// Compare with kmod 30 (ours with `--compat 30`).
    pub kmod30: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            kmod34: true,
            kmod30: true,
        }
    }
}

/// Run depmod-rs and every available kmod on `tree` (each on its own copy, in place) and
/// require the same exit status, stderr and output files: ours against kmod 34.2, ours with
/// `--compat 30` against kmod 30. Returns our kmod-34-rules result.
pub fn assert_same_as_kmod(tree: &Tree, args: &[&str]) -> RunResult {
    assert_same_as_kmod_with(tree, args, Compare::default())
}

/// [`assert_same_as_kmod`] with a choice of what to compare.
pub fn assert_same_as_kmod_with(tree: &Tree, args: &[&str], how: Compare) -> RunResult {
    let ours34 = run_in_copy(Program::Ours, tree, args).unwrap();
    assert!(
        ours34.temporaries.is_empty(),
        "temporary files left: {:?}",
        ours34.temporaries
    );
    for (ours_program, kmod, wanted) in [
        (Program::Ours, Program::Kmod34, how.kmod34),
        (Program::Ours30, Program::Kmod30, how.kmod30),
    ] {
        if !wanted {
            continue;
        }
        let Some(theirs) = run_in_copy(kmod, tree, args) else {
            continue;
        };
        let ours = run_in_copy(ours_program, tree, args).unwrap();
        assert!(ours.temporaries.is_empty(), "{:?}", ours.temporaries);
        assert_same(&ours, &theirs, kmod);
    }
    ours34
}

/// Exit status, stderr, file set and file bytes must all be equal.
pub fn assert_same(ours: &RunResult, theirs: &RunResult, kmod: Program) {
    assert_eq!(
        ours.code,
        theirs.code,
        "exit status vs {kmod:?}:\nours:\n{}\ntheirs:\n{}",
        clip(&ours.stderr),
        clip(&theirs.stderr)
    );
    if ours.stderr != theirs.stderr {
        let (a, b): (Vec<_>, Vec<_>) = (
            ours.stderr.lines().collect(),
            theirs.stderr.lines().collect(),
        );
        let first = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "stderr vs {kmod:?} differs from line {first} ({} vs {} lines):\nours:   {:?}\ntheirs: {:?}",
            a.len(),
            b.len(),
            &a[first..a.len().min(first + 4)],
            &b[first..b.len().min(first + 4)]
        );
    }
    assert_eq!(
        ours.files.keys().collect::<Vec<_>>(),
        theirs.files.keys().collect::<Vec<_>>(),
        "file set vs {kmod:?}"
    );
    for (name, bytes) in &theirs.files {
        assert!(ours.files[name] == *bytes, "{name} differs from {kmod:?}");
    }
}

/// Run a shell script; panics if it cannot start.
pub fn sh(script: &str) -> Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

/// At most the first 2000 characters of a message, for assertion texts.
pub fn clip(text: &str) -> &str {
    match text.char_indices().nth(2000) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
