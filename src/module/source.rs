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
use crate::fs_at::DirHandle;

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
    let (file, format) = open_module(ModuleFile::at_path(path), opts, &mut head)?;
    whole_image(&file, format, path, opts)
}

/// A module file to read: its path, and what the walk that found it knows already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModuleFile<'a> {
    /// The path kmod opens; messages name it.
    pub path: &'a Path,
    /// A directory held open and the file's path below it. The file is opened there, which
    /// spares the kernel looking up the leading directories again for every module.
    pub below: Option<(&'a DirHandle, &'a [u8])>,
    /// The file's size when the walk saw it, given for files whose name says they are
    /// compressed: such a file is read whole at once (see [`open_module`]).
    pub expected_size: Option<u64>,
    /// Whether the walk found a regular file here: its length is then measured without a
    /// `stat` (see [`file_len`]).
    pub regular: bool,
}

impl<'a> ModuleFile<'a> {
    /// The file at `path`, nothing else known.
    pub fn at_path(path: &'a Path) -> Self {
        ModuleFile {
            path,
            below: None,
            expected_size: None,
            regular: false,
        }
    }

    /// Opens the file for reading: below its directory handle if it has one, else by its
    /// path. A failure below the handle is retried by path, so any error is the one
    /// opening the path gives.
    fn open(&self) -> io::Result<File> {
        if let Some((dir, relative)) = self.below {
            if let Ok(file) = dir.open_file(relative) {
                return Ok(file);
            }
        }
        File::open(self.path)
    }
}

/// Bytes read from the start of every module before anything else: the magic and the ELF
/// file header.
const HEAD_LEN: usize = 64;

