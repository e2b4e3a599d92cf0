//! The read stage: every module file read in parallel, the failures reported in module
//! order.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use crate::bmsg;
use crate::compat::KmodVersion;
use crate::diag::Diag;
use crate::discover::{looks_compressed, DiscoveredModule};
use crate::fs_at::DirHandle;
use crate::graph::ExportedSymbol;
use crate::module::{
    read_module_selected, ImportNames, ModuleError, ModuleFile, NameShard, ReadOptions,
};
use crate::record::ModuleRecord;

/// What reading one module file gave.
#[derive(Debug, Clone, Default)]
pub struct ReadModule {
    /// What was read (what could be read, when the read failed partly).
    pub record: ModuleRecord,
    /// Why the module could not be read, if it could not.
    pub failure: Option<ReadFailure>,
}

/// Why a module could not be read, as kmod reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFailure {
    /// The `strerror` text of the failure.
    pub error: String,
    /// The decoder's messages libkmod logs around the failure, one per open attempt (see
    /// [`crate::module::kmod_decoder_messages`]); empty unless the release logs them.
    pub decoder_messages: Vec<String>,
}

/// How many times kmod's depmod opens a module it cannot decode: for its symbols, its
/// modinfo and its dependency symbols. The first attempt's message comes before the
/// "failed to load symbols" line, the others after it.
const KMOD_OPEN_ATTEMPTS: usize = 3;

/// The decoder messages kmod logs for the unreadable module at `path`, if `err` is a
/// decoding failure and `version` logs them.
fn decoder_messages(path: &Path, err: &ModuleError, version: KmodVersion) -> Vec<String> {
    use crate::module::{detect, kmod_decoder_messages};
    if !version.logs_decoder_errors() || !matches!(err, ModuleError::Decompress { .. }) {
        return Vec::new();
    }
    let Ok(input) = std::fs::read(path) else {
        return Vec::new();
    };
    let format = detect(&input, version, false);
    kmod_decoder_messages(format, &input, KMOD_OPEN_ATTEMPTS)
}

/// The modinfo keys depmod uses.
const MODINFO_KEYS: [&[u8]; 3] = [b"alias", b"softdep", b"weakdep"];

/// How the read stage reads module files: under the reading rules of a kmod release, and
/// below the module directory, held open.
#[derive(Debug)]
pub struct ModuleReader {
    version: KmodVersion,
    /// Whether `.ko.gz` files are decoded.
    gzip: bool,
    /// The module directory, if it could be opened: the modules inside it are opened below
    /// it, each lookup starting there rather than at `/`.
    module_dir: Option<DirHandle>,
}

impl ModuleReader {
    /// A reader for the modules of `module_dir`, under the rules of `version` (`gzip`:
    /// `.ko.gz` files are decoded).
    pub fn new(module_dir: &[u8], version: KmodVersion, gzip: bool) -> Self {
        ModuleReader {
            version,
            gzip,
            module_dir: DirHandle::open(module_dir).ok(),
        }
    }

    /// Reads one module file.
    pub fn read(&self, module: &DiscoveredModule) -> ReadModule {
        self.read_with(module, None)
    }

    /// Reads one module file, numbering its import names in `shard` if given (see
    /// [`read_all`]).
    fn read_with(
        &self,
        module: &DiscoveredModule,
        shard: Option<(&mut NameShard, usize)>,
    ) -> ReadModule {
        crate::progress::tick();
        let version = self.version;
        let mut read = ReadModule::default();
        let options = ReadOptions {
            version,
            gzip: self.gzip,
            ..ReadOptions::default()
        };
        let path = Path::new(OsStr::from_bytes(&module.path));
        let file = ModuleFile {
            path,
            below: self.module_dir.as_ref().zip(module.relpath.as_deref()),
            // A compressed file is read whole: the size the walk saw makes that one read.
            expected_size: module
                .key
                .filter(|_| looks_compressed(&module.path))
                .map(|key| key.size),
            regular: module.found_regular(),
        };
        let info = match read_module_selected(file, &options, &MODINFO_KEYS, shard) {
            Ok(info) => info,
            Err(err) => {
                read.failure = Some(ReadFailure {
                    error: err.kmod_strerror().to_string(),
                    decoder_messages: decoder_messages(path, &err, version),
                });
                return read;
            }
        };
        let record = &mut read.record;
        match info.exports {
            Ok(exports) => {
                record.exports = exports
                    .into_iter()
                    .map(|e| ExportedSymbol {
                        name: e.name,
                        crc: e.crc,
                    })
                    .collect()
            }
            Err(err) => {
                read.failure = Some(ReadFailure {
                    error: err.kmod_strerror().to_string(),
                    decoder_messages: Vec::new(),
                })
            }
        }
        // In MODINFO_KEYS order.
        let [aliases, softdeps, weakdeps]: [Vec<Vec<u8>>; 3] =
            info.modinfo_values.try_into().unwrap_or_default();
        record.aliases = aliases;
        record.softdeps = softdeps;
        if version.has_weakdep() {
            record.weakdeps = weakdeps;
        }
        record.imports = info.imports;
        read
    }
}

