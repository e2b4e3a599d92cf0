//! Symbols, dependencies, the topological index and the cycle report (spec §6, §7).
//!
//! Input: modules in final `idx` order with their exports and undefined references, plus the
//! kernel's own symbols from `-E`/`-F`. Output: each module's direct dependencies (insertion
//! order), its `dep_sort_idx`, and the symbol table in kmod's iteration order.

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::bmsg;
use crate::diag::Level;
use crate::order::{superfast_hash, SYMBOL_BUCKETS};
use crate::record::ModuleRecord;
use crate::symvers::KernelSymbol;

use crate::module::ImportNames;
pub use crate::module::ImportTable;
pub use crate::record::ExportedSymbol;

/// Options of the resolution step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// `-P`: a leading character to ignore on symbol names.
    pub symbol_prefix: Option<u8>,
    /// `-E` was given: compare CRCs.
    pub check_symvers: bool,
    /// `-e` (effective): warn about unknown symbols and CRC mismatches.
    pub print_unknown: bool,
    /// `-v` given: print the `needs` lines on stdout.
    pub verbose: bool,
    /// `-vvv`: also produce kmod's debug messages.
    pub debug: bool,
}

/// A symbol table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SymbolEntry {
    owner: Option<usize>,
    crc: u64,
}

/// Messages produced while resolving, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveMessages {
    /// Diagnostics for stderr (`WARNING`, and `DEBUG` when `debug` is set in the options).
    pub log: Vec<(Level, Vec<u8>)>,
    /// Verbose `needs` lines for stdout (with newline).
    pub verbose_lines: Vec<u8>,
}

/// The resolved dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Direct dependencies of each module, in first-seen order.
    pub deps: Vec<Vec<usize>>,
    /// Symbols owned by modules, in kmod's symbol-hash iteration order.
    pub symbols: OwnedSymbols,
}

/// Symbols owned by modules, in order, each a name and its owner's `idx`: the names back
/// to back in one buffer (a tree has some 14,000 of them, which the symbol files read in
/// this order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedSymbols {
    /// Every name, one after the other.
    names: Vec<u8>,
    /// Per symbol: where its name ends in `names`, and its owner.
    ends: Vec<(usize, usize)>,
}

/// No symbols, for encoders that do not read them.
pub static NO_SYMBOLS: OwnedSymbols = OwnedSymbols::new();

impl OwnedSymbols {
    /// No symbols yet.
    pub const fn new() -> Self {
        OwnedSymbols {
            names: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Appends symbol `name`, owned by module `owner`.
    pub fn push(&mut self, name: &[u8], owner: usize) {
        self.names.extend_from_slice(name);
        self.ends.push((self.names.len(), owner));
    }

    /// How many symbols there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Each symbol's name and owner, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], usize)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, owner)| {
            let name = &self.names[start..end];
            start = end;
            (name, owner)
        })
    }
}

impl<'a> FromIterator<(&'a [u8], usize)> for OwnedSymbols {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], usize)>>(symbols: I) -> Self {
        let mut owned = OwnedSymbols::new();
        for (name, owner) in symbols {
            owned.push(name, owner);
        }
        owned
    }
}

fn strip_one(name: &[u8], c: Option<u8>) -> &[u8] {
    match (c, name.first()) {
        (Some(c), Some(&f)) if c == f => &name[1..],
        _ => name,
    }
}

/// The name an import is looked up under: without one leading `.`, then without the symbol
/// prefix.
pub fn import_lookup_name(name: &[u8], symbol_prefix: Option<u8>) -> &[u8] {
    strip_one(strip_one(name, Some(b'.')), symbol_prefix)
}

/// Adds `owner` to a module's dependencies unless it is there already (a module depends on
/// another once, at its first import from it); returns whether it was added.
fn add_dependency(deps: &mut Vec<usize>, owner: usize) -> bool {
    let new = !deps.contains(&owner);
    if new {
        deps.push(owner);
    }
    new
}

