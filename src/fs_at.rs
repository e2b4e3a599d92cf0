//! File identities ([`FileKey`]), and directory-relative `stat` and `open` (`fstatat`,
//! `openat` with `O_PATH`), which the standard library does not offer.
//!
//! A walk that `stat`s thousands of files by absolute path spends most of its time resolving
//! the same leading directories again for every file. Holding each directory open and
//! looking up one name at a time below it costs one path component per call.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How much older than "now" a file's `ctime` must be for its record to be stored.
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// The identity of a file's contents as `stat` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
    /// `st_ctime` in nanoseconds.
    pub ctime_ns: i128,
}

impl FileKey {
    /// The key of `path` (symbolic links followed, as the module read follows them).
    pub fn of(path: &Path) -> Option<FileKey> {
        std::fs::metadata(path)
            .ok()
            .map(|meta| FileKey::from_metadata(&meta))
    }

    /// The key in `meta`.
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file was last changed long enough before `now_ns` for its key to be
    /// trusted later: a file changed within the same timestamp tick as a `stat` could keep
    /// its `ctime`, so a key vouches for the contents only once its `ctime` is at least
    /// `RACY_MARGIN_NS` (2 s) older than the moment it was taken (the rule git uses for racily
    /// clean index entries).
    pub fn is_settled(&self, now_ns: i128) -> bool {
        self.ctime_ns.saturating_add(RACY_MARGIN_NS) <= now_ns
    }
}

/// The current time in nanoseconds since the epoch (0 if the clock is before it).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

// glibc's 64-bit-offset variants, so that 32-bit builds see large inode numbers and sizes.
#[cfg(not(target_env = "gnu"))]
use libc::{fstatat, stat as stat_buffer};
#[cfg(target_env = "gnu")]
use libc::{fstatat64 as fstatat, stat64 as stat_buffer};

/// The longest name passed to the kernel through the on-stack buffer (`NAME_MAX` is 255).
const NAME_BUFFER: usize = 256;

/// A directory held open for lookups below it: opened with `O_PATH` by [`DirHandle::open`]
/// (it can't be read through then), or for reading its entries too by
/// [`DirHandle::open_listing`].
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
}

/// What `stat` says of a file: its key and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The file's identity.
    pub key: FileKey,
    /// The file type bits of `st_mode` (`S_IFMT`).
    pub file_type: u32,
}

impl Stat {
    /// `S_ISREG`.
    pub fn is_file(&self) -> bool {
        self.file_type == libc::S_IFREG
    }

    /// `S_ISDIR`.
    pub fn is_dir(&self) -> bool {
        self.file_type == libc::S_IFDIR
    }
}

/// What a directory entry is, as a walk sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else: a symbolic link, a device, a FIFO, a socket.
    Other,
}

/// Calls `f` with `name` as a NUL-terminated string (no allocation for names up to
/// `NAME_MAX`); a name containing NUL is an `InvalidInput` error.
fn with_c_name<T>(name: &[u8], f: impl FnOnce(&CStr) -> io::Result<T>) -> io::Result<T> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL");
    if name.len() < NAME_BUFFER {
        let mut buffer = [0u8; NAME_BUFFER];
        buffer[..name.len()].copy_from_slice(name);
        let c_name = CStr::from_bytes_until_nul(&buffer[..=name.len()]).map_err(|_| invalid())?;
        if c_name.to_bytes().len() != name.len() {
            return Err(invalid());
        }
        f(c_name)
    } else {
        let c_name = std::ffi::CString::new(name).map_err(|_| invalid())?;
        f(&c_name)
    }
}

