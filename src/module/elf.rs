//! A validated, zero-copy view of a kernel module's ELF image, checked exactly as libkmod
//! checks it (`kmod_elf_new`).
//!
//! # Why a hand-rolled parser
//!
//! depmod's output depends on which files libkmod accepts and on exactly what it reads from
//! them, including its quirks. A general ELF library validates differently:
//!
//! * `goblin`'s `Elf::parse` is eager: it parses program headers, dynamic sections and
//!   relocations, allocates, and rejects files (e.g. with an unreadable section we never
//!   look at) that kmod reads without complaint.
//! * `object` is lazy and robust, but its checks are its own: it refuses some header values
//!   kmod ignores, accepts some kmod refuses (kmod demands `e_shentsize` equal to the native
//!   header size and a NUL-terminated `.shstrtab`), bounds every string to its section, and
//!   has no notion of kmod's version-dependent rules.
//! * kmod's lookups have observable edge cases that must be reproduced bit for bit: a
//!   section whose contents run past the end of the file is skipped (and the next section
//!   with the same name is used), kmod 34 treats a wanted section at file offset 0 as absent,
//!   names in `.strtab` and (before kmod 34) in `__versions` are C strings that may run past
//!   their section into the following bytes, and a `__crc_` CRC can live in any section.
//!
//! What kmod needs is small: the file header, the section header table, the section-name
//! string table and five named sections. Reading those by hand with explicit byte order
//! gives kmod's validation exactly, never allocates for the structure itself, and cannot
//! panic: every access goes through a bounds-checked slice lookup. The parser is fuzzed
//! (`fuzz/fuzz_targets/module_elf.rs`) and tested on truncations and byte flips.

use super::elf_types::{
    ElfClass, Endian, EI_NIDENT, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELF_MAGIC,
};
use super::error::ModuleError;
use super::image::{until_nul, ImageBytes};
use crate::compat::KmodVersion;

/// A section's contents, known to lie inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SectionRange {
    /// File offset of the contents.
    pub offset: u64,
    /// Size of the contents.
    pub size: u64,
}

/// The five sections depmod reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    KsymtabStrings = 0,
    Modinfo = 1,
    Strtab = 2,
    Symtab = 3,
    Versions = 4,
}

impl Wanted {
    pub(crate) const ALL: [Wanted; 5] = [
        Wanted::KsymtabStrings,
        Wanted::Modinfo,
        Wanted::Strtab,
        Wanted::Symtab,
        Wanted::Versions,
    ];

    fn name(self) -> &'static [u8] {
        match self {
            Wanted::KsymtabStrings => b"__ksymtab_strings",
            Wanted::Modinfo => b".modinfo",
            Wanted::Strtab => b".strtab",
            Wanted::Symtab => b".symtab",
            Wanted::Versions => b"__versions",
        }
    }
}

/// A kernel module image that passed kmod's ELF validation.
#[derive(Debug, Clone)]
pub(crate) struct ModuleElf<'a> {
    data: ImageBytes<'a>,
    layout: ElfLayout,
    /// The section header table and the section-name string table, once they are known and
    /// loaded: every section lookup reads them, so they are looked up in the image once.
    tables: LoadedTables<'a>,
}

/// The bytes of the two tables every section lookup reads, where the image has them.
#[derive(Debug, Clone, Copy, Default)]
struct LoadedTables<'a> {
    /// The section header table.
    headers: Option<&'a [u8]>,
    /// The section-name string table (known to end with a NUL).
    names: Option<&'a [u8]>,
}

/// What a parse found about an image, without the image: lets a partial read parse once,
/// load more bytes, and go on with the same result ([`ModuleElf::with_layout`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElfLayout {
    class: ElfClass,
    endian: Endian,
    machine: u16,
    version: KmodVersion,
    section_table_offset: u64,
    section_count: u16,
    names_index: u16,
    names: SectionRange,
    sections: [Option<SectionRange>; 5],
}

