//! An xz file's container read without decoding it: where its blocks' CRC32 checks lie and
//! how much each block decodes to.
//!
//! liblzma computes a block's check while it decodes, with a table-driven CRC32; crc32fast
//! computes the same CRC32 (IEEE 802.3, as in gzip) several times faster with carry-less
//! multiplication. So for the usual module file — one stream with CRC32 checks, as
//! `xz --check=crc32` writes it — the decoder is told to skip its check and the checks are
//! verified here on the decoded image instead. Anything else (other check types,
//! concatenated or padded streams, an index that does not add up) is decoded the ordinary
//! way.
//!
//! Format: <https://tukaani.org/xz/xz-file-format.txt> (§2.1 stream header and footer,
//! §3 blocks, §4 index).

use super::decompress::MAGIC_XZ;

/// Size of the stream header and of the stream footer.
const HEADER_SIZE: usize = 12;
const FOOTER_SIZE: usize = 12;
/// The check type ID for CRC32 in the stream flags.
const CHECK_CRC32: u8 = 0x01;
const CRC32_SIZE: usize = 4;

/// One block: the offset of its stored CRC32 and the size it decodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    check_offset: usize,
    uncompressed_size: u64,
}

/// The blocks of a single-stream xz file with CRC32 checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crc32Stream {
    blocks: Vec<Block>,
}

impl Crc32Stream {
    /// The layout of `input` if it is exactly one xz stream with CRC32 checks whose index
    /// accounts for every byte between the stream header and the index.
    ///
    /// The index is trusted only after liblzma has decoded the stream: the decoder checks
    /// that the index matches the blocks it decoded.
    pub(crate) fn parse(input: &[u8]) -> Option<Self> {
        let header = input.get(..HEADER_SIZE)?;
        if !header.starts_with(MAGIC_XZ) || header[6] != 0 || header[7] != CHECK_CRC32 {
            return None;
        }
        let records = index_records(input)?;
        let index_start = records.index_start;
        let mut block_start = HEADER_SIZE;
        let mut blocks = Vec::with_capacity(records.entries.len());
        for (unpadded, uncompressed_size) in records.entries {
            let unpadded = usize::try_from(unpadded).ok()?;
            let check_offset =
                block_start.checked_add(round_up4(unpadded.checked_sub(CRC32_SIZE)?)?)?;
            block_start = block_start.checked_add(round_up4(unpadded)?)?;
            blocks.push(Block {
                check_offset,
                uncompressed_size,
            });
        }
        (block_start == index_start).then_some(Crc32Stream { blocks })
    }

    /// Total size of the decoded data.
    pub(crate) fn uncompressed_size(&self) -> u64 {
        self.blocks.iter().map(|b| b.uncompressed_size).sum()
    }

    /// Whether `output` (the decoded stream) has the sizes the index records and every
    /// block's CRC32 equals the one stored in `input`.
    pub(crate) fn checks_match(&self, input: &[u8], output: &[u8]) -> bool {
        let mut rest = output;
        for block in &self.blocks {
            let Some(stored) = input.get(block.check_offset..block.check_offset + CRC32_SIZE)
            else {
                return false;
            };
            let Ok(size) = usize::try_from(block.uncompressed_size) else {
                return false;
            };
            if size > rest.len() {
                return false;
            }
            let (data, tail) = rest.split_at(size);
            let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
            if crc32fast::hash(data) != stored {
                return false;
            }
            rest = tail;
        }
        rest.is_empty()
    }

