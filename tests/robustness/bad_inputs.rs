//! Broken inputs next to good modules: every run must end with kmod's exit status and kmod's
//! stderr (each message naming the file and the problem), must not panic, and must still index
//! the good modules of the same tree.

use depmod_rs::module::Compression;
use testkit::synth::{compress, SynthModule};

use crate::harness::{
    assert_same_as_kmod, assert_same_as_kmod_with, clip, sh, x86, Compare, RunResult, Tree,
};

/// Runs must finish normally (no panic: a panicking Rust binary exits 101).
fn assert_no_panic(result: &RunResult) {
    assert_ne!(result.code, Some(101), "panicked:\n{}", result.stderr);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
}

/// Each message about `file` names it.
fn assert_names(result: &RunResult, file: &str, problem: &str) {
    let line = result
        .stderr
        .lines()
        .find(|l| l.contains(file))
        .unwrap_or_else(|| {
            panic!(
                "no message names {file}:\n{}",
                crate::harness::clip(&result.stderr)
            )
        });
    assert!(
        line.contains(problem),
        "message for {file} does not say {problem:?}: {line}"
    );
}

fn check(tree: &Tree, args: &[&str]) -> RunResult {
    let result = assert_same_as_kmod(tree, args);
    assert_no_panic(&result);
    result
}

