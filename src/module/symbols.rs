//! Exported and undefined symbols, read as libkmod's `kmod_elf_get_symbols` and
//! `kmod_elf_get_dependency_symbols` read them.

use rustc_hash::FxHashMap;

use super::elf::{ModuleElf, SectionRange, Wanted};
use super::elf_types::{
    ElfClass, EM_SPARC, EM_SPARCV9, SHN_ABS, SHN_UNDEF, STB_WEAK, STT_REGISTER, VERSION_ENTRY_SIZE,
};
use super::error::ModuleError;
use super::import_names::NameShard;
use super::import_table::ImportTable;
use super::Export;

const CRC_PREFIX: &[u8; 6] = b"__crc_";

/// One `.symtab` entry, with the fields kmod reads.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    name_offset: u64,
    value: u64,
    info: u8,
    section: u16,
}

/// The symbol table and its string table, when both are present and the table size is a
/// multiple of the entry size.
struct SymbolTable<'e, 'a> {
    elf: &'e ModuleElf<'a>,
    /// The `.symtab` contents.
    entries: &'a [u8],
    strtab: SectionRange,
    /// The `.strtab` contents.
    strings: &'a [u8],
    entry_size: usize,
}

impl<'e, 'a> SymbolTable<'e, 'a> {
    fn new(elf: &'e ModuleElf<'a>) -> Option<Self> {
        let strtab = elf.section(Wanted::Strtab)?;
        let symtab = elf.section(Wanted::Symtab)?;
        let entry_size = elf.class().symbol_size();
        if symtab.size % entry_size as u64 != 0 {
            return None;
        }
        Some(SymbolTable {
            elf,
            entries: elf.bytes(symtab),
            strtab,
            strings: elf.bytes(strtab),
            entry_size,
        })
    }

    /// Symbols with index ≥ 1, in table order.
    fn symbols(&self) -> impl Iterator<Item = Symbol> + '_ {
        let (class, endian) = (self.elf.class(), self.elf.endian());
        self.entries
            .chunks_exact(self.entry_size)
            .skip(1)
            .map(move |entry| {
                let field = |at: usize, len: usize| endian.read_uint(&entry[at..at + len]);
                match class {
                    ElfClass::Elf32 => Symbol {
                        name_offset: field(0, 4),
                        value: field(4, 4),
                        info: entry[12],
                        section: field(14, 2) as u16,
                    },
                    ElfClass::Elf64 => Symbol {
                        name_offset: field(0, 4),
                        info: entry[4],
                        section: field(6, 2) as u16,
                        value: field(8, 8),
                    },
                }
            })
    }

    /// Whether `st_name` lies inside `.strtab` (kmod's condition for reading the name).
    fn name_in_range(&self, symbol: &Symbol) -> bool {
        symbol.name_offset < self.strtab.size
    }

    /// Whether the symbol's name (its `st_name` known to be in range) starts with `prefix`,
    /// decided from the first bytes alone: a name is the bytes up to the first NUL, so it
    /// starts with a NUL-free `prefix` exactly when the bytes at its offset do. Names too
    /// close to the end of `.strtab` are read whole.
    fn name_starts_with<const N: usize>(&self, symbol: &Symbol, prefix: &[u8; N]) -> bool {
        let start = symbol.name_offset as usize;
        match self.strings.get(start..start + N) {
            // A fixed-size comparison: a few instructions, not a call to `memcmp`.
            Some(head) => <[u8; N]>::try_from(head).is_ok_and(|head| head == *prefix),
            None => self.name(symbol).is_some_and(|n| n.starts_with(prefix)),
        }
    }

    /// The symbol's name, or `None` when `st_name` lies outside `.strtab` (the string itself
    /// may run past `.strtab`, as kmod's C-string read does).
    fn name(&self, symbol: &Symbol) -> Option<&'a [u8]> {
        if symbol.name_offset >= self.strtab.size {
            return None;
        }
        let rest = self
            .strings
            .get(symbol.name_offset as usize..)
            .unwrap_or(&[]);
        Some(match memchr::memchr(0, rest) {
            Some(end) => &rest[..end],
            // Unterminated inside .strtab: read on into the following bytes.
            None => self.elf.cstr_at(self.strtab.offset + symbol.name_offset),
        })
    }
}

