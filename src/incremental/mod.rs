//! The incremental mode (`--cache FILE`): everything that lets a re-run do less than a full
//! run, behind one type, [`Incremental`], that the run calls at a few named points.
//!
//! * [`store`] — the cache file: one entry per module (its file key and the digest of its
//!   record, the record itself for compressed modules), the directory listings of the last
//!   walk, and the memo of the last run.
//! * [`kept_walk`] — taking the last walk's module list again when no directory changed.
//! * [`reads`] — reading only the modules whose files changed.
//! * [`memo`] — keeping the index files when no input changed, and printing again what the
//!   run that wrote them printed.
//! * [`delta`] — updating the two alias files in place when only some modules' aliases
//!   changed.
//! * [`inputs`] — the digests of a run's inputs: exactly the fields that decide its output.
//!
//! The main stages import nothing from here: discovery takes reusable listings as plain
//! data of its own ([`crate::discover::ListingCache`]), the write stage reports file
//! digests and direct dependencies when asked. Without this folder and the calls to
//! [`Incremental`] in [`crate::run`], what is left is a complete depmod.

pub(crate) mod delta;
pub(crate) mod inputs;
pub(crate) mod kept_walk;
pub(crate) mod memo;
pub(crate) mod reads;
pub(crate) mod store;

use std::path::PathBuf;

use crate::config::Config;
use crate::diag::Diag;
use crate::discover::{DiscoveredModule, ListingCache};
use crate::fs_at::now_ns;
use crate::record::ModuleRecord;
use crate::run::{
    Directories, KernelSymbols, ModuleReader, StageTimer, Walked, WriteOptions, WrittenIndexes,
};
use inputs::InputDigests;
use reads::{CachedReads, PendingMemo, WalkListings};
use store::{Listings, Memo, ModuleCache, ReadSettings};

/// The incremental state of one run, from the cache file loaded at its start to the cache
/// file stored at its end.
pub struct Incremental {
    file: PathBuf,
    settings: ReadSettings,
    /// When the run started, before any module file was examined (see
    /// [`crate::fs_at::FileKey::is_settled`]).
    started: i128,
    stage: Stage,
    /// The digests of this run's inputs, once known.
    inputs: Option<InputDigests>,
}

/// Where the run is.
enum Stage {
    /// The cache is loaded; discovery has not run yet.
    Loaded {
        cache: ModuleCache,
        /// The last walk's listings, taken out of the cache.
        stored: Listings,
    },
    /// Discovery ran: the listings to store are known.
    Discovered {
        cache: ModuleCache,
        walk: WalkListings,
    },
    /// Every module was compared with its entry, the changed ones read.
    Examined(CachedReads),
    /// The entries are stored; the memo follows once the files are written.
    Stored(PendingMemo),
    /// Nothing more to do.
    Done,
}

impl Incremental {
    /// Loads the cache file `file` for modules read under `settings` (a missing or damaged
    /// file is an empty cache).
    pub fn open(file: PathBuf, version: crate::compat::KmodVersion, gzip: bool) -> Self {
        let settings = ReadSettings { version, gzip };
        // Taken before any module file is examined.
        let started = now_ns();
        let mut cache = ModuleCache::load(&file, settings);
        let stored = cache.take_listings();
        Incremental {
            file,
            settings,
            started,
            stage: Stage::Loaded { cache, stored },
            inputs: None,
        }
    }

