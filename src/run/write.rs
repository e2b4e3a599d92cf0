//! From a module graph to every index file: resolve, encode, publish.
//!
//! This is the entry point for a caller that knows the module graph without reading module
//! files (a build system), and the second half of every depmod run.
//!
//! Two chains run side by side. One resolves the symbols, publishes `modules.dep`, encodes
//! `modules.symbols` and `modules.dep.bin`, then the small files that need no resolution.
//! The other encodes the files made of the aliases meanwhile (`modules.alias`,
//! `modules.devname`, `modules.alias.bin`). `modules.symbols.bin` goes to whichever chain is
//! free for it first (see [`Handoff`]). Files are written under their temporary names when
//! the output directory exists already, and renamed into place in kmod's order, each with
//! its diagnostics, so stderr and the directory are as if all of it ran in sequence. The
//! files they replace are freed on threads of their own.

use super::background::drop_in_background;
use super::encode::{encode_dep_bin, encode_file, EncodeSettings, Encoded, EncodedFile};
use super::handoff::Handoff;
use super::in_order::InOrder;
use super::input::os_path;
use super::publish::{can_write_early, prepare_output_dir, stage_file, PublishSettings};
use super::resolve::{resolve_graph, ResolvedGraph};
use super::Failed;
use crate::compat::KmodVersion;
use crate::diag::Diag;
use crate::graph::{OwnedSymbols, ResolveOptions, NO_SYMBOLS};
use crate::output::bin as binout;
use crate::output::{text, OutputFile, Resolved};
use crate::publish::{Publisher, WrittenFile};
use crate::record::{GraphModule, ModuleGraph, ModuleRecord};

/// How [`write_index_files`] writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The kmod release whose files are written (`--compat`).
    pub version: KmodVersion,
    /// The module directory, where `modules.builtin` and `modules.builtin.modinfo` are read.
    pub module_dir: Vec<u8>,
    /// Where the files are written.
    pub output_dir: Vec<u8>,
    /// Whether a missing output directory is created (kmod 31 and later, or `-o`).
    pub create_output_dir: bool,
    /// `-n`: print the text files on stdout instead of writing any file.
    pub dry_run: bool,
    /// `-w`: warn about duplicate index entries.
    pub warn: bool,
    /// `-P`: a leading character symbol names carry.
    pub symbol_prefix: Option<u8>,
    /// `-E`: the kernel symbols carry CRCs, to compare with the imports'.
    pub check_crcs: bool,
    /// `-e`: warn about unknown symbols and CRC mismatches.
    pub print_unknown: bool,
    /// `--fsync`: flush each file before it replaces the old one.
    pub fsync: bool,
    /// Whether each written file's digest is wanted ([`WrittenFile::digest`]).
    pub file_digests: bool,
    /// Whether each module's direct dependencies are wanted
    /// ([`WrittenIndexes::direct_dependencies`]).
    pub direct_dependencies: bool,
}

/// What [`write_index_files`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenIndexes {
    /// Every file written, in the order written (none with `dry_run`).
    pub files: Vec<WrittenFile>,
    /// Each module's direct dependencies in the order of their first import, when asked
    /// for.
    pub direct_dependencies: Option<Vec<Vec<usize>>>,
}

