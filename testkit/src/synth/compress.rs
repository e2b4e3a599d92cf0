//! Compressing synthetic modules the way kbuild does, for `.ko.xz`, `.ko.zst` and `.ko.gz`
//! trees.

use std::io::{self, Write};

use depmod_rs::module::Compression;

/// Compresses a module image.
///
/// * xz: preset 6, CRC32 check (kbuild uses `xz --check=crc32 --lzma2=dict=1MiB`);
/// * zstd: level 3, one frame with the content size recorded (which kmod 34 requires);
/// * gzip: level 6, one member;
/// * [`Compression::None`]: the image unchanged.
///
/// The output is deterministic for a given input.
pub fn compress(image: &[u8], format: Compression) -> io::Result<Vec<u8>> {
    match format {
        Compression::None => Ok(image.to_vec()),
        Compression::Xz => {
            let stream =
                liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32)
                    .map_err(io::Error::other)?;
            let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            encoder.write_all(image)?;
            encoder.finish()
        }
        Compression::Zstd => zstd::bulk::compress(image, 3),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            encoder.write_all(image)?;
            encoder.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmod_rs::compat::KmodVersion;
    use depmod_rs::module::decompress;

    #[test]
    fn every_format_round_trips() {
        let image = crate::synth::SynthModule::x86_64()
            .with_modinfo("alias", "x")
            .to_elf();
        for format in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let packed = compress(&image, format).unwrap();
            assert_eq!(compress(&image, format).unwrap(), packed, "deterministic");
            let unpacked = decompress(format, &packed, KmodVersion::V34, true, 1 << 20).unwrap();
            assert_eq!(unpacked, image, "{format}");
        }
    }
}
