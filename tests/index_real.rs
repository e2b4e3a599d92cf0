//! Conformance on real kernel module trees: kmod's own `.bin` files (kmod 30 post-order,
//! kmod 34 pre-order) must decode, re-encode byte for byte, and agree with each other; and
//! wildcard lookups must return what Debian's `modprobe -R` prints.
//!
//! References come from the cache filled by `scripts/fetch-references.sh`
//! (`$HOME/.cache/depmod-rs`, or `$DEPMOD_RS_CACHE`). Without them this test fails, unless
//! `DEPMOD_RS_SKIP_REAL=1` is set, in which case it says loudly that it skipped.
//! kmod's outputs are generated once per tree into the target directory and reused.

use std::path::{Path, PathBuf};
use std::process::Command;

use depmod_rs::index::{Index, IndexBuilder, NodeOrder};
use depmod_rs::names::normalize_alias;

const BIN_FILES: [&str; 5] = [
    "modules.dep.bin",
    "modules.alias.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

fn cache_dir() -> PathBuf {
    match std::env::var_os("DEPMOD_RS_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/depmod-rs")
        }
    }
}

/// Whether the real-tree tests should be skipped (and say so).
fn skip(reason: &str) -> bool {
    if std::env::var_os("DEPMOD_RS_SKIP_REAL").is_some_and(|v| v == "1") {
        eprintln!("==================================================================");
        eprintln!("SKIPPED real-tree index conformance (DEPMOD_RS_SKIP_REAL=1): {reason}");
        eprintln!("==================================================================");
        return true;
    }
    false
}

struct Tree {
    name: String,
    root: PathBuf,
    kver: String,
}

/// Every tree in the cache with a READY marker.
fn trees() -> Vec<Tree> {
    let cache = cache_dir();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache.join("trees")) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !cache.join(format!("READY-tree-{name}")).exists() {
            continue;
        }
        let root = entry.path();
        let kver = std::fs::read_to_string(root.join("KVER"))
            .expect("tree has KVER")
            .trim()
            .to_string();
        out.push(Tree { name, root, kver });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn run(cmd: &mut Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The directory holding `modules.dep.bin` somewhere under `dir`.
fn find_outputs(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("modules.dep.bin").is_file() {
            return Some(d);
        }
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let ft = e.file_type().ok()?;
            if ft.is_dir() && e.file_name() != "kernel" {
                stack.push(e.path());
            }
        }
    }
    None
}

struct Outputs {
    /// kmod 30's root (a hard-linked copy of the tree with its outputs) and output dir.
    kmod30_root: PathBuf,
    kmod30: PathBuf,
    kmod34: PathBuf,
}

/// Sorted lines of a text file (module sets are compared without their order).
fn sorted_lines(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap_or_default();
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines.sort();
    lines
}

/// Runs kmod 30 (on a `cp -al` copy, as it has no `-o`) and kmod 34 (`-o`) once per tree and
/// keeps the result for later runs. If the two disagree on the module set (the tree changed
/// while it was being copied), it tries again before giving up.
fn kmod_outputs(tree: &Tree) -> Outputs {
    // The tests of this file run in parallel threads and share the per-tree work directory:
    // one prepares it while the others wait, instead of deleting it under each other.
    static PREPARING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = PREPARING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bin = cache_dir().join("bin");
    let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("index-real")
        .join(&tree.name);
    let empty_conf = work.join("empty-depmod.d");
    let kmod30_root = work.join("kmod30-root");
    let kmod34_out = work.join("kmod34-out");
    let stamp = work.join("DONE");
    let outputs = || Outputs {
        kmod30: find_outputs(&kmod30_root).expect("kmod 30 wrote modules.dep.bin"),
        kmod34: find_outputs(&kmod34_out).expect("kmod 34 wrote modules.dep.bin"),
        kmod30_root: kmod30_root.clone(),
    };
    if stamp.exists() {
        return outputs();
    }
    for _attempt in 0..3 {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&empty_conf).unwrap();
        run(Command::new("cp")
            .arg("-al")
            .arg(&tree.root)
            .arg(&kmod30_root));
        run(Command::new(bin.join("depmod-kmod30"))
            .arg("-C")
            .arg(&empty_conf)
            .arg("-b")
            .arg(&kmod30_root)
            .arg(&tree.kver));
        std::fs::create_dir_all(&kmod34_out).unwrap();
        run(Command::new(bin.join("depmod-kmod34"))
            .arg("-C")
            .arg(&empty_conf)
            .arg("-b")
            .arg(&tree.root)
            .arg("-o")
            .arg(&kmod34_out)
            .arg(&tree.kver));
        let out = outputs();
        if sorted_lines(&out.kmod30.join("modules.dep"))
            == sorted_lines(&out.kmod34.join("modules.dep"))
        {
            std::fs::write(&stamp, b"").unwrap();
            return out;
        }
        eprintln!(
            "{}: kmod 30 and kmod 34 saw different module sets; retrying",
            tree.name
        );
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    panic!(
        "{}: kmod 30 and kmod 34 disagree on the module set",
        tree.name
    );
}

