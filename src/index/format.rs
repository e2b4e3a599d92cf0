//! The on-disk constants of the kmod index format (major version 2).
//!
//! Every integer is a big-endian `u32`; there is no padding. See `format-spec/index.md`.

/// First word of every index file ("BOOTFAST").
pub const MAGIC: u32 = 0xB007_F457;
/// Second word: major version 2 (high half), minor version 1 (low half).
pub const VERSION: u32 = 0x0002_0001;
/// The only major version readers accept.
pub const VERSION_MAJOR: u32 = 2;
/// Size of the header: magic, version, root reference.
pub const HEADER_LEN: usize = 12;

/// Node-reference flag: the node starts with a NUL-terminated, non-empty prefix.
pub const FLAG_PREFIX: u32 = 0x8000_0000;
/// Node-reference flag: the node has a value list.
pub const FLAG_VALUES: u32 = 0x4000_0000;
/// Node-reference flag: the node has a child table.
pub const FLAG_CHILDREN: u32 = 0x2000_0000;
/// The high nibble of a node reference; `0x1000_0000` is never set by kmod.
pub const FLAG_MASK: u32 = 0xF000_0000;
/// The low 28 bits of a node reference: the absolute file offset of the node.
pub const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Child tables are indexed by 7-bit characters: `first` and `last` must be below this.
pub const CHILD_MAX: u8 = 128;

/// Largest file the 28-bit offsets can address (every node offset must be `< MAX_FILE_LEN`).
pub const MAX_FILE_LEN: u64 = 1 << 28;

/// Longest key (in bytes) this implementation writes or reads.
///
/// kmod has no such limit, but no real key comes near it (aliases are cut at 4095 bytes,
/// module names at `PATH_MAX`). It bounds the memory a hostile file can make a reader use.
pub const MAX_KEY_LEN: usize = 1 << 20;
