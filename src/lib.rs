//! depmod-rs: a byte-exact reimplementation of kmod's `depmod` and tools for its binary
//! indexes.
//!
//! A Rust program can use it at four levels:
//!
//! * **Run depmod on a tree**: [`run::run`] with parsed [`cli::Options`], exactly as the
//!   `depmod-rs` binary does (kmod's messages on stderr, kmod's exit status).
//! * **Write every index file from a module graph it already knows**:
//!   [`run::write_index_files`] takes a [`record::ModuleGraph`] (modules in order, each with
//!   its exports, imports, aliases, softdeps and weakdeps) — for build systems that know the
//!   graph without reading ELF files. The depmod run goes through the same entry point.
//! * **Read one module file**: [`module::read_module`] (plain, xz, zstd, gzip).
//! * **Build, write, read and look up a binary index**: [`index`].
//!
//! The run is a pipeline (see [`run`] and `docs/architecture.md`):
//!
//! ```text
//! plan ─► quick check (-A) ─► discover ─► read (parallel) ─► resolve ─► encode ─► publish
//! ```
//!
//! # Example: the index files of a module graph
//!
//! ```
//! use depmod_rs::diag::Diag;
//! use depmod_rs::record::{ExportedSymbol, GraphModule, ImportTable, ModuleGraph, ModuleRecord};
//! use depmod_rs::run::{write_index_files, WriteOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let dir_name = dir.path().to_str().unwrap().as_bytes().to_vec();
//! let module = |name: &str, exports: &[&str], imports: &[&str], aliases: &[&str]| {
//!     let mut table = ImportTable::new();
//!     for import in imports {
//!         table.push(import.as_bytes(), 0, false);
//!     }
//!     GraphModule {
//!         name: name.into(),
//!         path: format!("{}/kernel/{name}.ko", dir.path().display()).into_bytes(),
//!         output_path: format!("kernel/{name}.ko").into_bytes(),
//!         record: ModuleRecord {
//!             exports: exports
//!                 .iter()
//!                 .map(|e| ExportedSymbol { name: e.as_bytes().to_vec(), crc: 0 })
//!                 .collect(),
//!             imports: table,
//!             aliases: aliases.iter().map(|a| a.as_bytes().to_vec()).collect(),
//!             ..ModuleRecord::default()
//!         },
//!     }
//! };
//! let graph = ModuleGraph {
//!     modules: vec![
//!         module("core", &["core_register"], &[], &[]),
//!         module("driver", &[], &["core_register"], &["pci:v00008086d*"]),
//!     ],
//!     kernel_symbols: None,
//! };
//! let options = WriteOptions {
//!     module_dir: dir_name.clone(),
//!     output_dir: dir_name,
//!     ..WriteOptions::default()
//! };
//! let written = write_index_files(graph, &options, &Diag::new(0)).expect("written");
//! assert_eq!(written.files[0].name, "modules.dep");
//! let dep = std::fs::read_to_string(dir.path().join("modules.dep"))?;
//! assert_eq!(dep, "kernel/core.ko:\nkernel/driver.ko: kernel/core.ko\n");
//! let alias = std::fs::read_to_string(dir.path().join("modules.alias"))?;
//! assert!(alias.ends_with("alias pci:v00008086d* driver\n"));
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod cli;
pub mod compat;
pub mod diag;
pub mod index;
pub mod module;
pub mod names;
pub mod record;
pub mod run;
pub mod symvers;
pub mod sysconfig;

pub use output::OutputFile;
pub use publish::WrittenFile;

mod builtin;
mod config;
mod discover;
mod fgets;
mod fs_at;
mod graph;
mod incremental;
mod lock;
mod order;
mod output;
mod posix_regex;
mod progress;
mod publish;

#[doc(hidden)]
pub mod internals {
    //! Internal parsers and types, reachable for the fuzz targets and the tests only: not
    //! part of the crate's API.

    pub use crate::builtin::{parse_builtin_modinfo, parse_modules_builtin};
    pub use crate::config::{kernel_matches, logical_lines, parse_config_text, Config};
    pub use crate::discover::DirListing;
    pub use crate::fgets::{fgets_chunks, PATH_MAX};
    pub use crate::fs_at::FileKey;
    pub use crate::order::{
        apply_modules_order, module_order, parse_modules_order, permute, sort_hash_order,
        ModulesOrder, OrderFile, MODULE_BUCKETS,
    };
    pub use crate::posix_regex::PosixRegex;
    pub use crate::progress::DELAY;
    pub use crate::publish::{PublishError, Publisher};

    /// The `--cache` file's types and encoding.
    pub mod cache {
        pub use crate::incremental::store::*;
    }
}