/// What one walk over `.symtab` gives: the module's exports, as `kmod_module_get_symbols`
/// returns them, and its undefined symbols, as `kmod_module_get_dependency_symbols` returns
/// them.
pub(crate) struct ModuleSymbols {
    /// `__crc_<name>` symbols when there are any and every `st_name` is sound; otherwise the
    /// names in `__ksymtab_strings` with CRC 0. A module with neither has no exports (`Ok`).
    pub exports: Result<Vec<Export>, ModuleError>,
    /// Each undefined symbol in `.symtab` order with the CRC of its first `__versions`
    /// entry, then the `__versions` entries no symbol matched. `None` when kmod's call fails
    /// (the module then silently has no dependencies).
    pub imports: Option<ImportTable>,
}

/// Reads the exports and the undefined symbols in one walk over `.symtab`: kmod walks it
/// once for each, and a module has hundreds to thousands of symbols, most of them neither.
pub(crate) fn symbols(elf: &ModuleElf<'_>) -> ModuleSymbols {
    // Only a shard runs out of room: without one the walk always gives its result.
    symbols_into(elf, None).unwrap_or_else(|| ModuleSymbols {
        exports: ksymtab_string_exports(elf),
        imports: None,
    })
}

/// Like [`symbols`], with the import names numbered in `shard` (a reading thread's names,
/// and the shard's number): the tables then share the names once the run's reading is done
/// (see [`ImportTable::share_names`]). A module whose names no longer fit in the shard
/// keeps them in its own table.
pub(crate) fn symbols_numbered(
    elf: &ModuleElf<'_>,
    shard: (&mut NameShard, usize),
) -> ModuleSymbols {
    match symbols_into(elf, Some(shard)) {
        Some(found) => found,
        None => symbols(elf),
    }
}

/// The walk of [`symbols`] and [`symbols_numbered`]: `None` only when `shard` ran out of
/// room.
fn symbols_into(
    elf: &ModuleElf<'_>,
    shard: Option<(&mut NameShard, usize)>,
) -> Option<ModuleSymbols> {
    let versions = Versions::new(elf);
    let Some(table) = SymbolTable::new(elf) else {
        return Some(ModuleSymbols {
            exports: ksymtab_string_exports(elf),
            imports: None,
        });
    };
    let mut collector = Collector::new(&versions, shard)?;
    let mut visited = vec![false; versions.count];
    let skip_registers = matches!(elf.machine(), EM_SPARC | EM_SPARCV9);

    // kmod's two walks fail on different symbols: the export walk on any `st_name` outside
    // `.strtab` (it then falls back to `__ksymtab_strings`), the import walk only on such an
    // undefined symbol.
    let mut crc_exports = Some(Vec::new());
    // Whether the import walk still goes on (it stops where kmod's call fails).
    let mut imports_read = true;
    for symbol in table.symbols() {
        let wanted_import = imports_read
            && symbol.section == SHN_UNDEF
            && !(skip_registers && symbol.info & 0xf == STT_REGISTER);
        if !table.name_in_range(&symbol) {
            crc_exports = None;
            if wanted_import {
                imports_read = false;
            }
            if crc_exports.is_none() && !imports_read {
                break;
            }
            continue;
        }
        if wanted_import {
            let name = table.name(&symbol).unwrap_or_default();
            if !name.is_empty() {
                let (id, entry) = collector.find(name)?;
                let crc = match entry {
                    Some(index) => {
                        visited[index] = true;
                        versions.crc(index)
                    }
                    None => 0,
                };
                collector.push(name, id, crc, symbol.info >> 4 == STB_WEAK);
            }
        }
        if let Some(found) = crc_exports.as_mut() {
            if table.name_starts_with(&symbol, CRC_PREFIX) {
                // A partial image that cannot tell where a name ends gives it as empty (and
                // is marked incomplete, so this result is not used): never slice blindly.
                let name = table.name(&symbol).unwrap_or_default();
                if let Some(exported) = name.strip_prefix(&CRC_PREFIX[..]) {
                    found.push(Export {
                        name: exported.to_vec(),
                        crc: resolve_crc(elf, symbol.value, symbol.section),
                    });
                }
            }
        }
    }
    let imports = match imports_read {
        true => collector.finish(&versions, &visited)?,
        false => None,
    };
    let exports = match crc_exports {
        Some(found) if !found.is_empty() => Ok(found),
        _ => ksymtab_string_exports(elf),
    };
    Some(ModuleSymbols { exports, imports })
}