/// A module's direct dependencies as [`resolve`] finds them, given `owner_of`, the module that
/// owns a looked-up name in the symbol table (`None` for the kernel's and unknown symbols):
/// owners in the order of their first import.
pub fn direct_dependencies(
    imports: &ImportTable,
    symbol_prefix: Option<u8>,
    owner_of: impl Fn(&[u8]) -> Option<usize>,
) -> Vec<usize> {
    let mut deps = Vec::new();
    for import in imports.iter() {
        if let Some(owner) = owner_of(import_lookup_name(import.name, symbol_prefix)) {
            add_dependency(&mut deps, owner);
        }
    }
    deps
}

/// Build the symbol table and each module's dependencies (§6.1–§6.3).
///
/// `modules` are the records in `idx` order; `path_of(idx)` is the path a message names for
/// module `idx` (absolute).
pub fn resolve<'p>(
    modules: &[ModuleRecord],
    path_of: impl Fn(usize) -> &'p [u8] + Sync,
    kernel_symbols: Option<&[KernelSymbol]>,
    options: &ResolveOptions,
    messages: &mut ResolveMessages,
) -> Graph {
    // Nothing depends on this table's iteration order, so a fast non-random hasher is safe.
    let export_count: usize = modules.iter().map(|m| m.exports.len()).sum();
    let mut table: FxHashMap<&[u8], SymbolEntry> =
        FxHashMap::with_capacity_and_hasher(export_count, Default::default());
    if let Some(kernel) = kernel_symbols {
        for sym in kernel {
            table.insert(
                &sym.name,
                SymbolEntry {
                    owner: None,
                    crc: sym.crc,
                },
            );
        }
        for fake in crate::symvers::FAKE_SYMBOLS {
            if fake == b"TOC." && table.contains_key(fake) {
                continue;
            }
            table.insert(
                fake,
                SymbolEntry {
                    owner: None,
                    crc: 0,
                },
            );
        }
    }
    // The exported names are looked up about seven times each: copied next to each other,
    // the bytes each lookup compares are mostly in cache, where each in its own allocation
    // was a cache miss.
    let export_names = ExportNames::new(modules, options.symbol_prefix);
    let mut names = export_names.iter();
    for (idx, module) in modules.iter().enumerate() {
        for (export, name) in module.exports.iter().zip(names.by_ref()) {
            table.insert(
                name,
                SymbolEntry {
                    owner: Some(idx),
                    crc: export.crc,
                },
            );
        }
    }

    // Imports whose names are numbered in shared names are looked up once per name.
    let found = FoundNames::new(modules, &table, options.symbol_prefix);
    // Each module's imports are looked up on its own (the table is only read), on all
    // cores; the messages are put back in module order.
    use rayon::prelude::*;
    let resolved: Vec<(Vec<usize>, ResolveMessages)> = modules
        .par_iter()
        .enumerate()
        .map(|(idx, module)| {
            let mut deps = Vec::new();
            let mut messages = ResolveMessages::default();
            let lookup = Lookup {
                table: &table,
                found: found.for_table(&module.imports),
            };
            resolve_imports(
                idx,
                module,
                lookup,
                &path_of,
                options,
                &mut deps,
                &mut messages,
            );
            (deps, messages)
        })
        .collect();
    drop(found);
    let mut deps = Vec::with_capacity(modules.len());
    for (module_deps, module_messages) in resolved {
        deps.push(module_deps);
        messages.log.extend(module_messages.log);
        messages
            .verbose_lines
            .extend_from_slice(&module_messages.verbose_lines);
    }

    let owned = table
        .into_iter()
        .filter_map(|(name, entry)| entry.owner.map(|owner| (name, owner)));
    Graph {
        deps,
        symbols: in_symbol_table_order(owned),
    }
}

/// Every exported name (without the symbol prefix), in module order, back to back in one
/// buffer.
struct ExportNames {
    bytes: Vec<u8>,
    /// Where each name ends in `bytes`.
    ends: Vec<usize>,
}

