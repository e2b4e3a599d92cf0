//! Finding the modules (spec §3): the directory walk, exclusions, module names, duplicate
//! resolution by override/search priority, and file-list mode.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use rayon::prelude::*;

use crate::bmsg;
use crate::config::{Config, SearchEntry};
use crate::diag::{strerror, Diag};
use crate::fs_at::{DirHandle, FileKey};
use crate::names::modname_from_path;
use crate::record::{GraphModule, ModuleRecord};
use rustc_hash::FxHashMap;

/// A module file kept for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredModule {
    /// The module name (basename up to the first `.`, dashes as underscores).
    pub modname: Vec<u8>,
    /// The absolute path as kmod builds it (not canonicalised).
    pub path: Vec<u8>,
    /// The path relative to the module directory, if the module is inside it.
    pub relpath: Option<Vec<u8>>,
    /// The key `modules.order` lines are matched against (§3.5), if `relpath` exists.
    pub uncrelpath: Option<Vec<u8>>,
    /// The file's identity, when the walk was asked to `stat` modules (for `--cache`).
    pub key: Option<FileKey>,
}

impl DiscoveredModule {
    /// Register `path` under `dirname` the way `depmod_module_add` does.
    pub fn new(path: Vec<u8>, dirname: &[u8]) -> Self {
        let modname = modname_from_path(&path);
        let relpath = (path.len() > dirname.len()
            && path.starts_with(dirname)
            && path[dirname.len()] == b'/')
            .then(|| path[dirname.len() + 1..].to_vec());
        let uncrelpath = relpath.as_ref().map(|rel| {
            // (position of the last '/' relative to relpath) + modname + NUL + ".ko"
            let slash = path.iter().rposition(|&b| b == b'/').unwrap_or(0) as isize;
            let rel_start = (dirname.len() + 1) as isize;
            let len = slash - rel_start + modname.len() as isize + 1 + 3;
            let len = len.clamp(0, rel.len() as isize) as usize;
            rel[..len].to_vec()
        });
        DiscoveredModule {
            modname,
            path,
            relpath,
            uncrelpath,
            key: None,
        }
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
    let mut exts: Vec<&[u8]> = vec![b".ko", b".ko.xz", b".ko.zst"];
    if gzip {
        exts.push(b".ko.gz");
    }
    exts.iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
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
    /// Index in `modules` by module name.
    by_name: FxHashMap<Vec<u8>, usize>,
}

impl Registry {
    /// Offer a candidate file: it replaces a registered module of the same name unless that one
    /// has priority.
    pub fn offer(&mut self, config: &Config, dirname: &[u8], new: DiscoveredModule, diag: &Diag) {
        let rel_new = new.path.get(dirname.len() + 1..).unwrap_or_default();
        if diag.enabled(crate::diag::Level::Debug) {
            diag.debug(bmsg!("try ", rel_new, " (", new.modname, ")"));
        }
        if let Some(&slot) = self.by_name.get(&new.modname) {
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
        self.by_name.insert(new.modname.clone(), self.modules.len());
        self.modules.push(new);
    }

    /// Adds a module whose name is not taken yet; otherwise returns the path of the module
    /// registered under that name.
    pub fn add_unique(&mut self, module: DiscoveredModule) -> Result<(), Vec<u8>> {
        match self.by_name.get(&module.modname) {
            Some(&slot) => Err(self.modules[slot].path.clone()),
            None => {
                self.by_name
                    .insert(module.modname.clone(), self.modules.len());
                self.modules.push(module);
                Ok(())
            }
        }
    }

    /// The registered modules, in no particular order.
    pub fn into_modules(self) -> Vec<DiscoveredModule> {
        self.modules
    }
}

/// Whether the walk skips an entry called `name` (§3.2).
pub fn is_excluded(config: &Config, name: &[u8]) -> bool {
    matches!(name, b"." | b".." | b"build" | b"source") || config.excludes.iter().any(|e| e == name)
}

/// Failure to open the module directory itself (kmod: FATAL "could not search modules").
#[derive(Debug, thiserror::Error)]
#[error("{}", strerror(.0))]
pub struct SearchError(#[from] pub std::io::Error);

/// One directory as the walk listed it: its key, and the names of its module files and
/// subdirectories in directory order (see `ListingCache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirListing {
    /// The directory's own key when it was listed.
    pub key: FileKey,
    /// Whether the key had settled when the directory was listed
    /// ([`FileKey::is_settled`]): only then does an unchanged key vouch for the listing.
    /// An unsettled listing is kept to be compared with the directory's next listing.
    pub settled: bool,
    /// Each entry as a kind byte (`d` subdirectory, `f` module file), its name and a NUL
    /// (which no file name contains): one allocation per directory.
    packed: Vec<u8>,
}

impl DirListing {
    /// A listing of `entries` (name, is a subdirectory) made when the directory's key was
    /// `key` (`settled` or not); `None` if a name is empty or contains NUL or `/`.
    pub fn new<'a>(
        key: FileKey,
        settled: bool,
        entries: impl Iterator<Item = (&'a [u8], bool)>,
    ) -> Option<DirListing> {
        let mut packed = Vec::new();
        for (name, is_dir) in entries {
            if name.is_empty() || name.contains(&0) || name.contains(&b'/') {
                return None;
            }
            packed.push(if is_dir { b'd' } else { b'f' });
            packed.extend_from_slice(name);
            packed.push(0);
        }
        Some(DirListing {
            key,
            settled,
            packed,
        })
    }

