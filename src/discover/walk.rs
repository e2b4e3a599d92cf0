//! The directory walk (§3.1–§3.2): directories listed in parallel, then replayed in kmod's
//! order so that registrations and messages are those of a sequential walk; with `--cache`,
//! unchanged directories are listed from the last walk's listings.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::{has_module_extension, is_excluded, looks_compressed, DiscoveredModule, Registry};
use crate::bmsg;
use crate::config::Config;
use crate::diag::{strerror, Diag};
use crate::fgets::PATH_MAX;
use crate::fs_at::{DirEntry, DirHandle, EntryKind, FileKey};

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
        dirname,
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
    /// The module directory, which module paths are made relative to.
    dirname: &'a [u8],
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
    let mut prefix = bmsg!(root, "/");
    let listing = match Listing::list(rules, &prefix, None, false) {
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
    result.registry.reserve(listing.module_count());
    let walk = Walk {
        config,
        dirname,
        diag,
    };
    walk.replay(result, listing, &mut prefix, FIRST_DIR_FD);
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
    /// The entry's name (empty for a module file: its path ends with it).
    name: Vec<u8>,
    kind: ListedKind,
}

impl Listed {
    /// A module file `name` of the directory `prefix` (a regular file), with its key if
    /// asked for. The module is made here, on the listing's thread, so that the walk's
    /// replay only registers it.
    fn module(rules: ListRules<'_>, prefix: &[u8], name: &[u8], key: Option<FileKey>) -> Listed {
        // Every module file the walk lists is a regular file, or a link to one.
        let module = DiscoveredModule::new(bmsg!(prefix, name), rules.dirname)
            .with_key(key)
            .regular_file();
        Listed {
            name: Vec::new(),
            kind: ListedKind::Module(module),
        }
    }

    /// The entry's name in its directory.
    fn name(&self) -> &[u8] {
        match &self.kind {
            ListedKind::Module(module) => {
                let path = &module.path;
                let start = path.iter().rposition(|&b| b == b'/').map_or(0, |s| s + 1);
                &path[start..]
            }
            _ => &self.name,
        }
    }
}

enum ListedKind {
    /// A regular file with a module extension, as the walk registers it (with its key if
    /// asked for).
    Module(DiscoveredModule),
    /// A subdirectory, listed, or the error opening it.
    Dir(Result<Listing, std::io::Error>),
    /// A subdirectory still to be listed (only while a [`Listing`] is made), and whether
    /// the entry is a symbolic link to it.
    Pending { link: bool },
    /// An entry of unknown type whose `stat` failed.
    StatFailed(std::io::Error),
    /// Not a regular file nor a directory: its `st_mode` file type bits.
    Unsupported(u32),
}

impl Listing {
    /// Lists the directory `prefix` (which ends in `/`) and, in parallel, every subdirectory
    /// below it — from a known listing where one holds. `parent` is the directory holding
    /// this one and its name there, when it is held open: the directory is then opened
    /// below it, as kmod's walk opens it (`openat` of the name), else by its path.
    /// `by_path`: a symbolic link led here, and everything below is opened by its path (see
    /// [`Listing::list_subdirectories`]).
    fn list(
        rules: ListRules<'_>,
        prefix: &[u8],
        parent: Option<(&DirHandle, &[u8])>,
        by_path: bool,
    ) -> std::io::Result<Listing> {
        let path = &prefix[..prefix.len() - 1];
        let dir = match parent {
            Some((parent, name)) => parent.open_listing_dir(name)?,
            None => DirHandle::open_listing(path)?,
        };
        let Some(cache) = rules.cache else {
            return Ok(Listing::read(rules, &dir, prefix, None, by_path));
        };
        let dir_key = dir.stat().ok().map(|stat| stat.key);
        let known = dir_key.and_then(|key| {
            cache
                .known?
                .get(path)
                .filter(|listing| listing.settled && listing.key == key)
        });
        if let Some(known) = known {
            if let Some(listing) = Listing::reuse(rules, known, prefix, &dir, by_path) {
                return Ok(listing);
            }
        }
        let dir_key = dir_key.map(|key| (key, key.is_settled(cache.started)));
        Ok(Listing::read(rules, &dir, prefix, dir_key, by_path))
    }

    /// The listing of `prefix` (open as `dir`) from `known`, with each module file `stat`ed;
    /// `None` if one is no longer a regular file (then the directory is read).
    fn reuse(
        rules: ListRules<'_>,
        known: &DirListing,
        prefix: &[u8],
        dir: &DirHandle,
        by_path: bool,
    ) -> Option<Listing> {
        let mut listed = Vec::new();
        for (name, is_dir) in known.entries() {
            let entry = if is_dir {
                Listed {
                    name: name.to_vec(),
                    kind: ListedKind::Pending { link: false },
                }
            } else {
                match dir.stat_entry(name) {
                    Ok(stat) if stat.is_file() => {
                        Listed::module(rules, prefix, name, Some(stat.key))
                    }
                    _ => return None,
                }
            };
            listed.push(entry);
        }
        let mut listing = Listing {
            entries: listed,
            kept: Some((known.clone(), false)),
        };
        listing.list_subdirectories(rules, prefix, dir, by_path);
        Some(listing)
    }

