//! The small trees the cases run on. This is the only file of the harness that uses the
//! crate's synthetic module writer and tree writer.

use std::fs;
use std::path::{Path, PathBuf};

use testkit::synth::SynthModule;
pub use testkit::testgen::Rng;
use testkit::testgen::{self, Compression, Location, ModuleContents, ModuleFile, TreeSpec};

use crate::support::replace_bytes;

/// Where a module file goes, without its `.ko` extension.
#[derive(Debug, Clone)]
pub enum Place {
    /// Relative to the module directory, e.g. `kernel/net/key/af_key`.
    ModuleDir(String),
    /// Relative to external directory `n` (`@EXT<n>@` in configs).
    External(usize, String),
}

/// One synthetic module.
#[derive(Debug, Clone)]
pub struct Module {
    /// Its file.
    pub place: Place,
    /// Exported symbols.
    pub exports: Vec<String>,
    /// Undefined symbols with their `__versions` CRC, if any.
    pub imports: Vec<(String, Option<u32>)>,
    /// `.modinfo` strings as (key, value); written `key=value\0`.
    pub modinfo: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Module {
    /// A module at `place` with nothing in it yet.
    pub fn at(place: Place) -> Module {
        Module {
            place,
            exports: Vec::new(),
            imports: Vec::new(),
            modinfo: Vec::new(),
        }
    }
}

/// Everything one case writes.
#[derive(Debug, Clone, Default)]
pub struct CaseTree {
    /// Kernel version (the positional argument).
    pub kver: String,
    /// Module files.
    pub modules: Vec<Module>,
    /// Number of external directories (`ext0`, … beside `lib/`).
    pub externals: usize,
    /// Raw files in the module directory: `modules.order`, `modules.builtin`, ….
    pub module_dir_files: Vec<(String, Vec<u8>)>,
    /// Raw depmod.d files by name; `@EXT<n>@` and `@ROOT@` are replaced when written.
    pub configs: Vec<(String, Vec<u8>)>,
    /// Directories made inside the depmod.d directory (kmod reports and skips them).
    pub config_subdirs: Vec<String>,
    /// `Module.symvers` at the root.
    pub symvers: Option<Vec<u8>>,
    /// `System.map` at the root.
    pub system_map: Option<Vec<u8>>,
    /// Options before the version; `@ROOT@` is replaced.
    pub options: Vec<String>,
}

/// A written case.
#[derive(Debug, Clone)]
pub struct Written {
    /// The `-b` root.
    pub root: PathBuf,
    /// The depmod.d directory for `-C`.
    pub config_dir: PathBuf,
    /// Options with `@ROOT@` resolved.
    pub options: Vec<String>,
}

fn synth(module: &Module) -> SynthModule {
    let mut m = SynthModule::x86_64();
    for (key, value) in &module.modinfo {
        m = m.with_modinfo(key, value);
    }
    for name in &module.exports {
        m = m.with_export(name, Some(crc_of(name)));
    }
    for (name, crc) in &module.imports {
        m = m.with_import(name, false, *crc);
    }
    m
}

/// The CRC a symbol's exporter records: a fixed function of its name, so importers can
/// agree or disagree with it on purpose.
pub fn crc_of(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Writes `case` under `root`.
pub fn write(case: &CaseTree, root: &Path) -> Result<Written, String> {
    let spec = TreeSpec {
        seed: 0,
        kver: case.kver.clone(),
        modules: case
            .modules
            .iter()
            .map(|m| ModuleFile {
                location: match &m.place {
                    Place::ModuleDir(rel) => Location::ModuleDir(rel.clone()),
                    Place::External(n, rel) => Location::External(*n, rel.clone()),
                },
                compression: Compression::None,
                contents: ModuleContents::Elf(synth(m)),
            })
            .collect(),
        other_files: case.module_dir_files.clone(),
        symlinks: Vec::new(),
        order: None,
        builtin: None,
        builtin_modinfo: None,
        configs: Vec::new(),
        externals: case.externals,
        options: case.options.clone(),
        symvers: case.symvers.clone(),
        system_map: case.system_map.clone(),
        has_cycle: false,
    };
    let tree = testgen::write_tree(&spec, root).map_err(|e| e.to_string())?;
    let root_bytes = root.as_os_str().as_encoded_bytes();
    for (name, text) in &case.configs {
        let mut text = replace_bytes(text, b"@ROOT@", root_bytes);
        for (n, dir) in tree.externals.iter().enumerate() {
            let dir = dir.as_os_str().as_encoded_bytes();
            text = replace_bytes(&text, format!("@EXT{n}@").as_bytes(), dir);
        }
        let path = tree.config_dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for dir in &case.config_subdirs {
        let path = tree.config_dir.join(dir);
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Written {
        root: tree.root,
        config_dir: tree.config_dir,
        options: tree.options,
    })
}
