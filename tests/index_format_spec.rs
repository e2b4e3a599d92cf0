//! Keeps the annotated example dumps in `format-spec/index.md` true: they are regenerated from
//! the example index and must equal what the document shows. Run with
//! `UPDATE_FORMAT_SPEC=1` to rewrite them after a deliberate change.
//!
//! The example's bytes themselves are checked against the kmod reference's verified vector in
//! the unit tests (`src/index/tests.rs`).

use depmod_rs::index::annotate::annotate;
use depmod_rs::index::{Index, IndexBuilder, NodeOrder};
use depmod_rs::names::normalize_alias;

fn example() -> IndexBuilder {
    let mut b = IndexBuilder::new();
    for (alias, module, idx) in [
        (&b"ab"[..], &b"a"[..], 0),
        (b"on-ce", b"a", 0),
        (b"o[n-p]e", b"a", 0),
        (b"ab", b"b", 1),
        (b"ate", b"b", 1),
    ] {
        b.insert(&normalize_alias(alias).unwrap(), module, idx)
            .unwrap();
    }
    b
}

/// Replaces the fenced block after `marker` with `body`.
fn splice(doc: &str, marker: &str, body: &str) -> String {
    let start = doc.find(marker).expect("marker present") + marker.len();
    let fence_open = start + doc[start..].find("```text\n").expect("block") + "```text\n".len();
    let fence_close = fence_open + doc[fence_open..].find("```").expect("block end");
    format!("{}{}{}", &doc[..fence_open], body, &doc[fence_close..])
}

#[test]
fn format_spec_examples_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/format-spec/index.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut regenerated = doc.clone();
    for (marker, order) in [
        ("<!-- annotated:pre -->", NodeOrder::Pre),
        ("<!-- annotated:post -->", NodeOrder::Post),
    ] {
        let bytes = example().to_bytes(order).unwrap();
        let text = annotate(&Index::new(&bytes).unwrap()).unwrap();
        regenerated = splice(&regenerated, marker, &text);
    }
    if std::env::var_os("UPDATE_FORMAT_SPEC").is_some() {
        std::fs::write(path, &regenerated).unwrap();
        return;
    }
    assert!(
        doc == regenerated,
        "format-spec/index.md examples are out of date; rerun with UPDATE_FORMAT_SPEC=1 and review the diff"
    );
}