fn elf64_patch(elf: &mut [u8], offset: usize, value: u64, width: usize) {
    elf[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

#[test]
fn zero_length_truncated_and_non_elf_modules() {
    let tree = Tree::new();
    let elf = x86().with_modinfo("alias", "half").to_elf();
    tree.write("kernel/empty.ko", b"");
    tree.write("kernel/tiny.ko", b"\x7fEL");
    tree.write("kernel/half.ko", &elf[..elf.len() / 2]);
    tree.write("kernel/text.ko", b"this is not an ELF file at all\n");
    tree.write(
        "kernel/elf32-bad.ko",
        b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0garbage",
    );
    let result = check(&tree, &[]);
    result.assert_good_indexed();
    for name in ["empty.ko", "tiny.ko", "half.ko", "text.ko"] {
        // kmod still lists a module it could not read (with no dependencies).
        assert_names(&result, name, "failed to load symbols from");
    }
}

#[test]
fn section_table_out_of_range() {
    let tree = Tree::new();
    let (elf, layout) = x86().with_modinfo("alias", "x").to_elf_with_layout();
    // e_shoff far beyond the file.
    let mut far = elf.clone();
    elf64_patch(&mut far, 0x28, 0x7fff_ffff_ffff, 8);
    tree.write("kernel/shoff.ko", &far);
    // e_shnum larger than the table the file holds.
    let mut many = elf.clone();
    elf64_patch(&mut many, 0x3c, 0xffff, 2);
    tree.write("kernel/shnum.ko", &many);
    // .modinfo with an offset past the end of the file.
    let modinfo = layout.section(".modinfo").unwrap();
    let mut off = elf.clone();
    elf64_patch(&mut off, modinfo.header_offset + 24, 0x1_0000_0000, 8);
    tree.write("kernel/modinfo-off.ko", &off);
    let result = check(&tree, &[]);
    result.assert_good_indexed();
    for name in ["shoff.ko", "shnum.ko"] {
        assert_names(&result, name, "failed to load symbols from");
    }
}

#[test]
fn section_name_table_index_out_of_range() {
    // Debian's kmod 34.2 and kmod 30 abort on this module (libkmod-elf.c assertion
    // `idx < elf->header.section.count`), so there is no kmod exit status to match: depmod-rs
    // reports the module as invalid and indexes the rest.
    let tree = Tree::new();
    let mut elf = x86().with_modinfo("alias", "x").to_elf();
    elf64_patch(&mut elf, 0x3e, 0xfff0, 2);
    tree.write("kernel/shstrndx.ko", &elf);
    let result = crate::harness::run_in_copy(crate::harness::Program::Ours, &tree, &[]).unwrap();
    assert_no_panic(&result);
    assert_eq!(result.code, Some(0));
    assert_names(&result, "shstrndx.ko", "Invalid argument");
    result.assert_good_indexed();
}

#[test]
fn huge_section_sizes() {
    let tree = Tree::new();
    let (elf, layout) = x86()
        .with_modinfo("alias", "x")
        .with_export("huge_sym", None)
        .to_elf_with_layout();
    for (i, section) in [
        ".modinfo",
        ".symtab",
        ".strtab",
        "__ksymtab_strings",
        ".shstrtab",
    ]
    .iter()
    .enumerate()
    {
        let Some(placement) = layout.section(section) else {
            continue;
        };
        for (j, size) in [u64::MAX, 1 << 40, (elf.len() as u64) + 1]
            .iter()
            .enumerate()
        {
            let mut bad = elf.clone();
            elf64_patch(&mut bad, placement.header_offset + 32, *size, 8);
            tree.write(&format!("kernel/huge-{i}-{j}.ko"), &bad);
        }
    }
    let result = check(&tree, &[]);
    result.assert_good_indexed();
}

#[test]
fn string_tables_without_nul() {
    let tree = Tree::new();
    let (elf, layout) = x86()
        .with_modinfo("alias", "nonul")
        .with_export("nonul_sym", None)
        .with_import("good_sym", false, None)
        .to_elf_with_layout();
    for (i, section) in [".shstrtab", ".strtab", "__ksymtab_strings", ".modinfo"]
        .iter()
        .enumerate()
    {
        let Some(placement) = layout.section(section) else {
            continue;
        };
        // The last byte of the table becomes a letter: its last string has no terminator.
        let mut bad = elf.clone();
        bad[placement.data_offset + placement.size - 1] = b'Z';
        tree.write(&format!("kernel/nonul-{i}.ko"), &bad);
        // Every NUL in the table becomes a letter.
        let mut worse = elf.clone();
        for b in &mut worse[placement.data_offset..placement.data_offset + placement.size] {
            if *b == 0 {
                *b = b'Y';
            }
        }
        tree.write(&format!("kernel/allnul-{i}.ko"), &worse);
    }
    let result = check(&tree, &[]);
    result.assert_good_indexed();
}

fn compressed(module: SynthModule, format: Compression) -> Vec<u8> {
    compress(&module.to_elf(), format).unwrap()
}

#[test]
fn corrupt_and_truncated_xz_and_zstd() {
    let tree = Tree::new();
    for (ext, format) in [("xz", Compression::Xz), ("zst", Compression::Zstd)] {
        let data = compressed(x86().with_modinfo("alias", ext), format);
        tree.write(&format!("kernel/ok-{ext}.ko.{ext}"), &data);
        tree.write(
            &format!("kernel/trunc-{ext}.ko.{ext}"),
            &data[..data.len() / 2],
        );
        tree.write(&format!("kernel/magic-{ext}.ko.{ext}"), &data[..6]);
        let mut flipped = data.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        flipped[mid + 1] ^= 0x55;
        tree.write(&format!("kernel/flip-{ext}.ko.{ext}"), &flipped);
        // Valid stream of something that is not a module.
        tree.write(
            &format!("kernel/notelf-{ext}.ko.{ext}"),
            compress(b"hello, not an ELF file", format).unwrap(),
        );
    }
    // A stream of more than two 8 KiB chunks, broken early: kmod 34.2's xz loader stops
    // mid-file and its later attempts read on from there ("File format not recognized").
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    // Sixteen letters at random: compressible (so a flipped byte breaks the entropy-coded
    // data at once) yet larger than 24 KiB once compressed.
    let noise: Vec<u8> = (0..80_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'a' + (state >> 32) as u8 % 16
        })
        .collect();
    for (ext, format) in [("xz", Compression::Xz), ("zst", Compression::Zstd)] {
        let data = compressed(x86().with_section(".data.noise", &noise), format);
        assert!(data.len() > 3 * 8192, "{ext}: {} bytes", data.len());
        for at in [100, 9_000, 20_000] {
            let mut early = data.clone();
            early[at] ^= 0xff;
            early[at + 1] ^= 0x55;
            tree.write(&format!("kernel/early{at}-{ext}.ko.{ext}"), &early);
        }
        for len in [8192, 8200, 16_390] {
            tree.write(&format!("kernel/cut{len}-{ext}.ko.{ext}"), &data[..len]);
        }
        let mut trailing = data.clone();
        trailing.extend_from_slice(b"garbage after the stream");
        tree.write(&format!("kernel/trailing-{ext}.ko.{ext}"), &trailing);
    }
    // A zstd frame without a content size: kmod 34.2 refuses it, kmod 30 decodes it.
    let image = x86().with_modinfo("alias", "nosize").to_elf();
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    std::io::Write::write_all(&mut encoder, &image).unwrap();
    tree.write("kernel/nosize.ko.zst", encoder.finish().unwrap());
    // A zstd frame with a content size and a checksum that does not match.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder
        .set_pledged_src_size(Some(image.len() as u64))
        .unwrap();
    encoder.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut encoder, &image).unwrap();
    let mut checked = encoder.finish().unwrap();
    let last = checked.len() - 1;
    checked[last] ^= 0x5a;
    tree.write("kernel/badsum.ko.zst", &checked);
    // kmod 34.2's libkmod also logs the decoder's own error before and twice after each
    // load error; stderr is compared exactly.
    let result = assert_same_as_kmod(&tree, &[]);
    assert_no_panic(&result);
    result.assert_good_indexed();
    assert!(result.dep().contains("kernel/ok-xz.ko.xz:"));
    assert!(result.dep().contains("kernel/ok-zst.ko.zst:"));
    for name in [
        "trunc-xz",
        "flip-xz",
        "trunc-zst",
        "notelf-xz",
        "notelf-zst",
    ] {
        assert_names(&result, name, "failed to load symbols from");
    }
    // The decoder lines kmod 34.2 prints (compared exactly above) are really there.
    for text in [
        "depmod: ERROR: xz: Unexpected end of input",
        "depmod: ERROR: xz: File is corrupt",
        "depmod: ERROR: xz: File format not recognized",
        "depmod: ERROR: zstd: Src size is incorrect",
        "depmod: ERROR: zstd: Failed to determine decompression size",
        "depmod: ERROR: zstd: Restored data doesn't match checksum",
    ] {
        assert!(result.stderr.contains(text), "{text}:\n{}", result.stderr);
    }
}