/// Offsets of the section header fields kmod reads, per class.
struct ShdrLayout {
    name: u64,
    offset: (u64, usize),
    size: (u64, usize),
}

impl ElfClass {
    fn shdr_layout(self) -> ShdrLayout {
        match self {
            ElfClass::Elf32 => ShdrLayout {
                name: 0,
                offset: (16, 4),
                size: (20, 4),
            },
            ElfClass::Elf64 => ShdrLayout {
                name: 0,
                offset: (24, 8),
                size: (32, 8),
            },
        }
    }
}

impl<'a> ModuleElf<'a> {
    /// Validates `data` as kmod's `kmod_elf_new` does and locates the wanted sections.
    pub(crate) fn parse(data: ImageBytes<'a>, version: KmodVersion) -> Result<Self, ModuleError> {
        Self::parse_collecting(data, version, None)
    }

    /// [`ModuleElf::parse`], which also adds to `prefixed` every section whose name starts
    /// with the given prefix (valid header, contents and name), in the same walk over the
    /// section headers.
    pub(crate) fn parse_collecting(
        data: ImageBytes<'a>,
        version: KmodVersion,
        prefixed: Option<(&[u8], &mut Vec<SectionRange>)>,
    ) -> Result<Self, ModuleError> {
        let mut elf = Self::parse_header(data, version)?;
        elf.check_names()?;
        elf.locate_wanted_sections(prefixed);
        Ok(elf)
    }

    /// What this parse found, to be applied to the same file's bytes later.
    pub(crate) fn layout(&self) -> ElfLayout {
        self.layout
    }

    /// The result of an earlier [`ModuleElf::parse`] of the same file, over `data` (which
    /// must hold the same bytes, possibly more of them).
    pub(crate) fn with_layout(data: ImageBytes<'a>, layout: ElfLayout) -> Self {
        let mut elf = ModuleElf {
            data,
            layout,
            tables: LoadedTables::default(),
        };
        elf.find_section_table();
        elf.find_names_table();
        elf
    }

    /// Keeps the section header table's bytes, if the image has them (a partial image may not
    /// have loaded them yet; lookups then read each header from the image).
    fn find_section_table(&mut self) {
        let table = self.section_table();
        self.tables.headers = usize::try_from(table.offset)
            .ok()
            .and_then(|start| self.data.peek(start, start + table.size as usize));
    }

    /// Keeps the section-name string table's bytes, once [`ModuleElf::check_names`] has
    /// found it (and if the image has them).
    fn find_names_table(&mut self) {
        let names = self.layout.names;
        self.tables.names = (names.size > 0)
            .then(|| usize::try_from(names.offset).ok())
            .flatten()
            .and_then(|start| self.data.peek(start, start + names.size as usize));
    }

