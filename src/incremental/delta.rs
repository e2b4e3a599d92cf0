//! Updating the alias files in place when, since the run that stored the memo, only some
//! modules' aliases changed (see [`super::memo`]).
//!
//! The memo's [`MemoBase`] holds a digest of every input except the modules' aliases and
//! imports (the frame) and, per module, its record digests, the digest of its direct
//! dependencies and the length of its lines in `modules.alias`. When this run's frame is the
//! same, the symbol table is the same, so a changed module's imports are resolved against
//! the table `modules.symbols.bin` holds; when each gives the dependencies it had, every index
//! file but the two alias files is still right, and so are the alias files' entries of every
//! module whose record is unchanged. The changed modules' old aliases are read back from
//! `modules.alias` (their lines are where the lengths say), their lines are replaced, and
//! `modules.alias.bin` is patched ([`IndexPatch`]): their old entries removed, their new
//! ones inserted with the same priority. The result is byte for byte what a full run
//! writes; anything unexpected gives up, and the run is carried out in full.

use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};

use super::inputs::InputDigests;
use super::memo;
use super::reads::CachedReads;
use super::store::{digest, Digest, Memo, MemoBase};
use crate::diag::Diag;
use crate::discover::DiscoveredModule;
use crate::graph::{direct_dependencies, import_lookup_name, ImportTable};
use crate::index::{Index, IndexPatch, NodeOrder};
use crate::names::normalize_alias;
use crate::output::text::{append_alias_lines, ALIAS_HEADER};
use crate::publish::{DigestWriter, Publisher, WrittenFile};
use crate::run::WriteOptions;

const ALIAS: &str = "modules.alias";
const ALIAS_BIN: &str = "modules.alias.bin";
const SYMBOLS_BIN: &str = "modules.symbols.bin";

