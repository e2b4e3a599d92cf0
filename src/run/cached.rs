//! Reading modules through `--cache FILE` (see [`crate::cache`]) and checking the run memo
//! (see [`crate::memo`]).
//!
//! The read stage is split in two. [`CachedReads::examine`] compares every module's file key
//! with its cache entry and reads only the modules that are new or changed, so that the
//! digest of every module's record is known; with those the run's inputs can be compared
//! with the memo. Only when the memo does not hold does [`CachedReads::finish_reads`] load
//! the rest: compressed modules from their stored records, uncompressed ones from their
//! files.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{load_module, looks_compressed, read_schedule, report_load_errors, LoadedModule};
use crate::bmsg;
use crate::cache::{
    self, encode_record, CacheEntry, Digest, FileKey, Listings, Memo, MemoBase, MemoModule,
    ModuleCache, ReadSettings, RecordRef, StoredEntry,
};
use crate::cli::Options;
use crate::config::Config;
use crate::diag::{strerror, Diag};
use crate::discover::DiscoveredModule;
use crate::graph::ModuleSymbols;
use crate::memo::{read_optional, RunInputs};
use crate::module::ImportTable;
use crate::output::text::{alias_lines_len, devname_line};
use crate::symvers::KernelSymbol;

/// What is known about one module before the memo check.
#[derive(Debug, Clone, Copy)]
enum Examined {
    /// Its file key matches the cache entry at this position; nothing was read.
    Unchanged(usize),
    /// It was read (new, changed, or its key could not be compared): what was read is at
    /// this position of [`CachedReads::fresh`].
    Read(usize),
}

/// A module read during [`CachedReads::examine`].
struct FreshRead {
    /// What was read (moved out by [`CachedReads::finish_reads`]).
    loaded: LoadedModule,
    /// Whether the read succeeded (only then may its entry be trusted).
    ok: bool,
    /// The file's key, taken before the read.
    key: Option<FileKey>,
    /// The digest of the encoded record.
    digest: Digest,
    /// The encoded record, kept for compressed modules only.
    record: Option<Vec<u8>>,
}

/// The directory listings the walk kept, to store in the cache.
pub(super) struct WalkListings {
    /// The listings and the rules they were made under.
    pub listings: Listings,
    /// Whether they tell the next run more than the cache's: they differ from them other
    /// than by directories listed again whose keys have not settled yet (the next run
    /// lists those again anyway).
    pub changed: bool,
}

/// The cache-backed read stage of one run.
pub(super) struct CachedReads {
    file: PathBuf,
    settings: ReadSettings,
    walk: WalkListings,
    /// When the run started examining files (see [`FileKey::is_settled`]).
    started: i128,
    cache: ModuleCache,
    examined: Vec<Examined>,
    /// The modules read during [`CachedReads::examine`], with their positions. They are
    /// kept in one vector rather than boxed one by one: boxes made by the reading threads
    /// stay in those threads' allocator arenas once freed, where the rest of the run cannot
    /// reuse them (a cold run over 50,000 modules peaked 20 MB higher).
    fresh: Vec<(usize, FreshRead)>,
    /// Whether a module read after the memo check gave another record than its entry
    /// promised (it changed while the run went on): then no memo is stored.
    inputs_moved: bool,
    /// Every module's summary, once all are loaded.
    summaries: Vec<MemoModule>,
}

/// The encoded record of `loaded` and its digest.
fn encoded_record(loaded: &LoadedModule) -> (Vec<u8>, Digest) {
    let mut bytes = Vec::new();
    encode_record(&mut bytes, loaded.record());
    let digest = cache::digest(&bytes);
    (bytes, digest)
}

/// What a [`MemoBase`] records of `loaded` (named `modname`, record digest `record`).
fn summarize(loaded: &LoadedModule, modname: &[u8], record: Digest) -> MemoModule {
    // The imports count through the dependencies they give (see `super::delta`).
    let no_imports = ImportTable::new();
    let mut rest = Vec::new();
    encode_record(
        &mut rest,
        RecordRef {
            aliases: &[],
            imports: &no_imports,
            ..loaded.record()
        },
    );
    // modules.devname is made from the aliases: its share goes with the rest.
    match devname_line(modname, &loaded.aliases) {
        None => rest.push(0),
        Some(Ok(line)) => {
            rest.push(1);
            rest.extend_from_slice(&line);
        }
        Some(Err(error)) => {
            rest.push(2);
            rest.extend_from_slice(&error);
        }
    }
    MemoModule {
        record,
        rest: cache::digest(&rest),
        deps: 0,
        aliases: loaded.aliases.len() as u32,
        alias_bytes: alias_lines_len(modname, &loaded.aliases),
    }
}