    /// Number of blocks.
    pub(crate) fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

/// The records of the index of the last stream in `input`: (unpadded size, uncompressed
/// size) per block, and where the index starts.
struct IndexRecords {
    index_start: usize,
    entries: Vec<(u64, u64)>,
}

fn index_records(input: &[u8]) -> Option<IndexRecords> {
    let footer = input.get(input.len().checked_sub(FOOTER_SIZE)?..)?;
    if footer[10..12] != *b"YZ" {
        return None;
    }
    let backward = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]);
    let index_size = (u64::from(backward) + 1) * 4;
    let index_start = (input.len() - FOOTER_SIZE).checked_sub(usize::try_from(index_size).ok()?)?;
    let mut index = input
        .get(index_start..input.len() - FOOTER_SIZE)?
        .iter()
        .copied();
    if index.next()? != 0 {
        return None;
    }
    let mut varint = || -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..63).step_by(7) {
            let byte = index.next()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    let count = varint()?;
    // Each record takes at least two bytes of the index.
    if count > index_size / 2 {
        return None;
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let unpadded = varint()?;
        let uncompressed = varint()?;
        entries.push((unpadded, uncompressed));
    }
    Some(IndexRecords {
        index_start,
        entries,
    })
}

/// The uncompressed size recorded in the index of the last xz stream in `input`, used only
/// to size the output buffer (a wrong or missing value just costs reallocations).
pub(crate) fn size_hint(input: &[u8]) -> Option<u64> {
    index_records(input)?
        .entries
        .iter()
        .try_fold(0u64, |total, &(_, size)| total.checked_add(size))
}

fn round_up4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(data: &[u8], check: liblzma::stream::Check) -> Vec<u8> {
        use std::io::Write;
        let stream = liblzma::stream::Stream::new_easy_encoder(6, check).unwrap();
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn finds_the_crc32_of_a_single_block() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let input = xz(&data, liblzma::stream::Check::Crc32);
        let stream = Crc32Stream::parse(&input).expect("one CRC32 stream");
        assert_eq!(stream.block_count(), 1);
        assert_eq!(stream.uncompressed_size(), data.len() as u64);
        assert_eq!(size_hint(&input), Some(data.len() as u64));
        assert!(stream.checks_match(&input, &data));
        let mut changed = data.clone();
        changed[1234] ^= 1;
        assert!(!stream.checks_match(&input, &changed));
        assert!(!stream.checks_match(&input, &data[..data.len() - 1]));
    }

    #[test]
    fn finds_every_block_of_a_multi_block_stream() {
        use liblzma::stream::{Action, Check, Status, Stream};
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_be_bytes())
            .collect();
        // A full flush ends the block; the next input starts a new one.
        let mut encoder = Stream::new_easy_encoder(6, Check::Crc32).unwrap();
        let mut input = Vec::with_capacity(1 << 20);
        for chunk in data.chunks(16 * 1024) {
            let start = encoder.total_in();
            while encoder.total_in() - start < chunk.len() as u64 {
                let done = (encoder.total_in() - start) as usize;
                encoder
                    .process_vec(&chunk[done..], &mut input, Action::FullFlush)
                    .unwrap();
            }
            while encoder
                .process_vec(&[], &mut input, Action::FullFlush)
                .unwrap()
                != Status::StreamEnd
            {}
        }
        while encoder
            .process_vec(&[], &mut input, Action::Finish)
            .unwrap()
            != Status::StreamEnd
        {}
        let layout = Crc32Stream::parse(&input).expect("one CRC32 stream");
        assert_eq!(layout.block_count(), data.len().div_ceil(16 * 1024));
        assert!(layout.checks_match(&input, &data));
        let mut changed = data.clone();
        *changed.last_mut().unwrap() ^= 0x80;
        assert!(!layout.checks_match(&input, &changed));
    }

    #[test]
    fn other_checks_and_extra_bytes_are_not_handled_here() {
        let data = b"some module bytes".repeat(100);
        assert!(Crc32Stream::parse(&xz(&data, liblzma::stream::Check::Crc64)).is_none());
        assert!(Crc32Stream::parse(&xz(&data, liblzma::stream::Check::None)).is_none());
        let mut padded = xz(&data, liblzma::stream::Check::Crc32);
        padded.extend_from_slice(&[0; 4]);
        assert!(Crc32Stream::parse(&padded).is_none());
        let one = xz(&data, liblzma::stream::Check::Crc32);
        let two = [one.clone(), one].concat();
        assert!(Crc32Stream::parse(&two).is_none());
    }
}