#[test]
fn corrupt_and_truncated_gzip_with_gzip_option() {
    let tree = Tree::new();
    let data = compressed(x86().with_modinfo("alias", "gz"), Compression::Gzip);
    tree.write("kernel/ok.ko.gz", &data);
    tree.write("kernel/trunc.ko.gz", &data[..data.len() / 2]);
    let mut flipped = data.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    tree.write("kernel/flip.ko.gz", &flipped);
    let mut crc = data.clone();
    let n = crc.len();
    crc[n - 6] ^= 1; // the CRC32 in the trailer
    tree.write("kernel/crc.ko.gz", &crc);
    // kmod 34 is built with zlib and kmod 30 is not: compare with kmod only without --gzip
    // (where .ko.gz is not a module at all), and check --gzip against the spec.
    let plain = check(&tree, &[]);
    plain.assert_good_indexed();
    assert!(!plain.dep().contains(".ko.gz"));
    let out =
        crate::harness::run_in_copy(crate::harness::Program::Ours, &tree, &["--gzip"]).unwrap();
    assert_no_panic(&out);
    out.assert_good_indexed();
    assert!(out.dep().contains("kernel/ok.ko.gz:"), "{}", out.dep());
    for name in ["trunc.ko.gz", "flip.ko.gz"] {
        assert_names(&out, name, "failed to load symbols from");
    }
}

