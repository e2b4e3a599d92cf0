//! The module metadata cache (`--cache FILE`): what was read from each module file, so that
//! a re-run reads only the modules that changed, and the memo of the last run, so that a
//! re-run whose inputs are all unchanged writes nothing (see [`crate::memo`]).
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
//! entry is therefore trusted only when the file's `ctime` was at least [`RACY_MARGIN_NS`]
//! older than the moment it was examined (the rule git uses for racily clean index
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
//! and files before it is trusted in any case, see [`crate::memo`]).

use rustc_hash::FxHashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::compat::KmodVersion;
use crate::graph::{ExportedSymbol, ImportTable};

/// Leading bytes of a cache file.
const MAGIC: &[u8; 8] = b"DMRSCACH";
/// Layout version; bump on any change to the encoding or to what a record means (including
/// a change to how modules are read that alters what would be stored).
const FORMAT_VERSION: u32 = 5;
/// The release that wrote the cache: another release's cache is discarded, in case its
/// module reading differed.
const WRITER: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();
/// How much older than "now" a file's `ctime` must be for its record to be stored.
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// The identity of a file's contents as `stat` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
    /// `st_ctime` in nanoseconds.
    pub ctime_ns: i128,
}

impl FileKey {
    /// The key of `path` (symbolic links followed, as the module read follows them).
    pub fn of(path: &Path) -> Option<FileKey> {
        std::fs::metadata(path)
            .ok()
            .map(|meta| FileKey::from_metadata(&meta))
    }

    /// The key in `meta`.
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file was last changed long enough before `now_ns` for its key to be
    /// trusted later (see the module documentation).
    pub fn is_settled(&self, now_ns: i128) -> bool {
        self.ctime_ns.saturating_add(RACY_MARGIN_NS) <= now_ns
    }
}

/// The current time in nanoseconds since the epoch (0 if the clock is before it).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// What the run uses from one module that was read without error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleRecord {
    /// Exported symbols with CRCs.
    pub exports: Vec<ExportedSymbol>,
    /// Undefined symbols, in kmod's order.
    pub imports: ImportTable,
    /// `alias=` modinfo values in file order.
    pub aliases: Vec<Vec<u8>>,
    /// `softdep=` modinfo values.
    pub softdeps: Vec<Vec<u8>>,
    /// `weakdep=` modinfo values (empty when the kmod release ignores them).
    pub weakdeps: Vec<Vec<u8>>,
}

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

impl ModuleRecord {
    /// A borrowed view of the record.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            exports: &self.exports,
            imports: &self.imports,
            aliases: &self.aliases,
            softdeps: &self.softdeps,
            weakdeps: &self.weakdeps,
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
/// [`crate::memo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    /// The digest of everything the run's output depended on.
    pub inputs: Digest,
    /// Every file the run wrote, in the order it wrote them.
    pub outputs: Vec<OutputDigest>,
    /// The diagnostics the run printed after discovery, exactly as printed (a run that
    /// keeps the files prints them again).
    pub messages: Vec<u8>,
    /// What a later run needs to update the alias files in place when only some modules'
    /// aliases and imports changed, and not their dependencies (see [`crate::memo`]).
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

/// One written index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDigest {
    /// The file name in the output directory.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// The digest of its contents.
    pub digest: Digest,
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

/// One directory as the walk listed it: its key, and the names of its module files and
/// subdirectories in directory order (see [`crate::discover`]).
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

