//! Writes a synthetic module tree of N modules for scaling benchmarks:
//! `synth_tree ROOT KVER N` creates `ROOT/lib/modules/KVER/kernel/dNNN/mNNNNNN.ko`.
//!
//! Each module exports two symbols, imports symbols of up to three earlier modules (so the
//! dependency graph is deep and acyclic) plus a common kernel symbol, and has two aliases
//! and, for every tenth module, a softdep. A `modules.order` lists every module.

use std::io::Write;
use std::path::PathBuf;

use testkit::synth::SynthModule;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(root), Some(kver), Some(count)) = (
        args.first(),
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: synth_tree ROOT KVER N");
        std::process::exit(2);
    };
    let moddir = PathBuf::from(root).join("lib/modules").join(kver);
    let mut order = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..count {
        let mut module = SynthModule::x86_64()
            .with_modinfo(
                "alias",
                format!("pci:v{:08X}d{:08X}sv*sd*bc*sc*i*", i, i * 7),
            )
            .with_modinfo("alias", format!("of:N*T*Cvendor,device-{i}"))
            .with_modinfo("license", "GPL")
            .with_modinfo("vermagic", "6.1.0 SMP preempt mod_unload modversions")
            .with_export(format!("m{i}_init_thing"), Some(next() as u32))
            .with_export(format!("m{i}_do_work"), Some(next() as u32))
            .with_import("printk", false, Some(0x1234))
            .with_extra_version("module_layout", 0x5555);
        if i % 10 == 0 {
            module = module.with_modinfo("softdep", format!("pre: m{}", i / 2));
        }
        if i > 0 {
            for _ in 0..(next() % 4) {
                let j = (next() as usize) % i;
                module = module.with_import(format!("m{j}_do_work"), false, None);
            }
        }
        let rel = format!("kernel/d{:03}/m{:06}.ko", i / 1000, i);
        let path = moddir.join(&rel);
        if let Some(dir) = path.parent() {
            if let Err(err) = std::fs::create_dir_all(dir) {
                eprintln!("{}: {err}", dir.display());
                std::process::exit(1);
            }
        }
        if let Err(err) = std::fs::write(&path, module.to_elf()) {
            eprintln!("{}: {err}", path.display());
            std::process::exit(1);
        }
        order.push(rel);
    }
    let written = std::fs::File::create(moddir.join("modules.order")).and_then(|mut f| {
        for rel in &order {
            writeln!(f, "{rel}")?;
        }
        Ok(())
    });
    if let Err(err) = written {
        eprintln!("modules.order: {err}");
        std::process::exit(1);
    }
}
