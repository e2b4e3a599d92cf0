//! Writes a small synthetic kernel module to the path given as the only argument, in every
//! ELF class and byte order when the path contains `{}` (replaced by `32le`, `64be`, …).

use testkit::synth::{machine, CrcLocation, ElfClass, Endian, SynthModule};

fn main() {
    let Some(pattern) = std::env::args().nth(1) else {
        eprintln!("usage: synth_sample OUT.ko  (or OUT-{{}}.ko for all flavours)");
        std::process::exit(2);
    };
    let flavours = [
        (ElfClass::Elf32, Endian::Little, machine::I386, "32le"),
        (ElfClass::Elf32, Endian::Big, machine::S390, "32be"),
        (ElfClass::Elf64, Endian::Little, machine::X86_64, "64le"),
        (ElfClass::Elf64, Endian::Big, machine::S390, "64be"),
    ];
    for (class, endian, machine, tag) in flavours {
        let mut module = SynthModule::new(class, endian, machine)
            .with_modinfo("alias", "pci:v00008086d*")
            .with_modinfo("softdep", "pre: crc32c")
            .with_modinfo("depends", "")
            .with_modinfo("vermagic", "6.1.0 SMP mod_unload")
            .with_export("sample_export", Some(0x1234_5678))
            .with_export("sample_other", Some(0xdead_beef))
            .with_import("printk", false, Some(0x0102_0304))
            .with_import("maybe_there", true, Some(0x0a0b_0c0d))
            .with_import("no_crc", false, None)
            .with_extra_version("module_layout", 0x5555_aaaa);
        if tag.ends_with("be") {
            module.crc_location = CrcLocation::Section;
        }
        let path = pattern.replace("{}", tag);
        if let Err(err) = std::fs::write(&path, module.to_elf()) {
            eprintln!("{path}: {err}");
            std::process::exit(1);
        }
        if !pattern.contains("{}") {
            break;
        }
    }
}
