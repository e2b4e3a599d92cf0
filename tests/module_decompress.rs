//! Compressed modules read identically to plain ones; broken streams and bombs fail.
//!
//! Streams are made by the `xz`, `zstd` and `gzip` command-line tools (independent of the
//! decoders under test), except in the test of kmod's decoder messages, which packs with
//! `testkit::synth::compress`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{
    kmod_decoder_messages, read_module, Compression, ModuleError, ModuleInfo, ReadOptions,
};
use testkit::synth::{machine, ElfClass, Endian, SynthModule};

/// Pipes `input` through a compressor command.
fn compress(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("compressor output");
    feeder.join().expect("feeder");
    assert!(out.status.success(), "{args:?} failed");
    out.stdout
}

/// zstd with the content size in the frame header (as `zstd FILE` writes it).
fn zstd_sized(input: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.ko");
    std::fs::write(&file, input).expect("write");
    let out = Command::new("zstd")
        .args(["-q", "-c"])
        .arg(&file)
        .output()
        .expect("zstd");
    assert!(out.status.success());
    out.stdout
}

fn module() -> Vec<u8> {
    SynthModule::new(ElfClass::Elf64, Endian::Big, machine::S390)
        .with_modinfo("alias", "virtio:d00000001v*")
        .with_modinfo("softdep", "pre: crc32c")
        .with_export("exported_one", Some(0xfeed))
        .with_import("needed", false, Some(0x77))
        .with_import("optional", true, None)
        .with_extra_version("module_layout", 0x99)
        .to_elf()
}

fn read_bytes(bytes: &[u8], opts: &ReadOptions) -> Result<ModuleInfo, ModuleError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.ko");
    std::fs::write(&file, bytes).expect("write");
    read_module(&file, opts)
}

fn same(a: &ModuleInfo, b: &ModuleInfo) -> bool {
    a.modinfo == b.modinfo
        && a.imports == b.imports
        && a.exports.as_ref().ok() == b.exports.as_ref().ok()
        && a.exports.is_ok()
}

fn versions() -> [ReadOptions; 2] {
    [KmodVersion::V30, KmodVersion::V34].map(|version| ReadOptions {
        version,
        ..ReadOptions::default()
    })
}

