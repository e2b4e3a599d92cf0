//! A module's undefined symbols, with the names stored back to back in one buffer.
//!
//! A module imports tens to hundreds of symbols; a tree has hundreds of thousands of
//! imports in all. Keeping each name in its own allocation made `malloc` and `free` one of
//! the largest costs of reading a tree, so depmod's own read path keeps them here.

/// Undefined symbols in order, each with its CRC and weak flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportTable {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// End of the name in `names` (it starts where the previous one ends).
    end: usize,
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
            names: Vec::with_capacity(count * NAME_LEN),
            entries: Vec::with_capacity(count),
        }
    }

    /// Appends a symbol.
    pub fn push(&mut self, name: &[u8], crc: u64, weak: bool) {
        self.names.extend_from_slice(name);
        self.entries.push(Entry {
            end: self.names.len(),
            crc,
            weak,
        });
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The symbols in order.
    pub fn iter(&self) -> impl Iterator<Item = ImportRef<'_>> + '_ {
        let mut start = 0;
        self.entries.iter().map(move |entry| {
            let name = &self.names[start..entry.end];
            start = entry.end;
            ImportRef {
                name,
                crc: entry.crc,
                weak: entry.weak,
            }
        })
    }

    /// Releases spare capacity (tables live until the symbols are resolved).
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.entries.shrink_to_fit();
    }
}

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

    #[test]
    fn keeps_names_and_order() {
        let mut table = ImportTable::new();
        table.push(b"printk", 7, false);
        table.push(b"", 0, true);
        table.push(b"kmalloc", 9, true);
        let all: Vec<_> = table.iter().map(|i| (i.name, i.crc, i.weak)).collect();
        assert_eq!(
            all,
            vec![
                (&b"printk"[..], 7, false),
                (&b""[..], 0, true),
                (&b"kmalloc"[..], 9, true)
            ]
        );
        assert_eq!(table.len(), 3);
        assert_eq!(table.iter().collect::<ImportTable>(), table);
    }
}