    /// Whether `packed` is a valid packed listing.
    fn valid(packed: &[u8]) -> bool {
        packed.is_empty()
            || (packed.last() == Some(&0)
                && packed[..packed.len() - 1].split(|&b| b == 0).all(|entry| {
                    entry.len() >= 2 && matches!(entry[0], b'd' | b'f') && !entry.contains(&b'/')
                }))
    }
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
    /// a listing here and discovery printed nothing (see [`crate::kept_walk`]).
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
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp = dir.join(temp_name);
    // No fsync: after a crash the file may be empty or partial, which its CRC reveals, and
    // a discarded cache only costs one full read.
    let result = std::fs::File::create(&temp).and_then(|mut file| {
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

/// Appends the encoding of one record: the bytes stored for compressed modules and the
/// bytes every module's digest is taken of.
pub fn encode_record(out: &mut Vec<u8>, record: RecordRef<'_>) {
    put_u64(out, record.exports.len() as u64);
    for e in record.exports {
        put_bytes(out, &e.name);
        put_u64(out, e.crc);
    }
    put_u64(out, record.imports.len() as u64);
    for i in record.imports.iter() {
        put_bytes(out, i.name);
        put_u64(out, i.crc);
        out.push(u8::from(i.weak));
    }
    for list in [record.aliases, record.softdeps, record.weakdeps] {
        put_u64(out, list.len() as u64);
        for value in list {
            put_bytes(out, value);
        }
    }
}

/// Decodes a record made by [`encode_record`]; `None` unless `bytes` is exactly one record.
pub fn decode_record(bytes: &[u8]) -> Option<ModuleRecord> {
    let mut r = Reader { data: bytes };
    let count = r.count(16)?;
    let mut exports = Vec::with_capacity(count);
    for _ in 0..count {
        exports.push(ExportedSymbol {
            name: r.bytes()?,
            crc: r.u64()?,
        });
    }
    let count = r.count(17)?;
    let mut imports = ImportTable::new();
    for _ in 0..count {
        let name = r.borrowed_bytes()?;
        let crc = r.u64()?;
        let weak = r.flag()?;
        imports.push(name, crc, weak);
    }
    let record = ModuleRecord {
        exports,
        imports,
        aliases: r.list()?,
        softdeps: r.list()?,
        weakdeps: r.list()?,
    };
    r.data.is_empty().then_some(record)
}

/// Encodes a cache file: header, entries in the order given (module order: equal contents
/// give equal files), directory listings sorted by path, the kept walk and the memo if any,
/// CRC-32 trailer.
pub fn encode<'a>(
    entries: impl Iterator<Item = CacheEntry<'a>>,
    listings: &Listings,
    memo: Option<&Memo>,
    settings: ReadSettings,
) -> Vec<u8> {
    let mut out = encode_until_memo(entries, listings, settings);
    finish_with_memo(&mut out, memo);
    out
}

/// The header and the modules section (entries, listings, kept walk) of a cache file.
fn encode_until_memo<'a>(
    entries: impl Iterator<Item = CacheEntry<'a>>,
    listings: &Listings,
    settings: ReadSettings,
) -> Vec<u8> {
    let entries: Vec<CacheEntry<'a>> = entries.collect();
    let size: usize = entries
        .iter()
        .map(|e| 128 + e.path.len() + e.record.map_or(0, <[u8]>::len))
        .sum();
    let mut out = Vec::with_capacity(64 + size);
    put_header(&mut out, settings);
    put_modules_section(&mut out, entries, listings);
    out
}

/// Appends `memo` and the CRC-32 trailer of everything before it.
fn finish_with_memo(out: &mut Vec<u8>, memo: Option<&Memo>) {
    put_memo(out, memo);
    let crc = crc32fast::hash(out);
    put_u32(out, crc);
}

/// The leading bytes of every cache file written under `settings` by this release.
pub fn header(settings: ReadSettings) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, settings);
    out
}

fn put_header(out: &mut Vec<u8>, settings: ReadSettings) {
    out.extend_from_slice(MAGIC);
    put_u32(out, FORMAT_VERSION);
    put_u32(out, settings.tag());
    put_bytes(out, WRITER);
}

/// The entries, the listings and the kept walk.
fn put_modules_section(out: &mut Vec<u8>, entries: Vec<CacheEntry<'_>>, listings: &Listings) {
    put_u64(out, entries.len() as u64);
    for entry in entries {
        put_bytes(out, entry.path);
        put_key(out, &entry.key);
        out.push(u8::from(entry.trusted));
        out.extend_from_slice(&entry.digest.to_le_bytes());
        match entry.record {
            None => out.push(0),
            Some(record) => {
                out.push(1);
                put_bytes(out, record);
            }
        }
    }
    out.extend_from_slice(&listings.rules.to_le_bytes());
    let mut dirs: Vec<(&Vec<u8>, &DirListing)> = listings.dirs.iter().collect();
    dirs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    put_u64(out, dirs.len() as u64);
    for (path, listing) in dirs {
        put_bytes(out, path);
        put_key(out, &listing.key);
        out.push(u8::from(listing.settled));
        put_bytes(out, &listing.packed);
    }
    match &listings.walk {
        None => out.push(0),
        Some(walk) => {
            out.push(1);
            out.extend_from_slice(&walk.key.to_le_bytes());
        }
    }
}

