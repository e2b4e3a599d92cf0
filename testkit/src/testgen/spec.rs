//! The description of a generated module tree: everything that will be written to disk.

use crate::synth::SynthModule;

/// How a module file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain `.ko`.
    None,
    /// `.ko.xz` (written with the `xz` command, CRC32 check as kbuild does).
    Xz,
    /// `.ko.zst` (written with the `zstd` command).
    Zstd,
    /// `.ko.gz` — not a module for Debian's kmod builds, which lack zlib.
    Gzip,
}

impl Compression {
    /// File name suffix after `.ko`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }
}

/// What a module file contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleContents {
    /// A well-formed module ELF.
    Elf(SynthModule),
    /// Arbitrary bytes (garbage, empty or truncated files), which kmod reports and keeps.
    Raw(Vec<u8>),
}

/// Where a module file lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Under the module directory `lib/modules/<kver>/`; the path is relative to it.
    ModuleDir(String),
    /// Under external directory number `n` (see [`TreeSpec::externals`]); path relative to it.
    External(usize, String),
}

/// One module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Directory and base name without the `.ko…` extension, e.g. `kernel/net/foo-bar`.
    pub location: Location,
    /// Compression applied when writing.
    pub compression: Compression,
    /// Contents before compression.
    pub contents: ModuleContents,
}

/// The `modules.order` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFile {
    /// Lines without their newline.
    pub lines: Vec<String>,
    /// Whether the last line ends with a newline (kmod skips sorting when it does not).
    pub final_newline: bool,
}

/// One depmod.d configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// File name inside the config directory (ends in `.conf` unless deliberately not).
    pub name: String,
    /// Contents. External directories are written as `@EXT<n>@` and replaced by their absolute
    /// paths when the tree is written.
    pub text: String,
}

/// A whole generated tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSpec {
    /// Seed it was generated from.
    pub seed: u64,
    /// Kernel version.
    pub kver: String,
    /// Module files, in the order they are created on disk.
    pub modules: Vec<ModuleFile>,
    /// Other files under the module directory (not modules): (relative path, contents).
    pub other_files: Vec<(String, Vec<u8>)>,
    /// Symbolic links under the module directory: (link path, target as written in the link).
    /// kmod follows them; a dangling one is reported and skipped.
    pub symlinks: Vec<(String, String)>,
    /// `modules.order`, if present.
    pub order: Option<OrderFile>,
    /// `modules.builtin`, if present.
    pub builtin: Option<Vec<u8>>,
    /// `modules.builtin.modinfo`, if present.
    pub builtin_modinfo: Option<Vec<u8>>,
    /// depmod.d files.
    pub configs: Vec<ConfigFile>,
    /// Number of external directories (`ext0`, `ext1`, … beside `lib/`).
    pub externals: usize,
    /// Extra command-line options for depmod (`-w`, `-e -E FILE`, `-n`, …); `@ROOT@` stands for
    /// the tree's root directory.
    pub options: Vec<String>,
    /// `Module.symvers` written at the root, if any.
    pub symvers: Option<Vec<u8>>,
    /// `System.map` written at the root, if any.
    pub system_map: Option<Vec<u8>>,
    /// Whether a deliberate cycle was planned (kmod exits 1 unless a ring member is excluded
    /// or not searched).
    pub has_cycle: bool,
}

impl TreeSpec {
    /// A one-line summary for test reports.
    pub fn summary(&self) -> String {
        let compressed = self
            .modules
            .iter()
            .filter(|m| m.compression != Compression::None)
            .count();
        format!(
            "seed {}: kver {}, {} module files ({} compressed), {} externals, {} configs, \
             modules.order {}, builtin {}, builtin.modinfo {}, options {:?}{}",
            self.seed,
            self.kver,
            self.modules.len(),
            compressed,
            self.externals,
            self.configs.len(),
            match &self.order {
                None => "absent".to_string(),
                Some(o) if !o.final_newline => format!("{} lines, no final newline", o.lines.len()),
                Some(o) => format!("{} lines", o.lines.len()),
            },
            if self.builtin.is_some() { "yes" } else { "no" },
            if self.builtin_modinfo.is_some() {
                "yes"
            } else {
                "no"
            },
            self.options,
            if self.has_cycle { ", with a cycle" } else { "" },
        )
    }
}
