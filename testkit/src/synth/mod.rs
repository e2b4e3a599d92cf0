//! Synthetic kernel-module ELF files for tests, random trees and the demo tree.
//!
//! [`SynthModule`] describes what depmod reads from a module — `.modinfo` strings, exported
//! symbols with optional CRCs, undefined symbols with optional `__versions` entries — and
//! [`SynthModule::to_elf`] writes a relocatable ELF object in any class and byte order that
//! carries exactly that. The output is deterministic: the same description always gives the
//! same bytes.
//!
//! The layout is the one kbuild produces for the parts kmod looks at:
//!
//! * `.modinfo`: `key=value\0` strings in order;
//! * `__ksymtab_strings`: exported names, each NUL-terminated;
//! * `___kcrctab`: 32-bit CRCs, only when [`CrcLocation::Section`] is chosen;
//! * `__versions`: 64-byte entries (CRC + NUL-padded name) for imports with a CRC, after the
//!   [`SynthModule::extra_versions`];
//! * `.symtab` / `.strtab`: a null symbol, one `__crc_<name>` symbol per export with a CRC,
//!   then one undefined symbol per import;
//! * `.shstrtab`, then any [`SynthModule::extra_sections`], then the section header table.
//!
//! Deliberately odd files can be made with [`SynthModule::symtab`] (omit `.symtab`),
//! [`SynthModule::ksymtab_strings_override`] (raw `__ksymtab_strings` bytes) and
//! [`SynthModule::extra_sections`]; [`SynthModule::to_elf_with_layout`] reports where every
//! section landed so a test can patch bytes afterwards. [`compress()`] packs a module as
//! kbuild would for `.ko.xz`, `.ko.zst` or `.ko.gz` trees.

mod compress;
mod elf;
mod writer;

pub use compress::compress;
pub use elf::{ElfClass, Endian};

use elf::{
    SHF_ALLOC, SHN_ABS, SHN_UNDEF, SHT_PROGBITS, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL, STB_WEAK,
    STT_NOTYPE, STT_OBJECT, VERSION_ENTRY_SIZE,
};
use writer::ByteWriter;

/// Common `e_machine` values, for convenience.
pub mod machine {
    /// Intel 80386.
    pub const I386: u16 = 3;
    /// 32-bit SPARC.
    pub const SPARC: u16 = 2;
    /// IBM S/390 and s390x.
    pub const S390: u16 = 22;
    /// 64-bit PowerPC.
    pub const PPC64: u16 = 21;
    /// 32-bit ARM.
    pub const ARM: u16 = 40;
    /// SPARC V9 (64-bit).
    pub const SPARCV9: u16 = 43;
    /// AMD x86-64.
    pub const X86_64: u16 = 62;
    /// 64-bit ARM.
    pub const AARCH64: u16 = 183;
    /// MIPS.
    pub const MIPS: u16 = 8;
    /// RISC-V.
    pub const RISCV: u16 = 243;
}

/// An exported symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SynthExport {
    /// Symbol name, written to `__ksymtab_strings`.
    pub name: Vec<u8>,
    /// With `Some`, a `__crc_<name>` symbol carries this CRC.
    pub crc: Option<u32>,
}

/// An undefined (imported) symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SynthImport {
    /// Symbol name, written to `.strtab` for an undefined `.symtab` entry.
    pub name: Vec<u8>,
    /// `STB_WEAK` binding instead of `STB_GLOBAL`.
    pub weak: bool,
    /// With `Some`, a `__versions` entry with this CRC is written for the symbol.
    pub crc: Option<u32>,
}

/// Where `__crc_` symbols keep their CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CrcLocation {
    /// `st_shndx = SHN_ABS`, `st_value = crc` (kernels before 5.19).
    #[default]
    Absolute,
    /// The CRC is a u32 in a `___kcrctab` section and `st_value` is its offset there
    /// (kernels 5.19 and later).
    Section,
}

/// A section added verbatim after `.shstrtab`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawSection {
    /// Section name (may repeat a name the writer already uses, to test first-match lookup).
    pub name: Vec<u8>,
    /// Section contents.
    pub data: Vec<u8>,
}

