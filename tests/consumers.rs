//! The real consumers read our indexes: Debian's `modprobe` and `modinfo` must answer every
//! question the same way from depmod-rs's indexes as from kmod's own.
//!
//! For a cached Debian kernel tree, two hard-linked copies are indexed, one by depmod-rs and
//! one by Debian's depmod. Then, through each copy:
//!
//! * `modprobe -d ROOT -S KVER -a -D M...` (show-depends: dependencies, soft dependencies,
//!   builtins) for **every** module of the tree, in batches;
//! * `modprobe -d ROOT -S KVER -a -R A...` (resolve alias) for an instance of every alias
//!   pattern (every Nth, a few thousand), e.g. `pci:v00008086d*` queried as `pci:v00008086d`;
//! * `modinfo -b ROOT -k KVER -F filename M...` for every module name and the builtins;
//!
//! and stdout, stderr (with the root paths normalised) and exit status must be identical.
//! Pairs: depmod-rs / kmod 34 read by kmod 34's tools; `depmod-rs --compat 30` / kmod 30 read
//! by kmod 30's tools; and depmod-rs's kmod 34 indexes / kmod 30's read by kmod 30's tools
//! (an older modprobe after a depmod upgrade).
//!
//! The kmod 34 pairing runs both depmods with `-v`, whose stdout (every dependency edge as it
//! is found) must be identical too.
//!
//! Tests fail when the reference cache is missing, unless `DEPMOD_RS_SKIP_REAL=1` (then they
//! say they skipped).

use std::path::{Path, PathBuf};
use std::process::Command;

use depmod_rs::names::modname_from_path;
use tempfile::TempDir;

/// Aliases queried per tree, at most.
const ALIAS_SAMPLE: usize = 4000;
/// Names per tool invocation.
const BATCH: usize = 250;

fn cache() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DEPMOD_RS_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".cache/depmod-rs"))
}

fn require(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("DEPMOD_RS_SKIP_REAL").is_some_and(|v| v == "1"),
        "{} is required but missing (run scripts/fetch-references.sh, or set DEPMOD_RS_SKIP_REAL=1 to skip)",
        path.display()
    );
    eprintln!(
        "SKIPPED (DEPMOD_RS_SKIP_REAL=1): {} not available",
        path.display()
    );
    None
}

/// The kmod tools of one release.
struct Tools {
    depmod: PathBuf,
    modprobe: PathBuf,
    modinfo: PathBuf,
}

fn kmod34() -> Option<Tools> {
    let bin = cache()?.join("bin");
    Some(Tools {
        depmod: require(bin.join("depmod-kmod34"))?,
        modprobe: require(bin.join("modprobe-kmod34"))?,
        modinfo: require(bin.join("modinfo-kmod34"))?,
    })
}

fn kmod30() -> Option<Tools> {
    let tools = Tools {
        depmod: require(PathBuf::from("/usr/sbin/depmod"))?,
        modprobe: require(PathBuf::from("/usr/sbin/modprobe"))?,
        modinfo: require(PathBuf::from("/usr/sbin/modinfo"))?,
    };
    let version = Command::new(&tools.depmod).arg("-V").output().ok()?;
    String::from_utf8_lossy(&version.stdout)
        .starts_with("kmod version 30")
        .then_some(tools)
}

/// A hard-linked copy of a cached tree, indexed by one depmod.
struct IndexedTree {
    dir: TempDir,
    kver: String,
    /// depmod's stdout (the `-v` lines), with the root shown as `{ROOT}`.
    stdout: String,
}

impl IndexedTree {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn module_dir(&self) -> PathBuf {
        self.root().join("lib/modules").join(&self.kver)
    }

