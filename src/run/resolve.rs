//! The resolve stage: symbols to owners, dependencies, their order, and the cycle report.

use std::io::Write;

use super::Failed;
use crate::bmsg;
use crate::diag::Diag;
use crate::graph::{
    all_sorted_dependencies, report_cycles, resolve, topological_index, OwnedSymbols,
    ResolveMessages, ResolveOptions, TopoResult,
};
use crate::record::{GraphModule, ModuleRecord};
use crate::symvers::KernelSymbol;

/// The resolved dependency graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGraph {
    /// Each module's transitive dependencies, in `modules.dep` order.
    pub dependencies: Vec<Vec<usize>>,
    /// The symbols modules own, in kmod's symbol-table order.
    pub symbols: OwnedSymbols,
    /// Each module's direct dependencies, in the order of their first import.
    pub direct: Vec<Vec<usize>>,
}

/// Resolves the imports of `records` (one per module of `modules`, which give the names
/// and paths messages use) against their exports and `kernel_symbols`, printing the
/// messages; with cycles, reports them and fails.
pub fn resolve_graph(
    modules: &[GraphModule],
    records: &[ModuleRecord],
    kernel_symbols: Option<&[KernelSymbol]>,
    options: &ResolveOptions,
    diag: &Diag,
) -> Result<ResolvedGraph, Failed> {
    let mut messages = ResolveMessages::default();
    let graph = resolve(
        records,
        |idx| &modules[idx].path,
        kernel_symbols,
        options,
        &mut messages,
    );
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
            let names: Vec<&[u8]> = modules.iter().map(|m| m.name.as_slice()).collect();
            let (reports, count) = report_cycles(&graph.deps, &users, &names);
            for r in reports {
                diag.error(bmsg!("Cycle detected: ", r));
            }
            diag.error(format!("Found {count} modules in dependency cycles!"));
            return Err(Failed);
        }
    };
    Ok(ResolvedGraph {
        dependencies: all_sorted_dependencies(&graph.deps, &dep_sort_idx),
        symbols: graph.symbols,
        direct: graph.deps,
    })
}
