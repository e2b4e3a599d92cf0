//! Random kernel module trees for conformance testing.
//!
//! A seed determines a whole tree: synthetic module ELFs (any class and byte order, some
//! compressed, some malformed) with exports, imports, weak imports and modversions CRCs;
//! aliases with dashes, brackets (also unmatched) and wildcards; softdeps, weakdeps and device
//! aliases; modules sharing a name in `updates/`, elsewhere and in external directories;
//! `modules.order` with missing, duplicate and junk lines (sometimes absent, sometimes without a
//! final newline); `modules.builtin` and `modules.builtin.modinfo` with odd records; and depmod.d
//! configuration (search, override, external, exclude, bad lines).
//!
//! The trees avoid inputs on which kmod itself is undefined or does not terminate (see
//! [`generate`] for the rules), so real kmod's output is a valid reference.
//!
//! ```no_run
//! use testkit::testgen::{generate, write_tree, Options};
//! let spec = generate(42, &Options::default());
//! let tree = write_tree(&spec, std::path::Path::new("/tmp/tree-42")).unwrap();
//! println!("{} -> {}", spec.summary(), tree.module_dir.display());
//! ```

mod random;
mod rng;
mod spec;
mod write;

pub use random::{generate, Options};
pub use rng::Rng;
pub use spec::{
    Compression, ConfigFile, Location, ModuleContents, ModuleFile, OrderFile, TreeSpec,
};
pub use write::{write_tree, WriteError, WrittenTree};
