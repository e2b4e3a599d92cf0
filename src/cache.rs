//! The module metadata cache (`--cache FILE`): what was read from each module file, so that
//! a re-run reads only the modules that changed.
//!
//! # What is stored
//!
//! The run stores compressed modules only (see `read_modules` in `run.rs`): decoding one
//! costs about a millisecond, while an uncompressed module is read partially in tens of
//! microseconds, no more than checking and loading its record would take.
//!
//! One record per module that was read without error: its exports with CRCs, its imports
//! with CRC and weak flag, and its `alias`, `softdep` and `weakdep` modinfo values — exactly
//! what the rest of the run uses. Modules whose read failed are never stored (they are read
//! again, and report their error again, on every run).
//!
//! # When a record is trusted
//!
//! A record is used only when the file at the same path has the same [`FileKey`]: device,
//! inode, size, modification time and status-change time (both in nanoseconds). `ctime` is
//! the important part: the kernel sets it on every write, truncate, rename onto the path,
//! chmod or link change, and user space cannot set it back (unlike `mtime`, which `touch -d`
//! and archive extraction set freely). Replacing a file (the usual way packages install
//! modules) also changes the inode. File contents are not hashed: that would mean reading
//! every module, which is the cost the cache exists to avoid.
//!
//! A file changed within the same timestamp tick as our `stat` could keep its `ctime`; a
//! record is therefore stored only when the file's `ctime` is at least
//! [`RACY_MARGIN_NS`] older than the moment it was examined (the rule git uses for racily
//! clean index entries). A young file is simply read again next time.
//!
//! The cache file also records the format version, the depmod-rs release that wrote it, the
//! kmod release whose reading rules applied and whether gzip decoding was on; any difference
//! discards the whole cache. The
//! file ends with a CRC-32 of everything before it: a truncated, partly written or
//! otherwise damaged cache fails the check and is ignored (and rewritten), so it can cost
//! time but never change the output. It is written to a temporary file in the same
//! directory and renamed over the old one, so readers see the old or the new cache, never a
//! mix.

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
const FORMAT_VERSION: u32 = 1;
/// The release that wrote the cache: another release's cache is discarded, in case its
/// module reading differed.
const WRITER: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();
/// How much older than "now" a file's `ctime` must be for its record to be stored.
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// The identity of a file's contents as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        let meta = std::fs::metadata(path).ok()?;
        Some(FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
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

/// Records by module path.
#[derive(Debug, Default)]
pub struct ModuleCache {
    entries: FxHashMap<Vec<u8>, (FileKey, ModuleRecord)>,
}

impl ModuleCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The record for `path` if it was stored under exactly `key`.
    pub fn lookup(&self, path: &[u8], key: &FileKey) -> Option<&ModuleRecord> {
        self.entries
            .get(path)
            .filter(|(stored, _)| stored == key)
            .map(|(_, record)| record)
    }

    /// Removes and returns the record for `path` with the key it was stored under.
    pub fn take(&mut self, path: &[u8]) -> Option<(FileKey, ModuleRecord)> {
        self.entries.remove(path)
    }

    /// Stores (or replaces) the record for `path`.
    pub fn insert(&mut self, path: Vec<u8>, key: FileKey, record: ModuleRecord) {
        self.entries.insert(path, (key, record));
    }

    /// Reads a cache file. A missing, unreadable, damaged or foreign file, or one written
    /// under other settings, gives an empty cache: the cache can only save work.
    pub fn load(path: &Path, settings: ReadSettings) -> ModuleCache {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| decode(&bytes, settings))
            .unwrap_or_default()
    }

    /// Writes the cache to `path` atomically (temporary file in the same directory, then
    /// rename), creating its directory if needed.
    pub fn save(&self, path: &Path, settings: ReadSettings) -> std::io::Result<()> {
        save_bytes(path, &self.encode(settings))
    }

    /// The file's bytes: header, records sorted by path (so equal caches give equal files),
    /// CRC-32 trailer.
    pub fn encode(&self, settings: ReadSettings) -> Vec<u8> {
        encode_records(
            self.entries
                .iter()
                .map(|(path, (key, record))| (path.as_slice(), *key, record.as_ref())),
            settings,
        )
    }
}

/// Writes cache bytes to `path` atomically (temporary file in the same directory, then
/// rename), creating its directory if needed.
pub fn save_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    let written = std::fs::File::create(&temp).and_then(|mut file| file.write_all(bytes));
    if let Err(err) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    Ok(())
}