fn put_memo(out: &mut Vec<u8>, memo: Option<&Memo>) {
    match memo {
        None => out.push(0),
        Some(memo) => {
            out.push(1);
            out.extend_from_slice(&memo.inputs.to_le_bytes());
            put_u64(out, memo.outputs.len() as u64);
            for file in &memo.outputs {
                put_bytes(out, file.name.as_bytes());
                put_u64(out, file.size);
                out.extend_from_slice(&file.digest.to_le_bytes());
            }
            put_bytes(out, &memo.messages);
            match &memo.base {
                None => out.push(0),
                Some(base) => {
                    out.push(1);
                    out.extend_from_slice(&base.frame.to_le_bytes());
                    put_u64(out, base.modules.len() as u64);
                    for module in &base.modules {
                        out.extend_from_slice(&module.record.to_le_bytes());
                        out.extend_from_slice(&module.rest.to_le_bytes());
                        out.extend_from_slice(&module.deps.to_le_bytes());
                        put_u32(out, module.aliases);
                        put_u64(out, module.alias_bytes);
                    }
                }
            }
        }
    }
}

fn put_key(out: &mut Vec<u8>, key: &FileKey) {
    put_u64(out, key.dev);
    put_u64(out, key.ino);
    put_u64(out, key.size);
    out.extend_from_slice(&key.mtime_ns.to_le_bytes());
    out.extend_from_slice(&key.ctime_ns.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A bounds-checked little-endian reader over the cache body.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    /// A byte that must be 0 (`false`) or 1 (`true`).
    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn i128(&mut self) -> Option<i128> {
        self.take(16)?.try_into().ok().map(i128::from_le_bytes)
    }

    fn u128(&mut self) -> Option<u128> {
        self.take(16)?.try_into().ok().map(u128::from_le_bytes)
    }

    /// A count of items each at least `min_item` bytes long; rejects counts the remaining
    /// data cannot hold (so a damaged count cannot reserve huge buffers).
    fn count(&mut self, min_item: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(min_item)? <= self.data.len()).then_some(n)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        self.borrowed_bytes().map(<[u8]>::to_vec)
    }

    fn borrowed_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }

    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        let n = self.count(8)?;
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            list.push(self.bytes()?);
        }
        Some(list)
    }

    fn key(&mut self) -> Option<FileKey> {
        Some(FileKey {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_ns: self.i128()?,
            ctime_ns: self.i128()?,
        })
    }

    /// Where the reader stands within `whole` (of which it reads a suffix).
    fn offset_in(&self, whole: &[u8]) -> usize {
        self.data.as_ptr() as usize - whole.as_ptr() as usize
    }
}