/// The result of `fstatat(dirfd, name, flags)`.
fn stat_at(dirfd: i32, name: &CStr, flags: i32) -> io::Result<Stat> {
    let mut buf = MaybeUninit::<stat_buffer>::uninit();
    // SAFETY: `name` is NUL-terminated and `buf` is a valid, writable `struct stat`; the
    // kernel fills it completely when the call succeeds, and it is read only then.
    let st = unsafe {
        if fstatat(dirfd, name.as_ptr(), buf.as_mut_ptr(), flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        buf.assume_init()
    };
    // The field types differ between 32- and 64-bit targets; the conversions are lossless.
    #[allow(clippy::useless_conversion)]
    Ok(Stat {
        key: FileKey {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            size: st.st_size as u64,
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
            ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
        },
        file_type: st.st_mode & libc::S_IFMT,
    })
}

/// `openat(dirfd, name, O_DIRECTORY | O_CLOEXEC | mode)`, following symbolic links; `mode`
/// is `O_PATH` or `O_RDONLY`.
fn open_dir_at(dirfd: i32, name: &CStr, mode: i32) -> io::Result<DirHandle> {
    // SAFETY: `name` is NUL-terminated; the returned descriptor is new and owned by us.
    let fd = unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            mode | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor nothing else owns.
    Ok(DirHandle {
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
    })
}

impl DirHandle {
    /// Opens the directory at `path` (absolute, or relative to the working directory).
    pub fn open(path: &[u8]) -> io::Result<DirHandle> {
        with_c_name(path, |path| open_dir_at(libc::AT_FDCWD, path, libc::O_PATH))
    }

    /// Opens the directory at `path` to read its entries too ([`DirHandle::entries`]), as
    /// `opendir` opens it.
    pub fn open_listing(path: &[u8]) -> io::Result<DirHandle> {
        with_c_name(path, |path| {
            open_dir_at(libc::AT_FDCWD, path, libc::O_RDONLY)
        })
    }

    /// Opens the subdirectory `name` to read its entries too (one path component looked up,
    /// where opening it by path looks up every component again).
    pub fn open_listing_dir(&self, name: &[u8]) -> io::Result<DirHandle> {
        with_c_name(name, |name| {
            open_dir_at(self.fd.as_raw_fd(), name, libc::O_RDONLY)
        })
    }

    /// The entries of a directory opened with [`DirHandle::open_listing`], in the order the
    /// directory gives them, as `readdir` returns them: without `.`, `..` and entries of
    /// inode 0.
    pub fn entries(&self) -> DirEntries {
        /// Room for the entries of one `getdents64` call: most directories fit in one.
        const CHUNK: usize = 32 << 10;
        /// Less room than this left, and the buffer grows before the next call.
        const MIN_ROOM: usize = 4 << 10;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        let error = loop {
            if buf.capacity() - buf.len() < MIN_ROOM {
                buf.reserve(CHUNK);
            }
            let spare = buf.spare_capacity_mut();
            // SAFETY: the kernel writes at most `spare.len()` bytes into the spare capacity
            // of `buf`, and returns how many it wrote.
            let got = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd.as_raw_fd(),
                    spare.as_mut_ptr(),
                    spare.len(),
                )
            };
            match got {
                0 => break None,
                n if n > 0 => {
                    let len = buf.len() + n as usize;
                    // SAFETY: the kernel initialised these `n` bytes.
                    unsafe { buf.set_len(len) };
                }
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        break Some(err);
                    }
                }
            }
        };
        DirEntries { buf, error }
    }

    /// The kind of the entry `name`, given the type the directory reports for it
    /// (`d_type`): where the directory gives none, the entry's own `lstat` tells (`Err` when
    /// that fails).
    pub fn entry_kind(&self, name: &[u8], d_type: u8) -> io::Result<EntryKind> {
        let file_type = match d_type {
            libc::DT_REG => libc::S_IFREG,
            libc::DT_DIR => libc::S_IFDIR,
            libc::DT_UNKNOWN => self.lstat_entry(name)?.file_type,
            _ => 0,
        };
        Ok(match file_type {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            _ => EntryKind::Other,
        })
    }

    /// The `stat` of the entry `name` itself, symbolic links not followed.
    pub fn lstat_entry(&self, name: &[u8]) -> io::Result<Stat> {
        with_c_name(name, |name| {
            stat_at(self.fd.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW)
        })
    }

    /// The directory's own `stat`.
    pub fn stat(&self) -> io::Result<Stat> {
        stat_at(self.fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
    }

    /// The `stat` of the entry `name`, symbolic links followed.
    pub fn stat_entry(&self, name: &[u8]) -> io::Result<Stat> {
        with_c_name(name, |name| stat_at(self.fd.as_raw_fd(), name, 0))
    }

    /// Opens the file at `path` below the directory (a relative path, which may name
    /// subdirectories) for reading, symbolic links followed.
    pub fn open_file(&self, path: &[u8]) -> io::Result<std::fs::File> {
        with_c_name(path, |path| {
            // SAFETY: `path` is NUL-terminated; the returned descriptor is new and ours.
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    path.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a freshly opened descriptor nothing else owns.
            Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
        })
    }
}

/// A directory's entries as one `getdents64` buffer (see [`DirHandle::entries`]).
#[derive(Debug)]
pub struct DirEntries {
    buf: Vec<u8>,
    /// Why reading stopped before the end of the directory, if it did.
    error: Option<io::Error>,
}

/// One directory entry: its name and the type the directory reports (`d_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The entry's name.
    pub name: &'a [u8],
    /// `d_type` (`DT_UNKNOWN` where the file system does not say).
    pub d_type: u8,
}

