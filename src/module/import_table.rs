//! A module's undefined symbols, with the names stored back to back in one buffer, or
//! numbered in names the tables of a run share.
//!
//! A module imports tens to hundreds of symbols; a tree has hundreds of thousands of
//! imports in all. Keeping each name in its own allocation made `malloc` and `free` one of
//! the largest costs of reading a tree, so depmod's own read path keeps them here.

use std::sync::Arc;

use super::import_names::ImportNames;

/// Undefined symbols in order, each with its CRC and weak flag.
///
/// A tree has hundreds of thousands of imports, all kept until the symbols are resolved, so
/// each takes 8 bytes besides its name: the name's length (or its number in the shared
/// names) and weak flag in one `u32`, the CRC in another. CRCs are 32-bit values; a table
/// given a wider one (a forged `__versions`) or a name of 2 GiB or more keeps every symbol
/// in full instead.
#[derive(Debug, Clone, Default)]
pub struct ImportTable {
    names: Names,
    entries: Entries,
}

/// Where a table's names are.
#[derive(Debug, Clone)]
enum Names {
    /// Back to back, in symbol order; an entry's key is its name's length.
    Inline(Vec<u8>),
    /// In shard `shard` of names shared with other tables; an entry's key is its name's
    /// number there. `names` is set when the run's reading is done (see
    /// [`ImportTable::share_names`]); until then the names read as empty.
    Shared {
        shard: usize,
        names: Option<Arc<ImportNames>>,
    },
}

impl Default for Names {
    fn default() -> Self {
        Names::Inline(Vec::new())
    }
}

/// The symbols' lengths, CRCs and weak flags: all narrow until one does not fit.
#[derive(Debug, Clone)]
enum Entries {
    Narrow(Vec<Narrow>),
    Wide(Vec<Wide>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Narrow(Vec::new())
    }
}

/// A symbol whose key (name length or number) is below 2^31 and whose CRC fits in 32 bits.
#[derive(Debug, Clone, Copy)]
struct Narrow {
    /// The key, with the weak flag in the top bit.
    key_and_weak: u32,
    crc: u32,
}

impl Narrow {
    const WEAK: u32 = 1 << 31;

    /// `symbol` in 8 bytes, if it fits.
    fn new(symbol: Wide) -> Option<Narrow> {
        let key = u32::try_from(symbol.key)
            .ok()
            .filter(|&key| key < Self::WEAK)?;
        let crc = u32::try_from(symbol.crc).ok()?;
        let weak = if symbol.weak { Self::WEAK } else { 0 };
        Some(Narrow {
            key_and_weak: key | weak,
            crc,
        })
    }

    fn wide(self) -> Wide {
        Wide {
            key: (self.key_and_weak & !Self::WEAK) as usize,
            crc: u64::from(self.crc),
            weak: self.key_and_weak & Self::WEAK != 0,
        }
    }
}

/// Any symbol.
#[derive(Debug, Clone, Copy)]
struct Wide {
    /// The name's length, or its number in the shared names.
    key: usize,
    crc: u64,
    weak: bool,
}

/// One symbol of an [`ImportTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportRef<'a> {
    /// Symbol name.
    pub name: &'a [u8],
    /// CRC from `__versions`, 0 when there is no entry.
    pub crc: u64,
    /// `STB_WEAK` binding.
    pub weak: bool,
}