/// Where one section of a written module lies, for tests that patch the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionPlacement {
    /// Section name.
    pub name: Vec<u8>,
    /// Index in the section header table.
    pub index: usize,
    /// File offset of the section's header.
    pub header_offset: usize,
    /// File offset of the section's contents.
    pub data_offset: usize,
    /// Size of the contents.
    pub size: usize,
}

/// Placement of everything [`SynthModule::to_elf_with_layout`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SynthLayout {
    /// Every section except the null section, in header-table order.
    pub sections: Vec<SectionPlacement>,
    /// File offset of the section header table.
    pub section_headers_offset: usize,
}

impl SynthLayout {
    /// The first section called `name`, if any.
    pub fn section(&self, name: &str) -> Option<&SectionPlacement> {
        self.sections.iter().find(|s| s.name == name.as_bytes())
    }
}

/// A description of a kernel module, written out as an ELF relocatable object by
/// [`SynthModule::to_elf`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SynthModule {
    /// ELF class.
    pub class: ElfClass,
    /// Byte order of every field.
    pub endian: Endian,
    /// `e_machine`, e.g. 62 (x86-64), 3 (i386), 22 (s390), 43 (sparcv9), 40 (arm),
    /// 183 (aarch64), 21 (ppc64).
    pub machine: u16,
    /// `key=value` strings of `.modinfo`, in order.
    pub modinfo: Vec<(Vec<u8>, Vec<u8>)>,
    /// Exported symbols, in `__ksymtab_strings` and `.symtab` order.
    pub exports: Vec<SynthExport>,
    /// Undefined symbols, in `.symtab` order.
    pub imports: Vec<SynthImport>,
    /// `__versions` entries that no symbol refers to (e.g. `module_layout`); written first.
    pub extra_versions: Vec<(Vec<u8>, u32)>,
    /// Whether `.symtab` and `.strtab` are written (default `true`).
    pub symtab: bool,
    /// Where `__crc_` symbols keep their CRC.
    pub crc_location: CrcLocation,
    /// Raw bytes for `__ksymtab_strings` instead of the exported names.
    pub ksymtab_strings_override: Option<Vec<u8>>,
    /// Sections appended after `.shstrtab`.
    pub extra_sections: Vec<RawSection>,
}

impl SynthModule {
    /// An empty module: no modinfo, no symbols, with a symbol table.
    pub fn new(class: ElfClass, endian: Endian, machine: u16) -> Self {
        SynthModule {
            class,
            endian,
            machine,
            modinfo: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
            extra_versions: Vec::new(),
            symtab: true,
            crc_location: CrcLocation::Absolute,
            ksymtab_strings_override: None,
            extra_sections: Vec::new(),
        }
    }

    /// An x86-64 (64-bit little-endian) module.
    pub fn x86_64() -> Self {
        SynthModule::new(ElfClass::Elf64, Endian::Little, machine::X86_64)
    }

