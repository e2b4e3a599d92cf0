//! `--cache` files: parsing and every lookup must never panic, and a file that parses must
//! encode again into bytes that parse to the same contents.
//!
//! Two kinds of input reach the parser past its checksum (which the target recomputes):
//! arbitrary bytes after a valid header, and a well-formed cache built from arbitrary
//! contents, then damaged at arbitrary places.
#![no_main]

use arbitrary::Arbitrary;
use depmod_rs::internals::DirListing;
use depmod_rs::internals::FileKey;
use depmod_rs::internals::cache::{
    self as cache, CacheEntry, KeptWalk, Listings, Memo, MemoBase, MemoModule, ModuleCache,
    ReadSettings,
};
use depmod_rs::WrittenFile;
use depmod_rs::compat::KmodVersion;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// The body after the header.
    Raw(Vec<u8>),
    /// A cache to encode, then damage.
    Built {
        entries: Vec<(Vec<u8>, u64, bool, u128, Option<Vec<u8>>)>,
        dirs: Vec<(Vec<u8>, bool, Vec<(Vec<u8>, bool)>)>,
        walk: Option<u128>,
        memo: Option<(
            u128,
            Vec<(String, u64, u128)>,
            Vec<u8>,
            Option<(u128, Vec<(u128, u32, u64)>)>,
        )>,
        /// (position, bits to flip); positions wrap around the file.
        damage: Vec<(u16, u8)>,
        truncate: Option<u16>,
    },
}

fn key(n: u64) -> FileKey {
    FileKey {
        dev: 1,
        ino: n,
        size: n,
        mtime_ns: i128::from(n),
        ctime_ns: -i128::from(n),
    }
}

fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn built(
    settings: ReadSettings,
    entries: &[(Vec<u8>, u64, bool, u128, Option<Vec<u8>>)],
    dirs: &[(Vec<u8>, bool, Vec<(Vec<u8>, bool)>)],
    walk: Option<u128>,
    memo: Option<Memo>,
) -> Vec<u8> {
    let entries = entries
        .iter()
        .map(|(path, n, trusted, digest, record)| CacheEntry {
            path,
            key: key(*n),
            trusted: *trusted,
            digest: *digest,
            record: record.as_deref(),
        });
    let mut listings = Listings {
        rules: 7,
        walk: walk.map(|key| KeptWalk { key }),
        ..Listings::default()
    };
    for (at, (path, settled, names)) in dirs.iter().enumerate() {
        let names = names
            .iter()
            .map(|(name, is_dir)| (name.as_slice(), *is_dir));
        if let Some(listing) = DirListing::new(key(at as u64), *settled, names) {
            listings.dirs.insert(path.clone(), listing);
        }
    }
    cache::encode(entries, &listings, memo.as_ref(), settings)
}

fuzz_target!(|input: Input| {
    let settings = ReadSettings {
        version: KmodVersion::DEFAULT,
        gzip: false,
    };
    let bytes = match input {
        Input::Raw(body) => {
            let mut bytes = cache::header(settings);
            bytes.extend_from_slice(&body);
            with_checksum(bytes)
        }
        Input::Built {
            entries,
            dirs,
            walk,
            memo,
            damage,
            truncate,
        } => {
            let memo = memo.map(|(inputs, outputs, messages, base)| Memo {
                inputs,
                outputs: outputs
                    .into_iter()
                    .map(|(name, size, digest)| WrittenFile { name, size, digest })
                    .collect(),
                messages,
                base: base.map(|(frame, modules)| MemoBase {
                    frame,
                    modules: modules
                        .into_iter()
                        .map(|(digest, aliases, alias_bytes)| MemoModule {
                            record: digest,
                            rest: digest ^ 1,
                            deps: digest ^ 2,
                            aliases,
                            alias_bytes,
                        })
                        .collect(),
                }),
            });
            let mut bytes = built(settings, &entries, &dirs, walk, memo);
            bytes.truncate(bytes.len() - 4);
            if let Some(len) = truncate {
                bytes.truncate(usize::from(len));
            }
            if !bytes.is_empty() {
                let len = bytes.len();
                for (at, bits) in damage {
                    bytes[usize::from(at) % len] ^= bits;
                }
            }
            with_checksum(bytes)
        }
    };
    let Some(loaded) = ModuleCache::from_bytes(bytes, settings) else {
        return;
    };
    let paths: Vec<Vec<u8>> = loaded.paths().map(<[u8]>::to_vec).collect();
    for (at, path) in paths.iter().enumerate() {
        let entry = loaded.entry(path).expect("every stored path has an entry");
        let _ = loaded.entry_at(at, path);
        let _ = loaded.position_near(at, path);
        let _ = loaded.record(entry);
    }
    for listing in loaded.listings().dirs.values() {
        let _ = listing.entries().count();
    }
    let entries = paths.iter().enumerate().map(|(at, path)| {
        let entry = loaded.entry_by_position(at);
        CacheEntry {
            path,
            key: entry.key,
            trusted: entry.trusted,
            digest: entry.digest,
            record: loaded.record_bytes(entry),
        }
    });
    let again = cache::encode(entries, loaded.listings(), loaded.memo(), settings);
    let reloaded = ModuleCache::from_bytes(again, settings).expect("an encoded cache parses");
    assert_eq!(reloaded.listings(), loaded.listings());
    assert_eq!(reloaded.memo(), loaded.memo());
    assert_eq!(reloaded.len(), loaded.len());
});
