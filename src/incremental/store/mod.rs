//! The module metadata cache (`--cache FILE`): what was read from each module file, so that
//! a re-run reads only the modules that changed, and the memo of the last run, so that a
//! re-run whose inputs are all unchanged writes nothing (see `memo`).
//!
//! # What is stored
//!
//! One entry per module, in the run's module order: its path, its [`FileKey`], whether that
//! key may be trusted, and the [`Digest`] of its record — its exports with CRCs, its imports
//! with CRC and weak flag, and its `alias`, `softdep` and `weakdep` modinfo values, exactly
//! what the rest of the run uses, encoded by [`encode_record`]. A module whose read failed
//! is never trusted (it is read again, and reports its error again, on every run).
//!
//! The record itself is kept for compressed modules only: decoding one costs about a
//! millisecond, while an uncompressed module is read partially in tens of microseconds, no
//! more than decoding its stored record would take. An uncompressed module's digest is
//! enough to tell whether the run's inputs changed.
//!
//! # When a record is trusted
//!
//! An entry is used only when the file at the same path has the same [`FileKey`]: device,
//! inode, size, modification time and status-change time (both in nanoseconds). `ctime` is
//! the important part: the kernel sets it on every write, truncate, rename onto the path,
//! chmod or link change, and user space cannot set it back (unlike `mtime`, which `touch -d`
//! and archive extraction set freely). Replacing a file (the usual way packages install
//! modules) also changes the inode. File contents are not hashed: that would mean reading
//! every module, which is the cost the cache exists to avoid.
//!
//! A file changed within the same timestamp tick as our `stat` could keep its `ctime`; an
//! entry is therefore trusted only when the file's `ctime` was at least `RACY_MARGIN_NS`
//! (2 s) older than the moment it was examined (the rule git uses for racily clean index
//! entries). A young file is simply read again next time.
//!
//! The cache file also records the format version, the depmod-rs release that wrote it, the
//! kmod release whose reading rules applied and whether gzip decoding was on; any difference
//! discards the whole cache. The file ends with a CRC-32 of everything before it: a
//! truncated, partly written or otherwise damaged cache fails the check and is ignored (and
//! rewritten), so it can cost time but never change the output. It is written to a
//! temporary file in the same directory and renamed over the old one, so readers see the old
//! or the new cache, never a mix — except when only the memo changed: then the memo, the
//! last part of the file, is written in place ([`MemoSlot`]), and a reader that
//! sees part of it finds the checksum wrong (the memo is checked against the run's inputs
//! and files before it is trusted in any case, see `memo`).

use rustc_hash::FxHashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::compat::KmodVersion;
use crate::discover::DirListing;
use crate::fs_at::FileKey;
use crate::graph::{ExportedSymbol, ImportTable};
use crate::publish::WrittenFile;
use crate::record::ModuleRecord;

/// Leading bytes of a cache file.
const MAGIC: &[u8; 8] = b"DMRSCACH";
/// Layout version; bump on any change to the encoding or to what a record means (including
/// a change to how modules are read that alters what would be stored).
const FORMAT_VERSION: u32 = 5;
/// The release that wrote the cache: another release's cache is discarded, in case its
/// module reading differed.
const WRITER: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();
/// A record's contents, borrowed from wherever the run keeps them (so that writing the
/// cache copies nothing).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Exported symbols with CRCs.
    pub exports: &'a [ExportedSymbol],
    /// Undefined symbols, in kmod's order.
    pub imports: &'a ImportTable,
    /// `alias=` values.
    pub aliases: &'a [Vec<u8>],
    /// `softdep=` values.
    pub softdeps: &'a [Vec<u8>],
    /// `weakdep=` values.
    pub weakdeps: &'a [Vec<u8>],
}

impl<'a> RecordRef<'a> {
    /// A borrowed view of `record`.
    pub fn of(record: &'a ModuleRecord) -> Self {
        RecordRef {
            exports: &record.exports,
            imports: &record.imports,
            aliases: &record.aliases,
            softdeps: &record.softdeps,
            weakdeps: &record.weakdeps,
        }
    }
}

/// The settings under which records were read; a cache made under others is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSettings {
    /// The kmod release whose reading rules applied.
    pub version: KmodVersion,
    /// Whether gzip-compressed modules were decoded.
    pub gzip: bool,
}

