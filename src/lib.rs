//! depmod-rs: a byte-exact reimplementation of kmod's `depmod` and tools for its binary indexes.
//!
//! The crate is a pipeline, one module per stage:
//!
//! ```text
//! config ─► discover ─► order ─► module (read, parallel) ─► graph (resolve) ─► output ─► publish
//! ```
//!
//! The output files that need no dependency graph are encoded while the graph is resolved;
//! every file is still published in kmod's order (see [`run`]).
//!
//! * [`cli`] — the command line, parsed like kmod's `getopt_long` loop.
//! * [`cli_doc`] — a clap description of that command line, for the manual page and completions.
//! * [`config`] — depmod.d files: search, override, external, exclude.
//! * [`discover`] — the module walk, duplicate resolution, file-list mode.
//! * [`order`] — kmod's hash iteration order and `modules.order`.
//! * [`index`] — the kmod binary trie (`modules.*.bin`): building, writing in either node order,
//!   validated reading, exact and wildcard lookup.
//! * [`module`] — opening module files (plain, xz, zstd, gzip) and reading what depmod needs
//!   from their ELF image; a plain file is usually read only in the byte ranges depmod needs.
//! * [`graph`] — symbol table, dependencies, topological index, cycle report.
//! * [`symvers`] — `Module.symvers` and `System.map` for `-E`/`-F`.
//! * [`builtin`] — `modules.builtin` and `modules.builtin.modinfo`.
//! * [`output`] — one pure encoder per output file.
//! * [`progress`] — a progress line on stderr for long runs at a terminal.
//! * [`publish`] — atomic temporary-file-and-rename writes.
//! * [`sysconfig`] — `/etc/depmod-rs.conf`: the cache directory, `compat = auto`, fsync.
//! * [`lock`] — advisory locks that make overlapping runs over one directory take turns.
//! * [`run`] — the whole run in kmod's order.
//! * [`diag`] — kmod-style diagnostics.
//! * [`names`] — kmod's name rules: module names from paths, alias normalisation.
//! * [`synth`] — synthetic kernel-module ELF files for tests and demo trees.
//! * [`testgen`] — random module trees from a seed, for conformance tests against real kmod.
//! * [`cache`], [`memo`], [`kept_walk`] — `--cache`: what was read from each module, the
//!   last run's outputs, and the last walk's outcome, each checked before it is trusted.
//! * [`compat`] — every behaviour difference between the kmod releases we reproduce.

pub mod builtin;
pub mod cli;
pub mod cli_doc;
pub mod compat;
pub mod config;
pub mod diag;
pub mod discover;
pub mod fgets;
pub mod fs_at;
pub mod graph;
pub mod incremental;
pub mod index;
pub mod lock;
pub mod module;
pub mod names;
pub mod order;
pub mod output;
pub mod progress;
pub mod publish;
pub mod record;
pub mod run;
pub mod symvers;
pub mod synth;
pub mod sysconfig;
pub mod testgen;
