//! A growable byte buffer that encodes integers in a chosen ELF class and byte order.

use super::elf::{ElfClass, Endian};

/// Appends fixed-width fields in the byte order (and, for [`ByteWriter::word`], the width)
/// of one ELF flavour.
pub(crate) struct ByteWriter {
    buf: Vec<u8>,
    class: ElfClass,
    endian: Endian,
}

impl ByteWriter {
    pub(crate) fn new(class: ElfClass, endian: Endian) -> Self {
        ByteWriter {
            buf: Vec::new(),
            class,
            endian,
        }
    }

    pub(crate) fn class(&self) -> ElfClass {
        self.class
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn zeros(&mut self, count: usize) {
        self.buf.resize(self.buf.len() + count, 0);
    }

    /// Pads with zeros to a multiple of `alignment`.
    pub(crate) fn align(&mut self, alignment: usize) {
        let rem = self.buf.len() % alignment;
        if rem != 0 {
            self.zeros(alignment - rem);
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        match self.endian {
            Endian::Little => self.bytes(&value.to_le_bytes()),
            Endian::Big => self.bytes(&value.to_be_bytes()),
        }
    }

    pub(crate) fn u32(&mut self, value: u32) {
        match self.endian {
            Endian::Little => self.bytes(&value.to_le_bytes()),
            Endian::Big => self.bytes(&value.to_be_bytes()),
        }
    }

    pub(crate) fn u64(&mut self, value: u64) {
        match self.endian {
            Endian::Little => self.bytes(&value.to_le_bytes()),
            Endian::Big => self.bytes(&value.to_be_bytes()),
        }
    }

    /// An address-sized field: 4 bytes for ELF32 (truncating), 8 for ELF64.
    pub(crate) fn word(&mut self, value: u64) {
        match self.class {
            ElfClass::Elf32 => self.u32(value as u32),
            ElfClass::Elf64 => self.u64(value),
        }
    }
}
