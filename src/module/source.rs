//! Opening a module file as libkmod's `kmod_file_open` does: read the first 6 bytes, pick
//! the loader by magic, then map the file (plain) or decode it (compressed).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::Mmap;

use super::decompress::{decompress, detect, MAGIC_LEN};
use super::error::{Compression, ModuleError};
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
    let io_error = |err: io::Error| ModuleError::io(Some(path), err);
    let file = File::open(path).map_err(io_error)?;
    let head = read_head(&file).map_err(io_error)?;
    if head.len() < MAGIC_LEN {
        return Err(ModuleError::TooShort {
            path: Some(path.to_path_buf()),
        });
    }
    let format = detect(&head, opts.version, opts.gzip);
    if format == Compression::Gzip && !opts.gzip {
        return Err(ModuleError::UnsupportedCompression {
            path: Some(path.to_path_buf()),
            format,
        });
    }
    let map = map_file(&file).map_err(io_error)?;
    if format == Compression::None {
        return Ok(ModuleImage::Mapped(map));
    }
    decompress(format, &map, opts.version, opts.gzip, opts.max_image_size)
        .map(ModuleImage::Owned)
        .map_err(|e| e.with_path(path))
}

/// Up to [`MAGIC_LEN`] bytes from the start of the file (fewer only at end of file).
fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = [0u8; MAGIC_LEN];
    let mut done = 0;
    while done < MAGIC_LEN {
        match file.read_at(&mut head[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(head[..done].to_vec())
}

/// Maps the whole file read-only.
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private. If another process truncates or rewrites the
    // module while it is mapped, reads may see changed bytes or fault (SIGBUS) — the same
    // exposure libkmod accepts by mapping modules. Module trees are not modified while
    // depmod runs; all parsing is bounds-checked against the length taken at map time.
    unsafe { Mmap::map(file) }
}