fn references_or_skip() -> Option<Vec<Tree>> {
    let cache = cache_dir();
    let missing: Vec<&str> = ["READY-kmod30", "READY-kmod34"]
        .into_iter()
        .filter(|m| !cache.join(m).exists())
        .collect();
    let trees = trees();
    let reason = if !missing.is_empty() {
        format!("missing {missing:?} in {}", cache.display())
    } else if trees.is_empty() {
        format!("no READY trees in {}", cache.display())
    } else {
        return Some(trees);
    };
    if skip(&reason) {
        return None;
    }
    panic!("real kmod references are required: {reason} (run scripts/fetch-references.sh, or set DEPMOD_RS_SKIP_REAL=1)");
}

type Triple = (Vec<u8>, u32, Vec<u8>);

/// Decodes `bytes`, re-encodes its entries in `order`, and checks the result is identical.
fn decode_and_reencode(bytes: &[u8], order: NodeOrder, what: &str) -> Vec<Triple> {
    let index = Index::new(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let entries = index.entries().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut builder = IndexBuilder::new();
    // Inserting in reverse stored order rebuilds each value list exactly (newest first on ties).
    for e in entries.iter().rev() {
        builder
            .insert(&e.key, e.value, e.priority)
            .unwrap_or_else(|err| panic!("{what}: {err}"));
    }
    let again = builder.to_bytes(order).unwrap();
    assert!(
        again == bytes,
        "{what}: re-encoding differs from kmod's file ({} vs {} bytes, first difference at {:?})",
        again.len(),
        bytes.len(),
        again.iter().zip(bytes).position(|(a, b)| a != b)
    );
    assert_eq!(index.node_order().unwrap(), Some(order), "{what}: layout");
    entries
        .into_iter()
        .map(|e| (e.key, e.priority, e.value.to_vec()))
        .collect()
}

#[test]
fn kmod_bin_files_decode_and_reencode_byte_for_byte() {
    let Some(trees) = references_or_skip() else {
        return;
    };
    let mut checked = 0;
    for tree in &trees {
        let outputs = kmod_outputs(tree);
        for file in BIN_FILES {
            let post = std::fs::read(outputs.kmod30.join(file)).unwrap();
            let pre = std::fs::read(outputs.kmod34.join(file)).unwrap();
            assert!(
                post.len() >= 12 && pre.len() >= 12,
                "{}/{file}: kmod wrote an empty file",
                tree.name
            );
            let post_entries = decode_and_reencode(
                &post,
                NodeOrder::Post,
                &format!("{}/kmod30/{file}", tree.name),
            );
            let pre_entries = decode_and_reencode(
                &pre,
                NodeOrder::Pre,
                &format!("{}/kmod34/{file}", tree.name),
            );
            if let Some(i) = (0..post_entries.len().max(pre_entries.len()))
                .find(|&i| post_entries.get(i) != pre_entries.get(i))
            {
                let show = |e: Option<&Triple>| {
                    e.map(|(k, p, v)| {
                        format!(
                            "{} {p} {}",
                            String::from_utf8_lossy(k),
                            String::from_utf8_lossy(v)
                        )
                    })
                };
                panic!(
                    "{}/{file}: kmod 30 and kmod 34 files hold different entries; first at #{i}: {:?} vs {:?}",
                    tree.name,
                    show(post_entries.get(i)),
                    show(pre_entries.get(i))
                );
            }
            assert_eq!(post.len(), pre.len());
            eprintln!(
                "{}/{file}: {} entries, {} bytes: both orders byte-identical",
                tree.name,
                pre_entries.len(),
                pre.len()
            );
            checked += 2;
        }
    }
    eprintln!("{checked} kmod index files re-encoded byte for byte");
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A concrete string matching the alias `pattern` (`None` for patterns this does not handle,
/// such as negated sets).
fn instantiate(pattern: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    const FILL: [&[u8]; 5] = [b"", b"0", b"1A", b"FFFF", b"x9z"];
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' => out.extend_from_slice(FILL[rng.below(FILL.len())]),
            b'?' => out.push(b"0AZ"[rng.below(3)]),
            b'\\' => {
                i += 1;
                out.push(*pattern.get(i)?);
            }
            b'[' => {
                let close = i + 1 + pattern[i + 1..].iter().position(|&b| b == b']')?;
                let set = &pattern[i + 1..close];
                if set.is_empty() || matches!(set[0], b'!' | b'^' | b'[' | b'\\') {
                    return None;
                }
                out.push(set[rng.below(set.len())]);
                i = close;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// Random concrete aliases (from the patterns of `modules.alias`) and symbol queries (from
/// `modules.symbols`) in `dir`.
fn sample_queries(dir: &Path, aliases: usize, symbols: usize) -> Vec<Vec<u8>> {
    let second_field = |file: &str| -> Vec<Vec<u8>> {
        let text = std::fs::read(dir.join(file)).unwrap();
        text.split(|&b| b == b'\n')
            .filter_map(|line| line.strip_prefix(b"alias "))
            .filter_map(|rest| rest.split(|&b| b == b' ').next())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let patterns = second_field("modules.alias");
    let symbol_names = second_field("modules.symbols");
    assert!(
        patterns.len() > 1000,
        "modules.alias has {} aliases",
        patterns.len()
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut queries = Vec::new();
    while queries.len() < aliases {
        let pattern = &patterns[rng.below(patterns.len())];
        if let Some(q) = instantiate(pattern, &mut rng) {
            if !q.is_empty() && q[0] != b'-' && q.iter().all(|&b| (0x21..0x7f).contains(&b)) {
                queries.push(q);
            }
        }
    }
    for _ in 0..symbols.min(symbol_names.len()) {
        queries.push(symbol_names[rng.below(symbol_names.len())].clone());
    }
    queries
}

/// What `modprobe -R QUERY` prints, by libkmod's lookup chain with an empty configuration:
/// modules.dep.bin (exact), modules.symbols.bin (wildcard, `symbol:` names only),
/// modules.alias.bin (wildcard), modules.builtin.bin (exact), modules.builtin.alias.bin
/// (wildcard); the first that finds anything wins.
fn resolve_like_libkmod(dir: &Path, queries: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let files = [
        read("modules.dep.bin"),
        read("modules.symbols.bin"),
        read("modules.alias.bin"),
        read("modules.builtin.bin"),
        read("modules.builtin.alias.bin"),
    ];
    let [dep, symbols, alias, builtin, builtin_alias] =
        files.each_ref().map(|b| Index::new(b).unwrap());
    let values = |found: Vec<depmod_rs::index::Value<'_>>| -> Vec<Vec<u8>> {
        found.iter().map(|v| v.value.to_vec()).collect()
    };
    queries
        .iter()
        .map(|query| {
            let Ok(key) = normalize_alias(query) else {
                return Vec::new();
            };
            if dep.lookup_exact(&key).unwrap().is_some() {
                return vec![key];
            }
            if key.starts_with(b"symbol:") {
                let found = values(symbols.lookup_wild(&key).unwrap());
                if !found.is_empty() {
                    return found;
                }
            }
            let found = values(alias.lookup_wild(&key).unwrap());
            if !found.is_empty() {
                return found;
            }
            if builtin.lookup_exact(&key).unwrap().is_some() {
                return vec![key];
            }
            values(builtin_alias.lookup_wild(&key).unwrap())
        })
        .collect()
}

/// Runs `modprobe -C EMPTY -d ROOT -S KVER -R QUERY` for every query, on two workers.
fn run_modprobe(
    modprobe: &Path,
    root: &Path,
    kver: &str,
    empty_conf: &Path,
    queries: &[Vec<u8>],
) -> Vec<Vec<Vec<u8>>> {
    let one = |q: &Vec<u8>| -> Vec<Vec<u8>> {
        let out = Command::new(modprobe)
            .arg("-C")
            .arg(empty_conf)
            .arg("-d")
            .arg(root)
            .arg("-S")
            .arg(kver)
            .arg("-R")
            .arg(std::str::from_utf8(q).unwrap())
            .output()
            .unwrap();
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (first, second) = queries.split_at(queries.len() / 2);
    std::thread::scope(|s| {
        let h1 = s.spawn(|| first.iter().map(one).collect::<Vec<_>>());
        let h2 = s.spawn(|| second.iter().map(one).collect::<Vec<_>>());
        let mut all = h1.join().unwrap();
        all.extend(h2.join().unwrap());
        all
    })
}

fn compare_lookups(label: &str, queries: &[Vec<u8>], want: &[Vec<Vec<u8>>], got: &[Vec<Vec<u8>>]) {
    let lossy = |vs: &[Vec<u8>]| -> Vec<String> {
        vs.iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    let mut mismatches = Vec::new();
    for ((q, want), got) in queries.iter().zip(want).zip(got) {
        if want != got {
            mismatches.push(format!(
                "{}: modprobe {:?}, ours {:?}",
                String::from_utf8_lossy(q),
                lossy(want),
                lossy(got)
            ));
        }
    }
    let found = got.iter().filter(|g| !g.is_empty()).count();
    eprintln!(
        "{label}: {} queries, {found} found, {} mismatches",
        queries.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{label}:\n{}",
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    assert!(
        found > queries.len() * 9 / 10,
        "{label}: too few found: {found}"
    );
}

#[test]
fn lookups_match_modprobe_kmod30_and_kmod34() {
    let Some(trees) = references_or_skip() else {
        return;
    };
    let kmod30 = PathBuf::from("/usr/sbin/modprobe");
    let kmod34 = cache_dir().join("bin/modprobe-kmod34");
    for m in [&kmod30, &kmod34] {
        if !m.exists() {
            if skip(&format!("no {}", m.display())) {
                return;
            }
            panic!("{} is required", m.display());
        }
    }
    let tree = trees
        .iter()
        .find(|t| t.name == "bookworm-amd64")
        .unwrap_or(&trees[0]);
    let outputs = kmod_outputs(tree);
    let empty_conf = outputs
        .kmod30_root
        .parent()
        .unwrap()
        .join("empty-modprobe.d");
    std::fs::create_dir_all(&empty_conf).unwrap();
    let kmod34_root = outputs
        .kmod34
        .ancestors()
        .nth(3)
        .expect("kmod 34 output is OUT/lib/modules/KVER")
        .to_path_buf();
    for (label, modprobe, root, dir) in [
        (
            "kmod 30, post-order",
            &kmod30,
            &outputs.kmod30_root,
            &outputs.kmod30,
        ),
        ("kmod 34, pre-order", &kmod34, &kmod34_root, &outputs.kmod34),
    ] {
        let queries = sample_queries(dir, 2000, 200);
        let want = run_modprobe(modprobe, root, &tree.kver, &empty_conf, &queries);
        let got = resolve_like_libkmod(dir, &queries);
        compare_lookups(label, &queries, &want, &got);
    }
}

/// `modindex dump FILE | modindex build --order O` gives kmod's file back byte for byte.
#[test]
fn modindex_dump_then_build_reproduces_kmod_files() {
    let Some(trees) = references_or_skip() else {
        return;
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_modindex"));
    let mut checked = 0;
    for tree in &trees {
        let outputs = kmod_outputs(tree);
        for (dir, order) in [(&outputs.kmod30, "post"), (&outputs.kmod34, "pre")] {
            for file in BIN_FILES {
                let path = dir.join(file);
                let dump = Command::new(exe).arg("dump").arg(&path).output().unwrap();
                assert!(dump.status.success(), "dump {}", path.display());
                let mut build = Command::new(exe)
                    .args(["build", "--order", order])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = build.stdin.take().unwrap();
                let input = dump.stdout.clone();
                let writer = std::thread::spawn(move || {
                    std::io::Write::write_all(&mut stdin, &input).unwrap();
                });
                let built = build.wait_with_output().unwrap();
                writer.join().unwrap();
                assert!(built.status.success(), "build {}", path.display());
                assert!(
                    built.stdout == std::fs::read(&path).unwrap(),
                    "{}: dump | build differs",
                    path.display()
                );
                let verify = Command::new(exe).arg("verify").arg(&path).output().unwrap();
                assert!(verify.status.success());
                assert!(String::from_utf8_lossy(&verify.stdout).contains(", identical to kmod"));
                checked += 1;
            }
        }
    }
    eprintln!("{checked} files reproduced through modindex dump | build");
}

/// Result order when several patterns match with equal and different priorities, checked on a
/// hand-made index against the real libkmod (through `modprobe -R`) in both node orders.
#[test]
fn wildcard_result_order_matches_modprobe_on_ties() {
    let Some(_) = references_or_skip() else {
        return;
    };
    let inserts: &[(&[u8], &[u8], u32)] = &[
        (b"x*", b"m_star", 3),
        (b"x?z", b"m_q2", 3),
        (b"x?z", b"m_q0", 1),
        (b"xyz", b"m_exact", 3),
        (b"x[a-z]z", b"m_set", 3),
        (b"x[a-z]z", b"m_set_b", 3),
        (b"*z", b"m_tail", 2),
        (b"*", b"m_all", 7),
        (b"x*z", b"m_xz", 0),
        (b"xy*", b"m_xy", 3),
    ];
    let mut builder = IndexBuilder::new();
    for (k, v, p) in inserts {
        builder.insert(k, v, *p).unwrap();
    }
    let kver = "0.0.0-test";
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("index-ties");
    let empty_conf = work.join("empty-modprobe.d");
    std::fs::create_dir_all(&empty_conf).unwrap();
    let queries: Vec<Vec<u8>> = [&b"xyz"[..], b"xz", b"xaz", b"x-z", b"xy", b"abz", b"q"]
        .iter()
        .map(|q| q.to_vec())
        .collect();
    let modprobes = [
        (PathBuf::from("/usr/sbin/modprobe"), NodeOrder::Post),
        (cache_dir().join("bin/modprobe-kmod34"), NodeOrder::Pre),
    ];
    for (modprobe, order) in modprobes {
        let root = work.join(format!("{order:?}"));
        let dir = root.join("lib/modules").join(kver);
        std::fs::create_dir_all(&dir).unwrap();
        let empty = IndexBuilder::new().to_bytes(order).unwrap();
        for file in BIN_FILES {
            std::fs::write(dir.join(file), &empty).unwrap();
        }
        std::fs::write(
            dir.join("modules.alias.bin"),
            builder.to_bytes(order).unwrap(),
        )
        .unwrap();
        let want = run_modprobe(&modprobe, &root, kver, &empty_conf, &queries);
        let got = resolve_like_libkmod(&dir, &queries);
        let label = format!("synthetic ties, {}", modprobe.display());
        let lossy = |vs: &[Vec<u8>]| -> Vec<String> {
            vs.iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        };
        for ((q, w), g) in queries.iter().zip(&want).zip(&got) {
            assert_eq!(
                lossy(g),
                lossy(w),
                "{label}: query {}",
                String::from_utf8_lossy(q)
            );
        }
        assert!(want.iter().any(|w| w.len() >= 5), "{label}: {want:?}");
        eprintln!(
            "{label}: {:?}",
            want.iter().map(|w| lossy(w)).collect::<Vec<_>>()
        );
    }
}

/// kmod 34's FATAL text for a non-ASCII key (from `modules.builtin`) and a non-ASCII value
/// (a built-in module name in `modules.builtin.modinfo`) equals `IndexError::kmod_message`.
#[test]
fn non_ascii_fatal_message_matches_kmod34() {
    let Some(_) = references_or_skip() else {
        return;
    };
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("index-non-ascii");
    let _ = std::fs::remove_dir_all(&work);
    // (file, its content, the key and value depmod inserts from it)
    type Case<'a> = (&'a str, &'a [u8], &'a [u8], &'a [u8]);
    let cases: [Case; 2] = [
        (
            "modules.builtin",
            b"kernel/x/caf\xc3\xa9.ko\n",
            b"caf\xc3\xa9",
            b"",
        ),
        (
            "modules.builtin.modinfo",
            b"caf\xc3\xa9.alias=pci:v1\0",
            b"pci:v1",
            b"caf\xc3\xa9",
        ),
    ];
    for (i, (file, content, key, value)) in cases.into_iter().enumerate() {
        let root = work.join(format!("case{i}"));
        let dir = root.join("lib/modules/1.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.join("conf")).unwrap();
        std::fs::write(dir.join(file), content).unwrap();
        let out = Command::new(cache_dir().join("bin/depmod-kmod34"))
            .arg("-C")
            .arg(root.join("conf"))
            .arg("-b")
            .arg(&root)
            .arg("-o")
            .arg(root.join("out"))
            .arg("1.0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "kmod 34 exits 1 on {file}");
        let marker = b"depmod: FATAL: ";
        let at = out
            .stderr
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("kmod printed a FATAL");
        let kmod_text = &out.stderr[at + marker.len()..];
        let err = IndexBuilder::new().insert(key, value, 0).unwrap_err();
        assert_eq!(
            String::from_utf8_lossy(&err.kmod_message()),
            String::from_utf8_lossy(kmod_text),
            "{file}"
        );
        assert_eq!(err.kmod_message(), kmod_text, "{file}");
    }
}

/// Random small indexes whose keys mix literals, `*`, `?`, `[`, `]` and `\`, queried through
/// the real libkmod (`modprobe -R`, both releases): results and their order must agree with
/// `lookup_wild` (via the same lookup chain).
#[test]
fn random_indexes_lookup_like_libkmod() {
    let Some(_) = references_or_skip() else {
        return;
    };
    let kver = "0.0.0-random";
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("index-random");
    let _ = std::fs::remove_dir_all(&work);
    let empty_conf = work.join("empty-modprobe.d");
    std::fs::create_dir_all(&empty_conf).unwrap();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let key_alphabet = b"ab_*?[]\\";
    let query_alphabet = b"ab_*?\\";
    let modprobes = [
        (PathBuf::from("/usr/sbin/modprobe"), NodeOrder::Post),
        (cache_dir().join("bin/modprobe-kmod34"), NodeOrder::Pre),
    ];
    let mut compared = 0;
    let mut found = 0;
    for case in 0..100 {
        let mut builder = IndexBuilder::new();
        for _ in 0..1 + rng.below(12) {
            let key: Vec<u8> = (0..1 + rng.below(5))
                .map(|_| key_alphabet[rng.below(key_alphabet.len())])
                .collect();
            let value = format!("m{}", rng.below(6));
            builder
                .insert(&key, value.as_bytes(), rng.below(3) as u32)
                .unwrap();
        }
        let queries: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                (0..1 + rng.below(4))
                    .map(|_| query_alphabet[rng.below(query_alphabet.len())])
                    .collect()
            })
            .collect();
        let (modprobe, order) = &modprobes[case % 2];
        let root = work.join(format!("case{case}"));
        let dir = root.join("lib/modules").join(kver);
        std::fs::create_dir_all(&dir).unwrap();
        let empty = IndexBuilder::new().to_bytes(*order).unwrap();
        for file in BIN_FILES {
            std::fs::write(dir.join(file), &empty).unwrap();
        }
        std::fs::write(
            dir.join("modules.alias.bin"),
            builder.to_bytes(*order).unwrap(),
        )
        .unwrap();
        let want = run_modprobe(modprobe, &root, kver, &empty_conf, &queries);
        let got = resolve_like_libkmod(&dir, &queries);
        for ((q, w), g) in queries.iter().zip(&want).zip(&got) {
            assert_eq!(
                g,
                w,
                "case {case} ({}), query {:?}, index entries {:?}",
                modprobe.display(),
                String::from_utf8_lossy(q),
                Index::new(&builder.to_bytes(*order).unwrap())
                    .unwrap()
                    .entries()
                    .unwrap()
                    .iter()
                    .map(|e| format!(
                        "{} {} {}",
                        String::from_utf8_lossy(&e.key),
                        e.priority,
                        String::from_utf8_lossy(e.value)
                    ))
                    .collect::<Vec<_>>()
            );
            compared += 1;
            found += usize::from(!w.is_empty());
        }
    }
    eprintln!("{compared} random lookups agree with libkmod ({found} found something)");
    assert!(
        found > compared / 4,
        "too few random queries matched: {found}"
    );
}
