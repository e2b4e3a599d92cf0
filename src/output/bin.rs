//! Entries of the binary indexes (§8.3, §8.5, §8.9–§8.11) and their encoding with
//! [`crate::index::IndexBuilder`].

use std::borrow::Cow;

use super::text::dep_line;
use super::Resolved;
use crate::builtin::BuiltinAlias;
use crate::compat::NodeOrder;
use crate::index::{BulkEntry, CheckedEntries, IndexBuilder, IndexError};
use crate::names::normalize_alias_cow;
use crate::record::GraphModule;
use crate::{bappend, bmsg};

/// One `(key, value, priority)` insertion, in kmod's insertion order.
///
/// Key and value borrow what they can from the resolved data (module names, raw aliases,
/// builtin names): an index of tens of thousands of entries then allocates only the bytes
/// that are made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry<'a> {
    /// The trie key.
    pub key: Cow<'a, [u8]>,
    /// The value stored under it.
    pub value: Cow<'a, [u8]>,
    /// Its priority (the owner's `idx`, or 0).
    pub priority: u32,
}

/// What kind of duplicate an index reports with `-w` (the word in kmod's warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateKind {
    /// `duplicate module deps:` followed by the value line.
    Deps,
    /// `duplicate module alias:` followed by `<key> <value>`.
    Alias,
    /// `duplicate module syms:` followed by `<key> <value>`.
    Syms,
    /// Not reported (builtin indexes).
    Silent,
}

impl IndexEntry<'_> {
    /// The entry as the bulk encoder ([`CheckedEntries`]) takes it.
    fn as_bulk(&self) -> BulkEntry<'_> {
        BulkEntry {
            key: &self.key,
            value: &self.value,
            priority: self.priority,
        }
    }
}

fn entry<'a>(
    key: impl Into<Cow<'a, [u8]>>,
    value: impl Into<Cow<'a, [u8]>>,
    priority: usize,
) -> IndexEntry<'a> {
    IndexEntry {
        key: key.into(),
        value: value.into(),
        priority: priority as u32,
    }
}

/// `modules.dep.bin`: modname → dep line, priority `idx`.
///
/// The keys borrow the names of `modules` (those of `resolved`) and the lines are owned,
/// so that the dependency lists can be freed while the entries live.
pub fn dep_entries<'m>(modules: &'m [GraphModule], resolved: &Resolved<'_>) -> Vec<IndexEntry<'m>> {
    modules
        .iter()
        .enumerate()
        .map(|(i, module)| entry(&module.name[..], dep_line(resolved, i), i))
        .collect()
}

/// One step of building an index: an insertion, or a warning kmod prints at that point (so
/// warnings interleave with `-w` duplicate reports exactly as kmod's do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexStep<'a> {
    /// Insert this entry.
    Insert(IndexEntry<'a>),
    /// Print this `WARNING:` message.
    Warning(Vec<u8>),
}

/// Every alias of `resolved`'s modules in order, with its module and that module's `idx`.
fn module_aliases<'a>(
    resolved: &Resolved<'a>,
) -> impl Iterator<Item = (usize, &'a GraphModule, &'a [u8])> + 'a {
    let modules = resolved.modules;
    modules.iter().enumerate().flat_map(|(i, module)| {
        module
            .record
            .aliases
            .iter()
            .map(move |alias| (i, module, &alias[..]))
    })
}

/// The warning for an alias whose brackets do not match, which `modules.alias.bin` skips.
fn unmatched_bracket(alias: &[u8]) -> Vec<u8> {
    bmsg!("Unmatched bracket in ", alias)
}

/// `modules.alias.bin`: normalised alias → modname, priority `idx`; an alias with unmatched
/// brackets is skipped with a warning at its place in the sequence.
pub fn alias_steps<'a>(resolved: &Resolved<'a>) -> Vec<IndexStep<'a>> {
    module_aliases(resolved)
        .map(|(i, module, alias)| match normalize_alias_cow(alias) {
            Ok(key) => IndexStep::Insert(entry(key, &module.name, i)),
            Err(_) => IndexStep::Warning(unmatched_bracket(alias)),
        })
        .collect()
}