impl ReadSettings {
    fn tag(&self) -> u32 {
        self.version.number() * 2 + u32::from(self.gzip)
    }
}

/// A 128-bit content digest (XXH3-128): of a module's record, of an output file, or of
/// all the inputs of a run.
pub type Digest = u128;

/// The digest of `bytes`.
pub fn digest(bytes: &[u8]) -> Digest {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// One module's entry as loaded from a cache file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEntry {
    /// Where the module path lies in the cache file.
    path: (usize, usize),
    /// The key the file had when it was read.
    pub key: FileKey,
    /// Whether the key vouches for the record: it had settled, and the read succeeded.
    /// Otherwise the module is read again.
    pub trusted: bool,
    /// The digest of the module's encoded record ([`encode_record`]).
    pub digest: Digest,
    /// Where the encoded record lies in the cache file, if it was stored (compressed
    /// modules only).
    record: Option<(usize, usize)>,
}

/// What the last run wrote and printed after discovery, for the inputs it had (see
/// `memo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    /// The digest of everything the run's output depended on.
    pub inputs: Digest,
    /// Every file the run wrote, in the order it wrote them.
    pub outputs: Vec<WrittenFile>,
    /// The diagnostics the run printed after discovery, exactly as printed (a run that
    /// keeps the files prints them again).
    pub messages: Vec<u8>,
    /// What a later run needs to update the alias files in place when only some modules'
    /// aliases and imports changed, and not their dependencies (see `memo`).
    pub base: Option<MemoBase>,
}

/// The run's inputs apart from the modules' aliases and imports, and what each module gives
/// the alias files and the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoBase {
    /// The digest of every input except the modules' aliases and imports.
    pub frame: Digest,
    /// One per module, in kmod's order.
    pub modules: Vec<MemoModule>,
}

/// One module as a [`MemoBase`] knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoModule {
    /// The digest of its whole record.
    pub record: Digest,
    /// The digest of its record without the aliases and imports (with what
    /// `modules.devname` takes from the aliases).
    pub rest: Digest,
    /// The digest of its direct dependencies, in the order the run found them.
    pub deps: Digest,
    /// How many aliases it has.
    pub aliases: u32,
    /// The length of its lines in `modules.alias`.
    pub alias_bytes: u64,
}

/// One entry to store: a module file's key, its record's digest and, for compressed
/// modules, the encoded record itself.
#[derive(Debug, Clone, Copy)]
pub struct CacheEntry<'a> {
    /// The module path.
    pub path: &'a [u8],
    /// The file's key when it was read.
    pub key: FileKey,
    /// Whether the key vouches for the record (see [`StoredEntry::trusted`]).
    pub trusted: bool,
    /// The digest of the encoded record.
    pub digest: Digest,
    /// The encoded record ([`encode_record`]), when it is to be kept.
    pub record: Option<&'a [u8]>,
}

/// Directory listings by directory path, the digest of the walk rules (configuration,
/// `--gzip`) they were made under, and the walk's outcome when it can be taken again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listings {
    /// The digest of the rules that decided which entries a listing keeps.
    pub rules: Digest,
    /// Listings by directory path (no trailing `/`).
    pub dirs: FxHashMap<Vec<u8>, DirListing>,
    /// The module list the walk and `modules.order` gave, when every directory walked has
    /// a listing here and discovery printed nothing (see `kept_walk`).
    pub walk: Option<KeptWalk>,
}

/// A walk whose outcome can be taken again: the module list is the cache's entries, one per
/// module in kmod's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptWalk {
    /// The digest of everything besides the listings that the module list depends on.
    pub key: Digest,
}

/// A loaded cache file: one entry per module of the last run in its module order,
/// directory listings and the memo of the last run. Records are decoded only when asked
/// for; the entries are indexed by path only when looked up that way.
#[derive(Debug, Default)]
pub struct ModuleCache {
    bytes: Vec<u8>,
    entries: Vec<StoredEntry>,
    by_path: std::sync::OnceLock<FxHashMap<Vec<u8>, usize>>,
    listings: Listings,
    /// Where the entries, listings and kept walk lie in `bytes` (for
    /// [`MemoSlot::of_loaded`]), if loaded from a file.
    modules_section: Option<(usize, usize)>,
    /// The device and inode of the file it was loaded from.
    file_id: Option<(u64, u64)>,
    memo: Option<Memo>,
}