/// Where a walk puts the undefined symbols it finds, and how it finds their `__versions`
/// entries.
enum Collector<'s, 'a> {
    /// Names copied into the table; entries found in a map of the module's own.
    Inline {
        lookup: VersionLookup<'a>,
        table: ImportTable,
    },
    /// Names numbered in a reading thread's shard, which also notes the entries.
    Numbered {
        shard: &'s mut NameShard,
        table: ImportTable,
    },
}

impl<'s, 'a> Collector<'s, 'a> {
    /// A collector for a module with `versions`, numbering names in `shard` if given;
    /// `None` if the shard has no room left.
    fn new(versions: &Versions<'_, 'a>, shard: Option<(&'s mut NameShard, usize)>) -> Option<Self> {
        let Some((shard, number)) = shard else {
            return Some(Collector::Inline {
                lookup: VersionLookup::new(versions),
                table: ImportTable::with_capacity(versions.count),
            });
        };
        shard.start_module();
        for index in 0..versions.count {
            if let Some(name) = versions.name(index) {
                let id = shard.intern(name)?;
                shard.note_version(id, index);
            }
        }
        Some(Collector::Numbered {
            shard,
            table: ImportTable::numbered(versions.count, number),
        })
    }

    /// The number `name` has (numbered tables only) and its first `__versions` entry;
    /// `None` if the shard has no room left.
    fn find(&mut self, name: &[u8]) -> Option<(usize, Option<usize>)> {
        match self {
            Collector::Inline { lookup, .. } => Some((0, lookup.find(name))),
            Collector::Numbered { shard, .. } => {
                let id = shard.intern(name)?;
                Some((id, shard.version(id)))
            }
        }
    }

    /// Appends a symbol named `name`, number `id` (as [`Collector::find`] gave it).
    fn push(&mut self, name: &[u8], id: usize, crc: u64, weak: bool) {
        match self {
            Collector::Inline { table, .. } => table.push(name, crc, weak),
            Collector::Numbered { table, .. } => table.push_numbered(id, crc, weak),
        }
    }

    /// The table, with the `__versions` entries no symbol matched appended: `Some(None)`
    /// when kmod's call fails, `None` if the shard has no room left.
    fn finish(
        mut self,
        versions: &Versions<'_, 'a>,
        visited: &[bool],
    ) -> Option<Option<ImportTable>> {
        for (index, _) in visited.iter().enumerate().filter(|(_, &v)| !v) {
            // kmod 34 fails the whole call on an unvisited entry with an unterminated name.
            let Some(name) = versions.name(index) else {
                return Some(None);
            };
            let (id, _) = self.find(name)?;
            self.push(name, id, versions.crc(index), false);
        }
        let mut table = match self {
            Collector::Inline { table, .. } | Collector::Numbered { table, .. } => table,
        };
        table.shrink_to_fit();
        Some(Some(table))
    }
}

/// A `__crc_` symbol's CRC: its value for `SHN_ABS`/`SHN_UNDEF`, otherwise the u32 at that
/// offset in its section (kernels 5.19+). Invalid locations give −1.
fn resolve_crc(elf: &ModuleElf<'_>, value: u64, section: u16) -> u64 {
    const INVALID: u64 = u64::MAX;
    if section == SHN_ABS || section == SHN_UNDEF {
        return value;
    }
    let Some((range, name_offset)) = elf.section_info(section) else {
        return INVALID;
    };
    if elf.version().strict_elf_sections() {
        // kmod 34 validates the section's name too, and checks the size before subtracting.
        if name_offset >= elf.names_size() || range.size < 4 || value > range.size - 4 {
            return INVALID;
        }
        elf.uint(range.offset + value, 4)
    } else {
        // kmod 30–33 subtract with wrap-around and fail only on reads past the image.
        if value > range.size.wrapping_sub(4) {
            return INVALID;
        }
        range
            .offset
            .checked_add(value)
            .and_then(|at| elf.checked_uint(at, 4))
            .unwrap_or(INVALID)
    }
}

/// Exports listed in `__ksymtab_strings`, CRC 0.
fn ksymtab_string_exports(elf: &ModuleElf<'_>) -> Result<Vec<Export>, ModuleError> {
    let Some(range) = elf.section(Wanted::KsymtabStrings) else {
        return Ok(Vec::new());
    };
    let mut strings = elf.bytes(range);
    while strings.len() > 1 && strings[0] == 0 {
        strings = &strings[1..];
    }
    if strings.len() <= 1 {
        return Ok(Vec::new());
    }
    if elf.version().strict_ksymtab_strings() && strings.last() != Some(&0) {
        return Err(ModuleError::UnterminatedExportStrings { path: None });
    }
    // kmod 30–33 count an unterminated tail as one more name; splitting does exactly that.
    Ok(strings
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| Export {
            name: name.to_vec(),
            crc: 0,
        })
        .collect())
}