/// Resolves `graph` and writes every index file kmod writes for it, byte for byte, with
/// kmod's messages on stderr through `diag` (its verbosity is `-v`'s).
pub fn write_index_files(
    graph: ModuleGraph,
    options: &WriteOptions,
    diag: &Diag,
) -> Result<WrittenIndexes, Failed> {
    let ModuleGraph {
        modules: mut owned,
        kernel_symbols,
    } = graph;
    // Exports and imports are needed only to resolve: kept apart, they are freed then.
    let symbols: Vec<ModuleRecord> = owned
        .iter_mut()
        .map(|module| ModuleRecord {
            exports: std::mem::take(&mut module.record.exports),
            imports: std::mem::take(&mut module.record.imports),
            ..ModuleRecord::default()
        })
        .collect();
    let resolve_options = ResolveOptions {
        symbol_prefix: options.symbol_prefix,
        check_symvers: options.check_crcs,
        print_unknown: options.print_unknown,
        verbose: diag.verbosity() > 0,
        debug: diag.verbosity() >= 3,
    };
    let encode = EncodeSettings {
        version: options.version,
        dirname: &options.module_dir,
        warn: options.warn,
    };
    let publish = PublishSettings {
        diag,
        digests: options.file_digests,
    };
    // The two chains of the module comment. The symbol trie following the alias files on
    // one thread is built in the memory the alias trie has just freed, not in memory the
    // kernel must first supply: on bookworm-amd64 modules.symbols.bin's trie took 2.2 ms
    // there and 3.5-4.3 ms (about 960 page faults) on the resolving thread. modules.devname
    // reads the aliases too: right after modules.alias has read them, on the same core,
    // rather than last on the resolving chain. Every release writes all three.
    const ALIAS_CHAIN: [OutputFile; 3] =
        [OutputFile::Alias, OutputFile::Devname, OutputFile::AliasBin];
    let (alias_files, small_files): (Vec<OutputFile>, Vec<OutputFile>) = match options.dry_run {
        true => (Vec::new(), Vec::new()),
        false => (
            ALIAS_CHAIN.to_vec(),
            OutputFile::sequence(options.version)
                .into_iter()
                .filter(|f| !f.needs_resolution() && !ALIAS_CHAIN.contains(f))
                .collect(),
        ),
    };
    let modules = &owned[..];
    let unresolved = Resolved {
        modules,
        dependencies: &[],
        symbols: &NO_SYMBOLS,
    };
    let publisher = Publisher::new(os_path(&options.output_dir)).with_fsync(options.fsync);
    let stage_early = !options.dry_run && can_write_early(&publisher, options.version);
    let in_order = InOrder::new(publish, &publisher, OutputFile::sequence(options.version));
    let stage = |file: OutputFile, encode_file: Encoder<'_>| {
        in_order.offer(stage_file(
            publish,
            &publisher,
            file,
            stage_early,
            encode_file,
        ))
    };
    let resolved_symbols = Handoff::new();
    let (resolution, ()) = rayon::join(
        || -> Result<Resolution, Failed> {
            let resolved = resolve_graph(
                modules,
                &symbols,
                kernel_symbols.as_deref(),
                &resolve_options,
                diag,
            );
            drop_in_background(symbols);
            let mut resolved = resolved?;
            let direct = std::mem::take(&mut resolved.direct);
            let direct = match options.direct_dependencies {
                true => Some(direct),
                false => {
                    drop_in_background(direct);
                    None
                }
            };
            if options.dry_run {
                let rest = Rest::ToPrint(resolved);
                return Ok(Resolution { rest, direct });
            }
            prepare_output_dir(&options.output_dir, options.create_output_dir, diag)?;
            publish_dependency_files(
                encode,
                modules,
                resolved,
                &in_order,
                &resolved_symbols,
                &stage,
            )?;
            for &file in &small_files {
                stage(file, Box::new(|| encode_file(encode, &unresolved, file)));
            }
            if let Some(symbols) = resolved_symbols.take_back() {
                stage_symbol_trie(encode, modules, symbols, &stage);
            }
            let rest = Rest::Published;
            Ok(Resolution { rest, direct })
        },
        || {
            for &file in &alias_files {
                stage(file, Box::new(|| encode_file(encode, &unresolved, file)));
            }
            if let Some(symbols) = resolved_symbols.take_or_leave() {
                stage_symbol_trie(encode, modules, symbols, &stage);
            }
        },
    );
    let Resolution { rest, direct } = resolution?;
    let files = match rest {
        Rest::Published => {
            let files = in_order.finish()?;
            publisher.finish().map_err(|err| {
                diag.error(err.message());
                Failed
            })?;
            files
        }
        Rest::ToPrint(graph) => {
            let resolved = Resolved {
                modules,
                dependencies: &graph.dependencies,
                symbols: &graph.symbols,
            };
            write_to_stdout(encode, &resolved, diag)?;
            drop_in_background(graph);
            Vec::new()
        }
    };
    drop_in_background(owned);
    Ok(WrittenIndexes {
        files,
        direct_dependencies: direct,
    })
}

/// What the resolving side gives: what is left to do, and each module's direct dependencies
/// when they are wanted.
struct Resolution {
    rest: Rest,
    direct: Option<Vec<Vec<usize>>>,
}

/// What is left to do once resolved.
enum Rest {
    /// `-n`: nothing was written; print from the graph.
    ToPrint(ResolvedGraph),
    /// Every file was handed to the [`InOrder`] (which has published those it could).
    Published,
}