impl CachedReads {
    /// Reads every module whose key differs from its entry in `cache` (loaded from `file`).
    /// `started` must be taken before the modules' keys were (during the walk, or here).
    pub fn examine(
        file: PathBuf,
        cache: ModuleCache,
        walk: WalkListings,
        settings: ReadSettings,
        started: i128,
        modules: &[DiscoveredModule],
    ) -> Self {
        // Keys from the walk, or taken here (file-list mode), once per module.
        let keys: Vec<Option<FileKey>> = modules
            .par_iter()
            .map(|module| {
                module
                    .key
                    .or_else(|| FileKey::of(Path::new(OsStr::from_bytes(&module.path))))
            })
            .collect();
        // The entries are in the last run's module order: usually this run's.
        let mut examined: Vec<Examined> = modules
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(at, (module, key))| {
                cache
                    .position_near(at, &module.path)
                    .filter(|&stored| {
                        let entry = cache.entry_by_position(stored);
                        entry.trusted && Some(entry.key) == *key
                    })
                    .map_or(Examined::Read(usize::MAX), Examined::Unchanged)
            })
            .collect();
        let to_read: Vec<usize> = read_schedule(modules)
            .into_iter()
            .filter(|&i| matches!(examined[i], Examined::Read(_)))
            .collect();
        let fresh: Vec<(usize, FreshRead)> = to_read
            .into_par_iter()
            .map(|i| {
                let module = &modules[i];
                let key = keys[i];
                let loaded = load_module(module, settings.version, settings.gzip);
                let ok = loaded.load_error.is_none();
                let (bytes, digest) = encoded_record(&loaded);
                let record = looks_compressed(&module.path).then_some(bytes);
                let read = FreshRead {
                    loaded,
                    ok,
                    key,
                    digest,
                    record,
                };
                (i, read)
            })
            .collect();
        for (at, &(i, _)) in fresh.iter().enumerate() {
            examined[i] = Examined::Read(at);
        }
        CachedReads {
            file,
            settings,
            walk,
            started,
            cache,
            examined,
            fresh,
            inputs_moved: false,
            summaries: Vec::new(),
        }
    }

    /// Whether some module could not be read.
    pub fn any_read_failed(&self) -> bool {
        self.fresh.iter().any(|(_, read)| !read.ok)
    }

    /// The entry at `at` of the cache.
    fn stored(&self, at: usize) -> &StoredEntry {
        self.cache.entry_by_position(at)
    }

    /// What was read at `at` of [`CachedReads::fresh`].
    fn read(&self, at: usize) -> &FreshRead {
        &self.fresh[at].1
    }

    /// Each module's record digest, in module order.
    fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.examined.iter().map(|e| match *e {
            Examined::Unchanged(at) => self.stored(at).digest,
            Examined::Read(at) => self.read(at).digest,
        })
    }

    /// The memo stored by the last run, if any.
    pub fn memo(&self) -> Option<&Memo> {
        self.cache.memo()
    }

    /// The digest of the run's inputs (see [`crate::memo`]), or `None` when an input file
    /// exists but cannot be read.
    pub fn run_inputs(
        &self,
        options: &Options,
        config: Option<&Config>,
        kernel_symbols: Option<&[KernelSymbol]>,
        modules: &[DiscoveredModule],
        dirname: &[u8],
    ) -> Option<InputDigests> {
        let mut common = RunInputs::new();
        common.field(format!("{options:?}").as_bytes());
        common.optional(
            config
                .map(|c| format!("{c:?}"))
                .as_deref()
                .map(str::as_bytes),
        );
        match kernel_symbols {
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
        let run = module_digests(common.clone(), modules, self.digests(), builtin);
        Some(InputDigests {
            run,
            builtin,
            common,
        })
    }

    /// The [`MemoBase`] of `inputs` (this run's), when every module's summary is known: read
    /// now, or unchanged since the memo's run. Its dependency digests are not known yet.
    pub fn current_base(
        &self,
        inputs: &InputDigests,
        modules: &[DiscoveredModule],
    ) -> Option<MemoBase> {
        let summaries: Option<Vec<MemoModule>> = self.known_summaries(modules).collect();
        Some(inputs.base_for(modules, summaries?))
    }

    /// Each module's summary: made from what was read now, or the memo's when the module
    /// is unchanged since its run; `None` where neither is at hand.
    fn known_summaries<'s>(
        &'s self,
        modules: &'s [DiscoveredModule],
    ) -> impl Iterator<Item = Option<MemoModule>> + 's {
        let stored = self
            .memo()
            .and_then(|memo| memo.base.as_ref())
            .filter(|base| base.modules.len() == modules.len());
        self.examined
            .iter()
            .zip(modules)
            .enumerate()
            .map(move |(i, (examined, module))| match *examined {
                Examined::Read(at) => {
                    let read = self.read(at);
                    read.ok
                        .then(|| summarize(&read.loaded, &module.modname, read.digest))
                }
                Examined::Unchanged(at) => stored
                    .map(|base| base.modules[i])
                    .filter(|known| known.record == self.stored(at).digest),
            })
    }

    /// What was read now from module `i`, if it was read before the memo check.
    pub fn fresh(&self, i: usize) -> Option<&LoadedModule> {
        match *self.examined.get(i)? {
            Examined::Read(at) => {
                let read = self.read(at);
                read.ok.then_some(&read.loaded)
            }
            Examined::Unchanged(_) => None,
        }
    }

    /// Loads every module not read yet — compressed ones from their records, the others from
    /// their files — reports the modules that could not be read, and returns what the rest
    /// of the run uses, in module order.
    pub fn finish_reads(
        &mut self,
        modules: &[DiscoveredModule],
        diag: &Diag,
    ) -> (Vec<ModuleSymbols>, Vec<LoadedModule>) {
        let settings = self.settings;
        let cache = &self.cache;
        // What was read already is moved in afterwards (in place of an empty module).
        let mut results: Vec<(LoadedModule, bool)> = self
            .examined
            .par_iter()
            .zip(modules.par_iter())
            .map(|(examined, module)| match *examined {
                Examined::Read(_) => (LoadedModule::default(), true),
                Examined::Unchanged(at) => {
                    let entry = cache.entry_by_position(at);
                    if let Some(record) = cache.record(entry) {
                        return (LoadedModule::from_record(&module.path, record), true);
                    }
                    let loaded = load_module(module, settings.version, settings.gzip);
                    let held =
                        loaded.load_error.is_none() && encoded_record(&loaded).1 == entry.digest;
                    (loaded, held)
                }
            })
            .collect();
        for (i, read) in &mut self.fresh {
            results[*i].0 = std::mem::take(&mut read.loaded);
        }
        self.inputs_moved = results.iter().any(|(_, held)| !held);
        let loaded: Vec<LoadedModule> = results.into_iter().map(|(l, _)| l).collect();
        report_load_errors(modules, &loaded, diag);
        let digests: Vec<Digest> = self.digests().collect();
        self.summaries = loaded
            .par_iter()
            .zip(modules.par_iter())
            .zip(digests.par_iter())
            .map(|((loaded, module), &digest)| summarize(loaded, &module.modname, digest))
            .collect();
        loaded
            .into_iter()
            .map(|mut l| (std::mem::take(&mut l.symbols), l))
            .unzip()
    }

    /// Whether the cache file's modules section (entries, listings, kept walk) serves the
    /// next run as well as this run's would: every module is at its stored position, and
    /// each one that was read is not to be trusted anyway (it changed too recently, and will
    /// be read again), nor is any directory listed again (see `WalkListings::changed`).
    fn modules_section_holds(&self, modules: &[DiscoveredModule]) -> bool {
        !self.walk.changed
            && self.cache.len() == modules.len()
            && modules
                .iter()
                .zip(&self.examined)
                .enumerate()
                .all(|(at, (module, examined))| match *examined {
                    // Found at `at` only where the entry there has the module's path.
                    Examined::Unchanged(stored) => stored == at,
                    Examined::Read(read) => {
                        self.cache.entry_at(at, &module.path).is_some()
                            && !self.trusted(self.read(read))
                    }
                })
    }

    /// Whether a fresh read's entry may be trusted by a later run.
    fn trusted(&self, read: &FreshRead) -> bool {
        read.ok && read.key.is_some_and(|key| key.is_settled(self.started))
    }

    /// The entries to store: one per module, in module order (trusted when it was read
    /// without error and its key has settled).
    fn entries<'s>(
        &'s self,
        modules: &'s [DiscoveredModule],
    ) -> impl Iterator<Item = CacheEntry<'s>> + 's {
        modules
            .iter()
            .zip(&self.examined)
            .map(|(module, examined)| match *examined {
                Examined::Unchanged(at) => {
                    let entry = self.stored(at);
                    CacheEntry {
                        path: &module.path,
                        key: entry.key,
                        trusted: true,
                        digest: entry.digest,
                        record: self.cache.record_bytes(entry),
                    }
                }
                Examined::Read(at) => {
                    let read = self.read(at);
                    CacheEntry {
                        path: &module.path,
                        key: read.key.unwrap_or_default(),
                        trusted: self.trusted(read),
                        digest: read.digest,
                        record: read.record.as_deref().filter(|_| read.ok),
                    }
                }
            })
    }

    /// Rewrites the cache file with the entries and `memo` — unless that is what the file
    /// holds already. When only the memo changed, the rest of the file is kept byte for byte
    /// and the memo written in place ([`cache::MemoSlot`]). A failure to write is a warning.
    pub fn save(&self, modules: &[DiscoveredModule], memo: Option<&Memo>, diag: &Diag) {
        if self.modules_section_holds(modules) {
            // The slot (a checksum of the kept part) is only worth making for a new memo.
            if memo == self.cache.memo() {
                return;
            }
            let slot = cache::MemoSlot::of_loaded(&self.file, &self.cache);
            if let Some(Ok(true)) = slot.map(|slot| slot.fill(memo)) {
                return;
            }
        }
        let bytes = cache::encode(
            self.entries(modules),
            &self.walk.listings,
            memo,
            self.settings,
        );
        if let Err(err) = cache::save_bytes(&self.file, &bytes) {
            warn_not_written(&self.file, &err, diag);
        }
    }

    /// Stores the entries now, without a memo — or keeps the file's when they hold — and
    /// keeps only what the memo needs: the cache's memory is freed before a full run's
    /// largest stage. The memo follows with [`PendingMemo::store`].
    pub fn store_entries(self, modules: &[DiscoveredModule]) -> PendingMemo {
        let read_failed = self.any_read_failed();
        let kept = self
            .modules_section_holds(modules)
            .then(|| cache::MemoSlot::of_loaded(&self.file, &self.cache))
            .flatten();
        let (slot, stored) = match kept {
            Some(slot) => (Ok(slot), self.cache.memo().cloned()),
            None => {
                let entries = self.entries(modules);
                let slot = cache::save_without_memo(
                    &self.file,
                    entries,
                    &self.walk.listings,
                    self.settings,
                );
                (slot, None)
            }
        };
        PendingMemo {
            file: self.file,
            slot,
            stored,
            summaries: self.summaries,
            inputs_held: !self.inputs_moved,
            read_failed,
        }
    }
}

