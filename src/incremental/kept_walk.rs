//! Taking the outcome of the last walk again (`--cache`), when no directory changed.
//!
//! Discovery lists every directory of the tree, registers thousands of files by name and
//! applies kmod's order; with the same directories, rules and `modules.order` it gives the
//! same module list every time. The cache keeps each directory's listing ([`crate::discover::DirListing`])
//! and one entry per module in kmod's order; when every directory walked has a listing and
//! discovery printed nothing, it also keeps a [`super::store::KeptWalk`]: the key of the rest of what the
//! module list depends on (the walk rules, the module directory, the kmod release, the
//! bytes of `modules.order`).
//!
//! [`rewalk`] checks that the module list still holds. It `stat`s every listed directory
//! and every module file, in parallel. A directory whose key is the stored one, and had
//! settled when it was listed, is trusted (as the walk itself trusts it); any other
//! directory is listed again and must give the same entries in the same order. Every module
//! file must still be a regular file. Then the module list is the cache's, each module with
//! the key it has now; anything else gives `None`, and the walk is carried out in full.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;

use super::inputs::kept_walk_key;
use super::memo::read_optional;
use super::store::{Digest, Listings, ModuleCache, ReadSettings};
use crate::bmsg;
use crate::config::Config;
use crate::discover::{plain_listing, DiscoveredModule};
use crate::fs_at::{DirHandle, FileKey, Stat};

/// The last walk's outcome, if it still holds: the walk rules (`rules`, the digest of the
/// configuration's) and this run's `modules.order` give the kept walk's key, and the tree
/// is checked by [`rewalk`].
pub fn take_again(
    config: &Config,
    settings: ReadSettings,
    dirname: &[u8],
    rules: Digest,
    started: i128,
    known: &mut Listings,
    cache: &ModuleCache,
) -> Option<Rewalk> {
    if known.rules != rules || known.walk.is_none() {
        return None;
    }
    let order_path = bmsg!(dirname, "/modules.order");
    let order_file = read_optional(Path::new(OsStr::from_bytes(&order_path))).ok()?;
    let inputs = RewalkInputs {
        config,
        gzip: settings.gzip,
        dirname,
        key: kept_walk_key(rules, dirname, settings.version, order_file.as_deref()),
        started,
    };
    rewalk(&inputs, known, cache)
}

/// What [`rewalk`] needs.
pub struct RewalkInputs<'a> {
    /// The configuration (exclusions, for directories listed again).
    pub config: &'a Config,
    /// Whether `.ko.gz` files are modules.
    pub gzip: bool,
    /// The module directory.
    pub dirname: &'a [u8],
    /// The key the kept walk must have: this run's.
    pub key: Digest,
    /// When the run started (see [`FileKey::is_settled`]).
    pub started: i128,
}

/// The outcome of a walk taken again.
pub struct Rewalk {
    /// The modules in kmod's order, each with its key.
    pub modules: Vec<DiscoveredModule>,
    /// How many directories were listed again.
    pub relisted: usize,
    /// Whether a directory listed again has settled (its listing is worth storing).
    pub changed: bool,
}

/// The `stat` of `path` (symbolic links followed), relative to the open module directory
/// `root` (named `dirname`) when it lies below it.
fn stat_path(root: &DirHandle, dirname: &[u8], path: &[u8]) -> Option<Stat> {
    match path.strip_prefix(dirname) {
        Some([]) => root.stat().ok(),
        Some([b'/', relative @ ..]) if !relative.is_empty() => root.stat_entry(relative).ok(),
        _ => {
            let meta = std::fs::metadata(OsStr::from_bytes(path)).ok()?;
            Some(Stat {
                key: FileKey::from_metadata(&meta),
                file_type: std::os::unix::fs::MetadataExt::mode(&meta) & libc::S_IFMT,
            })
        }
    }
}

/// Takes the kept walk of `listings` and `cache` again, if it still holds (see the module
/// documentation), updating the listings of the directories listed again.
pub fn rewalk(
    inputs: &RewalkInputs<'_>,
    listings: &mut Listings,
    cache: &ModuleCache,
) -> Option<Rewalk> {
    if listings.walk.is_none_or(|walk| walk.key != inputs.key) {
        return None;
    }
    let root = DirHandle::open(inputs.dirname).ok()?;
    let dirname = inputs.dirname;
    let paths: Vec<&[u8]> = cache.paths().collect();
    let dirs: Vec<&Vec<u8>> = listings.dirs.keys().collect();
    let (dir_stats, keys): (Vec<Option<Stat>>, Option<Vec<FileKey>>) = rayon::join(
        || {
            dirs.par_iter()
                .with_min_len(32)
                .map(|path| stat_path(&root, dirname, path))
                .collect()
        },
        || {
            paths
                .par_iter()
                .with_min_len(64)
                .map(|path| {
                    let stat = stat_path(&root, dirname, path)?;
                    stat.is_file().then_some(stat.key)
                })
                .collect()
        },
    );
    let keys = keys?;

    let mut relisted = Vec::new();
    for (path, stat) in dirs.into_iter().zip(dir_stats) {
        let key = stat?.key;
        let stored = &listings.dirs[path];
        if stored.settled && stored.key == key {
            continue;
        }
        let settled = key.is_settled(inputs.started);
        let now = plain_listing(inputs.config, inputs.gzip, path, key, settled)?;
        if !now.same_entries(stored) {
            return None;
        }
        relisted.push((path.clone(), now));
    }
    let count = relisted.len();
    // A listing whose key has not settled is listed again next time whatever is stored.
    let changed = relisted.iter().any(|(_, now)| now.settled);
    listings.dirs.extend(relisted);

    let modules = paths
        .par_iter()
        .zip(keys.par_iter())
        .with_min_len(64)
        .map(|(path, key)| DiscoveredModule::new(path.to_vec(), dirname).with_key(Some(*key)))
        .collect();
    Some(Rewalk {
        modules,
        relisted: count,
        changed,
    })
}
