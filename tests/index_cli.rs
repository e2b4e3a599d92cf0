//! The `modindex` command line: output formats and exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use depmod_rs::index::{IndexBuilder, NodeOrder};

fn modindex(args: &[&std::ffi::OsStr], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modindex"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// A directory of its own for each test.
fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("index-cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The two-module example of the kmod reference (§16.2), as `modules.alias.bin`.
fn example(dir: &Path, order: NodeOrder) -> PathBuf {
    let mut b = IndexBuilder::new();
    for (k, v, p) in [
        (&b"ab"[..], &b"a"[..], 0),
        (b"on_ce", b"a", 0),
        (b"o[n-p]e", b"a", 0),
        (b"ab", b"b", 1),
        (b"ate", b"b", 1),
    ] {
        b.insert(k, v, p).unwrap();
    }
    let path = dir.join("modules.alias.bin");
    std::fs::write(&path, b.to_bytes(order).unwrap()).unwrap();
    path
}

#[test]
fn dump_lists_values_in_trie_order() {
    let dir = workdir("dump");
    let file = example(&dir, NodeOrder::Pre);
    let out = modindex(&[os("dump"), file.as_os_str()], b"");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ab\t0\ta\nab\t1\tb\nate\t1\tb\no[n-p]e\t0\ta\non_ce\t0\ta\n"
    );
}

#[test]
fn build_reproduces_dumped_files_including_escapes() {
    let dir = workdir("build");
    // Keys and values with the escaped characters, and equal priorities (order-sensitive).
    let mut b = IndexBuilder::new();
    for (k, v, p) in [
        (&b"tab\there"[..], &b"x"[..], 2),
        (b"nl\n", b"back\\slash", 2),
        (b"nl\n", b"second", 2),
        (b"", b"root value", 0),
        (b"k", b"", 5),
    ] {
        b.insert(k, v, p).unwrap();
    }
    for order in [NodeOrder::Pre, NodeOrder::Post] {
        let file = dir.join("x.bin");
        let bytes = b.to_bytes(order).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        let dump = modindex(&[os("dump"), file.as_os_str()], b"");
        assert!(dump.status.success());
        assert!(String::from_utf8_lossy(&dump.stdout).contains("tab\\there\t2\tx\n"));
        let name = if order == NodeOrder::Pre {
            "pre"
        } else {
            "post"
        };
        let built = modindex(&[os("build"), os("--order"), os(name)], &dump.stdout);
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        assert_eq!(built.stdout, bytes, "{name}");
    }
    let bad = modindex(
        &[os("build"), os("--order"), os("pre")],
        b"key-without-fields\n",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stdin:1"));
    let non_ascii = modindex(
        &[os("build"), os("--order"), os("pre")],
        b"caf\xc3\xa9\t0\tx\n",
    );
    assert_eq!(non_ascii.status.code(), Some(2));
}

#[test]
fn lookup_exit_codes_and_kinds() {
    let dir = workdir("lookup");
    let file = example(&dir, NodeOrder::Post);
    let run = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = vec![os("lookup"), file.as_os_str()];
        all.extend(args.iter().map(|a| os(a)));
        modindex(&all, b"")
    };
    let found = run(&["on-ce"]); // normalised to on_ce, as modprobe does
    assert_eq!(found.status.code(), Some(0));
    assert_eq!(found.stdout, b"a\n");
    let pattern = run(&["ope"]);
    assert_eq!(pattern.stdout, b"a\n");
    let both = run(&["ab"]);
    assert_eq!(both.stdout, b"a\nb\n");
    assert_eq!(run(&["nothing"]).status.code(), Some(1));
    assert_eq!(run(&["x]"]).status.code(), Some(1)); // invalid alias: libkmod finds nothing
    assert_eq!(run(&["on-ce", "--raw"]).status.code(), Some(1));
    let exact = run(&["o[n-p]e", "--exact"]);
    assert_eq!(exact.stdout, b"a\n");
    assert_eq!(run(&["ope", "--exact"]).status.code(), Some(1));

    let other = dir.join("unknown.index");
    std::fs::copy(&file, &other).unwrap();
    let unknown = modindex(&[os("lookup"), other.as_os_str(), os("ab")], b"");
    assert_eq!(unknown.status.code(), Some(2));
    let forced = modindex(
        &[os("lookup"), other.as_os_str(), os("ab"), os("--wild")],
        b"",
    );
    assert_eq!(forced.stdout, b"a\nb\n");
}

#[test]
fn verify_reports_layout_and_errors_with_offsets() {
    let dir = workdir("verify");
    for (order, name) in [
        (NodeOrder::Pre, "pre-order"),
        (NodeOrder::Post, "post-order"),
    ] {
        let file = example(&dir, order);
        let ok = modindex(&[os("verify"), file.as_os_str()], b"");
        assert_eq!(ok.status.code(), Some(0));
        let text = String::from_utf8_lossy(&ok.stdout);
        assert!(text.contains(name) && text.contains("5 values"), "{text}");
        assert!(text.contains(", identical to kmod"), "{text}");
    }
    let file = example(&dir, NodeOrder::Pre);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0x4A] = 0x90; // child range 'first' byte of node "a": 0x90 > 127
    std::fs::write(&file, &bytes).unwrap();
    let bad = modindex(&[os("verify"), file.as_os_str()], b"");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("modules.alias.bin") && err.contains("at offset 74"),
        "{err}"
    );
    let lookup = modindex(&[os("lookup"), file.as_os_str(), os("ab")], b"");
    assert_eq!(lookup.status.code(), Some(2));
    let missing = modindex(&[os("dump"), dir.join("absent.bin").as_os_str()], b"");
    assert_eq!(missing.status.code(), Some(2));
}
