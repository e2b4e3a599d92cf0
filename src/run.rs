//! The depmod run: every stage in kmod's order, from parsed options to published files.
//!
//! ```text
//! options ─► directories ─► (-A check) ─► symvers ─► config ─► discover ─► order
//!         ─► read modules (parallel) ─► resolve ─► topological index ─► encode ─► publish
//! ```
//!
//! With `--cache` (see [`crate::cache`]), the modules whose files changed are read first;
//! when no input changed since the last run, the run memo ([`crate::memo`]) ends the run
//! there, keeping the index files.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::bmsg;
use crate::builtin::{parse_builtin_modinfo, parse_modules_builtin, BuiltinDiagnostic};
use crate::cache::{
    self, Digest, KeptWalk, Listings, Memo, ModuleCache, ModuleRecord, OutputDigest, ReadSettings,
    RecordRef,
};
use crate::cli::Options;
use crate::compat::KmodVersion;
use crate::config::{default_config_dirs, load_config, Config};
use crate::diag::{strerror, Diag, Level};
use crate::discover::{self, has_module_extension, DiscoveredModule, ListingCache, Registry};
use crate::graph::{
    all_sorted_dependencies, report_cycles, resolve, topological_index, ExportedSymbol,
    ModuleSymbols, ResolveMessages, ResolveOptions, TopoResult,
};
use crate::index::{IndexBuilder, IndexError, NodeOrder, PreparedIndex};
use crate::kept_walk;
use crate::memo::{self, DigestWriter, RunInputs};
use crate::order::{
    apply_modules_order, parse_modules_order, sort_hash_order, OrderFile, MODULE_BUCKETS,
};
use crate::output::bin::{self as binout, build_index, build_index_steps, DuplicateKind};
use crate::output::{text, OutputFile, OutputModule, Resolved};
use crate::progress::Progress;
use crate::publish::{create_dir_all, PublishError, Publisher};
use crate::symvers::{parse_module_symvers, parse_system_map, KernelSymbol};

mod cached;
mod delta;
use cached::{CachedReads, WalkListings};

/// `PATH_MAX` on Linux.
const PATH_MAX: usize = 4096;

/// Exit status for success.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status for every failure kmod reports.
pub const EXIT_FAILURE: i32 = 1;

/// kmod's `sscanf(version, "%u.%u") == 2` check on the first positional argument.
pub fn is_version_number(arg: &[u8]) -> bool {
    fn number(s: &[u8]) -> Option<&[u8]> {
        let mut i = 0;
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            i += 1;
        }
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        (i > start).then(|| &s[i..])
    }
    number(arg)
        .and_then(|rest| rest.strip_prefix(b"."))
        .and_then(number)
        .is_some()
}

/// kmod's `path_make_absolute_cwd`.
fn make_absolute(path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let cwd = std::env::current_dir()
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_default();
    bmsg!(cwd, "/", path)
}

fn kernel_release() -> Option<Vec<u8>> {
    let mut release = std::fs::read("/proc/sys/kernel/osrelease").ok()?;
    while release.last() == Some(&b'\n') {
        release.pop();
    }
    Some(release)
}

fn os_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes.to_vec()))
}

/// What was read from one module file.
#[derive(Debug, Clone, Default)]
struct LoadedModule {
    symbols: ModuleSymbols,
    aliases: Vec<Vec<u8>>,
    softdeps: Vec<Vec<u8>>,
    weakdeps: Vec<Vec<u8>>,
    /// `strerror` text when the exports could not be read.
    load_error: Option<String>,
    /// The decoder's messages libkmod logs around the load error, one per open attempt
    /// (see [`crate::module::kmod_decoder_messages`]); empty unless the version logs them.
    decoder_messages: Vec<String>,
}

/// How many times kmod's depmod opens a module it cannot decode: for its symbols, its
/// modinfo and its dependency symbols. The first attempt's message comes before the
/// "failed to load symbols" line, the others after it.
const KMOD_OPEN_ATTEMPTS: usize = 3;

/// The decoder messages kmod logs for the unreadable module at `path`, if `err` is a
/// decoding failure and `version` logs them.
fn decoder_messages(
    path: &Path,
    err: &crate::module::ModuleError,
    version: KmodVersion,
) -> Vec<String> {
    use crate::module::{detect, kmod_decoder_messages, ModuleError};
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

fn load_module(module: &DiscoveredModule, version: KmodVersion, gzip: bool) -> LoadedModule {
    use crate::module::{read_module_selected, ReadOptions};
    crate::progress::tick();
    let mut loaded = LoadedModule {
        symbols: ModuleSymbols {
            path: module.path.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let options = ReadOptions {
        version,
        gzip,
        ..ReadOptions::default()
    };
    let path = Path::new(OsStr::from_bytes(&module.path));
    let info = match read_module_selected(path, &options, &MODINFO_KEYS) {
        Ok(info) => info,
        Err(err) => {
            loaded.load_error = Some(err.kmod_strerror().to_string());
            loaded.decoder_messages = decoder_messages(path, &err, version);
            return loaded;
        }
    };
    match info.exports {
        Ok(exports) => {
            loaded.symbols.exports = exports
                .into_iter()
                .map(|e| ExportedSymbol {
                    name: e.name,
                    crc: e.crc,
                })
                .collect()
        }
        Err(err) => loaded.load_error = Some(err.kmod_strerror().to_string()),
    }
    // In MODINFO_KEYS order.
    let [aliases, softdeps, weakdeps]: [Vec<Vec<u8>>; 3] =
        info.modinfo_values.try_into().unwrap_or_default();
    loaded.aliases = aliases;
    loaded.softdeps = softdeps;
    if version.has_weakdep() {
        loaded.weakdeps = weakdeps;
    }
    loaded.symbols.imports = info.imports;
    loaded
}

/// `depfile_up_to_date_dir`: true if no module file is newer (in seconds) than `mtime`.
fn modules_up_to_date(dir: &Path, mtime: i64, gzip: bool, fd: u32, diag: &Diag) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if matches!(name, b"." | b".." | b"build" | b"source") {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(name));
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) => {
                diag.error(bmsg!(
                    "fstatat(",
                    fd.to_string(),
                    ", ",
                    name,
                    "): ",
                    strerror(&err)
                ));
                continue;
            }
        };
        if meta.is_dir() {
            if !modules_up_to_date(&path, mtime, gzip, fd + 1, diag) {
                return false;
            }
        } else if meta.is_file() {
            if has_module_extension(name, gzip) && meta.mtime() > mtime {
                return false;
            }
        } else {
            diag.error(bmsg!(
                "unsupported file type ",
                path.as_os_str().as_bytes(),
                ": ",
                format!("{:o}", meta.mode() & 0o170000)
            ));
        }
    }
    true
}