/// The `__versions` table: 64-byte entries of CRC plus name.
struct Versions<'e, 'a> {
    elf: &'e ModuleElf<'a>,
    /// File offset of the table.
    offset: u64,
    /// The table's bytes (`count` whole entries).
    entries: &'a [u8],
    count: usize,
    crc_size: usize,
    strict_names: bool,
}

impl<'e, 'a> Versions<'e, 'a> {
    fn new(elf: &'e ModuleElf<'a>) -> Self {
        let crc_size = elf.class().version_crc_size();
        let strict_names = elf.version().strict_versions_names();
        let entry = VERSION_ENTRY_SIZE as u64;
        let (offset, entries) = match elf.section(Wanted::Versions) {
            Some(range) if range.size % entry == 0 => (range.offset, elf.bytes(range)),
            _ => (0, &[][..]),
        };
        Versions {
            elf,
            offset,
            entries,
            // A partial image that did not load the table gives no bytes (and is then
            // marked incomplete, so the result is not used).
            count: entries.len() / VERSION_ENTRY_SIZE,
            crc_size,
            strict_names,
        }
    }

    fn crc(&self, index: usize) -> u64 {
        let at = index * VERSION_ENTRY_SIZE;
        self.elf
            .endian()
            .read_uint(&self.entries[at..at + self.crc_size])
    }

    /// The entry's name: inside its field and `None` when unterminated (kmod 34), or a
    /// C string that may run into the following bytes (kmod 30–33).
    fn name(&self, index: usize) -> Option<&'a [u8]> {
        let at = index * VERSION_ENTRY_SIZE + self.crc_size;
        if self.strict_names {
            let field = &self.entries[at..(index + 1) * VERSION_ENTRY_SIZE];
            memchr::memchr(0, field).map(|end| &field[..end])
        } else {
            let rest = &self.entries[at..];
            Some(match memchr::memchr(0, rest) {
                Some(end) => &rest[..end],
                None => self.elf.cstr_at(self.offset + at as u64),
            })
        }
    }
}

