//! The encoding of a cache file: the format alone, from values to bytes and back, with no
//! file access (see the parent module for what is stored and why).

use rustc_hash::FxHashMap;

use super::{
    CacheEntry, KeptWalk, Listings, Memo, MemoBase, MemoModule, ModuleCache, ReadSettings,
    RecordRef, StoredEntry, FORMAT_VERSION, MAGIC, WRITER,
};
use crate::discover::DirListing;
use crate::fs_at::FileKey;
use crate::graph::{ExportedSymbol, ImportTable};
use crate::publish::WrittenFile;
use crate::record::ModuleRecord;

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
pub(super) fn encode_until_memo<'a>(
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
pub(super) fn finish_with_memo(out: &mut Vec<u8>, memo: Option<&Memo>) {
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
        put_bytes(out, listing.packed());
    }
    match &listings.walk {
        None => out.push(0),
        Some(walk) => {
            out.push(1);
            out.extend_from_slice(&walk.key.to_le_bytes());
        }
    }
}

pub(super) fn put_memo(out: &mut Vec<u8>, memo: Option<&Memo>) {
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

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
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
pub(super) fn decode(bytes: Vec<u8>, settings: ReadSettings) -> Option<ModuleCache> {
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
        let listing = DirListing::from_packed(key, settled, packed)?;
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
                outputs.push(WrittenFile {
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
    use super::super::*;
    use super::*;
    use crate::compat::KmodVersion;
    use crate::fs_at::RACY_MARGIN_NS;

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
            outputs: vec![WrittenFile {
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
        encode_record(&mut record, RecordRef::of(&sample_record()));
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
        encode_record(&mut record, RecordRef::of(&sample_record()));
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
