//! Decoding compressed modules (xz, zstd, gzip) the way libkmod does, with an output cap.
//!
//! Every call uses its own decoder state (zstd's is kept per thread and reused), so any
//! number of threads can decode at once.
//! Output never grows beyond `max_image_size`: a stream that would produce more stops with
//! [`ModuleError::TooLarge`] as soon as the limit is crossed.

use std::cell::RefCell;
use std::io::Read;

use super::error::{Compression, ModuleError};
use super::xz_layout::{self, Crc32Stream};
use crate::compat::KmodVersion;

/// Magic bytes kmod checks, in its order.
const MAGIC_ZSTD: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD];
pub(crate) const MAGIC_XZ: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0];
const MAGIC_GZIP: &[u8] = &[0x1F, 0x8B];

/// Number of leading bytes kmod reads to detect compression; shorter files are `EINVAL`.
pub const MAGIC_LEN: usize = 6;

/// How a file with these leading bytes is loaded.
///
/// `gzip` says whether gzip decoding is available. kmod 30–32 recognise only formats that
/// are available (an unavailable one is read raw); kmod 33+ recognise all of them.
pub fn detect(head: &[u8], version: KmodVersion, gzip: bool) -> Compression {
    let candidates = [
        (MAGIC_ZSTD, Compression::Zstd, true),
        (MAGIC_XZ, Compression::Xz, true),
        (MAGIC_GZIP, Compression::Gzip, gzip),
    ];
    for (magic, format, available) in candidates {
        if head.starts_with(magic) && (available || version.detects_all_compressions()) {
            return format;
        }
    }
    Compression::None
}

/// Decodes `input` in `format` (not [`Compression::None`]) into a new buffer.
pub fn decompress(
    format: Compression,
    input: &[u8],
    version: KmodVersion,
    gzip: bool,
    max_image_size: u64,
) -> Result<Vec<u8>, ModuleError> {
    let limit = OutputLimit {
        format,
        max: max_image_size,
    };
    match format {
        Compression::None => Ok(input.to_vec()),
        Compression::Xz => decode_xz(input, limit),
        Compression::Zstd if version.zstd_needs_content_size() => decode_zstd_sized(input, limit),
        Compression::Zstd => decode_zstd_stream(input, limit),
        Compression::Gzip if gzip => decode_gzip(input, limit),
        Compression::Gzip => Err(ModuleError::UnsupportedCompression { path: None, format }),
    }
}

/// Size of the chunks kmod's xz loader `read`s (glibc `BUFSIZ`).
const KMOD_XZ_CHUNK: usize = 8192;

/// The messages kmod 34's libkmod logs for `input` in `format` when it fails to decode it,
/// one per open attempt (depmod makes three: symbols, modinfo, dependency symbols), without
/// the `ERROR: ` prefix. Empty when kmod would decode the stream or when it logs nothing
/// (gzip, uncompressed files).
///
/// zstd maps the file, so every attempt fails the same way. xz `read`s the file descriptor
/// in 8 KiB chunks and never rewinds it: later attempts continue where the previous one
/// stopped, usually at the end of the file ("Unexpected end of input").
pub fn kmod_decoder_messages(format: Compression, input: &[u8], attempts: usize) -> Vec<String> {
    match format {
        Compression::Xz => {
            let mut offset = 0;
            let mut messages = Vec::new();
            for _ in 0..attempts {
                match kmod_xz_attempt(input, &mut offset) {
                    Some(message) => messages.push(format!("xz: {message}")),
                    None => return Vec::new(),
                }
            }
            messages
        }
        Compression::Zstd => {
            let limit = OutputLimit {
                format,
                max: u64::MAX,
            };
            match decode_zstd_sized(input, limit) {
                Err(ModuleError::Decompress { message, .. }) => {
                    vec![format!("zstd: {message}"); attempts]
                }
                _ => Vec::new(),
            }
        }
        Compression::None | Compression::Gzip => Vec::new(),
    }
}