/// `modules.alias.bin` built in one go (without `-w`): the bytes and warnings of the bulk
/// encoding of [`alias_steps`] (which the tests keep as the reference), without the list of
/// steps.
///
/// The steps hold every key and value again (1.5 MB on bookworm-amd64), in memory the
/// thread that ends the run must first fault in. Here a first pass notes each alias's key
/// (its length, when the key is a prefix of the alias, as for nearly all) and keeps only the
/// keys that differ; the entries then borrow the aliases and those keys.
pub fn encode_alias_bulk(
    resolved: &Resolved<'_>,
    order: NodeOrder,
    warnings: &mut Vec<Vec<u8>>,
) -> Result<Vec<u8>, IndexError> {
    /// How an alias's key was made: `len` bytes of the alias, a key of its own, or none.
    #[derive(Clone, Copy)]
    enum Key {
        Prefix(u32),
        Own,
        UnmatchedBracket,
    }
    let mut keys = Vec::with_capacity(module_aliases(resolved).count());
    let mut own_keys = Vec::new();
    for (_, _, alias) in module_aliases(resolved) {
        keys.push(match normalize_alias_cow(alias) {
            Ok(Cow::Borrowed(key)) => match u32::try_from(key.len()) {
                Ok(len) => Key::Prefix(len),
                Err(_) => {
                    own_keys.push(key.to_vec());
                    Key::Own
                }
            },
            Ok(Cow::Owned(key)) => {
                own_keys.push(key);
                Key::Own
            }
            Err(_) => Key::UnmatchedBracket,
        });
    }
    let mut entries = CheckedEntries::with_capacity(keys.len());
    let mut own = own_keys.iter();
    for ((i, module, alias), key) in module_aliases(resolved).zip(keys) {
        let key: &[u8] = match key {
            Key::Prefix(len) => &alias[..len as usize],
            Key::Own => own.next().map_or(&[][..], Vec::as_slice),
            Key::UnmatchedBracket => {
                warnings.push(unmatched_bracket(alias));
                continue;
            }
        };
        entries.push(BulkEntry {
            key,
            value: &module.name,
            priority: i as u32,
        })?;
    }
    entries.encode(order)
}

/// The prefix of every `modules.symbols.bin` key.
const SYMBOL_KEY_PREFIX: &[u8] = b"symbol:";

/// The entries of `modules.symbols.bin`: `symbol:<name>` → owner modname, priority owner
/// `idx`, in symbol-table order. The keys are made into one buffer rather than one
/// allocation each; [`SymbolEntries::entries`] borrows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolEntries<'a> {
    /// Every key, one after the other.
    keys: Vec<u8>,
    /// Per symbol: the length of its key, its owner's name and `idx`.
    symbols: Vec<(usize, &'a [u8], usize)>,
}

impl<'a> SymbolEntries<'a> {
    /// The entries of `resolved`'s symbols.
    pub fn new(resolved: &Resolved<'a>) -> Self {
        let len = resolved
            .symbols
            .iter()
            .map(|(name, _)| SYMBOL_KEY_PREFIX.len() + name.len())
            .sum();
        let mut keys = Vec::with_capacity(len);
        let mut symbols = Vec::with_capacity(resolved.symbols.len());
        for (name, owner) in resolved.symbols.iter() {
            bappend!(keys, SYMBOL_KEY_PREFIX, name);
            let owner_name = &resolved.modules[owner].name[..];
            symbols.push((SYMBOL_KEY_PREFIX.len() + name.len(), owner_name, owner));
        }
        SymbolEntries { keys, symbols }
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> Vec<IndexEntry<'_>> {
        self.iter()
            .map(|(key, owner_name, owner)| entry(key, owner_name, owner))
            .collect()
    }

    /// `modules.symbols.bin` encoded all at once (without `-w`): the bytes of
    /// [`encode_entries_bulk`] over [`SymbolEntries::entries`], without making that list
    /// (14,000 entries of 56 bytes on bookworm-amd64) first.
    pub fn encode_bulk(&self, order: NodeOrder) -> Result<Vec<u8>, IndexError> {
        let entries = self.iter().map(|(key, owner_name, owner)| BulkEntry {
            key,
            value: owner_name,
            priority: owner as u32,
        });
        CheckedEntries::from_entries(entries)?.encode(order)
    }

    /// Each entry's key, owner name and owner `idx`, in insertion order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &'a [u8], usize)> + '_ {
        let mut rest = &self.keys[..];
        self.symbols
            .iter()
            .map(move |&(key_len, owner_name, owner)| {
                let (key, after) = rest.split_at(key_len);
                rest = after;
                (key, owner_name, owner)
            })
    }
}