    /// Whether `other` lists the same entries in the same order.
    pub fn same_entries(&self, other: &DirListing) -> bool {
        self.packed == other.packed
    }

    /// The entries: each name and whether it is a subdirectory, in directory order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        self.packed
            .split(|&b| b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| (&entry[1..], entry[0] == b'd'))
    }

    /// The packed form of the entries (for storing the listing).
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }

    /// A listing from the packed form [`DirListing::packed`] gave; `None` if `packed` is
    /// not a valid packed listing.
    pub fn from_packed(key: FileKey, settled: bool, packed: Vec<u8>) -> Option<DirListing> {
        Self::valid(&packed).then_some(DirListing {
            key,
            settled,
            packed,
        })
    }

    /// Whether `packed` is a valid packed listing.
    fn valid(packed: &[u8]) -> bool {
        packed.is_empty()
            || (packed.last() == Some(&0)
                && packed[..packed.len() - 1].split(|&b| b == 0).all(|entry| {
                    entry.len() >= 2 && matches!(entry[0], b'd' | b'f') && !entry.contains(&b'/')
                }))
    }
}

/// How the walk may use and keep directory listings (`--cache`).
///
/// A directory is listed from `known` instead of being read when its own [`FileKey`] is the
/// one stored with the listing and has settled: creating, removing or renaming an entry
/// changes a directory's `mtime` and `ctime`. Only plain listings are kept — every entry a
/// regular file or a directory, nothing that gives a message — so a reused listing replays
/// exactly as reading the directory would. Module files are `stat`ed either way, for their
/// own keys.
#[derive(Debug, Clone, Copy)]
pub struct ListingCache<'a> {
    /// Listings of an earlier run made under the same rules.
    pub known: Option<&'a FxHashMap<Vec<u8>, DirListing>>,
    /// When the run started (see [`FileKey::is_settled`]).
    pub started: i128,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// The registered modules.
    pub registry: Registry,
    /// The plain listings of the directories walked, by path (with a [`ListingCache`] only).
    pub listings: FxHashMap<Vec<u8>, DirListing>,
    /// How many of them were read rather than reused.
    pub listings_read: usize,
    /// Whether some directory walked has no listing in `listings`.
    pub unlisted: bool,
}