/// Opens a module file as libkmod does: checks that it has at least the magic and picks the
/// decoder. `image` is reset to the file's length and holds its first bytes; with an
/// [`ModuleFile::expected_size`] that still holds, the whole file.
pub(crate) fn open_module(
    module: ModuleFile<'_>,
    opts: &ReadOptions,
    image: &mut PartialImage,
) -> Result<(File, Compression), ModuleError> {
    let path = module.path;
    let io_error = |err: io::Error| ModuleError::io(Some(path), err);
    let file = module.open().map_err(io_error)?;
    let whole = match module.expected_size {
        Some(size) => read_whole_if_size(&file, image, size).map_err(io_error)?,
        None => None,
    };
    let got = match whole {
        Some(len) => len,
        None => {
            let len = match module.regular {
                true => file_len(&file),
                false => file.metadata().map(|meta| meta.len()),
            };
            let len = len.map_err(io_error)?;
            image.reset(len);
            let want = usize::try_from(len).map_or(HEAD_LEN, |len| len.min(HEAD_LEN));
            let got = read_full_at(&file, image.add(0, want), 0).map_err(io_error)?;
            image.shorten_last(got);
            got
        }
    };
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

/// Reads all of `file` into `image` if it holds at most `size` bytes (the size the walk
/// saw), asking for one byte more: a read that stops short of that byte found the end of
/// the file, so the image then has the file's length and all its bytes, as a `stat` and a
/// read would give them. When the first `pread` returns exactly `size` bytes, that is taken
/// as the end (a regular file reads short only at its end); otherwise reading goes on until
/// the end or the extra byte. Returns the file's length, or `None` (and `image` to be
/// reset) when the file is longer, or too large to read whole.
fn read_whole_if_size(
    file: &File,
    image: &mut PartialImage,
    size: u64,
) -> io::Result<Option<usize>> {
    let Some(want) = size
        .checked_add(1)
        .filter(|&want| want <= MAX_WHOLE_READ)
        .and_then(|want| usize::try_from(want).ok())
    else {
        return Ok(None);
    };
    image.reset(size + 1);
    let buf = image.add(0, want);
    let first = read_some_at(file, buf, 0)?;
    let got = match first as u64 == size || first == 0 {
        true => first,
        false => first + read_full_at(file, &mut buf[first..], first as u64)?,
    };
    if got == want {
        return Ok(None);
    }
    image.shorten_last(got);
    image.set_file_len(got as u64);
    Ok(Some(got))
}

/// Compressed files larger than this (no real module comes near) are mapped instead of
/// read, so that reading one does not need a buffer of its size.
const MAX_WHOLE_READ: u64 = 64 << 20;

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
    let len = image.file_len();
    if len > MAX_WHOLE_READ {
        return whole_image(file, format, path, opts);
    }
    let loaded = if image.has(0, len) {
        Ok(())
    } else {
        load_range(file, image, 0, len)
    };
    let loaded = loaded
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

/// The length of the regular file `file`, as `fstat` gives it: where `SEEK_END` puts the
/// offset, which nothing here uses (every read says where it reads). That system call
/// fills in no `stat` structure; it replaced a `statx` per module, about 2 % of a plain
/// tree's CPU time. For other kinds of file the two differ (a block device's `st_size` is
/// 0), so the caller must know the file is regular. A failure or a length of 0 is checked
/// with `fstat`.
fn file_len(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: lseek on a descriptor `file` owns; it changes nothing but the file offset.
    let end = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
    match u64::try_from(end) {
        Ok(len) if len > 0 => Ok(len),
        _ => Ok(file.metadata()?.len()),
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
        match read_some_at(file, &mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// One `pread` into `buf` from file offset `offset` (again if a signal interrupted it).
fn read_some_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Maps the whole file read-only.
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private. If another process truncates or rewrites the
    // module while it is mapped, reads may see changed bytes or fault (SIGBUS) — the same
    // exposure libkmod accepts by mapping modules. Module trees are not modified while
    // depmod runs; all parsing is bounds-checked against the length taken at map time.
    unsafe { Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::KmodVersion;
    use crate::fs_at::DirHandle;
    use std::os::unix::ffi::OsStrExt;
    use testkit::synth::SynthModule;

    /// What reading `module` gives: the format and the decoded image, or the error.
    fn read(module: ModuleFile<'_>, version: KmodVersion) -> Result<Vec<u8>, String> {
        let opts = ReadOptions {
            version,
            ..ReadOptions::default()
        };
        let mut image = PartialImage::default();
        let (file, format) = open_module(module, &opts, &mut image).map_err(|e| e.to_string())?;
        let decoded = match format {
            Compression::None => whole_image(&file, format, module.path, &opts),
            _ => decoded_image(&file, format, module.path, &opts, &mut image),
        };
        decoded
            .map(|image| image.as_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    /// A module read below its directory with the size the walk saw gives what a read by
    /// path gives, also when the file changed size since (grew, shrank, or was cut below
    /// the magic), in every way the walk can be wrong about it.
    #[test]
    fn a_regular_file_measures_as_fstat_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        for len in [0usize, 1, 64, 5000, 1 << 20] {
            std::fs::write(&path, vec![7u8; len]).unwrap();
            let file = File::open(&path).unwrap();
            assert_eq!(file_len(&file).unwrap(), len as u64);
            // Every read says where it reads: the offset left at the end changes none.
            let mut head = [0u8; 1];
            assert_eq!(read_some_at(&file, &mut head, 0).unwrap(), len.min(1));
        }
    }

    #[test]
    fn expected_size_and_directory_read_as_a_path_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("kernel")).unwrap();
        let elf = SynthModule::x86_64()
            .with_export("demo_register", Some(0x1234))
            .to_elf();
        let zst = zstd::bulk::compress(&elf, 3).unwrap();
        let handle = DirHandle::open(dir.path().as_os_str().as_bytes()).unwrap();
        let relative = b"kernel/demo.ko.zst";
        let path = dir.path().join("kernel/demo.ko.zst");
        let contents: [&[u8]; 5] = [&zst, &zst[..zst.len() - 3], &zst[..4], b"", &elf];
        for bytes in contents {
            std::fs::write(&path, bytes).unwrap();
            let len = bytes.len() as u64;
            for version in [KmodVersion::V30, KmodVersion::V34] {
                let by_path = read(ModuleFile::at_path(&path), version);
                for expected in [
                    None,
                    Some(0),
                    Some(len.saturating_sub(1)),
                    Some(len),
                    Some(len + 1),
                    Some(len + 1000),
                ] {
                    let module = ModuleFile {
                        path: &path,
                        below: Some((&handle, relative)),
                        expected_size: expected,
                        regular: true,
                    };
                    assert_eq!(
                        read(module, version),
                        by_path,
                        "{len} bytes, expected {expected:?}, v{version}"
                    );
                }
            }
        }
        // A file missing below the handle gives the error of its path.
        let missing = ModuleFile {
            path: &dir.path().join("kernel/missing.ko.zst"),
            below: Some((&handle, b"kernel/missing.ko.zst")),
            expected_size: Some(10),
            regular: true,
        };
        assert_eq!(
            read(missing, KmodVersion::V34),
            read(ModuleFile::at_path(missing.path), KmodVersion::V34)
        );
        assert!(read(missing, KmodVersion::V34).is_err());
    }
}