impl ExportNames {
    fn new(modules: &[ModuleRecord], symbol_prefix: Option<u8>) -> Self {
        let names = || {
            modules
                .iter()
                .flat_map(|module| &module.exports)
                .map(|export| strip_one(&export.name, symbol_prefix))
        };
        let mut bytes = Vec::with_capacity(names().map(<[u8]>::len).sum());
        let mut ends = Vec::with_capacity(names().count());
        for name in names() {
            bytes.extend_from_slice(name);
            ends.push(bytes.len());
        }
        ExportNames { bytes, ends }
    }

    /// The names, in module order.
    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ends.iter().scan(0, |start, &end| {
            let name = &self.bytes[*start..end];
            *start = end;
            Some(name)
        })
    }
}

/// The symbol table entries of every name in shared import names (see
/// [`ImportTable::share_names`]), found once per name instead of once per import.
struct FoundNames<'t> {
    /// The names the entries are for, if the modules' tables share names.
    names: Option<Arc<ImportNames>>,
    /// Per shard, per name number: its entry (8 bytes a name: the name the table has for it
    /// is the looked-up name itself).
    found: Vec<Vec<Option<&'t SymbolEntry>>>,
}

impl<'t> FoundNames<'t> {
    /// Finds the names the import tables of `modules` share in `table` (all in parallel),
    /// as imports are looked up (see [`import_lookup_name`]).
    fn new(
        modules: &[ModuleRecord],
        table: &'t FxHashMap<&[u8], SymbolEntry>,
        symbol_prefix: Option<u8>,
    ) -> Self {
        use rayon::prelude::*;
        let names = modules
            .iter()
            .find_map(|module| module.imports.shared_names())
            .map(|(names, _)| Arc::clone(names));
        let found = match &names {
            None => Vec::new(),
            Some(names) => (0..names.shard_count())
                .map(|shard| {
                    (0..names.len(shard))
                        .into_par_iter()
                        .with_min_len(1024)
                        .map(|id| {
                            let name = names.name(shard, id);
                            table.get(import_lookup_name(name, symbol_prefix))
                        })
                        .collect()
                })
                .collect(),
        };
        FoundNames { names, found }
    }

    /// The entries by name number for the names of `imports`, if they are the ones found.
    fn for_table(&self, imports: &ImportTable) -> Option<&[Option<&'t SymbolEntry>]> {
        let (names, shard) = imports.shared_names()?;
        let same = self.names.as_ref().is_some_and(|n| Arc::ptr_eq(n, names));
        same.then(|| self.found.get(shard).map(Vec::as_slice))
            .flatten()
    }
}

/// How a module's imports are looked up: in the symbol table, or by name number where the
/// entries of its names were found beforehand.
#[derive(Clone, Copy)]
struct Lookup<'a, 't> {
    table: &'t FxHashMap<&'t [u8], SymbolEntry>,
    found: Option<&'a [Option<&'t SymbolEntry>]>,
}

impl<'t> Lookup<'_, 't> {
    /// The entry of the import named `name` (number `id` in the shared names if it has one),
    /// with the name it is looked up under, which is the table's name for it.
    fn find<'n>(
        &self,
        name: &'n [u8],
        id: Option<usize>,
        symbol_prefix: Option<u8>,
    ) -> Option<(&'n [u8], &'t SymbolEntry)> {
        let lookup = import_lookup_name(name, symbol_prefix);
        if let (Some(found), Some(id)) = (self.found, id) {
            if let Some(&entry) = found.get(id) {
                return entry.map(|entry| (lookup, entry));
            }
        }
        self.table.get(lookup).map(|entry| (lookup, entry))
    }
}