#[test]
fn non_utf8_and_non_ascii_modinfo_values() {
    let tree = Tree::new();
    tree.module(
        "kernel/latin1.ko",
        x86()
            .with_modinfo("description", b"caf\xe9 \xff\xfe")
            .with_modinfo("softdep", b"pre: \xe9t\xe9")
            .with_modinfo("weakdep", b"\xc3\x28"),
    );
    tree.module(
        "kernel/bad-key.ko",
        x86().with_modinfo(b"\xff\xfekey", "value"),
    );
    let result = check(&tree, &[]);
    result.assert_good_indexed();
    assert!(result.dep().contains("kernel/latin1.ko:"));
}

#[test]
fn overlong_module_names_and_aliases() {
    let tree = Tree::new();
    let name = format!("kernel/{}.ko", "n".repeat(250));
    tree.module(&name, x86().with_modinfo("alias", "long-name-alias"));
    let deep = format!("kernel/{}/deep.ko", vec!["d".repeat(200); 15].join("/"));
    tree.module(&deep, x86().with_modinfo("alias", "deep-alias"));
    tree.module(
        "kernel/long-alias.ko",
        x86()
            .with_modinfo("alias", format!("a{}", "x".repeat(70_000)))
            .with_modinfo("softdep", format!("pre: {}", "s".repeat(70_000)))
            .with_export(format!("sym_{}", "e".repeat(1_000)), None),
    );
    let result = check(&tree, &[]);
    result.assert_good_indexed();
}

#[test]
fn symbol_names_over_1016_bytes() {
    // kmod 30-33 build the `symbol:` key of modules.symbols.bin in a 1024-byte stack buffer but
    // grow only a heap copy for longer names, then insert the stale stack buffer: the long
    // symbol is lost and the key of the symbol before it gets its owner too (reading stale
    // memory). kmod 34 fixed this; compare with kmod 34 only.
    let tree = Tree::new();
    tree.module(
        "kernel/long-sym.ko",
        x86().with_export(format!("sym_{}", "e".repeat(10_000)), None),
    );
    let how = Compare {
        kmod30: false,
        ..Compare::default()
    };
    let result = assert_same_as_kmod_with(&tree, &[], how);
    assert_no_panic(&result);
    result.assert_good_indexed();
    let symbols = String::from_utf8_lossy(&result.files["modules.symbols"]).into_owned();
    assert!(symbols.contains(&format!(
        "alias symbol:sym_{} long_sym\n",
        "e".repeat(10_000)
    )));
}

#[test]
fn garbage_modules_order() {
    for (label, order) in [
        ("binary", b"\xff\xfe\0\x01kernel/good.ko\n\x80\x81".to_vec()),
        (
            "no final newline",
            b"kernel/user.ko\nkernel/good.ko".to_vec(),
        ),
        (
            "nul in line",
            b"kernel/user.ko\nkern\0el/good.ko\n".to_vec(),
        ),
        (
            "overlong line",
            [vec![b'x'; 10_000], b"\nkernel/good.ko\n".to_vec()].concat(),
        ),
        ("only newlines", b"\n\n\n".to_vec()),
    ] {
        let tree = Tree::new();
        tree.write("modules.order", &order);
        let result = check(&tree, &[]);
        assert_eq!(result.code, Some(0), "{label}");
        result.assert_good_indexed();
    }
}

#[test]
fn garbage_modules_builtin() {
    for (label, builtin) in [
        (
            "binary",
            b"\xff\xfe\0\x01kernel/fs/ext4.ko\n\x80\x81".to_vec(),
        ),
        (
            "no final newline",
            b"kernel/fs/ext4.ko\nkernel/fs/vfat.ko".to_vec(),
        ),
        (
            "nul and blanks",
            b"kernel/a.ko\n\n\0\nkernel/b/\n1bad.ko\n".to_vec(),
        ),
        (
            "overlong line",
            [vec![b'k'; 10_000], b".ko\nkernel/x.ko\n".to_vec()].concat(),
        ),
    ] {
        let tree = Tree::new();
        tree.write("modules.builtin", &builtin);
        let result = check(&tree, &[]);
        assert_eq!(result.code, Some(0), "{label}");
        result.assert_good_indexed();
    }
}

