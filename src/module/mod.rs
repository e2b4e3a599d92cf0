//! Reading kernel module files: decompression and the ELF data depmod uses.
//!
//! [`read_module`] opens a file as libkmod's `kmod_file_open` does (compression detected by
//! magic bytes, not by name), and [`parse_module_image`] reads an ELF image as libkmod's
//! `kmod_elf_*` functions do for depmod:
//!
//! * exports (`kmod_module_get_symbols`): `__crc_` symbols, else `__ksymtab_strings`;
//! * `.modinfo` `key=value` strings (`kmod_module_get_info`);
//! * undefined symbols with `__versions` CRCs (`kmod_module_get_dependency_symbols`).
//!
//! Behaviour differences between kmod releases come from [`ReadOptions::version`].
//! See `kmod-depmod.md` §5 for the rules.
//!
//! # Where the result is defined but kmod's is not
//!
//! * Debian builds kmod with assertions enabled. A `__crc_` symbol whose `st_shndx` is at
//!   or past `e_shnum` (and not `SHN_ABS`), or an `e_shstrndx` of 0 or past the table, makes
//!   kmod 30 and 34 abort. Here the CRC is −1 (`u64::MAX`), and the file is `EINVAL`.
//! * kmod reads C strings (symbol names, and before kmod 34 `__versions` names) until a NUL
//!   even past the end of the mapped file. Here such a string ends at the end of the image.
//! * A compressed module whose image would exceed [`ReadOptions::max_image_size`] fails with
//!   [`ModuleError::TooLarge`] (`ENOMEM`) instead of being decoded.

mod decompress;
mod elf;
mod elf_types;
mod error;
mod image;
mod import_names;
mod import_table;
mod modinfo;
mod partial;
mod source;
mod symbols;
mod xz_layout;

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use decompress::{decompress, detect, kmod_decoder_messages, MAGIC_LEN};
pub use error::{strerror, Compression, ModuleError};
pub use import_names::ImportNames;
pub(crate) use import_names::NameShard;
pub use import_table::{ImportRef, ImportTable};
pub use modinfo::parse_modinfo;
pub(crate) use source::ModuleFile;
pub use source::{load_image, ModuleImage};

use crate::compat::KmodVersion;
use image::{ImageBytes, PartialImage};

/// How modules are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// The kmod release whose reading rules apply.
    pub version: KmodVersion,
    /// Whether gzip-compressed modules can be decoded (kmod built with zlib). Debian's kmod
    /// 30 and 34 are built without it: kmod 30 then reads such a file raw (not ELF), kmod 34
    /// fails to load it with `ENOSYS`.
    pub gzip: bool,
    /// Largest decompressed image accepted; a larger one stops with
    /// [`ModuleError::TooLarge`] (protects against decompression bombs).
    pub max_image_size: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            version: KmodVersion::DEFAULT,
            gzip: true,
            max_image_size: 1 << 30,
        }
    }
}

/// What depmod reads from one module.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    /// Exports as depmod reads them (`kmod_module_get_symbols`): `Ok(empty)` when the module
    /// simply has none ("no symbols", silent in depmod); `Err` when kmod would print
    /// "failed to load symbols from `<path>`: `<strerror>`".
    pub exports: Result<Vec<Export>, ModuleError>,
    /// Every `key=value` of `.modinfo` in file order (depmod uses `alias`, `softdep`,
    /// `weakdep`).
    pub modinfo: Vec<ModinfoEntry>,
    /// Undefined symbols as `kmod_module_get_dependency_symbols` returns them: `.symtab`
    /// order, then unmatched `__versions` entries. Empty when kmod's read fails.
    pub imports: Vec<Import>,
}

/// An exported symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Export {
    /// Symbol name (without `__crc_`).
    pub name: Vec<u8>,
    /// CRC (0 when the module has no `__crc_` symbols; `u64::MAX` when kmod could not
    /// locate it).
    pub crc: u64,
}

/// An undefined symbol the module needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Import {
    /// Symbol name.
    pub name: Vec<u8>,
    /// CRC from `__versions`, 0 when there is no entry.
    pub crc: u64,
    /// `STB_WEAK` binding.
    pub weak: bool,
}

/// One `.modinfo` string split at its first `=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModinfoEntry {
    /// Text before the first `=` (the whole string when there is none).
    pub key: Vec<u8>,
    /// Text after the first `=` (empty when there is none).
    pub value: Vec<u8>,
}

impl ModuleInfo {
    /// Values of every modinfo entry whose key is exactly `key`, in order.
    pub fn modinfo_values<'s>(&'s self, key: &'s [u8]) -> impl Iterator<Item = &'s [u8]> + 's {
        self.modinfo
            .iter()
            .filter(move |e| e.key == key)
            .map(|e| e.value.as_slice())
    }
}

/// Opens, decompresses and reads a module file.
///
/// `Err` when the file cannot be opened or decompressed or is not a valid ELF image; depmod
/// then reports the error and keeps the module without any information.
///
/// ```
/// use depmod_rs::module::{read_module, ReadOptions};
/// # use testkit::synth::SynthModule;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("demo.ko");
/// # let elf = SynthModule::x86_64()
/// #     .with_export("demo_register", Some(0x1234))
/// #     .with_modinfo("alias", "pci:v00001234d*")
/// #     .to_elf();
/// # std::fs::write(&path, elf)?;
/// let info = read_module(&path, &ReadOptions::default())?;
/// assert_eq!(info.exports.as_ref().unwrap()[0].name, b"demo_register");
/// let aliases: Vec<&[u8]> = info.modinfo_values(b"alias").collect();
/// assert_eq!(aliases, [&b"pci:v00001234d*"[..]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_module(path: &Path, opts: &ReadOptions) -> Result<ModuleInfo, ModuleError> {
    read_elf(ModuleFile::at_path(path), opts, |elf| {
        let symbols = symbols::symbols(elf);
        ModuleInfo {
            exports: symbols.exports,
            modinfo: modinfo::modinfo(elf),
            imports: import_list(symbols.imports),
        }
    })
}