    /// The first half of [`ModuleElf::parse`]: checks the file header and that the section
    /// header table lies in the image (which reads nothing past the file header).
    pub(crate) fn parse_header(
        data: ImageBytes<'a>,
        version: KmodVersion,
    ) -> Result<Self, ModuleError> {
        let len = data.len();
        if len <= EI_NIDENT as u64 || data.get(0, 4) != Some(&ELF_MAGIC[..]) {
            return Err(ModuleError::NotElf { path: None });
        }
        let ident = data.get(4, 6).unwrap_or(&[0, 0]);
        let class = match ident[0] {
            ELFCLASS32 => ElfClass::Elf32,
            ELFCLASS64 => ElfClass::Elf64,
            _ => {
                return Err(ModuleError::Invalid {
                    path: None,
                    reason: "unknown ELF class",
                })
            }
        };
        if len <= class.header_size() as u64 {
            return Err(ModuleError::Truncated { path: None });
        }
        let endian = match ident[1] {
            ELFDATA2LSB => Endian::Little,
            ELFDATA2MSB => Endian::Big,
            _ => {
                return Err(ModuleError::Invalid {
                    path: None,
                    reason: "unknown ELF data encoding",
                })
            }
        };
        let mut elf = ModuleElf {
            data,
            tables: LoadedTables::default(),
            layout: ElfLayout {
                class,
                endian,
                machine: 0,
                version,
                section_table_offset: 0,
                section_count: 0,
                names_index: 0,
                names: SectionRange { offset: 0, size: 0 },
                sections: [None; 5],
            },
        };
        // (e_shoff, e_shentsize, e_shnum, e_shstrndx) offsets per class.
        let (shoff, shentsize_at, shnum_at, shstrndx_at) = match class {
            ElfClass::Elf32 => (elf.uint(32, 4), 46, 48, 50),
            ElfClass::Elf64 => (elf.uint(40, 8), 58, 60, 62),
        };
        elf.layout.machine = elf.uint(18, 2) as u16;
        elf.layout.section_table_offset = shoff;
        elf.layout.section_count = elf.uint(shnum_at, 2) as u16;
        let entry_size = elf.uint(shentsize_at, 2);
        elf.layout.names_index = elf.uint(shstrndx_at, 2) as u16;

        if entry_size != class.section_header_size() as u64 {
            return Err(ModuleError::Invalid {
                path: None,
                reason: "unexpected section header entry size",
            });
        }
        if !elf.range_valid(shoff, elf.section_table().size) {
            return Err(ModuleError::SectionOutOfRange { path: None });
        }
        elf.find_section_table();
        Ok(elf)
    }

    /// Checks the section-name string table as kmod does and keeps its range.
    fn check_names(&mut self) -> Result<(), ModuleError> {
        let strict = self.layout.version.strict_elf_sections();
        let (names, name_offset) = self
            .section_info(self.layout.names_index)
            .ok_or(ModuleError::BadStringTable { path: None })?;
        // kmod 34 also checks the string table's own name against its size.
        if strict && name_offset >= names.size {
            return Err(ModuleError::BadStringTable { path: None });
        }
        let last = names
            .size
            .checked_sub(1)
            .and_then(|i| self.byte_at(names.offset + i));
        if last != Some(0) {
            return Err(ModuleError::BadStringTable { path: None });
        }
        self.layout.names = names;
        self.find_names_table();
        Ok(())
    }

    /// The section header table (known to lie in the image after [`ModuleElf::parse_header`]).
    pub(crate) fn section_table(&self) -> SectionRange {
        SectionRange {
            offset: self.layout.section_table_offset,
            size: self.layout.class.section_header_size() as u64
                * u64::from(self.layout.section_count),
        }
    }

    /// The contents of the section-name string table (`e_shstrndx`), if its header is valid.
    pub(crate) fn names_section(&self) -> Option<SectionRange> {
        self.section_info(self.layout.names_index)
            .map(|(range, _)| range)
    }

    /// First section (index ≥ 1) of each wanted name whose contents lie in the file and
    /// whose name offset lies in the string table; and, when asked, every section whose name
    /// starts with a prefix.
    fn locate_wanted_sections(&mut self, mut prefixed: Option<(&[u8], &mut Vec<SectionRange>)>) {
        let mut found = [false; 5];
        for index in 1..self.layout.section_count {
            if prefixed.is_none() && found.iter().all(|&f| f) {
                break;
            }
            let Some((range, name)) = self.named_section(index) else {
                continue;
            };
            if let Some((prefix, ranges)) = prefixed.as_mut() {
                if name.starts_with(prefix) {
                    ranges.push(range);
                }
            }
            for wanted in Wanted::ALL {
                let slot = wanted as usize;
                if !found[slot] && name == wanted.name() {
                    found[slot] = true;
                    // kmod 34 keeps sections as (offset, size) with offset 0 meaning "none".
                    let absent = self.layout.version.strict_elf_sections() && range.offset == 0;
                    self.layout.sections[slot] = if absent { None } else { Some(range) };
                    break;
                }
            }
        }
    }

