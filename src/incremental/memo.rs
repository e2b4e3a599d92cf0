//! The run memo (part of `--cache FILE`): when every input of a run is what it was for the
//! last run, the index files it wrote are still right, and what it printed after discovery
//! is what this run would print; the files are checked and kept instead of being rebuilt,
//! and the messages printed again.
//!
//! # What counts as an input
//!
//! The memo's key is one [`Digest`] ([`RunInputs`]) over everything the index files and the
//! messages after module discovery depend on:
//!
//! * the settings that decide what the write stage writes and where (see
//!   [`super::inputs`]): `--compat`, the module and output directories (`-b`, `-m`, `-o`
//!   and the kernel version), `-n`, `-w`, `-P`, `-E` versus `-F`, `-e`, `--fsync` and
//!   `--gzip`; and the folded `depmod.d` configuration, field by field;
//! * the kernel symbols read from `-F System.map` or `-E Module.symvers`;
//! * the module list in kmod's order (which `modules.order` decides): each module's name,
//!   path, relative path, and the digest of what was read from it (its record, see
//!   [`super::store`]);
//! * the bytes of `modules.builtin` and `modules.builtin.modinfo` (or their absence).
//!
//! A module's digest comes from its cache entry when its [`crate::fs_at::FileKey`] is
//! unchanged, and otherwise from reading it again: a module replaced by a file with the same
//! exports, imports and modinfo (a reinstalled package, a rebuild) leaves the inputs
//! unchanged; any difference in what depmod uses from it changes them.
//!
//! Discovery (configuration, directory walk, `modules.order`) runs on every run and prints
//! its own messages, so they need no memo. What a run prints after it (kmod 34's warnings
//! about a missing `modules.builtin`, `-e` reports, cycles, warnings about aliases) depends
//! only on the inputs above: it is kept with the memo, byte for byte, and printed again by a
//! run that keeps the files. Runs with verbose output, `-n` runs, and runs where a module
//! could not be read (its message would depend on bytes the digest does not cover) are
//! always carried out in full. The alias files are updated in place (below) only after a run
//! that printed nothing.
//!
//! # Updating the alias files
//!
//! A memo also keeps a base ([`super::store::MemoBase`]): the digest of every input except
//! the modules' aliases and imports, and per module what an update of the alias files needs.
//! When only the base still matches, and the changed modules' imports give the dependencies
//! they had, the other files are kept and the alias files updated in place (see [`super::delta`]).
//!
//! # Keeping the files
//!
//! A memo lists each file the run wrote with its length and digest. On a match every file is
//! read back and compared (a file changed or removed since means a full run), then its
//! modification time is set to now, as a rewrite would, so that checks like `depmod -A`'s
//! "is `modules.dep` newer than every module" see a fresh index.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3;

use super::store::Digest;
use crate::publish::{DigestWriter, WrittenFile};

/// Builds the digest of a run's inputs from length-prefixed fields, so that no two
/// different sequences of fields give the same byte stream.
#[derive(Clone)]
pub struct RunInputs {
    hasher: Xxh3,
}

impl Default for RunInputs {
    fn default() -> Self {
        Self::new()
    }
}

impl RunInputs {
    /// A digest with nothing added yet (but the memo's format tag).
    pub fn new() -> Self {
        let mut inputs = RunInputs {
            hasher: Xxh3::new(),
        };
        inputs.field(b"depmod-rs run inputs 1");
        inputs
    }

    /// Adds one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        self
    }

    /// Adds an optional field (absence differs from every value, the empty one included).
    pub fn optional(&mut self, bytes: Option<&[u8]>) -> &mut Self {
        match bytes {
            None => self.hasher.update(&[0]),
            Some(bytes) => {
                self.hasher.update(&[1]);
                self.field(bytes);
            }
        }
        self
    }

    /// Adds a digest.
    pub fn digest(&mut self, digest: Digest) -> &mut Self {
        self.hasher.update(&digest.to_le_bytes());
        self
    }

    /// The digest of everything added.
    pub fn finish(&self) -> Digest {
        self.hasher.digest128()
    }
}

