//! Writing outputs into place (spec §11.2): each file is written to a temporary file in the
//! output directory and renamed over its final name, so a reader never sees a half-written
//! file. A file may be written early and renamed later ([`PendingFile::stage_with`],
//! [`StagedFile::rename`]); the run renames them in kmod's order.
//!
//! Safety rules beyond kmod's:
//! - the temporary file is opened with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a file or symlink planted
//!   under the temporary name is never written through (the open fails with `EEXIST`), and
//!   `rename` replaces a symlink planted under the final name instead of following it;
//! - whatever fails after the temporary file exists, it is removed: an error leaves only complete
//!   files behind;
//! - with [`Publisher::with_fsync`], each file is flushed to disk before its rename and the
//!   directory once after the last rename ([`Publisher::finish`]), so a power cut leaves either
//!   the old or the new file. kmod does neither; the default follows kmod (see
//!   `docs/robustness.md` for the measured cost).

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::bmsg;
use crate::diag::strerror;

/// Why a file could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The temporary file could not be created (kmod skips this file and continues).
    #[error("could not create temporary file")]
    CreateTemp(Vec<u8>),
    /// Writing failed (the temporary file is removed).
    #[error("write failed")]
    Write(Vec<u8>),
    /// The rename failed (kmod: FATAL).
    #[error("rename failed")]
    Rename(Vec<u8>),
    /// `--fsync`: flushing a file or the directory to disk failed.
    #[error("fsync failed")]
    Sync(Vec<u8>),
}

impl PublishError {
    /// kmod's message for this failure.
    pub fn message(&self) -> &[u8] {
        match self {
            PublishError::CreateTemp(m)
            | PublishError::Write(m)
            | PublishError::Rename(m)
            | PublishError::Sync(m) => m,
        }
    }
}

/// The output directory and the unique stem of this run's temporary files.
#[derive(Debug, Clone)]
pub struct Publisher {
    dir: PathBuf,
    stem: String,
    fsync: bool,
}

/// `mkdir -p` with mode 0755 (minus umask), as kmod 31+ does before writing.
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

impl Publisher {
    /// A publisher for `dir`; temporary names are `<file>.<pid>.<usec>.<sec>` as in kmod.
    pub fn new(dir: PathBuf) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stem = format!(
            "{}.{}.{}",
            std::process::id(),
            now.subsec_micros(),
            now.as_secs()
        );
        Publisher {
            dir,
            stem,
            fsync: false,
        }
    }

    /// Flush every file to disk before renaming it, and the directory in [`Publisher::finish`].
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The temporary path `name` is written to before its rename.
    pub fn temp_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{}", self.stem))
    }

    /// After the last [`Publisher::publish`]: with fsync on, flush the directory so the renames
    /// themselves survive a crash. Does nothing otherwise.
    pub fn finish(&self) -> Result<(), PublishError> {
        if !self.fsync {
            return Ok(());
        }
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| {
                PublishError::Sync(bmsg!(
                    "fsync(",
                    self.dir.as_os_str().as_bytes(),
                    "): ",
                    strerror(&err)
                ))
            })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `contents` to `name` atomically. The file mode is 0644 minus the umask.
    pub fn publish(&self, name: &str, contents: &[u8]) -> Result<(), PublishError> {
        self.begin(name)?.commit(contents)
    }

    /// Create the temporary file for `name` (kmod opens it before building the contents, so a
    /// failure here skips that file's work and its messages). Dropping the result without
    /// `PendingFile::commit` removes the temporary.
    pub fn begin(&self, name: &str) -> Result<PendingFile<'_>, PublishError> {
        let tmp_name = format!("{name}.{}", self.stem);
        let tmp = self.dir.join(&tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)
            .map_err(|err| {
                PublishError::CreateTemp(bmsg!(
                    "openat(",
                    self.dir.as_os_str().as_bytes(),
                    ", ",
                    tmp_name,
                    ", 301, 644): ",
                    strerror(&err)
                ))
            })?;
        Ok(PendingFile {
            publisher: self,
            name: name.to_string(),
            tmp_name,
            tmp,
            file: Some(file),
        })
    }
}