    /// A section's range and name, when its header, contents and name are all valid.
    fn named_section(&self, index: u16) -> Option<(SectionRange, &'a [u8])> {
        let (range, name_offset) = self.section_info(index)?;
        if name_offset >= self.layout.names.size {
            return None;
        }
        let name = match self.tables.names {
            // The table ends with a NUL, so the name ends inside it.
            Some(names) => until_nul(&names[name_offset as usize..]),
            None => self.cstr_at(self.layout.names.offset + name_offset),
        };
        Some((range, name))
    }

    /// The contents range and `sh_name` of section `index`, if the index is valid and the
    /// contents lie in the file.
    pub(crate) fn section_info(&self, index: u16) -> Option<(SectionRange, u64)> {
        if index == 0 || index >= self.layout.section_count {
            return None;
        }
        let entry_size = self.layout.class.section_header_size() as u64;
        // One read of the whole header, then its fields.
        let bytes = match self.tables.headers {
            Some(table) => {
                let at = usize::from(index) * entry_size as usize;
                &table[at..at + entry_size as usize]
            }
            None => {
                let header = self.layout.section_table_offset + u64::from(index) * entry_size;
                if !self.range_valid(header, entry_size) {
                    return None;
                }
                self.slice(header, entry_size)?
            }
        };
        let field = |at: u64, len: usize| {
            let at = at as usize;
            self.layout.endian.read_uint(&bytes[at..at + len])
        };
        let fields = self.layout.class.shdr_layout();
        let size = field(fields.size.0, fields.size.1);
        let offset = field(fields.offset.0, fields.offset.1);
        let name_offset = field(fields.name, 4);
        if !self.range_valid(offset, size) {
            return None;
        }
        Some((SectionRange { offset, size }, name_offset))
    }

    /// The range of a wanted section, if present.
    pub(crate) fn section(&self, wanted: Wanted) -> Option<SectionRange> {
        self.layout.sections[wanted as usize]
    }

    /// The bytes of a range known to be valid (empty if it is not).
    pub(crate) fn bytes(&self, range: SectionRange) -> &'a [u8] {
        self.slice(range.offset, range.size).unwrap_or(&[])
    }

    /// `len` bytes at `offset`, if they lie in the image.
    pub(crate) fn slice(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start, end)
    }

    /// The NUL-terminated string at `offset`, without its NUL. Like kmod's C-string reads
    /// it may run past the section it starts in; it stops at the end of the image.
    pub(crate) fn cstr_at(&self, offset: u64) -> &'a [u8] {
        match usize::try_from(offset) {
            Ok(start) => self.data.cstr(start),
            Err(_) => &[],
        }
    }

    /// Whether `offset + size` does not overflow and lies within the image.
    pub(crate) fn range_valid(&self, offset: u64, size: u64) -> bool {
        offset
            .checked_add(size)
            .is_some_and(|end| end <= self.data.len())
    }

    fn byte_at(&self, offset: u64) -> Option<u8> {
        self.slice(offset, 1).map(|b| b[0])
    }

    /// An unsigned integer of `size` bytes (1, 2, 4 or 8) at `offset` in the image's byte
    /// order; 0 when out of range (callers validate ranges first, as kmod does).
    pub(crate) fn uint(&self, offset: u64, size: usize) -> u64 {
        self.slice(offset, size as u64)
            .map_or(0, |bytes| self.layout.endian.read_uint(bytes))
    }

    /// Like [`ModuleElf::uint`] but `None` when out of range.
    pub(crate) fn checked_uint(&self, offset: u64, size: usize) -> Option<u64> {
        self.range_valid(offset, size as u64)
            .then(|| self.uint(offset, size))
    }

    /// Size of the section-name string table.
    pub(crate) fn names_size(&self) -> u64 {
        self.layout.names.size
    }

    pub(crate) fn endian(&self) -> Endian {
        self.layout.endian
    }

    pub(crate) fn class(&self) -> ElfClass {
        self.layout.class
    }

    pub(crate) fn machine(&self) -> u16 {
        self.layout.machine
    }

    pub(crate) fn version(&self) -> KmodVersion {
        self.layout.version
    }
}
