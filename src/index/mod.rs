//! The kmod binary index (`modules.*.bin`): a compressed trie of `(key, value, priority)`
//! entries.
//!
//! * [`IndexBuilder`] — build the trie with kmod's insertion and value-list rules, then write it
//!   byte for byte as kmod does, in pre-order (kmod ≥ 34) or post-order (kmod ≤ 33).
//! * [`encode_bulk`] — the same bytes from all entries at once, several times faster.
//! * [`IndexPatch`] — a few entries changed in an existing pre-order file, the rest copied.
//! * [`Index`] — a validated, zero-copy view of an index file with libkmod's exact and
//!   wildcard lookups and a full listing.
//! * [`fnmatch()`] — the POSIX pattern matcher libkmod's wildcard lookup relies on.
//!
//! The format is described in `format-spec/index.md`.
//!
//! # Example
//!
//! ```
//! use depmod_rs::index::{Index, IndexBuilder, NodeOrder};
//!
//! let mut builder = IndexBuilder::new();
//! builder.insert(b"pci:v00008086d*", b"e1000e", 0)?;
//! builder.insert(b"usb:v*", b"usbcore", 1)?;
//! let mut bytes = Vec::new();
//! builder.write_to(NodeOrder::Pre, &mut bytes)?;
//!
//! let index = Index::new(&bytes)?;
//! let found = index.lookup_wild(b"pci:v00008086d000010D3")?;
//! assert_eq!(found[0].value, b"e1000e");
//! assert!(index.lookup_exact(b"usb:v")?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod annotate;
mod bulk;
mod error;
pub mod fnmatch;
pub mod format;
mod lookup;
mod patch;
mod read;
mod trie;
mod write;

pub use crate::compat::NodeOrder;
pub use bulk::{encode_bulk, BulkEntry, CheckedEntries};
pub use error::{IndexError, ReadError};
pub use fnmatch::fnmatch;
pub use patch::{IndexPatch, PatchError};
pub use read::{Entry, Index, Value};
pub use trie::{check_entry, IndexBuilder};
pub use write::PreparedIndex;

#[cfg(test)]
mod tests;
