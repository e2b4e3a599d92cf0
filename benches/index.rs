//! Index build/write/read benchmark on a ~26,000-entry alias-like index (the size of a Debian
//! amd64 `modules.alias.bin`). Plain `main`, run with `cargo bench --bench index`; prints the
//! median and minimum time per run of each step.
//!
//! Set `DEPMOD_RS_BENCH_INDEX=/path/to/modules.alias.bin` to also time a real file's
//! decode + re-encode.

use std::hint::black_box;
use std::time::{Duration, Instant};

use depmod_rs::index::{Index, IndexBuilder, NodeOrder};

/// Deterministic alias-like entries: PCI, USB, ACPI, OF and plain aliases over ~4,000 modules.
fn alias_like_entries(count: usize) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let r = next();
        let module = (r % 4000) as u32;
        let key = match i % 5 {
            0 | 1 => format!(
                "pci:v{:08X}d{:08X}sv*sd*bc*sc*i*",
                0x8000 + (r >> 8) % 0x300,
                (r >> 24) % 0x10000
            ),
            2 => format!(
                "usb:v{:04X}p{:04X}d*dc*dsc*dp*ic{:02X}isc*ip*in*",
                (r >> 8) % 0x3000,
                (r >> 24) % 0x10000,
                (r >> 40) % 0x100
            ),
            3 => format!(
                "acpi*:{}{:04X}:*",
                ["PNP", "INT", "ACPI", "LNX"][(r % 4) as usize],
                (r >> 16) % 0x10000
            ),
            _ => format!(
                "of:N*T*C{}_{}",
                ["fsl", "ti", "brcm", "qcom"][(r % 4) as usize],
                (r >> 16) % 5000
            ),
        };
        out.push((
            key.into_bytes(),
            format!("module_{module}").into_bytes(),
            module,
        ));
    }
    out
}

fn time<T>(name: &str, runs: usize, mut f: impl FnMut() -> T) {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "{name:<44} median {:>9.3} ms   min {:>9.3} ms   ({runs} runs)",
        samples[runs / 2].as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3
    );
}

fn build(entries: &[(Vec<u8>, Vec<u8>, u32)]) -> IndexBuilder {
    let mut b = IndexBuilder::new();
    for (k, v, p) in entries {
        b.insert(k, v, *p).expect("ASCII entries");
    }
    b
}

fn main() {
    let entries = alias_like_entries(26_000);
    let runs = 30;
    println!("alias-like index: {} entries", entries.len());
    time("insert 26,000 entries", runs, || build(&entries));
    let builder = build(&entries);
    time("to_bytes pre-order", runs, || {
        builder.to_bytes(NodeOrder::Pre)
    });
    time("to_bytes post-order", runs, || {
        builder.to_bytes(NodeOrder::Post)
    });
    time("insert + write pre-order (what depmod does)", runs, || {
        build(&entries).to_bytes(NodeOrder::Pre)
    });
    let bytes = builder.to_bytes(NodeOrder::Pre).expect("fits");
    println!("file size: {} bytes", bytes.len());
    time("Index::new (full validation)", runs, || Index::new(&bytes));
    let index = Index::new(&bytes).expect("valid");
    time("entries()", runs, || index.entries());
    let queries: Vec<Vec<u8>> = entries
        .iter()
        .step_by(26)
        .map(|(k, _, _)| {
            k.iter()
                .map(|&b| if b == b'*' { b'0' } else { b })
                .collect()
        })
        .collect();
    time("1,000 wildcard lookups", runs, || {
        queries
            .iter()
            .map(|q| index.lookup_wild(q).map(|v| v.len()).unwrap_or(0))
            .sum::<usize>()
    });

    if let Some(path) = std::env::var_os("DEPMOD_RS_BENCH_INDEX") {
        let real = std::fs::read(&path).expect("readable index");
        let index = Index::new(&real).expect("valid index");
        let real_entries = index.entries().expect("decodes");
        println!("{}: {} values", path.to_string_lossy(), real_entries.len());
        time("real file: rebuild + write pre-order", runs, || {
            let mut b = IndexBuilder::new();
            for e in real_entries.iter().rev() {
                b.insert(&e.key, e.value, e.priority).expect("ASCII");
            }
            b.to_bytes(NodeOrder::Pre)
        });
    }
}