/// `depfile_up_to_date`: whether `-A` may skip the run.
fn depfile_up_to_date(dirname: &[u8], gzip: bool, diag: &Diag) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = os_path(dirname);
    if let Err(err) = std::fs::read_dir(&dir) {
        diag.error(bmsg!(
            "could not open directory ",
            dirname,
            ": ",
            strerror(&err)
        ));
        return false;
    }
    let meta = match std::fs::metadata(dir.join("modules.dep")) {
        Ok(meta) => meta,
        Err(err) => {
            diag.error(bmsg!(
                "could not fstatat(",
                dirname,
                ", modules.dep): ",
                strerror(&err)
            ));
            return false;
        }
    };
    // kmod's directory descriptors start at 3 (see `discover`).
    modules_up_to_date(&dir, meta.mtime(), gzip, 3, diag)
}

/// Diagnostics held back so that work done in parallel reports in kmod's order.
#[derive(Debug, Default)]
struct Messages(Vec<(Level, Vec<u8>)>);

impl Messages {
    fn error(&mut self, message: impl Into<Vec<u8>>) {
        self.0.push((Level::Error, message.into()));
    }

    fn warning(&mut self, message: impl Into<Vec<u8>>) {
        self.0.push((Level::Warning, message.into()));
    }

    /// Prints the messages, in the order they were recorded.
    fn flush(self, diag: &Diag) {
        for (level, message) in self.0 {
            diag.log(level, &message);
        }
    }
}

/// kmod's `dfdopen` for reading an input file in `dirname`: warnings on failure.
fn read_input(dirname: &[u8], name: &str, diag: &mut Messages) -> Option<Vec<u8>> {
    let dir = os_path(dirname);
    if let Err(err) = std::fs::metadata(&dir).and_then(|m| {
        if m.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(20))
        }
    }) {
        diag.warning(bmsg!(
            "could not open directory ",
            dirname,
            ": ",
            strerror(&err)
        ));
        return None;
    }
    match std::fs::read(dir.join(name)) {
        Ok(data) => Some(data),
        Err(err) => {
            diag.warning(bmsg!(
                "could not open ",
                name,
                " at ",
                dirname,
                ": ",
                strerror(&err)
            ));
            None
        }
    }
}

fn emit_builtin_diagnostics(diagnostics: Vec<BuiltinDiagnostic>, diag: &mut Messages) {
    for d in diagnostics {
        match d {
            BuiltinDiagnostic::Error(m) => diag.error(m),
            BuiltinDiagnostic::Warning(m) => diag.warning(m),
        }
    }
}

/// A stage failed; its messages are already printed. The value is the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit(i32);

/// The directories of a run (§1.3).
struct Directories {
    /// `<root>/<moduledir>/<kver>`: where modules and kernel-provided inputs are read.
    dirname: Vec<u8>,
    /// `<outroot or root>/<moduledir>/<kver>`: where outputs are written.
    outdirname: Vec<u8>,
    /// Whether `-o` was given.
    has_outdir: bool,
}

/// Run depmod with `options`; returns the exit status. Diagnostics go to stderr, `-n` and
/// verbose output to stdout.
pub fn run(options: &Options) -> i32 {
    match run_stages(options) {
        Ok(()) => EXIT_SUCCESS,
        Err(Exit(code)) => code,
    }
}

