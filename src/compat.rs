//! Every difference between the kmod releases that depmod-rs reproduces, in one place.
//!
//! See `../shared/reference/kmod-depmod.md` §13 for the table this encodes.

use std::fmt;
use std::str::FromStr;

/// The order in which trie nodes are laid out in a `.bin` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeOrder {
    /// A node before its children, root at offset 12 (kmod 34 and later).
    Pre,
    /// Children before their parent, root last and patched into the header (kmod 33 and earlier).
    Post,
}

/// A kmod release whose output bytes depmod-rs reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KmodVersion {
    /// kmod 30 (Debian 12 "bookworm").
    V30,
    /// kmod 31.
    V31,
    /// kmod 32.
    V32,
    /// kmod 33.
    V33,
    /// kmod 34 (Debian 13 "trixie" ships 34.2). The default.
    V34,
}

impl KmodVersion {
    /// The release depmod-rs behaves like when no `--compat` is given.
    pub const DEFAULT: KmodVersion = KmodVersion::V34;

    /// The release number, e.g. `34`.
    pub fn number(self) -> u32 {
        match self {
            KmodVersion::V30 => 30,
            KmodVersion::V31 => 31,
            KmodVersion::V32 => 32,
            KmodVersion::V33 => 33,
            KmodVersion::V34 => 34,
        }
    }

    /// Node layout of the `.bin` tries (pre-order since kmod 34, commit `dada048`).
    pub fn node_order(self) -> NodeOrder {
        if self >= KmodVersion::V34 {
            NodeOrder::Pre
        } else {
            NodeOrder::Post
        }
    }

    /// Whether `modules.weakdep` is written and `weakdep=` modinfo is read (since kmod 33).
    pub fn has_weakdep(self) -> bool {
        self >= KmodVersion::V33
    }

    /// Whether the first occurrence of a duplicate `modules.order` line decides the position
    /// (kmod 34); before, the last occurrence did.
    pub fn order_first_occurrence_wins(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether a byte ≥ 0x80 in an index key or value is fatal (kmod 34). kmod 30–33 had
    /// undefined behaviour there; depmod-rs refuses such strings in every mode.
    pub fn non_ascii_is_fatal(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether `-o/--outdir` exists (since kmod 31).
    pub fn has_outdir(self) -> bool {
        self >= KmodVersion::V31
    }

    /// Whether `-m` means `--moduledir DIR` (kmod 34) rather than the deprecated `--map` flag.
    pub fn has_moduledir(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether a backslash that is the last byte of a depmod.d file is dropped (kmod 34,
    /// commit 7805c95). kmod 30–33 store the `EOF` read after it as a byte, 0xFF, at the end
    /// of the last line.
    pub fn drops_backslash_at_eof(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether `/usr/lib/depmod.d` is searched before `/lib/depmod.d` (since kmod 32).
    pub fn has_distconfdir(self) -> bool {
        self >= KmodVersion::V32
    }

    /// Whether `-u`, `-q`, `-r` and `--map` are accepted and ignored with a warning (before 34).
    pub fn accepts_deprecated_options(self) -> bool {
        self < KmodVersion::V34
    }

    /// Whether a `__ksymtab_strings` section without a final NUL is an error (kmod 34), rather
    /// than its unterminated tail counting as one more name (kmod 30–33).
    pub fn strict_ksymtab_strings(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether an unterminated `__versions` name makes the dependency read fail (kmod 34).
    pub fn strict_versions_names(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether kmod 34's stricter section handling applies: the section-name string table's own
    /// `sh_name` must lie inside it, a wanted section found at file offset 0 counts as absent,
    /// and a `__crc_` symbol whose CRC lives in a section smaller than 4 bytes gets CRC −1.
    /// kmod 30–33 accept the first two and compute the last with a wrapped size.
    pub fn strict_elf_sections(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether every known compression magic (zstd, xz, gzip) is recognised even when its
    /// decompressor is not built in, so that such a file fails to load (since kmod 33). Before,
    /// only built-in formats were recognised and any other file was read raw.
    pub fn detects_all_compressions(self) -> bool {
        self >= KmodVersion::V33
    }

    /// Whether zstd modules are decoded in one shot into a buffer sized by the first frame's
    /// content size, which must be present and non-zero (kmod 34). kmod 30–33 stream-decode
    /// and keep whatever was decoded when the input ends, even mid-frame.
    pub fn zstd_needs_content_size(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether libkmod's own decoder messages (`xz: File is corrupt`, `zstd: Src size is
    /// incorrect`, …) reach depmod's stderr, once per attempt to open a module whose stream
    /// cannot be decoded (Debian's kmod 34.2 prints them; its kmod 30 does not).
    pub fn logs_decoder_errors(self) -> bool {
        self >= KmodVersion::V34
    }

    /// Whether the module count is limited to 65,534 with a FATAL error (kmod 34).
    pub fn limits_module_count(self) -> bool {
        self >= KmodVersion::V34
    }
}

impl fmt::Display for KmodVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The error for an unknown `--compat` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported kmod version '{0}' (supported: 30, 31, 32, 33, 34)")]
pub struct UnknownVersion(pub String);

impl FromStr for KmodVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let major = s.split('.').next().unwrap_or("");
        match major {
            "30" => Ok(KmodVersion::V30),
            "31" => Ok(KmodVersion::V31),
            "32" => Ok(KmodVersion::V32),
            "33" => Ok(KmodVersion::V33),
            "34" => Ok(KmodVersion::V34),
            _ => Err(UnknownVersion(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_numbers() {
        assert_eq!("34.2".parse::<KmodVersion>().unwrap(), KmodVersion::V34);
        assert_eq!("30".parse::<KmodVersion>().unwrap(), KmodVersion::V30);
        assert!("29".parse::<KmodVersion>().is_err());
    }

    #[test]
    fn node_order_switches_at_34() {
        assert_eq!(KmodVersion::V33.node_order(), NodeOrder::Post);
        assert_eq!(KmodVersion::V34.node_order(), NodeOrder::Pre);
    }
}