/// What encodes one file, once.
type Encoder<'a> = Box<dyn FnOnce() -> EncodedFile + 'a>;

/// Stages a file (see [`stage_file`]) with the given encoder and offers it for publishing.
type Stage<'a> = dyn Fn(OutputFile, Encoder<'_>) + Sync + 'a;

/// Publishes `modules.dep` (first in every release's sequence), then encodes
/// `modules.dep.bin` and with `stage` writes it under its temporary name; it goes to
/// `in_order` too, which publishes it in its turn. The resolved symbols go to `symbols_to`, for
/// the chain that encoded the alias files to encode the symbol files; if that chain has
/// finished already, they are encoded here, beside `modules.dep.bin`.
///
/// Memory: on deep trees the dependency lines are by far the largest data, and both
/// `modules.dep` and `modules.dep.bin` carry them. So the lines are made once, the
/// dependency lists freed, and both files written from the same lines: `modules.dep` in
/// chunks, then the trie of `modules.dep.bin`, which for long lines is written to its file
/// in chunks when published (see [`encode_dep_bin`]).
fn publish_dependency_files(
    encode: EncodeSettings<'_>,
    modules: &[GraphModule],
    resolved: ResolvedGraph,
    in_order: &InOrder<'_, '_>,
    symbols_to: &Handoff<OwnedSymbols>,
    stage: &Stage<'_>,
) -> Result<(), Failed> {
    let ResolvedGraph {
        dependencies,
        symbols,
        ..
    } = resolved;
    let graph = Resolved {
        modules,
        dependencies: &dependencies,
        symbols: &NO_SYMBOLS,
    };
    let dep_entries = binout::dep_entries(modules, &graph);
    drop_in_background(dependencies);
    let lines = || dep_entries.iter().map(|entry| &entry.value[..]);
    in_order.publish_next(OutputFile::Dep, |out| text::write_dep_lines(lines(), out))?;
    // modules.symbols is cheap: written here, while the symbols are fresh in this core's
    // cache. Its trie goes to whichever chain is free first.
    stage_symbol_file(encode, modules, &symbols, OutputFile::Symbols, stage);
    let dep_bin = || {
        stage(
            OutputFile::DepBin,
            Box::new(|| encode_dep_bin(encode, dep_entries)),
        )
    };
    match symbols_to.give(symbols) {
        None => dep_bin(),
        Some(symbols) => {
            rayon::join(dep_bin, || {
                stage_symbol_trie(encode, modules, symbols, stage)
            });
        }
    }
    Ok(())
}

/// Encodes `file`, one of the files made of the resolved `symbols`.
fn stage_symbol_file(
    encode: EncodeSettings<'_>,
    modules: &[GraphModule],
    symbols: &OwnedSymbols,
    file: OutputFile,
    stage: &Stage<'_>,
) {
    let graph = Resolved {
        modules,
        dependencies: &[],
        symbols,
    };
    stage(file, Box::new(|| encode_file(encode, &graph, file)));
}

/// Encodes the trie made of the resolved `symbols` (`modules.symbols.bin`), then frees the
/// symbols.
fn stage_symbol_trie(
    encode: EncodeSettings<'_>,
    modules: &[GraphModule],
    symbols: OwnedSymbols,
    stage: &Stage<'_>,
) {
    stage_symbol_file(encode, modules, &symbols, OutputFile::SymbolsBin, stage);
    drop_in_background(symbols);
}

/// `-n`: prints the text files on stdout, in kmod's order, each file's diagnostics first.
fn write_to_stdout(
    encode: EncodeSettings<'_>,
    resolved: &Resolved<'_>,
    diag: &Diag,
) -> Result<(), Failed> {
    use std::io::Write;
    let mut out = Vec::new();
    for file in OutputFile::sequence(encode.version) {
        if file.is_index() {
            continue;
        }
        let EncodedFile {
            encoded, messages, ..
        } = encode_file(encode, resolved, file);
        messages.flush(diag);
        match encoded {
            Encoded::Bytes(bytes) => out.extend_from_slice(&bytes),
            Encoded::Index(_) => {}
            Encoded::Fatal(message) => {
                diag.fatal(message);
                return Err(Failed);
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
        return Err(Failed);
    }
    Ok(())
}
