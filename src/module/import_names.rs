//! Symbol names shared by the import tables of many modules.
//!
//! A tree imports a few hundred thousand symbols under fewer than twenty thousand names:
//! bookworm-amd64 has 184,885 imports of 18,169 names. During a depmod run each reading
//! thread keeps one [`NameShard`], the names it has met, and a module's [`ImportTable`]
//! holds numbers into it instead of copies of the names. The same table finds a name's
//! first `__versions` entry in the module being read, which a map built per module did
//! before. Once every module is read, the shards are frozen into one [`ImportNames`] that
//! the tables share, and resolving looks each name up once per shard rather than once per
//! import.
//!
//! [`ImportTable`]: super::ImportTable

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// The most names a shard numbers: an import keeps its name's number in 31 bits.
const MAX_NAMES: usize = 1 << 31;

/// The names one reading thread has met, numbered in the order met, with the `__versions`
/// entry each has in the module being read.
#[derive(Debug, Default)]
pub(crate) struct NameShard {
    /// Every name, back to back.
    bytes: Vec<u8>,
    /// Where each name ends in `bytes`.
    ends: Vec<u32>,
    /// The names' numbers, by the hash of the name.
    index: HashTable<u32>,
    /// Per name: the module it was last seen in a `__versions` table of (by
    /// [`NameShard::start_module`] count) and its first entry there.
    versions: Vec<(u32, u32)>,
    /// The count of the module being read (0: none yet).
    module: u32,
}

impl NameShard {
    /// Starts reading a module: the `__versions` entries noted so far are forgotten.
    pub(crate) fn start_module(&mut self) {
        self.module = self.module.wrapping_add(1);
        if self.module == 0 {
            // After 2^32 modules the counts come round again: forget them all once.
            self.versions.iter_mut().for_each(|seen| seen.0 = 0);
            self.module = 1;
        }
    }

    /// The number of `name`, numbering it if it is new; `None` when the shard is full (its
    /// names would pass 4 GiB, or their count 2^31).
    pub(crate) fn intern(&mut self, name: &[u8]) -> Option<usize> {
        let hash = FxBuildHasher.hash_one(name);
        let (bytes, ends) = (&self.bytes, &self.ends);
        let name_of = |id: u32| name_at(bytes, ends, id as usize);
        if let Some(&id) = self.index.find(hash, |&id| name_of(id) == name) {
            return Some(id as usize);
        }
        let id = self.ends.len();
        let end = self.bytes.len().checked_add(name.len())?;
        let end = u32::try_from(end).ok().filter(|_| id < MAX_NAMES)?;
        self.bytes.extend_from_slice(name);
        self.ends.push(end);
        self.versions.push((0, 0));
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.index.insert_unique(hash, id as u32, |&id| {
            FxBuildHasher.hash_one(name_at(bytes, ends, id as usize))
        });
        Some(id)
    }

    /// Notes that entry `entry` of the module's `__versions` table has name number `id`;
    /// the first entry noted for a name in a module is the one kept, as kmod looks entries
    /// up from the start of the table.
    pub(crate) fn note_version(&mut self, id: usize, entry: usize) {
        let seen = &mut self.versions[id];
        if seen.0 != self.module {
            *seen = (self.module, entry as u32);
        }
    }

    /// The first `__versions` entry of the module being read with name number `id`.
    pub(crate) fn version(&self, id: usize) -> Option<usize> {
        let (module, entry) = self.versions[id];
        (module == self.module).then_some(entry as usize)
    }

    /// The names met, numbered as they were, for the tables to share.
    pub(crate) fn freeze(self) -> FrozenShard {
        FrozenShard {
            bytes: self.bytes,
            ends: self.ends,
        }
    }
}

/// Name `id` of the names `bytes` whose ends are `ends` (empty if there is none).
fn name_at<'a>(bytes: &'a [u8], ends: &[u32], id: usize) -> &'a [u8] {
    let end = ends.get(id).map_or(0, |&end| end as usize);
    let start = match id {
        0 => 0,
        _ => ends.get(id - 1).map_or(end, |&start| start as usize),
    };
    bytes.get(start..end).unwrap_or_default()
}

/// The names of one [`NameShard`], read-only.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FrozenShard {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

/// The symbol names the import tables of a run share: one set of numbered names per
/// reading thread.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportNames {
    shards: Vec<FrozenShard>,
}

impl ImportNames {
    /// The names of `shards`, shard `i` being the `i`th.
    pub(crate) fn new(shards: Vec<FrozenShard>) -> Self {
        ImportNames { shards }
    }

    /// How many shards there are.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// How many names shard `shard` has (0 if there is no such shard).
    pub(crate) fn len(&self, shard: usize) -> usize {
        self.shards.get(shard).map_or(0, |s| s.ends.len())
    }

    /// Name `id` of shard `shard` (empty if there is none).
    pub(crate) fn name(&self, shard: usize, id: usize) -> &[u8] {
        match self.shards.get(shard) {
            Some(s) => name_at(&s.bytes, &s.ends, id),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_name_once_in_order() {
        let mut shard = NameShard::default();
        let ids: Vec<usize> = [&b"printk"[..], b"kfree", b"printk", b"", b"kfree"]
            .iter()
            .map(|name| shard.intern(name).unwrap())
            .collect();
        assert_eq!(ids, [0, 1, 0, 2, 1]);
        let names = ImportNames::new(vec![shard.freeze()]);
        assert_eq!(names.len(0), 3);
        assert_eq!(names.name(0, 0), b"printk");
        assert_eq!(names.name(0, 1), b"kfree");
        assert_eq!(names.name(0, 2), b"");
        assert_eq!(names.name(0, 3), b"");
        assert_eq!(names.name(1, 0), b"");
    }

    #[test]
    fn keeps_the_first_versions_entry_of_the_module_being_read() {
        let mut shard = NameShard::default();
        shard.start_module();
        let printk = shard.intern(b"printk").unwrap();
        let kfree = shard.intern(b"kfree").unwrap();
        shard.note_version(printk, 3);
        shard.note_version(printk, 5);
        assert_eq!(shard.version(printk), Some(3));
        assert_eq!(shard.version(kfree), None);
        shard.start_module();
        assert_eq!(shard.version(printk), None);
        shard.note_version(printk, 7);
        assert_eq!(shard.version(printk), Some(7));
    }
}
