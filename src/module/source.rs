//! Module file I/O. Opening a module as libkmod's `kmod_file_open` does (read the first
//! bytes, pick the loader by magic), then either mapping (plain) or decoding (compressed)
//! the whole file, or reading only some byte ranges of a plain one with `pread`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::Mmap;

use super::decompress::{decompress, detect, MAGIC_LEN};
use super::elf::SectionRange;
use super::error::{Compression, ModuleError};
use super::image::{ImageBytes, PartialImage};
use super::ReadOptions;

/// The bytes of a module's ELF image: the mapped file, or a decompressed buffer.
#[derive(Debug)]
pub enum ModuleImage {
    /// An uncompressed file, mapped read-only.
    Mapped(Mmap),
    /// A decompressed image.
    Owned(Vec<u8>),
}

impl ModuleImage {
    /// The image bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ModuleImage::Mapped(map) => map,
            ModuleImage::Owned(bytes) => bytes,
        }
    }
}

/// Opens `path` and produces its ELF image, decompressing when its magic says so.
pub fn load_image(path: &Path, opts: &ReadOptions) -> Result<ModuleImage, ModuleError> {
    let mut head = PartialImage::default();
    let (file, format) = open_module(path, opts, &mut head)?;
    whole_image(&file, format, path, opts)
}

/// Bytes read from the start of every module before anything else: the magic and the ELF
/// file header.
const HEAD_LEN: usize = 64;

/// Opens `path` as libkmod does: checks that it has at least the magic and picks the
/// decoder. `image` is reset to the file's length and holds its first bytes.
pub(crate) fn open_module(
    path: &Path,
    opts: &ReadOptions,
    image: &mut PartialImage,
) -> Result<(File, Compression), ModuleError> {
    let io_error = |err: io::Error| ModuleError::io(Some(path), err);
    let file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    image.reset(len);
    let want = usize::try_from(len).map_or(HEAD_LEN, |len| len.min(HEAD_LEN));
    let got = read_full_at(&file, image.add(0, want), 0).map_err(io_error)?;
    image.shorten_last(got);
    let head = (got >= MAGIC_LEN)
        .then(|| ImageBytes::Partial(image).get(0, MAGIC_LEN))
        .flatten();
    let Some(head) = head else {
        return Err(ModuleError::TooShort {
            path: Some(path.to_path_buf()),
        });
    };
    let format = detect(head, opts.version, opts.gzip);
    if format == Compression::Gzip && !opts.gzip {
        return Err(ModuleError::UnsupportedCompression {
            path: Some(path.to_path_buf()),
            format,
        });
    }
    Ok((file, format))
}

/// The whole ELF image of an opened module: the mapped file, or its decoded contents.
pub(crate) fn whole_image(
    file: &File,
    format: Compression,
    path: &Path,
    opts: &ReadOptions,
) -> Result<ModuleImage, ModuleError> {
    let map = map_file(file).map_err(|err| ModuleError::io(Some(path), err))?;
    if format == Compression::None {
        return Ok(ModuleImage::Mapped(map));
    }
    decompress(format, &map, opts.version, opts.gzip, opts.max_image_size)
        .map(ModuleImage::Owned)
        .map_err(|e| e.with_path(path))
}

/// The decoded image of an opened compressed module whose first bytes are in `image`. The
/// file is read into `image`'s buffer rather than mapped (one `pread`, no mapping to set up
/// and tear down).
pub(crate) fn decoded_image(
    file: &File,
    format: Compression,
    path: &Path,
    opts: &ReadOptions,
    image: &mut PartialImage,
) -> Result<ModuleImage, ModuleError> {
    /// Larger files (no real module comes near) are mapped instead, so that reading one
    /// does not need a buffer of its size.
    const MAX_READ: u64 = 64 << 20;
    let len = image.file_len();
    if len > MAX_READ {
        return whole_image(file, format, path, opts);
    }
    let loaded = load_range(file, image, 0, len)
        .ok()
        .and_then(|()| usize::try_from(len).ok())
        .and_then(|len| ImageBytes::Partial(image).get(0, len));
    match loaded {
        Some(input) => decompress(format, input, opts.version, opts.gzip, opts.max_image_size)
            .map(ModuleImage::Owned)
            .map_err(|e| e.with_path(path)),
        // Read failed or the file changed size: map it as it is now.
        None => whole_image(file, format, path, opts),
    }
}

/// Ranges closer than this are read as one: a `pread` costs more than copying a few
/// kilobytes more.
const MERGE_GAP: u64 = 8 * 1024;

/// Loads `ranges` of `file` into `image` (those not loaded yet), merging near ones. A range
/// that the file no longer holds in full is loaded as far as it goes; reads of the rest
/// then mark the image incomplete. Fails (and the caller maps the whole file instead) when
/// the image would hold more than twice the file: forged section tables can name the same
/// bytes many times over.
pub(crate) fn load_ranges(
    file: &File,
    image: &mut PartialImage,
    ranges: &mut Vec<SectionRange>,
) -> io::Result<()> {
    let file_len = image.file_len();
    ranges.retain(|r| r.size > 0 && !image.has(r.offset, r.size));
    // Ranges may overlap what is loaded already; never load much more than the file holds.
    let wanted: u64 = ranges.iter().map(|r| r.size).sum();
    if image.loaded_len().saturating_add(wanted) > file_len.saturating_mul(2) + (64 << 10) {
        return Err(io::Error::other("ranges exceed the file"));
    }
    ranges.sort_unstable_by_key(|r| r.offset);
    let mut merged: Option<(u64, u64)> = None;
    for range in ranges.iter() {
        let end = range.offset.saturating_add(range.size).min(file_len);
        match &mut merged {
            Some((_, merged_end)) if range.offset <= merged_end.saturating_add(MERGE_GAP) => {
                *merged_end = (*merged_end).max(end);
            }
            _ => {
                if let Some((start, end)) = merged.take() {
                    load_range(file, image, start, end)?;
                }
                merged = Some((range.offset, end));
            }
        }
    }
    if let Some((start, end)) = merged {
        load_range(file, image, start, end)?;
    }
    Ok(())
}

fn load_range(file: &File, image: &mut PartialImage, start: u64, end: u64) -> io::Result<()> {
    let Some(len) = end
        .checked_sub(start)
        .and_then(|len| usize::try_from(len).ok())
    else {
        return Ok(());
    };
    let got = read_full_at(file, image.add(start, len), start)?;
    image.shorten_last(got);
    Ok(())
}

/// Fills `buf` from file offset `offset`; fewer bytes only at end of file.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// Maps the whole file read-only.
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private. If another process truncates or rewrites the
    // module while it is mapped, reads may see changed bytes or fault (SIGBUS) — the same
    // exposure libkmod accepts by mapping modules. Module trees are not modified while
    // depmod runs; all parsing is bounds-checked against the length taken at map time.
    unsafe { Mmap::map(file) }
}