/// Walk the module directory and the external directories, registering candidates (§3.1).
///
/// With a [`ListingCache`], every module file found is also `stat`ed and its [`FileKey`]
/// kept in [`DiscoveredModule::key`], and unchanged directories are not read again.
pub fn search(
    config: &Config,
    dirname: &[u8],
    gzip: bool,
    cache: Option<ListingCache<'_>>,
    diag: &Diag,
) -> Result<SearchResult, SearchError> {
    let mut result = SearchResult::default();
    let rules = ListRules {
        config,
        gzip,
        cache,
    };
    search_root(&mut result, rules, dirname, dirname, diag)?;
    for ext in &config.externals {
        let _ = search_root(&mut result, rules, dirname, ext, diag);
    }
    Ok(result)
}

/// What a directory listing keeps.
#[derive(Clone, Copy)]
struct ListRules<'a> {
    config: &'a Config,
    /// Whether `.ko.gz` files are modules.
    gzip: bool,
    /// With `--cache`: module files are `stat`ed for their [`FileKey`], and listings are
    /// reused and kept.
    cache: Option<ListingCache<'a>>,
}

fn search_root(
    result: &mut SearchResult,
    rules: ListRules<'_>,
    dirname: &[u8],
    root: &[u8],
    diag: &Diag,
) -> Result<(), SearchError> {
    let config = rules.config;
    let prefix = bmsg!(root, "/");
    let listing = match Listing::list(rules, &prefix, None) {
        Ok(listing) => listing,
        Err(err) => {
            diag.error(bmsg!(
                "could not open directory ",
                root,
                ": ",
                strerror(&err)
            ));
            return Err(SearchError(err));
        }
    };
    let walk = Walk {
        config,
        dirname,
        diag,
    };
    walk.replay(result, listing, prefix, FIRST_DIR_FD);
    Ok(())
}

/// The descriptor number kmod's walk has for the module directory itself: kmod prints its
/// directory descriptors in two error messages, and each level of the walk holds one more open
/// (0–2 are the standard streams).
const FIRST_DIR_FD: u32 = 3;

/// The entries of one directory that matter to the walk, in directory order: module files,
/// subdirectories (listed in turn) and the entries that give an error message.
///
/// Listing is the costly part of the walk (a `getdents` per directory, a `stat` where the
/// entry type is unknown), and directories are independent, so subdirectories are listed in
/// parallel. The walk proper then replays the listings in kmod's order, so registrations,
/// messages and their order are those of a sequential walk.
struct Listing {
    entries: Vec<Listed>,
    /// The listing to keep for this directory (plain and settled), and whether it was read
    /// rather than reused.
    kept: Option<(DirListing, bool)>,
}

/// One entry of a [`Listing`].
struct Listed {
    name: Vec<u8>,
    kind: ListedKind,
}

enum ListedKind {
    /// A regular file with a module extension, and its key if asked for.
    Module(Option<FileKey>),
    /// A subdirectory, listed, or the error opening it.
    Dir(Result<Listing, std::io::Error>),
    /// A subdirectory still to be listed (only while a [`Listing`] is made).
    Pending,
    /// An entry of unknown type whose `stat` failed.
    StatFailed(std::io::Error),
    /// Not a regular file nor a directory: its `st_mode` file type bits.
    Unsupported(u32),
}

impl Listing {
    /// Lists the directory `prefix` (which ends in `/`) and, in parallel, every subdirectory
    /// below it — from a known listing where one holds. `parent` is the directory holding
    /// this one and its name there, when it is held open.
    fn list(
        rules: ListRules<'_>,
        prefix: &[u8],
        parent: Option<(&DirHandle, &[u8])>,
    ) -> std::io::Result<Listing> {
        let path = &prefix[..prefix.len() - 1];
        let read_dir = || std::fs::read_dir(OsStr::from_bytes(path));
        let Some(cache) = rules.cache else {
            return Listing::read(rules, read_dir()?, prefix, None, None);
        };
        let handle = match parent {
            Some((dir, name)) => dir.open_dir(name),
            None => DirHandle::open(path),
        };
        let Ok(handle) = handle else {
            // Reading it fails the same way, with the error kmod's walk reports.
            return Listing::read(rules, read_dir()?, prefix, None, None);
        };
        let dir_key = handle.stat().ok().map(|stat| stat.key);
        let known = dir_key.and_then(|key| {
            cache
                .known?
                .get(path)
                .filter(|listing| listing.settled && listing.key == key)
        });
        if let Some(known) = known {
            if let Some(listing) = Listing::reuse(rules, known, prefix, &handle) {
                return Ok(listing);
            }
        }
        let dir_key = dir_key.map(|key| (key, key.is_settled(cache.started)));
        Listing::read(rules, read_dir()?, prefix, dir_key, Some(&handle))
    }