impl ModuleCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of module entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no module entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `path`, whatever its key.
    pub fn entry(&self, path: &[u8]) -> Option<&StoredEntry> {
        self.position(path).map(|at| &self.entries[at])
    }

    /// The position of the entry for `path` (preferably `at`, where it is in the usual case
    /// of an unchanged module list).
    pub fn position_near(&self, at: usize, path: &[u8]) -> Option<usize> {
        match self.entry_at(at, path) {
            Some(_) => Some(at),
            None => self.position(path),
        }
    }

    /// The position of the entry for `path`.
    fn position(&self, path: &[u8]) -> Option<usize> {
        let by_path = self.by_path.get_or_init(|| {
            let mut map = FxHashMap::with_capacity_and_hasher(self.len(), Default::default());
            for (at, entry) in self.entries.iter().enumerate() {
                map.entry(self.entry_path(entry).to_vec()).or_insert(at);
            }
            map
        });
        by_path.get(path).copied()
    }

    /// The entry at position `at` (in the last run's module order), if its path is `path`.
    pub fn entry_at(&self, at: usize, path: &[u8]) -> Option<&StoredEntry> {
        self.entries
            .get(at)
            .filter(|entry| self.entry_path(entry) == path)
    }

    /// The entry at position `at`.
    ///
    /// # Panics
    ///
    /// If there is none (positions come from [`ModuleCache::position_near`]).
    pub fn entry_by_position(&self, at: usize) -> &StoredEntry {
        &self.entries[at]
    }

    /// Every module path, in the last run's module order.
    pub fn paths(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.entries.iter().map(|entry| self.entry_path(entry))
    }

    fn entry_path(&self, entry: &StoredEntry) -> &[u8] {
        let (at, len) = entry.path;
        &self.bytes[at..at + len]
    }

    /// The encoded record of `entry`, if one was stored.
    pub fn record_bytes(&self, entry: &StoredEntry) -> Option<&[u8]> {
        entry
            .record
            .and_then(|(at, len)| self.bytes.get(at..at + len))
    }

    /// The decoded record of `entry`, if one was stored and decodes.
    pub fn record(&self, entry: &StoredEntry) -> Option<ModuleRecord> {
        self.record_bytes(entry).and_then(decode_record)
    }

    /// The memo of the last run, if it stored one.
    pub fn memo(&self) -> Option<&Memo> {
        self.memo.as_ref()
    }

    /// The directory listings of the last run.
    pub fn listings(&self) -> &Listings {
        &self.listings
    }

    /// Moves the directory listings out (for the walk to update), leaving none.
    pub fn take_listings(&mut self) -> Listings {
        std::mem::take(&mut self.listings)
    }

    /// Parses the bytes of a cache file; `None` when anything is wrong with them.
    pub fn from_bytes(bytes: Vec<u8>, settings: ReadSettings) -> Option<ModuleCache> {
        decode(bytes, settings)
    }

    /// Reads a cache file. A missing, unreadable, damaged or foreign file, or one written
    /// under other settings, gives an empty cache: the cache can only save work.
    pub fn load(path: &Path, settings: ReadSettings) -> ModuleCache {
        let load = || -> Option<ModuleCache> {
            let mut file = std::fs::File::open(path).ok()?;
            let meta = file.metadata().ok()?;
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
            std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
            let mut cache = decode(bytes, settings)?;
            cache.file_id = Some((meta.dev(), meta.ino()));
            Some(cache)
        };
        load().unwrap_or_default()
    }
}

/// Where a cache file's memo goes: the file (by path, and by device and inode, so that a
/// file put in its place meanwhile is left alone), the offset after its modules section,
/// and the CRC-32 state of everything before that offset.
///
/// The memo is the last part of the file, so it can be written in place ([`MemoSlot::fill`])
/// without writing the rest again: replacing the whole file costs more than the rest of a
/// save, most of it in freeing the old file. Readers are protected by the checksum instead
/// of by a rename: one that reads the file while its memo is written, or after a crash
/// midway, finds a checksum that does not match and ignores the cache (which only costs
/// time). Every writer that fills a file's slot has the same modules section, so they all
/// write at the same offset.
#[derive(Debug, Clone)]
pub struct MemoSlot {
    path: std::path::PathBuf,
    id: (u64, u64),
    end: usize,
    crc: crc32fast::Hasher,
}

