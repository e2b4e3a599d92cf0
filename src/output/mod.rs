//! The output files (spec §8): one pure encoder per file, from the resolved graph to bytes.
//!
//! Text encoders return the file contents; index encoders return the `(key, value, priority)`
//! entries of their trie, which [`bin::encode_index`] lays out in the release's node order.

pub mod bin;
pub mod text;

use crate::compat::KmodVersion;

/// What the encoders need to know about one module, in `idx` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputModule {
    /// The module name.
    pub modname: Vec<u8>,
    /// The path written in outputs (relative to the module directory, or absolute).
    pub path: Vec<u8>,
    /// Raw `alias=` values, in modinfo order.
    pub aliases: Vec<Vec<u8>>,
    /// Raw `softdep=` values.
    pub softdeps: Vec<Vec<u8>>,
    /// Raw `weakdep=` values (kmod 33 and later).
    pub weakdeps: Vec<Vec<u8>>,
}

/// The resolved data every encoder reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Modules in `idx` order.
    pub modules: Vec<OutputModule>,
    /// For each module, all its transitive dependencies in `modules.dep` order.
    pub dependencies: Vec<Vec<usize>>,
    /// Symbols owned by modules in kmod's symbol-table order: (name, owner idx).
    pub symbols: Vec<(Vec<u8>, usize)>,
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

    /// Whether the file needs the dependency graph or the symbol owners
    /// ([`Resolved::dependencies`], [`Resolved::symbols`]). The others are encoded from
    /// [`Resolved::modules`] and the tree's `modules.builtin*` files alone, so they can be
    /// encoded while symbols are still being resolved.
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