/// Looks up the imports of module `idx` with `lookup`: its direct dependencies go to `deps`
/// (in the order of their first import), its messages to `messages`.
fn resolve_imports<'p>(
    idx: usize,
    module: &ModuleRecord,
    lookup: Lookup<'_, '_>,
    path_of: &(impl Fn(usize) -> &'p [u8] + Sync),
    options: &ResolveOptions,
    deps: &mut Vec<usize>,
    messages: &mut ResolveMessages,
) {
    let path = path_of(idx);
    for (import, id) in module.imports.iter_numbered() {
        let Some((key, entry)) = lookup.find(import.name, id, options.symbol_prefix) else {
            if options.debug {
                let bind = if import.weak { "W" } else { "U" };
                messages.log.push((
                    Level::Debug,
                    bmsg!(path, " needs (", bind, ") unknown symbol ", import.name),
                ));
            }
            if options.print_unknown && !import.weak {
                messages.log.push((
                    Level::Warning,
                    bmsg!(path, " needs unknown symbol ", import.name),
                ));
            }
            continue;
        };
        if options.check_symvers && entry.crc != import.crc && !import.weak {
            if options.debug {
                messages.log.push((
                    Level::Debug,
                    bmsg!(
                        "symbol ",
                        key,
                        format!(" ({:#x}) module ", entry.crc),
                        path,
                        format!(" ({:#x})", import.crc)
                    ),
                ));
            }
            if options.print_unknown {
                messages.log.push((
                    Level::Warning,
                    bmsg!(path, " disagrees about version of symbol ", import.name),
                ));
            }
        }
        let Some(owner) = entry.owner else { continue };
        if !add_dependency(deps, owner) {
            continue;
        }
        if options.verbose {
            messages.verbose_lines.extend_from_slice(&bmsg!(
                path,
                " needs \"",
                key,
                "\": ",
                path_of(owner),
                "\n"
            ));
        }
    }
}

/// `symbols` (distinct names with their owners) in kmod's symbol-hash iteration order: by
/// bucket, then by name within a bucket.
///
/// The names are put in their buckets while they are borrowed (a counting sort: each bucket
/// computed once, the symbols moved once), each bucket's few names sorted, and the names
/// copied only in their final order, into one buffer.
fn in_symbol_table_order<'a>(symbols: impl Iterator<Item = (&'a [u8], usize)>) -> OwnedSymbols {
    let keyed: Vec<(u32, &[u8], usize)> = symbols
        .map(|(name, owner)| (superfast_hash(name) & (SYMBOL_BUCKETS - 1), name, owner))
        .collect();
    // Where each bucket starts among the sorted symbols, then their count.
    let mut starts = vec![0usize; SYMBOL_BUCKETS as usize + 1];
    for &(bucket, _, _) in &keyed {
        starts[bucket as usize + 1] += 1;
    }
    for bucket in 1..starts.len() {
        starts[bucket] += starts[bucket - 1];
    }
    let mut sorted: Vec<(&[u8], usize)> = vec![(&[], 0); keyed.len()];
    let mut next = starts.clone();
    for (bucket, name, owner) in keyed {
        sorted[next[bucket as usize]] = (name, owner);
        next[bucket as usize] += 1;
    }
    // The names are distinct, so within a bucket the name orders them totally.
    for bucket in starts.windows(2) {
        sorted[bucket[0]..bucket[1]].sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let mut owned = OwnedSymbols {
        names: Vec::with_capacity(sorted.iter().map(|(name, _)| name.len()).sum()),
        ends: Vec::with_capacity(sorted.len()),
    };
    for (name, owner) in sorted {
        owned.push(name, owner);
    }
    owned
}

/// The outcome of the topological sort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopoResult {
    /// Every module got an index: `dep_sort_idx[i]`.
    Sorted(Vec<usize>),
    /// Some modules are in or behind cycles: remaining user counts per module.
    Cycles(Vec<usize>),
}