impl ImportTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with room for `count` symbols.
    pub fn with_capacity(count: usize) -> Self {
        /// A guess at the average length of a symbol name.
        const NAME_LEN: usize = 24;
        ImportTable {
            names: Names::Inline(Vec::with_capacity(count * NAME_LEN)),
            entries: Entries::Narrow(Vec::with_capacity(count)),
        }
    }

    /// An empty table with room for `count` symbols whose names are numbered in shard
    /// `shard` of the names the run's tables will share.
    pub(crate) fn numbered(count: usize, shard: usize) -> Self {
        ImportTable {
            names: Names::Shared { shard, names: None },
            entries: Entries::Narrow(Vec::with_capacity(count)),
        }
    }

    /// Appends a symbol.
    ///
    /// A table whose names are numbered in names shared with other tables (as depmod's own
    /// read path makes them) first becomes one that keeps its names itself.
    pub fn push(&mut self, name: &[u8], crc: u64, weak: bool) {
        if matches!(self.names, Names::Shared { .. }) {
            *self = self.iter().collect();
        }
        if let Names::Inline(names) = &mut self.names {
            names.extend_from_slice(name);
        }
        self.push_key(name.len(), crc, weak);
    }

    /// Appends a symbol whose name is number `id` in the table's shard.
    pub(crate) fn push_numbered(&mut self, id: usize, crc: u64, weak: bool) {
        debug_assert!(matches!(self.names, Names::Shared { .. }));
        self.push_key(id, crc, weak);
    }

    /// Gives a table of numbered names the names it numbers (and does nothing to one that
    /// keeps its own).
    pub(crate) fn share_names(&mut self, shared: &Arc<ImportNames>) {
        if let Names::Shared { names, .. } = &mut self.names {
            *names = Some(Arc::clone(shared));
        }
    }

    /// The shared names of a table of numbered names, and its shard there.
    pub(crate) fn shared_names(&self) -> Option<(&Arc<ImportNames>, usize)> {
        match &self.names {
            Names::Shared {
                shard,
                names: Some(names),
            } => Some((names, *shard)),
            _ => None,
        }
    }

    fn push_key(&mut self, key: usize, crc: u64, weak: bool) {
        let symbol = Wide { key, crc, weak };
        match &mut self.entries {
            Entries::Narrow(narrow) => match Narrow::new(symbol) {
                Some(entry) => narrow.push(entry),
                None => {
                    let mut wide: Vec<Wide> = narrow.iter().map(|n| n.wide()).collect();
                    wide.push(symbol);
                    self.entries = Entries::Wide(wide);
                }
            },
            Entries::Wide(wide) => wide.push(symbol),
        }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Narrow(narrow) => narrow.len(),
            Entries::Wide(wide) => wide.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The symbols in order.
    pub fn iter(&self) -> impl Iterator<Item = ImportRef<'_>> + '_ {
        self.iter_numbered().map(|(import, _)| import)
    }

    /// The symbols in order, each with its name's number in the shared names when the
    /// table numbers its names.
    pub(crate) fn iter_numbered(
        &self,
    ) -> impl Iterator<Item = (ImportRef<'_>, Option<usize>)> + '_ {
        let (narrow, wide) = match &self.entries {
            Entries::Narrow(narrow) => (&narrow[..], &[][..]),
            Entries::Wide(wide) => (&[][..], &wide[..]),
        };
        let entries = narrow.iter().map(|n| n.wide()).chain(wide.iter().copied());
        let mut start = 0;
        entries.map(move |entry| {
            let (name, id) = match &self.names {
                Names::Inline(names) => {
                    let name = names.get(start..start + entry.key).unwrap_or_default();
                    start += entry.key;
                    (name, None)
                }
                Names::Shared { shard, names } => {
                    let name = names
                        .as_ref()
                        .map_or(&[][..], |n| n.name(*shard, entry.key));
                    (name, Some(entry.key))
                }
            };
            let import = ImportRef {
                name,
                crc: entry.crc,
                weak: entry.weak,
            };
            (import, id)
        })
    }

    /// Releases spare capacity (tables live until the symbols are resolved).
    pub fn shrink_to_fit(&mut self) {
        if let Names::Inline(names) = &mut self.names {
            names.shrink_to_fit();
        }
        match &mut self.entries {
            Entries::Narrow(narrow) => narrow.shrink_to_fit(),
            Entries::Wide(wide) => wide.shrink_to_fit(),
        }
    }
}

impl PartialEq for ImportTable {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ImportTable {}

impl<'a> FromIterator<ImportRef<'a>> for ImportTable {
    fn from_iter<I: IntoIterator<Item = ImportRef<'a>>>(iter: I) -> Self {
        let mut table = ImportTable::new();
        for import in iter {
            table.push(import.name, import.crc, import.weak);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's symbols as (name, CRC, weak flag).
    fn symbols(table: &ImportTable) -> Vec<(&[u8], u64, bool)> {
        table.iter().map(|i| (i.name, i.crc, i.weak)).collect()
    }

    #[test]
    fn keeps_names_and_order() {
        let mut table = ImportTable::new();
        table.push(b"printk", 7, false);
        table.push(b"", 0, true);
        table.push(b"kmalloc", 9, true);
        assert_eq!(
            symbols(&table),
            vec![
                (&b"printk"[..], 7, false),
                (&b""[..], 0, true),
                (&b"kmalloc"[..], 9, true)
            ]
        );
        assert_eq!(table.len(), 3);
        assert_eq!(table.iter().collect::<ImportTable>(), table);
    }

    #[test]
    fn a_pushed_name_turns_shared_names_into_own_ones() {
        use crate::module::NameShard;
        let mut shard = NameShard::default();
        let mut table = ImportTable::numbered(2, 0);
        for (name, crc) in [(&b"printk"[..], 7), (b"kfree", 9)] {
            table.push_numbered(shard.intern(name).unwrap(), crc, false);
        }
        let names = Arc::new(ImportNames::new(vec![shard.freeze()]));
        table.share_names(&names);
        assert!(table.shared_names().is_some());
        table.push(b"kmalloc", 3, true);
        assert!(table.shared_names().is_none());
        assert_eq!(
            symbols(&table),
            vec![
                (&b"printk"[..], 7, false),
                (&b"kfree"[..], 9, false),
                (&b"kmalloc"[..], 3, true)
            ]
        );
    }

    #[test]
    fn wide_crcs_keep_every_symbol_whole() {
        let list: [(&[u8], u64, bool); 4] = [
            (b"printk", 0xffff_ffff, true),
            (b"kfree", 1 << 32, false),
            (b"", u64::MAX, true),
            (b"kmalloc", 9, false),
        ];
        let mut table = ImportTable::with_capacity(1);
        for (name, crc, weak) in list {
            table.push(name, crc, weak);
        }
        assert_eq!(symbols(&table), list);
        let narrow: ImportTable = table.iter().filter(|i| i.crc >> 32 == 0).collect();
        assert_eq!(narrow.len(), 2);
        assert_ne!(narrow, table);
        table.shrink_to_fit();
        assert_eq!(table.iter().collect::<ImportTable>(), table);
    }
}
