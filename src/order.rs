//! kmod's module order: the iteration order of its hash table, then `modules.order` (spec §4).
//!
//! kmod collects modules in a 512-bucket hash keyed by module name and builds its module array
//! by iterating that table: buckets in ascending order, entries inside a bucket sorted by
//! `strcmp`. The symbol table (2048 buckets) is iterated the same way for `modules.symbols`.
//! `modules.order` then moves the modules it lists to the front, in file order, with a stable
//! sort (glibc's `qsort` is a merge sort).
//!
//! [`sort_hash_order`] and [`apply_modules_order`] are those two steps as kmod takes them. A
//! run takes them in one: [`module_order`] sorts the modules by the line placing each (from
//! [`ModulesOrder`], read while the tree is walked), then by bucket and name, which gives the
//! same order (the tests and the `modules_order` fuzz target compare the two).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rayon::prelude::*;
use rustc_hash::FxBuildHasher;

use crate::compat::KmodVersion;
use crate::fgets::{fgets_chunks, PATH_MAX};

/// Bucket count of kmod's `modules_by_name` hash.
pub const MODULE_BUCKETS: u32 = 512;
/// Bucket count of kmod's symbol hash.
pub const SYMBOL_BUCKETS: u32 = 2048;

/// Paul Hsieh's SuperFastHash as kmod's `shared/hash.c` computes it on a little-endian host,
/// with the 1- and 3-byte tails reading a *signed* `char` (kmod 30 to 34.2).
pub fn superfast_hash(key: &[u8]) -> u32 {
    let mut hash = key.len() as u32;
    let le16 = |b: &[u8]| u32::from(u16::from_le_bytes([b[0], b[1]]));
    let signed = |b: u8| (b as i8) as i32 as u32;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        hash = hash.wrapping_add(le16(&block[0..2]));
        let tmp = (le16(&block[2..4]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    let rest = blocks.remainder();
    match rest.len() {
        3 => {
            hash = hash.wrapping_add(le16(&rest[0..2]));
            hash ^= hash << 16;
            hash ^= signed(rest[2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(le16(&rest[0..2]));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(signed(rest[0]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// Sort `items` into kmod's hash iteration order for a table of `buckets` buckets, using
/// `name` to get each item's key. Keys must be unique, as they are in kmod's tables.
pub fn sort_hash_order<T>(items: &mut [T], buckets: u32, name: impl Fn(&T) -> &[u8]) {
    let mut keys: Vec<(u32, &[u8], usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = name(item);
            (superfast_hash(name) & (buckets - 1), name, i)
        })
        .collect();
    keys.sort_unstable();
    let order: Vec<usize> = keys.into_iter().map(|(_, _, i)| i).collect();
    permute(items, &order);
}

/// Rearranges `items` in place so that position `i` holds what was at `order[i]` (a
/// permutation of the indices), one swap per item, cycle by cycle.
pub fn permute<T>(items: &mut [T], order: &[usize]) {
    let mut placed = vec![false; items.len()];
    for start in 0..items.len() {
        let mut at = start;
        while !placed[at] {
            placed[at] = true;
            let from = order[at];
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// What reading `modules.order` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderFile<'a> {
    /// Lines (newline removed), in file order.
    Lines(Vec<&'a [u8]>),
    /// A line did not end in `\n` (1-based chunk number as kmod counts it): no reordering at all.
    Corrupted {
        /// kmod's line counter at the bad line.
        line: usize,
    },
}

/// Split `modules.order` the way kmod's `fgets` loop with a `PATH_MAX` buffer sees it.
pub fn parse_modules_order(data: &[u8]) -> OrderFile<'_> {
    let mut lines = Vec::new();
    for (n, c_str) in fgets_chunks(data, PATH_MAX).into_iter().enumerate() {
        if c_str.is_empty() {
            continue;
        }
        if c_str.last() != Some(&b'\n') {
            return OrderFile::Corrupted { line: n + 1 };
        }
        lines.push(&c_str[..c_str.len() - 1]);
    }
    OrderFile::Lines(lines)
}

/// Reorder `modules` (already in hash order) by `modules.order` lines, as `depmod_modules_sort`
/// does: listed modules first in list order, unlisted ones after in their previous order.
/// `uncrelpath` gives the key each module is listed under (none for modules outside the
/// module directory). Which duplicate line counts depends on `version` (§4.2).
pub fn apply_modules_order<T>(
    modules: &mut [T],
    lines: &[&[u8]],
    version: KmodVersion,
    uncrelpath: impl Fn(&T) -> Option<&[u8]>,
) {
    let mut by_path: rustc_hash::FxHashMap<&[u8], usize> = Default::default();
    by_path.reserve(modules.len());
    for (i, module) in modules.iter().enumerate() {
        if let Some(path) = uncrelpath(module) {
            by_path.insert(path, i);
        }
    }
    // Sort keys: listed modules get negative keys, unlisted keep 1.
    let mut keys: Vec<i64> = vec![1; modules.len()];
    let first_wins = version.order_first_occurrence_wins();
    for (line_no, line) in lines.iter().enumerate() {
        if let Some(&i) = by_path.get(line) {
            if first_wins {
                if keys[i] < 0 {
                    continue;
                }
                keys[i] = line_no as i64 - lines.len() as i64 - 1;
            } else {
                keys[i] = line_no as i64 - lines.len() as i64 - 1;
            }
        }
    }
    drop(by_path);
    let mut order: Vec<usize> = (0..modules.len()).collect();
    order.sort_by_key(|&i| keys[i]); // stable, like glibc's merge-sort qsort
    permute(modules, &order);
}

/// `modules.order`, read for placing modules: each path it lists with the line that places
/// it (the first of its lines from kmod 34, the last before; spec §4.2).
#[derive(Debug)]
pub struct ModulesOrder {
    data: Vec<u8>,
    /// Each distinct line: where its bytes are in `data`, and the number of the line that
    /// places the module it names.
    lines: Vec<(usize, usize, u32)>,
    /// Positions in `lines`, by the hash of the line.
    index: HashTable<u32>,
    /// The line that does not end in `\n`, when there is one (no module is placed then).
    corrupted: Option<usize>,
}

impl ModulesOrder {
    /// The lines of `data` (the bytes of `modules.order`) as `version` reads them.
    pub fn new(data: Vec<u8>, version: KmodVersion) -> Self {
        let first_wins = version.order_first_occurrence_wins();
        let mut lines: Vec<(usize, usize, u32)> = Vec::new();
        let mut index = HashTable::new();
        let mut corrupted = None;
        match parse_modules_order(&data) {
            OrderFile::Corrupted { line } => corrupted = Some(line),
            OrderFile::Lines(found) => {
                // A line count past u32 would need a 4 GiB file; such lines place nothing.
                let found = &found[..found.len().min(u32::MAX as usize)];
                lines.reserve(found.len());
                for (number, line) in found.iter().enumerate() {
                    let start = line.as_ptr() as usize - data.as_ptr() as usize;
                    let hash = FxBuildHasher.hash_one(line);
                    let holds = |&at: &u32| line_bytes(&data, lines[at as usize]) == *line;
                    match index.find(hash, holds) {
                        Some(&at) => {
                            if !first_wins {
                                lines[at as usize].2 = number as u32;
                            }
                        }
                        None => {
                            let at = lines.len() as u32;
                            lines.push((start, start + line.len(), number as u32));
                            index.insert_unique(hash, at, |&at| {
                                FxBuildHasher.hash_one(line_bytes(&data, lines[at as usize]))
                            });
                        }
                    }
                }
            }
        }
        ModulesOrder {
            data,
            lines,
            index,
            corrupted,
        }
    }

    /// The number of the line placing the module listed as `path`, if it is listed; never
    /// one in a corrupted file, which places no module.
    pub fn line_of(&self, path: &[u8]) -> Option<u32> {
        let hash = FxBuildHasher.hash_one(path);
        let at = self.index.find(hash, |&at| {
            line_bytes(&self.data, self.lines[at as usize]) == path
        })?;
        Some(self.lines[*at as usize].2)
    }

    /// The line that does not end in `\n`, if one does not (kmod then orders nothing).
    pub fn corrupted_line(&self) -> Option<usize> {
        self.corrupted
    }

    /// The bytes of the file.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

/// The bytes in `data` of a line of [`ModulesOrder::lines`].
fn line_bytes(data: &[u8], (start, end, _): (usize, usize, u32)) -> &[u8] {
    &data[start..end]
}

/// kmod's module array in one sort: [`sort_hash_order`] over `MODULE_BUCKETS`, then the
/// modules `modules.order` lists moved to the front in file order, as
/// [`apply_modules_order`] does. `line_of` gives the line placing a module, if one does
/// (see [`ModulesOrder::line_of`]); `name`s must be unique. Returns the order as positions
/// in `items` (for [`permute`]).
///
/// Each item's bucket and line are found on all cores, and the items are sorted once by
/// (line, bucket, name): a listed module's line decides its place alone, as lines are
/// unique, so names are compared only among unlisted modules of one bucket.
pub fn module_order<T: Sync>(
    items: &[T],
    name: impl Fn(&T) -> &[u8] + Sync,
    line_of: impl Fn(&T) -> Option<u32> + Sync,
) -> Vec<usize> {
    let mut keys: Vec<(u32, u32, usize)> = items
        .par_iter()
        .with_min_len(256)
        .enumerate()
        .map(|(i, item)| {
            // Unlisted modules come after every listed one (lines are below u32::MAX).
            let line = line_of(item).unwrap_or(u32::MAX);
            (line, superfast_hash(name(item)) & (MODULE_BUCKETS - 1), i)
        })
        .collect();
    keys.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| name(&items[a.2]).cmp(name(&items[b.2])))
    });
    keys.into_iter().map(|(_, _, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superfast_hash_vectors() {
        // Spec §16.1.
        let vectors: &[(&[u8], u32)] = &[
            (b"", 0x0000_0000),
            (b"a", 0x115e_a782),
            (b"ab", 0x516b_8b44),
            (b"abc", 0xd2be_198a),
            (b"abcd", 0xdad8_b8db),
            (b"abcde", 0x51ed_072e),
            (b"mod_foo", 0x37c0_43cb),
            (b"mod_foo_a", 0x2fc1_1ab6),
            (b"printk", 0x6a08_63d1),
            (b"snd_hda_intel", 0x6e40_28a1),
            (b"print_fooA", 0x49e9_abb5),
            (b"print_fooB", 0xf059_4768),
            (b"print_fooC", 0xb4dc_64e9),
        ];
        for (key, hash) in vectors {
            assert_eq!(
                superfast_hash(key),
                *hash,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(superfast_hash(b"mod_foo") & 511, 459);
        assert_eq!(superfast_hash(b"print_fooB") & 2047, 1896);
    }

    fn ordered(names: &[&str], buckets: u32) -> Vec<String> {
        let mut items: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        sort_hash_order(&mut items, buckets, |s| s.as_bytes());
        items
    }

    #[test]
    fn iteration_order_examples() {
        assert_eq!(ordered(&["a", "b", "c"], MODULE_BUCKETS), ["c", "b", "a"]);
        assert_eq!(
            ordered(
                &["mod_foo", "mod_foo_a", "mod_foo_b", "mod_foo_c"],
                MODULE_BUCKETS
            ),
            ["mod_foo_b", "mod_foo_c", "mod_foo_a", "mod_foo"]
        );
        assert_eq!(
            ordered(&["print_fooA", "print_fooB", "print_fooC"], SYMBOL_BUCKETS),
            ["print_fooA", "print_fooC", "print_fooB"]
        );
    }

    fn reorder(order: &str, version: KmodVersion) -> Vec<String> {
        let mut modules = ordered(&["a", "b", "c"], MODULE_BUCKETS);
        let OrderFile::Lines(lines) = parse_modules_order(order.as_bytes()) else {
            panic!("corrupted");
        };
        apply_modules_order(&mut modules, &lines, version, |m| Some(m.as_bytes()));
        modules
    }

    #[test]
    fn duplicate_order_lines() {
        // Spec §4.2: `a b c a` gives a, b, c in kmod 34 and b, c, a in kmod 30.
        assert_eq!(reorder("a\nb\nc\na\n", KmodVersion::V34), ["a", "b", "c"]);
        assert_eq!(reorder("a\nb\nc\na\n", KmodVersion::V30), ["b", "c", "a"]);
    }

    #[test]
    fn unlisted_modules_keep_hash_order_after_listed_ones() {
        assert_eq!(reorder("b\n#1\nzz\n", KmodVersion::V34), ["b", "c", "a"]);
        assert_eq!(reorder("a\n", KmodVersion::V30), ["a", "c", "b"]);
    }

    /// `names` in kmod's two steps and in [`module_order`]'s one sort.
    fn both_orders(names: &[Vec<u8>], data: &[u8], version: KmodVersion) -> [Vec<Vec<u8>>; 2] {
        let mut expected = names.to_vec();
        sort_hash_order(&mut expected, MODULE_BUCKETS, |m| m.as_slice());
        let order = ModulesOrder::new(data.to_vec(), version);
        if let OrderFile::Lines(lines) = parse_modules_order(data) {
            apply_modules_order(&mut expected, &lines, version, |m| Some(m.as_slice()));
        }
        let placing = module_order(names, |m| m.as_slice(), |m| order.line_of(m));
        let mut got = names.to_vec();
        permute(&mut got, &placing);
        [got, expected]
    }

    #[test]
    fn one_sort_gives_the_two_steps_order() {
        let names: Vec<Vec<u8>> = ["a", "b", "c", "d", "mod_foo", "mod_foo_a", "mod_foo_b"]
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        for data in [
            &b""[..],
            b"a\nb\nc\na\n",
            b"mod_foo_b\nzz\nd\n\nd\nmod_foo\n",
            b"c\nb",
        ] {
            for version in [KmodVersion::V30, KmodVersion::V34] {
                let [got, expected] = both_orders(&names, data, version);
                assert_eq!(
                    got,
                    expected,
                    "{:?} {version:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    #[test]
    fn lines_place_by_first_or_last_occurrence() {
        let order = ModulesOrder::new(b"a\nb\na\n".to_vec(), KmodVersion::V34);
        assert_eq!(order.line_of(b"a"), Some(0));
        assert_eq!(order.line_of(b"b"), Some(1));
        assert_eq!(order.line_of(b"c"), None);
        let order = ModulesOrder::new(b"a\nb\na\n".to_vec(), KmodVersion::V30);
        assert_eq!(order.line_of(b"a"), Some(2));
        let order = ModulesOrder::new(b"a\nb".to_vec(), KmodVersion::V34);
        assert_eq!(order.corrupted_line(), Some(2));
        assert_eq!(order.line_of(b"a"), None);
        assert_eq!(order.into_data(), b"a\nb");
    }

    proptest::proptest! {
        #[test]
        fn one_sort_agrees_on_random_lists(
            names in proptest::collection::hash_set("[a-e_-]{0,4}(/[a-c]{1,2})?", 0..40),
            picks in proptest::collection::vec(0usize..60, 0..60),
            noise in proptest::collection::vec("[a-e]{0,3}", 0..5),
            v34 in proptest::bool::ANY,
        ) {
            let names: Vec<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
            // Lines naming some modules, some twice, and some naming none.
            let mut data = Vec::new();
            for (i, pick) in picks.iter().enumerate() {
                match names.get(*pick) {
                    Some(name) => data.extend_from_slice(name),
                    None => data.extend_from_slice(noise.get(i % noise.len().max(1)).map_or(&b""[..], |n| n.as_bytes())),
                }
                data.push(b'\n');
            }
            let version = if v34 { KmodVersion::V34 } else { KmodVersion::V30 };
            let [got, expected] = both_orders(&names, &data, version);
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn missing_final_newline_is_corrupted() {
        assert_eq!(
            parse_modules_order(b"a\nb"),
            OrderFile::Corrupted { line: 2 }
        );
        assert_eq!(
            parse_modules_order(b"a\n\nb\n"),
            OrderFile::Lines(vec![&b"a"[..], b"", b"b"])
        );
        let long = [vec![b'x'; 5000], b"\n".to_vec()].concat();
        assert_eq!(parse_modules_order(&long), OrderFile::Corrupted { line: 1 });
    }
}
