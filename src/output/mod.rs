//! The output files (spec §8): one pure encoder per file, from the resolved graph to bytes.
//!
//! Text encoders return the file contents; index encoders return the `(key, value, priority)`
//! entries of their trie, which [`bin::build_index`] builds and the run lays out in the
//! release's node order.

pub mod bin;
pub mod text;

use crate::compat::KmodVersion;
use crate::graph::OwnedSymbols;
use crate::record::GraphModule;

/// The resolved data every encoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// Modules in `idx` order (the encoders read their names, output paths, aliases,
    /// softdeps and weakdeps).
    pub modules: &'a [GraphModule],
    /// For each module, all its transitive dependencies in `modules.dep` order (empty for
    /// the files that do not need them, see [`OutputFile::needs_resolution`]).
    pub dependencies: &'a [Vec<usize>],
    /// Symbols owned by modules in kmod's symbol-table order (empty for the files that do
    /// not need them: [`crate::graph::NO_SYMBOLS`]).
    pub symbols: &'a OwnedSymbols,
}

/// One of the files depmod writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFile {
    /// `modules.dep`
    Dep,
    /// `modules.dep.bin`
    DepBin,
    /// `modules.alias`
    Alias,
    /// `modules.alias.bin`
    AliasBin,
    /// `modules.softdep`
    Softdep,
    /// `modules.weakdep` (kmod 33 and later)
    Weakdep,
    /// `modules.symbols`
    Symbols,
    /// `modules.symbols.bin`
    SymbolsBin,
    /// `modules.builtin.bin`
    BuiltinBin,
    /// `modules.builtin.alias.bin`
    BuiltinAliasBin,
    /// `modules.devname`
    Devname,
}

impl OutputFile {
    /// The file name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFile::Dep => "modules.dep",
            OutputFile::DepBin => "modules.dep.bin",
            OutputFile::Alias => "modules.alias",
            OutputFile::AliasBin => "modules.alias.bin",
            OutputFile::Softdep => "modules.softdep",
            OutputFile::Weakdep => "modules.weakdep",
            OutputFile::Symbols => "modules.symbols",
            OutputFile::SymbolsBin => "modules.symbols.bin",
            OutputFile::BuiltinBin => "modules.builtin.bin",
            OutputFile::BuiltinAliasBin => "modules.builtin.alias.bin",
            OutputFile::Devname => "modules.devname",
        }
    }

    /// Whether the file is a binary index (not written with `-n`).
    pub fn is_index(self) -> bool {
        matches!(
            self,
            OutputFile::DepBin
                | OutputFile::AliasBin
                | OutputFile::SymbolsBin
                | OutputFile::BuiltinBin
                | OutputFile::BuiltinAliasBin
        )
    }

    /// Whether the file needs the dependency graph or the symbol owners. The others are
    /// encoded from the modules and the tree's `modules.builtin*` files alone, so they can
    /// be encoded while symbols are still being resolved.
    pub fn needs_resolution(self) -> bool {
        matches!(
            self,
            OutputFile::Dep | OutputFile::DepBin | OutputFile::Symbols | OutputFile::SymbolsBin
        )
    }

    /// The files `version` writes, in its publishing order (§8.1).
    pub fn sequence(version: KmodVersion) -> Vec<OutputFile> {
        use OutputFile::*;
        let mut files = vec![Dep, DepBin, Alias, AliasBin, Softdep];
        if version.has_weakdep() {
            files.push(Weakdep);
        }
        files.extend([Symbols, SymbolsBin, BuiltinBin, BuiltinAliasBin, Devname]);
        files
    }
}