/// One run of kmod's xz read loop from `offset` (advanced by what it reads); the decoder's
/// message when it fails, `None` when the stream decodes.
fn kmod_xz_attempt(input: &[u8], offset: &mut usize) -> Option<&'static str> {
    use liblzma::stream::{Action, Error, Status, Stream, CONCATENATED};

    let Ok(mut stream) = Stream::new_stream_decoder(u64::MAX, CONCATENATED) else {
        return Some("Internal error (bug)");
    };
    let mut out = vec![0u8; KMOD_XZ_CHUNK];
    let mut chunk: &[u8] = &[];
    let mut action = Action::Run;
    loop {
        if chunk.is_empty() {
            let start = (*offset).min(input.len());
            let end = start.saturating_add(KMOD_XZ_CHUNK).min(input.len());
            chunk = &input[start..end];
            *offset = end;
            if chunk.is_empty() {
                action = Action::Finish;
            }
        }
        let before = stream.total_in();
        let status = stream.process(chunk, &mut out, action);
        let used = usize::try_from(stream.total_in() - before).unwrap_or(chunk.len());
        chunk = chunk.get(used..).unwrap_or(&[]);
        match status {
            Ok(Status::StreamEnd) => return None,
            Ok(Status::Ok) | Ok(Status::GetCheck) => {}
            Ok(Status::MemNeeded) => return Some("Unexpected end of input"),
            Err(err) => {
                return Some(match err {
                    Error::Mem | Error::MemLimit => "Cannot allocate memory",
                    Error::Format => "File format not recognized",
                    Error::Options => "Unsupported compression options",
                    Error::Data => "File is corrupt",
                    _ => "Internal error (bug)",
                })
            }
        }
    }
}

/// The output cap for one decode.
#[derive(Clone, Copy)]
struct OutputLimit {
    format: Compression,
    max: u64,
}

impl OutputLimit {
    fn exceeded(self) -> ModuleError {
        ModuleError::TooLarge {
            path: None,
            format: self.format,
            limit: self.max,
        }
    }

    fn error(self, message: impl Into<String>) -> ModuleError {
        ModuleError::Decompress {
            path: None,
            format: self.format,
            message: message.into(),
        }
    }

    /// Makes room for more output. The buffer may reach one byte past the maximum so that
    /// an image of exactly `max` bytes still decodes; anything longer fails.
    fn grow(self, out: &mut Vec<u8>, input_len: usize) -> Result<(), ModuleError> {
        let len = out.len() as u64;
        let hard_limit = self.max.saturating_add(1);
        if len >= hard_limit {
            return Err(self.exceeded());
        }
        // Modules compress 3–6×; start near the final size, then double.
        let wanted = (out.len().max(input_len.saturating_mul(4))).max(64 * 1024) as u64;
        let extra = wanted.min(hard_limit - len);
        out.reserve_exact(usize::try_from(extra).map_err(|_| self.exceeded())?);
        Ok(())
    }

    /// Fails when `out` holds more than the maximum.
    fn check(self, out: &[u8]) -> Result<(), ModuleError> {
        if out.len() as u64 > self.max {
            return Err(self.exceeded());
        }
        Ok(())
    }
}

/// xz with liblzma's stream decoder in concatenated mode and no memory limit, as kmod.
///
/// A single stream with CRC32 checks is first decoded without liblzma's own check and then
/// verified with crc32fast (see `xz_layout.rs`). If that decode fails or a check does not
/// match, the input is decoded again the ordinary way, so results and errors are exactly
/// liblzma's.
fn decode_xz(input: &[u8], limit: OutputLimit) -> Result<Vec<u8>, ModuleError> {
    use liblzma::stream::{CONCATENATED, IGNORE_CHECK};

    if let Some(stream) = Crc32Stream::parse(input) {
        let size = Some(stream.uncompressed_size());
        match decode_xz_with(input, limit, CONCATENATED | IGNORE_CHECK, size) {
            Ok(out) if stream.checks_match(input, &out) => return Ok(out),
            // One block: its check follows all its output, so the checked decode reaches
            // the cap first too.
            Err(err @ ModuleError::TooLarge { .. }) if stream.block_count() == 1 => {
                return Err(err)
            }
            _ => {}
        }
    }
    decode_xz_with(input, limit, CONCATENATED, xz_layout::size_hint(input))
}