/// Parses a whole cache file (records are only located, not decoded); `None` when anything
/// is wrong with it.
fn decode(bytes: Vec<u8>, settings: ReadSettings) -> Option<ModuleCache> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, trailer) = bytes.split_at(body_len);
    if u32::from_le_bytes(trailer.try_into().ok()?) != crc32fast::hash(body) {
        return None;
    }
    let mut r = Reader { data: body };
    if r.take(MAGIC.len())? != MAGIC
        || r.u32()? != FORMAT_VERSION
        || r.u32()? != settings.tag()
        || r.bytes()? != WRITER
    {
        return None;
    }
    let section_start = r.offset_in(&bytes);
    // An entry takes at least 8 (path length) + 56 (key) + 1 (flag) + 16 (digest) + 1 (flag)
    // bytes.
    let count = r.count(82)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let path = r.borrowed_bytes()?;
        let path = (r.offset_in(&bytes) - path.len(), path.len());
        let key = r.key()?;
        let trusted = r.flag()?;
        let digest = r.u128()?;
        let record = match r.flag()? {
            false => None,
            true => {
                let record = r.borrowed_bytes()?;
                Some((r.offset_in(&bytes) - record.len(), record.len()))
            }
        };
        entries.push(StoredEntry {
            path,
            key,
            trusted,
            digest,
            record,
        });
    }
    let rules = r.u128()?;
    // A listing takes at least 8 (path length) + 56 (key) + 1 (flag) + 8 (entries length)
    // bytes.
    let count = r.count(73)?;
    let mut dirs = FxHashMap::with_capacity_and_hasher(count, Default::default());
    for _ in 0..count {
        let path = r.bytes()?;
        let key = r.key()?;
        let settled = r.flag()?;
        let packed = r.bytes()?;
        if !DirListing::valid(&packed) {
            return None;
        }
        let listing = DirListing {
            key,
            settled,
            packed,
        };
        if dirs.insert(path, listing).is_some() {
            return None;
        }
    }
    let walk = match r.flag()? {
        false => None,
        true => Some(KeptWalk { key: r.u128()? }),
    };
    let listings = Listings { rules, dirs, walk };
    let modules_section = Some((section_start, r.offset_in(&bytes)));
    let memo = match r.flag()? {
        false => None,
        true => {
            let inputs = r.u128()?;
            let count = r.count(32)?;
            let mut outputs = Vec::with_capacity(count);
            for _ in 0..count {
                outputs.push(OutputDigest {
                    name: String::from_utf8(r.bytes()?).ok()?,
                    size: r.u64()?,
                    digest: r.u128()?,
                });
            }
            let messages = r.bytes()?;
            let base = match r.flag()? {
                false => None,
                true => {
                    let frame = r.u128()?;
                    // A module takes 16 + 16 + 16 + 4 + 8 bytes.
                    let count = r.count(60)?;
                    let mut modules = Vec::with_capacity(count);
                    for _ in 0..count {
                        modules.push(MemoModule {
                            record: r.u128()?,
                            rest: r.u128()?,
                            deps: r.u128()?,
                            aliases: r.u32()?,
                            alias_bytes: r.u64()?,
                        });
                    }
                    Some(MemoBase { frame, modules })
                }
            };
            Some(Memo {
                inputs,
                outputs,
                messages,
                base,
            })
        }
    };
    if !r.data.is_empty() {
        return None;
    }
    Some(ModuleCache {
        bytes,
        entries,
        by_path: Default::default(),
        listings,
        modules_section,
        file_id: None,
        memo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ReadSettings {
        ReadSettings {
            version: KmodVersion::DEFAULT,
            gzip: false,
        }
    }

    fn key(n: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino: n,
            size: 100 + n,
            mtime_ns: 5,
            ctime_ns: 6,
        }
    }

    fn sample_record() -> ModuleRecord {
        ModuleRecord {
            exports: vec![ExportedSymbol {
                name: b"sym_a".to_vec(),
                crc: 0xdead_beef,
            }],
            imports: {
                let mut imports = ImportTable::new();
                imports.push(b"printk", 7, true);
                imports
            },
            aliases: vec![b"pci:v*".to_vec()],
            softdeps: vec![b"pre: b".to_vec()],
            weakdeps: vec![],
        }
    }

    fn sample_memo() -> Memo {
        Memo {
            inputs: 0x1234_5678_9abc_def0_0fed_cba9_8765_4321,
            outputs: vec![OutputDigest {
                name: "modules.dep".to_string(),
                size: 42,
                digest: 99,
            }],
            messages: b"depmod: WARNING: something\n".to_vec(),
            base: Some(MemoBase {
                frame: 7,
                modules: vec![MemoModule {
                    record: 1,
                    rest: 2,
                    deps: 5,
                    aliases: 3,
                    alias_bytes: 4,
                }],
            }),
        }
    }

    /// A cache with one module that has its record and one that has only its digest.
    fn sample_bytes() -> Vec<u8> {
        let mut record = Vec::new();
        encode_record(&mut record, sample_record().as_ref());
        let entries = [
            CacheEntry {
                path: b"/lib/modules/x/a.ko.xz",
                key: key(1),
                trusted: true,
                digest: digest(&record),
                record: Some(&record),
            },
            CacheEntry {
                path: b"/b.ko",
                key: key(2),
                trusted: false,
                digest: 7,
                record: None,
            },
        ];
        encode(
            entries.into_iter(),
            &sample_listings(),
            Some(&sample_memo()),
            settings(),
        )
    }

    fn sample_listings() -> Listings {
        let mut dirs = FxHashMap::default();
        dirs.insert(
            b"/lib/modules/x".to_vec(),
            DirListing::new(
                key(9),
                true,
                [(&b"kernel"[..], true), (b"a.ko.xz", false)].into_iter(),
            )
            .unwrap(),
        );
        dirs.insert(
            b"/lib/modules/x/kernel".to_vec(),
            DirListing::new(key(10), false, [(&b"b.ko"[..], false)].into_iter()).unwrap(),
        );
        Listings {
            rules: 17,
            dirs,
            walk: Some(KeptWalk { key: 23 }),
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample_bytes();
        let back = decode(bytes.clone(), settings()).expect("valid cache");
        assert_eq!(back.len(), 2);
        let a = back.entry(b"/lib/modules/x/a.ko.xz").expect("entry a");
        assert_eq!(a.key, key(1));
        assert_eq!(back.record(a), Some(sample_record()));
        assert_eq!(digest(back.record_bytes(a).unwrap()), a.digest);
        let b = back.entry(b"/b.ko").expect("entry b");
        assert_eq!((b.key, b.trusted, b.digest), (key(2), false, 7));
        assert_eq!(back.entry_at(1, b"/b.ko"), Some(b));
        assert_eq!(back.entry_at(0, b"/b.ko"), None);
        assert_eq!(
            back.paths().collect::<Vec<_>>(),
            [&b"/lib/modules/x/a.ko.xz"[..], b"/b.ko"]
        );
        assert_eq!(back.record(b), None);
        assert_eq!(back.memo(), Some(&sample_memo()));
        assert_eq!(back.listings(), &sample_listings());
        let again = encode(
            [&b"/lib/modules/x/a.ko.xz"[..], b"/b.ko"]
                .into_iter()
                .map(|path| {
                    let entry = back.entry(path).unwrap();
                    CacheEntry {
                        path,
                        key: entry.key,
                        trusted: entry.trusted,
                        digest: entry.digest,
                        record: back.record_bytes(entry),
                    }
                }),
            back.listings(),
            back.memo(),
            settings(),
        );
        assert_eq!(again, bytes);
    }

    #[test]
    fn records_decode_only_whole() {
        let mut record = Vec::new();
        encode_record(&mut record, sample_record().as_ref());
        assert_eq!(decode_record(&record), Some(sample_record()));
        for len in 0..record.len() {
            assert_eq!(decode_record(&record[..len]), None, "truncated to {len}");
        }
        record.push(0);
        assert_eq!(decode_record(&record), None);
    }

    #[test]
    fn damaged_or_foreign_files_are_rejected() {
        let bytes = sample_bytes();
        for len in 0..bytes.len() {
            assert!(
                decode(bytes[..len].to_vec(), settings()).is_none(),
                "truncated to {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(decode(flipped, settings()).is_none(), "flip at {at}");
        }
        let other = ReadSettings {
            version: KmodVersion::V30,
            gzip: false,
        };
        assert!(decode(bytes.clone(), other).is_none());
        let gzip = ReadSettings {
            gzip: true,
            ..settings()
        };
        assert!(decode(bytes, gzip).is_none());
    }

    #[test]
    fn racy_files_are_not_settled() {
        let k = key(1);
        assert!(!k.is_settled(k.ctime_ns));
        assert!(!k.is_settled(k.ctime_ns + RACY_MARGIN_NS - 1));
        assert!(k.is_settled(k.ctime_ns + RACY_MARGIN_NS));
    }
}
