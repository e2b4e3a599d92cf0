//! The bytes the ELF reader sees: a whole image, or some byte ranges of a file.
//!
//! An uncompressed module is usually read partially: depmod needs the file header, the
//! section header table, the section-name string table and a handful of sections — a
//! fraction of the file. [`PartialImage`] holds just those ranges. A read of bytes that lie
//! in the file but were not loaded returns nothing and marks the image *incomplete*; whatever
//! was computed from an incomplete image is discarded and the whole file is read instead.
//! So a partial read can only ever be slower than a whole one, never different.
//!
//! This module does no I/O: `source.rs` fills a [`PartialImage`].

use std::cell::{Cell, RefCell};

/// Bytes of a module image, as the ELF reader accesses them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ImageBytes<'a> {
    /// The whole image.
    Whole(&'a [u8]),
    /// Some ranges of a file; see [`PartialImage`].
    Partial(&'a PartialImage),
}

impl<'a> ImageBytes<'a> {
    /// Length of the image (for a partial image, of the whole file).
    pub(crate) fn len(self) -> u64 {
        match self {
            ImageBytes::Whole(data) => data.len() as u64,
            ImageBytes::Partial(image) => image.file_len,
        }
    }

    /// Bytes `start..end`, or `None` when they do not lie in the image. For a partial image
    /// also `None` when they were not loaded, and the image is then marked incomplete.
    pub(crate) fn get(self, start: usize, end: usize) -> Option<&'a [u8]> {
        match self {
            ImageBytes::Whole(data) => data.get(start..end),
            ImageBytes::Partial(image) => image.get(start, end),
        }
    }

    /// Like [`ImageBytes::get`], but bytes that were not loaded are simply `None`: the image
    /// is not marked incomplete. For lookups that have a slower way to the same bytes.
    pub(crate) fn peek(self, start: usize, end: usize) -> Option<&'a [u8]> {
        match self {
            ImageBytes::Whole(data) => data.get(start..end),
            ImageBytes::Partial(image) => image.loaded(start, end),
        }
    }

    /// The bytes from `start` up to (not including) the first NUL, or to the end of the
    /// image when there is none; empty when `start` lies past the end. A partial image that
    /// cannot tell where the string ends returns an empty slice and is marked incomplete.
    pub(crate) fn cstr(self, start: usize) -> &'a [u8] {
        match self {
            ImageBytes::Whole(data) => until_nul(data.get(start..).unwrap_or(&[])),
            ImageBytes::Partial(image) => image.cstr(start),
        }
    }
}