impl MemoSlot {
    /// The slot after `before_memo`, the leading bytes of the file at `path` (device and
    /// inode `id`).
    fn new(path: &Path, id: (u64, u64), before_memo: &[u8]) -> MemoSlot {
        let mut crc = crc32fast::Hasher::new();
        crc.update(before_memo);
        MemoSlot {
            path: path.to_path_buf(),
            id,
            end: before_memo.len(),
            crc,
        }
    }

    /// The slot of the file `kept` was loaded from (at `path`), keeping its modules section;
    /// `None` if `kept` was not loaded from a file.
    pub fn of_loaded(path: &Path, kept: &ModuleCache) -> Option<MemoSlot> {
        let (_, end) = kept.modules_section?;
        Some(MemoSlot::new(path, kept.file_id?, kept.bytes.get(..end)?))
    }

    /// Writes `memo` and the checksum in place, from the end of the modules section on.
    /// Returns `Ok(false)`, writing nothing, when `path` is no longer the slot's file.
    pub fn fill(&self, memo: Option<&Memo>) -> std::io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut tail = Vec::new();
        put_memo(&mut tail, memo);
        let mut crc = self.crc.clone();
        crc.update(&tail);
        put_u32(&mut tail, crc.finalize());
        let file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || (meta.dev(), meta.ino()) != self.id {
            return Ok(false);
        }
        file.write_all_at(&tail, self.end as u64)?;
        file.set_len((self.end + tail.len()) as u64)?;
        Ok(true)
    }
}

/// Writes a cache file of `entries` and `listings` with no memo (atomically, as
/// [`save_bytes`]), and returns the slot for its memo.
pub fn save_without_memo<'a>(
    path: &Path,
    entries: impl Iterator<Item = CacheEntry<'a>>,
    listings: &Listings,
    settings: ReadSettings,
) -> std::io::Result<MemoSlot> {
    let mut bytes = encode_until_memo(entries, listings, settings);
    let end = bytes.len();
    finish_with_memo(&mut bytes, None);
    let id = save_bytes_with(path, &bytes, |file| {
        let meta = file.metadata()?;
        Ok((meta.dev(), meta.ino()))
    })?;
    Ok(MemoSlot::new(path, id, &bytes[..end]))
}

/// Writes cache bytes to `path` atomically (temporary file in the same directory, then
/// rename), creating its directory if needed.
pub fn save_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    save_bytes_with(path, bytes, |_| Ok(()))
}

/// [`save_bytes`], returning what `written` says of the new file before it is renamed.
fn save_bytes_with<T>(
    path: &Path,
    bytes: &[u8],
    written: impl FnOnce(&std::fs::File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "cache path has no name")
    })?;
    std::fs::create_dir_all(dir)?;
    let (temp, created) = create_temp(dir, name)?;
    // No fsync: after a crash the file may be empty or partial, which its CRC reveals, and
    // a discarded cache only costs one full read.
    let result = Ok(created).and_then(|mut file: std::fs::File| {
        file.write_all(bytes)?;
        let value = written(&file)?;
        std::fs::rename(&temp, path)?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates a new temporary file beside the cache file `name` in `dir`: `.NAME.tmp.PID.NANOS`,
/// opened with `O_EXCL|O_NOFOLLOW` (never an existing file or a symlink planted there, nor
/// another run's temporary file, even one in another pid namespace with the same pid) and
/// mode 0644, so the cache stays private to its writer whatever the umask adds.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut attempt = 0;
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".tmp.{}.{nanos}", std::process::id()));
        let temp = dir.join(temp_name);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp);
        match opened {
            Ok(file) => return Ok((temp, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

mod codec;

use codec::{decode, encode_until_memo, finish_with_memo, put_memo, put_u32};
pub use codec::{decode_record, encode, encode_record, header};