/// A created temporary file waiting for its contents. Removed on drop unless committed.
#[derive(Debug)]
pub struct PendingFile<'a> {
    publisher: &'a Publisher,
    name: String,
    tmp_name: String,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl<'a> PendingFile<'a> {
    /// Write `contents`, flush them to disk with fsync on, and rename over the final name.
    /// On any failure the temporary file is removed.
    pub fn commit(self, contents: &[u8]) -> Result<(), PublishError> {
        self.commit_with(|file| file.write_all(contents))
    }

    /// Like [`PendingFile::commit`], with the contents written by `write` (in as many calls
    /// as it likes), so that large contents need not be assembled in memory first.
    pub fn commit_with(
        self,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<(), PublishError> {
        self.stage_with(write)?.rename().map(drop)
    }

    /// The first half of [`PendingFile::commit_with`]: writes the contents (and flushes them
    /// to disk with fsync on) but leaves the file under its temporary name, so that files can
    /// be written as soon as they are ready and still renamed in kmod's order.
    pub fn stage_with(
        mut self,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<StagedFile<'a>, PublishError> {
        let dir = self.publisher.dir.as_os_str().as_bytes();
        let Some(mut file) = self.file.take() else {
            return Err(PublishError::Write(bmsg!("temporary file already closed")));
        };
        if let Err(err) = write(&mut file).and_then(|_| file.flush()) {
            return Err(PublishError::Write(bmsg!(
                "Could not create index '",
                self.name,
                "'. Output is truncated: ",
                strerror(&err)
            )));
        }
        if self.publisher.fsync {
            if let Err(err) = file.sync_all() {
                return Err(PublishError::Sync(bmsg!(
                    "fsync(",
                    dir,
                    "/",
                    self.tmp_name,
                    "): ",
                    strerror(&err)
                )));
            }
        }
        drop(file);
        Ok(StagedFile {
            publisher: self.publisher,
            name: std::mem::take(&mut self.name),
            tmp_name: std::mem::take(&mut self.tmp_name),
            // The staged file owns the temporary from here on.
            tmp: std::mem::take(&mut self.tmp),
        })
    }
}

/// A temporary file written in full, waiting to be renamed over its final name. Removed on
/// drop unless renamed.
#[derive(Debug)]
pub struct StagedFile<'a> {
    publisher: &'a Publisher,
    name: String,
    tmp_name: String,
    tmp: PathBuf,
}

/// The file a rename replaced, still open: the kernel frees a file's pages when its last
/// name and last descriptor are gone, which takes milliseconds for a large index. Dropping
/// this does it, so a caller can do it off its critical path (or just drop it).
#[derive(Debug)]
pub struct ReplacedFile(#[allow(dead_code)] Option<std::fs::File>);

impl StagedFile<'_> {
    /// Renames the file over its final name (kmod: FATAL if that fails, and the temporary
    /// file is removed).
    pub fn rename(mut self) -> Result<ReplacedFile, PublishError> {
        let dir = self.publisher.dir.as_os_str().as_bytes();
        let target = self.publisher.dir.join(OsStr::new(&self.name));
        // A path-only descriptor keeps the old file's pages alive past the rename without
        // opening it (nothing is read, and a device or FIFO planted there is never opened).
        let replaced = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(&target)
            .ok();
        std::fs::rename(&self.tmp, &target).map_err(|err| {
            PublishError::Rename(bmsg!(
                "renameat(",
                dir,
                ", ",
                self.tmp_name,
                ", ",
                dir,
                ", ",
                self.name,
                "): ",
                strerror(&err)
            ))
        })?;
        self.tmp = PathBuf::new(); // renamed: nothing left to clean up
        Ok(ReplacedFile(replaced))
    }
}

impl Drop for StagedFile<'_> {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Drop for PendingFile<'_> {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A 128-bit digest (XXH3-128) of a file's contents.
pub type FileDigest = u128;

/// One file as it was published: its name, length and digest (the digest is taken only
/// when asked for, and is 0 otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The file name in the output directory.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// The digest of its contents.
    pub digest: FileDigest,
}

/// A writer that passes everything through and keeps the length and digest of what went by.
pub struct DigestWriter<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
        }
    }

    /// The length and digest of everything written so far.
    pub fn summary(&self) -> (u64, FileDigest) {
        (self.len, self.hasher.digest128())
    }

    /// Lets `write` write to `inner` through a digest writer; returns the length and digest
    /// of what it wrote.
    pub fn digest_of(
        inner: W,
        write: impl FnOnce(&mut Self) -> std::io::Result<()>,
    ) -> std::io::Result<(u64, FileDigest)> {
        let mut out = DigestWriter::new(inner);
        write(&mut out)?;
        Ok(out.summary())
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("depmod-rs-publish-{}", std::process::id()));
        create_dir_all(&dir).unwrap();
        let publisher = Publisher::new(dir.clone());
        publisher.publish("modules.dep", b"a.ko:\n").unwrap();
        publisher.publish("modules.dep", b"b.ko:\n").unwrap();
        assert_eq!(std::fs::read(dir.join("modules.dep")).unwrap(), b"b.ko:\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
