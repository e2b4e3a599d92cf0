//! Bounded memory and time: decompression bombs and huge text inputs. Each run happens under
//! an address-space limit (`prlimit --as`), so an attempt to hold a bomb's whole output in
//! memory fails the run instead of passing unnoticed.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{collect, ours, RunResult, Tree, KVER};

/// Address space allowed to one run: the 1 GiB image cap plus room for the program itself.
const ADDRESS_SPACE: &str = "1800000000";

fn run_limited(tree: &Tree, extra: &[&str]) -> (RunResult, Duration) {
    let cmd = ours();
    let start = Instant::now();
    let out = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg(cmd.get_program())
        .args(extra)
        .arg("-b")
        .arg(tree.root())
        .arg("-C")
        .arg(tree.conf())
        .arg(KVER)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let moddir = tree.moddir();
    (collect(out, &moddir, &[(tree.root(), "ROOT")]), elapsed)
}

/// `len` zero bytes as one zstd frame that records its content size.
fn zstd_zeros(len: u64) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    encoder.set_pledged_src_size(Some(len)).unwrap();
    encoder.include_contentsize(true).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        encoder.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    encoder.finish().unwrap()
}

#[test]
fn decompression_bomb_is_cut_off_with_a_clear_error() {
    // 1.25 GiB of zeros in a few kilobytes. kmod allocates the whole image (and then finds it
    // is not ELF); depmod-rs stops at its 1 GiB image cap, reports ENOMEM for that file, and
    // indexes the rest. Under kmod 34 rules the frame's declared size is checked before any
    // allocation; under kmod 30 rules (streaming) decoding stops at the cap.
    let tree = Tree::new();
    tree.write("kernel/bomb.ko.zst", zstd_zeros(1_342_177_280));
    for extra in [&[][..], &["--compat", "30"][..]] {
        let (result, elapsed) = run_limited(&tree, extra);
        assert_eq!(result.code, Some(0), "{extra:?}: {}", result.stderr);
        assert!(
            result
                .stderr
                .contains("failed to load symbols from ROOT/lib/modules/4.4.4/kernel/bomb.ko.zst: Cannot allocate memory"),
            "{extra:?}: {}",
            result.stderr
        );
        result.assert_good_indexed();
        assert!(
            elapsed < Duration::from_secs(60),
            "{extra:?}: took {elapsed:?}"
        );
    }
}

#[test]
fn huge_text_inputs_take_linear_time() {
    let tree = Tree::new();
    // 64 MiB modules.order without a newline, a big builtin list, and a config file that is one
    // 16 MiB logical line made of continuations (once quadratic: entries went in at index 0).
    tree.write("modules.order", vec![b'k'; 64 << 20]);
    // Two million distinct builtin modules, then 20 000 copies of one line: kmod keeps every
    // duplicate as another value of the same key (and so must we), and scans the key's values
    // on each insert, so duplicates cost quadratic time in kmod and in depmod-rs alike; real
    // trees have none. See docs/robustness.md.
    let mut builtin: Vec<u8> = (0..2_000_000)
        .flat_map(|i| format!("kernel/fs/x{i}.ko\n").into_bytes())
        .collect();
    builtin.extend(
        b"kernel/fs/dup.ko\n"
            .iter()
            .copied()
            .cycle()
            .take(17 * 20_000),
    );
    tree.write("modules.builtin", builtin);
    let mut config = b"search".to_vec();
    config.extend(b" dir\\\n".iter().copied().cycle().take(16 << 20));
    config.push(b'\n');
    tree.config("huge.conf", config);
    let (result, elapsed) = run_limited(&tree, &[]);
    assert_ne!(
        result.code,
        Some(101),
        "{}",
        crate::harness::clip(&result.stderr)
    );
    result.assert_good_indexed();
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
