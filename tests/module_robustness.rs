//! The reader never panics: every truncation of a module, random byte flips, and random
//! bytes behind an ELF header all give a value or an error.

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{decompress, parse_module_image, Compression, ModuleError, ReadOptions};
use proptest::prelude::*;
use testkit::synth::{machine, CrcLocation, ElfClass, Endian, SynthModule};

fn sample_modules() -> Vec<SynthModule> {
    let mut out = Vec::new();
    for (class, endian, machine) in [
        (ElfClass::Elf32, Endian::Little, machine::I386),
        (ElfClass::Elf32, Endian::Big, machine::SPARC),
        (ElfClass::Elf64, Endian::Little, machine::X86_64),
        (ElfClass::Elf64, Endian::Big, machine::SPARCV9),
    ] {
        let mut m = SynthModule::new(class, endian, machine)
            .with_modinfo("alias", "pci:v*")
            .with_modinfo("depends", "")
            .with_export("exported", Some(0x1234))
            .with_export("other", Some(0x5678))
            .with_import("needed", false, Some(9))
            .with_import("maybe", true, None)
            .with_extra_version("module_layout", 1);
        m.crc_location = CrcLocation::Section;
        out.push(m);
    }
    out
}

fn all_versions() -> [ReadOptions; 2] {
    [KmodVersion::V30, KmodVersion::V34].map(|version| ReadOptions {
        version,
        ..ReadOptions::default()
    })
}

#[test]
fn every_truncation_is_handled() {
    for module in sample_modules() {
        let elf = module.to_elf();
        for opts in all_versions() {
            for len in 0..=elf.len() {
                let result = parse_module_image(&elf[..len], &opts);
                if len == elf.len() {
                    assert!(result.is_ok(), "complete module must read");
                }
                if len <= 16 {
                    assert!(matches!(result, Err(ModuleError::NotElf { .. })));
                }
            }
        }
    }
}

#[test]
fn truncated_section_table_is_invalid() {
    // The section header table sits at the end: any cut into it is EINVAL.
    let elf = SynthModule::x86_64().with_modinfo("a", "b").to_elf();
    let err = parse_module_image(&elf[..elf.len() - 1], &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ModuleError::SectionOutOfRange { .. }));
    assert_eq!(err.kmod_strerror(), "Invalid argument");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn byte_flips_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let mut elf = sample_modules()[which].to_elf();
        for (index, value) in flips {
            let i = index.index(elf.len());
            elf[i] = value;
        }
        for opts in all_versions() {
            let _ = parse_module_image(&elf, &opts);
        }
    }

    #[test]
    fn random_bytes_after_a_header_never_panic(
        class in prop_oneof![Just(1u8), Just(2u8)],
        data in prop_oneof![Just(1u8), Just(2u8)],
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut image = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        image.extend_from_slice(&body);
        for opts in all_versions() {
            let _ = parse_module_image(&image, &opts);
        }
    }

    #[test]
    fn random_compressed_streams_never_panic(
        magic in prop_oneof![
            Just(Compression::Xz),
            Just(Compression::Zstd),
            Just(Compression::Gzip),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let prefix: &[u8] = match magic {
            Compression::Xz => b"\xfd7zXZ\0",
            Compression::Zstd => b"\x28\xb5\x2f\xfd",
            _ => b"\x1f\x8b",
        };
        let input = [prefix, &body].concat();
        for version in [KmodVersion::V30, KmodVersion::V34] {
            let _ = decompress(magic, &input, version, true, 1 << 20);
        }
    }
}