    /// Lists the directory `prefix`, open as `dir`, and its subdirectories. With `dir_key`
    /// (the directory's key, and whether it has settled) a plain listing is kept.
    fn read(
        rules: ListRules<'_>,
        dir: &DirHandle,
        prefix: &[u8],
        dir_key: Option<(FileKey, bool)>,
        by_path: bool,
    ) -> Listing {
        let ListRules { config, gzip, .. } = rules;
        let keys = rules.cache.is_some();
        let mut listed = Vec::new();
        let mut plain = true;
        let entries = dir.entries();
        for entry in entries.iter() {
            let Ok(DirEntry { name, d_type }) = entry else {
                plain = false;
                continue;
            };
            let kind = match classify(config, gzip, name, dir.entry_kind(name, d_type)) {
                EntryClass::Skipped => continue,
                EntryClass::Module => {
                    // A regular file: its own `stat` (relative to the open directory) is
                    // the one a read through the path sees. A compressed one is read
                    // whole, largest first, so its size is wanted in any case.
                    let key = (keys || looks_compressed(name))
                        .then(|| dir.lstat_entry(name).ok())
                        .flatten()
                        .map(|stat| stat.key);
                    plain &= key.is_some();
                    listed.push(Listed::module(rules, prefix, name, key));
                    continue;
                }
                EntryClass::Dir => ListedKind::Pending { link: false },
                EntryClass::Other => {
                    plain = false;
                    // kmod's `fstatat(dirfd, name, 0)`: symbolic links followed.
                    match dir.stat_entry(name) {
                        Err(err) => ListedKind::StatFailed(err),
                        Ok(stat) if stat.is_file() => {
                            if !has_module_extension(name, gzip) {
                                continue;
                            }
                            let key = (keys || looks_compressed(name)).then_some(stat.key);
                            listed.push(Listed::module(rules, prefix, name, key));
                            continue;
                        }
                        Ok(stat) if stat.is_dir() => ListedKind::Pending { link: true },
                        Ok(stat) => ListedKind::Unsupported(stat.file_type),
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
                let is_dir = matches!(entry.kind, ListedKind::Pending { .. });
                (entry.name(), is_dir)
            });
            Some((DirListing::new(key, settled, entries)?, true))
        });
        let mut listing = Listing {
            entries: listed,
            kept,
        };
        listing.list_subdirectories(rules, prefix, dir, by_path);
        listing
    }

    /// How many module files this listing and the listings below it hold.
    fn module_count(&self) -> usize {
        self.entries
            .iter()
            .map(|entry| match &entry.kind {
                ListedKind::Module(_) => 1,
                ListedKind::Dir(Ok(sub)) => sub.module_count(),
                _ => 0,
            })
            .sum()
    }

    /// Lists the pending subdirectories of `prefix` (open as `dir`), in parallel.
    ///
    /// Each is opened below `dir`, except below a symbolic link (`by_path`, or the entry is
    /// one) or where its path reaches `PATH_MAX`: there every directory is opened by its
    /// whole path. A loop of links (`sub/up -> ..`) then ends where the kernel stops
    /// following links in one path (`ELOOP`), and a tree nested thousands of levels deep
    /// where its paths grow too long (`ENAMETOOLONG`), which bounds the walk's recursion;
    /// kmod, which opens one name at a time, goes on until it runs out of file descriptors.
    fn list_subdirectories(
        &mut self,
        rules: ListRules<'_>,
        prefix: &[u8],
        dir: &DirHandle,
        by_path: bool,
    ) {
        self.entries.par_iter_mut().for_each(|entry| {
            if let ListedKind::Pending { link } = entry.kind {
                let path = bmsg!(prefix, entry.name, "/");
                let below = !(by_path || link) && path.len() < PATH_MAX;
                let parent = below.then_some((dir, entry.name.as_slice()));
                entry.kind = ListedKind::Dir(Listing::list(rules, &path, parent, !below));
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
    kind: std::io::Result<EntryKind>,
) -> EntryClass {
    if is_excluded(config, name) {
        return EntryClass::Skipped;
    }
    match kind {
        Ok(EntryKind::File) => match has_module_extension(name, gzip) {
            true => EntryClass::Module,
            false => EntryClass::Skipped,
        },
        Ok(EntryKind::Dir) => EntryClass::Dir,
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
    let dir = DirHandle::open_listing(path).ok()?;
    let entries = dir.entries();
    let mut names = Vec::new();
    for entry in entries.iter() {
        let DirEntry { name, d_type } = entry.ok()?;
        let is_dir = match classify(config, gzip, name, dir.entry_kind(name, d_type)) {
            EntryClass::Skipped => continue,
            EntryClass::Module => false,
            EntryClass::Dir => true,
            EntryClass::Other => return None,
        };
        names.push((name, is_dir));
    }
    DirListing::new(key, settled, names.into_iter())
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
    fn replay(&self, result: &mut SearchResult, listing: Listing, prefix: &mut Vec<u8>, fd: u32) {
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
        for Listed { name, kind } in listing.entries {
            match kind {
                ListedKind::Module(module) => result.registry.offer(config, dirname, module, diag),
                ListedKind::Dir(Ok(sub)) => {
                    // One buffer for every directory's prefix: a subdirectory's is this one's
                    // with its name and `/` added for as long as it is replayed.
                    let len = prefix.len();
                    prefix.extend_from_slice(&name);
                    prefix.push(b'/');
                    self.replay(result, sub, prefix, fd + 1);
                    prefix.truncate(len);
                }
                ListedKind::Dir(Err(err)) => {
                    result.unlisted = true;
                    diag.error(bmsg!(
                        "openat(",
                        fd.to_string(),
                        ", ",
                        name,
                        ", O_RDONLY): ",
                        strerror(&err)
                    ))
                }
                ListedKind::StatFailed(err) => diag.error(bmsg!(
                    "fstatat(",
                    fd.to_string(),
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
                ListedKind::Pending { .. } => {}
            }
        }
    }
}