/// The order in which modules are handed to the reading threads: largest compressed files
/// first, so that no big decode starts last and leaves the other cores idle. Uncompressed
/// trees keep module order (their reads are short and even; a `stat` each would cost more
/// than it saves).
pub fn read_schedule(modules: &[DiscoveredModule]) -> Vec<usize> {
    let mut schedule: Vec<usize> = (0..modules.len()).collect();
    if modules.iter().any(|m| looks_compressed(&m.path)) {
        let sizes: Vec<u64> = modules
            .par_iter()
            .map(|m| match m.key {
                Some(key) => key.size,
                None => std::fs::metadata(OsStr::from_bytes(&m.path))
                    .map(|meta| meta.len())
                    .unwrap_or(0),
            })
            .collect();
        schedule.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    }
    schedule
}

/// How many modules, next to each other in the schedule, a reading task takes at most.
///
/// Where a compressed file is read, one: decoding times differ a hundredfold, and with
/// larger runs per task one thread was often left finishing a run while the other had
/// nothing to take. Uncompressed files take about the same time each, and a task per file
/// cost more in handing out tasks than it saved: runs of eight measured 0.975–1.000 of one
/// per task on bookworm-amd64 (seven series of 40–60 paired runs, median 0.976).
fn modules_per_task(modules: &[DiscoveredModule]) -> usize {
    const UNCOMPRESSED_RUN: usize = 8;
    match modules.iter().any(|m| looks_compressed(&m.path)) {
        true => 1,
        false => UNCOMPRESSED_RUN,
    }
}

/// Reads every module in parallel; reports failures in module order and returns the
/// records, in module order.
pub fn read_all(
    modules: &[DiscoveredModule],
    reader: &ModuleReader,
    diag: &Diag,
) -> Vec<ModuleRecord> {
    let mut slots: Vec<Option<ReadModule>> = (0..modules.len()).map(|_| None).collect();
    // Each reading thread numbers the import names it meets in a shard of its own (a
    // module read elsewhere, or finding its thread's shard taken, keeps its names).
    let shards: Vec<Mutex<NameShard>> = (0..rayon::current_num_threads())
        .map(|_| Mutex::default())
        .collect();
    let results: Vec<(usize, ReadModule)> = read_schedule(modules)
        .into_par_iter()
        .with_max_len(modules_per_task(modules))
        .map(|i| {
            let number = rayon::current_thread_index();
            let mut shard = number.and_then(|n| Some((shards.get(n)?.try_lock().ok()?, n)));
            let shard = shard.as_mut().map(|(names, n)| (&mut **names, *n));
            (i, reader.read_with(&modules[i], shard))
        })
        .collect();
    let names = Arc::new(ImportNames::new(
        shards
            .into_iter()
            .map(|shard| {
                shard
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .freeze()
            })
            .collect(),
    ));
    for (i, mut result) in results {
        result.record.imports.share_names(&names);
        slots[i] = Some(result);
    }
    let reads: Vec<ReadModule> = slots.into_iter().flatten().collect();
    report_failures(modules, &reads, diag);
    reads.into_iter().map(|read| read.record).collect()
}

/// Prints, in module order, kmod's messages for the modules that could not be read.
pub fn report_failures(modules: &[DiscoveredModule], reads: &[ReadModule], diag: &Diag) {
    for (module, read) in modules.iter().zip(reads) {
        let Some(failure) = &read.failure else {
            continue;
        };
        let (before, after) = failure
            .decoder_messages
            .split_first()
            .map_or((None, &[][..]), |(first, rest)| (Some(first), rest));
        if let Some(message) = before {
            diag.error(message);
        }
        diag.error(bmsg!(
            "failed to load symbols from ",
            module.path,
            ": ",
            failure.error
        ));
        for message in after {
            diag.error(message);
        }
    }
}
