//! Reading a module file partially (only the byte ranges depmod needs, with `pread`) gives
//! exactly what reading the whole image gives, on intact and damaged modules alike.
//!
//! `read_module` takes the partial path for uncompressed files; `load_image` maps the whole
//! file (with the same checks on opening) and `parse_module_image` reads that image. Modules are synthetic, with large sections between the ones depmod reads so
//! that the partial reader really leaves bytes out, then damaged where it matters: the file
//! header, the section header table, and the first and last bytes of every section.

use std::path::Path;
use std::sync::Mutex;

use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{
    load_image, parse_module_image, read_module, uncompressed_whole_reads, ModuleError, ModuleInfo,
    ReadOptions,
};
use proptest::prelude::*;
use testkit::synth::{machine, CrcLocation, ElfClass, Endian, RawSection, SynthModule};

/// Modules of each class and byte order, with 40 KiB sections after `.shstrtab`.
fn spread_out_modules() -> Vec<SynthModule> {
    let layouts = [
        (
            ElfClass::Elf64,
            Endian::Little,
            machine::X86_64,
            CrcLocation::Section,
        ),
        (
            ElfClass::Elf64,
            Endian::Big,
            machine::S390,
            CrcLocation::Absolute,
        ),
        (
            ElfClass::Elf32,
            Endian::Little,
            machine::ARM,
            CrcLocation::Section,
        ),
        (
            ElfClass::Elf32,
            Endian::Big,
            machine::SPARC,
            CrcLocation::Absolute,
        ),
    ];
    layouts
        .into_iter()
        .map(|(class, endian, machine, crcs)| {
            let mut module = SynthModule::new(class, endian, machine)
                .with_modinfo("alias", "usb:v1234p*")
                .with_modinfo("softdep", "pre: other")
                .with_export("first_export", Some(0xabcd))
                .with_export("second_export", Some(0x1234))
                .with_import("kmalloc", false, Some(7))
                .with_import("weak_one", true, None)
                .with_extra_version("module_layout", 3);
            module.crc_location = crcs;
            for name in [".text", ".data"] {
                module.extra_sections.push(RawSection {
                    name: name.as_bytes().to_vec(),
                    data: vec![0x5a; 40 * 1024],
                });
            }
            module
        })
        .collect()
}

/// Offsets worth damaging: the file header, the section header table, and a few bytes at
/// both ends of every section.
fn sensitive_offsets(module: &SynthModule) -> Vec<usize> {
    let (elf, layout) = module.to_elf_with_layout();
    let mut offsets: Vec<usize> = (0..64).collect();
    offsets.extend(layout.section_headers_offset..elf.len());
    for section in &layout.sections {
        let end = section.data_offset + section.size;
        offsets.extend(section.data_offset..(section.data_offset + 4).min(end));
        offsets.extend(end.saturating_sub(4)..end);
    }
    offsets.retain(|&o| o < elf.len());
    offsets
}

fn version_options(version: KmodVersion) -> ReadOptions {
    ReadOptions {
        version,
        ..ReadOptions::default()
    }
}

/// A comparable rendering of a read's outcome (errors without their path).
fn outcome(result: Result<ModuleInfo, ModuleError>) -> String {
    match result {
        Ok(info) => format!(
            "exports {:?} / modinfo {:?} / imports {:?}",
            info.exports.map_err(|e| e.to_string()),
            info.modinfo,
            info.imports
        ),
        Err(err) => format!("error {} ({})", err.kmod_strerror(), err.errno()),
    }
}

/// Held by every read in this file: `uncompressed_whole_reads` counts for the whole
/// process, so reads of other tests running at the same time would show up in it.
static READS: Mutex<()> = Mutex::new(());

/// Writes `bytes` to a file and checks that the partial read equals the whole read.
fn assert_same_as_whole(dir: &Path, bytes: &[u8]) {
    let _reads = READS.lock().unwrap_or_else(|e| e.into_inner());
    compare_with_whole(dir, bytes);
}

/// [`assert_same_as_whole`] for a caller that holds [`READS`].
fn compare_with_whole(dir: &Path, bytes: &[u8]) {
    let file = dir.join("m.ko");
    std::fs::write(&file, bytes).unwrap();
    for version in [KmodVersion::V30, KmodVersion::V34] {
        let opts = version_options(version);
        let whole = outcome(
            load_image(&file, &opts).and_then(|image| parse_module_image(image.as_bytes(), &opts)),
        );
        let partial = outcome(read_module(&file, &opts));
        assert_eq!(partial, whole, "{version:?}");
    }
}

#[test]
fn intact_modules_are_read_partially_and_alike() {
    let dir = tempfile::tempdir().unwrap();
    for module in spread_out_modules() {
        let elf = module.to_elf();
        let reads = READS.lock().unwrap_or_else(|e| e.into_inner());
        let before = uncompressed_whole_reads();
        compare_with_whole(dir.path(), &elf);
        let grown = uncompressed_whole_reads() - before;
        drop(reads);
        assert_eq!(grown, 0, "an intact module fell back to a whole read");
        assert!(
            elf.len() > 80 * 1024,
            "the module must be larger than what is read"
        );
    }
}

#[test]
fn every_truncation_reads_alike() {
    let dir = tempfile::tempdir().unwrap();
    let module = &spread_out_modules()[0];
    let elf = module.to_elf();
    let mut lengths: Vec<usize> = sensitive_offsets(module);
    lengths.extend((0..elf.len()).step_by(997));
    for len in lengths {
        assert_same_as_whole(dir.path(), &elf[..len]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn damaged_modules_read_alike(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let module = &spread_out_modules()[which];
        let mut elf = module.to_elf();
        let offsets = sensitive_offsets(module);
        for (index, value) in flips {
            elf[offsets[index.index(offsets.len())]] = value;
        }
        let dir = tempfile::tempdir().unwrap();
        assert_same_as_whole(dir.path(), &elf);
    }
}