fn run_stages(options: &Options) -> Result<(), Exit> {
    let mut timer = StageTimer::from_env();
    let diag = Diag::new(options.verbose);
    let version = options.compat;
    for shown in &options.deprecated {
        diag.warning(bmsg!("Ignored deprecated option ", shown));
    }

    let (kversion, files) = kernel_version_and_files(options, &diag)?;
    let dirs = directories(options, &kversion, &diag)?;

    let mut all = options.all || files.is_empty();
    if options.quick {
        if options.dry_run || depfile_up_to_date(&dirs.dirname, options.gzip, &diag) {
            return Ok(());
        }
        all = true;
    }

    let cache_file = options.cache.as_deref().map(os_path);
    let settings = ReadSettings {
        version,
        gzip: options.gzip,
    };
    // Taken before any module file is examined (see `FileKey::is_settled`).
    let started = cache::now_ns();
    let mut cache = cache_file
        .as_deref()
        .map(|file| ModuleCache::load(file, settings));
    timer.stage("start, load cache");
    let (kernel_symbols, print_unknown) = load_kernel_symbols(options, &diag)?;
    let Discovered {
        modules,
        walk,
        config,
    } = if all {
        let cache = cache.as_mut().map(|cache| (cache, started));
        discover_tree(options, &kversion, &dirs.dirname, cache, &mut timer, &diag)?
    } else {
        let registry =
            discover::from_file_list(&files, &dirs.dirname, version, &diag).map_err(|err| {
                diag.fatal(err.message());
                Exit(EXIT_FAILURE)
            })?;
        timer.stage("configuration and walk");
        let (modules, _) = order_modules(registry, version, &dirs.dirname, &diag)?;
        timer.stage("order");
        let stored = cache.as_mut().map(ModuleCache::take_listings);
        Discovered {
            modules,
            walk: WalkListings {
                listings: Listings::default(),
                changed: stored.is_some_and(|stored| stored != Listings::default()),
            },
            config: None,
        }
    };
    // Everything printed from here on is kept with the memo, and printed again by a run that
    // keeps the files.
    crate::diag::start_recording();
    let progress = Progress::start("reading modules", modules.len(), options.verbose);
    let mut cached = cache_file
        .zip(cache)
        .map(|(file, cache)| CachedReads::examine(file, cache, walk, settings, started, &modules));
    timer.stage("check cache");
    // The memo is for runs that write files and print no verbose output (see `crate::memo`).
    let memo_wanted = !options.dry_run && options.verbose == 0;
    let mut inputs = None;
    let mut memo_held = false;
    if let Some(reads) = cached
        .as_ref()
        .filter(|reads| memo_wanted && !reads.any_read_failed())
    {
        inputs = reads.run_inputs(
            options,
            config.as_ref(),
            kernel_symbols.as_deref(),
            &modules,
            &dirs.dirname,
        );
        timer.stage("digest inputs");
        if let (Some(inputs), Some(memo)) = (inputs.as_ref(), reads.memo()) {
            let outdir = os_path(&dirs.outdirname);
            if memo.inputs == inputs.run && memo::outputs_intact(&outdir, &memo.outputs) {
                timer.stage("verify index files");
                crate::diag::replay(&memo.messages);
                memo::touch_outputs(&outdir, &memo.outputs);
                reads.save(&modules, Some(memo), &diag);
                memo_held = true;
            } else if update_aliases_only(
                options,
                print_unknown,
                &outdir,
                inputs,
                reads,
                &modules,
                &diag,
            ) {
                timer.stage("update alias files");
                memo_held = true;
            }
        }
    }
    if memo_held {
        timer.stage("keep index files");
        drop_in_background((modules, cached));
        return Ok(());
    }
    let (symbols, loaded) = match cached.as_mut() {
        Some(reads) => reads.finish_reads(&modules, &diag),
        None => read_modules(&modules, version, options.gzip, &diag),
    };
    drop(progress);
    timer.stage("read modules");
    timer.note(&format!(
        "{} uncompressed modules read whole",
        crate::module::uncompressed_whole_reads()
    ));
    let read = ReadStage {
        symbols,
        loaded,
        kernel_symbols,
        print_unknown,
    };
    let digests = cached.is_some();
    // The cache's entries are stored now and its memo once the files are written, so that
    // what the cache holds is freed before the largest stage.
    let pending = cached
        .filter(|_| !options.dry_run)
        .map(|reads| reads.store_entries(&modules));
    let written = resolve_and_write(options, &dirs, &modules, read, digests, &diag);
    // Each module's dependencies digest goes with its summary in the memo's base.
    let (written, dependency_digests) = match written {
        Ok(Some((outputs, deps))) => (Ok(Some(outputs)), deps),
        Ok(None) => (Ok(None), Vec::new()),
        Err(exit) => (Err(exit), Vec::new()),
    };
    timer.stage("resolve, encode and write");
    if let Some(reads) = pending {
        let messages = crate::diag::take_recorded();
        let memo = match (&written, inputs, messages) {
            (Ok(Some(outputs)), Some(inputs), Some(messages))
                if reads.inputs_held()
                    && !reads.any_read_failed()
                    && cached::builtin_digest(&dirs.dirname) == Some(inputs.builtin) =>
            {
                Some(Memo {
                    inputs: inputs.run,
                    outputs: outputs.clone(),
                    messages,
                    base: (dependency_digests.len() == modules.len()).then(|| {
                        let mut summaries = reads.summaries().to_vec();
                        for (summary, &deps) in summaries.iter_mut().zip(&dependency_digests) {
                            summary.deps = deps;
                        }
                        inputs.base_for(&modules, summaries)
                    }),
                })
            }
            _ => None,
        };
        reads.store(memo.as_ref(), &diag);
    }
    drop_in_background(modules);
    written.map(|_| ())
}

/// When only some modules' aliases and imports changed since the memo's run, and not their
/// dependencies, updates the alias files in place, keeps the others and stores the new memo
/// (see [`delta`]); returns whether it did (if not, the run goes on in full).
fn update_aliases_only(
    options: &Options,
    print_unknown: bool,
    outdir: &Path,
    inputs: &cached::InputDigests,
    reads: &CachedReads,
    modules: &[DiscoveredModule],
    diag: &Diag,
) -> bool {
    // -w could warn about a new duplicate alias, -e about a new unknown symbol.
    if options.warn || print_unknown || options.compat.node_order() != NodeOrder::Pre {
        return false;
    }
    // Messages could depend on the aliases: only a silent run's files are updated.
    let Some(memo) = reads.memo().filter(|memo| memo.messages.is_empty()) else {
        return false;
    };
    let Some(old) = memo.base.as_ref() else {
        return false;
    };
    let Some(mut base) = reads.current_base(inputs, modules) else {
        return false;
    };
    let Some(changed) = delta::changed_modules(old, &base).and_then(|changed| {
        changed
            .into_iter()
            .map(|index| {
                let loaded = reads.fresh(index)?;
                Some(delta::ChangedModule {
                    index,
                    modname: &modules[index].modname,
                    aliases: &loaded.aliases,
                    imports: &loaded.symbols.imports,
                })
            })
            .collect::<Option<Vec<_>>>()
    }) else {
        return false;
    };
    // The dependencies are those of the memo's run (the update checks them).
    for (module, kept) in base.modules.iter_mut().zip(&old.modules) {
        module.deps = kept.deps;
    }
    let store = |outputs: &[OutputDigest]| {
        let memo = Memo {
            inputs: inputs.run,
            outputs: outputs.to_vec(),
            messages: Vec::new(),
            base: Some(base),
        };
        reads.save(modules, Some(&memo), diag);
    };
    let update = delta::AliasUpdate {
        outdir,
        outputs: &memo.outputs,
        old,
        modules,
        symbol_prefix: options.symbol_prefix,
        fsync: options.fsync,
    };
    delta::update_alias_files(update, &changed, store).is_ok()
}

/// Every file written (length and digest, in order) and each module's direct dependencies
/// digest.
type WrittenFiles = (Vec<OutputDigest>, Vec<Digest>);

/// What the read stage hands on.
struct ReadStage {
    symbols: Vec<ModuleSymbols>,
    loaded: Vec<LoadedModule>,
    kernel_symbols: Option<Vec<KernelSymbol>>,
    print_unknown: bool,
}

