//! ELF constants and the two format parameters (class, byte order) of the module reader.

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
    pub const fn header_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 52,
            ElfClass::Elf64 => 64,
        }
    }

    /// Size of one section header (`Elf32_Shdr` / `Elf64_Shdr`).
    pub const fn section_header_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 40,
            ElfClass::Elf64 => 64,
        }
    }

    /// Size of one symbol table entry (`Elf32_Sym` / `Elf64_Sym`).
    pub const fn symbol_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 16,
            ElfClass::Elf64 => 24,
        }
    }

    /// Size of the CRC field that starts a 64-byte `__versions` entry.
    pub const fn version_crc_size(self) -> usize {
        match self {
            ElfClass::Elf32 => 4,
            ElfClass::Elf64 => 8,
        }
    }
}

impl Endian {
    /// The unsigned integer in `bytes` (1, 2, 4 or 8 of them; 0 for any other length).
    #[inline]
    pub fn read_uint(self, bytes: &[u8]) -> u64 {
        match (self, bytes.len()) {
            (_, 1) => u64::from(bytes[0]),
            (Endian::Little, 2) => u64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
            (Endian::Big, 2) => u64::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            (Endian::Little, 4) => u64::from(u32::from_le_bytes(fixed(bytes))),
            (Endian::Big, 4) => u64::from(u32::from_be_bytes(fixed(bytes))),
            (Endian::Little, 8) => u64::from_le_bytes(fixed(bytes)),
            (Endian::Big, 8) => u64::from_be_bytes(fixed(bytes)),
            _ => 0,
        }
    }
}

/// `bytes` as an array (its length is checked by the caller).
#[inline]
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

/// Size of one `__versions` entry in either class.
pub const VERSION_ENTRY_SIZE: usize = 64;
/// `EI_NIDENT`: size of `e_ident`.
pub const EI_NIDENT: usize = 16;
/// The ELF magic at the start of `e_ident`.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// `e_ident[EI_CLASS]` value for 32-bit objects.
pub const ELFCLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` value for 64-bit objects.
pub const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` value for little-endian objects.
pub const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]` value for big-endian objects.
pub const ELFDATA2MSB: u8 = 2;
/// Undefined section index (`SHN_UNDEF`).
pub const SHN_UNDEF: u16 = 0;
/// Absolute-value section index (`SHN_ABS`).
pub const SHN_ABS: u16 = 0xfff1;
/// Symbol binding: weak.
pub const STB_WEAK: u8 = 2;
/// Symbol type: SPARC global register (`STT_REGISTER`), skipped by kmod on SPARC.
pub const STT_REGISTER: u8 = 13;
/// `e_machine` for 32-bit SPARC.
pub const EM_SPARC: u16 = 2;
/// `e_machine` for 64-bit SPARC.
pub const EM_SPARCV9: u16 = 43;