fn decode_xz_with(
    input: &[u8],
    limit: OutputLimit,
    flags: u32,
    size_hint: Option<u64>,
) -> Result<Vec<u8>, ModuleError> {
    use liblzma::stream::{Action, Error, Status, Stream};

    let mut stream = Stream::new_stream_decoder(u64::MAX, flags)
        .map_err(|_| limit.error("Internal error (bug)"))?;
    let mut out = Vec::new();
    if let Some(size) = size_hint {
        // Allocate once for the whole image, but never more than the cap allows nor more
        // than a plausible ratio (a forged index must not reserve huge buffers).
        let plausible = (input.len() as u64).saturating_mul(64);
        let capacity = size.min(limit.max.saturating_add(1)).min(plausible);
        out.reserve_exact(usize::try_from(capacity).unwrap_or(0));
    }
    loop {
        if out.len() == out.capacity() {
            limit.grow(&mut out, input.len())?;
        }
        let consumed = usize::try_from(stream.total_in()).unwrap_or(input.len());
        let rest = input.get(consumed..).unwrap_or(&[]);
        let status = stream.process_vec(rest, &mut out, Action::Finish);
        limit.check(&out)?;
        match status {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(Status::Ok) | Ok(Status::GetCheck) => {}
            Ok(Status::MemNeeded) => {
                // LZMA_BUF_ERROR: no progress possible. With output space left, the input
                // ended early.
                if out.len() < out.capacity() {
                    return Err(limit.error("Unexpected end of input"));
                }
            }
            Err(err) => {
                let message = match err {
                    Error::Mem | Error::MemLimit => "Cannot allocate memory",
                    Error::Format => "File format not recognized",
                    Error::Options => "Unsupported compression options",
                    Error::Data => "File is corrupt",
                    _ => "Internal error (bug)",
                };
                return Err(limit.error(message));
            }
        }
    }
}

/// zstd as kmod 34 decodes it: the first frame must declare a non-zero content size, and the
/// whole input (all frames) is decoded in one call into a buffer of exactly that size.
fn decode_zstd_sized(input: &[u8], limit: OutputLimit) -> Result<Vec<u8>, ModuleError> {
    use zstd::zstd_safe;

    let size = match zstd_safe::get_frame_content_size(input) {
        Ok(Some(size)) if size > 0 => size,
        _ => return Err(limit.error("Failed to determine decompression size")),
    };
    if size > limit.max {
        return Err(limit.exceeded());
    }
    let capacity = usize::try_from(size).map_err(|_| limit.exceeded())?;
    let mut out = Vec::with_capacity(capacity);
    with_zstd_context(limit, |context| {
        context
            .decompress(&mut out, input)
            .map_err(|code| limit.error(zstd_safe::get_error_name(code)))
    })?;
    Ok(out)
}

thread_local! {
    /// Each thread's zstd decoding context, reused from module to module. Creating a context
    /// asks the CPU for its features (`cpuid`), which in a virtual machine traps to the
    /// hypervisor: on the 2-core test VM that was about 7 µs per module, 8 % of a `.ko.zst`
    /// run's CPU time.
    static ZSTD_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

/// Runs `decode` with this thread's zstd context, reset to the start of a new frame (its
/// parameters are zstd's defaults: nothing here ever changes them).
fn with_zstd_context<T>(
    limit: OutputLimit,
    decode: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> Result<T, ModuleError>,
) -> Result<T, ModuleError> {
    use zstd::zstd_safe::{DCtx, ResetDirective};

    let create = || DCtx::try_create().ok_or_else(|| limit.error("Cannot allocate memory"));
    ZSTD_CONTEXT.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            // Only reachable if a decode ever nested inside another: use a context of its own.
            return decode(&mut create()?);
        };
        let context = match &mut *slot {
            Some(context) => context,
            empty => empty.insert(create()?),
        };
        context
            .reset(ResetDirective::SessionOnly)
            .map_err(|code| limit.error(zstd::zstd_safe::get_error_name(code)))?;
        decode(context)
    })
}

/// zstd as kmod 30–33 decode it: a streaming decoder over all frames; when the input ends
/// the output so far is the image, even if a frame is incomplete.
fn decode_zstd_stream(input: &[u8], limit: OutputLimit) -> Result<Vec<u8>, ModuleError> {
    use zstd::zstd_safe::{self, InBuffer, OutBuffer};

    with_zstd_context(limit, |context| {
        let mut source = InBuffer::around(input);
        let mut out = Vec::new();
        loop {
            if out.len() == out.capacity() {
                limit.grow(&mut out, input.len())?;
            }
            let before = (source.pos(), out.len());
            {
                // The output buffer sets `out`'s length as the decoder writes.
                let pos = out.len();
                let mut sink = OutBuffer::around_pos(&mut out, pos);
                context
                    .decompress_stream(&mut sink, &mut source)
                    .map_err(|code| limit.error(zstd_safe::get_error_name(code)))?;
            }
            limit.check(&out)?;
            let input_done = source.pos() >= input.len();
            let output_room = out.len() < out.capacity();
            if input_done && output_room {
                return Ok(out);
            }
            if (source.pos(), out.len()) == before && output_room {
                // No progress with input left and room to write: the decoder is stuck.
                return Err(limit.error("no progress"));
            }
        }
    })
}

