//! An annotated hex dump of an index file: every byte with what it means. Used by
//! `modindex dump --annotate` and to keep the example in `format-spec/index.md` true.

use std::fmt::Write;

use super::error::ReadError;
use super::format::{FLAG_CHILDREN, FLAG_PREFIX, FLAG_VALUES, OFFSET_MASK};
use super::read::{Index, Node};

/// Bytes shown per line.
const PER_LINE: usize = 8;

fn flag_names(reference: u32) -> String {
    let names: Vec<&str> = [
        (FLAG_PREFIX, "PREFIX"),
        (FLAG_VALUES, "VALUES"),
        (FLAG_CHILDREN, "CHILDS"),
    ]
    .iter()
    .filter(|(flag, _)| reference & flag != 0)
    .map(|&(_, name)| name)
    .collect();
    if names.is_empty() {
        "no flags".to_string()
    } else {
        names.join("|")
    }
}

fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'"' | b'\\' => format!("\\{}", b as char),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

fn show_char(c: u8) -> String {
    format!("'{}'", show(&[c]))
}

/// Appends lines for `bytes` starting at file offset `at`, the comment on the first line.
fn line(out: &mut String, at: usize, bytes: &[u8], comment: &str) {
    for (i, chunk) in bytes.chunks(PER_LINE).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let note = if i == 0 { comment } else { "" };
        let text = format!("{:06x}  {:<24}  {note}", at + i * PER_LINE, hex.join(" "));
        let _ = writeln!(out, "{}", text.trim_end());
    }
    if bytes.is_empty() {
        let _ = writeln!(out, "{at:06x}  {:<24}  {comment}", "");
    }
}

fn reference_text(reference: u32) -> String {
    format!(
        "node @0x{:03x} [{}]",
        reference & OFFSET_MASK,
        flag_names(reference)
    )
}

/// The annotated dump: header, then every node in file order with its key.
pub fn annotate(index: &Index<'_>) -> Result<String, ReadError> {
    let bytes = index.as_bytes();
    let mut out = String::new();
    // The view is validated, so these reads are in bounds; they stay non-panicking anyway.
    let slice = |at: usize, len: usize| -> &[u8] { bytes.get(at..at + len).unwrap_or_default() };
    let word =
        |at: usize| -> u32 { <[u8; 4]>::try_from(slice(at, 4)).map_or(0, u32::from_be_bytes) };
    line(&mut out, 0, slice(0, 4), "magic");
    line(&mut out, 4, slice(4, 4), "version 2.1");
    line(
        &mut out,
        8,
        slice(8, 4),
        &format!("root: {}", reference_text(word(8))),
    );

    // Every node with its full key, then sorted by file offset.
    let mut nodes: Vec<(Node<'_>, Vec<u8>)> = Vec::new();
    let mut stack = vec![(index.root()?, Vec::new())];
    while let Some((node, mut key)) = stack.pop() {
        key.extend_from_slice(node.prefix);
        for (ch, child) in index.children(&node)? {
            let mut child_key = key.clone();
            child_key.push(ch);
            stack.push((child, child_key));
        }
        nodes.push((node, key));
    }
    nodes.sort_by_key(|(node, _)| node.offset);

    for (node, key) in &nodes {
        let _ = writeln!(out, "{:6}  -- node \"{}\"", "", show(key));
        let mut at = node.offset;
        if !node.prefix.is_empty() {
            let len = node.prefix.len() + 1;
            line(
                &mut out,
                at,
                slice(at, len),
                &format!("prefix \"{}\"", show(node.prefix)),
            );
            at += len;
        }
        if let Some((first, last)) = node.range {
            line(
                &mut out,
                at,
                slice(at, 2),
                &format!("children {}..{}", show_char(first), show_char(last)),
            );
            at += 2;
            let mut ch = first;
            loop {
                let reference = word(at);
                if reference & OFFSET_MASK != 0 {
                    line(
                        &mut out,
                        at,
                        slice(at, 4),
                        &format!("{} -> {}", show_char(ch), reference_text(reference)),
                    );
                    at += 4;
                } else {
                    // A run of empty slots on one line.
                    let start = ch;
                    let mut run = 1;
                    while ch < last && word(at + 4 * run) & OFFSET_MASK == 0 {
                        ch += 1;
                        run += 1;
                    }
                    let what = if run == 1 {
                        format!("{}: none", show_char(start))
                    } else {
                        format!(
                            "{}..{}: none ({run} slots)",
                            show_char(start),
                            show_char(ch)
                        )
                    };
                    let _ = writeln!(out, "{at:06x}  {:<24}  {what}", "00 00 00 00 ...");
                    at += 4 * run;
                }
                if ch == last {
                    break;
                }
                ch += 1;
            }
        }
        if node.value_count > 0 {
            line(
                &mut out,
                at,
                slice(at, 4),
                &format!("{} value(s)", node.value_count),
            );
            at += 4;
            for value in index.values(node) {
                let value = value?;
                let len = 4 + value.value.len() + 1;
                line(
                    &mut out,
                    at,
                    slice(at, len),
                    &format!("priority {}, \"{}\"", value.priority, show(value.value)),
                );
                at += len;
            }
        }
    }
    let _ = writeln!(out, "{:06x}  end of file", bytes.len());
    Ok(out)
}