    /// The listing of `prefix` (open as `dir`) from `known`, with each module file `stat`ed;
    /// `None` if one is no longer a regular file (then the directory is read).
    fn reuse(
        rules: ListRules<'_>,
        known: &DirListing,
        prefix: &[u8],
        dir: &DirHandle,
    ) -> Option<Listing> {
        let mut listed = Vec::new();
        for (name, is_dir) in known.entries() {
            let kind = if is_dir {
                ListedKind::Pending
            } else {
                match dir.stat_entry(name) {
                    Ok(stat) if stat.is_file => ListedKind::Module(Some(stat.key)),
                    _ => return None,
                }
            };
            listed.push(Listed {
                name: name.to_vec(),
                kind,
            });
        }
        let mut listing = Listing {
            entries: listed,
            kept: Some((known.clone(), false)),
        };
        listing.list_subdirectories(rules, prefix, Some(dir));
        Some(listing)
    }

    /// Lists `entries` (the directory `prefix`, open as `dir` if held) and its
    /// subdirectories. With `dir_key` (the directory's key, and whether it has settled) a
    /// plain listing is kept.
    fn read(
        rules: ListRules<'_>,
        entries: std::fs::ReadDir,
        prefix: &[u8],
        dir_key: Option<(FileKey, bool)>,
        dir: Option<&DirHandle>,
    ) -> std::io::Result<Listing> {
        let ListRules { config, gzip, .. } = rules;
        let keys = rules.cache.is_some();
        let mut listed = Vec::new();
        let mut plain = true;
        for entry in entries {
            let Ok(entry) = entry else {
                plain = false;
                continue;
            };
            let name = entry.file_name();
            let name = name.as_bytes();
            let kind = match classify(config, gzip, name, entry.file_type()) {
                EntryClass::Skipped => continue,
                EntryClass::Module => {
                    // A regular file: its own `stat` (relative to the open directory) is
                    // the one a read through the path sees.
                    let key = keys
                        .then(|| entry.metadata().ok())
                        .flatten()
                        .map(|meta| FileKey::from_metadata(&meta));
                    plain &= key.is_some();
                    ListedKind::Module(key)
                }
                EntryClass::Dir => ListedKind::Pending,
                EntryClass::Other => {
                    plain = false;
                    match std::fs::metadata(OsStr::from_bytes(&bmsg!(prefix, name))) {
                        Err(err) => ListedKind::StatFailed(err),
                        Ok(meta) if meta.is_file() => {
                            if !has_module_extension(name, gzip) {
                                continue;
                            }
                            ListedKind::Module(keys.then(|| FileKey::from_metadata(&meta)))
                        }
                        Ok(meta) if meta.is_dir() => ListedKind::Pending,
                        Ok(meta) => ListedKind::Unsupported(file_type_bits(meta.file_type())),
                    }
                }
            };
            listed.push(Listed {
                name: name.to_vec(),
                kind,
            });
        }
        let kept = dir_key.filter(|_| plain).and_then(|(key, settled)| {
            let entries = listed.iter().map(|entry| {
                let is_dir = matches!(entry.kind, ListedKind::Pending);
                (entry.name.as_slice(), is_dir)
            });
            Some((DirListing::new(key, settled, entries)?, true))
        });
        let mut listing = Listing {
            entries: listed,
            kept,
        };
        listing.list_subdirectories(rules, prefix, dir);
        Ok(listing)
    }