    /// Copies the cached tree `name` (hard links) and runs `depmod ARGS -b ROOT KVER` on it.
    fn new(name: &str, depmod: &Path, args: &[&str]) -> Option<IndexedTree> {
        let tree = require(cache()?.join("trees").join(name))?;
        require(cache()?.join(format!("READY-tree-{name}")))?;
        let kver = std::fs::read_to_string(tree.join("KVER"))
            .ok()?
            .trim()
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("lib/modules");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        let copied = Command::new("cp")
            .arg("-al")
            .arg(tree.join("lib/modules").join(&kver))
            .arg(&modules)
            .status()
            .unwrap();
        assert!(copied.success());
        let out = Command::new(depmod)
            .env("DEPMOD_RS_CONFIG", "/dev/null")
            .args(args)
            .arg("-C")
            .arg(dir.path().join("conf"))
            .arg("-b")
            .arg(dir.path())
            .arg(&kver)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            depmod.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout)
            .replace(&dir.path().display().to_string(), "{ROOT}");
        Some(IndexedTree { dir, kver, stdout })
    }

    fn modules_dep(&self) -> Vec<u8> {
        std::fs::read(self.module_dir().join("modules.dep")).unwrap()
    }
}

/// One tool run's observable result, root paths normalised.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ask(tool: &Path, tree: &IndexedTree, args: &[String]) -> Answer {
    let out = Command::new(tool).args(args).output().unwrap();
    let root = tree.root().display().to_string();
    let normalise = |b: &[u8]| String::from_utf8_lossy(b).replace(&root, "{ROOT}");
    Answer {
        code: out.status.code(),
        stdout: normalise(&out.stdout),
        stderr: normalise(&out.stderr),
    }
}

/// Module names in modules.dep order.
fn module_names(dep: &[u8]) -> Vec<String> {
    dep.split(|&b| b == b'\n')
        .filter_map(|line| line.iter().position(|&b| b == b':').map(|c| &line[..c]))
        .map(|path| String::from_utf8_lossy(&modname_from_path(path)).into_owned())
        .collect()
}

/// A string the alias pattern matches: `*` dropped, `?` as `0`, a bracket as its first member.
fn alias_instance(pattern: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {}
            '?' => out.push('0'),
            '[' => {
                let mut set = String::new();
                loop {
                    match chars.next()? {
                        ']' if !set.is_empty() => break,
                        other => set.push(other),
                    }
                }
                let set = set.trim_start_matches(['!', '^']);
                out.push(set.chars().next()?);
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Every Nth alias pattern of modules.alias as an instance, at most [`ALIAS_SAMPLE`].
fn alias_queries(tree: &IndexedTree) -> Vec<String> {
    let text = std::fs::read_to_string(tree.module_dir().join("modules.alias")).unwrap();
    let patterns: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("alias "))
        .filter_map(|l| l.rsplit_once(' ').map(|(pattern, _)| pattern))
        .collect();
    let step = patterns.len().div_ceil(ALIAS_SAMPLE).max(1);
    patterns
        .iter()
        .step_by(step)
        .filter_map(|p| alias_instance(p))
        .collect()
}

/// Builtin module names from modules.builtin (a few; modinfo reports them as builtin).
fn builtin_names(tree: &IndexedTree) -> Vec<String> {
    let data = std::fs::read(tree.module_dir().join("modules.builtin")).unwrap_or_default();
    module_names(
        &data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .flat_map(|l| [l, b":\n"].concat())
            .collect::<Vec<u8>>(),
    )
    .into_iter()
    .step_by(7)
    .collect()
}

/// Asks the same questions through both trees (in parallel) and compares every answer.
fn compare_answers(tools: &Tools, ours: &IndexedTree, theirs: &IndexedTree, what: &str) {
    let names = module_names(&theirs.modules_dep());
    assert_eq!(
        names,
        module_names(&ours.modules_dep()),
        "{what}: modules.dep"
    );
    assert!(names.len() > 1000, "{what}: only {} modules", names.len());
    let aliases = alias_queries(theirs);
    assert!(
        aliases.len() > 1000,
        "{what}: only {} aliases",
        aliases.len()
    );
    let mut info_names = names.clone();
    info_names.extend(builtin_names(theirs));

    let questions = |tree: &IndexedTree| -> Vec<(PathBuf, Vec<String>)> {
        let root = tree.root().display().to_string();
        let mut list = Vec::new();
        for batch in names.chunks(BATCH) {
            let mut args: Vec<String> = ["-d", &root, "-S", &tree.kver, "-a", "-D"]
                .map(String::from)
                .to_vec();
            args.extend(batch.iter().cloned());
            list.push((tools.modprobe.clone(), args));
        }
        for batch in aliases.chunks(BATCH) {
            let mut args: Vec<String> = ["-d", &root, "-S", &tree.kver, "-a", "-R"]
                .map(String::from)
                .to_vec();
            args.extend(batch.iter().cloned());
            list.push((tools.modprobe.clone(), args));
        }
        for batch in info_names.chunks(BATCH) {
            let mut args: Vec<String> = ["-b", &root, "-k", &tree.kver, "-F", "filename"]
                .map(String::from)
                .to_vec();
            args.extend(batch.iter().cloned());
            list.push((tools.modinfo.clone(), args));
        }
        list
    };
    let answers = |tree: &IndexedTree| -> Vec<Answer> {
        questions(tree)
            .iter()
            .map(|(tool, args)| ask(tool, tree, args))
            .collect()
    };
    let (ours_answers, theirs_answers) = std::thread::scope(|s| {
        let ours_thread = s.spawn(|| answers(ours));
        let theirs_answers = answers(theirs);
        (ours_thread.join().unwrap(), theirs_answers)
    });
    let asked = questions(theirs);
    let mut answered_lines = 0;
    for ((ours_answer, theirs_answer), (tool, args)) in
        ours_answers.iter().zip(&theirs_answers).zip(&asked)
    {
        assert_eq!(
            ours_answer,
            theirs_answer,
            "{what}: {} {}",
            tool.display(),
            args[..7.min(args.len())].join(" ")
        );
        answered_lines += theirs_answer.stdout.lines().count();
    }
    // The questions were real ones: most got answers.
    assert!(
        answered_lines > names.len() + aliases.len() / 2,
        "{what}: only {answered_lines} answer lines"
    );
    eprintln!(
        "{what}: {} modules, {} aliases, {} modinfo names: identical answers ({answered_lines} lines)",
        names.len(),
        aliases.len(),
        info_names.len()
    );
}

fn depmod_rs() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_depmod-rs"))
}

