//! Mutations of line- and record-based text inputs: line edits, duplicates, truncation, long
//! lines around the readers' buffer sizes, and odd bytes.

use crate::tree::Rng;

/// Bytes that make parsers take unusual paths: NUL, CR, tab, space, backslash, dots and
/// slashes, `#`, `=`, brackets, and bytes at or above 0x80.
pub const ODD_BYTES: &[u8] = b"\0\r\t \\./#=[]*?-_:\x7f\x80\xc3\xa9\xff";

/// Records are `\n`-terminated lines (`modules.order`, `modules.builtin`, `Module.symvers`,
/// `System.map`) or NUL-terminated strings (`modules.builtin.modinfo`).
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// The record terminator.
    pub terminator: u8,
    /// The reader's buffer size: long records are made around it (`fgets` splits there).
    pub buffer: usize,
}

/// A length near `format.buffer` (one off either way, or exactly at it, minus the
/// terminator), or near one of kmod's other limits.
pub fn boundary_length(rng: &mut Rng, format: Format) -> usize {
    let base = *rng
        .pick(&[
            format.buffer,
            format.buffer,
            256,
            1024,
            4096,
            2 * format.buffer,
        ])
        .expect("non-empty");
    (base + rng.range(0, 4)).saturating_sub(3)
}

/// Splits `data` into records, each with its terminator (the last one may lack it).
pub fn split(data: &[u8], terminator: u8) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == terminator)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Applies one to `max_edits` random edits to `records`; `pool` supplies records to insert
/// (taken from the real file).
pub fn edit_records(
    rng: &mut Rng,
    records: &mut Vec<Vec<u8>>,
    pool: &[Vec<u8>],
    format: Format,
    max_edits: usize,
) {
    for _ in 0..rng.range(1, max_edits) {
        let n = records.len();
        let at = rng.below(n + 1);
        match rng.below(14) {
            0 if n > 0 => {
                records.remove(at.min(n - 1));
            }
            1 if n > 0 => {
                let copy = records[at.min(n - 1)].clone();
                let to = rng.below(n + 1);
                records.insert(to, copy);
            }
            2 if n > 1 => {
                let other = rng.below(n);
                records.swap(at.min(n - 1), other);
            }
            3 => {
                if let Some(record) = rng.pick(pool) {
                    records.insert(at, record.clone());
                }
            }
            4 => {
                let junk: &[u8] = rng
                    .pick(&[&b"#123"[..], b"", b" ", b"\t", b"# comment", b"x", b".ko"])
                    .expect("non-empty");
                let mut record = junk.to_vec();
                record.push(format.terminator);
                records.insert(at, record);
            }
            5 if n > 0 => {
                // Cut a record short, keeping its terminator.
                let r = &mut records[at.min(n - 1)];
                let had = r.last() == Some(&format.terminator);
                r.truncate(rng.below(r.len() + 1));
                if had && r.last() != Some(&format.terminator) {
                    r.push(format.terminator);
                }
            }
            6..=8 if n > 0 => {
                let r = &mut records[at.min(n - 1)];
                let pos = rng.below(r.len() + 1);
                let byte = *rng.pick(ODD_BYTES).expect("non-empty");
                if rng.chance(50) && pos < r.len() {
                    r[pos] = byte;
                } else {
                    r.insert(pos, byte);
                }
            }
            9 if n > 0 => {
                // Grow a record to a length around the reader's buffer.
                let r = &mut records[at.min(n - 1)];
                let had = r.last() == Some(&format.terminator);
                if had {
                    r.pop();
                }
                let want = boundary_length(rng, format);
                let pad = *rng.pick(b"ax/._").expect("non-empty");
                let pos = rng.below(r.len() + 1);
                let grow = want.saturating_sub(r.len());
                r.splice(pos..pos, std::iter::repeat_n(pad, grow));
                if had {
                    r.push(format.terminator);
                }
            }
            10 if n > 0 => {
                // Join two records (drop a terminator).
                let r = &mut records[at.min(n - 1)];
                if r.last() == Some(&format.terminator) {
                    r.pop();
                }
            }
            11 if n > 0 => {
                // Change a record's case or a character class.
                let r = &mut records[at.min(n - 1)];
                let pos = rng.below(r.len().max(1));
                if let Some(b) = r.get_mut(pos) {
                    *b = if b.is_ascii_lowercase() {
                        b.to_ascii_uppercase()
                    } else if *b == b'-' {
                        b'_'
                    } else if *b == b'_' {
                        b'-'
                    } else {
                        b'9'
                    };
                }
            }
            12 => {
                // A run of terminators (empty records).
                for _ in 0..rng.range(1, 3) {
                    records.insert(at.min(records.len()), vec![format.terminator]);
                }
            }
            _ => {}
        }
    }
}

/// Whole-file edits after the records are joined: truncation, duplication, a missing final
/// terminator.
pub fn edit_file(rng: &mut Rng, data: &mut Vec<u8>, format: Format) {
    match rng.below(20) {
        0 => data.truncate(rng.below(data.len() + 1)),
        1 => {
            let copy = data.clone();
            data.extend_from_slice(&copy);
        }
        2..=4 if data.last() == Some(&format.terminator) => {
            data.pop();
        }
        5 => data.clear(),
        _ => {}
    }
}

/// `records` after a few edits, joined, and possibly edited as a whole.
pub fn mutate(rng: &mut Rng, records: &[Vec<u8>], pool: &[Vec<u8>], format: Format) -> Vec<u8> {
    let mut records = records.to_vec();
    if rng.chance(90) {
        edit_records(rng, &mut records, pool, format, 6);
    }
    let mut data = records.concat();
    edit_file(rng, &mut data, format);
    data
}