#[test]
fn garbage_modules_builtin_modinfo() {
    for (label, modinfo) in [
        ("binary", b"\xff\xfe\0\x01ext4.alias=fs-ext4\0\x80".to_vec()),
        (
            "no final nul",
            b"ext4.alias=fs-ext4\0vfat.alias=fs-vfat".to_vec(),
        ),
        ("no dot", b"ext4alias=fs-ext4\0=\0.\0..=\0".to_vec()),
        ("no equals", b"ext4.alias\0vfat.alias=\0".to_vec()),
        (
            "huge record",
            [b"m.alias=".to_vec(), vec![b'a'; 100_000], b"\0".to_vec()].concat(),
        ),
    ] {
        let tree = Tree::new();
        tree.write("modules.builtin", b"kernel/fs/ext4.ko\n");
        tree.write("modules.builtin.modinfo", &modinfo);
        let result = check(&tree, &[]);
        let _ = label;
        result.assert_good_indexed();
    }
}

#[test]
fn non_ascii_builtin_alias() {
    // kmod 34.2 stops with FATAL (and leaves its temporary modules.builtin.alias.bin.* behind);
    // depmod-rs stops the same way but removes the temporary. kmod 30 had no working check
    // (signed char) and wrote the byte; depmod-rs refuses it in every mode (src/compat.rs).
    let tree = Tree::new();
    tree.write("modules.builtin", b"kernel/fs/ext4.ko\n");
    tree.write("modules.builtin.modinfo", b"ext4.alias=fs-\xe9xt4\0");
    let how = Compare {
        kmod30: false,
        ..Compare::default()
    };
    let result = assert_same_as_kmod_with(&tree, &[], how);
    assert_eq!(result.code, Some(1));
    assert!(result.stderr.contains("only 7-bit ASCII is supported"));
}

#[test]
fn missing_order_and_builtin_files() {
    // Tree::new writes none of modules.order, modules.builtin, modules.builtin.modinfo.
    let tree = Tree::new();
    let result = check(&tree, &[]);
    assert_eq!(result.code, Some(0));
    result.assert_good_indexed();
    // An empty file of each kind.
    for name in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        tree.write(name, b"");
    }
    check(&tree, &[]).assert_good_indexed();
}

#[test]
fn malformed_depmod_d_lines() {
    let tree = Tree::new();
    tree.config(
        "bad.conf",
        b"search\noverride\noverride good\noverride good 4.4.4\nexternal\nexternal 4.4.4\n\
          exclude\nunknown directive here\n\xff\xfe binary\nsearch \\\n  \\\n\n\
          override good [unterminated kernel\noverride good ( extra\n\
          # comment without newline at the end \\",
    );
    tree.config("long.conf", format!("search {}\n", "x".repeat(100_000)));
    tree.config("nul.conf", b"search built-in\0 garbage\nexclude \0\n");
    let result = check(&tree, &[]);
    result.assert_good_indexed();
    assert!(
        result.stderr.contains("bad.conf"),
        "bad lines are reported with the file name:\n{}",
        result.stderr
    );
}