/// Resolves symbols, then encodes and writes every file (or prints them, with `-n`).
/// Returns the length and digest of every file written, in order, and the digest of each
/// module's direct dependencies, when `digests` is set and files were written.
fn resolve_and_write(
    options: &Options,
    dirs: &Directories,
    modules: &[DiscoveredModule],
    read: ReadStage,
    digests: bool,
    diag: &Diag,
) -> Result<Option<WrittenFiles>, Exit> {
    let version = options.compat;
    let ReadStage {
        symbols,
        loaded,
        kernel_symbols,
        print_unknown,
    } = read;
    let resolve_options = ResolveOptions {
        symbol_prefix: options.symbol_prefix,
        check_symvers: options.symvers.is_some(),
        print_unknown,
        verbose: options.verbose > 0,
        debug: options.verbose >= 3,
    };
    // Resolving symbols is serial. Meanwhile the files that need no resolution are encoded
    // on the other cores; once resolved, modules.dep is published and the files that need
    // the graph are encoded. Every file is published in kmod's order at the end, each with
    // its diagnostics, so stderr is as if all of it ran in sequence.
    let metadata = Resolved {
        modules: modules
            .iter()
            .zip(loaded)
            .map(|(m, l)| OutputModule {
                modname: m.modname.clone(),
                path: m.output_path().to_vec(),
                aliases: l.aliases,
                softdeps: l.softdeps,
                weakdeps: l.weakdeps,
            })
            .collect(),
        dependencies: Vec::new(),
        symbols: Vec::new(),
    };
    let output = OutputSettings {
        version,
        dirname: &dirs.dirname,
        warn: options.warn,
        diag,
        digests,
    };
    let early_files: Vec<OutputFile> = match options.dry_run {
        true => Vec::new(),
        false => OutputFile::sequence(version)
            .into_iter()
            .filter(|f| !f.needs_resolution())
            .collect(),
    };
    let (resolution, early_encoded) = rayon::join(
        || -> Result<Resolution, Exit> {
            let resolved_graph = resolve_graph(
                modules,
                &symbols,
                kernel_symbols.as_deref(),
                &resolve_options,
                digests,
                diag,
            );
            // What was read from the modules is not needed any more.
            drop_in_background(symbols);
            let (dependencies, owners, dependency_digests) = resolved_graph?;
            if options.dry_run {
                return Ok(Resolution {
                    dependencies,
                    symbols: owners,
                    output: None,
                    dependency_digests,
                });
            }
            let publisher = prepare_output_dir(dirs, version, diag)?.with_fsync(options.fsync);
            // The dependency files read module names and paths only.
            let graph_view = Resolved {
                modules: metadata
                    .modules
                    .iter()
                    .map(|m| OutputModule {
                        modname: m.modname.clone(),
                        path: m.path.clone(),
                        ..OutputModule::default()
                    })
                    .collect(),
                dependencies,
                symbols: owners,
            };
            let (encoded, dep_digest) =
                publish_dep_and_encode_graph_files(output, graph_view, &publisher)?;
            Ok(Resolution {
                dependencies: Vec::new(),
                symbols: Vec::new(),
                output: Some((publisher, encoded, dep_digest)),
                dependency_digests,
            })
        },
        || {
            let context = output.context(&metadata);
            early_files
                .par_iter()
                .map(|&file| (file, encode_file(&context, file)))
                .collect::<Vec<_>>()
        },
    );
    let resolution = resolution?;
    let mut resolved = metadata;
    resolved.dependencies = resolution.dependencies;
    resolved.symbols = resolution.symbols;
    let context = output.context(&resolved);
    let dependency_digests = resolution.dependency_digests;
    let written = match resolution.output {
        None => write_to_stdout(&context).map(|()| None),
        Some((publisher, mut encoded, dep_digest)) => {
            encoded.extend(early_encoded);
            publish_in_order(&context, &publisher, encoded).map(|mut outputs| {
                outputs.insert(0, dep_digest);
                Some(outputs)
            })
        }
    };
    drop_in_background(resolved);
    written.map(|outputs| {
        outputs
            .filter(|_| digests)
            .map(|outputs| (outputs, dependency_digests))
    })
}

/// The output directory once `modules.dep` is published (with its digest), and the other
/// files that need the graph, encoded.
type PublishedDep = (Publisher, Vec<(OutputFile, EncodedFile)>, OutputDigest);

/// What resolving gives: with `-n`, the dependencies and symbol owners; otherwise the output
/// directory with `modules.dep` already published and the other files that need the graph
/// encoded (the graph itself is then freed).
struct Resolution {
    dependencies: Vec<Vec<usize>>,
    symbols: Vec<(Vec<u8>, usize)>,
    output: Option<PublishedDep>,
    /// Each module's direct dependencies digest (see [`delta::dependencies_digest`]), when
    /// digests are wanted.
    dependency_digests: Vec<Digest>,
}

/// What [`resolve_graph`] gives: each module's sorted transitive dependencies, the symbol
/// owners, and, when asked for, each module's direct dependencies digest.
type ResolvedGraph = (Vec<Vec<usize>>, Vec<(Vec<u8>, usize)>, Vec<Digest>);

/// Resolves symbols to owners and dependencies, printing the messages; with cycles, reports
/// them and fails.
fn resolve_graph(
    modules: &[DiscoveredModule],
    symbols: &[ModuleSymbols],
    kernel_symbols: Option<&[KernelSymbol]>,
    options: &ResolveOptions,
    digests: bool,
    diag: &Diag,
) -> Result<ResolvedGraph, Exit> {
    let mut messages = ResolveMessages::default();
    let graph = resolve(symbols, kernel_symbols, options, &mut messages);
    for (level, message) in messages.log {
        diag.log(level, &message);
    }
    if !messages.verbose_lines.is_empty() {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&messages.verbose_lines);
        let _ = stdout.flush();
    }
    let dep_sort_idx = match topological_index(&graph.deps) {
        TopoResult::Sorted(idx) => idx,
        TopoResult::Cycles(users) => {
            let names: Vec<&[u8]> = modules.iter().map(|m| m.modname.as_slice()).collect();
            let (reports, count) = report_cycles(&graph.deps, &users, &names);
            for r in reports {
                diag.error(bmsg!("Cycle detected: ", r));
            }
            diag.error(format!("Found {count} modules in dependency cycles!"));
            return Err(Exit(EXIT_FAILURE));
        }
    };
    let dependencies = all_sorted_dependencies(&graph.deps, &dep_sort_idx);
    let dependency_digests = match digests {
        true => graph
            .deps
            .iter()
            .map(|deps| delta::dependencies_digest(deps))
            .collect(),
        false => Vec::new(),
    };
    drop_in_background(graph.deps);
    Ok((dependencies, graph.symbols, dependency_digests))
}

/// Frees `value` on another thread. Freeing the run's hundreds of thousands of small
/// allocations takes several milliseconds that nothing waits for: the process usually exits
/// first, and a library caller gets the memory back shortly after.
fn drop_in_background<T: Send + 'static>(value: T) {
    if std::thread::Builder::new()
        .spawn(move || drop(value))
        .is_err()
    {
        // Could not start a thread: the value was dropped with the closure.
    }
}

