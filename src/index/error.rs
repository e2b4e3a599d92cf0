//! Error types of the index writer ([`IndexError`]) and reader ([`ReadError`]).

use super::format::{MAX_FILE_LEN, MAX_KEY_LEN};

/// Why an index could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A key or value holds a byte kmod refuses (≥ 0x80, as kmod 34 does).
    #[error(
        "bad character 0x{byte:02x} in index string {:?}: only 7-bit ASCII is supported",
        String::from_utf8_lossy(string)
    )]
    BadCharacter {
        /// The first offending byte.
        byte: u8,
        /// The whole key or value it was found in.
        string: Vec<u8>,
    },
    /// A key or value holds a NUL byte, which the format uses as terminator. kmod's C strings
    /// cannot hold one, so it has no message for this; depmod-rs refuses rather than truncates.
    #[error("NUL byte in index string {:?}", String::from_utf8_lossy(string))]
    NulByte {
        /// The whole key or value.
        string: Vec<u8>,
    },
    /// A key longer than [`MAX_KEY_LEN`] bytes.
    #[error("index key of {len} bytes exceeds the limit of {MAX_KEY_LEN} bytes")]
    KeyTooLong {
        /// Length of the key.
        len: usize,
    },
    /// The file would need offsets beyond 28 bits; kmod would silently write a corrupt file.
    #[error("index would be {size} bytes; the format's 28-bit offsets address at most {MAX_FILE_LEN} bytes")]
    TooLarge {
        /// The size the file would have had.
        size: u64,
    },
    /// Writing the output failed.
    #[error("writing index: {0}")]
    Io(#[from] std::io::Error),
}

impl IndexError {
    /// The message kmod 34's depmod prints for this error after `depmod: FATAL: `, as raw bytes
    /// and with its trailing newline.
    ///
    /// For [`IndexError::BadCharacter`] this is kmod's exact text,
    /// `Module index: bad character '<c>'=0x<hex> - only 7-bit ASCII is supported:\n<string>\n`,
    /// where `<c>` is the raw byte. The other variants have no kmod counterpart (kmod either
    /// cannot see them or writes a corrupt file); they get a message in the same style.
    pub fn kmod_message(&self) -> Vec<u8> {
        match self {
            IndexError::BadCharacter { byte, string } => {
                let mut out = b"Module index: bad character '".to_vec();
                out.push(*byte);
                out.extend_from_slice(
                    format!("'=0x{byte:x} - only 7-bit ASCII is supported:\n").as_bytes(),
                );
                out.extend_from_slice(string);
                out.push(b'\n');
                out
            }
            IndexError::NulByte { string } => {
                let mut out = b"Module index: NUL byte in string:\n".to_vec();
                out.extend(string.iter().map(|&b| if b == 0 { b'@' } else { b }));
                out.push(b'\n');
                out
            }
            other => format!("Module index: {other}\n").into_bytes(),
        }
    }
}

/// Why bytes are not a valid index. Every variant names the byte offset it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Fewer than 12 bytes.
    #[error("file is {len} bytes, shorter than the 12-byte header")]
    TooShort {
        /// File length.
        len: usize,
    },
    /// The first word is not `0xB007F457`.
    #[error("at offset 0: bad magic 0x{found:08x} (expected 0xb007f457)")]
    BadMagic {
        /// The word found.
        found: u32,
    },
    /// The major version is not 2.
    #[error("at offset 4: unsupported major version {major} (expected 2)")]
    BadVersion {
        /// The major version found.
        major: u32,
    },
    /// The file is too large for the format's 28-bit offsets.
    #[error("file is {len} bytes; the format addresses at most 268435456")]
    FileTooLarge {
        /// File length.
        len: usize,
    },
    /// A node reference has the unused flag `0x10000000` set.
    #[error("at offset {at}: node reference 0x{reference:08x} has an unknown flag")]
    UnknownFlag {
        /// Where the reference is stored.
        at: usize,
        /// The reference word.
        reference: u32,
    },
    /// A node reference points into the header or past the end of the file.
    #[error("at offset {at}: node reference 0x{reference:08x} points outside the node area")]
    OffsetOutOfRange {
        /// Where the reference is stored.
        at: usize,
        /// The reference word.
        reference: u32,
    },
    /// A node's bytes run past the end of the file.
    #[error("at offset {at}: node truncated by end of file")]
    Truncated {
        /// Where reading stopped.
        at: usize,
    },
    /// A prefix or value has no terminating NUL inside the file.
    #[error("at offset {at}: string not NUL-terminated")]
    UnterminatedString {
        /// Start of the string.
        at: usize,
    },
    /// A node's PREFIX flag is set but the prefix is empty.
    #[error("at offset {at}: PREFIX flag set on an empty prefix")]
    EmptyPrefix {
        /// Start of the node.
        at: usize,
    },
    /// A child table with `first > last` or a bound ≥ 128.
    #[error("at offset {at}: bad child range first={first} last={last}")]
    BadChildRange {
        /// Where `first` is stored.
        at: usize,
        /// The `first` byte.
        first: u8,
        /// The `last` byte.
        last: u8,
    },
    /// A value count that cannot fit in the rest of the file.
    #[error("at offset {at}: value count {count} exceeds what the remaining bytes can hold")]
    BadValueCount {
        /// Where the count is stored.
        at: usize,
        /// The count.
        count: u32,
    },
    /// A node reached twice: the child references form a loop or share a subtree.
    #[error("at offset {at}: node at offset {node} is referenced more than once (loop or shared subtree)")]
    SharedNode {
        /// Where the second reference is stored.
        at: usize,
        /// The node offset.
        node: usize,
    },
    /// A key longer than [`MAX_KEY_LEN`] bytes.
    #[error("at offset {at}: key longer than {MAX_KEY_LEN} bytes")]
    KeyTooLong {
        /// Start of the node where the limit was passed.
        at: usize,
    },
    /// The keys of all values add up to far more than the file size (a crafted file whose
    /// listing would need quadratic memory).
    #[error("at offset {at}: the keys of all values exceed {budget} bytes in total")]
    KeysTooLarge {
        /// Start of the node where the budget was passed.
        at: usize,
        /// The budget (32 × file size + 1 MiB).
        budget: u64,
    },
}

impl ReadError {
    /// The byte offset in the file the error concerns.
    pub fn offset(&self) -> usize {
        match *self {
            ReadError::TooShort { .. } | ReadError::BadMagic { .. } => 0,
            ReadError::FileTooLarge { .. } => 0,
            ReadError::BadVersion { .. } => 4,
            ReadError::UnknownFlag { at, .. }
            | ReadError::OffsetOutOfRange { at, .. }
            | ReadError::Truncated { at }
            | ReadError::UnterminatedString { at }
            | ReadError::EmptyPrefix { at }
            | ReadError::BadChildRange { at, .. }
            | ReadError::BadValueCount { at, .. }
            | ReadError::SharedNode { at, .. }
            | ReadError::KeyTooLong { at }
            | ReadError::KeysTooLarge { at, .. } => at,
        }
    }
}