/// Encodes records (in any order) as a cache file: header, records sorted by path (so equal
/// contents give equal files), CRC-32 trailer.
pub fn encode_records<'a>(
    records: impl Iterator<Item = (&'a [u8], FileKey, RecordRef<'a>)>,
    settings: ReadSettings,
) -> Vec<u8> {
    let mut records: Vec<_> = records.collect();
    records.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64 + records.len() * 1024);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u32(&mut out, settings.tag());
    put_bytes(&mut out, WRITER);
    put_u64(&mut out, records.len() as u64);
    for (path, key, record) in records {
        put_bytes(&mut out, path);
        put_u64(&mut out, key.dev);
        put_u64(&mut out, key.ino);
        put_u64(&mut out, key.size);
        out.extend_from_slice(&key.mtime_ns.to_le_bytes());
        out.extend_from_slice(&key.ctime_ns.to_le_bytes());
        put_u64(&mut out, record.exports.len() as u64);
        for e in record.exports {
            put_bytes(&mut out, &e.name);
            put_u64(&mut out, e.crc);
        }
        put_u64(&mut out, record.imports.len() as u64);
        for i in record.imports.iter() {
            put_bytes(&mut out, i.name);
            put_u64(&mut out, i.crc);
            out.push(u8::from(i.weak));
        }
        for list in [record.aliases, record.softdeps, record.weakdeps] {
            put_u64(&mut out, list.len() as u64);
            for value in list {
                put_bytes(&mut out, value);
            }
        }
    }
    let crc = crc32fast::hash(&out);
    put_u32(&mut out, crc);
    out
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

    fn i128(&mut self) -> Option<i128> {
        self.take(16)?.try_into().ok().map(i128::from_le_bytes)
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
}

/// Parses a whole cache file; `None` when anything is wrong with it.
fn decode(bytes: &[u8], settings: ReadSettings) -> Option<ModuleCache> {
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
    let count = r.count(8)?;
    let mut entries = FxHashMap::with_capacity_and_hasher(count, Default::default());
    for _ in 0..count {
        let path = r.bytes()?;
        let key = FileKey {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.i128()?,
            ctime_ns: r.i128()?,
        };
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
            let weak = match r.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            imports.push(name, crc, weak);
        }
        let record = ModuleRecord {
            exports,
            imports,
            aliases: r.list()?,
            softdeps: r.list()?,
            weakdeps: r.list()?,
        };
        entries.insert(path, (key, record));
    }
    r.data.is_empty().then_some(ModuleCache { entries })
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

    fn sample() -> ModuleCache {
        let mut cache = ModuleCache::new();
        cache.insert(
            b"/lib/modules/x/a.ko".to_vec(),
            key(1),
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
            },
        );
        cache.insert(b"/b.ko".to_vec(), key(2), ModuleRecord::default());
        cache
    }

    #[test]
    fn round_trip() {
        let cache = sample();
        let bytes = cache.encode(settings());
        let back = decode(&bytes, settings()).expect("valid cache");
        assert_eq!(back.len(), 2);
        assert_eq!(
            back.lookup(b"/lib/modules/x/a.ko", &key(1)),
            cache.lookup(b"/lib/modules/x/a.ko", &key(1))
        );
        assert!(back.lookup(b"/lib/modules/x/a.ko", &key(3)).is_none());
        assert_eq!(back.encode(settings()), bytes);
    }

    #[test]
    fn damaged_or_foreign_files_are_rejected() {
        let bytes = sample().encode(settings());
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], settings()).is_none(),
                "truncated to {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(decode(&flipped, settings()).is_none(), "flip at {at}");
        }
        let other = ReadSettings {
            version: KmodVersion::V30,
            gzip: false,
        };
        assert!(decode(&bytes, other).is_none());
        let gzip = ReadSettings {
            gzip: true,
            ..settings()
        };
        assert!(decode(&bytes, gzip).is_none());
    }

    #[test]
    fn racy_files_are_not_settled() {
        let k = key(1);
        assert!(!k.is_settled(k.ctime_ns));
        assert!(!k.is_settled(k.ctime_ns + RACY_MARGIN_NS - 1));
        assert!(k.is_settled(k.ctime_ns + RACY_MARGIN_NS));
    }
}