/// Wall time per stage on stderr, when `DEPMOD_RS_TIMINGS` is set (for profiling; the
/// output of a run is unaffected).
struct StageTimer {
    last: Option<std::time::Instant>,
}

impl StageTimer {
    fn from_env() -> Self {
        StageTimer {
            last: std::env::var_os("DEPMOD_RS_TIMINGS").map(|_| std::time::Instant::now()),
        }
    }

    fn stage(&mut self, name: &str) {
        if let Some(last) = self.last {
            let now = std::time::Instant::now();
            eprintln!("timing: {name}: {:.1} ms", (now - last).as_secs_f64() * 1e3);
            self.last = Some(now);
        }
    }

    fn note(&self, text: &str) {
        if self.last.is_some() {
            eprintln!("timing: ({text})");
        }
    }
}

/// The kernel version (first positional, checked like kmod, or the running kernel's) and the
/// module files of file-list mode (the other positionals).
fn kernel_version_and_files(
    options: &Options,
    diag: &Diag,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), Exit> {
    let mut positionals = options.positionals.iter();
    let kversion = match positionals.next() {
        Some(arg) if is_version_number(arg) => arg.clone(),
        Some(arg) => {
            diag.error(bmsg!("Bad version passed ", arg));
            return Err(Exit(EXIT_FAILURE));
        }
        None => kernel_release().ok_or_else(|| {
            diag.fatal("uname() failed: No such file or directory");
            Exit(EXIT_FAILURE)
        })?,
    };
    Ok((kversion, positionals.cloned().collect()))
}

/// Build `dirname` and `outdirname` (§1.3).
fn directories(options: &Options, kversion: &[u8], diag: &Diag) -> Result<Directories, Exit> {
    let root = options
        .basedir
        .as_deref()
        .map(make_absolute)
        .unwrap_or_default();
    let out_root = options.outdir.as_deref().map(make_absolute);
    let moduledir: &[u8] = match (&options.moduledir, options.compat.has_moduledir()) {
        (Some(dir), true) => dir,
        _ => b"/lib/modules",
    };
    // The module directory is always relative to the root.
    let start = moduledir
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(moduledir.len());
    let moduledir = &moduledir[start..];
    let dirname = bmsg!(root, "/", moduledir, "/", kversion);
    if dirname.len() >= PATH_MAX {
        diag.error(bmsg!("Bad directory ", dirname, ": path too long"));
        return Err(Exit(EXIT_FAILURE));
    }
    let out_base = out_root.as_deref().unwrap_or(&root);
    let outdirname = bmsg!(out_base, "/", moduledir, "/", kversion);
    if outdirname.len() >= PATH_MAX {
        diag.error(bmsg!("Bad directory ", outdirname, ": path too long"));
        return Err(Exit(EXIT_FAILURE));
    }
    Ok(Directories {
        dirname,
        outdirname,
        has_outdir: out_root.is_some(),
    })
}

/// `-E`/`-F`: the kernel's own symbols (`-E` wins), and whether `-e` stays on.
fn load_kernel_symbols(
    options: &Options,
    diag: &Diag,
) -> Result<(Option<Vec<KernelSymbol>>, bool), Exit> {
    let source = match (&options.symvers, &options.filesyms) {
        (Some(file), _) => Some((file, true)),
        (None, Some(file)) => Some((file, false)),
        (None, None) => None,
    };
    let Some((file, is_symvers)) = source else {
        if options.errsyms {
            diag.warning("-e needs -E or -F");
        }
        return Ok((None, false));
    };
    let data = std::fs::read(OsStr::from_bytes(file)).map_err(|err| {
        diag.fatal(bmsg!("could not load ", file, ": ", strerror(&err)));
        Exit(EXIT_FAILURE)
    })?;
    let mut errors = Vec::new();
    let symbols = if is_symvers {
        parse_module_symvers(&data, file, options.symbol_prefix, &mut errors)
    } else {
        parse_system_map(&data, file, options.symbol_prefix, &mut errors)
    };
    for e in errors {
        diag.error(e);
    }
    Ok((Some(symbols), options.errsyms))
}

/// What discovery hands on: the modules in kmod's order, the listings to keep (with
/// `--cache`) and the configuration (all mode).
struct Discovered {
    modules: Vec<DiscoveredModule>,
    walk: WalkListings,
    config: Option<Config>,
}

/// All mode: read the configuration, walk the tree and order the modules. With `--cache`
/// (the cache and the run's start), every module is `stat`ed, unchanged directories are
/// listed from the cache, and when no directory changed since the last walk its outcome is
/// taken again without walking (see [`crate::kept_walk`]); the listings to keep come back
/// with the rules they were made under.
fn discover_tree(
    options: &Options,
    kversion: &[u8],
    dirname: &[u8],
    cache: Option<(&mut ModuleCache, i128)>,
    timer: &mut StageTimer,
    diag: &Diag,
) -> Result<Discovered, Exit> {
    let config_paths: Vec<PathBuf> = if options.config.is_empty() {
        default_config_dirs(options.compat)
    } else {
        options.config.iter().map(|c| os_path(c)).collect()
    };
    let config = load_config(&config_paths, kversion, diag);
    let rules = RunInputs::new()
        .field(b"walk rules")
        .field(format!("{config:?}").as_bytes())
        .field(&[u8::from(options.gzip)])
        .finish();
    let started = cache.as_ref().map_or(0, |(_, started)| *started);
    let (cache, mut stored) = match cache {
        Some((cache, _)) => {
            let listings = cache.take_listings();
            (Some(&*cache), Some(listings))
        }
        None => (None, None),
    };
    // Debug messages of the walk are not replayed, so a verbose run walks.
    if let Some((known, cache)) = stored.as_mut().zip(cache).filter(|_| options.verbose == 0) {
        let found = take_kept_walk(options, dirname, &config, rules, started, known, cache);
        if let Some(found) = found {
            timer.stage("configuration and walk");
            timer.note(&format!(
                "last walk taken again, {} directory listings read",
                found.relisted
            ));
            let listings = stored.unwrap_or_default();
            return Ok(Discovered {
                modules: found.modules,
                walk: WalkListings {
                    listings,
                    changed: found.changed,
                },
                config: Some(config),
            });
        }
    }

    let printed_before = crate::diag::printed_count();
    let listing_cache = stored.as_ref().map(|known| ListingCache {
        known: (known.rules == rules).then_some(&known.dirs),
        started,
    });
    let mut search = discover::search(&config, dirname, options.gzip, listing_cache, diag)
        .map_err(|err| {
            diag.fatal(format!("could not search modules: {err}"));
            Exit(EXIT_FAILURE)
        })?;
    timer.stage("configuration and walk");
    timer.note(&format!(
        "{} directory listings kept, {} of them read",
        search.listings.len(),
        search.listings_read
    ));
    let (modules, order_file) = order_modules(search.registry, options.compat, dirname, diag)?;
    timer.stage("order");
    let mut listings = Listings {
        rules,
        dirs: std::mem::take(&mut search.listings),
        walk: None,
    };
    if stored.is_some() && !search.unlisted && crate::diag::printed_count() == printed_before {
        let key = kept_walk_key(rules, dirname, options.compat, order_file.as_deref());
        listings.walk = Some(KeptWalk { key });
    }
    let changed = stored.as_ref() != Some(&listings);
    Ok(Discovered {
        modules,
        walk: WalkListings { listings, changed },
        config: Some(config),
    })
}