/// When only some modules' aliases and imports changed since the memo's run, and not their
/// dependencies, updates the alias files in place, keeps the others and stores the new memo
/// ; returns whether it did (if not, the run goes on in full).
pub(super) fn update_aliases_only(
    options: &WriteOptions,
    outdir: &Path,
    inputs: &InputDigests,
    reads: &CachedReads,
    modules: &[DiscoveredModule],
    diag: &Diag,
) -> bool {
    // -w could warn about a new duplicate alias, -e about a new unknown symbol.
    if options.warn || options.print_unknown || options.version.node_order() != NodeOrder::Pre {
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
    let Some(changed) = changed_modules(old, &base).and_then(|changed| {
        changed
            .into_iter()
            .map(|index| {
                let loaded = reads.fresh(index)?;
                Some(ChangedModule {
                    index,
                    modname: &modules[index].modname,
                    aliases: &loaded.aliases,
                    imports: &loaded.imports,
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
    let store = |outputs: &[WrittenFile]| {
        let memo = Memo {
            inputs: inputs.run,
            outputs: outputs.to_vec(),
            messages: Vec::new(),
            base: Some(base),
        };
        reads.save(modules, Some(&memo), diag);
    };
    let update = AliasUpdate {
        outdir,
        outputs: &memo.outputs,
        old,
        modules,
        symbol_prefix: options.symbol_prefix,
        fsync: options.fsync,
    };
    update_alias_files(update, &changed, store).is_ok()
}

/// A module whose record changed: its position and name, its new aliases and imports.
pub(super) struct ChangedModule<'a> {
    pub index: usize,
    pub modname: &'a [u8],
    pub aliases: &'a [Vec<u8>],
    pub imports: &'a ImportTable,
}

/// The digest of a module's direct dependencies (module positions, in order).
pub(super) fn dependencies_digest(deps: &[usize]) -> Digest {
    let bytes: Vec<u8> = deps
        .iter()
        .flat_map(|&d| (d as u64).to_le_bytes())
        .collect();
    digest(&bytes)
}

/// The module owners of the names in `wanted`, looked up in `modules.symbols.bin` (`index`,
/// whose digest is the one the memo's run wrote): name → module position (the value's
/// priority, checked against the module's name).
fn symbol_owners<'w>(
    index: &[u8],
    wanted: &FxHashSet<&'w [u8]>,
    modules: &[DiscoveredModule],
) -> Result<FxHashMap<&'w [u8], usize>, NoDelta> {
    let index = Index::from_known(index)?;
    let mut owners = FxHashMap::default();
    let mut key = Vec::new();
    for &name in wanted {
        if name.contains(&0) {
            return Err(NoDelta);
        }
        key.clear();
        key.extend_from_slice(b"symbol:");
        key.extend_from_slice(name);
        if let Some(found) = index.lookup_exact(&key)? {
            let owner = found.priority as usize;
            match modules.get(owner) {
                Some(module) if module.modname == found.value => owners.insert(name, owner),
                _ => return Err(NoDelta),
            };
        }
    }
    Ok(owners)
}

/// Whether each changed module's imports give the dependencies it had, resolved against the
/// symbol table of `symbols` (the old `modules.symbols.bin`).
fn dependencies_kept(
    symbols: &[u8],
    old: &MemoBase,
    changed: &[ChangedModule<'_>],
    modules: &[DiscoveredModule],
    symbol_prefix: Option<u8>,
) -> Result<(), NoDelta> {
    let wanted: FxHashSet<&[u8]> = changed
        .iter()
        .flat_map(|change| change.imports.iter())
        .map(|import| import_lookup_name(import.name, symbol_prefix))
        .collect();
    let owners = symbol_owners(symbols, &wanted, modules)?;
    for change in changed {
        let module = old.modules.get(change.index).ok_or(NoDelta)?;
        let deps = direct_dependencies(change.imports, symbol_prefix, |name| {
            owners.get(name).copied()
        });
        if dependencies_digest(&deps) != module.deps {
            return Err(NoDelta);
        }
    }
    Ok(())
}

/// Why the alias files could not be updated in place (the run then goes on in full).
#[derive(Debug)]
pub(super) struct NoDelta;

impl<T> From<T> for NoDelta
where
    T: std::error::Error,
{
    fn from(_: T) -> Self {
        NoDelta
    }
}

/// The modules whose record changed between `old` and `new`, if nothing but aliases did.
pub(super) fn changed_modules(old: &MemoBase, new: &MemoBase) -> Option<Vec<usize>> {
    if old.frame != new.frame || old.modules.len() != new.modules.len() {
        return None;
    }
    Some(
        old.modules
            .iter()
            .zip(&new.modules)
            .enumerate()
            .filter(|(_, (old, new))| old.record != new.record)
            .map(|(i, _)| i)
            .collect(),
    )
}

/// The old aliases of a module named `modname` from its `count` lines in `block`.
fn old_aliases<'b>(block: &'b [u8], modname: &[u8], count: u32) -> Result<Vec<&'b [u8]>, NoDelta> {
    let body = block.strip_suffix(b"\n").ok_or(NoDelta)?;
    let aliases: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .map(|line| {
            line.strip_prefix(b"alias ")
                .and_then(|rest| rest.strip_suffix(modname))
                .and_then(|rest| rest.strip_suffix(b" "))
        })
        .collect::<Option<_>>()
        .ok_or(NoDelta)?;
    match aliases.len() == count as usize {
        true => Ok(aliases),
        false => Err(NoDelta),
    }
}

/// The files of the memo's run and how to write new ones.
pub(super) struct AliasUpdate<'a> {
    /// The output directory.
    pub outdir: &'a Path,
    /// The files the memo lists.
    pub outputs: &'a [WrittenFile],
    /// The memo's base.
    pub old: &'a MemoBase,
    /// The modules, in kmod's order.
    pub modules: &'a [DiscoveredModule],
    /// `-P`.
    pub symbol_prefix: Option<u8>,
    /// `--fsync`.
    pub fsync: bool,
}

/// Rewrites `modules.alias` and `modules.alias.bin` for the `changed` modules (in module
/// order), keeping (and touching) every other file the memo lists. `store` is given the
/// files' new digests (in the memo's order) once both are written.
pub(super) fn update_alias_files(
    update: AliasUpdate<'_>,
    changed: &[ChangedModule<'_>],
    store: impl FnOnce(&[WrittenFile]),
) -> Result<(), NoDelta> {
    let AliasUpdate {
        outdir,
        outputs,
        old,
        modules,
        symbol_prefix,
        fsync,
    } = update;
    let position = |name: &str| outputs.iter().position(|f| f.name == name).ok_or(NoDelta);
    let (text_at, bin_at, symbols_at) = (
        position(ALIAS)?,
        position(ALIAS_BIN)?,
        position(SYMBOLS_BIN)?,
    );
    let read = |at: usize| memo::read_intact(outdir, &outputs[at]).ok_or(NoDelta);
    let files_except = |skipped: &[usize]| -> Vec<WrittenFile> {
        (0..outputs.len())
            .filter(|i| !skipped.contains(i))
            .map(|i| outputs[i].clone())
            .collect()
    };
    let (kept, old_files) = rayon::join(
        || {
            let symbols = read(symbols_at)?;
            dependencies_kept(&symbols, old, changed, modules, symbol_prefix)?;
            match memo::outputs_intact(outdir, &files_except(&[text_at, bin_at, symbols_at])) {
                true => Ok(()),
                false => Err(NoDelta),
            }
        },
        || Ok::<_, NoDelta>((read(text_at)?, read(bin_at)?)),
    );
    kept?;
    let (old_text, old_bin) = old_files?;

    let lines = changed_old_lines(&old_text, old, changed)?;
    let patch = alias_index_patch(&old_bin, changed, &lines)?;
    // Both files are written straight to their temporary files (neither is assembled in
    // memory), their digests taken on the way.
    let publisher = Publisher::new(outdir.to_path_buf()).with_fsync(fsync);
    let (text, bin) = rayon::join(
        // A few large writes: the old file's spans and the new lines.
        || {
            publish_digested(&publisher, ALIAS, |out| {
                write_spliced_alias_text(out, &old_text, changed, &lines)
            })
        },
        || {
            publish_digested(&publisher, ALIAS_BIN, |out| {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                patch.write_to(&mut out).map_err(std::io::Error::other)?;
                std::io::Write::flush(&mut out)
            })
        },
    );
    let mut updated = outputs.to_vec();
    (updated[text_at].size, updated[text_at].digest) = text?;
    (updated[bin_at].size, updated[bin_at].digest) = bin?;
    store(&updated);
    memo::touch_outputs(outdir, &files_except(&[text_at, bin_at]));
    Ok(())
}

/// Publishes `name` with the contents `write` gives; returns their length and digest.
fn publish_digested(
    publisher: &Publisher,
    name: &str,
    write: impl FnOnce(&mut DigestWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<(u64, Digest), NoDelta> {
    let mut summary = None;
    publisher.begin(name)?.commit_with(|file| {
        summary = Some(DigestWriter::digest_of(file, write)?);
        Ok(())
    })?;
    summary.ok_or(NoDelta)
}

/// Where each module's lines start in `modules.alias` (`text`), by the lengths in `old`.
fn alias_line_starts(text: &[u8], old: &MemoBase) -> Result<Vec<usize>, NoDelta> {
    let mut starts = Vec::with_capacity(old.modules.len());
    let mut at = ALIAS_HEADER.len() as u64;
    for module in &old.modules {
        starts.push(at as usize);
        at += module.alias_bytes;
    }
    match text.starts_with(ALIAS_HEADER) && at == text.len() as u64 {
        true => Ok(starts),
        false => Err(NoDelta),
    }
}

/// Where a changed module's lines were in the old `modules.alias`, and its old aliases.
struct OldLines<'t> {
    start: usize,
    end: usize,
    aliases: Vec<&'t [u8]>,
}

/// The old lines of each changed module (in module order), read from `text`.
fn changed_old_lines<'t>(
    text: &'t [u8],
    old: &MemoBase,
    changed: &[ChangedModule<'_>],
) -> Result<Vec<OldLines<'t>>, NoDelta> {
    let starts = alias_line_starts(text, old)?;
    let mut after = 0;
    changed
        .iter()
        .map(|change| {
            let module = old.modules.get(change.index).ok_or(NoDelta)?;
            let start = starts[change.index];
            let end = start + module.alias_bytes as usize;
            if start < after {
                return Err(NoDelta);
            }
            after = end;
            let aliases = old_aliases(&text[start..end], change.modname, module.aliases)?;
            Ok(OldLines {
                start,
                end,
                aliases,
            })
        })
        .collect()
}

/// Writes `modules.alias` with the changed modules' `lines` replaced to `out`, straight from
/// the old file's bytes (the new file is never assembled in memory).
fn write_spliced_alias_text(
    out: &mut impl std::io::Write,
    old_text: &[u8],
    changed: &[ChangedModule<'_>],
    lines: &[OldLines<'_>],
) -> std::io::Result<()> {
    let mut copied = 0;
    let mut new_lines = Vec::new();
    for (change, old) in changed.iter().zip(lines) {
        out.write_all(&old_text[copied..old.start])?;
        new_lines.clear();
        append_alias_lines(&mut new_lines, change.modname, change.aliases);
        out.write_all(&new_lines)?;
        copied = old.end;
    }
    out.write_all(&old_text[copied..])
}

/// The patch of `modules.alias.bin` that removes the changed modules' old entries (from
/// their old `lines`) and inserts their new ones, each with the module's position as its
/// priority.
fn alias_index_patch<'a>(
    old_bin: &'a [u8],
    changed: &[ChangedModule<'a>],
    lines: &[OldLines<'_>],
) -> Result<IndexPatch<'a>, NoDelta> {
    let mut patch = IndexPatch::new(old_bin)?;
    let mut new_keys = Vec::new();
    for (change, old) in changed.iter().zip(lines) {
        let priority = u32::try_from(change.index)?;
        // Each (key, module) value is removed once, whatever number of copies it has.
        let mut old_keys = old
            .aliases
            .iter()
            .map(|alias| normalize_alias(alias).map_err(|_| NoDelta))
            .collect::<Result<Vec<_>, _>>()?;
        old_keys.sort_unstable();
        old_keys.dedup();
        for key in &old_keys {
            patch.remove(key, change.modname, priority)?;
        }
        for alias in change.aliases {
            // An alias the full run warns about is left to it.
            let key = normalize_alias(alias).map_err(|_| NoDelta)?;
            new_keys.push((key, change.modname, priority));
        }
    }
    for (key, modname, priority) in &new_keys {
        patch.insert(key, modname, *priority)?;
    }
    Ok(patch)
}
