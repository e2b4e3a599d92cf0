//! Reading modules through `--cache FILE` (see [`super::store`]) and checking the run memo
//! (see [`super::memo`]).
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

use super::inputs::InputDigests;
use super::store::{
    self, encode_record, CacheEntry, Digest, Listings, Memo, MemoBase, MemoModule, ModuleCache,
    ReadSettings, RecordRef, StoredEntry,
};
use crate::bmsg;
use crate::diag::{strerror, Diag};
use crate::discover::{looks_compressed, DiscoveredModule};
use crate::fs_at::FileKey;
use crate::module::ImportTable;
use crate::output::text::{alias_lines_len, devname_line};
use crate::record::ModuleRecord;
use crate::run::{read_schedule, report_failures, ModuleReader, ReadModule};

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
    loaded: ReadModule,
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
pub(crate) struct WalkListings {
    /// The listings and the rules they were made under.
    pub listings: Listings,
    /// Whether they tell the next run more than the cache's: they differ from them other
    /// than by directories listed again whose keys have not settled yet (the next run
    /// lists those again anyway).
    pub changed: bool,
}

/// The cache-backed read stage of one run.
pub(crate) struct CachedReads {
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

/// The encoded record of `record` and its digest.
fn encoded_record(record: &ModuleRecord) -> (Vec<u8>, Digest) {
    let mut bytes = Vec::new();
    encode_record(&mut bytes, RecordRef::of(record));
    let digest = store::digest(&bytes);
    (bytes, digest)
}

/// What a [`MemoBase`] records of `loaded` (named `modname`, record digest `record`).
fn summarize(loaded: &ModuleRecord, modname: &[u8], record: Digest) -> MemoModule {
    // The imports count through the dependencies they give (see `super::delta`).
    let no_imports = ImportTable::new();
    let mut rest = Vec::new();
    encode_record(
        &mut rest,
        RecordRef {
            aliases: &[],
            imports: &no_imports,
            ..RecordRef::of(loaded)
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
        rest: store::digest(&rest),
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
        reader: &ModuleReader,
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
                let loaded = reader.read(module);
                let ok = loaded.failure.is_none();
                let (bytes, digest) = encoded_record(&loaded.record);
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
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.examined.iter().map(|e| match *e {
            Examined::Unchanged(at) => self.stored(at).digest,
            Examined::Read(at) => self.read(at).digest,
        })
    }

    /// The memo stored by the last run, if any.
    pub fn memo(&self) -> Option<&Memo> {
        self.cache.memo()
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
                        .then(|| summarize(&read.loaded.record, &module.modname, read.digest))
                }
                Examined::Unchanged(at) => stored
                    .map(|base| base.modules[i])
                    .filter(|known| known.record == self.stored(at).digest),
            })
    }

    /// What was read now from module `i`, if it was read before the memo check.
    pub fn fresh(&self, i: usize) -> Option<&ModuleRecord> {
        match *self.examined.get(i)? {
            Examined::Read(at) => {
                let read = self.read(at);
                read.ok.then_some(&read.loaded.record)
            }
            Examined::Unchanged(_) => None,
        }
    }

    /// Loads every module not read yet — compressed ones from their records, the others from
    /// their files — reports the modules that could not be read, and returns the records,
    /// in module order.
    pub fn finish_reads(
        &mut self,
        modules: &[DiscoveredModule],
        reader: &ModuleReader,
        diag: &Diag,
    ) -> Vec<ModuleRecord> {
        let cache = &self.cache;
        // What was read already is moved in afterwards (in place of an empty module).
        let mut results: Vec<(ReadModule, bool)> = self
            .examined
            .par_iter()
            .zip(modules.par_iter())
            .map(|(examined, module)| match *examined {
                Examined::Read(_) => (ReadModule::default(), true),
                Examined::Unchanged(at) => {
                    let entry = cache.entry_by_position(at);
                    if let Some(record) = cache.record(entry) {
                        let read = ReadModule {
                            record,
                            failure: None,
                        };
                        return (read, true);
                    }
                    let loaded = reader.read(module);
                    let held = loaded.failure.is_none()
                        && encoded_record(&loaded.record).1 == entry.digest;
                    (loaded, held)
                }
            })
            .collect();
        for (i, read) in &mut self.fresh {
            results[*i].0 = std::mem::take(&mut read.loaded);
        }
        self.inputs_moved = results.iter().any(|(_, held)| !held);
        let loaded: Vec<ReadModule> = results.into_iter().map(|(l, _)| l).collect();
        report_failures(modules, &loaded, diag);
        let digests: Vec<Digest> = self.digests().collect();
        self.summaries = loaded
            .par_iter()
            .zip(modules.par_iter())
            .zip(digests.par_iter())
            .map(|((loaded, module), &digest)| summarize(&loaded.record, &module.modname, digest))
            .collect();
        loaded.into_iter().map(|read| read.record).collect()
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
    /// and the memo written in place ([`store::MemoSlot`]). A failure to write is a warning.
    pub fn save(&self, modules: &[DiscoveredModule], memo: Option<&Memo>, diag: &Diag) {
        if self.modules_section_holds(modules) {
            // The slot (a checksum of the kept part) is only worth making for a new memo.
            if memo == self.cache.memo() {
                return;
            }
            let slot = store::MemoSlot::of_loaded(&self.file, &self.cache);
            if let Some(Ok(true)) = slot.map(|slot| slot.fill(memo)) {
                return;
            }
        }
        let bytes = store::encode(
            self.entries(modules),
            &self.walk.listings,
            memo,
            self.settings,
        );
        if let Err(err) = store::save_bytes(&self.file, &bytes) {
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
            .then(|| store::MemoSlot::of_loaded(&self.file, &self.cache))
            .flatten();
        let (slot, stored) = match kept {
            Some(slot) => (Ok(slot), self.cache.memo().cloned()),
            None => {
                let entries = self.entries(modules);
                let slot = store::save_without_memo(
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
pub(crate) struct PendingMemo {
    file: PathBuf,
    /// Where the memo goes, or why the entries could not be written.
    slot: std::io::Result<store::MemoSlot>,
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