#[test]
fn alias_instances_match_their_pattern() {
    assert_eq!(
        alias_instance("pci:v00008086d*sv*sd*bc0[23]sc*i*").as_deref(),
        Some("pci:v00008086dsvsdbc02sci")
    );
    assert_eq!(alias_instance("a?b[!x]").as_deref(), Some("a0bx"));
    assert_eq!(alias_instance("*"), None);
    assert_eq!(alias_instance("a[b"), None);
}

#[test]
fn bookworm_amd64_kmod34_tools_read_ours_as_kmod34s() {
    let Some(tools) = kmod34() else { return };
    // With -v: every dependency edge as it is found, on stdout, must be kmod's too.
    let Some(ours) = IndexedTree::new("bookworm-amd64", &depmod_rs(), &["-v"]) else {
        return;
    };
    let theirs = IndexedTree::new("bookworm-amd64", &tools.depmod, &["-v"]).unwrap();
    assert!(theirs.stdout.lines().count() > 1000);
    assert!(
        ours.stdout == theirs.stdout,
        "-v output differs from kmod 34's"
    );
    compare_answers(&tools, &ours, &theirs, "bookworm-amd64, kmod 34");
}

#[test]
fn bookworm_amd64_kmod30_tools_read_ours_as_kmod30s() {
    let Some(tools) = kmod30() else { return };
    let Some(ours) = IndexedTree::new("bookworm-amd64", &depmod_rs(), &["--compat", "30"]) else {
        return;
    };
    let theirs = IndexedTree::new("bookworm-amd64", &tools.depmod, &[]).unwrap();
    compare_answers(&tools, &ours, &theirs, "bookworm-amd64, kmod 30");
    // An older modprobe after a depmod upgrade: kmod 30 reads our kmod 34 layout the same.
    let upgraded = IndexedTree::new("bookworm-amd64", &depmod_rs(), &[]).unwrap();
    compare_answers(
        &tools,
        &upgraded,
        &theirs,
        "bookworm-amd64, kmod 30 tools on kmod 34 indexes",
    );
}

#[test]
fn trixie_amd64_kmod34_tools_read_ours_as_kmod34s() {
    let Some(tools) = kmod34() else { return };
    let Some(ours) = IndexedTree::new("trixie-amd64", &depmod_rs(), &[]) else {
        return;
    };
    let theirs = IndexedTree::new("trixie-amd64", &tools.depmod, &[]).unwrap();
    compare_answers(&tools, &ours, &theirs, "trixie-amd64, kmod 34");
}