#[test]
fn dangling_symlinks_and_symlink_loops() {
    let tree = Tree::new();
    let dir = tree.moddir();
    let out = sh(&format!(
        "cd '{}/kernel' && ln -s /nonexistent/x.ko dangling.ko && ln -s loop-b.ko loop-a.ko && \
         ln -s loop-a.ko loop-b.ko && ln -s self.ko self.ko && ln -s /nonexistent-dir dangling-dir",
        dir.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = check(&tree, &[]);
    result.assert_good_indexed();
    assert_names(&result, "self.ko", "Too many levels of symbolic links");
    assert_names(&result, "dangling.ko", "No such file or directory");
}

#[test]
fn very_deep_tree_ends_without_exhausting_the_stack() {
    // 6,000 nested directories, made one level at a time below an open directory, as only a
    // program that never names the whole path can make them. kmod opens one name at a time
    // and goes all the way down; depmod-rs opens a directory below its parent until the path
    // reaches PATH_MAX, then by its path, so the walk ends there (ENAMETOOLONG) with its
    // recursion bounded, as it always did when it opened every directory by path.
    let tree = Tree::new();
    use std::os::unix::ffi::OsStrExt;
    let top = std::ffi::CString::new(tree.moddir().join("kernel").as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls on NUL-terminated names; every descriptor opened is closed.
    unsafe {
        let mut fd = libc::open(top.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0);
        for _ in 0..6000 {
            assert_eq!(libc::mkdirat(fd, c"d".as_ptr(), 0o755), 0);
            let next = libc::openat(fd, c"d".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        libc::close(fd);
    }
    let out = tempfile::tempdir().unwrap();
    let run = crate::harness::ours()
        .arg("-b")
        .arg(tree.root())
        .arg("-C")
        .arg(tree.conf())
        .arg("-o")
        .arg(out.path())
        .arg(crate::harness::KVER)
        .output()
        .unwrap();
    let result = crate::harness::collect(
        run,
        &out.path().join("lib/modules").join(crate::harness::KVER),
        &[],
    );
    assert_no_panic(&result);
    assert_eq!(result.code, Some(0), "{}", clip(&result.stderr));
    assert!(
        result.stderr.contains("File name too long"),
        "{}",
        clip(&result.stderr)
    );
    result.assert_good_indexed();
}

#[test]
fn directory_symlink_loop_terminates() {
    // kmod walks with openat() one level at a time, so `sub/up -> ..` takes it down until it
    // runs out of file descriptors (about 1000 levels, tens of thousands of error lines).
    // depmod-rs resolves whole paths and stops where the kernel does (ELOOP after 40 links).
    // Both finish with the same exit status and the same index of the good modules.
    let tree = Tree::new();
    let out = sh(&format!(
        "mkdir '{0}/kernel/sub' && ln -s .. '{0}/kernel/sub/up'",
        tree.moddir().display()
    ));
    assert!(out.status.success());
    let start = std::time::Instant::now();
    let ours = crate::harness::run_in_copy(crate::harness::Program::Ours, &tree, &[]).unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert_no_panic(&ours);
    assert_eq!(ours.code, Some(0));
    // Both find user.ko again deep inside the loop and keep one copy of it.
    assert!(ours.dep().contains("kernel/good.ko:\n"), "{}", ours.dep());
    assert!(ours.stderr.contains("Too many levels of symbolic links"));
    if let Some(theirs) = crate::harness::run_in_copy(crate::harness::Program::Kmod34, &tree, &[]) {
        assert_eq!(ours.code, theirs.code);
        assert_eq!(ours.files, theirs.files, "same index as kmod 34");
    }
}

#[test]
fn dependency_cycles_keep_the_rest_indexed() {
    let tree = Tree::new();
    tree.module(
        "kernel/cyc-a.ko",
        x86()
            .with_export("a_sym", None)
            .with_import("b_sym", false, None),
    );
    tree.module(
        "kernel/cyc-b.ko",
        x86()
            .with_export("b_sym", None)
            .with_import("c_sym", false, None),
    );
    tree.module(
        "kernel/cyc-c.ko",
        x86()
            .with_export("c_sym", None)
            .with_import("a_sym", false, None),
    );
    let result = check(&tree, &[]);
    // Like kmod, a cycle stops the run before anything is written.
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    assert!(result.files.is_empty(), "{:?}", result.files.keys());
    assert!(
        result.stderr.contains("Cycle detected"),
        "{}",
        result.stderr
    );
}

#[test]
fn special_files_named_like_modules() {
    // As root every permission check passes, so "unreadable" is a file that cannot be read as
    // a module: a directory, a FIFO (opening one would block) and a socket named *.ko. The
    // permission-denied case itself runs as an unprivileged user in `unreadable.rs`.
    let tree = Tree::new();
    let dir = tree.moddir();
    let out = sh(&format!(
        "cd '{}/kernel' && mkdir dir.ko && mkfifo fifo.ko && \
         python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind(\"sock.ko\")'",
        dir.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = check(&tree, &[]);
    result.assert_good_indexed();
}