#[test]
fn compressed_modules_read_like_plain_ones() {
    let elf = module();
    let xz = compress(&["xz", "-c", "--check=crc32", "--lzma2=dict=1MiB"], &elf);
    let zst = zstd_sized(&elf);
    let gz = compress(&["gzip", "-c", "-9"], &elf);
    for opts in versions() {
        let plain = read_bytes(&elf, &opts).expect("plain");
        for (name, bytes) in [("xz", &xz), ("zstd", &zst), ("gzip", &gz)] {
            let info = read_bytes(bytes, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(same(&plain, &info), "{name} differs from plain");
        }
    }
}

#[test]
fn gzip_follows_the_build_option() {
    let gz = compress(&["gzip", "-c"], &module());
    let v30 = ReadOptions {
        version: KmodVersion::V30,
        gzip: false,
        ..ReadOptions::default()
    };
    let v34 = ReadOptions {
        gzip: false,
        ..ReadOptions::default()
    };
    let err = read_bytes(&gz, &v30).unwrap_err();
    assert_eq!(err.kmod_strerror(), "Exec format error");
    let err = read_bytes(&gz, &v34).unwrap_err();
    assert!(matches!(
        err,
        ModuleError::UnsupportedCompression {
            format: Compression::Gzip,
            ..
        }
    ));
    assert_eq!(err.kmod_strerror(), "Function not implemented");
}

#[test]
fn gzip_members_concatenate_and_trailing_garbage_is_ignored() {
    let elf = module();
    let half = elf.len() / 2;
    let first = compress(&["gzip", "-c"], &elf[..half]);
    let second = compress(&["gzip", "-c"], &elf[half..]);
    let joined = [first, second, b"trailing junk".to_vec()].concat();
    let opts = ReadOptions::default();
    let plain = read_bytes(&elf, &opts).expect("plain");
    assert!(same(&plain, &read_bytes(&joined, &opts).expect("joined")));
}

#[test]
fn broken_streams_fail_with_einval() {
    let elf = module();
    let xz = compress(&["xz", "-c"], &elf);
    let zst = zstd_sized(&elf);
    let gz = compress(&["gzip", "-c"], &elf);
    let opts = ReadOptions::default();
    for (name, bytes) in [
        ("xz truncated", xz[..xz.len() - 1].to_vec()),
        ("xz header only", xz[..12].to_vec()),
        ("zstd truncated", zst[..zst.len() - 1].to_vec()),
        ("gzip truncated", gz[..gz.len() - 4].to_vec()),
        ("gzip header only", gz[..10].to_vec()),
    ] {
        let err = read_bytes(&bytes, &opts).expect_err(name);
        assert!(
            matches!(err, ModuleError::Decompress { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(err.kmod_strerror(), "Invalid argument", "{name}");
        assert!(err.path().is_some(), "{name}: error names the file");
    }
    let mut corrupt = gz.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    assert!(read_bytes(&corrupt, &opts).is_err(), "corrupt gzip");
}

#[test]
fn decompression_bombs_stop_at_the_cap() {
    // 2 GiB of zeros compresses to a couple of MB; the cap must stop decoding early.
    let zeros = vec![0u8; 1 << 24];
    let chunk_xz = compress(&["xz", "-c", "-1"], &zeros);
    let chunk_gz = compress(&["gzip", "-c", "-1"], &zeros);
    // Concatenated members/streams decode as one: 128 × 16 MiB = 2 GiB.
    let xz_bomb: Vec<u8> = chunk_xz.repeat(128);
    let gz_bomb: Vec<u8> = chunk_gz.repeat(128);
    let zst_bomb = {
        // A single frame declaring 2 GiB, made by streaming zeros through zstd.
        let mut child = Command::new("zstd")
            .args(["-q", "-c", "-1", "--stream-size=2147483648"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("zstd");
        let mut stdin = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || {
            let zeros = vec![0u8; 1 << 24];
            for _ in 0..128 {
                if stdin.write_all(&zeros).is_err() {
                    break;
                }
            }
        });
        let out = child.wait_with_output().expect("zstd");
        feeder.join().expect("feeder");
        out.stdout
    };
    let opts = |version| ReadOptions {
        version,
        max_image_size: 64 << 20,
        ..ReadOptions::default()
    };
    for (name, bomb) in [("xz", &xz_bomb), ("gzip", &gz_bomb), ("zstd", &zst_bomb)] {
        for version in [KmodVersion::V30, KmodVersion::V34] {
            let start = Instant::now();
            let err = read_bytes(bomb, &opts(version)).expect_err(name);
            let took = start.elapsed();
            assert!(
                matches!(err, ModuleError::TooLarge { limit, .. } if limit == 64 << 20),
                "{name} v{version}: {err:?}"
            );
            assert_eq!(err.kmod_strerror(), "Cannot allocate memory");
            assert!(
                took < Duration::from_secs(10),
                "{name} v{version}: took {took:?}"
            );
        }
    }
}

#[test]
fn decoding_runs_in_parallel() {
    let elf = module();
    let xz = compress(&["xz", "-c"], &elf);
    let zst = zstd_sized(&elf);
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..16)
        .map(|i| {
            let path = dir.path().join(format!("m{i}.ko"));
            std::fs::write(&path, if i % 2 == 0 { &xz } else { &zst }).expect("write");
            path
        })
        .collect();
    let opts = ReadOptions::default();
    let expected = read_bytes(&elf, &opts).expect("plain");
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|path| scope.spawn(|| read_module(Path::new(path), &opts)))
            .collect();
        for handle in handles {
            let info = handle.join().expect("thread").expect("read");
            assert!(same(&expected, &info));
        }
    });
}

/// Decodes with the xz tool (liblzma with every check verified): the bytes, or `None`.
fn xz_tool_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("xz")
        .args(["-dc", "-q", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("xz");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("xz output");
    feeder.join().expect("feeder");
    out.status.success().then_some(out.stdout)
}

/// Single-stream CRC32 files skip liblzma's own check and are verified with crc32fast.
/// Whatever byte of a multi-block file is damaged — data, a block's stored CRC32, the
/// index — the outcome is the xz tool's: the same image, or a failure.
#[test]
fn xz_crc32_checks_are_verified_like_the_xz_tool() {
    let mut module = SynthModule::new(ElfClass::Elf64, Endian::Little, machine::X86_64)
        .with_modinfo("alias", "pci:v00001234d*")
        .with_export("exported_one", Some(0xfeed))
        .with_import("needed", false, Some(0x77));
    for i in 0..40 {
        module = module.with_modinfo("parm", format!("option{i}:some description {i}"));
    }
    let elf = module.to_elf();
    let xz = compress(&["xz", "-c", "--check=crc32", "--block-size=512"], &elf);
    assert!(xz.len() > 512, "several blocks");
    let decode = |bytes: &[u8]| {
        depmod_rs::module::decompress(Compression::Xz, bytes, KmodVersion::V34, false, 1 << 30).ok()
    };
    assert_eq!(decode(&xz).as_deref(), Some(&elf[..]));
    let mut differences = Vec::new();
    for at in 0..xz.len() {
        let mut damaged = xz.clone();
        damaged[at] ^= 0x01;
        let ours = decode(&damaged);
        if ours != xz_tool_decode(&damaged) {
            differences.push(at);
        }
    }
    assert!(differences.is_empty(), "differ at offsets {differences:?}");
}

// Expected texts are what Debian's kmod 34.2 prints for the same kinds of input
// (tests/robustness/bad_inputs.rs compares whole runs against the binary).
#[test]
fn kmod_decoder_messages_per_attempt() {
    let image = vec![7u8; 1000];
    let xz = testkit::synth::compress(&image, Compression::Xz).unwrap();
    let zst = testkit::synth::compress(&image, Compression::Zstd).unwrap();
    assert!(kmod_decoder_messages(Compression::Xz, &xz, 3).is_empty());
    assert!(kmod_decoder_messages(Compression::Zstd, &zst, 3).is_empty());
    let cut = &xz[..xz.len() / 2];
    assert_eq!(
        kmod_decoder_messages(Compression::Xz, cut, 3),
        vec!["xz: Unexpected end of input"; 3]
    );
    // The whole (small) file is read on the first attempt; later ones find its end.
    let mut flipped = xz.clone();
    let trailer = flipped.len() - 20;
    flipped[trailer] ^= 0xff;
    let messages = kmod_decoder_messages(Compression::Xz, &flipped, 3);
    assert_eq!(messages.len(), 3);
    assert_ne!(messages[0], "xz: Unexpected end of input");
    assert_eq!(messages[1..], ["xz: Unexpected end of input"; 2]);
    assert_eq!(
        kmod_decoder_messages(Compression::Zstd, &zst[..6], 3),
        vec!["zstd: Failed to determine decompression size"; 3]
    );
    assert_eq!(
        kmod_decoder_messages(Compression::Zstd, &zst[..zst.len() - 3], 3),
        vec!["zstd: Src size is incorrect"; 3]
    );
    assert!(kmod_decoder_messages(Compression::Gzip, b"\x1f\x8bxxxx", 3).is_empty());
}
