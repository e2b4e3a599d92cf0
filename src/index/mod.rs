//! The kmod binary index (`modules.*.bin`): a compressed trie of (key, value, priority) entries.
//!
//! Placeholder: the builder, writers and reader land in this module.

pub use crate::compat::NodeOrder;
