//! Advisory locks that make overlapping runs take turns.
//!
//! Two runs over one tree (parallel DKMS builds, a kernel postinst racing a DKMS
//! autoinstall) must not interleave: the run that read the tree earlier could publish last
//! and overwrite the newer files. So a run that writes holds an exclusive `flock(2)` on its
//! output directory, taken on a descriptor of the directory itself — the tree gains no lock
//! file, and kmod's file set stays exact — from before the tree is read until its files are
//! published. A run that finds the lock taken waits for it, and then reads the final tree.
//!
//! A run with a `--cache` file also locks that file, for as long as it may write it: two
//! runs that share one cache (for different output directories) then never write it at the
//! same time. The cache file is replaced by rename, so the lock is taken on whatever file is
//! at the path, and taken again when another run renamed a new one there meanwhile.
//!
//! The locks are advisory: kmod's own depmod does not take them, and nothing here stops a
//! run when a lock cannot be taken (a read-only or missing directory): the run then goes on
//! as kmod's would.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (closing the descriptor releases the `flock`).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    /// What is locked: the directory itself, or its nearest existing parent (the tests check
    /// which).
    #[cfg_attr(not(test), allow(dead_code))]
    path: PathBuf,
}

/// Whether taking a lock had to wait for another run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The lock was free.
    No,
    /// Another run held it; this one waited.
    Yes,
}

/// `flock(fd, LOCK_EX)`, first without blocking; `on_wait` is called before blocking.
fn flock_exclusive(file: &File, on_wait: &mut dyn FnMut()) -> io::Result<Waited> {
    let fd = file.as_raw_fd();
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Waited::No);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(err);
    }
    on_wait();
    loop {
        // SAFETY: as above.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
            return Ok(Waited::Yes);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Locks the directory `dir`, or, while it does not exist yet (`-o` into a new directory),
/// its nearest existing parent. `on_wait(path)` is called if another run holds the lock.
///
/// Returns `None` when no directory on the way can be opened: the run then goes on
/// unlocked, and reports whatever kmod reports about the directory.
pub fn lock_directory(dir: &Path, on_wait: &mut dyn FnMut(&Path)) -> Option<Lock> {
    let mut at = Some(dir);
    while let Some(path) = at {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path);
        match opened {
            Ok(file) => {
                flock_exclusive(&file, &mut || on_wait(path)).ok()?;
                return Some(Lock {
                    _file: file,
                    path: path.to_path_buf(),
                });
            }
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                at = path.parent().filter(|p| !p.as_os_str().is_empty());
            }
            Err(_) => return None,
        }
    }
    None
}

/// Locks the file at `path`, creating it (empty, mode 0644 minus the umask) and its
/// directory if needed. When another run replaced the file by rename while this one waited,
/// the new file is locked instead, so the lock always covers the file now at `path`.
pub fn lock_file(path: &Path, on_wait: &mut dyn FnMut(&Path)) -> io::Result<Lock> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut told = false;
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        flock_exclusive(&file, &mut || {
            if !told {
                told = true;
                on_wait(path);
            }
        })?;
        let held = file.metadata()?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                return Ok(Lock {
                    _file: file,
                    path: path.to_path_buf(),
                })
            }
            // Replaced (or removed) while waiting: lock what is there now.
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_directory(dir.path(), &mut |_| panic!("free")).unwrap();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let mut waited = false;
            let lock = lock_directory(&path, &mut |_| waited = true).unwrap();
            drop(lock);
            waited
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(first);
        assert!(waiter.join().unwrap());
        // The directory gained no file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_locks_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_directory(&dir.path().join("a/b"), &mut |_| {}).unwrap();
        assert_eq!(lock.path, dir.path());
    }

    #[test]
    fn a_file_replaced_while_waiting_is_locked_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let first = lock_file(&path, &mut |_| panic!("free")).unwrap();
        let other = path.clone();
        let waiter = std::thread::spawn(move || lock_file(&other, &mut |_| {}).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(dir.path().join("new"), b"x").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        drop(first);
        let second = waiter.join().unwrap();
        let held = second._file.metadata().unwrap();
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(held.ino(), now.ino());
    }
}