/// What depmod itself reads from a module: like [`ModuleInfo`], with the imports in an
/// [`ImportTable`] and only the modinfo values of the keys asked for.
#[derive(Debug, Clone)]
pub struct SelectedInfo {
    /// As [`ModuleInfo::exports`].
    pub exports: Result<Vec<Export>, ModuleError>,
    /// For each key asked for, in that order, the values of its modinfo entries in file
    /// order.
    pub modinfo_values: Vec<Vec<Vec<u8>>>,
    /// As [`ModuleInfo::imports`].
    pub imports: ImportTable,
}

/// Like [`read_module`], for depmod's own use: the file is opened where the walk found it
/// (see [`ModuleFile`]), only the values of the modinfo keys in `modinfo_keys` are copied
/// (depmod needs 3 of a module's typically 20–40 entries), and the import names share one
/// buffer.
///
/// With `shard` (a reading thread's [`NameShard`] and its number), the import names are
/// numbered there (see [`ImportTable::share_names`]).
pub(crate) fn read_module_selected(
    module: ModuleFile<'_>,
    opts: &ReadOptions,
    modinfo_keys: &[&[u8]],
    shard: Option<(&mut NameShard, usize)>,
) -> Result<SelectedInfo, ModuleError> {
    // The read may run more than once (a partial read that missed bytes); each run starts
    // its module afresh in the shard.
    let shard = RefCell::new(shard);
    read_elf(module, opts, |elf| {
        let symbols = match shard.borrow_mut().as_mut() {
            Some((names, number)) => symbols::symbols_numbered(elf, (names, *number)),
            None => symbols::symbols(elf),
        };
        SelectedInfo {
            exports: symbols.exports,
            modinfo_values: modinfo::modinfo_selected(elf, modinfo_keys),
            imports: symbols.imports.unwrap_or_default(),
        }
    })
}

fn import_list(table: Option<ImportTable>) -> Vec<Import> {
    table
        .iter()
        .flat_map(ImportTable::iter)
        .map(|i| Import {
            name: i.name.to_vec(),
            crc: i.crc,
            weak: i.weak,
        })
        .collect()
}

/// Uncompressed modules read whole because a partial read gave up (a diagnostic for
/// profiling: see [`uncompressed_whole_reads`]).
static WHOLE_READS: AtomicUsize = AtomicUsize::new(0);

/// How many uncompressed modules this process has read whole rather than partially (their
/// layout needed bytes outside the ranges loaded first, or they failed validation).
pub fn uncompressed_whole_reads() -> usize {
    WHOLE_READS.load(Ordering::Relaxed)
}

thread_local! {
    /// Each thread's buffer for partial reads, reused from module to module.
    static PARTIAL_IMAGE: RefCell<PartialImage> = RefCell::new(PartialImage::default());
}

/// Opens `module` and applies `read` to its validated ELF image: for an uncompressed file
/// usually to the few byte ranges it needs (see `partial.rs`), otherwise to the whole
/// (mapped or decoded) image. Both give the same result.
fn read_elf<T>(
    module: ModuleFile<'_>,
    opts: &ReadOptions,
    read: impl Fn(&elf::ModuleElf<'_>) -> T,
) -> Result<T, ModuleError> {
    let path = module.path;
    PARTIAL_IMAGE.with(|cell| {
        let mut fresh = PartialImage::default();
        let mut borrowed = cell.try_borrow_mut();
        let image = match borrowed.as_deref_mut() {
            Ok(image) => image,
            Err(_) => &mut fresh,
        };
        let (file, format) = source::open_module(module, opts, image)?;
        if format == Compression::None {
            if let Some(value) = partial::read_partially(&file, image, opts.version, &read) {
                return Ok(value);
            }
            WHOLE_READS.fetch_add(1, Ordering::Relaxed);
        }
        let whole = match format {
            Compression::None => source::whole_image(&file, format, path, opts)?,
            _ => source::decoded_image(&file, format, path, opts, image)?,
        };
        let elf = elf::ModuleElf::parse(ImageBytes::Whole(whole.as_bytes()), opts.version)
            .map_err(|e| e.with_path(path))?;
        Ok(read(&elf))
    })
}

/// Reads an already-decompressed ELF image.
///
/// `Err` when the image fails kmod's ELF validation. When only the export read fails,
/// [`ModuleInfo::exports`] holds the error and the rest is still read.
pub fn parse_module_image(image: &[u8], opts: &ReadOptions) -> Result<ModuleInfo, ModuleError> {
    let elf = elf::ModuleElf::parse(ImageBytes::Whole(image), opts.version)?;
    let symbols = symbols::symbols(&elf);
    Ok(ModuleInfo {
        exports: symbols.exports,
        modinfo: modinfo::modinfo(&elf),
        imports: import_list(symbols.imports),
    })
}
