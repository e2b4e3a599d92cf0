//! Conformance: depmod-rs against Debian's real kmod 34 and kmod 30, run on the same inputs,
//! every output file compared byte for byte.
//!
//! * [`real_trees`] — Debian kernel packages of several architectures (from the reference cache).
//! * [`kmod_testsuite`] — the scenarios of kmod's own `test-depmod`.
//! * [`generated`] — random module trees from `testkit::testgen`, over many seeds.
//! * [`hazards`] — inputs kmod is undefined, fatal or hangs on, against documented behaviour.
//!
//! The references come from `scripts/fetch-references.sh`. Missing references fail the tests
//! unless `DEPMOD_RS_SKIP_REAL=1`. `DEPMOD_RS_BIN` replaces the binary under test (used to check
//! the harness with `scripts/kmod-as-depmod-rs.sh`).

mod support;

#[path = "conformance/generated.rs"]
mod generated;
#[path = "conformance/hazards.rs"]
mod hazards;
#[path = "conformance/kmod_testsuite.rs"]
mod kmod_testsuite;
#[path = "conformance/real_trees.rs"]
mod real_trees;