/// The key of a kept walk: everything besides the listings that the module list depends on.
fn kept_walk_key(
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

/// The last walk's outcome, if it still holds (see [`crate::kept_walk`]).
fn take_kept_walk(
    options: &Options,
    dirname: &[u8],
    config: &Config,
    rules: Digest,
    started: i128,
    known: &mut Listings,
    cache: &ModuleCache,
) -> Option<kept_walk::Rewalk> {
    if known.rules != rules || known.walk.is_none() {
        return None;
    }
    let order_path = bmsg!(dirname, "/modules.order");
    let order_file = memo::read_optional(Path::new(OsStr::from_bytes(&order_path))).ok()?;
    let inputs = kept_walk::RewalkInputs {
        config,
        gzip: options.gzip,
        dirname,
        key: kept_walk_key(rules, dirname, options.compat, order_file.as_deref()),
        started,
    };
    kept_walk::rewalk(&inputs, known, cache)
}

/// kmod's module array: hash order, then `modules.order` (§4).
/// Returns the modules and the bytes of `modules.order` when it was read.
fn order_modules(
    registry: Registry,
    version: KmodVersion,
    dirname: &[u8],
    diag: &Diag,
) -> Result<(Vec<DiscoveredModule>, Option<Vec<u8>>), Exit> {
    let mut modules = registry.into_modules();
    sort_hash_order(&mut modules, MODULE_BUCKETS, |m| &m.modname);
    if version.limits_module_count() && modules.len() >= 65535 {
        diag.fatal("could not build module array: Numerical result out of range");
        return Err(Exit(EXIT_FAILURE));
    }
    let mut messages = Messages::default();
    let order_file = read_input(dirname, "modules.order", &mut messages);
    messages.flush(diag);
    if let Some(data) = &order_file {
        match parse_modules_order(data) {
            OrderFile::Lines(lines) => {
                apply_modules_order(&mut modules, &lines, version, |m| m.uncrelpath.as_deref())
            }
            OrderFile::Corrupted { line } => diag.error(bmsg!(
                dirname,
                "/modules.order:",
                line.to_string(),
                " corrupted line misses '\\n'"
            )),
        }
    }
    Ok((modules, order_file))
}

impl LoadedModule {
    fn from_record(path: &[u8], record: ModuleRecord) -> Self {
        LoadedModule {
            symbols: ModuleSymbols {
                path: path.to_vec(),
                exports: record.exports,
                imports: record.imports,
            },
            aliases: record.aliases,
            softdeps: record.softdeps,
            weakdeps: record.weakdeps,
            load_error: None,
            decoder_messages: Vec::new(),
        }
    }

    fn record(&self) -> RecordRef<'_> {
        RecordRef {
            exports: &self.symbols.exports,
            imports: &self.symbols.imports,
            aliases: &self.aliases,
            softdeps: &self.softdeps,
            weakdeps: &self.weakdeps,
        }
    }
}

/// Whether a module's name says it is compressed (decoding dominates its read time).
fn looks_compressed(path: &[u8]) -> bool {
    [&b".xz"[..], b".zst", b".gz"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The order in which modules are handed to the reading threads: largest compressed files
/// first, so that no big decode starts last and leaves the other cores idle. Uncompressed
/// trees keep module order (their reads are short and even; a `stat` each would cost more
/// than it saves).
fn read_schedule(modules: &[DiscoveredModule]) -> Vec<usize> {
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

/// Reads every module in parallel; reports failures in module order.
fn read_modules(
    modules: &[DiscoveredModule],
    version: KmodVersion,
    gzip: bool,
    diag: &Diag,
) -> (Vec<ModuleSymbols>, Vec<LoadedModule>) {
    let mut slots: Vec<Option<LoadedModule>> = (0..modules.len()).map(|_| None).collect();
    let results: Vec<(usize, LoadedModule)> = read_schedule(modules)
        .into_par_iter()
        .map(|i| (i, load_module(&modules[i], version, gzip)))
        .collect();
    for (i, result) in results {
        slots[i] = Some(result);
    }
    let loaded: Vec<LoadedModule> = slots.into_iter().flatten().collect();
    report_load_errors(modules, &loaded, diag);
    loaded
        .into_iter()
        .map(|mut l| (std::mem::take(&mut l.symbols), l))
        .unzip()
}

/// Prints, in module order, kmod's messages for the modules that could not be read.
fn report_load_errors(modules: &[DiscoveredModule], loaded: &[LoadedModule], diag: &Diag) {
    for (module, data) in modules.iter().zip(loaded) {
        if let Some(err) = &data.load_error {
            let (before, after) = data
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
                err
            ));
            for message in after {
                diag.error(message);
            }
        }
    }
}

/// Create (kmod 31+, or with `-o`) and check the output directory.
fn prepare_output_dir(
    dirs: &Directories,
    version: KmodVersion,
    diag: &Diag,
) -> Result<Publisher, Exit> {
    let dir = os_path(&dirs.outdirname);
    if version.has_outdir() || dirs.has_outdir {
        if let Err(err) = create_dir_all(&dir) {
            diag.fatal(bmsg!(
                "could not create directory ",
                dirs.outdirname,
                ": ",
                strerror(&err)
            ));
            return Err(Exit(EXIT_FAILURE));
        }
    }
    if let Err(err) = std::fs::read_dir(&dir) {
        diag.fatal(bmsg!(
            "could not open directory ",
            dirs.outdirname,
            ": ",
            strerror(&err)
        ));
        return Err(Exit(EXIT_FAILURE));
    }
    Ok(Publisher::new(dir))
}

/// The settings every encoder run shares.
#[derive(Clone, Copy)]
struct OutputSettings<'a> {
    version: KmodVersion,
    dirname: &'a [u8],
    warn: bool,
    diag: &'a Diag,
    /// Whether published files' lengths and digests are wanted (for the run memo).
    digests: bool,
}

