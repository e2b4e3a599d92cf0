//! Reading kernel module files: decompression and the ELF data depmod uses.
//!
//! Placeholder: the reader lands in this module.

pub mod elf_types;

pub use elf_types::{ElfClass, Endian};