/// Kahn's algorithm with a LIFO stack, as `depmod_calculate_dependencies` (§7.1).
pub fn topological_index(deps: &[Vec<usize>]) -> TopoResult {
    let n = deps.len();
    let mut users = vec![0usize; n];
    for list in deps {
        for &d in list {
            users[d] += 1;
        }
    }
    let mut stack: Vec<usize> = (0..n).filter(|&i| users[i] == 0).collect();
    let mut dep_sort_idx = vec![usize::MAX; n];
    let mut next = 0;
    while let Some(src) = stack.pop() {
        dep_sort_idx[src] = next;
        next += 1;
        for &d in &deps[src] {
            users[d] -= 1;
            if users[d] == 0 {
                stack.push(d);
            }
        }
    }
    if next < n {
        TopoResult::Cycles(users)
    } else {
        TopoResult::Sorted(dep_sort_idx)
    }
}

/// All transitive dependencies of `module`, sorted by `dep_sort_idx` (§7.2).
#[cfg(test)]
fn sorted_dependencies(deps: &[Vec<usize>], dep_sort_idx: &[usize], module: usize) -> Vec<usize> {
    DependencyWalk::new(deps.len()).sorted_dependencies(deps, dep_sort_idx, module)
}

/// All transitive dependencies of every module, each sorted by `dep_sort_idx` (§7.2), on
/// all cores. Each list is allocated once, at its exact size (on deep trees they hold
/// millions of entries in all); the walk's stack and list are scratch space each thread
/// reuses.
pub fn all_sorted_dependencies(deps: &[Vec<usize>], dep_sort_idx: &[usize]) -> Vec<Vec<usize>> {
    use rayon::prelude::*;
    (0..deps.len())
        .into_par_iter()
        .map_init(
            || DependencyWalk::new(deps.len()),
            |walk, module| walk.sorted_dependencies(deps, dep_sort_idx, module),
        )
        .collect()
}

/// One thread's scratch space for finding modules' transitive dependencies.
struct DependencyWalk {
    /// `seen[d] == module` marks `d` as visited for `module`; no entry may equal a module
    /// on its walk's start (so it is reused from module to module without clearing).
    seen: Vec<usize>,
    /// The modules still to visit.
    stack: Vec<usize>,
    /// The dependencies found so far.
    found: Vec<usize>,
}

impl DependencyWalk {
    /// Scratch space for a graph of `modules` modules, nothing visited.
    fn new(modules: usize) -> Self {
        DependencyWalk {
            seen: vec![usize::MAX; modules],
            stack: Vec::new(),
            found: Vec::new(),
        }
    }

    /// The transitive dependencies of `module`, sorted by `dep_sort_idx`.
    fn sorted_dependencies(
        &mut self,
        deps: &[Vec<usize>],
        dep_sort_idx: &[usize],
        module: usize,
    ) -> Vec<usize> {
        let DependencyWalk { seen, stack, found } = self;
        found.clear();
        stack.clear();
        stack.extend(deps[module].iter().rev().copied());
        while let Some(d) = stack.pop() {
            if seen[d] == module {
                continue;
            }
            seen[d] = module;
            found.push(d);
            stack.extend(deps[d].iter().rev().copied());
        }
        found.sort_by_key(|&d| dep_sort_idx[d]);
        found.to_vec()
    }
}

/// The circular list of roots with kmod's rotating removal (§7.3).
struct Roots {
    items: Vec<usize>,
    head: usize,
}

impl Roots {
    fn remove(&mut self, module: usize) {
        if let Some(pos) = self.items.iter().position(|&m| m == module) {
            self.items.remove(pos);
            self.head = if pos >= self.items.len() { 0 } else { pos };
        }
    }

    fn pop_head(&mut self) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        let head = self.items[self.head % self.items.len()];
        self.remove(head);
        Some(head)
    }
}

/// Upper bound on DFS vertices over the whole report. kmod re-expands shared subpaths, which
/// can grow exponentially; past this budget no further paths are expanded.
const CYCLE_REPORT_BUDGET: usize = 5_000_000;