    /// Lists the pending subdirectories (of `prefix`, open as `dir` if held), in parallel.
    fn list_subdirectories(
        &mut self,
        rules: ListRules<'_>,
        prefix: &[u8],
        dir: Option<&DirHandle>,
    ) {
        self.entries.par_iter_mut().for_each(|entry| {
            if matches!(entry.kind, ListedKind::Pending) {
                let path = bmsg!(prefix, entry.name, "/");
                let parent = dir.map(|dir| (dir, entry.name.as_slice()));
                entry.kind = ListedKind::Dir(Listing::list(rules, &path, parent));
            }
        });
    }
}

/// What the walk makes of a directory entry from its name and its type as the directory
/// reports it.
enum EntryClass {
    /// Excluded by name, or a regular file without a module extension.
    Skipped,
    /// A regular file with a module extension.
    Module,
    /// A subdirectory.
    Dir,
    /// Anything else (a symbolic link, an unknown type): the walk `stat`s it.
    Other,
}

fn classify(
    config: &Config,
    gzip: bool,
    name: &[u8],
    file_type: std::io::Result<std::fs::FileType>,
) -> EntryClass {
    if is_excluded(config, name) {
        return EntryClass::Skipped;
    }
    match file_type {
        Ok(t) if t.is_file() => match has_module_extension(name, gzip) {
            true => EntryClass::Module,
            false => EntryClass::Skipped,
        },
        Ok(t) if t.is_dir() => EntryClass::Dir,
        _ => EntryClass::Other,
    }
}

/// The listing the walk would keep for the directory at `path`, listed now while its key
/// is `key` (`settled` or not): `None` if it cannot be read or is not plain (see
/// [`ListingCache`]).
pub fn plain_listing(
    config: &Config,
    gzip: bool,
    path: &[u8],
    key: FileKey,
    settled: bool,
) -> Option<DirListing> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(OsStr::from_bytes(path)).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        let is_dir = match classify(config, gzip, name.as_bytes(), entry.file_type()) {
            EntryClass::Skipped => continue,
            EntryClass::Module => false,
            EntryClass::Dir => true,
            EntryClass::Other => return None,
        };
        names.push((name, is_dir));
    }
    let entries = names
        .iter()
        .map(|(name, is_dir)| (name.as_bytes(), *is_dir));
    DirListing::new(key, settled, entries)
}

/// The `S_IFMT` bits kmod prints for an unsupported file type.
fn file_type_bits(ft: std::fs::FileType) -> u32 {
    if ft.is_symlink() {
        0o120000
    } else if ft.is_block_device() {
        0o060000
    } else if ft.is_char_device() {
        0o020000
    } else if ft.is_fifo() {
        0o010000
    } else if ft.is_socket() {
        0o140000
    } else {
        0
    }
}

/// The fixed context of one walk.
struct Walk<'a> {
    config: &'a Config,
    dirname: &'a [u8],
    diag: &'a Diag,
}