impl<'a> OutputSettings<'a> {
    /// A context for encoding from `resolved`.
    fn context(self, resolved: &'a Resolved) -> OutputContext<'a> {
        OutputContext {
            resolved,
            version: self.version,
            dirname: self.dirname,
            warn: self.warn,
            diag: self.diag,
            digests: self.digests,
        }
    }
}

/// Everything an encoder run needs.
struct OutputContext<'a> {
    resolved: &'a Resolved,
    version: KmodVersion,
    dirname: &'a [u8],
    warn: bool,
    diag: &'a Diag,
    /// Whether published files' lengths and digests are wanted (for the run memo).
    digests: bool,
}

/// The result of encoding one file.
enum Encoded {
    Bytes(Vec<u8>),
    /// An index, written to its file in chunks when it is published.
    Index(PreparedIndex),
    /// `modules.dep`, written in chunks from the context's graph when it is published.
    ModulesDep,
    /// A FATAL index error: stop with exit 1.
    Fatal(Vec<u8>),
}

/// kmod's FATAL text for an index error, without the final newline the logger adds.
fn fatal_text(err: &crate::index::IndexError) -> Vec<u8> {
    let mut message = err.kmod_message();
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    message
}

/// A built index laid out for publishing, or its FATAL error.
fn prepared_index(built: Result<IndexBuilder, IndexError>, order: NodeOrder) -> Encoded {
    match built.and_then(|builder| builder.prepare(order)) {
        Ok(index) => Encoded::Index(index),
        Err(err) => Encoded::Fatal(fatal_text(&err)),
    }
}

/// An index encoded in one go, or its FATAL error.
fn bulk(encoded: Result<Vec<u8>, IndexError>) -> Encoded {
    match encoded {
        Ok(bytes) => Encoded::Bytes(bytes),
        Err(err) => Encoded::Fatal(fatal_text(&err)),
    }
}

/// Encodes `modules.dep.bin` from its entries, made beforehand.
fn encode_dep_bin(ctx: &OutputContext<'_>, entries: Vec<binout::IndexEntry>) -> EncodedFile {
    let mut messages = Messages::default();
    let mut warnings = Vec::new();
    let built = build_index(entries, DuplicateKind::Deps, ctx.warn, &mut warnings);
    let encoded = prepared_index(built, ctx.version.node_order());
    for w in warnings {
        messages.warning(w);
    }
    (encoded, messages)
}

/// Encodes one file; its diagnostics are returned, not printed.
fn encode_file(ctx: &OutputContext<'_>, file: OutputFile) -> EncodedFile {
    let mut messages = Messages::default();
    let encoded = encode_file_into(ctx, file, &mut messages);
    (encoded, messages)
}

fn encode_file_into(ctx: &OutputContext<'_>, file: OutputFile, diag: &mut Messages) -> Encoded {
    let r = ctx.resolved;
    let order = ctx.version.node_order();
    let mut warnings = Vec::new();
    let prepared = |built| prepared_index(built, order);
    // Without -w no duplicate is reported: the trie is built in one go from its entries.
    let index = |entries: Vec<binout::IndexEntry>, kind, warnings: &mut Vec<Vec<u8>>| {
        if ctx.warn {
            prepared(build_index(entries, kind, ctx.warn, warnings))
        } else {
            bulk(binout::encode_entries_bulk(&entries, order))
        }
    };
    let encoded = match file {
        OutputFile::Dep => Encoded::Bytes(text::modules_dep(r)),
        OutputFile::DepBin => index(binout::dep_entries(r), DuplicateKind::Deps, &mut warnings),
        OutputFile::Alias => Encoded::Bytes(text::modules_alias(r)),
        OutputFile::AliasBin => {
            let steps = binout::alias_steps(r);
            if ctx.warn {
                prepared(build_index_steps(
                    &steps,
                    DuplicateKind::Alias,
                    ctx.warn,
                    &mut warnings,
                ))
            } else {
                bulk(binout::encode_steps_bulk(&steps, order, &mut warnings))
            }
        }
        OutputFile::Softdep => Encoded::Bytes(text::modules_softdep(r)),
        OutputFile::Weakdep => Encoded::Bytes(text::modules_weakdep(r)),
        OutputFile::Symbols => Encoded::Bytes(text::modules_symbols(r)),
        OutputFile::SymbolsBin => index(
            binout::symbol_entries(r),
            DuplicateKind::Syms,
            &mut warnings,
        ),
        OutputFile::BuiltinBin => match read_input(ctx.dirname, "modules.builtin", diag) {
            None => Encoded::Bytes(Vec::new()),
            Some(data) => {
                let mut diagnostics = Vec::new();
                let keys = parse_modules_builtin(&data, &mut diagnostics);
                emit_builtin_diagnostics(diagnostics, diag);
                index(
                    binout::builtin_entries(&keys),
                    DuplicateKind::Silent,
                    &mut warnings,
                )
            }
        },
        OutputFile::BuiltinAliasBin => {
            match read_input(ctx.dirname, "modules.builtin.modinfo", diag) {
                None => Encoded::Bytes(Vec::new()),
                Some(data) => {
                    let mut diagnostics = Vec::new();
                    let aliases = parse_builtin_modinfo(&data, &mut diagnostics);
                    emit_builtin_diagnostics(diagnostics, diag);
                    index(
                        binout::builtin_alias_entries(&aliases),
                        DuplicateKind::Silent,
                        &mut warnings,
                    )
                }
            }
        }
        OutputFile::Devname => {
            let (bytes, errors) = text::modules_devname(r);
            for e in errors {
                diag.error(e);
            }
            Encoded::Bytes(bytes)
        }
    };
    for w in warnings {
        diag.warning(w);
    }
    encoded
}