/// `modules.builtin.bin`: each key with value `""`, priority 0.
pub fn builtin_entries(keys: &[Vec<u8>]) -> Vec<IndexEntry<'_>> {
    keys.iter().map(|k| entry(k, &b""[..], 0)).collect()
}

/// `modules.builtin.alias.bin`: alias → modname, priority 0.
pub fn builtin_alias_entries(aliases: &[BuiltinAlias]) -> Vec<IndexEntry<'_>> {
    aliases
        .iter()
        .map(|a| entry(&a.alias, &a.modname, 0))
        .collect()
}

/// `entries` checked and encoded all at once ([`CheckedEntries`]): the bytes of
/// [`build_index`] laid out in `order`, faster, for runs that report no duplicates (no `-w`).
pub fn encode_entries_bulk(
    entries: &[IndexEntry<'_>],
    order: NodeOrder,
) -> Result<Vec<u8>, IndexError> {
    CheckedEntries::from_entries(entries.iter().map(IndexEntry::as_bulk))?.encode(order)
}

/// [`encode_entries_bulk`] over steps: their warnings go to `warnings` in order, up to the
/// first entry that cannot be stored (where the one-by-one build stops too).
#[cfg(test)]
pub fn encode_steps_bulk(
    steps: &[IndexStep<'_>],
    order: NodeOrder,
    warnings: &mut Vec<Vec<u8>>,
) -> Result<Vec<u8>, IndexError> {
    let mut entries = CheckedEntries::with_capacity(steps.len());
    for step in steps {
        match step {
            IndexStep::Insert(e) => entries.push(e.as_bulk())?,
            IndexStep::Warning(w) => warnings.push(w.clone()),
        }
    }
    entries.encode(order)
}

/// The trie of `entries`, not yet laid out. With `warn_duplicates`, each repeated (key,
/// value) pair adds kmod's `-w` warning to `warnings`.
pub fn build_index(
    entries: Vec<IndexEntry<'_>>,
    kind: DuplicateKind,
    warn_duplicates: bool,
    warnings: &mut Vec<Vec<u8>>,
) -> Result<IndexBuilder, IndexError> {
    if warn_duplicates {
        let steps: Vec<IndexStep> = entries.into_iter().map(IndexStep::Insert).collect();
        return build_index_steps(&steps, kind, warn_duplicates, warnings);
    }
    // Without -w no value is needed after its insert: move each one into the trie (the
    // dependency lines of a large tree are tens of megabytes).
    let mut builder = IndexBuilder::new();
    for e in entries {
        builder.insert_owned(&e.key, e.value.into_owned(), e.priority)?;
    }
    Ok(builder)
}

/// [`build_index`] over steps that may carry warnings of their own.
pub fn build_index_steps(
    steps: &[IndexStep<'_>],
    kind: DuplicateKind,
    warn_duplicates: bool,
    warnings: &mut Vec<Vec<u8>>,
) -> Result<IndexBuilder, IndexError> {
    let mut builder = IndexBuilder::new();
    for step in steps {
        let e = match step {
            IndexStep::Insert(e) => e,
            IndexStep::Warning(w) => {
                warnings.push(w.clone());
                continue;
            }
        };
        let duplicate = builder.insert(&e.key, &e.value, e.priority)?;
        if duplicate && warn_duplicates {
            match kind {
                DuplicateKind::Deps => warnings.push(bmsg!("duplicate module deps:\n", e.value)),
                DuplicateKind::Alias => {
                    warnings.push(bmsg!("duplicate module alias:\n", e.key, " ", e.value))
                }
                DuplicateKind::Syms => {
                    warnings.push(bmsg!("duplicate module syms:\n", e.key, " ", e.value))
                }
                DuplicateKind::Silent => {}
            }
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::graph::{OwnedSymbols, NO_SYMBOLS};
    use crate::record::ModuleRecord;

    /// Modules named `m0`, `m1`, … with the given aliases.
    fn with_aliases(aliases: &[Vec<Vec<u8>>]) -> Vec<GraphModule> {
        aliases
            .iter()
            .enumerate()
            .map(|(i, aliases)| GraphModule {
                name: format!("m{i}").into_bytes(),
                record: ModuleRecord {
                    aliases: aliases.clone(),
                    ..ModuleRecord::default()
                },
                ..GraphModule::default()
            })
            .collect()
    }

    /// What an encoding gave: the bytes, or the error's kmod message.
    type Outcome = Result<Vec<u8>, Vec<u8>>;

    /// The bytes (or error) and warnings of both ways of encoding `modules.alias.bin`.
    fn both_ways(modules: &[GraphModule], order: NodeOrder) -> [(Outcome, Vec<Vec<u8>>); 2] {
        let resolved = Resolved {
            modules,
            dependencies: &[],
            symbols: &NO_SYMBOLS,
        };
        let mut step_warnings = Vec::new();
        let steps = alias_steps(&resolved);
        let by_steps = encode_steps_bulk(&steps, order, &mut step_warnings);
        let mut warnings = Vec::new();
        let direct = encode_alias_bulk(&resolved, order, &mut warnings);
        let (by_steps, direct) = (
            by_steps.map_err(|e| e.kmod_message()),
            direct.map_err(|e| e.kmod_message()),
        );
        [(by_steps, step_warnings), (direct, warnings)]
    }

    #[test]
    fn alias_index_without_steps_matches_the_steps() {
        let long = [b'x'; 300].to_vec();
        let aliases: Vec<Vec<Vec<u8>>> = vec![
            vec![
                b"pci:v*d*".to_vec(),
                b"usb-dash-ed".to_vec(),
                b"a-[-]-b".to_vec(),
            ],
            vec![b"broken]".to_vec(), b"nul\0after".to_vec(), long],
            vec![],
            vec![b"pci:v*d*".to_vec(), b"[unclosed".to_vec(), b"ok".to_vec()],
        ];
        let modules = with_aliases(&aliases);
        for order in [NodeOrder::Pre, NodeOrder::Post] {
            let [by_steps, direct] = both_ways(&modules, order);
            assert_eq!(direct.0, by_steps.0);
            assert_eq!(direct.1, by_steps.1);
            assert_eq!(direct.1.len(), 2);
        }
        // A bad byte stops both at the same alias, with the warnings before it.
        let bad = with_aliases(&[vec![b"x]".to_vec(), b"caf\xe9".to_vec(), b"y]".to_vec()]]);
        let [by_steps, direct] = both_ways(&bad, NodeOrder::Pre);
        assert!(direct.0.is_err());
        assert_eq!(direct.0.err(), by_steps.0.err());
        assert_eq!(direct.1, by_steps.1);
        assert_eq!(direct.1.len(), 1);
    }

    proptest! {
        #[test]
        fn alias_index_without_steps_matches_on_random_aliases(
            aliases in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(
                    prop::sample::select(&b"ab-_[]*:\x80\0"[..]), 0..12), 0..4),
                0..6,
            )
        ) {
            let modules = with_aliases(&aliases);
            let [by_steps, direct] = both_ways(&modules, NodeOrder::Pre);
            prop_assert_eq!(direct.0, by_steps.0);
            prop_assert_eq!(direct.1, by_steps.1);
        }
    }

    /// `modules.symbols.bin` at once gives the bytes of building it entry by entry, and
    /// stops at the same bad symbol name.
    #[test]
    fn symbol_index_at_once_matches_the_builder() {
        let modules = with_aliases(&[vec![], vec![], vec![]]);
        let name = |s: &str| s.as_bytes().to_vec();
        let symbols = vec![
            (name("zeta"), 2),
            (name("alpha"), 0),
            (name("alpha_long_name_past_a_word"), 1),
            (name("alpha"), 2),
            (name("b"), 1),
        ];
        let mut broken = symbols.clone();
        broken.insert(2, (b"caf\xe9".to_vec(), 0));
        for symbols in [symbols, broken] {
            let symbols: OwnedSymbols = symbols.iter().map(|(n, o)| (&n[..], *o)).collect();
            let resolved = Resolved {
                modules: &modules,
                dependencies: &[],
                symbols: &symbols,
            };
            let entries = SymbolEntries::new(&resolved);
            for order in [NodeOrder::Pre, NodeOrder::Post] {
                let mut warnings = Vec::new();
                let built =
                    build_index(entries.entries(), DuplicateKind::Syms, false, &mut warnings)
                        .and_then(|builder| builder.to_bytes(order));
                assert_eq!(
                    entries.encode_bulk(order).map_err(|e| e.kmod_message()),
                    built.map_err(|e| e.kmod_message())
                );
            }
        }
    }
}