impl DirEntries {
    /// The entries in directory order, then the error that stopped the reading, if any.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<DirEntry<'_>>> + '_ {
        /// `struct linux_dirent64`: `d_ino` (8 bytes), `d_off` (8), `d_reclen` (2), `d_type`
        /// (1), then the NUL-terminated name.
        const NAME_AT: usize = 19;
        let mut rest = &self.buf[..];
        let records = std::iter::from_fn(move || loop {
            let header = rest.get(..NAME_AT)?;
            let ino = u64::from_ne_bytes(header[..8].try_into().unwrap_or_default());
            let reclen = usize::from(u16::from_ne_bytes([header[16], header[17]]));
            let d_type = header[18];
            let Some(record) = rest.get(..reclen).filter(|_| reclen > NAME_AT) else {
                rest = &[];
                return Some(Err(io::Error::other("malformed directory entry")));
            };
            rest = &rest[reclen..];
            let name = &record[NAME_AT..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if ino == 0 || name == b"." || name == b".." {
                continue;
            }
            return Some(Ok(DirEntry { name, d_type }));
        });
        let error = self.error.as_ref().map(|err| {
            Err(match err.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(err.kind(), err.to_string()),
            })
        });
        records.chain(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn relative_lookups_match_path_lookups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.ko"), b"data").unwrap();
        std::os::unix::fs::symlink("a.ko", dir.path().join("sub/link.ko")).unwrap();
        let root = DirHandle::open(dir.path().as_os_str().as_bytes()).unwrap();
        let sub = root.open_listing_dir(b"sub").unwrap();
        let by_path = |rel: &str| FileKey::of(&dir.path().join(rel)).unwrap();
        assert_eq!(sub.stat().unwrap().key, by_path("sub"));
        assert!(!sub.stat().unwrap().is_file());
        let file = sub.stat_entry(b"a.ko").unwrap();
        assert_eq!(file.key, by_path("sub/a.ko"));
        assert!(file.is_file());
        assert_eq!(sub.stat_entry(b"link.ko").unwrap(), file);
        let missing = sub.stat_entry(b"missing.ko").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(sub.stat_entry(b"a\0b").is_err());
        assert!(root.open_listing_dir(b"sub/a.ko").is_err());
        let long = vec![b'x'; 300];
        assert!(sub.stat_entry(&long).is_err());

        let mut read = String::new();
        use std::io::Read;
        root.open_file(b"sub/link.ko")
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "data");
        let missing = root.open_file(b"sub/missing.ko").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(root.open_file(b"sub").unwrap().read(&mut [0; 4]).is_err());
        assert!(root.open_file(b"sub/a\0b").is_err());
    }

    /// A listing read with `getdents64` gives what `readdir` (the standard library's
    /// `read_dir`) gives: the same names in the same order, of the same kinds.
    #[test]
    fn entries_are_readdirs() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::create_dir(at("sub")).unwrap();
        std::fs::write(at("a.ko"), b"data").unwrap();
        std::os::unix::fs::symlink("a.ko", at("link.ko")).unwrap();
        std::os::unix::fs::symlink("missing", at("dangling.ko")).unwrap();
        let fifo = std::ffi::CString::new(at("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: `fifo` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // More than one `getdents64` call's worth of entries.
        for i in 0..1500 {
            let name = format!("module-with-a-rather-long-name-{i:05}.ko");
            std::fs::write(at(&name), b"").unwrap();
        }
        let listing = DirHandle::open_listing(dir.path().as_os_str().as_bytes()).unwrap();
        let entries = listing.entries();
        let ours: Vec<(Vec<u8>, EntryKind)> = entries
            .iter()
            .map(|entry| {
                let entry = entry.unwrap();
                let kind = listing.entry_kind(entry.name, entry.d_type).unwrap();
                (entry.name.to_vec(), kind)
            })
            .collect();
        let std_kind = |t: std::fs::FileType| match t {
            t if t.is_file() => EntryKind::File,
            t if t.is_dir() => EntryKind::Dir,
            _ => EntryKind::Other,
        };
        let theirs: Vec<(Vec<u8>, EntryKind)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let kind = std_kind(entry.file_type().unwrap());
                (entry.file_name().as_bytes().to_vec(), kind)
            })
            .collect();
        assert_eq!(ours.len(), 1505);
        assert_eq!(ours, theirs);
        let lstat = listing.lstat_entry(b"link.ko").unwrap();
        assert_eq!(lstat.file_type, libc::S_IFLNK);
        assert!(listing.stat_entry(b"link.ko").unwrap().is_file());
        assert_eq!(
            listing.stat_entry(b"fifo").unwrap().file_type,
            libc::S_IFIFO
        );
        assert!(listing.stat_entry(b"sub").unwrap().is_dir());
        assert!(listing.stat_entry(b"dangling.ko").is_err());
        // A handle opened for lookups only cannot be listed: the listing ends in an error.
        let lookups = DirHandle::open(dir.path().as_os_str().as_bytes()).unwrap();
        let entries = lookups.entries();
        let listed: Vec<_> = entries.iter().collect();
        assert!(matches!(listed[..], [Err(_)]));
    }
}