/// gzip as zlib's `gzread` reads it: members one after another; after a member, anything
/// that does not start with the gzip magic is trailing garbage and ignored.
fn decode_gzip(input: &[u8], limit: OutputLimit) -> Result<Vec<u8>, ModuleError> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let room = limit.max - out.len() as u64;
        let read = (&mut member)
            .take(room.saturating_add(1))
            .read_to_end(&mut out);
        if let Err(err) = read {
            return Err(limit.error(err.to_string()));
        }
        if out.len() as u64 > limit.max {
            return Err(limit.exceeded());
        }
        rest = member.into_inner();
        if !(rest.len() > 1 && rest.starts_with(MAGIC_GZIP)) {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_the_version_rules() {
        let gz = [0x1f, 0x8b, 8, 0, 0, 0];
        assert_eq!(detect(&gz, KmodVersion::V30, false), Compression::None);
        assert_eq!(detect(&gz, KmodVersion::V34, false), Compression::Gzip);
        assert_eq!(detect(&gz, KmodVersion::V30, true), Compression::Gzip);
        assert_eq!(
            detect(b"\xfd7zXZ\0", KmodVersion::V30, false),
            Compression::Xz
        );
        // The xz magic includes its trailing NUL.
        assert_eq!(
            detect(b"\xfd7zXZ\x01", KmodVersion::V34, true),
            Compression::None
        );
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], KmodVersion::V34, true),
            Compression::Zstd
        );
    }

    #[test]
    fn gzip_without_decoder_fails_in_v34() {
        let err = decompress(Compression::Gzip, b"", KmodVersion::V34, false, 1 << 20)
            .expect_err("gzip disabled");
        assert_eq!(err.kmod_strerror(), "Function not implemented");
    }

    fn compressed(format: Compression, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match format {
            Compression::Xz => {
                let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
                enc.write_all(data).unwrap();
                enc.finish().unwrap()
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).unwrap(),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).unwrap();
                enc.finish().unwrap()
            }
            Compression::None => data.to_vec(),
        }
    }

    /// The thread's zstd context is reused: a decode that failed midway must leave nothing
    /// behind that changes the next one, in either of kmod's zstd modes.
    #[test]
    fn zstd_context_reuse_carries_nothing_over() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let input = compressed(Compression::Zstd, &data);
        let truncated = &input[..input.len() / 2];
        let mut corrupt = input.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0x55;
        for version in [KmodVersion::V30, KmodVersion::V34] {
            let decode = |bytes: &[u8]| {
                decompress(Compression::Zstd, bytes, version, false, 1 << 30)
                    .map_err(|err| format!("{err:?}"))
            };
            // Each bad input alone, on a thread whose context is new.
            let alone: Vec<_> = [truncated, &corrupt[..]]
                .iter()
                .map(|bytes| {
                    let bytes = bytes.to_vec();
                    std::thread::spawn(move || {
                        decompress(Compression::Zstd, &bytes, version, false, 1 << 30)
                            .map_err(|err| format!("{err:?}"))
                    })
                    .join()
                    .unwrap()
                })
                .collect();
            // The same on this thread, between good decodes.
            assert_eq!(decode(&input).as_deref(), Ok(&data[..]), "v{version}");
            assert_eq!(decode(truncated), alone[0], "v{version}");
            assert_eq!(decode(&input).as_deref(), Ok(&data[..]), "v{version}");
            assert_eq!(decode(&corrupt), alone[1], "v{version}");
            assert_eq!(decode(&input).as_deref(), Ok(&data[..]), "v{version}");
        }
    }

    #[test]
    fn xz_size_hint_reads_the_index() {
        let data = vec![7u8; 123_457];
        let xz = compressed(Compression::Xz, &data);
        assert_eq!(xz_layout::size_hint(&xz), Some(123_457));
        assert_eq!(xz_layout::size_hint(&xz[..xz.len() - 1]), None);
        assert_eq!(xz_layout::size_hint(b"YZ"), None);
    }

    #[test]
    fn cap_allows_exactly_the_maximum() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let len = data.len() as u64;
        for format in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let input = compressed(format, &data);
            for version in [KmodVersion::V30, KmodVersion::V34] {
                let out = decompress(format, &input, version, true, len).unwrap();
                assert_eq!(out, data, "{format} v{version}");
                let err = decompress(format, &input, version, true, len - 1).unwrap_err();
                assert!(
                    matches!(err, ModuleError::TooLarge { .. }),
                    "{format} v{version}: {err:?}"
                );
            }
        }
    }
}