    /// Discovery, all mode: the last walk's module list, when it still holds (see
    /// [`kept_walk`]). A verbose run always walks (the walk's debug messages are not kept).
    pub fn kept_walk(
        &mut self,
        config: &Config,
        dirname: &[u8],
        timer: &StageTimer,
        diag: &Diag,
    ) -> Option<Vec<DiscoveredModule>> {
        let Stage::Loaded { cache, stored } = &mut self.stage else {
            return None;
        };
        if diag.verbosity() > 0 {
            return None;
        }
        let rules = inputs::walk_rules(config, self.settings.gzip);
        let found = kept_walk::take_again(
            config,
            self.settings,
            dirname,
            rules,
            self.started,
            stored,
            cache,
        )?;
        timer.note(|| {
            format!(
                "last walk taken again, {} directory listings read",
                found.relisted
            )
        });
        let Stage::Loaded { cache, stored } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            unreachable!("matched above")
        };
        self.stage = Stage::Discovered {
            cache,
            walk: WalkListings {
                listings: stored,
                changed: found.changed,
            },
        };
        Some(found.modules)
    }

    /// Discovery, all mode: the listings the walk may reuse.
    pub fn reusable_listings(&self, config: &Config) -> Option<ListingCache<'_>> {
        let Stage::Loaded { stored, .. } = &self.stage else {
            return None;
        };
        let rules = inputs::walk_rules(config, self.settings.gzip);
        Some(ListingCache {
            known: (stored.rules == rules).then_some(&stored.dirs),
            started: self.started,
        })
    }

    /// Discovery, all mode: what the walk found, to store.
    pub fn walked(&mut self, config: &Config, dirname: &[u8], walked: Walked) {
        let Stage::Loaded { cache, stored } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        let rules = inputs::walk_rules(config, self.settings.gzip);
        let mut listings = Listings {
            rules,
            dirs: walked.listings,
            walk: None,
        };
        if !walked.unlisted && !walked.printed {
            let key = inputs::kept_walk_key(
                rules,
                dirname,
                self.settings.version,
                walked.order_file.as_deref(),
            );
            listings.walk = Some(store::KeptWalk { key });
        }
        let changed = stored != listings;
        self.stage = Stage::Discovered {
            cache,
            walk: WalkListings { listings, changed },
        };
    }

    /// Discovery, file-list mode: no listing is kept.
    pub fn files_listed(&mut self) {
        let Stage::Loaded { cache, stored } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        let changed = stored != Listings::default();
        self.stage = Stage::Discovered {
            cache,
            walk: WalkListings {
                listings: Listings::default(),
                changed,
            },
        };
    }

    /// After discovery: compares every module with its entry and reads the changed ones.
    /// What the run prints from here on is recorded, for the memo.
    pub fn examine(&mut self, modules: &[DiscoveredModule], reader: &ModuleReader, diag: &Diag) {
        diag.start_recording();
        let Stage::Discovered { cache, walk } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        let reads = CachedReads::examine(
            self.file.clone(),
            cache,
            walk,
            self.settings,
            self.started,
            modules,
            reader,
        );
        self.stage = Stage::Examined(reads);
    }

    /// Keeps the index files when the memo says they are this run's (printing again what
    /// the run that wrote them printed), or updates only the alias files when only some
    /// modules' aliases changed; returns whether the run is done. Only runs that write files
    /// and print no verbose output use the memo.
    #[allow(clippy::too_many_arguments)]
    pub fn keep_index_files(
        &mut self,
        options: &WriteOptions,
        dirs: &Directories,
        config: Option<&Config>,
        kernel: &KernelSymbols,
        modules: &[DiscoveredModule],
        timer: &StageTimer,
        diag: &Diag,
    ) -> bool {
        let Stage::Examined(reads) = &self.stage else {
            return false;
        };
        if options.dry_run || diag.verbosity() > 0 || reads.any_read_failed() {
            return false;
        }
        self.inputs = InputDigests::of(
            options,
            self.settings.gzip,
            config,
            kernel,
            modules,
            reads.digests(),
            &dirs.dirname,
        );
        timer.stage("digest inputs");
        let (Some(inputs), Some(memo)) = (self.inputs.as_ref(), reads.memo()) else {
            return false;
        };
        let outdir = crate::run::os_path(&dirs.outdirname);
        if memo.inputs == inputs.run && memo::outputs_intact(&outdir, &memo.outputs) {
            timer.stage("verify index files");
            diag.replay(&memo.messages);
            memo::touch_outputs(&outdir, &memo.outputs);
            reads.save(modules, Some(memo), diag);
            return true;
        }
        let updated = delta::update_aliases_only(options, &outdir, inputs, reads, modules, diag);
        if updated {
            timer.stage("update alias files");
        }
        updated
    }

    /// The read stage: loads every module not read yet (compressed ones from their stored
    /// records), reports the modules that could not be read, and returns the records in
    /// module order.
    pub fn read_modules(
        &mut self,
        modules: &[DiscoveredModule],
        reader: &ModuleReader,
        diag: &Diag,
    ) -> Vec<ModuleRecord> {
        match &mut self.stage {
            Stage::Examined(reads) => reads.finish_reads(modules, reader, diag),
            _ => crate::run::read_all(modules, reader, diag),
        }
    }

    /// Before the write stage: stores the entries now (the memo follows), so that what the
    /// cache holds is freed before the largest stage.
    pub fn store_entries(&mut self, modules: &[DiscoveredModule]) {
        if let Stage::Examined(reads) = std::mem::replace(&mut self.stage, Stage::Done) {
            self.stage = Stage::Stored(reads.store_entries(modules));
        }
    }

    /// After the write stage: stores the memo of this run, when its files were written from
    /// inputs that held still while it ran (otherwise no memo).
    pub fn store_memo(
        self,
        written: &Result<WrittenIndexes, crate::run::Failed>,
        modules: &[DiscoveredModule],
        dirname: &[u8],
        diag: &Diag,
    ) {
        let messages = diag.take_recorded();
        let Stage::Stored(pending) = self.stage else {
            return;
        };
        let memo = match (written, self.inputs, messages) {
            (Ok(written), Some(inputs), Some(messages))
                if !written.files.is_empty()
                    && pending.inputs_held()
                    && !pending.any_read_failed()
                    && inputs::builtin_digest(dirname) == Some(inputs.builtin) =>
            {
                let base = written
                    .direct_dependencies
                    .as_ref()
                    .filter(|direct| direct.len() == modules.len())
                    .map(|direct| {
                        let mut summaries = pending.summaries().to_vec();
                        for (summary, deps) in summaries.iter_mut().zip(direct) {
                            summary.deps = delta::dependencies_digest(deps);
                        }
                        inputs.base_for(modules, summaries)
                    });
                Some(Memo {
                    inputs: inputs.run,
                    outputs: written.files.clone(),
                    messages,
                    base,
                })
            }
            _ => None,
        };
        pending.store(memo.as_ref(), diag);
    }
}