/// kmod's cycle report (§7.3), made to terminate. Returns the `Cycle detected: ...` message
/// bodies and the number of modules in cycles.
///
/// Where kmod would search forever — a root that reaches a cycle not passing through it (its DFS
/// keeps re-expanding that cycle) — this report instead stops at the first module that repeats on
/// the current path, reports that cycle (`x -> ... -> x`) unless its module is already known to
/// be in a cycle, and does not expand it further. kmod's DFS stack is also sized by the number of
/// roots and it aborts on an assertion (`is < stack_size`) when re-expansion outgrows it; those
/// runs get this terminating report too. In every case where kmod finishes normally, the output is
/// kmod's (checked against kmod 34.2 on random cyclic trees in `tests/depmod_cli.rs`).
pub fn report_cycles(
    deps: &[Vec<usize>],
    users: &[usize],
    names: &[&[u8]],
) -> (Vec<Vec<u8>>, usize) {
    let mut roots = Roots {
        items: (0..deps.len()).filter(|&i| users[i] > 0).collect(),
        head: 0,
    };
    let mut visited = vec![false; deps.len()];
    let mut loop_set: HashSet<usize> = HashSet::new();
    let mut reports = Vec::new();
    let mut budget = CYCLE_REPORT_BUDGET;

    let join = |chain: &[usize], last: usize| {
        let mut msg = Vec::new();
        for &m in chain {
            msg.extend_from_slice(names[m]);
            msg.extend_from_slice(b" -> ");
        }
        msg.extend_from_slice(names[last]);
        msg
    };

    while let Some(root) = roots.pop_head() {
        // vertices: (module, parent vertex)
        let mut vertices: Vec<(usize, Option<usize>)> = vec![(root, None)];
        let mut stack = vec![0usize];
        while let Some(v) = stack.pop() {
            let (m, parent) = vertices[v];
            let ancestors = |mut p: Option<usize>| {
                let mut chain = Vec::new();
                while let Some(pv) = p {
                    chain.push(vertices[pv].0);
                    p = vertices[pv].1;
                }
                chain.reverse();
                chain
            };
            if visited[m] && m == root {
                let chain = ancestors(parent);
                reports.push(join(&chain, m));
                loop_set.extend(chain.iter().copied());
                for &c in &chain {
                    roots.remove(c);
                }
                continue;
            }
            // Termination guard: `m` already on this path (and not the root) means kmod loops.
            let chain = ancestors(parent);
            if let Some(start) = chain.iter().position(|&c| c == m) {
                if !loop_set.contains(&m) {
                    let cycle = &chain[start..];
                    reports.push(join(cycle, m));
                    loop_set.extend(cycle.iter().copied());
                    for &c in cycle {
                        roots.remove(c);
                    }
                }
                continue;
            }
            visited[m] = true;
            if deps[m].is_empty() {
                roots.remove(m);
                continue;
            }
            if budget < deps[m].len() {
                continue;
            }
            budget -= deps[m].len();
            for &d in &deps[m] {
                vertices.push((d, Some(v)));
                stack.push(vertices.len() - 1);
            }
        }
    }
    (reports, loop_set.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(name: &str) -> ExportedSymbol {
        ExportedSymbol {
            name: name.as_bytes().to_vec(),
            crc: 0,
        }
    }

    fn imports(names: &[&str]) -> ImportTable {
        let mut table = ImportTable::new();
        for name in names {
            table.push(name.as_bytes(), 0, false);
        }
        table
    }

    #[test]
    fn last_exporter_owns_and_edges_are_unique() {
        let modules = vec![
            ModuleRecord {
                exports: vec![export("shared")],
                imports: ImportTable::new(),
                ..ModuleRecord::default()
            },
            ModuleRecord {
                exports: vec![export("shared"), export("other")],
                imports: ImportTable::new(),
                ..ModuleRecord::default()
            },
            ModuleRecord {
                exports: vec![],
                imports: imports(&["shared", "other", ".shared", "missing"]),
                ..ModuleRecord::default()
            },
        ];
        let mut messages = ResolveMessages::default();
        let options = ResolveOptions {
            print_unknown: true,
            verbose: true,
            ..Default::default()
        };
        let paths: [&[u8]; 3] = [b"/p1", b"/p2", b"/user"];
        let graph = resolve(&modules, |idx| paths[idx], None, &options, &mut messages);
        assert_eq!(graph.deps, vec![vec![], vec![], vec![1]]);
        assert_eq!(
            messages.log,
            vec![(
                Level::Warning,
                b"/user needs unknown symbol missing".to_vec()
            )]
        );
        assert_eq!(
            messages.verbose_lines,
            b"/user needs \"shared\": /p2\n".to_vec()
        );
    }

    /// `tables` (names, CRC and weak flag per import) as tables of numbered names: the
    /// first half numbered in shard 0, the rest in shard 1, all sharing the names.
    fn numbered_tables(tables: &[Vec<(&str, u64, bool)>]) -> Vec<ImportTable> {
        use crate::module::NameShard;
        let mut shards = [NameShard::default(), NameShard::default()];
        let half = tables.len() / 2;
        let mut numbered: Vec<ImportTable> = tables
            .iter()
            .enumerate()
            .map(|(i, imports)| {
                let number = usize::from(i >= half);
                let mut table = ImportTable::numbered(imports.len(), number);
                for &(name, crc, weak) in imports {
                    let id = shards[number].intern(name.as_bytes()).unwrap();
                    table.push_numbered(id, crc, weak);
                }
                table
            })
            .collect();
        let [first, second] = shards;
        let names = Arc::new(ImportNames::new(vec![first.freeze(), second.freeze()]));
        for table in &mut numbered {
            table.share_names(&names);
        }
        numbered
    }

    #[test]
    fn numbered_imports_resolve_as_named_ones_do() {
        let tables: Vec<Vec<(&str, u64, bool)>> = vec![
            vec![("other", 2, false)],
            vec![("shared", 1, false), ("missing", 0, false)],
            vec![
                (".shared", 1, false),
                ("other", 3, false),
                ("gone", 0, true),
            ],
            vec![
                ("shared", 5, false),
                ("missing", 0, true),
                ("_other", 2, false),
            ],
        ];
        let exports = [
            vec![export("shared")],
            vec![export("other")],
            vec![],
            vec![],
        ];
        let records = |imports: Vec<ImportTable>| -> Vec<ModuleRecord> {
            exports
                .iter()
                .zip(imports)
                .map(|(exports, imports)| ModuleRecord {
                    exports: exports.clone(),
                    imports,
                    ..ModuleRecord::default()
                })
                .collect()
        };
        let named: Vec<ImportTable> = tables
            .iter()
            .map(|imports| {
                let mut table = ImportTable::new();
                for &(name, crc, weak) in imports {
                    table.push(name.as_bytes(), crc, weak);
                }
                table
            })
            .collect();
        let numbered = numbered_tables(&tables);
        assert_eq!(named, numbered);
        let paths: [&[u8]; 4] = [b"/a", b"/b", b"/c", b"/d"];
        for symbol_prefix in [None, Some(b'_')] {
            let options = ResolveOptions {
                symbol_prefix,
                check_symvers: true,
                print_unknown: true,
                verbose: true,
                debug: true,
            };
            let resolve_with = |imports: &[ImportTable]| {
                let modules = records(imports.to_vec());
                let mut messages = ResolveMessages::default();
                let graph = resolve(&modules, |i| paths[i], None, &options, &mut messages);
                (graph, messages)
            };
            let (named_graph, named_messages) = resolve_with(&named);
            let (numbered_graph, numbered_messages) = resolve_with(&numbered);
            assert_eq!(named_graph, numbered_graph);
            assert_eq!(named_messages, numbered_messages);
            assert!(!named_messages.log.is_empty());
        }
    }

    #[test]
    fn kahn_lifo_order() {
        // 0 -> 1, 0 -> 2, 2 -> 1: stack [0] → 0 (idx0), push 2 → 2 (idx1) → 1 (idx2)
        let deps = vec![vec![2, 1], vec![], vec![1]];
        let TopoResult::Sorted(idx) = topological_index(&deps) else {
            panic!()
        };
        assert_eq!(idx, vec![0, 2, 1]);
        assert_eq!(sorted_dependencies(&deps, &idx, 0), vec![2, 1]);
    }

    #[test]
    fn testsuite_mod_foo_order() {
        // mod-foo needs a, b, c; b needs... (testsuite: "mod-foo.ko: mod-foo-b mod-foo-a mod-foo-c")
        // Independent modules: dependency order follows the LIFO Kahn index.
        let deps = vec![vec![1, 2, 3], vec![], vec![], vec![]];
        let TopoResult::Sorted(idx) = topological_index(&deps) else {
            panic!()
        };
        assert_eq!(sorted_dependencies(&deps, &idx, 0), vec![3, 2, 1]);
    }

    fn cycle_report(deps: &[Vec<usize>], names: &[&str]) -> (Vec<String>, usize) {
        let TopoResult::Cycles(users) = topological_index(deps) else {
            panic!("no cycle")
        };
        let names: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let (lines, count) = report_cycles(deps, &users, &names);
        (
            lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect(),
            count,
        )
    }

    #[test]
    fn simple_cycle() {
        let (lines, count) = cycle_report(&[vec![1], vec![0]], &["a", "b"]);
        assert_eq!(lines, vec!["a -> b -> a"]);
        assert_eq!(count, 2);
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let (lines, count) = cycle_report(&[vec![0]], &["a"]);
        assert_eq!(lines, vec!["a -> a"]);
        assert_eq!(count, 1);
    }

    #[test]
    fn upstream_hang_case_terminates() {
        // §7.3: rr7 first in order; cya7 <-> cyb7, cya7 -> rr7, rr7 -> xa7, xa7 <-> xb7.
        let names = ["rr7", "cya7", "cyb7", "xa7", "xb7"];
        let deps = vec![vec![3], vec![2, 0], vec![1], vec![4], vec![3]];
        let (lines, count) = cycle_report(&deps, &names);
        assert_eq!(lines, vec!["xa7 -> xb7 -> xa7", "cya7 -> cyb7 -> cya7"]);
        assert_eq!(count, 4);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// On any graph the topological sort is consistent and the cycle report finishes.
        #[test]
        fn sort_and_cycle_report_terminate(edges in proptest::collection::vec((0usize..12, 0usize..12), 0..40)) {
            let n = 12;
            let mut deps = vec![Vec::new(); n];
            for (a, b) in edges {
                if !deps[a].contains(&b) {
                    deps[a].push(b);
                }
            }
            let names: Vec<Vec<u8>> = (0..n).map(|i| format!("m{i}").into_bytes()).collect();
            let names: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
            match topological_index(&deps) {
                TopoResult::Sorted(idx) => {
                    for (m, list) in deps.iter().enumerate() {
                        for &d in list {
                            prop_assert!(idx[m] < idx[d]);
                        }
                    }
                }
                TopoResult::Cycles(users) => {
                    let (reports, _) = report_cycles(&deps, &users, &names);
                    prop_assert!(!reports.is_empty());
                }
            }
        }

        /// The counting sort by bucket gives the order of sorting by (bucket, name).
        #[test]
        fn symbol_table_order_is_bucket_then_name(
            names in proptest::collection::btree_set(
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'_'), 1u8..=0xff], 0..12),
                0..300,
            )
        ) {
            let symbols: Vec<(&[u8], usize)> =
                names.iter().enumerate().map(|(i, name)| (&name[..], i)).collect();
            let mut expected: Vec<(u32, &[u8], usize)> = symbols
                .iter()
                .map(|&(name, owner)| (superfast_hash(name) & (SYMBOL_BUCKETS - 1), name, owner))
                .collect();
            expected.sort_unstable();
            let expected: Vec<(&[u8], usize)> =
                expected.into_iter().map(|(_, name, owner)| (name, owner)).collect();
            let ordered = in_symbol_table_order(symbols.into_iter());
            prop_assert_eq!(ordered.iter().collect::<Vec<_>>(), expected);
        }
    }
}
