//! Synthetic modules of every ELF class and byte order read back as written, in kmod's order.
//!
//! The expected values come from a small model of kmod's rules (kmod-depmod.md §5.3) applied
//! to the description, not from the reader's own output.

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{parse_module_image, Export, Import, ModinfoEntry, ReadOptions};
use proptest::prelude::*;
use testkit::synth::{machine, CrcLocation, ElfClass, Endian, SynthModule};

/// What kmod reports for a well-formed synthetic module.
fn expected_exports(module: &SynthModule) -> Vec<Export> {
    let with_crc: Vec<Export> = module
        .exports
        .iter()
        .filter_map(|e| {
            e.crc.map(|crc| Export {
                name: e.name.clone(),
                crc: u64::from(crc),
            })
        })
        .collect();
    if !with_crc.is_empty() {
        return with_crc;
    }
    module
        .exports
        .iter()
        .map(|e| Export {
            name: e.name.clone(),
            crc: 0,
        })
        .collect()
}

fn expected_imports(module: &SynthModule) -> Vec<Import> {
    // __versions as the writer lays it out: extra entries, then imports with a CRC.
    let versions: Vec<(Vec<u8>, u32)> = module
        .extra_versions
        .iter()
        .cloned()
        .chain(
            module
                .imports
                .iter()
                .filter_map(|i| i.crc.map(|crc| (i.name.clone(), crc))),
        )
        .collect();
    let mut visited = vec![false; versions.len()];
    let mut out = Vec::new();
    for import in &module.imports {
        let crc = match versions.iter().position(|(n, _)| *n == import.name) {
            Some(i) => {
                visited[i] = true;
                u64::from(versions[i].1)
            }
            None => 0,
        };
        out.push(Import {
            name: import.name.clone(),
            crc,
            weak: import.weak,
        });
    }
    for (i, (name, crc)) in versions.iter().enumerate() {
        if !visited[i] {
            out.push(Import {
                name: name.clone(),
                crc: u64::from(*crc),
                weak: false,
            });
        }
    }
    out
}

fn expected_modinfo(module: &SynthModule) -> Vec<ModinfoEntry> {
    module
        .modinfo
        .iter()
        .map(|(k, v)| ModinfoEntry {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Non-empty, no NUL, short enough for a __versions field, never a `__crc_` name.
    proptest::collection::vec(1u8..=255, 1..40)
        .prop_filter("not a __crc_ name", |n| !n.starts_with(b"__crc_"))
}

fn flavour() -> impl Strategy<Value = (ElfClass, Endian, u16)> {
    prop_oneof![
        Just((ElfClass::Elf32, Endian::Little, machine::I386)),
        Just((ElfClass::Elf32, Endian::Big, machine::S390)),
        Just((ElfClass::Elf64, Endian::Little, machine::X86_64)),
        Just((ElfClass::Elf64, Endian::Big, machine::S390)),
        Just((ElfClass::Elf64, Endian::Big, machine::SPARCV9)),
        Just((ElfClass::Elf32, Endian::Little, machine::ARM)),
    ]
}

prop_compose! {
    fn synth_module()(
        (class, endian, machine) in flavour(),
        modinfo in proptest::collection::vec(
            (
                proptest::collection::vec((1u8..=255).prop_filter("no =", |b| *b != b'='), 0..12),
                proptest::collection::vec(1u8..=255, 0..30),
            ),
            0..8,
        ),
        exports in proptest::collection::vec(name(), 0..8),
        crcs_on_exports in any::<bool>(),
        export_crcs in proptest::collection::vec(any::<u32>(), 8),
        imports in proptest::collection::vec((name(), any::<bool>(), proptest::option::of(any::<u32>())), 0..10),
        extra in proptest::collection::vec((name(), any::<u32>()), 0..3),
        crc_in_section in any::<bool>(),
    ) -> SynthModule {
        let mut m = SynthModule::new(class, endian, machine);
        for (k, v) in modinfo {
            m = m.with_modinfo(k, v);
        }
        for (i, e) in exports.into_iter().enumerate() {
            m = m.with_export(e, crcs_on_exports.then_some(export_crcs[i]));
        }
        for (n, weak, crc) in imports {
            m = m.with_import(n, weak, crc);
        }
        for (n, crc) in extra {
            m = m.with_extra_version(n, crc);
        }
        if crc_in_section {
            m.crc_location = CrcLocation::Section;
        }
        m
    }
}

const VERSIONS: [KmodVersion; 2] = [KmodVersion::V30, KmodVersion::V34];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn synthetic_modules_round_trip(module in synth_module()) {
        let elf = module.to_elf();
        for version in VERSIONS {
            let opts = ReadOptions { version, ..ReadOptions::default() };
            let info = parse_module_image(&elf, &opts).expect("valid ELF");
            let exports = info.exports.expect("exports readable");
            prop_assert_eq!(exports, expected_exports(&module));
            prop_assert_eq!(&info.imports, &expected_imports(&module));
            prop_assert_eq!(&info.modinfo, &expected_modinfo(&module));
        }
    }
}

#[test]
fn every_flavour_reads_a_fixed_module() {
    for (class, endian) in [
        (ElfClass::Elf32, Endian::Little),
        (ElfClass::Elf32, Endian::Big),
        (ElfClass::Elf64, Endian::Little),
        (ElfClass::Elf64, Endian::Big),
    ] {
        let module = SynthModule::new(class, endian, machine::S390)
            .with_modinfo("alias", "pci:v*")
            .with_export("exp", Some(0xdead_beef))
            .with_import("imp", true, Some(0x0102_0304))
            .with_extra_version("module_layout", 0x55aa_55aa);
        let info = parse_module_image(&module.to_elf(), &ReadOptions::default()).unwrap();
        assert_eq!(
            info.exports.clone().unwrap(),
            vec![Export {
                name: b"exp".to_vec(),
                crc: 0xdead_beef
            }]
        );
        assert_eq!(
            info.imports,
            vec![
                Import {
                    name: b"imp".to_vec(),
                    crc: 0x0102_0304,
                    weak: true
                },
                Import {
                    name: b"module_layout".to_vec(),
                    crc: 0x55aa_55aa,
                    weak: false
                },
            ]
        );
        assert_eq!(
            info.modinfo_values(b"alias").collect::<Vec<_>>(),
            vec![&b"pci:v*"[..]]
        );
    }
}
