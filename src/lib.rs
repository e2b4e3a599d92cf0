//! depmod-rs: a byte-exact reimplementation of kmod's `depmod` and tools for its binary indexes.
//!
//! The crate is a pipeline, one module per stage:
//!
//! ```text
//! config ─► discover ─► module (read, parallel) ─► graph (resolve) ─► order ─► output ─► publish
//! ```
//!
//! * [`index`] — the kmod binary trie (`modules.*.bin`): building, writing in either node order,
//!   validated reading, exact and wildcard lookup.
//! * [`module`] — opening module files (plain, xz, zstd, gzip) and reading what depmod needs
//!   from their ELF image.
//! * [`names`] — kmod's name rules: module names from paths, alias normalisation.
//! * [`synth`] — synthetic kernel-module ELF files for tests and demo trees.
//! * [`testgen`] — random module trees from a seed, for conformance tests against real kmod.
//! * [`compat`] — every behaviour difference between the kmod releases we reproduce.

pub mod compat;
pub mod index;
pub mod module;
pub mod names;
pub mod synth;
pub mod testgen;
