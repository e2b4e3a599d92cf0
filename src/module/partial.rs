//! Reading an uncompressed module partially: which byte ranges to load, in which order.
//!
//! 1. the file header (loaded when the file is opened);
//! 2. the section header table, with the bytes just before it, where linkers put the
//!    section-name string table;
//! 3. the section-name string table, if it was not in those bytes;
//! 4. the five sections depmod reads, and the `__kcrctab*` sections that hold the CRCs of
//!    exports on kernels 5.19 and later.
//!
//! Each step parses what is loaded so far with the same [`ModuleElf`] code that reads whole
//! images. If reading the sections then needs a few more byte ranges (a CRC kept in a section
//! of another name), those are loaded and the read runs once more. Any other miss, or any
//! failure, makes the partial read give up and the caller read the whole file, so the result
//! is always the whole-file result.

use std::fs::File;

use super::elf::{ElfLayout, ModuleElf, SectionRange, Wanted};
use super::image::{ImageBytes, PartialImage};
use super::source::load_ranges;
use crate::compat::KmodVersion;

/// Bytes loaded before the section header table along with it.
const TABLE_LEAD: u64 = 2048;

/// Sections that hold `__crc_` symbol values (`__kcrctab`, `__kcrctab_gpl`).
const CRC_SECTION_PREFIX: &[u8] = b"__kcrctab";

/// Runs `read` on `image` (which holds the file's first bytes) after loading what it needs
/// from `file`. `None` when the whole file must be read instead.
pub(crate) fn read_partially<T>(
    file: &File,
    image: &mut PartialImage,
    version: KmodVersion,
    read: &impl Fn(&ModuleElf<'_>) -> T,
) -> Option<T> {
    let mut ranges = Vec::with_capacity(8);

    let header = parsed(image, version, ModuleElf::parse_header)?.layout();
    let table = ModuleElf::with_layout(ImageBytes::Partial(image), header).section_table();
    let lead = table.offset.min(TABLE_LEAD);
    ranges.push(SectionRange {
        offset: table.offset - lead,
        size: table.size + lead,
    });
    load_ranges(file, image, &mut ranges).ok()?;

    let names = ModuleElf::with_layout(ImageBytes::Partial(image), header).names_section()?;
    ranges.clear();
    ranges.push(names);
    load_ranges(file, image, &mut ranges).ok()?;

    ranges.clear();
    let layout = {
        let mut crc_sections = Vec::new();
        let prefixed = Some((CRC_SECTION_PREFIX, &mut crc_sections));
        let elf = parsed(image, version, |data, version| {
            ModuleElf::parse_collecting(data, version, prefixed)
        })?;
        ranges.extend(Wanted::ALL.iter().filter_map(|&w| elf.section(w)));
        ranges.extend(crc_sections);
        elf.layout()
    };
    if image.is_incomplete() {
        return None;
    }
    load_ranges(file, image, &mut ranges).ok()?;

    // The sections were located above; the loaded bytes only add to what that parse saw.
    if let Some(value) = read_with_layout(image, layout, read) {
        return Some(value);
    }
    // Something outside those sections was needed, such as a CRC in a section of another
    // name: load what was missed and try once more.
    ranges.clear();
    ranges.extend(
        image
            .missed_ranges()?
            .into_iter()
            .map(|(offset, size)| SectionRange { offset, size }),
    );
    load_ranges(file, image, &mut ranges).ok()?;
    image.forget_misses();
    read_loaded(image, version, read)
}

/// `read` applied to the loaded ranges with the sections located earlier, if it needed
/// nothing else.
fn read_with_layout<T>(
    image: &PartialImage,
    layout: ElfLayout,
    read: &impl Fn(&ModuleElf<'_>) -> T,
) -> Option<T> {
    let elf = ModuleElf::with_layout(ImageBytes::Partial(image), layout);
    let value = read(&elf);
    (!image.is_incomplete()).then_some(value)
}

/// `read` applied to the loaded ranges, if it needed nothing else.
fn read_loaded<T>(
    image: &PartialImage,
    version: KmodVersion,
    read: &impl Fn(&ModuleElf<'_>) -> T,
) -> Option<T> {
    let layout = parsed(image, version, ModuleElf::parse)?.layout();
    read_with_layout(image, layout, read)
}

/// `parse` applied to the partial image, if it succeeds without missing bytes.
fn parsed<'a>(
    image: &'a PartialImage,
    version: KmodVersion,
    parse: impl FnOnce(ImageBytes<'a>, KmodVersion) -> Result<ModuleElf<'a>, super::ModuleError>,
) -> Option<ModuleElf<'a>> {
    let elf = parse(ImageBytes::Partial(image), version).ok()?;
    (!image.is_incomplete()).then_some(elf)
}
