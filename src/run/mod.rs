//! The depmod run: a short pipeline of stages in kmod's order, from parsed options to
//! published files.
//!
//! ```text
//! plan ─► quick check (-A) ─► discover ─► read (parallel) ─► resolve ─► encode ─► publish
//! ```
//!
//! Each stage lives in a file of its own and passes plain values forward: `plan` makes a
//! `RunPlan` (directories, kernel version, mode) and reads the kernel's symbols, `quick`
//! checks `-A`, `discover` reads the configuration, walks the tree and orders the modules,
//! `read` reads every module into a [`ModuleRecord`], and [`write_index_files`] takes the
//! resulting [`ModuleGraph`] through resolve, encode and publish. A program that knows the
//! graph without reading module files calls that last entry point itself.
//!
//! With `--cache` (or the configured cache of a live-system run), an `Incremental` (see
//! `docs/architecture.md`) is called at a few named points: it loads the cache, offers the
//! walk its last listings (or the last walk's outcome), reads only the changed modules,
//! keeps the index files when no input changed, and stores the cache at the end. A run that
//! writes holds a lock on its output directory from before the tree is read until its files
//! are published (`locks`), so overlapping runs take turns.

mod allocator;
mod background;
mod discover;
mod encode;
mod handoff;
mod in_order;
mod input;
mod locks;
mod plan;
mod publish;
mod quick;
mod read;
mod resolve;
mod threads;
mod timer;
mod write;

pub use allocator::tune_allocator_for_one_run;
pub(crate) use background::drop_in_background;
pub use background::{leave_memory_to_exit, wait_for_closes};
pub(crate) use discover::Walked;
pub(crate) use input::os_path;
pub use plan::is_version_number;
pub(crate) use plan::{Directories, KernelSymbols, Mode, RunPlan};
pub(crate) use read::ReadModule;
pub(crate) use read::{read_all, read_schedule, report_failures, ModuleReader};
pub use threads::start_thread_pool;
pub(crate) use timer::StageTimer;
pub use write::{write_index_files, WriteOptions, WrittenIndexes};

use crate::cli::Options;
use crate::config::Config;
use crate::diag::Diag;
use crate::discover::DiscoveredModule;
use crate::incremental::Incremental;
use crate::progress::Progress;
use crate::record::{ModuleGraph, ModuleRecord};

/// Exit status for success.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status for every failure kmod reports.
pub const EXIT_FAILURE: i32 = 1;

/// A stage failed; its messages were printed. kmod then exits with [`EXIT_FAILURE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("depmod failed; its messages were printed")]
pub struct Failed;

/// Run depmod with `options`; returns the exit status. Diagnostics go to stderr, `-n` and
/// verbose output to stdout.
///
/// ```
/// use depmod_rs::cli::Options;
/// # use testkit::synth::SynthModule;
/// # let root = tempfile::tempdir()?;
/// # let dir = root.path().join("lib/modules/6.1.0-demo/kernel");
/// # std::fs::create_dir_all(&dir)?;
/// # let core = SynthModule::x86_64().with_export("core_register", None);
/// # let user = SynthModule::x86_64().with_import("core_register", false, None);
/// # std::fs::write(dir.join("core.ko"), core.to_elf())?;
/// # std::fs::write(dir.join("user.ko"), user.to_elf())?;
/// # let config = root.path().join("depmod.d");
/// # std::fs::create_dir(&config)?;
/// // `depmod -C ROOT/depmod.d -b ROOT 6.1.0-demo`
/// let options = Options {
///     config: vec![config.to_str().unwrap().into()],
///     basedir: Some(root.path().to_str().unwrap().into()),
///     positionals: vec![b"6.1.0-demo".to_vec()],
///     ..Options::default()
/// };
/// assert_eq!(depmod_rs::run::run(&options), depmod_rs::run::EXIT_SUCCESS);
/// let dep = std::fs::read_to_string(root.path().join("lib/modules/6.1.0-demo/modules.dep"))?;
/// assert!(dep.contains("kernel/user.ko: kernel/core.ko\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(options: &Options) -> i32 {
    let diag = Diag::new(options.verbose);
    match run_with(options, &diag) {
        Ok(()) => EXIT_SUCCESS,
        Err(Failed) => EXIT_FAILURE,
    }
}