fn warn_not_written(file: &Path, err: &std::io::Error, diag: &Diag) {
    diag.warning(bmsg!(
        "could not write module cache ",
        file.as_os_str().as_bytes(),
        ": ",
        strerror(err)
    ));
}

/// A full run's cache once its entries are stored ([`CachedReads::store_entries`]): what
/// the memo needs, and where it goes.
pub(super) struct PendingMemo {
    file: PathBuf,
    /// Where the memo goes, or why the entries could not be written.
    slot: std::io::Result<cache::MemoSlot>,
    /// The memo in the file now.
    stored: Option<Memo>,
    summaries: Vec<MemoModule>,
    inputs_held: bool,
    read_failed: bool,
}

impl PendingMemo {
    /// Every module's summary, made by [`CachedReads::finish_reads`].
    pub fn summaries(&self) -> &[MemoModule] {
        &self.summaries
    }

    /// Whether every module read after the memo check matched its entry.
    pub fn inputs_held(&self) -> bool {
        self.inputs_held
    }

    /// Whether some module could not be read.
    pub fn any_read_failed(&self) -> bool {
        self.read_failed
    }

    /// Writes `memo` into the stored file (unless it holds it already); a failure to write
    /// the file, now or earlier, is a warning.
    pub fn store(self, memo: Option<&Memo>, diag: &Diag) {
        let written = self
            .slot
            .and_then(|slot| match memo == self.stored.as_ref() {
                true => Ok(()),
                // A file put in its place meanwhile is another run's: left as it is.
                false => slot.fill(memo).map(|_| ()),
            });
        if let Err(err) = written {
            warn_not_written(&self.file, &err, diag);
        }
    }
}

/// The input files of the module directory that only the builtin indexes read.
const BUILTIN_INPUTS: [&str; 2] = ["modules.builtin", "modules.builtin.modinfo"];

/// The digests [`CachedReads::run_inputs`] gives.
pub(super) struct InputDigests {
    /// Of all the run's inputs (the memo's key).
    pub run: Digest,
    /// Of the builtin input files alone (part of `run`), to check after a full run that
    /// they did not change while it ran.
    pub builtin: Digest,
    /// Of the options, configuration and kernel symbols.
    common: RunInputs,
}

impl InputDigests {
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
            .optional(module.uncrelpath.as_deref())
            .digest(digest);
    }
    inputs.digest(builtin);
    inputs.finish()
}

/// The digest of the builtin input files of `dirname` (absent ones included as absent);
/// `None` if one exists but cannot be read.
pub(super) fn builtin_digest(dirname: &[u8]) -> Option<Digest> {
    let mut inputs = RunInputs::new();
    for name in BUILTIN_INPUTS {
        let path = bmsg!(dirname, "/", name);
        let bytes = read_optional(Path::new(OsStr::from_bytes(&path))).ok()?;
        inputs.optional(bytes.as_deref());
    }
    Some(inputs.finish())
}