impl Walk<'_> {
    /// Registers the modules of `listing` (the directory `prefix`, whose descriptor kmod
    /// would number `fd`) and reports its errors, in directory order, depth first.
    fn replay(&self, result: &mut SearchResult, listing: Listing, prefix: Vec<u8>, fd: u32) {
        let Walk {
            config,
            dirname,
            diag,
        } = *self;
        match listing.kept {
            Some((kept, read)) => {
                result.listings_read += usize::from(read);
                result
                    .listings
                    .insert(prefix[..prefix.len() - 1].to_vec(), kept);
            }
            None => result.unlisted = true,
        }
        let fd_text = fd.to_string();
        for Listed { name, kind } in listing.entries {
            match kind {
                ListedKind::Module(key) => {
                    let path = bmsg!(prefix, name);
                    let module = DiscoveredModule {
                        key,
                        ..DiscoveredModule::new(path, dirname)
                    };
                    result.registry.offer(config, dirname, module, diag);
                }
                ListedKind::Dir(Ok(sub)) => {
                    self.replay(result, sub, bmsg!(prefix, name, "/"), fd + 1)
                }
                ListedKind::Dir(Err(err)) => {
                    result.unlisted = true;
                    diag.error(bmsg!(
                        "openat(",
                        fd_text,
                        ", ",
                        name,
                        ", O_RDONLY): ",
                        strerror(&err)
                    ))
                }
                ListedKind::StatFailed(err) => diag.error(bmsg!(
                    "fstatat(",
                    fd_text,
                    ", ",
                    name,
                    "): ",
                    strerror(&err)
                )),
                ListedKind::Unsupported(mode) => diag.error(bmsg!(
                    "unsupported file type ",
                    prefix,
                    name,
                    ": ",
                    format!("{mode:o}")
                )),
                ListedKind::Pending => {}
            }
        }
    }
}

/// Why file-list mode stopped (each is a kmod FATAL).
#[derive(Debug, thiserror::Error)]
pub enum FileListError {
    /// A path not starting with `/`.
    #[error("{}: not absolute path.", String::from_utf8_lossy(.0))]
    NotAbsolute(Vec<u8>),
    /// The file cannot be stat'ed, or clashes with another by name.
    #[error("could not create module {}: {}", String::from_utf8_lossy(.0), .1)]
    CreateModule(Vec<u8>, String),
    /// The same path twice.
    #[error("could not add module {}: File exists", String::from_utf8_lossy(.0))]
    AddModule(Vec<u8>),
}

impl FileListError {
    /// The message as raw bytes (paths need not be UTF-8).
    pub fn message(&self) -> Vec<u8> {
        match self {
            FileListError::NotAbsolute(p) => bmsg!(p, ": not absolute path."),
            FileListError::CreateModule(p, e) => bmsg!("could not create module ", p, ": ", e),
            FileListError::AddModule(p) => bmsg!("could not add module ", p, ": File exists"),
        }
    }
}

/// Register the modules named on the command line (§3.6).
pub fn from_file_list(
    paths: &[Vec<u8>],
    dirname: &[u8],
    version: crate::compat::KmodVersion,
    diag: &Diag,
) -> Result<Registry, FileListError> {
    let mut registry = Registry::default();
    for path in paths {
        if path.first() != Some(&b'/') {
            return Err(FileListError::NotAbsolute(path.clone()));
        }
        if let Err(err) = std::fs::metadata(OsStr::from_bytes(path)) {
            return Err(FileListError::CreateModule(path.clone(), strerror(&err)));
        }
        let module = DiscoveredModule::new(path.clone(), dirname);
        if module.modname.is_empty() {
            return Err(FileListError::CreateModule(
                path.clone(),
                "No such file or directory".into(),
            ));
        }
        if let Err(existing_path) = registry.add_unique(module.clone()) {
            if existing_path == module.path {
                diag.error(bmsg!("hash_add_unique ", module.modname, ": File exists"));
                return Err(FileListError::AddModule(path.clone()));
            }
            // Debian's kmod 30 prints libkmod's messages with their source location.
            let location: &[u8] = if version == crate::compat::KmodVersion::V30 {
                b"../libkmod/libkmod-module.c:428 kmod_module_new_from_path() "
            } else {
                b""
            };
            diag.error(bmsg!(
                location,
                "kmod_module '",
                module.modname,
                "' already exists with different path: new-path='",
                module.path,
                "' old-path='",
                existing_path,
                "'"
            ));
            return Err(FileListError::CreateModule(
                path.clone(),
                "File exists".into(),
            ));
        }
    }
    Ok(registry)
}

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
        assert_eq!(m.uncrelpath.as_deref(), Some(&b"kernel/x/foo-bar.ko"[..]));
        assert_eq!(module("top.ko").uncrelpath.as_deref(), Some(&b"top.ko"[..]));
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
