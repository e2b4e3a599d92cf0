//! The ELF format parameters and constants the writer needs.
//!
//! These are the test kit's own definitions, kept apart from the reader's in the library so
//! that a mistake in one cannot hide the same mistake in the other.

/// The ELF class: 32- or 64-bit layouts of headers, symbols and `__versions` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElfClass {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// The ELF data encoding; every multi-byte field of the file follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

impl ElfClass {
    /// Size of the ELF file header (`Elf32_Ehdr` / `Elf64_Ehdr`).
    pub(crate) const fn header_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 52,
            ElfClass::Elf64 => 64,
        }
    }

    /// Size of one section header (`Elf32_Shdr` / `Elf64_Shdr`).
    pub(crate) const fn section_header_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 40,
            ElfClass::Elf64 => 64,
        }
    }

    /// Size of one symbol table entry (`Elf32_Sym` / `Elf64_Sym`).
    pub(crate) const fn symbol_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 16,
            ElfClass::Elf64 => 24,
        }
    }

    /// Size of the CRC field that starts a 64-byte `__versions` entry.
    pub(crate) const fn version_crc_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 4,
            ElfClass::Elf64 => 8,
        }
    }
}

/// Size of one `__versions` entry in either class.
pub(crate) const VERSION_ENTRY_SIZE: usize = 64;
/// Undefined section index (`SHN_UNDEF`).
pub(crate) const SHN_UNDEF: u16 = 0;
/// Absolute-value section index (`SHN_ABS`).
pub(crate) const SHN_ABS: u16 = 0xfff1;
/// Symbol binding: global.
pub(crate) const STB_GLOBAL: u8 = 1;
/// Symbol binding: weak.
pub(crate) const STB_WEAK: u8 = 2;
/// Symbol type: no type.
pub(crate) const STT_NOTYPE: u8 = 0;
/// Symbol type: data object.
pub(crate) const STT_OBJECT: u8 = 1;
/// Section type: program data.
pub(crate) const SHT_PROGBITS: u32 = 1;
/// Section type: symbol table.
pub(crate) const SHT_SYMTAB: u32 = 2;
/// Section type: string table.
pub(crate) const SHT_STRTAB: u32 = 3;
/// Section flag: occupies memory at run time.
pub(crate) const SHF_ALLOC: u64 = 2;
