//! `modindex graph`: the module dependency graph, as DOT or JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;
use depmod_rs::compat::KmodVersion;
use depmod_rs::module::{read_module, ReadOptions};
use depmod_rs::names::{modname_from_path, normalize_modname};
use rayon::prelude::*;

use super::pipeline::{run_into_scratch, PipelineOptions, TreeLocation};

/// Print the module dependency graph (DOT or JSON), with the symbols behind each edge.
///
/// PATH is a `modules.dep` file, a module directory (`/lib/modules/KVER`), or with -b a kernel
/// version. The modules and their full dependency lists come from `modules.dep`; with
/// `--run`, or when the directory has no `modules.dep`, depmod runs first (into a scratch
/// directory). Each module file is then read to find which of its dependencies provide the
/// symbols it uses: an edge A -> B means A uses symbols exported by B, labelled with those
/// symbols. Dependencies reached only through others get no edge of their own. For a module
/// that cannot be read, its edges are the smallest set that explains its `modules.dep` line
/// (marked `"inferred": true` in JSON, dashed in DOT).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A modules.dep file, a module directory, or (with -b) a kernel version.
    path: PathBuf,
    /// Root of the tree: PATH is then the kernel version, as for depmod -b ROOT KVER.
    #[arg(short = 'b', long = "basedir", value_name = "ROOT")]
    basedir: Option<PathBuf>,
    /// Only this module and what it depends on (a name as modprobe takes it, or a path).
    #[arg(short = 'm', long = "module", value_name = "NAME")]
    module: Option<String>,
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value = "dot")]
    format: Format,
    /// Run depmod on the modules instead of reading the directory's modules.dep.
    #[arg(long)]
    run: bool,
    /// With --run: behave like this kmod release (30 to 34).
    #[arg(long, default_value = "34", value_name = "VERSION")]
    compat: KmodVersion,
    /// With --run: depmod configuration file or directory (repeatable).
    #[arg(short = 'C', long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Do not read module files: edges are inferred from modules.dep alone.
    #[arg(long)]
    no_symbols: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Dot,
    Json,
}

/// One line of `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine {
    /// The module path as written (relative to the module directory, or absolute).
    pub path: Vec<u8>,
    /// Its dependencies' paths, in file order (the load order reversed).
    pub deps: Vec<Vec<u8>>,
}

/// Parses `modules.dep`: `PATH: DEP DEP ...` per line; blank lines are skipped.
pub fn parse_modules_dep(text: &[u8]) -> Result<Vec<DepLine>, String> {
    let mut lines = Vec::new();
    for (number, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let colon = line
            .windows(2)
            .position(|w| w == b": ")
            .or_else(|| line.ends_with(b":").then(|| line.len() - 1))
            .ok_or_else(|| format!("modules.dep:{}: no ':'", number + 1))?;
        let deps = line[colon + 1..]
            .split(|&b| b == b' ')
            .filter(|d| !d.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        lines.push(DepLine {
            path: line[..colon].to_vec(),
            deps,
        });
    }
    Ok(lines)
}

/// An edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Index of the user module.
    pub from: usize,
    /// Index of the providing module.
    pub to: usize,
    /// Symbols `from` uses from `to` (empty when inferred).
    pub symbols: BTreeSet<Vec<u8>>,
    /// Whether the edge was inferred from modules.dep rather than read from the modules.
    pub inferred: bool,
}

/// The dependency graph of a tree.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The modules.dep lines, one per module.
    pub modules: Vec<DepLine>,
    /// Module names, parallel to `modules`.
    pub names: Vec<Vec<u8>>,
    /// Each module's dependency closure as indexes, parallel to `modules`.
    pub closure: Vec<Vec<usize>>,
    /// Direct edges.
    pub edges: Vec<Edge>,
}

/// What one module file provides and uses; `None` when it could not be read.
type SymbolInfo = Option<(Vec<Vec<u8>>, Vec<Vec<u8>>)>;

fn read_symbols(path: &Path, version: KmodVersion) -> SymbolInfo {
    let options = ReadOptions {
        version,
        gzip: true,
        ..ReadOptions::default()
    };
    let info = read_module(path, &options).ok()?;
    let exports = info.exports.ok()?.into_iter().map(|e| e.name).collect();
    let imports = info.imports.into_iter().map(|i| i.name).collect();
    Some((exports, imports))
}