/// Reads an input file of the module directory for the digest: `Ok(None)` when it does not
/// exist, an error when it exists but cannot be read (no memo then: the full run reports it).
pub fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether every file of `outputs` is in `dir` with exactly the recorded contents.
pub fn outputs_intact(dir: &Path, outputs: &[WrittenFile]) -> bool {
    !outputs.is_empty()
        && outputs.par_iter().all(|file| {
            file_summary(&output_path(dir, file))
                .is_ok_and(|summary| summary == (file.size, file.digest))
        })
}

/// Where `file` is in the output directory `dir`.
fn output_path(dir: &Path, file: &WrittenFile) -> std::path::PathBuf {
    dir.join(std::ffi::OsStr::from_bytes(file.name.as_bytes()))
}

/// The contents of `file` in `dir` if they are exactly the recorded ones, mapped (an index
/// file is read whole, and mapping the cached pages costs less than copying them).
pub fn read_intact(dir: &Path, file: &WrittenFile) -> Option<memmap2::Mmap> {
    let handle = std::fs::File::open(output_path(dir, file)).ok()?;
    if handle.metadata().ok()?.len() != file.size || file.size == 0 {
        return None;
    }
    // SAFETY: the map is read-only and private. Index files are replaced by renaming a new
    // file over them, never rewritten in place; if another process truncated one while it is
    // mapped, reads could fault (SIGBUS), the exposure libkmod accepts by mapping the same
    // files. The contents are checked against the digest before anything else reads them.
    let bytes = unsafe { memmap2::MmapOptions::new().populate().map(&handle) }.ok()?;
    (bytes.len() as u64 == file.size && super::store::digest(&bytes) == file.digest)
        .then_some(bytes)
}

/// The length and digest of the file at `path`, read in chunks (no buffer the size of the
/// file, whose fresh pages would cost more to fault in than hashing them).
fn file_summary(path: &Path) -> std::io::Result<(u64, Digest)> {
    const CHUNK: usize = 64 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut out = DigestWriter::new(std::io::sink());
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match std::io::Read::read(&mut file, &mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        out.write_all(&buffer[..n])?;
    }
    Ok(out.summary())
}

/// Sets the modification time of every file of `outputs` to now. Failures are ignored: the
/// contents are right either way.
pub fn touch_outputs(dir: &Path, outputs: &[WrittenFile]) {
    let now = std::fs::FileTimes::new().set_modified(std::time::SystemTime::now());
    for file in outputs {
        if let Ok(handle) = std::fs::OpenOptions::new()
            .write(true)
            .open(output_path(dir, file))
        {
            let _ = handle.set_times(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_delimited() {
        let ab_c = RunInputs::new().field(b"ab").field(b"c").finish();
        let a_bc = RunInputs::new().field(b"a").field(b"bc").finish();
        assert_ne!(ab_c, a_bc);
        let none = RunInputs::new().optional(None).finish();
        let empty = RunInputs::new().optional(Some(b"")).finish();
        assert_ne!(none, empty);
        assert_eq!(
            RunInputs::new().field(b"x").digest(5).finish(),
            RunInputs::new().field(b"x").digest(5).finish()
        );
    }

    #[test]
    fn digest_writer_sees_every_byte() {
        let mut out = Vec::new();
        let mut writer = DigestWriter::new(&mut out);
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (len, digest) = writer.summary();
        assert_eq!(len, 11);
        assert_eq!(digest, crate::incremental::store::digest(b"hello world"));
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn outputs_must_match_exactly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("modules.dep"), b"a.ko:\n").unwrap();
        let good = vec![WrittenFile {
            name: "modules.dep".to_string(),
            size: 6,
            digest: crate::incremental::store::digest(b"a.ko:\n"),
        }];
        assert!(outputs_intact(dir.path(), &good));
        let mut other = good.clone();
        other[0].digest ^= 1;
        assert!(!outputs_intact(dir.path(), &other));
        let mut missing = good.clone();
        missing[0].name = "modules.alias".to_string();
        assert!(!outputs_intact(dir.path(), &missing));
        assert!(!outputs_intact(dir.path(), &[]));
        std::fs::write(dir.path().join("modules.dep"), b"a.ko: b.ko\n").unwrap();
        assert!(!outputs_intact(dir.path(), &good));
    }
}
