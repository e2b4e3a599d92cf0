//! The record of one module: everything depmod uses from a module file.

pub use crate::module::ImportTable;
use crate::symvers::KernelSymbol;

/// A symbol exported by a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSymbol {
    /// Name as read from the module (the `-P` prefix is stripped here).
    pub name: Vec<u8>,
    /// Its CRC.
    pub crc: u64,
}

/// What depmod uses from one module file: the one record of a module from the read stage to
/// the resolve stage, and what the `--cache` store keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleRecord {
    /// Exported symbols with CRCs.
    pub exports: Vec<ExportedSymbol>,
    /// Undefined symbols, in kmod's order.
    pub imports: ImportTable,
    /// `alias=` modinfo values in file order.
    pub aliases: Vec<Vec<u8>>,
    /// `softdep=` modinfo values.
    pub softdeps: Vec<Vec<u8>>,
    /// `weakdep=` modinfo values (empty when the kmod release ignores them).
    pub weakdeps: Vec<Vec<u8>>,
}

/// One module of a [`ModuleGraph`]: its name, its paths and its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphModule {
    /// The module name (see [`crate::names::modname_from_path`]).
    pub name: Vec<u8>,
    /// The path messages name (kmod's absolute path).
    pub path: Vec<u8>,
    /// The path the index files give: relative to the module directory for a module inside
    /// it, otherwise absolute.
    pub output_path: Vec<u8>,
    /// What was read from the module.
    pub record: ModuleRecord,
}

/// Everything the index files are made from: the modules in kmod's order (their positions
/// are the priorities in the indexes), and the kernel's own symbols when `-E` or `-F` gave
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleGraph {
    /// The modules, in order.
    pub modules: Vec<GraphModule>,
    /// The kernel's symbols (`Module.symvers` or `System.map`), if given.
    pub kernel_symbols: Option<Vec<KernelSymbol>>,
}