/// The bytes of `rest` before its first NUL (all of them when there is none).
pub(crate) fn until_nul(rest: &[u8]) -> &[u8] {
    match memchr::memchr(0, rest) {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// One loaded range: file bytes `offset..offset + len` at `buf[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: u64,
    start: usize,
    len: usize,
}

impl Segment {
    fn end(&self) -> u64 {
        self.offset + self.len as u64
    }

    fn contains(&self, at: u64) -> bool {
        self.offset <= at && at < self.end()
    }
}

/// Some byte ranges of a file, copied into one reusable buffer.
#[derive(Debug, Default)]
pub(crate) struct PartialImage {
    file_len: u64,
    /// Loaded bytes in `buf[..used]`. Bytes past `used` are left from earlier files: they
    /// are kept initialised so that loading into them needs no zero-filling, and no segment
    /// points at them.
    buf: Vec<u8>,
    used: usize,
    segments: Vec<Segment>,
    incomplete: Cell<bool>,
    /// The missed `get` ranges, while there are few; `None` once a miss cannot be
    /// described as a range (a string without a known end) or there were too many.
    missed: RefCell<Option<Vec<(u64, u64)>>>,
}

impl PartialImage {
    /// Forgets every range (keeping the buffer's memory) and starts on a file of `file_len`
    /// bytes.
    pub(crate) fn reset(&mut self, file_len: u64) {
        /// A buffer larger than this (after an unusually large module) is not kept.
        const RETAINED_CAPACITY: usize = 16 << 20;
        self.file_len = file_len;
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::new();
        }
        self.used = 0;
        self.segments.clear();
        self.forget_misses();
    }

    /// Clears the incomplete mark and the list of missed ranges (after loading them).
    pub(crate) fn forget_misses(&self) {
        self.incomplete.set(false);
        *self.missed.borrow_mut() = Some(Vec::new());
    }

    /// The byte ranges (offset, length) that reads missed since the last reset, if they
    /// were few and all plain ranges.
    pub(crate) fn missed_ranges(&self) -> Option<Vec<(u64, u64)>> {
        self.missed.borrow().clone()
    }

    /// Whether a read asked for bytes that were not loaded since the last [`reset`].
    ///
    /// [`reset`]: PartialImage::reset
    pub(crate) fn is_incomplete(&self) -> bool {
        self.incomplete.get()
    }

    /// Whether every byte of `offset..offset + len` is loaded.
    pub(crate) fn has(&self, offset: u64, len: u64) -> bool {
        len == 0 || self.covering(offset, offset.saturating_add(len)).is_some()
    }

    /// Bytes loaded so far (overlapping ranges counted each time).
    pub(crate) fn loaded_len(&self) -> u64 {
        self.used as u64
    }

    /// Length of the file.
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Sets the length of the file, once a read has found where it ends (no loaded byte
    /// lies past `file_len`).
    pub(crate) fn set_file_len(&mut self, file_len: u64) {
        debug_assert!(self.segments.iter().all(|s| s.end() <= file_len));
        self.file_len = file_len;
    }

    /// Adds a range of `len` bytes at file offset `offset` and returns the buffer to fill.
    /// Ranges may overlap ones already added (they hold the same file bytes). If fewer bytes
    /// could be read, call [`PartialImage::shorten_last`].
    pub(crate) fn add(&mut self, offset: u64, len: usize) -> &mut [u8] {
        let start = self.used;
        self.used = start + len;
        if self.buf.len() < self.used {
            lengthen_keeping(&mut self.buf, start, self.used);
        }
        self.segments.push(Segment { offset, start, len });
        &mut self.buf[start..self.used]
    }

    /// Keeps only the first `len` bytes of the range added last (a short read at end of
    /// file).
    pub(crate) fn shorten_last(&mut self, len: usize) {
        if let Some(last) = self.segments.last_mut() {
            if len < last.len {
                last.len = len;
                self.used = last.start + len;
            }
        }
    }

    /// A segment holding all of `start..end` (`start < end`).
    fn covering(&self, start: u64, end: u64) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.contains(start) && end <= s.end())
    }

    /// Of the segments holding byte `at`, the one reaching furthest.
    fn reaching_furthest(&self, at: u64) -> Option<&Segment> {
        self.segments
            .iter()
            .filter(|s| s.contains(at))
            .max_by_key(|s| s.end())
    }

    /// Most missed ranges remembered for loading afterwards.
    const MAX_MISSED: usize = 64;

    /// Marks a miss of a string whose end is unknown.
    fn miss<T>(&self) -> Option<T> {
        self.incomplete.set(true);
        *self.missed.borrow_mut() = None;
        None
    }

    /// Marks a miss of bytes `start..end`.
    fn miss_range<T>(&self, start: usize, end: usize) -> Option<T> {
        self.incomplete.set(true);
        let mut missed = self.missed.borrow_mut();
        if let Some(list) = missed.as_mut() {
            if list.len() < Self::MAX_MISSED {
                list.push((start as u64, (end - start) as u64));
            } else {
                *missed = None;
            }
        }
        None
    }

    /// Bytes `start..end`, if they lie in the file and were loaded (no miss is recorded).
    fn loaded(&self, start: usize, end: usize) -> Option<&[u8]> {
        if start > end || end as u64 > self.file_len {
            return None;
        }
        if start == end {
            return Some(&[]);
        }
        let segment = self.covering(start as u64, end as u64)?;
        let from = segment.start + (start - segment.offset as usize);
        Some(&self.buf[from..from + (end - start)])
    }

    fn get(&self, start: usize, end: usize) -> Option<&[u8]> {
        match self.loaded(start, end) {
            Some(bytes) => Some(bytes),
            // Outside the file: absent, as in the whole image, and not a miss.
            None if start > end || end as u64 > self.file_len => None,
            None => self.miss_range(start, end),
        }
    }

    fn cstr(&self, start: usize) -> &[u8] {
        if start as u64 >= self.file_len {
            return &[];
        }
        let Some(segment) = self.reaching_furthest(start as u64) else {
            return self.miss().unwrap_or(&[]);
        };
        let from = segment.start + (start - segment.offset as usize);
        let rest = &self.buf[from..segment.start + segment.len];
        match memchr::memchr(0, rest) {
            Some(end) => &rest[..end],
            // The string reaches the end of the file: it is complete.
            None if segment.end() == self.file_len => rest,
            None => self.miss().unwrap_or(&[]),
        }
    }
}

