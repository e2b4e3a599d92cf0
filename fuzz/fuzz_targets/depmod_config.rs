//! Arbitrary bytes as a depmod.d file: joining continued lines and parsing every directive
//! must never panic, under both kernel-version spellings a pattern can be matched against.

#![no_main]

use depmod_rs::internals::{kernel_matches, logical_lines, parse_config_text, Config};
use depmod_rs::diag::Diag;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Kernel-version patterns are compiled by the C library's regcomp, as kmod compiles them,
    // in time that grows with interval bounds (glibc 2.36 takes 30 s on `a{1,32767}`) and in
    // memory that doubles with every stacked or nested `+` (`a` and 21 `+` take 1.4 GB, a
    // 135-byte pattern with more took 13 GB). That is the C library's cost, not this crate's
    // parsing, and would count as a timeout or an out-of-memory here; no code of ours treats
    // `{` or `+` specially.
    if data.contains(&b'{') || data.iter().filter(|&&b| b == b'+').count() > 6 {
        return;
    }
    let _ = logical_lines(data);
    let diag = Diag::new(0);
    let mut config = Config::default();
    parse_config_text(
        &mut config,
        data,
        b"/etc/depmod.d/fuzz.conf",
        b"6.1.0-18-amd64",
        &diag,
    );
    // The first line also serves as a kernel-version pattern (override/external take one).
    let pattern = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let _ = kernel_matches(pattern, b"6.1.0-18-amd64");
});
