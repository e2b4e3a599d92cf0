//! Finding the modules (spec §3): module names, duplicate resolution by override/search
//! priority and exclusions here; the directory walk in `walk`, file-list mode in
//! `file_list`.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::bmsg;
use crate::config::{Config, SearchEntry};
use crate::diag::Diag;
use crate::fs_at::FileKey;
use crate::names::modname_from_path;
use crate::record::{GraphModule, ModuleRecord};

/// A module file kept for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredModule {
    /// The module name (basename up to the first `.`, dashes as underscores). Set once by
    /// [`DiscoveredModule::new`], which also hashes it for the [`Registry`].
    pub modname: Vec<u8>,
    /// The absolute path as kmod builds it (not canonicalised).
    pub path: Vec<u8>,
    /// The path relative to the module directory, if the module is inside it.
    pub relpath: Option<Vec<u8>>,
    /// How many bytes of `relpath` the key of [`DiscoveredModule::uncrelpath`] takes.
    uncrelpath_len: usize,
    /// The hash the [`Registry`] files `modname` under, worked out where the module was
    /// found (on the walk's listing threads) rather than on the thread that registers it.
    name_hash: u64,
    /// The file's identity as the walk saw it: for every module when the walk was asked to
    /// `stat` them (for `--cache`), otherwise for compressed ones, whose size orders and
    /// sizes their reads.
    pub key: Option<FileKey>,
    /// Whether the walk found a regular file at `path` (see
    /// [`DiscoveredModule::found_regular`]).
    found_regular: bool,
}

impl DiscoveredModule {
    /// Register `path` under `dirname` the way `depmod_module_add` does.
    pub fn new(path: Vec<u8>, dirname: &[u8]) -> Self {
        let modname = modname_from_path(&path);
        let relpath = (path.len() > dirname.len()
            && path.starts_with(dirname)
            && path[dirname.len()] == b'/')
            .then(|| path[dirname.len() + 1..].to_vec());
        let uncrelpath_len = relpath.as_ref().map_or(0, |rel| {
            // (position of the last '/' relative to relpath) + modname + NUL + ".ko"
            let slash = path.iter().rposition(|&b| b == b'/').unwrap_or(0) as isize;
            let rel_start = (dirname.len() + 1) as isize;
            let len = slash - rel_start + modname.len() as isize + 1 + 3;
            len.clamp(0, rel.len() as isize) as usize
        });
        DiscoveredModule {
            name_hash: name_hash(&modname),
            modname,
            path,
            relpath,
            uncrelpath_len,
            key: None,
            found_regular: false,
        }
    }

    /// The module, found by the walk to be a regular file (a symbolic link followed).
    pub(crate) fn regular_file(self) -> Self {
        DiscoveredModule {
            found_regular: true,
            ..self
        }
    }

    /// Whether the walk found a regular file at the module's path; not said of modules
    /// named on the command line, which may be anything.
    pub fn found_regular(&self) -> bool {
        self.found_regular
    }

    /// The module with its file's identity.
    pub fn with_key(self, key: Option<FileKey>) -> Self {
        DiscoveredModule { key, ..self }
    }

    /// The key `modules.order` lines are matched against (§3.5), if `relpath` exists: a
    /// prefix of it (no copy is kept, as the run has one per module).
    pub fn uncrelpath(&self) -> Option<&[u8]> {
        self.relpath
            .as_deref()
            .map(|rel| &rel[..self.uncrelpath_len])
    }

    /// The module with `record`, as the index files see it: the path they give is relative
    /// inside the module directory, else absolute.
    pub fn into_graph_module(self, record: ModuleRecord) -> GraphModule {
        GraphModule {
            output_path: self.relpath.unwrap_or_else(|| self.path.clone()),
            name: self.modname,
            path: self.path,
            record,
        }
    }

    /// Length of `dir/` plus as many basename bytes as the module name has (§3.4).
    fn priority_len(&self) -> usize {
        let slash = self
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |s| s + 1);
        (slash + self.modname.len()).min(self.path.len())
    }
}

