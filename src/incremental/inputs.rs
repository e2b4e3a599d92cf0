//! The digests of a run's inputs (see [`super::memo`]): each built from exactly the fields
//! that decide what it stands for, each field length-prefixed ([`RunInputs`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::memo::{read_optional, RunInputs};
use super::store::{Digest, MemoBase, MemoModule};
use crate::bmsg;
use crate::compat::KmodVersion;
use crate::config::{Config, SearchEntry};
use crate::discover::DiscoveredModule;
use crate::run::{KernelSymbols, WriteOptions};

/// Adds a list of byte strings, counted.
fn list(inputs: &mut RunInputs, items: &[Vec<u8>]) {
    inputs.field(&(items.len() as u64).to_le_bytes());
    for item in items {
        inputs.field(item);
    }
}

/// Adds the folded configuration: what decides which modules the walk finds and which of
/// two modules of the same name is kept.
fn configuration(inputs: &mut RunInputs, config: &Config) {
    inputs.field(&(config.search.len() as u64).to_le_bytes());
    for entry in &config.search {
        match entry {
            SearchEntry::BuiltIn => inputs.field(b"built-in"),
            SearchEntry::External => inputs.field(b"external"),
            SearchEntry::Path(path) => inputs.field(b"path").field(path),
        };
    }
    list(inputs, &config.overrides);
    list(inputs, &config.externals);
    list(inputs, &config.excludes);
}

/// The digest of the walk rules: the configuration and `--gzip`, which decide which entries
/// a directory listing keeps.
pub fn walk_rules(config: &Config, gzip: bool) -> Digest {
    let mut inputs = RunInputs::new();
    inputs.field(b"walk rules");
    configuration(&mut inputs, config);
    inputs.field(&[u8::from(gzip)]);
    inputs.finish()
}

/// The key of a kept walk: everything besides the listings that the module list depends on
/// (the walk rules, the module directory, the kmod release, the bytes of `modules.order`).
pub fn kept_walk_key(
    rules: Digest,
    dirname: &[u8],
    version: KmodVersion,
    order_file: Option<&[u8]>,
) -> Digest {
    RunInputs::new()
        .field(b"kept walk")
        .digest(rules)
        .field(dirname)
        .field(&version.number().to_le_bytes())
        .optional(order_file)
        .finish()
}

/// Adds the settings that decide what the write stage writes and prints, and where: the
/// release, the directories, `-n`, `-w`, `-P`, `-E` (CRCs compared), `-e`, `--fsync`,
/// `--gzip` and the verbosity. (The paths given to `-C`, `-E` and `-F` are not among them:
/// what was read from them is digested instead; nor is `--cache`.)
fn write_settings(inputs: &mut RunInputs, options: &WriteOptions, gzip: bool, verbosity: u32) {
    let flags = [
        options.create_output_dir,
        options.dry_run,
        options.warn,
        options.check_crcs,
        options.print_unknown,
        options.fsync,
        gzip,
    ];
    inputs
        .field(b"write settings")
        .field(&options.version.number().to_le_bytes())
        .field(&options.module_dir)
        .field(&options.output_dir)
        .field(&flags.map(u8::from))
        .optional(options.symbol_prefix.as_ref().map(std::slice::from_ref))
        .field(&verbosity.to_le_bytes());
}

/// The input files of the module directory that only the builtin indexes read.
const BUILTIN_INPUTS: [&str; 2] = ["modules.builtin", "modules.builtin.modinfo"];

/// The digests of one run's inputs.
pub struct InputDigests {
    /// Of all the run's inputs (the memo's key).
    pub run: Digest,
    /// Of the builtin input files alone (part of `run`), to check after a full run that
    /// they did not change while it ran.
    pub builtin: Digest,
    /// Of the settings, configuration and kernel symbols.
    common: RunInputs,
}

impl InputDigests {
    /// The digests of a run under `options` (`gzip`, verbosity 0), with `config` (all
    /// mode), `kernel` symbols, and `modules` whose records have the digests `records`;
    /// `None` when a builtin input file exists but cannot be read.
    pub fn of(
        options: &WriteOptions,
        gzip: bool,
        config: Option<&Config>,
        kernel: &KernelSymbols,
        modules: &[DiscoveredModule],
        records: impl Iterator<Item = Digest>,
        dirname: &[u8],
    ) -> Option<InputDigests> {
        let mut common = RunInputs::new();
        write_settings(&mut common, options, gzip, 0);
        match config {
            None => common.optional(None),
            Some(config) => {
                common.field(b"configuration");
                configuration(&mut common, config);
                &mut common
            }
        };
        match &kernel.symbols {
            None => common.optional(None),
            Some(symbols) => {
                let mut bytes = Vec::new();
                for symbol in symbols {
                    bytes.extend_from_slice(&(symbol.name.len() as u64).to_le_bytes());
                    bytes.extend_from_slice(&symbol.name);
                    bytes.extend_from_slice(&symbol.crc.to_le_bytes());
                }
                common.optional(Some(&bytes))
            }
        };
        let builtin = builtin_digest(dirname)?;
        let run = module_digests(common.clone(), modules, records, builtin);
        Some(InputDigests {
            run,
            builtin,
            common,
        })
    }

