//! Freeing large values, and closing replaced files, off the critical path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::publish::ReplacedFile;

/// A value waiting to be dropped.
type Garbage = Box<dyn Send>;

/// The queue of the thread that drops values; `None` if that thread could not be started.
static DROPPER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();

/// Whether the memory handed to [`drop_in_background`] is left for the process's exit.
static LEFT_TO_EXIT: AtomicBool = AtomicBool::new(false);

/// For a process that exits as soon as its run is done (the binaries' `main`): the large
/// values a run is done with (its records, dependency lists and graph) are then never freed, as their memory goes back to the
/// kernel with the rest of the process at exit, and freeing them first was work that
/// nothing needed: on the 2-core VM, 2-11 ms of CPU a run on bookworm-amd64 (task-clock,
/// five alternating series of 15 runs), taken from the encoders while they still ran.
///
/// A library caller leaves this alone and gets the memory back. Replaced index files are
/// closed either way.
pub fn leave_memory_to_exit() {
    LEFT_TO_EXIT.store(true, Ordering::Relaxed);
}

/// Frees `value` on another thread, or not at all after [`leave_memory_to_exit`]. Freeing
/// the run's hundreds of thousands of small allocations takes milliseconds that nothing
/// waits for: the process usually exits first, and a library caller gets the memory back
/// shortly after.
///
/// For values that hold memory only: a value that holds a file or a lock must be dropped
/// when it is done with.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    if LEFT_TO_EXIT.load(Ordering::Relaxed) {
        std::mem::forget(value);
        return;
    }
    hand_over(Box::new(value));
}

/// Closes the last descriptor of a replaced index file on a thread of its own. The
/// filesystem then frees the file's pages and blocks: about a millisecond per megabyte on
/// ext4, and on a filesystem mounted with `discard` and no journal most of that is waiting
/// for the device to discard the blocks. On threads of their own the files of a run are
/// freed at the same time rather than one after the other; left open, the process's exit
/// would free them one by one while its parent waits. [`wait_for_closes`] waits for them.
///
/// The closing threads are started by one launching thread, so that the thread publishing
/// the files only queues each one: starting a thread took it about 0.1 ms, between renames
/// that are on the critical path of a run.
pub(crate) fn close_in_background(file: ReplacedFile) {
    let launcher = LAUNCHER.get_or_init(start_launcher);
    let file = match launcher {
        Some(queue) => match queue.send(Launch::Close(file)) {
            Ok(()) => return,
            // The launcher is gone: the file comes back in the error.
            Err(mpsc::SendError(launch)) => match launch {
                Launch::Close(file) => file,
                Launch::Flush(_) => return,
            },
        },
        None => file,
    };
    start_closing(file);
}

/// What the launching thread is asked to do, in order.
enum Launch {
    /// Start a thread that closes this file.
    Close(ReplacedFile),
    /// Say so once every file queued before has its closing thread.
    Flush(Sender<()>),
}

/// The queue of the thread that starts the closing threads; `None` if it could not be
/// started (each file then starts its own).
static LAUNCHER: OnceLock<Option<Sender<Launch>>> = OnceLock::new();

/// Starts the launching thread (see [`close_in_background`]).
fn start_launcher() -> Option<Sender<Launch>> {
    let (queue, launches) = mpsc::channel::<Launch>();
    std::thread::Builder::new()
        .name("depmod-rs-closes".into())
        .stack_size(CLOSING_STACK)
        .spawn(move || {
            for launch in launches {
                match launch {
                    Launch::Close(file) => start_closing(file),
                    Launch::Flush(done) => drop(done.send(())),
                }
            }
        })
        .ok()?;
    Some(queue)
}

/// A closing thread needs little stack; a small one is cheap to map and unmap.
const CLOSING_STACK: usize = 64 << 10;

/// Closes `file` on a thread of its own, recorded in [`CLOSING`].
fn start_closing(file: ReplacedFile) {
    let spawned = std::thread::Builder::new()
        .name("depmod-rs-close".into())
        .stack_size(CLOSING_STACK)
        .spawn(move || drop(file));
    // If no thread could be started, the closure was dropped, and the file closed with it.
    if let Ok(closing) = spawned {
        CLOSING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(closing);
    }
}

/// The threads closing replaced files (see [`close_in_background`]).
static CLOSING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits until every replaced file handed to a closing thread is closed. The `depmod-rs`
/// binary calls this before it exits: the files are then freed side by side, where the
/// exit would free them one after the other. A library caller need not: the threads finish
/// on their own.
pub fn wait_for_closes() {
    if let Some(Some(queue)) = LAUNCHER.get() {
        let (done, started) = mpsc::channel();
        if queue.send(Launch::Flush(done)).is_ok() {
            // Every file queued so far has its closing thread once this arrives (or the
            // launcher is gone).
            let _ = started.recv();
        }
    }
    let closing = std::mem::take(&mut *CLOSING.lock().unwrap_or_else(PoisonError::into_inner));
    for thread in closing {
        let _ = thread.join();
    }
}

/// Drops `value` on the background thread, in the order handed over. One thread, started on
/// first use, stays for the life of the process: a thread per value cost more than the drops
/// it moved, as each start maps a stack and each exit unmaps the thread's signal stack and
/// releases its stack's pages, and both make the kernel flush the other cores' TLBs.
fn hand_over(value: Garbage) {
    match DROPPER.get_or_init(start_dropper) {
        // If the thread is gone, the value comes back in the error and is dropped here.
        Some(queue) => drop(queue.send(value)),
        None => drop(value),
    }
}

/// Starts the thread that drops what is queued for it.
fn start_dropper() -> Option<Sender<Garbage>> {
    let (queue, garbage) = mpsc::channel::<Garbage>();
    std::thread::Builder::new()
        .name("depmod-rs-free".into())
        .spawn(move || garbage.into_iter().for_each(drop))
        .ok()?;
    Some(queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Descriptors of this process that point at a deleted file under `dir`.
    fn deleted_files_open_below(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| {
                target.starts_with(dir) && target.to_string_lossy().ends_with(" (deleted)")
            })
            .count()
    }

    #[test]
    fn replaced_files_are_closed_once_waited_for() {
        use crate::publish::Publisher;
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::new(dir.path().to_path_buf());
        let names = ["modules.alias", "modules.dep", "modules.symbols"];
        for name in names {
            std::fs::write(dir.path().join(name), vec![b'x'; 1 << 16]).unwrap();
        }
        for name in names {
            let staged = publisher.begin(name).unwrap();
            let staged = staged.stage_with(|file| file.write_all(b"new\n")).unwrap();
            close_in_background(staged.rename().unwrap());
        }
        wait_for_closes();
        assert_eq!(deleted_files_open_below(dir.path()), 0);
        for name in names {
            assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"new\n");
        }
    }

    #[test]
    fn every_value_handed_over_is_dropped() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            hand_over(Box::new(Counted(Arc::clone(&dropped))));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while dropped.load(Ordering::SeqCst) < 100 {
            assert!(Instant::now() < deadline, "values were not dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
