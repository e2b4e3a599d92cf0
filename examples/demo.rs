//! The bundled demo: build a small module tree, run `depmod-rs` on it, show what it wrote.
//!
//! ```sh
//! cargo run --release --example demo
//! ```
//!
//! The tree is written under `target/demo/root` with [`testkit::synth`] (real ELF
//! relocatable objects carrying `.modinfo`, exported symbols and undefined symbols), together
//! with `modules.order`, `modules.builtin`, `modules.builtin.modinfo` and a depmod.d file. Then
//! the `depmod-rs` binary runs exactly as an initramfs builder runs `depmod` on a staging tree,
//! writing the indexes next to the modules:
//!
//! ```text
//! depmod-rs -C target/demo/root/etc/depmod.d -b target/demo/root 6.1.0-demo
//! ```
//!
//! and every file it wrote is printed: text files as they are, binary indexes through
//! `modindex dump` (`KEY<TAB>PRIORITY<TAB>VALUE`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use depmod_rs::compat::KmodVersion;
use depmod_rs::OutputFile;
use testkit::synth::SynthModule;

/// The kernel version of the demo tree.
const KVER: &str = "6.1.0-demo";

fn main() -> ExitCode {
    match demo() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("demo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<ExitCode, String> {
    let target = target_dir()?;
    let demo = target.join("demo");
    let root = demo.join("root");
    for dir in [&root, &demo.join("out")] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    write_tree(&root)?;
    let (depmod, modindex) = binaries(&target)?;

    let config = root.join("etc/depmod.d");
    let mut command = Command::new(&depmod);
    command
        // The built-in defaults (kmod 34), whatever /etc/depmod-rs.conf says.
        .env("DEPMOD_RS_CONFIG", "/dev/null")
        .arg("-C")
        .arg(&config)
        .arg("-b")
        .arg(&root)
        .arg(KVER);
    println!("$ {}", shown(&command));
    let status = command
        .status()
        .map_err(|e| format!("{}: {e}", depmod.display()))?;
    if !status.success() {
        return Err(format!("depmod-rs failed: {status}"));
    }

    let written = root.join("lib/modules").join(KVER);
    println!("\ndepmod-rs wrote {}:", written.display());
    for file in OutputFile::sequence(KmodVersion::DEFAULT) {
        let name = file.name();
        let path = written.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("\n==> {name} ({} bytes) <==", bytes.len());
        if name.ends_with(".bin") {
            if bytes.is_empty() {
                continue;
            }
            let dump = Command::new(&modindex)
                .arg("dump")
                .arg(&path)
                .output()
                .map_err(|e| format!("{}: {e}", modindex.display()))?;
            println!("$ modindex dump {name}");
            print!("{}", String::from_utf8_lossy(&dump.stdout));
            eprint!("{}", String::from_utf8_lossy(&dump.stderr));
        } else {
            print!("{}", String::from_utf8_lossy(&bytes));
        }
    }
    let dir = written.display();
    let modindex = modindex.display();
    println!("\nTry:");
    println!("  {modindex} lookup {dir}/modules.alias.bin pci:v00008086d00001234sv0sd0bc02sc00i00");
    println!("  {modindex} graph --module demo-net {dir}");
    println!("  {modindex} verify -C {} {dir}", config.display());
    println!(
        "  modprobe -d {} -S {KVER} --show-depends demofs",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `target/` of this checkout: the example binary lives in `target/<profile>/examples/`.
fn target_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{}: not inside a cargo target directory", exe.display()))
}

/// The `depmod-rs` and `modindex` binaries of the same build profile as this example, built
/// first through cargo when the demo runs under `cargo run` (a no-op when they are fresh).
fn binaries(target: &Path) -> Result<(PathBuf, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: unexpected location", exe.display()))?
        .to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "--bin",
            "depmod-rs",
            "--bin",
            "modindex",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") {
            build
                .arg("--manifest-path")
                .arg(Path::new(&manifest).join("Cargo.toml"));
        }
        build.env("CARGO_TARGET_DIR", target);
        let status = build.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build failed: {status}"));
        }
    }
    let depmod = profile_dir.join("depmod-rs");
    let modindex = profile_dir.join("modindex");
    for bin in [&depmod, &modindex] {
        if !bin.exists() {
            return Err(format!(
                "{} not found; run `cargo build --bins` first",
                bin.display()
            ));
        }
    }
    Ok((depmod, modindex))
}