fn run_with(options: &Options, diag: &Diag) -> Result<(), Failed> {
    let timer = StageTimer::from_env();
    let plan = plan::plan(options, diag)?;
    // Held until the files are published (the end of this function), from before the tree
    // is read: a run that starts while another writes here reads the tree after it.
    let _output_lock = (!options.dry_run).then(|| locks::lock_output_dir(&plan.dirs, diag));
    if options.quick
        && (options.dry_run || quick::depfile_up_to_date(&plan.dirs.dirname, options.gzip, diag))
    {
        return Ok(());
    }
    let cache = plan::cache_file(options, &plan, diag);
    let _cache_lock = match (&cache, options.dry_run) {
        (Some(file), false) => locks::lock_cache_file(file, diag),
        _ => None,
    };
    let mut incremental = cache.map(|file| Incremental::open(file, options.compat, options.gzip));
    timer.stage("start, load cache");
    let kernel = plan::kernel_symbols(options, diag)?;
    let Discovered { modules, config } =
        discover_modules(options, &plan, incremental.as_mut(), &timer, diag)?;
    let write_options = write_options(options, &plan, &kernel, incremental.is_some());

    let progress = Progress::start("reading modules", modules.len(), options.verbose);
    let reader = ModuleReader::new(&plan.dirs.dirname, options.compat, options.gzip);
    if let Some(mut kept) = incremental.take() {
        kept.examine(&modules, &reader, diag);
        timer.stage("check cache");
        let (dirs, config) = (&plan.dirs, config.as_ref());
        if kept.keep_index_files(
            &write_options,
            dirs,
            config,
            &kernel,
            &modules,
            &timer,
            diag,
        ) {
            timer.stage("keep index files");
            drop_in_background((modules, kept));
            return Ok(());
        }
        incremental = Some(kept);
    }
    let records = match incremental.as_mut() {
        Some(incremental) => incremental.read_modules(&modules, &reader, diag),
        None => read::read_all(&modules, &reader, diag),
    };
    drop(progress);
    timer.stage("read modules");
    timer.note(|| {
        let whole = crate::module::uncompressed_whole_reads();
        format!("{whole} uncompressed modules read whole")
    });

    let written = match incremental {
        None => {
            write::write_index_files(module_graph(modules, records, kernel), &write_options, diag)
        }
        Some(mut incremental) => {
            if !options.dry_run {
                incremental.store_entries(&modules);
            }
            let graph = module_graph(modules.clone(), records, kernel);
            let written = write::write_index_files(graph, &write_options, diag);
            incremental.store_memo(&written, &modules, &plan.dirs.dirname, diag);
            drop_in_background(modules);
            written
        }
    };
    timer.stage("resolve, encode and write");
    written.map(|_| ())
}

/// What the discover stage gives.
struct Discovered {
    /// The modules, in kmod's order.
    modules: Vec<DiscoveredModule>,
    /// The configuration (all mode).
    config: Option<Config>,
}

/// The discover stage: the configuration (all mode), then the modules in kmod's order —
/// from the last walk when the incremental mode can take it again, else from a walk.
fn discover_modules(
    options: &Options,
    plan: &RunPlan,
    mut incremental: Option<&mut Incremental>,
    timer: &StageTimer,
    diag: &Diag,
) -> Result<Discovered, Failed> {
    let dirname = &plan.dirs.dirname;
    let files = match &plan.mode {
        Mode::All => None,
        Mode::Files(files) => Some(files),
    };
    if let Some(files) = files {
        let modules = discover::list_files(files, dirname, options.compat, diag)?;
        timer.stage("file list and order");
        if let Some(incremental) = incremental {
            incremental.files_listed();
        }
        let config = None;
        return Ok(Discovered { modules, config });
    }
    let config = discover::configuration(options, &plan.kversion, diag);
    if let Some(incremental) = incremental.as_deref_mut() {
        if let Some(modules) = incremental.kept_walk(&config, dirname, timer, diag) {
            timer.stage("configuration, walk and order");
            let config = Some(config);
            return Ok(Discovered { modules, config });
        }
    }
    let reuse = incremental
        .as_deref()
        .and_then(|incremental| incremental.reusable_listings(&config));
    let discover::WalkedTree { modules, walked } =
        discover::walk_tree(options, &config, dirname, reuse, diag)?;
    timer.stage("configuration, walk and order");
    timer.note(|| {
        let (kept, read) = (walked.listings.len(), walked.listings_read);
        format!("{kept} directory listings kept, {read} of them read")
    });
    if let Some(incremental) = incremental {
        incremental.walked(&config, dirname, walked);
    }
    let config = Some(config);
    Ok(Discovered { modules, config })
}

/// How the run writes its files.
fn write_options(
    options: &Options,
    plan: &RunPlan,
    kernel: &KernelSymbols,
    incremental: bool,
) -> WriteOptions {
    let version = options.compat;
    WriteOptions {
        version,
        module_dir: plan.dirs.dirname.clone(),
        output_dir: plan.dirs.outdirname.clone(),
        create_output_dir: version.has_outdir() || plan.dirs.has_outdir,
        dry_run: options.dry_run,
        warn: options.warn,
        symbol_prefix: options.symbol_prefix,
        check_crcs: kernel.with_crcs,
        print_unknown: kernel.print_unknown,
        fsync: options.fsync,
        file_digests: incremental,
        direct_dependencies: incremental,
    }
}

/// The module graph of the run: each module with its record, in kmod's order.
fn module_graph(
    modules: Vec<DiscoveredModule>,
    records: Vec<ModuleRecord>,
    kernel: KernelSymbols,
) -> ModuleGraph {
    let modules = modules
        .into_iter()
        .zip(records)
        .map(|(module, record)| module.into_graph_module(record))
        .collect();
    ModuleGraph {
        modules,
        kernel_symbols: kernel.symbols,
    }
}