/// The smallest set of edges from `module` whose closure is its modules.dep list: the
/// dependencies not reachable through another dependency.
fn inferred_edges(module: usize, closure: &[Vec<usize>]) -> Vec<usize> {
    let deps = &closure[module];
    deps.iter()
        .copied()
        .filter(|&d| {
            !deps
                .iter()
                .any(|&other| other != d && closure[other].contains(&d))
        })
        .collect()
}

impl Graph {
    /// Builds the graph from modules.dep lines; module files (relative paths resolved against
    /// `module_dir`) are read unless `symbols` is false.
    pub fn build(
        modules: Vec<DepLine>,
        module_dir: &Path,
        symbols: bool,
        version: KmodVersion,
    ) -> Graph {
        let names: Vec<Vec<u8>> = modules.iter().map(|m| modname_from_path(&m.path)).collect();
        let by_path: HashMap<&[u8], usize> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.path.as_slice(), i))
            .collect();
        let closure: Vec<Vec<usize>> = modules
            .iter()
            .map(|m| {
                m.deps
                    .iter()
                    .filter_map(|d| by_path.get(d.as_slice()).copied())
                    .collect()
            })
            .collect();
        let infos: Vec<SymbolInfo> = if symbols {
            modules
                .par_iter()
                .map(|m| {
                    let path = Path::new(OsStr::from_bytes(&m.path));
                    read_symbols(&module_dir.join(path), version)
                })
                .collect()
        } else {
            vec![None; modules.len()]
        };
        let mut edges = Vec::new();
        for (from, deps) in closure.iter().enumerate() {
            let Some((_, imports)) = &infos[from] else {
                for to in inferred_edges(from, &closure) {
                    edges.push(Edge {
                        from,
                        to,
                        symbols: BTreeSet::new(),
                        inferred: true,
                    });
                }
                continue;
            };
            let mut found: BTreeMap<usize, BTreeSet<Vec<u8>>> = BTreeMap::new();
            for symbol in imports {
                let provider = deps.iter().copied().find(|&d| {
                    infos[d]
                        .as_ref()
                        .is_some_and(|(exports, _)| exports.contains(symbol))
                });
                if let Some(to) = provider {
                    found.entry(to).or_default().insert(symbol.clone());
                }
            }
            for (to, symbols) in found {
                edges.push(Edge {
                    from,
                    to,
                    symbols,
                    inferred: false,
                });
            }
        }
        Graph {
            modules,
            names,
            closure,
            edges,
        }
    }

    /// The module named (or with the path) `wanted`.
    pub fn find(&self, wanted: &str) -> Option<usize> {
        let as_name = normalize_modname(wanted.as_bytes());
        self.modules
            .iter()
            .position(|m| m.path == wanted.as_bytes())
            .or_else(|| self.names.iter().position(|n| *n == as_name))
    }

    /// The modules to show: all, or one module and its closure.
    pub fn selection(&self, root: Option<usize>) -> Vec<usize> {
        match root {
            None => (0..self.modules.len()).collect(),
            Some(r) => {
                let mut chosen = vec![r];
                chosen.extend(&self.closure[r]);
                chosen
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn dot_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The graph restricted to `selection`, as JSON.
pub fn to_json(graph: &Graph, selection: &[usize]) -> String {
    let chosen: BTreeSet<usize> = selection.iter().copied().collect();
    let mut out = String::from("{\n  \"modules\": [");
    for (n, &i) in selection.iter().enumerate() {
        out.push_str(if n == 0 { "\n    {" } else { ",\n    {" });
        out.push_str("\"name\": ");
        json_string(&text(&graph.names[i]), &mut out);
        out.push_str(", \"path\": ");
        json_string(&text(&graph.modules[i].path), &mut out);
        out.push_str(", \"depends\": [");
        for (k, &d) in graph.closure[i].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            json_string(&text(&graph.names[d]), &mut out);
        }
        out.push_str("]}");
    }
    out.push_str("\n  ],\n  \"edges\": [");
    let mut first = true;
    for e in graph
        .edges
        .iter()
        .filter(|e| chosen.contains(&e.from) && chosen.contains(&e.to))
    {
        out.push_str(if first { "\n    {" } else { ",\n    {" });
        first = false;
        out.push_str("\"from\": ");
        json_string(&text(&graph.names[e.from]), &mut out);
        out.push_str(", \"to\": ");
        json_string(&text(&graph.names[e.to]), &mut out);
        out.push_str(", \"symbols\": [");
        for (k, s) in e.symbols.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            json_string(&text(s), &mut out);
        }
        let _ = write!(out, "], \"inferred\": {}}}", e.inferred);
    }
    out.push_str("\n  ]\n}\n");
    out
}

/// The graph restricted to `selection`, as Graphviz DOT.
pub fn to_dot(graph: &Graph, selection: &[usize]) -> String {
    const SHOWN_SYMBOLS: usize = 3;
    let chosen: BTreeSet<usize> = selection.iter().copied().collect();
    let mut out = String::from("digraph modules {\n  rankdir=LR;\n  node [shape=box];\n");
    for &i in selection {
        out.push_str("  ");
        dot_string(&text(&graph.names[i]), &mut out);
        out.push_str(" [tooltip=");
        dot_string(&text(&graph.modules[i].path), &mut out);
        out.push_str("];\n");
    }
    for e in graph
        .edges
        .iter()
        .filter(|e| chosen.contains(&e.from) && chosen.contains(&e.to))
    {
        out.push_str("  ");
        dot_string(&text(&graph.names[e.from]), &mut out);
        out.push_str(" -> ");
        dot_string(&text(&graph.names[e.to]), &mut out);
        if e.inferred {
            out.push_str(" [style=dashed]");
        } else {
            let mut label: Vec<String> = e
                .symbols
                .iter()
                .take(SHOWN_SYMBOLS)
                .map(|s| text(s))
                .collect();
            if e.symbols.len() > SHOWN_SYMBOLS {
                label.push(format!("+{} more", e.symbols.len() - SHOWN_SYMBOLS));
            }
            out.push_str(" [label=");
            dot_string(&label.join("\n"), &mut out);
            out.push(']');
        }
        out.push_str(";\n");
    }
    out.push_str("}\n");
    out
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let given_file = args.basedir.is_none() && args.path.is_file();
    let (module_dir, location) = if given_file {
        let dir = args
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, None)
    } else {
        let location = TreeLocation::from_args(args.basedir.as_deref(), &args.path, args.compat)?;
        (location.module_dir(), Some(location))
    };
    let dep_file = if given_file {
        args.path.clone()
    } else {
        module_dir.join("modules.dep")
    };
    let mut _scratch = None;
    let dep_text = match (&location, args.run || !dep_file.exists()) {
        (Some(location), true) => {
            let options = PipelineOptions {
                compat: args.compat,
                config: args.config.clone(),
                gzip: true,
            };
            let (scratch, written) = run_into_scratch(location, &options)?;
            let path = written.join("modules.dep");
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            _scratch = Some(scratch);
            bytes
        }
        _ => std::fs::read(&dep_file).map_err(|e| format!("{}: {e}", dep_file.display()))?,
    };
    let lines = parse_modules_dep(&dep_text).map_err(|e| format!("{}: {e}", dep_file.display()))?;
    let graph = Graph::build(lines, &module_dir, !args.no_symbols, args.compat);
    let root = match &args.module {
        None => None,
        Some(name) => Some(
            graph
                .find(name)
                .ok_or_else(|| format!("{name}: no such module in {}", dep_file.display()))?,
        ),
    };
    let selection = graph.selection(root);
    let rendered = match args.format {
        Format::Dot => to_dot(&graph, &selection),
        Format::Json => to_json(&graph, &selection),
    };
    std::io::stdout()
        .lock()
        .write_all(rendered.as_bytes())
        .map_err(|e| format!("stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_infers_the_smallest_edge_set() {
        let text = b"a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\n\n";
        let lines = parse_modules_dep(text).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].deps, vec![b"b.ko".to_vec(), b"c.ko".to_vec()]);
        let graph = Graph::build(lines, Path::new("/nonexistent"), true, KmodVersion::V34);
        let edges: Vec<(usize, usize, bool)> = graph
            .edges
            .iter()
            .map(|e| (e.from, e.to, e.inferred))
            .collect();
        assert_eq!(edges, vec![(0, 1, true), (1, 2, true)]);
        assert_eq!(graph.find("a"), Some(0));
        assert_eq!(graph.selection(Some(1)), vec![1, 2]);
        let json = to_json(&graph, &graph.selection(Some(1)));
        assert!(json.contains("\"from\": \"b\", \"to\": \"c\""), "{json}");
        assert!(!json.contains("\"from\": \"a\""), "{json}");
    }

    #[test]
    fn rejects_lines_without_colon() {
        assert!(parse_modules_dep(b"a.ko b.ko\n").is_err());
    }
}