/// The encoding of one file and its diagnostics.
type EncodedFile = (Encoded, Messages);

/// Publishes `modules.dep` (first in every release's sequence), then encodes the other files
/// that need the dependency graph, in parallel.
///
/// Memory: on deep trees the dependency lines are by far the largest data, and both
/// `modules.dep` and `modules.dep.bin` carry them. So `modules.dep` is written and freed
/// first, then the lines of `modules.dep.bin` are made and the dependency lists freed before
/// its trie is built; the trie is written to its file in chunks when published.
#[allow(clippy::type_complexity)]
fn publish_dep_and_encode_graph_files(
    settings: OutputSettings<'_>,
    mut graph: Resolved,
    publisher: &Publisher,
) -> Result<(Vec<(OutputFile, EncodedFile)>, OutputDigest), Exit> {
    let ctx = settings.context(&graph);
    let dep_digest = publish_encoded(
        &ctx,
        publisher,
        OutputFile::Dep,
        (Encoded::ModulesDep, Messages::default()),
    )?;
    let dep_entries = binout::dep_entries(&graph);
    drop_in_background(std::mem::take(&mut graph.dependencies));
    let ctx = settings.context(&graph);
    let files: Vec<OutputFile> = OutputFile::sequence(settings.version)
        .into_iter()
        .filter(|&f| f.needs_resolution() && !matches!(f, OutputFile::Dep | OutputFile::DepBin))
        .collect();
    let (dep_bin, mut encoded) = rayon::join(
        || encode_dep_bin(&ctx, dep_entries),
        || {
            files
                .par_iter()
                .map(|&file| (file, encode_file(&ctx, file)))
                .collect::<Vec<_>>()
        },
    );
    encoded.push((OutputFile::DepBin, dep_bin));
    drop_in_background(graph);
    Ok((encoded, dep_digest))
}

/// Publishes the `encoded` files in kmod's order, printing each file's diagnostics just
/// before it is published and stopping at the first fatal one. Files of the sequence that
/// are not in `encoded` (`modules.dep`) were published already.
///
/// Returns the length and digest of each file written (all zero unless the context asks for
/// digests).
fn publish_in_order(
    ctx: &OutputContext<'_>,
    publisher: &Publisher,
    mut encoded: Vec<(OutputFile, EncodedFile)>,
) -> Result<Vec<OutputDigest>, Exit> {
    let mut written = Vec::new();
    for file in OutputFile::sequence(ctx.version) {
        if let Some(at) = encoded.iter().position(|(done, _)| *done == file) {
            let (_, result) = encoded.swap_remove(at);
            written.push(publish_encoded(ctx, publisher, file, result)?);
        }
    }
    publisher.finish().map_err(|err| {
        ctx.diag.error(err.message());
        Exit(EXIT_FAILURE)
    })?;
    Ok(written)
}

/// Publishes one encoded file: creates its temporary file, prints the file's diagnostics,
/// then writes and renames it (or stops at its fatal error).
///
/// As in kmod, the temporary file comes first: if it cannot be created, the file is skipped
/// without the messages that building it prints.
fn publish_encoded(
    ctx: &OutputContext<'_>,
    publisher: &Publisher,
    file: OutputFile,
    (encoded, messages): EncodedFile,
) -> Result<OutputDigest, Exit> {
    let mut written = OutputDigest {
        name: file.name().to_string(),
        size: 0,
        digest: 0,
    };
    let pending = match publisher.begin(file.name()) {
        Ok(pending) => pending,
        Err(err) => {
            ctx.diag.error(err.message());
            return Ok(written);
        }
    };
    messages.flush(ctx.diag);
    // Writes through a digest when the context asks for one.
    let mut write = |file: &mut std::fs::File,
                     emit: &dyn Fn(&mut dyn Write) -> std::io::Result<()>|
     -> std::io::Result<()> {
        if !ctx.digests {
            return emit(file);
        }
        (written.size, written.digest) = DigestWriter::digest_of(file, |out| emit(out))?;
        Ok(())
    };
    let committed = match encoded {
        Encoded::Bytes(bytes) => {
            pending.commit_with(|file| write(file, &|out| out.write_all(&bytes)))
        }
        Encoded::Index(index) => {
            pending.commit_with(|file| write(file, &|out| index.write_to(out)))
        }
        Encoded::ModulesDep => pending
            .commit_with(|file| write(file, &|out| text::write_modules_dep(ctx.resolved, out))),
        Encoded::Fatal(message) => {
            ctx.diag.fatal(message);
            return Err(Exit(EXIT_FAILURE));
        }
    };
    match committed {
        Ok(()) => Ok(written),
        Err(err @ PublishError::CreateTemp(_)) => {
            ctx.diag.error(err.message());
            Ok(written)
        }
        Err(err @ (PublishError::Write(_) | PublishError::Sync(_))) => {
            ctx.diag.error(err.message());
            Err(Exit(EXIT_FAILURE))
        }
        Err(err @ PublishError::Rename(_)) => {
            ctx.diag.fatal(err.message());
            Err(Exit(EXIT_FAILURE))
        }
    }
}

fn write_to_stdout(ctx: &OutputContext<'_>) -> Result<(), Exit> {
    let mut out = Vec::new();
    for file in OutputFile::sequence(ctx.version) {
        if file.is_index() {
            continue;
        }
        let (encoded, messages) = encode_file(ctx, file);
        messages.flush(ctx.diag);
        match encoded {
            Encoded::Bytes(bytes) => out.extend_from_slice(&bytes),
            Encoded::Index(_) => {}
            Encoded::ModulesDep => out.extend_from_slice(&text::modules_dep(ctx.resolved)),
            Encoded::Fatal(message) => {
                ctx.diag.fatal(message);
                return Err(Exit(EXIT_FAILURE));
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
        return Err(Exit(EXIT_FAILURE));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_check() {
        assert!(is_version_number(b"6.1.0-13-amd64"));
        assert!(is_version_number(b"4.4"));
        assert!(is_version_number(b" 4.-4"));
        assert!(!is_version_number(b"abc"));
        assert!(!is_version_number(b"4"));
        assert!(!is_version_number(b"4."));
        assert!(!is_version_number(b"4.x"));
    }
}