fn shown(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The demo tree: five modules that use each other, one overridden by `updates/`, one built in.
fn write_tree(root: &Path) -> Result<(), String> {
    let moddir = root.join("lib/modules").join(KVER);
    let vermagic = format!("{KVER} SMP preempt mod_unload modversions");
    let module = |description: &str| {
        SynthModule::x86_64()
            .with_modinfo("description", description)
            .with_modinfo("license", "GPL")
            .with_modinfo("vermagic", &vermagic)
    };
    let modules = [
        (
            "kernel/lib/crc-demo.ko",
            module("CRC helper")
                .with_export("crc_demo_compute", Some(0x1a2b_3c4d))
                .with_import("_printk", false, Some(0x92997ed8)),
        ),
        (
            // Found first through the `search updates built-in` line of demo.conf.
            "updates/crc-demo.ko",
            module("CRC helper, updated build")
                .with_export("crc_demo_compute", Some(0x1a2b_3c4d))
                .with_export("crc_demo_compute_fast", Some(0x5e6f_7081))
                .with_import("_printk", false, Some(0x92997ed8)),
        ),
        (
            "kernel/drivers/demo_core.ko",
            module("Demo bus core")
                .with_export("demo_core_register", Some(0x0bad_cafe))
                .with_export("demo_core_unregister", Some(0x0bad_f00d))
                .with_import("crc_demo_compute", false, Some(0x1a2b_3c4d)),
        ),
        (
            "kernel/drivers/net/demo-net.ko",
            module("Demo network driver")
                .with_modinfo("alias", "pci:v00008086d00001234sv*sd*bc*sc*i*")
                .with_modinfo("alias", "pci:v00008086d00005678sv*sd*bc02sc*i*")
                .with_modinfo("softdep", "pre: crc-demo post: demo-char")
                .with_import("demo_core_register", false, Some(0x0bad_cafe))
                .with_import("demo_core_unregister", false, Some(0x0bad_f00d))
                .with_import("crc_demo_compute_fast", true, Some(0x5e6f_7081)),
        ),
        (
            "kernel/drivers/char/demo-char.ko",
            module("Demo character device")
                .with_modinfo("alias", "devname:demo0")
                .with_modinfo("alias", "char-major-10-240")
                .with_modinfo("weakdep", "demo-net")
                .with_import("demo_core_register", false, Some(0x0bad_cafe)),
        ),
        (
            "kernel/fs/demofs/demofs.ko",
            module("Demo file system")
                .with_modinfo("alias", "fs-demofs")
                .with_export("demofs_mount", None)
                .with_import("demo_core_register", false, Some(0x0bad_cafe))
                .with_import("crc_demo_compute", false, Some(0x1a2b_3c4d)),
        ),
    ];
    for (path, module) in modules {
        write(&moddir.join(path), module.to_elf())?;
    }
    write(
        &moddir.join("modules.order"),
        "kernel/lib/crc-demo.ko\n\
         kernel/drivers/demo_core.ko\n\
         kernel/drivers/char/demo-char.ko\n\
         kernel/drivers/net/demo-net.ko\n\
         kernel/fs/demofs/demofs.ko\n",
    )?;
    write(
        &moddir.join("modules.builtin"),
        "kernel/lib/crc32c_generic.ko\nkernel/drivers/tty/demo-console.ko\n",
    )?;
    write(
        &moddir.join("modules.builtin.modinfo"),
        b"crc32c_generic.alias=crypto-crc32c\0crc32c_generic.license=GPL\0\
          demo_console.alias=tty-demo\0demo_console.description=Demo console\0",
    )?;
    write(
        &root.join("etc/depmod.d/demo.conf"),
        "# Modules in updates/ win over the ones shipped with the kernel.\n\
         search updates built-in\n",
    )?;
    Ok(())
}