/// Lengthens `buf` to `len` bytes, keeping its first `keep` bytes. The bytes after them are
/// left as they were or zeroed; the caller overwrites them.
///
/// When the memory has to move, only the kept bytes are copied. `realloc` would copy the
/// whole old allocation, reading pages of it that were never written; the kernel maps
/// such pages to its shared zero page, and when malloc later hands them out again and they
/// are written, it must replace the mapping and flush the other cores' TLBs — about 70 of
/// these a run on a plain tree, each an inter-processor interrupt in a virtual machine.
fn lengthen_keeping(buf: &mut Vec<u8>, keep: usize, len: usize) {
    debug_assert!(keep <= buf.len() && keep <= len);
    if buf.capacity() < len {
        let mut grown = Vec::with_capacity(len.max(buf.capacity().saturating_mul(2)));
        grown.extend_from_slice(&buf[..keep]);
        *buf = grown;
    }
    buf.resize(len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(file_len: u64, ranges: &[(u64, &[u8])]) -> PartialImage {
        let mut image = PartialImage::default();
        image.reset(file_len);
        for (offset, bytes) in ranges {
            image.add(*offset, bytes.len()).copy_from_slice(bytes);
        }
        image
    }

    #[test]
    fn ranges_added_past_the_buffer_keep_the_earlier_ones() {
        // Each range outgrows the buffer, so every earlier range must move with it.
        let ranges: Vec<(u64, Vec<u8>)> = (0..12u8)
            .map(|i| (u64::from(i) << 20, vec![i ^ 0x5a; 1000 << i]))
            .collect();
        let mut partial = PartialImage::default();
        partial.reset(1 << 40);
        for (offset, bytes) in &ranges {
            partial.add(*offset, bytes.len()).copy_from_slice(bytes);
        }
        let part = ImageBytes::Partial(&partial);
        for (offset, bytes) in &ranges {
            let start = *offset as usize;
            assert_eq!(part.get(start, start + bytes.len()), Some(&bytes[..]));
        }
    }

    #[test]
    fn grown_buffers_keep_their_head() {
        let mut buf = b"keep-me-stale".to_vec();
        lengthen_keeping(&mut buf, 7, 5000);
        assert_eq!(&buf[..7], b"keep-me");
        assert!(buf[7..].iter().all(|&b| b == 0) && buf.len() == 5000);
        let mut roomy = Vec::with_capacity(64);
        roomy.extend_from_slice(b"abcdef");
        lengthen_keeping(&mut roomy, 2, 8);
        assert_eq!(roomy, b"abcdef\0\0");
    }

    #[test]
    fn loaded_bytes_read_like_the_whole_file() {
        let file = b"\x7fELF..abc\0def\0tail";
        let partial = image(file.len() as u64, &[(0, &file[..4]), (6, &file[6..14])]);
        let (whole, part) = (ImageBytes::Whole(file), ImageBytes::Partial(&partial));
        assert_eq!(part.get(0, 4), whole.get(0, 4));
        assert_eq!(part.get(7, 9), whole.get(7, 9));
        assert_eq!(part.cstr(6), whole.cstr(6));
        assert_eq!(part.cstr(10), whole.cstr(10));
        assert_eq!(part.get(3, 3), Some(&b""[..]));
        assert_eq!(part.len(), whole.len());
        assert!(!partial.is_incomplete());
        // Outside the file: absent, as in the whole image, and not a miss.
        assert_eq!(part.get(10, 100), None);
        assert_eq!(part.cstr(100), whole.cstr(100));
        assert!(!partial.is_incomplete());
    }

    #[test]
    fn unloaded_bytes_mark_the_image_incomplete() {
        let file = b"abc\0def\0ghi";
        for read in [
            |p: ImageBytes| p.get(4, 6).is_none(),
            |p: ImageBytes| p.get(2, 5).is_none(),
            |p: ImageBytes| p.cstr(5).is_empty(),
        ] {
            let partial = image(file.len() as u64, &[(0, &file[..4])]);
            assert!(read(ImageBytes::Partial(&partial)));
            assert!(partial.is_incomplete());
        }
        // A string that runs to the end of its range, which is not the end of the file.
        let partial = image(file.len() as u64, &[(4, &file[4..6])]);
        assert_eq!(ImageBytes::Partial(&partial).cstr(4), b"");
        assert!(partial.is_incomplete());
        // ...and one that runs to the end of the file.
        let partial = image(file.len() as u64, &[(8, &file[8..])]);
        assert_eq!(ImageBytes::Partial(&partial).cstr(8), b"ghi");
        assert!(!partial.is_incomplete());
    }

    #[test]
    fn short_reads_shrink_the_last_range() {
        let mut partial = image(10, &[(0, b"ab")]);
        partial.add(5, 5).copy_from_slice(b"vwxyz");
        partial.shorten_last(2);
        assert!(partial.has(5, 2));
        assert!(!partial.has(5, 3));
        assert_eq!(ImageBytes::Partial(&partial).get(5, 8), None);
        assert!(partial.is_incomplete());
    }
}