/// Finds the first `__versions` entry with a given name.
enum VersionLookup<'a> {
    /// Few entries: scan them in order, as kmod does.
    Scan(Vec<Option<&'a [u8]>>),
    /// Many entries: the first index of each name.
    Map(FxHashMap<&'a [u8], usize>),
}

impl<'a> VersionLookup<'a> {
    const SCAN_LIMIT: usize = 32;

    fn new(versions: &Versions<'_, 'a>) -> Self {
        let names = (0..versions.count).map(|i| versions.name(i));
        if versions.count <= Self::SCAN_LIMIT {
            return VersionLookup::Scan(names.collect());
        }
        let mut map = FxHashMap::with_capacity_and_hasher(versions.count, Default::default());
        for (index, name) in names.enumerate() {
            if let Some(name) = name {
                map.entry(name).or_insert(index);
            }
        }
        VersionLookup::Map(map)
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        match self {
            VersionLookup::Scan(names) => names.iter().position(|n| *n == Some(name)),
            VersionLookup::Map(map) => map.get(name).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use testkit::synth::SynthModule;

    use super::*;
    use crate::compat::KmodVersion;
    use crate::module::image::ImageBytes;
    use crate::module::ImportNames;

    /// A module importing `imports` (name, weak, CRC), with `extra` `__versions` entries no
    /// symbol refers to.
    fn module(imports: &[(String, bool, Option<u32>)], extra: &[(String, u32)]) -> Vec<u8> {
        let mut module = SynthModule::x86_64().with_export("shared_export", Some(7));
        for (name, weak, crc) in imports {
            module = module.with_import(name, *weak, *crc);
        }
        for (name, crc) in extra {
            module = module.with_extra_version(name, *crc);
        }
        module.to_elf()
    }

    /// Each module's imports read with names of their own, and read numbered in one shard
    /// (as one reading thread reads them, one after the other).
    fn both_ways(images: &[Vec<u8>], version: KmodVersion) -> (Vec<ImportTable>, Vec<ImportTable>) {
        let mut shard = NameShard::default();
        let mut inline = Vec::new();
        let mut numbered = Vec::new();
        for image in images {
            let elf = ModuleElf::parse(ImageBytes::Whole(image), version).unwrap();
            inline.push(symbols(&elf).imports.unwrap_or_default());
            let found = symbols_numbered(&elf, (&mut shard, 0));
            numbered.push(found.imports.unwrap_or_default());
        }
        let names = Arc::new(ImportNames::new(vec![shard.freeze()]));
        for table in &mut numbered {
            table.share_names(&names);
        }
        (inline, numbered)
    }

    #[test]
    fn numbered_names_read_as_their_own_do() {
        let imports = |list: &[(&str, bool, Option<u32>)]| -> Vec<(String, bool, Option<u32>)> {
            list.iter()
                .map(|&(n, w, c)| (n.to_string(), w, c))
                .collect()
        };
        let images = [
            module(
                &imports(&[("printk", false, Some(1)), ("kfree", true, None)]),
                &[("printk".into(), 9), ("unused".into(), 3)],
            ),
            // The same names in another module: a CRC of the first must not leak into it.
            module(
                &imports(&[("kfree", false, Some(4)), ("printk", false, None)]),
                &[],
            ),
            module(&[], &[("kfree".into(), 5)]),
        ];
        for version in [KmodVersion::V30, KmodVersion::V34] {
            let (inline, numbered) = both_ways(&images, version);
            assert_eq!(inline, numbered);
            let first: Vec<_> = numbered[0]
                .iter()
                .map(|i| (i.name, i.crc, i.weak))
                .collect();
            // The entries no symbol refers to come first in `__versions`: the import takes
            // the first `printk` entry, and the second is appended with `unused`.
            assert_eq!(
                first,
                [
                    (&b"printk"[..], 9, false),
                    (&b"kfree"[..], 0, true),
                    (&b"unused"[..], 3, false),
                    (&b"printk"[..], 1, false),
                ]
            );
            assert!(numbered.iter().all(|t| t.shared_names().is_some()));
        }
    }

    proptest! {
        #[test]
        fn numbered_names_match_on_random_modules(
            modules in prop::collection::vec(
                (
                    prop::collection::vec(("[a-d]{1,3}", any::<bool>(), prop::option::of(0u32..4)), 0..8),
                    prop::collection::vec(("[a-d]{1,3}", 0u32..4), 0..4),
                ),
                1..6,
            )
        ) {
            let images: Vec<Vec<u8>> = modules
                .iter()
                .map(|(imports, extra)| module(imports, extra))
                .collect();
            let (inline, numbered) = both_ways(&images, KmodVersion::V34);
            prop_assert_eq!(inline, numbered);
        }
    }
}