    /// The [`MemoBase`] of these inputs with `summaries` (one per module, in order).
    pub fn base_for(&self, modules: &[DiscoveredModule], summaries: Vec<MemoModule>) -> MemoBase {
        let mut frame = self.common.clone();
        frame.field(b"without aliases");
        let frame = module_digests(
            frame,
            modules,
            summaries.iter().map(|summary| summary.rest),
            self.builtin,
        );
        MemoBase {
            frame,
            modules: summaries,
        }
    }
}

/// `inputs` followed by the module list with one digest per module, then `builtin`.
fn module_digests(
    mut inputs: RunInputs,
    modules: &[DiscoveredModule],
    digests: impl Iterator<Item = Digest>,
    builtin: Digest,
) -> Digest {
    inputs.field(&(modules.len() as u64).to_le_bytes());
    for (module, digest) in modules.iter().zip(digests) {
        inputs
            .field(&module.modname)
            .field(&module.path)
            .optional(module.relpath.as_deref())
            .optional(module.uncrelpath())
            .digest(digest);
    }
    inputs.digest(builtin);
    inputs.finish()
}

/// The digest of the builtin input files of `dirname` (absent ones included as absent);
/// `None` if one exists but cannot be read.
pub fn builtin_digest(dirname: &[u8]) -> Option<Digest> {
    let mut inputs = RunInputs::new();
    for name in BUILTIN_INPUTS {
        let path = bmsg!(dirname, "/", name);
        let bytes = read_optional(Path::new(OsStr::from_bytes(&path))).ok()?;
        inputs.optional(bytes.as_deref());
    }
    Some(inputs.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_setting_counts() {
        let base = WriteOptions::default();
        let digest = |options: &WriteOptions, gzip: bool| {
            let mut inputs = RunInputs::new();
            write_settings(&mut inputs, options, gzip, 0);
            inputs.finish()
        };
        let reference = digest(&base, false);
        let variants = [
            WriteOptions {
                version: KmodVersion::V30,
                ..base.clone()
            },
            WriteOptions {
                module_dir: b"/x".to_vec(),
                ..base.clone()
            },
            WriteOptions {
                output_dir: b"/x".to_vec(),
                ..base.clone()
            },
            WriteOptions {
                create_output_dir: true,
                ..base.clone()
            },
            WriteOptions {
                dry_run: true,
                ..base.clone()
            },
            WriteOptions {
                warn: true,
                ..base.clone()
            },
            WriteOptions {
                symbol_prefix: Some(b'_'),
                ..base.clone()
            },
            WriteOptions {
                check_crcs: true,
                ..base.clone()
            },
            WriteOptions {
                print_unknown: true,
                ..base.clone()
            },
            WriteOptions {
                fsync: true,
                ..base.clone()
            },
        ];
        for variant in &variants {
            assert_ne!(digest(variant, false), reference, "{variant:?}");
        }
        assert_ne!(digest(&base, true), reference);
        // What is only reported back does not count.
        let reported = WriteOptions {
            file_digests: true,
            direct_dependencies: true,
            ..base.clone()
        };
        assert_eq!(digest(&reported, false), reference);
    }

    #[test]
    fn every_configuration_list_counts() {
        let rules = |config: &Config| walk_rules(config, false);
        let base = Config::default();
        let reference = rules(&base);
        let variants = [
            Config {
                search: vec![SearchEntry::BuiltIn],
                ..Config::default()
            },
            Config {
                search: vec![SearchEntry::Path(b"updates".to_vec())],
                ..Config::default()
            },
            Config {
                overrides: vec![b"extra/m".to_vec()],
                ..Config::default()
            },
            Config {
                externals: vec![b"/ext".to_vec()],
                ..Config::default()
            },
            Config {
                excludes: vec![b"x".to_vec()],
                ..Config::default()
            },
        ];
        for variant in &variants {
            assert_ne!(rules(variant), reference, "{variant:?}");
        }
        // A name moved from one list to the next is another configuration.
        let excluded = Config {
            excludes: vec![b"/ext".to_vec()],
            ..Config::default()
        };
        assert_ne!(rules(&excluded), rules(&variants[3]));
        assert_ne!(walk_rules(&base, true), reference);
    }
}