/// Whether `name` ends with a module extension kmod was built with (`.ko.gz` only if `gzip`).
pub fn has_module_extension(name: &[u8], gzip: bool) -> bool {
    let exts: [&[u8]; 4] = [b".ko", b".ko.xz", b".ko.zst", b".ko.gz"];
    let known = if gzip { &exts[..] } else { &exts[..3] };
    known
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Whether a module's name says it is compressed (decoding then dominates its read time).
pub fn looks_compressed(path: &[u8]) -> bool {
    [&b".xz"[..], b".zst", b".gz"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The prefix of `path` compared by search/override rules, relative to `dirname`.
fn relative_prefix<'a>(path: &'a [u8], len: usize, dirname: &[u8]) -> Option<&'a [u8]> {
    if path.starts_with(dirname) && len > dirname.len() {
        Some(&path[dirname.len() + 1..len])
    } else {
        None
    }
}

fn starts_with_dir(path: &[u8], len: usize, dir: &[u8]) -> bool {
    len > dir.len() && path.get(dir.len()) == Some(&b'/') && path.starts_with(dir)
}

/// Whether the registered module `old` beats a new file `new_path` with the same name (§3.4).
pub fn old_has_priority(
    config: &Config,
    dirname: &[u8],
    old: &DiscoveredModule,
    new: &DiscoveredModule,
) -> bool {
    let new_len = new.priority_len();
    let old_len = old.priority_len();
    let rel_new = relative_prefix(&new.path, new_len, dirname);
    let rel_old = relative_prefix(&old.path, old_len, dirname);

    for entry in &config.overrides {
        if rel_new == Some(entry.as_slice()) {
            return false;
        }
        if rel_old == Some(entry.as_slice()) {
            return true;
        }
    }

    let (mut builtin_prio, mut old_prio, mut new_prio) = (-1i64, -1i64, -1i64);
    let under = |rel: Option<&[u8]>, dir: &[u8]| {
        rel.is_some_and(|rel| {
            rel.len() > dir.len() && rel[dir.len()] == b'/' && rel.starts_with(dir)
        })
    };
    let mut i: i64 = 0;
    for entry in &config.search {
        match entry {
            SearchEntry::BuiltIn => builtin_prio = i,
            SearchEntry::External => {
                for ext in &config.externals {
                    if starts_with_dir(&new.path, new_len, ext) {
                        new_prio = i;
                    }
                    if starts_with_dir(&old.path, old_len, ext) {
                        old_prio = i;
                    }
                    i += 1;
                }
            }
            SearchEntry::Path(dir) => {
                if under(rel_new, dir) {
                    new_prio = i;
                } else if under(rel_old, dir) {
                    old_prio = i;
                }
            }
        }
        i += 1;
    }
    if new_prio < 0 {
        new_prio = builtin_prio;
    }
    if old_prio < 0 {
        old_prio = builtin_prio;
    }
    new_prio <= old_prio
}

/// The modules found so far, by name (kmod's `modules_by_name`).
#[derive(Debug, Default)]
pub struct Registry {
    /// Registered modules; a replaced module's slot is reused by its replacement.
    modules: Vec<DiscoveredModule>,
    /// Positions in `modules`, by the module's name (its FxHash): the names are the
    /// modules' own, not copies.
    by_name: HashTable<usize>,
}

impl Registry {
    /// Makes room for `count` more modules: the walk counts them before it registers them,
    /// so the registry does not grow (and copy itself) while the serial replay runs.
    pub fn reserve(&mut self, count: usize) {
        self.modules.reserve(count);
        let modules = &self.modules;
        self.by_name.reserve(count, |&slot| modules[slot].name_hash);
    }

    /// The position of the module with the name of `module`.
    fn slot_of(&self, module: &DiscoveredModule) -> Option<usize> {
        self.by_name
            .find(module.name_hash, |&slot| {
                self.modules[slot].modname == module.modname
            })
            .copied()
    }

    /// Adds `module`, whose name is not registered yet.
    fn insert(&mut self, module: DiscoveredModule) {
        let hash = module.name_hash;
        let slot = self.modules.len();
        self.modules.push(module);
        let modules = &self.modules;
        self.by_name
            .insert_unique(hash, slot, |&slot| modules[slot].name_hash);
    }

    /// Offer a candidate file: it replaces a registered module of the same name unless that one
    /// has priority.
    pub fn offer(&mut self, config: &Config, dirname: &[u8], new: DiscoveredModule, diag: &Diag) {
        let rel_new = new.path.get(dirname.len() + 1..).unwrap_or_default();
        if diag.enabled(crate::diag::Level::Debug) {
            diag.debug(bmsg!("try ", rel_new, " (", new.modname, ")"));
        }
        if let Some(slot) = self.slot_of(&new) {
            let old = &self.modules[slot];
            if old_has_priority(config, dirname, old, &new) {
                diag.debug(bmsg!(
                    "Ignored lower priority: ",
                    new.path,
                    ", higher: ",
                    old.path
                ));
                return;
            }
            let rel_old = old.relpath.as_deref().unwrap_or(b"(null)");
            diag.debug(bmsg!(
                "Replace lower priority ",
                rel_old,
                " with new module ",
                rel_new
            ));
            self.modules[slot] = new;
            return;
        }
        self.insert(new);
    }

    /// Adds a module whose name is not taken yet; otherwise returns the path of the module
    /// registered under that name.
    pub fn add_unique(&mut self, module: DiscoveredModule) -> Result<(), Vec<u8>> {
        match self.slot_of(&module) {
            Some(slot) => Err(self.modules[slot].path.clone()),
            None => {
                self.insert(module);
                Ok(())
            }
        }
    }

    /// The registered modules, in no particular order.
    pub fn into_modules(self) -> Vec<DiscoveredModule> {
        self.modules
    }
}

/// The hash a module name is registered under.
fn name_hash(name: &[u8]) -> u64 {
    FxBuildHasher.hash_one(name)
}

/// Whether the walk skips an entry called `name` (§3.2).
pub fn is_excluded(config: &Config, name: &[u8]) -> bool {
    matches!(name, b"." | b".." | b"build" | b"source") || config.excludes.iter().any(|e| e == name)
}

mod file_list;
mod walk;

pub use file_list::from_file_list;
pub use walk::{plain_listing, search, DirListing, ListingCache};

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &[u8] = b"/lib/modules/1.0";

    fn module(rel: &str) -> DiscoveredModule {
        DiscoveredModule::new(bmsg!(DIR, "/", rel), DIR)
    }

    fn winner(config: &Config, first: &str, second: &str) -> Vec<u8> {
        let mut registry = Registry::default();
        registry.offer(config, DIR, module(first), &Diag::new(0));
        registry.offer(config, DIR, module(second), &Diag::new(0));
        let modules = registry.into_modules();
        modules[0].relpath.clone().unwrap()
    }

    fn default_config() -> Config {
        Config {
            search: vec![SearchEntry::Path(b"updates".to_vec())],
            ..Config::default()
        }
    }

    #[test]
    fn registration_paths() {
        let m = module("kernel/x/foo-bar.ko.xz");
        assert_eq!(m.modname, b"foo_bar");
        assert_eq!(m.uncrelpath(), Some(&b"kernel/x/foo-bar.ko"[..]));
        assert_eq!(module("top.ko").uncrelpath(), Some(&b"top.ko"[..]));
        let ext = DiscoveredModule::new(b"/ext/foo.ko".to_vec(), DIR);
        assert_eq!(ext.relpath, None);
        assert_eq!(
            ext.into_graph_module(Default::default()).output_path,
            b"/ext/foo.ko"
        );
    }

    #[test]
    fn updates_beats_kernel() {
        let config = default_config();
        assert_eq!(
            winner(&config, "kernel/a/m.ko", "updates/m.ko"),
            b"updates/m.ko"
        );
        assert_eq!(
            winner(&config, "updates/m.ko", "kernel/a/m.ko"),
            b"updates/m.ko"
        );
    }

    #[test]
    fn first_outside_updates_wins_last_inside_updates_wins() {
        let config = default_config();
        assert_eq!(
            winner(&config, "kernel/a/m.ko", "kernel/b/m.ko"),
            b"kernel/a/m.ko"
        );
        assert_eq!(
            winner(&config, "updates/a/m.ko", "updates/b/m.ko"),
            b"updates/b/m.ko"
        );
    }

    #[test]
    fn overrides_decide_first_and_match_exact_bytes() {
        let config = Config {
            search: vec![SearchEntry::Path(b"foo".to_vec()), SearchEntry::BuiltIn],
            overrides: vec![b"override/mod-simple".to_vec()],
            ..Config::default()
        };
        assert_eq!(
            winner(&config, "override/mod-simple.ko", "foo/mod-simple.ko"),
            b"override/mod-simple.ko"
        );
        // `override mod_simple` does not match a file named mod-simple.ko.
        let config = Config {
            overrides: vec![b"override/mod_simple".to_vec()],
            ..default_config()
        };
        assert_eq!(
            winner(&config, "kernel/mod-simple.ko", "override/mod-simple.ko"),
            b"kernel/mod-simple.ko"
        );
    }

    #[test]
    fn same_prefix_needs_a_slash() {
        // search foobar foo built-in (pushed to the head: built-in, foo, foobar).
        let config = Config {
            search: vec![
                SearchEntry::BuiltIn,
                SearchEntry::Path(b"foo".to_vec()),
                SearchEntry::Path(b"foobar".to_vec()),
            ],
            ..Config::default()
        };
        assert_eq!(
            winner(&config, "foo/mod-simple.ko", "foobar/mod-simple.ko"),
            b"foobar/mod-simple.ko"
        );
        assert_eq!(
            winner(&config, "foobar/mod-simple.ko", "foo/mod-simple.ko"),
            b"foobar/mod-simple.ko"
        );
    }

    #[test]
    fn externals_use_extra_indices() {
        // search external foobar foo built-in → list: built-in, foo, foobar, external.
        let config = Config {
            search: vec![
                SearchEntry::BuiltIn,
                SearchEntry::Path(b"foo".to_vec()),
                SearchEntry::Path(b"foobar".to_vec()),
                SearchEntry::External,
            ],
            externals: vec![b"/ext".to_vec()],
            ..Config::default()
        };
        let mut registry = Registry::default();
        registry.offer(&config, DIR, module("foobar/mod-simple.ko"), &Diag::new(0));
        registry.offer(
            &config,
            DIR,
            DiscoveredModule::new(b"/ext/mod-simple.ko".to_vec(), DIR),
            &Diag::new(0),
        );
        assert_eq!(registry.into_modules()[0].path, b"/ext/mod-simple.ko");
    }

    #[test]
    fn extensions() {
        assert!(has_module_extension(b"a.ko", false));
        assert!(!has_module_extension(b".ko", false));
        assert!(has_module_extension(b"a.ko.zst", false));
        assert!(!has_module_extension(b"a.ko.gz", false));
        assert!(has_module_extension(b"a.ko.gz", true));
        assert!(!has_module_extension(b"a.o", true));
    }
}
