//! Freeing large values, and closing replaced files, off the critical path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

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

/// Closes the last descriptor of a replaced index file on another thread. The filesystem
/// frees the file's pages and blocks then (about a millisecond per megabyte on ext4); left
/// open, the process's exit would do it while its parent waits.
pub(crate) fn close_in_background(file: ReplacedFile) {
    hand_over(Box::new(file));
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
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
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