    /// Adds a `key=value` modinfo string.
    pub fn with_modinfo(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.modinfo
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Adds an exported symbol.
    pub fn with_export(mut self, name: impl AsRef<[u8]>, crc: Option<u32>) -> Self {
        self.exports.push(SynthExport {
            name: name.as_ref().to_vec(),
            crc,
        });
        self
    }

    /// Adds an undefined symbol.
    pub fn with_import(mut self, name: impl AsRef<[u8]>, weak: bool, crc: Option<u32>) -> Self {
        self.imports.push(SynthImport {
            name: name.as_ref().to_vec(),
            weak,
            crc,
        });
        self
    }

    /// Adds a `__versions` entry that no symbol refers to.
    pub fn with_extra_version(mut self, name: impl AsRef<[u8]>, crc: u32) -> Self {
        self.extra_versions.push((name.as_ref().to_vec(), crc));
        self
    }

    /// Adds a raw section after `.shstrtab`.
    pub fn with_section(mut self, name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        self.extra_sections.push(RawSection {
            name: name.as_ref().to_vec(),
            data: data.as_ref().to_vec(),
        });
        self
    }

    /// Writes the module as ELF bytes.
    pub fn to_elf(&self) -> Vec<u8> {
        self.to_elf_with_layout().0
    }

    /// Writes the module and reports where each section was placed.
    pub fn to_elf_with_layout(&self) -> (Vec<u8>, SynthLayout) {
        let plan = self.plan_sections();
        write_elf(self, &plan)
    }

    /// The `.modinfo` contents.
    fn modinfo_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.modinfo {
            out.extend_from_slice(key);
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    /// The `__ksymtab_strings` contents, or `None` when the section is not written.
    fn ksymtab_strings_bytes(&self) -> Option<Vec<u8>> {
        if let Some(raw) = &self.ksymtab_strings_override {
            return Some(raw.clone());
        }
        if self.exports.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for export in &self.exports {
            out.extend_from_slice(&export.name);
            out.push(0);
        }
        Some(out)
    }

    /// All `__versions` entries in section order.
    fn version_entries(&self) -> Vec<(&[u8], u32)> {
        let extra = self
            .extra_versions
            .iter()
            .map(|(name, crc)| (name.as_slice(), *crc));
        let imported = self
            .imports
            .iter()
            .filter_map(|imp| imp.crc.map(|crc| (imp.name.as_slice(), crc)));
        extra.chain(imported).collect()
    }

    /// Decides which sections exist and in which order (contents of the symbol-related
    /// sections are filled in by [`write_elf`], which knows the section indexes).
    fn plan_sections(&self) -> Vec<PlannedSection> {
        let mut plan = vec![PlannedSection::data(
            ".modinfo",
            SectionKind::Bytes(self.modinfo_bytes()),
        )];
        if let Some(strings) = self.ksymtab_strings_bytes() {
            plan.push(PlannedSection::data(
                "__ksymtab_strings",
                SectionKind::Bytes(strings),
            ));
        }
        let versions = self.version_entries();
        if !versions.is_empty() {
            let mut bytes = ByteWriter::new(self.class, self.endian);
            for (name, crc) in versions {
                write_version_entry(&mut bytes, name, crc);
            }
            plan.push(PlannedSection::data(
                "__versions",
                SectionKind::Bytes(bytes.into_inner()),
            ));
        }
        let crcs_in_section = self.crc_location == CrcLocation::Section
            && self.exports.iter().any(|e| e.crc.is_some());
        if crcs_in_section {
            let mut bytes = ByteWriter::new(self.class, self.endian);
            for crc in self.exports.iter().filter_map(|e| e.crc) {
                bytes.u32(crc);
            }
            plan.push(PlannedSection::data(
                "___kcrctab",
                SectionKind::Bytes(bytes.into_inner()),
            ));
        }
        if self.symtab {
            plan.push(PlannedSection::data(".symtab", SectionKind::Symtab));
            plan.push(PlannedSection::data(".strtab", SectionKind::Strtab));
        }
        plan.push(PlannedSection::data(".shstrtab", SectionKind::Shstrtab));
        for raw in &self.extra_sections {
            plan.push(PlannedSection {
                name: raw.name.clone(),
                kind: SectionKind::Bytes(raw.data.clone()),
            });
        }
        plan
    }
}

/// What a planned section holds.
enum SectionKind {
    Bytes(Vec<u8>),
    Symtab,
    Strtab,
    Shstrtab,
}

struct PlannedSection {
    name: Vec<u8>,
    kind: SectionKind,
}

impl PlannedSection {
    fn data(name: &str, kind: SectionKind) -> Self {
        PlannedSection {
            name: name.as_bytes().to_vec(),
            kind,
        }
    }
}

/// One 64-byte `__versions` entry: CRC in the class's width, then the name NUL-padded (a name
/// that does not fit is cut and left unterminated, which kmod 34 rejects).
fn write_version_entry(out: &mut ByteWriter, name: &[u8], crc: u32) {
    let name_field = VERSION_ENTRY_SIZE - out.class().version_crc_size();
    out.word(u64::from(crc));
    let kept = &name[..name.len().min(name_field)];
    out.bytes(kept);
    out.zeros(name_field - kept.len());
}

/// A symbol table entry before encoding.
struct SymbolEntry {
    name_offset: u32,
    value: u64,
    info: u8,
    shndx: u16,
}

/// Builds `.symtab` and `.strtab` contents.
fn symbol_tables(module: &SynthModule, kcrctab_index: Option<u16>) -> (Vec<u8>, Vec<u8>) {
    let mut strtab = vec![0u8];
    let mut symbols = vec![SymbolEntry {
        name_offset: 0,
        value: 0,
        info: 0,
        shndx: SHN_UNDEF,
    }];
    let mut crc_offset = 0u64;
    for export in &module.exports {
        let Some(crc) = export.crc else { continue };
        let name_offset = strtab.len() as u32;
        strtab.extend_from_slice(b"__crc_");
        strtab.extend_from_slice(&export.name);
        strtab.push(0);
        let (value, shndx, kind) = match kcrctab_index {
            Some(index) => {
                let offset = crc_offset;
                crc_offset += 4;
                (offset, index, STT_OBJECT)
            }
            None => (u64::from(crc), SHN_ABS, STT_NOTYPE),
        };
        symbols.push(SymbolEntry {
            name_offset,
            value,
            info: (STB_GLOBAL << 4) | kind,
            shndx,
        });
    }
    for import in &module.imports {
        let name_offset = strtab.len() as u32;
        strtab.extend_from_slice(&import.name);
        strtab.push(0);
        let bind = if import.weak { STB_WEAK } else { STB_GLOBAL };
        symbols.push(SymbolEntry {
            name_offset,
            value: 0,
            info: (bind << 4) | STT_NOTYPE,
            shndx: SHN_UNDEF,
        });
    }
    let mut symtab = ByteWriter::new(module.class, module.endian);
    for sym in &symbols {
        match module.class {
            ElfClass::Elf32 => {
                symtab.u32(sym.name_offset);
                symtab.u32(sym.value as u32);
                symtab.u32(0);
                symtab.u8(sym.info);
                symtab.u8(0);
                symtab.u16(sym.shndx);
            }
            ElfClass::Elf64 => {
                symtab.u32(sym.name_offset);
                symtab.u8(sym.info);
                symtab.u8(0);
                symtab.u16(sym.shndx);
                symtab.u64(sym.value);
                symtab.u64(0);
            }
        }
    }
    (symtab.into_inner(), strtab)
}

/// A section header before encoding.
struct SectionHeader {
    name_offset: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

fn write_elf(module: &SynthModule, plan: &[PlannedSection]) -> (Vec<u8>, SynthLayout) {
    let class = module.class;
    // Section indexes: 0 is the null section, planned sections follow in order.
    let index_of = |name: &str| {
        plan.iter()
            .position(|s| s.name == name.as_bytes())
            .map(|i| i + 1)
    };
    let kcrctab_index = if module.crc_location == CrcLocation::Section {
        index_of("___kcrctab").map(|i| i as u16)
    } else {
        None
    };
    let strtab_index = index_of(".strtab").unwrap_or(0);
    let shstrtab_index = index_of(".shstrtab").unwrap_or(0);

    let mut shstrtab = vec![0u8];
    let name_offsets: Vec<u32> = plan
        .iter()
        .map(|s| {
            let offset = shstrtab.len() as u32;
            shstrtab.extend_from_slice(&s.name);
            shstrtab.push(0);
            offset
        })
        .collect();
    let (symtab, strtab) = if module.symtab {
        symbol_tables(module, kcrctab_index)
    } else {
        (Vec::new(), Vec::new())
    };

    let mut out = ByteWriter::new(class, module.endian);
    out.zeros(class.header_size());
    let mut headers = Vec::with_capacity(plan.len());
    let mut layout = SynthLayout::default();
    for (i, section) in plan.iter().enumerate() {
        out.align(8);
        let data_offset = out.len();
        let (contents, kind, flags, link, info, entsize): (&[u8], u32, u64, u32, u32, u64) =
            match &section.kind {
                SectionKind::Bytes(bytes) => (bytes, SHT_PROGBITS, SHF_ALLOC, 0, 0, 0),
                SectionKind::Symtab => (
                    &symtab,
                    SHT_SYMTAB,
                    0,
                    strtab_index as u32,
                    1,
                    class.symbol_size() as u64,
                ),
                SectionKind::Strtab => (&strtab, SHT_STRTAB, 0, 0, 0, 0),
                SectionKind::Shstrtab => (&shstrtab, SHT_STRTAB, 0, 0, 0, 0),
            };
        out.bytes(contents);
        headers.push(SectionHeader {
            name_offset: name_offsets[i],
            kind,
            flags,
            offset: data_offset as u64,
            size: contents.len() as u64,
            link,
            info,
            align: if kind == SHT_PROGBITS { 8 } else { 1 },
            entsize,
        });
        layout.sections.push(SectionPlacement {
            name: section.name.clone(),
            index: i + 1,
            header_offset: 0,
            data_offset,
            size: contents.len(),
        });
    }
    out.align(8);
    let shoff = out.len();
    layout.section_headers_offset = shoff;
    // Null section header.
    out.zeros(class.section_header_size());
    for (i, header) in headers.iter().enumerate() {
        layout.sections[i].header_offset = out.len();
        write_section_header(&mut out, header);
    }
    let section_count = (headers.len() + 1) as u16;
    let mut bytes = out.into_inner();
    write_file_header(
        &mut bytes,
        module,
        shoff as u64,
        section_count,
        shstrtab_index as u16,
    );
    (bytes, layout)
}

fn write_section_header(out: &mut ByteWriter, h: &SectionHeader) {
    out.u32(h.name_offset);
    out.u32(h.kind);
    out.word(h.flags);
    out.word(0); // sh_addr
    out.word(h.offset);
    out.word(h.size);
    out.u32(h.link);
    out.u32(h.info);
    out.word(h.align);
    out.word(h.entsize);
}

fn write_file_header(
    bytes: &mut [u8],
    module: &SynthModule,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
) {
    let class = module.class;
    let mut header = ByteWriter::new(class, module.endian);
    header.bytes(b"\x7fELF");
    header.u8(match class {
        ElfClass::Elf32 => 1,
        ElfClass::Elf64 => 2,
    });
    header.u8(match module.endian {
        Endian::Little => 1,
        Endian::Big => 2,
    });
    header.u8(1); // EI_VERSION
    header.zeros(9); // OS ABI, ABI version, padding
    header.u16(1); // e_type = ET_REL
    header.u16(module.machine);
    header.u32(1); // e_version
    header.word(0); // e_entry
    header.word(0); // e_phoff
    header.word(shoff);
    header.u32(0); // e_flags
    header.u16(class.header_size() as u16);
    header.u16(0); // e_phentsize
    header.u16(0); // e_phnum
    header.u16(class.section_header_size() as u16);
    header.u16(shnum);
    header.u16(shstrndx);
    let header = header.into_inner();
    bytes[..header.len()].copy_from_slice(&header);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_follow_class_and_byte_order() {
        let elf = SynthModule::new(ElfClass::Elf32, Endian::Big, machine::S390).to_elf();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 1);
        assert_eq!(elf[5], 2);
        assert_eq!(&elf[18..20], &[0, 22]);
        // e_shentsize
        assert_eq!(&elf[46..48], &[0, 40]);

        let elf = SynthModule::x86_64().to_elf();
        assert_eq!(elf[4], 2);
        assert_eq!(elf[5], 1);
        assert_eq!(&elf[58..60], &[64, 0]);
    }

    #[test]
    fn output_is_deterministic() {
        let module = SynthModule::x86_64()
            .with_modinfo("alias", "pci:v*")
            .with_export("foo", Some(7))
            .with_import("bar", true, Some(9))
            .with_extra_version("module_layout", 1);
        assert_eq!(module.to_elf(), module.to_elf());
    }

    #[test]
    fn layout_points_at_section_contents() {
        let module = SynthModule::x86_64().with_modinfo("license", "GPL");
        let (elf, layout) = module.to_elf_with_layout();
        let modinfo = layout.section(".modinfo").expect(".modinfo placed");
        assert_eq!(
            &elf[modinfo.data_offset..modinfo.data_offset + modinfo.size],
            b"license=GPL\0"
        );
    }

    #[test]
    fn long_version_names_are_cut_unterminated() {
        let mut out = ByteWriter::new(ElfClass::Elf64, Endian::Little);
        write_version_entry(&mut out, &[b'x'; 80], 5);
        let entry = out.into_inner();
        assert_eq!(entry.len(), 64);
        assert!(entry[8..].iter().all(|&b| b == b'x'));
    }
}
